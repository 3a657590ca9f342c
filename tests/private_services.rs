//! Real restarts of the real servers mid-run: a private RabbitMQ node and a private PostgreSQL
//! cluster (own directories, spare loopback ports; the machine's services are never touched) are
//! stopped and started again while a worker runs. The run completes, nothing is lost, nothing is
//! stored twice — and, measured by the fixture site's own count of pages served, no listing is
//! rendered again unless its first render could not have been stored.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::fleet::{
    assert_stored_once_and_true, renders, show_logs, stored_ids, wait_for_consumers,
    wait_until_stored,
};
use common::private::{PrivatePostgres, PrivateRabbit};
use common::{AMQP, Farm, PG_BASE};
use scrapefarm::fixture_site::FixtureConfig;
use scrapefarm::worker::PREFETCH_PER_TAB;

const QUERY: &str = "lamp";
/// Tabs of the worker under test.
const CONCURRENCY: usize = 4;

fn config() -> FixtureConfig {
    FixtureConfig {
        listings_per_query: 120,
        ..FixtureConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rabbitmq_node_stopped_and_started_mid_run_loses_nothing_and_renders_each_listing_once() {
    show_logs();
    let mut rabbit = PrivateRabbit::start().await;
    let farm = Farm::start_via(config(), PG_BASE, &rabbit.url()).await;
    let total = farm.enqueue(QUERY, 20).await.jobs_published;
    assert_eq!(total, farm.fixture.ground_truth(QUERY).len());
    let started = Instant::now();
    let run = farm.work("bunny", CONCURRENCY, Duration::from_secs(3));
    let restart = async {
        wait_until_stored(&farm.store, total * 3 / 10, Duration::from_secs(120)).await;
        let stored_at_stop = stored_ids(&farm.store).await.len();
        rabbit.stop().await;
        let stopped_at = started.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let boot = rabbit.start_again().await;
        let back = wait_for_consumers(&farm.queue, 1, Duration::from_secs(60)).await;
        eprintln!(
            "broker stopped after {stopped_at:?} with {stored_at_stop}/{total} stored; \
             node booted in {boot:?}; consumer back {back:?} later"
        );
        assert!(stored_at_stop < total, "stopped mid-run");
    };
    let (stats, ()) = tokio::join!(run, restart);
    eprintln!("{stats}\nrun took {:?}", started.elapsed());
    assert_stored_once_and_true(&farm, QUERY).await;
    // The database stayed up, so every delivery that was rendered was also stored; the ones whose
    // ack was lost with the broker come back and are skipped as already stored (never rendered
    // again), and the ones the worker had not started come back unrendered.
    let twice: Vec<_> = renders(&farm, QUERY)
        .into_iter()
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "listings not rendered exactly once: {twice:?}"
    );
    farm.cleanup().await;
    drop(rabbit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_cluster_stopped_and_started_mid_run_loses_nothing_and_rerenders_only_unstored_pages()
 {
    show_logs();
    let postgres = PrivatePostgres::start().await;
    let farm = Farm::start_via(config(), &postgres.base_url(), AMQP).await;
    let total = farm.enqueue(QUERY, 20).await.jobs_published;
    assert_eq!(total, farm.fixture.ground_truth(QUERY).len());
    let started = Instant::now();
    let run = farm.work("elephant", CONCURRENCY, Duration::from_secs(3));
    // Longer than the pool's 10 s acquire timeout, so that store calls fail and the worker
    // halts rather than waiting the outage out inside the pool.
    let outage = Duration::from_secs(15);
    let restart = async {
        wait_until_stored(&farm.store, total * 3 / 10, Duration::from_secs(120)).await;
        let stored_before = stored_ids(&farm.store).await;
        postgres.stop().await;
        let stopped = Instant::now();
        let halted = wait_for_consumers(&farm.queue, 0, outage).await;
        tokio::time::sleep(outage.saturating_sub(stopped.elapsed())).await;
        // While the database is down no render starts (the "already stored?" check fails first),
        // so this is every page rendered before the restart.
        let rendered_before: HashSet<String> = renders(&farm, QUERY)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(id, _)| id)
            .collect();
        postgres.start_again().await;
        let back = wait_for_consumers(&farm.queue, 1, Duration::from_secs(60)).await;
        eprintln!(
            "database stopped after {:?} with {}/{total} stored: consuming stopped {halted:?} \
             later, resumed {back:?} after the {outage:?} outage",
            stopped - started,
            stored_before.len()
        );
        assert!(stored_before.len() < total, "stopped mid-run");
        (stored_before, rendered_before)
    };
    let (stats, (stored_before, rendered_before)) = tokio::join!(run, restart);
    eprintln!("{stats}\nrun took {:?}", started.elapsed());
    assert_stored_once_and_true(&farm, QUERY).await;
    // A second render of a listing is honest only where the first one could not be stored: its
    // delivery was in flight (rendered, its transaction not committed) when the server stopped.
    // Those listings were rendered before the restart but not stored just before the stop, and
    // there are at most as many as the worker's prefetch (every unsettled delivery is in it).
    // Every other listing is rendered exactly once: a redelivery of a committed row is skipped.
    let renders = renders(&farm, QUERY);
    let in_flight: HashSet<&String> = rendered_before.difference(&stored_before).collect();
    let twice: Vec<&String> = renders
        .iter()
        .filter(|(_, n)| **n == 2)
        .map(|(id, _)| id)
        .collect();
    let wrong: Vec<_> = renders
        .iter()
        .filter(|(_, n)| **n == 0 || **n > 2)
        .collect();
    assert!(
        wrong.is_empty(),
        "rendered never or more than twice: {wrong:?}"
    );
    let unexplained: Vec<_> = twice.iter().filter(|id| !in_flight.contains(*id)).collect();
    assert!(
        unexplained.is_empty(),
        "rendered twice though stored before the stop or not in flight: {unexplained:?}"
    );
    assert!(
        twice.len() <= CONCURRENCY * PREFETCH_PER_TAB,
        "{} listings rendered twice, more than the {} deliveries in flight: {twice:?}",
        twice.len(),
        CONCURRENCY * PREFETCH_PER_TAB
    );
    eprintln!(
        "{} listings rendered twice (in flight at the stop: {})",
        twice.len(),
        in_flight.len()
    );
    farm.cleanup().await;
    drop(postgres);
}

//! The Kubernetes shape on one machine: 16 `scrapefarm worker` processes of concurrency 1 (each
//! with its own Chromium and profile) against the machine's PostgreSQL and RabbitMQ, on a
//! 400-listing search of the fixture site with its defences on. Every listing is stored once and
//! equals the truth; the workers' database connections stay within 16 × the worker pool size
//! (`pg_stat_activity`); and while they run, `scrapefarm status` shows 16 consumers and the
//! broker's own unacked count (`rabbitmqctl list_queues`).

mod common;

use std::collections::HashMap;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fleet::{assert_stored_once_and_true, renders};
use common::{AMQP, Farm, PG_BASE};
use scrapefarm::app::worker_pool_size;
use scrapefarm::fixture_site::{Defences, FixtureConfig};

const WORKERS: usize = 16;
const QUERY: &str = "lamp";
/// Marks the workers' database sessions in `pg_stat_activity`.
const WORKER_APP: &str = "sf_fleet_worker";

/// A worker process that is killed when the test ends, even by a failed assertion.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(farm: &Farm, id: &str) -> Worker {
    let child = farm
        .worker_command(id)
        .args(["--concurrency", "1", "--exit-when-idle", "6"])
        .env(
            "DATABASE_URL",
            format!("{}?application_name={WORKER_APP}", farm.db_url),
        )
        .env("RUST_LOG", "scrapefarm=warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("worker binary starts");
    Worker(child)
}

/// What `scrapefarm status --json` and `rabbitmqctl list_queues` said at about the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueueSample {
    status_consumers: u64,
    status_unacked: u64,
    broker_consumers: u64,
    broker_unacked: u64,
}

fn status(farm: &Farm) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["status", "--json"])
        .env(
            "DATABASE_URL",
            format!("{}?application_name=sf_fleet_status", farm.db_url),
        )
        .env("AMQP_URL", AMQP)
        .env("SCRAPEFARM_QUEUE", &farm.queue_name)
        .output()
        .expect("scrapefarm status runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

/// (unacked, consumers) of the work queue as the broker lists it.
fn broker_counts(queue: &str) -> (u64, u64) {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_queues",
            "name",
            "messages_unacknowledged",
            "consumers",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&queue))
        .unwrap_or_else(|| panic!("{queue} in rabbitmqctl list_queues: {text}"));
    (row[1].parse().unwrap(), row[2].parse().unwrap())
}

/// A sample, or `None` when `status` says unacked is unknown: its management API call (5 s
/// bound) timed out, which a 2-core machine running 16 workers and a build can make happen.
fn sample(farm: &Farm) -> Option<QueueSample> {
    let (broker_unacked, broker_consumers) = broker_counts(&farm.queue_name);
    let depths = &status(farm)["depths"];
    Some(QueueSample {
        status_consumers: depths["consumers"].as_u64().unwrap(),
        status_unacked: depths["unacked"].as_u64()?,
        broker_consumers,
        broker_unacked,
    })
}

/// Sessions on the test database: (the workers', all).
async fn sessions(admin: &sqlx::PgPool, database: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE application_name = $2), COUNT(*) \
         FROM pg_stat_activity WHERE datname = $1",
    )
    .bind(database)
    .bind(WORKER_APP)
    .fetch_one(admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_worker_processes_store_400_defended_listings_once_within_a_connection_bound() {
    let config = FixtureConfig {
        listings_per_query: 400,
        defences: Defences::hostile_pages(),
        ..FixtureConfig::default()
    };
    let farm = Farm::start(config).await;
    let total = farm.enqueue(QUERY, 20).await.jobs_published;
    assert_eq!(total, 400);
    let database = farm.db_url.rsplit('/').next().unwrap().to_string();
    let admin = sqlx::PgPool::connect(&format!("{PG_BASE}/postgres"))
        .await
        .unwrap();
    // Each worker's pool holds at most this many connections; 16 of them must fit well under
    // PostgreSQL's default max_connections of 100 beside the rest of the farm.
    let bound = WORKERS as i64 * i64::from(worker_pool_size(1));

    let started = Instant::now();
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| worker(&farm, &format!("fleet-{i}")))
        .collect();
    let (mut max_workers, mut max_all) = (0, 0);
    let mut samples: Vec<QueueSample> = Vec::new();
    let mut unknown_samples = 0;
    let mut last_sample = Instant::now() - Duration::from_secs(10);
    let mut exits = Vec::new();
    while exits.len() < WORKERS {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the fleet finishes within 15 min"
        );
        let (w, all) = sessions(&admin, &database).await;
        (max_workers, max_all) = (max_workers.max(w), max_all.max(all));
        // rabbitmqctl costs a second of CPU (an Erlang VM boots): a few samples while every
        // worker is busy suffice, and more would slow the fleet on 2 cores.
        let busy = samples
            .iter()
            .filter(|s| s.broker_consumers == 16 && s.broker_unacked > 0);
        let enough = busy.count() >= 5 || samples.len() + unknown_samples >= 15;
        if last_sample.elapsed() > Duration::from_secs(3) && exits.is_empty() && !enough {
            match tokio::task::block_in_place(|| sample(&farm)) {
                Some(s) => samples.push(s),
                None => unknown_samples += 1,
            }
            last_sample = Instant::now();
        }
        exits.extend(workers.iter_mut().filter_map(|w| w.0.try_wait().unwrap()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    eprintln!(
        "{WORKERS} workers took {took:?}; database sessions: workers at most {max_workers} \
         (bound {bound}), all at most {max_all}; fixture counters {:?}",
        farm.fixture.counters()
    );
    eprintln!("queue samples while running: {samples:?} ({unknown_samples} with unacked unknown)");
    assert!(
        exits.iter().all(|s| s.success()),
        "every worker exits 0 when idle: {exits:?}"
    );
    assert!(max_workers > 0, "the workers' sessions were seen");
    assert!(
        max_workers <= bound,
        "{max_workers} worker sessions, bound {bound}"
    );

    assert_stored_once_and_true(&farm, QUERY).await;
    assert_rendered_once_unless_a_render_failed(&farm).await;

    let full: Vec<&QueueSample> = samples
        .iter()
        .filter(|s| s.broker_consumers == 16)
        .collect();
    assert!(!full.is_empty(), "the broker saw 16 consumers: {samples:?}");
    assert!(
        samples.iter().any(|s| s.status_consumers == 16),
        "status showed 16 consumers: {samples:?}"
    );
    // unacked moves every few hundred milliseconds; two readings a moment apart agree in
    // at least one of several samples taken while every worker is busy.
    assert!(
        full.iter()
            .any(|s| s.status_unacked == s.broker_unacked && s.broker_unacked > 0),
        "status reports the broker's unacked count: {samples:?}"
    );
    admin.close().await;
    farm.cleanup().await;
}

/// Each listing's page was served once; more only where that listing has as many attempts that
/// failed after the page was served (an empty page, a render, extract or snapshot error).
async fn assert_rendered_once_unless_a_render_failed(farm: &Farm) {
    let failed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.external_id, COUNT(*) FROM attempts a JOIN listings l ON l.id = a.listing_id \
         WHERE a.outcome IN ('empty', 'render_error', 'extract_error', 'snapshot_error', \
         'store_error', 'shutting_down') GROUP BY l.external_id",
    )
    .fetch_all(farm.store.pool())
    .await
    .unwrap();
    let failed: HashMap<String, i64> = failed.into_iter().collect();
    let renders = renders(farm, QUERY);
    let mut histogram: HashMap<u64, usize> = HashMap::new();
    for (id, n) in &renders {
        *histogram.entry(*n).or_default() += 1;
        let allowed = 1 + failed.get(id).copied().unwrap_or(0) as u64;
        assert!(
            *n >= 1 && *n <= allowed,
            "{id} rendered {n} times, {allowed} allowed by its attempts"
        );
    }
    eprintln!("renders per listing: {histogram:?}; listings with failed renders: {failed:?}");
}

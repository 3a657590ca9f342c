//! Failure paths of the queues on real services: `dlq requeue` stopped between its publish and
//! its ack (RabbitMQ), the unacked and consumer counts against `rabbitmqctl`, and embedded-queue
//! leases shared by two "processes" (two pools on one SQLite file or PostgreSQL database):
//! renewed while a job runs longer than a lease, taken over only once expired.

mod common;

use std::time::{Duration, Instant};

use common::{AMQP, PG_BASE, drop_database, unique};
use scrapefarm::domain::Job;
use scrapefarm::queue::rabbitmq::{MANAGEMENT_URL_ENV, RETRY_TIERS_SECS};
use scrapefarm::queue::{
    Consumer, DeadJob, Delivery, EmbeddedQueue, Queue, QueueDepths, QueueError, QueueNames,
    RabbitMqQueue, Settle,
};
use scrapefarm::store::Store;

/// A delivery that must come gets this long.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Short leases, so that expiry shows within a test (renewed every third).
const SHORT_LEASE: Duration = Duration::from_millis(900);

#[tokio::test]
async fn dlq_requeue_stopped_between_publish_and_ack_leaves_the_job_in_both_queues_never_neither() {
    let names = QueueNames::new(unique("sf_sweep"));
    let queue = rabbitmq(&names).await;
    bury(&queue, &[1, 2]).await;

    // The `dlq requeue` process: a connection of its own, killed mid-way.
    let operator = rabbitmq(&names).await;
    let mut sweep = operator.dead_sweep().await.unwrap();
    let first = sweep.take_next().await.unwrap().expect("a dead job");
    sweep.republish(&first).await.unwrap();
    let second = sweep.take_next().await.unwrap().expect("a second dead job");
    operator.close().await; // the crash: after the first's publish, before any ack
    drop((first, second, sweep));

    assert_eq!(
        dead_numbers(&queue).await,
        vec![1, 2],
        "both still dead (the second was only taken)"
    );
    assert_eq!(
        ready_numbers(&queue, 1).await,
        vec![1],
        "the first also in the work queue"
    );

    // Run again to the end, the operator moves both: the first was delivered twice in all (a
    // duplicate the store's upsert absorbs), never lost.
    let moved = queue.requeue_dead(&|_| true).await.unwrap();
    assert_eq!(moved, 2);
    assert_eq!(dead_numbers(&queue).await, Vec::<u32>::new());
    assert_eq!(ready_numbers(&queue, 2).await, vec![1, 2]);
    queue.close().await;
    delete_queues(&names).await;
}

#[tokio::test]
async fn rabbitmq_depths_equal_rabbitmqctl_and_say_unknown_without_the_management_api() {
    let names = QueueNames::new(unique("sf_depths"));
    let queue = rabbitmq(&names).await;
    for n in 1..=4 {
        queue.publish(&job(n)).await.unwrap();
    }
    let mut consumer = queue.consume(3, "depths").await.unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next(&mut consumer).await);
    }
    // The management API samples every few seconds; rabbitmqctl reads the queue itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    let depths = loop {
        let depths = queue.depths().await.unwrap();
        if depths.unacked == Some(3) || Instant::now() > deadline {
            break depths;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (ctl_unacked, ctl_consumers) = rabbitmqctl_counts(&names.work);
    assert_eq!((ctl_unacked, ctl_consumers), (3, 1), "rabbitmqctl");
    assert_eq!(
        (depths.unacked, depths.consumers),
        (Some(ctl_unacked), ctl_consumers)
    );
    assert_eq!(depths.ready, 1);

    // SAFETY: no other test of this binary reads this variable (only `connect` does, here).
    unsafe { std::env::set_var(MANAGEMENT_URL_ENV, "http://127.0.0.1:1") };
    let blind = rabbitmq(&names).await;
    unsafe { std::env::remove_var(MANAGEMENT_URL_ENV) };
    let depths = blind.depths().await.unwrap();
    assert_eq!(
        depths.unacked, None,
        "unknown, not 0, without the management API"
    );
    assert_eq!((depths.ready, depths.consumers), (1, 1));
    blind.close().await;

    for delivery in &held {
        queue.settle(delivery, Settle::Ack).await.unwrap();
    }
    consumer.close().await;
    queue.close().await;
    delete_queues(&names).await;
}

#[tokio::test]
async fn rabbitmq_retry_tier_depths_equal_rabbitmqctl() {
    let names = QueueNames::new(unique("sf_tiers"));
    let queue = rabbitmq(&names).await;
    for n in 1..=3 {
        queue.publish(&job(n)).await.unwrap();
    }
    let mut consumer = queue.consume(3, "tiers").await.unwrap();
    for after in [15, 900, 900] {
        let delivery = next(&mut consumer).await;
        let retry = Settle::Retry(Duration::from_secs(after));
        queue.settle(&delivery, retry).await.unwrap();
    }
    let tiers = queue.retry_depths().await.unwrap();
    let expected: Vec<(u64, u64)> = RETRY_TIERS_SECS
        .iter()
        .map(|&t| {
            (
                t,
                [(15, 1), (900, 2)]
                    .iter()
                    .find(|(d, _)| *d == t)
                    .map_or(0, |x| x.1),
            )
        })
        .collect();
    assert_eq!(tiers, expected);
    for (tier, n) in &tiers {
        let (ctl, _) = rabbitmqctl_columns(&names.retry(*tier), ["messages", "consumers"]);
        assert_eq!(ctl, *n, "tier {tier} s per rabbitmqctl");
    }
    assert_eq!(queue.depths().await.unwrap().retrying, 3);
    consumer.close().await;
    queue.close().await;
    delete_queues(&names).await;
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_never_run_a_job_twice_even_past_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
    two_processes_never_run_a_job_twice(&url).await;
}

#[tokio::test]
async fn two_processes_on_one_postgres_database_never_run_a_job_twice_even_past_a_lease() {
    let name = unique("sf_leases");
    two_processes_never_run_a_job_twice(&format!("{PG_BASE}/{name}")).await;
    drop_database(&name).await;
}

#[tokio::test]
async fn an_expired_lease_on_sqlite_is_taken_over_and_the_late_settle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
    expired_lease_is_taken_over(&url).await;
}

#[tokio::test]
async fn an_expired_lease_on_postgres_is_taken_over_and_the_late_settle_is_refused() {
    let name = unique("sf_expiry");
    expired_lease_is_taken_over(&format!("{PG_BASE}/{name}")).await;
    drop_database(&name).await;
}

/// Each job is held 1.5 leases; the leases are renewed, so no job goes to the other process.
async fn two_processes_never_run_a_job_twice(url: &str) {
    const JOBS: u32 = 12;
    let (first, second) = (migrated(url).await, migrated(url).await);
    let queue = |store: &Store| EmbeddedQueue::new(store, "listings").with_lease(SHORT_LEASE);
    for n in 1..=JOBS {
        queue(&first).publish(&job(n)).await.unwrap();
    }
    let run = |queue: EmbeddedQueue| async move {
        let mut consumer = queue.consume(3, "worker").await.unwrap();
        let mut ran = Vec::new();
        let tracker = tokio_util::task::TaskTracker::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        while let Ok(Some(Ok(delivery))) =
            tokio::time::timeout(SHORT_LEASE * 3, consumer.next()).await
        {
            let (queue, tx) = (queue.clone(), tx.clone());
            tracker.spawn(async move {
                tokio::time::sleep(SHORT_LEASE * 3 / 2).await;
                let settled = queue.settle(&delivery, Settle::Ack).await;
                let _ = tx.send((number(&delivery), delivery.redelivered, settled.is_ok()));
            });
        }
        tracker.close();
        tracker.wait().await;
        consumer.close().await;
        drop(tx);
        while let Some(outcome) = rx.recv().await {
            ran.push(outcome);
        }
        ran
    };
    let (a, b) = tokio::join!(run(queue(&first)), run(queue(&second)));
    assert!(!a.is_empty() && !b.is_empty(), "both processes ran jobs");
    let all = [a, b].concat();
    assert!(
        all.iter().all(|(_, redelivered, _)| !redelivered),
        "no redelivery: {all:?}"
    );
    assert!(
        all.iter().all(|(_, _, acked)| *acked),
        "every ack held its lease: {all:?}"
    );
    let numbers = all.iter().map(|(n, _, _)| *n).collect::<Vec<_>>();
    assert_eq!(
        sorted(numbers),
        (1..=JOBS).collect::<Vec<_>>(),
        "each job once"
    );
    let depths = queue(&first).depths().await.unwrap();
    assert_eq!(
        depths,
        QueueDepths {
            unacked: Some(0),
            ..QueueDepths::default()
        }
    );
    first.close().await;
    second.close().await;
}

/// A consumer that stops renewing (dropped without closing, as a hung or killed process) loses
/// its job once the lease expires: the other process gets it as a redelivery, and the late
/// settle of the first is refused instead of overwriting the second's work.
async fn expired_lease_is_taken_over(url: &str) {
    let (first, second) = (migrated(url).await, migrated(url).await);
    let queue = |store: &Store| EmbeddedQueue::new(store, "listings").with_lease(SHORT_LEASE);
    let (hung, live) = (queue(&first), queue(&second));
    hung.publish(&job(1)).await.unwrap();
    let mut consumer = hung.consume(1, "hung").await.unwrap();
    let stale = next(&mut consumer).await;
    assert!(!stale.redelivered);
    drop(consumer); // stops renewing; the lease is not given back

    let mut other = live.consume(1, "live").await.unwrap();
    let deadline = Instant::now() + SHORT_LEASE * 2;
    let taken = next(&mut other).await;
    assert!(
        Instant::now() < deadline + SHORT_LEASE,
        "taken over soon after expiry"
    );
    assert_eq!(
        (number(&taken), taken.attempt, taken.redelivered),
        (1, 1, true)
    );
    let late = hung.settle(&stale, Settle::Dead("late")).await;
    assert!(
        matches!(late, Err(QueueError::LeaseLost(_))),
        "late settle: {late:?}"
    );
    live.settle(&taken, Settle::Ack).await.unwrap();
    assert_eq!(live.dead_jobs().await.unwrap(), Vec::<DeadJob>::new());
    assert_eq!(live.depths().await.unwrap().ready, 0);
    other.close().await;
    first.close().await;
    second.close().await;
}

fn job(n: u32) -> Job {
    Job {
        id: format!("job-{n}"),
        site: "fixture".into(),
        url: format!("http://127.0.0.1:1/item/{n}"),
        search_id: None,
        run: None,
        published_at: 0,
    }
}

fn number(delivery: &Delivery) -> u32 {
    number_of(&delivery.body)
}

fn number_of(body: &[u8]) -> u32 {
    let job = Job::parse(body).expect("a job body");
    job.id.trim_start_matches("job-").parse().unwrap()
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

async fn next<C: Consumer>(consumer: &mut C) -> Delivery {
    match tokio::time::timeout(DELIVERY_TIMEOUT, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(e))) => panic!("the consumer failed: {e}"),
        Ok(None) => panic!("the consumer ended"),
        Err(_) => panic!("no delivery within {DELIVERY_TIMEOUT:?}"),
    }
}

async fn rabbitmq(names: &QueueNames) -> RabbitMqQueue {
    RabbitMqQueue::connect(AMQP, names.clone())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (run scripts/setup.sh)")
}

async fn migrated(url: &str) -> Store {
    let store = Store::connect(url, 4)
        .await
        .expect("the database (run scripts/setup.sh)");
    store.migrate().await.unwrap();
    store
}

/// Publishes jobs `numbers` and dead-letters each.
async fn bury<Q: Queue>(queue: &Q, numbers: &[u32]) {
    for n in numbers {
        queue.publish(&job(*n)).await.unwrap();
    }
    let mut consumer = queue.consume(8, "bury").await.unwrap();
    for _ in numbers {
        let delivery = next(&mut consumer).await;
        queue.settle(&delivery, Settle::Dead("test")).await.unwrap();
    }
    consumer.close().await;
}

async fn dead_numbers<Q: Queue>(queue: &Q) -> Vec<u32> {
    let dead = queue.dead_jobs().await.unwrap();
    sorted(dead.iter().map(|d| number_of(&d.body)).collect())
}

/// The numbers of the `n` jobs in the work queue (acked as they are read), and nothing more.
async fn ready_numbers<Q: Queue>(queue: &Q, n: usize) -> Vec<u32> {
    let mut consumer = queue.consume(8, "read").await.unwrap();
    let mut numbers = Vec::new();
    for _ in 0..n {
        let delivery = next(&mut consumer).await;
        queue.settle(&delivery, Settle::Ack).await.unwrap();
        numbers.push(number(&delivery));
    }
    let more = tokio::time::timeout(Duration::from_millis(600), consumer.next()).await;
    assert!(more.is_err(), "no further job in the work queue");
    consumer.close().await;
    sorted(numbers)
}

/// `messages_unacknowledged` and `consumers` of `queue` as `rabbitmqctl` reports them.
fn rabbitmqctl_counts(queue: &str) -> (u64, u64) {
    rabbitmqctl_columns(queue, ["messages_unacknowledged", "consumers"])
}

/// Two numeric columns of `rabbitmqctl list_queues` for `queue`.
fn rabbitmqctl_columns(queue: &str, columns: [&str; 2]) -> (u64, u64) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name"])
        .args(columns)
        .output()
        .expect("rabbitmqctl (scripts/setup.sh installs RabbitMQ)");
    assert!(
        out.status.success(),
        "rabbitmqctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&queue))
        .unwrap_or_else(|| panic!("{queue} in rabbitmqctl's list:\n{text}"));
    (line[1].parse().unwrap(), line[2].parse().unwrap())
}

async fn delete_queues(names: &QueueNames) {
    let props = lapin::ConnectionProperties::default();
    let conn = lapin::Connection::connect(AMQP, props).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    let retry = RETRY_TIERS_SECS.iter().map(|tier| names.retry(*tier));
    for name in [names.work.clone(), names.dead()].into_iter().chain(retry) {
        let options = lapin::options::QueueDeleteOptions::default();
        channel.queue_delete(name.into(), options).await.unwrap();
    }
    conn.close(200, "done".into()).await.unwrap();
}

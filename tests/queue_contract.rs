//! The `Queue` contract: one test body per promise of the trait, each run against RabbitMQ
//! (127.0.0.1:5672, queue names of its own), the embedded queue on a SQLite file and the embedded
//! queue on a fresh PostgreSQL database (127.0.0.1:5432). A body sees only `Q: Queue`.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{AMQP, PG_BASE, drop_database, unique};
use scrapefarm::domain::Job;
use scrapefarm::queue::rabbitmq::RETRY_TIERS_SECS;
use scrapefarm::queue::{
    Consumer, DeadJob, Delivery, EmbeddedQueue, MAX_JOB_BYTES, Queue, QueueDepths, QueueError,
    QueueNames, RabbitMqQueue, Settle,
};
use scrapefarm::store::Store;

/// A delivery that must come gets this long: far above any backend's latency, so a lost job is
/// a failed assertion, not a hang.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// A delivery that must not come is waited for this long (three polls of the embedded queue).
const QUIET: Duration = Duration::from_millis(600);
/// RabbitMQ's shortest retry tier, so the delay is the one asked for on every backend.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// The embedded queue schedules retries in wall-clock milliseconds, the test measures `Instant`s.
const CLOCK_SLACK: Duration = Duration::from_millis(20);
/// A whole body; anything not covered by a finer timeout (publish, settle, close) ends here.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

async fn published_jobs_are_delivered_with_attempt_1_and_their_body_intact<Q: Queue>(queue: Q) {
    // Not UTF-8 and not a job: the queue carries bytes, it does not parse them.
    let raw = vec![0x00, 0x9f, 0x92, 0x96, b'{', 0xff];
    queue.publish(&job(1)).await.unwrap();
    queue.publish(&job(2)).await.unwrap();
    queue.publish_raw(raw.clone()).await.unwrap();
    assert_eq!(depths(&queue).await, ready(3), "depths before consuming");

    let mut consumer = queue.consume(8, "contract").await.unwrap();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.attempt, 1, "first delivery of {}", text(&delivery));
        queue.settle(&delivery, Settle::Ack).await.unwrap();
        bodies.push(delivery.body);
    }
    assert_eq!(sorted(bodies), sorted(vec![body(1), body(2), raw]));
    consumer.close().await;
}

async fn at_most_prefetch_deliveries_are_unsettled_at_once<Q: Queue>(queue: Q) {
    for n in 1..=3 {
        queue.publish(&job(n)).await.unwrap();
    }
    let mut consumer = queue.consume(2, "contract").await.unwrap();
    let first = next(&mut consumer).await;
    let second = next(&mut consumer).await;
    assert_quiet(&mut consumer, "a third delivery while two are unsettled").await;

    queue.settle(&first, Settle::Ack).await.unwrap();
    let third = next(&mut consumer).await;
    queue.settle(&second, Settle::Ack).await.unwrap();
    queue.settle(&third, Settle::Ack).await.unwrap();
    let bodies = vec![first.body, second.body, third.body];
    assert_eq!(sorted(bodies), vec![body(1), body(2), body(3)]);
    consumer.close().await;
}

async fn an_acked_job_is_never_delivered_again<Q: Queue>(queue: Q) {
    queue.publish(&job(1)).await.unwrap();
    let mut consumer = queue.consume(1, "contract").await.unwrap();
    let delivery = next(&mut consumer).await;
    queue.settle(&delivery, Settle::Ack).await.unwrap();
    consumer.close().await;

    // A redelivered job 1 would come before job 2 on every backend (both are first in, first out).
    queue.publish(&job(2)).await.unwrap();
    let mut consumer = queue.consume(1, "contract").await.unwrap();
    let delivery = next(&mut consumer).await;
    assert_eq!(number(&delivery), 2, "the next delivery after the ack");
    queue.settle(&delivery, Settle::Ack).await.unwrap();
    assert_quiet(&mut consumer, "a delivery after both jobs were acked").await;
    assert_eq!(depths(&queue).await, QueueDepths::default());
    consumer.close().await;
}

async fn retried_delivery_comes_back_after_its_delay_with_the_next_attempt<Q: Queue>(queue: Q) {
    queue.publish(&job(1)).await.unwrap();
    let mut consumer = queue.consume(1, "contract").await.unwrap();
    let delivery = next(&mut consumer).await;
    let retried = Instant::now();
    queue
        .settle(&delivery, Settle::Retry(RETRY_DELAY))
        .await
        .unwrap();
    let waiting = QueueDepths {
        retrying: 1,
        ..QueueDepths::default()
    };
    assert_eq!(depths(&queue).await, waiting, "depths during the delay");

    let again = next(&mut consumer).await;
    let waited = retried.elapsed();
    assert!(
        waited + CLOCK_SLACK >= RETRY_DELAY,
        "redelivered after {waited:?}, before the {RETRY_DELAY:?} delay"
    );
    assert_eq!((number(&again), again.attempt), (1, 2));
    assert_eq!(again.body, body(1), "the body, intact");
    queue.settle(&again, Settle::Ack).await.unwrap();
    assert_eq!(depths(&queue).await, QueueDepths::default());
    consumer.close().await;
}

async fn dead_jobs_keep_reason_and_attempt_and_requeue_dead_moves_back_only_the_picked_ones<
    Q: Queue,
>(
    queue: Q,
) {
    for n in 1..=3 {
        queue.publish(&job(n)).await.unwrap();
    }
    let mut consumer = queue.consume(3, "contract").await.unwrap();
    for _ in 0..3 {
        let delivery = next(&mut consumer).await;
        // Job 1 dies on its second attempt, so the attempt number has to travel.
        let how = match number(&delivery) {
            1 => Settle::Retry(RETRY_DELAY),
            2 => Settle::Dead("malformed"),
            _ => Settle::Dead("captcha"),
        };
        queue.settle(&delivery, how).await.unwrap();
    }
    let retried = next(&mut consumer).await;
    assert_eq!((number(&retried), retried.attempt), (1, 2));
    queue
        .settle(&retried, Settle::Dead("blocked"))
        .await
        .unwrap();

    let parked = vec![
        dead(1, "blocked", 2),
        dead(2, "malformed", 1),
        dead(3, "captcha", 1),
    ];
    assert_eq!(dead_jobs(&queue).await, parked);
    assert_eq!(dead_jobs(&queue).await, parked, "read again: left in place");
    let dead_only = |n| QueueDepths {
        dead: n,
        ..QueueDepths::default()
    };
    assert_eq!(depths(&queue).await, dead_only(3));

    let moved = queue.requeue_dead(&|d| d.reason != "malformed").await;
    assert_eq!(moved.unwrap(), 2, "moved back");
    assert_eq!(dead_jobs(&queue).await, vec![dead(2, "malformed", 1)]);
    let mut back = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut consumer).await;
        queue.settle(&delivery, Settle::Ack).await.unwrap();
        back.push((number(&delivery), delivery.attempt));
    }
    assert_eq!(
        sorted(back),
        vec![(1, 1), (3, 1)],
        "(job, attempt) moved back"
    );
    assert_quiet(&mut consumer, "a delivery of the job left dead").await;
    assert_eq!(depths(&queue).await, dead_only(1));
    consumer.close().await;
}

async fn requeued_delivery_is_delivered_again_untouched<Q: Queue>(queue: Q) {
    queue.publish(&job(1)).await.unwrap();
    let mut consumer = queue.consume(1, "contract").await.unwrap();
    let delivery = next(&mut consumer).await;
    queue.settle(&delivery, Settle::Requeue).await.unwrap();

    let again = next(&mut consumer).await;
    assert_eq!((again.body.clone(), again.attempt), (body(1), 1));
    queue.settle(&again, Settle::Ack).await.unwrap();
    assert_quiet(&mut consumer, "a third delivery of a requeued job").await;
    assert_eq!(depths(&queue).await, QueueDepths::default());
    consumer.close().await;
}

async fn deliveries_unsettled_when_the_consumer_closes_go_to_the_next_consumer<Q: Queue>(queue: Q) {
    queue.publish(&job(1)).await.unwrap();
    queue.publish(&job(2)).await.unwrap();
    let mut consumer = queue.consume(2, "contract").await.unwrap();
    let acked = next(&mut consumer).await;
    let unsettled = next(&mut consumer).await;
    queue.settle(&acked, Settle::Ack).await.unwrap();
    consumer.close().await;

    let mut consumer = queue.consume(2, "contract").await.unwrap();
    let again = next(&mut consumer).await;
    let same = (number(&unsettled), unsettled.attempt);
    assert_eq!((number(&again), again.attempt), same, "the unsettled job");
    queue.settle(&again, Settle::Ack).await.unwrap();
    assert_quiet(&mut consumer, "a delivery of the acked job").await;
    assert_eq!(depths(&queue).await, QueueDepths::default());
    consumer.close().await;
}

async fn purge_all_empties_every_queue<Q: Queue>(queue: Q) {
    queue.publish(&job(1)).await.unwrap();
    queue.publish(&job(2)).await.unwrap();
    let mut consumer = queue.consume(2, "contract").await.unwrap();
    let to_retry = next(&mut consumer).await;
    let to_bury = next(&mut consumer).await;
    // Long enough to stay in the retry tier for the whole test.
    let later = Settle::Retry(Duration::from_secs(60));
    queue.settle(&to_retry, later).await.unwrap();
    queue
        .settle(&to_bury, Settle::Dead("malformed"))
        .await
        .unwrap();
    consumer.close().await;
    queue.publish(&job(3)).await.unwrap();
    queue.publish(&job(4)).await.unwrap();
    let full = QueueDepths {
        ready: 2,
        retrying: 1,
        dead: 1,
        ..QueueDepths::default()
    };
    assert_eq!(depths(&queue).await, full, "depths before the purge");

    queue.purge_all().await.unwrap();
    assert_eq!(depths(&queue).await, QueueDepths::default());
    assert_eq!(dead_jobs(&queue).await, vec![]);
    queue.publish(&job(5)).await.unwrap();
    let mut consumer = queue.consume(2, "contract").await.unwrap();
    let delivery = next(&mut consumer).await;
    assert_eq!(number(&delivery), 5, "the first delivery after the purge");
    queue.settle(&delivery, Settle::Ack).await.unwrap();
    consumer.close().await;
}

async fn a_delivery_is_redelivered_only_after_its_consumer_let_it_go_unsettled<Q: Queue>(queue: Q) {
    queue.publish(&job(1)).await.unwrap();
    let mut consumer = queue.consume(1, "contract").await.unwrap();
    let first = next(&mut consumer).await;
    assert!(!first.redelivered, "the first delivery");
    consumer.close().await;

    let mut consumer = queue.consume(1, "contract").await.unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(
        (number(&again), again.attempt),
        (1, 1),
        "same job, same attempt"
    );
    assert!(
        again.redelivered,
        "delivered again after its consumer closed"
    );
    queue
        .settle(&again, Settle::Retry(RETRY_DELAY))
        .await
        .unwrap();
    let retried = next(&mut consumer).await;
    assert_eq!(retried.attempt, 2);
    assert!(
        !retried.redelivered,
        "a retry is a new attempt, not a redelivery"
    );
    queue.settle(&retried, Settle::Ack).await.unwrap();
    consumer.close().await;
}

async fn two_consumers_on_one_queue_never_get_the_same_job<Q: Queue>(queue: Q) {
    const JOBS: u32 = 30;
    for n in 1..=JOBS {
        queue.publish(&job(n)).await.unwrap();
    }
    let drain = |tag: &'static str| {
        let queue = queue.clone();
        async move {
            let mut consumer = queue.consume(4, tag).await.unwrap();
            let mut got = Vec::new();
            // Until the other consumer has taken the rest: the queue stays quiet.
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(QUIET * 2, consumer.next()).await
            {
                // Holding the job a little lets the other consumer claim concurrently.
                tokio::time::sleep(Duration::from_millis(20)).await;
                queue.settle(&delivery, Settle::Ack).await.unwrap();
                got.push(number(&delivery));
            }
            consumer.close().await;
            got
        }
    };
    let (a, b) = tokio::join!(drain("contract-a"), drain("contract-b"));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both consumers worked: {a:?} {b:?}"
    );
    let all = sorted([a, b].concat());
    assert_eq!(
        all,
        (1..=JOBS).collect::<Vec<_>>(),
        "every job exactly once"
    );
    assert_eq!(depths(&queue).await, QueueDepths::default());
}

async fn depths_count_a_consumers_unsettled_deliveries_and_the_consumer<Q: Queue>(queue: Q) {
    for n in 1..=5 {
        queue.publish(&job(n)).await.unwrap();
    }
    let mut consumer = queue.consume(3, "contract").await.unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next(&mut consumer).await);
    }
    let expected = QueueDepths {
        ready: 2,
        unacked: Some(3),
        consumers: 1,
        ..QueueDepths::default()
    };
    // RabbitMQ's management API samples its counts every few seconds.
    let seen = settled_depths(&queue, expected).await;
    assert_eq!(seen, expected, "depths while 3 deliveries are unsettled");
    for delivery in &held {
        queue.settle(delivery, Settle::Ack).await.unwrap();
    }
    consumer.close().await;
    let idle = QueueDepths {
        ready: 2,
        unacked: Some(0),
        ..QueueDepths::default()
    };
    let after = settled_depths(&queue, idle).await;
    assert_eq!(after, idle, "depths once the consumer settled and closed");
}

async fn publish_refuses_a_body_over_the_job_size_cap<Q: Queue>(queue: Q) {
    let largest = vec![b'x'; MAX_JOB_BYTES];
    queue.publish_raw(largest).await.unwrap();
    let over = queue.publish_raw(vec![b'x'; MAX_JOB_BYTES + 1]).await;
    assert!(
        matches!(over, Err(QueueError::TooLarge { .. })),
        "a body one byte over the cap: {over:?}"
    );
    assert_eq!(depths(&queue).await, ready(1), "only the body at the cap");
}

/// Depths polled until they equal `expected` (RabbitMQ's unacked count lags), at most 15 s;
/// the last reading either way.
async fn settled_depths<Q: Queue>(queue: &Q, expected: QueueDepths) -> QueueDepths {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = queue.depths().await.unwrap();
        if seen == expected || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A listing job numbered `n`.
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

fn body(n: u32) -> Vec<u8> {
    job(n).to_body()
}

/// The number of the job a delivery carries.
fn number(delivery: &Delivery) -> u32 {
    let job = Job::parse(&delivery.body).expect("a job body");
    job.id.trim_start_matches("job-").parse().unwrap()
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.body).into_owned()
}

fn dead(n: u32, reason: &str, attempt: u32) -> DeadJob {
    DeadJob {
        body: body(n),
        reason: reason.into(),
        attempt,
    }
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn ready(n: u64) -> QueueDepths {
    QueueDepths {
        ready: n,
        ..QueueDepths::default()
    }
}

/// The message counts, without `consumers` and `unacked` (RabbitMQ samples its unacked count
/// every few seconds: `depths_count_a_consumers_unsettled_deliveries_and_the_consumer` checks
/// both, waiting for the sample).
async fn depths<Q: Queue>(queue: &Q) -> QueueDepths {
    let depths = queue.depths().await.unwrap();
    QueueDepths {
        consumers: 0,
        unacked: None,
        ..depths
    }
}

/// The dead jobs by body: neither backend promises an order.
async fn dead_jobs<Q: Queue>(queue: &Q) -> Vec<DeadJob> {
    let mut jobs = queue.dead_jobs().await.unwrap();
    jobs.sort_by(|a, b| a.body.cmp(&b.body));
    jobs
}

/// The next delivery, which must come.
async fn next<C: Consumer>(consumer: &mut C) -> Delivery {
    match tokio::time::timeout(DELIVERY_TIMEOUT, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(e))) => panic!("the consumer failed: {e}"),
        Ok(None) => panic!("the consumer ended"),
        Err(_) => panic!("no delivery within {DELIVERY_TIMEOUT:?}"),
    }
}

/// Fails if a delivery comes within [`QUIET`].
async fn assert_quiet<C: Consumer>(consumer: &mut C, what: &str) {
    match tokio::time::timeout(QUIET, consumer.next()).await {
        Err(_) => {}
        Ok(Some(Ok(delivery))) => panic!("{what}: {}", text(&delivery)),
        Ok(Some(Err(e))) => panic!("{what}: the consumer failed: {e}"),
        Ok(None) => panic!("{what}: the consumer ended"),
    }
}

async fn within(body: impl Future<Output = ()>) {
    tokio::time::timeout(BODY_TIMEOUT, body)
        .await
        .unwrap_or_else(|_| panic!("the contract body did not finish within {BODY_TIMEOUT:?}"));
}

/// Runs `body` on RabbitMQ with queue names of its own, then deletes those queues.
async fn on_rabbitmq<F, Fut>(body: F)
where
    F: FnOnce(RabbitMqQueue) -> Fut,
    Fut: Future<Output = ()>,
{
    let names = QueueNames::new(unique("sf_contract"));
    let queue = RabbitMqQueue::connect(AMQP, names.clone())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (run scripts/setup.sh)");
    within(body(queue.clone())).await;
    queue.close().await;
    delete_queues(&names).await;
}

/// Runs `body` on the embedded queue in a SQLite file.
async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(EmbeddedQueue) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queue.db");
    let store = migrated(&format!("sqlite://{}?mode=rwc", file.display())).await;
    within(body(EmbeddedQueue::new(&store, "listings"))).await;
    store.close().await;
}

/// Runs `body` on the embedded queue in a fresh PostgreSQL database, then drops it.
async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(EmbeddedQueue) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = unique("sf_contract");
    let store = migrated(&format!("{PG_BASE}/{name}")).await;
    within(body(EmbeddedQueue::new(&store, "listings"))).await;
    store.close().await;
    drop_database(&name).await;
}

async fn migrated(url: &str) -> Store {
    let store = Store::connect(url, 4)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup.sh)");
    store.migrate().await.unwrap();
    store
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

macro_rules! on_every_queue {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_rabbitmq() {
                super::on_rabbitmq(super::$name).await;
            }

            #[tokio::test]
            async fn on_embedded_sqlite() {
                super::on_sqlite(super::$name).await;
            }

            #[tokio::test]
            async fn on_embedded_postgres() {
                super::on_postgres(super::$name).await;
            }
        }
    )*};
}

on_every_queue!(
    published_jobs_are_delivered_with_attempt_1_and_their_body_intact,
    at_most_prefetch_deliveries_are_unsettled_at_once,
    an_acked_job_is_never_delivered_again,
    retried_delivery_comes_back_after_its_delay_with_the_next_attempt,
    dead_jobs_keep_reason_and_attempt_and_requeue_dead_moves_back_only_the_picked_ones,
    requeued_delivery_is_delivered_again_untouched,
    deliveries_unsettled_when_the_consumer_closes_go_to_the_next_consumer,
    purge_all_empties_every_queue,
    a_delivery_is_redelivered_only_after_its_consumer_let_it_go_unsettled,
    two_consumers_on_one_queue_never_get_the_same_job,
    depths_count_a_consumers_unsettled_deliveries_and_the_consumer,
    publish_refuses_a_body_over_the_job_size_cap,
);

//! The embedded queue: jobs persisted in the store's own database (table `queue_jobs`), for
//! single-machine runs with no broker. A delivery is a lease on a row; settling updates the row in
//! place (ack deletes it, retry makes it ready again later with the next attempt, dead parks it
//! with its reason), so nothing is lost when the process dies: leases of a dead consumer are
//! released when the next one starts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Acker, Consumer, DeadJob, Delivery, Queue, QueueDepths, QueueError, Settle};
use crate::store::{Store, now_ms};

/// How often an idle consumer looks for newly due jobs (retries coming due, other producers).
const POLL: Duration = Duration::from_millis(200);

/// A queue in the database. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    pool: AnyPool,
    name: String,
    published: Arc<Notify>,
}

/// The claim on one row; released by settling (or by the next consumer start after a crash).
pub struct Lease {
    id: i64,
    /// The consumer's prefetch slot: given back once the delivery is settled, as RabbitMQ does,
    /// not only when the `Delivery` is dropped (a caller may keep it after settling).
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Lease {
    fn release_slot(&self) {
        // A poisoned lock still holds the permit; the slot then returns when the lease is dropped.
        if let Ok(mut permit) = self.permit.lock() {
            permit.take();
        }
    }
}

impl EmbeddedQueue {
    /// A queue named `name` in `store`'s database (migrations must have run).
    pub fn new(store: &Store, name: &str) -> EmbeddedQueue {
        EmbeddedQueue {
            pool: store.pool().clone(),
            name: name.to_string(),
            published: Arc::new(Notify::new()),
        }
    }

    /// Makes every leased job ready again: their consumer is gone (one consumer per database).
    pub async fn release_leases(&self) -> Result<u64, QueueError> {
        let done = sqlx::query(
            "UPDATE queue_jobs SET state = 'ready', leased_until = NULL WHERE queue = $1 AND state = 'leased'",
        )
        .bind(&self.name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn claim(&self) -> Result<Option<(i64, Vec<u8>, i64)>, QueueError> {
        let now = now_ms();
        let row: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
            "UPDATE queue_jobs SET state = 'leased', leased_until = $2 \
             WHERE id = (SELECT id FROM queue_jobs WHERE queue = $1 AND state = 'ready' \
                         AND available_at <= $3 ORDER BY available_at, id LIMIT 1) \
             AND state = 'ready' RETURNING id, body, attempt",
        )
        .bind(&self.name)
        .bind(now + 600_000)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }
}

impl Queue for EmbeddedQueue {
    type Consumer = EmbeddedConsumer;

    async fn publish_raw(&self, body: Vec<u8>) -> Result<(), QueueError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO queue_jobs (queue, body, attempt, state, available_at, created_at) \
             VALUES ($1, $2, 1, 'ready', $3, $3)",
        )
        .bind(&self.name)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.published.notify_waiters();
        Ok(())
    }

    async fn consume(&self, prefetch: u16, _tag: &str) -> Result<EmbeddedConsumer, QueueError> {
        let released = self.release_leases().await?;
        if released > 0 {
            tracing::info!(
                released,
                "Released leases of a previous run; those jobs run again."
            );
        }
        Ok(EmbeddedConsumer::start(self.clone(), prefetch))
    }

    async fn settle(&self, delivery: &Delivery, how: Settle<'_>) -> Result<(), QueueError> {
        let Acker::Embedded(lease) = &delivery.acker else {
            unreachable!("an embedded delivery carries an embedded lease");
        };
        let query = match how {
            Settle::Ack => sqlx::query("DELETE FROM queue_jobs WHERE id = $1").bind(lease.id),
            Settle::Retry(after) => sqlx::query(
                "UPDATE queue_jobs SET state = 'ready', leased_until = NULL, attempt = attempt + 1, \
                 available_at = $2 WHERE id = $1",
            )
            .bind(lease.id)
            .bind(now_ms() + after.as_millis() as i64),
            Settle::Dead(reason) => sqlx::query(
                "UPDATE queue_jobs SET state = 'dead', leased_until = NULL, reason = $2 WHERE id = $1",
            )
            .bind(lease.id)
            .bind(reason.to_string()),
            Settle::Requeue => sqlx::query(
                "UPDATE queue_jobs SET state = 'ready', leased_until = NULL WHERE id = $1",
            )
            .bind(lease.id),
        };
        query.execute(&self.pool).await?;
        lease.release_slot();
        Ok(())
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let (ready, unacked, retrying, dead): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN state = 'ready' AND available_at <= $2 THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN state = 'leased' THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN state = 'ready' AND available_at > $2 THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) \
             FROM queue_jobs WHERE queue = $1",
        )
        .bind(&self.name)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueDepths {
            ready: ready as u64,
            unacked: unacked as u64,
            retrying: retrying as u64,
            dead: dead as u64,
            consumers: 0,
        })
    }

    async fn dead_jobs(&self) -> Result<Vec<DeadJob>, QueueError> {
        let rows: Vec<(Vec<u8>, Option<String>, i64)> = sqlx::query_as(
            "SELECT body, reason, attempt FROM queue_jobs WHERE queue = $1 AND state = 'dead' ORDER BY id",
        )
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(body, reason, attempt)| DeadJob {
                body,
                reason: reason.unwrap_or_default(),
                attempt: attempt as u32,
            })
            .collect())
    }

    async fn requeue_dead(
        &self,
        pick: &(dyn Fn(&DeadJob) -> bool + Sync),
    ) -> Result<usize, QueueError> {
        let rows: Vec<(i64, Vec<u8>, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, body, reason, attempt FROM queue_jobs WHERE queue = $1 AND state = 'dead' ORDER BY id",
        )
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await?;
        let mut moved = 0;
        for (id, body, reason, attempt) in rows {
            let dead = DeadJob {
                body,
                reason: reason.unwrap_or_default(),
                attempt: attempt as u32,
            };
            if pick(&dead) {
                sqlx::query(
                    "UPDATE queue_jobs SET state = 'ready', attempt = 1, reason = NULL, available_at = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
                moved += 1;
            }
        }
        self.published.notify_waiters();
        Ok(moved)
    }

    async fn purge_all(&self) -> Result<(), QueueError> {
        sqlx::query("DELETE FROM queue_jobs WHERE queue = $1")
            .bind(&self.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn close(&self) {}
}

/// Leases due jobs in a background task, never more than `prefetch` unsettled, and hands them
/// over through a channel so that `next` is cancel-safe (a lease is never lost in a dropped future).
pub struct EmbeddedConsumer {
    queue: EmbeddedQueue,
    rx: mpsc::Receiver<Result<Delivery, QueueError>>,
    stop: CancellationToken,
    claimer: Option<JoinHandle<()>>,
}

impl EmbeddedConsumer {
    fn start(queue: EmbeddedQueue, prefetch: u16) -> EmbeddedConsumer {
        let permits = Arc::new(Semaphore::new(usize::from(prefetch.max(1))));
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let stop = CancellationToken::new();
        let claimer = tokio::spawn(claim_loop(queue.clone(), permits, tx, stop.clone()));
        EmbeddedConsumer {
            queue,
            rx,
            stop,
            claimer: Some(claimer),
        }
    }
}

async fn claim_loop(
    queue: EmbeddedQueue,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Result<Delivery, QueueError>>,
    stop: CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let item = loop {
            if stop.is_cancelled() {
                return;
            }
            match queue.claim().await {
                Ok(Some((id, body, attempt))) => {
                    let lease = Lease {
                        id,
                        permit: Mutex::new(Some(permit)),
                    };
                    break Ok(Delivery {
                        body,
                        attempt: attempt.max(1) as u32,
                        redelivered: false,
                        acker: Acker::Embedded(lease),
                    });
                }
                Ok(None) => {
                    let published = queue.published.notified();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = published => {}
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

impl Consumer for EmbeddedConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        self.rx.recv().await
    }

    /// Stops claiming and gives back the jobs claimed but not yet handed out.
    async fn cancel(&mut self) {
        self.stop.cancel();
        if let Some(claimer) = self.claimer.take() {
            let _ = claimer.await;
        }
        while let Ok(item) = self.rx.try_recv() {
            if let Ok(delivery) = item
                && let Err(e) = self.queue.settle(&delivery, Settle::Requeue).await
            {
                tracing::warn!(error = %e, "Failed to give back a claimed job; it is released at the next start.");
            }
        }
    }

    async fn close(mut self) {
        self.cancel().await;
    }
}

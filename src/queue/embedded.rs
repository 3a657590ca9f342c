//! The embedded queue: jobs persisted in the store's own database (table `queue_jobs`), for
//! single-machine runs with no broker. A delivery is a lease on a row, owned by one consumer (a
//! unique id: host, pid and a random part) until `leased_until`; the consumer renews its leases
//! while their jobs run (see `consumer`). Settling updates the row in place (ack deletes it, retry
//! makes it ready again later with the next attempt, dead parks it with its reason), and touches
//! only a row this consumer still holds. A lease whose owner stopped renewing expires and is
//! claimed again, so several processes can share one database file and never run a job twice
//! while its owner lives. Every time is the database's clock, in milliseconds since the epoch. The
//! SQL is the store's (`store/queue_jobs.rs`); this module keeps the lease protocol.

mod consumer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit};

pub use consumer::EmbeddedConsumer;

use super::{Acker, DeadJob, Queue, QueueDepths, QueueError, Settle, check_size};
use crate::queue::Delivery;
use crate::store::{ClaimedJob, JobOutcome, Store};

/// How long a lease holds without renewal. Long enough that a busy database or a paused process
/// does not lose its jobs, short enough that the jobs of a killed process run again within a
/// minute; renewed every third of it.
pub const LEASE: Duration = Duration::from_secs(60);

/// A queue in the database. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    /// The store owns the tables and their SQL (`store::queue_jobs`).
    store: Store,
    name: String,
    published: Arc<Notify>,
    lease: Duration,
}

/// The claim on one row by one consumer; released by settling, by the consumer's close, or by
/// expiring.
pub struct Lease {
    id: i64,
    owner: Arc<str>,
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
            store: store.clone(),
            name: name.to_string(),
            published: Arc::new(Notify::new()),
            lease: LEASE,
        }
    }

    /// The same queue with leases of `lease` (tests of expiry); renewed every third of it.
    pub fn with_lease(mut self, lease: Duration) -> EmbeddedQueue {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    /// Leases the first due job (or one whose lease expired) to `owner`.
    async fn claim(&self, owner: &str) -> Result<Option<ClaimedJob>, QueueError> {
        let lease_ms = self.lease_ms();
        Ok(self.store.queue_claim(&self.name, owner, lease_ms).await?)
    }

    /// Extends every lease of `owner` and its consumer registration by one lease period.
    async fn renew(&self, owner: &str) -> Result<(), QueueError> {
        let lease_ms = self.lease_ms();
        Ok(self.store.queue_renew(&self.name, owner, lease_ms).await?)
    }

    /// Makes the jobs leased by `owner` ready again; `unclaim` also takes back the claim count
    /// (jobs claimed but never handed out are not redeliveries).
    async fn release(
        &self,
        owner: &str,
        only: Option<i64>,
        unclaim: bool,
    ) -> Result<u64, QueueError> {
        let store = &self.store;
        Ok(store
            .queue_release(&self.name, owner, only, unclaim)
            .await?)
    }

    /// Forgets a consumer registration.
    async fn unregister(&self, owner: &str) -> Result<(), QueueError> {
        Ok(self.store.queue_unregister(owner).await?)
    }

    /// Forgets the registrations that stopped renewing: those consumers are gone.
    async fn forget_expired_consumers(&self) -> Result<(), QueueError> {
        Ok(self
            .store
            .queue_forget_expired_consumers(&self.name)
            .await?)
    }

    /// The distinct owners of this queue's leases and registrations.
    async fn owners(&self) -> Result<Vec<String>, QueueError> {
        Ok(self.store.queue_owners(&self.name).await?)
    }
}

impl Queue for EmbeddedQueue {
    type Consumer = EmbeddedConsumer;

    async fn publish_raw(&self, body: Vec<u8>) -> Result<(), QueueError> {
        check_size(&body)?;
        self.store.queue_publish(&self.name, body).await?;
        self.published.notify_waiters();
        Ok(())
    }

    /// Leases of other consumers are left alone until they expire, except those of a process
    /// on this host that no longer exists (a killed `crawl` run again): those run again now.
    async fn consume(&self, prefetch: u16, _tag: &str) -> Result<EmbeddedConsumer, QueueError> {
        EmbeddedConsumer::start(self.clone(), prefetch).await
    }

    async fn settle(&self, delivery: &Delivery, how: Settle<'_>) -> Result<(), QueueError> {
        let Acker::Embedded(lease) = &delivery.acker else {
            unreachable!("an embedded delivery carries an embedded lease");
        };
        let outcome = match how {
            Settle::Ack => JobOutcome::Ack,
            Settle::Retry(after) => JobOutcome::Retry {
                after_ms: after.as_millis() as i64,
            },
            Settle::Dead(reason) => JobOutcome::Dead(reason),
            Settle::Requeue => JobOutcome::Requeue,
        };
        let done = self
            .store
            .queue_settle(lease.id, &lease.owner, outcome)
            .await;
        lease.release_slot();
        if done? == 0 {
            return Err(QueueError::LeaseLost(lease.id));
        }
        Ok(())
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let counts = self.store.queue_counts(&self.name).await?;
        Ok(QueueDepths {
            ready: counts.ready as u64,
            unacked: Some(counts.leased as u64),
            retrying: counts.retrying as u64,
            dead: counts.dead as u64,
            consumers: counts.consumers as u64,
        })
    }

    async fn dead_jobs(&self) -> Result<Vec<DeadJob>, QueueError> {
        Ok(self
            .dead_rows()
            .await?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// Each picked row moves back with one atomic UPDATE that only applies to a row still dead,
    /// so a crash leaves every job either dead or ready, and two operators never move one twice.
    async fn requeue_dead(
        &self,
        pick: &(dyn Fn(&DeadJob) -> bool + Sync),
    ) -> Result<usize, QueueError> {
        let mut moved = 0;
        for (id, dead) in self.dead_rows().await? {
            if !pick(&dead) {
                continue;
            }
            moved += self.store.queue_requeue_dead(id).await? as usize;
        }
        self.published.notify_waiters();
        Ok(moved)
    }

    async fn purge_all(&self) -> Result<(), QueueError> {
        Ok(self.store.queue_purge(&self.name).await?)
    }

    async fn close(&self) {}
}

impl EmbeddedQueue {
    async fn dead_rows(&self) -> Result<Vec<(i64, DeadJob)>, QueueError> {
        let rows = self.store.queue_dead_rows(&self.name).await?;
        Ok(rows
            .into_iter()
            .map(|(id, body, reason, attempt)| {
                let reason = reason.unwrap_or_default();
                let attempt = attempt as u32;
                (
                    id,
                    DeadJob {
                        body,
                        reason,
                        attempt,
                    },
                )
            })
            .collect())
    }
}

//! The embedded queue: jobs persisted in the store's own database (table `queue_jobs`), for
//! single-machine runs with no broker. A delivery is a lease on a row, owned by one consumer (a
//! unique id: host, pid and a random part) until `leased_until`; the consumer renews its leases
//! while their jobs run (see `consumer`). Settling updates the row in place (ack deletes it, retry
//! makes it ready again later with the next attempt, dead parks it with its reason), and touches
//! only a row this consumer still holds. A lease whose owner stopped renewing expires and is
//! claimed again, so several processes can share one database file and never run a job twice
//! while its owner lives. Every time is the database's clock, in milliseconds since the epoch.

mod consumer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{AnyPool, AssertSqlSafe};
use tokio::sync::{Notify, OwnedSemaphorePermit};

pub use consumer::EmbeddedConsumer;

use super::{Acker, DeadJob, Queue, QueueDepths, QueueError, Settle, check_size};
use crate::queue::Delivery;
use crate::store::{Backend, Store};

/// How long a lease holds without renewal. Long enough that a busy database or a paused process
/// does not lose its jobs, short enough that the jobs of a killed process run again within a
/// minute; renewed every third of it.
pub const LEASE: Duration = Duration::from_secs(60);

/// A queue in the database. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    pool: AnyPool,
    name: String,
    published: Arc<Notify>,
    sql: Sql,
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

/// The SQL that differs between the two databases.
#[derive(Clone, Copy)]
struct Sql {
    /// The database's clock in milliseconds since the epoch.
    now: &'static str,
    /// Lets concurrent claimers pass over a row another one is claiming (PostgreSQL only:
    /// SQLite serialises writers anyway).
    skip_locked: &'static str,
}

impl Sql {
    fn of(backend: Backend) -> Sql {
        match backend {
            Backend::Postgres => Sql {
                now: "(EXTRACT(EPOCH FROM now()) * 1000)::BIGINT",
                skip_locked: "FOR UPDATE SKIP LOCKED",
            },
            Backend::Sqlite => Sql {
                now: "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
                skip_locked: "",
            },
        }
    }

    /// `template` with `{now}` and `{skip_locked}` filled in; the values are constants above.
    fn text(&self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(
            template
                .replace("{now}", self.now)
                .replace("{skip_locked}", self.skip_locked),
        )
    }
}

/// A claimed row: id, body, attempt, claims since the last publish or retry.
type Claimed = (i64, Vec<u8>, i64, i64);

impl EmbeddedQueue {
    /// A queue named `name` in `store`'s database (migrations must have run).
    pub fn new(store: &Store, name: &str) -> EmbeddedQueue {
        EmbeddedQueue {
            pool: store.pool().clone(),
            name: name.to_string(),
            published: Arc::new(Notify::new()),
            sql: Sql::of(store.backend()),
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
    async fn claim(&self, owner: &str) -> Result<Option<Claimed>, QueueError> {
        let claimable = "((state = 'ready' AND available_at <= {now}) \
                          OR (state = 'leased' AND leased_until < {now}))";
        let sql = format!(
            "UPDATE queue_jobs SET state = 'leased', lease_owner = $2, \
             leased_until = {{now}} + $3, deliveries = deliveries + 1 \
             WHERE id = (SELECT id FROM queue_jobs WHERE queue = $1 AND {claimable} \
                         ORDER BY available_at, id LIMIT 1 {{skip_locked}}) \
             AND {claimable} RETURNING id, body, attempt, deliveries"
        );
        let row: Option<Claimed> = sqlx::query_as(self.sql.text(&sql))
            .bind(&self.name)
            .bind(owner)
            .bind(self.lease_ms())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    /// Extends every lease of `owner` and its consumer registration by one lease period.
    async fn renew(&self, owner: &str) -> Result<(), QueueError> {
        let renew = "UPDATE queue_jobs SET leased_until = {now} + $2 \
                     WHERE lease_owner = $1 AND state = 'leased'";
        sqlx::query(self.sql.text(renew))
            .bind(owner)
            .bind(self.lease_ms())
            .execute(&self.pool)
            .await?;
        let alive = "INSERT INTO queue_consumers (id, queue, alive_until) VALUES ($1, $2, {now} + $3) \
                     ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until";
        sqlx::query(self.sql.text(alive))
            .bind(owner)
            .bind(&self.name)
            .bind(self.lease_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes the jobs leased by `owner` ready again; `unclaim` also takes back the claim count
    /// (jobs claimed but never handed out are not redeliveries).
    async fn release(
        &self,
        owner: &str,
        only: Option<i64>,
        unclaim: bool,
    ) -> Result<u64, QueueError> {
        let sql = format!(
            "UPDATE queue_jobs SET state = 'ready', leased_until = NULL, lease_owner = NULL{} \
             WHERE queue = $1 AND lease_owner = $2 AND state = 'leased'{}",
            if unclaim {
                ", deliveries = deliveries - 1"
            } else {
                ""
            },
            if only.is_some() { " AND id = $3" } else { "" },
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(&self.name).bind(owner);
        if let Some(id) = only {
            query = query.bind(id);
        }
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    /// Forgets a consumer registration.
    async fn unregister(&self, owner: &str) -> Result<(), QueueError> {
        sqlx::query("DELETE FROM queue_consumers WHERE id = $1")
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the registrations that stopped renewing: those consumers are gone.
    async fn forget_expired_consumers(&self) -> Result<(), QueueError> {
        let expired = "DELETE FROM queue_consumers WHERE queue = $1 AND alive_until < {now}";
        sqlx::query(self.sql.text(expired))
            .bind(&self.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The distinct owners of this queue's leases and registrations.
    async fn owners(&self) -> Result<Vec<String>, QueueError> {
        let owners: Vec<(String,)> = sqlx::query_as(
            "SELECT lease_owner FROM queue_jobs WHERE queue = $1 AND state = 'leased' \
             AND lease_owner IS NOT NULL UNION SELECT id FROM queue_consumers WHERE queue = $1",
        )
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await?;
        Ok(owners.into_iter().map(|(o,)| o).collect())
    }
}

impl Queue for EmbeddedQueue {
    type Consumer = EmbeddedConsumer;

    async fn publish_raw(&self, body: Vec<u8>) -> Result<(), QueueError> {
        check_size(&body)?;
        let insert = "INSERT INTO queue_jobs (queue, body, attempt, state, available_at, created_at, deliveries) \
                      VALUES ($1, $2, 1, 'ready', {now}, {now}, 0)";
        sqlx::query(self.sql.text(insert))
            .bind(&self.name)
            .bind(body)
            .execute(&self.pool)
            .await?;
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
        let held = "WHERE id = $1 AND lease_owner = $2 AND state = 'leased'";
        let free = "state = 'ready', leased_until = NULL, lease_owner = NULL";
        let sql = match how {
            Settle::Ack => format!("DELETE FROM queue_jobs {held}"),
            Settle::Retry(_) => format!(
                "UPDATE queue_jobs SET {free}, attempt = attempt + 1, deliveries = 0, \
                 available_at = {{now}} + $3 {held}"
            ),
            Settle::Dead(_) => format!(
                "UPDATE queue_jobs SET state = 'dead', leased_until = NULL, lease_owner = NULL, \
                 reason = $3 {held}"
            ),
            Settle::Requeue => format!("UPDATE queue_jobs SET {free} {held}"),
        };
        let query = sqlx::query(self.sql.text(&sql))
            .bind(lease.id)
            .bind(&*lease.owner);
        let query = match how {
            Settle::Retry(after) => query.bind(after.as_millis() as i64),
            Settle::Dead(reason) => query.bind(reason.to_string()),
            Settle::Ack | Settle::Requeue => query,
        };
        let done = query.execute(&self.pool).await;
        lease.release_slot();
        if done?.rows_affected() == 0 {
            return Err(QueueError::LeaseLost(lease.id));
        }
        Ok(())
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        // An expired lease counts as ready: any consumer may claim it.
        let counts = "SELECT \
            COALESCE(SUM(CASE WHEN (state = 'ready' AND available_at <= {now}) \
                OR (state = 'leased' AND leased_until < {now}) THEN 1 ELSE 0 END), 0), \
            COALESCE(SUM(CASE WHEN state = 'leased' AND leased_until >= {now} THEN 1 ELSE 0 END), 0), \
            COALESCE(SUM(CASE WHEN state = 'ready' AND available_at > {now} THEN 1 ELSE 0 END), 0), \
            COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0), \
            (SELECT COUNT(*) FROM queue_consumers WHERE queue = $1 AND alive_until >= {now}) \
            FROM queue_jobs WHERE queue = $1";
        let (ready, unacked, retrying, dead, consumers): (i64, i64, i64, i64, i64) =
            sqlx::query_as(self.sql.text(counts))
                .bind(&self.name)
                .fetch_one(&self.pool)
                .await?;
        Ok(QueueDepths {
            ready: ready as u64,
            unacked: Some(unacked as u64),
            retrying: retrying as u64,
            dead: dead as u64,
            consumers: consumers as u64,
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
            let back = "UPDATE queue_jobs SET state = 'ready', attempt = 1, deliveries = 0, \
                        reason = NULL, available_at = {now} WHERE id = $1 AND state = 'dead'";
            let done = sqlx::query(self.sql.text(back))
                .bind(id)
                .execute(&self.pool)
                .await?;
            moved += done.rows_affected() as usize;
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

impl EmbeddedQueue {
    async fn dead_rows(&self) -> Result<Vec<(i64, DeadJob)>, QueueError> {
        let rows: Vec<(i64, Vec<u8>, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, body, reason, attempt FROM queue_jobs WHERE queue = $1 AND state = 'dead' ORDER BY id",
        )
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await?;
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

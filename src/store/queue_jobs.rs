//! The embedded queue's tables (`queue_jobs`, `queue_consumers`): the SQL behind
//! `queue::embedded`, which owns the lease protocol (who holds what, for how long) and calls these
//! one statement each. Every time is the database's clock, in milliseconds since the epoch.
//! Errors stay `sqlx::Error`: the queue reports them as its own (`QueueError::Embedded`).

use sqlx::AssertSqlSafe;

use super::{Backend, Store};

/// A job leased to a consumer by [`Store::queue_claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: i64,
    pub body: Vec<u8>,
    /// 1-based.
    pub attempt: i64,
    /// Claims since the last publish or retry (more than one: a redelivery).
    pub deliveries: i64,
}

/// How [`Store::queue_settle`] ends a lease.
#[derive(Debug, Clone, Copy)]
pub enum JobOutcome<'a> {
    /// Done: the row goes.
    Ack,
    /// Ready again after `after_ms` with the next attempt.
    Retry { after_ms: i64 },
    /// Parked with its reason.
    Dead(&'a str),
    /// Ready again at once, same attempt.
    Requeue,
}

/// Counts of one queue's jobs by state (an expired lease counts as ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCounts {
    pub ready: i64,
    pub leased: i64,
    pub retrying: i64,
    pub dead: i64,
    /// Consumers whose registration has not expired.
    pub consumers: i64,
}

/// A dead job: id, body, reason, attempt.
pub type DeadRow = (i64, Vec<u8>, Option<String>, i64);

/// The SQL that differs between the two databases.
#[derive(Clone, Copy)]
pub(super) struct Sql {
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
    pub(super) fn text(&self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(
            template
                .replace("{now}", self.now)
                .replace("{skip_locked}", self.skip_locked),
        )
    }
}

impl Store {
    pub(super) fn queue_sql(&self) -> Sql {
        Sql::of(self.backend)
    }

    /// Adds a ready job with attempt 1.
    pub async fn queue_publish(&self, queue: &str, body: Vec<u8>) -> Result<(), sqlx::Error> {
        let insert = "INSERT INTO queue_jobs (queue, body, attempt, state, available_at, created_at, deliveries) \
                      VALUES ($1, $2, 1, 'ready', {now}, {now}, 0)";
        sqlx::query(self.queue_sql().text(insert))
            .bind(queue)
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Leases the first due job (or one whose lease expired) to `owner` for `lease_ms`.
    pub async fn queue_claim(
        &self,
        queue: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, sqlx::Error> {
        let claimable = "((state = 'ready' AND available_at <= {now}) \
                          OR (state = 'leased' AND leased_until < {now}))";
        let sql = format!(
            "UPDATE queue_jobs SET state = 'leased', lease_owner = $2, \
             leased_until = {{now}} + $3, deliveries = deliveries + 1 \
             WHERE id = (SELECT id FROM queue_jobs WHERE queue = $1 AND {claimable} \
                         ORDER BY available_at, id LIMIT 1 {{skip_locked}}) \
             AND {claimable} RETURNING id, body, attempt, deliveries"
        );
        let row: Option<(i64, Vec<u8>, i64, i64)> = sqlx::query_as(self.queue_sql().text(&sql))
            .bind(queue)
            .bind(owner)
            .bind(lease_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(id, body, attempt, deliveries)| ClaimedJob {
            id,
            body,
            attempt,
            deliveries,
        }))
    }

    /// Extends every lease of `owner` and its consumer registration by `lease_ms`.
    pub async fn queue_renew(
        &self,
        queue: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let sql = self.queue_sql();
        let renew = "UPDATE queue_jobs SET leased_until = {now} + $2 \
                     WHERE lease_owner = $1 AND state = 'leased'";
        sqlx::query(sql.text(renew))
            .bind(owner)
            .bind(lease_ms)
            .execute(&self.pool)
            .await?;
        let alive = "INSERT INTO queue_consumers (id, queue, alive_until) VALUES ($1, $2, {now} + $3) \
                     ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until";
        sqlx::query(sql.text(alive))
            .bind(owner)
            .bind(queue)
            .bind(lease_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes the jobs leased by `owner` (or only job `only`) ready again; `unclaim` also takes
    /// back the claim count. Returns how many were released.
    pub async fn queue_release(
        &self,
        queue: &str,
        owner: &str,
        only: Option<i64>,
        unclaim: bool,
    ) -> Result<u64, sqlx::Error> {
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
        // Only constant fragments are interpolated; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(queue).bind(owner);
        if let Some(id) = only {
            query = query.bind(id);
        }
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    /// Forgets a consumer registration.
    pub async fn queue_unregister(&self, owner: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM queue_consumers WHERE id = $1")
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the registrations that stopped renewing: those consumers are gone.
    pub async fn queue_forget_expired_consumers(&self, queue: &str) -> Result<(), sqlx::Error> {
        let expired = "DELETE FROM queue_consumers WHERE queue = $1 AND alive_until < {now}";
        sqlx::query(self.queue_sql().text(expired))
            .bind(queue)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The distinct owners of this queue's leases and registrations.
    pub async fn queue_owners(&self, queue: &str) -> Result<Vec<String>, sqlx::Error> {
        let owners: Vec<(String,)> = sqlx::query_as(
            "SELECT lease_owner FROM queue_jobs WHERE queue = $1 AND state = 'leased' \
             AND lease_owner IS NOT NULL UNION SELECT id FROM queue_consumers WHERE queue = $1",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        Ok(owners.into_iter().map(|(o,)| o).collect())
    }

    /// Ends the lease of `owner` on job `id` as `outcome` says; returns the rows touched (0: the
    /// lease was lost).
    pub async fn queue_settle(
        &self,
        id: i64,
        owner: &str,
        outcome: JobOutcome<'_>,
    ) -> Result<u64, sqlx::Error> {
        let held = "WHERE id = $1 AND lease_owner = $2 AND state = 'leased'";
        let free = "state = 'ready', leased_until = NULL, lease_owner = NULL";
        let sql = match outcome {
            JobOutcome::Ack => format!("DELETE FROM queue_jobs {held}"),
            JobOutcome::Retry { .. } => format!(
                "UPDATE queue_jobs SET {free}, attempt = attempt + 1, deliveries = 0, \
                 available_at = {{now}} + $3 {held}"
            ),
            JobOutcome::Dead(_) => format!(
                "UPDATE queue_jobs SET state = 'dead', leased_until = NULL, lease_owner = NULL, \
                 reason = $3 {held}"
            ),
            JobOutcome::Requeue => format!("UPDATE queue_jobs SET {free} {held}"),
        };
        let query = sqlx::query(self.queue_sql().text(&sql))
            .bind(id)
            .bind(owner);
        let query = match outcome {
            JobOutcome::Retry { after_ms } => query.bind(after_ms),
            JobOutcome::Dead(reason) => query.bind(reason.to_string()),
            JobOutcome::Ack | JobOutcome::Requeue => query,
        };
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    /// This queue's jobs counted by state, and its live consumers.
    pub async fn queue_counts(&self, queue: &str) -> Result<JobCounts, sqlx::Error> {
        // An expired lease counts as ready: any consumer may claim it.
        let counts = "SELECT \
            COALESCE(SUM(CASE WHEN (state = 'ready' AND available_at <= {now}) \
                OR (state = 'leased' AND leased_until < {now}) THEN 1 ELSE 0 END), 0), \
            COALESCE(SUM(CASE WHEN state = 'leased' AND leased_until >= {now} THEN 1 ELSE 0 END), 0), \
            COALESCE(SUM(CASE WHEN state = 'ready' AND available_at > {now} THEN 1 ELSE 0 END), 0), \
            COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0), \
            (SELECT COUNT(*) FROM queue_consumers WHERE queue = $1 AND alive_until >= {now}) \
            FROM queue_jobs WHERE queue = $1";
        let (ready, leased, retrying, dead, consumers): (i64, i64, i64, i64, i64) =
            sqlx::query_as(self.queue_sql().text(counts))
                .bind(queue)
                .fetch_one(&self.pool)
                .await?;
        Ok(JobCounts {
            ready,
            leased,
            retrying,
            dead,
            consumers,
        })
    }

    /// This queue's dead jobs, oldest first.
    pub async fn queue_dead_rows(&self, queue: &str) -> Result<Vec<DeadRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, body, reason, attempt FROM queue_jobs WHERE queue = $1 AND state = 'dead' ORDER BY id",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await
    }

    /// Makes dead job `id` ready again with attempt 1, if it is still dead; returns 1 or 0.
    pub async fn queue_requeue_dead(&self, id: i64) -> Result<u64, sqlx::Error> {
        let back = "UPDATE queue_jobs SET state = 'ready', attempt = 1, deliveries = 0, \
                    reason = NULL, available_at = {now} WHERE id = $1 AND state = 'dead'";
        let done = sqlx::query(self.queue_sql().text(back))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The queues holding jobs whose names start with `prefix` (e.g. every crawl's own queue).
    pub async fn queue_names(&self, prefix: &str) -> Result<Vec<String>, sqlx::Error> {
        let names: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT queue FROM queue_jobs WHERE substr(queue, 1, length($1)) = $1 ORDER BY queue",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(names.into_iter().map(|(n,)| n).collect())
    }

    /// Deletes every job of this queue.
    pub async fn queue_purge(&self, queue: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM queue_jobs WHERE queue = $1")
            .bind(queue)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

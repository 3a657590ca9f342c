//! The deliverer's side of the alert outbox: claiming due alerts under a lease, and settling
//! each attempt (delivered, retry at a later time, or given up). Every time is the database's
//! clock, so two deliverers on skewed machines never hold the same row at once: a claim is one
//! compare-and-set UPDATE that only takes rows whose lease is absent or expired.

use std::time::Duration;

use super::read::{LISTING_COLUMNS, ListingRow};
use super::watches::{AlertRow, WebhookSecret};
use super::{Store, StoreError};

/// A claimed alert with what its delivery needs: the webhook, its secret and the observation.
#[derive(Debug, Clone)]
pub struct DueAlert {
    pub alert: AlertRow,
    pub webhook_url: String,
    pub secret: WebhookSecret,
    pub observed_at: i64,
    /// The lease the claim took; settling checks it is still ours.
    pub lease_until: i64,
}

/// The flat row a claim reads back.
#[derive(sqlx::FromRow)]
struct DueRow {
    #[sqlx(flatten)]
    alert: AlertRow,
    webhook_url: String,
    secret: String,
    observed_at: i64,
    lease_until: i64,
}

impl Store {
    /// Claims up to `n` pending alerts that are due and not leased (or whose lease expired) for
    /// `owner` until `lease` from now. Two deliverers never get the same row: the UPDATE checks
    /// the row is still free when it takes it (PostgreSQL re-checks the WHERE on the row it
    /// locked; SQLite has one writer at a time).
    pub async fn claim_due_alerts(
        &self,
        owner: &str,
        n: usize,
        lease: Duration,
    ) -> Result<Vec<DueAlert>, StoreError> {
        let now = self.db_now_ms().await?;
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let free = "state = 'pending' AND next_attempt_at <= $3 \
                    AND (lease_until IS NULL OR lease_until < $4)";
        let sql = format!(
            "UPDATE alerts SET lease_owner = $1, lease_until = $2 WHERE {free} AND id IN \
             (SELECT id FROM alerts WHERE {free} ORDER BY next_attempt_at, id LIMIT $5)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(now)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        let rows: Vec<DueRow> = sqlx::query_as(
            "SELECT a.id, a.watch_id, a.listing_id, a.observation_id, a.old_price_minor, \
             a.old_currency, a.new_price_minor, a.currency, a.reason, a.created_at, a.state, \
             a.attempts, a.next_attempt_at, a.delivered_at, a.last_status, a.last_error, \
             w.webhook_url, w.secret, o.observed_at, a.lease_until FROM alerts a \
             JOIN watches w ON w.id = a.watch_id \
             JOIN price_observations o ON o.id = a.observation_id \
             WHERE a.lease_owner = $1 AND a.lease_until = $2 AND a.state = 'pending' \
             ORDER BY a.next_attempt_at, a.id",
        )
        .bind(owner)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DueAlert {
                alert: row.alert,
                webhook_url: row.webhook_url,
                secret: WebhookSecret::from_stored(row.secret),
                observed_at: row.observed_at,
                lease_until: row.lease_until,
            })
            .collect())
    }

    /// The listing of an alert, for its webhook body.
    pub async fn alert_listing(&self, listing_id: i64) -> Result<Option<ListingRow>, StoreError> {
        let sql = format!("SELECT {LISTING_COLUMNS} FROM listings l WHERE l.id = $1");
        let row = sqlx::query_as::<_, ListingRow>(sqlx::AssertSqlSafe(sql))
            .bind(listing_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    /// Records that `owner` delivered alert `id` (answered `status`) and frees its lease. False
    /// when the lease was no longer `owner`'s (it expired and another deliverer took it).
    pub async fn mark_delivered(
        &self,
        id: i64,
        owner: &str,
        status: u16,
    ) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "UPDATE alerts SET state = 'delivered', delivered_at = $3, last_status = $4, \
             last_error = NULL, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .bind(now)
        .bind(i64::from(status))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failed attempt by `owner` at alert `id`: tried again `retry_in` from now (the
    /// database's clock), or, with `None`, given up (`failed`). `status` is the webhook's
    /// answer when it gave one; `error` says what went wrong (never a secret). False when the
    /// lease was no longer `owner`'s.
    pub async fn mark_failed_attempt(
        &self,
        id: i64,
        owner: &str,
        retry_in: Option<Duration>,
        status: Option<u16>,
        error: &str,
    ) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let (state, next) = match retry_in {
            Some(delay) => {
                let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                ("pending", now.saturating_add(ms))
            }
            None => ("failed", now),
        };
        let done = sqlx::query(
            "UPDATE alerts SET state = $3, next_attempt_at = $4, last_status = $5, \
             last_error = $6, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .bind(state)
        .bind(next)
        .bind(status.map(i64::from))
        .bind(crate::domain::bounded_text(error, 2000))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

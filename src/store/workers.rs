//! Worker heartbeats: each worker upserts one row of the `workers` table (what it has done, its
//! rate, its browser's memory, its last error) every few seconds; `status` reads them. A worker
//! is *alive* while its last heartbeat is within [`MISSED_BEATS`] of its own interval on the
//! database's clock, so neither the worker's clock nor the reader's can make a dead worker look
//! alive.
//!
//! The worker role may only INSERT and UPDATE this table (and read its `id` column, which
//! PostgreSQL requires to find the row of an upsert): the upsert below reads no other column.

use std::time::Duration;

use serde::Serialize;

use super::leases::db_now;
use super::{Store, StoreError};

/// Heartbeats a worker may miss before it counts as gone.
pub const MISSED_BEATS: i64 = 3;

/// How long a worker's row is listed after its last heartbeat: long enough to see what a worker
/// that died recently was doing, short enough that a fleet of one-off pods does not crowd it.
pub const LISTED_FOR: Duration = Duration::from_secs(3600);

/// Longest stored `last_error`, in characters: enough for a reason and its cause.
const LAST_ERROR_CHARS: usize = 500;

/// One heartbeat: the worker's row as it stands now.
#[derive(Debug, Clone)]
pub struct Heartbeat<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub concurrency: i64,
    /// Deliveries settled since the worker started.
    pub pages: i64,
    pub pages_per_min: f64,
    /// PSS of the browser's process tree; `None` when it cannot be read.
    pub memory_bytes: Option<i64>,
    pub last_error: Option<&'a str>,
    /// How often this worker beats: the reader's measure of "alive".
    pub interval: Duration,
    /// When this worker started (the database's clock, epoch ms).
    pub started_at: i64,
}

/// A worker's row as `status` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub concurrency: i64,
    pub pages: i64,
    pub pages_per_min: f64,
    pub memory_bytes: Option<i64>,
    pub last_error: Option<String>,
    pub heartbeat_ms: i64,
    pub started_at: i64,
    pub seen_at: i64,
    /// Seen within [`MISSED_BEATS`] heartbeats on the database's clock.
    #[sqlx(skip)]
    pub alive: bool,
}

/// Whether a worker last seen at `seen_at`, beating every `heartbeat_ms`, is alive at `now`.
pub fn is_alive(now: i64, seen_at: i64, heartbeat_ms: i64) -> bool {
    now.saturating_sub(seen_at) <= MISSED_BEATS.saturating_mul(heartbeat_ms.max(1))
}

impl Store {
    /// Writes this worker's row: inserted on its first beat, overwritten on every later one.
    /// `seen_at` is the database's clock.
    pub async fn heartbeat(&self, beat: &Heartbeat<'_>) -> Result<(), StoreError> {
        let now = db_now(self.backend);
        // Only bound values and the clock on the right of SET: reading `excluded.*` or the old
        // row would need SELECT on those columns, which the worker role does not have.
        let sql = format!(
            "INSERT INTO workers (id, host, concurrency, pages, pages_per_min, memory_bytes, \
             last_error, heartbeat_ms, started_at, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {now}) \
             ON CONFLICT (id) DO UPDATE SET host = $2, concurrency = $3, pages = $4, \
             pages_per_min = $5, memory_bytes = $6, last_error = $7, heartbeat_ms = $8, \
             started_at = $9, seen_at = {now}"
        );
        let last_error = beat
            .last_error
            .map(|e| e.chars().take(LAST_ERROR_CHARS).collect::<String>());
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(beat.id)
            .bind(beat.host)
            .bind(beat.concurrency)
            .bind(beat.pages)
            .bind(beat.pages_per_min)
            .bind(beat.memory_bytes)
            .bind(last_error)
            .bind(i64::try_from(beat.interval.as_millis()).unwrap_or(i64::MAX))
            .bind(beat.started_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Workers seen within `window` of the database's clock, alive ones first, by id.
    pub async fn workers(&self, window: Duration) -> Result<Vec<WorkerRow>, StoreError> {
        let now = self.db_now_ms().await?;
        let since = now - i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 2);
        let mut rows = sqlx::query_as::<_, WorkerRow>(
            "SELECT id, host, concurrency, pages, pages_per_min, memory_bytes, last_error, \
             heartbeat_ms, started_at, seen_at FROM workers WHERE seen_at >= $1 ORDER BY id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        for row in &mut rows {
            row.alive = is_alive(now, row.seen_at, row.heartbeat_ms);
        }
        rows.sort_by_key(|r| !r.alive);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_alive_for_three_of_its_own_intervals() {
        let beat = 5_000;
        assert!(is_alive(100_000, 100_000, beat));
        assert!(is_alive(115_000, 100_000, beat), "three beats missed");
        assert!(!is_alive(115_001, 100_000, beat), "past three beats");
        assert!(
            is_alive(99_000, 100_000, beat),
            "a beat ahead of the reader"
        );
        assert!(!is_alive(100_004, 100_000, 1), "a 1 ms beat is 3 ms");
        assert!(!is_alive(10, 0, 0), "a zero interval counts as 1 ms");
    }

    #[tokio::test]
    async fn heartbeats_upsert_one_row_that_ages_out_of_alive() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let started_at = store.db_now_ms().await.unwrap();
        let mut beat = Heartbeat {
            id: "worker-3",
            host: "pod-a",
            concurrency: 4,
            pages: 0,
            pages_per_min: 0.0,
            memory_bytes: None,
            last_error: None,
            interval: Duration::from_millis(50),
            started_at,
        };
        store.heartbeat(&beat).await.unwrap();
        let long = "x".repeat(2 * LAST_ERROR_CHARS);
        (beat.pages, beat.pages_per_min) = (12, 6.5);
        (beat.memory_bytes, beat.last_error) = (Some(300 << 20), Some(long.as_str()));
        store.heartbeat(&beat).await.unwrap();

        let rows = store.workers(Duration::from_secs(60)).await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        assert!(row.alive);
        assert_eq!((row.id.as_str(), row.host.as_str()), ("worker-3", "pod-a"));
        assert_eq!((row.pages, row.pages_per_min), (12, 6.5));
        assert_eq!(row.memory_bytes, Some(300 << 20));
        assert_eq!(
            row.last_error.as_ref().map(String::len),
            Some(LAST_ERROR_CHARS)
        );
        assert_eq!((row.heartbeat_ms, row.started_at), (50, started_at));

        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows = store.workers(Duration::from_secs(60)).await.unwrap();
        assert!(!rows[0].alive, "three 50 ms beats missed");
        store.close().await;
    }
}

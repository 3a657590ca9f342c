//! The store's queries about snapshot rows, for `scrapefarm snapshots`: rows joined to their
//! listing's site and external id, counts per site and UTC day, and deletion by id. The row types
//! are made here; the snapshot inventory (`crate::snapshot::inventory`) reads them to build the
//! reports.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::clock::DAY_MS;

const ENTRY_COLUMNS: &str = "s.id, s.listing_id, l.site, l.external_id, s.path, s.sha256, s.bytes, \
    s.html_bytes, s.http_status, s.captured_at, s.screenshot_path";

/// One snapshot row joined to its listing's site and external id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SnapshotEntry {
    pub id: i64,
    pub listing_id: i64,
    pub site: String,
    pub external_id: String,
    /// Relative to the snapshot root.
    pub path: String,
    /// sha256 of the compressed file.
    pub sha256: String,
    /// Size on disk (compressed).
    pub bytes: i64,
    /// Size of the HTML before compression.
    pub html_bytes: i64,
    pub http_status: Option<i64>,
    /// Epoch milliseconds.
    pub captured_at: i64,
    pub screenshot_path: Option<String>,
}

/// Which snapshots `snapshots ls` shows; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    pub site: Option<String>,
    pub external_id: Option<String>,
    /// Captured at or after this epoch-millisecond time.
    pub since_ms: Option<i64>,
}

/// Snapshots of one site captured on one UTC day, as the store counts them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DayCount {
    pub site: String,
    /// Days since the Unix epoch.
    pub day_index: i64,
    pub count: i64,
    pub bytes: i64,
    pub html_bytes: i64,
}

/// Ids per `DELETE … IN (…)`: well under SQLite's and PostgreSQL's bound-parameter limits.
const DELETE_CHUNK: usize = 500;

impl Store {
    /// Snapshot rows matching `filter`, oldest first.
    pub async fn snapshot_entries(
        &self,
        filter: &SnapshotFilter,
    ) -> Result<Vec<SnapshotEntry>, StoreError> {
        // Placeholders are numbered by hand: the Any driver's QueryBuilder emits `?`, which
        // PostgreSQL rejects.
        let mut sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM snapshots s JOIN listings l ON l.id = s.listing_id WHERE 1 = 1"
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.site.is_some() {
            sql += &format!(" AND l.site = {}", next());
        }
        if filter.external_id.is_some() {
            sql += &format!(" AND l.external_id = {}", next());
        }
        if filter.since_ms.is_some() {
            sql += &format!(" AND s.captured_at >= {}", next());
        }
        sql += " ORDER BY s.captured_at, s.id";
        // Assembled from constants and numbered placeholders only; every value is bound below.
        let mut query = sqlx::query_as::<_, SnapshotEntry>(sqlx::AssertSqlSafe(sql));
        if let Some(site) = &filter.site {
            query = query.bind(site.clone());
        }
        if let Some(external_id) = &filter.external_id {
            query = query.bind(external_id.clone());
        }
        if let Some(since) = filter.since_ms {
            query = query.bind(since);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The snapshot row with this id.
    pub async fn snapshot_entry(&self, id: i64) -> Result<Option<SnapshotEntry>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM snapshots s JOIN listings l ON l.id = s.listing_id WHERE s.id = $1"
        );
        // A constant column list and one bound value.
        let row = sqlx::query_as::<_, SnapshotEntry>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    /// The snapshot row recording this path (relative to the snapshot root).
    pub async fn snapshot_entry_at(&self, path: &str) -> Result<Option<SnapshotEntry>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM snapshots s JOIN listings l ON l.id = s.listing_id WHERE s.path = $1"
        );
        // A constant column list and one bound value.
        let row = sqlx::query_as::<_, SnapshotEntry>(sqlx::AssertSqlSafe(sql))
            .bind(path)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    /// Count and bytes of the snapshots of each site on each UTC day.
    pub async fn snapshot_day_counts(&self) -> Result<Vec<DayCount>, StoreError> {
        // Integer division by the day length is the UTC day on both backends; SUM is cast because
        // PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot read.
        let sql = format!(
            "SELECT l.site AS site, s.captured_at / {DAY_MS} AS day_index, COUNT(*) AS count, \
             CAST(SUM(s.bytes) AS BIGINT) AS bytes, CAST(SUM(s.html_bytes) AS BIGINT) AS html_bytes \
             FROM snapshots s JOIN listings l ON l.id = s.listing_id \
             GROUP BY l.site, s.captured_at / {DAY_MS} ORDER BY day_index, site"
        );
        // Only constants are interpolated.
        let rows = sqlx::query_as::<_, DayCount>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    /// Deletes the snapshot rows with these ids in one transaction; returns how many went.
    pub async fn delete_snapshots(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        for chunk in ids.chunks(DELETE_CHUNK) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "DELETE FROM snapshots WHERE id IN ({})",
                placeholders.join(", ")
            );
            // Numbered placeholders only; the ids are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            deleted += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

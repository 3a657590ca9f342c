//! Tracked searches in the store: a search with an optional schedule, its runs (`search_runs`),
//! and the claims that keep two processes from doing one thing twice. A scheduler claims a due
//! run by compare-and-set on `next_run_at`; a collector claims a run's collection with a lease
//! on the database's clock, so a run whose collector died is taken over once the lease expires.

use serde::Serialize;

use super::search_jobs::OUTCOME_COLUMNS;
use super::{Store, StoreError, db_now};

/// A search as the tracker shows it: its schedule, run and listing counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TrackedSearchRow {
    pub id: i64,
    pub site: String,
    pub query: String,
    /// The listing URLs of a URL search, as a JSON list.
    pub urls: Option<String>,
    pub max_pages: i64,
    pub every: Option<String>,
    pub next_run_at: Option<i64>,
    pub requested_at: i64,
    pub deleted_at: Option<i64>,
    pub status: String,
    pub listings_found: i64,
    pub jobs_published: i64,
    /// Listings the search has found over all its runs.
    pub listings: i64,
    pub runs: i64,
    pub last_run_status: Option<String>,
    /// Why its collection failed.
    pub error: Option<String>,
    /// When it became done or failed (epoch ms).
    pub finished_at: Option<i64>,
    /// How the jobs of its latest collection ended.
    #[sqlx(flatten)]
    pub jobs: super::search_jobs::JobOutcomes,
}

/// A new tracked search.
#[derive(Debug, Clone)]
pub struct NewSearch<'a> {
    pub site: &'a str,
    pub query: &'a str,
    pub urls: Option<&'a str>,
    pub max_pages: u32,
    pub every: Option<&'a str>,
    pub next_run_at: Option<i64>,
}

/// A run's collection, claimed by one collector.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunClaim {
    /// The `search_runs` row.
    pub id: i64,
    pub search_id: i64,
    pub run: i64,
}

/// A search whose scheduled run is due.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueSearch {
    pub id: i64,
    pub next_run_at: i64,
    pub every: String,
}

const SEARCH_COLUMNS: &str = "s.id, s.site, s.query, s.urls, s.max_pages, s.every, s.next_run_at, \
    s.requested_at, s.deleted_at, s.status, s.listings_found, s.jobs_published, \
    (SELECT COUNT(*) FROM search_hits h WHERE h.search_id = s.id) AS listings, \
    (SELECT COUNT(*) FROM search_runs r WHERE r.search_id = s.id) AS runs, \
    (SELECT r.status FROM search_runs r WHERE r.search_id = s.id ORDER BY r.run DESC LIMIT 1) \
    AS last_run_status, s.error, s.finished_at";

/// Inserts the next run of a search (numbered after its last), due for collection.
const INSERT_RUN: &str = "INSERT INTO search_runs (search_id, run, status, scheduled_for, requested_at) \
    SELECT $1, COALESCE(MAX(run), 0) + 1, 'collecting', $2, $3 FROM search_runs WHERE search_id = $4 \
    RETURNING run";

impl Store {
    /// Records a tracked search and its first run, in one transaction; returns the search id.
    pub async fn create_tracked_search(&self, new: &NewSearch<'_>) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx, self.backend).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO searches (site, query, urls, max_pages, every, next_run_at, requested_at, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'collecting') RETURNING id",
        )
        .bind(new.site)
        .bind(new.query)
        .bind(new.urls)
        .bind(i64::from(new.max_pages))
        .bind(new.every)
        .bind(new.next_run_at)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        insert_run(&mut tx, id, None, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Searches not deleted, oldest first.
    pub async fn tracked_searches(&self) -> Result<Vec<TrackedSearchRow>, StoreError> {
        let sql = format!(
            "SELECT {SEARCH_COLUMNS}, {OUTCOME_COLUMNS} FROM searches s WHERE s.deleted_at IS NULL ORDER BY s.id"
        );
        // Built from constants only.
        let rows = sqlx::query_as::<_, TrackedSearchRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    /// One search (deleted or not).
    pub async fn tracked_search(&self, id: i64) -> Result<Option<TrackedSearchRow>, StoreError> {
        let sql =
            format!("SELECT {SEARCH_COLUMNS}, {OUTCOME_COLUMNS} FROM searches s WHERE s.id = $1");
        // Built from constants only; the id is bound.
        let row = sqlx::query_as::<_, TrackedSearchRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    /// Soft-deletes a search: its schedule stops, its listings and runs stay. False when there
    /// is no live search of that id.
    pub async fn delete_search(&self, id: i64) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "UPDATE searches SET deleted_at = $2, next_run_at = NULL WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pauses (`next_run_at` None) or resumes (the next run's time) a live search's schedule;
    /// its `every` stays, so a paused search keeps what it would run at. False when there is no
    /// live search of that id with a schedule.
    pub async fn set_next_run(
        &self,
        id: i64,
        next_run_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE searches SET next_run_at = $2 \
             WHERE id = $1 AND deleted_at IS NULL AND every IS NOT NULL",
        )
        .bind(id)
        .bind(next_run_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Requests a run of a search now; returns its number.
    pub async fn request_run(&self, search_id: i64) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx, self.backend).await?;
        let run = insert_run(&mut tx, search_id, None, now).await?;
        tx.commit().await?;
        Ok(run)
    }

    /// Whether a run of the search is still being collected.
    pub async fn run_collecting(&self, search_id: i64) -> Result<bool, StoreError> {
        let hit: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM search_runs WHERE search_id = $1 AND status = 'collecting' LIMIT 1",
        )
        .bind(search_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(hit.is_some())
    }

    /// Live searches with a schedule whose next run is due on the database's clock.
    pub async fn due_searches(&self) -> Result<Vec<DueSearch>, StoreError> {
        let now = self.db_now_ms().await?;
        let rows = sqlx::query_as::<_, DueSearch>(
            "SELECT id, next_run_at, every FROM searches WHERE deleted_at IS NULL \
             AND every IS NOT NULL AND next_run_at IS NOT NULL AND next_run_at <= $1 ORDER BY next_run_at",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Starts the due run of `due` when this caller wins the compare-and-set that moves
    /// `next_run_at` from the value it read to `next`: of two schedulers that read the same due
    /// search, exactly one updates a row, and only it inserts the run (same transaction).
    /// Returns the run number when this caller won.
    pub async fn claim_due_run(
        &self,
        due: &DueSearch,
        next: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx, self.backend).await?;
        let won = sqlx::query(
            "UPDATE searches SET next_run_at = $1 WHERE id = $2 AND next_run_at = $3 AND deleted_at IS NULL",
        )
        .bind(next)
        .bind(due.id)
        .bind(due.next_run_at)
        .execute(&mut *tx)
        .await?;
        if won.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let run = insert_run(&mut tx, due.id, Some(due.next_run_at), now).await?;
        tx.commit().await?;
        Ok(Some(run))
    }

    /// Claims the oldest run waiting for a collector (never claimed, or its lease expired), of
    /// any search or of `search_id`, for `lease_ms` on the database's clock.
    pub async fn claim_run(
        &self,
        owner: &str,
        lease_ms: i64,
        search_id: Option<i64>,
    ) -> Result<Option<RunClaim>, StoreError> {
        let now = self.db_now_ms().await?;
        let sql = match search_id {
            None => {
                "SELECT id, search_id, run FROM search_runs WHERE status = 'collecting' \
                 AND (lease_until IS NULL OR lease_until < $1) ORDER BY id LIMIT 1"
            }
            Some(_) => {
                "SELECT id, search_id, run FROM search_runs WHERE status = 'collecting' \
                 AND (lease_until IS NULL OR lease_until < $1) AND search_id = $2 ORDER BY id LIMIT 1"
            }
        };
        let mut query = sqlx::query_as::<_, RunClaim>(sql).bind(now);
        if let Some(search_id) = search_id {
            query = query.bind(search_id);
        }
        let candidate = query.fetch_optional(&self.pool).await?;
        let Some(claim) = candidate else {
            return Ok(None);
        };
        // The lease condition is checked again by the UPDATE itself: of two collectors that
        // picked the same candidate, one updates the row.
        let won = sqlx::query(
            "UPDATE search_runs SET lease_owner = $1, lease_until = $2, \
             started_at = COALESCE(started_at, $3) WHERE id = $4 AND status = 'collecting' \
             AND (lease_until IS NULL OR lease_until < $5)",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(claim.id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok((won.rows_affected() == 1).then_some(claim))
    }

    /// Extends the lease of a claimed run; false when another collector has taken it.
    pub async fn renew_run_lease(
        &self,
        id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "UPDATE search_runs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'collecting'",
        )
        .bind(now + lease_ms)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claimed run back: any collector may take it again `after_ms` from now on the
    /// database's clock (0 on shutdown; later after a transient failure, so a broken browser or
    /// queue is not retried in a tight loop).
    pub async fn release_run(&self, id: i64, owner: &str, after_ms: i64) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        sqlx::query(
            "UPDATE search_runs SET lease_owner = NULL, lease_until = $1 \
             WHERE id = $2 AND lease_owner = $3 AND status = 'collecting'",
        )
        .bind(now + after_ms)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a run's collection: `queued` (its jobs are published) or `failed` with the reason.
    pub async fn finish_run(
        &self,
        id: i64,
        status: &str,
        jobs_published: usize,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        sqlx::query(
            "UPDATE search_runs SET status = $1, jobs_published = $2, error = $3, finished_at = $4, \
             lease_owner = NULL, lease_until = NULL WHERE id = $5",
        )
        .bind(status)
        .bind(i64::try_from(jobs_published).unwrap_or(i64::MAX))
        .bind(error.map(|e| crate::domain::bounded_text(e, 2000)))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks `done` every queued run whose search's listings have all been enriched since the run
    /// started (failed listings aside); returns how many.
    pub async fn settle_queued_runs(&self) -> Result<u64, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "UPDATE search_runs SET status = 'done', finished_at = $1 WHERE status = 'queued' \
             AND NOT EXISTS (SELECT 1 FROM search_hits h JOIN listings l ON l.id = h.listing_id \
             WHERE h.search_id = search_runs.search_id AND l.status <> 'failed' \
             AND (l.last_enriched IS NULL OR l.last_enriched < search_runs.started_at))",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The URLs of every listing a search has found, in result order.
    pub async fn search_listing_urls(&self, search_id: i64) -> Result<Vec<String>, StoreError> {
        let urls = sqlx::query_scalar(
            "SELECT l.url FROM search_hits h JOIN listings l ON l.id = h.listing_id \
             WHERE h.search_id = $1 ORDER BY h.rank",
        )
        .bind(search_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(urls)
    }

    /// Every run of every search as (search id, run, scheduled for, status), for tests.
    pub async fn search_runs(&self) -> Result<Vec<(i64, i64, Option<i64>, String)>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT search_id, run, scheduled_for, status FROM search_runs ORDER BY search_id, run",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

/// Inserts the search's next run. (search id, run) is unique: of two concurrent inserts of one
/// number, one fails (rejected) and its caller may ask again.
async fn insert_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    search_id: i64,
    scheduled_for: Option<i64>,
    now: i64,
) -> Result<i64, StoreError> {
    let run = sqlx::query_scalar(INSERT_RUN)
        .bind(search_id)
        .bind(scheduled_for)
        .bind(now)
        .bind(search_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(run)
}

//! A search's lifecycle in the store: `collecting` → `queued` → `done` (every job it published
//! settled) or `failed` (its collection failed, with the reason). Each published job has a
//! `search_jobs` row, `pending` until a worker settles it as stored, gone, failed or dead;
//! whoever settles the last one (or the collector, when the workers were faster) marks the search
//! done with one conditional UPDATE, so two settlers never both "finish" it and none is missed.
//! A `crawl` also keys its search by its arguments and holds a lease on it while it runs.

use serde::Serialize;

use super::{Store, StoreError, db_now};
use crate::domain::Job;

/// How a search's jobs (of its latest run) stand.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema,
)]
pub struct JobOutcomes {
    pub pending: i64,
    pub stored: i64,
    pub gone: i64,
    pub failed: i64,
    pub dead: i64,
}

impl JobOutcomes {
    /// Jobs settled one way or another.
    pub fn settled(&self) -> i64 {
        self.stored + self.gone + self.failed + self.dead
    }
}

/// What a settled job came to, from the listing's status after it settled and whether the job
/// was dead-lettered: `gone`, `failed` (attempts exhausted), `dead` (dead-lettered for another
/// reason: malformed, no such site…) or `stored`.
pub fn job_outcome(listing_status: Option<&str>, dead_lettered: bool) -> &'static str {
    match listing_status {
        Some("gone") => "gone",
        Some("failed") => "failed",
        _ if dead_lettered => "dead",
        _ => "stored",
    }
}

/// The columns of [`JobOutcomes`] for search `s` (an SQL alias), counted over its latest run.
pub(crate) const OUTCOME_COLUMNS: &str = "\
    (SELECT COUNT(*) FROM search_jobs j WHERE j.search_id = s.id AND j.outcome = 'pending' \
     AND j.run = (SELECT MAX(run) FROM search_jobs WHERE search_id = s.id)) AS pending, \
    (SELECT COUNT(*) FROM search_jobs j WHERE j.search_id = s.id AND j.outcome = 'stored' \
     AND j.run = (SELECT MAX(run) FROM search_jobs WHERE search_id = s.id)) AS stored, \
    (SELECT COUNT(*) FROM search_jobs j WHERE j.search_id = s.id AND j.outcome = 'gone' \
     AND j.run = (SELECT MAX(run) FROM search_jobs WHERE search_id = s.id)) AS gone, \
    (SELECT COUNT(*) FROM search_jobs j WHERE j.search_id = s.id AND j.outcome = 'failed' \
     AND j.run = (SELECT MAX(run) FROM search_jobs WHERE search_id = s.id)) AS failed, \
    (SELECT COUNT(*) FROM search_jobs j WHERE j.search_id = s.id AND j.outcome = 'dead' \
     AND j.run = (SELECT MAX(run) FROM search_jobs WHERE search_id = s.id)) AS dead";

impl Store {
    /// Records that `job` (of a search) is about to be published: its row is `pending` until a
    /// worker settles it. Published again (a resumed collection), the row waits for the new job.
    pub async fn record_search_job(&self, job: &Job) -> Result<(), StoreError> {
        let Some(search_id) = job.search_id else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO search_jobs (search_id, run, url, job_id, outcome) \
             VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT (search_id, run, url) \
             DO UPDATE SET job_id = excluded.job_id, outcome = 'pending', settled_at = NULL",
        )
        .bind(search_id)
        .bind(job.run.unwrap_or(0))
        .bind(&job.url)
        .bind(&job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how `job` settled (see [`job_outcome`]; `external_id` finds its listing) and
    /// marks its search done when it was the last pending job. Returns whether this call
    /// finished the search.
    pub async fn settle_search_job(
        &self,
        job: &Job,
        external_id: Option<&str>,
        dead_lettered: bool,
    ) -> Result<bool, StoreError> {
        let Some(search_id) = job.search_id else {
            return Ok(false);
        };
        let listing_status: Option<String> = match external_id {
            Some(id) => {
                sqlx::query_scalar(
                    "SELECT status FROM listings WHERE site = $1 AND external_id = $2",
                )
                .bind(&job.site)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
            }
            None => None,
        };
        let outcome = job_outcome(listing_status.as_deref(), dead_lettered);
        let now = self.db_now_ms().await?;
        sqlx::query(
            "UPDATE search_jobs SET outcome = $1, settled_at = $2 WHERE search_id = $3 \
             AND run = $4 AND url = $5 AND job_id = $6 AND outcome = 'pending'",
        )
        .bind(outcome)
        .bind(now)
        .bind(search_id)
        .bind(job.run.unwrap_or(0))
        .bind(&job.url)
        .bind(&job.id)
        .execute(&self.pool)
        .await?;
        self.complete_search(search_id).await
    }

    /// Marks a queued search `done` when none of its jobs is pending; true when this call did.
    pub async fn complete_search(&self, search_id: i64) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "UPDATE searches SET status = 'done', finished_at = $1 WHERE id = $2 \
             AND status = 'queued' AND NOT EXISTS \
             (SELECT 1 FROM search_jobs WHERE search_id = $2 AND outcome = 'pending')",
        )
        .bind(now)
        .bind(search_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a search's collection: `queued` with its counts (or `done` at once when every job
    /// already settled, or none was published). Returns whether the search is done.
    pub async fn finish_collection(
        &self,
        search_id: i64,
        listings_found: usize,
        jobs_published: usize,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE searches SET status = 'queued', listings_found = $2, jobs_published = $3, \
             error = NULL WHERE id = $1",
        )
        .bind(search_id)
        .bind(i64::try_from(listings_found).unwrap_or(i64::MAX))
        .bind(i64::try_from(jobs_published).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        self.complete_search(search_id).await
    }

    /// Marks a search still `collecting` `queued` (its jobs are published), or `done` at once when
    /// they all settled already. Returns whether the search is done.
    pub async fn search_queued(&self, search_id: i64) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE searches SET status = 'queued' WHERE id = $1 AND status = 'collecting'",
        )
        .bind(search_id)
        .execute(&self.pool)
        .await?;
        self.complete_search(search_id).await
    }

    /// Marks a search whose collection failed `failed`, with the reason (what the operator sees).
    pub async fn fail_search(&self, search_id: i64, reason: &str) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        sqlx::query(
            "UPDATE searches SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1",
        )
        .bind(search_id)
        .bind(crate::domain::bounded_text(reason, 2000))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How the jobs of a search's latest run stand.
    pub async fn search_outcomes(&self, search_id: i64) -> Result<JobOutcomes, StoreError> {
        let sql = format!("SELECT {OUTCOME_COLUMNS} FROM searches s WHERE s.id = $1");
        // Built from constants only; the id is bound.
        let outcomes = sqlx::query_as::<_, JobOutcomes>(sqlx::AssertSqlSafe(sql))
            .bind(search_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(outcomes.unwrap_or_default())
    }

    /// Records the search of a `crawl` whose arguments are `key`, leased to `owner` for
    /// `lease_ms`.
    pub async fn create_crawl_search(
        &self,
        site: &str,
        query: &str,
        max_pages: u32,
        key: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = db_now(&mut conn, self.backend).await?;
        let id = sqlx::query_scalar(
            "INSERT INTO searches (site, query, max_pages, requested_at, status, crawl_key, \
             crawl_owner, crawl_alive_until) VALUES ($1, $2, $3, $4, 'collecting', $5, $6, $7) \
             RETURNING id",
        )
        .bind(site)
        .bind(query)
        .bind(i64::from(max_pages))
        .bind(now)
        .bind(key)
        .bind(owner)
        .bind(now + lease_ms)
        .fetch_one(&mut *conn)
        .await?;
        Ok(id)
    }

    /// The latest unfinished search (collecting or queued) that a `crawl` with arguments `key`
    /// made, if any.
    pub async fn crawl_search(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let id = sqlx::query_scalar(
            "SELECT id FROM searches WHERE crawl_key = $1 AND status IN ('collecting', 'queued') \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }

    /// Search `id` as a crawl sees it, if it exists.
    pub async fn crawl_lease(&self, id: i64) -> Result<Option<CrawlLease>, StoreError> {
        let now = self.db_now_ms().await?;
        let row = sqlx::query_as::<_, CrawlLease>(
            "SELECT crawl_key AS key, status, crawl_owner AS owner, crawl_alive_until AS alive_until, \
             $1 AS now FROM searches WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// Takes the crawl lease of search `id` for `owner` if it is still held by `seen` (what
    /// [`Store::crawl_lease`] read): of two crawls that saw the same holder, one wins.
    pub async fn take_crawl(
        &self,
        id: i64,
        seen: Option<&str>,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let taken = sqlx::query(
            "UPDATE searches SET crawl_owner = $1, crawl_alive_until = $2 \
             WHERE id = $3 AND COALESCE(crawl_owner, '') = $4",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(id)
        .bind(seen.unwrap_or(""))
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Extends `owner`'s crawl lease of search `id`; false when another crawl has taken it.
    pub async fn renew_crawl(
        &self,
        id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "UPDATE searches SET crawl_alive_until = $1 WHERE id = $2 AND crawl_owner = $3",
        )
        .bind(now + lease_ms)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives `owner`'s crawl lease of search `id` up (the crawl stopped, done or not).
    pub async fn release_crawl(&self, id: i64, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE searches SET crawl_owner = NULL, crawl_alive_until = NULL \
             WHERE id = $1 AND crawl_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A search as `crawl` sees it: the arguments key of the crawl that made it (`None`: not a
/// crawl's), its status and its lease, with the database's clock when it was read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CrawlLease {
    pub key: Option<String>,
    pub status: String,
    pub owner: Option<String>,
    pub alive_until: Option<i64>,
    pub now: i64,
}

#[cfg(test)]
mod tests {
    use super::job_outcome;

    #[test]
    fn a_settled_job_counts_by_its_listing_and_how_it_was_settled() {
        assert_eq!(job_outcome(Some("active"), false), "stored");
        assert_eq!(job_outcome(Some("ended"), false), "stored");
        assert_eq!(job_outcome(Some("gone"), false), "gone");
        assert_eq!(job_outcome(Some("failed"), true), "failed");
        assert_eq!(job_outcome(Some("pending"), true), "dead");
        assert_eq!(job_outcome(None, true), "dead", "no listing: malformed");
    }
}

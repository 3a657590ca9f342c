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

    /// Records how `job` settled, by its listing's status after it settled (found by
    /// `external_id`) and whether it was dead-lettered: `gone`, `failed` (attempts exhausted),
    /// `dead` (dead-lettered for another reason: malformed, no such site…) or `stored`; and marks
    /// its search done when it was the last pending job. Returns whether this call
    /// finished the search. Two statements, both on the database's clock: this runs for every
    /// settled job of a search.
    pub async fn settle_search_job(
        &self,
        job: &Job,
        external_id: Option<&str>,
        dead_lettered: bool,
    ) -> Result<bool, StoreError> {
        let Some(search_id) = job.search_id else {
            return Ok(false);
        };
        let settle = "UPDATE search_jobs SET settled_at = {now}, outcome = \
            CASE (SELECT status FROM listings WHERE site = $1 AND external_id = $2) \
            WHEN 'gone' THEN 'gone' WHEN 'failed' THEN 'failed' \
            ELSE (CASE WHEN $3 = 1 THEN 'dead' ELSE 'stored' END) END \
            WHERE search_id = $4 AND run = $5 AND url = $6 AND job_id = $7 AND outcome = 'pending'";
        let settled = sqlx::query(self.queue_sql().text(settle))
            .bind(&job.site)
            .bind(external_id)
            .bind(i64::from(dead_lettered))
            .bind(search_id)
            .bind(job.run.unwrap_or(0))
            .bind(&job.url)
            .bind(&job.id)
            .execute(&self.pool)
            .await?;
        if settled.rows_affected() == 0 {
            // A duplicate delivery, or a job published again since: nothing changed.
            return Ok(false);
        }
        self.complete_search(search_id).await
    }

    /// Marks a queued search `done` when none of its jobs is pending; true when this call did.
    pub async fn complete_search(&self, search_id: i64) -> Result<bool, StoreError> {
        let complete = "UPDATE searches SET status = 'done', finished_at = {now} WHERE id = $1 \
             AND status = 'queued' AND NOT EXISTS \
             (SELECT 1 FROM search_jobs WHERE search_id = $1 AND outcome = 'pending')";
        let done = sqlx::query(self.queue_sql().text(complete))
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
    use crate::domain::Job;
    use crate::store::Store;

    fn job(search_id: i64, n: u32) -> Job {
        Job {
            id: format!("job-{n}"),
            site: "fixture".into(),
            url: format!("http://127.0.0.1:1/item/{n}"),
            search_id: Some(search_id),
            run: None,
            published_at: 0,
        }
    }

    #[tokio::test]
    async fn settled_jobs_count_by_outcome_and_the_last_one_finishes_the_search() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let search = store.create_search("fixture", "lamp", 1).await.unwrap();
        for (n, status) in [(1, "active"), (2, "ended"), (3, "gone"), (4, "failed")] {
            sqlx::query(
                "INSERT INTO listings (site, external_id, url, status, first_seen) \
                 VALUES ('fixture', $1, $2, $3, 0)",
            )
            .bind(n.to_string())
            .bind(job(search, n).url)
            .bind(status)
            .execute(store.pool())
            .await
            .unwrap();
        }
        for n in 1..=5 {
            store.record_search_job(&job(search, n)).await.unwrap();
        }
        assert!(!store.finish_collection(search, 5, 5).await.unwrap());
        // (job, its listing's id, dead-lettered); job 5 has no listing (malformed).
        let settled = [
            (1, Some("1"), false),
            (2, Some("2"), false),
            (3, Some("3"), false),
        ];
        for (n, id, dead) in settled.into_iter().chain([(4, Some("4"), true)]) {
            let done = store.settle_search_job(&job(search, n), id, dead).await;
            assert!(!done.unwrap(), "job 5 is still pending");
        }
        let first = job(search, 1);
        let again = store.settle_search_job(&first, Some("1"), false).await;
        assert!(!again.unwrap(), "a duplicate delivery changes nothing");
        assert!(
            store
                .settle_search_job(&job(search, 5), None, true)
                .await
                .unwrap()
        );
        let counts = store.search_outcomes(search).await.unwrap();
        let expected = (
            counts.stored,
            counts.gone,
            counts.failed,
            counts.dead,
            counts.pending,
        );
        assert_eq!(expected, (2, 1, 1, 1, 0));
        let lease = store.crawl_lease(search).await.unwrap().unwrap();
        assert_eq!(lease.status, "done");
    }
}

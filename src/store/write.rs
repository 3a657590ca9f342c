//! The store's writes: searches and their hits (collect), and one transaction per attempt that
//! upserts the listing row with its price observation, snapshot row and attempt log (pipeline).

use sqlx::{Any, Transaction};

use super::{Store, StoreError, db_now};
use crate::domain::{Job, ListingStatus, Record, SearchHit};

/// A written snapshot, as recorded in the `snapshots` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotMeta {
    /// Relative to the snapshot root.
    pub path: String,
    /// sha256 of the file as written (compressed bytes).
    pub sha256: String,
    pub bytes: i64,
    pub html_bytes: i64,
    pub http_status: Option<u16>,
    pub captured_at: i64,
    pub screenshot_path: Option<String>,
}

/// Everything one attempt at a job writes.
#[derive(Debug, Clone)]
pub struct ListingSave<'a> {
    pub job: &'a Job,
    pub external_id: &'a str,
    pub attempt: u32,
    pub worker: &'a str,
    /// The listing's new status; `None` keeps it (an attempt that will be retried).
    pub status: Option<ListingStatus>,
    pub record: Option<&'a Record>,
    pub snapshot: Option<&'a SnapshotMeta>,
    /// Page class or error kind, for the attempt log.
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    pub duration_ms: i64,
}

impl Store {
    /// Records a new search and returns its id.
    pub async fn create_search(
        &self,
        site: &str,
        query: &str,
        max_pages: u32,
    ) -> Result<i64, StoreError> {
        let now = self.db_now_ms().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO searches (site, query, max_pages, requested_at, status) \
             VALUES ($1, $2, $3, $4, 'collecting') RETURNING id",
        )
        .bind(site)
        .bind(query)
        .bind(max_pages as i64)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Upserts pending listings for a page of hits and links them to the search.
    pub async fn add_hits(
        &self,
        search_id: i64,
        site: &str,
        page: u32,
        hits: &[(usize, SearchHit)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx, self.backend).await?;
        for (rank, hit) in hits {
            let listing_id = upsert_listing(&mut tx, site, &hit.external_id, &hit.url, now).await?;
            sqlx::query(
                "INSERT INTO search_hits (search_id, listing_id, rank, page) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (search_id, listing_id) DO NOTHING",
            )
            .bind(search_id)
            .bind(listing_id)
            .bind(*rank as i64)
            .bind(page as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a search collected (or failed) with its counts.
    pub async fn finish_search(
        &self,
        search_id: i64,
        status: &str,
        listings_found: usize,
        jobs_published: usize,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE searches SET status = $2, listings_found = $3, jobs_published = $4 WHERE id = $1",
        )
        .bind(search_id)
        .bind(status)
        .bind(listings_found as i64)
        .bind(jobs_published as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a site slowdown for every worker: paused for `pause` from now on the database's
    /// clock (the later pause wins), the new rate replaces the old.
    pub async fn slow_site(
        &self,
        site: &str,
        pause: std::time::Duration,
        rate_milli: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = db_now(&mut conn, self.backend).await?;
        let paused_until = now.saturating_add(pause.as_millis().min(i64::MAX as u128) as i64);
        sqlx::query(
            "INSERT INTO site_pace (site, paused_until, rate_milli, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (site) DO UPDATE SET rate_milli = excluded.rate_milli, updated_at = excluded.updated_at, \
             paused_until = CASE WHEN excluded.paused_until > site_pace.paused_until \
             THEN excluded.paused_until ELSE site_pace.paused_until END",
        )
        .bind(site)
        .bind(paused_until)
        .bind(rate_milli)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Sets a search's status (e.g. `done` once its crawl drained).
    pub async fn set_search_status(&self, search_id: i64, status: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE searches SET status = $2 WHERE id = $1")
            .bind(search_id)
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Writes one attempt in one transaction; returns the listing's row id.
    /// Text is bounded first (NUL stripped, lengths capped: see [`Record::bounded`]), so no page
    /// can produce a row the database refuses.
    pub async fn save(&self, save: &ListingSave<'_>) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx, self.backend).await?;
        let id = upsert_listing(
            &mut tx,
            &save.job.site,
            save.external_id,
            &save.job.url,
            now,
        )
        .await?;
        match (save.record.map(Record::bounded), save.status) {
            (Some(record), Some(status)) => {
                update_record(&mut tx, id, &record, status, save.attempt, now).await?;
                if let Some(price) = &record.price {
                    let key = observation_key(save.job, price, now);
                    // The id only when this row is new: a redelivery evaluates no watch again.
                    let observation: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO price_observations \
                         (listing_id, job_id, observed_at, price_minor, currency, observation_key) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(id)
                    .bind(&save.job.id)
                    .bind(now)
                    .bind(price.minor)
                    .bind(price.currency.as_str())
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(observation) = observation {
                        let new = super::watches::NewObservation {
                            id: observation,
                            listing_id: id,
                            site: &save.job.site,
                            external_id: save.external_id,
                            price: super::watch_rule::Observed {
                                minor: price.minor,
                                currency: price.currency.as_str(),
                            },
                            now,
                        };
                        super::watches::evaluate_observation(&mut tx, &new).await?;
                    }
                }
            }
            (_, status) => update_status(&mut tx, id, status, save, now).await?,
        }
        if let Some(snapshot) = save.snapshot {
            insert_snapshot(&mut tx, id, snapshot).await?;
        }
        sqlx::query(
            "INSERT INTO attempts (listing_id, job_id, attempt, worker, outcome, detail, duration_ms, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (job_id, attempt, listing_id) DO UPDATE SET outcome = excluded.outcome, \
             detail = excluded.detail, duration_ms = excluded.duration_ms, at = excluded.at",
        )
        .bind(id)
        .bind(&save.job.id)
        .bind(save.attempt as i64)
        .bind(save.worker)
        .bind(save.outcome)
        .bind(save.detail.map(bounded_detail))
        .bind(save.duration_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Notes that rendering attempt `attempt` of `job_id` starts now (before the page loads, so
    /// a page that kills its worker is counted).
    pub async fn note_render_start(&self, job_id: &str, attempt: u32) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO job_renders (job_id, attempt, starts) VALUES ($1, $2, 1) \
             ON CONFLICT (job_id, attempt) DO UPDATE SET starts = job_renders.starts + 1",
        )
        .bind(job_id)
        .bind(i64::from(attempt))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many times rendering attempt `attempt` of `job_id` was started.
    pub async fn render_starts(&self, job_id: &str, attempt: u32) -> Result<u32, StoreError> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT starts FROM job_renders WHERE job_id = $1 AND attempt = $2")
                .bind(job_id)
                .bind(i64::from(attempt))
                .fetch_optional(&self.pool)
                .await?;
        Ok(n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

/// What makes a price observation distinct: one per (listing, search, run), or per price and
/// hour for jobs of no search, so a job published again after a crash (a new job id) adds no
/// second observation, while each run of a search observes the price once more. Jobs published
/// before runs existed carry no run and keep the old per-search key.
fn observation_key(job: &Job, price: &crate::price::Money, now: i64) -> String {
    match (job.search_id, job.run) {
        (Some(search), Some(run)) => format!("search:{search}:run:{run}"),
        (Some(search), None) => format!("search:{search}"),
        (None, _) => format!(
            "hour:{}:{}:{}",
            now / 3_600_000,
            price.minor,
            price.currency.as_str()
        ),
    }
}

/// The attempt log's detail, NUL-free and at most 2,000 characters.
fn bounded_detail(detail: &str) -> String {
    crate::domain::bounded_text(detail, 2000)
}

async fn upsert_listing(
    tx: &mut Transaction<'_, Any>,
    site: &str,
    external_id: &str,
    url: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO listings (site, external_id, url, status, first_seen) VALUES ($1, $2, $3, 'pending', $4) \
         ON CONFLICT (site, external_id) DO UPDATE SET url = excluded.url RETURNING id",
    )
    .bind(site)
    .bind(external_id)
    .bind(url)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

async fn update_record(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    r: &Record,
    status: ListingStatus,
    attempt: u32,
    now: i64,
) -> Result<(), StoreError> {
    // Serializing maps and vectors of strings cannot fail.
    let specifics = serde_json::to_string(&r.specifics).unwrap_or_else(|_| "{}".into());
    let images = serde_json::to_string(&r.images).unwrap_or_else(|_| "[]".into());
    let extra = serde_json::to_string(&r.extra).unwrap_or_else(|_| "{}".into());
    let field_errors = serde_json::to_string(&r.field_errors).unwrap_or_else(|_| "{}".into());
    let minor = |m: &Option<crate::price::Money>| m.map(|m| m.minor);
    let code = |m: &Option<crate::price::Money>| m.map(|m| m.currency.as_str().to_string());
    sqlx::query(
        "UPDATE listings SET title = $2, price_minor = $3, currency = $4, condition = $5, seller = $6, \
         seller_score = $7, shipping = $8, location = $9, specifics = $10, description = $11, images = $12, \
         status = $13, last_enriched = $14, attempts = $15, last_error = NULL, \
         brand = $16, sku = $17, gtin = $18, mpn = $19, availability = $20, rating = $21, \
         review_count = $22, extra = $23, item_id = $24, translated_title = $25, \
         was_price_minor = $26, was_currency = $27, buy_it_now_minor = $28, \
         buy_it_now_currency = $29, auction = $30, best_offer = $31, bids = $32, \
         status_text = $33, description_url = $34, field_errors = $35 WHERE id = $1",
    )
    .bind(id)
    .bind(r.title.as_deref())
    .bind(r.price.map(|p| p.minor))
    .bind(r.price.map(|p| p.currency.as_str().to_string()))
    .bind(r.condition.as_deref())
    .bind(r.seller.as_deref())
    .bind(r.seller_score)
    .bind(r.shipping.as_deref())
    .bind(r.location.as_deref())
    .bind(specifics)
    .bind(r.description.as_deref())
    .bind(images)
    .bind(status.as_str())
    .bind(now)
    .bind(attempt as i64)
    .bind(r.brand.as_deref())
    .bind(r.sku.as_deref())
    .bind(r.gtin.as_deref())
    .bind(r.mpn.as_deref())
    .bind(r.availability.as_deref())
    .bind(r.rating)
    .bind(r.review_count)
    .bind(extra)
    .bind(r.item_id.as_deref())
    .bind(r.translated_title.as_deref())
    .bind(minor(&r.was_price))
    .bind(code(&r.was_price))
    .bind(minor(&r.buy_it_now_price))
    .bind(code(&r.buy_it_now_price))
    .bind(i64::from(r.auction))
    .bind(i64::from(r.best_offer))
    .bind(r.bids)
    .bind(r.status_text.as_deref())
    .bind(r.description_url.as_deref())
    .bind(field_errors)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gone, failed, or an attempt that will be retried: only status, attempts and the last error.
async fn update_status(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    status: Option<ListingStatus>,
    save: &ListingSave<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let enriched = matches!(status, Some(ListingStatus::Gone)).then_some(now);
    let error = match status {
        Some(ListingStatus::Gone) => None,
        _ => save.detail.map(bounded_detail),
    };
    sqlx::query(
        "UPDATE listings SET status = COALESCE($2, status), attempts = $3, last_error = $4, \
         last_enriched = COALESCE($5, last_enriched) WHERE id = $1",
    )
    .bind(id)
    .bind(status.map(ListingStatus::as_str))
    .bind(save.attempt as i64)
    .bind(error)
    .bind(enriched)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_snapshot(
    tx: &mut Transaction<'_, Any>,
    listing_id: i64,
    s: &SnapshotMeta,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO snapshots (listing_id, path, sha256, bytes, html_bytes, http_status, captured_at, screenshot_path) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, \
         bytes = excluded.bytes, html_bytes = excluded.html_bytes, http_status = excluded.http_status, \
         captured_at = excluded.captured_at, screenshot_path = excluded.screenshot_path",
    )
    .bind(listing_id)
    .bind(&s.path)
    .bind(&s.sha256)
    .bind(s.bytes)
    .bind(s.html_bytes)
    .bind(s.http_status.map(i64::from))
    .bind(s.captured_at)
    .bind(s.screenshot_path.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::{Currency, Money};

    #[test]
    fn each_run_of_a_search_observes_a_price_once_and_old_jobs_keep_their_key() {
        let price = Money::new(1999, Currency::parse("USD").unwrap());
        let mut job = Job {
            id: "1-000001".into(),
            site: "fixture".into(),
            url: "http://127.0.0.1:1/item/1".into(),
            search_id: Some(4),
            run: Some(1),
            published_at: 0,
        };
        let first = observation_key(&job, &price, 0);
        job.id = "2-000001".into(); // published again after a crash: same run, same key
        assert_eq!(observation_key(&job, &price, 0), first);
        job.run = Some(2);
        assert_ne!(observation_key(&job, &price, 0), first);
        job.run = None;
        assert_eq!(observation_key(&job, &price, 0), "search:4");
        job.search_id = None;
        assert_eq!(observation_key(&job, &price, 7_200_000), "hour:2:1999:USD");
    }
}

//! The store's reads, for the operator CLI and tests: listings (with their latest snapshot and price
//! history), searches and snapshots.

use serde::Serialize;

use super::{Store, StoreError};

/// Which listings to read.
#[derive(Debug, Clone, Default)]
pub struct ListingFilter {
    pub search_id: Option<i64>,
    pub status: Option<String>,
    pub site: Option<String>,
}

/// One listing as stored, with its latest snapshot path.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListingRow {
    pub id: i64,
    pub site: String,
    pub external_id: String,
    pub url: String,
    pub status: String,
    pub title: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub condition: Option<String>,
    pub seller: Option<String>,
    pub seller_score: Option<i64>,
    pub shipping: Option<String>,
    pub location: Option<String>,
    pub specifics: String,
    pub description: Option<String>,
    pub images: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub snapshot: Option<String>,
    /// When the listing was first recorded, epoch ms.
    pub first_seen: i64,
    /// When its page was last extracted, epoch ms.
    pub last_enriched: Option<i64>,
    pub brand: Option<String>,
    pub sku: Option<String>,
    pub gtin: Option<String>,
    pub mpn: Option<String>,
    pub availability: Option<String>,
    pub rating: Option<f64>,
    pub review_count: Option<i64>,
    /// A site's own fields, a JSON object.
    pub extra: String,
    pub item_id: Option<String>,
    pub translated_title: Option<String>,
    pub was_price_minor: Option<i64>,
    pub was_currency: Option<String>,
    pub buy_it_now_minor: Option<i64>,
    pub buy_it_now_currency: Option<String>,
    /// 0 or 1.
    pub auction: i64,
    /// 0 or 1.
    pub best_offer: i64,
    pub bids: Option<i64>,
    pub status_text: Option<String>,
    pub description_url: Option<String>,
    /// Fields that could not be read, and why: a JSON object.
    pub field_errors: String,
}

/// One entry of a listing's price history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PriceObservation {
    pub listing_id: i64,
    pub observed_at: i64,
    pub price_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SearchRow {
    pub id: i64,
    pub site: String,
    pub query: String,
    pub max_pages: i64,
    pub requested_at: i64,
    pub status: String,
    pub listings_found: i64,
    pub jobs_published: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SnapshotRow {
    pub id: i64,
    pub listing_id: i64,
    pub path: String,
    pub sha256: String,
    pub bytes: i64,
    pub html_bytes: i64,
    pub http_status: Option<i64>,
    pub captured_at: i64,
    pub screenshot_path: Option<String>,
}

pub(super) const LISTING_COLUMNS: &str = "l.id, l.site, l.external_id, l.url, l.status, l.title, l.price_minor, \
    l.currency, l.condition, l.seller, l.seller_score, l.shipping, l.location, l.specifics, \
    l.description, l.images, l.attempts, l.last_error, l.first_seen, l.last_enriched, \
    l.brand, l.sku, l.gtin, l.mpn, l.availability, l.rating, l.review_count, l.extra, l.item_id, \
    l.translated_title, l.was_price_minor, l.was_currency, l.buy_it_now_minor, \
    l.buy_it_now_currency, l.auction, l.best_offer, l.bids, l.status_text, l.description_url, \
    l.field_errors, \
    (SELECT s.path FROM snapshots s WHERE s.listing_id = l.id ORDER BY s.captured_at DESC, s.id DESC LIMIT 1) AS snapshot";

/// One page of listings for the API: keyset pagination on the listing id, so a page boundary
/// stays put while listings are inserted.
#[derive(Debug, Clone, Default)]
pub struct ListingPage {
    pub site: Option<String>,
    pub search_id: Option<i64>,
    pub status: Option<String>,
    /// Case-insensitive substring of the title.
    pub q: Option<String>,
    pub min_price_minor: Option<i64>,
    pub max_price_minor: Option<i64>,
    pub currency: Option<String>,
    /// Only listings with an id above this (the previous page's last).
    pub after_id: i64,
    pub limit: u32,
}

/// A bound value of a dynamically built query.
enum Arg {
    Int(i64),
    Text(String),
}

impl Store {
    /// One page of listings in id order: at most `page.limit` rows with ids above `page.after_id`.
    pub async fn listings_page(&self, page: &ListingPage) -> Result<Vec<ListingRow>, StoreError> {
        let mut sql = format!("SELECT {LISTING_COLUMNS} FROM listings l WHERE l.id > $1");
        let mut args = vec![Arg::Int(page.after_id)];
        let mut add = |clause: &str, arg: Arg| {
            args.push(arg);
            sql += &clause.replace("{}", &format!("${}", args.len()));
        };
        if let Some(search_id) = page.search_id {
            add(
                " AND EXISTS (SELECT 1 FROM search_hits h WHERE h.listing_id = l.id AND h.search_id = {})",
                Arg::Int(search_id),
            );
        }
        let texts = [
            (" AND l.site = {}", &page.site),
            (" AND l.status = {}", &page.status),
            (" AND l.currency = {}", &page.currency),
        ];
        for (clause, value) in texts {
            if let Some(value) = value {
                add(clause, Arg::Text(value.clone()));
            }
        }
        if let Some(q) = &page.q {
            add(
                " AND LOWER(l.title) LIKE {} ESCAPE '\\'",
                Arg::Text(like_pattern(q)),
            );
        }
        if let Some(min) = page.min_price_minor {
            add(" AND l.price_minor >= {}", Arg::Int(min));
        }
        if let Some(max) = page.max_price_minor {
            add(" AND l.price_minor <= {}", Arg::Int(max));
        }
        add(" ORDER BY l.id LIMIT {}", Arg::Int(i64::from(page.limit)));
        // Assembled from constants and numbered placeholders only; every value is bound below.
        let mut query = sqlx::query_as::<_, ListingRow>(sqlx::AssertSqlSafe(sql));
        for arg in args {
            query = match arg {
                Arg::Int(n) => query.bind(n),
                Arg::Text(t) => query.bind(t),
            };
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// One listing by its site and external id.
    pub async fn listing(
        &self,
        site: &str,
        external_id: &str,
    ) -> Result<Option<ListingRow>, StoreError> {
        let sql = format!(
            "SELECT {LISTING_COLUMNS} FROM listings l WHERE l.site = $1 AND l.external_id = $2"
        );
        // Built from constants only; the values are bound.
        let row = sqlx::query_as::<_, ListingRow>(sqlx::AssertSqlSafe(sql))
            .bind(site)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    /// The live key with this hash, without noting its use (see [`Store::api_key_by_hash`]).
    pub async fn live_api_key(
        &self,
        key_hash: &str,
    ) -> Result<Option<super::api_keys::ApiKeyRow>, StoreError> {
        let row = sqlx::query_as(
            "SELECT name, scope, created_at, revoked_at, last_used_at FROM api_keys              WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// Listings matching `filter`, ordered by search rank when a search is given, else by id.
    pub async fn listings(&self, filter: &ListingFilter) -> Result<Vec<ListingRow>, StoreError> {
        // Placeholders are numbered by hand: the Any driver's QueryBuilder emits `?`, which
        // PostgreSQL rejects.
        let mut sql = format!("SELECT {LISTING_COLUMNS} FROM listings l");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.search_id.is_some() {
            sql += &format!(
                " JOIN search_hits h ON h.listing_id = l.id AND h.search_id = {}",
                next()
            );
        }
        sql += " WHERE 1 = 1";
        if filter.status.is_some() {
            sql += &format!(" AND l.status = {}", next());
        }
        if filter.site.is_some() {
            sql += &format!(" AND l.site = {}", next());
        }
        sql += if filter.search_id.is_some() {
            " ORDER BY h.rank"
        } else {
            " ORDER BY l.id"
        };
        // Assembled from constants and numbered placeholders only; every value is bound below.
        let mut query = sqlx::query_as::<_, ListingRow>(sqlx::AssertSqlSafe(sql));
        if let Some(search_id) = filter.search_id {
            query = query.bind(search_id);
        }
        if let Some(status) = &filter.status {
            query = query.bind(status.clone());
        }
        if let Some(site) = &filter.site {
            query = query.bind(site.clone());
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows)
    }

    /// The price history of the given listings, oldest first.
    pub async fn price_history(
        &self,
        listing_id: i64,
    ) -> Result<Vec<PriceObservation>, StoreError> {
        let rows = sqlx::query_as::<_, PriceObservation>(
            "SELECT listing_id, observed_at, price_minor, currency FROM price_observations \
             WHERE listing_id = $1 ORDER BY observed_at, id",
        )
        .bind(listing_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// External ids of the listings a search has recorded.
    pub async fn search_hit_ids(&self, search_id: i64) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT l.external_id FROM search_hits h JOIN listings l ON l.id = h.listing_id \
             WHERE h.search_id = $1",
        )
        .bind(search_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    /// Whether the listing was enriched (stored or found gone) at or after `since` (epoch ms).
    pub async fn enriched_since(
        &self,
        site: &str,
        external_id: &str,
        since: i64,
    ) -> Result<bool, StoreError> {
        let hit: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM listings WHERE site = $1 AND external_id = $2 \
             AND last_enriched IS NOT NULL AND last_enriched >= $3",
        )
        .bind(site)
        .bind(external_id)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(hit.is_some())
    }

    /// Whether attempt `attempt` of job `job_id` already ran to an outcome (logged in `attempts`).
    pub async fn attempt_logged(&self, job_id: &str, attempt: u32) -> Result<bool, StoreError> {
        let hit: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM attempts WHERE job_id = $1 AND attempt = $2 LIMIT 1",
        )
        .bind(job_id)
        .bind(i64::from(attempt))
        .fetch_optional(&self.pool)
        .await?;
        Ok(hit.is_some())
    }

    /// The unfinished search of `site` for `query` (killed before it was done), if any.
    pub async fn unfinished_search(
        &self,
        site: &str,
        query: &str,
    ) -> Result<Option<SearchRow>, StoreError> {
        let row = sqlx::query_as::<_, SearchRow>(
            "SELECT id, site, query, max_pages, requested_at, status, listings_found, jobs_published \
             FROM searches WHERE site = $1 AND query = $2 AND status IN ('collecting', 'collected') \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(site)
        .bind(query)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// How many listings (of every search) are in each status.
    pub async fn listing_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM listings GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// How many alerts are in each delivery state (`pending`, `delivered`, `failed`).
    pub async fn alert_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM alerts GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// How many of a search's listings are in each status.
    pub async fn status_counts(
        &self,
        search_id: i64,
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT l.status, COUNT(*) FROM search_hits h JOIN listings l ON l.id = h.listing_id \
             WHERE h.search_id = $1 GROUP BY l.status",
        )
        .bind(search_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Listings enriched (stored or found gone) after `since` (epoch ms).
    pub async fn enriched_after(&self, since: i64) -> Result<i64, StoreError> {
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM listings WHERE last_enriched >= $1")
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// The shared pace of a site, measured on the database's clock: how long it stays paused
    /// (ms, ≤ 0 when not paused), its rate in milli-requests/s, and how long ago it was set (ms).
    pub async fn site_pace(&self, site: &str) -> Result<Option<(i64, i64, i64)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = super::db_now(&mut conn, self.backend).await?;
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT paused_until, rate_milli, updated_at FROM site_pace WHERE site = $1",
        )
        .bind(site)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(row.map(|(until, rate, updated)| (until - now, rate, now - updated)))
    }

    pub async fn searches(&self) -> Result<Vec<SearchRow>, StoreError> {
        let rows = sqlx::query_as::<_, SearchRow>(
            "SELECT id, site, query, max_pages, requested_at, status, listings_found, jobs_published \
             FROM searches ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub async fn snapshots(&self) -> Result<Vec<SnapshotRow>, StoreError> {
        let rows = sqlx::query_as::<_, SnapshotRow>(
            "SELECT id, listing_id, path, sha256, bytes, html_bytes, http_status, captured_at, \
             screenshot_path FROM snapshots ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Counts rows of a table; for tests and status output.
    pub async fn count(&self, table: Table) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        // Table names come from the enum, never from input.
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}

/// `%text%` for a case-insensitive LIKE, with `%`, `_` and the backslash escaped by a backslash.
pub(super) fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Tables that can be counted.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Listings,
    PriceObservations,
    Snapshots,
    Attempts,
    SearchHits,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Listings => "listings",
            Table::PriceObservations => "price_observations",
            Table::Snapshots => "snapshots",
            Table::Attempts => "attempts",
            Table::SearchHits => "search_hits",
        }
    }
}

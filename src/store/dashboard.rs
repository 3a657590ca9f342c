//! The dashboard's reads and its sessions (`crate::ui`): sign-in sessions kept by the hash of
//! their cookie token and tied to the API key they were opened with; the listings table, paged
//! by keyset on each sort order (`migrations/*/0012_dashboard.sql` holds the indexes) with each
//! row's first and previous observed price; a listing's snapshots; the fleet's attempt counts.

use super::{Store, StoreError};

/// A live session: the key it was opened with is still live and the session has not expired.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UiSession {
    pub key_name: String,
    /// `read` or `write`, the key's scope.
    pub scope: String,
    /// The token every form of this session posts back.
    pub csrf: String,
}

/// The orders the listings table can be sorted in; each is a keyset `(key, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListingSort {
    /// Oldest first (row id ascending).
    #[default]
    Oldest,
    Newest,
    PriceLow,
    PriceHigh,
    /// Most recently enriched first.
    RecentlySeen,
}

impl ListingSort {
    /// The sort key column, or `None` when the id alone orders.
    fn key(self) -> Option<&'static str> {
        match self {
            ListingSort::Oldest | ListingSort::Newest => None,
            ListingSort::PriceLow | ListingSort::PriceHigh => Some("l.price_minor"),
            ListingSort::RecentlySeen => Some("l.last_enriched"),
        }
    }

    fn descending(self) -> bool {
        matches!(
            self,
            ListingSort::Newest | ListingSort::PriceHigh | ListingSort::RecentlySeen
        )
    }
}

/// Where a page of the listings table starts: after the row with this sort key and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keyset {
    pub key: Option<i64>,
    pub id: i64,
}

/// One page of the listings table to read. Text filters are exact, `text` a case-insensitive
/// substring of the title.
#[derive(Debug, Clone, Default)]
pub struct TableQuery {
    pub site: Option<String>,
    pub search_id: Option<i64>,
    pub status: Option<String>,
    pub text: Option<String>,
    pub currency: Option<String>,
    pub min_price_minor: Option<i64>,
    pub max_price_minor: Option<i64>,
    pub sort: ListingSort,
    pub after: Option<Keyset>,
    pub limit: u32,
}

/// One row of the listings table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TableRow {
    pub id: i64,
    pub site: String,
    pub external_id: String,
    pub title: Option<String>,
    pub status: String,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub last_enriched: Option<i64>,
    /// The price of the listing's first observation.
    pub first_minor: Option<i64>,
    /// The price of the observation before its latest.
    pub previous_minor: Option<i64>,
}

impl TableRow {
    /// Where the next page starts when this row is the last of its page.
    pub fn keyset(&self, sort: ListingSort) -> Keyset {
        let key = match sort {
            ListingSort::Oldest | ListingSort::Newest => None,
            ListingSort::PriceLow | ListingSort::PriceHigh => self.price_minor,
            ListingSort::RecentlySeen => self.last_enriched,
        };
        Keyset { key, id: self.id }
    }
}

const TABLE_COLUMNS: &str = "l.id, l.site, l.external_id, l.title, l.status, l.price_minor, \
    l.currency, l.last_enriched, \
    (SELECT o.price_minor FROM price_observations o WHERE o.listing_id = l.id \
     ORDER BY o.observed_at, o.id LIMIT 1) AS first_minor, \
    (SELECT o.price_minor FROM price_observations o WHERE o.listing_id = l.id \
     ORDER BY o.observed_at DESC, o.id DESC LIMIT 1 OFFSET 1) AS previous_minor";

/// A bound value of the table query.
enum Arg {
    Int(i64),
    Text(String),
}

/// The SQL of one page of the table and its bound values, in placeholder order.
fn table_sql(query: &TableQuery) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {TABLE_COLUMNS} FROM listings l WHERE 1 = 1");
    let mut args = Vec::new();
    let mut add = |clause: &str, values: Vec<Arg>| {
        let mut clause = clause.to_string();
        for value in values {
            args.push(value);
            clause = clause.replacen("{}", &format!("${}", args.len()), 1);
        }
        sql += &clause;
    };
    for (clause, value) in [
        (" AND l.site = {}", &query.site),
        (" AND l.status = {}", &query.status),
        (" AND l.currency = {}", &query.currency),
    ] {
        if let Some(value) = value {
            add(clause, vec![Arg::Text(value.clone())]);
        }
    }
    if let Some(search_id) = query.search_id {
        let clause = " AND EXISTS (SELECT 1 FROM search_hits h \
                      WHERE h.listing_id = l.id AND h.search_id = {})";
        add(clause, vec![Arg::Int(search_id)]);
    }
    if let Some(text) = &query.text {
        let pattern = super::read::like_pattern(text);
        add(
            " AND LOWER(l.title) LIKE {} ESCAPE '\\'",
            vec![Arg::Text(pattern)],
        );
    }
    if let Some(min) = query.min_price_minor {
        add(" AND l.price_minor >= {}", vec![Arg::Int(min)]);
    }
    if let Some(max) = query.max_price_minor {
        add(" AND l.price_minor <= {}", vec![Arg::Int(max)]);
    }
    let (sort, cmp, dir) = match query.sort.descending() {
        true => (query.sort, "<", "DESC"),
        false => (query.sort, ">", "ASC"),
    };
    match sort.key() {
        Some(key) => {
            add(&format!(" AND {key} IS NOT NULL"), vec![]);
            if let Some(after) = query.after {
                let keyed = Arg::Int(after.key.unwrap_or_default());
                add(
                    &format!(" AND ({key}, l.id) {cmp} ({{}}, {{}})"),
                    vec![keyed, Arg::Int(after.id)],
                );
            }
            add(&format!(" ORDER BY {key} {dir}, l.id {dir}"), vec![]);
        }
        None => {
            if let Some(after) = query.after {
                add(&format!(" AND l.id {cmp} {{}}"), vec![Arg::Int(after.id)]);
            }
            add(&format!(" ORDER BY l.id {dir}"), vec![]);
        }
    }
    add(" LIMIT {}", vec![Arg::Int(i64::from(query.limit))]);
    (sql, args)
}

impl Store {
    /// One page of the listings table.
    pub async fn listing_table(&self, query: &TableQuery) -> Result<Vec<TableRow>, StoreError> {
        let (sql, args) = table_sql(query);
        // Assembled from constants and numbered placeholders only; every value is bound below.
        let mut q = sqlx::query_as::<_, TableRow>(sqlx::AssertSqlSafe(sql));
        for arg in args {
            q = match arg {
                Arg::Int(n) => q.bind(n),
                Arg::Text(t) => q.bind(t),
            };
        }
        Ok(q.fetch_all(&self.pool).await?)
    }

    /// The SQL the listings table runs for `query`, with its values, for `EXPLAIN` in the
    /// benchmark.
    #[doc(hidden)]
    pub fn listing_table_sql(query: &TableQuery) -> (String, Vec<String>) {
        let (sql, args) = table_sql(query);
        let shown = args
            .into_iter()
            .map(|a| match a {
                Arg::Int(n) => n.to_string(),
                Arg::Text(t) => format!("'{}'", t.replace('\'', "''")),
            })
            .collect();
        (sql, shown)
    }

    /// Opens a session for the key of `key_hash`, valid for `ttl_ms`; drops expired sessions.
    pub async fn create_ui_session(
        &self,
        token_hash: &str,
        key_hash: &str,
        csrf: &str,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO ui_sessions (token_hash, key_hash, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(key_hash)
        .bind(csrf)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session of `token_hash` while it has not expired and its key is live.
    pub async fn ui_session(&self, token_hash: &str) -> Result<Option<UiSession>, StoreError> {
        let now = self.db_now_ms().await?;
        let row = sqlx::query_as::<_, UiSession>(
            "SELECT k.name AS key_name, k.scope, s.csrf FROM ui_sessions s \
             JOIN api_keys k ON k.key_hash = s.key_hash \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// Ends the session of `token_hash` (signing out, or a session found dead).
    pub async fn delete_ui_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ui_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A listing's snapshots, newest first.
    pub async fn listing_snapshots(
        &self,
        listing_id: i64,
    ) -> Result<Vec<super::SnapshotRow>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT id, listing_id, path, sha256, bytes, html_bytes, http_status, captured_at, \
             screenshot_path FROM snapshots WHERE listing_id = $1 \
             ORDER BY captured_at DESC, id DESC",
        )
        .bind(listing_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// The distinct sites of the stored listings, for the site filter.
    pub async fn listing_sites(&self) -> Result<Vec<String>, StoreError> {
        // A loose index scan (one index probe per site, on `listings_site_id`): `SELECT
        // DISTINCT` would read every row of a million-listing table.
        let sites = sqlx::query_scalar(
            "WITH RECURSIVE s(site) AS (SELECT MIN(site) FROM listings UNION ALL \
             SELECT (SELECT MIN(l.site) FROM listings l WHERE l.site > s.site) FROM s \
             WHERE s.site IS NOT NULL) SELECT site FROM s WHERE site IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(sites)
    }

    /// Attempts that ended at or after `since` (epoch ms) per minute, as (minute index, count),
    /// the minute index being epoch ms / 60 000.
    pub async fn attempts_per_minute(&self, since: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT at / 60000 AS minute, COUNT(*) FROM attempts WHERE at >= $1 \
             GROUP BY at / 60000 ORDER BY minute",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Attempts since `since` (epoch ms) per site and outcome, as (site, outcome, count).
    pub async fn outcomes_by_site(
        &self,
        since: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT l.site, a.outcome, COUNT(*) FROM attempts a \
             JOIN listings l ON l.id = a.listing_id WHERE a.at >= $1 \
             GROUP BY l.site, a.outcome ORDER BY l.site, a.outcome",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_page_by_price_is_a_keyset_range_on_price_and_id() {
        let query = TableQuery {
            site: Some("fixture".into()),
            sort: ListingSort::PriceHigh,
            after: Some(Keyset {
                key: Some(4999),
                id: 17,
            }),
            limit: 50,
            ..TableQuery::default()
        };
        let (sql, args) = Store::listing_table_sql(&query);
        assert!(sql.contains("l.site = $1"), "{sql}");
        assert!(sql.contains("(l.price_minor, l.id) < ($2, $3)"), "{sql}");
        assert!(
            sql.contains("ORDER BY l.price_minor DESC, l.id DESC LIMIT $4"),
            "{sql}"
        );
        assert_eq!(args, ["'fixture'", "4999", "17", "50"]);
    }

    #[test]
    fn the_first_page_oldest_first_needs_no_keyset() {
        let (sql, args) = Store::listing_table_sql(&TableQuery {
            limit: 50,
            ..TableQuery::default()
        });
        assert!(sql.ends_with("ORDER BY l.id ASC LIMIT $1"), "{sql}");
        assert_eq!(args, ["50"]);
    }
}

//! The price tracker's operations: create, list, run and delete searches, page through listings
//! and read one with its price history. The CLI and the HTTP API (`crate::api`) call these same
//! functions, so a rule (what a valid search is, what a run does) is written once. `schedule`
//! parses `every`; `runs` holds the loops that start due runs and collect them.

pub mod runs;
pub mod schedule;
pub mod watches;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::report::ListingJson;
use crate::site::{Site, Sites};
use crate::store::searches::{NewSearch, TrackedSearchRow};
use crate::store::{ListingPage, Store, StoreError};
use schedule::Schedule;

/// Default and largest number of search pages a search collects.
pub const DEFAULT_MAX_PAGES: i64 = 5;
pub const MAX_MAX_PAGES: i64 = 100;
/// Longest query accepted (search boxes of real sites stop far earlier).
const MAX_QUERY_CHARS: usize = 500;
/// Most listing URLs one URL search may hold.
const MAX_URLS: usize = 1000;

/// The operations, over one store and the site definitions.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub store: Store,
    pub sites: Arc<Sites>,
    /// Woken when a run is requested, so a collector in this process starts it at once.
    pub wake: Arc<Notify>,
}

/// What went wrong, named by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("unknown site `{site}`")]
    UnknownSite { site: String, known: Vec<String> },
    #[error("invalid request: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("no search with id {0}")]
    SearchNotFound(i64),
    #[error("no listing {site}/{external_id}")]
    ListingNotFound { site: String, external_id: String },
    #[error("search {0} has a run that is still being collected")]
    RunInProgress(i64),
    #[error("search {0} has no schedule to pause or resume")]
    NoSchedule(i64),
    #[error("no watch with id {0}")]
    WatchNotFound(i64),
    /// A fault of this process (no randomness for a secret); never the request's.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field, as named in the request (`urls[2]` for an item of a list).
    pub field: String,
    pub message: String,
}

impl TrackerError {
    fn invalid(field: &str, message: impl Into<String>) -> TrackerError {
        TrackerError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }
}

/// A search to create: a query (collected from the site's search pages) or a list of listing
/// URLs, optionally on a schedule.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Site definition name, e.g. `fixture` or `ebay`.
    #[schema(min_length = 1)]
    pub site: String,
    /// Search query; give it or `urls`.
    #[schema(min_length = 1, max_length = 500)]
    pub query: Option<String>,
    /// Listing URLs of the site; give them or `query`.
    #[schema(min_items = 1, max_items = 1000)]
    pub urls: Option<Vec<String>>,
    /// Search pages to collect per run (1–100, default 5).
    #[schema(minimum = 1, maximum = 100)]
    pub max_pages: Option<i64>,
    /// Schedule: an interval (`"30m"`, `"6h"`, `"1d"`, at least 10s) or a 5-field cron
    /// expression (UTC).
    pub every: Option<String>,
}

/// A search as the API and `searches --json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SearchView {
    pub id: i64,
    pub site: String,
    /// The query (`null` for a URL search).
    pub query: Option<String>,
    /// The listing URLs of a URL search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    pub max_pages: i64,
    pub every: Option<String>,
    /// Next scheduled run, epoch ms (`null` without a schedule, or paused).
    pub next_run_at: Option<i64>,
    /// Its schedule is paused (`POST /searches/{id}/pause`; `…/resume` starts it again).
    pub paused: bool,
    /// Epoch ms.
    pub created_at: i64,
    /// `collecting` (its pages are being read), `queued` (its jobs wait for workers), `done`
    /// (every job settled), `failed` (its collection failed: see `error`) or `deleted`.
    pub status: String,
    /// Why its collection failed.
    pub error: Option<String>,
    /// When it became done or failed, epoch ms.
    pub finished_at: Option<i64>,
    /// How the jobs of its latest collection ended: pending, stored, gone, failed, dead.
    pub jobs: crate::store::search_jobs::JobOutcomes,
    /// Listings found by the latest collection of its search pages.
    pub listings_found: i64,
    /// Jobs published by the latest collection.
    pub jobs_published: i64,
    /// Listings found over all runs.
    pub listings: i64,
    pub runs: i64,
    /// Status of the latest run: `collecting`, `queued`, `done` or `failed`.
    pub last_run_status: Option<String>,
}

impl From<TrackedSearchRow> for SearchView {
    fn from(row: TrackedSearchRow) -> SearchView {
        let urls = row
            .urls
            .as_deref()
            .and_then(|u| serde_json::from_str(u).ok());
        SearchView {
            query: urls.is_none().then_some(row.query),
            urls,
            status: match row.deleted_at {
                Some(_) => "deleted".into(),
                None => row.status,
            },
            id: row.id,
            site: row.site,
            max_pages: row.max_pages,
            paused: row.every.is_some() && row.next_run_at.is_none() && row.deleted_at.is_none(),
            every: row.every,
            next_run_at: row.next_run_at,
            created_at: row.requested_at,
            listings_found: row.listings_found,
            jobs_published: row.jobs_published,
            listings: row.listings,
            runs: row.runs,
            last_run_status: row.last_run_status,
            error: row.error,
            finished_at: row.finished_at,
            jobs: row.jobs,
        }
    }
}

/// A requested run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RunView {
    pub search_id: i64,
    /// The run's number (1 is the search's first collection).
    pub run: i64,
    pub status: String,
}

/// One page of listings, and the id to continue after when there are more.
#[derive(Debug, Clone)]
pub struct ListingsPage {
    pub items: Vec<ListingJson>,
    pub next_after: Option<i64>,
}

/// One price observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PricePoint {
    /// Epoch ms.
    pub observed_at: i64,
    pub price_minor: i64,
    pub currency: String,
}

/// A listing with its price history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ListingDetail {
    #[serde(flatten)]
    pub listing: ListingJson,
    pub price_history: Vec<PricePoint>,
}

impl Tracker {
    pub fn new(store: Store, sites: Arc<Sites>) -> Tracker {
        Tracker {
            store,
            sites,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Validates and records a search with its first run, which a collector starts at once.
    pub async fn create_search(&self, request: &SearchRequest) -> Result<SearchView, TrackerError> {
        let checked = self.check_search(request)?;
        let now = self.store.db_now_ms().await?;
        let next_run_at = checked.schedule.as_ref().and_then(|s| s.next_after(now));
        let urls = checked.urls.map(|u| serde_json::json!(u).to_string());
        let id = self
            .store
            .create_tracked_search(&NewSearch {
                site: &request.site,
                query: checked.query,
                urls: urls.as_deref(),
                max_pages: checked.max_pages,
                every: request.every.as_deref().map(str::trim),
                next_run_at,
            })
            .await?;
        self.wake.notify_one();
        self.search(id).await
    }

    /// Every search not deleted, oldest first.
    pub async fn searches(&self) -> Result<Vec<SearchView>, TrackerError> {
        let rows = self.store.tracked_searches().await?;
        Ok(rows.into_iter().map(SearchView::from).collect())
    }

    /// One search that is not deleted.
    pub async fn search(&self, id: i64) -> Result<SearchView, TrackerError> {
        match self.store.tracked_search(id).await? {
            Some(row) if row.deleted_at.is_none() => Ok(row.into()),
            _ => Err(TrackerError::SearchNotFound(id)),
        }
    }

    /// Stops a search's schedule and hides it; its listings and their history stay.
    pub async fn delete_search(&self, id: i64) -> Result<(), TrackerError> {
        match self.store.delete_search(id).await? {
            true => Ok(()),
            false => Err(TrackerError::SearchNotFound(id)),
        }
    }

    /// Pauses a search's schedule: no run starts until it is resumed (a run requested by hand
    /// still does). Pausing a paused search changes nothing.
    pub async fn pause_schedule(&self, id: i64) -> Result<SearchView, TrackerError> {
        self.search(id).await?;
        match self.store.set_next_run(id, None).await? {
            true => self.search(id).await,
            false => Err(TrackerError::NoSchedule(id)),
        }
    }

    /// Resumes a paused schedule from now: its next run is the schedule's next time after now
    /// (missed runs are not made up).
    pub async fn resume_schedule(&self, id: i64) -> Result<SearchView, TrackerError> {
        let search = self.search(id).await?;
        let every = search.every.ok_or(TrackerError::NoSchedule(id))?;
        let schedule = every
            .parse::<Schedule>()
            .map_err(|e| TrackerError::Internal(format!("search {id}'s schedule: {e}")))?;
        let now = self.store.db_now_ms().await?;
        match self
            .store
            .set_next_run(id, schedule.next_after(now))
            .await?
        {
            true => {
                self.wake.notify_one();
                self.search(id).await
            }
            false => Err(TrackerError::NoSchedule(id)),
        }
    }

    /// Requests a run now: its collector collects the search pages again and re-queues every
    /// listing the search found before. Refused while an earlier run is still collecting.
    pub async fn run_search(&self, id: i64) -> Result<RunView, TrackerError> {
        self.search(id).await?;
        if self.store.run_collecting(id).await? {
            return Err(TrackerError::RunInProgress(id));
        }
        let run = match self.store.request_run(id).await {
            Ok(run) => run,
            // Another request took the same run number a moment ago.
            Err(StoreError::Rejected(_)) => return Err(TrackerError::RunInProgress(id)),
            Err(e) => return Err(e.into()),
        };
        self.wake.notify_one();
        Ok(RunView {
            search_id: id,
            run,
            status: "collecting".into(),
        })
    }

    /// One page of listings in id order: at most `query.limit`, after `query.after_id`.
    pub async fn listings(&self, query: &ListingPage) -> Result<ListingsPage, TrackerError> {
        self.check_listing_query(query)?;
        let page = ListingPage {
            // One more than asked tells whether another page follows.
            limit: query.limit + 1,
            ..query.clone()
        };
        let mut rows = self.store.listings_page(&page).await?;
        let more = rows.len() > query.limit as usize;
        rows.truncate(query.limit as usize);
        let next_after = more.then(|| rows.last().map(|r| r.id)).flatten();
        let items = rows
            .into_iter()
            .map(|row| ListingJson::from_row(row, None))
            .collect();
        Ok(ListingsPage { items, next_after })
    }

    /// One listing with its price history, oldest first.
    pub async fn listing(
        &self,
        site: &str,
        external_id: &str,
    ) -> Result<ListingDetail, TrackerError> {
        let Some(row) = self.store.listing(site, external_id).await? else {
            return Err(TrackerError::ListingNotFound {
                site: site.into(),
                external_id: external_id.into(),
            });
        };
        let history = self.store.price_history(row.id).await?;
        let price_history = history
            .into_iter()
            .map(|o| PricePoint {
                observed_at: o.observed_at,
                price_minor: o.price_minor,
                currency: o.currency,
            })
            .collect();
        Ok(ListingDetail {
            listing: ListingJson::from_row(row, None),
            price_history,
        })
    }

    fn known_site(&self, site: &str) -> Result<&Site, TrackerError> {
        self.sites.get(site).map_err(|_| TrackerError::UnknownSite {
            site: site.into(),
            known: self.sites.names().map(String::from).collect(),
        })
    }

    fn check_listing_query(&self, query: &ListingPage) -> Result<(), TrackerError> {
        if let Some(site) = &query.site {
            self.known_site(site)?;
        }
        if let Some(status) = &query.status
            && crate::domain::ListingStatus::parse(status).is_none()
        {
            return Err(TrackerError::invalid(
                "status",
                "use pending, active, ended, gone or failed",
            ));
        }
        if let (Some(min), Some(max)) = (query.min_price_minor, query.max_price_minor)
            && min > max
        {
            return Err(TrackerError::invalid(
                "min_price_minor",
                "is above max_price_minor",
            ));
        }
        Ok(())
    }

    fn check_search<'a>(
        &self,
        request: &'a SearchRequest,
    ) -> Result<CheckedSearch<'a>, TrackerError> {
        let site = self.known_site(&request.site)?;
        let mut errors = Vec::new();
        let mut field = |name: &str, message: String| {
            errors.push(FieldError {
                field: name.into(),
                message,
            })
        };
        let max_pages = request.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
        if !(1..=MAX_MAX_PAGES).contains(&max_pages) {
            field(
                "max_pages",
                format!("must be between 1 and {MAX_MAX_PAGES}"),
            );
        }
        let schedule = match request.every.as_deref().map(str::parse::<Schedule>) {
            Some(Ok(schedule)) => Some(schedule),
            Some(Err(e)) => {
                field("every", e.to_string());
                None
            }
            None => None,
        };
        let query = request
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty());
        errors.extend(check_source(site, query, request.urls.as_deref()));
        if !errors.is_empty() {
            return Err(TrackerError::Invalid(errors));
        }
        Ok(CheckedSearch {
            query: query.unwrap_or_default(),
            urls: request.urls.as_deref(),
            // In 1..=100 (checked above).
            max_pages: u32::try_from(max_pages).unwrap_or(1),
            schedule,
        })
    }
}

/// Whether a search names exactly one source, a query or listing URLs of its site.
fn check_source(site: &Site, query: Option<&str>, urls: Option<&[String]>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut field = |name: &str, message: String| {
        errors.push(FieldError {
            field: name.into(),
            message,
        })
    };
    match (query, urls) {
        (Some(_), Some(_)) => field("query", "give a query or urls, not both".into()),
        (None, None) => field("query", "give a query or urls".into()),
        (Some(q), None) if q.chars().count() > MAX_QUERY_CHARS => field(
            "query",
            format!("is longer than {MAX_QUERY_CHARS} characters"),
        ),
        (Some(_), None) if site.search_def().is_err() => field(
            "query",
            format!("site `{}` has no search pages; give urls", site.name),
        ),
        (None, Some(urls)) if urls.is_empty() || urls.len() > MAX_URLS => {
            field("urls", format!("give 1 to {MAX_URLS} listing URLs"))
        }
        (None, Some(urls)) => {
            for (i, url) in urls.iter().enumerate() {
                if let Err(reason) = site.check_listing_url(url) {
                    let shown: String = url.chars().take(120).collect();
                    field(
                        &format!("urls[{i}]"),
                        format!(
                            "`{shown}` is not a listing URL of site `{}`: {reason}",
                            site.name
                        ),
                    );
                }
            }
        }
        _ => {}
    }
    errors
}

/// A search request that passed validation.
struct CheckedSearch<'a> {
    query: &'a str,
    urls: Option<&'a [String]>,
    max_pages: u32,
    schedule: Option<Schedule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Site {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
        Sites::load(&dir).unwrap().get("fixture").unwrap().clone()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_search_names_a_query_or_listing_urls_of_its_site() {
        let site = fixture();
        assert!(check_source(&site, Some("lamp"), None).is_empty());
        let ok = ["http://127.0.0.1:8377/item/123".to_string()];
        assert!(check_source(&site, None, Some(&ok)).is_empty());
        assert_eq!(fields(&check_source(&site, None, None)), ["query"]);
        assert_eq!(
            fields(&check_source(&site, Some("x"), Some(&ok))),
            ["query"]
        );
        assert_eq!(fields(&check_source(&site, None, Some(&[]))), ["urls"]);
        let mixed = [
            ok[0].clone(),
            "https://elsewhere.example/item/1".to_string(),
        ];
        let errors = check_source(&site, None, Some(&mixed));
        assert_eq!(fields(&errors), ["urls[1]"]);
        assert!(
            errors[0].message.contains("elsewhere.example"),
            "{errors:?}"
        );
    }
}

//! Collect: a search becomes listing jobs. The search pages are rendered by the same renderer as
//! listings, parsed by `extract_search`, deduplicated by (site, listing id), recorded as the search's
//! hits, and published as one persistent, confirmed job per listing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::classify::challenge_wait;
use crate::domain::Job;
use crate::extract::extract_search;
use crate::queue::{Queue, QueueError};
use crate::render::{RenderError, RenderRequest, Renderer};
use crate::site::{ListingUrlError, Site};
use crate::store::{Store, StoreError};

/// How long a search page may take to become ready.
const SEARCH_READY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("Failed to render search page {url}: {source}")]
    Render { url: String, source: RenderError },
    #[error("search page {url} never became ready (HTTP {status:?})")]
    NotReady { url: String, status: Option<u16> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Site(#[from] crate::site::SiteError),
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CollectReport {
    pub search_id: i64,
    pub pages: u32,
    pub listings_found: usize,
    pub jobs_published: usize,
}

/// Renders up to `max_pages` search pages, records hits and publishes jobs.
pub async fn collect<R: Renderer, Q: Queue>(
    site: &Site,
    query: &str,
    max_pages: u32,
    renderer: &R,
    store: &Store,
    queue: &Q,
) -> Result<CollectReport, CollectError> {
    // A site without search pages is refused before a search is recorded.
    site.search_def()?;
    let search_id = store.create_search(&site.name, query, max_pages).await?;
    collect_into(site, query, max_pages, search_id, renderer, store, queue).await
}

/// Collects into an existing search. Hits the search already recorded (a resumed, interrupted
/// collection) are not published again: a hit is recorded only after its job was confirmed.
pub async fn collect_into<R: Renderer, Q: Queue>(
    site: &Site,
    query: &str,
    max_pages: u32,
    search_id: i64,
    renderer: &R,
    store: &Store,
    queue: &Q,
) -> Result<CollectReport, CollectError> {
    let target = SearchRun {
        search_id,
        run: None,
    };
    collect_run(site, query, max_pages, target, renderer, store, queue).await
}

/// The search, and the run of it, that a collection publishes jobs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchRun {
    pub search_id: i64,
    /// `None` for collections outside the tracker's runs (`enqueue`, `crawl`).
    pub run: Option<i64>,
}

/// [`collect_into`] for one run of a search: its jobs carry the run, so each run observes the
/// listings' prices again. The search ends `queued` (or `done`, when its workers were faster),
/// or `failed` with the reason when its pages could not be collected.
pub async fn collect_run<R: Renderer, Q: Queue>(
    site: &Site,
    query: &str,
    max_pages: u32,
    target: SearchRun,
    renderer: &R,
    store: &Store,
    queue: &Q,
) -> Result<CollectReport, CollectError> {
    let collected = collect_pages(site, query, max_pages, target, renderer, store, queue).await;
    match collected {
        Ok(report) => {
            let search_id = target.search_id;
            store
                .finish_collection(search_id, report.listings_found, report.jobs_published)
                .await?;
            Ok(report)
        }
        Err(e) => {
            if let Err(store_error) = store.fail_search(target.search_id, &e.to_string()).await {
                tracing::warn!(error = %store_error, search_id = target.search_id,
                    "Could not mark the search failed.");
            }
            Err(e)
        }
    }
}

/// Renders the search pages, records their hits and publishes a job per new hit.
async fn collect_pages<R: Renderer, Q: Queue>(
    site: &Site,
    query: &str,
    max_pages: u32,
    target: SearchRun,
    renderer: &R,
    store: &Store,
    queue: &Q,
) -> Result<CollectReport, CollectError> {
    let search_id = target.search_id;
    let recorded: HashSet<String> = store.search_hit_ids(search_id).await?.into_iter().collect();
    let mut report = CollectReport {
        search_id,
        ..CollectReport::default()
    };
    let mut seen = HashSet::new();
    let mut next = Some(site.search_url(query, 1)?);
    while let Some(url) = next.take() {
        if report.pages >= max_pages {
            break;
        }
        report.pages += 1;
        let (hits, next_page) = search_page(site, &url, renderer).await?;
        let fresh: Vec<_> = hits
            .into_iter()
            .filter(|hit| seen.insert(hit.external_id.clone()))
            .map(|hit| {
                report.listings_found += 1;
                (report.listings_found, hit)
            })
            .collect();
        let unrecorded = fresh
            .iter()
            .map(|(_, hit)| hit)
            .filter(|hit| !recorded.contains(&hit.external_id));
        report.jobs_published += publish_hits(site, unrecorded, target, store, queue).await?;
        store
            .add_hits(search_id, &site.name, report.pages, &fresh)
            .await?;
        log_page(search_id, report.pages, report.listings_found, &fresh);
        next = next_page;
    }
    Ok(report)
}

/// Logs a collected search page: each new hit with its price as read (debug), then the page.
fn log_page(search_id: i64, page: u32, found: usize, fresh: &[(usize, crate::domain::SearchHit)]) {
    for (rank, hit) in fresh {
        let price = hit
            .price
            .map(|m| format!("{} {}", m.currency, m.to_decimal_string()));
        let price = price.as_deref().unwrap_or("-");
        tracing::debug!(search_id, rank, listing = %hit.external_id, price, text = ?hit.price_text, "Search hit.");
    }
    let priced = fresh.iter().filter(|(_, hit)| hit.price.is_some()).count();
    tracing::info!(search_id, page, found, priced, "Search page collected.");
}

/// Publishes one job per hit for the search run; returns how many.
async fn publish_hits<'a, Q: Queue>(
    site: &Site,
    hits: impl Iterator<Item = &'a crate::domain::SearchHit>,
    target: SearchRun,
    store: &Store,
    queue: &Q,
) -> Result<usize, CollectError> {
    let mut published = 0;
    for hit in hits {
        let now = store.db_now_ms().await?;
        let mut job = new_job(site, &hit.url, Some(target.search_id), now);
        job.run = target.run;
        publish_job(&job, store, queue).await?;
        published += 1;
    }
    Ok(published)
}

/// Publishes a job of a search after recording it as one of the search's pending jobs (so the
/// worker that settles it finds the row, however fast it is).
pub async fn publish_job<Q: Queue>(
    job: &Job,
    store: &Store,
    queue: &Q,
) -> Result<(), CollectError> {
    store.record_search_job(job).await?;
    queue.publish(job).await?;
    Ok(())
}

/// Publishes the jobs of a URL list as search `search_id`'s and records them as its hits (in
/// list order); a listing the search already recorded (a resumed run) is not published again.
/// Returns how many jobs were published.
pub async fn publish_urls<Q: Queue>(
    site: &Site,
    jobs: &[Job],
    search_id: i64,
    store: &Store,
    queue: &Q,
) -> Result<usize, CollectError> {
    let recorded: HashSet<String> = store.search_hit_ids(search_id).await?.into_iter().collect();
    let mut published = 0;
    let mut hits = Vec::new();
    for (rank, job) in jobs.iter().enumerate() {
        let Some(id) = site.listing_id(&job.url) else {
            continue;
        };
        if !recorded.contains(&id) {
            let mut job = job.clone();
            job.search_id = Some(search_id);
            publish_job(&job, store, queue).await?;
            published += 1;
        }
        let hit = crate::domain::SearchHit {
            external_id: id,
            url: job.url.clone(),
            title: None,
            price_text: None,
            price: None,
        };
        hits.push((rank + 1, hit));
    }
    store.add_hits(search_id, &site.name, 1, &hits).await?;
    Ok(published)
}

/// Renders one search page (retrying transient failures) and parses it.
async fn search_page<R: Renderer>(
    site: &Site,
    url: &str,
    renderer: &R,
) -> Result<(Vec<crate::domain::SearchHit>, Option<String>), CollectError> {
    let challenge = challenge_wait(site, SEARCH_READY_TIMEOUT);
    let request = RenderRequest::search(site, url, SEARCH_READY_TIMEOUT, challenge);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .with_max_times(4);
    let page = (|| async { renderer.render(&request).await })
        .retry(backoff)
        .notify(|e, d| tracing::warn!(error = %e, ?d, "Search page failed; retrying."))
        .await
        .map_err(|source| CollectError::Render {
            url: url.to_string(),
            source,
        })?;
    if !page.ready {
        return Err(CollectError::NotReady {
            url: url.to_string(),
            status: page.status,
        });
    }
    let (site, final_url) = (site.clone(), page.url.clone());
    let parsed = tokio::task::spawn_blocking(move || extract_search(&page.html, &final_url, &site))
        .await
        .map_err(|e| CollectError::Render {
            url: url.to_string(),
            source: RenderError::Browser(format!("parser task: {e}")),
        })?;
    Ok((parsed.hits, parsed.next_page))
}

/// A job with a fresh id, published at `now` (epoch ms on the database's clock, which the
/// worker's "already stored since" check compares with).
pub fn new_job(site: &Site, url: &str, search_id: Option<i64>, now: i64) -> Job {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    Job {
        id: Job::new_id(now, SEQ.fetch_add(1, Ordering::Relaxed)),
        published_at: now,
        site: site.name.clone(),
        url: url.to_string(),
        search_id,
        run: None,
    }
}

/// A line of a URL list that cannot become a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedUrl {
    pub line: usize,
    pub text: String,
    pub reason: ListingUrlError,
}

/// Turns a list of listing URLs (one per line, `#` comments and blanks ignored) into jobs,
/// rejecting lines that are not listing URLs of `site` (or are too long to be real ones). `now`
/// is the publish time on the database's clock.
pub fn jobs_from_urls(site: &Site, text: &str, now: i64) -> (Vec<Job>, Vec<RejectedUrl>) {
    let mut jobs = Vec::new();
    let mut rejected = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let url = line.trim();
        if url.is_empty() || url.starts_with('#') {
            continue;
        }
        match site.check_listing_url(url) {
            Ok(id) if seen.insert(id.clone()) => jobs.push(new_job(site, url, None, now)),
            Ok(_) => {}
            Err(reason) => rejected.push(RejectedUrl {
                line: i + 1,
                // An over-long line is shown by its start only.
                text: url.chars().take(120).collect(),
                reason,
            }),
        }
    }
    (jobs, rejected)
}

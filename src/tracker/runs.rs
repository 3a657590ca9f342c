//! Runs of tracked searches: the scheduler that starts due runs and the collector that collects
//! them. Both run inside `serve` (and `scrapefarm scheduler`), as tracked tasks raced against
//! the shutdown token.
//!
//! Design:
//! - **A run is a row** (`search_runs`): run 1 is created with the search, later ones by
//!   `POST /searches/{id}/runs`, `searches run ID` or the scheduler. Its number travels on every
//!   job it publishes (`Job::run`), and price observations are keyed per (listing, search, run),
//!   so each run observes every price once more while a redelivered job still adds nothing.
//! - **Scheduling is a compare-and-set**: a due search is claimed by moving `next_run_at` from
//!   the value read to the next slot (`UPDATE … WHERE id = ? AND next_run_at = ?`); only the
//!   scheduler whose update touched the row inserts the run, in the same transaction. Any number
//!   of schedulers may run; none leads. Missed slots (every scheduler down) are skipped.
//! - **Collection is leased**: a collector claims a waiting run with a lease on the database's
//!   clock, renews it while it works and gives it back on shutdown; a run whose collector died is
//!   taken over when the lease expires. Collecting renders the search pages (publishing the new
//!   listings) and then re-queues every listing the search found before. The browser is launched
//!   on the first run that needs one (query searches) and kept until shutdown; the workers that
//!   render the listings are separate `scrapefarm worker` processes on the same queue.
//! - A run is `collecting` until its jobs are published, then `queued`, then `done` once every
//!   listing of the search was enriched after the run started (failed ones aside), or `failed`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::Tracker;
use super::schedule::Schedule;
use crate::cli::Common;
use crate::collect::{CollectError, SearchRun, collect_run, new_job, publish_job};
use crate::domain::SearchHit;
use crate::queue::AnyQueue;
use crate::render::{AnyRenderer, Renderer};
use crate::site::Site;
use crate::store::searches::{DueSearch, RunClaim, TrackedSearchRow};
use crate::store::{Store, StoreError};

/// How often the scheduler looks for due searches (the resolution of a schedule).
pub const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// How often an idle collector looks for runs requested by other processes.
const COLLECTOR_POLL: Duration = Duration::from_secs(2);
/// A collector's lease on a run; renewed every third of it while the run is collected.
const RUN_LEASE: Duration = Duration::from_secs(60);
/// How long a run interrupted by a transient failure (store, queue or browser down) waits before
/// any collector tries it again.
const RETRY_TRANSIENT: Duration = Duration::from_secs(30);
/// How long launching the collector's browser may take.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts every due scheduled run this process wins; returns how many it started.
pub async fn start_due_runs(store: &Store) -> Result<usize, StoreError> {
    let mut started = 0;
    for due in store.due_searches().await? {
        let schedule: Schedule = match due.every.parse() {
            Ok(schedule) => schedule,
            Err(e) => {
                // Validated when the search was created; a row edited by hand is skipped.
                tracing::warn!(search_id = due.id, error = %e, "Search has an invalid schedule.");
                continue;
            }
        };
        let now = store.db_now_ms().await?;
        let next = next_slot(&schedule, &due, now);
        if let Some(run) = store.claim_due_run(&due, next).await? {
            tracing::info!(search_id = due.id, run, "Scheduled run started.");
            started += 1;
        }
    }
    Ok(started)
}

/// The slot after the one being started: an interval counts from the slot (so runs keep their
/// rhythm), but never lands in the past (slots missed while no scheduler ran are skipped).
fn next_slot(schedule: &Schedule, due: &DueSearch, now: i64) -> Option<i64> {
    match schedule {
        Schedule::Every(_) => {
            let next = schedule.next_after(due.next_run_at)?;
            match next > now {
                true => Some(next),
                false => schedule.next_after(now),
            }
        }
        Schedule::Cron(_) => schedule.next_after(now),
    }
}

/// The scheduler loop: every tick, start due runs and settle finished ones, until shutdown.
pub async fn run_scheduler(tracker: Tracker, shutdown: CancellationToken) {
    tracing::info!("Scheduler started.");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(SCHEDULER_TICK) => {}
        }
        match start_due_runs(&tracker.store).await {
            Ok(0) => {}
            Ok(_) => tracker.wake.notify_one(),
            Err(e) => {
                tracing::warn!(error = %e, "Scheduler could not start due runs; trying again.")
            }
        }
        if let Err(e) = tracker.store.settle_queued_runs().await {
            tracing::warn!(error = %e, "Scheduler could not settle queued runs.");
        }
    }
    tracing::info!("Scheduler stopped.");
}

/// Collects runs: claims waiting ones, renders their search pages with its own browser
/// (launched on first need) and publishes their jobs.
pub struct Collector {
    tracker: Tracker,
    queue: AnyQueue,
    common: Common,
    owner: String,
    /// The browser profile (a subfolder of the profile root) it renders with.
    profile: String,
    renderer: Mutex<Option<AnyRenderer>>,
}

/// Why a run's collection stopped.
#[derive(Debug, thiserror::Error)]
enum RunError {
    /// The store, queue or browser is down: give the run back and try later.
    #[error("{0}")]
    Transient(String),
    /// This run cannot be collected (search deleted, unknown site, pages never ready…).
    #[error("{0}")]
    Failed(String),
}

impl From<CollectError> for RunError {
    fn from(e: CollectError) -> RunError {
        match e {
            CollectError::Store(StoreError::Rejected(_)) | CollectError::Site(_) => {
                RunError::Failed(e.to_string())
            }
            CollectError::Store(_) | CollectError::Queue(_) => RunError::Transient(e.to_string()),
            CollectError::Render { .. } | CollectError::NotReady { .. } => {
                RunError::Failed(e.to_string())
            }
        }
    }
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> RunError {
        CollectError::Store(e).into()
    }
}

impl Collector {
    /// `profile` names the browser profile (a subfolder of the profile root) it renders with;
    /// two collectors never share one.
    pub fn new(tracker: Tracker, queue: AnyQueue, common: Common, profile: &str) -> Collector {
        let host = crate::store::leases::lease_host();
        Collector {
            tracker,
            queue,
            common,
            owner: format!("{profile}@{host} (pid {})", std::process::id()),
            profile: profile.to_string(),
            renderer: Mutex::new(None),
        }
    }

    /// Claims and collects runs until shutdown, then closes its browser.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::info!(owner = %self.owner, "Collector started.");
        while !shutdown.is_cancelled() {
            loop {
                let claim = self.claim(None).await;
                match claim {
                    Ok(Some(claim)) => self.collect_leased(&claim, &shutdown).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "Collector could not claim runs; trying again.");
                        break;
                    }
                }
                if shutdown.is_cancelled() {
                    break;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.tracker.wake.notified() => {}
                _ = tokio::time::sleep(COLLECTOR_POLL) => {}
            }
        }
        if let Some(renderer) = self.renderer.lock().await.take() {
            renderer.close().await;
        }
        tracing::info!("Collector stopped.");
    }

    async fn claim(&self, search_id: Option<i64>) -> Result<Option<RunClaim>, StoreError> {
        let lease_ms = RUN_LEASE.as_millis() as i64;
        let store = &self.tracker.store;
        store.claim_run(&self.owner, lease_ms, search_id).await
    }

    /// Collects the waiting run of one search here and now (`enqueue --every`), then closes the
    /// browser; false when no run of it was waiting.
    pub async fn collect_now(
        &self,
        search_id: i64,
        shutdown: &CancellationToken,
    ) -> Result<bool, StoreError> {
        let Some(claim) = self.claim(Some(search_id)).await? else {
            return Ok(false);
        };
        self.collect_leased(&claim, shutdown).await;
        if let Some(renderer) = self.renderer.lock().await.take() {
            renderer.close().await;
        }
        Ok(true)
    }

    /// Collects one claimed run while renewing its lease; on shutdown the run is given back.
    async fn collect_leased(&self, claim: &RunClaim, shutdown: &CancellationToken) {
        let store = &self.tracker.store;
        let lease_ms = RUN_LEASE.as_millis() as i64;
        let work = self.collect(claim);
        tokio::pin!(work);
        let mut renew = tokio::time::interval(RUN_LEASE / 3);
        renew.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = renew.tick() => {
                    // A failed renewal (store down) keeps working: the lease is still ours
                    // until it expires, and the collection itself will fail if the store stays down.
                    if !store.renew_run_lease(claim.id, &self.owner, lease_ms).await.unwrap_or(true) {
                        tracing::warn!(search_id = claim.search_id, run = claim.run, "Run lease lost; another collector has it.");
                        return;
                    }
                }
                _ = shutdown.cancelled() => {
                    let _ = store.release_run(claim.id, &self.owner, 0).await;
                    return;
                }
            }
        };
        let finished = match &result {
            Ok(jobs) => {
                tracing::info!(
                    search_id = claim.search_id,
                    run = claim.run,
                    jobs,
                    "Run queued."
                );
                // A URL search's run collects no pages: its search is queued here.
                match store.search_queued(claim.search_id).await {
                    Ok(_) => store.finish_run(claim.id, "queued", *jobs, None).await,
                    Err(e) => Err(e),
                }
            }
            Err(RunError::Failed(reason)) => {
                tracing::warn!(search_id = claim.search_id, run = claim.run, %reason, "Run failed.");
                store.finish_run(claim.id, "failed", 0, Some(reason)).await
            }
            Err(RunError::Transient(reason)) => {
                tracing::warn!(search_id = claim.search_id, run = claim.run, %reason, "Run interrupted; it is collected again later.");
                let retry_ms = RETRY_TRANSIENT.as_millis() as i64;
                store.release_run(claim.id, &self.owner, retry_ms).await
            }
        };
        if let Err(e) = finished {
            tracing::warn!(error = %e, "Could not record the end of a run; its lease expires.");
        }
    }

    /// Collects one run: the search pages (or URL list), then every listing found before.
    async fn collect(&self, claim: &RunClaim) -> Result<usize, RunError> {
        let store = &self.tracker.store;
        let search = match store.tracked_search(claim.search_id).await? {
            Some(search) if search.deleted_at.is_none() => search,
            _ => return Err(RunError::Failed("the search was deleted".into())),
        };
        let site = self
            .tracker
            .sites
            .get(&search.site)
            .map_err(|e| RunError::Failed(e.to_string()))?;
        let target = SearchRun {
            search_id: search.id,
            run: Some(claim.run),
        };
        // Read before this run records new hits: those are published by the collection itself.
        let found_before = match claim.run {
            1 => Vec::new(),
            _ => store.search_listing_urls(search.id).await?,
        };
        let mut jobs = match &search.urls {
            Some(urls) => self.record_urls(site, urls, target).await?,
            None => self.collect_pages(site, &search, target).await?,
        };
        if search.urls.is_none() {
            jobs += self.publish(site, &found_before, target).await?;
        }
        Ok(jobs)
    }

    /// Renders the search pages in this collector's browser.
    async fn collect_pages(
        &self,
        site: &Site,
        search: &TrackedSearchRow,
        target: SearchRun,
    ) -> Result<usize, RunError> {
        let mut renderer = self.renderer.lock().await;
        if renderer.is_none() {
            let launch = crate::app::launch_renderer(&self.common, &self.profile, 1, true);
            let launched = tokio::time::timeout(LAUNCH_TIMEOUT, launch)
                .await
                .map_err(|_| RunError::Transient("the collector's browser did not start".into()))?
                .map_err(|e| RunError::Transient(format!("the collector's browser: {e:#}")))?;
            *renderer = Some(launched);
        }
        let Some(browser) = renderer.as_ref() else {
            return Err(RunError::Transient("no browser".into()));
        };
        let max_pages = u32::try_from(search.max_pages).unwrap_or(1);
        let store = &self.tracker.store;
        let result = collect_run(
            site,
            &search.query,
            max_pages,
            target,
            browser,
            store,
            &self.queue,
        )
        .await;
        if let Err(CollectError::Render { .. }) = &result
            && let Some(broken) = renderer.take()
        {
            // A browser that failed to render is replaced before the next run.
            broken.close().await;
        }
        Ok(result?.jobs_published)
    }

    /// A URL search: records its listings as the search's hits and publishes them.
    async fn record_urls(
        &self,
        site: &Site,
        urls: &str,
        target: SearchRun,
    ) -> Result<usize, RunError> {
        let urls: Vec<String> = serde_json::from_str(urls)
            .map_err(|e| RunError::Failed(format!("the search's URL list is unreadable: {e}")))?;
        let hits: Vec<(usize, SearchHit)> = urls
            .iter()
            .filter_map(|url| Some((site.check_listing_url(url).ok()?, url)))
            .enumerate()
            .map(|(i, (external_id, url))| {
                let hit = SearchHit {
                    external_id,
                    url: url.clone(),
                    title: None,
                    price_text: None,
                    price: None,
                };
                (i + 1, hit)
            })
            .collect();
        let jobs = self.publish(site, &urls, target).await?;
        self.tracker
            .store
            .add_hits(target.search_id, &site.name, 1, &hits)
            .await?;
        Ok(jobs)
    }

    /// Publishes one job of the run per URL.
    async fn publish(
        &self,
        site: &Site,
        urls: &[String],
        target: SearchRun,
    ) -> Result<usize, RunError> {
        let now = self.tracker.store.db_now_ms().await?;
        for url in urls {
            let mut job = new_job(site, url, Some(target.search_id), now);
            job.run = target.run;
            publish_job(&job, &self.tracker.store, &self.queue).await?;
        }
        Ok(urls.len())
    }
}

//! The pipeline: `run_job` is the one place where the stages run in order — render → classify →
//! extract → snapshot → store — for one delivery, ending in a [`Disposition`] that says what the
//! worker does with the delivery. Every error answers "what next?" through `disposition()`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::classify::{PageClass, challenge_markers, classify};
use crate::domain::{Job, ListingStatus, Record};
use crate::extract::{ExtractError, extract_listing};
use crate::pace::Pacer;
use crate::render::{ChallengeWait, Page, RenderError, RenderRequest, Renderer};
use crate::site::{Site, Sites};
use crate::snapshot::{self, SnapshotError, SnapshotInput};
use crate::store::{ListingSave, SnapshotMeta, Store, StoreError};
use crate::telemetry::{Stage, Stats};

/// What the worker does with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Republish to a delay tier with the next attempt number, then ack.
    Retry {
        after: Duration,
        reason: String,
    },
    /// Park in the dead-letter queue with the reason, then ack.
    DeadLetter {
        reason: String,
    },
    /// The store is down: stop consuming and leave the delivery to the broker.
    Halt {
        reason: String,
    },
    /// Not attempted (the worker is shutting down): give the delivery back untouched.
    GiveBack,
}

/// Why an attempt did not store the listing.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("page classified as {}", .0.name())]
    Page(PageClass),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the worker is shutting down")]
    ShuttingDown,
    #[error("page too large: {0} bytes of HTML, over the {MAX_PAGE_BYTES}-byte limit")]
    TooLarge(usize),
}

/// Retry delays: exponential with jitter, computed by backon.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    pub min: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    /// 2 s doubling to 5 min: long enough that a blocked profile cools down, short enough that a
    /// transient 5xx is retried within the run.
    fn default() -> Self {
        BackoffPolicy {
            min: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The delay before attempt `attempt + 1`, given that `attempt` (1-based) just failed.
    pub fn delay(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(attempt as usize)
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max)
    }
}

impl AttemptError {
    /// What happens next, before the attempt budget is considered.
    pub fn disposition(&self, attempt: u32, policy: &BackoffPolicy) -> Disposition {
        let reason = self.to_string();
        match self {
            // The database refused this listing's row: waiting will not change its mind.
            AttemptError::Store(e) if e.is_rejected() => Disposition::DeadLetter { reason },
            AttemptError::Store(_) => Disposition::Halt { reason },
            // A full or failing disk is the worker's problem, not the job's: halt until it
            // takes writes again instead of burning every job's attempts.
            AttemptError::Snapshot(e) if e.is_disk_fault() => Disposition::Halt { reason },
            AttemptError::ShuttingDown => Disposition::GiveBack,
            AttemptError::Extract(_) | AttemptError::TooLarge(_) => {
                Disposition::DeadLetter { reason }
            }
            AttemptError::Page(PageClass::RateLimited { retry_after }) => Disposition::Retry {
                after: *retry_after,
                reason,
            },
            AttemptError::Page(PageClass::Blocked) => Disposition::Retry {
                // Blocks cool down slower than transient errors.
                after: policy.delay(attempt + 2),
                reason,
            },
            _ => Disposition::Retry {
                after: policy.delay(attempt),
                reason,
            },
        }
    }
}

/// Everything `run_job` needs; shared by the worker's tasks.
pub struct Pipeline<R> {
    pub sites: Arc<Sites>,
    pub renderer: Arc<R>,
    pub store: Store,
    pub snapshot_root: PathBuf,
    pub worker_id: String,
    pub max_attempts: u32,
    pub backoff: BackoffPolicy,
    pub stats: Arc<Stats>,
    pub pacer: Arc<Pacer>,
    /// Blocks in a row on this profile; at [`BLOCKS_BEFORE_NEW_IDENTITY`] the cookies are cleared.
    blocks: AtomicU32,
    /// One permit per tab: a job paces and renders only once a tab is free, so the pacer's
    /// spacing is the spacing of real requests while more deliveries than tabs are in flight
    /// (their classify/extract/snapshot/store overlaps the next render).
    render_slots: Semaphore,
    /// Cancelled when the worker shuts down: jobs still waiting for a tab are given back
    /// instead of starting pages the shutdown deadline may not leave time for.
    stopping: CancellationToken,
}

/// Unsettled deliveries after which a job is dead-lettered: enough to ride out a broker restart,
/// a store outage and a pod eviction, few enough that a job which kills its worker every time
/// stops after a handful of crashes (each one costs a browser and its in-flight pages).
pub const MAX_REDELIVERIES: u32 = 3;
/// Largest rendered page we process: real listing pages are 0.1–3 MB; beyond this a page costs
/// more to parse, snapshot and store than any listing is worth.
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Consecutive blocks after which the profile starts a fresh identity.
pub const BLOCKS_BEFORE_NEW_IDENTITY: u32 = 3;
/// How long a blocked profile leaves the site alone.
pub const BLOCK_COOLDOWN: Duration = Duration::from_secs(10);
/// How long a tab waits for a JS challenge to clear by itself.
pub const CHALLENGE_WAIT: Duration = Duration::from_secs(10);

impl<R: Renderer> Pipeline<R> {
    /// A pipeline with the default attempt budget (8) and backoff policy; at most `tabs` jobs
    /// pace and render at once (the renderer's tab count).
    pub fn new(
        sites: Arc<Sites>,
        renderer: Arc<R>,
        store: Store,
        snapshot_root: PathBuf,
        worker_id: &str,
        tabs: usize,
    ) -> Pipeline<R> {
        Pipeline {
            sites,
            renderer,
            pacer: Arc::new(Pacer::new(store.clone())),
            store,
            snapshot_root,
            worker_id: worker_id.to_string(),
            max_attempts: 8,
            backoff: BackoffPolicy::default(),
            stats: Arc::new(Stats::default()),
            blocks: AtomicU32::new(0),
            render_slots: Semaphore::new(tabs.max(1)),
            stopping: CancellationToken::new(),
        }
    }

    /// Whether the worker can take jobs again after a halt: the store answers and the snapshot
    /// directory takes writes.
    pub async fn ready_to_resume(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())?;
        let root = self.snapshot_root.clone();
        let probe = tokio::task::spawn_blocking(move || probe_writable(&root)).await;
        match probe {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("snapshot directory not writable: {e}")),
            Err(e) => Err(format!("snapshot probe task: {e}")),
        }
    }

    /// No job starts a page after this; those waiting for a tab are given back.
    pub fn stop_starting(&self) {
        self.stopping.cancel();
    }

    /// Runs one delivery through every stage and says what to do with it. `redelivered`: the
    /// queue handed this job out before and it was never settled (its worker died holding it,
    /// or gave it back).
    pub async fn run_job(&self, body: &[u8], attempt: u32, redelivered: bool) -> Disposition {
        let job = match Job::parse(body) {
            Ok(job) => job,
            Err(e) => {
                return Disposition::DeadLetter {
                    reason: e.to_string(),
                };
            }
        };
        let site = match self.sites.get(&job.site) {
            Ok(site) => site,
            Err(e) => {
                return Disposition::DeadLetter {
                    reason: e.to_string(),
                };
            }
        };
        let external_id = match site.check_listing_url(&job.url) {
            Ok(id) => id,
            Err(e) => {
                let url: String = job.url.chars().take(200).collect();
                let reason = format!("URL {url} cannot be a job: {e}");
                return Disposition::DeadLetter { reason };
            }
        };
        match self.already_satisfied(&job, site, &external_id).await {
            Ok(true) => return Disposition::Ack,
            Ok(false) => {}
            Err(e) => return AttemptError::Store(e).disposition(attempt, &self.backoff),
        }
        if redelivered && let Some(stop) = self.count_redelivery(&job).await {
            return stop;
        }
        match self.duplicate_copy(&job, attempt, redelivered).await {
            Ok(true) => return Disposition::Ack,
            Ok(false) => {}
            Err(e) => return AttemptError::Store(e).disposition(attempt, &self.backoff),
        }
        let started = Instant::now();
        match self
            .attempt(&job, site, &external_id, attempt, started)
            .await
        {
            Ok(()) => Disposition::Ack,
            Err(e) => {
                self.settle_failure(&job, &external_id, attempt, started, e)
                    .await
            }
        }
    }

    async fn attempt(
        &self,
        job: &Job,
        site: &Site,
        external_id: &str,
        attempt: u32,
        started: Instant,
    ) -> Result<(), AttemptError> {
        let request = RenderRequest {
            url: job.url.clone(),
            ready: Some(site.ready.clone()),
            ready_timeout: site.ready_timeout,
            screenshot: site.screenshot,
            challenge: Some(ChallengeWait {
                markers: challenge_markers(site),
                timeout: CHALLENGE_WAIT,
            }),
        };
        let start = async {
            let tab = self.render_slots.acquire().await.ok();
            self.pacer.acquire(&site.name, site.max_rps).await?;
            Ok::<_, AttemptError>(tab)
        };
        let tab = tokio::select! {
            biased;
            _ = self.stopping.cancelled() => return Err(AttemptError::ShuttingDown),
            tab = start => tab?,
        };
        tracing::debug!(attempt, url = %job.url, "Rendering.");
        let t = Instant::now();
        let page = self.renderer.render(&request).await?;
        self.stats.record(Stage::Render, t.elapsed());
        drop(tab);
        if page.html.len() > MAX_PAGE_BYTES {
            return Err(AttemptError::TooLarge(page.html.len()));
        }
        let (page, class, record) = self.classify_and_extract(page, site, &job.url).await?;
        self.react(site, &class).await?;
        let (status, record) = match (class.clone(), record) {
            (_, Some(Err(e))) => {
                let error = AttemptError::Extract(e);
                self.keep_debug(site, page, &error).await;
                return Err(error);
            }
            (PageClass::Content, record) => (ListingStatus::Active, record.and_then(Result::ok)),
            (PageClass::Ended, record) => (ListingStatus::Ended, record.and_then(Result::ok)),
            (PageClass::Gone, _) => (ListingStatus::Gone, None),
            (other, _) => {
                let error = AttemptError::Page(other);
                self.keep_debug(site, page, &error).await;
                return Err(error);
            }
        };
        let snapshot = match record {
            Some(_) => Some(self.write_snapshot(job, site, external_id, page).await?),
            None => None,
        };
        let t = Instant::now();
        self.store
            .save(&ListingSave {
                job,
                external_id,
                attempt,
                worker: &self.worker_id,
                status: Some(status),
                record: record.as_ref(),
                snapshot: snapshot.as_ref(),
                outcome: class.name(),
                detail: None,
                duration_ms: started.elapsed().as_millis() as i64,
            })
            .await?;
        self.stats.record(Stage::Store, t.elapsed());
        Stats::bump(match status {
            ListingStatus::Gone => &self.stats.gone,
            _ => &self.stats.stored,
        });
        Ok(())
    }

    /// Counts a redelivery of `job`; a disposition when the job must not run again: dead-lettered
    /// after [`MAX_REDELIVERIES`] (the page kills or hangs whoever renders it), or a halt when the
    /// count cannot be written.
    async fn count_redelivery(&self, job: &Job) -> Option<Disposition> {
        match self.store.note_redelivery(&job.id).await {
            Ok(n) if n >= MAX_REDELIVERIES => {
                let reason = format!(
                    "delivered {} times without being settled: the worker holding it died \
                     (crash, out of memory or killed) or hung each time",
                    n + 1
                );
                Some(Disposition::DeadLetter { reason })
            }
            Ok(_) => None,
            Err(e) => Some(AttemptError::Store(e).disposition(1, &self.backoff)),
        }
    }

    /// Whether this delivery is a second copy of a retry that already ran: a worker that died
    /// between publishing a retry and acking the original leaves the original to be redelivered,
    /// which publishes the same retry again. A fresh (not redelivered) copy of attempt N whose
    /// attempt N was already logged is that duplicate: the copy that ran took care of what came
    /// next, so dropping this one loses nothing. Attempt 1 is exempt (`dlq requeue` starts a job
    /// over at attempt 1 under the same id).
    async fn duplicate_copy(
        &self,
        job: &Job,
        attempt: u32,
        redelivered: bool,
    ) -> Result<bool, StoreError> {
        if redelivered || attempt <= 1 {
            return Ok(false);
        }
        let ran = self.store.attempt_logged(&job.id, attempt).await?;
        if ran {
            tracing::debug!(url = %job.url, attempt, "Duplicate copy of a retry that already ran; dropped.");
            Stats::bump(&self.stats.skipped);
        }
        Ok(ran)
    }

    /// Whether the listing was enriched after this job was published: then a redelivered or
    /// duplicated job is already done and the page is not rendered again.
    async fn already_satisfied(
        &self,
        job: &Job,
        site: &Site,
        external_id: &str,
    ) -> Result<bool, StoreError> {
        if job.published_at <= 0 {
            return Ok(false);
        }
        let done = self
            .store
            .enriched_since(&site.name, external_id, job.published_at)
            .await?;
        if done {
            tracing::debug!(url = %job.url, "Already stored since this job was published.");
            Stats::bump(&self.stats.skipped);
        }
        Ok(done)
    }

    /// Adjusts the site's pace and this profile's identity to what the page says.
    async fn react(&self, site: &Site, class: &PageClass) -> Result<(), AttemptError> {
        match class {
            PageClass::Content | PageClass::Ended | PageClass::Gone => {
                self.pacer.on_success(&site.name);
                self.blocks.store(0, Ordering::Relaxed);
            }
            PageClass::RateLimited { retry_after } => {
                self.pacer.on_rate_limited(&site.name, *retry_after).await?;
            }
            PageClass::Blocked => {
                self.pacer.cool_down(&site.name, BLOCK_COOLDOWN);
                let blocks = self.blocks.fetch_add(1, Ordering::Relaxed) + 1;
                if blocks >= BLOCKS_BEFORE_NEW_IDENTITY {
                    self.blocks.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        site = %site.name, worker = %self.worker_id, blocks,
                        "Blocked repeatedly; starting a fresh identity (profile cookies cleared)."
                    );
                    self.renderer.reset_identity().await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Classify and extract parse HTML: CPU work, so both run on a blocking thread.
    async fn classify_and_extract(
        &self,
        page: Page,
        site: &Site,
        url: &str,
    ) -> Result<(Page, PageClass, Option<Result<Record, ExtractError>>), AttemptError> {
        let site = site.clone();
        let url = url.to_string();
        let stats = self.stats.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let class = classify(&page, &site);
            stats.record(Stage::Classify, t.elapsed());
            let t = Instant::now();
            let record = match class {
                PageClass::Content | PageClass::Ended => {
                    Some(extract_listing(&page.html, &url, &site))
                }
                _ => None,
            };
            stats.record(Stage::Extract, t.elapsed());
            (page, class, record)
        })
        .await;
        let (page, class, record) = joined
            .map_err(|e| AttemptError::Render(RenderError::Browser(format!("parser task: {e}"))))?;
        Ok((page, class, record))
    }

    /// Keeps the HTML and screenshot of a failed page once per distinct error signature (site, outcome, HTTP
    /// status), under `<snapshots>/debug/`, so an operator sees each kind of failure without
    /// one file per page.
    async fn keep_debug(&self, site: &Site, page: Page, error: &AttemptError) {
        let outcome = outcome_of(error);
        let signature = format!("{outcome}-{}", page.status.unwrap_or(0));
        let (root, site_name) = (self.snapshot_root.clone(), site.name.clone());
        let written = tokio::task::spawn_blocking(move || {
            let screenshot = page.screenshot.as_deref();
            snapshot::write_debug(&root, &site_name, &signature, &page.html, screenshot)
        })
        .await;
        match written {
            Ok(Ok(Some(path))) => {
                tracing::info!(path = %path.display(), "Debug snapshot kept for a new kind of failure.")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "Failed to keep a debug snapshot."),
            Err(e) => tracing::warn!(error = %e, "Debug snapshot task failed."),
        }
    }

    async fn write_snapshot(
        &self,
        job: &Job,
        site: &Site,
        external_id: &str,
        page: Page,
    ) -> Result<SnapshotMeta, AttemptError> {
        let t = Instant::now();
        let root = self.snapshot_root.clone();
        let (site, id, job_id) = (site.name.clone(), external_id.to_string(), job.id.clone());
        let meta = tokio::task::spawn_blocking(move || {
            snapshot::write(
                &root,
                &SnapshotInput {
                    site: &site,
                    external_id: &id,
                    job_id: &job_id,
                    html: &page.html,
                    http_status: page.status,
                    screenshot: page.screenshot.as_deref(),
                },
            )
        })
        .await
        .map_err(|e| AttemptError::Render(RenderError::Browser(format!("snapshot task: {e}"))))??;
        self.stats.record(Stage::Snapshot, t.elapsed());
        Ok(meta)
    }

    /// Logs the failed attempt and turns it into a disposition, dead-lettering when the attempt
    /// budget is spent.
    async fn settle_failure(
        &self,
        job: &Job,
        external_id: &str,
        attempt: u32,
        started: Instant,
        error: AttemptError,
    ) -> Disposition {
        let mut disposition = error.disposition(attempt, &self.backoff);
        if let Disposition::Retry { reason, .. } = &disposition
            && attempt >= self.max_attempts
        {
            let reason = format!("attempts exhausted ({attempt}): {reason}");
            disposition = Disposition::DeadLetter { reason };
        }
        let (status, detail) = match &disposition {
            Disposition::DeadLetter { reason } => (Some(ListingStatus::Failed), reason.clone()),
            Disposition::Retry { reason, .. } => (None, reason.clone()),
            Disposition::Halt { .. } | Disposition::Ack | Disposition::GiveBack => {
                return disposition;
            }
        };
        let outcome = outcome_of(&error);
        tracing::debug!(url = %job.url, attempt, outcome, %detail, "Attempt failed.");
        let logged = self
            .store
            .save(&ListingSave {
                job,
                external_id,
                attempt,
                worker: &self.worker_id,
                status,
                record: None,
                snapshot: None,
                outcome,
                detail: Some(&detail),
                duration_ms: started.elapsed().as_millis() as i64,
            })
            .await;
        match logged {
            Ok(_) => disposition,
            // The row itself is refused (the reason it failed): the dead letter still carries it.
            Err(e) if e.is_rejected() => {
                tracing::warn!(url = %job.url, error = %e, "Could not mark the listing failed.");
                disposition
            }
            Err(e) => Disposition::Halt {
                reason: e.to_string(),
            },
        }
    }
}

/// The attempt log's name for a failure.
fn outcome_of(error: &AttemptError) -> &'static str {
    match error {
        AttemptError::Page(class) => class.name(),
        AttemptError::Render(_) => "render_error",
        AttemptError::Extract(_) => "extract_error",
        AttemptError::Snapshot(_) => "snapshot_error",
        AttemptError::Store(_) => "store_error",
        AttemptError::ShuttingDown => "shutting_down",
        AttemptError::TooLarge(_) => "too_large",
    }
}

/// Writes, syncs and removes a small file in `root`: whether the snapshot disk takes writes.
fn probe_writable(root: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(root)?;
    let path = root.join(format!(".probe-{}.tmp", std::process::id()));
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_twice_the_cap() {
        let policy = BackoffPolicy::default();
        let first = policy.delay(1);
        assert!(first >= policy.min && first <= policy.min * 2, "{first:?}");
        for attempt in 1..20 {
            let d = policy.delay(attempt);
            assert!(d >= policy.min, "{attempt}: {d:?}");
            assert!(d <= policy.max * 2, "{attempt}: {d:?}");
        }
        assert!(policy.delay(8) >= Duration::from_secs(256));
    }

    #[test]
    fn errors_map_to_dispositions() {
        let policy = BackoffPolicy::default();
        let limited = AttemptError::Page(PageClass::RateLimited {
            retry_after: Duration::from_secs(9),
        });
        assert!(matches!(
            limited.disposition(1, &policy),
            Disposition::Retry { after, .. } if after == Duration::from_secs(9)
        ));
        let extract = AttemptError::Extract(ExtractError::NoTitle);
        assert!(matches!(
            extract.disposition(1, &policy),
            Disposition::DeadLetter { .. }
        ));
        let refused = sqlx::Error::Protocol("index row size 6016 exceeds btree maximum".into());
        let unavailable = AttemptError::Store(StoreError::from(refused));
        assert!(matches!(
            unavailable.disposition(1, &policy),
            Disposition::Halt { .. }
        ));
        let rejected = AttemptError::Store(StoreError::Rejected(sqlx::Error::RowNotFound));
        assert!(matches!(
            rejected.disposition(1, &policy),
            Disposition::DeadLetter { .. }
        ));
        let full = AttemptError::Snapshot(SnapshotError::Write {
            path: "x".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert!(matches!(
            full.disposition(1, &policy),
            Disposition::Halt { .. }
        ));
        let too_large = AttemptError::TooLarge(MAX_PAGE_BYTES + 1);
        assert!(matches!(
            too_large.disposition(1, &policy),
            Disposition::DeadLetter { reason } if reason.contains("page too large")
        ));
        let crashed = AttemptError::Render(RenderError::Crashed { url: "u".into() });
        assert!(matches!(
            crashed.disposition(1, &policy),
            Disposition::Retry { .. }
        ));
        let blocked = AttemptError::Page(PageClass::Blocked);
        assert!(matches!(
            blocked.disposition(1, &policy),
            Disposition::Retry { after, .. } if after >= Duration::from_secs(8)
        ));
    }
}

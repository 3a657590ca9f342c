//! The pipeline: `run_job` is the one place where the stages run in order — render → classify →
//! extract → snapshot → store — for one delivery, ending in a [`Disposition`] that says what the
//! worker does with the delivery. Every error answers "what next?" through `disposition()`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::classify::{PageClass, challenge_wait, classify, evidence};
use crate::domain::{Job, ListingStatus, Record};
use crate::extract::{ExtractError, extract_listing, settle_class};
use crate::metrics::{self, DeadLetterReason, TabInUse};
use crate::pace::Pacer;
use crate::render::{Page, RenderError, RenderRequest, Renderer};
use crate::site::{Site, Sites};
use crate::snapshot::{self, SnapshotInput};
use crate::store::{ListingSave, SnapshotMeta, Store, StoreError};
use crate::telemetry::{Stage, Stats};

mod disposition;
mod guard;

pub use disposition::{AttemptError, BackoffPolicy, Disposition};
pub use guard::MAX_UNFINISHED_RENDERS;

use disposition::{dead_letter_reason, outcome_of};

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
                metrics::dead_letter(metrics::UNKNOWN_SITE, DeadLetterReason::BadJob);
                return Disposition::DeadLetter {
                    reason: e.to_string(),
                };
            }
        };
        let site = match self.sites.get(&job.site) {
            Ok(site) => site,
            Err(e) => {
                metrics::dead_letter(metrics::UNKNOWN_SITE, DeadLetterReason::UnknownSite);
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
                metrics::dead_letter(&site.name, DeadLetterReason::BadUrl);
                return Disposition::DeadLetter { reason };
            }
        };
        match self.already_satisfied(&job, site, &external_id).await {
            Ok(true) => return Disposition::Ack,
            Ok(false) => {}
            Err(e) => return self.store_failed(&site.name, e, attempt),
        }
        if redelivered && let Some(stop) = self.unfinished_renders(&job, attempt).await {
            return stop;
        }
        match self.duplicate_copy(&job, attempt, redelivered).await {
            Ok(true) => return Disposition::Ack,
            Ok(false) => {}
            Err(e) => return self.store_failed(&site.name, e, attempt),
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
        let request = RenderRequest::listing(site, &job.url, challenge_wait(site, CHALLENGE_WAIT));
        let page = self.render_paced(job, site, attempt, &request).await?;
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
                let evidence = evidence(&page, &other);
                let error = AttemptError::Page(other, evidence);
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
        metrics::page(&site.name, class.name());
        Stats::bump(match status {
            ListingStatus::Gone => &self.stats.gone,
            _ => &self.stats.stored,
        });
        Ok(())
    }

    /// Renders once a tab is free and the site's pace allows, noting the start first (a page
    /// that kills the worker is then counted against its job).
    async fn render_paced(
        &self,
        job: &Job,
        site: &Site,
        attempt: u32,
        request: &RenderRequest,
    ) -> Result<Page, AttemptError> {
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
        let in_use = TabInUse::take();
        self.store.note_render_start(&job.id, attempt).await?;
        tracing::debug!(attempt, url = %job.url, "Rendering.");
        let t = Instant::now();
        let page = self.renderer.render(request).await;
        metrics::render_time(&site.name, t.elapsed());
        let page = page?;
        self.stats.record(Stage::Render, t.elapsed());
        drop((tab, in_use));
        if page.html.len() > MAX_PAGE_BYTES {
            return Err(AttemptError::TooLarge(page.html.len()));
        }
        Ok(page)
    }

    /// Adjusts the site's pace and this profile's identity to what the page says.
    async fn react(&self, site: &Site, class: &PageClass) -> Result<(), AttemptError> {
        match class {
            PageClass::Content | PageClass::Ended | PageClass::Gone => {
                self.pacer.on_success(&site.name);
                self.blocks.store(0, Ordering::Relaxed);
            }
            PageClass::RateLimited { retry_after } => {
                metrics::rate_limited(&site.name);
                self.pacer.on_rate_limited(&site.name, *retry_after).await?;
            }
            PageClass::Challenge => metrics::blocked(&site.name, class.name()),
            PageClass::Blocked => {
                metrics::blocked(&site.name, class.name());
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
            let (class, record) = settle_class(class, record, &site);
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
        let exhausted =
            matches!(disposition, Disposition::Retry { .. }) && attempt >= self.max_attempts;
        if let Disposition::Retry { reason, .. } = &disposition
            && exhausted
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
            Ok(_) => {
                count_failure(&job.site, outcome, &disposition, &error, exhausted);
                disposition
            }
            // The row itself is refused (the reason it failed): the dead letter still carries it.
            Err(e) if e.is_rejected() => {
                tracing::warn!(url = %job.url, error = %e, "Could not mark the listing failed.");
                count_failure(&job.site, outcome, &disposition, &error, exhausted);
                disposition
            }
            Err(e) => Disposition::Halt {
                reason: e.to_string(),
            },
        }
    }
}

impl<R: Renderer> Pipeline<R> {
    /// What happens to a job whose store read failed before its page: a halt, or (the read
    /// itself refused) a dead letter.
    fn store_failed(&self, site: &str, error: StoreError, attempt: u32) -> Disposition {
        let disposition = AttemptError::Store(error).disposition(attempt, &self.backoff);
        if matches!(disposition, Disposition::DeadLetter { .. }) {
            metrics::dead_letter(site, DeadLetterReason::Rejected);
        }
        disposition
    }
}

/// Counts a logged failed attempt: its page, and its retry or dead letter.
fn count_failure(
    site: &str,
    outcome: &'static str,
    disposition: &Disposition,
    error: &AttemptError,
    exhausted: bool,
) {
    metrics::page(site, outcome);
    match disposition {
        Disposition::Retry { .. } => metrics::retry(site),
        Disposition::DeadLetter { .. } => {
            metrics::dead_letter(site, dead_letter_reason(error, exhausted));
        }
        Disposition::Ack | Disposition::Halt { .. } | Disposition::GiveBack => {}
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

//! The browser slot of the CDP renderer: the one Chromium of this process, launched on the
//! claimed profile, relaunched with a new generation number when it dies and replaced when the
//! retirement policy says so (`retire`). The tab pool (`pool`) opens its tabs here; every task
//! the slot starts (the CDP event handler, tab closes, resource blockers) is tracked by it and
//! ended by `close`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::network::SetUserAgentOverrideParams;
use chromiumoxide::{Browser, BrowserConfig, Page as Tab};
use futures::StreamExt;
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::retire::{MEMORY_CHECK_EVERY, Reason, tree_memory_mib};
use super::{BrowserSettings, RenderError};

/// The one browser of this process, relaunched with a new generation number when it dies.
pub struct BrowserSlot {
    settings: BrowserSettings,
    live: Mutex<Option<Live>>,
    generation: AtomicU64,
    /// Pages rendered by the current generation.
    pages: AtomicU64,
    /// Set by `close`: no browser is launched after it.
    closed: AtomicBool,
    /// Every render holds it shared; retiring the browser takes it exclusively, so the old
    /// browser's pages finish first and no page starts until the new one runs (one browser per
    /// profile, ever).
    gate: RwLock<()>,
    /// Every task the slot starts; `close` waits for them.
    tasks: TaskTracker,
    /// Ends the tasks that would otherwise run as long as their tab (`spawn`).
    stop: CancellationToken,
}

struct Live {
    browser: Browser,
    handler: JoinHandle<()>,
    /// What every tab says it is, when the browser's own user agent gives headless away.
    user_agent: Option<String>,
}

impl BrowserSlot {
    /// Launches the browser now, so a missing Chromium or a locked profile fails at start.
    pub async fn launch(settings: BrowserSettings) -> Result<BrowserSlot, RenderError> {
        let tasks = TaskTracker::new();
        let live = launch(&settings, &tasks).await?;
        Ok(BrowserSlot {
            live: Mutex::new(Some(live)),
            settings,
            generation: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            gate: RwLock::new(()),
            tasks,
            stop: CancellationToken::new(),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The pid of the running browser process, if any.
    pub async fn pid(&self) -> Option<u32> {
        let mut live = self.live.lock().await;
        let child = live.as_mut()?.browser.get_mut_child()?;
        child.as_mut_inner().id()
    }

    /// Opens a tab (with the user agent override, see `build::user_agent`), launching (or
    /// relaunching a dead) browser first.
    pub async fn new_tab(&self) -> Result<(Tab, u64), RenderError> {
        let mut live = self.live.lock().await;
        if live.as_mut().is_none_or(|l| !is_alive(&mut l.browser)) {
            if self.closed.load(Ordering::SeqCst) {
                return Err(RenderError::Browser("the renderer is closed".into()));
            }
            if let Some(dead) = live.take() {
                tracing::warn!("Chromium died; relaunching it.");
                shut_down(dead, Duration::ZERO).await;
                self.pages.store(0, Ordering::SeqCst);
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            *live = Some(launch(&self.settings, &self.tasks).await?);
        }
        let generation = self.generation();
        let live = live.as_ref().expect("launched just above");
        let open = async {
            let tab = live.browser.new_page("about:blank").await?;
            if let Some(agent) = &live.user_agent {
                tab.set_user_agent(SetUserAgentOverrideParams::new(agent.clone()))
                    .await?;
            }
            Ok::<_, chromiumoxide::error::CdpError>(tab)
        };
        match tokio::time::timeout(Duration::from_secs(20), open).await {
            Ok(Ok(tab)) => Ok((tab, generation)),
            Ok(Err(e)) => Err(RenderError::Browser(format!("Failed to open a tab: {e}"))),
            Err(_) => Err(RenderError::Browser("opening a tab timed out".into())),
        }
    }

    /// Clears every cookie of the profile (a fresh identity for the sites).
    pub async fn clear_cookies(&self) -> Result<(), RenderError> {
        let live = self.live.lock().await;
        if let Some(live) = live.as_ref() {
            live.browser
                .clear_cookies()
                .await
                .map_err(|e| RenderError::Browser(format!("Failed to clear cookies: {e}")))?;
        }
        Ok(())
    }

    /// Kills the browser of `generation` if it is still the current one (it stopped answering).
    pub async fn retire(&self, generation: u64) {
        let mut live = self.live.lock().await;
        if self.generation() == generation
            && let Some(old) = live.take()
        {
            self.pages.store(0, Ordering::SeqCst);
            self.generation.fetch_add(1, Ordering::SeqCst);
            shut_down(old, Duration::ZERO).await;
        }
    }

    /// Held shared by every render, so that retiring the browser waits for its pages.
    pub async fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Whether the current browser process still runs.
    pub async fn is_alive(&self) -> bool {
        let mut live = self.live.lock().await;
        live.as_mut().is_some_and(|l| is_alive(&mut l.browser))
    }

    /// Runs `task` in the background until it ends or the slot closes (tracked: `close` waits).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Closes a tab without waiting for it (dropping a Page does not close the tab).
    pub fn close_tab(&self, tab: Tab) {
        self.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), tab.close()).await;
        });
    }

    /// Counts a rendered page and replaces the browser when the retirement policy says so.
    pub async fn page_done(&self) {
        let generation = self.generation();
        let pages = self.pages.fetch_add(1, Ordering::SeqCst) + 1;
        let retire = self.settings.retire;
        let check_memory = retire.max_memory_mib > 0 && pages.is_multiple_of(MEMORY_CHECK_EVERY);
        let pid = if check_memory { self.pid().await } else { None };
        let reason = match pid {
            // Reading /proc of every Chromium process is blocking file I/O.
            Some(pid) => {
                tokio::task::spawn_blocking(move || retire.due(pages, || tree_memory_mib(pid)))
                    .await
                    .ok()
                    .flatten()
            }
            None => retire.due(pages, || None),
        };
        if let Some(reason) = reason {
            self.replace(generation, reason).await;
        }
    }

    /// Waits for the pages in flight, closes the browser of `generation` and launches a new one
    /// on the same profile (unless another task already did).
    async fn replace(&self, generation: u64, reason: Reason) {
        let _exclusive = self.gate.write().await;
        if self.generation() != generation {
            return;
        }
        let mut live = self.live.lock().await;
        if let Some(old) = live.take() {
            shut_down(old, Duration::from_secs(5)).await;
        }
        let dir = self.settings.profile_dir.clone();
        let straggling = tokio::task::spawn_blocking(move || {
            super::profile::wait_until_unused(&dir, Duration::from_secs(5))
        })
        .await
        .unwrap_or(0);
        if straggling > 0 {
            tracing::warn!(
                straggling,
                "Killed processes of the retired browser that did not exit."
            );
        }
        // Pages first: a `page_done` that sees the new generation must not see the old count.
        self.pages.store(0, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            return; // the renderer closed meanwhile: launch nothing nobody will close
        }
        match launch(&self.settings, &self.tasks).await {
            Ok(fresh) => {
                *live = Some(fresh);
                tracing::info!(%reason, generation = generation + 1, "Browser retired; a fresh one runs on the same profile.");
            }
            // `new_tab` launches again on the next page.
            Err(e) => tracing::warn!(error = %e, %reason, "Browser retired; relaunch failed."),
        }
    }

    /// Closes the browser cleanly (Browser.close, then reap), killing it after `grace`.
    pub async fn close(&self, grace: Duration) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(live) = self.live.lock().await.take() {
            shut_down(live, grace).await;
        }
        // The browser is gone, so what is left of the tab closes and blockers would only fail.
        self.tasks.close();
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Tasks of the browser slot did not end after close.");
        }
    }
}

fn is_alive(browser: &mut Browser) -> bool {
    match browser.get_mut_child() {
        Some(child) => matches!(child.try_wait(), Ok(None)),
        None => true,
    }
}

/// Launch flags that cut Chromium's own work per page, measured on the fixture (bare loop,
/// release, concurrency 4, together with `imagesEnabled=false`: ~110 instead of ~134 ms of CPU
/// of the process tree per page, ~15% faster, ~90 MiB less PSS, fewer renderer processes): one renderer process per site instead of one per tab and
/// navigation, since a scraper's tabs all visit the same site and isolating them from each
/// other buys nothing; and no back/forward cache, which keeps every page left behind alive.
const LEAN_FLAGS: [&str; 2] = ["process-per-site", "disable-site-isolation-trials"];
const LEAN_FEATURES_OFF: &str = "IsolateOrigins,site-per-process,BackForwardCache";

async fn launch(settings: &BrowserSettings, tasks: &TaskTracker) -> Result<Live, RenderError> {
    let chrome = super::profile::launcher(&settings.profile_dir, &settings.chrome)
        .map_err(|e| RenderError::Browser(e.to_string()))?;
    let sandbox = super::confine::detect_in_background(&settings.chrome).await?;
    let mut builder = BrowserConfig::builder()
        .arg(("disable-features", LEAN_FEATURES_OFF))
        // chromiumoxide passes --enable-automation, which sets `navigator.webdriver`.
        .arg(("disable-blink-features", "AutomationControlled"));
    for flag in LEAN_FLAGS {
        builder = builder.arg(flag);
    }
    if !sandbox.is_on() {
        builder = builder.no_sandbox();
    }
    if settings.block_resources {
        // Blink never requests images: cheaper than failing each request through Fetch.
        builder = builder.arg(("blink-settings", "imagesEnabled=false"));
    }
    let config = builder
        .chrome_executable(&chrome)
        .user_data_dir(&settings.profile_dir)
        .new_headless_mode()
        // Keys without leading dashes: chromiumoxide adds them (see notes/crates.md §1).
        .arg("disable-gpu")
        .arg("disable-quic")
        .arg("disable-component-update")
        .arg("no-first-run")
        .window_size(1366, 768)
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| RenderError::Browser(format!("Invalid browser settings: {e}")))?;
    let (browser, mut handler) = Browser::launch(config).await.map_err(|e| {
        RenderError::Browser(format!(
            "Failed to launch Chromium at {}: {e}",
            settings.chrome.display()
        ))
    })?;
    // Tracked by the slot and aborted by `shut_down` with the browser it serves.
    let handler = tasks.spawn(async move {
        while let Some(event) = handler.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "CDP handler error.");
            }
        }
    });
    let reported = browser.user_agent().await.unwrap_or_default();
    let user_agent = super::build::user_agent(&reported);
    tracing::info!(
        profile = %settings.profile_dir.display(),
        chrome = %settings.chrome.display(),
        user_agent = user_agent.as_deref().unwrap_or(&reported),
        sandbox = sandbox.is_on(),
        "Chromium launched."
    );
    Ok(Live {
        browser,
        handler,
        user_agent,
    })
}

async fn shut_down(mut live: Live, grace: Duration) {
    let closed = tokio::time::timeout(grace, live.browser.close()).await;
    if !matches!(closed, Ok(Ok(_))) {
        let _ = live.browser.kill().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), live.browser.wait()).await;
    live.handler.abort();
}

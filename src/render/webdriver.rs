//! The WebDriver renderer (fantoccini + chromedriver), the alternative to `cdp` behind the same
//! [`Renderer`] trait. It spawns one chromedriver on a free port and opens ONE session on the
//! claimed profile (Chromium refuses a second browser on a user-data-dir), with `tabs` windows.
//!
//! Concurrency: WebDriver commands of one session run one at a time and act on the session's
//! *current* window, so each render takes a window of its own and every group of commands
//! (switch to my window, then commands) runs under one session lock. Navigation uses the `none`
//! page-load strategy, so `goto` returns at once and the page loads while other windows issue
//! their commands; the ready wait runs in short slices of the site's MutationObserver script so
//! a slow page holds the session for at most [`READY_SLICE`] at a time; the page is read under
//! the lock of the last slice. Loads overlap; the WebDriver round trips do not, and a window
//! switch costs ~30 ms in chromedriver (median, measured), so a page costs at least two switches.
//! Measured (fixture, 2 cores shared with other builds; `webdriver_e2e -- --ignored`): when pages
//! wait on the network (500 ms script delay) 4 windows give 2× one window and ~0.6× CDP with 4
//! tabs; when the machine is CPU-bound (30 ms delay) 4 windows ≈ 1 window ≈ 0.6–0.8× CDP.
//!
//! If chromedriver or the browser dies, or a command hangs, the session is torn down and the next
//! render launches a new one.

mod ready;
mod session;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard, Semaphore};

use super::{BrowserSettings, Page, RenderError, RenderRequest, Renderer, profile};
use ready::{MARK_OLD, Wait, probe, read};
use session::{Session, clear_cookies, command, shut_down, start_session};

pub use ready::READY_SLICE;

/// chromedriver used when `CHROMEDRIVER_BIN` is not set (the Debian `chromium-driver` package).
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Renders pages in the windows of one WebDriver session.
pub struct WebDriverRenderer {
    settings: BrowserSettings,
    chromedriver: PathBuf,
    /// The session lock: held for each group of commands, since the current window is session state.
    session: Mutex<Option<Session>>,
    /// Window indices not used by a render; `permits` counts them.
    free: std::sync::Mutex<Vec<usize>>,
    permits: Semaphore,
    generation: AtomicU64,
    closed: AtomicBool,
}

impl WebDriverRenderer {
    /// Launches chromedriver (`CHROMEDRIVER_BIN`, else [`DEFAULT_CHROMEDRIVER`]) and the session
    /// now, so a missing driver or a profile in use fails at start.
    pub async fn launch(settings: BrowserSettings) -> Result<WebDriverRenderer, RenderError> {
        let driver = std::env::var_os("CHROMEDRIVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMEDRIVER));
        Self::launch_with(settings, driver).await
    }

    /// Like [`launch`](Self::launch) with an explicit chromedriver.
    pub async fn launch_with(
        settings: BrowserSettings,
        chromedriver: PathBuf,
    ) -> Result<WebDriverRenderer, RenderError> {
        let tabs = settings.tabs.max(1);
        let session = start_session(&settings, &chromedriver, 0).await?;
        Ok(WebDriverRenderer {
            settings,
            chromedriver,
            session: Mutex::new(Some(session)),
            free: std::sync::Mutex::new((0..tabs).rev().collect()),
            permits: Semaphore::new(tabs),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// The pid of the running chromedriver, if any.
    pub async fn driver_pid(&self) -> Option<u32> {
        self.session.lock().await.as_ref()?.driver.id()
    }

    /// Bumped each time the session is torn down after a failure.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Locks the session with `window` current, launching one first if there is none and this is
    /// the start of a render (`generation` None). A render that began on an older session fails.
    async fn window(
        &self,
        window: usize,
        generation: Option<u64>,
    ) -> Result<(MappedMutexGuard<'_, Session>, u64), RenderError> {
        let relaunched = || RenderError::Browser("the WebDriver session was relaunched".into());
        let mut guard = self.session.lock().await;
        if guard.is_none() && generation.is_none() {
            if self.closed.load(Ordering::SeqCst) {
                return Err(RenderError::Browser("the renderer is closed".into()));
            }
            let next = self.generation();
            *guard = Some(start_session(&self.settings, &self.chromedriver, next).await?);
        }
        let mut session = MutexGuard::try_map(guard, Option::as_mut).map_err(|_| relaunched())?;
        if generation.is_some_and(|g| g != session.generation) {
            return Err(relaunched());
        }
        if session.current != window {
            let handle = session.windows[window].clone();
            command(session.client.switch_to_window(handle)).await?;
            session.current = window;
        }
        let generation = session.generation;
        Ok((session, generation))
    }

    /// Marks the old document and navigates `window`; returns the session generation.
    async fn navigate(&self, window: usize, url: &str) -> Result<u64, RenderError> {
        let (session, generation) = self.window(window, None).await?;
        command(session.client.execute(MARK_OLD, vec![])).await?;
        let nav_timeout = self.settings.nav_timeout;
        match tokio::time::timeout(nav_timeout, session.client.goto(url)).await {
            Ok(Ok(())) => Ok(generation),
            Ok(Err(e)) => Err(RenderError::Navigation {
                url: url.into(),
                reason: e.to_string(),
            }),
            Err(_) => Err(RenderError::Timeout {
                url: url.into(),
                secs: nav_timeout.as_secs(),
            }),
        }
    }

    /// Waits in slices until the new document is there, then until it is ready, and reads the
    /// page under the lock of the last slice (one window switch fewer per page).
    async fn settle(
        &self,
        window: usize,
        generation: u64,
        request: &RenderRequest,
    ) -> Result<Page, RenderError> {
        let mut wait = Wait::new(request, self.settings.nav_timeout);
        let css = request.ready.as_deref().map_or(Value::Null, Value::from);
        loop {
            let slice = wait.slice();
            let (session, _) = self.window(window, Some(generation)).await?;
            let probe = probe(&session.client, &css, slice).await?;
            let failed = probe.is_none();
            if let Some(done) = wait.judge(probe)? {
                return read(&session.client, request, done).await;
            }
            drop(session);
            if failed {
                // The document was being replaced: give the navigation a moment.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Polls the same window until a JS challenge has reloaded the page into one that is ready,
    /// or `timeout` passes; then reads whatever is shown.
    async fn wait_for_clearance(
        &self,
        window: usize,
        generation: u64,
        request: &RenderRequest,
        timeout: Duration,
    ) -> Result<Page, RenderError> {
        let deadline = Instant::now() + timeout;
        let css = request.ready.as_deref().map_or(Value::Null, Value::from);
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(READY_SLICE);
            let (session, _) = self.window(window, Some(generation)).await?;
            let probe = probe(&session.client, &css, slice).await?;
            let cleared = probe.as_ref().is_some_and(|p| p.cleared());
            if cleared || Instant::now() >= deadline {
                let shown = probe.unwrap_or_default();
                return read(&session.client, request, shown).await;
            }
            drop(session);
            // The challenge page answers at once (status >= 400): do not spin on it.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn render_in(&self, window: usize, request: &RenderRequest) -> Result<Page, RenderError> {
        let started = Instant::now();
        let generation = self.navigate(window, &request.url).await?;
        let mut page = self.settle(window, generation, request).await?;
        if let (false, Some(challenge), Some(_)) = (page.ready, &request.challenge, &request.ready)
            && challenge.matches(&page.html)
        {
            page = self
                .wait_for_clearance(window, generation, request, challenge.timeout)
                .await?;
            tracing::debug!(url = %request.url, cleared = page.ready, "Waited for a JS challenge.");
        }
        page.render_time = started.elapsed();
        Ok(page)
    }

    /// Tears the session down if it no longer answers (dead browser, dead driver, hung command).
    async fn retire_if_broken(&self) {
        let mut guard = self.session.lock().await;
        let Some(session) = guard.as_mut() else {
            return;
        };
        let driver_alive = matches!(session.driver.try_wait(), Ok(None));
        let answers = tokio::time::timeout(Duration::from_secs(5), session.client.windows()).await;
        let healthy = driver_alive
            && matches!(answers, Ok(Ok(ref w)) if session.windows.iter().all(|h| w.contains(h)));
        if !healthy && let Some(dead) = guard.take() {
            tracing::warn!(
                generation = dead.generation,
                "WebDriver session broken; relaunching it."
            );
            self.generation.fetch_add(1, Ordering::SeqCst);
            shut_down(dead, &self.settings.profile_dir, Duration::from_secs(3)).await;
        }
    }
}

impl Renderer for WebDriverRenderer {
    async fn render(&self, request: &RenderRequest) -> Result<Page, RenderError> {
        let wait = tokio::time::timeout(Duration::from_secs(120), self.permits.acquire()).await;
        let _permit = match wait {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(RenderError::Browser("the renderer is closed".into())),
            Err(_) => return Err(RenderError::PoolExhausted),
        };
        let window = WindowClaim::take(&self.free);
        let result = self.render_in(window.0, request).await;
        if result.is_err() {
            self.retire_if_broken().await;
        }
        result
    }

    /// Clears every cookie of the profile, for all sites (`Network.clearBrowserCookies`).
    async fn reset_identity(&self) -> Result<(), RenderError> {
        match self.session.lock().await.as_ref() {
            Some(session) => clear_cookies(&session.client).await,
            None => Ok(()),
        }
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.permits.close();
        if let Some(session) = self.session.lock().await.take() {
            shut_down(session, &self.settings.profile_dir, Duration::from_secs(5)).await;
        }
    }
}

impl Drop for WebDriverRenderer {
    /// Without `close()` chromedriver is killed on drop and its Chromium would live on: kill it.
    fn drop(&mut self) {
        if self.session.get_mut().take().is_some() {
            tracing::warn!("WebDriverRenderer dropped without close(); killing its browser.");
            profile::kill_orphans(&self.settings.profile_dir);
        }
    }
}

/// A window index taken from the free list for one render, given back on drop.
struct WindowClaim<'a>(usize, &'a std::sync::Mutex<Vec<usize>>);

impl<'a> WindowClaim<'a> {
    fn take(free: &'a std::sync::Mutex<Vec<usize>>) -> WindowClaim<'a> {
        // The semaphore has as many permits as free indices, so a permit holder finds one.
        let index = lock(free).pop().expect("a free window per permit");
        WindowClaim(index, free)
    }
}

impl Drop for WindowClaim<'_> {
    fn drop(&mut self) {
        lock(self.1).push(self.0);
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

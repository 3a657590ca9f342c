//! The CDP renderer (chromiumoxide, the default): one Chromium per process on a persistent profile,
//! N pooled tabs. The browser is relaunched when it dies; tabs that hang are closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventResponseReceived, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, EventFrameNavigated, EventLifecycleEvent, EventNavigatedWithinDocument,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page as Tab};
use deadpool::Runtime;
use deadpool::managed::{Object, Pool, PoolError};
use futures::{FutureExt, StreamExt};
use tokio::sync::{Mutex, RwLock};
use tokio::task::JoinHandle;

use super::pool::{TabManager, close_in_background};
use super::retire::{MEMORY_CHECK_EVERY, Reason, Retirement, tree_memory_mib};
use super::{Page, RenderError, RenderRequest, Renderer};

/// How to launch the browser.
#[derive(Debug, Clone)]
pub struct BrowserSettings {
    pub chrome: PathBuf,
    /// The claimed profile directory (see `profile::claim`).
    pub profile_dir: PathBuf,
    /// Tabs in the pool = worker concurrency.
    pub tabs: usize,
    /// Upper bound on one navigation; chromiumoxide has no per-navigation timeout of its own.
    pub nav_timeout: Duration,
    /// Fail images, fonts and media before they are fetched.
    pub block_resources: bool,
    /// When the browser is replaced by a fresh one on the same profile.
    pub retire: Retirement,
}

/// The one browser of this process, relaunched with a new generation number when it dies.
pub struct BrowserSlot {
    settings: BrowserSettings,
    live: Mutex<Option<Live>>,
    generation: AtomicU64,
    /// Pages rendered by the current generation.
    pages: AtomicU64,
    /// Every render holds it shared; retiring the browser takes it exclusively, so the old
    /// browser's pages finish first and no page starts until the new one runs (one browser per
    /// profile, ever).
    gate: RwLock<()>,
}

struct Live {
    browser: Browser,
    handler: JoinHandle<()>,
}

impl BrowserSlot {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The pid of the running browser process, if any.
    pub async fn pid(&self) -> Option<u32> {
        let mut live = self.live.lock().await;
        let child = live.as_mut()?.browser.get_mut_child()?;
        child.as_mut_inner().id()
    }

    /// Opens a tab, launching (or relaunching a dead) browser first.
    pub async fn new_tab(&self) -> Result<(Tab, u64), RenderError> {
        let mut live = self.live.lock().await;
        if live.as_mut().is_none_or(|l| !is_alive(&mut l.browser)) {
            if let Some(dead) = live.take() {
                tracing::warn!("Chromium died; relaunching it.");
                shut_down(dead, Duration::ZERO).await;
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            *live = Some(launch(&self.settings).await?);
        }
        let generation = self.generation();
        let browser = &live.as_ref().expect("launched just above").browser;
        match tokio::time::timeout(Duration::from_secs(20), browser.new_page("about:blank")).await {
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
            self.generation.fetch_add(1, Ordering::SeqCst);
            shut_down(old, Duration::ZERO).await;
        }
    }

    /// Counts a rendered page and replaces the browser when the retirement policy says so.
    async fn page_done(&self) {
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
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.store(0, Ordering::SeqCst);
        match launch(&self.settings).await {
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
        if let Some(live) = self.live.lock().await.take() {
            shut_down(live, grace).await;
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
/// concurrency 4, together with `imagesEnabled=false`: about 30% less CPU of the process tree
/// and fewer renderer processes): one renderer process per site instead of one per tab and
/// navigation, since a scraper's tabs all visit the same site and isolating them from each
/// other buys nothing; and no back/forward cache, which keeps every page left behind alive.
const LEAN_FLAGS: [&str; 2] = ["process-per-site", "disable-site-isolation-trials"];
const LEAN_FEATURES_OFF: &str = "IsolateOrigins,site-per-process,BackForwardCache";

async fn launch(settings: &BrowserSettings) -> Result<Live, RenderError> {
    let chrome = super::profile::launcher(&settings.profile_dir, &settings.chrome);
    let mut builder = BrowserConfig::builder().arg(("disable-features", LEAN_FEATURES_OFF));
    for flag in LEAN_FLAGS {
        builder = builder.arg(flag);
    }
    if settings.block_resources {
        // Blink never requests images: cheaper than failing each request through Fetch.
        builder = builder.arg(("blink-settings", "imagesEnabled=false"));
    }
    let config = builder
        .chrome_executable(&chrome)
        .user_data_dir(&settings.profile_dir)
        .new_headless_mode()
        .no_sandbox()
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
    let handler = tokio::spawn(async move {
        while let Some(event) = handler.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "CDP handler error.");
            }
        }
    });
    tracing::info!(profile = %settings.profile_dir.display(), "Chromium launched.");
    Ok(Live { browser, handler })
}

async fn shut_down(mut live: Live, grace: Duration) {
    let closed = tokio::time::timeout(grace, live.browser.close()).await;
    if !matches!(closed, Ok(Ok(_))) {
        let _ = live.browser.kill().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), live.browser.wait()).await;
    live.handler.abort();
}

/// Renders pages in pooled tabs of one Chromium.
pub struct CdpRenderer {
    slot: Arc<BrowserSlot>,
    pool: Pool<TabManager>,
    nav_timeout: Duration,
}

impl CdpRenderer {
    /// Launches the browser now, so a missing Chromium or a locked profile fails at start.
    pub async fn launch(settings: BrowserSettings) -> Result<CdpRenderer, RenderError> {
        let nav_timeout = settings.nav_timeout;
        let tabs = settings.tabs.max(1);
        // Images are kept out by a launch flag (see `launch`); fonts and media by Fetch.
        let block = if settings.block_resources {
            vec![ResourceType::Font, ResourceType::Media]
        } else {
            Vec::new()
        };
        let slot = Arc::new(BrowserSlot {
            live: Mutex::new(Some(launch(&settings).await?)),
            settings,
            generation: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            gate: RwLock::new(()),
        });
        let manager = TabManager {
            slot: slot.clone(),
            block,
        };
        let pool = Pool::builder(manager)
            .max_size(tabs)
            .wait_timeout(Some(Duration::from_secs(120)))
            .create_timeout(Some(Duration::from_secs(30)))
            .recycle_timeout(Some(Duration::from_secs(10)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| RenderError::Browser(format!("Failed to build the tab pool: {e}")))?;
        Ok(CdpRenderer {
            slot,
            pool,
            nav_timeout,
        })
    }

    pub fn slot(&self) -> &Arc<BrowserSlot> {
        &self.slot
    }

    async fn tab(&self) -> Result<Object<TabManager>, RenderError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(_) => RenderError::PoolExhausted,
            other => RenderError::Browser(other.to_string()),
        })
    }
}

impl Renderer for CdpRenderer {
    async fn render(&self, request: &RenderRequest) -> Result<Page, RenderError> {
        let shared = self.slot.gate.read().await;
        let rendered = self.render_in_pool(request).await;
        drop(shared);
        self.slot.page_done().await;
        rendered
    }

    async fn reset_identity(&self) -> Result<(), RenderError> {
        self.slot.clear_cookies().await
    }

    async fn close(&self) {
        self.pool.close();
        self.slot.close(Duration::from_secs(5)).await;
    }
}

impl CdpRenderer {
    /// Renders in a pooled tab; a tab that failed is closed, and a dead browser retired.
    async fn render_in_pool(&self, request: &RenderRequest) -> Result<Page, RenderError> {
        let tab = self.tab().await?;
        match render_in(&tab.tab, request, self.nav_timeout).await {
            Ok(page) => Ok(page),
            Err(e) => {
                // A tab that failed may hang or belong to a dead browser: never reuse it.
                let broken = Object::take(tab);
                if !self
                    .slot
                    .live
                    .lock()
                    .await
                    .as_mut()
                    .is_some_and(|l| is_alive(&mut l.browser))
                {
                    self.slot.retire(broken.generation).await;
                } else {
                    close_in_background(broken.tab);
                }
                Err(e)
            }
        }
    }
}

/// Navigates one tab and reads the page once the ready condition holds (or its timeout passes).
async fn render_in(
    tab: &Tab,
    request: &RenderRequest,
    nav_timeout: Duration,
) -> Result<Page, RenderError> {
    let started = Instant::now();
    let url = request.url.as_str();
    let browser_err = |e: chromiumoxide::error::CdpError| RenderError::Browser(e.to_string());
    let main_frame = tab.mainframe().await.map_err(browser_err)?;
    // Subscribe before navigating, or the document's response can be missed.
    let mut responses = tab
        .event_listener::<EventResponseReceived>()
        .await
        .map_err(browser_err)?;
    let navigated = tokio::time::timeout(nav_timeout, navigate(tab, url))
        .await
        .map_err(|_| RenderError::Timeout {
            url: url.into(),
            secs: nav_timeout.as_secs(),
        })??;
    let mut page = Page {
        url: url.to_string(),
        ..Page::default()
    };
    read_document_response(&mut responses, &main_frame, &mut page);
    match navigated {
        Navigated::Document { dom_content: false } => {
            tracing::debug!(
                url,
                "Document committed; DOMContentLoaded not seen in time."
            );
        }
        Navigated::Document { .. } => {}
        // An error status with an empty body shows Chromium's error page: still a page with a
        // status to classify. Without any response the site was not reached at all.
        Navigated::ErrorPage(_) if page.status.is_some() => {}
        Navigated::ErrorPage(reason) => {
            return Err(RenderError::Navigation {
                url: url.into(),
                reason: reason.unwrap_or_else(|| "Chromium showed its error page".into()),
            });
        }
    }
    page.ready = match (&request.ready, page.status) {
        (_, Some(status)) if status >= 400 => false,
        (Some(css), _) => wait_ready(tab, css, request.ready_timeout).await?,
        (None, _) => true,
    };
    page.html = tab.content().await.map_err(browser_err)?;
    if let (false, Some(challenge), Some(css)) = (page.ready, &request.challenge, &request.ready)
        && challenge.matches(&page.html)
    {
        page.ready = wait_for_clearance(tab, css, challenge.timeout).await;
        read_document_response(&mut responses, &main_frame, &mut page);
        page.html = tab.content().await.map_err(browser_err)?;
        tracing::debug!(url, cleared = page.ready, "Waited for a JS challenge.");
    }
    // A page that never got ready is about to fail (challenge, block, error page): its picture
    // goes into the debug snapshot. Gone listings are not failures and get none.
    let failing = !page.ready && !matches!(page.status, Some(404 | 410));
    if request.screenshot || failing {
        let params = ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .build();
        page.screenshot = tab.screenshot(params).await.ok();
    }
    page.render_time = started.elapsed();
    Ok(page)
}

/// How a navigation ended.
enum Navigated {
    /// The document committed; `dom_content` says whether DOMContentLoaded fired in time (if not,
    /// the ready check decides).
    Document { dom_content: bool },
    /// Chromium committed its own error page instead: the reason (`net::ERR_…`) if it said one.
    ErrorPage(Option<String>),
}

/// Navigates the tab and returns once the new document has fired DOMContentLoaded — not `load`.
///
/// The navigation is started from the page (`location.href = …`) rather than with CDP
/// `Page.navigate`: chromiumoxide holds the answer to any `Page.navigate` until the `load`
/// event of the page *and every frame in it*, which never comes on pages whose iframes point
/// at hosts that do not answer (real eBay item pages). The site's ready condition, checked
/// next, says when the page is complete.
async fn navigate(tab: &Tab, url: &str) -> Result<Navigated, RenderError> {
    let failed = |reason: String| RenderError::Navigation {
        url: url.into(),
        reason,
    };
    // Subscribe first: the events can arrive before `evaluate` returns.
    let mut committed = tab
        .event_listener::<EventFrameNavigated>()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut within = tab
        .event_listener::<EventNavigatedWithinDocument>()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut lifecycle = tab
        .event_listener::<EventLifecycleEvent>()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut failures = tab
        .event_listener::<EventLoadingFailed>()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let target = serde_json::to_string(url).map_err(|e| failed(e.to_string()))?;
    tab.evaluate(format!("location.href = {target}; true"))
        .await
        .map_err(|e| failed(format!("could not start the navigation: {e}")))?;
    let frame = loop {
        tokio::select! {
            ev = committed.next() => match ev {
                Some(ev) if ev.frame.parent_id.is_none() => break ev.frame.clone(),
                Some(_) => {}
                None => return Err(failed("the tab closed".into())),
            },
            Some(_) = within.next() => return Ok(Navigated::Document { dom_content: true }),
        }
    };
    if frame.unreachable_url.is_some() || frame.url.starts_with("chrome-error:") {
        let mut reason = None;
        while let Some(Some(ev)) = failures.next().now_or_never() {
            if ev.r#type == ResourceType::Document {
                reason = Some(ev.error_text.clone());
            }
        }
        return Ok(Navigated::ErrorPage(reason));
    }
    let loader = frame.loader_id;
    let dom_content = async {
        while let Some(ev) = lifecycle.next().await {
            if ev.name == "DOMContentLoaded" && ev.loader_id == loader && ev.frame_id == frame.id {
                return;
            }
        }
        std::future::pending::<()>().await
    };
    let dom_content = tokio::time::timeout(DOM_CONTENT_WAIT, dom_content)
        .await
        .is_ok();
    Ok(Navigated::Document { dom_content })
}

/// How long a committed document may take to parse before the ready check starts anyway.
const DOM_CONTENT_WAIT: Duration = Duration::from_secs(20);

/// Takes the main document's status, final URL and Retry-After from the responses seen so far
/// (the last one wins: after a challenge reload it is the reloaded document).
fn read_document_response(
    responses: &mut chromiumoxide::listeners::EventStream<EventResponseReceived>,
    main_frame: &Option<chromiumoxide::cdp::browser_protocol::page::FrameId>,
    page: &mut Page,
) {
    while let Some(Some(ev)) = responses.next().now_or_never() {
        if ev.r#type == ResourceType::Document
            && ev.frame_id.is_some()
            && &ev.frame_id == main_frame
        {
            page.status = u16::try_from(ev.response.status).ok();
            page.url = ev.response.url.clone();
            page.retry_after = header(ev.response.headers.inner(), "retry-after");
        }
    }
}

/// Polls until the ready selector appears after a challenge reloads the page. Errors are expected
/// while the page navigates (its JS context is replaced), so they only mean "not yet".
async fn wait_for_clearance(tab: &Tab, css: &str, timeout: Duration) -> bool {
    let selector = serde_json::to_string(css).unwrap_or_default();
    let check = format!("!!document.querySelector({selector})");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let probe =
            tokio::time::timeout(Duration::from_secs(2), tab.evaluate(check.as_str())).await;
        if let Ok(Ok(result)) = probe
            && result.into_value::<bool>().unwrap_or(false)
        {
            return true;
        }
    }
    false
}

fn header(headers: &serde_json::Value, name: &str) -> Option<String> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

/// Waits in the page (one CDP round trip) until `css` matches or `timeout` passes.
pub async fn wait_ready(tab: &Tab, css: &str, timeout: Duration) -> Result<bool, RenderError> {
    let selector = serde_json::to_string(css).unwrap_or_default();
    let ms = timeout.as_millis();
    let script = format!(
        "new Promise(resolve => {{ const q = () => !!document.querySelector({selector}); \
         if (q()) return resolve(true); \
         const obs = new MutationObserver(() => {{ if (q()) {{ obs.disconnect(); resolve(true); }} }}); \
         obs.observe(document, {{ childList: true, subtree: true, attributes: true }}); \
         setTimeout(() => {{ obs.disconnect(); resolve(q()); }}, {ms}); }})"
    );
    let eval = tokio::time::timeout(timeout + Duration::from_secs(5), tab.evaluate(script)).await;
    match eval {
        Ok(Ok(result)) => Ok(result.into_value::<bool>().unwrap_or(false)),
        Ok(Err(e)) => Err(RenderError::Browser(format!("ready check failed: {e}"))),
        Err(_) => Err(RenderError::Timeout {
            url: "ready check".into(),
            secs: timeout.as_secs(),
        }),
    }
}

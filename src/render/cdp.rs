//! The CDP renderer (chromiumoxide, the default): one Chromium per process on a persistent profile,
//! N pooled tabs. The browser is relaunched when it dies; tabs that hang are closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::network::{EventResponseReceived, ResourceType};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page as Tab};
use deadpool::Runtime;
use deadpool::managed::{Object, Pool, PoolError};
use futures::{FutureExt, StreamExt};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::pool::{TabManager, close_in_background};
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
}

/// The one browser of this process, relaunched with a new generation number when it dies.
pub struct BrowserSlot {
    settings: BrowserSettings,
    live: Mutex<Option<Live>>,
    generation: AtomicU64,
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

async fn launch(settings: &BrowserSettings) -> Result<Live, RenderError> {
    let chrome = super::profile::launcher(&settings.profile_dir, &settings.chrome);
    let config = BrowserConfig::builder()
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
        let block = if settings.block_resources {
            vec![ResourceType::Image, ResourceType::Font, ResourceType::Media]
        } else {
            Vec::new()
        };
        let slot = Arc::new(BrowserSlot {
            live: Mutex::new(Some(launch(&settings).await?)),
            settings,
            generation: AtomicU64::new(0),
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

    async fn reset_identity(&self) -> Result<(), RenderError> {
        self.slot.clear_cookies().await
    }

    async fn close(&self) {
        self.pool.close();
        self.slot.close(Duration::from_secs(5)).await;
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
    match tokio::time::timeout(nav_timeout, tab.goto(url)).await {
        Err(_) => {
            return Err(RenderError::Timeout {
                url: url.into(),
                secs: nav_timeout.as_secs(),
            });
        }
        Ok(Err(e)) => {
            return Err(RenderError::Navigation {
                url: url.into(),
                reason: e.to_string(),
            });
        }
        Ok(Ok(_)) => {}
    }
    let mut page = Page {
        url: url.to_string(),
        ..Page::default()
    };
    read_document_response(&mut responses, &main_frame, &mut page);
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
    if request.screenshot {
        let params = ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .build();
        page.screenshot = tab.screenshot(params).await.ok();
    }
    page.render_time = started.elapsed();
    Ok(page)
}

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

//! Render (stage 2): a [`Renderer`] turns a URL into a [`Page`]: final URL, main-document status,
//! HTML once the site's ready condition holds, timings. `cdp` drives Chromium over the DevTools
//! protocol with a pool of tabs (`pool`) on one browser (`slot`) with a persistent profile
//! (`profile`); `webdriver` drives the same Chromium through chromedriver.

pub mod build;
pub mod cdp;
pub mod confine;
mod navigate;
pub mod pool;
pub mod profile;
pub mod retire;
pub mod slot;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use build::BrowserBuild;
pub use cdp::CdpRenderer;
pub use navigate::wait_ready;
pub use retire::Retirement;

use crate::site::{Site, SiteState};

/// How to launch the browser (both renderers).
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

/// What to render and how to know it is done.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub url: String,
    /// CSS selector whose presence means the page is ready.
    pub ready: Option<String>,
    pub ready_timeout: Duration,
    pub screenshot: bool,
    /// Wait in the same tab for a JS challenge to clear by itself (it sets a clearance cookie in
    /// the persistent profile and reloads).
    pub challenge: Option<ChallengeWait>,
    /// The site's own page states (CSS): the ready wait also ends as soon as one of them shows.
    pub states: Vec<(SiteState, String)>,
}

impl RenderRequest {
    /// A listing page of `site`: its ready condition and states, and how to wait out a challenge
    /// (`classify::challenge_wait`).
    pub fn listing(site: &Site, url: &str, challenge: ChallengeWait) -> RenderRequest {
        RenderRequest {
            url: url.to_string(),
            ready: Some(site.ready.clone()),
            ready_timeout: site.ready_timeout,
            screenshot: site.screenshot,
            challenge: Some(challenge),
            states: site_states(site),
        }
    }

    /// A search page of `site` (ready by `[search] ready`, when it has one).
    pub fn search(
        site: &Site,
        url: &str,
        timeout: Duration,
        challenge: ChallengeWait,
    ) -> RenderRequest {
        RenderRequest {
            url: url.to_string(),
            ready: site.search.as_ref().and_then(|s| s.ready.clone()),
            ready_timeout: timeout,
            screenshot: false,
            challenge: Some(challenge),
            states: site_states(site),
        }
    }
}

/// The site's `[markers.selectors]`, as the browser evaluates them.
fn site_states(site: &Site) -> Vec<(SiteState, String)> {
    let selectors = site.markers.selectors.iter();
    selectors.map(|s| (s.state, s.css.clone())).collect()
}

/// How to recognise a challenge interstitial and how long to let it work.
#[derive(Debug, Clone)]
pub struct ChallengeWait {
    /// Lowercase substrings of a challenge page's HTML.
    pub markers: Vec<String>,
    /// Lowercase substrings of a captcha or block page: a page that shows one is never waited
    /// on as a challenge, even when it also carries a challenge marker.
    pub block_markers: Vec<String>,
    pub timeout: Duration,
}

impl ChallengeWait {
    /// Whether `html` is a challenge worth waiting on: a challenge marker and no block marker.
    pub fn matches(&self, html: &str) -> bool {
        let html = html.to_lowercase();
        let any = |markers: &[String]| markers.iter().any(|m| html.contains(m.as_str()));
        any(&self.markers) && !any(&self.block_markers)
    }
}

/// A rendered page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// URL after redirects.
    pub url: String,
    /// HTTP status of the main document, when the browser reported one.
    pub status: Option<u16>,
    /// The main document's `Retry-After` header, if any.
    pub retry_after: Option<String>,
    pub html: String,
    /// Whether the ready condition was met.
    pub ready: bool,
    pub screenshot: Option<Vec<u8>>,
    pub render_time: Duration,
    /// The site state (`[markers.selectors]`) the page showed when the ready wait ended.
    pub state: Option<SiteState>,
    /// Failed answers (status ≥ 400) to the page's own data requests (XHR/fetch to the
    /// document's origin), in the order they came: a 429 there is the site rate-limiting us.
    pub data_errors: Vec<DataError>,
}

/// One failed XHR/fetch answer from the page's own origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub url: String,
    pub status: u16,
    pub retry_after: Option<String>,
}

/// The most a page keeps of its failed data requests.
pub const MAX_DATA_ERRORS: usize = 16;

/// Rendering failed before a page could be classified; all of these are worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("navigation to {url} timed out after {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("navigation to {url} failed: {reason}")]
    Navigation { url: String, reason: String },
    #[error("browser failed: {0}")]
    Browser(String),
    /// The tab's renderer process died (out of memory, killed or crashed) while it rendered.
    #[error("the renderer crashed while rendering {url}")]
    Crashed { url: String },
    #[error("no tab free within the wait timeout")]
    PoolExhausted,
}

/// Turns URLs into pages.
pub trait Renderer: Send + Sync + 'static {
    fn render(
        &self,
        request: &RenderRequest,
    ) -> impl Future<Output = Result<Page, RenderError>> + Send;

    /// Starts a fresh identity after repeated blocks: clears the profile's cookies.
    fn reset_identity(&self) -> impl Future<Output = Result<(), RenderError>> + Send;

    /// Closes the browser and reaps its processes.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

pub mod webdriver;

pub use webdriver::WebDriverRenderer;

/// The renderer chosen at run time (`--renderer cdp|webdriver`).
pub enum AnyRenderer {
    Cdp(CdpRenderer),
    /// Boxed: it holds the session state inline and is several times the size of `Cdp`.
    WebDriver(Box<WebDriverRenderer>),
}

impl Renderer for AnyRenderer {
    async fn render(&self, request: &RenderRequest) -> Result<Page, RenderError> {
        match self {
            AnyRenderer::Cdp(renderer) => renderer.render(request).await,
            AnyRenderer::WebDriver(renderer) => renderer.render(request).await,
        }
    }

    async fn reset_identity(&self) -> Result<(), RenderError> {
        match self {
            AnyRenderer::Cdp(renderer) => renderer.reset_identity().await,
            AnyRenderer::WebDriver(renderer) => renderer.reset_identity().await,
        }
    }

    async fn close(&self) {
        match self {
            AnyRenderer::Cdp(renderer) => renderer.close().await,
            AnyRenderer::WebDriver(renderer) => renderer.close().await,
        }
    }
}

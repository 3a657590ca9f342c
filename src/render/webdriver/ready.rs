//! The ready wait of the `webdriver` renderer: one short `execute_async` slice at a time of the
//! MutationObserver script (as `navigate::wait_ready`), which also tells the old document from the new
//! one and reports the main-document status; then the page is read from the current window.

use std::time::{Duration, Instant};

use fantoccini::Client;
use serde_json::{Value, json};

use super::session::command;
use crate::render::{Page, RenderError, RenderRequest};

/// Longest time one ready-wait script holds the session: short enough that four windows take
/// turns several times per fixture page, long enough that a ready page answers in one call.
pub const READY_SLICE: Duration = Duration::from_millis(100);

/// Marks the current document, so the ready wait can tell it from the one `goto` brings.
pub(super) const MARK_OLD: &str = "window.__sfOld = true;";

/// The ready wait: the MutationObserver script of `navigate::wait_ready`, answering after at most
/// `ms`, and reporting the old document (navigation not committed yet) and the main-document
/// status (`responseStatus`: WebDriver has no API for it) without waiting.
const PROBE: &str = r#"
const [css, ms, done] = arguments;
const nav = performance.getEntriesByType('navigation')[0];
const status = nav && nav.responseStatus ? nav.responseStatus : null;
const report = ready => done({ old: !!window.__sfOld, status, href: location.href, ready });
if (window.__sfOld) return setTimeout(() => report(false), 20);
if (location.protocol === 'chrome-error:' || (status && status >= 400)) return report(false);
const q = () => css === null ? document.readyState === 'complete' : !!document.querySelector(css);
if (q()) return report(true);
let timer;
const finish = () => { clearTimeout(timer); obs.disconnect(); document.removeEventListener('readystatechange', check); };
const check = () => { if (q()) { finish(); report(true); } };
const obs = new MutationObserver(check);
obs.observe(document, { childList: true, subtree: true, attributes: true });
document.addEventListener('readystatechange', check);
timer = setTimeout(() => { finish(); report(q()); }, ms);
"#;

/// What one ready-wait slice saw.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Probe {
    old: bool,
    status: Option<u16>,
    href: String,
    ready: bool,
}

impl Probe {
    /// The new document shows the ready condition (a challenge reload has finished).
    pub(super) fn cleared(&self) -> bool {
        self.ready && !self.old
    }
}

/// The two deadlines of one render's ready wait.
pub(super) struct Wait {
    url: String,
    nav_timeout: Duration,
    ready_timeout: Duration,
    /// For the new document to replace the old one.
    nav_deadline: Instant,
    /// For the ready condition, counted from the first probe of the new document.
    ready_deadline: Option<Instant>,
}

impl Wait {
    pub(super) fn new(request: &RenderRequest, nav_timeout: Duration) -> Wait {
        Wait {
            url: request.url.clone(),
            nav_timeout,
            ready_timeout: request.ready_timeout,
            nav_deadline: Instant::now() + nav_timeout,
            ready_deadline: None,
        }
    }

    pub(super) fn slice(&self) -> Duration {
        let deadline = self.ready_deadline.unwrap_or(self.nav_deadline);
        deadline
            .saturating_duration_since(Instant::now())
            .min(READY_SLICE)
    }

    /// `Some(probe)` when the wait is over: ready, an error status, or the ready timeout passed.
    pub(super) fn judge(&mut self, probe: Option<Probe>) -> Result<Option<Probe>, RenderError> {
        let now = Instant::now();
        match probe {
            None | Some(Probe { old: true, .. }) if now < self.nav_deadline => Ok(None),
            None | Some(Probe { old: true, .. }) => Err(RenderError::Timeout {
                url: self.url.clone(),
                secs: self.nav_timeout.as_secs(),
            }),
            Some(p) if p.href.starts_with("chrome-error:") => Err(RenderError::Navigation {
                url: self.url.clone(),
                reason: "the browser showed its network error page".into(),
            }),
            Some(p) if p.ready || p.status.is_some_and(|s| s >= 400) => Ok(Some(p)),
            Some(p) => {
                let deadline = *self.ready_deadline.get_or_insert(now + self.ready_timeout);
                Ok((now >= deadline).then_some(p))
            }
        }
    }
}

/// One ready-wait slice; `None` when the script failed (the document was being replaced).
pub(super) async fn probe(
    client: &Client,
    css: &Value,
    slice: Duration,
) -> Result<Option<Probe>, RenderError> {
    let args = vec![css.clone(), json!(slice.as_millis() as u64)];
    match command(client.execute_async(PROBE, args)).await {
        Ok(value) => Ok(serde_json::from_value(value).ok()),
        Err(RenderError::Browser(reason)) if is_script_failure(&reason) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the final URL, the HTML and, when asked or when the page failed, a PNG screenshot of
/// the current window.
pub(super) async fn read(
    client: &Client,
    request: &RenderRequest,
    probe: Probe,
) -> Result<Page, RenderError> {
    let url = command(client.current_url()).await?.to_string();
    let html = command(client.source()).await?;
    let ready = match (&request.ready, probe.status) {
        (_, Some(status)) if status >= 400 => false,
        (Some(_), _) => probe.ready,
        (None, _) => true,
    };
    // As in the CDP renderer: a page that never got ready (and is not a gone listing) is about
    // to fail, and its picture goes into the debug snapshot.
    let failing = !ready && !matches!(probe.status, Some(404 | 410));
    let screenshot = match request.screenshot || failing {
        true => command(client.screenshot()).await.ok(),
        false => None,
    };
    Ok(Page {
        url,
        status: probe.status,
        // The Retry-After header is not visible over WebDriver: left None, so classify uses its
        // default delay for a 429.
        retry_after: None,
        html,
        ready,
        screenshot,
        render_time: Duration::ZERO,
        // WebDriver sees neither the site's states during the wait nor the page's own requests:
        // classify reads the states off the HTML.
        ..Page::default()
    })
}

/// Script errors raised while a navigation replaces the document (not a broken session).
fn is_script_failure(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "javascript error",
        "script timeout",
        "execution context",
        "target navigated",
        "detached",
    ]
    .iter()
    .any(|needle| reason.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ready_timeout: Duration) -> RenderRequest {
        RenderRequest {
            url: "http://127.0.0.1:1/item/1".into(),
            ready: Some("main[data-ready]".into()),
            ready_timeout,
            screenshot: false,
            challenge: None,
            states: vec![],
        }
    }

    fn seen(old: bool, status: Option<u16>, href: &str, ready: bool) -> Option<Probe> {
        let href = href.to_string();
        Some(Probe {
            old,
            status,
            href,
            ready,
        })
    }

    const PAGE: &str = "http://127.0.0.1:1/item/1";

    #[test]
    fn the_old_document_or_a_failed_script_means_wait_until_the_navigation_timeout() {
        let mut wait = Wait::new(&request(Duration::from_secs(5)), Duration::from_secs(30));
        assert!(
            wait.judge(seen(true, Some(200), PAGE, true))
                .unwrap()
                .is_none()
        );
        assert!(wait.judge(None).unwrap().is_none());
        let mut expired = Wait::new(&request(Duration::from_secs(5)), Duration::ZERO);
        let err = expired
            .judge(seen(true, Some(200), PAGE, true))
            .unwrap_err();
        assert!(matches!(err, RenderError::Timeout { .. }), "{err}");
    }

    #[test]
    fn a_ready_page_or_an_error_status_ends_the_wait_at_once() {
        let mut wait = Wait::new(&request(Duration::from_secs(5)), Duration::from_secs(30));
        assert!(
            wait.judge(seen(false, Some(200), PAGE, true))
                .unwrap()
                .is_some()
        );
        let done = wait.judge(seen(false, Some(503), PAGE, false)).unwrap();
        assert_eq!(done.and_then(|p| p.status), Some(503));
    }

    #[test]
    fn a_page_never_ready_is_returned_unready_after_the_ready_timeout() {
        let mut wait = Wait::new(&request(Duration::from_secs(5)), Duration::from_secs(30));
        assert!(
            wait.judge(seen(false, Some(200), PAGE, false))
                .unwrap()
                .is_none()
        );
        let mut impatient = Wait::new(&request(Duration::ZERO), Duration::from_secs(30));
        let done = impatient
            .judge(seen(false, Some(200), PAGE, false))
            .unwrap();
        assert!(done.is_some_and(|p| !p.ready));
    }

    #[test]
    fn the_browser_error_page_is_a_navigation_error() {
        let mut wait = Wait::new(&request(Duration::from_secs(5)), Duration::from_secs(30));
        let probe = seen(false, None, "chrome-error://chromewebdata/", false);
        let err = wait.judge(probe).unwrap_err();
        assert!(matches!(err, RenderError::Navigation { .. }), "{err}");
    }
}

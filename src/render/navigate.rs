//! One page in one CDP tab: navigate, wait for the site's ready condition (and for a JS
//! challenge to clear), read the main document's status and the HTML. Used by the CDP renderer
//! for every page; the tab comes from its pool and may still show the previous page.

use std::time::{Duration, Instant};

use chromiumoxide::Page as Tab;
use chromiumoxide::cdp::IntoEventKind;
use chromiumoxide::cdp::browser_protocol::inspector;
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventRequestWillBeSent, EventResponseReceived, LoaderId, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, EventFrameNavigated, EventLifecycleEvent,
    EventNavigatedWithinDocument, Frame, FrameId,
};
use chromiumoxide::listeners::EventStream;
use chromiumoxide::page::ScreenshotParams;
use futures::{FutureExt, StreamExt};

use super::{ChallengeWait, DataError, MAX_DATA_ERRORS, Page, RenderError, RenderRequest};
use crate::site::SiteState;

/// Navigates one tab and reads the page once the ready condition holds (or its timeout passes).
/// A renderer that dies meanwhile (out of memory, killed, crashed) ends the render at once with
/// [`RenderError::Crashed`] instead of leaving it to wait out its timeouts.
pub(super) async fn render_in(
    tab: &Tab,
    request: &RenderRequest,
    nav_timeout: Duration,
) -> Result<Page, RenderError> {
    let browser_err = |e: chromiumoxide::error::CdpError| RenderError::Browser(e.to_string());
    // `Inspector.targetCrashed` is only sent once the Inspector domain is enabled.
    tab.execute(inspector::EnableParams::default())
        .await
        .map_err(browser_err)?;
    let mut crashed = tab
        .event_listener::<inspector::EventTargetCrashed>()
        .await
        .map_err(browser_err)?;
    tokio::select! {
        rendered = render_steps(tab, request, nav_timeout) => rendered,
        Some(_) = crashed.next() => Err(RenderError::Crashed { url: request.url.clone() }),
    }
}

async fn render_steps(
    tab: &Tab,
    request: &RenderRequest,
    nav_timeout: Duration,
) -> Result<Page, RenderError> {
    let started = Instant::now();
    let url = request.url.as_str();
    let browser_err = |e: chromiumoxide::error::CdpError| RenderError::Browser(e.to_string());
    let main_frame = tab
        .mainframe()
        .await
        .map_err(browser_err)?
        .ok_or_else(|| RenderError::Browser("the tab has no main frame".into()))?;
    // Subscribe before navigating, or the document's response can be missed.
    let mut responses = tab
        .event_listener::<EventResponseReceived>()
        .await
        .map_err(browser_err)?;
    let navigated = tokio::time::timeout(nav_timeout, navigate(tab, url, &main_frame, nav_timeout))
        .await
        .map_err(|_| RenderError::Timeout {
            url: url.into(),
            secs: nav_timeout.as_secs(),
        })??;
    let mut page = Page {
        url: url.to_string(),
        ..Page::default()
    };
    read_document_response(&mut responses, &main_frame, navigated.loader(), &mut page);
    match navigated {
        Navigated::Document {
            dom_content: false, ..
        } => {
            tracing::debug!(
                url,
                "Document committed; DOMContentLoaded not seen in time."
            );
        }
        Navigated::Document { .. } | Navigated::SameDocument => {}
        // An error status with an empty body shows Chromium's error page: still a page with a
        // status to classify. Without any response the site was not reached at all.
        Navigated::Failed { .. } if page.status.is_some() => {}
        Navigated::Failed { reason, .. } => {
            return Err(RenderError::Navigation {
                url: url.into(),
                reason,
            });
        }
    }
    wait_until_settled(tab, request, &mut responses, &main_frame, &mut page).await?;
    read_data_errors(&mut responses, &mut page);
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

/// Waits for the ready condition or one of the site's states, then reads the HTML; a JS
/// challenge (and no block or other state beside it) is waited out in the same tab, after which
/// the reloaded document's response and HTML are read.
async fn wait_until_settled(
    tab: &Tab,
    request: &RenderRequest,
    responses: &mut EventStream<EventResponseReceived>,
    main_frame: &FrameId,
    page: &mut Page,
) -> Result<(), RenderError> {
    let browser_err = |e: chromiumoxide::error::CdpError| RenderError::Browser(e.to_string());
    let waited = match (&request.ready, page.status) {
        (_, Some(status)) if status >= 400 => Waited::TimedOut,
        (Some(css), _) => wait_for(tab, css, &request.states, request.ready_timeout).await?,
        (None, _) => Waited::Ready,
    };
    page.set_waited(waited);
    page.html = tab.content().await.map_err(browser_err)?;
    let waiting_state = page.state.is_none_or(|s| s == SiteState::Challenge);
    if let (false, true, Some(challenge), Some(css)) = (
        page.ready,
        waiting_state,
        &request.challenge,
        &request.ready,
    ) && challenge.matches(&page.html)
    {
        let waited = wait_for_clearance(tab, css, &request.states, challenge).await;
        page.set_waited(waited);
        // The challenge reloaded the page: the reloaded document's response is the last one.
        read_document_response(responses, main_frame, None, page);
        page.html = tab.content().await.map_err(browser_err)?;
        tracing::debug!(url = %request.url, cleared = page.ready, "Waited for a JS challenge.");
    }
    Ok(())
}

/// How a navigation ended.
enum Navigated {
    /// Our document committed; `dom_content` says whether DOMContentLoaded fired in time (if
    /// not, the ready check decides).
    Document { loader: LoaderId, dom_content: bool },
    /// The URL differed from the page's only by its fragment.
    SameDocument,
    /// The navigation failed (refused, aborted, an error status with an empty body).
    Failed { loader: LoaderId, reason: String },
}

impl Navigated {
    fn loader(&self) -> Option<&LoaderId> {
        match self {
            Navigated::Document { loader, .. } | Navigated::Failed { loader, .. } => Some(loader),
            Navigated::SameDocument => None,
        }
    }
}

/// Navigates the tab and returns once *our* document has fired DOMContentLoaded — not `load`.
///
/// The navigation is started from the page (`location.href = …`) rather than with CDP
/// `Page.navigate`: chromiumoxide holds the answer to any `Page.navigate` until the `load`
/// event of the page *and every frame in it*, which never comes on pages whose iframes point
/// at hosts that do not answer (real eBay item pages). The site's ready condition, checked
/// next, says when the page is complete.
///
/// The tab may still run the previous page, which can navigate by itself (a reload, a
/// redirect): so the navigation is recognised by its request — the main frame's document
/// request for this URL — and only the commit with that request's loader counts.
async fn navigate(
    tab: &Tab,
    url: &str,
    main: &FrameId,
    budget: Duration,
) -> Result<Navigated, RenderError> {
    let deadline = Instant::now() + budget;
    let failed = |reason: String| RenderError::Navigation {
        url: url.into(),
        reason,
    };
    // Subscribe first: the events can arrive before `evaluate` returns.
    let (mut requests, mut commits, mut within, mut failures, mut lifecycle) = (
        listen::<EventRequestWillBeSent>(tab, url).await?,
        listen::<EventFrameNavigated>(tab, url).await?,
        listen::<EventNavigatedWithinDocument>(tab, url).await?,
        listen::<EventLoadingFailed>(tab, url).await?,
        listen::<EventLifecycleEvent>(tab, url).await?,
    );
    let target = serde_json::to_string(url).map_err(|e| failed(e.to_string()))?;
    tab.evaluate(format!("location.href = {target}; true"))
        .await
        .map_err(|e| failed(format!("could not start the navigation: {e}")))?;
    let wanted = without_fragment(url);
    let mut ours = None; // (request id, loader id) of our document request
    let mut commits_seen: Vec<Frame> = Vec::new(); // main-frame commits seen before our request
    let frame = loop {
        if let Some((_, loader)) = &ours
            && let Some(i) = commits_seen.iter().position(|f| &f.loader_id == loader)
        {
            break commits_seen.swap_remove(i);
        }
        tokio::select! {
            Some(ev) = requests.next() => {
                let document = ev.r#type == Some(ResourceType::Document);
                if ours.is_none() && document && ev.frame_id.as_ref() == Some(main)
                    && without_fragment(&ev.request.url) == wanted
                {
                    ours = Some((ev.request_id.clone(), ev.loader_id.clone()));
                }
            }
            Some(ev) = commits.next() => {
                if ev.frame.parent_id.is_none() {
                    commits_seen.push(ev.frame.clone());
                }
            }
            Some(ev) = failures.next() => {
                if let Some((request, loader)) = &ours && &ev.request_id == request {
                    let reason = ev.error_text.clone();
                    return Ok(Navigated::Failed { loader: loader.clone(), reason });
                }
            }
            Some(ev) = within.next() => {
                if &ev.frame_id == main && without_fragment(&ev.url) == wanted {
                    return Ok(Navigated::SameDocument);
                }
            }
            else => return Err(failed("the tab closed".into())),
        }
    };
    if frame.unreachable_url.is_some() || frame.url.starts_with("chrome-error:") {
        let reason = "Chromium showed its error page".to_string();
        let loader = frame.loader_id;
        return Ok(Navigated::Failed { loader, reason });
    }
    let loader = frame.loader_id;
    let dom_content = async {
        while let Some(ev) = lifecycle.next().await {
            if ev.name == "DOMContentLoaded" && ev.loader_id == loader && &ev.frame_id == main {
                return;
            }
        }
        std::future::pending::<()>().await
    };
    // What is left of the budget, less a second to read the page before the caller gives up.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(Duration::from_secs(1));
    let dom_content = tokio::time::timeout(left, dom_content).await.is_ok();
    Ok(Navigated::Document {
        loader,
        dom_content,
    })
}

/// A stream of the tab's events of one kind; failing to subscribe fails the navigation to `url`.
async fn listen<T: IntoEventKind>(tab: &Tab, url: &str) -> Result<EventStream<T>, RenderError> {
    tab.event_listener::<T>()
        .await
        .map_err(|e| RenderError::Navigation {
            url: url.into(),
            reason: e.to_string(),
        })
}

/// A URL without its `#fragment` (CDP reports request URLs without it).
fn without_fragment(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => url.split('#').next().unwrap_or(url).to_string(),
    }
}

/// Takes the main document's status, final URL and Retry-After from the responses seen so far:
/// of the given loader's document, or with none the last one (after a challenge reloaded the
/// page, the reloaded document). Failed answers to the page's own data requests are kept.
fn read_document_response(
    responses: &mut EventStream<EventResponseReceived>,
    main_frame: &FrameId,
    loader: Option<&LoaderId>,
    page: &mut Page,
) {
    while let Some(Some(ev)) = responses.next().now_or_never() {
        if ev.r#type == ResourceType::Document
            && ev.frame_id.as_ref() == Some(main_frame)
            && loader.is_none_or(|l| &ev.loader_id == l)
        {
            page.status = u16::try_from(ev.response.status).ok();
            page.url = ev.response.url.clone();
            page.retry_after = header(ev.response.headers.inner(), "retry-after");
        } else {
            keep_data_error(&ev, page);
        }
    }
}

/// Keeps the failed data requests answered since the document was read.
fn read_data_errors(responses: &mut EventStream<EventResponseReceived>, page: &mut Page) {
    while let Some(Some(ev)) = responses.next().now_or_never() {
        keep_data_error(&ev, page);
    }
}

/// Keeps `ev` when it is a failed (≥ 400) XHR/fetch answer from the page's own origin.
fn keep_data_error(ev: &EventResponseReceived, page: &mut Page) {
    let data = matches!(ev.r#type, ResourceType::Xhr | ResourceType::Fetch);
    let Ok(status) = u16::try_from(ev.response.status) else {
        return;
    };
    if !data || status < 400 || page.data_errors.len() >= MAX_DATA_ERRORS {
        return;
    }
    let origin = |u: &str| url::Url::parse(u).map(|u| u.origin()).ok();
    if origin(&ev.response.url).is_none() || origin(&ev.response.url) != origin(&page.url) {
        return;
    }
    page.data_errors.push(DataError {
        url: ev.response.url.clone(),
        status,
        retry_after: header(ev.response.headers.inner(), "retry-after"),
    });
}

/// Polls until the ready selector appears after a challenge reloads the page, or the page shows
/// something a wait will not clear: one of the site's other states, or a block marker (a captcha
/// that also carries challenge wording). Errors are expected while the page navigates (its JS
/// context is replaced), so they only mean "not yet".
async fn wait_for_clearance(
    tab: &Tab,
    css: &str,
    states: &[(SiteState, String)],
    challenge: &ChallengeWait,
) -> Waited {
    let others: Vec<_> = states
        .iter()
        .filter(|(state, _)| *state != SiteState::Challenge)
        .cloned()
        .collect();
    let watched = watched_json(css, &others);
    let blocks = serde_json::to_string(&challenge.block_markers).unwrap_or_else(|_| "[]".into());
    let check = format!(
        "(() => {{ for (const [name, css] of {watched}) {{ \
           try {{ if (document.querySelector(css)) return name; }} catch (e) {{}} }} \
         const html = document.documentElement ? document.documentElement.outerHTML.toLowerCase() : ''; \
         return {blocks}.some(m => html.includes(m)) ? 'block' : null; }})()"
    );
    let deadline = Instant::now() + challenge.timeout;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let probe =
            tokio::time::timeout(Duration::from_secs(2), tab.evaluate(check.as_str())).await;
        if let Ok(Ok(result)) = probe
            && let Ok(Some(seen)) = result.into_value::<Option<String>>()
        {
            return match waited(Some(&seen), &others) {
                // A block marker, not a declared selector: no state to report, classify reads it.
                Waited::TimedOut if seen == "block" => Waited::Blocked,
                other => other,
            };
        }
    }
    Waited::TimedOut
}

fn header(headers: &serde_json::Value, name: &str) -> Option<String> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

/// Waits in the page (one CDP round trip) until `css` matches or `timeout` passes. A page that
/// replaces its document meanwhile (a client-side redirect, a challenge reloading itself)
/// destroys the script's context: the wait then starts again in the new document.
pub async fn wait_ready(tab: &Tab, css: &str, timeout: Duration) -> Result<bool, RenderError> {
    let waited = wait_for(tab, css, &[], timeout).await?;
    Ok(waited == Waited::Ready)
}

/// How a ready wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waited {
    Ready,
    /// One of the site's own states showed first.
    State(SiteState),
    /// A challenge wait saw a block marker appear.
    Blocked,
    TimedOut,
}

impl Page {
    fn set_waited(&mut self, waited: Waited) {
        self.ready = waited == Waited::Ready;
        self.state = match waited {
            Waited::State(state) => Some(state),
            _ => None,
        };
    }
}

/// [`wait_ready`] that also ends as soon as one of the site's `states` shows (checked in
/// order, after the ready selector).
pub(super) async fn wait_for(
    tab: &Tab,
    css: &str,
    states: &[(SiteState, String)],
    timeout: Duration,
) -> Result<Waited, RenderError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let script = wait_script(css, states, left);
        let eval = tokio::time::timeout(left + Duration::from_secs(5), tab.evaluate(script)).await;
        match eval {
            Ok(Ok(result)) => {
                let seen = result.into_value::<Option<String>>().ok().flatten();
                return Ok(waited(seen.as_deref(), states));
            }
            Ok(Err(e)) if e.to_string().contains("context") && !left.is_zero() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => return Err(RenderError::Browser(format!("ready check failed: {e}"))),
            Err(_) => {
                return Err(RenderError::Timeout {
                    url: "ready check".into(),
                    secs: timeout.as_secs(),
                });
            }
        }
    }
}

/// The in-page wait: resolves with `"ready"`, a state's key, or `null` after `left`.
fn wait_script(css: &str, states: &[(SiteState, String)], left: Duration) -> String {
    let watched = watched_json(css, states);
    let ms = left.as_millis();
    format!(
        "new Promise(resolve => {{ const watched = {watched}; \
         const q = () => {{ for (const [name, css] of watched) {{ \
           try {{ if (document.querySelector(css)) return name; }} catch (e) {{}} }} return null; }}; \
         const now = q(); if (now) return resolve(now); \
         const obs = new MutationObserver(() => {{ const seen = q(); if (seen) {{ obs.disconnect(); resolve(seen); }} }}); \
         obs.observe(document, {{ childList: true, subtree: true, attributes: true }}); \
         setTimeout(() => {{ obs.disconnect(); resolve(q()); }}, {ms}); }})"
    )
}

/// `[["ready", css], [state, css]…]` as a JS literal: what an in-page wait watches, in order.
fn watched_json(ready: &str, states: &[(SiteState, String)]) -> String {
    let watched: Vec<(&str, &str)> = std::iter::once(("ready", ready))
        .chain(
            states
                .iter()
                .map(|(state, css)| (state.key(), css.as_str())),
        )
        .collect();
    serde_json::to_string(&watched).unwrap_or_else(|_| "[]".into())
}

/// The wait's answer as a [`Waited`].
fn waited(seen: Option<&str>, states: &[(SiteState, String)]) -> Waited {
    match seen {
        Some("ready") => Waited::Ready,
        Some(key) => states
            .iter()
            .find(|(state, _)| state.key() == key)
            .map_or(Waited::TimedOut, |(state, _)| Waited::State(*state)),
        None => Waited::TimedOut,
    }
}

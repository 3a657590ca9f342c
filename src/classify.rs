//! Classify (stage 3): a pure function from a rendered page and its site to a [`PageClass`], from the
//! main document's HTTP status, the site's markers and built-in bot-vendor markers. A block or
//! challenge verdict needs markers *and* missing expected content: a vendor script tag on a healthy
//! page is not a block.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use regex::Regex;

use crate::render::{ChallengeWait, DataError, Page};
use crate::site::{Site, SiteState};

/// Longest Retry-After we honour; longer waits are capped to this (and go through retry tiers).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Wait used when a 429 carries no usable Retry-After.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What a rendered page is, and so what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageClass {
    Content,
    Ended,
    Gone,
    /// A JavaScript interstitial that clears by waiting.
    Challenge,
    /// A captcha or an access-denied page.
    Blocked,
    RateLimited {
        retry_after: Duration,
    },
    ServerError,
    /// The ready condition was never met and nothing explains why.
    Empty,
}

impl PageClass {
    /// Short lowercase name used in the attempt log and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            PageClass::Content => "content",
            PageClass::Ended => "ended",
            PageClass::Gone => "gone",
            PageClass::Challenge => "challenge",
            PageClass::Blocked => "blocked",
            PageClass::RateLimited { .. } => "rate_limited",
            PageClass::ServerError => "server_error",
            PageClass::Empty => "empty",
        }
    }
}

/// Interstitials that pass by waiting (Cloudflare, Imperva/Distil and eBay's "Pardon Our
/// Interruption", which is served from eBay's `splashui` challenge path in every language).
const CHALLENGE_MARKERS: &[&str] = &[
    "_cf_chl_opt",
    "cf-chl-",
    "challenge-platform",
    "<title>just a moment...</title>",
    "pardon our interruption",
    "/splashui/challenge",
    "id=\"destform\"",
    "id=destform",
];

/// Captchas and access-denied pages (PerimeterX, DataDome, hCaptcha/reCAPTCHA forms, Akamai,
/// Amazon's captcha form).
const BLOCK_MARKERS: &[&str] = &[
    "px-captcha",
    "captcha-delivery.com",
    "/errors/validatecaptcha",
    "captcha_form",
    // Not bare "h-captcha": eBay's sign-in styles have an `ifh-captcha` class on healthy pages.
    "class=\"h-captcha\"",
    "class=h-captcha",
    "hcaptcha.com/1/api.js",
    "g-recaptcha",
    "robot or human",
    "<title>access denied</title>",
    "you don't have permission to access",
];

/// An Akamai edge reference id ("Reference #18.2f1e1202.1698311634.1a2b3c4d", or bare on eBay's
/// "Error Page"): the edge refused the request, so without content it is a block.
static AKAMAI_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    // A constant, valid pattern.
    Regex::new(r"\b\d{1,2}\.[0-9a-f]{8}\.\d{10}\.[0-9a-f]{6,10}\b").expect("valid regex")
});

/// Every challenge marker for `site` (built-in vendors and the site's own), lowercase.
pub fn challenge_markers(site: &Site) -> Vec<String> {
    lowercase(CHALLENGE_MARKERS, &site.markers.challenge_text)
}

/// Every block marker for `site` (built-in vendors and the site's own), lowercase.
pub fn block_markers(site: &Site) -> Vec<String> {
    lowercase(BLOCK_MARKERS, &site.markers.block_text)
}

fn lowercase(builtin: &[&str], own: &[String]) -> Vec<String> {
    let builtin = builtin.iter().map(|m| m.to_string());
    builtin
        .chain(own.iter().map(|m| m.to_lowercase()))
        .collect()
}

/// How the renderer waits out a challenge on `site`'s pages: never on a page that also shows a
/// captcha or block marker.
pub fn challenge_wait(site: &Site, timeout: Duration) -> ChallengeWait {
    ChallengeWait {
        markers: challenge_markers(site),
        block_markers: block_markers(site),
        timeout,
    }
}

/// Classifies a rendered page. In order: the document's status (429, 404/410), the ready
/// condition, the site's own states and markers, the page's own data requests (a 429 or 5xx
/// there), the built-in vendor markers, and last the remaining statuses.
pub fn classify(page: &Page, site: &Site) -> PageClass {
    let status = page.status.unwrap_or(200);
    if status == 429 {
        return rate_limited(page.retry_after.as_deref());
    }
    if status == 404 || status == 410 {
        return PageClass::Gone;
    }
    if page.ready {
        return if is_ended(page, site) {
            PageClass::Ended
        } else {
            PageClass::Content
        };
    }
    let html = page.html.to_lowercase();
    if let Some(class) = site_verdict(page, site, &html) {
        return class;
    }
    if let Some(class) = data_verdict(page) {
        return class;
    }
    if CHALLENGE_MARKERS.iter().any(|m| html.contains(m)) {
        return PageClass::Challenge;
    }
    if BLOCK_MARKERS.iter().any(|m| html.contains(m)) || AKAMAI_REFERENCE.is_match(&html) {
        return PageClass::Blocked;
    }
    match status {
        401 | 403 => PageClass::Blocked,
        500.. => PageClass::ServerError,
        _ => PageClass::Empty,
    }
}

/// What the site's own states say: the state the renderer saw (or, for a page rendered
/// elsewhere, its `[markers.selectors]` on the HTML), else its text markers. An error state is
/// explained by the failed data request behind it when there is one.
fn site_verdict(page: &Page, site: &Site, lowercase_html: &str) -> Option<PageClass> {
    let state = page
        .state
        .or_else(|| match site.markers.selectors.is_empty() {
            true => None,
            false => site
                .markers
                .state_in(&scraper::Html::parse_document(&page.html)),
        })
        .or_else(|| site.markers.state_by_text(lowercase_html))?;
    Some(match state {
        SiteState::Block => PageClass::Blocked,
        SiteState::Challenge => PageClass::Challenge,
        SiteState::Gone => PageClass::Gone,
        SiteState::Error => data_verdict(page).unwrap_or(PageClass::ServerError),
    })
}

/// What the page's failed data requests say: the site rate-limiting us (429), refusing us
/// (401/403) or failing (5xx). The first 429 wins over any other failure.
fn data_verdict(page: &Page) -> Option<PageClass> {
    let errors = &page.data_errors;
    if let Some(limited) = errors.iter().find(|e| e.status == 429) {
        return Some(rate_limited(limited.retry_after.as_deref()));
    }
    errors.iter().find_map(|e| match e.status {
        401 | 403 => Some(PageClass::Blocked),
        500.. => Some(PageClass::ServerError),
        _ => None,
    })
}

/// What on `page` showed `class`, when it was not the document itself: the failed data request
/// or the site's declared state (for the attempt log and `failures`).
pub fn evidence(page: &Page, class: &PageClass) -> Option<String> {
    let data = |e: &DataError| format!("its data request {} answered {}", e.url, e.status);
    let wanted = |status: u16| match class {
        PageClass::RateLimited { .. } => status == 429,
        PageClass::Blocked => matches!(status, 401 | 403),
        PageClass::ServerError => status >= 500,
        _ => false,
    };
    let document = page.status.unwrap_or(200);
    if document < 400
        && let Some(error) = page.data_errors.iter().find(|e| wanted(e.status))
    {
        return Some(data(error));
    }
    page.state
        .map(|s| format!("the site's `{}` state showed", s.key()))
}

fn rate_limited(retry_after: Option<&str>) -> PageClass {
    let retry_after = retry_after
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .unwrap_or(DEFAULT_RETRY_AFTER);
    PageClass::RateLimited { retry_after }
}

fn is_ended(page: &Page, site: &Site) -> bool {
    crate::extract::is_ended(&page.html, site)
}

/// Whether `html` already holds the site's ready element: the ready condition of a page that was
/// not rendered here (a saved file), where no browser could wait for it.
pub fn ready_in_html(html: &str, site: &Site) -> bool {
    scraper::Html::parse_document(html)
        .select(&site.ready_selector)
        .next()
        .is_some()
}

/// Parses a Retry-After value (delta-seconds or an HTTP date), capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Sites;
    use std::path::Path;

    fn fixture_site() -> Site {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
        Sites::load(&dir).unwrap().get("fixture").unwrap().clone()
    }

    fn page(status: u16, ready: bool, html: &str) -> Page {
        Page {
            url: "http://127.0.0.1/item/1".into(),
            status: Some(status),
            html: html.into(),
            ready,
            ..Page::default()
        }
    }

    #[test]
    fn ready_page_is_content_even_with_a_vendor_script_tag() {
        let html = r#"<script src="https://geo.captcha-delivery.com/x.js"></script><main id="listing" data-ready="1"></main>"#;
        assert_eq!(
            classify(&page(200, true, html), &fixture_site()),
            PageClass::Content
        );
    }

    #[test]
    fn ended_banner_makes_an_ended_page() {
        let html =
            r#"<main id="listing" data-ready="1"><div class="ended-banner">ended</div></main>"#;
        assert_eq!(
            classify(&page(200, true, html), &fixture_site()),
            PageClass::Ended
        );
    }

    #[test]
    fn statuses_map_to_classes() {
        let site = fixture_site();
        assert_eq!(classify(&page(404, false, ""), &site), PageClass::Gone);
        assert_eq!(classify(&page(410, false, ""), &site), PageClass::Gone);
        assert_eq!(
            classify(&page(503, false, "down"), &site),
            PageClass::ServerError
        );
        assert_eq!(classify(&page(403, false, "no"), &site), PageClass::Blocked);
        assert_eq!(
            classify(&page(200, false, "<p>hi</p>"), &site),
            PageClass::Empty
        );
        let mut limited = page(429, false, "");
        limited.retry_after = Some("7".into());
        assert_eq!(
            classify(&limited, &site),
            PageClass::RateLimited {
                retry_after: Duration::from_secs(7)
            }
        );
    }

    #[test]
    fn markers_without_content_are_challenge_or_block() {
        let site = fixture_site();
        let challenge =
            "<title>Just a moment...</title><div>Checking your browser before accessing</div>";
        assert_eq!(
            classify(&page(503, false, challenge), &site),
            PageClass::Challenge
        );
        let captcha = "<form id=\"captcha_form\">Please verify yourself to continue</form>";
        assert_eq!(
            classify(&page(403, false, captcha), &site),
            PageClass::Blocked
        );
    }

    #[test]
    fn the_sites_own_block_marker_wins_over_a_built_in_challenge_marker() {
        let site = fixture_site();
        // Vendor wording ("Pardon Our Interruption" is a built-in challenge marker) on a captcha.
        let captcha = "<h1>Pardon Our Interruption</h1><p>Please verify yourself to continue</p>";
        assert_eq!(
            classify(&page(200, false, captcha), &site),
            PageClass::Blocked
        );
        let wait = challenge_wait(&site, Duration::from_secs(10));
        assert!(!wait.matches(captcha), "a captcha is never waited on");
        assert!(wait.matches("<h1>Pardon Our Interruption</h1><p>One moment</p>"));
    }

    #[test]
    fn the_sites_state_selectors_classify_before_built_in_markers() {
        let site = fixture_site();
        // Read off the HTML (a page the renderer did not watch): the captcha form is the
        // site's block state even with challenge wording around it.
        let form = "<title>Just a moment...</title><form id=\"captcha_form\"></form>";
        assert_eq!(classify(&page(200, false, form), &site), PageClass::Blocked);
        let error = "<main id=\"listing\" data-error=\"Error: HTTP 503\"></main>";
        assert_eq!(
            classify(&page(200, false, error), &site),
            PageClass::ServerError
        );
        // Seen by the renderer: its state wins even when the HTML changed since.
        let mut seen = page(200, false, "<p>anything</p>");
        seen.state = Some(SiteState::Gone);
        assert_eq!(classify(&seen, &site), PageClass::Gone);
    }

    #[test]
    fn failed_data_requests_explain_a_page_that_never_got_ready() {
        let site = fixture_site();
        let data = |status: u16, retry_after: Option<&str>| DataError {
            url: "http://127.0.0.1/api/item/1".into(),
            status,
            retry_after: retry_after.map(str::to_string),
        };
        let mut limited = page(
            200,
            false,
            "<main id=\"listing\" data-error=\"HTTP 429\"></main>",
        );
        limited.state = Some(SiteState::Error);
        limited.data_errors = vec![data(503, None), data(429, Some("3"))];
        let three = Duration::from_secs(3);
        let class = classify(&limited, &site);
        assert_eq!(class, PageClass::RateLimited { retry_after: three });
        assert_eq!(
            evidence(&limited, &class).as_deref(),
            Some("its data request http://127.0.0.1/api/item/1 answered 429")
        );
        // Without a declared error state the failed request still says what happened.
        let mut failing = page(200, false, "<main id=\"listing\"></main>");
        failing.data_errors = vec![data(503, None)];
        assert_eq!(classify(&failing, &site), PageClass::ServerError);
        failing.data_errors = vec![data(403, None)];
        assert_eq!(classify(&failing, &site), PageClass::Blocked);
        failing.data_errors = vec![data(404, None)];
        assert_eq!(classify(&failing, &site), PageClass::Empty);
        // A ready page is content whatever its data requests said.
        let mut ready = page(200, true, "<main id=\"listing\" data-ready=\"1\"></main>");
        ready.data_errors = vec![data(429, None)];
        assert_eq!(classify(&ready, &site), PageClass::Content);
    }

    #[test]
    fn an_akamai_reference_without_content_is_a_block() {
        let site = fixture_site();
        let edge = "<title>Error Page | eBay</title><p>Something went wrong on our end</p>\
                    <p class=\"reference-id\">0.8f1e1202.1784121724.18239769</p>";
        assert_eq!(classify(&page(200, false, edge), &site), PageClass::Blocked);
    }

    #[test]
    fn captcha_words_in_a_healthy_pages_styles_are_not_a_block() {
        let site = fixture_site();
        let styles = "<style>.ifh-captcha .ifh-captcha-header { font-size: 1.25rem }</style>";
        assert_eq!(classify(&page(200, false, styles), &site), PageClass::Empty);
        let widget = "<div class=\"h-captcha\" data-sitekey=\"x\"></div>";
        assert_eq!(
            classify(&page(200, false, widget), &site),
            PageClass::Blocked
        );
    }

    #[test]
    fn a_saved_page_is_ready_when_its_ready_element_is_in_the_html() {
        let site = fixture_site();
        assert!(ready_in_html(
            "<main id=listing data-ready=1></main>",
            &site
        ));
        assert!(!ready_in_html("<main id=listing></main>", &site));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

//! Classify (stage 3): a pure function from a rendered page and its site to a [`PageClass`], from the
//! main document's HTTP status, the site's markers and built-in bot-vendor markers. A block or
//! challenge verdict needs markers *and* missing expected content: a vendor script tag on a healthy
//! page is not a block.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use regex::Regex;

use crate::render::Page;
use crate::site::Site;

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
    CHALLENGE_MARKERS
        .iter()
        .map(|m| m.to_string())
        .chain(site.markers.challenge_text.iter().map(|m| m.to_lowercase()))
        .collect()
}

/// Classifies a rendered page.
pub fn classify(page: &Page, site: &Site) -> PageClass {
    let status = page.status.unwrap_or(200);
    if status == 429 {
        let retry_after = page
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .unwrap_or(DEFAULT_RETRY_AFTER);
        return PageClass::RateLimited { retry_after };
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
    let has_any = |markers: &[String]| markers.iter().any(|m| html.contains(&m.to_lowercase()));
    if has_any(&site.markers.challenge_text) || CHALLENGE_MARKERS.iter().any(|m| html.contains(m)) {
        return PageClass::Challenge;
    }
    if has_any(&site.markers.block_text)
        || BLOCK_MARKERS.iter().any(|m| html.contains(m))
        || AKAMAI_REFERENCE.is_match(&html)
    {
        return PageClass::Blocked;
    }
    if status == 401 || status == 403 {
        return PageClass::Blocked;
    }
    if status >= 500 {
        return PageClass::ServerError;
    }
    if has_any(&site.markers.gone_text) {
        return PageClass::Gone;
    }
    PageClass::Empty
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

//! End-to-end tests over real sockets with a minimal HTTP/1.1 client.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pages::escape;
use super::*;

/// A parsed HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a fresh connection and reads the whole response.
async fn http(site: &FixtureSite, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut stream = TcpStream::connect(site.addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        site.addr
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

async fn get(site: &FixtureSite, path: &str) -> Resp {
    http(site, "GET", path, &[]).await
}

async fn start(config: FixtureConfig) -> FixtureSite {
    FixtureSite::start(config, 0).await.unwrap()
}

/// Ids of real (non-sponsored) results, in page order.
fn result_ids(html: &str) -> Vec<String> {
    html.split("data-listing-id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

fn first_with_status(truth: &[TruthListing], status: &str) -> TruthListing {
    truth
        .iter()
        .find(|l| l.status == status)
        .cloned()
        .unwrap_or_else(|| panic!("no {status} listing"))
}

#[tokio::test]
async fn search_pages_paginate_and_match_ground_truth() {
    let site = start(FixtureConfig::default()).await;
    let truth = site.ground_truth("lamp");
    assert_eq!(truth.len(), 200);
    let mut seen = Vec::new();
    for page in 1..=4 {
        let resp = get(&site, &format!("/search?q=lamp&page={page}")).await;
        assert_eq!(resp.status, 200);
        let ids = result_ids(&resp.body);
        assert_eq!(ids.len(), 50, "page {page}");
        assert_eq!(
            resp.body
                .matches("class=\"result sponsored\" data-sponsored=\"1\"")
                .count(),
            1
        );
        assert!(
            resp.body
                .contains("<div id=\"search-ready\" data-count=\"200\">")
        );
        let next = format!(
            "<a class=\"next\" href=\"/search?q=lamp&amp;page={}\">Next</a>",
            page + 1
        );
        assert_eq!(resp.body.contains(&next), page < 4, "page {page}");
        assert!(!resp.body.contains("class=\"next\"") || page < 4);
        seen.extend(ids);
    }
    let truth_ids: Vec<String> = truth.iter().map(|l| l.external_id.clone()).collect();
    assert_eq!(seen, truth_ids);
    let past = get(&site, "/search?q=lamp&page=5").await;
    assert!(past.body.contains("<ol id=\"results\">\n</ol>"));
    assert!(past.body.contains("<p class=\"no-results\">No results</p>"));
    assert!(!past.body.contains("class=\"next\""));
    assert_eq!(site.counters().search_pages, 5);
    site.stop().await;
}

#[tokio::test]
async fn search_titles_are_escaped_and_gone_rows_are_placeholders() {
    let site = start(FixtureConfig::default()).await;
    let body = get(&site, "/search?q=lamp").await.body;
    let truth = site.ground_truth("lamp");
    for listing in truth.iter().take(50) {
        let title = listing
            .title
            .clone()
            .unwrap_or_else(|| format!("Listing {}", listing.external_id));
        let price = listing
            .price_text
            .clone()
            .unwrap_or_else(|| "—".to_string());
        let row = format!(
            "<span class=\"result-title\">{}</span></a> <span class=\"result-price\">{}</span>",
            escape(&title),
            escape(&price)
        );
        assert!(body.contains(&row), "missing row {row}");
    }
    assert!(truth.iter().any(|l| {
        l.title
            .as_deref()
            .is_some_and(|t| t.contains('<') || t.contains('&'))
    }));
    assert!(!body.contains("<Boxed>"));
    site.stop().await;
}

#[tokio::test]
async fn gone_and_unknown_items_are_404() {
    let site = start(FixtureConfig::default()).await;
    let gone = first_with_status(&site.ground_truth("lamp"), "gone");
    assert!(gone.title.is_none() && gone.images.is_empty());
    for path in [
        format!("/item/{}", gone.external_id),
        "/item/999".to_string(),
    ] {
        let resp = get(&site, &path).await;
        assert_eq!(resp.status, 404);
        assert!(
            resp.body
                .contains("<h1 class=\"gone\">This listing is no longer available</h1>")
        );
    }
    assert_eq!(
        get(&site, &format!("/api/item/{}", gone.external_id))
            .await
            .status,
        404
    );
    assert_eq!(site.counters().not_found, 3);
    let served = site.listing_pages_served();
    assert_eq!((served[&gone.external_id], served["999"]), (1, 1));
    site.stop().await;
}

#[tokio::test]
async fn item_fields_are_only_in_the_api() {
    let site = start(FixtureConfig::default()).await;
    let truth = site.ground_truth("lamp");
    for status in ["active", "ended"] {
        let listing = first_with_status(&truth, status);
        let title = listing.title.clone().unwrap();
        let html = get(&site, &format!("/item/{}", listing.external_id)).await;
        assert_eq!(html.status, 200);
        assert!(!html.body.contains(&title) && !html.body.contains(&escape(&title)));
        assert!(!html.body.contains(listing.price_text.as_deref().unwrap()));
        assert!(
            html.body.contains("<main id=\"listing\">") && !html.body.contains("data-ready=\"1\"")
        );
        assert!(html.body.contains(&format!(
            "<link rel=\"canonical\" href=\"{}\">",
            listing.url
        )));
        assert!(
            html.body
                .contains("<script src=\"/static/vendor-analytics.js\"")
        );
        let api = get(&site, &format!("/api/item/{}", listing.external_id)).await;
        assert_eq!(api.status, 200);
        let parsed: TruthListing = serde_json::from_str(&api.body).unwrap();
        assert_eq!(parsed, listing);
    }
    let c = site.counters();
    assert_eq!((c.listing_pages, c.api_calls, c.requests), (2, 2, 4));
    site.stop().await;
}

/// Ground truth with the (port-dependent) base URL removed.
fn portable(site: &FixtureSite, query: &str) -> Vec<TruthListing> {
    let base = site.base_url();
    let mut truth = site.ground_truth(query);
    for listing in &mut truth {
        listing.url = listing.url.replace(&base, "");
        listing
            .images
            .iter_mut()
            .for_each(|img| *img = img.replace(&base, ""));
    }
    truth
}

#[tokio::test]
async fn ground_truth_is_deterministic_per_seed() {
    let a = start(FixtureConfig::default()).await;
    let b = start(FixtureConfig::default()).await;
    let c = start(FixtureConfig {
        seed: 7,
        ..FixtureConfig::default()
    })
    .await;
    assert_eq!(portable(&a, "brass lamp"), portable(&b, "brass lamp"));
    assert_ne!(portable(&a, "brass lamp"), portable(&c, "brass lamp"));
    assert_ne!(portable(&a, "brass lamp"), portable(&a, "chair"));
    let over_http = get(&a, "/api/ground-truth?q=brass%20lamp").await;
    let parsed: Vec<TruthListing> = serde_json::from_str(&over_http.body).unwrap();
    assert_eq!(parsed, a.ground_truth("brass lamp"));
    assert!(parsed[0].url.starts_with(&a.base_url()));
    for site in [a, b, c] {
        site.stop().await;
    }
}

fn defended(defences: Defences) -> FixtureConfig {
    FixtureConfig {
        defences,
        ..FixtureConfig::default()
    }
}

async fn active_id(site: &FixtureSite) -> String {
    first_with_status(&site.ground_truth("lamp"), "active").external_id
}

#[tokio::test]
async fn captcha_blocks_with_403() {
    let site = start(defended(Defences {
        captcha_rate: 1.0,
        ..Defences::default()
    }))
    .await;
    let id = active_id(&site).await;
    let resp = get(&site, &format!("/item/{id}")).await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("<title>Security Measure</title>"));
    assert!(
        resp.body.contains("<form id=\"captcha_form\"")
            && resp.body.contains("Please verify yourself to continue")
    );
    assert_eq!(site.counters().captchas, 1);
    assert!(
        site.listing_pages_served().is_empty(),
        "a page the defences refused was not served"
    );
    let over_http: Counters =
        serde_json::from_str(&get(&site, "/api/counters").await.body).unwrap();
    assert_eq!(over_http, site.counters());
    let reset = http(&site, "POST", "/api/counters/reset", &[]).await;
    assert_eq!(reset.status, 200);
    assert_eq!(site.counters(), Counters::default());
    site.stop().await;
}

#[tokio::test]
async fn rate_limit_gives_429_with_retry_after() {
    let site = start(defended(Defences {
        rate_limit_rps: Some(1),
        ..Defences::default()
    }))
    .await;
    let id = active_id(&site).await;
    let first = get(&site, &format!("/item/{id}")).await;
    let second = get(&site, &format!("/item/{id}")).await;
    let statuses = [first.status, second.status];
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    let limited = if first.status == 429 { &first } else { &second };
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(limited.body.contains("Too Many Requests"));
    assert_eq!(site.counters().rate_limited, 1);
    site.stop().await;
}

#[tokio::test]
async fn challenge_until_clearance_cookie() {
    let site = start(defended(Defences {
        challenge_rate: 1.0,
        ..Defences::default()
    }))
    .await;
    let id = active_id(&site).await;
    let resp = get(&site, &format!("/item/{id}")).await;
    assert_eq!(resp.status, 503);
    assert!(
        resp.body.contains("<title>Just a moment...</title>")
            && resp.body.contains("<div id=\"challenge-running\">")
    );
    assert!(resp.body.contains("Checking your browser before accessing"));
    let start = resp.body.find("clearance=").unwrap() + "clearance=".len();
    let token = &resp.body[start..start + resp.body[start..].find(';').unwrap()];
    let cookie = format!("visitor=abc; clearance={token}");
    let cleared = http(&site, "GET", &format!("/item/{id}"), &[("Cookie", &cookie)]).await;
    assert_eq!(cleared.status, 200);
    assert!(
        cleared.header("set-cookie").is_none(),
        "visitor cookie already present"
    );
    assert_eq!(site.counters().challenges, 1);
    site.stop().await;
}

#[tokio::test]
async fn error_rate_gives_503_and_visitor_cookie_is_set() {
    let site = start(defended(Defences {
        error_rate: 1.0,
        ..Defences::default()
    }))
    .await;
    let id = active_id(&site).await;
    let resp = get(&site, &format!("/item/{id}")).await;
    assert_eq!(resp.status, 503);
    assert!(resp.body.contains("Service temporarily unavailable"));
    assert!(
        resp.header("set-cookie")
            .is_some_and(|c| c.starts_with("visitor=v"))
    );
    assert_eq!(site.counters().server_errors, 1);
    site.stop().await;
}

#[tokio::test]
async fn static_assets_and_home() {
    let site = start(FixtureConfig::default()).await;
    let img = get(&site, "/img/100001-1.png").await;
    assert_eq!(img.status, 200);
    assert_eq!(img.header("content-type"), Some("image/png"));
    assert_eq!(img.header("cache-control"), Some("max-age=3600"));
    assert!(img.body.as_bytes().starts_with(b"\x89PNG") || img.body.starts_with("\u{FFFD}PNG"));
    let js = get(&site, "/static/vendor-analytics.js").await;
    assert!(js.body.contains("window.__analytics = true;"));
    let home = get(&site, "/").await;
    assert!(
        home.body
            .contains("<form class=\"search-form\" action=\"/search\"")
    );
    assert_eq!(get(&site, "/favicon.ico").await.status, 200);
    assert_eq!(get(&site, "/promo/1").await.status, 404);
    site.stop().await;
}

#[tokio::test]
async fn the_admin_price_step_moves_prices_and_their_ground_truth() {
    let site = start(FixtureConfig::default()).await;
    let before = site.ground_truth("lamp");
    let resp = http(&site, "POST", "/__admin/price-step/2", &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(site.price_step(), 2);
    let after = site.ground_truth("lamp");
    let moved = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.price_minor != a.price_minor)
        .count();
    assert!(moved > 20, "{moved} prices moved");
    let live = after.iter().find(|l| l.status == "active").unwrap();
    let api = get(&site, &format!("/api/item/{}", live.external_id)).await;
    let shown: TruthListing = serde_json::from_str(&api.body).unwrap();
    assert_eq!(
        shown.price_minor, live.price_minor,
        "the page shows the step's price"
    );
    site.set_price_step(0);
    assert_eq!(
        site.ground_truth("lamp"),
        before,
        "step 0 is today's catalogue again"
    );
    site.stop().await;
}

#[tokio::test]
async fn in_api_mode_the_data_api_is_defended_too_but_never_challenged() {
    let site = start(defended(Defences {
        challenge_rate: 1.0,
        rate_limit_rps: Some(1),
        api: true,
        ..Defences::default()
    }))
    .await;
    let id = active_id(&site).await;
    // The challenge is for documents only: the first API call passes, the next is rate-limited
    // with a Retry-After, as a page would be.
    let first = get(&site, &format!("/api/item/{id}")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = get(&site, &format!("/api/item/{id}")).await;
    assert_eq!(second.status, 429);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(second.body.contains("rate_limited"));
    assert_eq!(site.counters().challenges, 0);
    site.stop().await;

    let site = start(defended(Defences {
        captcha_rate: 1.0,
        api: true,
        vendor_captcha: true,
        ..Defences::default()
    }))
    .await;
    let id = active_id(&site).await;
    let api = get(&site, &format!("/api/item/{id}")).await;
    assert_eq!((api.status, api.body.contains("captcha")), (403, true));
    // The vendor-worded captcha page carries a built-in challenge marker beside its form.
    let page = get(&site, &format!("/item/{id}")).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("<title>Pardon Our Interruption</title>"));
    assert!(page.body.contains("<form id=\"captcha_form\""));
    site.stop().await;
}

#[tokio::test]
async fn the_data_api_answers_after_its_latency_and_slow_listings_after_theirs() {
    let site = start(defended(Defences {
        api_latency_ms: 50,
        slow_api_rate: 1.0,
        slow_api_ms: 300,
        ..Defences::default()
    }))
    .await;
    let id = active_id(&site).await;
    let started = std::time::Instant::now();
    assert_eq!(get(&site, &format!("/api/item/{id}")).await.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    site.stop().await;
}

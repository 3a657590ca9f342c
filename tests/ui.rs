//! The dashboard end to end in real headless Chromium: the real `scrapefarm serve` binary on a
//! PostgreSQL farm whose fixture search was crawled three times while its prices moved, driven
//! through its forms like a person would — sign in, filter the listings, read a listing's chart,
//! open its snapshot (no script of the stored page may run), watch a running worker on the fleet
//! page — and the sign-in rules (no cookie, a revoked key) over plain HTTP. Screenshots of each
//! page are kept in `target/ui-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chromiumoxide::cdp::browser_protocol::dom::{GetDocumentParams, GetOuterHtmlParams, Node};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use scrapefarm::fixture_site::{FixtureConfig, TruthListing};
use scrapefarm::snapshot::{SnapshotInput, write};

use common::private::spare_port;
use common::process::Running;
use common::{Farm, chrome};

const QUERY: &str = "lamp";
/// A line the test puts into a stored page: a script that would rewrite it if it ever ran.
const SCRIPT: &str = "<p id=\"marker\">no script ran</p><script>document.getElementById('marker')\
    .textContent = 'SCRIPT RAN'; document.body.setAttribute('data-script-ran', 'yes');</script>";

/// `scrapefarm ARGS` on the farm's database, queues and snapshots.
fn farm_command(farm: &Farm, args: &[&str]) -> Command {
    let worker = farm.worker_command("unused");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (key, value) in worker.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    cmd
}

/// `scrapefarm apikey create`: the key alone on stdout.
fn create_key(farm: &Farm, name: &str, scope: &str) -> String {
    let out = farm_command(
        farm,
        &["apikey", "create", "--name", name, "--scope", scope],
    )
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A plain HTTP GET: status, headers and body.
async fn get(url: &str, cookie: Option<&str>) -> (u16, http::HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = http::Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Starts `serve` (no collector, scheduler or deliverer: the test crawls) and waits for it.
async fn start_serve(farm: &Farm) -> (Running, String) {
    let bind = format!("127.0.0.1:{}", spare_port());
    let args = [
        "serve",
        "--bind",
        &bind,
        "--no-collect",
        "--no-scheduler",
        "--no-deliver",
    ];
    let mut cmd = farm_command(farm, &args);
    cmd.stdout(Stdio::null());
    let serve = Running(cmd.spawn().unwrap());
    let base = format!("http://{bind}");
    let started = Instant::now();
    loop {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let health = client.get(format!("{base}/health").parse().unwrap());
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), health).await
            && r.status() == 200
        {
            return (serve, base);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A headless Chromium of its own (profile in `dir`), its CDP handler polled in the background.
async fn launch_browser(dir: &Path) -> Browser {
    let config = BrowserConfig::builder()
        .chrome_executable(chrome())
        .user_data_dir(dir.join("ui-browser"))
        .new_headless_mode()
        .no_sandbox()
        .arg("disable-gpu")
        .window_size(1280, 900)
        .viewport(Viewport {
            width: 1280,
            height: 900,
            ..Viewport::default()
        })
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.expect("Chromium launches");
    tokio::spawn(async move { while handler.next().await.is_some() {} });
    browser
}

/// Navigates and waits until `selector` is on the page.
async fn open(page: &Page, url: &str, selector: &str) {
    tokio::time::timeout(Duration::from_secs(30), page.goto(url))
        .await
        .expect("navigates in time")
        .unwrap();
    wait_for(page, selector).await;
}

async fn wait_for(page: &Page, selector: &str) {
    let started = Instant::now();
    while page.find_element(selector).await.is_err() {
        let url = page.url().await.unwrap_or_default();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{selector} never appeared on {url:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a screenshot of the whole page as `target/ui-screenshots/NAME.png`.
async fn screenshot(page: &Page, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let params = ScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Png)
        .full_page(true)
        .build();
    page.save_screenshot(params, dir.join(format!("{name}.png")))
        .await
        .unwrap();
}

/// An attribute of an element as the DOM has it (read through CDP's DOM domain, not a script).
async fn attr(element: &chromiumoxide::Element, name: &str) -> Option<String> {
    let flat = element.attributes().await.unwrap();
    flat.chunks(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].clone())
}

/// Crawls the fixture search once per price step; returns the ground truth of each step.
async fn crawl_three_price_steps(farm: &Farm) -> Vec<Vec<TruthListing>> {
    let mut steps = Vec::new();
    for step in 0..3 {
        farm.fixture.set_price_step(step);
        steps.push(farm.fixture.ground_truth(QUERY));
        farm.enqueue(QUERY, 1).await;
        farm.work("crawler", 2, Duration::from_secs(2)).await;
    }
    steps
}

/// A listing whose price changed at both steps, and its three prices.
fn changed_twice(steps: &[Vec<TruthListing>]) -> (TruthListing, Vec<i64>) {
    for listing in &steps[0] {
        let prices: Vec<Option<i64>> = steps
            .iter()
            .map(|s| {
                s.iter()
                    .find(|l| l.external_id == listing.external_id)
                    .and_then(|l| l.price_minor)
            })
            .collect();
        if let [Some(a), Some(b), Some(c)] = prices[..]
            && a != b
            && b != c
            && listing.status == "active"
        {
            return (listing.clone(), vec![a, b, c]);
        }
    }
    panic!("the fixture search has no listing whose price changed at both steps");
}

/// Stores a copy of the listing's latest snapshot with [`SCRIPT`] added: a fixture page with a
/// script that would change its DOM. Returns the new snapshot's id.
async fn store_scripted_snapshot(farm: &Farm, external_id: &str) -> i64 {
    let pool = farm.store.pool();
    let (listing_id, path): (i64, String) = sqlx::query_as(
        "SELECT l.id, s.path FROM listings l JOIN snapshots s ON s.listing_id = l.id \
         WHERE l.external_id = $1 ORDER BY s.captured_at DESC LIMIT 1",
    )
    .bind(external_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let html = scrapefarm::snapshot::read_html(&farm.snapshots(), &path).unwrap();
    assert!(
        html.contains("<script"),
        "the fixture's stored page carries its own scripts"
    );
    let html = html.replacen("</body>", &format!("{SCRIPT}</body>"), 1);
    let input = SnapshotInput {
        site: "fixture",
        external_id,
        job_id: "ui-test",
        html: &html,
        http_status: Some(200),
        screenshot: None,
    };
    let meta = write(&farm.snapshots(), &input).unwrap();
    sqlx::query_scalar(
        "INSERT INTO snapshots (listing_id, path, sha256, bytes, html_bytes, http_status, captured_at) \
         VALUES ($1, $2, $3, $4, $5, 200, $6) RETURNING id",
    )
    .bind(listing_id)
    .bind(&meta.path)
    .bind(&meta.sha256)
    .bind(meta.bytes)
    .bind(meta.html_bytes)
    .bind(meta.captured_at + 1)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The document inside the first iframe of the page, as HTML, read through CDP's DOM domain.
async fn iframe_html(page: &Page) -> String {
    fn find(node: &Node) -> Option<&Node> {
        if node.node_name == "IFRAME" {
            return node.content_document.as_deref();
        }
        node.children.iter().flatten().find_map(find)
    }
    let started = Instant::now();
    loop {
        let root = page
            .execute(GetDocumentParams::builder().depth(-1).pierce(true).build())
            .await
            .unwrap();
        if let Some(doc) = find(&root.result.root) {
            let html = page
                .execute(GetOuterHtmlParams::builder().node_id(doc.node_id).build())
                .await;
            if let Ok(html) = html
                && html.result.outer_html.contains("marker")
            {
                return html.result.outer_html;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the snapshot never loaded in its frame"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_shows_listings_charts_snapshots_and_the_fleet_in_chromium() {
    let farm = Farm::start(FixtureConfig {
        listings_per_query: 24,
        per_page: 24,
        // Slow enough that the fleet page sees the worker's count rise.
        render_delay_ms: 300,
        ..FixtureConfig::default()
    })
    .await;
    let steps = crawl_three_price_steps(&farm).await;
    let (moved, prices) = changed_twice(&steps);
    let scripted = store_scripted_snapshot(&farm, &moved.external_id).await;
    let read_key = create_key(&farm, "reader", "read");
    let (_serve, base) = start_serve(&farm).await;

    // No cookie: every page sends the browser to the sign-in form.
    let (status, headers, _) = get(&format!("{base}/ui/listings"), None).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/login");

    let browser = launch_browser(farm.dir.path()).await;
    let page = browser.new_page("about:blank").await.unwrap();
    open(&page, &format!("{base}/ui/fleet"), "#key").await;
    sign_in(&page, &read_key).await;
    assert!(page.url().await.unwrap().unwrap().ends_with("/ui/listings"));
    let rows = page.find_elements("table.listings tbody tr").await.unwrap();
    let live = steps[2].iter().filter(|l| l.status != "gone").count();
    assert!(
        rows.len() >= live.min(50),
        "{} rows for {live} listings",
        rows.len()
    );
    screenshot(&page, "listings").await;

    // Filter by a word of the moved listing's title, through the form.
    let title = moved.title.clone().unwrap();
    let word = title
        .split_whitespace()
        .max_by_key(|w| w.len())
        .unwrap()
        .to_lowercase();
    page.find_element("#f-q")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(&word)
        .await
        .unwrap();
    page.find_element("form.filters button")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Only the answer to the form has the word in its filter field (rendered by the server).
    wait_for(&page, &format!("#f-q[value=\"{word}\"]")).await;
    let expected = steps[2]
        .iter()
        .filter(|l| {
            l.title
                .as_deref()
                .is_some_and(|t| t.to_lowercase().contains(&word))
        })
        .count();
    let shown = page
        .find_elements("table.listings tbody tr")
        .await
        .unwrap()
        .len();
    assert_eq!(shown, expected, "rows whose title contains {word:?}");

    // The listing's chart: three points, at the three prices, oldest first.
    let link = format!("tr[data-external-id=\"{}\"] a", moved.external_id);
    page.find_element(&link)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&page, "svg.price-chart").await;
    let points = page
        .find_elements("svg.price-chart circle.point")
        .await
        .unwrap();
    let mut charted = Vec::new();
    for point in &points {
        charted.push(
            attr(point, "data-price-minor")
                .await
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
    }
    assert_eq!(charted, prices, "one point per observation at its price");
    let chart = page.find_element("svg.price-chart").await.unwrap();
    assert_eq!(
        attr(&chart, "data-currency").await.as_deref(),
        moved.currency.as_deref()
    );
    screenshot(&page, "listing").await;
    assert_fits_a_phone(&page).await;

    // Its snapshot: framed in a sandbox; the stored page's script never runs.
    open(
        &page,
        &format!("{base}/ui/snapshots/{scripted}"),
        "iframe.snapshot",
    )
    .await;
    let framed = iframe_html(&page).await;
    assert!(
        framed.contains("<p id=\"marker\">no script ran</p>"),
        "the stored script rewrote its page: {framed}"
    );
    assert!(!framed.contains("data-script-ran=\"yes\""), "{framed}");
    assert!(
        framed.contains(&format!("/item/{}", moved.external_id)),
        "the frame shows the stored page"
    );
    screenshot(&page, "snapshot").await;
    let cookie = session_cookie(&page).await;
    let (status, headers, _) = get(
        &format!("{base}/ui/snapshots/{scripted}/html"),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-security-policy"],
        scrapefarm::ui::SNAPSHOT_CSP
    );

    // The fleet while a worker runs: listed, its page count rising.
    let mut worker = farm.worker_command("ui-worker");
    worker
        .args(["--concurrency", "1", "--heartbeat-secs", "1"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    let _worker = Running(worker.spawn().unwrap());
    farm.fixture.set_price_step(3);
    farm.enqueue(QUERY, 1).await;
    let row = "tr[data-worker=\"ui-worker\"] td[data-pages]";
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < 2 || seen.first() == seen.last() {
        open(&page, &format!("{base}/ui/fleet"), "h1").await;
        if let Ok(cell) = page.find_element(row).await {
            let pages: i64 = attr(&cell, "data-pages").await.unwrap().parse().unwrap();
            if seen.last() != Some(&pages) {
                seen.push(pages);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the worker's pages never rose: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    screenshot(&page, "fleet").await;

    // A read key may not act, even with its session's own CSRF token.
    let csrf = page.find_element("input[name=csrf]").await.unwrap();
    let csrf = attr(&csrf, "value").await.unwrap();
    let body = format!("csrf={csrf}&site=fixture&query=desk");
    let (status, _) = post(&format!("{base}/ui/searches"), &cookie, &body).await;
    assert_eq!(status, 403, "a read key's form post is refused");

    // A revoked key's session ends on its next request.
    let revoked = farm_command(&farm, &["apikey", "revoke", "reader"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(revoked.success());
    let (status, headers, _) = get(&format!("{base}/ui/listings"), Some(&cookie)).await;
    assert_eq!(
        (status, &headers["location"]),
        (303, &http::HeaderValue::from_static("/ui/login"))
    );
    open(&page, &format!("{base}/ui/listings"), "#key").await;

    // A write key acts through the forms: create a scheduled search, pause and resume its
    // schedule, then delete it.
    let write_key = create_key(&farm, "writer", "write");
    sign_in(&page, &write_key).await;
    open(&page, &format!("{base}/ui/searches"), "#s-site").await;
    let fields = [
        ("#s-site", "fixture"),
        ("#s-query", "brass desk"),
        ("#s-every", "1d"),
    ];
    for (field, value) in fields {
        let input = page.find_element(field).await.unwrap();
        input.click().await.unwrap().type_str(value).await.unwrap();
    }
    let create = "form[action=\"/ui/searches\"] button";
    page.find_element(create)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let started = Instant::now();
    let id = loop {
        let searches = farm.store.searches().await.unwrap();
        if let Some(search) = searches.iter().find(|s| s.query == "brass desk") {
            break search.id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the form created no search"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let row = format!("tr[data-search-id=\"{id}\"]");
    wait_for(&page, &row).await;
    screenshot(&page, "searches").await;
    for (action, shown) in [("pause", "resume"), ("resume", "pause")] {
        let button = format!("form[action=\"/ui/searches/{id}/{action}\"] button");
        page.find_element(&button)
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(
            &page,
            &format!("{row} form[action=\"/ui/searches/{id}/{shown}\"]"),
        )
        .await;
        let paused = farm.store.tracked_search(id).await.unwrap().unwrap();
        assert_eq!(paused.next_run_at.is_none(), action == "pause", "{action}");
    }
    let delete = format!("form[action=\"/ui/searches/{id}/delete\"] button");
    page.find_element(&delete)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_gone(&page, &row).await;

    // Signing out ends the session: its cookie opens nothing any more.
    let cookie = session_cookie(&page).await;
    wait_for(&page, "header form button").await;
    let sign_out = page.find_element("header form button").await.unwrap();
    sign_out.click().await.unwrap();
    wait_for(&page, "#key").await;
    let (status, _, _) = get(&format!("{base}/ui/searches"), Some(&cookie)).await;
    assert_eq!(status, 303, "a signed-out session opens nothing");
    farm.cleanup().await;
}

/// At a phone's width (390 CSS px) the chart shrinks with the page: no sideways scrolling.
async fn assert_fits_a_phone(page: &Page) {
    let phone = SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true);
    page.execute(phone).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chart = page.find_element("svg.price-chart").await.unwrap();
    let bounds = chart.bounding_box().await.unwrap();
    assert!(
        bounds.x >= 0.0 && bounds.x + bounds.width <= 390.0,
        "the chart overflows a phone's width: {bounds:?}"
    );
    screenshot(page, "listing-phone").await;
    let desktop = SetDeviceMetricsOverrideParams::new(1280, 900, 1.0, false);
    page.execute(desktop).await.unwrap();
}

/// The browser's session cookie as a `Cookie` header value (CDP reads HttpOnly cookies).
async fn session_cookie(page: &Page) -> String {
    let cookies = page.get_cookies().await.unwrap();
    let name = scrapefarm::ui::SESSION_COOKIE;
    let cookie = cookies
        .into_iter()
        .find(|c| c.name == name)
        .expect("a session cookie");
    format!("{name}={}", cookie.value)
}

/// Signs in through the form (the page must show it).
async fn sign_in(page: &Page, key: &str) {
    let input = page.find_element("#key").await.unwrap();
    input.click().await.unwrap().type_str(key).await.unwrap();
    let submit = page.find_element("form.login button").await.unwrap();
    submit.click().await.unwrap();
    wait_for(page, "table.listings").await;
}

/// Waits until nothing on the page matches `selector`.
async fn wait_gone(page: &Page, selector: &str) {
    let started = Instant::now();
    // Gone from a loaded dashboard page, not from the blank document of a navigation under way.
    let loaded = async || {
        let script = "document.readyState === 'complete' \
                      && !!document.querySelector('header form button, #key')";
        let answer = page.evaluate(script).await.ok();
        answer
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false)
    };
    while page.find_element(selector).await.is_ok() || !loaded().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{selector} never went away"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A form POST: status and headers.
async fn post(url: &str, cookie: &str, body: &str) -> (u16, http::HeaderMap) {
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<Bytes>>();
    let request = http::Request::post(url)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    (response.status().as_u16(), response.headers().clone())
}

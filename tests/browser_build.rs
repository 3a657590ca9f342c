//! Both Chromium builds the CDP renderer can launch (`--cdp-browser shell|full`) render a
//! JS-filled page from 127.0.0.1 and do not give headless away in what the site can see: the
//! User-Agent header of every request, `navigator.userAgent`, `navigator.webdriver`.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use scrapefarm::render::{
    BrowserBuild, BrowserSettings, CdpRenderer, RenderRequest, Renderer, profile,
};

/// The page writes what the browser says about itself into the DOM, then marks itself ready.
const PAGE: &str = r#"<!doctype html><html><head><title>who</title></head><body>
<main id="who"></main>
<script>setTimeout(function () {
  var m = document.getElementById("who");
  m.setAttribute("data-ua", navigator.userAgent);
  m.setAttribute("data-webdriver", String(navigator.webdriver));
  m.setAttribute("data-ready", "1");
}, 50);</script></body></html>"#;

type Agents = Arc<Mutex<Vec<String>>>;

/// Serves `PAGE` on every path and records each request's User-Agent header.
async fn serve() -> (String, Agents, tokio::task::JoinHandle<()>) {
    async fn page(State(agents): State<Agents>, req: Request) -> Response {
        let agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        agents.lock().unwrap().push(agent);
        Html(PAGE).into_response()
    }
    let agents = Agents::default();
    let app = axum::Router::new()
        .fallback(page)
        .with_state(agents.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, agents, task)
}

async fn renders_without_giving_headless_away(build: BrowserBuild) {
    let chrome = common::chrome_of(build);
    let (base, agents, server) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let renderer = CdpRenderer::launch(BrowserSettings {
        chrome: chrome.clone(),
        profile_dir: profile::claim(dir.path(), "who").unwrap(),
        tabs: 1,
        nav_timeout: Duration::from_secs(30),
        block_resources: true,
        retire: Default::default(),
    })
    .await
    .expect("Chromium launches");
    let request = RenderRequest {
        url: format!("{base}/who"),
        ready: Some("main#who[data-ready]".into()),
        ready_timeout: Duration::from_secs(10),
        screenshot: false,
        challenge: None,
        states: vec![],
    };
    let page = renderer.render(&request).await.expect("the page renders");
    renderer.close().await;
    server.abort();

    assert!(page.ready, "{}: the page never got ready", chrome.display());
    let doc = scraper::Html::parse_document(&page.html);
    let who = doc
        .select(&scraper::Selector::parse("main#who").unwrap())
        .next()
        .expect("the page's main element");
    let ua = who.attr("data-ua").unwrap_or_default();
    assert!(
        ua.starts_with("Mozilla/5.0") && ua.contains(" Chrome/") && !ua.contains("Headless"),
        "{}: navigator.userAgent = {ua:?}",
        chrome.display()
    );
    assert_eq!(
        who.attr("data-webdriver"),
        Some("false"),
        "{}",
        chrome.display()
    );
    let agents = agents.lock().unwrap().clone();
    assert!(!agents.is_empty(), "the server saw no request");
    for agent in &agents {
        assert_eq!(
            agent,
            ua,
            "{}: a request's User-Agent header",
            chrome.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_headless_shell_renders_and_passes_for_chrome() {
    renders_without_giving_headless_away(BrowserBuild::Shell).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_browser_renders_and_passes_for_chrome() {
    renders_without_giving_headless_away(BrowserBuild::Full).await;
}

#[test]
fn the_worker_refuses_a_missing_shell_with_the_package_to_install() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["extract", "http://127.0.0.1:9/item/1", "--site", "fixture"])
        .env("SCRAPEFARM_CDP_BROWSER", "shell")
        .env(
            "CHROME_HEADLESS_SHELL_BIN",
            "/nonexistent/chromium-headless-shell",
        )
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .env(
            "SCRAPEFARM_PROFILE_DIR",
            tempfile::tempdir().unwrap().path(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("apt-get install chromium-headless-shell"),
        "stderr: {stderr}"
    );
}

//! The real saved pages of ten marketplaces (tests/realworld/pages) rendered through the farm's
//! own renderer — the CDP renderer a worker runs, real headless Chromium — from a server on
//! 127.0.0.1, each with the `Content-Type` charset its bytes are in, and the browser confined to
//! 127.0.0.1 (every other request is refused by a local proxy, and counted). Each rendered page is
//! read with its site file and scored against the same truth, with the same checks and known
//! gaps, as the static read in `realworld_pages`. A field that the page's own scripts change when
//! it is rendered, so that it differs from the static read, is listed in `RENDER_DIFFERENCES`
//! with the reason and must still differ. One browser renders the pages in parallel tabs; the
//! time is printed (`cargo test --test realworld_browser -- --nocapture`).

#[path = "realworld/browser.rs"]
mod browser;
#[path = "realworld/pages.rs"]
mod pages;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use scrapefarm::inspect;
use scrapefarm::render::{Page, RenderRequest, Renderer};
use scrapefarm::site::Sites;
use serde_json::Value;

use pages::{Known, TruthPage};

/// Tabs of the one browser: pages rendered at once.
const TABS: usize = 4;

/// (file, check, why): fields right in the saved HTML that the page's scripts change when it is
/// rendered.
const RENDER_DIFFERENCES: [Known; 0] = [];

/// Where the page is served: a product page at its own URL's path and query (scripts that read
/// `location` see what they saw on the site), a search page at its file name.
fn served_path(page: &TruthPage) -> String {
    match page.is_product() {
        true => {
            let url = pages::value(&page.truth["fields"]["url"]).as_str().unwrap();
            let url = url::Url::parse(url).unwrap();
            match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            }
        }
        false => format!("/{}", page.file),
    }
}

/// Serves every page with the charset its bytes are in (GBK for Tmall, UTF-8 for most).
async fn serve(pages: &[TruthPage]) -> browser::PageServer {
    let mut files = BTreeMap::new();
    for page in pages {
        let bytes = std::fs::read(page.path()).unwrap();
        let charset = scrapefarm::extract::decode_html(&bytes, None).encoding;
        let content_type = format!("text/html; charset={charset}");
        // One file may be read by two site files (Walmart's search page by its HTML and by its
        // embedded state): served once. Two different files at one path would be a mistake.
        let old = files.insert(served_path(page), (content_type, bytes.clone()));
        assert!(
            old.is_none_or(|(_, was)| was == bytes),
            "two pages at {}",
            served_path(page)
        );
    }
    browser::serve_typed(files).await
}

/// Renders one page and reads it as `extract --json` would, at the URL the static read takes
/// for it (its canonical link or file): the browser fetched it from 127.0.0.1 instead of the
/// site, and only what the browser did to the DOM may differ.
async fn render(
    renderer: &impl Renderer,
    base: &str,
    sites: &Sites,
    page: &TruthPage,
) -> (Value, Duration) {
    let site = sites.get(&page.site).unwrap();
    let ready = match (page.is_product(), site.search.as_ref()) {
        (false, Some(search)) => search.ready.clone().unwrap_or(site.ready.clone()),
        _ => site.ready.clone(),
    };
    let request = RenderRequest {
        url: format!("{base}{}", served_path(page)),
        ready: Some(ready),
        ready_timeout: site.ready_timeout,
        screenshot: false,
        challenge: None,
        states: vec![],
    };
    let started = Instant::now();
    let rendered = renderer
        .render(&request)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", page.file));
    let took = started.elapsed();
    assert_eq!(rendered.status, Some(200), "{}", page.file);
    let url = inspect::saved_page(&page.path(), site, None).unwrap().url;
    let inspection = inspect::inspect(&Page { url, ..rendered }, site);
    (inspect::to_json(&inspection, site), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_real_pages_rendered_in_chromium_from_127_0_0_1_is_read_right() {
    let sites = pages::sites();
    let truth = pages::truth_pages(&sites);
    let server = serve(&truth).await;
    let sink = browser::Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let renderer = browser::launch_confined(dir.path(), TABS, &sink).await;
    let started = Instant::now();
    let rendered: Vec<(Value, Duration)> = futures::stream::iter(&truth)
        .map(|page| render(&renderer, &server.base, &sites, page))
        .buffered(TABS)
        .collect()
        .await;
    let wall = started.elapsed();
    renderer.close().await;
    let mut tally = pages::Tally::new(&RENDER_DIFFERENCES);
    let mut differences = Vec::new();
    for (page, (got, took)) in truth.iter().zip(rendered) {
        println!("rendered {:<72} {:>6} ms", page.file, took.as_millis());
        let saved = page.checks(&pages::extract_saved(&sites, page).await);
        let checks = page.checks(&got);
        for ((name, was, before), (_, ok, read)) in saved.iter().zip(&checks) {
            if was != ok {
                differences.push(format!(
                    "{} {name}: saved {before}, rendered {read}",
                    page.file
                ));
            }
        }
        tally.add(page, checks);
    }
    let refused = sink.refused();
    let hosts: std::collections::BTreeSet<&str> = refused
        .iter()
        .filter_map(|line| line.split(' ').nth(1))
        .collect();
    println!(
        "{} pages rendered in {} ms with {TABS} tabs; {} requests to {} hosts off 127.0.0.1 \
         refused",
        truth.len(),
        wall.as_millis(),
        refused.len(),
        hosts.len()
    );
    for difference in &differences {
        println!("differs from the saved read: {difference}");
    }
    // The pages reference remote assets: the confinement was exercised, and held.
    assert!(
        !refused.is_empty(),
        "no request left 127.0.0.1: is the proxy in use?"
    );
    assert!(
        refused
            .iter()
            .all(|line| !line.contains(" http://127.0.0.1")),
        "a local request went to the proxy: {refused:?}"
    );
    for (file, check, _) in RENDER_DIFFERENCES {
        let listed = differences
            .iter()
            .any(|d| d.starts_with(&format!("{file} {check}:")));
        assert!(
            listed,
            "{file} {check} no longer differs from the saved read"
        );
    }
    tally.finish();
}

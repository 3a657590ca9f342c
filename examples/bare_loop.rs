//! The benchmark's lower bound ("the limit"): the least a chromiumoxide program must do to read
//! the fixture's listing pages — one Chromium with the sandbox flags `render::cdp` uses (but none
//! of its lean flags: a default browser), C tabs
//! sharing one list of URLs, and per page only: navigate, wait for the ready selector with the
//! farm's own in-page wait (`scrapefarm::render::wait_ready`; pages answered >= 400 do not
//! wait), read the HTML with `content()`. Images, fonts and media load (no Fetch interception).
//! No queue, no database, no parsing: whatever the farm spends beyond this is its own overhead.
//!
//! `--block fetch` adds the farm's way of blocking images, fonts and media (Fetch interception,
//! as `render::pool` does it) and `--block blink` the launch flag that stops Blink loading images,
//! so the cost of each can be measured on its own.
//!
//! ```text
//! cargo run --release --example bare_loop -- --urls urls.txt --concurrency 4 [--block fetch]
//! ```
//! Prints one JSON line: pages, ready, not_ready, errors, html_bytes, wall_s, done_epoch_ms.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, ContinueRequestParams, EventRequestPaused, FailRequestParams, RequestPattern,
};
use chromiumoxide::cdp::browser_protocol::network::{
    ErrorReason, EventResponseReceived, ResourceType,
};
use chromiumoxide::{Browser, BrowserConfig, Page};
use clap::{Parser, ValueEnum};
use futures::{FutureExt, StreamExt};
use scrapefarm::render::wait_ready;
use tokio::task::JoinSet;

/// Command-line settings.
#[derive(Debug, Parser)]
#[command(about = "Navigate + wait for ready + read HTML, nothing else (benchmark lower bound)")]
struct Args {
    /// File of listing URLs, one per line.
    #[arg(long)]
    urls: PathBuf,
    /// Tabs working at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, env = "CHROME_BIN", default_value = "/usr/bin/chromium")]
    chrome: PathBuf,
    /// Browser profile (user-data-dir); a fresh temporary one by default.
    #[arg(long)]
    profile_dir: Option<PathBuf>,
    /// The fixture site's ready selector (sites/fixture.toml).
    #[arg(long, default_value = "main#listing[data-ready]")]
    ready: String,
    #[arg(long, default_value_t = 10_000)]
    ready_timeout_ms: u64,
    /// How images (and fonts, media) are kept out; `none` is the lower bound.
    #[arg(long, value_enum, default_value_t = Block::None)]
    block: Block,
}

/// Ways of not loading images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Block {
    /// Everything loads.
    None,
    /// The farm's way: Fetch.enable with image/font/media patterns, paused requests failed.
    Fetch,
    /// `--blink-settings=imagesEnabled=false`: Blink never requests images.
    Blink,
}

/// What the tabs did.
#[derive(Debug, Default)]
struct Tally {
    pages: usize,
    ready: usize,
    not_ready: usize,
    errors: usize,
    html_bytes: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.pages += other.pages;
        self.ready += other.ready;
        self.not_ready += other.not_ready;
        self.errors += other.errors;
        self.html_bytes += other.html_bytes;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let text = std::fs::read_to_string(&args.urls)
        .with_context(|| format!("Failed to read {}", args.urls.display()))?;
    let urls: Arc<Vec<String>> = Arc::new(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    );
    let profile = match &args.profile_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("bare-loop-{}", std::process::id())),
    };
    let (mut browser, handler) = launch(&args.chrome, &profile, args.block).await?;
    let tally = run_tabs(&browser, &args, urls).await?;
    let wall = started.elapsed();
    let done_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    println!(
        "{{\"pages\": {}, \"ready\": {}, \"not_ready\": {}, \"errors\": {}, \"html_bytes\": {}, \
         \"wall_s\": {:.3}, \"done_epoch_ms\": {done_ms}}}",
        tally.pages,
        tally.ready,
        tally.not_ready,
        tally.errors,
        tally.html_bytes,
        wall.as_secs_f64()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), browser.close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.wait()).await;
    handler.abort();
    if args.profile_dir.is_none() {
        let _ = std::fs::remove_dir_all(&profile);
    }
    Ok(())
}

/// Launches Chromium with the flags of `render::cdp::launch`.
async fn launch(
    chrome: &std::path::Path,
    profile: &std::path::Path,
    block: Block,
) -> anyhow::Result<(Browser, tokio::task::JoinHandle<()>)> {
    let mut builder = BrowserConfig::builder();
    if block == Block::Blink {
        builder = builder.arg(("blink-settings", "imagesEnabled=false"));
    }
    let config = builder
        .chrome_executable(chrome)
        .user_data_dir(profile)
        .new_headless_mode()
        .no_sandbox()
        .arg("disable-gpu")
        .arg("disable-quic")
        .arg("disable-component-update")
        .arg("no-first-run")
        .window_size(1366, 768)
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| anyhow::anyhow!("Invalid browser settings: {e}"))?;
    let (browser, mut handler) = Browser::launch(config)
        .await
        .context("Failed to launch Chromium")?;
    let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
    Ok((browser, handler))
}

/// Opens `concurrency` tabs that take URLs from the shared list until it is exhausted.
async fn run_tabs(browser: &Browser, args: &Args, urls: Arc<Vec<String>>) -> anyhow::Result<Tally> {
    let next = Arc::new(AtomicUsize::new(0));
    let timeout = Duration::from_millis(args.ready_timeout_ms);
    let mut tabs = JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let tab = browser
            .new_page("about:blank")
            .await
            .context("Failed to open a tab")?;
        if args.block == Block::Fetch {
            block_by_fetch(&tab).await?;
        }
        let (urls, next, ready) = (urls.clone(), next.clone(), args.ready.clone());
        tabs.spawn(async move { work_tab(tab, &urls, &next, &ready, timeout).await });
    }
    let mut tally = Tally::default();
    while let Some(done) = tabs.join_next().await {
        tally.add(&done??);
    }
    Ok(tally)
}

/// One tab's loop: navigate, wait for ready unless the document failed, read the HTML.
async fn work_tab(
    tab: Page,
    urls: &[String],
    next: &AtomicUsize,
    ready: &str,
    timeout: Duration,
) -> anyhow::Result<Tally> {
    let mut responses = tab.event_listener::<EventResponseReceived>().await?;
    let mut tally = Tally::default();
    while let Some(url) = urls.get(next.fetch_add(1, Ordering::SeqCst)) {
        tally.pages += 1;
        if let Err(e) = tab.goto(url.as_str()).await {
            eprintln!("{url}: navigation failed: {e}");
            tally.errors += 1;
            continue;
        }
        let mut status = None;
        while let Some(Some(ev)) = responses.next().now_or_never() {
            if ev.r#type == ResourceType::Document {
                status = Some(ev.response.status);
            }
        }
        if status.is_some_and(|s| s >= 400) || !wait_ready(&tab, ready, timeout).await? {
            tally.not_ready += 1;
        } else {
            tally.ready += 1;
        }
        tally.html_bytes += tab.content().await?.len();
    }
    let _ = tab.close().await;
    Ok(tally)
}

/// Fails image, font and media requests before they are sent, exactly as `render::pool` does.
async fn block_by_fetch(tab: &Page) -> anyhow::Result<()> {
    let types = [ResourceType::Image, ResourceType::Font, ResourceType::Media];
    let mut paused = tab.event_listener::<EventRequestPaused>().await?;
    let (handle, blocked) = (tab.clone(), types.clone());
    tokio::spawn(async move {
        while let Some(ev) = paused.next().await {
            let id = ev.request_id.clone();
            let _ = if blocked.contains(&ev.resource_type) {
                let fail = FailRequestParams::new(id, ErrorReason::BlockedByClient);
                handle.execute(fail).await.map(|_| ())
            } else {
                handle
                    .execute(ContinueRequestParams::new(id))
                    .await
                    .map(|_| ())
            };
        }
    });
    let patterns = types.iter().map(|t| {
        RequestPattern::builder()
            .url_pattern("*")
            .resource_type(t.clone())
            .build()
    });
    tab.execute(fetch::EnableParams::builder().patterns(patterns).build())
        .await?;
    Ok(())
}

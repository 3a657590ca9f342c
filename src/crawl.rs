//! `crawl`: collect and work in one process — the single-machine way to use the farm, on the
//! embedded default (SQLite + the embedded queue) unless `DATABASE_URL`/`AMQP_URL` say otherwise.
//! A crawl is a search (or a URL list recorded as one); killed and started again with the same
//! arguments it resumes that search: collection skips what it already recorded, the queue still
//! holds the unfinished jobs, and nothing already stored is rendered again.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{FinishedWithFailures, build_pipeline, connect_queue, connect_store, load_sites};
use crate::cli::{Common, CrawlArgs};
use crate::collect::{collect_into, jobs_from_urls};
use crate::queue::{AnyQueue, Queue};
use crate::render::{AnyRenderer, Renderer};
use crate::site::Site;
use crate::store::Store;
use crate::worker::{WorkerExit, WorkerSettings, run_worker};

/// Runs a crawl to completion (or until shutdown).
pub async fn crawl(
    common: &Common,
    args: &CrawlArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let sites = load_sites(common, Some(&args.site))?;
    let site = sites.get(&args.site)?.clone();
    if let Some(path) = &args.urls {
        check_url_list(&site, path, args.skip_invalid)?;
    }
    let store = connect_store(common).await?;
    let queue = connect_queue(common, &store).await?;
    let key = match (&args.query, &args.urls) {
        (Some(query), _) => query.clone(),
        (None, Some(path)) => format!("urls:{}", path.display()),
        (None, None) => anyhow::bail!("give --query or --urls"),
    };
    let pipeline = build_pipeline(
        common,
        sites,
        store.clone(),
        "crawl",
        args.concurrency,
        args.max_attempts,
        true,
    )
    .await?;
    let search_id = match store.unfinished_search(&site.name, &key).await? {
        Some(search) => {
            println!(
                "Resuming search {} ({}, {}).",
                search.id, search.query, search.status
            );
            if search.status == "collecting" {
                gather(args, &site, search.id, &pipeline.renderer, &store, &queue).await?;
            }
            search.id
        }
        None => {
            let id = store
                .create_search(&site.name, &key, args.max_pages)
                .await?;
            gather(args, &site, id, &pipeline.renderer, &store, &queue).await?;
            id
        }
    };
    let settings = WorkerSettings {
        concurrency: args.concurrency,
        exit_when_idle: Some(Duration::from_secs(1)),
        shutdown_deadline: Duration::from_secs(30),
        ready_file: None,
    };
    let started = Instant::now();
    // Tracked here: the progress line lives as long as the worker, aborted and reaped after it.
    let progress = tokio::spawn(report_progress(store.clone(), queue.clone(), search_id));
    let exit = run_worker(pipeline.clone(), queue.clone(), settings, shutdown).await;
    progress.abort();
    let _ = progress.await;
    pipeline.renderer.close().await;
    queue.close().await;
    let exit = exit?;
    if exit == WorkerExit::Idle {
        store.set_search_status(search_id, "done").await?;
    }
    let counts = print_summary(&store, search_id, started.elapsed(), common).await?;
    eprintln!("{}", pipeline.stats);
    if exit == WorkerExit::Shutdown {
        println!("Stopped early; run the same command again to resume.");
    }
    let failed = counts.get("failed").copied().unwrap_or(0);
    if failed > 0 {
        let total = counts.values().sum();
        return Err(FinishedWithFailures { failed, total }.into());
    }
    Ok(())
}

/// Reads the URL list before anything is recorded: a missing file, or invalid lines without
/// `--skip-invalid`, fail the crawl (as they fail `enqueue`) before a search is created.
fn check_url_list(site: &Site, path: &std::path::Path, skip_invalid: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Failed to read URL list {}", path.display()))?;
    let (_, rejected) = jobs_from_urls(site, &text, crate::store::now_ms());
    if rejected.is_empty() || skip_invalid {
        return Ok(());
    }
    for r in &rejected {
        eprintln!("line {}: `{}`: {}", r.line, r.text, r.reason);
    }
    anyhow::bail!(
        "{} lines of {} are not valid listing URLs; nothing was queued (fix them, or pass --skip-invalid)",
        rejected.len(),
        path.display()
    )
}

/// Collects the search, or records and queues the URL list.
async fn gather(
    args: &CrawlArgs,
    site: &Site,
    search_id: i64,
    renderer: &AnyRenderer,
    store: &Store,
    queue: &AnyQueue,
) -> anyhow::Result<()> {
    let (found, published) = match (&args.query, &args.urls) {
        (Some(query), _) => {
            let report = collect_into(
                site,
                query,
                args.max_pages,
                search_id,
                renderer,
                store,
                queue,
            )
            .await?;
            (report.listings_found, report.jobs_published)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read URL list {}", path.display()))?;
            queue_url_list(site, &text, search_id, store, queue).await?
        }
        (None, None) => (0, 0),
    };
    store
        .finish_search(search_id, "collected", found, published)
        .await?;
    println!("Search {search_id}: {found} listings found, {published} jobs queued.");
    Ok(())
}

async fn queue_url_list(
    site: &Site,
    text: &str,
    search_id: i64,
    store: &Store,
    queue: &AnyQueue,
) -> anyhow::Result<(usize, usize)> {
    let (jobs, rejected) = jobs_from_urls(site, text, store.db_now_ms().await?);
    for r in &rejected {
        eprintln!("line {}: `{}`: {}; skipped", r.line, r.text, r.reason);
    }
    let recorded: std::collections::HashSet<String> =
        store.search_hit_ids(search_id).await?.into_iter().collect();
    let mut published = 0;
    let mut hits = Vec::new();
    for (rank, job) in jobs.iter().enumerate() {
        let Some(id) = site.listing_id(&job.url) else {
            continue;
        };
        if !recorded.contains(&id) {
            let mut job = job.clone();
            job.search_id = Some(search_id);
            queue.publish(&job).await?;
            published += 1;
        }
        let hit = crate::domain::SearchHit {
            external_id: id,
            url: job.url.clone(),
            title: None,
            price_text: None,
            price: None,
        };
        hits.push((rank + 1, hit));
    }
    store.add_hits(search_id, &site.name, 1, &hits).await?;
    Ok((jobs.len(), published))
}

/// One progress line a second (redrawn in place on a terminal): a bar, done / failed / retrying /
/// rate / ETA.
async fn report_progress(store: Store, queue: AnyQueue, search_id: i64) {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut first_done = None;
    loop {
        tick.tick().await;
        let Ok(counts) = store.status_counts(search_id).await else {
            continue;
        };
        let retrying = queue.depths().await.map(|d| d.retrying).unwrap_or(0);
        let total: i64 = counts.values().sum();
        let pending = counts.get("pending").copied().unwrap_or(0);
        let failed = counts.get("failed").copied().unwrap_or(0);
        let done = total - pending - failed;
        let base = *first_done.get_or_insert(done);
        let rate = (done - base) as f64 / started.elapsed().as_secs_f64().max(0.001);
        let eta = if rate > 0.0 {
            format!("{:.0} s", pending as f64 / rate)
        } else {
            "-".into()
        };
        let bar = progress_bar(done + failed, total, 30);
        let line = format!(
            "{bar} done {done}/{total}  failed {failed}  retrying {retrying}  rate {rate:.1}/s  ETA {eta}"
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}   ")
        } else {
            writeln!(err, "{line}")
        };
    }
}

/// `[#####.....]`: the share of listings settled (stored, gone or failed), `width` cells wide.
fn progress_bar(settled: i64, total: i64, width: usize) -> String {
    let filled = match total {
        t if t <= 0 => 0,
        t => (settled.clamp(0, t) as usize * width) / t as usize,
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

async fn print_summary(
    store: &Store,
    search_id: i64,
    took: Duration,
    common: &Common,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let counts = store.status_counts(search_id).await?;
    let total: i64 = counts.values().sum();
    eprintln!();
    println!("{:<10} {:>7}", "status", "count");
    for (status, n) in &counts {
        println!("{status:<10} {n:>7}");
    }
    println!("{:<10} {total:>7}", "total");
    println!(
        "\n{:.1} s. Data: {}  Snapshots: {}",
        took.as_secs_f64(),
        crate::store::redact(&common.database_url()),
        common.snapshot_dir.display()
    );
    println!("Next: scrapefarm listings --search {search_id} --json");
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::progress_bar;

    #[test]
    fn progress_bar_fills_with_settled_listings() {
        assert_eq!(progress_bar(0, 200, 10), "[..........]");
        assert_eq!(progress_bar(100, 200, 10), "[#####.....]");
        assert_eq!(progress_bar(200, 200, 10), "[##########]");
        assert_eq!(progress_bar(250, 200, 4), "[####]", "never overflows");
        assert_eq!(progress_bar(0, 0, 4), "[....]", "nothing collected yet");
    }
}

//! `crawl`: collect and work in one process — the single-machine way to use the farm, on the
//! embedded default (SQLite + the embedded queue) unless `DATABASE_URL`/`AMQP_URL` say otherwise.
//! A crawl is a search (or a URL list recorded as one) with its own queue
//! (`<queue>.crawl-<search id>`): it works only its own jobs, and its options (`--max-attempts`…)
//! apply to them alone. Killed and started again with the same arguments and data directory (or
//! with `--resume ID`) it resumes its own search: collection skips what it already recorded, its
//! queue still holds the unfinished jobs, and nothing already stored is rendered again. While it
//! runs it holds a lease on the search, so two crawls never work one search at once.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::app::{
    FinishedWithFailures, build_pipeline, connect_queue, connect_store, load_sites,
    open_existing_store,
};
use crate::cli::{Common, CrawlArgs};
use crate::collect::{collect_into, jobs_from_urls, publish_urls};
use crate::queue::{AnyQueue, Queue};
use crate::render::{AnyRenderer, Renderer};
use crate::site::Site;
use crate::store::Store;
use crate::store::search_jobs::{CrawlLease, JobOutcomes};
use crate::worker::{WorkerExit, WorkerSettings, run_worker};

mod target;

use target::CrawlTarget;

/// How long a crawl's lease on its search lasts unless renewed (every third of it).
const LEASE: Duration = Duration::from_secs(15);

/// Runs a crawl to completion (or until shutdown).
pub async fn crawl(
    common: &Common,
    args: &CrawlArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (store, target) = match args.resume {
        Some(id) => {
            let store = open_existing_store(common).await?;
            store.migrate().await?;
            let target = CrawlTarget::of_search(&store, id).await?;
            (store, target)
        }
        None => {
            let target = CrawlTarget::from_args(args)?;
            // The URL list is read before anything is recorded (or a database created).
            target.check_urls(common, args.skip_invalid)?;
            (connect_store(common).await?, target)
        }
    };
    let owner = format!(
        "{} {}",
        crate::store::leases::lease_host(),
        std::process::id()
    );
    let search_id = claim_search(&store, &target, &owner).await?;
    let lease = CancellationToken::new();
    let renewal = tokio::spawn(keep_lease(
        store.clone(),
        search_id,
        owner.clone(),
        lease.clone(),
    ));
    let result = run_search(common, args, &target, &store, search_id, shutdown).await;
    lease.cancel();
    let _ = renewal.await;
    if let Err(e) = store.release_crawl(search_id, &owner).await {
        tracing::warn!(error = %e, search_id, "Could not release the crawl's lease; it expires.");
    }
    if let Err(e) = &result
        && store
            .crawl_lease(search_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.status == "collecting")
    {
        // Nothing was queued: the search failed, and says why.
        store.fail_search(search_id, &format!("{e:#}")).await?;
    }
    result
}

/// The search this crawl works: its own unfinished one (same arguments and data directory, or
/// `--resume ID`) when no live crawl holds it, else a new one.
async fn claim_search(store: &Store, target: &CrawlTarget, owner: &str) -> anyhow::Result<i64> {
    let lease_ms = LEASE.as_millis() as i64;
    let existing = match target.resume {
        Some(id) => Some(id),
        None => store.crawl_search(&target.key).await?,
    };
    let Some(id) = existing else {
        let id = store
            .create_crawl_search(
                &target.site,
                &target.query_text(),
                target.max_pages,
                &target.key,
                owner,
                lease_ms,
            )
            .await?;
        return Ok(id);
    };
    let Some(lease) = store.crawl_lease(id).await? else {
        bail!("no search {id} in {}", "this database");
    };
    if let Some(holder) = live_holder(&lease, &crate::store::leases::lease_host()) {
        bail!(
            "search {id} is being crawled by another process ({holder}); wait for it to finish, \
             or stop it and run this command again to resume"
        );
    }
    if !store
        .take_crawl(id, lease.owner.as_deref(), owner, lease_ms)
        .await?
    {
        bail!("another crawl took search {id} a moment ago; run this command again later");
    }
    println!("Resuming search {id} ({}).", lease.status);
    Ok(id)
}

/// Whether search `id` was made by a crawl that stopped before it was done (killed, or stopped
/// early): it is collecting or queued and no live crawl holds its lease. Such a search is resumed
/// by `crawl --resume ID` (or the same crawl command).
pub async fn interrupted(store: &Store, id: i64) -> anyhow::Result<bool> {
    let Some(lease) = store.crawl_lease(id).await? else {
        return Ok(false);
    };
    let unfinished = matches!(lease.status.as_str(), "collecting" | "queued");
    let host = crate::store::leases::lease_host();
    Ok(lease.key.is_some() && unfinished && live_holder(&lease, &host).is_none())
}

/// The crawl that still holds a search's lease, if any: a lease counts until it expires, except
/// one whose process is gone from this host (a killed crawl is resumed at once).
fn live_holder(lease: &CrawlLease, this_host: &str) -> Option<String> {
    let owner = lease.owner.clone()?;
    if lease.alive_until.is_none_or(|until| until < lease.now) {
        return None;
    }
    let dead_here = owner.rsplit_once(' ').is_some_and(|(host, pid)| {
        host == this_host
            && pid
                .parse::<u32>()
                .is_ok_and(|pid| !crate::render::profile::pid_alive(pid))
    });
    (!dead_here).then_some(owner)
}

/// Renews the crawl's lease until `stop`.
async fn keep_lease(store: Store, search_id: i64, owner: String, stop: CancellationToken) {
    let lease_ms = LEASE.as_millis() as i64;
    let mut tick = tokio::time::interval(LEASE / 3);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                match store.renew_crawl(search_id, &owner, lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(search_id, "Another crawl took this search's lease."),
                    Err(e) => tracing::warn!(error = %e, search_id, "Could not renew the crawl's lease."),
                }
            }
        }
    }
}

/// Collects (unless already collected) and works the search's own queue until it drains.
async fn run_search(
    common: &Common,
    args: &CrawlArgs,
    target: &CrawlTarget,
    store: &Store,
    search_id: i64,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut common = common.clone();
    common.queue = format!("{}.crawl-{search_id}", common.queue);
    let sites = load_sites(&common, Some(&target.site))?;
    let site = sites.get(&target.site)?.clone();
    let queue = connect_queue(&common, store).await?;
    let worker_id = format!("crawl-{search_id}");
    let pipeline = build_pipeline(
        &common,
        sites,
        store.clone(),
        &worker_id,
        args.concurrency,
        args.max_attempts,
        true,
    )
    .await?;
    let collecting = store
        .crawl_lease(search_id)
        .await?
        .is_some_and(|s| s.status == "collecting");
    if collecting
        && let Err(e) = gather(target, &site, search_id, &pipeline.renderer, store, &queue).await
    {
        pipeline.renderer.close().await;
        queue.close().await;
        return Err(e);
    }
    work(&common, args, store, search_id, pipeline, queue, shutdown).await
}

/// Works the crawl's queue until it drains (or shutdown), then says how the search ended.
async fn work(
    common: &Common,
    args: &CrawlArgs,
    store: &Store,
    search_id: i64,
    pipeline: Arc<crate::pipeline::Pipeline<AnyRenderer>>,
    queue: AnyQueue,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
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
        // Every job of the crawl's own queue is settled: the search is done (if the last
        // settlement did not say so already).
        store.complete_search(search_id).await?;
    }
    let outcomes = store.search_outcomes(search_id).await?;
    print_summary(store, search_id, &outcomes, started.elapsed(), common).await?;
    eprintln!("{}", pipeline.stats);
    if exit == WorkerExit::Shutdown {
        println!(
            "Stopped early; run the same command again (or `scrapefarm crawl --resume {search_id}`) to resume."
        );
    }
    let failed = outcomes.failed + outcomes.dead;
    if failed > 0 {
        let total = outcomes.settled() + outcomes.pending;
        return Err(FinishedWithFailures { failed, total }.into());
    }
    Ok(())
}

/// Collects the search, or records and queues the URL list; the search is then `queued` (or
/// `done` already, when nothing was left to do).
async fn gather(
    target: &CrawlTarget,
    site: &Site,
    search_id: i64,
    renderer: &AnyRenderer,
    store: &Store,
    queue: &AnyQueue,
) -> anyhow::Result<()> {
    let (found, published) = match (&target.query, &target.urls) {
        (Some(query), _) => {
            let report = collect_into(
                site,
                query,
                target.max_pages,
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
            let (found, published) = queue_url_list(site, &text, search_id, store, queue).await?;
            store.finish_collection(search_id, found, published).await?;
            (found, published)
        }
        (None, None) => (0, 0),
    };
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
    let published = publish_urls(site, &jobs, search_id, store, queue).await?;
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

/// The listings of the search by status, how its jobs ended, and where the data is.
async fn print_summary(
    store: &Store,
    search_id: i64,
    outcomes: &JobOutcomes,
    took: Duration,
    common: &Common,
) -> anyhow::Result<()> {
    let counts = store.status_counts(search_id).await?;
    let total: i64 = counts.values().sum();
    eprintln!();
    println!("{:<10} {:>7}", "status", "count");
    for (status, n) in &counts {
        println!("{status:<10} {n:>7}");
    }
    println!("{:<10} {total:>7}", "total");
    let status = store
        .crawl_lease(search_id)
        .await?
        .map_or_else(|| "-".into(), |s| s.status);
    println!(
        "\nSearch {search_id}: {status}; jobs stored {}, gone {}, failed {}, dead {}, pending {}.",
        outcomes.stored, outcomes.gone, outcomes.failed, outcomes.dead, outcomes.pending
    );
    println!(
        "{:.1} s. Data: {}  Snapshots: {}  Queue: {}",
        took.as_secs_f64(),
        crate::store::redact(&common.database_url()),
        common.snapshot_dir.display(),
        common.queue
    );
    println!("Next: scrapefarm listings --search {search_id} --json");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{CrawlLease, live_holder, progress_bar};

    #[test]
    fn a_crawl_lease_holds_until_it_expires_or_its_process_is_gone_from_this_host() {
        let lease = |owner: Option<&str>, alive_until: Option<i64>| CrawlLease {
            key: Some("k".into()),
            status: "queued".into(),
            owner: owner.map(String::from),
            alive_until,
            now: 1_000,
        };
        let me = format!("here {}", std::process::id());
        assert_eq!(live_holder(&lease(None, None), "here"), None, "never held");
        assert_eq!(
            live_holder(&lease(Some(&me), Some(999)), "here"),
            None,
            "expired"
        );
        assert_eq!(
            live_holder(&lease(Some(&me), Some(2_000)), "here"),
            Some(me.clone()),
            "a live process of this host"
        );
        let dead = format!("here {}", u32::MAX - 1);
        assert_eq!(
            live_holder(&lease(Some(&dead), Some(2_000)), "here"),
            None,
            "killed: resumed at once"
        );
        assert_eq!(
            live_holder(&lease(Some(&dead), Some(2_000)), "elsewhere"),
            Some(dead),
            "another host's process cannot be checked: its lease runs out"
        );
    }

    #[test]
    fn progress_bar_fills_with_settled_listings() {
        assert_eq!(progress_bar(0, 200, 10), "[..........]");
        assert_eq!(progress_bar(100, 200, 10), "[#####.....]");
        assert_eq!(progress_bar(200, 200, 10), "[##########]");
        assert_eq!(progress_bar(250, 200, 4), "[####]", "never overflows");
        assert_eq!(progress_bar(0, 0, 4), "[....]", "nothing collected yet");
    }
}

//! `status`, `workers` and `health`: how the queue, the searches and the fleet stand — read once,
//! or redrawn every few seconds (`status --watch`) — and the container health check.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{connect_queue, open_existing_store};
use crate::cli::{Common, HealthArgs, JsonArg, StatusArgs};
use crate::queue::Queue;
use crate::report::{Table, local_time};
use crate::store::search_jobs::JobOutcomes;

/// What `status` reports, read once.
struct Status {
    depths: crate::queue::QueueDepths,
    /// RabbitMQ's retry tiers as (delay in seconds, messages); the embedded queue has none (a
    /// retried job waits in place until its time).
    retry_tiers: Vec<(u64, u64)>,
    /// The crawls' own queues that still hold jobs (embedded queue only), with their depths.
    crawl_queues: Vec<(String, crate::queue::QueueDepths)>,
    stored_5min: i64,
    /// Searches collecting or queued, with how their jobs stand.
    in_progress: Vec<(crate::store::SearchRow, JobOutcomes)>,
    listings: std::collections::BTreeMap<String, i64>,
    workers: Vec<crate::store::workers::WorkerRow>,
}

impl Status {
    async fn read(common: &Common) -> anyhow::Result<Status> {
        let store = open_existing_store(common).await?;
        let queue = connect_queue(common, &store).await?;
        let depths = queue.depths().await?;
        let retry_tiers = match &queue {
            crate::queue::AnyQueue::RabbitMq(rabbit) => rabbit.retry_depths().await?,
            crate::queue::AnyQueue::Embedded(_) => Vec::new(),
        };
        queue.close().await;
        let mut crawl_queues = Vec::new();
        for (name, queue) in crawl_queues_of(common, &store).await? {
            crawl_queues.push((name, queue.depths().await?));
        }
        let stored_5min = store
            .enriched_after(store.db_now_ms().await? - 5 * 60_000)
            .await?;
        let mut in_progress = Vec::new();
        for search in store.searches().await? {
            if search.status == "collecting" || search.status == "queued" {
                let jobs = store.search_outcomes(search.id).await?;
                in_progress.push((search, jobs));
            }
        }
        Ok(Status {
            depths,
            retry_tiers,
            crawl_queues,
            stored_5min,
            in_progress,
            listings: store.listing_counts().await?,
            workers: store.workers(crate::store::workers::LISTED_FOR).await?,
        })
    }

    fn workers_alive(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }
}

/// `scrapefarm status`: once, or with `--watch` every few seconds until Ctrl-C (on a terminal the
/// screen is redrawn; piped, each refresh follows the last, headed by its time).
pub async fn status(
    common: &Common,
    args: &StatusArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(every) = args.watch else {
        return print_status(common, args.json, None).await;
    };
    loop {
        print_status(common, args.json, Some(every)).await?;
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
        }
    }
}

/// Reads the status once and prints it; watched every `watch` seconds, the text is headed by its
/// time and replaces the last one on a terminal.
async fn print_status(common: &Common, json: bool, watch: Option<u64>) -> anyhow::Result<()> {
    let status = Status::read(common).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let json = serde_json::json!({
            "database": crate::store::redact(&common.database_url()),
            "queue": common.queue, "depths": status.depths,
            "retry_tiers": status.retry_tiers.iter()
                .map(|(delay, n)| serde_json::json!({"delay_secs": delay, "messages": n}))
                .collect::<Vec<_>>(),
            "crawl_queues": status.crawl_queues.iter()
                .map(|(name, depths)| serde_json::json!({"queue": name, "depths": depths}))
                .collect::<Vec<_>>(),
            "listings": status.listings,
            "stored_per_minute_5m": status.stored_5min as f64 / 5.0,
            "searches_in_progress": status.in_progress.iter().map(|(search, jobs)| {
                let mut search = serde_json::json!(search);
                search["jobs"] = serde_json::json!(jobs);
                search
            }).collect::<Vec<_>>(),
            "workers_alive": status.workers_alive(), "workers": status.workers,
        });
        writeln!(out, "{json}")?;
        return Ok(out.flush()?);
    }
    if let Some(every) = watch {
        if std::io::stdout().is_terminal() {
            // Clear the screen and home the cursor: this status replaces the last one.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        let now = local_time(crate::clock::now_ms());
        writeln!(out, "status at {now} (every {every} s; Ctrl-C stops)")?;
    }
    write_status(&mut out, &common.queue, status)?;
    Ok(out.flush()?)
}

fn write_status(out: &mut impl Write, queue: &str, status: Status) -> anyhow::Result<()> {
    write_queues(out, queue, &status)?;
    let per_minute = status.stored_5min as f64 / 5.0;
    writeln!(out, "stored per minute (last 5 min): {per_minute:.1}")?;
    let counts: Vec<String> = status
        .listings
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    match counts.is_empty() {
        true => writeln!(out, "listings: none yet")?,
        false => writeln!(out, "listings: {}", counts.join("  "))?,
    }
    writeln!(out, "workers alive: {}", status.workers_alive())?;
    for line in worker_lines(status.workers) {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "searches in progress: {}", status.in_progress.len())?;
    let headers = [
        ">ID",
        "SITE",
        "STATUS",
        "REQUESTED",
        ">PENDING",
        ">SETTLED",
        "QUERY",
    ];
    let mut table = Table::new(&headers);
    for (s, jobs) in status.in_progress {
        let requested = local_time(s.requested_at);
        table.push(vec![
            s.id.to_string(),
            s.site,
            s.status,
            requested,
            jobs.pending.to_string(),
            jobs.settled().to_string(),
            s.query,
        ]);
    }
    if !table.is_empty() {
        for line in table.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

/// The work queue's depths, RabbitMQ's retry tiers and each crawl queue's depths.
fn write_queues(out: &mut impl Write, queue: &str, status: &Status) -> anyhow::Result<()> {
    let depths = &status.depths;
    // Unknown is not zero: RabbitMQ reports unacked messages only through its management API.
    let unacked = match depths.unacked {
        Some(n) => n.to_string(),
        None => "unknown (no management API, or not sampled yet)".into(),
    };
    writeln!(
        out,
        "queue {queue}: ready {}  unacked {}  retrying {}  dead {}  consumers {}",
        depths.ready, unacked, depths.retrying, depths.dead, depths.consumers
    )?;
    if !status.retry_tiers.is_empty() {
        let tiers: Vec<String> = status
            .retry_tiers
            .iter()
            .map(|(delay, n)| format!("{delay} s: {n}"))
            .collect();
        writeln!(out, "  retry tiers (delay: messages): {}", tiers.join("  "))?;
    }
    for (name, d) in &status.crawl_queues {
        let unacked = d.unacked.unwrap_or(0);
        writeln!(
            out,
            "queue {name}: ready {}  unacked {unacked}  retrying {}  dead {}  consumers {}",
            d.ready, d.retrying, d.dead, d.consumers
        )?;
    }
    Ok(())
}

/// `scrapefarm workers`: the fleet's heartbeats, as `status` shows them (JSON: one object per
/// line, with `alive`).
pub async fn workers(common: &Common, args: &JsonArg) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let workers = store.workers(crate::store::workers::LISTED_FOR).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for w in &workers {
            writeln!(out, "{}", serde_json::to_string(w)?)?;
        }
        return Ok(());
    }
    if workers.is_empty() {
        writeln!(out, "no worker seen in the last hour")?;
    }
    for line in worker_lines(workers) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The workers seen in the last hour, alive ones first, as a table (no lines without workers).
fn worker_lines(workers: Vec<crate::store::workers::WorkerRow>) -> Vec<String> {
    let headers = [
        "WORKER",
        "HOST",
        "ALIVE",
        ">TABS",
        ">PAGES",
        ">PER MIN",
        ">MEMORY",
        "SEEN",
        "LAST ERROR",
    ];
    let mut table = Table::new(&headers);
    for w in workers {
        let alive = if w.alive { "yes" } else { "no" };
        let memory = w.memory_bytes.map(|b| format!("{} MiB", b >> 20));
        table.push(vec![
            w.id,
            w.host,
            alive.into(),
            w.concurrency.to_string(),
            w.pages.to_string(),
            format!("{:.1}", w.pages_per_min),
            memory.unwrap_or_else(|| "-".into()),
            local_time(w.seen_at),
            w.last_error.unwrap_or_else(|| "-".into()),
        ]);
    }
    match table.is_empty() {
        true => Vec::new(),
        false => table.lines(),
    }
}

/// `scrapefarm health`: exit 0 when the worker's health file says it is alive and progressing.
pub fn health(common: &Common, args: &HealthArgs) -> anyhow::Result<()> {
    let path = args.health_file(common);
    let max_age = Duration::from_secs(args.max_age);
    crate::worker::health::check(&path, max_age, crate::clock::now_ms())
        .with_context(|| format!("Worker unhealthy (health file {})", path.display()))?;
    Ok(())
}

/// The crawls' own queues (`<queue>.crawl-<search id>`) that still hold jobs: listed from the
/// embedded queue's table; RabbitMQ cannot list queues without its management API, so none there.
pub(super) async fn crawl_queues_of(
    common: &Common,
    store: &crate::store::Store,
) -> anyhow::Result<Vec<(String, crate::queue::AnyQueue)>> {
    if common.amqp_url.is_some() {
        return Ok(Vec::new());
    }
    let prefix = format!("{}.crawl-", common.queue);
    let names = store.queue_names(&prefix).await?;
    Ok(names
        .into_iter()
        .map(|name| {
            let queue = crate::queue::EmbeddedQueue::new(store, &name);
            (name, crate::queue::AnyQueue::Embedded(queue))
        })
        .collect())
}

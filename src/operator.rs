//! Operator commands: answers to an operator's questions without SQL — listings, searches, queue
//! status, failures and the dead-letter queue, and the container health check.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::app::{connect_queue, load_sites, open_existing_store};
use crate::cli::{
    Common, DlqArgs, ExtractArgs, FailuresArgs, HealthArgs, JsonArg, ListingSort, ListingsArgs,
    SearchesArgs, SearchesCommand,
};
use crate::queue::{DeadJob, Queue};
use crate::report::{ListingJson, Table, local_time, money_text};
use crate::store::{ListingFilter, ListingRow};

pub async fn listings(common: &Common, args: &ListingsArgs) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let filter = ListingFilter {
        search_id: args.search,
        status: args.status.clone(),
        site: args.site.clone(),
    };
    let rows = select_listings(store.listings(&filter).await?, args);
    let mut out = std::io::stdout().lock();
    if rows.is_empty() && !args.json {
        writeln!(out, "no listings match")?;
        return Ok(());
    }
    let mut table = Table::new(&["SITE", "ID", "STATUS", ">PRICE", "UPDATED", "TITLE"]);
    let mut details = Vec::new();
    for row in rows {
        let history = match args.history || args.changes {
            true => Some(store.price_history(row.id).await?),
            false => None,
        };
        let changes = history.as_deref().map(crate::report::price_changes);
        if args.changes && changes.as_ref().is_some_and(Vec::is_empty) {
            continue;
        }
        let updated = local_time(row.last_enriched.unwrap_or(row.first_seen));
        let mut listing = ListingJson::from_row(row, history.filter(|_| args.history));
        listing.changes = changes.filter(|_| args.changes);
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&listing)?)?;
            continue;
        }
        table.push(vec![
            listing.site.clone(),
            listing.external_id.clone(),
            listing.status.clone(),
            listing.price_text(),
            updated,
            listing.title_text(),
        ]);
        details.push(detail_lines(&listing));
    }
    if table.is_empty() {
        if args.changes && !args.json {
            writeln!(out, "no price changes")?;
        }
        return Ok(());
    }
    let lines = table.lines();
    let mut lines = lines.iter();
    if let Some(header) = lines.next() {
        writeln!(out, "{header}")?;
    }
    for (line, detail) in lines.zip(details) {
        writeln!(out, "{line}")?;
        for detail in detail {
            writeln!(out, "    {detail}")?;
        }
    }
    Ok(())
}

/// The indented lines under a listing's row: its observations (`--history`), then its price
/// changes (`--changes`), each with its local time.
fn detail_lines(listing: &ListingJson) -> Vec<String> {
    let history = listing.history.iter().flatten().map(|obs| {
        let price = money_text(obs.price_minor, &obs.currency);
        format!("{}  {price}", local_time(obs.observed_at))
    });
    let changes = listing
        .changes
        .iter()
        .flatten()
        .map(|c| format!("{}  {}", local_time(c.at), c.text()));
    history.chain(changes).collect()
}

/// Applies `--since`, `--sort` and `--limit` to the rows the store returned.
fn select_listings(mut rows: Vec<ListingRow>, args: &ListingsArgs) -> Vec<ListingRow> {
    let updated = |r: &ListingRow| r.last_enriched.unwrap_or(r.first_seen);
    if let Some(since) = args.since {
        rows.retain(|r| updated(r) >= since);
    }
    match args.sort {
        Some(ListingSort::Price) => rows.sort_by(|a, b| {
            let key = |r: &ListingRow| (r.price_minor.is_none(), r.currency.clone(), r.price_minor);
            key(a).cmp(&key(b))
        }),
        Some(ListingSort::Updated) => rows.sort_by_key(|r| std::cmp::Reverse(updated(r))),
        Some(ListingSort::Title) => rows.sort_by(|a, b| a.title.cmp(&b.title)),
        None => {}
    }
    if let Some(limit) = args.limit {
        rows.truncate(limit);
    }
    rows
}

pub async fn searches(common: &Common, args: &SearchesArgs) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let tracker =
        crate::tracker::Tracker::new(store, std::sync::Arc::new(load_sites(common, None)?));
    if let Some(SearchesCommand::Run { id }) = &args.cmd {
        let run = tracker.run_search(*id).await?;
        println!(
            "Run {} of search {id} requested; a `serve` or `scheduler` process collects it.",
            run.run
        );
        return Ok(());
    }
    let searches = tracker.searches().await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &searches {
            writeln!(out, "{}", serde_json::to_string(s)?)?;
        }
        return Ok(());
    }
    if searches.is_empty() {
        writeln!(out, "no searches yet")?;
        return Ok(());
    }
    let headers = [
        ">ID",
        "SITE",
        "STATUS",
        "REQUESTED",
        ">FOUND",
        ">QUEUED",
        ">RUNS",
        "EVERY",
        "NEXT RUN",
        "QUERY",
    ];
    let mut table = Table::new(&headers);
    for s in searches {
        let query = match &s.urls {
            Some(urls) => format!("({} URLs)", urls.len()),
            None => s.query.unwrap_or_default(),
        };
        table.push(vec![
            s.id.to_string(),
            s.site,
            s.status,
            local_time(s.created_at),
            s.listings_found.to_string(),
            s.jobs_published.to_string(),
            s.runs.to_string(),
            s.every.unwrap_or_else(|| "-".into()),
            s.next_run_at.map_or_else(|| "-".into(), local_time),
            query,
        ]);
    }
    for line in table.lines() {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// What `status` reports, read once.
struct Status {
    depths: crate::queue::QueueDepths,
    stored_5min: i64,
    in_progress: Vec<crate::store::SearchRow>,
    listings: std::collections::BTreeMap<String, i64>,
    workers: Vec<crate::store::workers::WorkerRow>,
}

impl Status {
    async fn read(common: &Common) -> anyhow::Result<Status> {
        let store = open_existing_store(common).await?;
        let queue = connect_queue(common, &store).await?;
        let depths = queue.depths().await?;
        queue.close().await;
        let stored_5min = store
            .enriched_after(store.db_now_ms().await? - 5 * 60_000)
            .await?;
        let in_progress = store
            .searches()
            .await?
            .into_iter()
            .filter(|s| s.status == "collecting" || s.status == "collected")
            .collect();
        Ok(Status {
            depths,
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

pub async fn status(common: &Common, args: &JsonArg) -> anyhow::Result<()> {
    let status = Status::read(common).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "database": crate::store::redact(&common.database_url()),
            "queue": common.queue, "depths": status.depths,
            "listings": status.listings,
            "stored_per_minute_5m": status.stored_5min as f64 / 5.0,
            "searches_in_progress": status.in_progress,
            "workers_alive": status.workers_alive(), "workers": status.workers,
        });
        writeln!(out, "{json}")?;
        return Ok(());
    }
    write_status(&mut out, &common.queue, status)
}

fn write_status(out: &mut impl Write, queue: &str, status: Status) -> anyhow::Result<()> {
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
    let mut table = Table::new(&[">ID", "SITE", "STATUS", "REQUESTED", "QUERY"]);
    for s in status.in_progress {
        let requested = local_time(s.requested_at);
        table.push(vec![s.id.to_string(), s.site, s.status, requested, s.query]);
    }
    if !table.is_empty() {
        for line in table.lines() {
            writeln!(out, "  {line}")?;
        }
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

pub fn health(args: &HealthArgs) -> anyhow::Result<()> {
    let modified = std::fs::metadata(&args.ready_file)
        .and_then(|m| m.modified())
        .with_context(|| format!("No ready file at {}", args.ready_file.display()))?;
    let age = modified.elapsed().unwrap_or_default();
    if age > Duration::from_secs(60) {
        bail!(
            "ready file {} is {} s old",
            args.ready_file.display(),
            age.as_secs()
        );
    }
    Ok(())
}

/// Failed listings (attempts exhausted or unextractable) and every dead-lettered job, with reasons.
pub async fn failures(common: &Common, args: &FailuresArgs) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let queue = connect_queue(common, &store).await?;
    let filter = ListingFilter {
        status: Some("failed".into()),
        ..ListingFilter::default()
    };
    let failed = store.listings(&filter).await?;
    let dead = queue.dead_jobs().await?;
    queue.close().await;
    let mut out = std::io::stdout().lock();
    if args.json {
        for row in failed {
            let listing = ListingJson::from_row(row, None);
            writeln!(
                out,
                "{}",
                serde_json::json!({"kind": "listing", "listing": listing})
            )?;
        }
        for d in &dead {
            writeln!(
                out,
                "{}",
                serde_json::json!({"kind": "dead_letter", "job": d})
            )?;
        }
        return Ok(());
    }
    writeln!(out, "Failed listings: {}", failed.len())?;
    for row in failed {
        writeln!(out, "  {}", ListingJson::from_row(row, None).text_line())?;
    }
    writeln!(out, "Dead-lettered jobs: {}", dead.len())?;
    for d in &dead {
        let what = d
            .job()
            .map(|j| j.url)
            .unwrap_or_else(|| format!("<{} byte body>", d.body.len()));
        writeln!(
            out,
            "  attempt {:>2}  {what}\n      {}",
            d.attempt, d.reason
        )?;
    }
    Ok(())
}

/// `dlq requeue`: sends dead-lettered jobs back to the work queue (attempt 1).
pub async fn dlq_requeue(common: &Common, args: &DlqArgs) -> anyhow::Result<()> {
    if !args.all && args.listing.is_none() {
        bail!("say which jobs: --all or --listing EXTERNAL_ID");
    }
    let sites = load_sites(common, None)?;
    let store = open_existing_store(common).await?;
    let queue = connect_queue(common, &store).await?;
    let listing_of = |d: &DeadJob| {
        let job = d.job()?;
        sites.get(&job.site).ok()?.listing_id(&job.url)
    };
    let pick = |d: &DeadJob| {
        args.all || listing_of(d).is_some_and(|id| Some(&id) == args.listing.as_ref())
    };
    let moved = queue.requeue_dead(&pick).await;
    queue.close().await;
    // Each job is acked in the dead-letter queue only after its republish was confirmed, so a
    // failure midway leaves the rest dead (and at most one job in both queues).
    let moved = moved.context("Failed to requeue dead-lettered jobs; those not moved stay dead")?;
    println!("Requeued {moved} dead-lettered jobs.");
    if moved == 0 && args.listing.is_some() {
        bail!(
            "no dead-lettered job for listing {}",
            args.listing.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// `scrapefarm snapshots …`; problems found (verify, or files gc could not delete) exit non-zero.
pub async fn snapshots(
    common: &Common,
    cmd: &crate::snapshot::SnapshotsCommand,
) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let root = &common.snapshot_dir;
    let healthy = crate::snapshot::run(cmd, &store, root, &mut std::io::stdout()).await?;
    store.close().await;
    if !healthy {
        bail!("the snapshot directory has problems (listed above)");
    }
    Ok(())
}

/// `scrapefarm extract`: prints the classification and the extracted record of one page.
pub async fn extract(common: &Common, args: &ExtractArgs) -> anyhow::Result<()> {
    let sites = load_sites(common, Some(&args.site))?;
    let launch = || async {
        crate::app::launch_renderer(common, "extract", 1, true)
            .await
            .map_err(|e| crate::render::RenderError::Browser(format!("{e:#}")))
    };
    let mut out = std::io::stdout().lock();
    crate::inspect::extract_command(
        &sites,
        &args.site,
        crate::inspect::Target {
            file_or_url: &args.target,
            page_url: args.url.as_deref(),
        },
        args.json,
        launch,
        &mut out,
    )
    .await?;
    Ok(())
}

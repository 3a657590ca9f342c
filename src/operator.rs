//! Operator commands: answers to an operator's questions without SQL — listings, searches, queue
//! status, failures and the dead-letter queue, and the container health check.

use std::io::Write;

use anyhow::{Context, bail};

use crate::app::{connect_queue, load_sites, open_existing_store};
use crate::cli::{
    Common, DlqArgs, ExtractArgs, FailuresArgs, ListingSort, ListingsArgs, SearchesArgs,
    SearchesCommand,
};
use crate::queue::{DeadJob, Queue};
use crate::report::{ListingJson, Table, local_time, money_text};

mod status;

use crate::store::{ListingFilter, ListingRow};
pub use status::{health, status, workers};

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
    let sites = std::sync::Arc::new(load_sites(common, None)?);
    let tracker = crate::tracker::Tracker::new(store.clone(), sites);
    match &args.cmd {
        Some(SearchesCommand::Run { id }) => {
            let run = tracker.run_search(*id).await?;
            println!(
                "Run {} of search {id} requested; a `serve` or `scheduler` process collects it.",
                run.run
            );
            return Ok(());
        }
        Some(SearchesCommand::Pause { id }) => {
            tracker.pause_schedule(*id).await?;
            println!(
                "Search {id}'s schedule is paused; `scrapefarm searches resume {id}` starts it again."
            );
            return Ok(());
        }
        Some(SearchesCommand::Resume { id }) => {
            let search = tracker.resume_schedule(*id).await?;
            let next = search
                .next_run_at
                .map_or("—".into(), crate::report::local_time);
            println!("Search {id}'s schedule is resumed; next run {next}.");
            return Ok(());
        }
        None => {}
    }
    let searches = tracker.searches().await?;
    let mut interrupted = std::collections::HashSet::new();
    for s in &searches {
        if crate::crawl::interrupted(&store, s.id).await? {
            interrupted.insert(s.id);
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &searches {
            let mut json = serde_json::to_value(s)?;
            // Only a crawl's search can be interrupted (and resumed with `crawl --resume`).
            json["interrupted"] = interrupted.contains(&s.id).into();
            writeln!(out, "{json}")?;
        }
        return Ok(());
    }
    if searches.is_empty() {
        writeln!(out, "no searches yet")?;
        return Ok(());
    }
    for line in searches_lines(searches, &interrupted) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The searches as a table, then a line for each that failed (its reason) or was interrupted
/// (how to resume it).
fn searches_lines(
    searches: Vec<crate::tracker::SearchView>,
    interrupted: &std::collections::HashSet<i64>,
) -> Vec<String> {
    let headers = [
        ">ID",
        "SITE",
        "STATUS",
        "REQUESTED",
        ">FOUND",
        ">QUEUED",
        ">STORED",
        ">GONE",
        ">FAILED",
        ">DEAD",
        ">PENDING",
        ">RUNS",
        "EVERY",
        "NEXT RUN",
        "QUERY",
    ];
    let mut table = Table::new(&headers);
    let mut errors = Vec::new();
    for s in searches {
        let query = match &s.urls {
            Some(urls) => format!("({} URLs)", urls.len()),
            None => s.query.clone().unwrap_or_default(),
        };
        if let Some(error) = &s.error {
            errors.push(format!("search {}: failed: {error}", s.id));
        }
        let status = match interrupted.contains(&s.id) {
            true => {
                errors.push(format!(
                    "search {}: its crawl stopped while {}; resume it with `scrapefarm crawl --resume {}`",
                    s.id, s.status, s.id
                ));
                "interrupted".to_string()
            }
            false => s.status.clone(),
        };
        table.push(search_row(s, status, query));
    }
    let mut lines = table.lines();
    lines.extend(errors);
    lines
}

/// One search's row of the `searches` table.
fn search_row(s: crate::tracker::SearchView, status: String, query: String) -> Vec<String> {
    let j = s.jobs;
    // A search made by `crawl` or `enqueue` has no tracked runs: "-", not "0".
    let runs = Some(s.runs).filter(|&n| n > 0);
    vec![
        s.id.to_string(),
        s.site,
        status,
        local_time(s.created_at),
        s.listings_found.to_string(),
        s.jobs_published.to_string(),
        j.stored.to_string(),
        j.gone.to_string(),
        j.failed.to_string(),
        j.dead.to_string(),
        j.pending.to_string(),
        runs.map_or_else(|| "-".into(), |n| n.to_string()),
        s.every.unwrap_or_else(|| "-".into()),
        match s.paused {
            true => "paused".into(),
            false => s.next_run_at.map_or_else(|| "-".into(), local_time),
        },
        query,
    ]
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
    let dead = dead_letters(common, &store, &queue).await?;
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
        for (queue, d) in &dead {
            writeln!(
                out,
                "{}",
                serde_json::json!({"kind": "dead_letter", "queue": queue, "job": d})
            )?;
        }
        return Ok(());
    }
    writeln!(out, "Failed listings: {}", failed.len())?;
    for row in failed {
        writeln!(out, "  {}", ListingJson::from_row(row, None).text_line())?;
    }
    writeln!(out, "Dead-lettered jobs: {}", dead.len())?;
    for (queue, d) in &dead {
        let what = d
            .job()
            .map(|j| j.url)
            .unwrap_or_else(|| format!("<{} byte body>", d.body.len()));
        writeln!(
            out,
            "  attempt {:>2}  {what}  (queue {queue})\n      {}",
            d.attempt, d.reason
        )?;
    }
    Ok(())
}

/// The work queue's dead letters, then those of every crawl's own queue, each with its queue.
async fn dead_letters(
    common: &Common,
    store: &crate::store::Store,
    queue: &impl Queue,
) -> anyhow::Result<Vec<(String, DeadJob)>> {
    let mut dead: Vec<(String, DeadJob)> = queue
        .dead_jobs()
        .await?
        .into_iter()
        .map(|d| (common.queue.clone(), d))
        .collect();
    for (name, crawl_queue) in status::crawl_queues_of(common, store).await? {
        let found = crawl_queue.dead_jobs().await?;
        dead.extend(found.into_iter().map(|d| (name.clone(), d)));
    }
    Ok(dead)
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

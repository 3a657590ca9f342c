//! Operator commands: answers to an operator's questions without SQL — listings, searches, queue
//! status, failures and the dead-letter queue, and the container health check.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::app::{connect_queue, load_sites, open_existing_store};
use crate::cli::{Common, DlqArgs, ExtractArgs, FailuresArgs, HealthArgs, JsonArg, ListingsArgs};
use crate::queue::{DeadJob, Queue};
use crate::report::ListingJson;
use crate::store::ListingFilter;

pub async fn listings(common: &Common, args: &ListingsArgs) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let filter = ListingFilter {
        search_id: args.search,
        status: args.status.clone(),
        site: None,
    };
    let mut out = std::io::stdout().lock();
    for row in store.listings(&filter).await? {
        let history = match args.history {
            true => Some(store.price_history(row.id).await?),
            false => None,
        };
        let listing = ListingJson::from_row(row, history);
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&listing)?)?;
        } else {
            writeln!(out, "{}", listing.text_line())?;
            for obs in listing.history.iter().flatten() {
                writeln!(
                    out,
                    "    {} {} {}",
                    obs.observed_at, obs.currency, obs.price_minor
                )?;
            }
        }
    }
    Ok(())
}

pub async fn searches(common: &Common, args: &JsonArg) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let mut out = std::io::stdout().lock();
    for s in store.searches().await? {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
        } else {
            writeln!(
                out,
                "{:>5} {:<8} {:<24} {:<10} found {:>5}  published {:>5}",
                s.id, s.site, s.query, s.status, s.listings_found, s.jobs_published
            )?;
        }
    }
    Ok(())
}

pub async fn status(common: &Common, args: &JsonArg) -> anyhow::Result<()> {
    let store = open_existing_store(common).await?;
    let queue = connect_queue(common, &store).await?;
    let depths = queue.depths().await?;
    queue.close().await;
    let mut out = std::io::stdout().lock();
    let stored_5min = store
        .enriched_after(store.db_now_ms().await? - 5 * 60_000)
        .await?;
    let in_progress: Vec<_> = store
        .searches()
        .await?
        .into_iter()
        .filter(|s| s.status == "collecting" || s.status == "collected")
        .collect();
    if args.json {
        let status = serde_json::json!({
            "queue": common.queue, "depths": depths,
            "stored_per_minute_5m": stored_5min as f64 / 5.0,
            "searches_in_progress": in_progress,
        });
        writeln!(out, "{status}")?;
        return Ok(());
    }
    // Unknown is not zero: RabbitMQ reports unacked messages only through its management API.
    let unacked = match depths.unacked {
        Some(n) => n.to_string(),
        None => "unknown (no management API, or not sampled yet)".into(),
    };
    writeln!(
        out,
        "queue {}: ready {}  unacked {}  retrying {}  dead {}  consumers {}",
        common.queue, depths.ready, unacked, depths.retrying, depths.dead, depths.consumers
    )?;
    writeln!(
        out,
        "stored per minute (last 5 min): {:.1}",
        stored_5min as f64 / 5.0
    )?;
    writeln!(out, "searches in progress: {}", in_progress.len())?;
    for s in in_progress {
        writeln!(
            out,
            "  {:>5} {:<8} {:<24} {}",
            s.id, s.site, s.query, s.status
        )?;
    }
    Ok(())
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
        &args.target,
        args.json,
        launch,
        &mut out,
    )
    .await?;
    Ok(())
}

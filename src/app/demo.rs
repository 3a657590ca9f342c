//! `scrapefarm demo`: the fixture marketplace served in-process, one search collected and worked
//! off, and a summary — all in the demo's own data directory, never the user's.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{build_pipeline, connect_queue, connect_store, launch_renderer, load_sites};
use crate::cli::{Common, DemoArgs};
use crate::collect::collect;
use crate::fixture_site::{FixtureConfig, FixtureSite};
use crate::queue::Queue;
use crate::render::Renderer;
use crate::store::{ListingFilter, Store};
use crate::worker::{WorkerSettings, run_worker};

/// Serves the fixture marketplace in-process, collects a search and works it off, then prints a
/// summary and where the data is.
pub async fn demo(
    common: &Common,
    args: &DemoArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = FixtureConfig {
        listings_per_query: args.listings,
        ..FixtureConfig::default()
    };
    let mut common = demo_common(common)?;
    let fixture = FixtureSite::start(config, 0)
        .await
        .context("Failed to start the fixture site")?;
    common.base_url = Some(fixture.base_url());
    let sites = load_sites(&common, Some("fixture"))?;
    let store = connect_store(&common).await?;
    let queue = connect_queue(&common, &store).await?;
    println!(
        "Fixture marketplace at {}; collecting \"{}\"…",
        fixture.base_url(),
        args.query
    );
    let collector = launch_renderer(&common, "demo-collector", 1, true).await?;
    let site = sites.get("fixture")?.clone();
    let report = collect(&site, &args.query, 20, &collector, &store, &queue).await;
    collector.close().await;
    let report = report?;
    println!(
        "Search {}: {} listings queued.",
        report.search_id, report.jobs_published
    );
    let pipeline = build_pipeline(
        &common,
        sites,
        store.clone(),
        "demo",
        args.concurrency,
        8,
        true,
    )
    .await?;
    let settings = WorkerSettings {
        concurrency: args.concurrency,
        exit_when_idle: Some(Duration::from_secs(2)),
        shutdown_deadline: Duration::from_secs(30),
        ready_file: None,
    };
    let started = std::time::Instant::now();
    let exit = run_worker(pipeline.clone(), queue.clone(), settings, shutdown).await;
    pipeline.renderer.close().await;
    queue.close().await;
    fixture.stop().await;
    exit?;
    print_demo_summary(&common, &store, report.search_id, started.elapsed()).await
}

/// The demo's own settings: everything in `<data dir>/scrapefarm-demo/` (database, snapshots,
/// profiles), started afresh on each run — its listing URLs point at a port that is gone once
/// it ends, so they must never mix with the user's data.
fn demo_common(common: &Common) -> anyhow::Result<Common> {
    let dir = common.data_dir.join("scrapefarm-demo");
    if common.database_url.is_some() || common.amqp_url.is_some() {
        println!("The demo ignores DATABASE_URL and AMQP_URL: it keeps its data apart.");
    }
    for file in ["scrapefarm.db", "scrapefarm.db-wal", "scrapefarm.db-shm"] {
        match std::fs::remove_file(dir.join(file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| {
                    format!(
                        "Failed to remove the last demo's {}",
                        dir.join(file).display()
                    )
                });
            }
            _ => {}
        }
    }
    println!(
        "Demo data in {}/ (its own directory, started afresh on each demo).",
        dir.display()
    );
    let mut demo = common.clone();
    demo.database_url = None;
    demo.amqp_url = None;
    demo.snapshot_dir = dir.join("snapshots");
    demo.profile_dir = dir.join("profiles");
    demo.data_dir = dir;
    Ok(demo)
}

async fn print_demo_summary(
    common: &Common,
    store: &Store,
    search_id: i64,
    took: Duration,
) -> anyhow::Result<()> {
    let filter = ListingFilter {
        search_id: Some(search_id),
        ..ListingFilter::default()
    };
    let rows = store.listings(&filter).await?;
    let mut by_status = std::collections::BTreeMap::new();
    for row in &rows {
        *by_status.entry(row.status.clone()).or_insert(0) += 1;
    }
    println!("\n{:<10} {:>6}", "status", "count");
    for (status, n) in &by_status {
        println!("{status:<10} {n:>6}");
    }
    println!(
        "\n{} listings in {:.1} s. Data: {}  Snapshots: {}",
        rows.len(),
        took.as_secs_f64(),
        crate::store::redact(&common.database_url()),
        common.snapshot_dir.display()
    );
    println!(
        "Next: scrapefarm --data-dir {} listings --search {search_id}",
        common.data_dir.display()
    );
    Ok(())
}

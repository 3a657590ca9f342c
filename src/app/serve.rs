//! `scrapefarm serve` and `scrapefarm scheduler`: build the tracker on the store, queue and
//! sites, start the scheduler and the run collector as tracked tasks, and (serve) the HTTP API
//! until the shutdown token is cancelled (SIGTERM, Ctrl-C).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{connect_queue, connect_store, load_sites};
use crate::api::{AppState, router};
use crate::cli::{CollectorArgs, Common, SchedulerArgs, ServeArgs};
use crate::queue::{AnyQueue, Queue};
use crate::tracker::Tracker;
use crate::tracker::runs::{Collector, run_scheduler};

/// How long the scheduler and the collector may take to stop after the shutdown signal.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The tracker and queue of a service process.
async fn build(common: &Common) -> anyhow::Result<(Tracker, AnyQueue)> {
    let sites = Arc::new(load_sites(common, None)?);
    let store = connect_store(common).await?;
    let queue = connect_queue(common, &store).await?;
    Ok((Tracker::new(store, sites), queue))
}

/// Starts the scheduler (unless `scheduler` is false) and the collector (unless disabled).
fn spawn_loops(
    tasks: &TaskTracker,
    common: &Common,
    tracker: &Tracker,
    queue: &AnyQueue,
    scheduler: bool,
    collector: &CollectorArgs,
    shutdown: &CancellationToken,
) {
    if scheduler {
        tasks.spawn(run_scheduler(tracker.clone(), shutdown.clone()));
    }
    if !collector.no_collect {
        let collector = Collector::new(
            tracker.clone(),
            queue.clone(),
            common.clone(),
            &collector.collector_profile,
        );
        tasks.spawn(Arc::new(collector).run(shutdown.clone()));
    }
}

/// Waits for the loops to stop, then closes the queue and the store.
async fn wind_down(tasks: TaskTracker, tracker: &Tracker, queue: &AnyQueue) {
    tasks.close();
    if tokio::time::timeout(STOP_DEADLINE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("The scheduler, the collector or the alert deliverer did not stop in time.");
    }
    queue.close().await;
    tracker.store.close().await;
}

pub async fn serve(
    common: &Common,
    args: &ServeArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (tracker, queue) = build(common).await?;
    crate::metrics::install();
    let delivery = (!args.no_deliver)
        .then(|| crate::alerts::DeliverySettings::from_args(&args.delivery))
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("Failed to listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    let tasks = TaskTracker::new();
    let loops = shutdown.child_token();
    spawn_loops(
        &tasks,
        common,
        &tracker,
        &queue,
        !args.no_scheduler,
        &args.collector,
        &loops,
    );
    if let Some(settings) = delivery {
        tasks.spawn(crate::alerts::run_deliverer(
            tracker.store.clone(),
            settings,
            loops.clone(),
        ));
    }
    println!("Serving the price-tracker API on http://{address} (docs: /docs, dashboard: /ui).");
    tracing::info!(%address, "API serving.");
    let state = AppState::new(tracker.clone(), queue.clone());
    let dashboard = crate::ui::router(crate::ui::UiState {
        app: state.clone(),
        snapshots: common.snapshot_dir.clone(),
    });
    // The dashboard's routes first: the API router's fallback answers what neither knows.
    let app = dashboard.merge(router(state));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    loops.cancel();
    wind_down(tasks, &tracker, &queue).await;
    tracing::info!("API stopped.");
    served.context("The HTTP server failed")
}

pub async fn scheduler(
    common: &Common,
    args: &SchedulerArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (tracker, queue) = build(common).await?;
    let tasks = TaskTracker::new();
    spawn_loops(
        &tasks,
        common,
        &tracker,
        &queue,
        true,
        &args.collector,
        &shutdown,
    );
    shutdown.cancelled().await;
    wind_down(tasks, &tracker, &queue).await;
    Ok(())
}

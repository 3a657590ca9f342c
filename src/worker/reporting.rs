//! What a worker reports while it consumes: its heartbeat row (always) and `GET /metrics` (with
//! `--metrics-bind`). Both run as tracked tasks beside the consume loop and stop with it, on
//! shutdown or when the worker exits idle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::heartbeat::{HeartbeatSettings, spawn_heartbeat};
use crate::metrics;
use crate::pipeline::Pipeline;
use crate::render::AnyRenderer;

/// How long the reporting tasks may take to stop (a scrape or an upsert in flight).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the metrics port and installs the registry, before anything slow starts: a taken port
/// fails the command at once. Without an address nothing is recorded (no registry grows unread).
pub async fn bind_metrics(bind: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = bind else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("Failed to listen for /metrics on {addr}"))?;
    metrics::install();
    Ok(Some(listener))
}

/// The running reporting tasks.
pub struct Reporting {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Reporting {
    /// Starts the heartbeat and, given a listener, the metrics server.
    pub fn start(
        pipeline: Arc<Pipeline<AnyRenderer>>,
        heartbeat: HeartbeatSettings,
        metrics_listener: Option<TcpListener>,
        shutdown: &CancellationToken,
    ) -> Reporting {
        let (tracker, stop) = (TaskTracker::new(), shutdown.child_token());
        spawn_heartbeat(&tracker, pipeline, heartbeat, stop.clone());
        if let Some(listener) = metrics_listener {
            let (handle, stop) = (metrics::install(), stop.clone());
            tracker.spawn(async move {
                if let Err(e) = metrics::serve_metrics(listener, handle, stop).await {
                    tracing::warn!(error = %e, "The /metrics server stopped.");
                }
            });
        }
        tracker.close();
        Reporting { tracker, stop }
    }

    /// Stops the tasks and waits for them (bounded).
    pub async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(STOP_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("Heartbeat or /metrics did not stop in time; leaving them.");
        }
    }
}

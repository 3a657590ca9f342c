//! The open endpoints of `serve`: `/health` (the process answers), `/ready` (the store and the
//! queue answer, else 503) and `/metrics` (Prometheus text: queue depths and listings by status,
//! read when scraped).

use std::fmt::Write;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::problem::ApiError;
use super::problem::answers;
use crate::queue::{Queue, QueueDepths};

/// How long a probe waits for the store or the queue.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok` (alive) or `ready`.
    pub status: String,
}

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "Alive", body = ProbeStatus)))]
async fn health() -> Json<ProbeStatus> {
    Json(ProbeStatus {
        status: "ok".into(),
    })
}

/// The store and the queue answer.
#[utoipa::path(get, path = "/ready", tag = "service",
    responses(
        (status = 200, description = "Ready", body = ProbeStatus),
        answers::Unavailable,
    ))]
async fn ready(State(state): State<AppState>) -> Result<Json<ProbeStatus>, ApiError> {
    state.tracker.store.ping().await?;
    queue_depths(&state).await?;
    Ok(Json(ProbeStatus {
        status: "ready".into(),
    }))
}

async fn queue_depths(state: &AppState) -> Result<QueueDepths, ApiError> {
    match tokio::time::timeout(PROBE_TIMEOUT, state.queue.depths()).await {
        Ok(depths) => Ok(depths?),
        Err(_) => Err(ApiError::Unavailable(
            "the queue did not answer in time".into(),
        )),
    }
}

/// Prometheus metrics of the service: queue depths and listings by status.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        answers::Unavailable,
    ))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let depths = queue_depths(&state).await?;
    let listings = state.tracker.store.listing_counts().await?;
    let alerts = state.tracker.store.alert_counts().await?;
    // The service's gauges, then everything this process recorded in its one registry.
    let mut text = render_metrics(&depths, &listings);
    text.push_str(&render_alerts(&alerts));
    text.push_str(&crate::metrics::install().render());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// The Prometheus text of the service's gauges.
fn render_metrics(
    depths: &QueueDepths,
    listings: &std::collections::BTreeMap<String, i64>,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP scrapefarm_queue_messages Messages in the listing queue, by state.\n\
         # TYPE scrapefarm_queue_messages gauge"
    );
    let mut states = vec![
        ("ready", depths.ready),
        ("retrying", depths.retrying),
        ("dead", depths.dead),
    ];
    if let Some(unacked) = depths.unacked {
        states.push(("unacked", unacked));
    }
    for (state, n) in states {
        let _ = writeln!(out, "scrapefarm_queue_messages{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP scrapefarm_queue_consumers Consumers of the listing queue.\n\
         # TYPE scrapefarm_queue_consumers gauge\nscrapefarm_queue_consumers {}",
        depths.consumers
    );
    let _ = writeln!(
        out,
        "# HELP scrapefarm_listings Stored listings, by status.\n# TYPE scrapefarm_listings gauge"
    );
    for (status, n) in listings {
        let _ = writeln!(out, "scrapefarm_listings{{status=\"{status}\"}} {n}");
    }
    out
}

/// `scrapefarm_alerts{state}`: alerts by delivery state, `pending` always present.
fn render_alerts(alerts: &std::collections::BTreeMap<String, i64>) -> String {
    let mut out = String::from(
        "# HELP scrapefarm_alerts Alerts by delivery state (pending: waiting for a 2xx).
         # TYPE scrapefarm_alerts gauge
",
    );
    let pending = alerts.get("pending").copied().unwrap_or(0);
    // Writing to a String cannot fail.
    let _ = writeln!(out, "scrapefarm_alerts{{state=\"pending\"}} {pending}");
    for (state, n) in alerts.iter().filter(|(s, _)| *s != "pending") {
        let _ = writeln!(out, "scrapefarm_alerts{{state=\"{state}\"}} {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_gauges_with_low_cardinality_labels() {
        let depths = QueueDepths {
            ready: 3,
            unacked: None,
            retrying: 1,
            dead: 2,
            consumers: 4,
        };
        let listings = [("active".to_string(), 7), ("pending".to_string(), 1)].into();
        let text = render_metrics(&depths, &listings);
        assert!(text.contains("# TYPE scrapefarm_queue_messages gauge\n"));
        assert!(text.contains("scrapefarm_queue_messages{state=\"ready\"} 3\n"));
        assert!(!text.contains("unacked"), "unknown is not zero");
        assert!(text.contains("scrapefarm_queue_consumers 4\n"));
        assert!(text.contains("scrapefarm_listings{status=\"active\"} 7\n"));
    }
}

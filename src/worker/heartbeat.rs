//! The worker's heartbeat: every interval it writes its row of the `workers` table (pages
//! settled, pages per minute, browser memory, last error; see `store::workers`) and sets the
//! browser-memory gauge. It runs beside the consume loop until shutdown; a store outage only
//! logs (the row ages, and `status` shows the worker not alive until the store answers again).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics;
use crate::pipeline::Pipeline;
use crate::render::AnyRenderer;
use crate::render::retire::tree_memory_mib;
use crate::store::workers::Heartbeat;

/// How often a worker beats unless told otherwise: `status` then notices a dead worker within
/// 15 s (three missed beats), for one small upsert per worker every 5 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Upper bound on one beat's upsert and memory read: a beat that hangs is skipped, the next
/// one tries again.
const BEAT_TIMEOUT: Duration = Duration::from_secs(4);

/// The window pages per minute are measured over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Who is beating, and how often.
#[derive(Debug, Clone)]
pub struct HeartbeatSettings {
    pub worker_id: String,
    pub host: String,
    pub concurrency: usize,
    pub interval: Duration,
}

/// Starts the heartbeat on `tracker`; it stops when `shutdown` is cancelled.
pub fn spawn_heartbeat(
    tracker: &TaskTracker,
    pipeline: Arc<Pipeline<AnyRenderer>>,
    settings: HeartbeatSettings,
    shutdown: CancellationToken,
) {
    tracker.spawn(async move { run_heartbeat(&pipeline, &settings, &shutdown).await });
}

async fn run_heartbeat(
    pipeline: &Pipeline<AnyRenderer>,
    settings: &HeartbeatSettings,
    shutdown: &CancellationToken,
) {
    let started_at = match pipeline.store.db_now_ms().await {
        Ok(now) => now,
        Err(_) => crate::clock::now_ms(),
    };
    let mut tick = tokio::time::interval(settings.interval.max(Duration::from_millis(100)));
    let mut rate = Rate::default();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let pages = pipeline.stats.settled.load(Ordering::Relaxed);
        let memory = browser_memory_bytes(&pipeline.renderer).await;
        if let Some(bytes) = memory {
            metrics::browser_memory(bytes);
        }
        let last_error = pipeline.stats.last_error();
        let beat = Heartbeat {
            id: &settings.worker_id,
            host: &settings.host,
            concurrency: i64::try_from(settings.concurrency).unwrap_or(i64::MAX),
            pages: i64::try_from(pages).unwrap_or(i64::MAX),
            pages_per_min: rate.per_minute(Instant::now(), pages),
            memory_bytes: memory.and_then(|b| i64::try_from(b).ok()),
            last_error: last_error.as_deref(),
            interval: settings.interval,
            started_at,
        };
        let written = tokio::time::timeout(BEAT_TIMEOUT, pipeline.store.heartbeat(&beat)).await;
        let error = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("timed out after {} s", BEAT_TIMEOUT.as_secs())),
        };
        let was_failing = std::mem::replace(&mut failing, error.is_some());
        match (error, was_failing) {
            (Some(error), false) => {
                tracing::warn!(%error, "Heartbeat not written; trying again each interval.")
            }
            (Some(error), true) => tracing::debug!(%error, "Heartbeat still not written."),
            (None, true) => tracing::info!("Heartbeat written again."),
            (None, false) => {}
        }
    }
}

/// PSS of the browser's process tree; `None` without a browser process of our own (WebDriver:
/// chromedriver owns it) or where `/proc` cannot be read.
async fn browser_memory_bytes(renderer: &AnyRenderer) -> Option<u64> {
    let pid = match renderer {
        AnyRenderer::Cdp(cdp) => cdp.slot().pid().await?,
        AnyRenderer::WebDriver(_) => return None,
    };
    let read = tokio::task::spawn_blocking(move || tree_memory_mib(pid));
    let mib = tokio::time::timeout(BEAT_TIMEOUT, read)
        .await
        .ok()?
        .ok()??;
    Some(mib * 1024 * 1024)
}

/// Pages per minute over the last [`RATE_WINDOW`], from the running count at each beat.
#[derive(Debug, Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn per_minute(&mut self, now: Instant, pages: u64) -> f64 {
        self.samples.push_back((now, pages));
        // Keep the newest sample at least a window old, so the rate spans the whole window.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let Some(&(first_at, first)) = self.samples.front() else {
            return 0.0;
        };
        let secs = now.duration_since(first_at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        pages.saturating_sub(first) as f64 * 60.0 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_pages_per_minute_over_the_last_minute() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut rate = Rate::default();
        assert_eq!(rate.per_minute(at(0), 0), 0.0, "one sample has no rate");
        assert_eq!(rate.per_minute(at(30), 10), 20.0);
        assert_eq!(rate.per_minute(at(60), 30), 30.0);
        // The first sample has left the window: 10 → 40 pages in the last 60 s.
        assert_eq!(rate.per_minute(at(90), 40), 30.0);
        assert_eq!(rate.per_minute(at(120), 40), 10.0);
        assert_eq!(rate.per_minute(at(180), 40), 0.0, "idle for a minute");
        assert!(rate.samples.len() <= 3, "{:?}", rate.samples);
    }
}

//! The worker: consumes deliveries with bounded concurrency (prefetch = 2 × tabs), runs each through the
//! pipeline and settles it — ack only after the store committed; retries are republished to a
//! delay tier (confirmed) before the original is acked. When the store is down it stops consuming,
//! lets the broker keep the messages, and resumes once the store answers. When the queue goes away
//! (a broker restart) it finishes in-flight pages, backs off and consumes again, which reconnects;
//! deliveries it could not settle are redelivered by the broker. On shutdown it stops consuming,
//! finishes in-flight pages up to a deadline and returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pipeline::{Disposition, Pipeline};
use crate::queue::{Consumer, Delivery, Queue, QueueError, Settle};
use crate::render::Renderer;
use crate::telemetry::{Stage, Stats};

pub mod health;
mod heartbeat;
mod reporting;
mod settled;

pub use heartbeat::{DEFAULT_INTERVAL as HEARTBEAT_INTERVAL, HeartbeatSettings};
pub use reporting::{Reporting, bind_metrics};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    /// Exit once the queues (work and retry) have been empty and nothing was in flight this long.
    pub exit_when_idle: Option<Duration>,
    /// How long in-flight pages may take to finish after shutdown is requested.
    pub shutdown_deadline: Duration,
    /// Health file, rewritten every second while the pipeline progresses (see `health`).
    pub ready_file: Option<PathBuf>,
}

/// Why `run_worker` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    Shutdown,
    Idle,
}

enum Stop {
    Shutdown,
    Idle,
    /// The store is down.
    Halted,
    /// The queue failed (connection lost, consumer ended).
    Lost,
}

/// Deliveries in flight per tab: while one is classified, snapshotted, stored and acked, the
/// next is already rendering in the tab it freed (the pipeline lets only one job per tab
/// render). Measured: store + ack take ~25% of a render at concurrency 4, so one spare per tab
/// keeps every tab busy.
pub const PREFETCH_PER_TAB: usize = 2;

/// First wait before consuming again after the queue failed; it doubles while the queue stays
/// unavailable, up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(15);

/// Runs until shutdown or idle. Outages of the store or the queue are waited out, so this does
/// not return an error today; the `Result` is kept for callers.
pub async fn run_worker<R: Renderer, Q: Queue>(
    pipeline: Arc<Pipeline<R>>,
    queue: Q,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) -> Result<WorkerExit, QueueError> {
    let mut reconnect = RECONNECT_MIN;
    loop {
        let stop = match consume(&pipeline, &queue, &settings, &shutdown).await {
            Ok((stop, received)) => {
                if received {
                    reconnect = RECONNECT_MIN;
                }
                stop
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot consume from the queue.");
                pipeline
                    .stats
                    .note_error(&format!("cannot consume from the queue: {e}"));
                Stop::Lost
            }
        };
        let resume = match stop {
            Stop::Shutdown => return Ok(WorkerExit::Shutdown),
            Stop::Idle => return Ok(WorkerExit::Idle),
            Stop::Halted => wait_for_store(&pipeline, &settings, &shutdown).await,
            Stop::Lost => {
                tracing::warn!(retry_in = ?reconnect, "Queue unavailable; consuming again after a pause.");
                let resume = pause(reconnect, &shutdown).await;
                reconnect = (reconnect * 2).min(RECONNECT_MAX);
                resume
            }
        };
        if !resume {
            return Ok(WorkerExit::Shutdown);
        }
    }
}

/// Sleeps for `d`; false if shutdown came first.
async fn pause(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// One consuming session: until shutdown, idle, a halt or the queue failing. Also says whether
/// the session received a delivery (so the reconnect backoff starts over).
async fn consume<R: Renderer, Q: Queue>(
    pipeline: &Arc<Pipeline<R>>,
    queue: &Q,
    settings: &WorkerSettings,
    shutdown: &CancellationToken,
) -> Result<(Stop, bool), QueueError> {
    let prefetch =
        u16::try_from(settings.concurrency.max(1) * PREFETCH_PER_TAB).unwrap_or(u16::MAX);
    let mut consumer = queue.consume(prefetch, &pipeline.worker_id).await?;
    let tracker = TaskTracker::new();
    let halt = CancellationToken::new();
    // Cancels the deliveries still running at the shutdown deadline (see `wind_down`).
    let abandon = CancellationToken::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut last_activity = Instant::now();
    let mut received = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut liveness = Liveness::new();
    tracing::info!(worker = %pipeline.worker_id, concurrency = settings.concurrency, "Worker consuming.");
    let stop = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Stop::Shutdown,
            _ = halt.cancelled() => break Stop::Halted,
            _ = tick.tick() => {
                if liveness.progressing(&pipeline.stats, in_flight.load(Ordering::SeqCst)) {
                    touch(settings.ready_file.as_ref());
                }
                if in_flight.load(Ordering::SeqCst) > 0 {
                    last_activity = Instant::now();
                } else if is_idle(queue, settings, last_activity).await {
                    break Stop::Idle;
                }
            }
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    last_activity = Instant::now();
                    received = true;
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let (pipeline, queue, halt, in_flight, abandon) = (
                        pipeline.clone(), queue.clone(), halt.clone(), in_flight.clone(),
                        abandon.clone(),
                    );
                    tracker.spawn(async move {
                        tokio::select! {
                            _ = abandon.cancelled() => {}
                            _ = handle(&pipeline, &queue, delivery, &halt) => {}
                        }
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                lost => {
                    let error = lost.and_then(Result::err).map(|e| e.to_string());
                    let error = error.as_deref().unwrap_or("the consumer ended");
                    pipeline.stats.note_error(&format!("the queue failed: {error}"));
                    tracing::warn!(%error, "The queue failed; unsettled deliveries will be redelivered.");
                    break Stop::Lost;
                }
            }
        }
    };
    if matches!(stop, Stop::Shutdown) {
        pipeline.stop_starting();
    }
    wind_down(consumer, tracker, abandon, settings.shutdown_deadline).await;
    Ok((stop, received))
}

/// How long abandoned deliveries may take to stop: they stop at their next await, so this only
/// covers a task stuck in blocking code.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(5);

/// Stops deliveries, lets in-flight pages finish up to `deadline`, cancels those still running,
/// and only then closes the consumer, which gives their deliveries back: a late task must not
/// settle a job that another worker has taken since.
async fn wind_down<C: Consumer>(
    mut consumer: C,
    tracker: TaskTracker,
    abandon: CancellationToken,
    deadline: Duration,
) {
    consumer.cancel().await;
    tracker.close();
    if tokio::time::timeout(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "In-flight pages did not finish before the deadline; cancelled, the queue redelivers them."
        );
        abandon.cancel();
        if tokio::time::timeout(ABANDON_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::error!("Cancelled pages did not stop; closing the consumer anyway.");
        }
    }
    consumer.close().await;
}

async fn is_idle<Q: Queue>(queue: &Q, settings: &WorkerSettings, last: Instant) -> bool {
    let Some(idle) = settings.exit_when_idle else {
        return false;
    };
    if last.elapsed() < idle {
        return false;
    }
    match queue.depths().await {
        Ok(d) => d.ready == 0 && d.retrying == 0,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read queue depths.");
            false
        }
    }
}

/// Runs one delivery and settles it.
async fn handle<R: Renderer, Q: Queue>(
    pipeline: &Pipeline<R>,
    queue: &Q,
    delivery: Delivery,
    halt: &CancellationToken,
) {
    let stats = &pipeline.stats;
    Stats::bump(&stats.deliveries);
    let disposition = pipeline
        .run_job(&delivery.body, delivery.attempt, delivery.redelivered)
        .await;
    let t = Instant::now();
    match settle(queue, &delivery, &disposition, stats, halt).await {
        Ok(()) => settled::record(pipeline, &delivery.body, &disposition).await,
        // Not acked: the delivery returns to the queue when the channel closes.
        Err(e) => {
            tracing::warn!(error = %e, "Failed to settle a delivery; it will be redelivered.")
        }
    }
    Stats::bump(&stats.settled);
    stats.record(Stage::Ack, t.elapsed());
}

async fn settle<Q: Queue>(
    queue: &Q,
    delivery: &Delivery,
    disposition: &Disposition,
    stats: &Stats,
    halt: &CancellationToken,
) -> Result<(), QueueError> {
    let how = match disposition {
        Disposition::Ack => Settle::Ack,
        Disposition::Retry { after, reason } => {
            tracing::debug!(attempt = delivery.attempt, ?after, %reason, "Retrying later.");
            Stats::bump(&stats.retried);
            Settle::Retry(*after)
        }
        Disposition::DeadLetter { reason } => {
            tracing::warn!(attempt = delivery.attempt, %reason, "Job dead-lettered.");
            Stats::bump(&stats.dead_lettered);
            stats.note_error(&format!("dead-lettered: {reason}"));
            Settle::Dead(reason)
        }
        Disposition::GiveBack => Settle::Requeue,
        Disposition::Halt { reason } => {
            tracing::error!(%reason, "Store or snapshot disk unavailable; pausing consumption.");
            stats.note_error(&format!("halted: {reason}"));
            halt.cancel();
            Settle::Requeue
        }
    };
    queue.settle(delivery, how).await
}

/// Waits until the store answers and the snapshot disk takes writes again; false if shutdown
/// came first.
/// The worker stays alive meanwhile (its liveness file is touched): restarting it would not
/// bring the store back.
async fn wait_for_store<R: Renderer>(
    pipeline: &Pipeline<R>,
    settings: &WorkerSettings,
    shutdown: &CancellationToken,
) -> bool {
    loop {
        touch(settings.ready_file.as_ref());
        match pipeline.ready_to_resume().await {
            Ok(()) => {
                tracing::info!("Store and snapshot disk ready again; resuming.");
                return true;
            }
            Err(reason) => tracing::debug!(%reason, "Still halted."),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// How long jobs may be in flight with none settled before the worker stops saying it is alive
/// (its liveness file ages and Kubernetes restarts the pod): far beyond a page's render, ready
/// and challenge timeouts, so only a hung pipeline gets there.
pub const STALL_AFTER: Duration = Duration::from_secs(300);

/// Whether the pipeline makes progress: jobs settle, or there is nothing to do.
struct Liveness {
    settled: u64,
    since: Instant,
    warned: bool,
}

impl Liveness {
    fn new() -> Liveness {
        Liveness {
            settled: 0,
            since: Instant::now(),
            warned: false,
        }
    }

    fn progressing(&mut self, stats: &Stats, in_flight: usize) -> bool {
        let settled = stats.settled.load(Ordering::Relaxed);
        if settled != self.settled || in_flight == 0 {
            (self.settled, self.since, self.warned) = (settled, Instant::now(), false);
            return true;
        }
        let stalled = self.since.elapsed() >= STALL_AFTER;
        if stalled && !self.warned {
            self.warned = true;
            tracing::error!(in_flight, stalled_for = ?self.since.elapsed(),
                "No job settled for too long; no longer reporting alive.");
        }
        !stalled
    }
}

/// Writes the health file (pid and now), when the worker has one.
fn touch(path: Option<&PathBuf>) {
    if let Some(path) = path {
        health::write(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Job;
    use crate::queue::{EmbeddedQueue, QueueDepths};
    use crate::store::Store;

    #[test]
    fn liveness_follows_settled_jobs_not_the_clock() {
        let stats = Stats::default();
        let mut live = Liveness::new();
        assert!(live.progressing(&stats, 0), "nothing to do is alive");
        assert!(live.progressing(&stats, 2), "in flight, not yet stalled");
        let long_ago = Instant::now().checked_sub(STALL_AFTER + Duration::from_secs(1));
        live.since = long_ago.expect("the clock is past the stall window");
        assert!(
            !live.progressing(&stats, 2),
            "in flight and nothing settled for too long"
        );
        Stats::bump(&stats.settled);
        assert!(live.progressing(&stats, 2), "a settled job is progress");
    }

    /// A job whose page never finishes: at the deadline its task is cancelled before the
    /// consumer closes, so the job is ready for another worker and the late task never settles.
    #[tokio::test]
    async fn wind_down_cancels_a_task_past_the_deadline_before_giving_its_job_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let queue = EmbeddedQueue::new(&store, "listings");
        let job = Job {
            id: "job-1".into(),
            site: "fixture".into(),
            url: "http://127.0.0.1:1/item/1".into(),
            search_id: None,
            run: None,
            published_at: 0,
        };
        queue.publish(&job).await.unwrap();
        let mut consumer = queue.consume(1, "test").await.unwrap();
        let delivery = consumer.next().await.unwrap().unwrap();

        let (tracker, abandon) = (TaskTracker::new(), CancellationToken::new());
        let settled = Arc::new(AtomicUsize::new(0));
        let (late, q, s) = (abandon.clone(), queue.clone(), settled.clone());
        tracker.spawn(async move {
            tokio::select! {
                _ = late.cancelled() => {}
                _ = async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    let _ = q.settle(&delivery, Settle::Ack).await;
                    s.fetch_add(1, Ordering::SeqCst);
                } => {}
            }
        });
        let started = Instant::now();
        wind_down(
            consumer,
            tracker.clone(),
            abandon,
            Duration::from_millis(200),
        )
        .await;

        assert!(
            started.elapsed() < Duration::from_secs(5),
            "returned at the deadline"
        );
        assert!(tracker.is_empty(), "the late task is gone");
        assert_eq!(
            settled.load(Ordering::SeqCst),
            0,
            "the late task never settled"
        );
        let ready = QueueDepths {
            ready: 1,
            unacked: Some(0),
            ..QueueDepths::default()
        };
        assert_eq!(
            queue.depths().await.unwrap(),
            ready,
            "the job is ready again"
        );
        store.close().await;
    }
}

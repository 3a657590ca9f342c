//! Telemetry: tracing setup (text, coloured only on a terminal, or JSON when
//! `SCRAPEFARM_LOG_FORMAT=json`) and the worker's counters and per-stage timings, printed as an
//! end-of-run summary so a regression can be located, and the worker's last error for its
//! heartbeat. Prometheus metrics live in `metrics`.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,chromiumoxide=off,lapin=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them, never in a log file or pipe.
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// The pipeline stages whose time is measured.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Render,
    Classify,
    Extract,
    Snapshot,
    Store,
    Ack,
}

const STAGES: [(Stage, &str); 6] = [
    (Stage::Render, "render"),
    (Stage::Classify, "classify"),
    (Stage::Extract, "extract"),
    (Stage::Snapshot, "snapshot"),
    (Stage::Store, "store"),
    (Stage::Ack, "ack"),
];

/// Counters shared by every task of a worker.
#[derive(Debug, Default)]
pub struct Stats {
    stage_us: [AtomicU64; 6],
    pub deliveries: AtomicU64,
    pub stored: AtomicU64,
    pub gone: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Jobs already satisfied by a later enrichment (duplicates, redeliveries).
    pub skipped: AtomicU64,
    /// Deliveries settled (whatever the outcome): the worker's progress, for liveness.
    pub settled: AtomicU64,
    /// The last dead letter, halt or queue failure, for the worker's heartbeat.
    last_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn record(&self, stage: Stage, took: Duration) {
        self.stage_us[stage as usize].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers `error` as the worker's last error.
    pub fn note_error(&self, error: &str) {
        // A poisoned lock only means a panic mid-assignment of an Option<String>: still usable.
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some(error.to_string());
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stage_total(&self, stage: Stage) -> Duration {
        Duration::from_micros(self.stage_us[stage as usize].load(Ordering::Relaxed))
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.deliveries.load(Ordering::Relaxed).max(1) as f64;
        writeln!(
            f,
            "deliveries {}  stored {}  gone {}  skipped {}  retried {}  dead-lettered {}",
            self.deliveries.load(Ordering::Relaxed),
            self.stored.load(Ordering::Relaxed),
            self.gone.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
            self.dead_lettered.load(Ordering::Relaxed),
        )?;
        write!(f, "stage time per delivery (ms):")?;
        for (stage, name) in STAGES {
            let ms = self.stage_total(stage).as_secs_f64() * 1000.0 / n;
            write!(f, "  {name} {ms:.1}")?;
        }
        Ok(())
    }
}

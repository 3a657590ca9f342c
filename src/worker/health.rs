//! The worker's health file: one per worker process (`<data dir>/health/<worker id>.json` unless
//! `--health-file` says otherwise), rewritten every second while the pipeline progresses (jobs
//! settle, or there is nothing to do), with the worker's pid and the time of that progress.
//! `scrapefarm health` fails when the process is gone or the progress is older than its limit:
//! a worker stuck with pages in flight stops being healthy even though it still runs.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the health file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub pid: u32,
    /// Last progress, epoch ms.
    pub progress_at_ms: i64,
}

/// Why a worker is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("cannot read it: {0}; is the worker running with this health file?")]
    Unreadable(std::io::Error),
    #[error("it is not a health file ({0}); expected {{\"pid\": …, \"progress_at_ms\": …}}")]
    Malformed(serde_json::Error),
    #[error("its worker (pid {0}) is not running")]
    Gone(u32),
    #[error("no progress for {age} s (limit {limit} s)")]
    Stale { age: u64, limit: u64 },
}

/// Writes the file anew (through a temporary file and a rename, so a reader never sees half of
/// it). Failing costs only the health check, which then reports the worker stale: logged.
pub fn write(path: &Path) {
    let health = Health {
        pid: std::process::id(),
        progress_at_ms: crate::clock::now_ms(),
    };
    let tmp = path.with_extension("json.tmp");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&health).unwrap_or_default()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(error) = written {
        tracing::warn!(%error, path = %path.display(), "Could not write the health file.");
    }
}

/// Removes the file (the worker stopped).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Whether the worker of the file at `path` is running and progressed within `max_age` of `now`
/// (epoch ms).
pub fn check(path: &Path, max_age: Duration, now: i64) -> Result<Health, Unhealthy> {
    let text = std::fs::read(path).map_err(Unhealthy::Unreadable)?;
    let health: Health = serde_json::from_slice(&text).map_err(Unhealthy::Malformed)?;
    // Another host's pid (a file on a shared volume) cannot be checked; /proc is this host's.
    if Path::new("/proc/self").exists() && !crate::render::profile::pid_alive(health.pid) {
        return Err(Unhealthy::Gone(health.pid));
    }
    let age = u64::try_from(now - health.progress_at_ms).unwrap_or(0) / 1000;
    if age > max_age.as_secs() {
        return Err(Unhealthy::Stale {
            age,
            limit: max_age.as_secs(),
        });
    }
    Ok(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_of_a_live_process_is_healthy_and_a_stale_or_orphaned_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("health").join("worker-0.json");
        assert!(matches!(
            check(&path, Duration::from_secs(60), 0),
            Err(Unhealthy::Unreadable(_))
        ));
        write(&path);
        let now = crate::clock::now_ms();
        let health = check(&path, Duration::from_secs(60), now).unwrap();
        assert_eq!(health.pid, std::process::id());
        let later = now + 61_000;
        assert!(matches!(
            check(&path, Duration::from_secs(60), later),
            Err(Unhealthy::Stale { age: 61, limit: 60 })
        ));
        let gone = Health {
            pid: u32::MAX - 1,
            progress_at_ms: now,
        };
        std::fs::write(&path, serde_json::to_vec(&gone).unwrap()).unwrap();
        assert!(matches!(
            check(&path, Duration::from_secs(60), now),
            Err(Unhealthy::Gone(_))
        ));
        std::fs::write(&path, b"touched").unwrap();
        assert!(matches!(
            check(&path, Duration::from_secs(60), now),
            Err(Unhealthy::Malformed(_))
        ));
    }
}

//! The snapshot directory as an inventory: the store's rows about it (one [`SnapshotEntry`] per
//! file, a type of the store's) checked against what is on disk. Builds the reports behind `scrapefarm snapshots`: counts
//! and bytes per site and day, verification of every file against its recorded sha256, and the
//! garbage-collection plan and its execution. Blocking I/O: call `verify` and `remove_files` from
//! `spawn_blocking`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use super::orphans::Removal;
use super::orphans::{self, FileKind, GRACE};
use super::{SnapshotError, day_of, resolve};
pub use crate::clock::DAY_MS;
pub use crate::store::{DayCount, SnapshotEntry, SnapshotFilter};

/// Count and sizes of a group of snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsRow {
    pub site: String,
    /// `yyyy-mm-dd` (UTC), or `all` for the total.
    pub day: String,
    pub count: i64,
    pub bytes: i64,
    pub html_bytes: i64,
    /// html_bytes / bytes: how much zstd saves (0 when nothing is stored).
    pub ratio: f64,
}

/// `snapshots stats`: one row per site and day, oldest day first, and the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    pub rows: Vec<StatsRow>,
    pub total: StatsRow,
}

impl StatsReport {
    /// Builds the report from the store's per-day counts.
    pub fn from_counts(counts: &[DayCount]) -> StatsReport {
        let mut rows: Vec<StatsRow> = counts
            .iter()
            .map(|c| {
                stats_row(
                    &c.site,
                    day_of(c.day_index * DAY_MS),
                    c.count,
                    c.bytes,
                    c.html_bytes,
                )
            })
            .collect();
        rows.sort_by(|a, b| (&a.day, &a.site).cmp(&(&b.day, &b.site)));
        let sum = |f: fn(&DayCount) -> i64| counts.iter().map(f).sum::<i64>();
        let total = stats_row(
            "all",
            "all".into(),
            sum(|c| c.count),
            sum(|c| c.bytes),
            sum(|c| c.html_bytes),
        );
        StatsReport { rows, total }
    }
}

fn stats_row(site: &str, day: String, count: i64, bytes: i64, html_bytes: i64) -> StatsRow {
    let ratio = if bytes > 0 {
        html_bytes as f64 / bytes as f64
    } else {
        0.0
    };
    StatsRow {
        site: site.to_string(),
        day,
        count,
        bytes,
        html_bytes,
        ratio,
    }
}

/// One thing wrong with the snapshot directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Problem {
    /// The store records a file (snapshot or thumbnail) that is not on disk.
    Missing { id: i64, path: String },
    /// The file is there but is not what the store recorded: another hash, not zstd, unreadable,
    /// or a recorded path that leaves the root.
    Corrupt {
        id: i64,
        path: String,
        reason: String,
    },
    /// A file under the root that no row records.
    Orphaned { path: String },
    /// A temporary file older than any write takes (a writer killed mid-write).
    Stray { path: String, age_secs: u64 },
}

/// `snapshots verify`: every recorded file re-hashed, every file on disk accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Snapshot rows checked.
    pub checked: usize,
    /// Snapshot and thumbnail files found under the root (temporary files and `debug/` excluded).
    pub files_on_disk: usize,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems of each kind: (missing, corrupt, orphaned); see [`VerifyReport::stray`].
    pub fn counts(&self) -> (usize, usize, usize) {
        self.problems
            .iter()
            .fold((0, 0, 0), |(m, c, o), problem| match problem {
                Problem::Missing { .. } => (m + 1, c, o),
                Problem::Corrupt { .. } => (m, c + 1, o),
                Problem::Orphaned { .. } => (m, c, o + 1),
                Problem::Stray { .. } => (m, c, o),
            })
    }

    /// How many stray temporary files were found.
    pub fn stray(&self) -> usize {
        let is_stray = |p: &&Problem| matches!(p, Problem::Stray { .. });
        self.problems.iter().filter(is_stray).count()
    }
}

/// Re-hashes and test-decompresses every recorded snapshot, checks recorded thumbnails exist,
/// lists files under `root` that no entry records, and temporary files older than
/// [`GRACE`](orphans::GRACE) (younger ones may be writes in progress).
pub fn verify(root: &Path, entries: &[SnapshotEntry]) -> Result<VerifyReport, SnapshotError> {
    let mut problems = Vec::new();
    for entry in entries {
        problems.extend(check_snapshot(root, entry));
        if let Some(thumb) = &entry.screenshot_path {
            let present = resolve(root, thumb).is_ok_and(|path| path.is_file());
            if !present {
                problems.push(Problem::Missing {
                    id: entry.id,
                    path: thumb.clone(),
                });
            }
        }
    }
    let known = orphans::recorded(entries);
    let now = SystemTime::now();
    let mut files_on_disk = 0;
    for file in orphans::scan(root)? {
        let path = file.relative.clone();
        match file.kind {
            FileKind::Debug => {}
            FileKind::Temp if file.age(now) >= GRACE => problems.push(Problem::Stray {
                path,
                age_secs: file.age(now).as_secs(),
            }),
            FileKind::Temp => {}
            FileKind::Recordable => {
                files_on_disk += 1;
                if !known.contains(path.as_str()) {
                    problems.push(Problem::Orphaned { path });
                }
            }
        }
    }
    Ok(VerifyReport {
        checked: entries.len(),
        files_on_disk,
        problems,
    })
}

/// What is wrong with one recorded snapshot file, if anything.
fn check_snapshot(root: &Path, entry: &SnapshotEntry) -> Option<Problem> {
    let corrupt = |reason: String| Problem::Corrupt {
        id: entry.id,
        path: entry.path.clone(),
        reason,
    };
    let path = match resolve(root, &entry.path) {
        Ok(path) => path,
        Err(e) => return Some(corrupt(e.to_string())),
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Some(Problem::Missing {
                id: entry.id,
                path: entry.path.clone(),
            });
        }
        Err(e) => return Some(corrupt(format!("unreadable: {e}"))),
    };
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != entry.sha256 {
        return Some(corrupt(format!(
            "sha256 is {actual}, the store recorded {}",
            entry.sha256
        )));
    }
    // The hash can match a file that was stored broken; decompressing proves it can be read.
    match zstd::stream::copy_decode(bytes.as_slice(), std::io::sink()) {
        Ok(()) => None,
        Err(e) => Some(corrupt(format!("not valid zstd: {e}"))),
    }
}

/// What `snapshots gc` deletes: snapshots captured before the cutoff, except each listing's
/// newest when `keep_latest` is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcPlan {
    pub cutoff_ms: i64,
    pub keep_latest: bool,
    /// Oldest first.
    pub delete: Vec<SnapshotEntry>,
    /// Old snapshots kept because they are their listing's newest.
    pub kept_latest: usize,
}

impl GcPlan {
    /// Plans a collection over all `entries` (every snapshot row, so the newest per listing is
    /// known even when it is not old).
    pub fn build(entries: &[SnapshotEntry], cutoff_ms: i64, keep_latest: bool) -> GcPlan {
        let mut newest: HashMap<i64, (i64, i64)> = HashMap::new();
        for e in entries {
            let slot = newest.entry(e.listing_id).or_insert((e.captured_at, e.id));
            *slot = (*slot).max((e.captured_at, e.id));
        }
        let is_newest =
            |e: &SnapshotEntry| newest.get(&e.listing_id) == Some(&(e.captured_at, e.id));
        let old: Vec<&SnapshotEntry> = entries
            .iter()
            .filter(|e| e.captured_at < cutoff_ms)
            .collect();
        let mut delete: Vec<SnapshotEntry> = old
            .iter()
            .filter(|e| !(keep_latest && is_newest(e)))
            .map(|e| (*e).clone())
            .collect();
        delete.sort_by_key(|e| (e.captured_at, e.id));
        GcPlan {
            cutoff_ms,
            keep_latest,
            kept_latest: old.len() - delete.len(),
            delete,
        }
    }

    /// Bytes on disk the plan frees (snapshots only; thumbnails are small and unrecorded).
    pub fn bytes(&self) -> i64 {
        self.delete.iter().map(|e| e.bytes).sum()
    }

    pub fn ids(&self) -> Vec<i64> {
        self.delete.iter().map(|e| e.id).collect()
    }
}

/// Deletes the entries' snapshot files and thumbnails (a file already gone is not an error), then
/// the day and site folders they leave empty.
pub fn remove_files(root: &Path, entries: &[SnapshotEntry]) -> Removal {
    let paths = entries
        .iter()
        .flat_map(|e| std::iter::once(&e.path).chain(e.screenshot_path.as_ref()));
    orphans::remove(root, paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, listing_id: i64, captured_at: i64) -> SnapshotEntry {
        SnapshotEntry {
            id,
            listing_id,
            site: "fixture".into(),
            external_id: listing_id.to_string(),
            path: format!("fixture/1970-01-01/{id}.html.zst"),
            sha256: String::new(),
            bytes: 10,
            html_bytes: 100,
            http_status: Some(200),
            captured_at,
            screenshot_path: None,
        }
    }

    #[test]
    fn gc_keeps_one_newest_per_listing_even_when_times_tie() {
        let entries = [
            entry(1, 7, 5),
            entry(2, 7, 5),
            entry(3, 8, 1),
            entry(4, 9, 50),
        ];
        let ids = |plan: GcPlan| plan.ids();
        assert_eq!(ids(GcPlan::build(&entries, 10, false)), vec![3, 1, 2]);
        let plan = GcPlan::build(&entries, 10, true);
        assert_eq!((plan.ids(), plan.kept_latest), (vec![1], 2));
        assert_eq!(plan.bytes(), 10);
    }

    #[test]
    fn stats_ratio_is_html_over_stored_bytes_and_zero_when_empty() {
        let count = |site: &str, day_index, bytes| DayCount {
            site: site.into(),
            day_index,
            count: 2,
            bytes,
            html_bytes: 1000,
        };
        let report = StatsReport::from_counts(&[count("ebay", 1, 100), count("fixture", 0, 250)]);
        assert_eq!(report.rows[0].day, "1970-01-01");
        assert_eq!(report.rows[1].site, "ebay");
        assert_eq!(report.rows[1].ratio, 10.0);
        assert_eq!(
            (report.total.count, report.total.ratio),
            (4, 2000.0 / 350.0)
        );
        assert_eq!(StatsReport::from_counts(&[]).total.ratio, 0.0);
    }
}

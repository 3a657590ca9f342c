//! Files under the snapshot root that no `snapshots` row records: orphans (a crash between the
//! file's rename and the row's commit, or a gc interrupted between its rows and its files) and
//! stray temporary files (a writer killed mid-write). Scans the directory, plans what
//! `snapshots gc --orphans` may delete without racing live writers, and deletes it. Debug
//! snapshots (`debug/`) are never recorded as rows, so they are never orphans; their stray
//! temporary files are. Blocking I/O: call from `spawn_blocking`.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::durable::is_temp;
use super::inventory::SnapshotEntry;
use super::{SnapshotError, resolve};

/// Top-level folder of debug snapshots (kept once per error signature, never recorded as rows).
pub const DEBUG_DIR: &str = "debug";

/// How old an unrecorded file must be before gc deletes it, and a temporary file before verify
/// calls it stray. A worker renames a snapshot into place and commits its row within seconds
/// (a store outage halts the worker, and the redelivered job writes the file again), and a
/// temporary file lives for one write; an hour is far beyond both.
pub const GRACE: Duration = Duration::from_secs(3600);

/// What a file under the root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A snapshot or thumbnail, which a row should record.
    Recordable,
    /// A debug snapshot or its thumbnail (never recorded).
    Debug,
    /// A write in progress, or a stray one.
    Temp,
}

/// One file under the snapshot root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOnDisk {
    /// `/`-separated, relative to the root.
    pub relative: String,
    pub kind: FileKind,
    pub modified: SystemTime,
}

impl FileOnDisk {
    /// How long ago the file was last written (zero for a time in the future).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.modified).unwrap_or_default()
    }
}

/// Every file under `root`, sorted by path. Symlinks are listed, never followed. A missing root
/// holds no files.
pub fn scan(root: &Path) -> Result<Vec<FileOnDisk>, SnapshotError> {
    let mut files = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let read_err = |source| SnapshotError::Read {
            path: dir.clone(),
            source,
        };
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == ErrorKind::NotFound && prefix.is_empty() => break,
            Err(e) => return Err(read_err(e)),
        };
        for item in listing {
            let item = item.map_err(read_err)?;
            let name = item.file_name().to_string_lossy().into_owned();
            let relative = format!("{prefix}{name}");
            if item.file_type().map_err(read_err)?.is_dir() {
                dirs.push((item.path(), format!("{relative}/")));
                continue;
            }
            let kind = if is_temp(&name) {
                FileKind::Temp
            } else if relative.starts_with(&format!("{DEBUG_DIR}/")) {
                FileKind::Debug
            } else {
                FileKind::Recordable
            };
            // A file deleted between the listing and this call is simply gone; others error.
            let modified = match item.metadata().and_then(|m| m.modified()) {
                Ok(time) => time,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(e)),
            };
            files.push(FileOnDisk {
                relative,
                kind,
                modified,
            });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

/// The paths the rows record: snapshots and their thumbnails.
pub fn recorded(entries: &[SnapshotEntry]) -> HashSet<&str> {
    entries
        .iter()
        .flat_map(|e| std::iter::once(e.path.as_str()).chain(e.screenshot_path.as_deref()))
        .collect()
}

/// What `snapshots gc --orphans` deletes: unrecorded files and temporary files older than
/// [`GRACE`]; younger ones may belong to a write still in progress and are only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrphanPlan {
    pub orphans: Vec<String>,
    pub stray_temp: Vec<String>,
    /// Unrecorded or temporary files kept because they are younger than the grace period.
    pub young: usize,
}

impl OrphanPlan {
    /// Plans over `files` (scanned *before* the rows were read, so a file whose row committed in
    /// between is young rather than deleted).
    pub fn build(files: &[FileOnDisk], recorded: &HashSet<&str>, now: SystemTime) -> OrphanPlan {
        let mut plan = OrphanPlan::default();
        for file in files {
            let target = match file.kind {
                FileKind::Debug => continue,
                FileKind::Recordable if recorded.contains(file.relative.as_str()) => continue,
                FileKind::Recordable => &mut plan.orphans,
                FileKind::Temp => &mut plan.stray_temp,
            };
            if file.age(now) < GRACE {
                plan.young += 1;
            } else {
                target.push(file.relative.clone());
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.orphans.is_empty() && self.stray_temp.is_empty()
    }

    /// Every path to delete.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.orphans.iter().chain(&self.stray_temp)
    }
}

/// Files [`remove`] deleted, and the ones it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removal {
    pub files_removed: usize,
    pub errors: Vec<String>,
}

/// Deletes files given relative to `root` (a file already gone is not an error), then the
/// folders they leave empty, up to but not including the root.
pub fn remove<'a>(root: &Path, relatives: impl IntoIterator<Item = &'a String>) -> Removal {
    let mut removal = Removal::default();
    let mut dirs = HashSet::new();
    for relative in relatives {
        let path = match resolve(root, relative) {
            Ok(path) => path,
            Err(e) => {
                removal.errors.push(e.to_string());
                continue;
            }
        };
        match std::fs::remove_file(&path) {
            Ok(()) => removal.files_removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => removal.errors.push(format!("{}: {e}", path.display())),
        }
        dirs.extend(path.parent().map(Path::to_path_buf));
    }
    for dir in dirs {
        // `remove_dir` fails on a folder that still holds files, which is what keeps it.
        let mut current = dir.as_path();
        while current != root && std::fs::remove_dir(current).is_ok() {
            match current.parent() {
                Some(parent) => current = parent,
                None => break,
            }
        }
    }
    removal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(relative: &str, kind: FileKind, age_secs: u64, now: SystemTime) -> FileOnDisk {
        FileOnDisk {
            relative: relative.into(),
            kind,
            modified: now - Duration::from_secs(age_secs),
        }
    }

    #[test]
    fn only_old_unrecorded_and_old_temporary_files_are_planned_for_deletion() {
        let now = SystemTime::now();
        let old = GRACE.as_secs() + 1;
        let files = [
            file("fixture/d/kept.html.zst", FileKind::Recordable, old, now),
            file("fixture/d/lost.html.zst", FileKind::Recordable, old, now),
            file("fixture/d/new.html.zst", FileKind::Recordable, 5, now),
            file("fixture/d/x.html.zst.tmp-1-a-0", FileKind::Temp, old, now),
            file("fixture/d/y.html.zst.tmp-1-a-1", FileKind::Temp, 5, now),
            file("debug/fixture/blocked.html.zst", FileKind::Debug, old, now),
        ];
        let recorded = HashSet::from(["fixture/d/kept.html.zst"]);
        let plan = OrphanPlan::build(&files, &recorded, now);
        assert_eq!(plan.orphans, vec!["fixture/d/lost.html.zst"]);
        assert_eq!(plan.stray_temp, vec!["fixture/d/x.html.zst.tmp-1-a-0"]);
        assert_eq!(plan.young, 2);
    }

    #[test]
    fn scan_sorts_files_by_kind() {
        let root = tempfile::tempdir().unwrap();
        for path in ["s/a.html.zst", "s/a.html.tmp77", "debug/s/b.html.zst"] {
            let full = root.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, b"x").unwrap();
        }
        let kinds: Vec<(String, FileKind)> = scan(root.path())
            .unwrap()
            .into_iter()
            .map(|f| (f.relative, f.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("debug/s/b.html.zst".into(), FileKind::Debug),
                ("s/a.html.tmp77".into(), FileKind::Temp),
                ("s/a.html.zst".into(), FileKind::Recordable),
            ]
        );
        assert!(scan(&root.path().join("missing")).unwrap().is_empty());
    }
}

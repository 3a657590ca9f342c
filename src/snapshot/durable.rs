//! Durable, atomic file writes for snapshots: the bytes go to a temporary file with a name no
//! other writer can pick (several workers, possibly on several hosts, share one snapshot volume),
//! are fsynced, renamed over the final name, and the directory is fsynced so the rename survives a
//! crash. A failed write removes its temporary file. Temporary names carry [`TEMP_MARK`], which is
//! how the inventory tells a write in progress (or a stray one left by a killed writer) from a
//! snapshot.

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::SnapshotError;

/// Marks a temporary file: `<final name>.tmp-<pid>-<process token>-<sequence>`. Older versions
/// wrote `<stem>.tmp<pid>`; both contain `.tmp`, which is what [`is_temp`] looks for.
pub const TEMP_MARK: &str = ".tmp-";

/// Whether a file name is a temporary file of a write (this version's or an older one's).
pub fn is_temp(name: &str) -> bool {
    name.contains(".tmp")
}

/// Writes `bytes` to `path` atomically and durably; on error no temporary file is left.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let err = |source| SnapshotError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = temp_name(path);
    // `create_new`: a name that somehow exists is never overwritten (it belongs to another
    // writer); the error surfaces instead.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(err)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path)
        });
    if let Err(source) = written {
        // Best effort: the write failed already, and a leftover is reported by `verify` and
        // removed by `gc --orphans` once it is old.
        let _ = std::fs::remove_file(&tmp);
        return Err(err(source));
    }
    sync_dir(dir).map_err(err)
}

/// fsyncs a directory so that a rename (or a new entry) in it is on disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A temporary name beside `path`, unique across processes and hosts sharing the volume: the
/// pid alone is not (every pod's worker may be pid 1), so a random per-process token and a
/// per-process sequence number follow it.
fn temp_name(path: &Path) -> PathBuf {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        "{TEMP_MARK}{}-{:016x}-{seq}",
        std::process::id(),
        process_token()
    ));
    path.with_file_name(name)
}

/// 64 random bits drawn once per process (std's hasher keys come from the OS's randomness).
fn process_token() -> u64 {
    static TOKEN: OnceLock<u64> = OnceLock::new();
    *TOKEN.get_or_init(|| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(u64::from(std::process::id()));
        hasher.finish()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_unique_and_recognised_as_temporary() {
        let path = Path::new("/snaps/fixture/2026-01-01/1-j.html.zst");
        let (a, b) = (temp_name(path), temp_name(path));
        assert_ne!(a, b);
        assert_eq!(a.parent(), path.parent());
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("1-j.html.zst.tmp-"), "{name}");
        assert!(is_temp(name) && is_temp("1-j.html.tmp4242"));
        assert!(!is_temp("1-j.html.zst") && !is_temp("1-j.thumb.jpg"));
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/x.html.zst");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.html.zst")]);
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The final name is a non-empty directory: the rename fails after the data was written.
        let path = dir.path().join("taken");
        std::fs::create_dir_all(path.join("inside")).unwrap();
        let err = write_atomically(&path, b"bytes").unwrap_err();
        assert!(matches!(err, SnapshotError::Write { .. }), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
    }
}

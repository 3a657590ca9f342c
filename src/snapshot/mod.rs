//! Snapshot (stage 5): the rendered HTML, zstd-compressed, under
//! `<root>/<site>/<yyyy-mm-dd>/<listing>-<job id>.html.zst`, with its sha256 and size; optionally a
//! JPEG thumbnail of the screenshot beside it. Files are written atomically and durably
//! (`durable`: a unique temporary name, fsync, rename, fsync of the directory), so a crash never
//! leaves a half-written snapshot under its final name. Blocking I/O: call it from
//! `spawn_blocking`. `inventory` checks the directory against the store (stats, verify, gc),
//! `orphans` finds and removes files no row records, and `command` (with `sweep`, its gc) is the
//! operator's `scrapefarm snapshots` command built on them.

mod command;
pub(crate) use command::format_time;
pub mod durable;
pub mod inventory;
pub mod orphans;
mod sweep;

use std::io::Cursor;
use std::path::{Component, Path, PathBuf};

use image::{ImageReader, Limits};
use sha2::{Digest, Sha256};

use crate::clock::now_ms;
use crate::store::SnapshotMeta;

pub use command::{SnapshotsCommand, run};
use durable::write_atomically;

/// zstd level 3: about 10x on listing HTML at well under a millisecond per page.
const ZSTD_LEVEL: i32 = 3;
/// Thumbnail bounding box.
const THUMB_SIZE: (u32, u32) = (320, 240);

/// Why a snapshot could not be written, read or checked.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("Failed to write snapshot {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Failed to read snapshot {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot path {0} is outside the snapshot root")]
    OutsideRoot(String),
    #[error("screenshot could not be turned into a thumbnail: {0}")]
    Image(#[from] image::ImageError),
}

/// Linux errno values of a disk that cannot take writes: no space (ENOSPC), an I/O error (EIO),
/// a read-only filesystem (EROFS), a quota exceeded (EDQUOT). The farm runs on Linux; elsewhere
/// the portable error kinds below still catch most of them.
const DISK_FAULT_ERRNOS: [i32; 4] = [28, 5, 30, 122];

impl SnapshotError {
    /// Whether the disk itself failed (full, read-only, broken, over quota) rather than this one
    /// page: every other job would fail the same way, so the worker halts instead of burning the
    /// jobs' attempts.
    pub fn is_disk_fault(&self) -> bool {
        use std::io::ErrorKind;
        let (SnapshotError::Write { source, .. } | SnapshotError::Read { source, .. }) = self
        else {
            return false;
        };
        if let Some(errno) = source.raw_os_error() {
            return DISK_FAULT_ERRNOS.contains(&errno);
        }
        matches!(
            source.kind(),
            ErrorKind::StorageFull | ErrorKind::ReadOnlyFilesystem | ErrorKind::QuotaExceeded
        )
    }
}

/// What to write.
pub struct SnapshotInput<'a> {
    pub site: &'a str,
    pub external_id: &'a str,
    pub job_id: &'a str,
    pub html: &'a str,
    pub http_status: Option<u16>,
    pub screenshot: Option<&'a [u8]>,
}

/// Writes a snapshot (and thumbnail) under `root` and returns what the store records.
pub fn write(root: &Path, input: &SnapshotInput<'_>) -> Result<SnapshotMeta, SnapshotError> {
    let captured_at = now_ms();
    let day = day_of(captured_at);
    let stem = format!("{}-{}", sanitize(input.external_id), sanitize(input.job_id));
    let relative = format!("{}/{day}/{stem}.html.zst", sanitize(input.site));
    let compressed = zstd::encode_all(input.html.as_bytes(), ZSTD_LEVEL).map_err(|source| {
        SnapshotError::Write {
            path: root.join(&relative),
            source,
        }
    })?;
    write_atomically(&root.join(&relative), &compressed)?;
    let screenshot_path = match input.screenshot {
        Some(png) => {
            let thumb_rel = format!("{}/{day}/{stem}.thumb.jpg", sanitize(input.site));
            write_atomically(&root.join(&thumb_rel), &thumbnail(png)?)?;
            Some(thumb_rel)
        }
        None => None,
    };
    Ok(SnapshotMeta {
        path: relative,
        sha256: hex::encode(Sha256::digest(&compressed)),
        bytes: compressed.len() as i64,
        html_bytes: input.html.len() as i64,
        http_status: input.http_status,
        captured_at,
        screenshot_path,
    })
}

/// Writes `<root>/debug/<site>/<signature>.html.zst` (and, given a PNG screenshot, its thumbnail
/// `<signature>.thumb.jpg`) unless it exists: one debug snapshot per distinct failure, not one
/// per page. Returns the path when it wrote one.
pub fn write_debug(
    root: &Path,
    site: &str,
    signature: &str,
    html: &str,
    screenshot: Option<&[u8]>,
) -> Result<Option<PathBuf>, SnapshotError> {
    let path = root
        .join("debug")
        .join(sanitize(site))
        .join(format!("{}.html.zst", sanitize(signature)));
    if path.exists() {
        return Ok(None);
    }
    let compressed =
        zstd::encode_all(html.as_bytes(), ZSTD_LEVEL).map_err(|source| SnapshotError::Write {
            path: path.clone(),
            source,
        })?;
    // The picture is a help, the HTML is the record: a screenshot that cannot be turned into a
    // thumbnail does not cost the debug snapshot.
    if let Some(png) = screenshot {
        let thumb = path.with_file_name(format!("{}.thumb.jpg", sanitize(signature)));
        if let Err(e) = thumbnail(png).and_then(|jpeg| write_atomically(&thumb, &jpeg)) {
            tracing::warn!(error = %e, "Debug snapshot kept without its screenshot.");
        }
    }
    // The HTML last: its presence marks the signature as kept.
    write_atomically(&path, &compressed)?;
    Ok(Some(path))
}

/// Reads and decompresses a snapshot given its path relative to `root`; refuses paths that leave
/// the root.
pub fn read_html(root: &Path, relative: &str) -> Result<String, SnapshotError> {
    let path = resolve(root, relative)?;
    let read_err = |source| SnapshotError::Read {
        path: path.clone(),
        source,
    };
    let bytes = std::fs::read(&path).map_err(read_err)?;
    let html = zstd::decode_all(bytes.as_slice()).map_err(read_err)?;
    Ok(String::from_utf8_lossy(&html).into_owned())
}

/// sha256 of a snapshot file as stored, or an error if it cannot be read.
pub fn file_sha256(root: &Path, relative: &str) -> Result<String, SnapshotError> {
    let path = resolve(root, relative)?;
    let bytes = std::fs::read(&path).map_err(|source| SnapshotError::Read { path, source })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// `root/relative`, refusing absolute paths and `..`.
pub fn resolve(root: &Path, relative: &str) -> Result<PathBuf, SnapshotError> {
    let rel = Path::new(relative);
    let safe = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(SnapshotError::OutsideRoot(relative.to_string()));
    }
    Ok(root.join(rel))
}

/// Decodes a PNG screenshot (with decode limits against image bombs) into a small JPEG.
pub fn thumbnail(png: &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(8_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(256 * 1024 * 1024);
    let mut reader = ImageReader::new(Cursor::new(png))
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?;
    reader.limits(limits);
    let thumb = reader.decode()?.thumbnail(THUMB_SIZE.0, THUMB_SIZE.1);
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 80)
        .encode_image(&thumb.to_rgb8())?;
    Ok(jpg)
}

/// Keeps path components to `[A-Za-z0-9._-]`.
fn sanitize(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

/// Where [`write`] puts the thumbnail of the snapshot at `relative`.
pub(crate) fn thumbnail_path_for(relative: &str) -> Option<String> {
    relative
        .strip_suffix(".html.zst")
        .map(|stem| format!("{stem}.thumb.jpg"))
}

/// `yyyy-mm-dd` (UTC) of an epoch-millisecond time.
pub(crate) fn day_of(ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_and_its_hash_matches_the_file() {
        let root = tempfile::tempdir().unwrap();
        let html = "<html><body>lamp</body></html>".repeat(50);
        let meta = write(
            root.path(),
            &SnapshotInput {
                site: "fixture",
                external_id: "123456",
                job_id: "1-000001",
                html: &html,
                http_status: Some(200),
                screenshot: None,
            },
        )
        .unwrap();
        assert!(meta.path.starts_with("fixture/"));
        assert!(meta.path.ends_with("/123456-1-000001.html.zst"));
        assert_eq!(read_html(root.path(), &meta.path).unwrap(), html);
        assert_eq!(file_sha256(root.path(), &meta.path).unwrap(), meta.sha256);
        assert!(meta.bytes < meta.html_bytes);
    }

    #[test]
    fn debug_snapshot_is_kept_once_per_signature_with_its_screenshot() {
        let root = tempfile::tempdir().unwrap();
        let mut png = Vec::new();
        image::RgbImage::new(800, 600)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let kept = write_debug(
            root.path(),
            "fixture",
            "blocked-403",
            "<p>no</p>",
            Some(&png),
        );
        let path = kept.unwrap().expect("first of its kind");
        let thumb = root.path().join("debug/fixture/blocked-403.thumb.jpg");
        let jpeg = image::load_from_memory(&std::fs::read(&thumb).unwrap()).unwrap();
        assert!(jpeg.width() <= THUMB_SIZE.0 && jpeg.height() <= THUMB_SIZE.1);
        assert!(path.ends_with("debug/fixture/blocked-403.html.zst"));
        let again = write_debug(
            root.path(),
            "fixture",
            "blocked-403",
            "<p>x</p>",
            Some(&png),
        );
        assert_eq!(again.unwrap(), None, "one per signature");
        // A screenshot that is not an image still leaves the HTML.
        let bad = write_debug(
            root.path(),
            "fixture",
            "empty-200",
            "<p>e</p>",
            Some(b"junk"),
        );
        assert!(bad.unwrap().is_some());
        assert!(
            !root
                .path()
                .join("debug/fixture/empty-200.thumb.jpg")
                .exists()
        );
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let root = Path::new("/tmp/snaps");
        assert!(resolve(root, "../etc/passwd").is_err());
        assert!(resolve(root, "/etc/passwd").is_err());
        assert!(resolve(root, "fixture/2026-01-01/x.html.zst").is_ok());
    }

    #[test]
    fn full_read_only_and_broken_disks_are_disk_faults_and_other_errors_are_not() {
        let write = |source| SnapshotError::Write {
            path: PathBuf::from("/s/x"),
            source,
        };
        for errno in [28, 5, 30, 122] {
            let e = write(std::io::Error::from_raw_os_error(errno));
            assert!(e.is_disk_fault(), "errno {errno}: {e}");
        }
        let denied = write(std::io::Error::from_raw_os_error(13)); // EACCES
        assert!(!denied.is_disk_fault());
        assert!(!SnapshotError::OutsideRoot("../x".into()).is_disk_fault());
        let full = write(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(full.is_disk_fault());
    }

    #[test]
    fn day_is_utc_calendar_date() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_763_790_000_000), "2025-11-22");
    }
}

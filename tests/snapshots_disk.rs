//! Snapshots on a disk that fails, and what crashes leave behind. A write into a full or
//! read-only filesystem (a 64 KiB tmpfs, filled, then remounted read-only) is a disk fault — the
//! worker halts on it rather than burning attempts — and leaves no temporary file. The real
//! binary's `snapshots verify` lists orphaned files and stray temporary files, and
//! `snapshots gc --orphans --apply` deletes the old ones while keeping recorded files, files
//! young enough to be writes in progress, and debug snapshots.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::{PG_BASE, drop_database, unique};
use scrapefarm::domain::Job;
use scrapefarm::snapshot::inventory::Problem;
use scrapefarm::snapshot::orphans::{self, FileKind, GRACE};
use scrapefarm::snapshot::{self, SnapshotError, SnapshotInput};
use scrapefarm::store::{ListingSave, SnapshotMeta, Store};

/// A small tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `64k`); panics with mount's reason when it cannot (the
    /// tests run as root: an unwritable directory made with chmod would not stop root, so there
    /// is nothing honest to fall back to).
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} (this test needs root or CAP_SYS_ADMIN): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// HTML that zstd cannot shrink much: `n` pseudo-random characters from 64 symbols.
fn incompressible_html(n: usize) -> String {
    let symbols = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let body: String = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            symbols[(state % 64) as usize] as char
        })
        .collect();
    format!("<html><body><p>{body}</p></body></html>")
}

fn input<'a>(external_id: &'a str, job_id: &'a str, html: &'a str) -> SnapshotInput<'a> {
    SnapshotInput {
        site: "fixture",
        external_id,
        job_id,
        html,
        http_status: Some(200),
        screenshot: None,
    }
}

/// Every file (not folder) under `root`.
fn files_in(root: &Path) -> Vec<String> {
    orphans::scan(root)
        .unwrap()
        .into_iter()
        .map(|f| f.relative)
        .collect()
}

#[test]
fn a_full_or_read_only_disk_is_a_disk_fault_and_leaves_no_temporary_file() {
    let disk = Tmpfs::mount("64k");
    let root = disk.path().join("snapshots");
    let small = "<html><body>lamp</body></html>";
    snapshot::write(&root, &input("1", "j1", small)).expect("a small page fits");

    let big = incompressible_html(256 * 1024);
    let full = snapshot::write(&root, &input("2", "j2", &big)).unwrap_err();
    assert!(
        matches!(&full, SnapshotError::Write { source, .. } if source.raw_os_error() == Some(28)),
        "ENOSPC expected: {full}"
    );
    assert!(full.is_disk_fault(), "{full}");
    let left = files_in(&root);
    assert_eq!(
        left.len(),
        1,
        "only the first snapshot, no temporary file: {left:?}"
    );

    disk.remount_read_only();
    let read_only = snapshot::write(&root, &input("3", "j3", small)).unwrap_err();
    assert!(
        matches!(&read_only, SnapshotError::Write { source, .. } if source.raw_os_error() == Some(30)),
        "EROFS expected: {read_only}"
    );
    assert!(read_only.is_disk_fault(), "{read_only}");
    let debug = snapshot::write_debug(&root, "fixture", "blocked-403", small, None).unwrap_err();
    assert!(debug.is_disk_fault(), "{debug}");
    assert_eq!(
        files_in(&root),
        left,
        "nothing written, nothing left behind"
    );
}

/// `snapshot::write` then `Store::save`, as the pipeline does after a page.
async fn record(store: &Store, root: &Path, input: &SnapshotInput<'_>) -> SnapshotMeta {
    let meta = snapshot::write(root, input).unwrap();
    let job = Job {
        id: input.job_id.to_string(),
        site: input.site.to_string(),
        url: format!("http://127.0.0.1:1/item/{}", input.external_id),
        search_id: None,
        run: None,
        published_at: 0,
    };
    let save = ListingSave {
        job: &job,
        external_id: input.external_id,
        attempt: 1,
        worker: "test",
        status: None,
        record: None,
        snapshot: Some(&meta),
        outcome: "content",
        detail: None,
        duration_ms: 1,
    };
    store.save(&save).await.unwrap();
    meta
}

/// Sets a file's modification time `age` into the past.
fn backdate(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// Runs `scrapefarm snapshots <args>` against the database and snapshot root.
fn snapshots_cli(db_url: &str, root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .arg("snapshots")
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("SCRAPEFARM_SNAPSHOT_DIR", root)
        .env_remove("AMQP_URL")
        .output()
        .expect("the scrapefarm binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn verify_lists_orphans_and_stray_temporary_files_and_gc_orphans_deletes_only_old_ones() {
    let name = unique("sf_snapdisk");
    let db_url = format!("{PG_BASE}/{name}");
    let store = Store::connect(&db_url, 2)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    store.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("snapshots");
    let html = "<html><body>a lamp</body></html>".repeat(20);
    let kept = record(&store, &root, &input("100", "j1", &html)).await.path;
    let kept_too = record(&store, &root, &input("200", "j2", &html)).await.path;
    let old = GRACE + Duration::from_secs(3600);
    // A crash between the rename and the row's commit leaves a snapshot no row records.
    let orphan = snapshot::write(&root, &input("300", "j3", &html))
        .unwrap()
        .path;
    backdate(&root.join(&orphan), old);
    let young_orphan = snapshot::write(&root, &input("400", "j4", &html))
        .unwrap()
        .path;
    // A writer killed mid-write leaves its temporary file; a young one may be a live write.
    let day_dir = Path::new(&kept)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let stray = format!("{day_dir}/500-j5.html.zst.tmp-7-00ff00ff00ff00ff-0");
    let young_temp = format!("{day_dir}/600-j6.html.zst.tmp-7-00ff00ff00ff00ff-1");
    for temp in [&stray, &young_temp] {
        std::fs::write(root.join(temp), b"half a snapshot").unwrap();
    }
    backdate(&root.join(&stray), old);
    let debug: PathBuf = snapshot::write_debug(&root, "fixture", "blocked-403", &html, None)
        .unwrap()
        .unwrap();
    backdate(&debug, old);

    let out = snapshots_cli(&db_url, &root, &["verify", "--json"]);
    assert!(!out.status.success(), "verify exits non-zero on problems");
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let problems: Vec<Problem> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(problem_of)
        .collect();
    let orphaned = |path: &str| Problem::Orphaned { path: path.into() };
    assert!(problems.contains(&orphaned(&orphan)), "{problems:?}");
    assert!(problems.contains(&orphaned(&young_orphan)), "{problems:?}");
    let strays: Vec<&Problem> = problems
        .iter()
        .filter(|p| matches!(p, Problem::Stray { .. }))
        .collect();
    assert!(
        matches!(strays.as_slice(), [Problem::Stray { path, age_secs }] if *path == stray && *age_secs >= GRACE.as_secs()),
        "only the old temporary file is stray: {problems:?}"
    );
    assert_eq!(
        problems.len(),
        3,
        "recorded files and debug snapshots are fine: {problems:?}"
    );

    let dry = snapshots_cli(&db_url, &root, &["gc", "--orphans"]);
    let text = stdout(&dry);
    assert!(dry.status.success(), "{text}");
    assert!(
        text.contains("Would delete 1 orphaned files and 1 stray temporary files")
            && text.contains("2 younger kept"),
        "{text}"
    );
    assert!(
        root.join(&orphan).exists() && root.join(&stray).exists(),
        "a dry run"
    );

    let applied = snapshots_cli(&db_url, &root, &["gc", "--orphans", "--apply"]);
    let text = stdout(&applied);
    assert!(
        applied.status.success() && text.contains("Deleted 2 files."),
        "{text}"
    );
    assert!(!root.join(&orphan).exists() && !root.join(&stray).exists());
    for path in [&kept, &kept_too, &young_orphan, &young_temp] {
        assert!(root.join(path).exists(), "{path} is kept");
    }
    assert!(debug.exists(), "debug snapshots are never orphans");
    let kinds = orphans::scan(&root).unwrap();
    assert_eq!(
        kinds
            .iter()
            .filter(|f| f.kind == FileKind::Recordable)
            .count(),
        3
    );

    let after = snapshots_cli(&db_url, &root, &["verify"]);
    let text = stdout(&after);
    assert!(
        text.contains("0 missing, 0 corrupt, 1 orphaned, 0 stray temporary."),
        "only the young orphan remains: {text}"
    );
    store.close().await;
    drop_database(&name).await;
}

/// A `verify --json` problem back into its type (it serialises with a `kind` tag).
fn problem_of(value: &serde_json::Value) -> Problem {
    let path = value["path"].as_str().unwrap_or_default().to_string();
    match value["kind"].as_str() {
        Some("orphaned") => Problem::Orphaned { path },
        Some("stray") => Problem::Stray {
            path,
            age_secs: value["age_secs"].as_u64().unwrap(),
        },
        Some("missing") => Problem::Missing {
            id: value["id"].as_i64().unwrap(),
            path,
        },
        _ => Problem::Corrupt {
            id: value["id"].as_i64().unwrap_or_default(),
            path,
            reason: value.to_string(),
        },
    }
}

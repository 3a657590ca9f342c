//! `scrapefarm snapshots ls/show/stats/verify/gc` against real stores: every test body runs once
//! on a fresh PostgreSQL database (127.0.0.1:5432) and once on a SQLite file, over snapshots written
//! by `snapshot::write` and recorded by `Store::save`, as the pipeline does.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{CommandFactory, Parser};
use scrapefarm::domain::Job;
use scrapefarm::snapshot::inventory::{DAY_MS, Problem, SnapshotEntry, SnapshotFilter};
use scrapefarm::snapshot::{self, SnapshotInput, SnapshotsCommand, inventory};
use scrapefarm::store::{ListingSave, SnapshotMeta, Store, Table, now_ms};
use serde_json::Value;

const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";

#[derive(Debug, Clone, Copy)]
enum Backend {
    Postgres,
    Sqlite,
}

/// The `snapshots` arguments as the binary parses them.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    cmd: SnapshotsCommand,
}

fn parse(args: &[&str]) -> Result<SnapshotsCommand, clap::Error> {
    Args::try_parse_from(std::iter::once("snapshots").chain(args.iter().copied())).map(|a| a.cmd)
}

/// One seeded snapshot.
struct Seeded {
    id: i64,
    html: String,
    path: String,
    thumb: Option<String>,
}

/// A store and a snapshot root holding four snapshots: `a` fixture/100 captured 40 days ago, with
/// a thumbnail; `b` fixture/100 and `c` fixture/200, both one day ago; `d` ebay/300 50 days ago,
/// the only snapshot of its listing.
struct Bench {
    store: Store,
    dir: tempfile::TempDir,
    pg_name: Option<String>,
    a: Seeded,
    b: Seeded,
    c: Seeded,
    d: Seeded,
}

impl Bench {
    async fn start(backend: Backend) -> Bench {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("sf_snapshots_{}_{seq}_{}", std::process::id(), now_ms());
        let (url, pg_name) = match backend {
            Backend::Postgres => (format!("{PG_BASE}/{name}"), Some(name)),
            Backend::Sqlite => {
                let file = dir.path().join("farm.db");
                (format!("sqlite://{}?mode=rwc", file.display()), None)
            }
        };
        let store = Store::connect(&url, 4)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup.sh)");
        store.migrate().await.unwrap();
        let root = dir.path().join("snapshots");
        let now = now_ms();
        let seed = |site, id, job, png: bool, days: i64| {
            seed(&store, &root, site, id, job, png, now - days * DAY_MS)
        };
        let a = seed("fixture", "100", "j1", true, 40).await;
        let b = seed("fixture", "100", "j2", false, 1).await;
        let c = seed("fixture", "200", "j3", false, 1).await;
        let d = seed("ebay", "300", "j4", false, 50).await;
        Bench {
            store,
            dir,
            pg_name,
            a,
            b,
            c,
            d,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("snapshots")
    }

    /// Runs `scrapefarm snapshots <args>`: (healthy, output).
    async fn run(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let mut out = Vec::new();
        let healthy = snapshot::run(&parse(args)?, &self.store, &self.root(), &mut out).await?;
        Ok((healthy, String::from_utf8(out).unwrap()))
    }

    /// The output of a command that must succeed.
    async fn out(&self, args: &[&str]) -> String {
        self.run(args).await.unwrap().1
    }

    /// The error of a command that must fail.
    async fn fails(&self, args: &[&str]) -> String {
        self.run(args).await.unwrap_err().to_string()
    }

    async fn ls_ids(&self, args: &[&str]) -> Vec<i64> {
        let out = self.out(&[&["ls", "--json"], args].concat()).await;
        let entry = |line: &str| serde_json::from_str::<SnapshotEntry>(line).unwrap();
        out.lines().map(|line| entry(line).id).collect()
    }

    async fn entries(&self) -> Vec<SnapshotEntry> {
        let filter = SnapshotFilter::default();
        self.store.snapshot_entries(&filter).await.unwrap()
    }

    fn all(&self) -> [&Seeded; 4] {
        [&self.a, &self.b, &self.c, &self.d]
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some(name) = self.pg_name {
            use sqlx::Connection;
            let url = format!("{PG_BASE}/postgres");
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\"");
            let drop = sqlx::query(sqlx::AssertSqlSafe(sql));
            drop.execute(&mut conn).await.unwrap();
        }
    }
}

/// Writes a snapshot, records it, and backdates its row to `captured_at`.
async fn seed(
    store: &Store,
    root: &Path,
    site: &str,
    external_id: &str,
    job_id: &str,
    with_screenshot: bool,
    captured_at: i64,
) -> Seeded {
    let html = format!("<html><body><h1>{site} {external_id} {job_id}</h1>")
        + &"<p>a lamp in fine condition</p>".repeat(200)
        + "</body></html>";
    let png = with_screenshot.then(test_png);
    let input = SnapshotInput {
        site,
        external_id,
        job_id,
        html: &html,
        http_status: Some(200),
        screenshot: png.as_deref(),
    };
    let meta = record(store, root, &input).await;
    sqlx::query("UPDATE snapshots SET captured_at = $1 WHERE path = $2")
        .bind(captured_at)
        .bind(&meta.path)
        .execute(store.pool())
        .await
        .unwrap();
    let entry = store.snapshot_entry_at(&meta.path).await.unwrap().unwrap();
    Seeded {
        id: entry.id,
        html,
        path: meta.path,
        thumb: meta.screenshot_path,
    }
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

fn test_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut png = Vec::new();
    let format = image::ImageFormat::Png;
    image.write_to(&mut Cursor::new(&mut png), format).unwrap();
    png
}

/// `YYYY-MM-DD` (UTC) of an epoch-millisecond time.
fn utc_day(ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap()
        .date();
    let (year, month, day) = (date.year(), u8::from(date.month()), date.day());
    format!("{year:04}-{month:02}-{day:02}")
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn ls_filters_by_site_listing_and_since(backend: Backend) {
    let bench = Bench::start(backend).await;
    let (a, b, c, d) = (bench.a.id, bench.b.id, bench.c.id, bench.d.id);
    let all = bench.ls_ids(&[]).await;
    assert_eq!(all.len(), 4);
    assert_eq!((all[0], all[1]), (d, a), "oldest first");
    assert_eq!(bench.ls_ids(&["--site", "ebay"]).await, vec![d]);
    assert_eq!(bench.ls_ids(&["--listing", "100"]).await, vec![a, b]);
    let none = bench.ls_ids(&["--site", "ebay", "--listing", "100"]).await;
    assert!(none.is_empty());
    let since = utc_day(now_ms() - 2 * DAY_MS);
    let mut recent = bench.ls_ids(&["--since", &since]).await;
    recent.sort();
    assert_eq!(recent, vec![b.min(c), b.max(c)]);
    let out = bench.out(&["ls", "--json", "--listing", "300"]).await;
    let entry: SnapshotEntry = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (entry.site.as_str(), entry.external_id.as_str()),
        ("ebay", "300")
    );
    assert_eq!(
        (entry.path, entry.http_status),
        (bench.d.path.clone(), Some(200))
    );
    let text = bench.out(&["ls", "--site", "fixture"]).await;
    assert!(
        text.contains(&bench.a.path) && text.ends_with("3 snapshots.\n"),
        "{text}"
    );
    assert!(bench.run(&["ls", "--since", "2026-02-30"]).await.is_err());
    bench.finish().await;
}

async fn show_round_trips_html_by_id_and_by_path_and_refuses_escapes(backend: Backend) {
    let bench = Bench::start(backend).await;
    let b = &bench.b;
    assert_eq!(bench.out(&["show", &b.id.to_string()]).await, b.html);
    assert_eq!(bench.out(&["show", &b.path]).await, b.html);
    let with_root = bench.root().join(&b.path);
    assert_eq!(bench.out(&["show", arg(&with_root)]).await, b.html);

    let file = bench.dir.path().join("page.html");
    let out = bench
        .out(&["show", &b.id.to_string(), "--open", arg(&file)])
        .await;
    assert!(out.starts_with("Wrote "), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), b.html);

    for escape in ["../x", "../../etc/passwd", "/etc/passwd", "fixture/../../x"] {
        let err = bench.fails(&["show", escape]).await;
        assert!(err.contains("outside the snapshot root"), "{escape}: {err}");
    }
    assert!(
        bench
            .fails(&["show", "999999"])
            .await
            .contains("No snapshot")
    );
    bench.finish().await;
}

async fn show_writes_the_thumbnail_jpeg(backend: Backend) {
    let bench = Bench::start(backend).await;
    let a = &bench.a;
    let file = bench.dir.path().join("thumb.jpg");
    let out = bench
        .out(&["show", &a.id.to_string(), "--screenshot", arg(&file)])
        .await;
    assert!(out.starts_with("Wrote the thumbnail"), "{out}");
    let written = std::fs::read(&file).unwrap();
    let stored = bench.root().join(a.thumb.as_ref().unwrap());
    assert_eq!(written, std::fs::read(stored).unwrap());
    assert_eq!(&written[..2], &[0xFF, 0xD8], "a JPEG");
    let decoded = image::load_from_memory(&written).unwrap();
    assert!(decoded.width() <= 320 && decoded.height() <= 240);
    // By path too; with --open the HTML goes to its file as well.
    let page = bench.dir.path().join("a.html");
    bench
        .out(&[
            "show",
            &a.path,
            "--screenshot",
            arg(&file),
            "--open",
            arg(&page),
        ])
        .await;
    assert_eq!(std::fs::read_to_string(&page).unwrap(), a.html);
    let err = bench
        .fails(&["show", &bench.b.id.to_string(), "--screenshot", arg(&file)])
        .await;
    assert!(err.contains("has no screenshot"), "{err}");
    bench.finish().await;
}

async fn stats_count_bytes_per_site_and_day_and_compression_pays(backend: Backend) {
    let bench = Bench::start(backend).await;
    let out = bench.out(&["stats", "--json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let entries = bench.entries().await;
    let day_of = |s: &Seeded| utc_day(entries.iter().find(|e| e.id == s.id).unwrap().captured_at);
    assert_eq!(day_of(&bench.b), day_of(&bench.c));
    let expected = [
        ("fixture", day_of(&bench.b), 2),
        ("fixture", day_of(&bench.a), 1),
    ];
    assert_eq!(rows.len(), 3, "{out}");
    for (site, day, count) in expected.into_iter().chain([("ebay", day_of(&bench.d), 1)]) {
        let row = rows
            .iter()
            .find(|r| r["site"] == site && r["day"] == day.as_str());
        let row = row.unwrap_or_else(|| panic!("{site} {day} in {out}"));
        let members = entries
            .iter()
            .filter(|e| e.site == site && utc_day(e.captured_at) == day);
        let (n, bytes, html) = members.fold((0, 0, 0), |(n, b, h), e| {
            (n + 1, b + e.bytes, h + e.html_bytes)
        });
        assert_eq!((row["count"].as_i64(), n), (Some(count), count));
        assert_eq!(
            (row["bytes"].as_i64(), row["html_bytes"].as_i64()),
            (Some(bytes), Some(html))
        );
        assert!(row["ratio"].as_f64().unwrap() > 1.0, "{row}");
    }
    let total = &report["total"];
    assert_eq!(total["count"], 4);
    let size = |s: &&Seeded| std::fs::metadata(bench.root().join(&s.path)).unwrap().len();
    let on_disk: u64 = bench.all().iter().map(size).sum();
    let html: usize = bench.all().iter().map(|s| s.html.len()).sum();
    assert_eq!(total["bytes"].as_u64(), Some(on_disk));
    assert_eq!(total["html_bytes"].as_u64(), Some(html as u64));
    let ratio = total["ratio"].as_f64().unwrap();
    assert!((ratio - html as f64 / on_disk as f64).abs() < 1e-9 && ratio > 1.0);
    let text = bench.out(&["stats"]).await;
    assert!(text.lines().any(|l| l.starts_with("ebay")), "{text}");
    bench.finish().await;
}

async fn verify_reports_missing_corrupt_and_orphaned_files(backend: Backend) {
    let bench = Bench::start(backend).await;
    let root = bench.root();
    let (healthy, out) = bench.run(&["verify"]).await.unwrap();
    assert!(
        healthy && out.contains("0 missing, 0 corrupt, 0 orphaned"),
        "{out}"
    );

    std::fs::remove_file(root.join(&bench.b.path)).unwrap();
    std::fs::remove_file(root.join(bench.a.thumb.as_ref().unwrap())).unwrap();
    let mut tampered = std::fs::read(root.join(&bench.c.path)).unwrap();
    tampered[20] ^= 0xFF;
    std::fs::write(root.join(&bench.c.path), &tampered).unwrap();
    // A file whose recorded hash matches but that is not zstd.
    std::fs::write(root.join(&bench.d.path), b"not zstd at all").unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"not zstd at all"));
    sqlx::query("UPDATE snapshots SET sha256 = $1 WHERE id = $2")
        .bind(sha)
        .bind(bench.d.id)
        .execute(bench.store.pool())
        .await
        .unwrap();
    std::fs::write(root.join("fixture/stray.html.zst"), b"x").unwrap();
    // Writes in progress and debug snapshots are not orphans.
    std::fs::write(root.join("fixture/half.html.tmp4242"), b"x").unwrap();
    std::fs::create_dir_all(root.join("debug/fixture")).unwrap();
    std::fs::write(root.join("debug/fixture/blocked.html.zst"), b"x").unwrap();

    let (healthy, out) = bench.run(&["verify", "--json"]).await.unwrap();
    assert!(!healthy, "{out}");
    let report = inventory::verify(&root, &bench.entries().await).unwrap();
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        serde_json::from_str::<Value>(&out).unwrap()
    );
    assert_eq!((report.checked, report.counts()), (4, (2, 2, 1)), "{out}");
    let (b, a_thumb) = (bench.b.path.clone(), bench.a.thumb.clone().unwrap());
    assert!(report.problems.contains(&Problem::Missing {
        id: bench.b.id,
        path: b
    }));
    assert!(report.problems.contains(&Problem::Missing {
        id: bench.a.id,
        path: a_thumb
    }));
    let stray = "fixture/stray.html.zst".to_string();
    assert!(report.problems.contains(&Problem::Orphaned { path: stray }));
    let corrupt = |id: i64, why: &str| {
        report.problems.iter().any(|p| {
            matches!(p, Problem::Corrupt { id: i, reason, .. } if *i == id && reason.contains(why))
        })
    };
    assert!(
        corrupt(bench.c.id, "sha256") && corrupt(bench.d.id, "zstd"),
        "{out}"
    );
    let text = bench.out(&["verify"]).await;
    assert!(text.contains("2 missing, 2 corrupt, 1 orphaned"), "{text}");
    assert!(
        text.contains(&format!("missing   #{} {}", bench.b.id, bench.b.path)),
        "{text}"
    );
    bench.finish().await;
}

async fn gc_dry_runs_by_default_then_deletes_files_and_rows(backend: Backend) {
    let bench = Bench::start(backend).await;
    let root = bench.root();
    let exists = |s: &Seeded| root.join(&s.path).exists();

    let (healthy, out) = bench.run(&["gc", "--older-than", "30"]).await.unwrap();
    assert!(healthy && out.contains("Would delete 2 snapshots"), "{out}");
    assert!(
        out.contains(&bench.a.path) && out.contains(&bench.d.path),
        "{out}"
    );
    assert!(
        !out.contains(&bench.b.path) && !out.contains(&bench.c.path),
        "{out}"
    );
    assert!(out.contains("Dry run: nothing deleted."), "{out}");
    assert_eq!(bench.store.count(Table::Snapshots).await.unwrap(), 4);
    assert!(bench.all().iter().all(|s| exists(s)));

    // ebay/300's only snapshot is old, but it is its listing's newest.
    let out = bench
        .out(&["gc", "--older-than", "30", "--keep-latest"])
        .await;
    assert!(
        out.contains("Would delete 1 snapshots") && out.contains("1 kept"),
        "{out}"
    );
    assert!(!out.contains(&bench.d.path), "{out}");

    let (healthy, out) = bench
        .run(&["gc", "--older-than", "30", "--keep-latest", "--apply"])
        .await
        .unwrap();
    assert!(
        healthy && out.contains("Deleted 1 rows and 2 files."),
        "{out}"
    );
    assert!(!exists(&bench.a) && !root.join(bench.a.thumb.as_ref().unwrap()).exists());
    assert!(exists(&bench.b) && exists(&bench.c) && exists(&bench.d));
    let ids: Vec<i64> = bench.entries().await.iter().map(|e| e.id).collect();
    assert!(!ids.contains(&bench.a.id) && ids.len() == 3);
    let (clean, out) = bench.run(&["verify"]).await.unwrap();
    assert!(clean, "gc leaves no orphans and no dangling rows: {out}");

    let out = bench.out(&["gc", "--older-than", "30", "--apply"]).await;
    assert!(out.contains("Deleted 1 rows and 1 files."), "{out}");
    assert!(
        !exists(&bench.d) && !root.join("ebay").exists(),
        "emptied folders go too"
    );
    assert_eq!(bench.store.count(Table::Snapshots).await.unwrap(), 2);
    assert_eq!(
        bench.store.count(Table::Listings).await.unwrap(),
        3,
        "listings stay"
    );
    assert!(bench.run(&["verify"]).await.unwrap().0);
    bench.finish().await;
}

#[test]
fn snapshots_arguments_are_consistent_beside_the_global_flags() {
    #[derive(Debug, Parser)]
    struct Full {
        #[command(flatten)]
        common: scrapefarm::cli::Common,
        #[command(subcommand)]
        cmd: SnapshotsCommand,
    }
    Full::command().debug_assert();
    let args = [
        "x",
        "gc",
        "--older-than",
        "30",
        "--keep-latest",
        "--snapshot-dir",
        "/data/s",
    ];
    let parsed = Full::try_parse_from(args).unwrap();
    assert_eq!(parsed.common.snapshot_dir, Path::new("/data/s"));
    let gc = SnapshotsCommand::Gc {
        older_than: Some(30),
        keep_latest: true,
        orphans: false,
        apply: false,
    };
    assert_eq!(format!("{:?}", parsed.cmd), format!("{gc:?}"));
    assert!(
        parse(&["gc"]).is_err(),
        "--older-than or --orphans is required"
    );
    assert!(parse(&["gc", "--orphans", "--keep-latest"]).is_err());
    assert!(parse(&["gc", "--orphans", "--apply"]).is_ok());
}

/// Figures for the report: `SNAPSHOT_COUNT=1000 cargo test --test snapshots_cli -- --ignored
/// --nocapture` (the real eBay item pages in /work/shared/realworld, on SQLite).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn measure_verify_and_stats_over_real_ebay_pages() {
    let dir = Path::new("/work/shared/realworld/ebay/item");
    let Ok(listing) = std::fs::read_dir(dir) else {
        println!("skipped: no saved pages at {}", dir.display());
        return;
    };
    let read = |f: std::io::Result<std::fs::DirEntry>| std::fs::read_to_string(f.ok()?.path()).ok();
    let pages: Vec<String> = listing.filter_map(read).collect();
    let n: usize = std::env::var("SNAPSHOT_COUNT").map_or(1000, |v| v.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", tmp.path().join("m.db").display());
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let root = tmp.path().join("snapshots");
    let started = std::time::Instant::now();
    for i in 0..n {
        let (external_id, job_id) = ((100_000 + i % 500).to_string(), format!("m{i}"));
        let html = &pages[i % pages.len()];
        let input = SnapshotInput {
            site: "ebay",
            external_id: &external_id,
            job_id: &job_id,
            html,
            http_status: Some(200),
            screenshot: None,
        };
        record(&store, &root, &input).await;
    }
    let write = started.elapsed();
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    let verify = parse(&["verify"]).unwrap();
    assert!(
        snapshot::run(&verify, &store, &root, &mut out)
            .await
            .unwrap()
    );
    let verify = t.elapsed();
    let t = std::time::Instant::now();
    let counts = store.snapshot_day_counts().await.unwrap();
    let total = inventory::StatsReport::from_counts(&counts).total;
    let stats = t.elapsed();
    println!(
        "{n} snapshots of {} real pages: write+save {write:?}, verify {verify:?}, stats {stats:?}; \
         {} HTML bytes stored in {} bytes, ratio {:.1}",
        pages.len(),
        total.html_bytes,
        total.bytes,
        total.ratio
    );
}

/// Runs each named test body on PostgreSQL and on SQLite.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_postgres() {
                super::$name(super::Backend::Postgres).await;
            }

            #[tokio::test]
            async fn on_sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }
        }
    )*};
}

on_both_backends!(
    ls_filters_by_site_listing_and_since,
    show_round_trips_html_by_id_and_by_path_and_refuses_escapes,
    show_writes_the_thumbnail_jpeg,
    stats_count_bytes_per_site_and_day_and_compression_pays,
    verify_reports_missing_corrupt_and_orphaned_files,
    gc_dry_runs_by_default_then_deletes_files_and_rows,
);

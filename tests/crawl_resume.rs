//! The embedded default end to end through the real binary: `crawl` is SIGKILLed midway and run
//! again; the store ends equal to the ground truth, with no duplicate rows, no listing rendered
//! again after it was stored, and no Chromium left behind; the resumed search ends `done`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::assert_matches_truth;
use scrapefarm::fixture_site::{FixtureConfig, FixtureSite};
use scrapefarm::report::ListingJson;
use scrapefarm::store::{ListingFilter, Store};

fn crawl_command(dir: &Path, base_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
    cmd.args([
        "crawl",
        "--site",
        "fixture",
        "--query",
        "lamp",
        "--max-pages",
        "10",
    ])
    .args(["--concurrency", "4"])
    .env_remove("DATABASE_URL")
    .env_remove("AMQP_URL")
    .env("SCRAPEFARM_DATA_DIR", dir)
    .env("SCRAPEFARM_PROFILE_DIR", dir.join("profiles"))
    .env("SCRAPEFARM_SNAPSHOT_DIR", dir.join("snapshots"))
    .env(
        "SCRAPEFARM_SITES_DIR",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
    )
    .env("SCRAPEFARM_BASE_URL", base_url)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

async fn stored(store: &Store) -> usize {
    let rows = store
        .listings(&ListingFilter::default())
        .await
        .unwrap_or_default();
    rows.iter().filter(|r| r.status != "pending").count()
}

fn chromium_on(profile_root: &Path) -> usize {
    let needle = profile_root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(&needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_crawl_resumes_and_ends_equal_to_ground_truth() {
    assert!(
        common::chrome().exists(),
        "Chromium missing: run scripts/setup.sh"
    );
    let fixture = FixtureSite::start(FixtureConfig::default(), 0)
        .await
        .unwrap();
    let truth = fixture.ground_truth("lamp");
    let dir = tempfile::tempdir().unwrap();
    let mut first = crawl_command(dir.path(), &fixture.base_url())
        .spawn()
        .unwrap();

    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("scrapefarm.db").display()
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let store = loop {
        if let Ok(store) = Store::connect(&db, 2).await
            && stored(&store).await >= 40
        {
            break store;
        }
        assert!(
            Instant::now() < deadline,
            "the first crawl stored 40 listings within 3 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    first.kill().unwrap(); // SIGKILL: no cleanup of any kind
    first.wait().unwrap();
    // The killed crawl's search says so, and how to resume it.
    let listed = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .arg("searches")
        .env_remove("DATABASE_URL")
        .env("SCRAPEFARM_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("interrupted"), "{text}");
    assert!(
        text.contains("resume it with `scrapefarm crawl --resume 1`"),
        "{text}"
    );
    let stored_at_kill = stored(&store).await;
    assert!(
        stored_at_kill < truth.len(),
        "killed midway ({stored_at_kill} stored)"
    );

    let status = crawl_command(dir.path(), &fixture.base_url())
        .status()
        .unwrap();
    assert!(status.success(), "the resumed crawl exits 0");

    let rows = store.listings(&ListingFilter::default()).await.unwrap();
    assert_eq!(
        rows.len(),
        truth.len(),
        "one row per listing, no duplicates"
    );
    // The second crawl resumed the first one's search (its own: same arguments, same data
    // directory) and finished it, every job settled.
    let searches = store.searches().await.unwrap();
    assert_eq!(
        searches.len(),
        1,
        "resumed, not started again: {searches:?}"
    );
    assert_eq!(searches[0].status, "done", "{searches:?}");
    let jobs = store.search_outcomes(searches[0].id).await.unwrap();
    assert_eq!(jobs.pending, 0, "{jobs:?}");
    assert_eq!(jobs.settled(), truth.len() as i64, "{jobs:?}");
    let by_id: HashMap<String, ListingJson> = rows
        .into_iter()
        .map(|r| (r.external_id.clone(), ListingJson::from_row(r, None)))
        .collect();
    for t in &truth {
        assert_matches_truth(&by_id[&t.external_id], t);
    }
    // Each listing was stored by exactly one attempt: nothing was rendered again once stored.
    let stored_attempts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.external_id, COUNT(*) FROM attempts a JOIN listings l ON l.id = a.listing_id \
         WHERE a.outcome IN ('content', 'ended', 'gone') GROUP BY l.external_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(stored_attempts.len(), truth.len());
    for (id, n) in &stored_attempts {
        assert_eq!(*n, 1, "listing {id} stored {n} times");
    }
    // At most the pages in flight at the kill were rendered twice.
    let pages = fixture.counters().listing_pages as usize;
    assert!(
        pages <= truth.len() + 8,
        "{pages} listing pages served for {} listings",
        truth.len()
    );
    assert_eq!(
        chromium_on(&dir.path().join("profiles")),
        0,
        "no Chromium left on the profile"
    );
    store.close().await;
    fixture.stop().await;
}

//! Bot defences end to end: the fixture marketplace challenges half the listing pages, rate-limits
//! to 10 requests/s, serves captcha blocks (5%, 10 s cooldown per identity) and random 503s (5%);
//! in API mode the same defences (but the challenge) also answer the data API each listing page
//! fills itself from, and captchas use a bot vendor's wording. Two workers of concurrency 4 must
//! still store every retrievable listing exactly once, politely.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Farm, assert_matches_truth};
use scrapefarm::fixture_site::{Counters, Defences, FixtureConfig};
use scrapefarm::queue::Queue;
use scrapefarm::telemetry::Stats;

/// Two workers of 4 tabs over 160 listings under `defences`: every listing stored once and
/// right, the queues drained, ≤ 0.1 429s per stored listing. Returns the fixture's counters and
/// the workers' stats.
async fn two_workers_store_every_listing(defences: Defences) -> (Farm, Counters, [Arc<Stats>; 2]) {
    let config = FixtureConfig {
        listings_per_query: 160,
        defences,
        ..FixtureConfig::default()
    };
    let farm = Farm::start(config).await;
    let truth = farm.fixture.ground_truth("lamp");
    assert!(truth.len() >= 150);
    let report = farm.enqueue("lamp", 20).await;
    assert_eq!(report.jobs_published, truth.len());

    let idle = Duration::from_secs(6);
    let (a, b) = tokio::join!(
        farm.work("hostile-1", 4, idle),
        farm.work("hostile-2", 4, idle)
    );
    eprintln!("worker 1: {a}\nworker 2: {b}");

    let rows = farm.stored_listings().await;
    assert_eq!(rows.len(), truth.len(), "one row per listing");
    for t in &truth {
        assert_matches_truth(&rows[&t.external_id], t);
    }
    let depths = farm.queue.depths().await.unwrap();
    assert_eq!(
        (depths.ready, depths.retrying, depths.dead),
        (0, 0, 0),
        "queues drained"
    );
    let counters = farm.fixture.counters();
    let stored = truth.iter().filter(|t| t.status != "gone").count();
    eprintln!("fixture counters: {counters:?}");
    assert!(
        counters.challenges > 0 && counters.captchas > 0 && counters.server_errors > 0,
        "the defences fired: {counters:?}"
    );
    let per_listing = counters.rate_limited as f64 / stored as f64;
    assert!(
        per_listing <= 0.1,
        "{} 429s for {stored} stored listings ({per_listing:.3} each)",
        counters.rate_limited
    );
    (farm, counters, [a, b])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_store_every_listing_through_challenges_rate_limits_blocks_and_errors() {
    let (farm, _, [a, b]) = two_workers_store_every_listing(Defences::hostile_pages()).await;
    // Failures left one debug snapshot per kind (outcome + status), not one per page.
    let debug: Vec<String> = std::fs::read_dir(farm.snapshots().join("debug").join("fixture"))
        .expect("a debug folder beside the snapshots")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let failures = a.retried.load(Ordering::Relaxed) + b.retried.load(Ordering::Relaxed);
    eprintln!("debug snapshots: {debug:?} for {failures} failed attempts");
    assert!(
        !debug.is_empty() && (debug.len() as u64) < failures,
        "{debug:?} vs {failures}"
    );
    assert!(
        debug.iter().any(|f| f == "blocked-403.html.zst"),
        "{debug:?}"
    );
    // Each kept failure has its screenshot beside it, as a JPEG thumbnail.
    let html: Vec<&String> = debug.iter().filter(|f| f.ends_with(".html.zst")).collect();
    assert!((html.len() as u64) < failures, "{html:?} vs {failures}");
    let thumb = farm.snapshots().join("debug/fixture/blocked-403.thumb.jpg");
    let jpeg = std::fs::read(&thumb).expect("the blocked page's screenshot is kept");
    let picture = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
        .expect("the debug thumbnail is a JPEG");
    assert!(picture.width() > 0 && picture.width() <= 640);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_api_mode_failed_data_requests_are_classified_at_once_and_paced() {
    let (farm, counters, [a, b]) = two_workers_store_every_listing(Defences::hostile()).await;
    assert!(
        counters.api_calls >= 150,
        "the listing pages filled themselves from the data API: {counters:?}"
    );
    // A failed data request shows the page's error state at once: the attempt log names the
    // request and its status, so `failures` says what the site answered.
    let details: Vec<(String, String)> = sqlx::query_as(
        "SELECT outcome, detail FROM attempts WHERE detail LIKE '%its data request%'",
    )
    .fetch_all(farm.store.pool())
    .await
    .unwrap();
    eprintln!("data request failures: {}", details.len());
    assert!(
        details
            .iter()
            .any(|(outcome, d)| outcome == "server_error" && d.contains("answered 503")),
        "{details:?}"
    );
    // A vendor-worded captcha (its heading is a built-in challenge marker) is a block, never a
    // challenge waited on: no attempt was classified a challenge after waiting out its 10 s.
    let slow_challenges: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM attempts WHERE outcome = 'challenge' AND duration_ms >= 9000",
    )
    .fetch_one(farm.store.pool())
    .await
    .unwrap();
    assert_eq!(slow_challenges, 0, "no captcha waited on as a challenge");
    let blocked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE outcome = 'blocked'")
            .fetch_one(farm.store.pool())
            .await
            .unwrap();
    assert!(blocked > 0, "captchas were seen as blocks");
    let retried = a.retried.load(Ordering::Relaxed) + b.retried.load(Ordering::Relaxed);
    eprintln!("retried attempts: {retried}");
    farm.cleanup().await;
}

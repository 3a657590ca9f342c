//! Bot defences end to end: the fixture marketplace challenges half the listing pages, rate-limits
//! to 10 requests/s, serves captcha blocks (5%, 10 s cooldown per identity) and random 503s (5%).
//! Two workers of concurrency 4 must still store every retrievable listing exactly once, politely.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Farm, assert_matches_truth};
use scrapefarm::fixture_site::{Defences, FixtureConfig};
use scrapefarm::queue::Queue;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_store_every_listing_through_challenges_rate_limits_blocks_and_errors() {
    let config = FixtureConfig {
        listings_per_query: 160,
        defences: Defences {
            challenge_rate: 0.5,
            rate_limit_rps: Some(10),
            captcha_rate: 0.05,
            captcha_cooldown_secs: 10,
            error_rate: 0.05,
        },
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
        per_listing < 0.1,
        "{} 429s for {stored} stored listings ({per_listing:.3} each)",
        counters.rate_limited
    );
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

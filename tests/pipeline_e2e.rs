//! End to end on real components: the fixture marketplace, RabbitMQ, headless Chromium and
//! PostgreSQL. A search is collected, a worker drains the queue, and every row is compared with the
//! fixture's ground truth field by field.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Backend, Farm, assert_matches_truth};
use scrapefarm::fixture_site::FixtureConfig;
use scrapefarm::queue::Queue;
use scrapefarm::report::ListingJson;
use scrapefarm::snapshot;
use scrapefarm::store::{ListingFilter, Table};

async fn stored_listings(farm: &Farm) -> HashMap<String, ListingJson> {
    let rows = farm
        .store
        .listings(&ListingFilter::default())
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| (row.external_id.clone(), ListingJson::from_row(row, None)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_is_stored_equal_to_ground_truth_and_a_rerun_adds_price_history_on_postgres_and_rabbitmq()
 {
    search_is_stored_equal_to_ground_truth_and_a_rerun_adds_price_history(Backend::Served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_is_stored_equal_to_ground_truth_and_a_rerun_adds_price_history_on_the_embedded_default()
 {
    search_is_stored_equal_to_ground_truth_and_a_rerun_adds_price_history(Backend::Embedded).await;
}

async fn search_is_stored_equal_to_ground_truth_and_a_rerun_adds_price_history(backend: Backend) {
    let farm = Farm::start_on(backend, FixtureConfig::default()).await;
    let truth = farm.fixture.ground_truth("lamp");
    assert!(truth.len() >= 150, "fixture gives {} listings", truth.len());
    assert!(truth.iter().any(|t| t.status == "gone") && truth.iter().any(|t| t.status == "ended"));

    let report = farm.enqueue("lamp", 20).await;
    assert_eq!(report.listings_found, truth.len());
    assert_eq!(report.jobs_published, truth.len());
    let stats = farm.work("worker-e2e", 4, Duration::from_secs(3)).await;
    eprintln!("{stats}");

    let rows = stored_listings(&farm).await;
    assert_eq!(rows.len(), truth.len(), "one row per listing");
    for t in &truth {
        assert_matches_truth(&rows[&t.external_id], t);
    }
    let stored: Vec<&ListingJson> = rows.values().filter(|r| r.status != "gone").collect();
    // One snapshot per stored listing, whose file hashes to the recorded sha256.
    let snapshots = farm.store.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), stored.len());
    for snap in &snapshots {
        let sha = snapshot::file_sha256(&farm.snapshots(), &snap.path).unwrap();
        assert_eq!(sha, snap.sha256, "{}", snap.path);
        let html = snapshot::read_html(&farm.snapshots(), &snap.path).unwrap();
        assert!(
            html.contains("data-ready"),
            "{} holds the rendered page",
            snap.path
        );
    }
    for row in &stored {
        assert!(row.snapshot.is_some(), "{} has a snapshot", row.external_id);
    }
    assert_eq!(
        farm.store.count(Table::PriceObservations).await.unwrap(),
        stored.len() as i64
    );
    let depths = farm.queue.depths().await.unwrap();
    assert_eq!((depths.ready, depths.retrying, depths.dead), (0, 0, 0));

    // The same search again: no duplicate listings, a second price observation for each.
    let again = farm.enqueue("lamp", 20).await;
    assert_eq!(again.jobs_published, truth.len());
    farm.work("worker-e2e", 4, Duration::from_secs(3)).await;
    assert_eq!(
        farm.store.count(Table::Listings).await.unwrap(),
        truth.len() as i64
    );
    assert_eq!(
        farm.store.count(Table::PriceObservations).await.unwrap(),
        2 * stored.len() as i64
    );
    let rows = farm
        .store
        .listings(&ListingFilter::default())
        .await
        .unwrap();
    for row in rows.iter().filter(|r| r.status != "gone") {
        assert_eq!(
            farm.store.price_history(row.id).await.unwrap().len(),
            2,
            "{}",
            row.external_id
        );
    }
    assert_eq!(farm.queue.depths().await.unwrap().dead, 0);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_are_dead_lettered_with_a_reason_on_rabbitmq() {
    malformed_messages_are_dead_lettered_with_a_reason_and_the_worker_keeps_going(Backend::Served)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_are_dead_lettered_with_a_reason_on_the_embedded_queue() {
    malformed_messages_are_dead_lettered_with_a_reason_and_the_worker_keeps_going(
        Backend::Embedded,
    )
    .await;
}

async fn malformed_messages_are_dead_lettered_with_a_reason_and_the_worker_keeps_going(
    backend: Backend,
) {
    let farm = Farm::start_on(
        backend,
        FixtureConfig {
            listings_per_query: 5,
            ..FixtureConfig::default()
        },
    )
    .await;
    let base = farm.fixture.base_url();
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not a valid job", b"{ this is not json".to_vec()),
        ("missing field", br#"{"site":"fixture"}"#.to_vec()),
        (
            "no site named",
            format!(r#"{{"site":"nope","url":"{base}/item/1"}}"#).into_bytes(),
        ),
        (
            "not a listing URL",
            format!(r#"{{"site":"fixture","url":"{base}/promo/1"}}"#).into_bytes(),
        ),
    ];
    for (_, body) in &bad {
        farm.queue.publish_raw(body.clone()).await.unwrap();
    }
    // An over-size body never reaches the queue (the broker caps it too; a worker that gets one
    // anyway refuses it before parsing: `Job::parse`).
    let refused = farm.queue.publish_raw(huge).await.unwrap_err();
    assert!(refused.to_string().contains("65536"), "{refused}");
    let report = farm.enqueue("desk", 1).await;
    farm.work("worker-dlq", 2, Duration::from_secs(2)).await;

    let dead = farm.queue.dead_jobs().await.unwrap();
    assert_eq!(
        dead.len(),
        bad.len(),
        "{:?}",
        dead.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    for (expected, _) in &bad {
        assert!(
            dead.iter().any(|d| d.reason.contains(expected)),
            "a dead letter whose reason mentions `{expected}`: {:?}",
            dead.iter().map(|d| &d.reason).collect::<Vec<_>>()
        );
    }
    let rows = farm
        .store
        .listings(&ListingFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), report.listings_found);
    assert!(
        rows.iter()
            .all(|r| r.status != "pending" && r.status != "failed")
    );
    farm.cleanup().await;
}

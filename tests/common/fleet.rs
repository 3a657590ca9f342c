//! Checks shared by the fleet tests (private service restarts, 16 worker processes): progress
//! polling, "stored once and equal to the truth", and renders counted by the fixture site itself.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use scrapefarm::queue::Queue;
use scrapefarm::store::Store;

use super::{Farm, assert_matches_truth};

/// Shows the workers' warnings (reconnects, halts) in the test output; `RUST_LOG` overrides.
pub fn show_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "scrapefarm=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// External ids of the listings stored so far (not pending).
pub async fn stored_ids(store: &Store) -> HashSet<String> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT external_id FROM listings WHERE status <> 'pending'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    ids.into_iter().collect()
}

/// Waits until `n` listings are stored.
pub async fn wait_until_stored(store: &Store, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while stored_ids(store).await.len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} listings stored within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the broker counts `n` consumers on the work queue; returns how long that took.
/// Errors while the broker is away count as "not yet".
pub async fn wait_for_consumers(queue: &impl Queue, n: u64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let consumers = queue.depths().await.map(|d| d.consumers).ok();
        if consumers == Some(n) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{n} consumers within {within:?} (now {consumers:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every listing of `query` is stored, equal to the truth, by exactly one storing attempt, and
/// the queues are drained.
pub async fn assert_stored_once_and_true(farm: &Farm, query: &str) {
    let truth = farm.fixture.ground_truth(query);
    let rows = farm.stored_listings().await;
    assert_eq!(rows.len(), truth.len(), "one row per listing");
    for t in &truth {
        assert_matches_truth(&rows[&t.external_id], t);
    }
    let stores: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.external_id, COUNT(*) FROM attempts a JOIN listings l ON l.id = a.listing_id \
         WHERE a.outcome IN ('content', 'ended', 'gone') GROUP BY l.external_id",
    )
    .fetch_all(farm.store.pool())
    .await
    .unwrap();
    assert_eq!(
        stores.len(),
        truth.len(),
        "every listing has a storing attempt"
    );
    let twice: Vec<_> = stores.iter().filter(|(_, n)| *n != 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let depths = farm.queue.depths().await.unwrap();
    assert_eq!((depths.ready, depths.retrying, depths.dead), (0, 0, 0));
}

/// Renders of each listing of `query`, counted by the fixture site (its page served past the
/// defences), by external id; a listing never rendered counts 0.
pub fn renders(farm: &Farm, query: &str) -> HashMap<String, u64> {
    let served = farm.fixture.listing_pages_served();
    farm.fixture
        .ground_truth(query)
        .into_iter()
        .map(|t| {
            let n = served.get(&t.external_id).copied().unwrap_or(0);
            (t.external_id, n)
        })
        .collect()
}

//! Politeness on a real (SQLite) store: requests are spaced at the site's rate, a 429 pauses the
//! site for its Retry-After and halves the rate — for every worker sharing the store — and the
//! retry delays grow exponentially with jitter (checked under paused tokio time).

use std::time::Duration;

use scrapefarm::pace::Pacer;
use scrapefarm::pipeline::BackoffPolicy;
use scrapefarm::store::Store;
use tokio::time::Instant;

async fn store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pace.db").display());
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn requests_are_spaced_and_a_429_slows_every_worker_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (mine, theirs) = (Pacer::new(store.clone()), Pacer::new(store.clone()));
    let started = Instant::now();
    for _ in 0..6 {
        mine.acquire("shop", 10).await.unwrap();
    }
    let spaced = started.elapsed();
    assert!(
        spaced >= Duration::from_millis(450),
        "6 requests at 10/s took {spaced:?}"
    );
    theirs.acquire("shop", 10).await.unwrap();

    mine.on_rate_limited("shop", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(mine.rate("shop"), Some(5.0), "the rate is halved");
    // The other worker adopts the pause and the slower rate at its next sync (every second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = Instant::now();
    theirs.acquire("shop", 10).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "paused by another worker's 429: {:?}",
        t.elapsed()
    );
    assert!(
        theirs.rate("shop").unwrap() <= 5.5,
        "slowed: {:?}",
        theirs.rate("shop")
    );

    // Quiet again: successes bring the rate back up.
    for _ in 0..40 {
        mine.on_success("shop");
    }
    assert!(
        mine.rate("shop").unwrap() > 7.5,
        "recovered: {:?}",
        mine.rate("shop")
    );
    store.close().await;
}

#[tokio::test(start_paused = true)]
async fn retry_delays_grow_exponentially_with_jitter_under_paused_time() {
    let policy = BackoffPolicy {
        min: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    let start = Instant::now();
    let mut waited = Vec::new();
    for attempt in 1..=7 {
        let delay = policy.delay(attempt);
        let before = Instant::now();
        tokio::time::sleep(delay).await;
        waited.push(before.elapsed());
    }
    for (i, w) in waited.iter().enumerate() {
        let base = Duration::from_secs(1 << i).min(policy.max);
        assert!(
            *w >= base && *w <= base * 2,
            "attempt {}: waited {w:?}, base {base:?}",
            i + 1
        );
    }
    assert!(start.elapsed() >= Duration::from_secs(1 + 2 + 4 + 8 + 16 + 32 + 60));
}

/// A worker whose clock runs a day ahead (or a hostile Retry-After) writes a pause that would end
/// tomorrow: every other worker reads it clamped to the longest Retry-After honoured, measured on
/// the database's clock, not its own.
#[tokio::test]
async fn a_pause_written_with_a_future_time_is_clamped_to_the_longest_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    store
        .slow_site("shop", Duration::from_secs(86_400), 2_000)
        .await
        .unwrap();
    let other = Pacer::new(store.clone());
    other.refresh("shop", 10).await.unwrap();
    let paused = other.paused_for("shop");
    let most = scrapefarm::classify::MAX_RETRY_AFTER;
    assert!(paused <= most, "paused {paused:?}, more than {most:?}");
    assert!(
        paused >= most - Duration::from_secs(5),
        "still paused: {paused:?}"
    );
    // A pause written in the past (a worker whose clock lags) does not pause anyone.
    store
        .slow_site("idle", Duration::ZERO, 2_000)
        .await
        .unwrap();
    other.refresh("idle", 10).await.unwrap();
    assert_eq!(other.paused_for("idle"), Duration::ZERO);
}

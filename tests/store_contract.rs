//! The `Store` contract: one test body per promise, each run after `migrate()` on a SQLite file
//! and on a fresh PostgreSQL database (127.0.0.1:5432), through the writes the pipeline and
//! `collect` make (`save`, `create_search`, `add_hits`, `finish_search`) and the reads the
//! operator commands make.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use common::{PG_BASE, drop_database, unique};
use scrapefarm::domain::{Job, ListingStatus, Record, SearchHit};
use scrapefarm::price::{Currency, Money};
use scrapefarm::snapshot::inventory::{SnapshotEntry, SnapshotFilter};
use scrapefarm::store::{ListingFilter, ListingRow, ListingSave, SnapshotMeta, Store, Table};

/// A whole body; a store that stops answering fails here instead of hanging the run.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

async fn saving_the_same_job_twice_leaves_one_row_one_price_and_one_attempt(store: Store) {
    let job = job("j1", "100");
    let record = record("100", "Brass lamp", money(1999, "USD"));
    let snapshot = snapshot("fixture/100/j1.html.zst", 1_700_000_000_000);
    let save = stored(&job, &record, Some(&snapshot));
    let first = store.save(&save).await.unwrap();
    // A redelivery of the same job runs the same attempt again.
    let again = store.save(&save).await.unwrap();

    assert_eq!(again, first, "the same listing row");
    let once = Counts {
        listings: 1,
        prices: 1,
        snapshots: 1,
        attempts: 1,
    };
    assert_eq!(counts(&store).await, once);
    assert_eq!(prices(&store, first).await, vec![(1999, "USD".into())]);
}

async fn a_second_job_for_the_same_listing_adds_price_history_and_updates_the_row(store: Store) {
    let (job1, job2) = (job("j1", "100"), job("j2", "100"));
    let listed = record("100", "Brass lamp", money(1999, "USD"));
    let reduced = Record {
        title: Some("Brass lamp, reduced".into()),
        condition: Some("For parts".into()),
        images: vec![
            "http://127.0.0.1:1/img/1.jpg".into(),
            "http://127.0.0.1:1/img/2.jpg".into(),
        ],
        ended: true,
        ..record("100", "", money(1799, "USD"))
    };
    let id = store.save(&stored(&job1, &listed, None)).await.unwrap();
    let ended = ListingSave {
        status: Some(ListingStatus::Ended),
        ..stored(&job2, &reduced, None)
    };
    assert_eq!(
        store.save(&ended).await.unwrap(),
        id,
        "the same listing row"
    );

    let expected = Counts {
        listings: 1,
        prices: 2,
        snapshots: 0,
        attempts: 2,
    };
    assert_eq!(counts(&store).await, expected);
    let history = vec![(1999, "USD".to_string()), (1799, "USD".to_string())];
    assert_eq!(prices(&store, id).await, history, "oldest first");
    let row = listing(&store, "100").await;
    assert_eq!(row.status, "ended");
    assert_eq!(row.title.as_deref(), Some("Brass lamp, reduced"));
    assert_eq!(
        (row.price_minor, row.currency.as_deref()),
        (Some(1799), Some("USD"))
    );
    assert_eq!(row.condition.as_deref(), Some("For parts"));
    assert_eq!(row.seller.as_deref(), Some("lampshop"));
    assert_eq!(row.seller_score, Some(98));
    assert_eq!(row.specifics, r#"{"Colour":"Brass"}"#);
    let images: Vec<String> = serde_json::from_str(&row.images).unwrap();
    assert_eq!(images, reduced.images);
}

async fn a_failed_save_shows_in_listings_with_its_error_and_attempts(store: Store) {
    let job1 = job("j1", "100");
    let retried = failed(&job1, 1, None, "navigation timed out");
    store.save(&retried).await.unwrap();
    let row = listing(&store, "100").await;
    assert_eq!(
        row.status, "pending",
        "an attempt to be retried keeps the status"
    );
    assert_eq!(row.last_error.as_deref(), Some("navigation timed out"));

    let given_up = failed(
        &job1,
        2,
        Some(ListingStatus::Failed),
        "captcha on every attempt",
    );
    store.save(&given_up).await.unwrap();
    let failed_only = ListingFilter {
        status: Some("failed".into()),
        ..ListingFilter::default()
    };
    let rows = store.listings(&failed_only).await.unwrap();
    assert_eq!(rows.len(), 1, "listings with status failed");
    assert_eq!(rows[0].external_id, "100");
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("captcha on every attempt")
    );
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(store.count(Table::Attempts).await.unwrap(), 2);
    assert_eq!(store.count(Table::PriceObservations).await.unwrap(), 0);
    assert!(!store.enriched_since("fixture", "100", 0).await.unwrap());

    // A later job that stores the listing clears the error.
    let job2 = job("j2", "100");
    let found = record("100", "Brass lamp", money(1999, "USD"));
    store.save(&stored(&job2, &found, None)).await.unwrap();
    let row = listing(&store, "100").await;
    assert_eq!((row.status.as_str(), row.last_error), ("active", None));
}

async fn enriched_since_is_true_only_after_a_save_at_or_after_the_time(store: Store) {
    let before = store.db_now_ms().await.unwrap();
    let on = |id| store.enriched_since("fixture", id, before);
    assert!(!on("100").await.unwrap(), "an unknown listing");

    let job1 = job("j1", "100");
    store
        .save(&failed(&job1, 1, None, "timeout"))
        .await
        .unwrap();
    assert!(!on("100").await.unwrap(), "after an attempt to be retried");

    let found = record("100", "Brass lamp", money(1999, "USD"));
    store.save(&stored(&job1, &found, None)).await.unwrap();
    assert!(on("100").await.unwrap(), "after it was stored");
    let after = store.db_now_ms().await.unwrap() + 1;
    assert!(!store.enriched_since("fixture", "100", after).await.unwrap());
    assert!(!store.enriched_since("ebay", "100", before).await.unwrap());

    let job2 = job("j2", "200");
    let gone = ListingSave {
        status: Some(ListingStatus::Gone),
        outcome: "gone",
        ..failed(&job2, 1, None, "404")
    };
    store.save(&gone).await.unwrap();
    assert!(on("200").await.unwrap(), "after it was found gone");
}

async fn searches_and_their_hits_round_trip(store: Store) {
    let before = store.db_now_ms().await.unwrap();
    let search = store
        .create_search("fixture", "brass lamp", 3)
        .await
        .unwrap();
    let page1 = [(0, hit("100")), (1, hit("200"))];
    store.add_hits(search, "fixture", 1, &page1).await.unwrap();
    store
        .add_hits(search, "fixture", 2, &[(2, hit("300"))])
        .await
        .unwrap();
    // A page collected twice (a resumed crawl) links nothing twice.
    store.add_hits(search, "fixture", 1, &page1).await.unwrap();
    let unfinished = store.unfinished_search("fixture", "brass lamp").await;
    assert_eq!(unfinished.unwrap().map(|s| s.id), Some(search));
    store
        .finish_search(search, "collected", 3, 3)
        .await
        .unwrap();

    let rows = store.searches().await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let fields = (row.id, row.site.as_str(), row.query.as_str(), row.max_pages);
    assert_eq!(fields, (search, "fixture", "brass lamp", 3));
    let counts = (row.status.as_str(), row.listings_found, row.jobs_published);
    assert_eq!(counts, ("collected", 3, 3));
    assert!(
        (before..=store.db_now_ms().await.unwrap()).contains(&row.requested_at),
        "requested_at {}",
        row.requested_at
    );
    assert_eq!(
        sorted(store.search_hit_ids(search).await.unwrap()),
        ["100", "200", "300"]
    );
    let of_search = ListingFilter {
        search_id: Some(search),
        ..ListingFilter::default()
    };
    let listed = store.listings(&of_search).await.unwrap();
    let by_rank: Vec<(&str, &str)> = listed
        .iter()
        .map(|l| (l.external_id.as_str(), l.status.as_str()))
        .collect();
    assert_eq!(
        by_rank,
        [("100", "pending"), ("200", "pending"), ("300", "pending")]
    );

    // A second search ranks a new listing above one the first search found.
    let other = store
        .create_search("fixture", "desk lamp", 1)
        .await
        .unwrap();
    let shared = [(0, hit("400")), (1, hit("200"))];
    store.add_hits(other, "fixture", 1, &shared).await.unwrap();
    assert_eq!(
        sorted(store.search_hit_ids(other).await.unwrap()),
        ["200", "400"]
    );
    let of_other = ListingFilter {
        search_id: Some(other),
        ..ListingFilter::default()
    };
    let listed = store.listings(&of_other).await.unwrap();
    let by_rank: Vec<&str> = listed.iter().map(|l| l.external_id.as_str()).collect();
    assert_eq!(by_rank, ["400", "200"], "by rank, not by row id");
    assert_eq!(
        store.count(Table::Listings).await.unwrap(),
        4,
        "one row per listing"
    );
    assert_eq!(store.count(Table::SearchHits).await.unwrap(), 5);
}

async fn snapshot_rows_round_trip(store: Store) {
    let (job1, job2) = (job("j1", "100"), job("j2", "200"));
    let first = snapshot("fixture/100/j1.html.zst", 1_700_000_000_000);
    let second = SnapshotMeta {
        http_status: None,
        screenshot_path: None,
        ..snapshot("fixture/200/j2.html.zst", 1_700_000_001_000)
    };
    let listing1 = store.save(&snapshotted(&job1, &first)).await.unwrap();
    let listing2 = store.save(&snapshotted(&job2, &second)).await.unwrap();

    let entries = store
        .snapshot_entries(&SnapshotFilter::default())
        .await
        .unwrap();
    let without_ids: Vec<SnapshotEntry> = entries
        .iter()
        .map(|e| SnapshotEntry { id: 0, ..e.clone() })
        .collect();
    assert_eq!(
        without_ids,
        [
            entry(listing1, "100", &first),
            entry(listing2, "200", &second)
        ]
    );
    for e in &entries {
        assert_eq!(store.snapshot_entry(e.id).await.unwrap().as_ref(), Some(e));
    }
    let of_200 = SnapshotFilter {
        external_id: Some("200".into()),
        ..SnapshotFilter::default()
    };
    assert_eq!(
        store.snapshot_entries(&of_200).await.unwrap(),
        [entries[1].clone()]
    );
    assert_eq!(
        listing(&store, "100").await.snapshot.as_deref(),
        Some(first.path.as_str())
    );

    assert_eq!(store.delete_snapshots(&[entries[0].id]).await.unwrap(), 1);
    assert_eq!(store.snapshot_entry(entries[0].id).await.unwrap(), None);
    let left = store
        .snapshot_entries(&SnapshotFilter::default())
        .await
        .unwrap();
    assert_eq!(left, [entries[1].clone()]);
    assert_eq!(
        store.delete_snapshots(&[entries[0].id]).await.unwrap(),
        0,
        "deleted twice"
    );
}

async fn money_stays_integer_minor_units_and_currency_byte_exact(store: Store) {
    // Yen have no minor unit; 2^53 + 1 is the first integer a float column would round.
    let amounts = [
        ("100", 1980, "JPY"),
        ("200", 123_456_789, "USD"),
        ("300", 9_007_199_254_740_993, "EUR"),
    ];
    for (external_id, minor, code) in amounts {
        let job = job(&format!("j{external_id}"), external_id);
        let record = record(external_id, "Brass lamp", money(minor, code));
        store.save(&stored(&job, &record, None)).await.unwrap();
    }
    for (external_id, minor, code) in amounts {
        let row = listing(&store, external_id).await;
        assert_eq!(
            (row.price_minor, row.currency.as_deref()),
            (Some(minor), Some(code))
        );
        assert_eq!(prices(&store, row.id).await, [(minor, code.to_string())]);
    }
}

/// Row counts of the tables one attempt writes.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    listings: i64,
    prices: i64,
    snapshots: i64,
    attempts: i64,
}

async fn counts(store: &Store) -> Counts {
    let count = |table| store.count(table);
    Counts {
        listings: count(Table::Listings).await.unwrap(),
        prices: count(Table::PriceObservations).await.unwrap(),
        snapshots: count(Table::Snapshots).await.unwrap(),
        attempts: count(Table::Attempts).await.unwrap(),
    }
}

/// A listing's price history as (minor units, currency), oldest first.
async fn prices(store: &Store, listing_id: i64) -> Vec<(i64, String)> {
    let history = store.price_history(listing_id).await.unwrap();
    assert!(history.iter().all(|p| p.listing_id == listing_id));
    assert!(history.is_sorted_by_key(|p| p.observed_at), "oldest first");
    history
        .into_iter()
        .map(|p| (p.price_minor, p.currency))
        .collect()
}

async fn listing(store: &Store, external_id: &str) -> ListingRow {
    let rows = store.listings(&ListingFilter::default()).await.unwrap();
    let mut rows = rows
        .into_iter()
        .filter(|r| r.site == "fixture" && r.external_id == external_id);
    let row = rows
        .next()
        .unwrap_or_else(|| panic!("no listing fixture/{external_id}"));
    assert!(rows.next().is_none(), "one row per listing");
    row
}

async fn every_field_a_site_can_read_is_stored_and_listed(store: Store) {
    let mut found = record("300", "Desk lamp", money(2599, "EUR"));
    found.brand = Some("Acme".into());
    found.sku = Some("L-300".into());
    found.gtin = Some("4006381333931".into());
    found.mpn = Some("LX-300".into());
    found.availability = Some("InStock".into());
    found.rating = Some(4.75);
    found.review_count = Some(1234);
    found.extra = [("energy_class".to_string(), "A++".to_string())].into();
    found.item_id = Some("9300".into());
    found.translated_title = Some("Lampe de bureau".into());
    found.was_price = Some(money(2999, "EUR"));
    found.buy_it_now_price = Some(money(3499, "EUR"));
    found.auction = true;
    found.best_offer = true;
    found.bids = Some(7);
    found.status_text = Some("Ends in 2 days".into());
    found.description_url = Some("https://desc.example/300".into());
    found.field_errors = [("seller_score".to_string(), "no count".to_string())].into();
    store
        .save(&stored(&job("f1", "300"), &found, None))
        .await
        .unwrap();
    let json = scrapefarm::report::ListingJson::from_row(listing(&store, "300").await, None);
    let json = serde_json::to_value(&json).unwrap();
    let expected = serde_json::json!({
        "brand": "Acme", "sku": "L-300", "gtin": "4006381333931", "mpn": "LX-300",
        "availability": "InStock", "rating": 4.75, "review_count": 1234,
        "extra": {"energy_class": "A++"}, "item_id": "9300",
        "translated_title": "Lampe de bureau", "was_price_minor": 2999, "was_currency": "EUR",
        "buy_it_now_minor": 3499, "buy_it_now_currency": "EUR", "auction": true,
        "best_offer": true, "bids": 7, "status_text": "Ends in 2 days",
        "description_url": "https://desc.example/300",
        "field_errors": {"seller_score": "no count"},
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&json[key], value, "{key} in {json}");
    }
}

async fn a_job_published_again_after_a_crash_adds_no_second_price_observation(store: Store) {
    // The same search's listing reached by two publishes (new job ids): one observation.
    let (mut first, mut again) = (job("j1", "100"), job("j2", "100"));
    (first.search_id, again.search_id) = (Some(7), Some(7));
    let found = record("100", "Brass lamp", money(1999, "USD"));
    let id = store.save(&stored(&first, &found, None)).await.unwrap();
    store.save(&stored(&again, &found, None)).await.unwrap();
    assert_eq!(prices(&store, id).await, vec![(1999, "USD".into())]);
    // A URL-list job (no search) published twice within the hour at the same price: one too.
    let (list1, list2) = (job("u1", "100"), job("u2", "100"));
    store.save(&stored(&list1, &found, None)).await.unwrap();
    store.save(&stored(&list2, &found, None)).await.unwrap();
    assert_eq!(
        prices(&store, id).await.len(),
        2,
        "one for the search, one for the list"
    );
    // Another search of it is a new observation.
    let mut next = job("j3", "100");
    next.search_id = Some(8);
    store.save(&stored(&next, &found, None)).await.unwrap();
    assert_eq!(prices(&store, id).await.len(), 3);
}

async fn text_a_database_would_refuse_is_stored_bounded(store: Store) {
    let job = job("j1", "100");
    let hostile = Record {
        title: Some(format!("Brass\0 lamp{}", "!".repeat(10_000))),
        specifics: BTreeMap::from([("Col\0our".into(), "Br\0ass".into())]),
        ..record("100", "", money(1999, "USD"))
    };
    store.save(&stored(&job, &hostile, None)).await.unwrap();
    let row = listing(&store, "100").await;
    let title = row.title.unwrap();
    assert!(
        title.starts_with("Brass lamp!") && title.chars().count() == 2000,
        "{}",
        title.len()
    );
    assert_eq!(row.specifics, r#"{"Colour":"Brass"}"#);
}

async fn render_starts_are_counted_per_job_and_attempt(store: Store) {
    assert_eq!(store.render_starts("j1", 1).await.unwrap(), 0);
    store.note_render_start("j1", 1).await.unwrap();
    store.note_render_start("j1", 1).await.unwrap();
    store.note_render_start("j1", 2).await.unwrap();
    store.note_render_start("j2", 1).await.unwrap();
    assert_eq!(store.render_starts("j1", 1).await.unwrap(), 2);
    assert_eq!(store.render_starts("j1", 2).await.unwrap(), 1);
    assert_eq!(store.render_starts("j2", 1).await.unwrap(), 1);
}

fn job(id: &str, external_id: &str) -> Job {
    Job {
        id: id.into(),
        site: "fixture".into(),
        url: format!("http://127.0.0.1:1/item/{external_id}"),
        search_id: None,
        run: None,
        published_at: 0,
    }
}

fn money(minor: i64, code: &str) -> Money {
    Money::new(minor, Currency::parse(code).unwrap())
}

fn record(external_id: &str, title: &str, price: Money) -> Record {
    Record {
        external_id: external_id.into(),
        title: Some(title.into()),
        price: Some(price),
        condition: Some("Used".into()),
        seller: Some("lampshop".into()),
        seller_score: Some(98),
        shipping: Some("Free".into()),
        location: Some("Leeds".into()),
        specifics: BTreeMap::from([("Colour".into(), "Brass".into())]),
        description: Some("A brass lamp.".into()),
        images: vec!["http://127.0.0.1:1/img/1.jpg".into()],
        ..Record::default()
    }
}

fn hit(external_id: &str) -> SearchHit {
    SearchHit {
        external_id: external_id.into(),
        url: format!("http://127.0.0.1:1/item/{external_id}"),
        title: Some("Brass lamp".into()),
        price_text: Some("$19.99".into()),
        price: None,
    }
}

/// Attempt 1 at `job` that stored `record` as active.
fn stored<'a>(
    job: &'a Job,
    record: &'a Record,
    snapshot: Option<&'a SnapshotMeta>,
) -> ListingSave<'a> {
    ListingSave {
        job,
        external_id: &record.external_id,
        attempt: 1,
        worker: "contract",
        status: Some(ListingStatus::Active),
        record: Some(record),
        snapshot,
        outcome: "content",
        detail: None,
        duration_ms: 12,
    }
}

/// An attempt at `job` that found no record; `status` `None` means it will be retried.
fn failed<'a>(
    job: &'a Job,
    attempt: u32,
    status: Option<ListingStatus>,
    detail: &'a str,
) -> ListingSave<'a> {
    ListingSave {
        job,
        external_id: job.url.rsplit('/').next().unwrap(),
        attempt,
        worker: "contract",
        status,
        record: None,
        snapshot: None,
        outcome: "error",
        detail: Some(detail),
        duration_ms: 30_000,
    }
}

/// Attempt 1 at `job` that wrote a snapshot and nothing else.
fn snapshotted<'a>(job: &'a Job, snapshot: &'a SnapshotMeta) -> ListingSave<'a> {
    ListingSave {
        job,
        external_id: job.url.rsplit('/').next().unwrap(),
        attempt: 1,
        worker: "contract",
        status: None,
        record: None,
        snapshot: Some(snapshot),
        outcome: "content",
        detail: None,
        duration_ms: 12,
    }
}

fn snapshot(path: &str, captured_at: i64) -> SnapshotMeta {
    SnapshotMeta {
        path: path.into(),
        sha256: format!("{:0>64}", path.len()),
        // Past 32 bits, so the column must be 64-bit.
        bytes: 5_000_000_123,
        html_bytes: 9_000_000_456,
        http_status: Some(200),
        captured_at,
        screenshot_path: Some(path.replace(".html.zst", ".jpg")),
    }
}

/// The entry a snapshot row of `external_id` reads back as, id left 0.
fn entry(listing_id: i64, external_id: &str, s: &SnapshotMeta) -> SnapshotEntry {
    SnapshotEntry {
        id: 0,
        listing_id,
        site: "fixture".into(),
        external_id: external_id.into(),
        path: s.path.clone(),
        sha256: s.sha256.clone(),
        bytes: s.bytes,
        html_bytes: s.html_bytes,
        http_status: s.http_status.map(i64::from),
        captured_at: s.captured_at,
        screenshot_path: s.screenshot_path.clone(),
    }
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

async fn within(body: impl Future<Output = ()>) {
    tokio::time::timeout(BODY_TIMEOUT, body)
        .await
        .unwrap_or_else(|_| panic!("the contract body did not finish within {BODY_TIMEOUT:?}"));
}

/// Runs `body` on a migrated SQLite file.
async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("farm.db");
    let store = migrated(&format!("sqlite://{}?mode=rwc", file.display())).await;
    within(body(store.clone())).await;
    store.close().await;
}

/// Runs `body` on a fresh, migrated PostgreSQL database, then drops it.
async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = unique("sf_store_contract");
    let store = migrated(&format!("{PG_BASE}/{name}")).await;
    within(body(store.clone())).await;
    store.close().await;
    drop_database(&name).await;
}

async fn migrated(url: &str) -> Store {
    let store = Store::connect(url, 4)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup.sh)");
    store.migrate().await.unwrap();
    store
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_sqlite() {
                super::on_sqlite(super::$name).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                super::on_postgres(super::$name).await;
            }
        }
    )*};
}

on_both_stores!(
    saving_the_same_job_twice_leaves_one_row_one_price_and_one_attempt,
    a_second_job_for_the_same_listing_adds_price_history_and_updates_the_row,
    a_failed_save_shows_in_listings_with_its_error_and_attempts,
    enriched_since_is_true_only_after_a_save_at_or_after_the_time,
    searches_and_their_hits_round_trip,
    snapshot_rows_round_trip,
    money_stays_integer_minor_units_and_currency_byte_exact,
    a_job_published_again_after_a_crash_adds_no_second_price_observation,
    text_a_database_would_refuse_is_stored_bounded,
    render_starts_are_counted_per_job_and_attempt,
    every_field_a_site_can_read_is_stored_and_listed,
);

/// `n` pseudo-random digits (xorshift), incompressible enough to stay `n` bytes in an index.
fn random_digits(n: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'0' + (x % 10) as u8)
        })
        .collect()
}

/// The poison row of the reliability issue: an id PostgreSQL cannot index (6,000 digits) is
/// refused as *rejected* (the job is dead-lettered), never as *unavailable* (which halted the
/// worker and redelivered the job for ever), and the store still answers afterwards.
#[tokio::test]
async fn a_row_postgresql_cannot_index_is_rejected_not_unavailable() {
    on_postgres(|store| async move {
        // Random digits: a repeated one compresses below the limit.
        let id = random_digits(6000);
        let job = job("j1", &id);
        let found = record(&id, "Brass lamp", money(1999, "USD"));
        let error = store.save(&stored(&job, &found, None)).await.unwrap_err();
        assert!(error.is_rejected(), "{error}");
        assert!(error.to_string().contains("index row"), "{error}");
        store.ping().await.unwrap();
        assert_eq!(counts(&store).await.listings, 0);
    })
    .await;
}

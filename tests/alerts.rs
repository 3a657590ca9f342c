//! Watches, alerts and their signed webhooks, on PostgreSQL and on SQLite through the real store:
//! observations written as the pipeline writes them (`Store::save`) fire exactly the alerts their
//! watches imply, in the same transaction; a local webhook receiver (axum on 127.0.0.1:0)
//! records every request and checks its signature; failed deliveries are retried, two
//! deliverers never deliver one alert twice, and a `scrapefarm alerts deliver` process killed
//! mid-delivery loses nothing once it is started again.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use common::{PG_BASE, drop_database, unique};
use hmac::{Hmac, Mac};
use scrapefarm::alerts::{DeliverySettings, run_deliverer};
use scrapefarm::domain::{Job, ListingStatus, Record, SearchHit};
use scrapefarm::price::{Currency, Money};
use scrapefarm::store::{AlertRow, ListingSave, NewWatch, Store, WatchRule};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Hit {
    key: String,
    signature: String,
    content_type: String,
    body: Bytes,
    status: u16,
}

/// How the receiver behaves: the first `failures` requests get a 500, each waits `delay_ms`.
#[derive(Default)]
struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    failures: AtomicUsize,
    delay_ms: AtomicU64,
}

/// A webhook receiver on 127.0.0.1:0.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    stop: CancellationToken,
}

impl Receiver {
    async fn start(failures: usize, delay_ms: u64) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        state.failures.store(failures, Ordering::SeqCst);
        state.delay_ms.store(delay_ms, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
                .unwrap();
        });
        Receiver { addr, state, stop }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// Idempotency keys answered 200, with how many times each was.
    fn delivered(&self) -> BTreeMap<String, usize> {
        let mut keys = BTreeMap::new();
        for hit in self.hits().into_iter().filter(|h| h.status == 200) {
            *keys.entry(hit.key).or_default() += 1;
        }
        keys
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(state.delay_ms.load(Ordering::SeqCst))).await;
    let failing = state
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    state.hits.lock().unwrap().push(Hit {
        key: header("idempotency-key"),
        signature: header("x-scrapefarm-signature"),
        content_type: header("content-type"),
        body,
        status: status.as_u16(),
    });
    status
}

/// The signature a receiver computes with the watch's secret.
fn expected_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A job as the queue hands it to a worker.
fn job(id: &str, external_id: &str) -> Job {
    let body = serde_json::json!({
        "id": id,
        "site": "fixture",
        "url": format!("http://127.0.0.1:1/item/{external_id}"),
    });
    Job::parse(body.to_string().as_bytes()).unwrap()
}

fn record(external_id: &str, minor: i64, currency: &str) -> Record {
    Record {
        external_id: external_id.into(),
        title: Some(format!("Lamp {external_id}")),
        price: Some(Money::new(minor, Currency::parse(currency).unwrap())),
        ..Record::default()
    }
}

/// Stores `external_id` at a price, as the pipeline does after extracting it with job `job_id`.
async fn observe(store: &Store, job_id: &str, external_id: &str, minor: i64, currency: &str) {
    let job = job(job_id, external_id);
    let record = record(external_id, minor, currency);
    let save = ListingSave {
        job: &job,
        external_id,
        attempt: 1,
        worker: "alerts-test",
        status: Some(ListingStatus::Active),
        record: Some(&record),
        snapshot: None,
        outcome: "content",
        detail: None,
        duration_ms: 5,
    };
    store.save(&save).await.unwrap();
}

/// A search (site `fixture`) that found `external_ids`.
async fn search_of(store: &Store, external_ids: &[&str]) -> i64 {
    let search = store.create_search("fixture", "lamp", 1).await.unwrap();
    let hits: Vec<(usize, SearchHit)> = external_ids
        .iter()
        .enumerate()
        .map(|(rank, id)| {
            let hit = SearchHit {
                external_id: id.to_string(),
                url: format!("http://127.0.0.1:1/item/{id}"),
                title: None,
                price_text: None,
                price: None,
            };
            (rank + 1, hit)
        })
        .collect();
    store.add_hits(search, "fixture", 1, &hits).await.unwrap();
    search
}

fn rule(below_minor: Option<i64>, drop_percent: Option<i64>, currency: Option<&str>) -> WatchRule {
    WatchRule {
        below_minor,
        drop_percent,
        currency: currency.map(str::to_string),
    }
}

/// Creates a watch; returns its id and secret.
async fn watch(store: &Store, on: Target<'_>, rule: WatchRule, url: &str) -> (i64, String) {
    let (search_id, site, external_id) = match on {
        Target::Search(id) => (Some(id), None, None),
        Target::Listing(id) => (None, Some("fixture".to_string()), Some(id.to_string())),
    };
    let new = NewWatch {
        search_id,
        site,
        external_id,
        rule,
        webhook_url: url.into(),
    };
    let created = store.create_watch(&new).await.unwrap();
    (created.watch.id, created.secret.expose().to_string())
}

#[derive(Clone, Copy)]
enum Target<'a> {
    Search(i64),
    Listing(&'a str),
}

/// An alert as the table of expectations names it: watch, listing, reason, old and new price.
type Fired = (i64, String, String, Option<i64>, i64);

async fn fired(store: &Store) -> Vec<Fired> {
    let mut rows: Vec<Fired> = Vec::new();
    for alert in store.alerts(None).await.unwrap() {
        let listing = store
            .alert_listing(alert.listing_id)
            .await
            .unwrap()
            .unwrap();
        rows.push((
            alert.watch_id,
            listing.external_id,
            alert.reason,
            alert.old_price_minor,
            alert.new_price_minor,
        ));
    }
    rows.sort();
    rows
}

fn settings(owner: &str, batch: usize) -> DeliverySettings {
    DeliverySettings {
        owner: owner.into(),
        batch,
        lease: Duration::from_secs(20),
        poll: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
        max_attempts: 20,
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
    }
}

/// Waits until every alert is delivered; panics after `limit`.
async fn all_delivered(store: &Store, limit: Duration) -> Vec<AlertRow> {
    let start = Instant::now();
    loop {
        let alerts = store.alerts(None).await.unwrap();
        if alerts.iter().all(|a| a.state == "delivered") {
            return alerts;
        }
        assert!(
            start.elapsed() < limit,
            "undelivered after {limit:?}: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn observations_fire_exactly_the_alerts_their_watches_imply(store: Store) {
    let receiver = Receiver::start(1, 0).await;
    let url = receiver.url();
    let search = search_of(&store, &["100", "200"]).await;
    let (w1, s1) = watch(
        &store,
        Target::Search(search),
        rule(Some(1000), None, None),
        &url,
    )
    .await;
    let euro_drop = rule(None, Some(25), Some("eur"));
    let (w2, s2) = watch(&store, Target::Listing("300"), euro_drop, &url).await;
    let usd_drop = rule(None, Some(25), Some("USD"));
    let (w3, s3) = watch(&store, Target::Search(search), usd_drop, &url).await;
    let (w4, _) = watch(
        &store,
        Target::Listing("100"),
        rule(Some(i64::MAX), None, None),
        &url,
    )
    .await;
    assert!(store.delete_watch(w4).await.unwrap());
    assert!(!store.delete_watch(w4).await.unwrap(), "deleted once");

    // (job, listing, price, currency): the alerts each step must add are in `expected`.
    let steps: &[(&str, &str, i64, &str)] = &[
        ("j1", "100", 1500, "USD"), // over the threshold, first observation: nothing
        ("j2", "100", 999, "USD"),  // crosses below 1000 (w1) and drops 33 % (w3)
        ("j3", "100", 998, "USD"),  // still below: nothing
        ("j4", "100", 1000, "USD"), // equal is not below; a rise
        ("j5", "100", 700, "USD"),  // crosses below again (w1), drops 30 % (w3)
        ("j6", "200", 500, "JPY"),  // first seen below (w1 has no currency); w3 is USD only
        ("j7", "200", 400, "JPY"),  // stays below
        ("j8", "300", 2000, "EUR"), // w2's first observation
        ("j9", "300", 1500, "EUR"), // exactly 25 % down (w2)
        ("j10", "300", 1000, "USD"), // another currency than w2's
        ("j11", "300", 700, "EUR"), // the previous observation is in USD: no comparison
        ("j12", "400", 1, "USD"),   // watched by nobody
    ];
    for (job, listing, minor, currency) in steps {
        observe(&store, job, listing, *minor, currency).await;
    }
    // A redelivered job stores no second observation, so fires nothing again.
    observe(&store, "j9", "300", 1500, "EUR").await;
    let below = "below".to_string();
    let drop = "drop".to_string();
    let mut expected: Vec<Fired> = vec![
        (w1, "100".into(), below.clone(), Some(1500), 999),
        (w3, "100".into(), drop.clone(), Some(1500), 999),
        (w1, "100".into(), below.clone(), Some(1000), 700),
        (w3, "100".into(), drop.clone(), Some(1000), 700),
        (w1, "200".into(), below.clone(), None, 500),
        (w2, "300".into(), drop.clone(), Some(2000), 1500),
    ];
    expected.sort();
    assert_eq!(fired(&store).await, expected);
    assert_eq!(store.alerts(Some(w2)).await.unwrap().len(), 1);
    assert!(store.alerts(Some(w4)).await.unwrap().is_empty());

    // Delivery: the receiver fails the first request, so one alert is delivered on a retry.
    let stop = CancellationToken::new();
    let deliverer = tokio::spawn(run_deliverer(
        store.clone(),
        settings("d1", 4),
        stop.clone(),
    ));
    let alerts = all_delivered(&store, Duration::from_secs(20)).await;
    stop.cancel();
    deliverer.await.unwrap();
    let secrets = HashMap::from([(w1, s1), (w2, s2), (w3, s3)]);
    let mut listings = HashMap::new();
    for alert in &alerts {
        let listing = store
            .alert_listing(alert.listing_id)
            .await
            .unwrap()
            .unwrap();
        listings.insert(alert.id, listing.external_id);
    }
    check_deliveries(&receiver, &alerts, &secrets, &listings);
}

/// Every alert arrived exactly once with a 200, signed with its watch's secret, and one of them
/// after a 500; `listings` names each alert's listing.
fn check_deliveries(
    receiver: &Receiver,
    alerts: &[AlertRow],
    secrets: &HashMap<i64, String>,
    listings: &HashMap<i64, String>,
) {
    let hits = receiver.hits();
    assert_eq!(hits.len(), alerts.len() + 1, "one retry: {hits:#?}");
    let failed: Vec<&Hit> = hits.iter().filter(|h| h.status == 500).collect();
    assert_eq!(failed.len(), 1);
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), alerts.len(), "{delivered:?}");
    assert!(delivered.values().all(|n| *n == 1), "{delivered:?}");
    assert!(
        delivered.contains_key(&failed[0].key),
        "retried and delivered"
    );
    for hit in &hits {
        let body: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
        let id = body["alert_id"].as_i64().unwrap();
        let alert = alerts.iter().find(|a| a.id == id).unwrap();
        assert_eq!(hit.key, format!("scrapefarm-alert-{id}"));
        assert_eq!(hit.content_type, "application/json");
        let secret = &secrets[&alert.watch_id];
        assert_eq!(hit.signature, expected_signature(secret, &hit.body), "{id}");
        assert_eq!(body["watch_id"], alert.watch_id);
        assert_eq!(body["reason"], alert.reason.as_str());
        assert_eq!(body["new_price"]["minor"], alert.new_price_minor);
        assert_eq!(body["new_price"]["currency"], alert.currency.as_str());
        assert_eq!(body["old_price"]["minor"].as_i64(), alert.old_price_minor);
        let listing = &body["listing"];
        assert_eq!(body["url"], listing["url"]);
        assert_eq!(listing["external_id"], listings[&id].as_str(), "{body}");
        assert_eq!(listing["site"], "fixture");
        let page = format!("http://127.0.0.1:1/item/{}", listings[&id]);
        assert_eq!(body["url"], page.as_str());
        assert!(body["observed_at"].as_i64().unwrap() > 0);
    }
    for alert in alerts {
        assert_eq!(alert.last_status, Some(200));
        let retried = failed[0].key == format!("scrapefarm-alert-{}", alert.id);
        assert_eq!(alert.attempts, if retried { 2 } else { 1 }, "{alert:?}");
    }
}

/// A search of `n` listings watched below a price every one of them is under: `n` alerts.
async fn many_alerts(store: &Store, url: &str, n: usize) -> usize {
    let ids: Vec<String> = (0..n).map(|i| format!("{}", 500 + i)).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let search = search_of(store, &refs).await;
    watch(
        store,
        Target::Search(search),
        rule(Some(1_000_000), None, None),
        url,
    )
    .await;
    for id in &ids {
        observe(store, &format!("job-{id}"), id, 100, "GBP").await;
    }
    assert_eq!(store.alerts(None).await.unwrap().len(), n);
    n
}

async fn two_deliverers_at_once_deliver_each_alert_once(store: Store) {
    let receiver = Receiver::start(0, 30).await;
    let n = many_alerts(&store, &receiver.url(), 30).await;
    let stop = CancellationToken::new();
    let one = tokio::spawn(run_deliverer(
        store.clone(),
        settings("one", 3),
        stop.clone(),
    ));
    let two = tokio::spawn(run_deliverer(
        store.clone(),
        settings("two", 3),
        stop.clone(),
    ));
    all_delivered(&store, Duration::from_secs(30)).await;
    stop.cancel();
    one.await.unwrap();
    two.await.unwrap();
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), n);
    assert!(delivered.values().all(|c| *c == 1), "{delivered:?}");
    assert_eq!(receiver.hits().len(), n, "no request at all was repeated");
}

async fn a_leased_alert_is_nobody_elses_until_its_lease_runs_out(store: Store) {
    let n = many_alerts(&store, "http://127.0.0.1:9/hook", 3).await;
    let long = Duration::from_secs(60);
    let a = store.claim_due_alerts("a", 2, long).await.unwrap();
    assert_eq!(a.len(), 2);
    let b = store.claim_due_alerts("b", 10, long).await.unwrap();
    assert_eq!(b.len(), n - 2, "only the unleased one");
    assert!(
        store
            .claim_due_alerts("c", 10, long)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.mark_delivered(b[0].alert.id, "b", 204).await.unwrap());
    assert!(
        !store.mark_delivered(a[0].alert.id, "b", 204).await.unwrap(),
        "not b's lease"
    );

    // A lease that ran out is taken over; its old holder can no longer settle the row.
    let short = store
        .claim_due_alerts("d", 10, Duration::ZERO)
        .await
        .unwrap();
    assert!(short.is_empty(), "a's leases still hold");
    let retry = Some(Duration::ZERO);
    let failed = store.mark_failed_attempt(a[0].alert.id, "a", retry, Some(503), "HTTP 503");
    assert!(failed.await.unwrap());
    let e = store
        .claim_due_alerts("e", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(e.len(), 1, "due again at once, lease free");
    assert_eq!(
        (e[0].alert.attempts, e[0].alert.last_status),
        (1, Some(503))
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let f = store.claim_due_alerts("f", 10, long).await.unwrap();
    assert_eq!(f.len(), 1, "e's zero lease ran out");
    assert!(!store.mark_delivered(f[0].alert.id, "e", 200).await.unwrap());
    let gave_up = store.mark_failed_attempt(f[0].alert.id, "f", None, None, "refused");
    assert!(gave_up.await.unwrap());
    let states: Vec<String> = store
        .alerts(None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.state)
        .collect();
    assert_eq!(states, ["delivered", "pending", "failed"], "newest first");
}

/// `scrapefarm alerts deliver` on `db_url`, with a short lease and quick retries.
fn deliver_process(db_url: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args([
            "alerts",
            "deliver",
            "--lease-secs",
            "2",
            "--poll-ms",
            "100",
            "--retry-min-ms",
            "100",
            "--retry-max-ms",
            "300",
            "--batch",
            "4",
        ])
        .env("DATABASE_URL", db_url)
        .env_remove("AMQP_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn a_killed_deliverer_loses_nothing_once_restarted(store: Store, db_url: String) {
    // Slow and failing at first: deliveries are pending and in flight when the process dies.
    let receiver = Receiver::start(3, 200).await;
    let n = many_alerts(&store, &receiver.url(), 20).await;
    let mut first = deliver_process(&db_url);
    let start = Instant::now();
    while receiver.hits().len() < 6 {
        assert!(start.elapsed() < Duration::from_secs(20), "no deliveries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        receiver.delivered().len() < n,
        "killed while alerts were pending"
    );

    let mut second = deliver_process(&db_url);
    let alerts = all_delivered(&store, Duration::from_secs(40)).await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = wait_exit(&mut second, Duration::from_secs(10)).await;
    assert!(
        exit.success(),
        "SIGTERM ends `alerts deliver` cleanly: {exit:?}"
    );
    let delivered = receiver.delivered();
    let ids: Vec<String> = alerts
        .iter()
        .map(|a| format!("scrapefarm-alert-{}", a.id))
        .collect();
    for key in &ids {
        assert!(delivered.contains_key(key), "{key} lost: {delivered:?}");
    }
    let ls = std::process::Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["alerts", "ls", "--json"])
        .env("DATABASE_URL", &db_url)
        .env_remove("AMQP_URL")
        .output()
        .unwrap();
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let listed: Vec<AlertRow> = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        listed, alerts,
        "`alerts ls --json` shows every alert as stored"
    );
    // At least once: only a request in flight when the process died can have arrived twice.
    let repeats: usize = delivered.values().map(|c| c - 1).sum();
    assert!(repeats <= 4, "{delivered:?}");
}

async fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `body` on a migrated store of each backend: a SQLite file, then a fresh PostgreSQL
/// database (dropped afterwards). The body gets the store and its URL.
async fn on_each_backend<F, Fut>(body: F)
where
    F: Fn(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let name = unique("sf_alerts");
    let urls = [
        (
            format!("sqlite://{}?mode=rwc", dir.path().join("farm.db").display()),
            None,
        ),
        (format!("{PG_BASE}/{name}"), Some(name)),
    ];
    for (url, pg) in urls {
        let store = Store::connect(&url, 4)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup.sh)");
        store.migrate().await.unwrap();
        tokio::time::timeout(Duration::from_secs(90), body(store.clone(), url.clone()))
            .await
            .unwrap_or_else(|_| panic!("{url}: the body did not finish in 90 s"));
        store.close().await;
        if let Some(name) = pg {
            drop_database(&name).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_fire_exactly_the_implied_alerts_delivered_once_each() {
    on_each_backend(|store, _| observations_fire_exactly_the_alerts_their_watches_imply(store))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_alert_is_claimed_by_nobody_else_until_its_lease_runs_out() {
    on_each_backend(|store, _| a_leased_alert_is_nobody_elses_until_its_lease_runs_out(store))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliverers_at_once_never_deliver_an_alert_twice() {
    on_each_backend(|store, _| two_deliverers_at_once_deliver_each_alert_once(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliver_process_killed_mid_delivery_loses_no_alert_after_a_restart() {
    on_each_backend(a_killed_deliverer_loses_nothing_once_restarted).await;
}

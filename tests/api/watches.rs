//! The watches part of the API test: a `drop_percent` watch on the search and a `below_minor`
//! watch on one listing; the fixture's prices move one step (ground truth for each step); the
//! search runs again; a local webhook receiver must get exactly the alerts the truth implies,
//! each once with a valid signature — after the `serve` process that delivers them was killed
//! (SIGKILL) while they were pending and started again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use scrapefarm::fixture_site::TruthListing;
use serde_json::{Value, json};
use sha2::Sha256;

use super::Api;

/// One webhook request as received.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub hook: String,
    pub idempotency_key: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub answered: u16,
}

/// A webhook receiver on 127.0.0.1 answering every request with `status` (changeable).
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    pub status: Arc<AtomicU16>,
    pub receipts: Arc<Mutex<Vec<Receipt>>>,
}

async fn hook(
    State(receiver): State<Receiver>,
    AxPath(name): AxPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let status = receiver.status.load(Ordering::SeqCst);
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    receiver.receipts.lock().unwrap().push(Receipt {
        hook: name,
        idempotency_key: header("idempotency-key"),
        signature: header("x-scrapefarm-signature"),
        body: body.to_vec(),
        answered: status,
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            base: format!("http://{}", listener.local_addr().unwrap()),
            status: Arc::new(AtomicU16::new(status)),
            receipts: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook/{name}", axum::routing::post(hook))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn receipts(&self) -> Vec<Receipt> {
        self.receipts.lock().unwrap().clone()
    }
}

/// `sha256=` + hex HMAC-SHA256 of `body` keyed with `secret`, computed here independently.
fn expected_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The alerts the rules imply for a move from `before` to `after`: (hook, external id).
pub fn implied_alerts(
    before: &[TruthListing],
    after: &[TruthListing],
    drop_percent: i64,
    below: (&str, i64),
) -> BTreeSet<(String, String)> {
    let old: BTreeMap<&str, &TruthListing> =
        before.iter().map(|t| (t.external_id.as_str(), t)).collect();
    let mut implied = BTreeSet::new();
    for new in after {
        let Some(prev) = old.get(new.external_id.as_str()) else {
            continue;
        };
        let (Some(p), Some(n)) = (prev.price_minor, new.price_minor) else {
            continue;
        };
        if prev.currency != new.currency {
            continue;
        }
        if n < p && n * 100 <= p * (100 - drop_percent) {
            implied.insert(("search".to_string(), new.external_id.clone()));
        }
        if new.external_id == below.0 && n < below.1 && p >= below.1 {
            implied.insert(("listing".to_string(), new.external_id.clone()));
        }
    }
    implied
}

/// Checks the receipts: each implied alert answered 2xx once (one 2xx per idempotency key),
/// every body signed with its watch's secret, old and new prices as the truth says, nothing
/// else delivered.
pub fn check_receipts(
    receipts: &[Receipt],
    secrets: &BTreeMap<String, String>,
    implied: &BTreeSet<(String, String)>,
    before: &[TruthListing],
    after: &[TruthListing],
) {
    let price = |truth: &[TruthListing], id: &str| {
        let t = truth.iter().find(|t| t.external_id == id).unwrap();
        json!({"minor": t.price_minor, "currency": t.currency})
    };
    let mut delivered = BTreeSet::new();
    let mut keys_ok: BTreeMap<String, usize> = BTreeMap::new();
    for r in receipts {
        let expected = expected_signature(&secrets[&r.hook], &r.body);
        assert_eq!(r.signature, expected, "signature of {r:?}");
        assert!(!r.idempotency_key.is_empty());
        if !(200..300).contains(&r.answered) {
            continue;
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let id = body["listing"]["external_id"].as_str().unwrap().to_string();
        *keys_ok.entry(r.idempotency_key.clone()).or_default() += 1;
        assert!(
            delivered.insert((r.hook.clone(), id.clone())),
            "twice: {body}"
        );
        assert_eq!(body["old_price"], price(before, &id), "{body}");
        assert_eq!(body["new_price"], price(after, &id), "{body}");
        let reason = if r.hook == "search" { "drop" } else { "below" };
        assert_eq!(body["reason"], reason, "{body}");
    }
    assert!(
        keys_ok.values().all(|n| *n == 1),
        "one 2xx per alert: {keys_ok:?}"
    );
    assert_eq!(&delivered, implied, "exactly the implied alerts");
}

/// Waits until the API lists `n` alerts, all in `state`.
pub async fn wait_for_alerts(api: &Api, n: usize, state: &str, within: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page = api.get("/api/v1/alerts").await;
        let items = page.json["items"].as_array().cloned().unwrap_or_default();
        if items.len() == n && items.iter().all(|a| a["state"] == state) {
            return items;
        }
        assert!(
            started.elapsed() < within,
            "alerts not {n} {state} in time: {}",
            page.text
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Creates the two watches; returns each hook's secret.
pub async fn create_watches(
    api: &Api,
    receiver: &Receiver,
    search_id: i64,
    drop_percent: i64,
    below: (&str, i64),
) -> BTreeMap<String, String> {
    let on_search = api
        .post(
            "/api/v1/watches",
            &json!({"search_id": search_id, "drop_percent": drop_percent,
                    "webhook_url": format!("{}/hook/search", receiver.base)}),
        )
        .await;
    assert_eq!(on_search.status, 201, "{}", on_search.text);
    let on_listing = api
        .post(
            "/api/v1/watches",
            &json!({"site": "fixture", "external_id": below.0, "below_minor": below.1,
                    "webhook_url": format!("{}/hook/listing", receiver.base)}),
        )
        .await;
    assert_eq!(on_listing.status, 201, "{}", on_listing.text);
    let listed = api.get("/api/v1/watches").await;
    assert_eq!(
        listed.json["items"].as_array().unwrap().len(),
        2,
        "{}",
        listed.text
    );
    assert!(
        listed.json["items"][0]["secret"].is_null(),
        "the secret is shown once"
    );
    let secret = |a: &super::Answer| a.json["secret"].as_str().unwrap().to_string();
    BTreeMap::from([
        ("search".to_string(), secret(&on_search)),
        ("listing".to_string(), secret(&on_listing)),
    ])
}

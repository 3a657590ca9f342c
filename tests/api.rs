//! The price-tracker API end to end, over HTTP only, on both backends: the real `scrapefarm`
//! binary serves the API (`serve`, whose collector renders the fixture's search pages in its own
//! Chromium) and a real `scrapefarm worker` process stores the listings; the keys come from the
//! real `apikey create`. One test body runs on PostgreSQL + RabbitMQ and on the embedded default.

mod common;
#[path = "api/watches.rs"]
mod watches;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scrapefarm::fixture_site::{FixtureConfig, TruthListing};
use serde_json::{Value, json};

use common::private::spare_port;
use common::process::Running;
use common::{AMQP, Backend, Farm};

const QUERY: &str = "lamp";

/// The API of one `serve` process, and the keys to call it with.
struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    write_key: String,
    read_key: String,
}

/// One answer: status, content type, `WWW-Authenticate`, and the body (JSON when it parses).
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    challenge: Option<String>,
    text: String,
    json: Value,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_string()));
        let call = self.client.request(request.body(body).unwrap());
        let response = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("the API answers within 30 s")
            .expect("the API answers");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (status, content_type) = (response.status().as_u16(), header("content-type"));
        let challenge = header("www-authenticate");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            content_type: content_type.unwrap_or_default(),
            challenge,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, Some(&self.read_key), None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        let body = body.to_string();
        self.call("POST", path, Some(&self.write_key), Some(&body))
            .await
    }
}

/// The environment every `scrapefarm` process of this farm runs with.
fn farm_command(farm: &Farm, sites: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
    cmd.args(args);
    farm_env(&mut cmd, farm, sites);
    cmd
}

fn farm_env(cmd: &mut Command, farm: &Farm, sites: &Path) {
    cmd.env("DATABASE_URL", &farm.db_url)
        .env("SCRAPEFARM_QUEUE", &farm.queue_name)
        .env("SCRAPEFARM_PROFILE_DIR", farm.profiles())
        .env("SCRAPEFARM_SNAPSHOT_DIR", farm.snapshots())
        .env("SCRAPEFARM_SITES_DIR", sites)
        .env("SCRAPEFARM_DATA_DIR", farm.dir.path())
        .env_remove("SCRAPEFARM_BIND");
    match farm.backend {
        Backend::Served => cmd.env("AMQP_URL", AMQP),
        Backend::Embedded => cmd.env_remove("AMQP_URL"),
    };
}

/// The site definitions with the fixture pointed at this farm's fixture site.
fn sites_dir(farm: &Farm) -> PathBuf {
    let dir = farm.dir.path().join("sites");
    std::fs::create_dir_all(&dir).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
    for entry in std::fs::read_dir(repo).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = match path.file_name().unwrap() == "fixture.toml" {
            true => text.replace("http://127.0.0.1:8377", &farm.fixture.base_url()),
            false => text,
        };
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// `scrapefarm apikey create`: the key alone on stdout.
fn create_key(farm: &Farm, sites: &Path, name: &str, scope: &str) -> String {
    let out = farm_command(
        farm,
        sites,
        &["apikey", "create", "--name", name, "--scope", scope],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Starts `serve` on a spare port and waits until `/health` answers.
async fn start_api(farm: &Farm, sites: &Path) -> (Running, Api) {
    let keys = (
        create_key(farm, sites, "writer", "write"),
        create_key(farm, sites, "reader", "read"),
    );
    restart_api(farm, sites, keys, "collector").await
}

/// Starts a `serve` process calling with these keys; its collector renders with `profile`.
/// Alert delivery is quick to retry and to take over (short leases) so the test stays short.
async fn restart_api(
    farm: &Farm,
    sites: &Path,
    (write_key, read_key): (String, String),
    profile: &str,
) -> (Running, Api) {
    let port = spare_port();
    let bind = format!("127.0.0.1:{port}");
    let args = [
        "serve",
        "--bind",
        &bind,
        "--collector-profile",
        profile,
        "--lease-secs",
        "3",
        "--poll-ms",
        "200",
        "--retry-min-ms",
        "200",
        "--retry-max-ms",
        "1000",
    ];
    let mut cmd = farm_command(farm, sites, &args);
    cmd.stdout(Stdio::null());
    let serve = Running(cmd.spawn().unwrap());
    let api = Api {
        base: format!("http://{bind}"),
        client: Client::builder(TokioExecutor::new()).build_http(),
        write_key,
        read_key,
    };
    let started = Instant::now();
    loop {
        let health = api
            .client
            .get(format!("{}/health", api.base).parse().unwrap());
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), health).await
            && r.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (serve, api)
}

/// Every listing of a search, paging with `limit` (asserting the pages never overlap).
async fn all_pages(api: &Api, filter: &str, limit: usize) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let after = cursor
            .as_deref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page = api
            .get(&format!("/api/v1/listings?limit={limit}{filter}{after}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        let batch = page.json["items"].as_array().unwrap().clone();
        assert!(batch.len() <= limit, "a page holds at most `limit` items");
        items.extend(batch);
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return items,
        }
    }
    panic!("pagination never ended");
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["external_id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until every listing of the search is stored (none pending) and returns them by id.
async fn wait_until_stored(api: &Api, search_id: i64, n: usize) -> HashMap<String, Value> {
    let started = Instant::now();
    loop {
        let items = all_pages(api, &format!("&search_id={search_id}"), 500).await;
        if items.len() == n && items.iter().all(|i| i["status"] != "pending") {
            return ids(&items).into_iter().zip(items).collect();
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "listings not stored in time: {} of {n}",
            items.iter().filter(|i| i["status"] != "pending").count()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until each priced listing has `n` price observations.
async fn wait_for_observations(api: &Api, priced: &[&TruthListing], n: usize) {
    let started = Instant::now();
    for truth in priced {
        loop {
            let path = format!("/api/v1/listings/fixture/{}", truth.external_id);
            let detail = api.get(&path).await;
            assert_eq!(detail.status, 200, "{}", detail.text);
            let history = detail.json["price_history"].as_array().unwrap();
            if history.len() >= n {
                assert_eq!(
                    history.len(),
                    n,
                    "{}: one observation per run",
                    truth.external_id
                );
                for obs in history {
                    assert_eq!(obs["price_minor"].as_i64(), truth.price_minor);
                    assert_eq!(obs["currency"].as_str(), truth.currency.as_deref());
                }
                let times: Vec<i64> = history
                    .iter()
                    .map(|o| o["observed_at"].as_i64().unwrap())
                    .collect();
                assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(150),
                "{}: {} of {n} observations",
                truth.external_id,
                history.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Waits until the search's latest run has this status (`done`: all its listings enriched).
async fn wait_for_run_status(api: &Api, search_id: i64, status: &str) {
    let started = Instant::now();
    loop {
        let search = api.get(&format!("/api/v1/searches/{search_id}")).await;
        if search.json["last_run_status"] == status {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run never {status}: {}",
            search.text
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A problem+json answer with this status.
fn assert_problem(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(
        answer.content_type, "application/problem+json",
        "{answer:?}"
    );
    assert_eq!(answer.json["status"], status, "{}", answer.text);
    assert!(answer.json["type"].is_string() && answer.json["title"].is_string());
    assert!(answer.json["detail"].is_string());
}

/// Pagination, filters and one listing with its history, checked against the ground truth.
async fn check_listings(api: &Api, search_id: i64, truth: &[TruthListing]) {
    let truth_ids: BTreeSet<String> = truth.iter().map(|t| t.external_id.clone()).collect();
    let paged = ids(&all_pages(api, &format!("&search_id={search_id}"), 5).await);
    let unique: BTreeSet<String> = paged.iter().cloned().collect();
    assert_eq!(unique.len(), paged.len(), "no listing on two pages");
    assert_eq!(
        unique, truth_ids,
        "all pages together are the search's listings"
    );

    let active: BTreeSet<String> = truth
        .iter()
        .filter(|t| t.status == "active")
        .map(|t| t.external_id.clone())
        .collect();
    let got: BTreeSet<String> = ids(&all_pages(api, "&status=active&site=fixture", 3).await)
        .into_iter()
        .collect();
    assert_eq!(got, active, "status filter");

    let mut prices: Vec<i64> = truth.iter().filter_map(|t| t.price_minor).collect();
    prices.sort();
    let (low, high) = (prices[prices.len() / 4], prices[prices.len() * 3 / 4]);
    let in_range: BTreeSet<String> = truth
        .iter()
        .filter(|t| t.currency.as_deref() == Some("USD"))
        .filter(|t| t.price_minor.is_some_and(|p| (low..=high).contains(&p)))
        .map(|t| t.external_id.clone())
        .collect();
    let filter = format!("&min_price_minor={low}&max_price_minor={high}&currency=usd");
    let got: BTreeSet<String> = ids(&all_pages(api, &filter, 2).await).into_iter().collect();
    assert_eq!(got, in_range, "price range filter");

    let word = truth
        .iter()
        .filter_map(|t| t.title.as_deref())
        .flat_map(str::split_whitespace)
        .find(|w| w.len() >= 4 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .unwrap()
        .to_uppercase();
    let matching: BTreeSet<String> = truth
        .iter()
        .filter(|t| {
            t.title
                .as_deref()
                .is_some_and(|x| x.to_uppercase().contains(&word))
        })
        .map(|t| t.external_id.clone())
        .collect();
    let got: BTreeSet<String> = ids(&all_pages(api, &format!("&q={word}"), 500).await)
        .into_iter()
        .collect();
    assert_eq!(got, matching, "title filter on {word:?}");
}

/// A search of listing URLs: its listings are the URLs given, stored by the worker.
async fn check_url_search(api: &Api, truth: &[TruthListing]) {
    let urls: Vec<&str> = truth.iter().take(2).map(|t| t.url.as_str()).collect();
    let created = api
        .post(
            "/api/v1/searches",
            &json!({"site": "fixture", "urls": urls}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["query"], Value::Null);
    assert_eq!(created.json["urls"], json!(urls));
    let id = created.json["id"].as_i64().unwrap();
    wait_for_run_status(api, id, "done").await;
    let got = ids(&all_pages(api, &format!("&search_id={id}"), 10).await);
    let want: Vec<String> = truth
        .iter()
        .take(2)
        .map(|t| t.external_id.clone())
        .collect();
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        want.into_iter().collect()
    );
}

/// The answers every caller gets wrong at some point.
async fn check_problems(api: &Api, search_id: i64) {
    let none = api.call("GET", "/api/v1/searches", None, None).await;
    assert_problem(&none, 401);
    assert_eq!(none.challenge.as_deref(), Some("Bearer"));
    let unknown = api
        .call("GET", "/api/v1/listings", Some("sf_not_a_key"), None)
        .await;
    assert_problem(&unknown, 401);
    let body = json!({"site": "fixture", "query": "desk"}).to_string();
    let read_write = api
        .call("POST", "/api/v1/searches", Some(&api.read_key), Some(&body))
        .await;
    assert_problem(&read_write, 403);
    let run_read = api
        .call(
            "POST",
            &format!("/api/v1/searches/{search_id}/runs"),
            Some(&api.read_key),
            None,
        )
        .await;
    assert_problem(&run_read, 403);

    assert_problem(&api.get("/api/v1/searches/987654").await, 404);
    assert_problem(&api.get("/api/v1/listings/fixture/0").await, 404);
    assert_problem(
        &api.post("/api/v1/searches/987654/runs", &json!({})).await,
        404,
    );
    assert_problem(&api.get("/api/v1/searches/abc").await, 400);
    assert_problem(&api.get("/api/v1/listings?cursor=forged").await, 400);
    assert_problem(&api.get("/api/v1/listings?limit=ten").await, 400);

    let site = api
        .post(
            "/api/v1/searches",
            &json!({"site": "nowhere", "query": "x"}),
        )
        .await;
    assert_problem(&site, 422);
    let known = site.json["known_sites"].as_array().unwrap();
    assert!(known.contains(&json!("fixture")), "{}", site.text);
    let every = api
        .post(
            "/api/v1/searches",
            &json!({"site": "fixture", "query": "x", "every": "5x"}),
        )
        .await;
    assert_problem(&every, 422);
    assert_eq!(every.json["errors"][0]["field"], "every");
    let short = api
        .post(
            "/api/v1/searches",
            &json!({"site": "fixture", "query": "x", "every": "5s"}),
        )
        .await;
    assert_problem(&short, 422);
    let pages = api
        .post(
            "/api/v1/searches",
            &json!({"site": "fixture", "query": "x", "max_pages": 0}),
        )
        .await;
    assert_problem(&pages, 422);
    let urls = json!({"site": "fixture", "urls": ["https://elsewhere.example/item/1"]});
    let foreign = api.post("/api/v1/searches", &urls).await;
    assert_problem(&foreign, 422);
    assert_eq!(foreign.json["errors"][0]["field"], "urls[0]");
    assert_problem(&api.get("/api/v1/listings?limit=0").await, 422);

    let broken = api
        .call(
            "POST",
            "/api/v1/searches",
            Some(&api.write_key),
            Some("{\"site\": "),
        )
        .await;
    assert_problem(&broken, 400);
    let shaped = api
        .call(
            "POST",
            "/api/v1/searches",
            Some(&api.write_key),
            Some("{\"site\": 5}"),
        )
        .await;
    assert_problem(&shaped, 422);
    assert_problem(&api.get("/api/v1/nothing-here").await, 404);
    let put = api
        .call("PUT", "/api/v1/searches", Some(&api.write_key), None)
        .await;
    assert_problem(&put, 405);
}

/// The open endpoints: probes, metrics, the generated document and the docs page.
/// A schedule pauses (no next run; the same again changes nothing) and resumes from now; a
/// search without a schedule has nothing to pause (409); a read key may not (403).
async fn check_schedule_pause(api: &Api, search_id: i64) {
    let pause = format!("/api/v1/searches/{search_id}/pause");
    let read = api.call("POST", &pause, Some(&api.read_key), None).await;
    assert_problem(&read, 403);
    for _ in 0..2 {
        let paused = api.post(&pause, &json!({})).await;
        assert_eq!(paused.status, 200, "{}", paused.text);
        assert_eq!(paused.json["paused"], true);
        assert_eq!(paused.json["next_run_at"], Value::Null);
        assert_eq!(paused.json["every"], "1d");
    }
    let listed = api.get("/api/v1/searches").await;
    let unscheduled = listed.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["every"].is_null())
        .unwrap_or_else(|| panic!("a search without a schedule: {}", listed.text));
    let id = unscheduled["id"].as_i64().unwrap();
    let nothing = api
        .post(&format!("/api/v1/searches/{id}/pause"), &json!({}))
        .await;
    assert_problem(&nothing, 409);
    assert_problem(
        &api.post("/api/v1/searches/987654/pause", &json!({})).await,
        404,
    );
    let resumed = api
        .post(&format!("/api/v1/searches/{search_id}/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    assert_eq!(resumed.json["paused"], false);
    let day_ms = 86_400_000;
    let next = resumed.json["next_run_at"].as_i64().unwrap();
    let created = resumed.json["created_at"].as_i64().unwrap();
    assert!(next > created + day_ms / 2, "{}", resumed.text);
}

async fn check_open_endpoints(api: &Api) {
    let health = api.call("GET", "/health", None, None).await;
    assert_eq!(
        (health.status, health.json["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = api.call("GET", "/ready", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let metrics = api.call("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .contains("scrapefarm_listings{status=\"active\"}"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("scrapefarm_queue_messages{state=\"ready\"}")
    );
    // The watches' alerts were all delivered by now.
    assert!(
        metrics
            .text
            .contains("scrapefarm_alerts{state=\"pending\"} 0\n")
            && metrics
                .text
                .contains("scrapefarm_alerts{state=\"delivered\"} "),
        "{}",
        metrics.text
    );
    let doc = api.call("GET", "/openapi.json", None, None).await;
    assert!(
        doc.json["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc.text
    );
    assert!(doc.json["paths"]["/api/v1/listings"]["get"].is_object());
    let docs = api.call("GET", "/docs", None, None).await;
    assert!(docs.content_type.starts_with("text/html") && docs.text.contains("/api/v1/searches"));
}

/// Watches on the search and on one listing; prices move a step; run 3; the `serve` process
/// delivering the pending alerts is killed and started again: every implied alert arrives once.
async fn check_watches(
    farm: &Farm,
    sites: &Path,
    serve: Running,
    api: Api,
    search_id: i64,
) -> (Running, Api) {
    let before = farm.fixture.ground_truth(QUERY);
    farm.fixture.set_price_step(1);
    let after = farm.fixture.ground_truth(QUERY);
    let dropped = after
        .iter()
        .find(|a| {
            let b = before
                .iter()
                .find(|b| b.external_id == a.external_id)
                .unwrap();
            matches!((a.price_minor, b.price_minor), (Some(n), Some(p)) if n < p)
        })
        .expect("step 1 lowers some price");
    let old_price = before
        .iter()
        .find(|b| b.external_id == dropped.external_id)
        .and_then(|b| b.price_minor)
        .unwrap();
    let below = (dropped.external_id.as_str(), old_price);
    let receiver = watches::Receiver::start(503).await;
    let secrets = watches::create_watches(&api, &receiver, search_id, 20, below).await;
    let implied = watches::implied_alerts(&before, &after, 20, below);
    assert!(implied.len() >= 2, "{implied:?}");

    let run = api
        .post(&format!("/api/v1/searches/{search_id}/runs"), &json!({}))
        .await;
    assert_eq!(
        (run.status, run.json["run"].as_i64()),
        (202, Some(3)),
        "{}",
        run.text
    );
    let within = Duration::from_secs(150);
    watches::wait_for_alerts(&api, implied.len(), "pending", within).await;
    let started = Instant::now();
    // Every alert tried (and refused) at least once before the kill.
    let tried = |r: &[watches::Receipt]| {
        let keys: BTreeSet<&str> = r.iter().map(|r| r.idempotency_key.as_str()).collect();
        keys.len()
    };
    while tried(&receiver.receipts()) < implied.len() {
        assert!(started.elapsed() < within, "not every alert was tried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SIGKILL while every alert is pending: nothing is lost, nothing delivered twice.
    drop(serve);
    receiver.answer(200);
    let keys = (api.write_key.clone(), api.read_key.clone());
    let (serve, api) = restart_api(farm, sites, keys, "collector-2").await;
    let delivered = watches::wait_for_alerts(&api, implied.len(), "delivered", within).await;
    assert!(
        delivered.iter().all(|a| a["attempts"].as_i64() >= Some(2)),
        "{delivered:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    watches::check_receipts(&receiver.receipts(), &secrets, &implied, &before, &after);
    wait_for_run_status(&api, search_id, "done").await;
    farm.fixture.set_price_step(0);
    (serve, api)
}

async fn tracker_api_end_to_end(backend: Backend) {
    let config = FixtureConfig {
        listings_per_query: 12,
        per_page: 5,
        ..FixtureConfig::default()
    };
    let farm = Farm::start_on(backend, config).await;
    let sites = sites_dir(&farm);
    let (mut serve, api) = start_api(&farm, &sites).await;
    let mut worker = farm.worker_command("api-worker");
    farm_env(&mut worker, &farm, &sites);
    worker.args(["--concurrency", "2"]).stderr(Stdio::null());
    let _worker = Running(worker.spawn().unwrap());

    let created = api
        .post(
            "/api/v1/searches",
            &json!({"site": "fixture", "query": QUERY, "max_pages": 5, "every": "1d"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let search_id = created.json["id"].as_i64().unwrap();
    assert_eq!(created.json["every"], "1d");
    assert!(
        created.json["next_run_at"].as_i64().unwrap()
            > created.json["created_at"].as_i64().unwrap()
    );

    let truth = farm.fixture.ground_truth(QUERY);
    let stored = wait_until_stored(&api, search_id, truth.len()).await;
    for t in &truth {
        let row = &stored[&t.external_id];
        assert_eq!(
            row["status"].as_str(),
            Some(t.status.as_str()),
            "{}",
            t.external_id
        );
        assert_eq!(
            row["price_minor"].as_i64(),
            t.price_minor,
            "{}",
            t.external_id
        );
    }
    check_listings(&api, search_id, &truth).await;
    let priced: Vec<&TruthListing> = truth.iter().filter(|t| t.price_minor.is_some()).collect();
    wait_for_observations(&api, &priced, 1).await;

    wait_for_run_status(&api, search_id, "done").await;

    let run = api
        .post(&format!("/api/v1/searches/{search_id}/runs"), &json!({}))
        .await;
    assert_eq!(run.status, 202, "{}", run.text);
    assert_eq!(run.json["run"], 2);
    wait_for_observations(&api, &priced, 2).await;
    let search = api.get(&format!("/api/v1/searches/{search_id}")).await;
    assert_eq!(search.json["runs"], 2, "{}", search.text);
    assert_eq!(search.json["listings"], truth.len());

    wait_for_run_status(&api, search_id, "done").await;
    let (serve_again, api) = check_watches(&farm, &sites, serve, api, search_id).await;
    serve = serve_again;
    check_url_search(&api, &truth).await;
    check_problems(&api, search_id).await;
    check_schedule_pause(&api, search_id).await;
    check_open_endpoints(&api).await;

    let deleted = api
        .call(
            "DELETE",
            &format!("/api/v1/searches/{search_id}"),
            Some(&api.write_key),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_problem(
        &api.get(&format!("/api/v1/searches/{search_id}")).await,
        404,
    );
    let kept = all_pages(&api, &format!("&search_id={search_id}"), 500).await;
    assert_eq!(
        kept.len(),
        truth.len(),
        "a deleted search keeps its listings"
    );

    let keys = farm_command(&farm, &sites, &["apikey", "ls", "--json"])
        .output()
        .unwrap();
    let keys = String::from_utf8(keys.stdout).unwrap();
    for line in keys.lines() {
        let key: Value = serde_json::from_str(line).unwrap();
        assert!(
            key["last_used_at"].is_i64(),
            "use of a key is noted: {line}"
        );
    }

    // SIGTERM: the server, its scheduler and its collector stop cleanly.
    serve.terminate(Duration::from_secs(40));
    drop(_worker);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_api_serves_searches_and_listings_on_postgres_and_rabbitmq() {
    tracker_api_end_to_end(Backend::Served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_api_serves_searches_and_listings_on_the_embedded_default() {
    tracker_api_end_to_end(Backend::Embedded).await;
}

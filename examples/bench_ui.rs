//! The dashboard's benchmark: seeds a database with 1,000,000 listings and 5,000,000 price
//! observations (set-based SQL: `generate_series` on PostgreSQL, a recursive CTE on SQLite),
//! serves the dashboard from this process on a free port and times its pages over HTTP on
//! 127.0.0.1 — the listings table's first page, a filtered page, a deep keyset page, and a
//! listing — printing the median and 95th percentile per page and backend, then PostgreSQL's
//! `EXPLAIN ANALYZE` of the table's queries. Not a test: it takes minutes and a few GB.
//!
//! ```text
//! cargo run --release --example bench_ui -- [--backend pg|sqlite|both] [--listings 1000000]
//!     [--pg postgres://postgres@127.0.0.1:5432/sf_bench_ui] [--sqlite target/bench-ui.db] [--runs 30]
//! ```
//! A database already seeded with as many bench listings is reused (`--reseed` starts over).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use scrapefarm::api::AppState;
use scrapefarm::api_key::hash_key;
use scrapefarm::queue::{AnyQueue, EmbeddedQueue};
use scrapefarm::site::Sites;
use scrapefarm::store::dashboard::{ListingSort, TableQuery};
use scrapefarm::store::{Backend, Store};
use scrapefarm::tracker::Tracker;
use scrapefarm::ui::{UiState, router};

const OBSERVATIONS_PER_LISTING: i64 = 5;
/// The bench listings' first-seen time: 2026-01-01 UTC.
const T0: i64 = 1_767_225_600_000;

struct Args {
    backends: Vec<&'static str>,
    listings: i64,
    pg: String,
    sqlite: String,
    runs: usize,
    reseed: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        backends: vec!["pg", "sqlite"],
        listings: 1_000_000,
        pg: "postgres://postgres@127.0.0.1:5432/sf_bench_ui".into(),
        sqlite: "target/bench-ui.db".into(),
        runs: 30,
        reseed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                args.backends = match value()?.as_str() {
                    "pg" => vec!["pg"],
                    "sqlite" => vec!["sqlite"],
                    "both" => vec!["pg", "sqlite"],
                    other => anyhow::bail!("--backend {other}: expected pg, sqlite or both"),
                }
            }
            "--listings" => args.listings = value()?.parse().context("--listings: a number")?,
            "--pg" => args.pg = value()?,
            "--sqlite" => args.sqlite = value()?,
            "--runs" => args.runs = value()?.parse().context("--runs: a number")?,
            "--reseed" => args.reseed = true,
            other => anyhow::bail!(
                "unknown flag {other}; see the comment at the top of examples/bench_ui.rs"
            ),
        }
    }
    Ok(args)
}

/// The rows `1..=n` as a FROM source named `g(n)` for `select`, on `backend`.
fn generated(backend: Backend, n: i64, insert: &str, select: &str) -> String {
    match backend {
        Backend::Postgres => {
            format!("{insert} {select} FROM generate_series(CAST(1 AS BIGINT), {n}) AS g(n)")
        }
        Backend::Sqlite => format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {n}) \
             {insert} {select} FROM g"
        ),
    }
}

/// Seeds `n` listings on four sites with five observations each (the last one the current
/// price), unless as many are there already.
async fn seed(store: &Store, n: i64, reseed: bool) -> anyhow::Result<()> {
    let pool = store.pool();
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM listings WHERE site LIKE 'bench-%'")
        .fetch_one(pool)
        .await?;
    if have == n && !reseed {
        println!("  reusing {have} seeded listings");
        return Ok(());
    }
    // One connection without the store's 30 s statement timeout: the inserts take minutes.
    let mut conn = pool.acquire().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .await?;
    }
    for table in [
        "price_observations",
        "snapshots",
        "search_hits",
        "attempts",
        "listings",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *conn)
            .await?;
    }
    let started = Instant::now();
    let listings = generated(
        store.backend(),
        n,
        "INSERT INTO listings (site, external_id, url, title, price_minor, currency, status, \
         first_seen, last_enriched, specifics, images, condition, seller)",
        &format!(
            "SELECT 'bench-' || (n % 4), 'b' || n, 'https://bench.example/item/' || n, \
             'Bench ' || CASE n % 5 WHEN 0 THEN 'lamp' WHEN 1 THEN 'chair' WHEN 2 THEN 'desk' \
             WHEN 3 THEN 'clock' ELSE 'rug' END || ' ' || n, 1000 + (n * 7919) % 100000, 'USD', \
             CASE WHEN n % 10 = 0 THEN 'ended' WHEN n % 97 = 0 THEN 'gone' ELSE 'active' END, \
             {T0} + n * 1000, {T0} + n * 2000, '{{\"Brand\":\"Bench\"}}', '[]', 'Used', 'seller' || (n % 1000)"
        ),
    );
    sqlx::query(sqlx::AssertSqlSafe(listings))
        .execute(&mut *conn)
        .await?;
    println!("  {n} listings in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let observations = match store.backend() {
        Backend::Postgres => format!(
            "INSERT INTO price_observations (listing_id, job_id, observed_at, price_minor, currency, observation_key) \
             SELECT l.id, 'bench-' || k, l.first_seen + k * 3600000, l.price_minor + ({OBSERVATIONS_PER_LISTING} - k) * (l.id % 7) * 50, \
             'USD', 'bench:' || k FROM listings l CROSS JOIN generate_series(1, {OBSERVATIONS_PER_LISTING}) AS k"
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE g(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM g WHERE k < {OBSERVATIONS_PER_LISTING}) \
             INSERT INTO price_observations (listing_id, job_id, observed_at, price_minor, currency, observation_key) \
             SELECT l.id, 'bench-' || k, l.first_seen + k * 3600000, l.price_minor + ({OBSERVATIONS_PER_LISTING} - k) * (l.id % 7) * 50, \
             'USD', 'bench:' || k FROM listings l CROSS JOIN g"
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(observations))
        .execute(&mut *conn)
        .await?;
    println!(
        "  {} observations in {:.1} s",
        n * OBSERVATIONS_PER_LISTING,
        started.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE").execute(&mut *conn).await?;
    Ok(())
}

/// A signed-in session's cookie, opened straight in the store.
async fn cookie(store: &Store) -> anyhow::Result<String> {
    let key_hash = hash_key("sf_bench_key");
    store.create_api_key("bench", "read", &key_hash).await?;
    let token = format!("bench{}", scrapefarm::clock::now_ms());
    store
        .create_ui_session(&hash_key(&token), &key_hash, "csrf", 3_600_000)
        .await?;
    Ok(format!("{}={token}", scrapefarm::ui::SESSION_COOKIE))
}

/// Median and 95th percentile of `runs` GETs of `path` (after two to warm up), in ms.
async fn time_page(
    base: &str,
    cookie: &str,
    path: &str,
    runs: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut times = Vec::new();
    let mut size = 0;
    for run in 0..runs + 2 {
        let request = http::Request::get(format!("{base}{path}"))
            .header("cookie", cookie)
            .body(Empty::new())?;
        let started = Instant::now();
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let took = started.elapsed();
        anyhow::ensure!(
            status == 200,
            "{path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
        size = body.len();
        if run >= 2 {
            times.push(took);
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok((
        ms(times[times.len() / 2]),
        ms(times[(times.len() * 95).div_ceil(100) - 1]),
        size,
    ))
}

/// The pages timed, by name: (name, path).
async fn pages(store: &Store, n: i64) -> anyhow::Result<Vec<(String, String)>> {
    let deep_id: i64 = sqlx::query_scalar("SELECT id FROM listings WHERE external_id = $1")
        .bind(format!("b{}", n * 9 / 10))
        .fetch_one(store.pool())
        .await?;
    let deep_price: (i64, i64) = sqlx::query_as(
        "SELECT price_minor, id FROM listings WHERE site = 'bench-1' AND price_minor IS NOT NULL \
         ORDER BY price_minor DESC, id DESC LIMIT 1 OFFSET 200000",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(vec![
        ("listings, first page".into(), "/ui/listings".into()),
        (
            "listings, filtered (site, status, price range, sort by price)".into(),
            "/ui/listings?site=bench-2&status=active&min=100&max=500&sort=-price".into(),
        ),
        (
            "listings, text filter \"lamp\"".into(),
            "/ui/listings?q=lamp&sort=newest".into(),
        ),
        (
            format!("listings, deep keyset page (after row {})", n * 9 / 10),
            format!("/ui/listings?after=_{deep_id}"),
        ),
        (
            "listings, deep page by price on one site (200,000 rows in)".into(),
            format!(
                "/ui/listings?site=bench-1&sort=-price&after={}_{}",
                deep_price.0, deep_price.1
            ),
        ),
        (
            "one listing with its chart".into(),
            format!("/ui/listings/bench-3/b{}", n / 2 + 3),
        ),
    ])
}

async fn bench(backend: &str, args: &Args) -> anyhow::Result<Vec<(String, f64, f64, usize)>> {
    let url = match backend {
        "pg" => args.pg.clone(),
        _ => format!("sqlite://{}?mode=rwc", args.sqlite),
    };
    println!("{backend}: {}", scrapefarm::store::redact(&url));
    let store = Store::connect(&url, 8).await?;
    store.migrate().await?;
    seed(&store, args.listings, args.reseed).await?;
    let cookie = cookie(&store).await?;
    let sites = Arc::new(Sites::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
    )?);
    let queue = AnyQueue::Embedded(EmbeddedQueue::new(&store, "bench-ui"));
    let app = AppState::new(Tracker::new(store.clone(), sites), queue);
    let ui = router(UiState {
        app,
        snapshots: "target/bench-ui-snapshots".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, ui).await });
    let mut rows = Vec::new();
    for (name, path) in pages(&store, args.listings).await? {
        let (median, p95, bytes) = time_page(&base, &cookie, &path, args.runs).await?;
        rows.push((name, median, p95, bytes));
    }
    server.abort();
    if store.backend() == Backend::Postgres {
        explain(&store).await?;
    }
    store.close().await;
    Ok(rows)
}

/// `EXPLAIN ANALYZE` of the table's first page and its filtered page, values inlined.
async fn explain(store: &Store) -> anyhow::Result<()> {
    let queries = [
        TableQuery {
            limit: 51,
            ..TableQuery::default()
        },
        TableQuery {
            site: Some("bench-2".into()),
            status: Some("active".into()),
            min_price_minor: Some(10_000),
            max_price_minor: Some(50_000),
            sort: ListingSort::PriceHigh,
            limit: 51,
            ..TableQuery::default()
        },
    ];
    for query in queries {
        let (mut sql, values) = Store::listing_table_sql(&query);
        for (i, value) in values.iter().enumerate().rev() {
            sql = sql.replace(&format!("${}", i + 1), value);
        }
        let plan: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN ANALYZE {sql}")))
                .fetch_all(store.pool())
                .await?;
        println!("\nEXPLAIN ANALYZE {sql}\n{}", plan.join("\n"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let mut table = Vec::new();
    for backend in &args.backends {
        for row in bench(backend, &args).await? {
            table.push((backend.to_string(), row));
        }
    }
    println!("\n| backend | page | median ms | p95 ms | bytes |\n|---|---|---:|---:|---:|");
    for (backend, (name, median, p95, bytes)) in table {
        println!("| {backend} | {name} | {median:.1} | {p95:.1} | {bytes} |");
    }
    Ok(())
}

//! The commands: each builds the components it needs from the parsed settings and runs. Errors
//! here carry context for the operator (`anyhow` at the edge).

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::cli::{Common, EnqueueArgs, FixtureArgs, GrantWorkerArgs, WorkerArgs};
use crate::collect::{collect, jobs_from_urls, publish_urls};
use crate::fixture_site::{Defences, FixtureConfig};
use crate::pipeline::Pipeline;
use crate::queue::{AnyQueue, EmbeddedQueue, Queue, QueueNames, RabbitMqQueue};
use crate::render::{
    AnyRenderer, BrowserBuild, BrowserSettings, CdpRenderer, Renderer, Retirement,
    WebDriverRenderer, build, profile,
};
use crate::site::Sites;
use crate::store::Store;
use crate::store::leases::{ProfileLease, lease_host};
use crate::store::roles;
use crate::worker::{Reporting, WorkerSettings, bind_metrics, run_worker};

mod demo;
mod open;
mod serve;

pub use demo::demo;
pub use open::{FinishedWithFailures, NoDatabase, migrate, open_existing_store, sqlite_file};
pub use serve::{scheduler, serve};

/// Loads site definitions, applying `--base-url` to `site` when given.
pub fn load_sites(common: &Common, site: Option<&str>) -> anyhow::Result<Sites> {
    let mut sites = Sites::load_from(common.sites_dir.as_deref())?;
    if let (Some(base), Some(site)) = (&common.base_url, site) {
        sites.set_base_url(site, base)?;
    }
    Ok(sites)
}

/// Connections of a command's pool: enough for any command but a worker's.
const POOL_SIZE: u32 = 16;

/// Connections a worker's pool may open: each delivery it holds (concurrency × prefetch per
/// tab) needs at most one at a time, plus one for the store-outage ping. Sixteen workers of
/// concurrency 1 then hold at most 48, well under PostgreSQL's default max_connections of 100
/// (with the old fixed 16 they could ask for 256).
pub fn worker_pool_size(concurrency: usize) -> u32 {
    let deliveries = concurrency.max(1) * crate::worker::PREFETCH_PER_TAB;
    u32::try_from(deliveries + 1).map_or(POOL_SIZE, |n| n.min(POOL_SIZE))
}

/// Creates the data directory of the embedded database (nothing to do with `DATABASE_URL` set).
pub(crate) fn ensure_data_dir(common: &Common) -> anyhow::Result<()> {
    if common.database_url.is_none() {
        std::fs::create_dir_all(&common.data_dir).with_context(|| {
            format!(
                "Data directory {} is not writable",
                common.data_dir.display()
            )
        })?;
    }
    Ok(())
}

/// Connects to the database (creating the embedded one if needed) and applies migrations.
pub async fn connect_store(common: &Common) -> anyhow::Result<Store> {
    connect_store_with(common, POOL_SIZE).await
}

/// [`connect_store`] with a pool of at most `max_connections`.
pub async fn connect_store_with(common: &Common, max_connections: u32) -> anyhow::Result<Store> {
    ensure_data_dir(common)?;
    let store = Store::connect(&common.database_url(), max_connections).await?;
    store.migrate().await?;
    Ok(store)
}

/// RabbitMQ when `AMQP_URL` is set, else the embedded queue in the store's database.
pub async fn connect_queue(common: &Common, store: &Store) -> anyhow::Result<AnyQueue> {
    Ok(match &common.amqp_url {
        Some(url) => {
            AnyQueue::RabbitMq(RabbitMqQueue::connect(url, QueueNames::new(&common.queue)).await?)
        }
        None => AnyQueue::Embedded(EmbeddedQueue::new(store, &common.queue)),
    })
}

/// Claims the profile and launches the browser.
pub async fn launch_renderer(
    common: &Common,
    worker_id: &str,
    tabs: usize,
    block_resources: bool,
) -> anyhow::Result<AnyRenderer> {
    // chromedriver drives the full browser; the CDP renderer may use the headless shell.
    let chrome = match common.renderer.as_str() {
        "webdriver" => build::pick(BrowserBuild::Full, &common.chrome, &common.headless_shell)?,
        _ => build::pick(common.cdp_browser, &common.chrome, &common.headless_shell)?,
    };
    let profile_dir = profile::claim(&common.profile_dir, worker_id)?;
    let settings = BrowserSettings {
        chrome,
        profile_dir,
        tabs,
        nav_timeout: Duration::from_secs(30),
        block_resources,
        retire: Retirement {
            max_pages: common.browser_max_pages,
            max_memory_mib: common.browser_max_memory_mib,
        },
    };
    Ok(match common.renderer.as_str() {
        "webdriver" => {
            if !common.chromedriver.exists() {
                bail!(
                    "chromedriver not found at {}. Install it with `apt-get install chromium-driver` or set CHROMEDRIVER_BIN.",
                    common.chromedriver.display()
                );
            }
            let driver = common.chromedriver.clone();
            AnyRenderer::WebDriver(Box::new(
                WebDriverRenderer::launch_with(settings, driver).await?,
            ))
        }
        _ => AnyRenderer::Cdp(CdpRenderer::launch(settings).await?),
    })
}

/// `scrapefarm db grant-worker ROLE`: the workers' least-privilege role (see `store::roles`).
pub async fn grant_worker(common: &Common, args: &GrantWorkerArgs) -> anyhow::Result<()> {
    let store = connect_store(common).await?;
    let password = std::env::var(roles::PASSWORD_VAR)
        .ok()
        .filter(|p| !p.is_empty());
    let granted = store.grant_worker(&args.role, password.as_deref()).await?;
    let what = if granted.created {
        "created"
    } else {
        "updated"
    };
    let password = if granted.password_set {
        format!("password from {}", roles::PASSWORD_VAR)
    } else {
        "password unchanged".into()
    };
    println!(
        "Role {} {what} ({password}); it may read and write the farm's tables in {} and nothing else.",
        args.role,
        crate::store::redact(&common.database_url())
    );
    Ok(())
}

pub async fn fixture_site(args: &FixtureArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = FixtureConfig {
        seed: args.seed,
        listings_per_query: args.listings_per_query,
        defences: match args.hostile {
            true => Defences::hostile(),
            false => Defences {
                challenge_rate: args.challenge_rate,
                rate_limit_rps: args.rate_limit,
                captcha_rate: args.captcha_rate,
                captcha_cooldown_secs: args.captcha_cooldown,
                error_rate: args.error_rate,
                api: args.api_defences,
                api_latency_ms: args.api_latency_ms,
                slow_api_rate: args.slow_api_rate,
                slow_api_ms: args.slow_api_ms,
                vendor_captcha: args.vendor_captcha,
            },
        },
        ..FixtureConfig::default()
    };
    println!(
        "Fixture marketplace on http://127.0.0.1:{} (Ctrl-C stops it).",
        args.port
    );
    crate::fixture_site::serve(config, args.port, shutdown)
        .await
        .with_context(|| format!("Failed to serve the fixture site on port {}", args.port))
}

pub async fn enqueue(common: &Common, args: &EnqueueArgs) -> anyhow::Result<()> {
    let sites = load_sites(common, Some(&args.site))?;
    let site = sites.get(&args.site)?;
    let store = connect_store(common).await?;
    let queue = connect_queue(common, &store).await?;
    if let Some(path) = &args.urls {
        let text = read_url_list(path)?;
        let (jobs, rejected) = jobs_from_urls(site, &text, store.db_now_ms().await?);
        // Recorded as a search, so `searches` follows it to done like a collected one.
        let search_id = store
            .create_search(&site.name, &format!("urls:{}", path.display()), 1)
            .await?;
        let published = publish_urls(site, &jobs, search_id, &store, &queue).await?;
        store
            .finish_collection(search_id, jobs.len(), published)
            .await?;
        queue.close().await;
        println!(
            "Search {search_id}: published {published} jobs for site {}.",
            site.name
        );
        for r in &rejected {
            eprintln!("line {}: `{}`: {}", r.line, r.text, r.reason);
        }
        if !rejected.is_empty() {
            bail!(
                "{} lines were not valid listing URLs and were not queued",
                rejected.len()
            );
        }
        return Ok(());
    }
    if args.every.is_some() {
        return enqueue_tracked(common, args, store, queue).await;
    }
    let query = args.query.as_deref().unwrap_or_default();
    let renderer = launch_renderer(common, &args.profile, 1, true).await?;
    let result = collect(site, query, args.max_pages, &renderer, &store, &queue).await;
    renderer.close().await;
    let report = result?;
    println!(
        "Search {}: {} pages, {} listings found, {} jobs published.",
        report.search_id, report.pages, report.listings_found, report.jobs_published
    );
    Ok(())
}

/// `enqueue --every`: a tracked search on a schedule, whose first run is collected here; later
/// runs are started by a `serve` or `scheduler` process.
async fn enqueue_tracked(
    common: &Common,
    args: &EnqueueArgs,
    store: Store,
    queue: AnyQueue,
) -> anyhow::Result<()> {
    let sites = Arc::new(load_sites(common, Some(&args.site))?);
    let tracker = crate::tracker::Tracker::new(store, sites);
    let request = crate::tracker::SearchRequest {
        site: args.site.clone(),
        query: args.query.clone(),
        max_pages: Some(i64::from(args.max_pages)),
        every: args.every.clone(),
        urls: None,
    };
    let search = tracker.create_search(&request).await?;
    let collector = crate::tracker::runs::Collector::new(
        tracker.clone(),
        queue.clone(),
        common.clone(),
        &args.profile,
    );
    collector
        .collect_now(search.id, &CancellationToken::new())
        .await?;
    queue.close().await;
    let search = tracker.search(search.id).await?;
    println!(
        "Search {}: every {}, first run {}; {} listings found, {} jobs published. \
         `scrapefarm serve` or `scrapefarm scheduler` starts its next runs.",
        search.id,
        search.every.as_deref().unwrap_or("-"),
        search.last_run_status.as_deref().unwrap_or("-"),
        search.listings_found,
        search.jobs_published
    );
    Ok(())
}

fn read_url_list(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read URL list {}", path.display()))?;
    }
    Ok(text)
}

/// Builds a pipeline on a freshly launched browser.
pub async fn build_pipeline(
    common: &Common,
    sites: Sites,
    store: Store,
    worker_id: &str,
    concurrency: usize,
    max_attempts: u32,
    block_resources: bool,
) -> anyhow::Result<Arc<Pipeline<AnyRenderer>>> {
    std::fs::create_dir_all(&common.snapshot_dir).with_context(|| {
        format!(
            "Snapshot root {} is not writable",
            common.snapshot_dir.display()
        )
    })?;
    let renderer =
        Arc::new(launch_renderer(common, worker_id, concurrency, block_resources).await?);
    let mut pipeline = Pipeline::new(
        Arc::new(sites),
        renderer,
        store,
        common.snapshot_dir.clone(),
        worker_id,
        concurrency,
    );
    pipeline.max_attempts = max_attempts;
    Ok(Arc::new(pipeline))
}

pub async fn worker(
    common: &Common,
    args: &WorkerArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let worker_id = args.worker_id();
    let sites = load_sites(common, None)?;
    // The embedded queue polls through the same pool, so only a RabbitMQ worker is trimmed.
    let pool_size = match common.amqp_url {
        Some(_) => worker_pool_size(args.concurrency),
        None => POOL_SIZE,
    };
    let store = connect_store_with(common, pool_size).await?;
    let queue = connect_queue(common, &store).await?;
    let metrics_listener = bind_metrics(args.metrics_bind).await?;
    // One browser per profile across pods: the lease comes before the browser.
    let owner = format!("{worker_id} (pid {})", std::process::id());
    let lease = ProfileLease::acquire(&store, &worker_id, &owner, &lease_host()).await?;
    lease.keep_alive(shutdown.clone());
    let pipeline = build_pipeline(
        common,
        sites,
        store,
        &worker_id,
        args.concurrency,
        args.max_attempts,
        !args.no_blocking,
    )
    .await;
    let pipeline = match pipeline {
        Ok(pipeline) => pipeline,
        Err(e) => {
            lease.release().await;
            return Err(e);
        }
    };
    let settings = WorkerSettings {
        concurrency: args.concurrency,
        exit_when_idle: args.exit_when_idle.map(Duration::from_secs),
        shutdown_deadline: Duration::from_secs(args.shutdown_deadline),
        ready_file: Some(args.health_file(common)),
    };
    let profile = common.profile_dir.join(&worker_id);
    tracing::info!(worker = %worker_id, profile = %profile.display(), "Worker starting.");
    let heartbeat = args.heartbeat(&worker_id, &lease_host());
    let reporting = Reporting::start(pipeline.clone(), heartbeat, metrics_listener, &shutdown);
    let exit = run_worker(pipeline.clone(), queue.clone(), settings, shutdown).await;
    reporting.stop().await;
    pipeline.renderer.close().await;
    lease.release().await;
    queue.close().await;
    crate::worker::health::remove(&args.health_file(common));
    eprintln!("{}", pipeline.stats);
    let exit = exit?;
    tracing::info!(worker = %worker_id, ?exit, "Worker stopped.");
    Ok(())
}

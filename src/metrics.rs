//! Metrics: the process's one Prometheus registry (`metrics` facade + `metrics-exporter-prometheus`),
//! the names and label sets of the farm's metrics, one function per event the worker and the
//! pipeline report, and the small HTTP server that answers `GET /metrics`.
//!
//! Names follow `scrapefarm_<noun>_<unit>[_total]`; labels are low-cardinality: a site's name
//! (from the site definitions, never a URL), an outcome or kind from a closed set.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Pages that reached an outcome, by `site` and `outcome` (the attempt log's outcome: `content`,
/// `ended`, `gone`, `challenge`, `blocked`, `rate_limited`, `server_error`, `empty`,
/// `render_error`, `extract_error`, `snapshot_error`, `store_error`, `too_large`).
pub const PAGES_TOTAL: &str = "scrapefarm_pages_total";
/// Time a render took (navigation, ready condition, challenge wait), by `site`.
pub const RENDER_SECONDS: &str = "scrapefarm_render_seconds";
/// Pages answered "too many requests", by `site`.
pub const HTTP_429_TOTAL: &str = "scrapefarm_http_429_total";
/// Pages that blocked the worker, by `site` and `kind` (`blocked`: captcha or access denied;
/// `challenge`: a JavaScript interstitial that did not clear).
pub const BLOCKS_TOTAL: &str = "scrapefarm_blocks_total";
/// Attempts sent to a retry tier, by `site`.
pub const RETRIES_TOTAL: &str = "scrapefarm_retries_total";
/// Jobs dead-lettered, by `site` and `reason` ([`DeadLetterReason`]).
pub const DEAD_LETTERS_TOTAL: &str = "scrapefarm_dead_letters_total";
/// Tabs rendering a page now.
pub const TABS_IN_USE: &str = "scrapefarm_tabs_in_use";
/// PSS of the browser's process tree, bytes.
pub const BROWSER_MEMORY_BYTES: &str = "scrapefarm_browser_memory_bytes";

/// Render-time buckets, seconds: a fixture page renders in ~0.1 s, a real listing in 1–5 s, and
/// the ready and challenge timeouts end a render at 10–30 s.
const RENDER_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];

/// The label `site` takes when a job names no known site: a job's text never becomes a label.
pub const UNKNOWN_SITE: &str = "unknown";

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histograms are drained into their buckets between scrapes (the exporter leaves
/// that to its caller when it does not run its own listener).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's registry as the global recorder (once; later calls return the same
/// handle) and describes the farm's metrics. Every process kind calls this before it records:
/// the worker, and `serve` for its own `/metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(RENDER_SECONDS.into()), RENDER_BUCKETS);
            let builder = builder.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "Render-time buckets refused; exporting a summary.");
                PrometheusBuilder::new()
            });
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = ::metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "Another metrics recorder is installed; /metrics stays empty.");
            }
            describe();
            handle
        })
        .clone()
}

/// The counters' HELP texts.
const COUNTERS: [(&str, &str); 5] = [
    (PAGES_TOTAL, "Pages that reached an outcome."),
    (HTTP_429_TOTAL, "Pages answered 429 Too Many Requests."),
    (BLOCKS_TOTAL, "Pages that blocked the worker."),
    (RETRIES_TOTAL, "Attempts sent to a retry tier."),
    (DEAD_LETTERS_TOTAL, "Jobs dead-lettered."),
];

fn describe() {
    for (name, help) in COUNTERS {
        describe_counter!(name, Unit::Count, help);
    }
    describe_histogram!(RENDER_SECONDS, Unit::Seconds, "Time a page took to render.");
    describe_gauge!(TABS_IN_USE, Unit::Count, "Tabs rendering a page now.");
    describe_gauge!(
        BROWSER_MEMORY_BYTES,
        Unit::Bytes,
        "PSS of the browser's process tree."
    );
}

/// Why a job was dead-lettered: the closed set of the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The message is not a job.
    BadJob,
    /// The job names a site that has no definition.
    UnknownSite,
    /// The URL is not a listing of its site.
    BadUrl,
    /// Renders of it kept dying unfinished.
    UnfinishedRenders,
    /// The page rendered but its fields could not be read.
    ExtractError,
    /// The page is over the size limit.
    TooLarge,
    /// The database refused the listing's row.
    Rejected,
    /// Every attempt of its budget failed.
    AttemptsExhausted,
}

impl DeadLetterReason {
    pub fn label(self) -> &'static str {
        match self {
            DeadLetterReason::BadJob => "bad_job",
            DeadLetterReason::UnknownSite => "unknown_site",
            DeadLetterReason::BadUrl => "bad_url",
            DeadLetterReason::UnfinishedRenders => "unfinished_renders",
            DeadLetterReason::ExtractError => "extract_error",
            DeadLetterReason::TooLarge => "too_large",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::AttemptsExhausted => "attempts_exhausted",
        }
    }
}

/// A page of `site` reached `outcome`.
pub fn page(site: &str, outcome: &'static str) {
    counter!(PAGES_TOTAL, "site" => site.to_string(), "outcome" => outcome).increment(1);
}

/// A render of a page of `site` took `took` (whether or not it produced a page).
pub fn render_time(site: &str, took: Duration) {
    ::metrics::histogram!(RENDER_SECONDS, "site" => site.to_string()).record(took);
}

/// `site` answered 429.
pub fn rate_limited(site: &str) {
    counter!(HTTP_429_TOTAL, "site" => site.to_string()).increment(1);
}

/// `site` blocked the worker; `kind` is the page's class (`blocked` or `challenge`).
pub fn blocked(site: &str, kind: &'static str) {
    counter!(BLOCKS_TOTAL, "site" => site.to_string(), "kind" => kind).increment(1);
}

/// An attempt of a job of `site` goes to a retry tier.
pub fn retry(site: &str) {
    counter!(RETRIES_TOTAL, "site" => site.to_string()).increment(1);
}

/// A job of `site` is dead-lettered.
pub fn dead_letter(site: &str, reason: DeadLetterReason) {
    let labels = [
        ("site", site.to_string()),
        ("reason", reason.label().into()),
    ];
    counter!(DEAD_LETTERS_TOTAL, &labels).increment(1);
}

/// The browser's process tree uses `bytes` (PSS).
pub fn browser_memory(bytes: u64) {
    gauge!(BROWSER_MEMORY_BYTES).set(bytes as f64);
}

/// A tab is rendering while this lives: counted in [`TABS_IN_USE`] from `take` to drop, so
/// every early return gives the tab back to the gauge.
#[derive(Debug)]
pub struct TabInUse(());

impl TabInUse {
    pub fn take() -> TabInUse {
        gauge!(TABS_IN_USE).increment(1.0);
        TabInUse(())
    }
}

impl Drop for TabInUse {
    fn drop(&mut self) {
        gauge!(TABS_IN_USE).decrement(1.0);
    }
}

/// `GET /metrics` on `handle`'s registry, to serve alone or merged into a larger router.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(handle)
}

async fn render(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render())
}

/// Serves [`router`] on `bind` (already bound, so a taken port fails the command at start, not
/// in a background task) until shutdown, draining histograms every few seconds meanwhile.
pub async fn serve_metrics(
    bind: tokio::net::TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = bind.local_addr().ok();
    tracing::info!(?addr, "Serving /metrics.");
    let upkeep = {
        let (handle, shutdown) = (handle.clone(), shutdown.clone());
        async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => handle.run_upkeep(),
                }
            }
        }
    };
    let server =
        axum::serve(bind, router(handle)).with_graceful_shutdown(shutdown.cancelled_owned());
    let (served, ()) = tokio::join!(server.into_future(), upkeep);
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn install_is_idempotent_and_one_registry_sees_every_event() {
        let (a, b) = (install(), install());
        page("metrics-unit-site", "content");
        page("metrics-unit-site", "content");
        dead_letter("metrics-unit-site", DeadLetterReason::AttemptsExhausted);
        let pages = r#"scrapefarm_pages_total{site="metrics-unit-site",outcome="content"} 2"#;
        let text = a.render();
        assert!(text.contains(pages), "{text}");
        assert!(
            b.render().contains(pages),
            "the second handle reads the same registry"
        );
        assert!(
            text.contains(r#"scrapefarm_dead_letters_total{site="metrics-unit-site",reason="attempts_exhausted"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn render_time_is_a_histogram_with_second_buckets() {
        let handle = install();
        render_time("metrics-histogram-site", Duration::from_millis(300));
        let text = handle.render();
        assert!(
            text.contains(
                r#"scrapefarm_render_seconds_bucket{site="metrics-histogram-site",le="0.5"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE scrapefarm_render_seconds histogram"));
    }

    #[test]
    fn dead_letter_reasons_are_snake_case_labels() {
        let all = [
            DeadLetterReason::BadJob,
            DeadLetterReason::UnknownSite,
            DeadLetterReason::BadUrl,
            DeadLetterReason::UnfinishedRenders,
            DeadLetterReason::ExtractError,
            DeadLetterReason::TooLarge,
            DeadLetterReason::Rejected,
            DeadLetterReason::AttemptsExhausted,
        ];
        for reason in all {
            let label = reason.label();
            assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[tokio::test]
    async fn get_metrics_answers_the_text_format_until_shutdown() {
        let handle = install();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_metrics(listener, handle, shutdown.clone()));
        rate_limited("metrics-http-site");
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("content-type: text/plain; version=0.0.4"),
            "{answer}"
        );
        assert!(answer.contains(r#"scrapefarm_http_429_total{site="metrics-http-site"} 1"#));
        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    }
}

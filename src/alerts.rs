//! Alert delivery: the loop that drains the alert outbox (`scrapefarm alerts deliver`, and
//! later `serve`). It claims due alerts under a lease on the database's clock, POSTs each one as
//! signed JSON to its watch's webhook and settles it: a 2xx answer delivers it; anything else
//! (an error status, a refused connection, 10 s without an answer) schedules the next attempt
//! with capped exponential backoff, until `max_attempts` marks it `failed`. Every state lives
//! in the database, so a deliverer that dies loses nothing: its lease runs out and another
//! deliverer (or the same one, restarted) takes the rows over. Delivery is at least once; the
//! receiver tells repeats apart by the `Idempotency-Key` header, stable per alert.
//!
//! The request: `Content-Type: application/json`, `Idempotency-Key: scrapefarm-alert-<id>` and
//! `X-Scrapefarm-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the watch's
//! secret (the `whsec_…` string's bytes). Webhook URLs and secrets never reach logs or errors.

use std::time::Duration;

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::Common;
use crate::report::ListingJson;
use crate::store::{DueAlert, Store, WebhookSecret};

/// The signature header: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-Scrapefarm-Signature";
/// Stable per alert: a receiver that sees it twice has seen the same alert twice.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `scrapefarm alerts …`.
#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// Deliver pending alerts to their webhooks until SIGTERM (several may run at once).
    #[command(after_help = "Example:\n  scrapefarm alerts deliver --batch 16")]
    Deliver(DeliverArgs),
    /// List alerts and where their delivery stands, newest first.
    #[command(after_help = "Example:\n  scrapefarm alerts ls --watch 3 --json")]
    Ls(LsArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeliverArgs {
    /// Alerts claimed (and delivered concurrently) at a time.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// How long a claimed alert is held before another deliverer may take it over (at least
    /// 2; a request may take at most half of it, and 10 s).
    #[arg(long, default_value_t = 60)]
    pub lease_secs: u64,
    /// How often to look for due alerts when there are none.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Attempts before an alert is marked failed.
    #[arg(long, default_value_t = 20)]
    pub max_attempts: u32,
    /// The first retry delay; it doubles (with jitter) up to --retry-max-ms.
    #[arg(long, default_value_t = 2000)]
    pub retry_min_ms: u64,
    /// The longest wait between two attempts (an hour).
    #[arg(long, default_value_t = 3_600_000)]
    pub retry_max_ms: u64,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only the alerts of this watch.
    #[arg(long)]
    pub watch: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// How the deliverer works.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Names this deliverer's leases (host, pid and a random part).
    pub owner: String,
    pub batch: usize,
    /// At least twice `timeout`, so a live deliverer's rows are never taken over mid-request.
    pub lease: Duration,
    pub poll: Duration,
    /// One request, connect to last header: 10 s.
    pub timeout: Duration,
    /// 20 by default: with 2 s doubling to an hour, about ten hours of trying.
    pub max_attempts: u32,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl DeliverySettings {
    pub fn from_args(args: &DeliverArgs) -> anyhow::Result<DeliverySettings> {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let owner = format!(
            "{}:{}:{}",
            crate::store::leases::lease_host(),
            std::process::id(),
            hex::encode(random)
        );
        let lease = Duration::from_secs(args.lease_secs.max(2));
        Ok(DeliverySettings {
            owner,
            batch: args.batch.max(1),
            lease,
            poll: Duration::from_millis(args.poll_ms.max(10)),
            // Half the lease at most, so a request never outlives the lease that covers it.
            timeout: Duration::from_secs(10).min(lease / 2),
            max_attempts: args.max_attempts.max(1),
            retry_min: Duration::from_millis(args.retry_min_ms),
            retry_max: Duration::from_millis(args.retry_max_ms.max(args.retry_min_ms)),
        })
    }

    /// The wait after failed attempt `attempt` (1-based): exponential with jitter, by backon.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.retry_min)
            .with_max_delay(self.retry_max)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(attempt as usize)
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.retry_max)
            .min(self.retry_max)
    }
}

/// `scrapefarm alerts deliver|ls`.
pub async fn command(
    common: &Common,
    cmd: &AlertsCommand,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = crate::app::connect_store(common).await?;
    match cmd {
        AlertsCommand::Deliver(args) => {
            let settings = DeliverySettings::from_args(args)?;
            let tracker = TaskTracker::new();
            tracker.spawn(run_deliverer(store.clone(), settings, shutdown));
            tracker.close();
            tracker.wait().await;
        }
        AlertsCommand::Ls(args) => print_alerts(&store, args).await?,
    }
    store.close().await;
    Ok(())
}

async fn print_alerts(store: &Store, args: &LsArgs) -> anyhow::Result<()> {
    let alerts = store
        .alerts(args.watch)
        .await
        .context("Failed to read alerts")?;
    if args.json {
        for alert in &alerts {
            println!("{}", serde_json::to_string(alert)?);
        }
        return Ok(());
    }
    if alerts.is_empty() {
        println!("no alerts");
        return Ok(());
    }
    println!(
        "{:>6} {:>6} {:<6} {:>14} {:>14} {:<9} {:>8}  last",
        "id", "watch", "reason", "old", "new", "state", "attempts"
    );
    for a in &alerts {
        let old = match (a.old_price_minor, &a.old_currency) {
            (Some(minor), Some(currency)) => format!("{minor} {currency}"),
            _ => "-".into(),
        };
        let last = match (a.last_status, &a.last_error) {
            (_, Some(error)) => error.clone(),
            (Some(status), None) => format!("HTTP {status}"),
            (None, None) => String::new(),
        };
        let new = format!("{} {}", a.new_price_minor, a.currency);
        println!(
            "{:>6} {:>6} {:<6} {old:>14} {new:>14} {:<9} {:>8}  {last}",
            a.id, a.watch_id, a.reason, a.state, a.attempts
        );
    }
    Ok(())
}

/// Delivers alerts until `shutdown`: claims a batch, delivers it concurrently, settles each;
/// waits `poll` when nothing is due or the store is unavailable. A delivery cut short by
/// shutdown keeps its lease, which runs out: the alert is delivered again later.
pub async fn run_deliverer(store: Store, settings: DeliverySettings, shutdown: CancellationToken) {
    let client = webhook_client();
    tracing::info!(owner = %settings.owner, "Delivering alerts.");
    let store_timeout = Duration::from_secs(30);
    while !shutdown.is_cancelled() {
        let claim = store.claim_due_alerts(&settings.owner, settings.batch, settings.lease);
        let claimed = tokio::select! {
            _ = shutdown.cancelled() => break,
            claimed = tokio::time::timeout(store_timeout, claim) => claimed,
        };
        let due = match claimed {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Cannot claim alerts; waiting.");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("Claiming alerts timed out; waiting.");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(settings.poll) => continue,
            }
        }
        let deliveries = due
            .into_iter()
            .map(|alert| deliver_and_settle(&store, &client, &settings, alert));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = futures::future::join_all(deliveries) => {}
        }
    }
    tracing::info!(owner = %settings.owner, "Alert delivery stopped.");
}

/// Why a webhook got no answer.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the webhook did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the webhook could not be reached: {0}")]
    Unreachable(String),
    #[error("the webhook URL is not a valid http or https URL")]
    BadUrl,
}

/// The JSON body of one alert.
#[derive(Debug, Serialize)]
pub struct AlertBody<'a> {
    pub alert_id: i64,
    pub watch_id: i64,
    pub reason: &'a str,
    /// The listing as `scrapefarm listings --json` shows it.
    pub listing: Option<&'a ListingJson>,
    pub old_price: Option<PriceJson<'a>>,
    pub new_price: PriceJson<'a>,
    /// The listing's page.
    pub url: &'a str,
    /// When the price that fired the alert was observed, epoch ms.
    pub observed_at: i64,
}

#[derive(Debug, Serialize)]
pub struct PriceJson<'a> {
    pub minor: i64,
    pub currency: &'a str,
}

/// The body for `due`, serialized once: the signature covers exactly these bytes.
fn body(due: &DueAlert, listing: Option<&ListingJson>) -> Vec<u8> {
    let a = &due.alert;
    let old_price = match (a.old_price_minor, a.old_currency.as_deref()) {
        (Some(minor), Some(currency)) => Some(PriceJson { minor, currency }),
        _ => None,
    };
    let body = AlertBody {
        alert_id: a.id,
        watch_id: a.watch_id,
        reason: &a.reason,
        listing,
        old_price,
        new_price: PriceJson {
            minor: a.new_price_minor,
            currency: &a.currency,
        },
        url: listing.map_or("", |l| l.url.as_str()),
        observed_at: due.observed_at,
    };
    // Plain strings and integers always serialize.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed with the secret's bytes.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The HTTP client of the deliverer: http and https (rustls, Mozilla's root certificates).
pub type WebhookClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

fn webhook_client() -> WebhookClient {
    let https = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// The idempotency key of alert `id`.
pub fn idempotency_key(id: i64) -> String {
    format!("scrapefarm-alert-{id}")
}

/// One attempt at `due`, recorded in the store.
async fn deliver_and_settle(
    store: &Store,
    client: &WebhookClient,
    settings: &DeliverySettings,
    due: DueAlert,
) {
    let (id, watch) = (due.alert.id, due.alert.watch_id);
    let listing = match store.alert_listing(due.alert.listing_id).await {
        Ok(listing) => listing,
        Err(e) => {
            // The lease runs out and the alert is claimed again.
            tracing::warn!(alert = id, error = %e, "Cannot read the alert's listing.");
            return;
        }
    };
    let listing = listing.map(|row| ListingJson::from_row(row, None));
    let body = body(&due, listing.as_ref());
    let sent = post(client, &due, body, settings.timeout).await;
    let attempt = u32::try_from(due.alert.attempts)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let settled = match sent {
        Ok(status) if (200..300).contains(&status) => {
            tracing::info!(alert = id, watch, attempt, status, "Alert delivered.");
            store.mark_delivered(id, &settings.owner, status).await
        }
        failed => {
            let (status, error) = match failed {
                Ok(status) => (Some(status), format!("the webhook answered HTTP {status}")),
                Err(e) => (None, e.to_string()),
            };
            let retry_in = (attempt < settings.max_attempts).then(|| settings.retry_delay(attempt));
            tracing::warn!(alert = id, watch, attempt, ?status, ?retry_in, %error,
                "Alert delivery failed.");
            store
                .mark_failed_attempt(id, &settings.owner, retry_in, status, &error)
                .await
        }
    };
    match settled {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            alert = id,
            "The alert's lease ran out before it was settled."
        ),
        Err(e) => tracing::warn!(alert = id, error = %e, "Cannot record the delivery attempt."),
    }
}

/// POSTs `body` to the watch's webhook; the answer's status, or why there was none.
async fn post(
    client: &WebhookClient,
    due: &DueAlert,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<u16, DeliveryError> {
    let request = request(&due.webhook_url, &due.secret, due.alert.id, body)?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| DeliveryError::Unreachable(error_chain(&e)))?;
        Ok(response.status().as_u16())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| DeliveryError::Timeout(timeout))?
}

/// The signed request. Credentials in the URL become a Basic `Authorization` header.
fn request(
    webhook_url: &str,
    secret: &WebhookSecret,
    id: i64,
    body: Vec<u8>,
) -> Result<http::Request<Full<Bytes>>, DeliveryError> {
    let mut url = url::Url::parse(webhook_url).map_err(|_| DeliveryError::BadUrl)?;
    match url.scheme() {
        "http" | "https" => {}
        _ => return Err(DeliveryError::BadUrl),
    }
    let authorization = (!url.username().is_empty()).then(|| {
        use base64::Engine;
        let user = format!("{}:{}", url.username(), url.password().unwrap_or(""));
        let token = base64::engine::general_purpose::STANDARD.encode(user);
        format!("Basic {token}")
    });
    // Stripping credentials cannot fail on an http URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut builder = http::Request::post(url.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "scrapefarm-alerts")
        .header(IDEMPOTENCY_HEADER, idempotency_key(id))
        .header(SIGNATURE_HEADER, signature(secret.expose(), &body));
    if let Some(authorization) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, authorization);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| DeliveryError::BadUrl)
}

/// An error and its causes, `: `-joined (hyper's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on 127.0.0.1 answering every connection with a plain-text HTTP 204.
    async fn plain_http_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                let _ = socket.write_all(answer).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn the_client_speaks_http_and_tls_for_https_urls() {
        let address = plain_http_server().await;
        let client = webhook_client();
        let get = |scheme: &str| {
            let request = http::Request::post(format!("{scheme}://{address}/hook"))
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            client.request(request)
        };
        let plain = get("http").await.expect("plain http works");
        assert_eq!(plain.status().as_u16(), 204);
        // A TLS handshake against a plain-text server fails: https really goes through TLS.
        let tls = tokio::time::timeout(Duration::from_secs(10), get("https"))
            .await
            .expect("the handshake ends");
        let error = error_chain(&tls.expect_err("no TLS on the other side"));
        assert!(!error.is_empty());
    }

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        let signed = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signed,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn settings(min_ms: u64, max_ms: u64) -> DeliverySettings {
        let args = DeliverArgs {
            batch: 4,
            lease_secs: 60,
            poll_ms: 100,
            max_attempts: 20,
            retry_min_ms: min_ms,
            retry_max_ms: max_ms,
        };
        DeliverySettings::from_args(&args).unwrap()
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let s = settings(1000, 60_000);
        let first = s.retry_delay(1);
        assert!(
            first >= Duration::from_secs(1) && first <= Duration::from_secs(2),
            "{first:?}"
        );
        let fourth = s.retry_delay(4);
        assert!(fourth >= Duration::from_secs(8), "{fourth:?}");
        for attempt in 1..=40 {
            assert!(s.retry_delay(attempt) <= Duration::from_secs(60));
        }
        assert_eq!(s.retry_delay(30), Duration::from_secs(60));
    }

    #[test]
    fn owners_differ_per_deliverer() {
        assert_ne!(settings(1, 1).owner, settings(1, 1).owner);
    }
}

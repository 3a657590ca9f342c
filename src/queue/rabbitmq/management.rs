//! RabbitMQ's management HTTP API, read for the one number AMQP does not give: a queue's
//! unacknowledged messages (`queue.declare-ok` counts only ready ones). Its address comes from
//! the AMQP URL — same host and credentials, port 15672 — unless
//! `SCRAPEFARM_RABBITMQ_MANAGEMENT_URL` names it. The plugin is optional: when it does not answer,
//! `depths` reports unacked as unknown. The broker samples these numbers every
//! `collect_statistics_interval` (5 s by default), so they lag by up to that much.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Names the management API when it is not at the AMQP host's port 15672.
pub const MANAGEMENT_URL_ENV: &str = "SCRAPEFARM_RABBITMQ_MANAGEMENT_URL";
/// The plugin's default port.
const MANAGEMENT_PORT: u16 = 15672;
/// A status read must not wait on a sick broker: five seconds, then "unknown".
pub const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the management API gave no number; `depths` then reports unacked as unknown.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("the management API at {base} did not answer: {reason}")]
    Unreachable { base: String, reason: String },
    #[error("the management API at {base} answered {status}")]
    Status { base: String, status: u16 },
    #[error("the management API at {base} gave no {field} for the queue (not sampled yet?)")]
    Missing { base: String, field: &'static str },
}

/// A client of one broker's management API. The password lives only in the prepared header.
pub struct Management {
    /// `http://host:port`, without credentials: the only form that reaches logs and errors.
    base: String,
    authorization: String,
    vhost: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Management {
    /// The API of the broker at `amqp_url` (or at `SCRAPEFARM_RABBITMQ_MANAGEMENT_URL`);
    /// `None` when the URLs cannot be parsed.
    pub fn locate(amqp_url: &str) -> Option<Management> {
        let amqp = url::Url::parse(amqp_url).ok()?;
        let vhost = match amqp.path().trim_start_matches('/') {
            "" => "/".to_string(),
            raw => percent_decode(raw),
        };
        let explicit = std::env::var(MANAGEMENT_URL_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let http = match explicit {
            Some(explicit) => url::Url::parse(explicit.trim()).ok()?,
            None => {
                let host = amqp.host_str()?;
                url::Url::parse(&format!("http://{host}:{MANAGEMENT_PORT}")).ok()?
            }
        };
        // Credentials named in the management URL win; else the AMQP ones (guest by default).
        let (user, password) = match http.username() {
            "" => credentials(&amqp),
            _ => credentials(&http),
        };
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let port = http.port_or_known_default().unwrap_or(MANAGEMENT_PORT);
        Some(Management {
            base: format!("{}://{}:{port}", http.scheme(), http.host_str()?),
            authorization: format!("Basic {token}"),
            vhost,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// `messages_unacknowledged` of `queue`, as last sampled by the broker.
    pub async fn unacked(&self, queue: &str) -> Result<u64, ManagementError> {
        let unreachable = |reason: String| ManagementError::Unreachable {
            base: self.base.clone(),
            reason,
        };
        let uri = format!(
            "{}/api/queues/{}/{}",
            self.base,
            percent_encode(&self.vhost),
            percent_encode(queue)
        );
        let request = http::Request::get(uri)
            .header(http::header::AUTHORIZATION, &self.authorization)
            .body(Empty::new())
            .map_err(|e| unreachable(e.to_string()))?;
        let read = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await;
            let body = body.map_err(|e| unreachable(e.to_string()))?.to_bytes();
            Ok::<_, ManagementError>((status, body))
        };
        let (status, body) = tokio::time::timeout(MANAGEMENT_TIMEOUT, read)
            .await
            .map_err(|_| unreachable(format!("timed out after {MANAGEMENT_TIMEOUT:?}")))??;
        if status != 200 {
            return Err(ManagementError::Status {
                base: self.base.clone(),
                status,
            });
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| unreachable(e.to_string()))?;
        json.get("messages_unacknowledged")
            .and_then(serde_json::Value::as_u64)
            .ok_or(ManagementError::Missing {
                base: self.base.clone(),
                field: "messages_unacknowledged",
            })
    }
}

/// The user and password of `url`, decoded; RabbitMQ's default `guest` when absent.
fn credentials(url: &url::Url) -> (String, String) {
    match url.username() {
        "" => ("guest".into(), "guest".into()),
        user => (
            percent_decode(user),
            percent_decode(url.password().unwrap_or("")),
        ),
    }
}

/// One path segment, every byte but the unreserved ones escaped (the vhost `/` is `%2F`).
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_api_is_found_on_the_amqp_host_with_its_credentials() {
        let m = Management::locate("amqp://farm:s%40cret@10.0.0.7:5672/%2f").unwrap();
        assert_eq!(m.base, "http://10.0.0.7:15672");
        assert_eq!(m.vhost, "/");
        let token = base64::engine::general_purpose::STANDARD.encode("farm:s@cret");
        assert_eq!(m.authorization, format!("Basic {token}"));
    }

    #[test]
    fn an_empty_amqp_path_is_the_default_vhost_and_credentials_default_to_guest() {
        let m = Management::locate("amqp://127.0.0.1").unwrap();
        assert_eq!(m.vhost, "/");
        let token = base64::engine::general_purpose::STANDARD.encode("guest:guest");
        assert_eq!(m.authorization, format!("Basic {token}"));
    }

    #[test]
    fn vhosts_and_queue_names_are_escaped_as_one_path_segment() {
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("sf_work.dead-1"), "sf_work.dead-1");
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
    }
}

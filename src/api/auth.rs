//! Bearer-key authentication of `/api/v1/`: the key's SHA-256 is looked up among the live keys
//! (`scrapefarm apikey create`); a missing, unknown or revoked key is a 401, a `read` key on a
//! method that writes a 403. The key's `last_used_at` is written at most once a minute per key
//! and process, so reads stay reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::problem::ApiError;
use crate::api_key::{Scope, hash_key};
use crate::store::Store;
use crate::store::api_keys::ApiKeyRow;

/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// When this process last wrote each key's `last_used_at`, by key hash (only live keys enter).
#[derive(Debug, Default)]
pub struct KeyUses(Mutex<HashMap<String, Instant>>);

impl KeyUses {
    /// The live key of this hash; notes its use when the last note is a minute old.
    async fn lookup(&self, store: &Store, key_hash: &str) -> Result<Option<ApiKeyRow>, ApiError> {
        if self.recently_touched(key_hash) {
            return Ok(store.live_api_key(key_hash).await?);
        }
        let row = store.api_key_by_hash(key_hash).await?;
        if row.is_some()
            && let Ok(mut uses) = self.0.lock()
        {
            uses.insert(key_hash.to_string(), Instant::now());
        }
        Ok(row)
    }

    fn recently_touched(&self, key_hash: &str) -> bool {
        let Ok(uses) = self.0.lock() else {
            return false; // a poisoned map only costs an extra write
        };
        uses.get(key_hash)
            .is_some_and(|at| at.elapsed() < TOUCH_EVERY)
    }
}

/// The key of an `Authorization: Bearer <key>` header.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// Whether a method changes something (and so needs a `write` key).
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware of every `/api/v1/` route.
pub async fn require_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = bearer(&request).ok_or(ApiError::Unauthorized)?;
    let row = state
        .keys
        .lookup(&state.tracker.store, &hash_key(key))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if writes(request.method()) && row.scope != Scope::Write.as_str() {
        return Err(ApiError::Forbidden);
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth: &str) -> Request {
        Request::builder()
            .header(header::AUTHORIZATION, auth)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn only_a_bearer_header_with_a_key_counts() {
        assert_eq!(bearer(&request("Bearer sf_abc")), Some("sf_abc"));
        assert_eq!(bearer(&request("bearer  sf_abc ")), Some("sf_abc"));
        assert_eq!(bearer(&request("Basic sf_abc")), None);
        assert_eq!(bearer(&request("Bearer ")), None);
        assert_eq!(bearer(&request("sf_abc")), None);
    }

    #[test]
    fn reads_need_a_read_key_and_everything_else_a_write_key() {
        assert!(!writes(&Method::GET));
        assert!(!writes(&Method::HEAD));
        assert!(writes(&Method::POST));
        assert!(writes(&Method::DELETE));
    }
}

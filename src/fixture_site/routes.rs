//! The axum router: handlers for every route, plus the middleware that counts
//! requests and 404s and hands out `visitor` cookies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::defences::Verdict;
use super::pages;
use super::state::{AppState, Counter, client_identity, cookie};

type Shared = State<Arc<AppState>>;
type Params = Query<HashMap<String, String>>;

/// An 8×8 greyscale checkerboard PNG served for every `/img/*.png`.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0xe1, 0x64, 0xe1,
    0x57, 0x00, 0x00, 0x00, 0x1e, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xd0, 0xb8, 0x13, 0x70,
    0xa7, 0xe2, 0xce, 0x82, 0x3b, 0x0c, 0x77, 0x6c, 0xee, 0xa4, 0xdc, 0xe9, 0xb9, 0xb3, 0x85, 0x81,
    0x2c, 0x11, 0x00, 0xba, 0xd3, 0x29, 0x41, 0x24, 0x8c, 0x97, 0xda, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// All routes of the fixture site.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/item/{id}", get(item))
        .route("/item/{id}/", get(item))
        .route("/api/item/{id}", get(api_item))
        .route("/img/{file}", get(image))
        .route("/favicon.ico", get(favicon))
        .route("/api/ground-truth", get(ground_truth))
        .route("/api/counters", get(counters))
        .route("/api/counters/reset", post(reset_counters))
        .route("/__admin/price-step/{step}", post(set_price_step))
        .route("/static/vendor-analytics.js", get(analytics))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), track))
        .with_state(state)
}

/// Observer endpoints are not counted, so polling them does not skew numbers.
fn is_observer(path: &str) -> bool {
    path == "/api/ground-truth"
        || path == "/api/counters"
        || path.starts_with("/api/counters/")
        || path.starts_with("/__admin/")
}

/// Counts requests and 404s; gives clients without one a `visitor` cookie.
async fn track(State(st): Shared, req: Request, next: Next) -> Response {
    let observer = is_observer(req.uri().path());
    let has_visitor = cookie(req.headers(), "visitor").is_some();
    if !observer {
        st.counters.bump(Counter::Requests);
    }
    let mut response = next.run(req).await;
    if !observer && response.status() == StatusCode::NOT_FOUND {
        st.counters.bump(Counter::NotFound);
    }
    if !observer && !has_visitor {
        let value = format!(
            "visitor={}; Path=/; Max-Age=31536000; SameSite=Lax",
            st.new_visitor_id()
        );
        // The id is `v` + hex digits, always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

async fn home() -> Html<String> {
    Html(pages::home())
}

/// `GET /search?q=Q&page=N` (server-rendered, page 1-based).
async fn search(State(st): Shared, Query(params): Params) -> Html<String> {
    st.counters.bump(Counter::SearchPages);
    let query = super::data::normalise_query(params.get("q").map_or("", String::as_str));
    let page = params
        .get("page")
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let per_page = st.config.per_page;
    let start = (page - 1).saturating_mul(per_page);
    let rows = st.listings(&query, start..start.saturating_add(per_page));
    Html(pages::search(
        &query,
        page,
        st.total(&query),
        per_page,
        &rows,
    ))
}

/// `GET /item/ID`: defended; a JS-filled shell for live listings, else 404.
async fn item(State(st): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    st.counters.bump(Counter::ListingPages);
    let poison = &st.config.poison;
    if poison.crash_ids.contains(&id) {
        return Html(pages::renderer_killer()).into_response();
    }
    if poison.slow_ids.contains(&id) {
        tokio::time::sleep(std::time::Duration::from_secs(poison.slow_secs)).await;
    }
    let identity = client_identity(&headers);
    let clearance = cookie(&headers, "clearance");
    if let Some(verdict) = st.defender.check(&identity, clearance, Instant::now()) {
        return blocked(&st, verdict);
    }
    st.count_served(&id);
    match st.lookup(&id) {
        Some(listing) if listing.status != "gone" => {
            let html = pages::item_shell(
                &st.base_url,
                &listing.external_id,
                st.config.render_delay_ms,
            );
            Html(html).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Html(pages::gone())).into_response(),
    }
}

/// The response (and counter) for a defence verdict.
fn blocked(st: &AppState, verdict: Verdict) -> Response {
    let no_store = [(CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    match verdict {
        Verdict::RateLimited { retry_after_secs } => {
            st.counters.bump(Counter::RateLimited);
            let retry = [(RETRY_AFTER, HeaderValue::from(retry_after_secs))];
            (
                StatusCode::TOO_MANY_REQUESTS,
                retry,
                Html(pages::rate_limited()),
            )
                .into_response()
        }
        Verdict::Challenge => {
            st.counters.bump(Counter::Challenges);
            let html = pages::challenge(st.defender.clearance_token());
            (StatusCode::SERVICE_UNAVAILABLE, no_store, Html(html)).into_response()
        }
        Verdict::Captcha => {
            st.counters.bump(Counter::Captchas);
            let html = pages::captcha(st.defender.vendor_captcha());
            (StatusCode::FORBIDDEN, no_store, Html(html)).into_response()
        }
        Verdict::Unavailable => {
            st.counters.bump(Counter::ServerErrors);
            (StatusCode::SERVICE_UNAVAILABLE, Html(pages::unavailable())).into_response()
        }
    }
}

/// `GET /api/item/ID`: the listing as JSON (404 JSON for gone or unknown ids); defended too when
/// the defences' `api` is on, after its server-side latency.
async fn api_item(State(st): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    st.counters.bump(Counter::ApiCalls);
    let latency = st.defender.api_latency(&id);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(verdict) = st
        .defender
        .check_api(&client_identity(&headers), Instant::now())
    {
        return api_refused(&st, verdict);
    }
    match st.lookup(&id) {
        Some(listing) if listing.status != "gone" => Json(listing).into_response(),
        _ => {
            let body = serde_json::json!({ "error": "not_found", "external_id": id });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

/// The data API's answer to a defence verdict: the same statuses as the pages', in JSON.
fn api_refused(st: &AppState, verdict: Verdict) -> Response {
    let (status, error) = match verdict {
        Verdict::RateLimited { retry_after_secs } => {
            st.counters.bump(Counter::RateLimited);
            let retry = [(RETRY_AFTER, HeaderValue::from(retry_after_secs))];
            let body = Json(serde_json::json!({ "error": "rate_limited" }));
            return (StatusCode::TOO_MANY_REQUESTS, retry, body).into_response();
        }
        Verdict::Captcha => {
            st.counters.bump(Counter::Captchas);
            (StatusCode::FORBIDDEN, "captcha")
        }
        Verdict::Challenge | Verdict::Unavailable => {
            st.counters.bump(Counter::ServerErrors);
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    (status, Json(serde_json::json!({ "error": error }))).into_response()
}

/// `GET /img/NAME.png`: the same tiny PNG for every name.
async fn image(Path(file): Path<String>) -> Response {
    if file.ends_with(".png") {
        png_response()
    } else {
        (StatusCode::NOT_FOUND, Html(pages::not_found())).into_response()
    }
}

/// `GET /favicon.ico`: browsers ask for it; answering avoids skewing `not_found`.
async fn favicon() -> Response {
    png_response()
}

/// The fixed PNG, cacheable for an hour.
fn png_response() -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("image/png")),
        (CACHE_CONTROL, HeaderValue::from_static("max-age=3600")),
    ];
    (headers, PNG).into_response()
}

/// `GET /api/ground-truth?q=Q`.
async fn ground_truth(State(st): Shared, Query(params): Params) -> Response {
    let query = params.get("q").map_or("", String::as_str);
    Json(st.ground_truth(query)).into_response()
}

async fn counters(State(st): Shared) -> Response {
    Json(st.counters.snapshot()).into_response()
}

/// `POST /api/counters/reset`: zeroes the counters and returns them.
async fn reset_counters(State(st): Shared) -> Response {
    st.counters.reset();
    Json(st.counters.snapshot()).into_response()
}

/// `POST /__admin/price-step/N`: moves prices to step N (see `price_steps`).
async fn set_price_step(State(st): Shared, Path(step): Path<u32>) -> Response {
    st.set_price_step(step);
    Json(serde_json::json!({ "price_step": step })).into_response()
}

async fn analytics() -> Response {
    let headers = [(
        CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    )];
    (headers, "window.__analytics = true;\n").into_response()
}

async fn fallback() -> Response {
    (StatusCode::NOT_FOUND, Html(pages::not_found())).into_response()
}

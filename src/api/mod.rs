//! The price tracker's HTTP API (axum), served by `scrapefarm serve`: `/health`, `/ready`,
//! `/metrics`, `/openapi.json` and `/docs` are open; everything under `/api/v1/` needs a bearer
//! key (`auth`). Handlers are thin: each calls one operation of [`crate::tracker`] and renders
//! errors through [`problem::ApiError`]. Each area has its own router (`searches`, `listings`,
//! `probes`); [`router`] mounts them, so a new area (watches, alerts) is one more `merge`.

pub mod auth;
pub mod listings;
pub mod openapi;
pub mod probes;
pub mod problem;
pub mod searches;
pub mod watches;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::queue::AnyQueue;
use crate::tracker::Tracker;
use problem::ApiError;

/// What every handler may use: the tracker (store and sites), the queue, and the key-use notes.
#[derive(Clone)]
pub struct AppState {
    pub tracker: Tracker,
    pub queue: AnyQueue,
    pub keys: Arc<auth::KeyUses>,
}

impl AppState {
    pub fn new(tracker: Tracker, queue: AnyQueue) -> AppState {
        AppState {
            tracker,
            queue,
            keys: Arc::default(),
        }
    }
}

/// The `/api/v1/` routes of every area, before authentication is layered on.
fn v1_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(searches::router())
        .merge(listings::router())
        .merge(watches::router())
}

/// The open routes and `/api/v1/` mounted together, with the document's non-path parts.
fn assemble(v1: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(probes::router())
        .nest("/api/v1", v1)
}

/// The OpenAPI document of the service (what `/openapi.json` serves).
pub fn document() -> utoipa::openapi::OpenApi {
    assemble(v1_router()).into_openapi()
}

/// The service's router: the API, its document and docs page, and problem+json 404 and 405.
pub fn router(state: AppState) -> Router {
    let v1 = v1_router().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    let (router, document) = assemble(v1).split_for_parts();
    let docs = Arc::new(openapi::docs_page(&document));
    let document = Arc::new(document);
    router
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let docs = docs.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        docs.as_ref().clone(),
                    )
                        .into_response()
                }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

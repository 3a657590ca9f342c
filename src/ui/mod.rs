//! The dashboard of `scrapefarm serve` (`/ui`): server-rendered HTML pages over the same tracker
//! operations and store reads as the JSON API, with charts drawn as inline SVG on the server.
//! No JavaScript and nothing from another origin: one small stylesheet served from here.
//!
//! `session` signs in with an API key (a session cookie; read keys look, write keys may act);
//! `listings` is the table, `listing` one listing with its price chart (`chart`), `snapshots`
//! the stored pages shown as the farm saw them in a sandbox; `fleet` the workers and queues;
//! `actions` the searches and watches a write key may act on; `page` the shared layout and
//! HTML escaping.

mod actions;
pub mod chart;
mod fleet;
mod listing;
mod listings;
mod page;
mod session;
mod snapshots;

use std::path::PathBuf;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::AppState;
use crate::api::problem::ApiError;
use crate::tracker::TrackerError;

pub use session::SESSION_COOKIE;
pub use snapshots::SNAPSHOT_CSP;

/// What every page may use: the API's state (tracker, queue) and where the snapshots live.
#[derive(Clone)]
pub struct UiState {
    pub app: AppState,
    pub snapshots: PathBuf,
}

/// The `/ui` routes, ready to merge into the service's router.
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/listings") }))
        .route("/ui/style.css", get(stylesheet))
        .merge(session::router())
        .merge(listings::router())
        .merge(listing::router())
        .merge(snapshots::router())
        .merge(fleet::router())
        .merge(actions::router())
        .with_state(state)
}

/// The one stylesheet of every page.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

/// A failed page: the API's error (one status per kind), rendered as an HTML page.
#[derive(Debug)]
pub struct UiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for UiError {
    fn from(e: E) -> UiError {
        UiError(e.into())
    }
}

impl UiError {
    fn not_found(what: impl Into<String>) -> UiError {
        UiError(ApiError::NotFound(what.into()))
    }

    fn bad_request(what: impl Into<String>) -> UiError {
        UiError(ApiError::BadRequest(what.into()))
    }

    /// A tracker error, which the API maps to its status the same way.
    fn tracker(e: TrackerError) -> UiError {
        UiError(ApiError::from(e))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE
        {
            tracing::warn!(error = %self.0, "Dashboard page failed.");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<h1>{}</h1><p role=\"alert\">{}</p><p><a href=\"/ui/listings\">Back to the listings</a></p>",
            page::escape(title),
            page::escape(&self.0.to_string())
        );
        (status, page::document(title, None, &body)).into_response()
    }
}

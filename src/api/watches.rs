//! `/api/v1/watches` and `/api/v1/alerts`: create a watch (201, with its webhook secret, shown
//! once), list, read and delete watches, and list the alerts they fired with where each one's
//! delivery stands. Each handler calls one tracker operation.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::problem::answers;
use super::problem::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::tracker::watches::{AlertView, CreatedWatchView, WatchRequest, WatchView};

/// The watches and alerts routes (mounted under `/api/v1`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_watches, create_watch))
        .routes(routes!(get_watch, delete_watch))
        .routes(routes!(list_alerts))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchList {
    pub items: Vec<WatchView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub items: Vec<AlertView>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// Only the alerts of this watch.
    pub watch_id: Option<i64>,
}

/// Create a watch on a search or on one listing; the answer carries its webhook secret once.
#[utoipa::path(
    post, path = "/watches", tag = "watches",
    request_body = WatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created, with its secret", body = CreatedWatchView),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Invalid,
        answers::Unavailable,
    )
)]
async fn create_watch(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<WatchRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let created = state.tracker.create_watch(&request).await?;
    let location = format!("/api/v1/watches/{}", created.watch.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(created),
    ))
}

/// List the watches (deleted ones are left out).
#[utoipa::path(
    get, path = "/watches", tag = "watches",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The watches", body = WatchList),
        answers::Unauthorized,
        answers::Unavailable,
    )
)]
async fn list_watches(State(state): State<AppState>) -> Result<Json<WatchList>, ApiError> {
    let items = state.tracker.watches().await?;
    Ok(Json(WatchList { items }))
}

/// Read one watch.
#[utoipa::path(
    get, path = "/watches/{id}", tag = "watches",
    params(("id" = i64, Path, description = "Watch id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The watch", body = WatchView),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        answers::Unavailable,
    )
)]
async fn get_watch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<WatchView>, ApiError> {
    Ok(Json(state.tracker.watch(id).await?))
}

/// Delete a watch: it fires no more alerts; those already fired are still delivered.
#[utoipa::path(
    delete, path = "/watches/{id}", tag = "watches",
    params(("id" = i64, Path, description = "Watch id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Unavailable,
    )
)]
async fn delete_watch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.tracker.delete_watch(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List fired alerts, newest first, with their delivery state.
#[utoipa::path(
    get, path = "/alerts", tag = "watches",
    params(AlertParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alerts", body = AlertList),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        answers::Unavailable,
    )
)]
async fn list_alerts(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AlertParams>,
) -> Result<Json<AlertList>, ApiError> {
    let items = state.tracker.alerts(params.watch_id).await?;
    Ok(Json(AlertList { items }))
}

//! `/api/v1/searches`: create (201, collected at once), list, read, delete (soft: the schedule
//! stops, the listings stay) and run again (202). Each handler calls one tracker operation.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::problem::answers;
use super::problem::{ApiError, ApiJson, ApiPath};
use crate::tracker::{RunView, SearchRequest, SearchView};

/// The searches routes (mounted under `/api/v1`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_searches, create_search))
        .routes(routes!(get_search, delete_search))
        .routes(routes!(run_search))
        .routes(routes!(pause_search))
        .routes(routes!(resume_search))
}

/// The searches, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchList {
    pub items: Vec<SearchView>,
}

/// Create a search; its first run starts at once.
#[utoipa::path(
    post, path = "/searches", tag = "searches",
    request_body = SearchRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; collected at once", body = SearchView),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::Invalid,
        answers::Unavailable,
    )
)]
async fn create_search(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let search = state.tracker.create_search(&request).await?;
    let location = format!("/api/v1/searches/{}", search.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(search),
    ))
}

/// List the searches (deleted ones are left out).
#[utoipa::path(
    get, path = "/searches", tag = "searches",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The searches", body = SearchList),
        answers::Unauthorized,
        answers::Unavailable,
    )
)]
async fn list_searches(State(state): State<AppState>) -> Result<Json<SearchList>, ApiError> {
    let items = state.tracker.searches().await?;
    Ok(Json(SearchList { items }))
}

/// Read one search with its counts.
#[utoipa::path(
    get, path = "/searches/{id}", tag = "searches",
    params(("id" = i64, Path, description = "Search id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The search", body = SearchView),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        answers::Unavailable,
    )
)]
async fn get_search(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SearchView>, ApiError> {
    Ok(Json(state.tracker.search(id).await?))
}

/// Delete a search: its schedule stops; its listings and their history stay.
#[utoipa::path(
    delete, path = "/searches/{id}", tag = "searches",
    params(("id" = i64, Path, description = "Search id")),
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
async fn delete_search(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.tracker.delete_search(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run a search again now: collect its pages again and re-queue every listing it found before.
#[utoipa::path(
    post, path = "/searches/{id}/runs", tag = "searches",
    params(("id" = i64, Path, description = "Search id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Run requested", body = RunView),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        answers::Unavailable,
    )
)]
async fn run_search(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let run = state.tracker.run_search(id).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Pause a search's schedule: no scheduled run starts until it is resumed.
#[utoipa::path(
    post, path = "/searches/{id}/pause", tag = "searches",
    params(("id" = i64, Path, description = "Search id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Paused (or already paused)", body = SearchView),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        answers::Unavailable,
    )
)]
async fn pause_search(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SearchView>, ApiError> {
    Ok(Json(state.tracker.pause_schedule(id).await?))
}

/// Resume a paused schedule: the next run is the schedule's next time from now.
#[utoipa::path(
    post, path = "/searches/{id}/resume", tag = "searches",
    params(("id" = i64, Path, description = "Search id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Resumed", body = SearchView),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Forbidden,
        answers::NotFound,
        answers::Conflict,
        answers::Unavailable,
    )
)]
async fn resume_search(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SearchView>, ApiError> {
    Ok(Json(state.tracker.resume_schedule(id).await?))
}

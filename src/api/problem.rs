//! The API's one error type, [`ApiError`], rendered as `application/problem+json` (RFC 9457:
//! `type`, `title`, `status`, `detail`, plus `errors` and `known_sites` where they help), with one
//! status per variant; and the extractors (`ApiJson`, `ApiPath`, `ApiQuery`) that turn axum's
//! rejections into it, so no answer is ever axum's plain-text rejection.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::queue::QueueError;
use crate::store::StoreError;
use crate::tracker::{FieldError, TrackerError};

/// Every error an API call can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, a path or query parameter of the wrong type, a cursor not issued here.
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid API key is required: `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("this API key may only read; a `write` key is needed")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("this route does not take this method")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but asks for something invalid.
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
        known_sites: Option<Vec<String>>,
    },
    /// The store or the queue cannot be reached: try again later.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The invalid fields (422).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The site definitions this server knows (422, unknown site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_sites: Option<Vec<String>>,
}

/// The problem answers as the OpenAPI document lists them, one type per status (they only
/// describe; the answers themselves are built by [`ApiError`]).
pub mod answers {
    use super::Problem;

    /// Malformed JSON, or a parameter of the wrong type.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 400, content_type = "application/problem+json")]
    pub struct BadRequest(pub Problem);

    /// No key, or an unknown or revoked one.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 401, content_type = "application/problem+json")]
    pub struct Unauthorized(pub Problem);

    /// A `read` key on a write.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 403, content_type = "application/problem+json")]
    pub struct Forbidden(pub Problem);

    /// No such search or listing.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 404, content_type = "application/problem+json")]
    pub struct NotFound(pub Problem);

    /// A run of the search is still being collected.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 409, content_type = "application/problem+json")]
    pub struct Conflict(pub Problem);

    /// Invalid request: the invalid fields in `errors`, the known sites in `known_sites`.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 422, content_type = "application/problem+json")]
    pub struct Invalid(pub Problem);

    /// The store or the queue is unavailable; try again later.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 503, content_type = "application/problem+json")]
    pub struct Unavailable(pub Problem);
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        let (slug, title) = match self {
            ApiError::BadRequest(_) => ("bad-request", "Bad request"),
            ApiError::Unauthorized => ("unauthorized", "Unauthorized"),
            ApiError::Forbidden => ("forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::Validation { .. } => ("validation", "Invalid request"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Internal => ("internal", "Internal error"),
        };
        let (errors, known_sites) = match self {
            ApiError::Validation {
                errors,
                known_sites,
                ..
            } => (errors.clone(), known_sites.clone()),
            _ => (Vec::new(), None),
        };
        Problem {
            kind: format!("urn:scrapefarm:problem:{slug}"),
            title: title.into(),
            status: self.status().as_u16(),
            detail: self.to_string(),
            errors,
            known_sites,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(_) | StoreError::Connect { .. } => {
                ApiError::Unavailable("the database is unavailable; try again later".into())
            }
            StoreError::Rejected(_) | StoreError::Migrate(_) => {
                tracing::error!(error = %e, "The database refused an API request.");
                ApiError::Internal
            }
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        tracing::warn!(error = %e, "Queue unavailable to the API.");
        ApiError::Unavailable("the queue is unavailable; try again later".into())
    }
}

impl From<TrackerError> for ApiError {
    fn from(e: TrackerError) -> ApiError {
        match e {
            TrackerError::UnknownSite { ref known, .. } => ApiError::Validation {
                detail: format!("{e}; known sites: {}", known.join(", ")),
                errors: vec![FieldError {
                    field: "site".into(),
                    message: "unknown site".into(),
                }],
                known_sites: Some(known.clone()),
            },
            TrackerError::Invalid(ref errors) => ApiError::Validation {
                detail: e.to_string(),
                errors: errors.clone(),
                known_sites: None,
            },
            TrackerError::Internal(ref why) => {
                tracing::error!(error = %why, "The API could not answer.");
                ApiError::Internal
            }
            TrackerError::SearchNotFound(_)
            | TrackerError::WatchNotFound(_)
            | TrackerError::ListingNotFound { .. } => ApiError::NotFound(e.to_string()),
            TrackerError::RunInProgress(_) | TrackerError::NoSchedule(_) => {
                ApiError::Conflict(e.to_string())
            }
            TrackerError::Store(e) => e.into(),
        }
    }
}

/// A JSON request body; malformed JSON is a 400 problem, a body of the wrong shape a 422 one.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Validation {
                detail: e.body_text(),
                errors: Vec::new(),
                known_sites: None,
            }),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Path parameters; a value of the wrong type is a 400 problem.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(e @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::BadRequest(e.body_text()))
            }
            Err(e) => {
                tracing::error!(error = %e, "Path parameters missing from a matched route.");
                Err(ApiError::Internal)
            }
        }
    }
}

/// Query parameters; a value of the wrong type is a 400 problem.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let query = axum::extract::Query::<T>::from_request_parts(parts, state).await;
        query
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_status_and_a_problem_type() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::Unauthorized, 401),
            (ApiError::Forbidden, 403),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::MethodNotAllowed, 405),
            (ApiError::Conflict("x".into()), 409),
            (
                ApiError::Validation {
                    detail: "x".into(),
                    errors: Vec::new(),
                    known_sites: None,
                },
                422,
            ),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Internal, 500),
        ];
        for (error, status) in cases {
            let problem = error.problem();
            assert_eq!(problem.status, status);
            assert_eq!(error.status().as_u16(), status);
            assert!(
                problem.kind.starts_with("urn:scrapefarm:problem:"),
                "{problem:?}"
            );
        }
    }

    #[test]
    fn tracker_errors_map_to_their_statuses_with_the_known_sites() {
        let unknown = TrackerError::UnknownSite {
            site: "nope".into(),
            known: vec!["ebay".into(), "fixture".into()],
        };
        let problem = ApiError::from(unknown).problem();
        assert_eq!(problem.status, 422);
        assert_eq!(
            problem.known_sites,
            Some(vec!["ebay".into(), "fixture".into()])
        );
        assert!(
            problem.detail.contains("ebay, fixture"),
            "{}",
            problem.detail
        );
        assert_eq!(
            ApiError::from(TrackerError::SearchNotFound(9)).status(),
            404
        );
        assert_eq!(ApiError::from(TrackerError::RunInProgress(9)).status(), 409);
        let down = StoreError::Unavailable(sqlx::Error::PoolTimedOut);
        assert_eq!(ApiError::from(TrackerError::Store(down)).status(), 503);
        let refused = StoreError::Rejected(sqlx::Error::Decode("bad".into()));
        assert_eq!(ApiError::from(refused).status(), 500);
    }

    #[test]
    fn unauthorized_answers_carry_the_bearer_challenge_and_the_problem_type() {
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}

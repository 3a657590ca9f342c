//! `/api/v1/listings`: pages of listings (keyset pagination on the listing id behind an opaque
//! cursor, so pages stay put while listings are inserted) and one listing with its price
//! history. Items have the shape of `scrapefarm listings --json` (`ListingJson`).

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::problem::answers;
use super::problem::{ApiError, ApiPath, ApiQuery};
use crate::report::ListingJson;
use crate::store::ListingPage;
use crate::tracker::{FieldError, ListingDetail};

/// Listings per page unless `limit` says otherwise, and the most one page may hold.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// The listings routes (mounted under `/api/v1`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_listings))
        .routes(routes!(get_listing))
}

/// Filters and position of a page of listings.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListingParams {
    /// Only listings of this site.
    pub site: Option<String>,
    /// Only listings this search found.
    pub search_id: Option<i64>,
    /// pending, active, ended, gone or failed.
    #[param(pattern = "^(pending|active|ended|gone|failed)$")]
    pub status: Option<String>,
    /// Case-insensitive substring of the title.
    pub q: Option<String>,
    /// Lowest price, in minor units (cents).
    pub min_price_minor: Option<i64>,
    /// Highest price, in minor units.
    pub max_price_minor: Option<i64>,
    /// ISO currency code, e.g. USD.
    pub currency: Option<String>,
    /// Listings per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of listings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListingList {
    pub items: Vec<ListingJson>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A position in the listings: after the listing with this row id. Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("l1:{}", self.0))
    }

    /// `None` for a string this server never issued.
    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let id: i64 = text.strip_prefix("l1:")?.parse().ok()?;
        (id > 0).then_some(Cursor(id))
    }
}

impl ListingParams {
    /// Empty parameters (`?site=&q=`, as forms send them) mean no filter.
    fn into_query(mut self) -> Result<ListingPage, ApiError> {
        for text in [
            &mut self.site,
            &mut self.status,
            &mut self.q,
            &mut self.currency,
            &mut self.cursor,
        ] {
            if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                *text = None;
            }
        }
        let limit = self.limit.unwrap_or(i64::from(DEFAULT_LIMIT));
        let limit = u32::try_from(limit)
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::Validation {
                detail: format!("limit must be between 1 and {MAX_LIMIT}"),
                errors: vec![FieldError {
                    field: "limit".into(),
                    message: format!("must be between 1 and {MAX_LIMIT}"),
                }],
                known_sites: None,
            })?;
        let after_id = match &self.cursor {
            Some(text) => Cursor::decode(text).ok_or_else(|| {
                ApiError::BadRequest("cursor was not issued by this server".into())
            })?,
            None => Cursor(0),
        };
        Ok(ListingPage {
            site: self.site,
            search_id: self.search_id,
            status: self.status,
            q: self.q,
            min_price_minor: self.min_price_minor,
            max_price_minor: self.max_price_minor,
            currency: self.currency.map(|c| c.to_ascii_uppercase()),
            after_id: after_id.0,
            limit,
        })
    }
}

/// List listings, filtered, one page at a time (in listing id order).
#[utoipa::path(
    get, path = "/listings", tag = "listings",
    params(ListingParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of listings", body = ListingList),
        answers::BadRequest,
        answers::Unauthorized,
        answers::Invalid,
        answers::Unavailable,
    )
)]
async fn list_listings(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListingParams>,
) -> Result<Json<ListingList>, ApiError> {
    let page = state.tracker.listings(&params.into_query()?).await?;
    Ok(Json(ListingList {
        items: page.items,
        next_cursor: page.next_after.map(|id| Cursor(id).encode()),
    }))
}

/// Read one listing with its price history, oldest first.
#[utoipa::path(
    get, path = "/listings/{site}/{external_id}", tag = "listings",
    params(
        ("site" = String, Path, description = "Site name"),
        ("external_id" = String, Path, description = "The listing's id on the site"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The listing and its price history", body = ListingDetail),
        answers::Unauthorized,
        answers::NotFound,
        answers::Unavailable,
    )
)]
async fn get_listing(
    State(state): State<AppState>,
    ApiPath((site, external_id)): ApiPath<(String, String)>,
) -> Result<Json<ListingDetail>, ApiError> {
    Ok(Json(state.tracker.listing(&site, &external_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for id in [1, 42, i64::MAX] {
            let text = Cursor(id).encode();
            assert_eq!(Cursor::decode(&text), Some(Cursor(id)));
        }
        for bad in [
            "",
            "abc",
            "bDE6",
            &URL_SAFE_NO_PAD.encode("l1:-5"),
            &URL_SAFE_NO_PAD.encode("x:5"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_outside_one_to_five_hundred_are_invalid() {
        for limit in [0, -1, 501] {
            let params = ListingParams {
                limit: Some(limit),
                ..ListingParams::default()
            };
            assert!(matches!(
                params.into_query(),
                Err(ApiError::Validation { .. })
            ));
        }
        let query = ListingParams::default().into_query().unwrap();
        assert_eq!(query.limit, DEFAULT_LIMIT);
        let empty = ListingParams {
            site: Some(String::new()),
            cursor: Some(" ".into()),
            ..ListingParams::default()
        };
        let query = empty.into_query().unwrap();
        assert_eq!(
            (query.site, query.after_id),
            (None, 0),
            "empty means no filter"
        );
        let foreign = ListingParams {
            cursor: Some("nope".into()),
            ..ListingParams::default()
        };
        assert!(matches!(foreign.into_query(), Err(ApiError::BadRequest(_))));
    }
}

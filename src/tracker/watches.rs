//! Watches and their alerts as the API and the CLI see them: create a watch on a search or on
//! one listing (its webhook secret returned once), list, read, delete, and the alerts fired with
//! where their delivery stands. Deciding alerts happens in the store, in the transaction that
//! stores each price observation; delivering them is `crate::alerts`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldError, Tracker, TrackerError};
use crate::store::{AlertRow, NewWatch, WatchError, WatchRow, WatchRule};

/// A watch to create: `search_id`, or `site` and `external_id`; at least one rule.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    /// Watch every listing this search finds.
    pub search_id: Option<i64>,
    /// With `external_id`: watch one listing.
    pub site: Option<String>,
    pub external_id: Option<String>,
    /// Alert when a price is first seen below this many minor units, or crosses below it.
    #[schema(minimum = 1)]
    pub below_minor: Option<i64>,
    /// Alert when a price is at least this many percent below the listing's previous one.
    #[schema(minimum = 1, maximum = 99)]
    pub drop_percent: Option<i64>,
    /// Only prices in this ISO 4217 currency count.
    pub currency: Option<String>,
    /// Where alerts are POSTed (http or https), signed with the watch's secret.
    pub webhook_url: String,
}

/// A watch. Its webhook URL is shown without any credentials it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WatchView {
    pub id: i64,
    pub search_id: Option<i64>,
    pub site: Option<String>,
    pub external_id: Option<String>,
    pub below_minor: Option<i64>,
    pub drop_percent: Option<i64>,
    pub currency: Option<String>,
    pub webhook_url: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// A new watch with its secret: `X-Scrapefarm-Signature` is `sha256=` + the hex HMAC-SHA256 of
/// each webhook body keyed with it. Shown only in this answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedWatchView {
    #[serde(flatten)]
    pub watch: WatchView,
    pub secret: String,
}

/// An alert and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlertView {
    pub id: i64,
    pub watch_id: i64,
    pub listing_id: i64,
    /// `below` or `drop`.
    pub reason: String,
    pub old_price_minor: Option<i64>,
    pub old_currency: Option<String>,
    pub new_price_minor: i64,
    pub currency: String,
    /// Epoch ms.
    pub created_at: i64,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// Epoch ms of the next attempt while pending.
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    /// The webhook's last HTTP status.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

impl From<WatchRow> for WatchView {
    fn from(row: WatchRow) -> WatchView {
        WatchView {
            id: row.id,
            search_id: row.search_id,
            site: row.site,
            external_id: row.external_id,
            below_minor: row.below_minor,
            drop_percent: row.drop_percent,
            currency: row.currency,
            webhook_url: without_credentials(&row.webhook_url),
            created_at: row.created_at,
        }
    }
}

impl From<AlertRow> for AlertView {
    fn from(a: AlertRow) -> AlertView {
        AlertView {
            id: a.id,
            watch_id: a.watch_id,
            listing_id: a.listing_id,
            reason: a.reason,
            old_price_minor: a.old_price_minor,
            old_currency: a.old_currency,
            new_price_minor: a.new_price_minor,
            currency: a.currency,
            created_at: a.created_at,
            state: a.state,
            attempts: a.attempts,
            next_attempt_at: a.next_attempt_at,
            delivered_at: a.delivered_at,
            last_status: a.last_status,
            last_error: a.last_error,
        }
    }
}

/// `url` with any user name and password removed (they are secrets).
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.into()
        }
        Err(_) => String::new(),
    }
}

impl From<WatchError> for TrackerError {
    fn from(e: WatchError) -> TrackerError {
        let field = match &e {
            WatchError::Target => "search_id",
            WatchError::NoRule => "below_minor",
            WatchError::DropPercent(_) => "drop_percent",
            WatchError::Threshold(_) => "below_minor",
            WatchError::Currency(_) => "currency",
            WatchError::WebhookUrl => "webhook_url",
            WatchError::Randomness(_) | WatchError::Store(_) => {
                return match e {
                    WatchError::Store(store) => TrackerError::Store(store),
                    other => TrackerError::Internal(other.to_string()),
                };
            }
        };
        TrackerError::Invalid(vec![FieldError {
            field: field.into(),
            message: e.to_string(),
        }])
    }
}

impl Tracker {
    /// Creates a watch; the search must exist and the site be known.
    pub async fn create_watch(
        &self,
        request: &WatchRequest,
    ) -> Result<CreatedWatchView, TrackerError> {
        if let Some(id) = request.search_id {
            self.search(id).await?;
        }
        if let Some(site) = &request.site {
            self.known_site(site)?;
        }
        let new = NewWatch {
            search_id: request.search_id,
            site: request.site.clone(),
            external_id: request.external_id.clone(),
            rule: WatchRule {
                below_minor: request.below_minor,
                drop_percent: request.drop_percent,
                currency: request.currency.clone(),
            },
            webhook_url: request.webhook_url.clone(),
        };
        let created = self.store.create_watch(&new).await?;
        Ok(CreatedWatchView {
            watch: created.watch.into(),
            secret: created.secret.expose().to_string(),
        })
    }

    /// The live watches, oldest first.
    pub async fn watches(&self) -> Result<Vec<WatchView>, TrackerError> {
        let rows = self.store.watches().await?;
        Ok(rows
            .into_iter()
            .filter(|w| w.deleted_at.is_none())
            .map(WatchView::from)
            .collect())
    }

    pub async fn watch(&self, id: i64) -> Result<WatchView, TrackerError> {
        match self.store.watch(id).await? {
            Some(row) if row.deleted_at.is_none() => Ok(row.into()),
            _ => Err(TrackerError::WatchNotFound(id)),
        }
    }

    /// Stops a watch: no new alerts; the ones fired are still delivered and listed.
    pub async fn delete_watch(&self, id: i64) -> Result<(), TrackerError> {
        match self.store.delete_watch(id).await? {
            true => Ok(()),
            false => Err(TrackerError::WatchNotFound(id)),
        }
    }

    /// Alerts, newest first; of one watch when given (which must exist, deleted or not).
    pub async fn alerts(&self, watch_id: Option<i64>) -> Result<Vec<AlertView>, TrackerError> {
        if let Some(id) = watch_id
            && self.store.watch(id).await?.is_none()
        {
            return Err(TrackerError::WatchNotFound(id));
        }
        let rows = self.store.alerts(watch_id).await?;
        Ok(rows.into_iter().map(AlertView::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_is_shown_without_its_credentials() {
        assert_eq!(
            without_credentials("https://user:pw@hooks.example/x?y=1"),
            "https://hooks.example/x?y=1"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:9/h"),
            "http://127.0.0.1:9/h"
        );
    }

    #[test]
    fn watch_errors_name_the_field() {
        let e = TrackerError::from(WatchError::DropPercent(150));
        let TrackerError::Invalid(errors) = e else {
            panic!("invalid expected")
        };
        assert_eq!(errors[0].field, "drop_percent");
        assert!(errors[0].message.contains("150"));
    }
}

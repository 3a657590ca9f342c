//! Watches and their alerts in the store (the transactional outbox of DESIGN §10): creating,
//! listing and soft-deleting watches; deciding alerts inside the transaction that stores a price
//! observation ([`evaluate_observation`], with the pure rule [`WatchRule::fires`]). The
//! deliverer's side of the outbox is in `outbox`.

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::watch_rule::{Observed, Reason, WatchRule};
use super::{Store, StoreError};
use crate::price::Currency;

/// A watch to create: on a search or on one listing, with at least one rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewWatch {
    pub search_id: Option<i64>,
    /// With `external_id`: a watch on one listing.
    pub site: Option<String>,
    pub external_id: Option<String>,
    pub rule: WatchRule,
    /// Where alerts are POSTed: an http or https URL.
    pub webhook_url: String,
}

/// Why a watch was refused.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("a watch is on a search or on one listing (site and external id), not both")]
    Target,
    #[error("a watch needs a rule: below_minor, drop_percent or both")]
    NoRule,
    #[error("drop_percent must be between 1 and 99, not {0}")]
    DropPercent(i64),
    #[error("below_minor must be positive, not {0}")]
    Threshold(i64),
    #[error("currency {0:?} is not an ISO 4217 code")]
    Currency(String),
    /// The URL itself is not repeated: it may carry credentials.
    #[error("the webhook URL must be an absolute http or https URL")]
    WebhookUrl,
    #[error("no randomness for the webhook secret: {0}")]
    Randomness(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A watch as stored, without its secret (shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WatchRow {
    pub id: i64,
    pub search_id: Option<i64>,
    pub site: Option<String>,
    pub external_id: Option<String>,
    pub below_minor: Option<i64>,
    pub drop_percent: Option<i64>,
    pub currency: Option<String>,
    pub webhook_url: String,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

/// A new watch and its webhook secret, which the store never returns again.
#[derive(Debug)]
pub struct CreatedWatch {
    pub watch: WatchRow,
    pub secret: WebhookSecret,
}

/// The key webhook bodies are signed with. Its `Debug` hides it; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// `whsec_` and 64 hex digits of operating-system randomness (32 bytes).
    fn generate() -> Result<WebhookSecret, WatchError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| WatchError::Randomness(e.to_string()))?;
        Ok(WebhookSecret(format!("whsec_{}", hex::encode(bytes))))
    }

    /// A secret read back from the watches table.
    pub(super) fn from_stored(secret: String) -> WebhookSecret {
        WebhookSecret(secret)
    }

    /// The secret as the receiver is given it; its UTF-8 bytes are the HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// An alert and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AlertRow {
    pub id: i64,
    pub watch_id: i64,
    pub listing_id: i64,
    pub observation_id: i64,
    pub old_price_minor: Option<i64>,
    pub old_currency: Option<String>,
    pub new_price_minor: i64,
    pub currency: String,
    pub reason: String,
    pub created_at: i64,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

const WATCH_COLUMNS: &str = "id, search_id, site, external_id, below_minor, drop_percent, \
    currency, webhook_url, created_at, deleted_at";
const ALERT_COLUMNS: &str = "a.id, a.watch_id, a.listing_id, a.observation_id, \
    a.old_price_minor, a.old_currency, a.new_price_minor, a.currency, a.reason, a.created_at, \
    a.state, a.attempts, a.next_attempt_at, a.delivered_at, a.last_status, a.last_error";

impl NewWatch {
    /// The watch, checked and with its currency in canonical form.
    fn validated(&self) -> Result<NewWatch, WatchError> {
        let on_listing = match (&self.site, &self.external_id) {
            (Some(site), Some(id)) => !site.is_empty() && !id.is_empty(),
            (None, None) => false,
            _ => return Err(WatchError::Target),
        };
        if on_listing == self.search_id.is_some() {
            return Err(WatchError::Target);
        }
        let rule = &self.rule;
        if rule.below_minor.is_none() && rule.drop_percent.is_none() {
            return Err(WatchError::NoRule);
        }
        if let Some(p) = rule.drop_percent.filter(|p| !(1..=99).contains(p)) {
            return Err(WatchError::DropPercent(p));
        }
        if let Some(t) = rule.below_minor.filter(|t| *t <= 0) {
            return Err(WatchError::Threshold(t));
        }
        let currency = match &rule.currency {
            Some(code) => Some(
                Currency::parse(code)
                    .map_err(|_| WatchError::Currency(code.clone()))?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        check_webhook_url(&self.webhook_url)?;
        let mut valid = self.clone();
        valid.rule.currency = currency;
        Ok(valid)
    }
}

/// An absolute http(s) URL with a host.
pub fn check_webhook_url(url: &str) -> Result<(), WatchError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        _ => Err(WatchError::WebhookUrl),
    }
}

impl Store {
    /// Stores a watch with a new random secret, returned here and never again.
    pub async fn create_watch(&self, new: &NewWatch) -> Result<CreatedWatch, WatchError> {
        let new = new.validated()?;
        let secret = WebhookSecret::generate()?;
        let now = self.db_now_ms().await?;
        let sql = format!(
            "INSERT INTO watches (search_id, site, external_id, below_minor, drop_percent, \
             currency, webhook_url, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {WATCH_COLUMNS}"
        );
        let watch = sqlx::query_as::<_, WatchRow>(sqlx::AssertSqlSafe(sql))
            .bind(new.search_id)
            .bind(new.site)
            .bind(new.external_id)
            .bind(new.rule.below_minor)
            .bind(new.rule.drop_percent)
            .bind(new.rule.currency)
            .bind(new.webhook_url)
            .bind(secret.expose().to_string())
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from)?;
        Ok(CreatedWatch { watch, secret })
    }

    /// The watch `id`, deleted or not.
    pub async fn watch(&self, id: i64) -> Result<Option<WatchRow>, StoreError> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watches WHERE id = $1");
        let row = sqlx::query_as::<_, WatchRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    /// Every live (not deleted) watch, oldest first.
    pub async fn watches(&self) -> Result<Vec<WatchRow>, StoreError> {
        let sql =
            format!("SELECT {WATCH_COLUMNS} FROM watches WHERE deleted_at IS NULL ORDER BY id");
        let rows = sqlx::query_as::<_, WatchRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    /// Soft-deletes watch `id`: it fires no more, its alerts stay (and pending ones are still
    /// delivered). False when there is no live watch `id`.
    pub async fn delete_watch(&self, id: i64) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done =
            sqlx::query("UPDATE watches SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Alerts, newest first, of one watch or of all.
    pub async fn alerts(&self, watch_id: Option<i64>) -> Result<Vec<AlertRow>, StoreError> {
        let filter = if watch_id.is_some() {
            "WHERE a.watch_id = $1"
        } else {
            ""
        };
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts a {filter} ORDER BY a.id DESC");
        let mut query = sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql));
        if let Some(watch_id) = watch_id {
            query = query.bind(watch_id);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }
}

/// The listing's watches that an observation is checked against.
#[derive(Debug, sqlx::FromRow)]
struct LiveWatch {
    id: i64,
    below_minor: Option<i64>,
    drop_percent: Option<i64>,
    currency: Option<String>,
}

/// The price observation just stored, as the evaluation sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewObservation<'a> {
    pub id: i64,
    pub listing_id: i64,
    pub site: &'a str,
    pub external_id: &'a str,
    pub price: Observed<'a>,
    pub now: i64,
}

/// Decides and writes the alerts a new price observation fires, inside the transaction that
/// stored it: the live watches on the listing (by site and external id, or by a search that
/// found it) against the listing's previous observation. Needs only SELECT on the watches'
/// rule columns and INSERT on alerts (the worker role's grants).
pub(super) async fn evaluate_observation(
    tx: &mut Transaction<'_, Any>,
    new: &NewObservation<'_>,
) -> Result<(), StoreError> {
    let watches: Vec<LiveWatch> = sqlx::query_as(
        "SELECT id, below_minor, drop_percent, currency FROM watches WHERE deleted_at IS NULL \
         AND ((site = $1 AND external_id = $2) \
         OR search_id IN (SELECT search_id FROM search_hits WHERE listing_id = $3))",
    )
    .bind(new.site)
    .bind(new.external_id)
    .bind(new.listing_id)
    .fetch_all(&mut **tx)
    .await?;
    if watches.is_empty() {
        return Ok(());
    }
    let previous: Option<(i64, String)> = sqlx::query_as(
        "SELECT price_minor, currency FROM price_observations WHERE listing_id = $1 AND id <> $2 \
         ORDER BY observed_at DESC, id DESC LIMIT 1",
    )
    .bind(new.listing_id)
    .bind(new.id)
    .fetch_optional(&mut **tx)
    .await?;
    let before = previous.as_ref().map(|(minor, currency)| Observed {
        minor: *minor,
        currency,
    });
    for watch in watches {
        let rule = WatchRule {
            below_minor: watch.below_minor,
            drop_percent: watch.drop_percent,
            currency: watch.currency,
        };
        if let Some(reason) = rule.fires(before, new.price) {
            insert_alert(tx, watch.id, new, before, reason).await?;
        }
    }
    Ok(())
}

/// One outbox row, due at once; a second evaluation of the same observation adds nothing.
async fn insert_alert(
    tx: &mut Transaction<'_, Any>,
    watch_id: i64,
    new: &NewObservation<'_>,
    before: Option<Observed<'_>>,
    reason: Reason,
) -> Result<(), StoreError> {
    // No conflict target and no RETURNING: the worker role may insert alerts, not read them.
    sqlx::query(
        "INSERT INTO alerts (watch_id, listing_id, observation_id, old_price_minor, old_currency, \
         new_price_minor, currency, reason, created_at, state, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10) ON CONFLICT DO NOTHING",
    )
    .bind(watch_id)
    .bind(new.listing_id)
    .bind(new.id)
    .bind(before.map(|p| p.minor))
    .bind(before.map(|p| p.currency.to_string()))
    .bind(new.price.minor)
    .bind(new.price.currency.to_string())
    .bind(reason.as_str())
    .bind(new.now)
    .bind(new.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn below(threshold: i64) -> WatchRule {
        WatchRule {
            below_minor: Some(threshold),
            ..WatchRule::default()
        }
    }

    #[test]
    fn watches_are_validated_before_they_are_stored() {
        let valid = NewWatch {
            search_id: Some(1),
            rule: below(1000),
            webhook_url: "http://127.0.0.1:9/hook".into(),
            ..NewWatch::default()
        };
        assert!(valid.validated().is_ok());
        let both = NewWatch {
            site: Some("fixture".into()),
            external_id: Some("1".into()),
            ..valid.clone()
        };
        assert!(matches!(both.validated(), Err(WatchError::Target)));
        let none = NewWatch {
            search_id: None,
            ..valid.clone()
        };
        assert!(matches!(none.validated(), Err(WatchError::Target)));
        let no_rule = NewWatch {
            rule: WatchRule::default(),
            ..valid.clone()
        };
        assert!(matches!(no_rule.validated(), Err(WatchError::NoRule)));
        let percent = NewWatch {
            rule: WatchRule {
                drop_percent: Some(100),
                ..WatchRule::default()
            },
            ..valid.clone()
        };
        assert!(matches!(
            percent.validated(),
            Err(WatchError::DropPercent(100))
        ));
        for url in ["ftp://h/x", "file:///etc/passwd", "not a url", "mailto:a@b"] {
            let bad = NewWatch {
                webhook_url: url.into(),
                ..valid.clone()
            };
            assert!(
                matches!(bad.validated(), Err(WatchError::WebhookUrl)),
                "{url}"
            );
        }
        let lower = NewWatch {
            rule: WatchRule {
                currency: Some("eur".into()),
                ..below(5)
            },
            ..valid
        };
        assert_eq!(
            lower.validated().unwrap().rule.currency.as_deref(),
            Some("EUR")
        );
    }

    #[test]
    fn secrets_are_random_and_never_debug_printed() {
        let (a, b) = (
            WebhookSecret::generate().unwrap(),
            WebhookSecret::generate().unwrap(),
        );
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_") && a.expose().len() == 70);
        assert!(!format!("{a:?}").contains(&a.expose()[6..]));
    }
}

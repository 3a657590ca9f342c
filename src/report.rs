//! Reports: how stored rows look to an operator or a script — the JSON shape of `listings --json`
//! (also used by `extract --json`) and plain-text tables.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::price::{Currency, Money};
use crate::store::{ListingRow, PriceObservation};

/// One listing as `listings --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListingJson {
    pub site: String,
    pub external_id: String,
    pub url: String,
    pub status: String,
    pub title: Option<String>,
    /// Decimal string in the currency's own precision, e.g. "1234.56" or "12345" for JPY.
    pub price: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub condition: Option<String>,
    pub seller: Option<String>,
    pub seller_score: Option<i64>,
    pub shipping: Option<String>,
    pub location: Option<String>,
    pub specifics: BTreeMap<String, String>,
    pub description: Option<String>,
    pub images: Vec<String>,
    pub snapshot: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<PriceObservation>>,
}

impl ListingJson {
    pub fn from_row(row: ListingRow, history: Option<Vec<PriceObservation>>) -> ListingJson {
        let price = match (
            row.price_minor,
            row.currency.as_deref().map(Currency::parse),
        ) {
            (Some(minor), Some(Ok(currency))) => {
                Some(Money::new(minor, currency).to_decimal_string())
            }
            _ => None,
        };
        ListingJson {
            specifics: serde_json::from_str(&row.specifics).unwrap_or_default(),
            images: serde_json::from_str(&row.images).unwrap_or_default(),
            site: row.site,
            external_id: row.external_id,
            url: row.url,
            status: row.status,
            title: row.title,
            price,
            price_minor: row.price_minor,
            currency: row.currency,
            condition: row.condition,
            seller: row.seller,
            seller_score: row.seller_score,
            shipping: row.shipping,
            location: row.location,
            description: row.description,
            snapshot: row.snapshot,
            attempts: row.attempts,
            last_error: row.last_error,
            history,
        }
    }

    /// One line of the plain-text listing table.
    pub fn text_line(&self) -> String {
        let price = match (&self.price, &self.currency) {
            (Some(p), Some(c)) => format!("{c} {p}"),
            _ => "-".into(),
        };
        format!(
            "{:<8} {:<14} {:<8} {:>16}  {}{}",
            self.site,
            self.external_id,
            self.status,
            price,
            self.title.as_deref().unwrap_or("-"),
            self.last_error
                .as_deref()
                .map(|e| format!("  [{e}]"))
                .unwrap_or_default()
        )
    }
}

/// An error and its causes on one line, `: `-separated, skipping a cause whose text the message
/// before it already includes (errors that embed their source and also return it from
/// `source()` would otherwise print it twice or three times).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|before| before.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Whether the error comes from writing to a closed pipe (the reader of stdout went away).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Failed to connect to the database at db: {source}")]
    struct Embeds {
        source: std::io::Error,
    }

    #[test]
    fn error_chain_prints_each_cause_once() {
        let io = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(Embeds { source: io }).context("Failed to open the store");
        assert_eq!(
            error_chain(&e),
            "Failed to open the store: Failed to connect to the database at db: connection refused"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = anyhow::Error::new(io).context("writing the table");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}

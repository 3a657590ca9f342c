//! Reports: how stored rows look to an operator or a script — the JSON shape of `listings --json`
//! (also used by `extract --json`) and plain-text tables.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use time::{OffsetDateTime, UtcOffset};

use crate::price::{Currency, Money};
use crate::store::{ListingRow, PriceObservation};

/// One listing as `listings --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    pub brand: Option<String>,
    pub sku: Option<String>,
    pub gtin: Option<String>,
    pub mpn: Option<String>,
    /// A schema.org name (`InStock`, `OutOfStock`, …) when the page gives one, else its text.
    pub availability: Option<String>,
    pub rating: Option<f64>,
    pub review_count: Option<i64>,
    /// The site's own fields (`[listing.extra]` of its definition).
    pub extra: BTreeMap<String, String>,
    /// The item number the page shows, when it differs in kind from the URL's id.
    pub item_id: Option<String>,
    pub translated_title: Option<String>,
    /// The struck-through reference price, minor units.
    pub was_price_minor: Option<i64>,
    pub was_currency: Option<String>,
    /// The fixed price next to an auction's bid, minor units.
    pub buy_it_now_minor: Option<i64>,
    pub buy_it_now_currency: Option<String>,
    pub auction: bool,
    pub best_offer: bool,
    pub bids: Option<i64>,
    pub status_text: Option<String>,
    pub description_url: Option<String>,
    /// Fields whose rules read values none of which could be parsed, and why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub field_errors: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<PriceObservation>>,
    /// The price changes between consecutive observations (`listings --changes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<PriceChange>>,
}

/// One price change: the observation before and the one that differed, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PriceChange {
    /// When the new price was observed, epoch ms.
    pub at: i64,
    pub old_minor: i64,
    pub old_currency: String,
    pub new_minor: i64,
    pub new_currency: String,
}

impl PriceChange {
    /// `USD 24.99 → USD 19.99 (-20.0%)`; no percentage across currencies.
    pub fn text(&self) -> String {
        let (old, new) = (
            money_text(self.old_minor, &self.old_currency),
            money_text(self.new_minor, &self.new_currency),
        );
        if self.old_currency != self.new_currency || self.old_minor == 0 {
            return format!("{old} → {new}");
        }
        // Tenths of a percent, rounded toward zero, in integers.
        let tenths = (self.new_minor - self.old_minor) * 1000 / self.old_minor;
        let sign = if tenths < 0 { "-" } else { "+" };
        let tenths = tenths.abs();
        format!("{old} → {new} ({sign}{}.{}%)", tenths / 10, tenths % 10)
    }
}

/// The changes in a listing's history (oldest first): each observation whose price or currency
/// differs from the one before it.
pub fn price_changes(history: &[PriceObservation]) -> Vec<PriceChange> {
    history
        .windows(2)
        .filter(|w| (w[0].price_minor, &w[0].currency) != (w[1].price_minor, &w[1].currency))
        .map(|w| PriceChange {
            at: w[1].observed_at,
            old_minor: w[0].price_minor,
            old_currency: w[0].currency.clone(),
            new_minor: w[1].price_minor,
            new_currency: w[1].currency.clone(),
        })
        .collect()
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
            extra: serde_json::from_str(&row.extra).unwrap_or_default(),
            field_errors: serde_json::from_str(&row.field_errors).unwrap_or_default(),
            brand: row.brand,
            sku: row.sku,
            gtin: row.gtin,
            mpn: row.mpn,
            availability: row.availability,
            rating: row.rating,
            review_count: row.review_count,
            item_id: row.item_id,
            translated_title: row.translated_title,
            was_price_minor: row.was_price_minor,
            was_currency: row.was_currency,
            buy_it_now_minor: row.buy_it_now_minor,
            buy_it_now_currency: row.buy_it_now_currency,
            auction: row.auction != 0,
            best_offer: row.best_offer != 0,
            bids: row.bids,
            status_text: row.status_text,
            description_url: row.description_url,
            changes: None,
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

    /// The price as `USD 499.36` (JPY without minor unit: `JPY 12345`), or `-`.
    pub fn price_text(&self) -> String {
        match (&self.price, &self.currency) {
            (Some(p), Some(c)) => format!("{c} {p}"),
            _ => "-".into(),
        }
    }

    /// The title, with the last error in brackets when there is one.
    pub fn title_text(&self) -> String {
        let title = self.title.as_deref().unwrap_or("-");
        match &self.last_error {
            Some(e) => format!("{title}  [{e}]"),
            None => title.to_string(),
        }
    }

    /// One line of the plain-text listing table.
    pub fn text_line(&self) -> String {
        format!(
            "{:<8} {:<14} {:<8} {:>16}  {}",
            self.site,
            self.external_id,
            self.status,
            self.price_text(),
            self.title_text()
        )
    }
}

/// `USD 19.99` for an amount in minor units (`JPY 1999`: no minor unit); the code and the raw
/// number when the currency is unknown.
pub fn money_text(minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(c) => format!("{c} {}", Money::new(minor, c).to_decimal_string()),
        Err(_) => format!("{currency} {minor} (minor units)"),
    }
}

/// The local UTC offset, read once at start-up while the process has a single thread (the only
/// time it can be read soundly); UTC when it cannot be.
static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local offset; call from `main` before the runtime starts its threads.
pub fn init_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

fn local_offset() -> UtcOffset {
    LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC)
}

/// An epoch-millisecond time as ISO 8601 local time, `2026-12-07 18:30:05`.
pub fn local_time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| t.to_offset(local_offset()))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `YYYY-MM-DD` (a local day) as the epoch milliseconds of its start, for `--since`.
pub fn parse_local_day(text: &str) -> Result<i64, String> {
    let invalid = || format!("`{text}` is not a date as YYYY-MM-DD");
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [year, month, day] = parts[..] else {
        return Err(invalid());
    };
    let year: i32 = year.parse().map_err(|_| invalid())?;
    let month: u8 = month.parse().map_err(|_| invalid())?;
    let day: u8 = day.parse().map_err(|_| invalid())?;
    let month = time::Month::try_from(month).map_err(|_| invalid())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| invalid())?;
    let start = date.midnight().assume_offset(local_offset());
    Ok(start.unix_timestamp() * 1000)
}

/// A plain-text table: a header line, then one line per row, columns padded to their widest
/// cell; the last column is never padded (titles are long).
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named `headers`; a name starting with `>` is right-aligned (numbers, money).
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_start_matches('>')).collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header line followed by the rows' lines.
    pub fn lines(&self) -> Vec<String> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| self.line(row, &widths))
            .collect()
    }

    fn line(&self, row: &[String], widths: &[usize]) -> String {
        let last = row.len().saturating_sub(1);
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| match (self.right.get(i), i == last) {
                (Some(true), _) => format!("{cell:>w$}", w = widths[i]),
                (_, true) => cell.clone(),
                _ => format!("{cell:<w$}", w = widths[i]),
            })
            .collect();
        cells.join("  ")
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

    fn obs(at: i64, minor: i64, currency: &str) -> PriceObservation {
        PriceObservation {
            listing_id: 1,
            observed_at: at,
            price_minor: minor,
            currency: currency.into(),
        }
    }

    #[test]
    fn changes_are_consecutive_observations_that_differ() {
        let history = [
            obs(1, 2499, "USD"),
            obs(2, 2499, "USD"),
            obs(3, 1999, "USD"),
            obs(4, 1999, "EUR"),
            obs(5, 2199, "EUR"),
        ];
        let changes = price_changes(&history);
        let at: Vec<i64> = changes.iter().map(|c| c.at).collect();
        assert_eq!(at, [3, 4, 5]);
        assert_eq!(changes[0].text(), "USD 24.99 → USD 19.99 (-20.0%)");
        assert_eq!(
            changes[1].text(),
            "USD 19.99 → EUR 19.99",
            "no percentage across currencies"
        );
        assert_eq!(changes[2].text(), "EUR 19.99 → EUR 21.99 (+10.0%)");
        assert!(price_changes(&history[..2]).is_empty());
    }

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
    fn money_prints_in_the_currency_precision() {
        assert_eq!(money_text(49936, "USD"), "USD 499.36");
        assert_eq!(money_text(1999, "JPY"), "JPY 1999");
        assert_eq!(money_text(5, "EUR"), "EUR 0.05");
    }

    #[test]
    fn times_print_as_iso_8601_and_days_parse_to_their_start() {
        // Tests run with several threads: the offset is never read, so UTC.
        assert_eq!(local_time(1_796_668_205_000), "2026-12-07 18:30:05");
        let start = parse_local_day("2026-12-07").unwrap();
        assert_eq!(local_time(start), "2026-12-07 00:00:00");
        assert!(parse_local_day("2026-13-01").is_err());
        assert!(parse_local_day("yesterday").is_err());
    }

    #[test]
    fn tables_pad_columns_to_the_widest_cell_and_right_align_numbers() {
        let mut table = Table::new(&["ID", ">PRICE", "TITLE"]);
        table.push(vec!["1".into(), "USD 5.00".into(), "lamp".into()]);
        table.push(vec!["22".into(), "USD 19.99".into(), "brass lamp".into()]);
        assert_eq!(
            table.lines(),
            [
                "ID      PRICE  TITLE",
                "1    USD 5.00  lamp",
                "22  USD 19.99  brass lamp"
            ]
        );
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = anyhow::Error::new(io).context("writing the table");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}

//! `/ui/listings/{site}/{external_id}`: one listing — every stored field, its item specifics,
//! its images as plain links (never loaded from the marketplace into our page), the price
//! history as a server-drawn chart and a list, its watches and its snapshots.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::chart::{PricePoint, price_chart};
use super::page::{document, escape, money, time, watch_rule};
use super::session::Session;
use super::{UiError, UiState};
use crate::report::ListingJson;
use crate::store::{PriceObservation, SnapshotRow};
use crate::tracker::Tracker;
use crate::tracker::watches::WatchView;

/// Fields shown in their own section, not in the field list.
const OWN_SECTIONS: [&str; 7] = [
    "specifics",
    "images",
    "extra",
    "field_errors",
    "history",
    "changes",
    "snapshot",
];

pub fn router() -> axum::Router<UiState> {
    axum::Router::new().route("/ui/listings/{site}/{external_id}", get(listing))
}

async fn listing(
    State(state): State<UiState>,
    session: Session,
    Path((site, external_id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let body = render(&state.app.tracker, &site, &external_id).await?;
    let title = format!("{site}/{external_id}");
    Ok(document(&title, Some(&session), &body))
}

/// The page body of one listing.
pub async fn render(tracker: &Tracker, site: &str, external_id: &str) -> Result<String, UiError> {
    let store = &tracker.store;
    let Some(row) = store.listing(site, external_id).await? else {
        return Err(UiError::not_found(format!(
            "no listing {site}/{external_id}"
        )));
    };
    let listing_id = row.id;
    let history = store.price_history(listing_id).await?;
    let snapshots = store.listing_snapshots(listing_id).await?;
    let watches: Vec<WatchView> = tracker
        .watches()
        .await
        .map_err(UiError::tracker)?
        .into_iter()
        .filter(|w| {
            w.site.as_deref() == Some(site) && w.external_id.as_deref() == Some(external_id)
        })
        .collect();
    let listing = ListingJson::from_row(row, None);
    let heading = listing
        .title
        .clone()
        .unwrap_or_else(|| format!("Listing {external_id}"));
    let mut body = format!(
        "<h1>{}</h1><p class=\"lead\">{} · {} · <a href=\"{}\" rel=\"noopener noreferrer nofollow\">on the site</a></p>",
        escape(&heading),
        escape(site),
        escape(&money(listing.price_minor, listing.currency.as_deref())),
        escape(&safe_link(&listing.url).unwrap_or_default()),
    );
    body += &history_section(&heading, &history, listing.currency.as_deref());
    body += &fields_section(&listing);
    body += &images_section(&listing.images);
    body += &watches_section(&watches);
    body += &snapshots_section(&snapshots);
    Ok(body)
}

/// `url` when it is a plain web address (no `javascript:` or `data:` link can be made from data).
fn safe_link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

fn history_section(heading: &str, history: &[PriceObservation], currency: Option<&str>) -> String {
    let currency = history
        .last()
        .map(|o| o.currency.as_str())
        .or(currency)
        .unwrap_or("");
    let points: Vec<PricePoint> = history
        .iter()
        .filter(|o| o.currency == currency)
        .map(|o| PricePoint {
            observed_at: o.observed_at,
            price_minor: o.price_minor,
        })
        .collect();
    let title = format!("Price of {heading} over time, in {currency}");
    let mut out = format!(
        "<section aria-labelledby=\"h-history\"><h2 id=\"h-history\">Price history</h2>\
         <figure>{}<figcaption>{} observations in {}; times in UTC.</figcaption></figure>",
        price_chart(&title, &points, currency),
        points.len(),
        escape(currency)
    );
    out += "<table class=\"observations\"><caption>Observations, oldest first</caption><thead><tr>\
            <th scope=\"col\">Observed</th><th scope=\"col\" class=\"num\">Price</th></tr></thead><tbody>";
    for o in history {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&time(Some(o.observed_at))),
            escape(&money(Some(o.price_minor), Some(&o.currency)))
        );
    }
    out + "</tbody></table></section>"
}

/// A JSON value as text: strings as they are, `null` as an em dash.
fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A definition list of `pairs`.
fn definitions<'a>(pairs: impl Iterator<Item = (&'a String, String)>) -> String {
    let mut out = String::from("<dl>");
    for (name, value) in pairs {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            escape(&name.replace('_', " ")),
            escape(&value)
        );
    }
    out + "</dl>"
}

/// Every stored field, then the item specifics and the site's own fields.
fn fields_section(listing: &ListingJson) -> String {
    let json = serde_json::to_value(listing).unwrap_or(Value::Null);
    let mut out =
        String::from("<section aria-labelledby=\"h-fields\"><h2 id=\"h-fields\">Fields</h2>");
    if let Value::Object(map) = &json {
        let scalars = map
            .iter()
            .filter(|(k, _)| !OWN_SECTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k, value_text(v)));
        out += &definitions(scalars);
    }
    out += "<h3>Item specifics</h3>";
    out += &if listing.specifics.is_empty() {
        "<p>None.</p>".to_string()
    } else {
        definitions(listing.specifics.iter().map(|(k, v)| (k, v.clone())))
    };
    if !listing.extra.is_empty() {
        out += "<h3>Site fields</h3>";
        out += &definitions(listing.extra.iter().map(|(k, v)| (k, v.clone())));
    }
    if !listing.field_errors.is_empty() {
        out += "<h3>Fields that could not be read</h3>";
        out += &definitions(listing.field_errors.iter().map(|(k, v)| (k, v.clone())));
    }
    out + "</section>"
}

/// Images as links: the dashboard never loads the marketplace's content into its own page.
fn images_section(images: &[String]) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"h-images\"><h2 id=\"h-images\">Images</h2>");
    let links: Vec<String> = images.iter().filter_map(|i| safe_link(i)).collect();
    if links.is_empty() {
        return out + "<p>None.</p></section>";
    }
    out += "<ul>";
    for (n, link) in links.iter().enumerate() {
        let _ = write!(
            out,
            "<li><a href=\"{}\" rel=\"noopener noreferrer nofollow\">Image {} ({})</a></li>",
            escape(link),
            n + 1,
            escape(link)
        );
    }
    out + "</ul></section>"
}

fn watches_section(watches: &[WatchView]) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"h-watches\"><h2 id=\"h-watches\">Watches</h2>");
    if watches.is_empty() {
        return out + "<p>No watch on this listing.</p></section>";
    }
    out += "<ul>";
    for w in watches {
        let rule = watch_rule(w);
        let _ = write!(
            out,
            "<li>Watch {}: {} → {}</li>",
            w.id,
            escape(&rule),
            escape(&w.webhook_url)
        );
    }
    out + "</ul></section>"
}

fn snapshots_section(snapshots: &[SnapshotRow]) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"h-snapshots\"><h2 id=\"h-snapshots\">Snapshots</h2>",
    );
    if snapshots.is_empty() {
        return out + "<p>No snapshot kept.</p></section>";
    }
    out += "<ul class=\"snapshots\">";
    for s in snapshots {
        let status = s
            .http_status
            .map(|h| format!("HTTP {h}"))
            .unwrap_or_else(|| "no status".into());
        let _ = write!(
            out,
            "<li><a href=\"/ui/snapshots/{}\">{}</a> · {} · {} bytes{}</li>",
            s.id,
            escape(&time(Some(s.captured_at))),
            escape(&status),
            s.html_bytes,
            if s.screenshot_path.is_some() {
                " · with screenshot"
            } else {
                ""
            }
        );
    }
    out + "</ul></section>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_addresses_become_links() {
        assert_eq!(
            safe_link("https://example.com/a.jpg").as_deref(),
            Some("https://example.com/a.jpg")
        );
        assert_eq!(safe_link("javascript:alert(1)"), None);
        assert_eq!(safe_link("data:text/html,<script>"), None);
        assert!(images_section(&["javascript:alert(1)".into()]).contains("None."));
    }
}

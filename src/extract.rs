//! Extract (stage 4): a pure function from a rendered page and its site definition to a record,
//! plus the search-result parser the collector uses. Each field is read by the site's rules
//! (`rules`): CSS selectors with fallbacks, attributes, JSON-LD paths, regexes. Typed
//! post-processing turns price text into minor units, counts like `(12,345)` into integers,
//! tables into maps and relative URLs into absolute ones. Runs on a blocking thread: HTML parsing
//! is CPU work.

mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use scraper::{ElementRef, Selector};
use url::Url;

use crate::domain::{Record, SearchHit};
use crate::price::{self, Currency, Money, PriceError};
use crate::site::{Field, Site};

pub use rules::{Document, RuleTrace, collapse_whitespace};

/// The page could be parsed but its fields do not make sense; retrying will not help.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("listing URL {0} does not match the site's listing pattern")]
    NoListingId(String),
    #[error("price text `{text}` could not be read: {source}")]
    Price { text: String, source: PriceError },
    #[error("listing page has no title")]
    NoTitle,
}

/// One parsed search result page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    /// Real results in page order (placeholders, skipped rows and foreign links left out).
    /// A listing shown twice is listed twice; the collector deduplicates.
    pub hits: Vec<SearchHit>,
    pub next_page: Option<String>,
    /// Result rows on the page, including the ones that are not hits.
    pub rows: usize,
    /// The total the page announces; `Some(0)` is a zero-result page, whose rows (if any) are
    /// the site's suggestions for a looser query.
    pub result_count: Option<u64>,
}

/// Extracts a listing record from `html`, the page found at `url`.
pub fn extract_listing(html: &str, url: &str, site: &Site) -> Result<Record, ExtractError> {
    let external_id = site
        .listing_id(url)
        .ok_or_else(|| ExtractError::NoListingId(url.to_string()))?;
    extract_record(html, url, external_id, site)
}

/// Extracts a listing record whose listing id is already known (a saved page); `url` resolves
/// relative links.
pub fn extract_record(
    html: &str,
    url: &str,
    external_id: String,
    site: &Site,
) -> Result<Record, ExtractError> {
    let doc = Document::parse(html, site);
    let base = Url::parse(url).ok();
    let f = &site.fields;
    let text = |field: &Option<Field>| field.as_ref().and_then(|f| doc.first(f));
    let flag = |field: &Option<Field>| field.as_ref().is_some_and(|f| doc.present(f));
    let title = text(&f.title).ok_or(ExtractError::NoTitle)?;
    let currency = text(&f.currency)
        .and_then(|c| Currency::parse(c.trim()).ok())
        .or(site.default_currency);
    let price = match text(&f.price) {
        Some(text) => Some(listing_price(&text, currency)?),
        None => None,
    };
    // Secondary prices never fail a record: a missing one is better than a lost listing.
    let other_price =
        |field: &Option<Field>| text(field).and_then(|t| listing_price(&t, currency).ok());
    Ok(Record {
        external_id,
        translated_title: text(&f.translated_title).filter(|shown| *shown != title),
        title: Some(title),
        price,
        was_price: other_price(&f.was_price),
        buy_it_now_price: other_price(&f.buy_it_now_price),
        auction: flag(&f.auction),
        bids: text(&f.bids).and_then(|s| price::parse_count(&s)),
        best_offer: flag(&f.best_offer),
        item_id: text(&f.item_id),
        condition: text(&f.condition),
        seller: text(&f.seller),
        seller_score: text(&f.seller_score).and_then(|s| price::parse_count(&s)),
        shipping: text(&f.shipping),
        location: text(&f.location),
        specifics: specifics(&doc, site),
        description: text(&f.description),
        description_url: text(&f.description_url).and_then(|u| absolute(base.as_ref(), &u)),
        images: f
            .images
            .as_ref()
            .map(|field| all_urls(&doc, field, base.as_ref()))
            .unwrap_or_default(),
        status_text: text(&f.status_text),
        ended: flag(&f.ended),
    })
}

/// A listing's price: one amount, or the low end of a range ("US $9.99 to US $19.99" on a
/// listing with variations).
fn listing_price(text: &str, currency: Option<Currency>) -> Result<Money, ExtractError> {
    let error = |source| ExtractError::Price {
        text: text.to_string(),
        source,
    };
    match price::parse_money(text, currency) {
        Err(PriceError::Ambiguous(_)) => price::parse_price_range(text, currency)
            .map(|range| range.low)
            .map_err(error),
        other => other.map_err(error),
    }
}

/// Whether the listing page says the listing has ended (the site's `ended` flag).
pub fn is_ended(html: &str, site: &Site) -> bool {
    site.fields
        .ended
        .as_ref()
        .is_some_and(|field| Document::parse(html, site).present(field))
}

/// Parses one search result page into hits (skipped rows and foreign links left out) and the
/// next page.
pub fn extract_search(html: &str, url: &str, site: &Site) -> SearchPage {
    let doc = Document::parse(html, site);
    let base = Url::parse(url).ok();
    let search = &site.search;
    let mut page = SearchPage::default();
    for row in doc.html.select(&search.result) {
        page.rows += 1;
        if search
            .skip
            .as_ref()
            .is_some_and(|skip| matches_self_or_inside(row, skip))
        {
            continue;
        }
        let Some(href) = doc.first_in(row, &search.link) else {
            continue;
        };
        let Some(link) = absolute(base.as_ref(), &href) else {
            continue;
        };
        let Some(external_id) = site.listing_id(&link) else {
            continue;
        };
        page.hits.push(SearchHit {
            external_id,
            url: link,
            title: search.title.as_ref().and_then(|f| doc.first_in(row, f)),
            price_text: search.price.as_ref().and_then(|f| doc.first_in(row, f)),
        });
    }
    page.next_page = search
        .next_page
        .as_ref()
        .and_then(|sel| doc.html.select(sel).next())
        .and_then(|a| a.value().attr("href"))
        .and_then(|href| absolute(base.as_ref(), href));
    page.result_count = search
        .result_count
        .as_ref()
        .and_then(|f| doc.first(f))
        .and_then(|text| price::parse_count(&text))
        .and_then(|n| u64::try_from(n).ok());
    page
}

fn matches_self_or_inside(row: ElementRef<'_>, sel: &Selector) -> bool {
    sel.matches(&row) || row.select(sel).next().is_some()
}

/// Item specifics: in every row of every definition, the n-th key pairs with the n-th value.
/// The first value of a key wins.
fn specifics(doc: &Document<'_>, site: &Site) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for def in &site.fields.specifics {
        for row in doc.html.select(&def.row) {
            let keys = row.select(&def.key).map(|e| doc.text(e, None));
            let values = row
                .select(&def.value)
                .map(|e| doc.text(e, def.exclude.as_ref()));
            for (key, value) in keys.zip(values) {
                let key = key.trim_end_matches(':').trim().to_string();
                if !key.is_empty() && !value.is_empty() {
                    map.entry(key).or_insert(value);
                }
            }
        }
    }
    map
}

fn all_urls(doc: &Document<'_>, field: &Field, base: Option<&Url>) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for url in doc.all(field).iter().filter_map(|v| absolute(base, v)) {
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

fn absolute(base: Option<&Url>, href: &str) -> Option<String> {
    match base {
        Some(base) => base.join(href).ok().map(String::from),
        None => Url::parse(href).ok().map(String::from),
    }
}

//! Extract (stage 4): a pure function from a rendered page and its site definition to a record,
//! plus the search-result parser the collector uses. Typed post-processing turns price text into
//! minor units, counts like `(12,345)` into integers, tables into maps and relative URLs into
//! absolute ones. Runs on a blocking thread: HTML parsing is CPU work.

use std::collections::BTreeMap;

use scraper::{ElementRef, Html, Selector};
use url::Url;

use crate::domain::{Record, SearchHit};
use crate::price::{self, Currency, PriceError};
use crate::site::{Field, Site};

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
    pub hits: Vec<SearchHit>,
    pub next_page: Option<String>,
}

/// Extracts a listing record from `html`, the page found at `url`.
pub fn extract_listing(html: &str, url: &str, site: &Site) -> Result<Record, ExtractError> {
    let external_id = site
        .listing_id(url)
        .ok_or_else(|| ExtractError::NoListingId(url.to_string()))?;
    let doc = Html::parse_document(html);
    let base = Url::parse(url).ok();
    let f = &site.fields;
    let text_of = |field: &Option<Field>| field.as_ref().and_then(|f| first_value(&doc, f));
    let title = text_of(&f.title).ok_or(ExtractError::NoTitle)?;
    let currency = text_of(&f.currency).and_then(|c| Currency::parse(c.trim()).ok());
    let price = match text_of(&f.price) {
        Some(text) => Some(
            price::parse_money(&text, currency.or(site.default_currency))
                .map_err(|source| ExtractError::Price { text, source })?,
        ),
        None => None,
    };
    Ok(Record {
        external_id,
        title: Some(title),
        price,
        condition: text_of(&f.condition),
        seller: text_of(&f.seller),
        seller_score: text_of(&f.seller_score).and_then(|s| price::parse_count(&s)),
        shipping: text_of(&f.shipping),
        location: text_of(&f.location),
        specifics: specifics(&doc, site),
        description: text_of(&f.description),
        images: f
            .images
            .as_ref()
            .map(|field| all_urls(&doc, field, base.as_ref()))
            .unwrap_or_default(),
        ended: f
            .ended
            .as_ref()
            .is_some_and(|sel| doc.select(sel).next().is_some()),
    })
}

/// Parses one search result page into hits (sponsored and foreign links skipped) and the next page.
pub fn extract_search(html: &str, url: &str, site: &Site) -> SearchPage {
    let doc = Html::parse_document(html);
    let base = Url::parse(url).ok();
    let search = &site.search;
    let mut hits = Vec::new();
    for row in doc.select(&search.result) {
        if search
            .skip
            .as_ref()
            .is_some_and(|skip| matches_self_or_inside(row, skip))
        {
            continue;
        }
        let Some(href) = first_value_in(row, &search.link) else {
            continue;
        };
        let Some(link) = absolute(base.as_ref(), &href) else {
            continue;
        };
        let Some(external_id) = site.listing_id(&link) else {
            continue;
        };
        hits.push(SearchHit {
            external_id,
            url: link,
            title: search.title.as_ref().and_then(|f| first_value_in(row, f)),
            price_text: search.price.as_ref().and_then(|f| first_value_in(row, f)),
        });
    }
    let next_page = search
        .next_page
        .as_ref()
        .and_then(|sel| doc.select(sel).next())
        .and_then(|a| a.value().attr("href"))
        .and_then(|href| absolute(base.as_ref(), href));
    SearchPage { hits, next_page }
}

fn matches_self_or_inside(row: ElementRef<'_>, sel: &Selector) -> bool {
    sel.matches(&row) || row.select(sel).next().is_some()
}

fn specifics(doc: &Html, site: &Site) -> BTreeMap<String, String> {
    let Some(def) = &site.fields.specifics else {
        return BTreeMap::new();
    };
    doc.select(&def.row)
        .filter_map(|row| {
            let key = row.select(&def.key).next().map(|e| clean_text(e))?;
            let value = row.select(&def.value).next().map(|e| clean_text(e))?;
            let key = key.trim_end_matches(':').trim().to_string();
            (!key.is_empty()).then_some((key, value))
        })
        .collect()
}

/// The first non-empty value of `field` anywhere in the document.
fn first_value(doc: &Html, field: &Field) -> Option<String> {
    first_value_in(doc.root_element(), field)
}

/// The first non-empty value of `field` inside `scope`, trying each selector in order.
fn first_value_in(scope: ElementRef<'_>, field: &Field) -> Option<String> {
    field
        .selectors
        .iter()
        .flat_map(|sel| scope.select(sel))
        .find_map(|el| value_of(el, field))
}

fn value_of(el: ElementRef<'_>, field: &Field) -> Option<String> {
    let raw = match &field.attr {
        Some(attr) => el.value().attr(attr)?.trim().to_string(),
        None => clean_text(el),
    };
    let value = match &field.regex {
        Some(re) => {
            let caps = re.captures(&raw)?;
            caps.get(1)
                .or_else(|| caps.get(0))?
                .as_str()
                .trim()
                .to_string()
        }
        None => raw,
    };
    (!value.is_empty()).then_some(value)
}

fn all_urls(doc: &Html, field: &Field, base: Option<&Url>) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for el in field.selectors.iter().flat_map(|sel| doc.select(sel)) {
        let Some(url) = value_of(el, field).and_then(|v| absolute(base, &v)) else {
            continue;
        };
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

/// Element text with whitespace runs (including NBSP) collapsed to single spaces.
pub fn clean_text(el: ElementRef<'_>) -> String {
    let mut out = String::new();
    for word in el.text().flat_map(|t| t.split(|c: char| c.is_whitespace())) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

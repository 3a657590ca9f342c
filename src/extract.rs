//! Extract (stage 4): a pure function from a rendered page and its site definition to a record,
//! plus the search-result parser the collector uses. Each field is read by the site's rules
//! (`rules`): CSS selectors with fallbacks, attributes, JSON-LD paths, regexes. Typed
//! post-processing turns price text into minor units, counts like `(12,345)` into integers,
//! tables into maps and relative URLs into absolute ones. Runs on a blocking thread: HTML parsing
//! is CPU work.

mod charset;
mod json;
mod page;
mod reader;
mod rules;
mod search;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod tests;
mod text;

use std::collections::BTreeMap;

use scraper::{ElementRef, Selector};
use url::Url;

use crate::classify::PageClass;
use crate::domain::{Record, SearchHit};
use crate::price::{self, Currency, Money, PriceError};
use crate::site::{Field, Rule, Site};
use reader::FieldReader;

pub use charset::{CharsetSource, Decoded, decode_html};
pub use rules::{Document, RuleTrace, Scope};
pub use search::extract_search;
pub use text::{collapse_whitespace, inner_text};

/// The page is not a listing the record can be built from (no title, a foreign URL); retrying
/// will not help. A field that cannot be read is not an error of the page (`field_errors`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("listing URL {0} does not match the site's listing pattern")]
    NoListingId(String),
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
    /// Rows that gave no hit, counted by why: `skipped` (the site's `skip`), `no link`,
    /// `not a URL`, `not a listing URL` (the link does not match the site's listing pattern).
    pub dropped: BTreeMap<&'static str, usize>,
}

/// Extracts a listing record from `html`, the page found at `url`.
pub fn extract_listing(html: &str, url: &str, site: &Site) -> Result<Record, ExtractError> {
    let external_id = site
        .listing_id(url)
        .ok_or_else(|| ExtractError::NoListingId(url.to_string()))?;
    extract_record(html, url, external_id, site)
}

/// Extracts a listing record whose listing id is already known (a saved page); `url` resolves
/// relative links. Only a page without a title is an error: a field that cannot be read is
/// left empty and its problem kept in the record's `field_errors`.
pub fn extract_record(
    html: &str,
    url: &str,
    external_id: String,
    site: &Site,
) -> Result<Record, ExtractError> {
    let doc = Document::parse(html, site);
    let base = Some(link_base(&doc, url, site));
    let f = &site.fields;
    let mut read = FieldReader::new(&doc);
    let title = read.text("title", &f.title).ok_or(ExtractError::NoTitle)?;
    // The money decision order: the price rule's own currency, the `currency` field, the
    // page's declared currency, the site's default; a marker in the text settles the rest.
    let currency = read
        .read("currency", &f.currency, |_, code| {
            Currency::parse(code.trim()).map_err(|e| e.to_string())
        })
        .or_else(|| page::declared_currency(&doc))
        .or(site.default_currency);
    let money = |rule: &Rule, text: &str| {
        listing_price(text, rule.currency.or(currency)).map_err(|e| e.to_string())
    };
    let flag = |field: &Option<Field>| field.as_ref().is_some_and(|f| doc.present(f));
    let url_of =
        |_: &Rule, href: &str| absolute(base.as_ref(), href).ok_or_else(|| "not a URL".to_string());
    let mut record = Record {
        external_id,
        translated_title: read
            .text("translated_title", &f.translated_title)
            .filter(|shown| *shown != title),
        title: Some(title),
        price: read.read("price", &f.price, money),
        was_price: read.read("was_price", &f.was_price, money),
        buy_it_now_price: read.read("buy_it_now_price", &f.buy_it_now_price, money),
        auction: flag(&f.auction),
        bids: read.count("bids", &f.bids),
        best_offer: flag(&f.best_offer),
        item_id: read.text("item_id", &f.item_id),
        condition: read.text("condition", &f.condition),
        seller: read.text("seller", &f.seller),
        seller_score: read.count("seller_score", &f.seller_score),
        shipping: read.text("shipping", &f.shipping),
        location: read.text("location", &f.location),
        specifics: specifics(&doc, site),
        description: read.text("description", &f.description),
        description_url: read.read("description_url", &f.description_url, url_of),
        images: f
            .images
            .as_ref()
            .map(|field| all_urls(&doc, field, base.as_ref()))
            .unwrap_or_default(),
        status_text: read.text("status_text", &f.status_text),
        ended: flag(&f.ended),
        brand: read.text("brand", &f.brand),
        sku: read.text("sku", &f.sku),
        gtin: read.read("gtin", &f.gtin, |_, text| gtin(text)),
        mpn: read.text("mpn", &f.mpn),
        availability: read
            .text("availability", &f.availability)
            .map(|a| availability(&a)),
        rating: read.read("rating", &f.rating, |_, text| rating(text)),
        review_count: read.count("review_count", &f.review_count),
        extra: f
            .extra
            .iter()
            .filter_map(|(name, field)| {
                Some((name.clone(), read.text(name, &Some(field.clone()))?))
            })
            .collect(),
        ..Record::default()
    };
    record.field_errors = read.errors;
    Ok(record)
}

/// The class of a listing page once its record is read: a page classified as content whose
/// required fields are missing (no title, or no price where the site does not say
/// `price_optional = true`) is [`PageClass::Empty`] with no record, not a listing stored
/// without them; other classes and records are kept as they are.
pub fn settle_class(
    class: PageClass,
    record: Option<Result<Record, ExtractError>>,
    site: &Site,
) -> (PageClass, Option<Result<Record, ExtractError>>) {
    match (
        &class,
        record.as_ref().and_then(|r| missing_required(r, site)),
    ) {
        (PageClass::Content, Some(_)) => (PageClass::Empty, None),
        _ => (class, record),
    }
}

/// The first required field a listing page's record lacks: `title`, or `price` unless the site
/// says `price_optional = true`.
pub fn missing_required(
    record: &Result<Record, ExtractError>,
    site: &Site,
) -> Option<&'static str> {
    match record {
        Err(ExtractError::NoTitle) => Some("title"),
        Ok(r) if r.price.is_none() && !site.price_optional => Some("price"),
        _ => None,
    }
}

/// schema.org's ItemAvailability names, by their letters lower-cased.
const AVAILABILITY: [&str; 10] = [
    "InStock",
    "OutOfStock",
    "PreOrder",
    "BackOrder",
    "Discontinued",
    "LimitedAvailability",
    "SoldOut",
    "OnlineOnly",
    "InStoreOnly",
    "PreSale",
];

/// A stock state as its schema.org name when the page gives one in any spelling
/// (`https://schema.org/InStock`, `in_stock`, `In Stock.`), else the text as read.
fn availability(text: &str) -> String {
    let trimmed = text.trim();
    let name = trimmed.rsplit('/').next().unwrap_or(trimmed);
    let letters: String = name
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    AVAILABILITY
        .iter()
        .find(|known| known.to_ascii_lowercase() == letters)
        .map_or_else(|| trimmed.to_string(), |known| known.to_string())
}

/// A GTIN (EAN/UPC/ISBN-13, 8 to 14 digits) without its spaces and hyphens; anything else
/// ("n/a") is not one, and the next rule is tried.
fn gtin(text: &str) -> Result<String, String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let valid = (8..=14).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
    match valid {
        true => Ok(digits),
        false => Err(format!("{text:?} is not 8 to 14 digits")),
    }
}

/// The first decimal number of a rating text ("4.7 out of 5 stars", "4,5 de 5"), a comma
/// read as the decimal point.
fn rating(text: &str) -> Result<f64, String> {
    static NUMBER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        // A constant, valid pattern.
        regex::Regex::new(r"\d+(?:[.,]\d+)?").expect("valid regex")
    });
    let number = NUMBER
        .find(text)
        .ok_or_else(|| "no number in the rating".to_string())?;
    number
        .as_str()
        .replace(',', ".")
        .parse::<f64>()
        .map_err(|e| e.to_string())
}

/// A listing's price: one amount, or the low end of a range ("US $9.99 to US $19.99" on a
/// listing with variations).
fn listing_price(text: &str, currency: Option<Currency>) -> Result<Money, PriceError> {
    match price::parse_money(text, currency) {
        Err(PriceError::Ambiguous(_)) => {
            price::parse_price_range(text, currency).map(|range| range.low)
        }
        other => other,
    }
}

/// Whether the listing page says the listing has ended (the site's `ended` flag).
pub fn is_ended(html: &str, site: &Site) -> bool {
    site.fields
        .ended
        .as_ref()
        .is_some_and(|field| Document::parse(html, site).present(field))
}

/// The URL relative links resolve against, in order: the page's `<base href>` (itself
/// resolved against the page's URL), the page's own URL when it is a web URL, else (a saved
/// file) its canonical link, then the site's `base_url` — so a saved file's links point at the
/// site, never at `file://`.
fn link_base(doc: &Document<'_>, url: &str, site: &Site) -> Url {
    static BASE: std::sync::LazyLock<Selector> = std::sync::LazyLock::new(|| {
        // A constant, valid selector.
        Selector::parse("base[href]").expect("valid selector")
    });
    static CANONICAL: std::sync::LazyLock<Selector> = std::sync::LazyLock::new(|| {
        // A constant, valid selector.
        Selector::parse(r#"link[rel="canonical"][href]"#).expect("valid selector")
    });
    let web = |u: &Url| matches!(u.scheme(), "http" | "https");
    let canonical = || {
        doc.html
            .select(&CANONICAL)
            .filter_map(|link| link.value().attr("href"))
            .find_map(|href| site.base_url.join(href.trim()).ok().filter(web))
    };
    let page = Url::parse(url)
        .ok()
        .filter(web)
        .or_else(canonical)
        .unwrap_or_else(|| site.base_url.clone());
    doc.html
        .select(&BASE)
        .next()
        .and_then(|base| base.value().attr("href"))
        .and_then(|href| page.join(href.trim()).ok())
        .filter(web)
        .unwrap_or(page)
}

fn matches_self_or_inside(row: ElementRef<'_>, sel: &Selector) -> bool {
    sel.matches(&row) || row.select(sel).next().is_some()
}

/// Item specifics: in every row of every definition, the n-th key pairs with the n-th value.
/// The first non-empty value of a key wins; a key shown with an empty value is kept with `""`.
fn specifics(doc: &Document<'_>, site: &Site) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for def in &site.fields.specifics {
        for row in doc.html.select(&def.row) {
            let keys = row.select(&def.key).map(|e| doc.text(e, None));
            let values: Vec<String> = match &def.value {
                Some(value) => row
                    .select(value)
                    .map(|e| doc.text(e, def.exclude.as_ref()))
                    .collect(),
                None => {
                    let text = doc.text(row, def.exclude.as_ref());
                    vec![text.trim_start_matches([':', '：', ' ']).to_string()]
                }
            };
            for (key, value) in keys.zip(values) {
                let Some(key) = regex_part(def.key_regex.as_ref(), &specifics_key(&key)) else {
                    continue;
                };
                let value = regex_part(def.value_regex.as_ref(), &value).unwrap_or(value);
                let slot = map.entry(key).or_default();
                if slot.is_empty() {
                    *slot = value;
                }
            }
        }
    }
    map.retain(|key, _| !key.is_empty());
    map
}

/// Capture group 1 (or the whole match) of `re` in `text`, trimmed; `text` itself without a
/// regex; `None` when the regex does not match.
fn regex_part(re: Option<&regex::Regex>, text: &str) -> Option<String> {
    let Some(re) = re else {
        return Some(text.to_string());
    };
    let caps = re.captures(text)?;
    let m = caps.get(1).or_else(|| caps.get(0))?;
    Some(m.as_str().trim().to_string())
}

/// A specifics label as a key: without invisible direction and zero-width marks (U+200E,
/// U+200F, U+200B, U+FEFF, which right-to-left pages put around labels) and the trailing colon,
/// full-width colon included.
fn specifics_key(label: &str) -> String {
    let visible: String = label
        .chars()
        .filter(|c| !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{FEFF}'))
        .collect();
    visible
        .trim()
        .trim_end_matches([':', '：'])
        .trim()
        .to_string()
}

/// Every URL a list field reads, absolute, each picture once: the same image file asked for at
/// another size (`a.jpeg?odnWidth=120` after `a.jpeg?odnWidth=450`) is the first one's.
fn all_urls(doc: &Document<'_>, field: &Field, base: Option<&Url>) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    for url in doc.all(field).iter().filter_map(|v| absolute(base, v)) {
        let file = image_file(&url);
        if !urls.contains(&url) && file.as_ref().is_none_or(|f| !files.contains(f)) {
            files.extend(file);
            urls.push(url);
        }
    }
    urls
}

/// The URL of an image file without its query (`https://cdn/x/a.jpeg`), when the path names one.
fn image_file(url: &str) -> Option<String> {
    let mut parsed = Url::parse(url).ok()?;
    let path = parsed.path().to_ascii_lowercase();
    let image = [".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif"]
        .iter()
        .any(|ext| path.ends_with(ext));
    parsed.set_query(None);
    parsed.set_fragment(None);
    image.then(|| parsed.to_string())
}

fn absolute(base: Option<&Url>, href: &str) -> Option<String> {
    match base {
        Some(base) => base.join(href).ok().map(String::from),
        None => Url::parse(href).ok().map(String::from),
    }
}

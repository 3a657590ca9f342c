//! The `extract` command: runs classify and extract on one page — a saved HTML file or a URL
//! rendered in the browser — and shows what every rule of the site definition read, including the
//! rules that read nothing, so a site file can be debugged against a real page. With `--json` it
//! prints one object: `{"class": ..., "record": {...}}` (or `"search"` for a search page), the
//! record in the field names of `listings --json`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::classify::{PageClass, challenge_wait, classify, ready_in_html};
use crate::domain::{ListingStatus, Record, SearchHit};
use crate::extract::{
    Document, ExtractError, RuleTrace, SearchPage, extract_record, extract_search, missing_required,
};
use crate::price::Money;
use crate::render::{Page, RenderError, RenderRequest, Renderer};
use crate::site::{FLAG_FIELDS, Site, SiteError, Sites};

/// The `extract` command could not run.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("Failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Site(#[from] SiteError),
    /// `cause` is not the error's `source`: its text is already in the message, and a source
    /// would print it a second time in anyhow's `{:#}` chain.
    #[error("Failed to render {url}: {cause}")]
    Render { url: String, cause: RenderError },
    #[error("Failed to write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// What the page turned out to be and what was read from it.
#[derive(Debug)]
pub struct Inspection {
    pub url: String,
    pub status: Option<u16>,
    /// The listing or search page's ready element is present.
    pub ready: bool,
    pub class: PageClass,
    pub content: Content,
    /// What each rule of each listing field read, in site-file order.
    pub trace: Vec<(&'static str, Vec<RuleTrace>)>,
}

/// The page read as a listing or as a search result page.
#[derive(Debug)]
pub enum Content {
    Listing(Result<Box<Record>, ExtractError>),
    Search(SearchPage),
}

/// What `extract` reads: a saved file or an http(s) URL, and for a file the URL it was saved
/// from, when known (`--url`), which relative links resolve against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub file_or_url: &'a str,
    pub page_url: Option<&'a str>,
}

impl<'a> From<&'a str> for Target<'a> {
    fn from(file_or_url: &'a str) -> Target<'a> {
        Target {
            file_or_url,
            page_url: None,
        }
    }
}

/// Runs `extract` on `target`. A browser is launched (by `launch`) only for a URL, and closed
/// before returning. Output goes to `out`.
pub async fn extract_command<R, F, Fut>(
    sites: &Sites,
    site: &str,
    target: Target<'_>,
    json: bool,
    launch: F,
    out: &mut impl Write,
) -> Result<(), InspectError>
where
    R: Renderer,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<R, RenderError>>,
{
    let site = sites.get(site)?;
    let (target, page_url) = (target.file_or_url, target.page_url);
    let page = if target.starts_with("http://") || target.starts_with("https://") {
        let renderer = launch().await.map_err(|cause| InspectError::Render {
            url: target.to_string(),
            cause,
        })?;
        let page = renderer.render(&render_request(site, target)).await;
        renderer.close().await;
        page.map_err(|cause| InspectError::Render {
            url: target.to_string(),
            cause,
        })?
    } else {
        saved_page(Path::new(target), site, page_url)?
    };
    let inspection = inspect(&page, site);
    if json {
        serde_json::to_writer(&mut *out, &to_json(&inspection, site))
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_text(out, &inspection)?;
    }
    Ok(())
}

/// A saved HTML file as a page: no status (treated as 200), ready when the site's listing ready
/// element is in the HTML, at `url` when given, else at the page's canonical listing URL when it
/// names one, else at its `file://` URL (links then resolve against the site's base URL).
pub fn saved_page(path: &Path, site: &Site, url: Option<&str>) -> Result<Page, InspectError> {
    let bytes = std::fs::read(path).map_err(|source| InspectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Saved pages come in every encoding: decoded as a browser would (BOM, meta charset, …).
    let html = crate::extract::decode_html(&bytes, None).html;
    let file_url = std::path::absolute(path)
        .ok()
        .and_then(|p| url::Url::from_file_path(p).ok())
        .map(String::from)
        .unwrap_or_else(|| format!("file://{}", path.display()));
    let url = url
        .map(str::to_string)
        .or_else(|| canonical_url(&html, site))
        .unwrap_or(file_url);
    Ok(Page {
        url,
        ready: ready_in_html(&html, site),
        html,
        ..Page::default()
    })
}

/// The page's own listing URL, when it is one of the site's: `link[rel=canonical]` first, as
/// `og:url` often carries tracking parameters, then `og:url`.
fn canonical_url(html: &str, site: &Site) -> Option<String> {
    let doc = scraper::Html::parse_document(html);
    let sources = [
        (r#"link[rel="canonical"][href]"#, "href"),
        (r#"meta[property="og:url"][content]"#, "content"),
    ];
    // A relative canonical link is relative to the site.
    let absolute = |href: &str| site.base_url.join(href.trim()).ok().map(String::from);
    sources.into_iter().find_map(|(css, attr)| {
        let selector = scraper::Selector::parse(css).ok()?;
        doc.select(&selector)
            .filter_map(|el| el.value().attr(attr).and_then(absolute))
            .find(|url| site.listing_id(url).is_some())
    })
}

/// Classifies and extracts one page. Which kind of page it is comes from its HTML: the listing's
/// ready element makes it a listing, else the search ready element a search page (a rendered
/// page's own `ready` may stand for either, as the command waits for both).
pub fn inspect(page: &Page, site: &Site) -> Inspection {
    let listing_ready = ready_in_html(&page.html, site);
    let search_ready = !listing_ready
        && site
            .search
            .as_ref()
            .and_then(|s| s.ready.as_deref())
            .is_some_and(|css| {
                scraper::Selector::parse(css).is_ok_and(|sel| {
                    scraper::Html::parse_document(&page.html)
                        .select(&sel)
                        .next()
                        .is_some()
                })
            });
    let page = Page {
        ready: listing_ready,
        ..page.clone()
    };
    let mut class = match search_ready {
        true => PageClass::Content,
        false => classify(&page, site),
    };
    let content = match search_ready {
        true => Content::Search(extract_search(&page.html, &page.url, site)),
        false => {
            let doc = Document::parse(&page.html, site);
            let external_id = site
                .listing_id(&page.url)
                .or_else(|| site.fields.item_id.as_ref().and_then(|f| doc.first(f)))
                .unwrap_or_default();
            let record = extract_record(&page.html, &page.url, external_id, site);
            // A listing page without its required fields is empty; its fields are still shown.
            if class == PageClass::Content && missing_required(&record, site).is_some() {
                class = PageClass::Empty;
            }
            Content::Listing(record.map(Box::new))
        }
    };
    let doc = Document::parse(&page.html, site);
    let trace = site
        .fields
        .named()
        .into_iter()
        .map(|(name, field)| match FLAG_FIELDS.contains(&name) {
            true => (name, doc.trace_flag(field)),
            false => (name, doc.trace(field)),
        })
        .collect();
    Inspection {
        url: page.url.clone(),
        status: page.status,
        ready: listing_ready || search_ready,
        class,
        content,
        trace,
    }
}

fn render_request(site: &Site, url: &str) -> RenderRequest {
    // Wait for either kind of page: the command does not know which one the URL is.
    let ready = match site.search.as_ref().and_then(|s| s.ready.as_ref()) {
        Some(search) => format!("{}, {search}", site.ready),
        None => site.ready.clone(),
    };
    RenderRequest {
        ready: Some(ready),
        screenshot: false,
        ..RenderRequest::listing(site, url, challenge_wait(site, site.ready_timeout))
    }
}

/// A record in the field names of `listings --json`, plus the fields only extraction knows.
#[derive(Debug, Serialize)]
pub struct RecordJson {
    pub site: String,
    pub external_id: String,
    pub url: String,
    pub status: String,
    pub title: Option<String>,
    /// Decimal string in the currency's own precision.
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
    pub item_id: Option<String>,
    pub translated_title: Option<String>,
    pub was_price: Option<MoneyJson>,
    pub buy_it_now_price: Option<MoneyJson>,
    pub auction: bool,
    pub bids: Option<i64>,
    pub best_offer: bool,
    pub status_text: Option<String>,
    pub description_url: Option<String>,
    pub brand: Option<String>,
    pub sku: Option<String>,
    pub gtin: Option<String>,
    pub mpn: Option<String>,
    pub availability: Option<String>,
    pub rating: Option<f64>,
    pub review_count: Option<i64>,
    pub extra: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub field_errors: BTreeMap<String, String>,
}

/// An amount as `listings --json` writes prices.
#[derive(Debug, Serialize)]
pub struct MoneyJson {
    pub price: String,
    pub price_minor: i64,
    pub currency: String,
}

impl From<Money> for MoneyJson {
    fn from(m: Money) -> MoneyJson {
        MoneyJson {
            price: m.to_decimal_string(),
            price_minor: m.minor,
            currency: m.currency.as_str().to_string(),
        }
    }
}

impl RecordJson {
    pub fn new(record: &Record, site: &Site, url: &str, class: &PageClass) -> RecordJson {
        let status = match class {
            PageClass::Content => ListingStatus::Active,
            PageClass::Ended => ListingStatus::Ended,
            PageClass::Gone => ListingStatus::Gone,
            _ => ListingStatus::Failed,
        };
        let r = record.clone();
        RecordJson {
            site: site.name.clone(),
            external_id: r.external_id,
            url: url.to_string(),
            status: status.as_str().to_string(),
            title: r.title,
            price: r.price.map(|p| p.to_decimal_string()),
            price_minor: r.price.map(|p| p.minor),
            currency: r.price.map(|p| p.currency.as_str().to_string()),
            condition: r.condition,
            seller: r.seller,
            seller_score: r.seller_score,
            shipping: r.shipping,
            location: r.location,
            specifics: r.specifics,
            description: r.description,
            images: r.images,
            item_id: r.item_id,
            translated_title: r.translated_title,
            was_price: r.was_price.map(MoneyJson::from),
            buy_it_now_price: r.buy_it_now_price.map(MoneyJson::from),
            auction: r.auction,
            bids: r.bids,
            best_offer: r.best_offer,
            status_text: r.status_text,
            description_url: r.description_url,
            brand: r.brand,
            sku: r.sku,
            gtin: r.gtin,
            mpn: r.mpn,
            availability: r.availability,
            rating: r.rating,
            review_count: r.review_count,
            extra: r.extra,
            field_errors: r.field_errors,
        }
    }
}

#[derive(Serialize)]
struct SearchJson<'a> {
    url: &'a str,
    rows: usize,
    result_count: Option<u64>,
    next_page: Option<&'a str>,
    hits: &'a [SearchHit],
    dropped: &'a std::collections::BTreeMap<&'static str, usize>,
}

/// The `--json` output of an inspection: `{"class": …, "record": {…}}` (with `error` when the
/// listing could not be read) or `{"class": …, "search": {…}}`.
pub fn to_json(inspection: &Inspection, site: &Site) -> serde_json::Value {
    let mut object = serde_json::json!({ "class": inspection.class.name() });
    match &inspection.content {
        Content::Listing(Ok(record)) => {
            object["record"] = serde_json::json!(RecordJson::new(
                record,
                site,
                &inspection.url,
                &inspection.class
            ));
            let sources: BTreeMap<&str, String> = inspection
                .trace
                .iter()
                .filter_map(|(name, rules)| {
                    let winner = rules.iter().position(|r| r.value.is_some())?;
                    Some((*name, source_of(rules, winner)))
                })
                .collect();
            object["sources"] = serde_json::json!(sources);
        }
        Content::Listing(Err(e)) => {
            object["record"] = serde_json::Value::Null;
            // On a page that is not a listing (empty, blocked…) no record is expected.
            let key = match inspection.class {
                PageClass::Content | PageClass::Ended => "error",
                _ => "note",
            };
            object[key] = e.to_string().into();
        }
        Content::Search(search) => {
            object["search"] = serde_json::json!(SearchJson {
                url: &inspection.url,
                rows: search.rows,
                result_count: search.result_count,
                next_page: search.next_page.as_deref(),
                hits: &search.hits,
                dropped: &search.dropped,
            });
        }
    }
    object
}

/// The readable report: page facts, then every field with what each of its rules read.
fn write_text(out: &mut impl Write, inspection: &Inspection) -> std::io::Result<()> {
    let status = inspection
        .status
        .map_or("unknown (saved file)".to_string(), |s| s.to_string());
    writeln!(out, "page    {}", inspection.url)?;
    writeln!(out, "status  {status}")?;
    writeln!(
        out,
        "ready   {}",
        if inspection.ready { "yes" } else { "no" }
    )?;
    writeln!(out, "class   {}", inspection.class.name())?;
    match &inspection.content {
        Content::Search(search) => write_search(out, search),
        Content::Listing(record) => {
            writeln!(out)?;
            for (name, rules) in &inspection.trace {
                write_field(out, name, rules)?;
            }
            match record {
                Ok(r) => writeln!(out, "\nspecifics ({}):", r.specifics.len()).and_then(|()| {
                    r.specifics
                        .iter()
                        .try_for_each(|(k, v)| writeln!(out, "  {k}: {v}"))
                }),
                Err(e) => match inspection.class {
                    PageClass::Content | PageClass::Ended => {
                        writeln!(out, "\nextraction failed: {e}")
                    }
                    _ => writeln!(out, "\nno listing read ({e})"),
                },
            }
        }
    }
}

fn write_field(out: &mut impl Write, name: &str, rules: &[RuleTrace]) -> std::io::Result<()> {
    let winner = rules.iter().position(|r| r.value.is_some());
    let value = match (FLAG_FIELDS.contains(&name), winner) {
        (true, found) => found.is_some().to_string(),
        (false, Some(i)) => format!("{:?}", rules[i].value.as_deref().unwrap_or_default()),
        (false, None) => "(miss)".to_string(),
    };
    match winner.map(|i| source_of(rules, i)) {
        Some(source) if !FLAG_FIELDS.contains(&name) => {
            writeln!(out, "{name:<17} {value}  ({source})")?
        }
        _ => writeln!(out, "{name:<17} {value}")?,
    }
    for (i, rule) in rules.iter().enumerate() {
        let mark = if Some(i) == winner { "*" } else { " " };
        let got = rule
            .value
            .as_deref()
            .map_or("miss".to_string(), |v| format!("{:?}", excerpt(v)));
        writeln!(out, "  {mark} {:<60} {got}", excerpt(&rule.label))?;
    }
    Ok(())
}

fn write_search(out: &mut impl Write, search: &SearchPage) -> std::io::Result<()> {
    let count = search
        .result_count
        .map_or("-".to_string(), |n| n.to_string());
    writeln!(
        out,
        "rows    {} ({} listings)",
        search.rows,
        search.hits.len()
    )?;
    writeln!(out, "results {count}")?;
    if !search.dropped.is_empty() {
        let dropped: Vec<String> = search
            .dropped
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        writeln!(out, "dropped {}", dropped.join(", "))?;
    }
    writeln!(
        out,
        "next    {}",
        search.next_page.as_deref().unwrap_or("-")
    )?;
    for (rank, hit) in search.hits.iter().enumerate() {
        writeln!(
            out,
            "{:>3}. {:<14} {:<24} {}",
            rank + 1,
            hit.external_id,
            hit_price(hit),
            hit.title.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// Where the value of a field came from: `rule N` of the site file (1-based), or `schema.org`
/// for the fallback rules the site file left to the page's schema.org data.
fn source_of(rules: &[RuleTrace], winner: usize) -> String {
    match rules[winner].label.starts_with("schema.org ") {
        true => "schema.org".to_string(),
        false => format!("rule {}", winner + 1),
    }
}

/// A hit's price as read (`INR 76490.00`) with the page's text, or its text alone when it did
/// not parse.
fn hit_price(hit: &SearchHit) -> String {
    let text = hit.price_text.as_deref().unwrap_or("-");
    match hit.price {
        Some(m) => format!("{} {} ({text})", m.currency, m.to_decimal_string()),
        None => text.to_string(),
    }
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_page_is_at_its_canonical_url_before_its_og_url() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
        let sites = Sites::load(&dir).unwrap();
        let site = sites.get("fixture").unwrap();
        let html = r#"<meta property="og:url" content="http://127.0.0.1:1/item/9">
            <link rel="canonical" href="http://127.0.0.1:1/item/7">"#;
        let url = canonical_url(html, site);
        assert_eq!(url.as_deref(), Some("http://127.0.0.1:1/item/7"));
        let og_only = r#"<meta property="og:url" content="http://127.0.0.1:1/item/8">"#;
        let url = canonical_url(og_only, site);
        assert_eq!(url.as_deref(), Some("http://127.0.0.1:1/item/8"));
    }

    /// `inspect` and the JSON of one fixture page at a listing URL.
    fn inspected(html: &str) -> (PageClass, serde_json::Value) {
        let sites = Sites::builtin();
        let site = sites.get("fixture").unwrap();
        let page = Page {
            url: "http://127.0.0.1:1/item/7".into(),
            status: Some(200),
            html: html.into(),
            ..Page::default()
        };
        let inspection = inspect(&page, site);
        let json = to_json(&inspection, site);
        (inspection.class, json)
    }

    #[test]
    fn a_listing_without_its_required_fields_is_empty_and_a_non_listing_is_no_error() {
        let ready = "<main id=listing data-ready>";
        let (class, json) = inspected(&format!("{ready}<h1 class=title>Lamp</h1>"));
        assert_eq!(class, PageClass::Empty, "no price: {json}");
        assert_eq!(
            json["record"]["title"], "Lamp",
            "its fields are still shown"
        );
        let (class, json) = inspected(&format!(
            "{ready}<h1 class=title>Lamp</h1><span class=price>US $5.00</span>"
        ));
        assert_eq!(class, PageClass::Content);
        assert_eq!(json["sources"]["title"], "rule 1", "{json}");
        let (class, json) = inspected("<p>Please verify yourself to continue</p>");
        assert_eq!(class, PageClass::Blocked);
        assert_eq!(json["note"], "listing page has no title", "{json}");
        assert!(json.get("error").is_none(), "{json}");
    }

    #[test]
    fn a_saved_windows_1252_page_reads_as_its_text_not_replacement_characters() {
        let sites = Sites::builtin();
        let site = sites.get("fixture").unwrap();
        let html = "<meta charset=windows-1252><h1 class=title>Stehlampe Zuverlässigkeit</h1>\
                    <span class=price>12,50 €</span>";
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(html);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let page = saved_page(file.path(), site, None).unwrap();
        assert!(page.html.contains("Zuverlässigkeit"), "{}", page.html);
        assert!(page.html.contains("12,50 €") && !page.html.contains('\u{FFFD}'));
    }
}

//! The TOML shape of a site definition, before validation, and its validation into a [`Site`].
//!
//! A field is written as a CSS selector string, a rule table, or an array of either:
//! `title = "h1"`, `price = { css = ["#a", "#b"], attr = "content", regex = "..." }`,
//! `price = [".x-price", { jsonld = ["offers.priceCurrency", "offers.price"] }]`,
//! `ended = { html = '"listingStatus":"ENDED"' }`. A table with several `css` selectors is one
//! rule per selector, tried in order.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use scraper::Selector;
use serde::Deserialize;
use url::Url;

use super::{Field, ListingFields, Markers, Rule, SearchDef, Site, Source, SpecificsDef};
use crate::price::Currency;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    name: String,
    base_url: String,
    default_currency: Option<String>,
    #[serde(default = "default_rps")]
    max_rps: u32,
    #[serde(default)]
    screenshot: bool,
    hidden: Option<String>,
    listing: Listing,
    search: Search,
    #[serde(default)]
    markers: RawMarkers,
}

fn default_rps() -> u32 {
    20
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    url_pattern: String,
    ready: String,
    #[serde(default = "default_ready_ms")]
    ready_timeout_ms: u64,
    #[serde(default)]
    fields: BTreeMap<String, toml::Value>,
    specifics: Option<OneOrMany<Specifics>>,
    ended: Option<toml::Value>,
}

fn default_ready_ms() -> u64 {
    10_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Specifics {
    row: String,
    key: String,
    value: String,
    exclude: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    url: String,
    ready: Option<String>,
    result: String,
    skip: Option<String>,
    link: toml::Value,
    title: Option<toml::Value>,
    price: Option<toml::Value>,
    result_count: Option<toml::Value>,
    next_page: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMarkers {
    #[serde(default)]
    gone: Vec<String>,
    #[serde(default)]
    block: Vec<String>,
    #[serde(default)]
    challenge: Vec<String>,
}

/// One rule written as a table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    css: Option<OneOrMany<String>>,
    attr: Option<String>,
    exclude: Option<String>,
    jsonld: Option<OneOrMany<String>>,
    html: Option<String>,
    regex: Option<String>,
    currency: Option<String>,
    /// With `jsonld`: start the paths at the nodes of this `@type`.
    #[serde(rename = "type")]
    node_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

const FIELD_NAMES: [&str; 20] = [
    "title",
    "translated_title",
    "price",
    "currency",
    "was_price",
    "buy_it_now_price",
    "bids",
    "item_id",
    "condition",
    "seller",
    "seller_score",
    "shipping",
    "location",
    "description",
    "description_url",
    "images",
    "status_text",
    "auction",
    "best_offer",
    "ended",
];

impl SiteFile {
    pub fn validate(self) -> Result<Site, String> {
        let base_url = Url::parse(&self.base_url).map_err(|e| format!("key `base_url`: {e}"))?;
        let listing_url = Regex::new(&self.listing.url_pattern)
            .map_err(|e| format!("key `listing.url_pattern`: {e}"))?;
        if !listing_url.capture_names().any(|n| n == Some("id")) {
            return Err("key `listing.url_pattern`: needs a named group `(?P<id>...)`".into());
        }
        let ready_selector = selector("listing.ready", &self.listing.ready)?;
        let default_currency = match &self.default_currency {
            Some(c) => {
                Some(Currency::parse(c).map_err(|e| format!("key `default_currency`: {e}"))?)
            }
            None => None,
        };
        if self.max_rps == 0 {
            return Err("key `max_rps`: must be at least 1".into());
        }
        Ok(Site {
            name: self.name,
            base_url,
            listing_url,
            ready: self.listing.ready,
            ready_selector,
            ready_timeout: Duration::from_millis(self.listing.ready_timeout_ms),
            hidden: self.hidden.map(|h| selector("hidden", &h)).transpose()?,
            fields: listing_fields(
                self.listing.fields,
                self.listing.specifics,
                self.listing.ended,
            )?,
            search: self.search.validate()?,
            markers: Markers {
                gone_text: self.markers.gone,
                block_text: self.markers.block,
                challenge_text: self.markers.challenge,
            },
            default_currency,
            max_rps: self.max_rps,
            screenshot: self.screenshot,
        })
    }
}

fn listing_fields(
    mut specs: BTreeMap<String, toml::Value>,
    specifics: Option<OneOrMany<Specifics>>,
    ended: Option<toml::Value>,
) -> Result<ListingFields, String> {
    if let Some(unknown) = specs.keys().find(|k| !FIELD_NAMES.contains(&k.as_str())) {
        return Err(format!(
            "key `listing.fields.{unknown}`: unknown field (known: {})",
            FIELD_NAMES.join(", ")
        ));
    }
    if ended.is_some() && specs.contains_key("ended") {
        return Err("key `listing.fields.ended`: already given as `listing.ended`".into());
    }
    let ended = match ended {
        Some(value) => Some(field("listing.ended", value)?),
        None => None,
    };
    let mut take = |name: &str| -> Result<Option<Field>, String> {
        specs
            .remove(name)
            .map(|value| field(&format!("listing.fields.{name}"), value))
            .transpose()
    };
    Ok(ListingFields {
        title: take("title")?,
        translated_title: take("translated_title")?,
        price: take("price")?,
        currency: take("currency")?,
        was_price: take("was_price")?,
        buy_it_now_price: take("buy_it_now_price")?,
        bids: take("bids")?,
        item_id: take("item_id")?,
        condition: take("condition")?,
        seller: take("seller")?,
        seller_score: take("seller_score")?,
        shipping: take("shipping")?,
        location: take("location")?,
        description: take("description")?,
        description_url: take("description_url")?,
        images: take("images")?,
        status_text: take("status_text")?,
        auction: take("auction")?,
        best_offer: take("best_offer")?,
        ended: match take("ended")? {
            Some(field) => Some(field),
            None => ended,
        },
        specifics: specifics
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(Specifics::validate)
            .collect::<Result<_, _>>()?,
    })
}

impl Specifics {
    fn validate(self) -> Result<SpecificsDef, String> {
        Ok(SpecificsDef {
            row: selector("listing.specifics.row", &self.row)?,
            key: selector("listing.specifics.key", &self.key)?,
            value: selector("listing.specifics.value", &self.value)?,
            exclude: self
                .exclude
                .map(|css| selector("listing.specifics.exclude", &css))
                .transpose()?,
        })
    }
}

impl Search {
    fn validate(self) -> Result<SearchDef, String> {
        if !self.url.contains("{query}") {
            return Err("key `search.url`: needs a `{query}` placeholder".into());
        }
        if let Some(ready) = &self.ready {
            selector("search.ready", ready)?;
        }
        let optional = |key: &str, value: Option<toml::Value>| {
            value
                .map(|v| field(&format!("search.{key}"), v))
                .transpose()
        };
        Ok(SearchDef {
            url: self.url,
            ready: self.ready,
            result: selector("search.result", &self.result)?,
            skip: self.skip.map(|s| selector("search.skip", &s)).transpose()?,
            link: field("search.link", self.link)?,
            title: optional("title", self.title)?,
            price: optional("price", self.price)?,
            result_count: optional("result_count", self.result_count)?,
            next_page: self
                .next_page
                .map(|s| selector("search.next_page", &s))
                .transpose()?,
        })
    }
}

/// A field from its TOML value: a selector string, a rule table, or an array of either.
fn field(key: &str, value: toml::Value) -> Result<Field, String> {
    let mut rules = Vec::new();
    match value {
        toml::Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                rules.extend(rules_of(&format!("{key}[{i}]"), item)?);
            }
        }
        one => rules.extend(rules_of(key, one)?),
    }
    if rules.is_empty() {
        return Err(format!("key `{key}`: needs at least one rule"));
    }
    Ok(Field { rules })
}

fn rules_of(key: &str, item: toml::Value) -> Result<Vec<Rule>, String> {
    let table = match item {
        toml::Value::String(css) => RuleTable {
            css: Some(OneOrMany::One(css)),
            attr: None,
            exclude: None,
            jsonld: None,
            html: None,
            regex: None,
            currency: None,
            node_type: None,
        },
        toml::Value::Table(table) => toml::Value::Table(table)
            .try_into::<RuleTable>()
            .map_err(|e| format!("key `{key}`: {}", e.message()))?,
        other => {
            return Err(format!(
                "key `{key}`: expected a CSS selector, a rule table or an array, found {}",
                other.type_str()
            ));
        }
    };
    table.validate(key)
}

impl RuleTable {
    fn validate(self, key: &str) -> Result<Vec<Rule>, String> {
        let sources = [
            self.css.is_some(),
            self.jsonld.is_some(),
            self.html.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "key `{key}`: a rule needs exactly one of `css`, `jsonld`, `html`"
            ));
        }
        if self.node_type.is_some() && self.jsonld.is_none() {
            return Err(format!("key `{key}.type`: only applies to `jsonld`"));
        }
        if (self.attr.is_some() || self.exclude.is_some()) && self.css.is_none() {
            return Err(format!(
                "key `{key}`: `attr` and `exclude` only apply to `css`"
            ));
        }
        let regex = self
            .regex
            .as_deref()
            .map(|r| Regex::new(r).map_err(|e| format!("key `{key}.regex`: {e}")))
            .transpose()?;
        let currency = self
            .currency
            .as_deref()
            .map(|c| Currency::parse(c).map_err(|e| format!("key `{key}.currency`: {e}")))
            .transpose()?;
        let mut suffix = self
            .regex
            .as_deref()
            .map(|r| format!(" regex /{r}/"))
            .unwrap_or_default();
        if let Some(currency) = currency {
            suffix += &format!(" in {currency}");
        }
        let sources = match (self.jsonld, self.html, self.css) {
            (Some(paths), _, _) => vec![jsonld_source(key, paths.into_vec(), self.node_type)?],
            (_, Some(html), _) => {
                let re = Regex::new(&html).map_err(|e| format!("key `{key}.html`: {e}"))?;
                vec![(Source::Html(re), format!("html /{html}/"))]
            }
            (_, _, css) => css_sources(
                key,
                css.map(OneOrMany::into_vec).unwrap_or_default(),
                self.attr,
                self.exclude,
            )?,
        };
        Ok(sources
            .into_iter()
            .map(|(source, label)| Rule {
                source,
                regex: regex.clone(),
                currency,
                label: label + &suffix,
            })
            .collect())
    }
}

fn jsonld_source(
    key: &str,
    paths: Vec<String>,
    node_type: Option<String>,
) -> Result<(Source, String), String> {
    if paths.is_empty() || paths.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("key `{key}.jsonld`: needs non-empty paths"));
    }
    if node_type.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(format!("key `{key}.type`: needs a JSON-LD `@type` name"));
    }
    let label = match &node_type {
        Some(t) => format!("jsonld {t} {}", paths.join(" + ")),
        None => format!("jsonld {}", paths.join(" + ")),
    };
    let paths = paths
        .iter()
        .map(|p| p.split('.').map(str::to_string).collect())
        .collect();
    Ok((Source::JsonLd { paths, node_type }, label))
}

/// One source per selector, sharing the attribute and the exclusion.
fn css_sources(
    key: &str,
    css: Vec<String>,
    attr: Option<String>,
    exclude: Option<String>,
) -> Result<Vec<(Source, String)>, String> {
    if css.is_empty() {
        return Err(format!("key `{key}.css`: needs at least one selector"));
    }
    let excluded = exclude
        .as_deref()
        .map(|x| selector(&format!("{key}.exclude"), x))
        .transpose()?;
    let mut suffix = String::new();
    if let Some(attr) = &attr {
        suffix += &format!(" @{attr}");
    }
    if let Some(x) = &exclude {
        suffix += &format!(" exclude {x}");
    }
    css.iter()
        .map(|c| {
            let source = Source::Css {
                selector: selector(key, c)?,
                attr: attr.clone(),
                exclude: excluded.clone(),
            };
            Ok((source, format!("css {c}{suffix}")))
        })
        .collect()
}

fn selector(key: &str, css: &str) -> Result<Selector, String> {
    Selector::parse(css).map_err(|e| format!("key `{key}`: invalid CSS selector `{css}`: {e}"))
}

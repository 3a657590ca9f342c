//! The TOML shape of a site definition, before validation, and its validation into a [`Site`].
//!
//! A field is written as a CSS selector string, a rule table, or an array of either:
//! `title = "h1"`, `price = { css = ["#a", "#b"], attr = "content", regex = "..." }`,
//! `price = [".x-price", { jsonld = ["offers.priceCurrency", "offers.price"] }]`,
//! `ended = { html = '"listingStatus":"ENDED"' }`. A table with several `css` selectors is one
//! rule per selector, tried in order. A `jsonld` rule may start at the nodes of one type
//! (`{ jsonld = "offers.price", type = "Product" }`); any rule may fix the currency of the prices
//! it reads (`currency = "CAD"`). Embedded JSON is read with `json` paths in a script
//! (`{ json = "props.pageProps.product.name", script = "script#__NEXT_DATA__" }`) or a JavaScript
//! variable (`{ json = "items.title", var = "window.__INITIAL_STATE__" }`, also through
//! `JSON.parse("…")`); microdata with `{ itemprop = "price" }`; meta tags (OpenGraph) with
//! `{ meta = "og:title" }`. `search.next_page` takes the same grammar, its CSS rules
//! reading `href` unless they name an `attr`. `[search]` may be left out.
//!
//! Validation goes on after a problem, so one pass reports every problem of a file.

// Over 450 lines: the whole site-file grammar and its validation, so every key's check and error text is in one place.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use scraper::Selector;
use serde::Deserialize;
use url::Url;

use super::{
    Field, JsonDocument, ListingFields, Markers, Results, Rule, SearchDef, Site, SiteState, Source,
    SpecificsDef, StateSelector,
};
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
    // Sections are read one by one, so that a problem in one does not hide the others'.
    listing: toml::Value,
    search: Option<toml::Value>,
    markers: Option<toml::Value>,
}

/// Problems found so far: validation goes on after one, so a file's every problem is reported.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// The value, or `None` with its problem kept.
    fn check<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|problem| self.0.push(problem)).ok()
    }
}

/// A section of the file in its typed shape; unknown keys and wrong types are problems of that
/// section, named by their key where the TOML error points at one.
fn section<T: serde::de::DeserializeOwned>(key: &str, value: toml::Value) -> Result<T, String> {
    // Read back from text, so that the error carries a span that names the offending key.
    let text = toml::to_string(&value).map_err(|e| format!("section `[{key}]`: {e}"))?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .and_then(|span| text.get(..span.start))
            .and_then(|before| before.rsplit('\n').next())
            .and_then(|line| line.split_once('='))
            .map(|(name, _)| name.trim().trim_matches('"').to_string())
            .filter(|name| !name.is_empty());
        match line {
            Some(name) => format!("key `{key}.{name}`: {}", e.message().trim()),
            None => format!("section `[{key}]`: {}", e.message().trim()),
        }
    })
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
    /// The site's own fields: name → rules, stored as text in the record's `extra`.
    #[serde(default)]
    extra: BTreeMap<String, toml::Value>,
    /// Read the fields the file leaves out from the page's schema.org data.
    #[serde(default = "yes")]
    schema_org: bool,
    /// A listing page without a price is still a listing (else it is empty).
    #[serde(default)]
    price_optional: bool,
}

fn yes() -> bool {
    true
}

fn default_ready_ms() -> u64 {
    10_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Specifics {
    row: String,
    key: String,
    /// Without it, a row's value is its text outside the key (`<li><b>Key:</b> value</li>`).
    value: Option<String>,
    exclude: Option<String>,
    key_regex: Option<String>,
    value_regex: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    url: String,
    ready: Option<String>,
    /// A CSS selector, or a `json` rule giving a list of objects.
    result: toml::Value,
    skip: Option<String>,
    link: toml::Value,
    title: Option<toml::Value>,
    price: Option<toml::Value>,
    result_count: Option<toml::Value>,
    next_page: Option<toml::Value>,
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
    #[serde(default)]
    error: Vec<String>,
    #[serde(default)]
    selectors: RawStateSelectors,
}

/// `[markers.selectors]`: CSS selectors of the site's own page states.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStateSelectors {
    block: Option<String>,
    challenge: Option<String>,
    gone: Option<String>,
    error: Option<String>,
}

impl RawMarkers {
    fn validate(self, p: &mut Problems) -> Option<Markers> {
        let s = self.selectors;
        let declared = [
            (SiteState::Block, s.block),
            (SiteState::Challenge, s.challenge),
            (SiteState::Gone, s.gone),
            (SiteState::Error, s.error),
        ];
        let mut selectors = Vec::new();
        for (state, css) in declared {
            let Some(css) = css else { continue };
            let key = format!("markers.selectors.{}", state.key());
            if let Some(parsed) = p.check(selector(&key, &css)) {
                selectors.push(StateSelector {
                    state,
                    css,
                    selector: parsed,
                });
            }
        }
        Some(Markers {
            gone_text: self.gone,
            block_text: self.block,
            challenge_text: self.challenge,
            error_text: self.error,
            selectors,
        })
    }
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
    /// Paths in an embedded JSON document, found by `script` (a selector) or `var`.
    json: Option<OneOrMany<String>>,
    script: Option<String>,
    var: Option<String>,
    itemprop: Option<String>,
    meta: Option<String>,
    regex: Option<String>,
    /// The query parameter of a redirect link that holds the real URL.
    unwrap: Option<String>,
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

const FIELD_NAMES: [&str; 27] = [
    "brand",
    "sku",
    "gtin",
    "mpn",
    "availability",
    "rating",
    "review_count",
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

/// The listing section, validated.
struct ListingDef {
    listing_url: Regex,
    ready: String,
    ready_selector: Selector,
    ready_timeout: Duration,
    fields: ListingFields,
    schema_org: bool,
    price_optional: bool,
}

impl SiteFile {
    pub fn validate(self) -> Result<Site, Vec<String>> {
        let mut p = Problems::default();
        let base_url =
            p.check(Url::parse(&self.base_url).map_err(|e| format!("key `base_url`: {e}")));
        let default_currency = p.check(
            self.default_currency
                .as_deref()
                .map(|c| Currency::parse(c).map_err(|e| format!("key `default_currency`: {e}")))
                .transpose(),
        );
        if self.max_rps == 0 {
            p.0.push("key `max_rps`: must be at least 1".into());
        }
        let hidden = p.check(self.hidden.map(|h| selector("hidden", &h)).transpose());
        let listing = p
            .check(section::<Listing>("listing", self.listing))
            .and_then(|listing| listing.validate(&mut p));
        let search = match self.search {
            None => Some(None),
            Some(value) => p
                .check(section::<Search>("search", value))
                .and_then(|search| search.validate(&mut p))
                .map(Some),
        };
        let markers = match self.markers {
            None => Some(RawMarkers::default()),
            Some(value) => p.check(section::<RawMarkers>("markers", value)),
        }
        .and_then(|markers| markers.validate(&mut p));
        match (base_url, default_currency, hidden, listing, search, markers) {
            (
                Some(base_url),
                Some(default_currency),
                Some(hidden),
                Some(listing),
                Some(search),
                Some(markers),
            ) if p.0.is_empty() => Ok(Site {
                name: self.name,
                base_url,
                listing_url: listing.listing_url,
                ready: listing.ready,
                ready_selector: listing.ready_selector,
                ready_timeout: listing.ready_timeout,
                hidden,
                fields: listing.fields,
                search,
                markers,
                default_currency,
                schema_org: listing.schema_org,
                price_optional: listing.price_optional,
                max_rps: self.max_rps,
                screenshot: self.screenshot,
            }),
            _ => Err(p.0),
        }
    }
}

impl Listing {
    fn validate(self, p: &mut Problems) -> Option<ListingDef> {
        let listing_url = p.check(
            Regex::new(&self.url_pattern).map_err(|e| format!("key `listing.url_pattern`: {e}")),
        );
        if listing_url
            .as_ref()
            .is_some_and(|re| !re.capture_names().any(|n| n == Some("id")))
        {
            p.0.push("key `listing.url_pattern`: needs a named group `(?P<id>...)`".into());
        }
        let ready_selector = p.check(selector("listing.ready", &self.ready));
        let extra = extra_fields(self.extra, p);
        let fields = listing_fields(self.fields, self.specifics, self.ended, p)
            .zip(extra)
            .map(|(fields, extra)| ListingFields { extra, ..fields })
            .map(|fields| match self.schema_org {
                true => super::schema_org::fill(fields),
                false => fields,
            });
        Some(ListingDef {
            listing_url: listing_url?,
            ready: self.ready,
            ready_selector: ready_selector?,
            ready_timeout: Duration::from_millis(self.ready_timeout_ms),
            fields: fields?,
            schema_org: self.schema_org,
            price_optional: self.price_optional,
        })
    }
}

fn listing_fields(
    mut specs: BTreeMap<String, toml::Value>,
    specifics: Option<OneOrMany<Specifics>>,
    ended: Option<toml::Value>,
    p: &mut Problems,
) -> Option<ListingFields> {
    let before = p.0.len();
    for unknown in specs.keys().filter(|k| !FIELD_NAMES.contains(&k.as_str())) {
        p.0.push(format!(
            "key `listing.fields.{unknown}`: unknown field (known: {})",
            FIELD_NAMES.join(", ")
        ));
    }
    if ended.is_some() && specs.contains_key("ended") {
        p.0.push("key `listing.fields.ended`: already given as `listing.ended`".into());
    }
    let ended = ended.and_then(|value| p.check(field("listing.ended", value)));
    let mut take = |name: &str| -> Option<Field> {
        let value = specs.remove(name)?;
        p.check(field(&format!("listing.fields.{name}"), value))
    };
    let fields = ListingFields {
        title: take("title"),
        translated_title: take("translated_title"),
        price: take("price"),
        currency: take("currency"),
        was_price: take("was_price"),
        buy_it_now_price: take("buy_it_now_price"),
        bids: take("bids"),
        item_id: take("item_id"),
        condition: take("condition"),
        seller: take("seller"),
        seller_score: take("seller_score"),
        shipping: take("shipping"),
        location: take("location"),
        description: take("description"),
        description_url: take("description_url"),
        images: take("images"),
        status_text: take("status_text"),
        auction: take("auction"),
        best_offer: take("best_offer"),
        ended: take("ended").or(ended),
        brand: take("brand"),
        sku: take("sku"),
        gtin: take("gtin"),
        mpn: take("mpn"),
        availability: take("availability"),
        rating: take("rating"),
        review_count: take("review_count"),
        extra: BTreeMap::new(),
        specifics: specifics
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|def| p.check(def.validate()))
            .collect(),
    };
    (p.0.len() == before).then_some(fields)
}

/// Listing fields from `[listing.fields]`-shaped rules alone (the schema.org fallback's), or
/// every problem found in them.
pub(super) fn plain_fields(
    specs: BTreeMap<String, toml::Value>,
) -> Result<ListingFields, Vec<String>> {
    let mut p = Problems::default();
    listing_fields(specs, None, None, &mut p).ok_or(p.0)
}

/// `[listing.extra]`: names of letters, digits and `_`, none a standard field's.
fn extra_fields(
    extra: BTreeMap<String, toml::Value>,
    p: &mut Problems,
) -> Option<BTreeMap<String, Field>> {
    let before = p.0.len();
    let mut fields = BTreeMap::new();
    for (name, value) in extra {
        let key = format!("listing.extra.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            p.0.push(format!("key `{key}`: a name of letters, digits and `_`"));
        } else if FIELD_NAMES.contains(&name.as_str()) {
            p.0.push(format!(
                "key `{key}`: `{name}` is a standard field; define it in `[listing.fields]`"
            ));
        } else if let Some(field) = p.check(field(&key, value)) {
            fields.insert(name, field);
        }
    }
    (p.0.len() == before).then_some(fields)
}

impl Specifics {
    fn validate(self) -> Result<SpecificsDef, String> {
        let regex = |key: &str, re: Option<String>| {
            re.map(|re| Regex::new(&re).map_err(|e| format!("key `listing.specifics.{key}`: {e}")))
                .transpose()
        };
        // A row's own text leaves out its key elements, as well as what `exclude` names.
        let exclude = match (&self.value, &self.exclude) {
            (Some(_), exclude) => exclude.clone(),
            (None, Some(exclude)) => Some(format!("{}, {exclude}", self.key)),
            (None, None) => Some(self.key.clone()),
        };
        Ok(SpecificsDef {
            row: selector("listing.specifics.row", &self.row)?,
            key: selector("listing.specifics.key", &self.key)?,
            value: self
                .value
                .map(|css| selector("listing.specifics.value", &css))
                .transpose()?,
            exclude: exclude
                .map(|css| selector("listing.specifics.exclude", &css))
                .transpose()?,
            key_regex: regex("key_regex", self.key_regex)?,
            value_regex: regex("value_regex", self.value_regex)?,
        })
    }
}

impl Search {
    fn validate(self, p: &mut Problems) -> Option<SearchDef> {
        let before = p.0.len();
        if !self.url.contains("{query}") {
            p.0.push("key `search.url`: needs a `{query}` placeholder".into());
        }
        if let Some(ready) = &self.ready {
            p.check(selector("search.ready", ready));
        }
        let mut optional = |key: &str, value: Option<toml::Value>| {
            value.and_then(|v| p.check(field(&format!("search.{key}"), v)))
        };
        let title = optional("title", self.title);
        let price = optional("price", self.price);
        let result_count = optional("result_count", self.result_count);
        let result = p.check(results(self.result));
        let skip = p.check(self.skip.map(|s| selector("search.skip", &s)).transpose());
        let link = p.check(field("search.link", self.link));
        let next_page = p.check(
            self.next_page
                .map(|v| field("search.next_page", v).map(|f| with_default_attr(f, "href")))
                .transpose(),
        );
        if let (Some(Results::Json(_)), Some(Some(_))) = (&result, &skip) {
            p.0.push(
                "key `search.skip`: only applies to a CSS `search.result` (result objects are \
                 not elements)"
                    .into(),
            );
        }
        if let Some(Results::Css(_)) = &result {
            let row_rules = [("link", link.as_ref()), ("title", title.as_ref())]
                .into_iter()
                .chain([("price", price.as_ref())])
                .filter_map(|(key, field)| Some((key, field?)));
            for (key, field) in row_rules {
                if field.rules.iter().any(reads_result_object) {
                    p.0.push(format!(
                        "key `search.{key}`: a `json` rule without `script` or `var` reads the \
                         result object, so `search.result` must be a `json` rule"
                    ));
                }
            }
        }
        if p.0.len() > before {
            return None;
        }
        Some(SearchDef {
            url: self.url,
            ready: self.ready,
            result: result?,
            skip: skip?,
            link: link?,
            title,
            price,
            result_count,
            next_page: next_page?,
        })
    }
}

/// `search.result`: a CSS selector, or one `json` rule (with `script` or `var`) whose path gives
/// the results as a list of objects.
fn results(value: toml::Value) -> Result<Results, String> {
    const KEY: &str = "search.result";
    match value {
        toml::Value::String(css) => selector(KEY, &css).map(Results::Css),
        table @ toml::Value::Table(_) => {
            let mut rules = rules_of(KEY, table)?;
            match (rules.pop(), rules.is_empty()) {
                (Some(rule), true) if is_page_json(&rule) => Ok(Results::Json(rule)),
                _ => Err(format!(
                    "key `{KEY}`: a rule table here must be one `json` rule with `script` or \
                     `var` (its path gives the list of result objects)"
                )),
            }
        }
        other => Err(format!(
            "key `{KEY}`: invalid type {}, expected a CSS selector or a `json` rule table",
            other.type_str()
        )),
    }
}

/// Whether `rule` reads a JSON document of the page (not a result object).
fn is_page_json(rule: &Rule) -> bool {
    matches!(&rule.source, Source::Json { document, .. } if !matches!(document, JsonDocument::Result))
}

/// Whether `rule` reads the search result object a `json` result rule found.
fn reads_result_object(rule: &Rule) -> bool {
    matches!(
        &rule.source,
        Source::Json {
            document: JsonDocument::Result,
            ..
        }
    )
}

/// `field` with `attr` on its CSS rules that name none: a link field reads `href`, not text.
fn with_default_attr(field: Field, attr: &str) -> Field {
    let rules = field
        .rules
        .into_iter()
        .map(|mut rule| {
            if let Source::Css {
                attr: none @ None, ..
            } = &mut rule.source
            {
                *none = Some(attr.to_string());
                rule.label += &format!(" @{attr}");
            }
            rule
        })
        .collect();
    Field { rules }
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
            json: None,
            script: None,
            var: None,
            itemprop: None,
            meta: None,
            regex: None,
            unwrap: None,
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
    /// Whether a `json` rule names its document (`script` or `var`, never both); only under
    /// `[search]` may it name none, and then it reads the result object.
    fn check_document(&self, key: &str) -> Result<bool, String> {
        let in_result = key.starts_with("search.") && self.json.is_some();
        let has_document = self.script.is_some() || self.var.is_some();
        if (has_document != self.json.is_some() && !in_result)
            || (self.script.is_some() && self.var.is_some())
        {
            return Err(format!(
                "key `{key}`: a `json` rule needs exactly one of `script` (a selector) or `var` \
                 (a JavaScript variable), and they only apply to `json`"
            ));
        }
        Ok(has_document)
    }

    fn validate(self, key: &str) -> Result<Vec<Rule>, String> {
        let sources = [
            self.css.is_some(),
            self.jsonld.is_some(),
            self.html.is_some(),
            self.json.is_some(),
            self.itemprop.is_some(),
            self.meta.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "key `{key}`: a rule needs exactly one of `css`, `jsonld`, `json`, `itemprop`, \
                 `meta`, `html`"
            ));
        }
        if self.node_type.is_some()
            && self.jsonld.is_none()
            && self.json.is_none()
            && self.itemprop.is_none()
        {
            return Err(format!(
                "key `{key}.type`: only applies to `jsonld`, `json` and `itemprop`"
            ));
        }
        let has_document = self.check_document(key)?;
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
        if self.unwrap.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(format!("key `{key}.unwrap`: needs a query parameter name"));
        }
        if let Some(param) = &self.unwrap {
            suffix += &format!(" unwrap {param}");
        }
        let unwrap = self.unwrap;
        let sources = if let Some(paths) = self.json {
            let document = match has_document {
                true => json_document(key, self.script, self.var)?,
                false => JsonDocument::Result,
            };
            vec![json_source(
                key,
                document,
                paths.into_vec(),
                self.node_type,
            )?]
        } else if let Some(name) = self.itemprop {
            vec![itemprop_source(key, name, self.node_type.as_deref())?]
        } else if let Some(name) = self.meta {
            let forms = ["meta[property=\"{}\"]", "meta[name=\"{}\"]"];
            let selector = named_selector(key, "meta", &name, &forms)?;
            let label = format!("meta {name}");
            vec![(Source::Meta { name, selector }, label)]
        } else {
            match (self.jsonld, self.html, self.css) {
                (Some(paths), _, _) => {
                    vec![jsonld_source(key, paths.into_vec(), self.node_type)?]
                }
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
            }
        };
        Ok(sources
            .into_iter()
            .map(|(source, label)| Rule {
                source,
                regex: regex.clone(),
                currency,
                unwrap: unwrap.clone(),
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
    let (paths, label) = json_paths(key, "jsonld", paths, node_type.as_deref())?;
    Ok((Source::JsonLd { paths, node_type }, label))
}

fn json_source(
    key: &str,
    document: JsonDocument,
    paths: Vec<String>,
    node_type: Option<String>,
) -> Result<(Source, String), String> {
    let (paths, label) = json_paths(key, "json", paths, node_type.as_deref())?;
    let label = match &document {
        JsonDocument::Script { css, .. } => label.replacen("json", &format!("json in {css}"), 1),
        JsonDocument::Var(var) => label.replacen("json", &format!("json in {var}"), 1),
        JsonDocument::Result => label.replacen("json", "json in the result", 1),
    };
    let source = Source::Json {
        document,
        paths,
        node_type,
    };
    Ok((source, label))
}

fn json_document(
    key: &str,
    script: Option<String>,
    var: Option<String>,
) -> Result<JsonDocument, String> {
    match (script, var) {
        (Some(css), _) => {
            let parsed = Selector::parse(&css).map_err(|e| e.to_string());
            match parsed {
                Ok(selector) => Ok(JsonDocument::Script { css, selector }),
                Err(e) => Err(format!(
                    "key `{key}.script`: invalid CSS selector `{css}`: {e}"
                )),
            }
        }
        (None, Some(var)) if !var.trim().is_empty() => Ok(JsonDocument::Var(var.trim().into())),
        _ => Err(format!("key `{key}.var`: needs a JavaScript variable name")),
    }
}

/// A microdata rule: elements whose `itemprop` holds `name`, inside an item of `@type`
/// `node_type` when given (`{ itemprop = "price", type = "Product" }` reads no price of another
/// item on the page).
fn itemprop_source(
    key: &str,
    name: String,
    node_type: Option<&str>,
) -> Result<(Source, String), String> {
    let scoped = node_type.map(|t| {
        let valid = !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric());
        match valid {
            true => Ok(format!("[itemtype$=\"/{t}\"] [itemprop~=\"{{}}\"]")),
            false => Err(format!(
                "key `{key}.type`: `{t}` is not a schema.org type name"
            )),
        }
    });
    let form = scoped.transpose()?;
    let forms = [form.as_deref().unwrap_or("[itemprop~=\"{}\"]")];
    let selector = named_selector(key, "itemprop", &name, &forms)?;
    let label = match node_type {
        Some(t) => format!("itemprop {t} {name}"),
        None => format!("itemprop {name}"),
    };
    Ok((Source::ItemProp { name, selector }, label))
}

/// A selector for elements named `name` (an `itemprop` or a `meta` property): each of `forms`
/// with `{}` replaced by the name, joined. Names are letters, digits and `:_-.`, so no quoting
/// is needed.
fn named_selector(key: &str, kind: &str, name: &str, forms: &[&str]) -> Result<Selector, String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || ":_-.".contains(c);
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!(
            "key `{key}.{kind}`: `{name}` is not a name (letters, digits and `:_-.`)"
        ));
    }
    let css: Vec<String> = forms.iter().map(|f| f.replace("{}", name)).collect();
    Selector::parse(&css.join(", ")).map_err(|e| format!("key `{key}.{kind}`: {e}"))
}

/// Dotted paths split into segments, and the rule's label for the trace.
fn json_paths(
    key: &str,
    kind: &str,
    paths: Vec<String>,
    node_type: Option<&str>,
) -> Result<(Vec<Vec<String>>, String), String> {
    if paths.is_empty() || paths.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("key `{key}.{kind}`: needs non-empty paths"));
    }
    if node_type.is_some_and(|t| t.trim().is_empty()) {
        return Err(format!("key `{key}.type`: needs a `@type` name"));
    }
    let label = match node_type {
        Some(t) => format!("{kind} {t} {}", paths.join(" + ")),
        None => format!("{kind} {}", paths.join(" + ")),
    };
    // `..key.rest`: `key` at any depth (written `**` in the segments).
    let paths = paths
        .iter()
        .map(|p| match p.strip_prefix("..") {
            Some(deep) => std::iter::once("**".to_string())
                .chain(deep.split('.').map(str::to_string))
                .collect(),
            None => p.split('.').map(str::to_string).collect(),
        })
        .collect();
    Ok((paths, label))
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

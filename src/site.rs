//! Site definitions: `sites/<name>.toml` files loaded and validated once at start, so that every
//! site-specific fact (URL patterns, ready condition, selectors, markers, politeness) is data.
//! Errors name the file, the key and the problem; each file loads on its own, so an invalid one
//! is reported in full and skipped while the others work. The TOML shape and its validation live
//! in `raw`.
//!
//! A field is a list of [`Rule`]s tried in order until one yields a value, so one definition can
//! read several generations of a site's markup. A rule reads CSS-selected elements (their text or
//! an attribute), values in the page's JSON-LD, or a regex over the raw HTML (embedded JSON).

// Over 450 lines: the validated site model (fields, rules, sources, search) and its loading, which every stage reads.

pub mod command;
pub mod draft;
mod raw;
mod schema_org;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use scraper::Selector;
use url::Url;

use crate::domain::{MAX_LISTING_ID_CHARS, MAX_URL_BYTES};
use crate::price::Currency;

/// A site definition file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("Failed to read site directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {problem}")]
    Invalid { file: PathBuf, problem: String },
    #[error("site `{0}` has no `[search]` section: it takes listing URLs only")]
    NoSearch(String),
    #[error("no site named `{name}` in {from} (known: {known})")]
    Unknown {
        name: String,
        /// Where definitions were looked for: the built-in ones and the directory, if any.
        from: String,
        known: String,
    },
}

/// How to read one field: rules tried in order; the first that yields a value wins.
#[derive(Debug, Clone)]
pub struct Field {
    pub rules: Vec<Rule>,
}

/// One way to read a value, with optional regex post-processing.
#[derive(Debug, Clone)]
pub struct Rule {
    pub source: Source,
    /// Keep only capture group 1 (or the whole match) of this regex; no match = no value.
    pub regex: Option<Regex>,
    /// The currency of the prices this rule reads (`currency = "CAD"`): first in the money
    /// decision order (rule, the `currency` field, the page, the site's default, the symbol).
    pub currency: Option<Currency>,
    /// A redirect link's query parameter that carries the real URL (`unwrap = "url"` reads
    /// `https://ads.example/click?url=https%3A%2F%2Fshop%2Fitem%2F1` as the shop's URL); a link
    /// without it is kept as it is.
    pub unwrap: Option<String>,
    /// How the rule was written, for the `extract` command's trace.
    pub label: String,
}

/// Where a rule reads from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Elements matching `selector`, in document order: their text (without `exclude`d and the
    /// site's hidden descendants) or the attribute `attr`.
    Css {
        selector: Selector,
        attr: Option<String>,
        exclude: Option<Selector>,
    },
    /// Values at dotted paths (`offers.price`) in the page's JSON-LD blocks. With several paths
    /// the first value of each is joined with a space (`["offers.priceCurrency", "offers.price"]`
    /// reads "USD 12.50"). With `node_type` (`type = "Product"`), paths start at every node of
    /// that `@type` anywhere in the blocks (`@graph`, arrays, nested objects), so a page's
    /// Organization or BreadcrumbList `name` is never read for a Product's. A numeric segment
    /// indexes an array (`@graph.1.name`); `price` on an AggregateOffer reads its `lowPrice`.
    JsonLd {
        paths: Vec<Vec<String>>,
        node_type: Option<String>,
    },
    /// Capture group 1 (or the whole match) of a regex over the raw HTML: data embedded in scripts.
    Html(Regex),
    /// Values at dotted paths in a JSON document embedded in the page: the text of the
    /// `<script>` elements matching `script` (`script#__NEXT_DATA__`), or the value assigned to
    /// the JavaScript variable `var` (`window.__INITIAL_STATE__ = {…};`). Paths work as for
    /// JSON-LD (arrays are searched element by element, so `items.title` is a list), starting at
    /// the nodes of `@type` `node_type` when given.
    Json {
        document: JsonDocument,
        paths: Vec<Vec<String>>,
        node_type: Option<String>,
    },
    /// Microdata: elements whose `itemprop` holds the name (`selector` finds them), read as
    /// browsers expose their value — `content`, else `href`/`src` of links and media, else the
    /// element's text.
    ItemProp { name: String, selector: Selector },
    /// `<meta property|name = the name content=…>`: OpenGraph (`og:title`), Twitter cards,
    /// `product:price:amount`.
    Meta { name: String, selector: Selector },
}

/// Where a [`Source::Json`] rule finds its document.
#[derive(Debug, Clone)]
pub enum JsonDocument {
    Script {
        css: String,
        selector: Selector,
    },
    Var(String),
    /// The search result object a `json` result rule found (a `json` rule without `script` or
    /// `var` under `[search]`): paths start at that object.
    Result,
}

/// Where a search page's result rows are.
#[derive(Debug, Clone)]
pub enum Results {
    /// One element per result row (several markups may be listed, comma-separated).
    Css(Selector),
    /// A `json` rule whose path gives the results as a list of objects in the page's embedded
    /// state (`{ json = "props.pageProps.items", script = "script#__NEXT_DATA__" }`); each
    /// result's `link`, `title` and `price` are then `json` rules with paths relative to it.
    Json(Rule),
}

/// Where the item specifics (key/value pairs) are: in each row, the n-th key element pairs with
/// the n-th value element, so both one-pair rows (`th`/`td`) and two-pair rows
/// (`td.label`/`td`/`td.label`/`td`) read correctly. Without `value`, a row's value is its text
/// outside the key element (`<li><b>Key:</b> value</li>`).
#[derive(Debug, Clone)]
pub struct SpecificsDef {
    pub row: Selector,
    pub key: Selector,
    pub value: Option<Selector>,
    /// Descendants of a value left out of its text ("Read more" buttons; without `value`, the
    /// key elements too).
    pub exclude: Option<Selector>,
    /// Keys are capture group 1 (or the whole match) of this; rows whose key does not match are
    /// skipped.
    pub key_regex: Option<Regex>,
    /// Values are capture group 1 (or the whole match) of this; a value that does not match is
    /// kept whole.
    pub value_regex: Option<Regex>,
}

/// Rules of a listing page.
#[derive(Debug, Clone, Default)]
pub struct ListingFields {
    /// The listing's own title; where the site shows a machine translation, the original.
    pub title: Option<Field>,
    /// The title as shown to this viewer, kept when it differs from `title`.
    pub translated_title: Option<Field>,
    /// The current price: the current bid of an auction, else the fixed price.
    pub price: Option<Field>,
    /// ISO code that price texts without a currency marker are in.
    pub currency: Option<Field>,
    /// The struck-through reference price ("Was", "List price").
    pub was_price: Option<Field>,
    /// The fixed price (also offered next to an auction's bid).
    pub buy_it_now_price: Option<Field>,
    pub bids: Option<Field>,
    pub item_id: Option<Field>,
    pub condition: Option<Field>,
    pub seller: Option<Field>,
    pub seller_score: Option<Field>,
    pub shipping: Option<Field>,
    pub location: Option<Field>,
    pub description: Option<Field>,
    pub description_url: Option<Field>,
    pub images: Option<Field>,
    /// Why the listing is no longer on sale ("Sold on ...").
    pub status_text: Option<Field>,
    /// Flag: true when any rule matches.
    pub auction: Option<Field>,
    /// Flag: the seller accepts offers.
    pub best_offer: Option<Field>,
    pub specifics: Vec<SpecificsDef>,
    /// Flag: the listing has ended (classification says `Ended`).
    pub ended: Option<Field>,
    pub brand: Option<Field>,
    pub sku: Option<Field>,
    pub gtin: Option<Field>,
    pub mpn: Option<Field>,
    /// Stock state; schema.org URLs (`https://schema.org/InStock`) read as their name.
    pub availability: Option<Field>,
    /// Average rating: the first number of the text ("4.7 out of 5 stars").
    pub rating: Option<Field>,
    pub review_count: Option<Field>,
    /// The site's own fields (`[listing.extra]`), read as text.
    pub extra: BTreeMap<String, Field>,
}

/// Fields that are flags: true when any of their rules matches, whatever the text.
pub const FLAG_FIELDS: [&str; 3] = ["auction", "best_offer", "ended"];

impl ListingFields {
    /// Every defined field with its name as written in the site file, in record order.
    pub fn named(&self) -> Vec<(&'static str, &Field)> {
        let all = [
            ("title", &self.title),
            ("translated_title", &self.translated_title),
            ("price", &self.price),
            ("currency", &self.currency),
            ("was_price", &self.was_price),
            ("buy_it_now_price", &self.buy_it_now_price),
            ("auction", &self.auction),
            ("bids", &self.bids),
            ("best_offer", &self.best_offer),
            ("item_id", &self.item_id),
            ("condition", &self.condition),
            ("seller", &self.seller),
            ("seller_score", &self.seller_score),
            ("shipping", &self.shipping),
            ("location", &self.location),
            ("description", &self.description),
            ("description_url", &self.description_url),
            ("images", &self.images),
            ("status_text", &self.status_text),
            ("ended", &self.ended),
            ("brand", &self.brand),
            ("sku", &self.sku),
            ("gtin", &self.gtin),
            ("mpn", &self.mpn),
            ("availability", &self.availability),
            ("rating", &self.rating),
            ("review_count", &self.review_count),
        ];
        all.into_iter()
            .filter_map(|(name, field)| field.as_ref().map(|f| (name, f)))
            .collect()
    }
}

/// Search result pages.
#[derive(Debug, Clone)]
pub struct SearchDef {
    /// URL template with `{base_url}`, `{query}` and `{page}`.
    pub url: String,
    pub ready: Option<String>,
    /// The result rows: elements, or objects in the page's embedded JSON state.
    pub result: Results,
    /// Rows matching this, or holding a match (sponsored cards, placeholders), are skipped.
    pub skip: Option<Selector>,
    pub link: Field,
    pub title: Option<Field>,
    pub price: Option<Field>,
    /// The total the page announces ("185,510 results"); `0` marks a zero-result page.
    pub result_count: Option<Field>,
    /// The next result page's URL: rules like a listing field's, tried in order (so a visible
    /// "next" link can be preferred to `<link rel=next>`); CSS rules without `attr` read `href`.
    pub next_page: Option<Field>,
}

/// Text and CSS markers for classification: the site's own, checked before the built-in vendor
/// markers (`classify`).
#[derive(Debug, Clone, Default)]
pub struct Markers {
    pub gone_text: Vec<String>,
    pub block_text: Vec<String>,
    pub challenge_text: Vec<String>,
    /// Text of the site's error state (a page whose data failed to load: retry soon).
    pub error_text: Vec<String>,
    /// CSS selectors of the site's own states, in the order they are checked: the ready wait
    /// ends as soon as one of them matches, so no page waits out its timeout to show one.
    pub selectors: Vec<StateSelector>,
}

/// A page state a site declares beside `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteState {
    /// A captcha or access-denied page.
    Block,
    /// A JS interstitial that clears by waiting.
    Challenge,
    /// The listing no longer exists.
    Gone,
    /// The page's data did not load (its own data request failed): retry soon.
    Error,
}

impl SiteState {
    /// Block first: a captcha that also looks like a challenge is never waited on.
    pub const ORDER: [SiteState; 4] = [
        SiteState::Block,
        SiteState::Challenge,
        SiteState::Gone,
        SiteState::Error,
    ];

    /// The state's key in a site file's `[markers.selectors]` (and its name in traces).
    pub fn key(self) -> &'static str {
        match self {
            SiteState::Block => "block",
            SiteState::Challenge => "challenge",
            SiteState::Gone => "gone",
            SiteState::Error => "error",
        }
    }
}

/// One `[markers.selectors]` entry.
#[derive(Debug, Clone)]
pub struct StateSelector {
    pub state: SiteState,
    /// As written (the browser evaluates it).
    pub css: String,
    /// Parsed (a saved page is checked without a browser).
    pub selector: Selector,
}

impl Markers {
    /// The site's state shown by a parsed page, by its selectors.
    pub fn state_in(&self, document: &scraper::Html) -> Option<SiteState> {
        self.selectors
            .iter()
            .find(|s| document.select(&s.selector).next().is_some())
            .map(|s| s.state)
    }

    /// The site's state its text markers name in a lowercased page, block first.
    pub fn state_by_text(&self, lowercase_html: &str) -> Option<SiteState> {
        let has = |texts: &[String]| {
            texts
                .iter()
                .any(|t| lowercase_html.contains(&t.to_lowercase()))
        };
        SiteState::ORDER.into_iter().find(|state| match state {
            SiteState::Block => has(&self.block_text),
            SiteState::Challenge => has(&self.challenge_text),
            SiteState::Gone => has(&self.gone_text),
            SiteState::Error => has(&self.error_text),
        })
    }
}

/// A validated site definition.
#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub base_url: Url,
    pub listing_url: Regex,
    /// CSS selector whose presence means the listing page finished rendering.
    pub ready: String,
    /// `ready`, parsed.
    pub ready_selector: Selector,
    pub ready_timeout: Duration,
    /// Text inside these elements is never part of a value (screen-reader-only decoration).
    pub hidden: Option<Selector>,
    pub fields: ListingFields,
    /// Search pages; `None` for a site that is only fed listing URLs.
    pub search: Option<SearchDef>,
    pub markers: Markers,
    pub default_currency: Option<Currency>,
    /// Listing fields the site file leaves out are read from the page's schema.org
    /// Product/Offer data (JSON-LD, then microdata) unless `[listing] schema_org = false`.
    pub schema_org: bool,
    /// Whether a listing page without a price is still a listing (`[listing] price_optional`).
    pub price_optional: bool,
    /// Requests per second this site tolerates from one worker.
    pub max_rps: u32,
    pub screenshot: bool,
}

impl Site {
    /// The listing id in `url`, if the URL is a listing page of this site.
    pub fn listing_id(&self, url: &str) -> Option<String> {
        self.check_listing_url(url).ok()
    }

    /// The listing id of `url`, or why it cannot be a job: not a listing URL of this site, or a
    /// URL or id longer than any real one (a poisonous row the database would refuse).
    pub fn check_listing_url(&self, url: &str) -> Result<String, ListingUrlError> {
        if url.len() > MAX_URL_BYTES {
            return Err(ListingUrlError::UrlTooLong(url.len()));
        }
        let id = self
            .listing_url
            .captures(url)
            .and_then(|caps| caps.name("id"))
            .map(|m| m.as_str().to_string())
            .ok_or_else(|| ListingUrlError::NotListing(self.name.clone()))?;
        let chars = id.chars().count();
        if chars > MAX_LISTING_ID_CHARS {
            return Err(ListingUrlError::IdTooLong(chars));
        }
        Ok(id)
    }

    /// The site's search pages, or why it has none.
    pub fn search_def(&self) -> Result<&SearchDef, SiteError> {
        self.search
            .as_ref()
            .ok_or_else(|| SiteError::NoSearch(self.name.clone()))
    }

    /// The URL of one search result page.
    pub fn search_url(&self, query: &str, page: u32) -> Result<String, SiteError> {
        let base = self.base_url.as_str().trim_end_matches('/');
        let query: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
        Ok(self
            .search_def()?
            .url
            .replace("{base_url}", base)
            .replace("{query}", &query)
            .replace("{page}", &page.to_string()))
    }
}

/// Why a URL cannot become a listing job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingUrlError {
    #[error("not a listing URL of site `{0}`")]
    NotListing(String),
    #[error("the URL is {0} bytes long, over the {MAX_URL_BYTES}-byte limit")]
    UrlTooLong(usize),
    #[error(
        "the listing id is {0} characters long, over the {MAX_LISTING_ID_CHARS}-character limit"
    )]
    IdTooLong(usize),
}

/// All site definitions of one directory. A file that is not a valid definition is reported
/// (every problem, with the file and key) and skipped: the other sites still load.
#[derive(Debug, Clone)]
pub struct Sites {
    /// The directory whose files were loaded over the built-in definitions, if any.
    dir: Option<PathBuf>,
    sites: BTreeMap<String, Site>,
    /// The file each site was read from (`built-in <name>.toml` for compiled-in ones).
    files: BTreeMap<String, PathBuf>,
    invalid: Vec<InvalidSite>,
}

/// Site definitions compiled into the binary, so `demo`, `crawl --site fixture` and the container
/// work from any directory; a file of the same name in the sites directory overrides one.
const BUILTIN: [(&str, &str); 2] = [
    ("ebay", include_str!("../sites/ebay.toml")),
    ("fixture", include_str!("../sites/fixture.toml")),
];

/// The sites directory used when none is given: `./sites`, only if it exists.
pub const DEFAULT_DIR: &str = "sites";

/// A site file that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSite {
    pub file: PathBuf,
    /// Every problem found, each naming its key.
    pub problems: Vec<String>,
}

impl InvalidSite {
    fn error(&self) -> SiteError {
        SiteError::Invalid {
            file: self.file.clone(),
            problem: self.problems.join("; "),
        }
    }
}

impl Sites {
    /// The built-in definitions alone.
    pub fn builtin() -> Sites {
        let mut sites = Sites {
            dir: None,
            sites: BTreeMap::new(),
            files: BTreeMap::new(),
            invalid: Vec::new(),
        };
        for (name, text) in BUILTIN {
            sites.add(PathBuf::from(format!("built-in {name}.toml")), parse(text));
        }
        sites
    }

    /// The built-in definitions, overridden and extended by every `*.toml` in `dir`, in name
    /// order; invalid files are logged and kept in [`Sites::invalid`] (an invalid file replaces a
    /// built-in definition of its name: a broken override is reported, never silently ignored).
    /// Only an unreadable directory is an error.
    pub fn load(dir: &Path) -> Result<Sites, SiteError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SiteError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        let mut sites = Sites::builtin();
        sites.dir = Some(dir.to_path_buf());
        for path in paths {
            let site = std::fs::read_to_string(&path)
                .map_err(|e| vec![e.to_string()])
                .and_then(|text| parse(&text));
            sites.add(path, site);
        }
        Ok(sites)
    }

    /// The built-in definitions and the one in `file` (which may override one of them): what
    /// `sites check` reads pages with. An unreadable or invalid file is an error naming every
    /// problem.
    pub fn load_file(file: &Path) -> Result<(Sites, String), SiteError> {
        let text = std::fs::read_to_string(file).map_err(|e| SiteError::Invalid {
            file: file.to_path_buf(),
            problem: e.to_string(),
        })?;
        let site = parse(&text).map_err(|problems| SiteError::Invalid {
            file: file.to_path_buf(),
            problem: problems.join("; "),
        })?;
        let name = site.name.clone();
        let mut sites = Sites::builtin();
        sites.add(file.to_path_buf(), Ok(site));
        Ok((sites, name))
    }

    /// [`Sites::load`] of `dir` when given (it must be readable), else of `./sites` when that
    /// exists, else the built-in definitions alone.
    pub fn load_from(dir: Option<&Path>) -> Result<Sites, SiteError> {
        match dir {
            Some(dir) => Sites::load(dir),
            None if Path::new(DEFAULT_DIR).is_dir() => Sites::load(Path::new(DEFAULT_DIR)),
            None => Ok(Sites::builtin()),
        }
    }

    fn add(&mut self, file: PathBuf, site: Result<Site, Vec<String>>) {
        match site {
            Ok(site) => {
                self.invalid
                    .retain(|bad| bad.file.file_stem() != file.file_stem());
                self.files.insert(site.name.clone(), file);
                self.sites.insert(site.name.clone(), site);
            }
            Err(problems) => {
                if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
                    self.sites.remove(stem);
                    self.files.remove(stem);
                }
                let bad = InvalidSite { file, problems };
                tracing::warn!(error = %bad.error(), "Site file skipped.");
                self.invalid.push(bad);
            }
        }
    }

    /// Where definitions come from, for messages: "the built-in sites and sites/".
    fn origin(&self) -> String {
        match &self.dir {
            Some(dir) => format!("the built-in sites and {}", dir.display()),
            None => "the built-in sites".to_string(),
        }
    }

    /// The site files that could not be loaded.
    pub fn invalid(&self) -> &[InvalidSite] {
        &self.invalid
    }

    /// The site named `name`; a skipped file of that name gives its problems.
    pub fn get(&self, name: &str) -> Result<&Site, SiteError> {
        let skipped = self
            .invalid
            .iter()
            .find(|bad| bad.file.file_stem().is_some_and(|stem| stem == name));
        if let (None, Some(bad)) = (self.sites.get(name), skipped) {
            return Err(bad.error());
        }
        self.sites.get(name).ok_or_else(|| SiteError::Unknown {
            name: name.to_string(),
            from: self.origin(),
            known: self.sites.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Points a site at another base URL (the fixture marketplace listens on a chosen port).
    pub fn set_base_url(&mut self, name: &str, base_url: &str) -> Result<(), SiteError> {
        let from = self.origin();
        let site = self.sites.get_mut(name).ok_or_else(|| SiteError::Unknown {
            name: name.to_string(),
            from,
            known: String::new(),
        })?;
        site.base_url = Url::parse(base_url).map_err(|e| SiteError::Invalid {
            file: PathBuf::from(format!("{name}.toml")),
            problem: format!("base URL override `{base_url}`: {e}"),
        })?;
        Ok(())
    }

    /// The file site `name` was read from (`built-in <name>.toml` for a compiled-in one).
    pub fn file(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(PathBuf::as_path)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sites.keys().map(String::as_str)
    }
}

/// One site definition's text, or every problem found in it.
fn parse(text: &str) -> Result<Site, Vec<String>> {
    let raw: raw::SiteFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    raw.validate()
}

#[cfg(test)]
mod tests;

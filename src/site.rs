//! Site definitions: `sites/<name>.toml` files loaded and validated once at start, so that every
//! site-specific fact (URL patterns, ready condition, selectors, markers, politeness) is data.
//! Errors name the file, the key and the problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use scraper::Selector;
use serde::Deserialize;
use url::Url;

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
    #[error("no site named `{name}` in {dir} (known: {known})")]
    Unknown {
        name: String,
        dir: PathBuf,
        known: String,
    },
}

/// How to read one field: CSS selectors tried in order, then an optional attribute and regex.
#[derive(Debug, Clone)]
pub struct Field {
    pub selectors: Vec<Selector>,
    /// Read this attribute instead of the element's text.
    pub attr: Option<String>,
    /// Keep only capture group 1 (or the whole match) of this regex.
    pub regex: Option<Regex>,
}

/// Where the item specifics (key/value pairs) are.
#[derive(Debug, Clone)]
pub struct SpecificsDef {
    pub row: Selector,
    pub key: Selector,
    pub value: Selector,
}

/// Selectors of a listing page.
#[derive(Debug, Clone, Default)]
pub struct ListingFields {
    pub title: Option<Field>,
    pub price: Option<Field>,
    pub currency: Option<Field>,
    pub condition: Option<Field>,
    pub seller: Option<Field>,
    pub seller_score: Option<Field>,
    pub shipping: Option<Field>,
    pub location: Option<Field>,
    pub description: Option<Field>,
    pub images: Option<Field>,
    pub specifics: Option<SpecificsDef>,
    /// Present when the listing has ended.
    pub ended: Option<Selector>,
}

/// Search result pages.
#[derive(Debug, Clone)]
pub struct SearchDef {
    /// URL template with `{base_url}`, `{query}` and `{page}`.
    pub url: String,
    pub ready: Option<String>,
    pub result: Selector,
    /// Results matching this (sponsored cards, placeholders) are skipped.
    pub skip: Option<Selector>,
    pub link: Field,
    pub title: Option<Field>,
    pub price: Option<Field>,
    pub next_page: Option<Selector>,
}

/// Text and CSS markers for classification.
#[derive(Debug, Clone, Default)]
pub struct Markers {
    pub gone_text: Vec<String>,
    pub block_text: Vec<String>,
    pub challenge_text: Vec<String>,
}

/// A validated site definition.
#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub base_url: Url,
    pub listing_url: Regex,
    /// CSS selector whose presence means the listing page finished rendering.
    pub ready: String,
    pub ready_timeout: Duration,
    pub fields: ListingFields,
    pub search: SearchDef,
    pub markers: Markers,
    pub default_currency: Option<Currency>,
    /// Requests per second this site tolerates from one worker.
    pub max_rps: u32,
    pub screenshot: bool,
}

impl Site {
    /// The listing id in `url`, if the URL is a listing page of this site.
    pub fn listing_id(&self, url: &str) -> Option<String> {
        let caps = self.listing_url.captures(url)?;
        caps.name("id").map(|m| m.as_str().to_string())
    }

    /// The URL of one search result page.
    pub fn search_url(&self, query: &str, page: u32) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        let query: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
        self.search
            .url
            .replace("{base_url}", base)
            .replace("{query}", &query)
            .replace("{page}", &page.to_string())
    }
}

/// All site definitions of one directory.
#[derive(Debug, Clone)]
pub struct Sites {
    dir: PathBuf,
    sites: BTreeMap<String, Site>,
}

impl Sites {
    /// Loads and validates every `*.toml` in `dir`.
    pub fn load(dir: &Path) -> Result<Sites, SiteError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SiteError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut sites = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let site = load_file(&path)?;
                sites.insert(site.name.clone(), site);
            }
        }
        Ok(Sites {
            dir: dir.to_path_buf(),
            sites,
        })
    }

    pub fn get(&self, name: &str) -> Result<&Site, SiteError> {
        self.sites.get(name).ok_or_else(|| SiteError::Unknown {
            name: name.to_string(),
            dir: self.dir.clone(),
            known: self.sites.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Points a site at another base URL (the fixture marketplace listens on a chosen port).
    pub fn set_base_url(&mut self, name: &str, base_url: &str) -> Result<(), SiteError> {
        let dir = self.dir.clone();
        let site = self.sites.get_mut(name).ok_or_else(|| SiteError::Unknown {
            name: name.to_string(),
            dir: dir.clone(),
            known: String::new(),
        })?;
        site.base_url = Url::parse(base_url).map_err(|e| SiteError::Invalid {
            file: dir.join(format!("{name}.toml")),
            problem: format!("base URL override `{base_url}`: {e}"),
        })?;
        Ok(())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sites.keys().map(String::as_str)
    }
}

fn load_file(path: &Path) -> Result<Site, SiteError> {
    let invalid = |problem: String| SiteError::Invalid {
        file: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let raw: raw::SiteFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    raw.validate().map_err(invalid)
}

/// The TOML shape, before validation.
mod raw {
    use super::*;

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
        listing: Listing,
        search: Search,
        #[serde(default)]
        markers: Markers,
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
        fields: BTreeMap<String, FieldSpec>,
        specifics: Option<Specifics>,
        ended: Option<String>,
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
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Search {
        url: String,
        ready: Option<String>,
        result: String,
        skip: Option<String>,
        link: FieldSpec,
        title: Option<FieldSpec>,
        price: Option<FieldSpec>,
        next_page: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Markers {
        #[serde(default)]
        gone: Vec<String>,
        #[serde(default)]
        block: Vec<String>,
        #[serde(default)]
        challenge: Vec<String>,
    }

    /// `title = "h1"` or `title = { css = ["h1.a", "h1"], attr = "content", regex = "..." }`.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum FieldSpec {
        Css(String),
        Rule {
            css: OneOrMany,
            attr: Option<String>,
            regex: Option<String>,
        },
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    const FIELD_NAMES: [&str; 10] = [
        "title",
        "price",
        "currency",
        "condition",
        "seller",
        "seller_score",
        "shipping",
        "location",
        "description",
        "images",
    ];

    impl SiteFile {
        pub fn validate(self) -> Result<Site, String> {
            let base_url =
                Url::parse(&self.base_url).map_err(|e| format!("key `base_url`: {e}"))?;
            let listing_url = Regex::new(&self.listing.url_pattern)
                .map_err(|e| format!("key `listing.url_pattern`: {e}"))?;
            if !listing_url.capture_names().any(|n| n == Some("id")) {
                return Err("key `listing.url_pattern`: needs a named group `(?P<id>...)`".into());
            }
            selector("listing.ready", &self.listing.ready)?;
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
                ready_timeout: Duration::from_millis(self.listing.ready_timeout_ms),
                fields: listing_fields(
                    self.listing.fields,
                    self.listing.specifics,
                    self.listing.ended,
                )?,
                search: self.search.validate()?,
                markers: super::Markers {
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
        mut specs: BTreeMap<String, FieldSpec>,
        specifics: Option<Specifics>,
        ended: Option<String>,
    ) -> Result<ListingFields, String> {
        if let Some(unknown) = specs.keys().find(|k| !FIELD_NAMES.contains(&k.as_str())) {
            return Err(format!(
                "key `listing.fields.{unknown}`: unknown field (known: {})",
                FIELD_NAMES.join(", ")
            ));
        }
        let mut take = |name: &str| -> Result<Option<Field>, String> {
            specs
                .remove(name)
                .map(|spec| spec.validate(&format!("listing.fields.{name}")))
                .transpose()
        };
        Ok(ListingFields {
            title: take("title")?,
            price: take("price")?,
            currency: take("currency")?,
            condition: take("condition")?,
            seller: take("seller")?,
            seller_score: take("seller_score")?,
            shipping: take("shipping")?,
            location: take("location")?,
            description: take("description")?,
            images: take("images")?,
            specifics: specifics
                .map(|s| -> Result<SpecificsDef, String> {
                    Ok(SpecificsDef {
                        row: selector("listing.specifics.row", &s.row)?,
                        key: selector("listing.specifics.key", &s.key)?,
                        value: selector("listing.specifics.value", &s.value)?,
                    })
                })
                .transpose()?,
            ended: ended
                .map(|css| selector("listing.ended", &css))
                .transpose()?,
        })
    }

    impl Search {
        fn validate(self) -> Result<SearchDef, String> {
            if !self.url.contains("{query}") {
                return Err("key `search.url`: needs a `{query}` placeholder".into());
            }
            if let Some(ready) = &self.ready {
                selector("search.ready", ready)?;
            }
            Ok(SearchDef {
                url: self.url,
                ready: self.ready,
                result: selector("search.result", &self.result)?,
                skip: self.skip.map(|s| selector("search.skip", &s)).transpose()?,
                link: self.link.validate("search.link")?,
                title: self.title.map(|f| f.validate("search.title")).transpose()?,
                price: self.price.map(|f| f.validate("search.price")).transpose()?,
                next_page: self
                    .next_page
                    .map(|s| selector("search.next_page", &s))
                    .transpose()?,
            })
        }
    }

    impl FieldSpec {
        fn validate(self, key: &str) -> Result<Field, String> {
            let (css, attr, regex) = match self {
                FieldSpec::Css(css) => (vec![css], None, None),
                FieldSpec::Rule { css, attr, regex } => {
                    let css = match css {
                        OneOrMany::One(one) => vec![one],
                        OneOrMany::Many(many) => many,
                    };
                    (css, attr, regex)
                }
            };
            if css.is_empty() {
                return Err(format!("key `{key}.css`: needs at least one selector"));
            }
            let selectors = css
                .iter()
                .map(|c| selector(key, c))
                .collect::<Result<Vec<_>, _>>()?;
            let regex = regex
                .map(|r| Regex::new(&r).map_err(|e| format!("key `{key}.regex`: {e}")))
                .transpose()?;
            Ok(Field {
                selectors,
                attr,
                regex,
            })
        }
    }

    fn selector(key: &str, css: &str) -> Result<Selector, String> {
        Selector::parse(css).map_err(|e| format!("key `{key}`: invalid CSS selector `{css}`: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sites")
    }

    #[test]
    fn shipped_sites_load() {
        let sites = Sites::load(&sites_dir()).unwrap();
        let fixture = sites.get("fixture").unwrap();
        assert_eq!(
            fixture
                .listing_id("http://127.0.0.1:4000/item/123456")
                .as_deref(),
            Some("123456")
        );
        assert_eq!(fixture.listing_id("http://127.0.0.1:4000/promo/1"), None);
    }

    #[test]
    fn errors_name_the_file_key_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(sites_dir().join("fixture.toml")).unwrap();
        let broken = text.replace("title = \"h1.title\"", "title = \"h1[[\"");
        std::fs::write(dir.path().join("broken.toml"), broken).unwrap();
        let err = Sites::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("broken.toml"), "{err}");
        assert!(err.contains("listing.fields.title"), "{err}");
        assert!(err.contains("invalid CSS selector"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(sites_dir().join("fixture.toml")).unwrap();
        std::fs::write(dir.path().join("x.toml"), format!("colour = 1\n{text}")).unwrap();
        let err = Sites::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn unknown_site_lists_the_known_ones() {
        let err = Sites::load(&sites_dir()).unwrap().get("nope").unwrap_err();
        assert!(err.to_string().contains("fixture"), "{err}");
    }
}

//! What a crawl works on: its site, its query or URL list, its page limit, and the key those
//! arguments make (a crawl resumes only the search its own arguments made, in the same database),
//! read from the command line or, for `--resume ID`, from the search itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::app::load_sites;
use crate::cli::{Common, CrawlArgs};
use crate::collect::jobs_from_urls;
use crate::site::Site;
use crate::store::Store;

/// A crawl's search, as its arguments say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlTarget {
    pub site: String,
    pub query: Option<String>,
    /// Absolute, so the same list from another working directory is the same crawl.
    pub urls: Option<PathBuf>,
    pub max_pages: u32,
    /// The arguments as one string, stored with the search (`searches.crawl_key`).
    #[serde(skip)]
    pub key: String,
    /// The search `--resume` named.
    #[serde(skip)]
    pub resume: Option<i64>,
}

impl CrawlTarget {
    /// The target of `crawl --site … --query …|--urls …`.
    pub fn from_args(args: &CrawlArgs) -> anyhow::Result<CrawlTarget> {
        let Some(site) = args.site.clone() else {
            bail!("give --site (or --resume ID)");
        };
        let urls = match &args.urls {
            Some(path) => Some(
                std::path::absolute(path)
                    .with_context(|| format!("Failed to resolve URL list {}", path.display()))?,
            ),
            None => None,
        };
        if args.query.is_none() && urls.is_none() {
            bail!("give --query or --urls (or --resume ID)");
        }
        let mut target = CrawlTarget {
            site,
            query: args.query.clone(),
            urls,
            max_pages: args.max_pages,
            key: String::new(),
            resume: None,
        };
        // Serializing strings and a number cannot fail.
        target.key = serde_json::to_string(&target).unwrap_or_default();
        Ok(target)
    }

    /// The target of `crawl --resume ID`: the arguments of the crawl that made search `id`.
    pub async fn of_search(store: &Store, id: i64) -> anyhow::Result<CrawlTarget> {
        let Some(lease) = store.crawl_lease(id).await? else {
            bail!("no search {id} in this database (`scrapefarm searches` lists them)");
        };
        let Some(key) = lease.key else {
            bail!(
                "search {id} was not made by `crawl` (but by `enqueue`, `demo` or the API); \
                 `crawl --resume` resumes only a crawl's own search"
            );
        };
        if !matches!(lease.status.as_str(), "collecting" | "queued") {
            bail!(
                "search {id} is {}; nothing to resume (start a new crawl)",
                lease.status
            );
        }
        let mut target: CrawlTarget = serde_json::from_str(&key)
            .with_context(|| format!("search {id} has an unreadable crawl key `{key}`"))?;
        target.key = key;
        target.resume = Some(id);
        Ok(target)
    }

    /// Reads the URL list (if any) before anything is recorded: a missing file, or invalid lines
    /// without `--skip-invalid`, fail the crawl (as they fail `enqueue`).
    pub fn check_urls(&self, common: &Common, skip_invalid: bool) -> anyhow::Result<()> {
        let Some(path) = &self.urls else {
            return Ok(());
        };
        let sites = load_sites(common, Some(&self.site))?;
        check_url_list(sites.get(&self.site)?, path, skip_invalid)
    }

    /// The search's query as `searches` shows it: the query, or `urls:<file>`.
    pub fn query_text(&self) -> String {
        match (&self.query, &self.urls) {
            (Some(query), _) => query.clone(),
            (None, Some(path)) => format!("urls:{}", path.display()),
            (None, None) => String::new(),
        }
    }
}

/// Reads the URL list before anything is recorded: a missing file, or invalid lines without
/// `--skip-invalid`, fail the crawl (as they fail `enqueue`) before a search is created.
fn check_url_list(site: &Site, path: &Path, skip_invalid: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Failed to read URL list {}", path.display()))?;
    let (_, rejected) = jobs_from_urls(site, &text, crate::store::now_ms());
    if rejected.is_empty() || skip_invalid {
        return Ok(());
    }
    for r in &rejected {
        eprintln!("line {}: `{}`: {}", r.line, r.text, r.reason);
    }
    anyhow::bail!(
        "{} lines of {} are not valid listing URLs; nothing was queued (fix them, or pass --skip-invalid)",
        rejected.len(),
        path.display()
    )
}

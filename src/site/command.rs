//! `scrapefarm sites`: which site definitions this process would use and where each comes from
//! (built in, or a file of the sites directory), and `sites validate`, which checks every file of
//! a directory in one pass — each problem naming its file and key — and fails when any is invalid;
//! `sites check` reads pages with a site file being written, and `sites new` drafts one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Sites;
use crate::cli::Common;
use crate::report::Table;

/// The `sites` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SitesCommand {
    /// List the usable sites: name, where the definition comes from, base URL, search support;
    /// then any file that could not be loaded, with its problems.
    #[command(
        visible_alias = "list",
        after_help = "Example:\n  scrapefarm sites ls --json"
    )]
    Ls {
        /// One JSON object per site (and per invalid file).
        #[arg(long)]
        json: bool,
    },
    /// Read pages (saved files or URLs, rendered in the browser) with one site file, as it is
    /// being written: per field, the value, the rule that read it and what each rule before it
    /// read; the file is checked first, every problem named with its key.
    #[command(
        after_help = "Examples:\n  scrapefarm sites check shop.toml saved/product.html\n  scrapefarm sites check shop.toml https://shop.example/item/1 --json"
    )]
    Check {
        /// The site definition being written.
        file: PathBuf,
        /// Saved HTML files or http(s) URLs.
        #[arg(required = true)]
        pages: Vec<String>,
        /// One JSON object per page.
        #[arg(long)]
        json: bool,
    },
    /// Draft a site definition from one product page (a saved HTML file, or a URL rendered in
    /// the browser): title and price rules from the page's JSON-LD, microdata, OpenGraph tags and
    /// most likely elements, the listing URL pattern from the URL's shape, each rule commented
    /// with where it came from, for a person to refine with `sites check`.
    #[command(
        after_help = "Examples:\n  scrapefarm sites new shop --from saved/product.html --out sites/shop.toml\n  scrapefarm sites new shop --from https://shop.example/item/1"
    )]
    New {
        /// The site's name (letters, digits, `_`, `-`).
        name: String,
        /// A saved product page, or its http(s) URL.
        #[arg(long)]
        from: String,
        /// Where to write the draft (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite `--out` when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Check every `*.toml` of a directory (default: the sites directory); exits 1 when any file
    /// is invalid, after listing all of its problems.
    #[command(
        after_help = "Examples:\n  scrapefarm sites validate\n  scrapefarm sites validate ./my-sites"
    )]
    Validate {
        /// Directory of site definitions.
        dir: Option<PathBuf>,
    },
}

/// One line of `sites ls --json`.
#[derive(Debug, Serialize)]
struct SiteLine<'a> {
    name: &'a str,
    file: String,
    base_url: &'a str,
    search: bool,
    max_rps: u32,
}

/// One invalid file of `sites ls --json`.
#[derive(Debug, Serialize)]
struct InvalidLine<'a> {
    file: String,
    problems: &'a [String],
}

/// Runs a `sites` subcommand over the definitions found from `sites_dir` (`--sites-dir`).
pub async fn run(common: &Common, cmd: Option<&SitesCommand>) -> anyhow::Result<()> {
    let sites_dir = common.sites_dir.as_deref();
    match cmd {
        None => list(&Sites::load_from(sites_dir)?, false),
        Some(SitesCommand::Ls { json }) => list(&Sites::load_from(sites_dir)?, *json),
        Some(SitesCommand::Validate { dir }) => validate(dir.as_deref().or(sites_dir)),
        Some(SitesCommand::Check { file, pages, json }) => check(common, file, pages, *json).await,
        Some(SitesCommand::New {
            name,
            from,
            out,
            force,
        }) => new(common, name, from, out.as_deref(), *force).await,
    }
}

/// Every page read with the site of `file`, one after the other; a page that cannot be read
/// (a missing file, a URL that does not render) stops the check with its reason.
async fn check(common: &Common, file: &Path, pages: &[String], json: bool) -> anyhow::Result<()> {
    let (sites, name) = Sites::load_file(file)?;
    let mut out = std::io::stdout().lock();
    for page in pages {
        if !json {
            writeln!(out, "== {page} (site {name} from {})", file.display())?;
        }
        let launch = || async {
            crate::app::launch_renderer(common, "site-check", 1, true)
                .await
                .map_err(|e| crate::render::RenderError::Browser(format!("{e:#}")))
        };
        let target = page.as_str().into();
        crate::inspect::extract_command(&sites, &name, target, json, launch, &mut out).await?;
        if !json {
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Drafts site `name` from the page `from` and writes it to `out` (never over an existing file
/// unless `force`) or standard output; says on standard error what the draft reads.
async fn new(
    common: &Common,
    name: &str,
    from: &str,
    out: Option<&Path>,
    force: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(out) = out.filter(|out| out.exists() && !force) {
        anyhow::bail!(
            "{} already exists: refusing to overwrite it (use --force, or another --out)",
            out.display()
        );
    }
    let is_url = from.starts_with("http://") || from.starts_with("https://");
    let html = match is_url {
        true => fetch(common, from).await?,
        false => {
            let bytes = std::fs::read(from)
                .with_context(|| format!("Failed to read the page {from} (a saved HTML file)"))?;
            crate::extract::decode_html(&bytes, None).html
        }
    };
    let draft = super::draft::draft(name, &html, is_url.then_some(from))
        .map_err(|e| anyhow::anyhow!("Failed to draft site `{name}` from {from}: {e}"))?;
    match out {
        Some(out) => std::fs::write(out, &draft.toml)
            .with_context(|| format!("Failed to write the draft to {}", out.display()))?,
        None => std::io::stdout().lock().write_all(draft.toml.as_bytes())?,
    }
    let price = draft
        .price
        .map(|p| format!("{} {}", p.to_decimal_string(), p.currency));
    eprintln!(
        "Drafted site `{name}` from {from}{}: title {:?}, price {}.",
        out.map(|o| format!(" into {}", o.display()))
            .unwrap_or_default(),
        draft.title.as_deref().unwrap_or("(none)"),
        price.as_deref().unwrap_or("(none)")
    );
    Ok(())
}

/// The HTML of `url` rendered in the farm's browser, once an `h1` has text (or after 10 s): many pages fill it by script.
async fn fetch(common: &Common, url: &str) -> anyhow::Result<String> {
    use crate::render::{RenderRequest, Renderer};
    let renderer = crate::app::launch_renderer(common, "site-new", 1, true).await?;
    let request = RenderRequest {
        url: url.to_string(),
        ready: Some("h1:not(:empty)".into()),
        ready_timeout: std::time::Duration::from_secs(10),
        screenshot: false,
        challenge: None,
        states: vec![],
    };
    let page = renderer.render(&request).await;
    renderer.close().await;
    let page = page.map_err(|e| anyhow::anyhow!("Failed to render {url}: {e}"))?;
    if let Some(status) = page.status.filter(|s| *s >= 400) {
        anyhow::bail!("Failed to draft from {url}: the server answered HTTP {status}");
    }
    Ok(page.html)
}

fn list(sites: &Sites, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut table = Table::new(&["site", "from", "base url", "search", ">max rps"]);
    for name in sites.names() {
        let site = sites.get(name)?;
        let line = SiteLine {
            name,
            file: sites
                .file(name)
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            base_url: site.base_url.as_str(),
            search: site.search.is_some(),
            max_rps: site.max_rps,
        };
        if json {
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            let search = if line.search { "yes" } else { "no" };
            table.push(vec![
                line.name.to_string(),
                line.file,
                line.base_url.to_string(),
                search.to_string(),
                line.max_rps.to_string(),
            ]);
        }
    }
    if !json {
        for line in table.lines() {
            writeln!(out, "{line}")?;
        }
    }
    for bad in sites.invalid() {
        let file = bad.file.display().to_string();
        if json {
            let line = InvalidLine {
                file,
                problems: &bad.problems,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            writeln!(out, "\ninvalid: {file}")?;
            for problem in &bad.problems {
                writeln!(out, "  {problem}")?;
            }
        }
    }
    Ok(())
}

/// Every problem of every file of `dir`, then an error when there was any.
fn validate(dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or(Path::new(super::DEFAULT_DIR));
    let sites = Sites::load(dir)?;
    let mut out = std::io::stdout().lock();
    let mut valid = 0;
    for name in sites.names() {
        let Some(file) = sites.file(name).filter(|f| f.starts_with(dir)) else {
            continue; // a built-in definition the directory does not override
        };
        writeln!(out, "ok       {} ({name})", file.display())?;
        valid += 1;
    }
    for bad in sites.invalid() {
        writeln!(out, "invalid  {}", bad.file.display())?;
        for problem in &bad.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    let invalid = sites.invalid().len();
    if invalid > 0 {
        anyhow::bail!(
            "{invalid} of {} site files in {} are invalid",
            valid + invalid,
            dir.display()
        );
    }
    writeln!(out, "{valid} site files in {} are valid", dir.display())?;
    Ok(())
}

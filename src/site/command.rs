//! `scrapefarm sites`: which site definitions this process would use and where each comes from
//! (built in, or a file of the sites directory), and `sites validate`, which checks every file of
//! a directory in one pass — each problem naming its file and key — and fails when any is invalid.

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

//! `scrapefarm snapshots`: the operator's look into the snapshot directory — list, show, stats,
//! verify and gc — printing the inventory's reports as text or JSON. Returns whether the
//! directory is healthy, so the binary can exit non-zero when `verify` (or a `gc --apply` that
//! could not delete a file) found problems.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::inventory::{
    self, Problem, SnapshotEntry, SnapshotFilter, StatsReport, StatsRow, VerifyReport,
};
use super::{read_html, resolve, sweep, thumbnail_path_for};
use crate::store::Store;

/// The `snapshots` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SnapshotsCommand {
    /// List snapshots, oldest first.
    #[command(
        after_help = "Examples:\n  scrapefarm snapshots ls --site fixture --since 2026-11-01\n  scrapefarm snapshots ls --listing 123456 --json"
    )]
    Ls {
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
        /// Only this listing (its id on the site).
        #[arg(long, value_name = "EXTERNAL_ID")]
        listing: Option<String>,
        /// Only snapshots captured on or after this UTC day.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
        since: Option<time::Date>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a snapshot's HTML (decompressed), or write it or its thumbnail to a file.
    #[command(
        after_help = "Examples:\n  scrapefarm snapshots show 42 | less\n  scrapefarm snapshots show fixture/2026-11-22/123456-1-000001.html.zst --open page.html\n  scrapefarm snapshots show 42 --screenshot thumb.jpg"
    )]
    Show {
        /// Snapshot id, or path relative to the snapshot root.
        #[arg(value_name = "ID|PATH")]
        target: String,
        /// Write the HTML to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        open: Option<PathBuf>,
        /// Write the thumbnail JPEG to this file (the HTML is then printed only with --open).
        #[arg(long, value_name = "FILE")]
        screenshot: Option<PathBuf>,
    },
    /// Count and bytes per site and day, and the compression ratio.
    #[command(after_help = "Example:\n  scrapefarm snapshots stats --json")]
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every file against the store: report missing, corrupt and orphaned files.
    #[command(
        after_help = "Exits non-zero when any problem is found.\n\nExample:\n  scrapefarm snapshots verify --json"
    )]
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Delete old snapshots (files and rows) and files no row records; a dry run unless --apply.
    #[command(
        after_help = "Examples:\n  scrapefarm snapshots gc --older-than 30 --keep-latest\n  scrapefarm snapshots gc --older-than 30 --keep-latest --apply\n  scrapefarm snapshots gc --orphans --apply"
    )]
    Gc {
        /// Snapshots captured more than this many days ago.
        #[arg(long, value_name = "DAYS", required_unless_present = "orphans")]
        older_than: Option<u32>,
        /// Keep each listing's newest snapshot however old it is.
        #[arg(long, requires = "older_than")]
        keep_latest: bool,
        /// Files under the root that no row records, and stray temporary files, older than an
        /// hour (younger ones may be writes in progress). Debug snapshots are kept.
        #[arg(long)]
        orphans: bool,
        /// Delete; without it, only list what would be deleted.
        #[arg(long)]
        apply: bool,
    },
}

/// Runs a `snapshots` subcommand against the store and the snapshot root, writing its output to
/// `out`. `Ok(false)` means problems were found (the command itself ran).
pub async fn run(
    cmd: &SnapshotsCommand,
    store: &Store,
    root: &Path,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    match cmd {
        SnapshotsCommand::Ls {
            site,
            listing,
            since,
            json,
        } => {
            let filter = SnapshotFilter {
                site: site.clone(),
                external_id: listing.clone(),
                since_ms: since.map(day_start_ms),
            };
            let entries = store.snapshot_entries(&filter).await?;
            print_entries(&entries, *json, out)?;
        }
        SnapshotsCommand::Show {
            target,
            open,
            screenshot,
        } => {
            show(
                store,
                root,
                target,
                open.as_deref(),
                screenshot.as_deref(),
                out,
            )
            .await?
        }
        SnapshotsCommand::Stats { json } => {
            let report = StatsReport::from_counts(&store.snapshot_day_counts().await?);
            print_stats(&report, *json, out)?;
        }
        SnapshotsCommand::Verify { json } => {
            let report = verify(store, root).await?;
            print_verify(&report, *json, out)?;
            return Ok(report.is_clean());
        }
        SnapshotsCommand::Gc {
            older_than,
            keep_latest,
            orphans,
            apply,
        } => {
            let mut healthy = true;
            if let Some(days) = older_than {
                healthy &= sweep::old(store, root, *days, *keep_latest, *apply, out).await?;
            }
            if *orphans {
                healthy &= sweep::orphans(store, root, *apply, out).await?;
            }
            return Ok(healthy);
        }
    }
    Ok(true)
}

/// Checks every snapshot row against the files under `root`.
pub async fn verify(store: &Store, root: &Path) -> anyhow::Result<VerifyReport> {
    let entries = store.snapshot_entries(&SnapshotFilter::default()).await?;
    let root = root.to_path_buf();
    let report = tokio::task::spawn_blocking(move || inventory::verify(&root, &entries))
        .await
        .context("The verify task panicked")??;
    Ok(report)
}

/// Parses `YYYY-MM-DD` into a calendar date.
pub fn parse_day(text: &str) -> Result<time::Date, String> {
    let invalid = || format!("`{text}` is not a date as YYYY-MM-DD");
    let mut parts = text.splitn(3, '-');
    let mut next = || parts.next().and_then(|p| p.parse::<i32>().ok());
    let (Some(year), Some(month), Some(day)) = (next(), next(), next()) else {
        return Err(invalid());
    };
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(invalid)?;
    let day = u8::try_from(day).map_err(|_| invalid())?;
    time::Date::from_calendar_date(year, month, day).map_err(|_| invalid())
}

/// Midnight UTC of `day`, in epoch milliseconds.
fn day_start_ms(day: time::Date) -> i64 {
    day.midnight().assume_utc().unix_timestamp() * 1000
}

/// Finds the snapshot an id or a path names: (path relative to the root, thumbnail path).
async fn locate(
    store: &Store,
    root: &Path,
    target: &str,
) -> anyhow::Result<(String, Option<String>)> {
    if let Ok(id) = target.parse::<i64>() {
        let entry = store.snapshot_entry(id).await?;
        let entry = entry.with_context(|| format!("No snapshot has id {id}."))?;
        return Ok((entry.path, entry.screenshot_path));
    }
    // A path as the operator sees it may still carry the root in front (`snapshots/fixture/…`).
    let relative = Path::new(target)
        .strip_prefix(root)
        .map(|rest| rest.to_string_lossy().into_owned())
        .unwrap_or_else(|_| target.to_string());
    resolve(root, &relative)?;
    let thumb = match store.snapshot_entry_at(&relative).await? {
        Some(entry) => entry.screenshot_path,
        None => thumbnail_path_for(&relative),
    };
    Ok((relative, thumb))
}

async fn show(
    store: &Store,
    root: &Path,
    target: &str,
    open: Option<&Path>,
    screenshot: Option<&Path>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (relative, thumb) = locate(store, root, target).await?;
    if let Some(file) = screenshot {
        let thumb = thumb.with_context(|| format!("Snapshot {relative} has no screenshot."))?;
        let source = resolve(root, &thumb)?;
        let jpeg = std::fs::read(&source)
            .with_context(|| format!("Failed to read the thumbnail {}", source.display()))?;
        std::fs::write(file, &jpeg)
            .with_context(|| format!("Failed to write {}", file.display()))?;
        writeln!(
            out,
            "Wrote the thumbnail ({} bytes) to {}.",
            jpeg.len(),
            file.display()
        )?;
    }
    if open.is_none() && screenshot.is_some() {
        return Ok(());
    }
    let html = read_html(root, &relative)?;
    match open {
        Some(file) => {
            std::fs::write(file, &html)
                .with_context(|| format!("Failed to write {}", file.display()))?;
            writeln!(
                out,
                "Wrote {} bytes of HTML to {}.",
                html.len(),
                file.display()
            )?;
        }
        None => out.write_all(html.as_bytes())?,
    }
    Ok(())
}

fn print_entries(
    entries: &[SnapshotEntry],
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if json {
        for entry in entries {
            serde_json::to_writer(&mut *out, entry)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<10} {:<14} {:<19}  {:>4}  {:>9}  {:>9}  PATH",
        "ID", "SITE", "LISTING", "CAPTURED (UTC)", "HTTP", "BYTES", "HTML"
    )?;
    for e in entries {
        let status = e
            .http_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:>6}  {:<10} {:<14} {:<19}  {:>4}  {:>9}  {:>9}  {}",
            e.id,
            e.site,
            e.external_id,
            format_time(e.captured_at),
            status,
            e.bytes,
            e.html_bytes,
            e.path
        )?;
    }
    writeln!(out, "{} snapshots.", entries.len())?;
    Ok(())
}

fn print_stats(report: &StatsReport, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    let line = |row: &StatsRow| {
        format!(
            "{:<10} {:<10}  {:>7}  {:>12}  {:>12}  {:>6.1}",
            row.site, row.day, row.count, row.bytes, row.html_bytes, row.ratio
        )
    };
    writeln!(
        out,
        "{:<10} {:<10}  {:>7}  {:>12}  {:>12}  {:>6}",
        "SITE", "DAY", "COUNT", "BYTES", "HTML BYTES", "RATIO"
    )?;
    for row in &report.rows {
        writeln!(out, "{}", line(row))?;
    }
    writeln!(out, "{}", line(&report.total))?;
    Ok(())
}

fn print_verify(report: &VerifyReport, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    for problem in &report.problems {
        match problem {
            Problem::Missing { id, path } => writeln!(out, "missing   #{id} {path}")?,
            Problem::Corrupt { id, path, reason } => {
                writeln!(out, "corrupt   #{id} {path}: {reason}")?
            }
            Problem::Orphaned { path } => writeln!(out, "orphaned  {path}")?,
            Problem::Stray { path, age_secs } => writeln!(
                out,
                "stray     {path}: a temporary file {} min old",
                age_secs / 60
            )?,
        }
    }
    let (missing, corrupt, orphaned) = report.counts();
    writeln!(
        out,
        "Checked {} snapshots and {} files: {missing} missing, {corrupt} corrupt, {orphaned} orphaned, {} stray temporary.",
        report.checked,
        report.files_on_disk,
        report.stray()
    )?;
    Ok(())
}

/// `yyyy-mm-dd hh:mm:ss` (UTC) of an epoch-millisecond time.
pub(crate) fn format_time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_only_as_real_calendar_dates() {
        let day = parse_day("2026-11-22").unwrap();
        assert_eq!(day_start_ms(day), 1_795_305_600_000);
        assert!(parse_day("2026-02-30").is_err());
        assert!(parse_day("2026-13-01").is_err());
        assert!(parse_day("yesterday").is_err());
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_763_790_000_000), "2025-11-22 05:40:00");
    }
}

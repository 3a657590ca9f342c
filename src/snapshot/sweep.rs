//! `scrapefarm snapshots gc`: deleting snapshots older than a cutoff (rows, then files) and files
//! no row records (`--orphans`: orphaned snapshots and stray temporary files past the grace
//! period). A dry run unless `--apply`; returns whether every file that should go went.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::command::format_time;
use super::inventory::{self, GcPlan, SnapshotFilter};
use super::orphans::{self, GRACE, OrphanPlan};
use crate::clock::now_ms;
use crate::store::Store;

/// `gc --older-than`: deletes snapshots captured before the cutoff, rows first.
pub(super) async fn old(
    store: &Store,
    root: &Path,
    older_than_days: u32,
    keep_latest: bool,
    apply: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let cutoff = now_ms() - i64::from(older_than_days) * inventory::DAY_MS;
    let entries = store.snapshot_entries(&SnapshotFilter::default()).await?;
    let plan = GcPlan::build(&entries, cutoff, keep_latest);
    let verb = if apply { "Deleting" } else { "Would delete" };
    writeln!(
        out,
        "{verb} {} snapshots ({} bytes) captured before {}; {} kept as their listing's newest.",
        plan.delete.len(),
        plan.bytes(),
        format_time(cutoff),
        plan.kept_latest
    )?;
    for entry in &plan.delete {
        writeln!(
            out,
            "  {:>6}  {}  {}",
            entry.id,
            format_time(entry.captured_at),
            entry.path
        )?;
    }
    if !apply {
        writeln!(out, "Dry run: nothing deleted. Add --apply to delete.")?;
        return Ok(true);
    }
    // Rows go first: a crash between the two steps leaves orphaned files (which verify reports),
    // never rows that point at nothing.
    let rows = store.delete_snapshots(&plan.ids()).await?;
    let root_owned = root.to_path_buf();
    let delete = plan.delete;
    let removal =
        tokio::task::spawn_blocking(move || inventory::remove_files(&root_owned, &delete))
            .await
            .context("The gc task panicked")?;
    writeln!(
        out,
        "Deleted {rows} rows and {} files.",
        removal.files_removed
    )?;
    for error in &removal.errors {
        writeln!(out, "  could not delete: {error}")?;
    }
    Ok(removal.errors.is_empty())
}

/// `gc --orphans`: deletes unrecorded files and stray temporary files older than [`GRACE`].
pub(super) async fn orphans(
    store: &Store,
    root: &Path,
    apply: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    // The directory is scanned before the rows are read: a file whose row commits in between is
    // young, never deleted.
    let scan_root = root.to_path_buf();
    let files = tokio::task::spawn_blocking(move || orphans::scan(&scan_root))
        .await
        .context("The scan task panicked")??;
    let entries = store.snapshot_entries(&SnapshotFilter::default()).await?;
    let plan = OrphanPlan::build(
        &files,
        &orphans::recorded(&entries),
        std::time::SystemTime::now(),
    );
    let verb = if apply { "Deleting" } else { "Would delete" };
    writeln!(
        out,
        "{verb} {} orphaned files and {} stray temporary files older than {} min; {} younger kept.",
        plan.orphans.len(),
        plan.stray_temp.len(),
        GRACE.as_secs() / 60,
        plan.young
    )?;
    for path in &plan.orphans {
        writeln!(out, "  orphaned   {path}")?;
    }
    for path in &plan.stray_temp {
        writeln!(out, "  temporary  {path}")?;
    }
    if !apply {
        writeln!(out, "Dry run: nothing deleted. Add --apply to delete.")?;
        return Ok(true);
    }
    let root_owned = root.to_path_buf();
    let removal = tokio::task::spawn_blocking(move || orphans::remove(&root_owned, plan.paths()))
        .await
        .context("The gc task panicked")?;
    writeln!(out, "Deleted {} files.", removal.files_removed)?;
    for error in &removal.errors {
        writeln!(out, "  could not delete: {error}")?;
    }
    Ok(removal.errors.is_empty())
}

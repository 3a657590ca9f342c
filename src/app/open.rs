//! Opening the database as each kind of command may: read-only commands never create a database
//! or change its schema; `migrate` creates, migrates and says what it applied. And the outcome a
//! run that finished with failures reports (exit code 3).

use super::POOL_SIZE;
use crate::cli::Common;
use crate::store::Store;

/// Why a read-only command cannot open the database: it never creates one or changes its schema.
#[derive(Debug, thiserror::Error)]
pub enum NoDatabase {
    #[error("no database at {0}; run `scrapefarm migrate` (or crawl/demo) first")]
    Missing(String),
    #[error(
        "the database at {url} has {applied} of this build's {known} migrations; run `scrapefarm migrate` first"
    )]
    Behind {
        url: String,
        applied: usize,
        known: usize,
    },
}

/// A run that finished but not everything it was given succeeded: the process exits 3.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} listings failed; `scrapefarm failures` lists them with their reasons")]
pub struct FinishedWithFailures {
    pub failed: i64,
    pub total: i64,
}

/// The file of a SQLite URL (`sqlite://x.db?mode=rwc`, `sqlite:x.db`); `None` for in-memory
/// databases and other backends.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    match path {
        "" | ":memory:" => None,
        path => Some(path.into()),
    }
}

/// Opens the database of a read-only command: never creates a database (a SQLite file or a
/// PostgreSQL database) and never migrates; a missing or outdated schema is an error that says
/// to run `scrapefarm migrate`.
pub async fn open_existing_store(common: &Common) -> anyhow::Result<Store> {
    let url = common.database_url();
    let shown = crate::store::redact(&url);
    if let Some(file) = sqlite_file(&url)
        && !file.exists()
    {
        return Err(NoDatabase::Missing(file.display().to_string()).into());
    }
    let store = match Store::connect_existing(&url, POOL_SIZE).await {
        Ok(store) => store,
        // 3D000 invalid_catalog_name: PostgreSQL's "database does not exist".
        Err(crate::store::StoreError::Connect { source, .. })
            if source
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|c| c == "3D000") =>
        {
            return Err(NoDatabase::Missing(shown).into());
        }
        Err(e) => return Err(e.into()),
    };
    let applied = store.applied_migrations().await?;
    let known = store.known_migrations();
    if applied.is_empty() {
        return Err(NoDatabase::Missing(shown).into());
    }
    if known.iter().any(|m| !applied.contains(m)) {
        let (applied, known) = (applied.len(), known.len());
        return Err(NoDatabase::Behind {
            url: shown,
            applied,
            known,
        }
        .into());
    }
    Ok(store)
}

/// `scrapefarm migrate`: creates the database if needed, applies what is missing and says which
/// migrations it applied (read from sqlx's table before and after).
pub async fn migrate(common: &Common) -> anyhow::Result<()> {
    super::ensure_data_dir(common)?;
    let store = Store::connect(&common.database_url(), 2).await?;
    let before = store.applied_migrations().await?;
    store.migrate().await?;
    let after = store.applied_migrations().await?;
    store.close().await;
    let url = crate::store::redact(&common.database_url());
    println!("{}. Database: {url}", migrate_summary(&before, &after));
    Ok(())
}

/// "Applied 2 migrations: 0005_a, 0006_b" or "Schema is up to date (6 migrations)".
fn migrate_summary(before: &[String], after: &[String]) -> String {
    let applied: Vec<&str> = after
        .iter()
        .filter(|m| !before.contains(m))
        .map(String::as_str)
        .collect();
    match applied.len() {
        0 => format!("Schema is up to date ({} migrations)", after.len()),
        1 => format!("Applied 1 migration: {}", applied[0]),
        n => format!("Applied {n} migrations: {}", applied.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file_and_memory_databases_none() {
        let file = |url: &str| sqlite_file(url).map(|p| p.display().to_string());
        assert_eq!(
            file("sqlite://./farm.db?mode=rwc").as_deref(),
            Some("./farm.db")
        );
        assert_eq!(file("sqlite:///tmp/x.db").as_deref(), Some("/tmp/x.db"));
        assert_eq!(file("sqlite:farm.db").as_deref(), Some("farm.db"));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("postgres://db/farm"), None);
    }

    #[test]
    fn migrate_summary_names_what_was_applied() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = names(&["0001_schema", "0002_queue", "0003_pace"]);
        assert_eq!(
            migrate_summary(&all[..1], &all),
            "Applied 2 migrations: 0002_queue, 0003_pace"
        );
        assert_eq!(
            migrate_summary(&all[..2], &all),
            "Applied 1 migration: 0003_pace"
        );
        assert_eq!(
            migrate_summary(&all, &all),
            "Schema is up to date (3 migrations)"
        );
    }
}

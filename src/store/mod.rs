//! Store (stage 6): PostgreSQL or SQLite through sqlx's Any driver, chosen by the URL. Every write
//! is an idempotent upsert keyed by (site, external id) or by the job id, because delivery is
//! at-least-once. `write` holds the pipeline's writes, `read` the operator queries.

pub mod api_keys;
pub mod dashboard;
mod error;
pub mod leases;
mod outbox;
mod queue_jobs;
mod read;
pub mod roles;
pub mod search_jobs;
pub mod searches;
mod snapshots;
mod watch_rule;
mod watches;
pub mod workers;
mod write;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection};

pub use error::StoreError;
pub use outbox::DueAlert;
pub use queue_jobs::{ClaimedJob, DeadRow, JobCounts, JobOutcome};
pub use read::{
    ListingFilter, ListingPage, ListingRow, PriceObservation, SearchRow, SnapshotRow, Table,
};
pub use snapshots::{DayCount, SnapshotEntry, SnapshotFilter};
pub use watch_rule::{Observed, Reason, WatchRule};
pub use watches::{
    AlertRow, CreatedWatch, NewWatch, WatchError, WatchRow, WebhookSecret, check_webhook_url,
};
pub use write::{ListingSave, SnapshotMeta};

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The database, shared by every task of a process (the pool is cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` (`postgres://…` or `sqlite://…`), creating the database if it is missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Store::connect_creating(url, max_connections, true).await
    }

    /// Connects to `url` only if its database exists: PostgreSQL databases are never created
    /// (read-only commands must not leave a database behind after a typo in the URL).
    pub async fn connect_existing(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Store::connect_creating(url, max_connections, false).await
    }

    async fn connect_creating(
        url: &str,
        max_connections: u32,
        create: bool,
    ) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Postgres && create {
            create_pg_database(url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Postgres {
                        // No statement may hang a worker: a stuck lock or a dying server ends in
                        // an error (unavailable) the worker waits out.
                        sqlx::query("SET statement_timeout = 30000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout=10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys=ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                host: redact(url),
                source,
            })?;
        Ok(Store { pool, backend })
    }

    /// Applies the backend's migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.schema_is_current().await {
            return Ok(()); // a worker role may not run even sqlx's CREATE TABLE IF NOT EXISTS
        }
        match self.backend {
            Backend::Postgres => PG_MIGRATOR.run(&self.pool).await?,
            Backend::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Migrations recorded as applied in sqlx's table, as `0004_poison_and_observations`, in
    /// order; empty when the table does not exist (a database never migrated).
    pub async fn applied_migrations(&self) -> Result<Vec<String>, StoreError> {
        let exists_sql = match self.backend {
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master \
                 WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(&self.pool).await?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(v, d)| migration_name(v, &d))
            .collect())
    }

    /// Every migration this build knows for the store's backend, named as
    /// [`Store::applied_migrations`] names them.
    pub fn known_migrations(&self) -> Vec<String> {
        let migrator = match self.backend {
            Backend::Postgres => &PG_MIGRATOR,
            Backend::Sqlite => &SQLITE_MIGRATOR,
        };
        migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| migration_name(m.version, &m.description))
            .collect()
    }

    /// The database's clock, epoch ms. Every time two machines compare ("enriched since this job
    /// was published", "paused until") is read from here, so a worker's skewed clock cannot
    /// skip work or stall a site.
    pub async fn db_now_ms(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        db_now(&mut conn, self.backend).await
    }

    /// Whether the database answers a trivial query within 5 s.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(std::time::Duration::from_secs(5), ping).await {
            Ok(done) => done.map(|_| ()).map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The raw pool, for integration tests that inspect or corrupt tables directly; nothing in
    /// the library outside the store uses it (the store owns its SQL).
    #[doc(hidden)]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The database's clock on `conn`, epoch ms.
pub(crate) async fn db_now(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
) -> Result<i64, StoreError> {
    let sql = match backend {
        Backend::Postgres => "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Backend::Sqlite => "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    };
    Ok(sqlx::query_scalar(sql).fetch_one(conn).await?)
}

/// Creates the PostgreSQL database named in `url` when it does not exist yet.
async fn create_pg_database(url: &str) -> Result<(), StoreError> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let name = parsed.path().trim_start_matches('/').to_string();
    if name.is_empty() || name == "postgres" {
        return Ok(());
    }
    parsed.set_path("/postgres");
    let connect_err = |source| StoreError::Connect {
        host: redact(url),
        source,
    };
    let mut conn = sqlx::PgConnection::connect(parsed.as_str())
        .await
        .map_err(connect_err)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', ""));
        // A concurrent creator may win the race; its database is as good as ours.
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            tracing::debug!(error = %e, "CREATE DATABASE raced.");
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// `scheme://host:port/db` without user or password, for error messages.
pub fn redact(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return format!("sqlite://{}", path.split('?').next().unwrap_or(path));
    }
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| p.to_string()).unwrap_or_default(),
            u.path()
        ),
        Ok(u) => format!("{}:{}", u.scheme(), u.path()),
        Err(_) => "<unparseable URL>".into(),
    }
}

/// Kept so that code written against `store::now_ms` still builds; the clock lives in
/// [`crate::clock`], and the database's in [`Store::db_now_ms`].
#[doc(hidden)]
pub use crate::clock::now_ms;

/// `0004_poison_and_observations`: a migration as its file is named (sqlx stores the
/// description with spaces).
fn migration_name(version: i64, description: &str) -> String {
    format!("{version:04}_{}", description.replace(' ', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_never_shows_the_password() {
        let shown = redact("postgres://user:secret@db.example:5432/farm");
        assert_eq!(shown, "postgres://db.example:5432/farm");
        assert!(!redact("amqp://guest:guest@127.0.0.1:5672/%2f").contains("guest"));
    }
}

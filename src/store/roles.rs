//! The workers' database role (PostgreSQL): migrations run as the owner of the farm's tables,
//! workers connect as a role that may only read and write rows of those tables — no DDL, no
//! other database's objects, no superuser catalogs. `scrapefarm db grant-worker ROLE` sets it up.

use super::{Backend, Store, StoreError};

/// The variable the worker role's password is read from (never a flag: flags show in `ps`).
pub const PASSWORD_VAR: &str = "SCRAPEFARM_WORKER_DB_PASSWORD";

/// Why the worker role could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("worker roles are a PostgreSQL feature; the SQLite store has no roles")]
    NotPostgres,
    #[error(
        "role name {0:?} must be lowercase letters, digits and underscores, starting with a letter"
    )]
    BadName(String),
    #[error("role {0} does not exist yet: set {PASSWORD_VAR} to create it with a password")]
    NoPassword(String),
    #[error(
        "role {0} exists and is a superuser or may create roles or databases; pick another name"
    )]
    Privileged(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for GrantError {
    fn from(e: sqlx::Error) -> Self {
        GrantError::Store(StoreError::from(e))
    }
}

/// What `grant_worker` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub created: bool,
    pub password_set: bool,
}

impl Store {
    /// Creates `role` if missing (LOGIN, NOSUPERUSER, NOCREATEDB, NOCREATEROLE, `password`), sets
    /// its password when one is given, and grants it SELECT/INSERT/UPDATE/DELETE on the farm's
    /// tables and USAGE on their sequences, now and (default privileges) for the tables later
    /// migrations create — except the watches and alerts (see [`outbox_grants`]). Run it as the
    /// role that runs the migrations.
    pub async fn grant_worker(
        &self,
        role: &str,
        password: Option<&str>,
    ) -> Result<Granted, GrantError> {
        if self.backend != Backend::Postgres {
            return Err(GrantError::NotPostgres);
        }
        let valid = role.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid || role.len() > 63 {
            return Err(GrantError::BadName(role.into()));
        }
        let mut tx = self.pool.begin().await?;
        let existing: Option<(bool, bool, bool)> = sqlx::query_as(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1",
        )
        .bind(role)
        .fetch_optional(&mut *tx)
        .await?;
        let created = existing.is_none();
        let mut statements = Vec::new();
        match (existing, password) {
            (Some((false, false, false)), _) => {}
            (Some(_), _) => return Err(GrantError::Privileged(role.into())),
            (None, None) => return Err(GrantError::NoPassword(role.into())),
            (None, Some(_)) => statements.push(format!(
                "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
            )),
        }
        if let Some(password) = password {
            // Quoted by the server (`format('%L')`): the password never passes through our SQL.
            let sql: String = sqlx::query_scalar(
                "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
            )
            .bind(role)
            .bind(password)
            .fetch_one(&mut *tx)
            .await?;
            statements.push(sql);
        }
        let db: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut *tx)
            .await?;
        statements.extend(grants(role, &db));
        let outbox: bool = sqlx::query_scalar("SELECT to_regclass('watches') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await?;
        if outbox {
            statements.extend(outbox_grants(role));
        }
        statements.extend(heartbeat_grants(role));
        let sessions: bool = sqlx::query_scalar("SELECT to_regclass('ui_sessions') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await?;
        if sessions {
            // A worker that could write dashboard sessions could sign in as any key.
            statements.push(format!("REVOKE ALL ON TABLE ui_sessions FROM {role}"));
        }
        for sql in statements {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Granted {
            created,
            password_set: password.is_some(),
        })
    }
}

impl Store {
    /// Whether every PostgreSQL migration this build knows is applied, read without DDL (a
    /// worker role cannot run the migrator's `CREATE TABLE IF NOT EXISTS`). `false` on SQLite
    /// and whenever unsure: the migrator then decides.
    pub(super) async fn schema_is_current(&self) -> bool {
        if self.backend != Backend::Postgres {
            return false;
        }
        let applied: Result<Vec<i64>, _> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await;
        let Ok(applied) = applied else {
            return false;
        };
        super::PG_MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .all(|m| applied.contains(&m.version))
    }
}

/// Heartbeats (`store::workers`): a worker writes its own row and reads nothing there. The
/// table-wide grants above are narrowed to INSERT and UPDATE, plus SELECT of the `id` column
/// alone, which PostgreSQL requires of an upsert (`ON CONFLICT (id)`) to find the row. `role`
/// already validated.
fn heartbeat_grants(role: &str) -> Vec<String> {
    vec![
        format!("REVOKE ALL ON TABLE workers FROM {role}"),
        format!("GRANT INSERT, UPDATE ON TABLE workers TO {role}"),
        format!("GRANT SELECT (id) ON TABLE workers TO {role}"),
    ]
}

/// The grants, `role` already validated. PostgreSQL 15 no longer lets PUBLIC create in
/// `public`; the REVOKE makes older servers match, so the worker cannot create tables there.
fn grants(role: &str, db: &str) -> Vec<String> {
    let db = db.replace('"', "\"\"");
    [
        format!("GRANT CONNECT ON DATABASE \"{db}\" TO {role}"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".into(),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public \
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}"
        ),
    ]
    .into()
}

/// Workers evaluate watches inside the transaction that stores a price observation and add the
/// alerts it fires; they never read a webhook URL or secret, nor settle an alert (the deliverer
/// does, as the owner). Migration 0009 narrows roles granted before it the same way.
fn outbox_grants(role: &str) -> Vec<String> {
    [
        format!("REVOKE ALL ON watches, alerts FROM {role}"),
        format!(
            "GRANT SELECT (id, search_id, site, external_id, below_minor, drop_percent, \
             currency, deleted_at) ON watches TO {role}"
        ),
        format!("GRANT INSERT ON alerts TO {role}"),
    ]
    .into()
}

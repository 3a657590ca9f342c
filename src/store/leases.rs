//! Profile leases: one browser per profile across pods. Pods that mount the same profiles volume
//! see each other's Chromium lock files but cannot tell whether the other pod is alive; the
//! database can. A worker claims its profile's row before it launches the browser, renews it
//! with a heartbeat and deletes it on a clean exit. Every time is the database's clock
//! (PostgreSQL `now()`, SQLite's own), so a worker's skewed clock cannot steal a live lease.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Backend, Store, StoreError};

/// How often a held lease is renewed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a lease lasts without a heartbeat: four missed heartbeats, so a database hiccup of
/// half a minute does not free a live worker's profile.
pub const LEASE: Duration = Duration::from_secs(45);
/// A holder whose last heartbeat is older than this has missed two and is taken for dead: its
/// successor waits for the lease to run out instead of being refused (a crashed pod's retry).
pub const STALE: Duration = Duration::from_secs(25);

/// Upper bound on one lease statement.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a profile could not be leased.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "profile {profile} is in use by {owner} on host {host} (its lease runs until {until}, \
         in {expires_in_secs} s, and is renewed every {heartbeat} s); run each worker with its \
         own --worker-id, or stop the other one first",
        heartbeat = HEARTBEAT.as_secs()
    )]
    Held {
        profile: String,
        owner: String,
        host: String,
        until: String,
        expires_in_secs: i64,
    },
    #[error("the profile lease could not be read or written: {0}")]
    Store(#[from] StoreError),
    #[error("the profile lease statement timed out after {} s", STATEMENT_TIMEOUT.as_secs())]
    Timeout,
}

/// The database's clock in epoch milliseconds, as SQL.
pub(super) fn db_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

/// Who holds a lease, and how it stands on the database's clock.
#[derive(Debug, Clone)]
struct Holder {
    owner: String,
    host: String,
    heartbeat_at: i64,
    lease_until: i64,
    now: i64,
}

impl Store {
    /// Claims (or renews) `profile` for `owner` on `host` for `lease`: succeeds when the row is
    /// free, expired, or already this host's. Returns the holder when another host has it.
    async fn claim_profile(
        &self,
        profile: &str,
        owner: &str,
        host: &str,
        lease: Duration,
    ) -> Result<Option<Holder>, StoreError> {
        let now = db_now(self.backend);
        let sql = format!(
            "INSERT INTO profile_leases (profile, owner, host, heartbeat_at, lease_until) \
             VALUES ($1, $2, $3, {now}, {now} + $4) \
             ON CONFLICT (profile) DO UPDATE SET owner = excluded.owner, host = excluded.host, \
             heartbeat_at = excluded.heartbeat_at, lease_until = excluded.lease_until \
             WHERE profile_leases.lease_until < excluded.heartbeat_at \
             OR profile_leases.host = excluded.host"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(profile)
            .bind(owner)
            .bind(host)
            .bind(lease.as_millis() as i64)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() > 0 {
            return Ok(None);
        }
        let sql = format!(
            "SELECT owner, host, heartbeat_at, lease_until, {now} FROM profile_leases \
             WHERE profile = $1"
        );
        let row: Option<(String, String, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(profile)
            .fetch_optional(&self.pool)
            .await?;
        // Released between the two statements: the next claim takes it.
        Ok(
            row.map(|(owner, host, heartbeat_at, lease_until, now)| Holder {
                owner,
                host,
                heartbeat_at,
                lease_until,
                now,
            }),
        )
    }

    /// Deletes this host's lease of `profile`.
    async fn release_profile(&self, profile: &str, host: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM profile_leases WHERE profile = $1 AND host = $2")
            .bind(profile)
            .bind(host)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The host a lease names: `SCRAPEFARM_HOST`, else the kernel's hostname (the pod name in
/// Kubernetes).
pub fn lease_host() -> String {
    std::env::var("SCRAPEFARM_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A held profile lease; [`ProfileLease::keep_alive`] renews it, [`ProfileLease::release`]
/// gives it back.
pub struct ProfileLease {
    store: Store,
    profile: String,
    owner: String,
    host: String,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl ProfileLease {
    /// Claims `profile`. A holder on another host that still heartbeats refuses it at once
    /// ([`LeaseError::Held`]); one that stopped heartbeating (a crashed pod) is waited out until
    /// its lease runs out.
    pub async fn acquire(
        store: &Store,
        profile: &str,
        owner: &str,
        host: &str,
    ) -> Result<ProfileLease, LeaseError> {
        loop {
            let claim = store.claim_profile(profile, owner, host, LEASE);
            let holder = timed(claim).await?;
            let Some(h) = holder else {
                tracing::info!(
                    profile,
                    host,
                    lease_secs = LEASE.as_secs(),
                    "Profile leased."
                );
                return Ok(ProfileLease {
                    store: store.clone(),
                    profile: profile.into(),
                    owner: owner.into(),
                    host: host.into(),
                    stop: CancellationToken::new(),
                    tracker: TaskTracker::new(),
                });
            };
            let left = Duration::from_millis((h.lease_until - h.now).max(0) as u64);
            let silent = h.now - h.heartbeat_at;
            if silent < STALE.as_millis() as i64 || left > LEASE {
                return Err(LeaseError::Held {
                    profile: profile.into(),
                    owner: h.owner,
                    host: h.host,
                    until: format_ms(h.lease_until),
                    expires_in_secs: (left.as_millis() as i64 + 999) / 1000,
                });
            }
            tracing::warn!(profile, holder = %h.host, silent_ms = silent, "The profile's holder stopped heartbeating; waiting for its lease to run out.");
            tokio::time::sleep(left + Duration::from_millis(200)).await;
        }
    }

    /// Renews the lease every [`HEARTBEAT`] in a tracked task until [`release`]. When another
    /// host has taken the profile (this worker could not reach the database for a whole lease),
    /// it cancels `shutdown`: two browsers must not share a profile.
    ///
    /// [`release`]: ProfileLease::release
    pub fn keep_alive(&self, shutdown: CancellationToken) {
        let (store, stop) = (self.store.clone(), self.stop.clone());
        let (profile, owner, host) = (self.profile.clone(), self.owner.clone(), self.host.clone());
        self.tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                }
                match timed(store.claim_profile(&profile, &owner, &host, LEASE)).await {
                    Ok(None) => tracing::debug!(%profile, "Profile lease renewed."),
                    Ok(Some(h)) => {
                        tracing::error!(%profile, owner = %h.owner, host = %h.host, "The profile lease was taken by another host; stopping this worker.");
                        shutdown.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(%profile, error = %e, "Failed to renew the profile lease; retrying."),
                }
            }
        });
        self.tracker.close();
    }

    /// Stops the heartbeat and deletes the lease, so the next worker need not wait for it.
    pub async fn release(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        match timed(self.store.release_profile(&self.profile, &self.host)).await {
            Ok(()) => tracing::info!(profile = %self.profile, "Profile lease released."),
            Err(e) => {
                tracing::warn!(profile = %self.profile, error = %e, "Failed to release the profile lease; it runs out by itself.")
            }
        }
    }
}

async fn timed<T>(statement: impl Future<Output = Result<T, StoreError>>) -> Result<T, LeaseError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, statement).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LeaseError::Timeout),
    }
}

/// Epoch milliseconds as an RFC 3339 UTC time, for the operator.
fn format_ms(ms: i64) -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

//! One browser per profile across pods: the profile lease on real PostgreSQL (and SQLite), and
//! the real worker binary refused on a profile another "host" holds, then let in once it is
//! released.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Farm, PG_BASE, drop_database, unique};
use scrapefarm::fixture_site::FixtureConfig;
use scrapefarm::store::Store;
use scrapefarm::store::leases::{LeaseError, ProfileLease};

async fn lease_rows(store: &Store) -> Vec<(String, String)> {
    sqlx::query_as("SELECT profile, host FROM profile_leases ORDER BY profile")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// The lease contract, run against each backend.
async fn a_live_lease_is_refused_to_another_host_and_free_once_released(store: &Store) {
    let a = ProfileLease::acquire(store, "worker-3", "worker-3 (pid 1)", "pod-a")
        .await
        .expect("a free profile is leased");
    let again = ProfileLease::acquire(store, "worker-3", "worker-3 (pid 2)", "pod-a").await;
    assert!(again.is_ok(), "this host's own lease is ours");
    let refused = ProfileLease::acquire(store, "worker-3", "worker-3 (pid 9)", "pod-b").await;
    let Err(err @ LeaseError::Held { .. }) = refused else {
        panic!("pod-b must be refused while pod-a heartbeats")
    };
    let text = err.to_string();
    assert!(
        text.contains("worker-3 (pid 2)") && text.contains("pod-a"),
        "{text}"
    );
    assert!(
        text.contains("lease runs until 20"),
        "names the expiry: {text}"
    );
    let other = ProfileLease::acquire(store, "worker-4", "worker-4 (pid 9)", "pod-b").await;
    assert!(other.is_ok(), "another profile is free");
    a.release().await;
    assert_eq!(
        lease_rows(store).await,
        [("worker-4".into(), "pod-b".into())]
    );
    let b = ProfileLease::acquire(store, "worker-3", "worker-3 (pid 9)", "pod-b").await;
    assert!(b.is_ok(), "a released profile is free");
}

/// An expired lease (its holder died without releasing) is taken over.
async fn an_expired_lease_is_taken_over(store: &Store) {
    let expired = "UPDATE profile_leases SET heartbeat_at = heartbeat_at - 600000, \
                   lease_until = lease_until - 600000 WHERE profile = 'worker-3'";
    sqlx::query(expired).execute(store.pool()).await.unwrap();
    let c = ProfileLease::acquire(store, "worker-3", "worker-3 (pid 7)", "pod-c").await;
    assert!(c.is_ok(), "an expired lease is free");
    assert!(
        lease_rows(store)
            .await
            .contains(&("worker-3".into(), "pod-c".into()))
    );
}

/// A holder that stopped heartbeating (a crashed pod) is waited out, not refused: its lease
/// runs out within [`scrapefarm::store::leases::LEASE`] and the successor takes the profile.
async fn a_silent_holder_is_waited_out(store: &Store) {
    let silent = "UPDATE profile_leases SET heartbeat_at = heartbeat_at - 30000, \
                  lease_until = heartbeat_at - 30000 + 32000 WHERE profile = 'worker-3'";
    sqlx::query(silent).execute(store.pool()).await.unwrap();
    let started = Instant::now();
    let d = ProfileLease::acquire(store, "worker-3", "worker-3 (pid 8)", "pod-d").await;
    assert!(
        d.is_ok(),
        "the silent holder's profile is taken once its lease ran out"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

#[tokio::test]
async fn profile_leases_on_postgres() {
    let name = unique("sf_lease");
    let store = Store::connect(&format!("{PG_BASE}/{name}"), 4)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    a_live_lease_is_refused_to_another_host_and_free_once_released(&store).await;
    an_expired_lease_is_taken_over(&store).await;
    a_silent_holder_is_waited_out(&store).await;
    store.close().await;
    drop_database(&name).await;
}

#[tokio::test]
async fn profile_leases_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    a_live_lease_is_refused_to_another_host_and_free_once_released(&store).await;
    an_expired_lease_is_taken_over(&store).await;
    a_silent_holder_is_waited_out(&store).await;
}

fn worker(farm: &Farm, host: &str) -> Command {
    let mut cmd = farm.worker_command("worker-7");
    cmd.args(["--concurrency", "1"])
        .env("SCRAPEFARM_HOST", host)
        .env(
            "SCRAPEFARM_READY_FILE",
            farm.dir.path().join(format!("{host}.ready")),
        );
    cmd
}

async fn wait_for_lease(farm: &Farm, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lease_rows(&farm.store).await.iter().any(|(_, h)| h == host) {
        assert!(
            Instant::now() < deadline,
            "{host} leased worker-7 within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_on_a_leased_profile_is_refused_until_the_first_releases_it() {
    let farm = Farm::start(FixtureConfig::default()).await;
    let mut first = worker(&farm, "pod-a")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lease(&farm, "pod-a").await;

    let started = Instant::now();
    let refused = worker(&farm, "pod-b")
        .env("SCRAPEFARM_EXIT_WHEN_IDLE_SECS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "the second worker exits non-zero"
    );
    assert!(
        stderr.contains("profile worker-7 is in use by worker-7 (pid")
            && stderr.contains("on host pod-a")
            && stderr.contains("lease runs until"),
        "the error names the owner, its host and the expiry:\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at start"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first worker keeps running"
    );

    // SIGTERM: the first worker closes its browser and releases the lease on its way out.
    let term = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    assert!(term.unwrap().success());
    let exited = tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap();
    assert!(exited.unwrap().success(), "the first worker exits cleanly");
    assert!(
        lease_rows(&farm.store).await.is_empty(),
        "released on a clean exit"
    );

    let second = worker(&farm, "pod-b")
        .env("SCRAPEFARM_EXIT_WHEN_IDLE_SECS", "1")
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "the second worker runs once the lease is free:\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let name = farm.db_url.rsplit('/').next().unwrap().to_string();
    farm.cleanup().await;
    drop_database(&name).await;
}

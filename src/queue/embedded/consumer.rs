//! A consumer of the embedded queue: a claimer task leases due jobs (never more than `prefetch`
//! unsettled) and hands them over through a channel, so that `next` is cancel-safe (a lease is
//! never lost in a dropped future); a renewer task extends this consumer's leases and its entry
//! in `queue_consumers` every third of a lease, for as long as the consumer lives — past
//! `cancel`, while the jobs already handed out finish. `close` gives every lease back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{EmbeddedQueue, Lease};
use crate::queue::{Acker, Consumer, Delivery, QueueError};
use crate::store::ClaimedJob;

/// How often an idle consumer looks for newly due jobs (retries coming due, other producers,
/// expired leases).
const POLL: Duration = Duration::from_millis(200);

/// See the module comment. Dropped without `close`, its tasks stop and its leases expire.
pub struct EmbeddedConsumer {
    queue: EmbeddedQueue,
    owner: Arc<str>,
    rx: mpsc::Receiver<Result<Delivery, QueueError>>,
    /// Stops claiming.
    stop_claiming: CancellationToken,
    claimer: Option<JoinHandle<()>>,
    renewer: Option<JoinHandle<()>>,
    /// Stops both tasks; cancelled by `close` and on drop.
    stop_all: CancellationToken,
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        self.stop_all.cancel();
    }
}

impl EmbeddedConsumer {
    /// Registers a new owner, releases the leases of dead local processes and starts claiming.
    pub(super) async fn start(
        queue: EmbeddedQueue,
        prefetch: u16,
    ) -> Result<EmbeddedConsumer, QueueError> {
        let owner: Arc<str> = Arc::from(owner_id());
        release_dead_local_owners(&queue).await?;
        queue.renew(&owner).await?;
        let stop_all = CancellationToken::new();
        let stop_claiming = stop_all.child_token();
        let prefetch = usize::from(prefetch.max(1));
        let (tx, rx) = mpsc::channel(prefetch);
        // Both tasks are the consumer's: `cancel` awaits the claimer, `close` the renewer, and
        // dropping the consumer cancels `stop_all`, which ends both.
        let claimer = tokio::spawn(claim_loop(
            queue.clone(),
            owner.clone(),
            Arc::new(Semaphore::new(prefetch)),
            tx,
            stop_claiming.clone(),
        ));
        let renewer = tokio::spawn(renew_loop(queue.clone(), owner.clone(), stop_all.clone()));
        Ok(EmbeddedConsumer {
            queue,
            owner,
            rx,
            stop_claiming,
            claimer: Some(claimer),
            renewer: Some(renewer),
            stop_all,
        })
    }

    /// This consumer's id, the owner of its leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

impl Consumer for EmbeddedConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        self.rx.recv().await
    }

    /// Stops claiming and gives back the jobs claimed but not yet handed out. The leases of the
    /// jobs handed out are still renewed until `close`.
    async fn cancel(&mut self) {
        self.stop_claiming.cancel();
        if let Some(claimer) = self.claimer.take() {
            let _ = claimer.await;
        }
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            let Ok(delivery) = item else { continue };
            let Acker::Embedded(lease) = &delivery.acker else {
                continue;
            };
            if let Err(e) = self.queue.release(&self.owner, Some(lease.id), true).await {
                tracing::warn!(error = %e, "Failed to give back a claimed job; it runs again once its lease expires.");
            }
        }
    }

    /// Gives back every lease this consumer still holds: the caller has stopped (or abandoned)
    /// the jobs, so they may run elsewhere now.
    async fn close(mut self) {
        self.cancel().await;
        self.stop_all.cancel();
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.await;
        }
        match self.queue.release(&self.owner, None, false).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "Gave back unsettled jobs."),
            Err(e) => {
                tracing::warn!(error = %e, "Failed to give back unsettled jobs; they run again once their leases expire.")
            }
        }
        if let Err(e) = self.queue.unregister(&self.owner).await {
            tracing::debug!(error = %e, "Failed to unregister the consumer; it expires.");
        }
    }
}

async fn claim_loop(
    queue: EmbeddedQueue,
    owner: Arc<str>,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Result<Delivery, QueueError>>,
    stop: CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let item = loop {
            if stop.is_cancelled() {
                return;
            }
            match queue.claim(&owner).await {
                Ok(Some(ClaimedJob {
                    id,
                    body,
                    attempt,
                    deliveries,
                })) => {
                    let lease = Lease {
                        id,
                        owner: owner.clone(),
                        permit: Mutex::new(Some(permit)),
                    };
                    break Ok(Delivery {
                        body,
                        attempt: attempt.max(1) as u32,
                        redelivered: deliveries > 1,
                        acker: Acker::Embedded(lease),
                    });
                }
                Ok(None) => {
                    let published = queue.published.notified();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = published => {}
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

async fn renew_loop(queue: EmbeddedQueue, owner: Arc<str>, stop: CancellationToken) {
    let every = queue.lease / 3;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = queue.renew(&owner).await {
            tracing::warn!(error = %e, "Failed to renew the embedded queue's leases; retrying.");
        }
    }
}

/// `host:pid:random`: unique per consumer, and says which process holds a lease.
fn owner_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Each RandomState is seeded afresh; mixed with the time, that is random enough for an id.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(
        "{}:{}:{:016x}",
        host_name(),
        std::process::id(),
        hasher.finish()
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().replace(':', "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// True when `owner` names a process of this host (same hostname, so the same PID namespace)
/// that no longer runs. Unknown (no /proc, another host) is false: those leases expire instead.
fn is_dead_local_owner(owner: &str, host: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (_random, pid, owner_host) = (parts.next(), parts.next(), parts.next());
    let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    owner_host == Some(host)
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A killed process cannot renew, but waiting a whole lease before its jobs run again would
/// stall a `crawl` restarted on the same machine: its leases are released at once.
async fn release_dead_local_owners(queue: &EmbeddedQueue) -> Result<(), QueueError> {
    queue.forget_expired_consumers().await?;
    let host = host_name();
    for owner in queue.owners().await? {
        if !is_dead_local_owner(&owner, &host) {
            continue;
        }
        let released = queue.release(&owner, None, false).await?;
        queue.unregister(&owner).await?;
        if released > 0 {
            tracing::info!(released, %owner, "Released the leases of a process that is gone; those jobs run again.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_dead_only_when_it_is_a_missing_process_of_this_host() {
        let me = format!("box:{}:00ff", std::process::id());
        assert!(!is_dead_local_owner(&me, "box"), "this process");
        assert!(!is_dead_local_owner("box:1:00ff", "box"), "pid 1 runs");
        assert!(
            is_dead_local_owner("box:4194305:00ff", "box"),
            "above pid_max"
        );
        assert!(
            !is_dead_local_owner("other:4194305:00ff", "box"),
            "another host"
        );
        assert!(!is_dead_local_owner("garbage", "box"));
    }

    #[test]
    fn owner_ids_differ_between_consumers_of_one_process() {
        let (a, b) = (owner_id(), owner_id());
        assert_ne!(a, b);
        assert!(a.contains(&format!(":{}:", std::process::id())));
    }
}

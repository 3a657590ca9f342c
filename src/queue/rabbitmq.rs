//! The RabbitMQ queue (lapin). Topology, declared idempotently by whoever connects first:
//! - `<work>`: durable, persistent messages, message TTL 12 h; expired jobs dead-letter to `<work>.dead`;
//! - `<work>.retry.<n>s`: one durable queue per delay tier with a per-queue TTL that dead-letters back
//!   into `<work>` (per-queue, not per-message, TTLs: mixed TTLs in one queue block each other);
//! - `<work>.dead`: parked jobs, with the reason in the `x-reason` header.
//!
//! Every publish waits for the broker's confirm, at most [`CONFIRM_TIMEOUT`]. The attempt number
//! travels in `x-attempt`. Publishing and consuming use separate connections (see `link`).
//!
//! Reconnects are ours, not lapin's auto-recovery (see `link`): every operation takes the live
//! connection, reopened first if it died. A consumer whose connection dies yields an error and
//! ends; the worker backs off and consumes again, which reconnects. Deliveries unsettled on the
//! dead connection were requeued by the broker, so settling them fails instead of republishing a
//! retry or dead letter that would duplicate the job. A settle that fails or hangs closes the
//! delivery's channel, so the broker redelivers it rather than holding it unacked for ever.

mod link;
mod management;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use super::{
    Acker, Consumer, DeadJob, Delivery, Queue, QueueDepths, QueueError, Settle, check_size,
};

use link::{Links, io_error};
pub use management::MANAGEMENT_URL_ENV;
use management::Management;
pub use sweep::{DeadSweep, TakenDead};

/// Delay tiers for retries; a retry goes to the smallest tier at least as long as its delay.
pub const RETRY_TIERS_SECS: [u64; 6] = [1, 5, 15, 60, 300, 900];
/// Jobs older than this in the work queue are dead-lettered rather than dropped.
const WORK_TTL_MS: i32 = 12 * 60 * 60 * 1000;
/// How long a publish may wait for the broker's confirm. A healthy broker confirms a persistent
/// message in milliseconds; longer means flow control (a memory or disk alarm) or a dying node,
/// and the caller is better off failing (the delivery is then redelivered) than hanging.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an ack or nack may take before the delivery's channel is closed instead.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading the queue counts may take (`status`, the worker's idle check).
const DEPTHS_TIMEOUT: Duration = Duration::from_secs(5);

/// Queue names of one farm; several farms (and tests) can share a broker with different names.
#[derive(Debug, Clone)]
pub struct QueueNames {
    pub work: String,
}

impl QueueNames {
    pub fn new(work: impl Into<String>) -> QueueNames {
        QueueNames { work: work.into() }
    }
    pub fn dead(&self) -> String {
        format!("{}.dead", self.work)
    }
    pub fn retry(&self, tier_secs: u64) -> String {
        format!("{}.retry.{tier_secs}s", self.work)
    }
}

/// Why a delivery cannot be settled any more.
const STALE: &str = "the delivery's channel is closed; the broker redelivers it";
/// How long cancelling or closing a consumer's channel may take (the connection may be dead).
const CHANNEL_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a RabbitMQ delivery is settled: its acker and the channel it came on (closed when the
/// settle fails, so that the broker redelivers it).
pub struct Ticket {
    acker: lapin::Acker,
    channel: Channel,
}

/// Connections to RabbitMQ (one publishing, one consuming), reopened when they die.
/// Clones share the connections.
#[derive(Clone)]
pub struct RabbitMqQueue {
    links: Arc<Links>,
    management: Option<Arc<Management>>,
}

impl RabbitMqQueue {
    /// Connects and declares the topology.
    pub async fn connect(url: &str, names: QueueNames) -> Result<RabbitMqQueue, QueueError> {
        let links = Links::connect(url, names).await?;
        Ok(RabbitMqQueue {
            links: Arc::new(links),
            management: Management::locate(url).map(Arc::new),
        })
    }

    pub fn names(&self) -> &QueueNames {
        &self.links.names
    }

    /// Starts a one-message-at-a-time pass over the dead-letter queue (see [`DeadSweep`]).
    pub async fn dead_sweep(&self) -> Result<DeadSweep, QueueError> {
        DeadSweep::open(self.clone()).await
    }

    /// Publishes `body` to `queue` and waits for the broker's confirm.
    async fn publish_to(
        &self,
        queue: &str,
        body: &[u8],
        attempt: u32,
        reason: Option<&str>,
    ) -> Result<(), QueueError> {
        let mut headers = FieldTable::default();
        headers.insert("x-attempt".into(), AMQPValue::LongLongInt(attempt as i64));
        if let Some(reason) = reason {
            let reason: String = reason.chars().take(1000).collect();
            headers.insert("x-reason".into(), AMQPValue::LongString(reason.into()));
        }
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let publisher = self.links.publisher().await?.channel;
        let confirmed = async {
            let routing = queue.to_string().into();
            let sent = publisher.basic_publish("".into(), routing, options, body, props);
            sent.await?.await
        };
        let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, confirmed)
            .await
            .map_err(|_| QueueError::TimedOut {
                what: "confirm a publish",
                after: CONFIRM_TIMEOUT,
            })??;
        if !confirm.is_ack() || confirm.take_message().is_some() {
            return Err(QueueError::NotConfirmed(queue.to_string()));
        }
        Ok(())
    }

    /// Acks or nacks (with requeue) within [`SETTLE_TIMEOUT`]; on failure the delivery's channel
    /// is closed so that the broker redelivers it.
    async fn finish(&self, ticket: &Ticket, requeue: bool) -> Result<(), QueueError> {
        let done = async {
            match requeue {
                false => ticket.acker.ack(BasicAckOptions::default()).await,
                true => {
                    let nack = BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    };
                    ticket.acker.nack(nack).await
                }
            }
        };
        let failed = match tokio::time::timeout(SETTLE_TIMEOUT, done).await {
            Ok(Ok(true)) => return Ok(()),
            Ok(Ok(false)) => stale(),
            Ok(Err(e)) => QueueError::Broker(e),
            Err(_) => QueueError::TimedOut {
                what: "settle a delivery",
                after: SETTLE_TIMEOUT,
            },
        };
        self.abandon(ticket).await;
        Err(failed)
    }

    /// Closes the delivery's channel (the broker requeues what it held); if even that hangs,
    /// the whole consuming connection.
    async fn abandon(&self, ticket: &Ticket) {
        if !ticket.channel.status().connected() {
            return;
        }
        let close = ticket.channel.close(200, "a settle failed".into());
        match tokio::time::timeout(CHANNEL_CLOSE_TIMEOUT, close).await {
            Ok(_) if !ticket.channel.status().connected() => {}
            _ => {
                tracing::warn!(
                    "A delivery's channel did not close; closing the consuming connection."
                );
                self.links.drop_consuming().await;
            }
        }
    }

    /// Ready and consumer counts of the work queue, the retry and dead totals (AMQP only).
    async fn amqp_depths(&self) -> Result<QueueDepths, QueueError> {
        let ch = self.links.consuming().await?.channel;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declare = |name: String| ch.queue_declare(name.into(), passive, FieldTable::default());
        let work = declare(self.links.names.work.clone()).await?;
        let retrying = self.retry_depths().await?.iter().map(|(_, n)| n).sum();
        let dead = declare(self.links.names.dead()).await?;
        Ok(QueueDepths {
            consumers: u64::from(work.consumer_count()),
            ready: u64::from(work.message_count()),
            unacked: None,
            retrying,
            dead: u64::from(dead.message_count()),
        })
    }

    /// Messages waiting in each retry tier, as (delay in seconds, messages), shortest first.
    pub async fn retry_depths(&self) -> Result<Vec<(u64, u64)>, QueueError> {
        let ch = self.links.consuming().await?.channel;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let mut depths = Vec::new();
        for tier in RETRY_TIERS_SECS {
            let name = self.links.names.retry(tier);
            let declared = ch
                .queue_declare(name.into(), passive, FieldTable::default())
                .await?;
            depths.push((tier, u64::from(declared.message_count())));
        }
        Ok(depths)
    }

    /// The work queue's unacked messages from the management API; `None` when it is unreachable.
    async fn unacked(&self) -> Option<u64> {
        let management = self.management.as_ref()?;
        match management.unacked(&self.links.names.work).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!(error = %e, "Unacked count unknown.");
                None
            }
        }
    }
}

fn stale() -> QueueError {
    QueueError::Broker(io_error(std::io::ErrorKind::NotConnected, STALE))
}

impl Queue for RabbitMqQueue {
    type Consumer = RabbitMqConsumer;

    async fn publish_raw(&self, body: Vec<u8>) -> Result<(), QueueError> {
        check_size(&body)?;
        self.publish_to(&self.links.names.work, &body, 1, None)
            .await
    }

    async fn consume(&self, prefetch: u16, tag: &str) -> Result<RabbitMqConsumer, QueueError> {
        let channel = self.links.consuming().await?.conn.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let inner = channel
            .basic_consume(
                self.links.names.work.clone().into(),
                tag.to_string().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(RabbitMqConsumer {
            channel,
            inner,
            tag: tag.to_string(),
        })
    }

    async fn settle(&self, delivery: &Delivery, how: Settle<'_>) -> Result<(), QueueError> {
        let Acker::RabbitMq(ticket) = &delivery.acker else {
            unreachable!("a RabbitMQ delivery carries a RabbitMQ ticket");
        };
        // A delivery of a dead connection was requeued by the broker: republishing it as a
        // retry or dead letter would duplicate the job.
        if !ticket.acker.usable() {
            return Err(stale());
        }
        let published = match how {
            Settle::Ack => Ok(()),
            Settle::Retry(after) => {
                let queue = self.links.names.retry(retry_tier(after));
                self.publish_to(&queue, &delivery.body, delivery.attempt + 1, None)
                    .await
            }
            Settle::Dead(reason) => {
                let dead = self.links.names.dead();
                self.publish_to(&dead, &delivery.body, delivery.attempt, Some(reason))
                    .await
            }
            Settle::Requeue => return self.finish(ticket, true).await,
        };
        if let Err(e) = published {
            // Give it back now rather than hold it until the consumer closes; if even the nack
            // fails, `finish` closes the channel.
            if let Err(nack) = self.finish(ticket, true).await {
                tracing::debug!(error = %nack, "Giving back a delivery failed; its channel was closed.");
            }
            return Err(e);
        }
        // Only after the retry or dead letter was confirmed.
        self.finish(ticket, false).await
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let amqp = tokio::time::timeout(DEPTHS_TIMEOUT, self.amqp_depths());
        let (amqp, unacked) = tokio::join!(amqp, self.unacked());
        let depths = amqp.map_err(|_| QueueError::TimedOut {
            what: "report queue depths",
            after: DEPTHS_TIMEOUT,
        })??;
        Ok(QueueDepths { unacked, ..depths })
    }

    async fn dead_jobs(&self) -> Result<Vec<DeadJob>, QueueError> {
        let mut sweep = self.dead_sweep().await?;
        let mut seen = Vec::new();
        while let Some(taken) = sweep.take_next().await? {
            seen.push(taken.dead().clone());
            sweep.leave(taken);
        }
        sweep.close().await;
        Ok(seen)
    }

    /// One message at a time: take it (unacked), republish it and wait for the confirm, then ack
    /// it. A crash in between leaves it in the dead-letter queue as well (a duplicate, which the
    /// store's upsert absorbs), never in neither. Messages not picked stay unacked on the sweep's
    /// channel until the end, so each is seen once, and return to the dead-letter queue in order.
    async fn requeue_dead(
        &self,
        pick: &(dyn Fn(&DeadJob) -> bool + Sync),
    ) -> Result<usize, QueueError> {
        let mut sweep = self.dead_sweep().await?;
        let mut moved = 0;
        let result = async {
            while let Some(taken) = sweep.take_next().await? {
                if pick(taken.dead()) {
                    sweep.republish(&taken).await?;
                    sweep.ack(taken).await?;
                    moved += 1;
                } else {
                    sweep.leave(taken);
                }
            }
            Ok(())
        }
        .await;
        sweep.close().await;
        result.map(|()| moved)
    }

    async fn purge_all(&self) -> Result<(), QueueError> {
        let mut names = vec![self.links.names.work.clone(), self.links.names.dead()];
        names.extend(RETRY_TIERS_SECS.iter().map(|t| self.links.names.retry(*t)));
        let channel = self.links.consuming().await?.channel;
        for name in names {
            channel
                .queue_purge(name.into(), QueuePurgeOptions::default())
                .await?;
        }
        Ok(())
    }

    async fn close(&self) {
        self.links.close().await;
    }
}

/// A consumer on its own channel.
pub struct RabbitMqConsumer {
    channel: Channel,
    inner: lapin::Consumer,
    tag: String,
}

impl Consumer for RabbitMqConsumer {
    /// An error means the channel or connection died: the consumer then ends, and consuming
    /// again (on a reopened connection) is the caller's move.
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        match self.inner.next().await? {
            Ok(d) => Some(Ok(Delivery {
                attempt: attempt_of(&d.properties),
                redelivered: d.redelivered,
                body: d.data,
                acker: Acker::RabbitMq(Ticket {
                    acker: d.acker,
                    channel: self.channel.clone(),
                }),
            })),
            Err(e) => Some(Err(e.into())),
        }
    }

    async fn cancel(&mut self) {
        if !self.channel.status().connected() {
            return;
        }
        let cancel = self
            .channel
            .basic_cancel(self.tag.clone().into(), BasicCancelOptions::default());
        match tokio::time::timeout(CHANNEL_CLOSE_TIMEOUT, cancel).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "basic.cancel failed."),
            Err(_) => tracing::debug!("basic.cancel timed out."),
        }
    }

    async fn close(self) {
        if self.channel.status().connected() {
            let close = self.channel.close(200, "stopping".into());
            let _ = tokio::time::timeout(CHANNEL_CLOSE_TIMEOUT, close).await;
        }
    }
}

/// The smallest tier at least `after` long (the largest tier caps it).
pub fn retry_tier(after: Duration) -> u64 {
    let secs = after.as_secs_f64().ceil() as u64;
    RETRY_TIERS_SECS
        .iter()
        .copied()
        .find(|t| *t >= secs)
        .unwrap_or(RETRY_TIERS_SECS[RETRY_TIERS_SECS.len() - 1])
}

fn attempt_of(props: &BasicProperties) -> u32 {
    let value = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(&ShortString::from("x-attempt")).cloned());
    match value {
        Some(AMQPValue::LongLongInt(n)) => n.clamp(1, u32::MAX as i64) as u32,
        Some(AMQPValue::LongInt(n)) => n.max(1) as u32,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_go_to_the_smallest_tier_that_covers_the_delay() {
        assert_eq!(retry_tier(Duration::ZERO), 1);
        assert_eq!(retry_tier(Duration::from_millis(1500)), 5);
        assert_eq!(retry_tier(Duration::from_secs(60)), 60);
        assert_eq!(retry_tier(Duration::from_secs(3600)), 900);
    }
}

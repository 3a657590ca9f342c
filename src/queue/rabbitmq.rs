//! The RabbitMQ queue (lapin). Topology, declared idempotently by whoever connects first:
//! - `<work>`: durable, persistent messages, message TTL 12 h; expired jobs dead-letter to `<work>.dead`;
//! - `<work>.retry.<n>s`: one durable queue per delay tier with a per-queue TTL that dead-letters back
//!   into `<work>` (per-queue, not per-message, TTLs: mixed TTLs in one queue block each other);
//! - `<work>.dead`: parked jobs, with the reason in the `x-reason` header.
//!
//! Every publish waits for the broker's confirm. The attempt number travels in `x-attempt`.
//!
//! Reconnects are ours, not lapin's auto-recovery (see `link`): every operation takes the live
//! connection and confirm-mode publisher, reopened first if they died. A consumer whose connection
//! dies yields an error and ends; the worker backs off and consumes again, which reconnects.
//! Deliveries unsettled on the dead connection were requeued by the broker, so settling them fails
//! instead of republishing a retry or dead letter that would duplicate the job.

mod link;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use super::{Acker, Consumer, DeadJob, Delivery, Queue, QueueDepths, QueueError, Settle};

use link::{Link, Links, io_error};

/// Delay tiers for retries; a retry goes to the smallest tier at least as long as its delay.
pub const RETRY_TIERS_SECS: [u64; 6] = [1, 5, 15, 60, 300, 900];
/// Jobs older than this in the work queue are dead-lettered rather than dropped.
const WORK_TTL_MS: i32 = 12 * 60 * 60 * 1000;

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

/// A connection to RabbitMQ with a confirm-mode channel for publishing, reopened when it dies.
/// Clones share the connection.
#[derive(Clone)]
pub struct RabbitMqQueue {
    links: Arc<Links>,
}

impl RabbitMqQueue {
    /// Connects and declares the topology.
    pub async fn connect(url: &str, names: QueueNames) -> Result<RabbitMqQueue, QueueError> {
        let links = Links::connect(url, names).await?;
        Ok(RabbitMqQueue {
            links: Arc::new(links),
        })
    }

    pub fn names(&self) -> &QueueNames {
        &self.links.names
    }

    async fn link(&self) -> Result<Link, QueueError> {
        self.links.current().await
    }

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
        let confirm = self
            .link()
            .await?
            .publisher
            .basic_publish("".into(), queue.to_string().into(), options, body, props)
            .await?
            .await?;
        if !confirm.is_ack() || confirm.take_message().is_some() {
            return Err(QueueError::NotConfirmed(queue.to_string()));
        }
        Ok(())
    }

    /// Takes every dead message, hands each to `keep`, and returns (kept, left) bodies: kept ones
    /// are acked (removed), left ones are returned to the dead queue in their order.
    async fn sweep_dead(
        &self,
        keep: &(dyn Fn(&DeadJob) -> bool + Sync),
    ) -> Result<Vec<DeadJob>, QueueError> {
        let ch = self.link().await?.conn.create_channel().await?;
        let mut taken = Vec::new();
        let mut left = Vec::new();
        while let Some(msg) = ch
            .basic_get(self.links.names.dead().into(), BasicGetOptions::default())
            .await?
        {
            let delivery = msg.delivery;
            let dead = DeadJob {
                reason: header_string(&delivery.properties, "x-reason").unwrap_or_default(),
                attempt: attempt_of(&delivery.properties),
                body: delivery.data.clone(),
            };
            if keep(&dead) {
                taken.push((dead, delivery.acker));
            } else {
                left.push(delivery.acker);
            }
        }
        let mut out = Vec::new();
        for (dead, acker) in taken {
            acker.ack(BasicAckOptions::default()).await?;
            out.push(dead);
        }
        // Closing the channel returns the un-acked (left) messages to the dead queue.
        drop(left);
        let _ = ch.close(200, "done".into()).await;
        Ok(out)
    }
}

impl Queue for RabbitMqQueue {
    type Consumer = RabbitMqConsumer;

    async fn publish_raw(&self, body: Vec<u8>) -> Result<(), QueueError> {
        self.publish_to(&self.links.names.work, &body, 1, None)
            .await
    }

    async fn consume(&self, prefetch: u16, tag: &str) -> Result<RabbitMqConsumer, QueueError> {
        let channel = self.link().await?.conn.create_channel().await?;
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
        let Acker::RabbitMq(acker) = &delivery.acker else {
            unreachable!("a RabbitMQ delivery carries a RabbitMQ acker");
        };
        // A delivery of a dead connection was requeued by the broker: republishing it as a
        // retry or dead letter would duplicate the job.
        let stale = || QueueError::Broker(io_error(std::io::ErrorKind::NotConnected, STALE));
        if !acker.usable() {
            return Err(stale());
        }
        match how {
            Settle::Ack => {}
            Settle::Retry(after) => {
                let queue = self.links.names.retry(retry_tier(after));
                self.publish_to(&queue, &delivery.body, delivery.attempt + 1, None)
                    .await?;
            }
            Settle::Dead(reason) => {
                let dead = self.links.names.dead();
                self.publish_to(&dead, &delivery.body, delivery.attempt, Some(reason))
                    .await?;
            }
            Settle::Requeue => {
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                return match acker.nack(requeue).await? {
                    true => Ok(()),
                    false => Err(stale()),
                };
            }
        }
        // Only after the retry or dead letter was confirmed.
        match acker.ack(BasicAckOptions::default()).await? {
            true => Ok(()),
            false => Err(stale()),
        }
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let ch = self.link().await?.conn.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let count = |q: lapin::Queue| u64::from(q.message_count());
        let work = ch
            .queue_declare(
                self.links.names.work.clone().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        let mut retrying = 0;
        for tier in RETRY_TIERS_SECS {
            let q = ch
                .queue_declare(
                    self.links.names.retry(tier).into(),
                    passive,
                    FieldTable::default(),
                )
                .await?;
            retrying += count(q);
        }
        let dead = ch
            .queue_declare(
                self.links.names.dead().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        let _ = ch.close(200, "done".into()).await;
        Ok(QueueDepths {
            consumers: u64::from(work.consumer_count()),
            ready: count(work),
            // The broker's queue.declare-ok does not report unacked messages.
            unacked: 0,
            retrying,
            dead: count(dead),
        })
    }

    async fn dead_jobs(&self) -> Result<Vec<DeadJob>, QueueError> {
        let seen = std::sync::Mutex::new(Vec::new());
        self.sweep_dead(&|d| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(d.clone());
            }
            false
        })
        .await?;
        Ok(seen.into_inner().unwrap_or_default())
    }

    async fn requeue_dead(
        &self,
        pick: &(dyn Fn(&DeadJob) -> bool + Sync),
    ) -> Result<usize, QueueError> {
        let taken = self.sweep_dead(pick).await?;
        for dead in &taken {
            self.publish_to(&self.links.names.work, &dead.body, 1, None)
                .await?;
        }
        Ok(taken.len())
    }

    async fn purge_all(&self) -> Result<(), QueueError> {
        let mut names = vec![self.links.names.work.clone(), self.links.names.dead()];
        names.extend(RETRY_TIERS_SECS.iter().map(|t| self.links.names.retry(*t)));
        let publisher = self.link().await?.publisher;
        for name in names {
            publisher
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
                acker: Acker::RabbitMq(d.acker),
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

fn header_string(props: &BasicProperties, name: &str) -> Option<String> {
    match props
        .headers()
        .as_ref()?
        .inner()
        .get(&ShortString::from(name))?
    {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
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

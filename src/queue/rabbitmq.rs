//! The RabbitMQ queue (lapin). Topology, declared idempotently by whoever connects first:
//! - `<work>`: durable, persistent messages, message TTL 12 h; expired jobs dead-letter to `<work>.dead`;
//! - `<work>.retry.<n>s`: one durable queue per delay tier with a per-queue TTL that dead-letters back
//!   into `<work>` (per-queue, not per-message, TTLs: mixed TTLs in one queue block each other);
//! - `<work>.dead`: parked jobs, with the reason in the `x-reason` header.
//!
//! Every publish waits for the broker's confirm. The attempt number travels in `x-attempt`.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::{Acker, Consumer, DeadJob, Delivery, Queue, QueueDepths, QueueError, Settle};

use crate::store::redact;

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

/// A connection to RabbitMQ with a confirm-mode channel for publishing.
#[derive(Clone)]
pub struct RabbitMqQueue {
    conn: std::sync::Arc<Connection>,
    publisher: Channel,
    names: QueueNames,
}

impl RabbitMqQueue {
    /// Connects and declares the topology.
    pub async fn connect(url: &str, names: QueueNames) -> Result<RabbitMqQueue, QueueError> {
        let props = ConnectionProperties::default()
            .with_connection_name("scrapefarm".into())
            .enable_auto_recover();
        let conn = Connection::connect(url, props)
            .await
            .map_err(|source| QueueError::Connect {
                host: redact(url),
                source,
            })?;
        let publisher = conn.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let queue = RabbitMqQueue {
            conn: std::sync::Arc::new(conn),
            publisher,
            names,
        };
        queue.declare().await?;
        Ok(queue)
    }

    pub fn names(&self) -> &QueueNames {
        &self.names
    }

    async fn declare(&self) -> Result<(), QueueError> {
        let ch = &self.publisher;
        let mut work = FieldTable::default();
        work.insert("x-message-ttl".into(), AMQPValue::LongInt(WORK_TTL_MS));
        work.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        work.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(self.names.dead().into()),
        );
        ch.queue_declare(
            self.names.work.clone().into(),
            QueueDeclareOptions::durable(),
            work,
        )
        .await?;
        ch.queue_declare(
            self.names.dead().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
        for tier in RETRY_TIERS_SECS {
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongInt(tier as i32 * 1000),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.names.work.clone().into()),
            );
            ch.queue_declare(
                self.names.retry(tier).into(),
                QueueDeclareOptions::durable(),
                args,
            )
            .await?;
        }
        Ok(())
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
        let ch = self.conn.create_channel().await?;
        let mut taken = Vec::new();
        let mut left = Vec::new();
        while let Some(msg) = ch
            .basic_get(self.names.dead().into(), BasicGetOptions::default())
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
        self.publish_to(&self.names.work, &body, 1, None).await
    }

    async fn consume(&self, prefetch: u16, tag: &str) -> Result<RabbitMqConsumer, QueueError> {
        let channel = self.conn.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let inner = channel
            .basic_consume(
                self.names.work.clone().into(),
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
        match how {
            Settle::Ack => {}
            Settle::Retry(after) => {
                let queue = self.names.retry(retry_tier(after));
                self.publish_to(&queue, &delivery.body, delivery.attempt + 1, None)
                    .await?;
            }
            Settle::Dead(reason) => {
                let dead = self.names.dead();
                self.publish_to(&dead, &delivery.body, delivery.attempt, Some(reason))
                    .await?;
            }
            Settle::Requeue => {
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                acker.nack(requeue).await?;
                return Ok(());
            }
        }
        // Only after the retry or dead letter was confirmed.
        acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let ch = self.conn.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let count = |q: lapin::Queue| u64::from(q.message_count());
        let work = ch
            .queue_declare(
                self.names.work.clone().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        let mut retrying = 0;
        for tier in RETRY_TIERS_SECS {
            let q = ch
                .queue_declare(
                    self.names.retry(tier).into(),
                    passive,
                    FieldTable::default(),
                )
                .await?;
            retrying += count(q);
        }
        let dead = ch
            .queue_declare(self.names.dead().into(), passive, FieldTable::default())
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
            self.publish_to(&self.names.work, &dead.body, 1, None)
                .await?;
        }
        Ok(taken.len())
    }

    async fn purge_all(&self) -> Result<(), QueueError> {
        let mut names = vec![self.names.work.clone(), self.names.dead()];
        names.extend(RETRY_TIERS_SECS.iter().map(|t| self.names.retry(*t)));
        for name in names {
            self.publisher
                .queue_purge(name.into(), QueuePurgeOptions::default())
                .await?;
        }
        Ok(())
    }

    async fn close(&self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// A consumer on its own channel.
pub struct RabbitMqConsumer {
    channel: Channel,
    inner: lapin::Consumer,
    tag: String,
}

impl Consumer for RabbitMqConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        loop {
            match self.inner.next().await? {
                Ok(d) => {
                    return Some(Ok(Delivery {
                        attempt: attempt_of(&d.properties),
                        body: d.data,
                        acker: Acker::RabbitMq(d.acker),
                    }));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Consumer error; waiting for the connection to recover.");
                    if let Err(e) = self.channel.wait_for_recovery(e).await {
                        return Some(Err(e.into()));
                    }
                }
            }
        }
    }

    async fn cancel(&mut self) {
        let cancel = self
            .channel
            .basic_cancel(self.tag.clone().into(), BasicCancelOptions::default());
        if let Err(e) = cancel.await {
            tracing::debug!(error = %e, "basic.cancel failed.");
        }
    }

    async fn close(self) {
        let _ = self.channel.close(200, "stopping".into()).await;
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

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
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::{Delivery, QueueDepths, QueueError};
use crate::domain::Job;
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

    /// Publishes a job (attempt 1) to the work queue and waits for the confirm.
    pub async fn publish(&self, job: &Job) -> Result<(), QueueError> {
        self.publish_to(&self.names.work, &job.to_body(), 1, None)
            .await
    }

    /// Publishes an arbitrary body to the work queue (other producers, tests of malformed input).
    pub async fn publish_raw(&self, body: &[u8]) -> Result<(), QueueError> {
        self.publish_to(&self.names.work, body, 1, None).await
    }

    /// Publishes a retry of `delivery` with the next attempt number to the delay tier for `after`.
    /// The caller acks the original only after this returns.
    pub async fn publish_retry(
        &self,
        delivery: &Delivery,
        after: Duration,
    ) -> Result<(), QueueError> {
        let tier = retry_tier(after);
        let queue = self.names.retry(tier);
        self.publish_to(&queue, &delivery.body, delivery.attempt + 1, None)
            .await
    }

    /// Parks a body in the dead-letter queue with its reason.
    pub async fn publish_dead(
        &self,
        body: &[u8],
        attempt: u32,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.publish_to(&self.names.dead(), body, attempt, Some(reason))
            .await
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

    /// Starts consuming the work queue with `prefetch` unacknowledged deliveries at most.
    pub async fn consume(&self, prefetch: u16, tag: &str) -> Result<Consumer, QueueError> {
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
        Ok(Consumer {
            channel,
            inner,
            tag: tag.to_string(),
        })
    }

    /// Message counts of the work, retry and dead queues.
    pub async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let ch = self.conn.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
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
            retrying += u64::from(q.message_count());
        }
        let dead = ch
            .queue_declare(self.names.dead().into(), passive, FieldTable::default())
            .await?;
        let _ = ch.close(200, "done".into()).await;
        Ok(QueueDepths {
            ready: u64::from(work.message_count()),
            consumers: u64::from(work.consumer_count()),
            retrying,
            dead: u64::from(dead.message_count()),
        })
    }

    /// Takes every message out of the dead-letter queue (for `dlq` commands and tests).
    pub async fn drain_dead(&self) -> Result<Vec<DeadJob>, QueueError> {
        let ch = self.conn.create_channel().await?;
        let mut out = Vec::new();
        while let Some(msg) = ch
            .basic_get(
                self.names.dead().into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await?
        {
            let delivery = msg.delivery;
            out.push(DeadJob {
                reason: header_string(&delivery.properties, "x-reason").unwrap_or_default(),
                attempt: attempt_of(&delivery.properties),
                body: delivery.data.clone(),
            });
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(out)
    }

    /// Empties every queue of this farm (tests and `purge`).
    pub async fn purge_all(&self) -> Result<(), QueueError> {
        let mut names = vec![self.names.work.clone(), self.names.dead()];
        names.extend(RETRY_TIERS_SECS.iter().map(|t| self.names.retry(*t)));
        for name in names {
            self.publisher
                .queue_purge(name.into(), QueuePurgeOptions::default())
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// A dead-lettered job as read back from the dead queue.
#[derive(Debug, Clone)]
pub struct DeadJob {
    pub body: Vec<u8>,
    pub reason: String,
    pub attempt: u32,
}

/// A consumer on its own channel.
pub struct Consumer {
    channel: Channel,
    inner: lapin::Consumer,
    tag: String,
}

impl Consumer {
    /// The next delivery; `None` when the consumer was cancelled or the connection is gone.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        loop {
            match self.inner.next().await? {
                Ok(d) => {
                    return Some(Ok(Delivery {
                        attempt: attempt_of(&d.properties),
                        body: d.data,
                        acker: Acker(d.acker),
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

    /// Asks the broker to stop sending deliveries; those already received can still be acked.
    pub async fn cancel(&self) {
        let cancel = self.channel.basic_cancel(
            self.tag.clone().into(),
            lapin::options::BasicCancelOptions::default(),
        );
        if let Err(e) = cancel.await {
            tracing::debug!(error = %e, "basic.cancel failed.");
        }
    }

    /// Closes the channel; unacked deliveries return to the queue.
    pub async fn close(self) {
        let _ = self.channel.close(200, "stopping".into()).await;
    }
}

/// Acknowledges one delivery.
pub struct Acker(lapin::Acker);

impl Acker {
    pub async fn ack(&self) -> Result<(), QueueError> {
        self.0.ack(BasicAckOptions::default()).await?;
        Ok(())
    }
    /// Returns the delivery to the queue (store down: let the broker keep it).
    pub async fn requeue(&self) -> Result<(), QueueError> {
        self.0
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await?;
        Ok(())
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

//! The RabbitMQ connections behind a [`super::RabbitMqQueue`], reopened when they die. Two of
//! them: one publishes (with its confirm-mode channel), the other consumes, settles and reads.
//! Under flow control (a memory or disk alarm) the broker blocks every connection that
//! publishes, reads included: on one shared connection a blocked retry publish would also stop
//! acks and deliveries, and the acks are what frees the broker. Every operation asks
//! [`Links::publisher`] or [`Links::consuming`] for the live one. lapin's own auto-recovery is
//! off, so that exactly one connection (ours) ever consumes: a recovering connection in the
//! background would replay consumers nobody reads from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::RwLock;

use super::{QueueNames, RETRY_TIERS_SECS, WORK_TTL_MS};
use crate::queue::QueueError;
use crate::store::redact;

/// How long opening a connection (TCP, handshake, topology) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long closing a connection may take (a blocked or dead one never answers).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection and its channel: confirm-mode for publishing, a plain one (used for
/// reads) on the consuming side.
#[derive(Clone)]
pub(super) struct Link {
    pub conn: Arc<Connection>,
    pub channel: Channel,
}

/// What a connection is for; it names the connection in the broker's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Publish,
    Consume,
}

impl Link {
    /// Connects and opens the channel; the publishing side also declares the topology.
    async fn open(url: &str, names: &QueueNames, role: Role) -> Result<Link, QueueError> {
        let connect_err = |source| QueueError::Connect {
            host: redact(url),
            source,
        };
        let name = match role {
            Role::Publish => "scrapefarm-publish",
            Role::Consume => "scrapefarm-consume",
        };
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props))
            .await
            .map_err(|_| connect_err(io_error(std::io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(connect_err)?;
        let channel = open_channel(&conn, role).await?;
        if role == Role::Publish {
            declare(&channel, names).await?;
        }
        Ok(Link {
            conn: Arc::new(conn),
            channel,
        })
    }

    fn live(&self) -> bool {
        self.conn.status().connected() && self.channel.status().connected()
    }
}

/// The current [`Link`]s of a queue, shared by its clones.
pub(super) struct Links {
    url: String,
    pub names: QueueNames,
    publishing: RwLock<Link>,
    consuming: RwLock<Link>,
    /// Set by [`Links::close`]: no reconnect after that.
    closed: AtomicBool,
}

impl Links {
    /// Connects both sides (an error if the broker cannot be reached now).
    pub async fn connect(url: &str, names: QueueNames) -> Result<Links, QueueError> {
        let publishing = Link::open(url, &names, Role::Publish).await?;
        let consuming = Link::open(url, &names, Role::Consume).await?;
        Ok(Links {
            url: url.to_string(),
            names,
            publishing: RwLock::new(publishing),
            consuming: RwLock::new(consuming),
            closed: AtomicBool::new(false),
        })
    }

    /// The live publishing link, reopened first if it died. Its channel is in confirm mode.
    pub async fn publisher(&self) -> Result<Link, QueueError> {
        self.current(&self.publishing, Role::Publish).await
    }

    /// The live consuming connection, reopened first if it died: consumers, settles and reads.
    pub async fn consuming(&self) -> Result<Link, QueueError> {
        self.current(&self.consuming, Role::Consume).await
    }

    async fn current(&self, slot: &RwLock<Link>, role: Role) -> Result<Link, QueueError> {
        {
            let link = slot.read().await;
            if link.live() {
                return Ok(link.clone());
            }
        }
        if self.closed.load(Ordering::SeqCst) {
            let closed = io_error(std::io::ErrorKind::NotConnected, "the queue was closed");
            return Err(QueueError::Broker(closed));
        }
        let mut link = slot.write().await;
        if !link.conn.status().connected() {
            tracing::warn!(host = %redact(&self.url), ?role, "RabbitMQ connection lost; reconnecting.");
            *link = Link::open(&self.url, &self.names, role).await?;
            tracing::info!(?role, "Reconnected to RabbitMQ.");
        } else if !link.channel.status().connected() {
            link.channel = open_channel(&link.conn, role).await?;
        }
        Ok(link.clone())
    }

    /// Closes the consuming connection now: the last resort when a delivery's channel cannot
    /// be closed, so that the broker redelivers what it held. The next operation reconnects.
    pub async fn drop_consuming(&self) {
        let conn = self.consuming.read().await.conn.clone();
        let close = conn.close(320, "a settle hung".into());
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }

    /// Closes both connections for good.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for slot in [&self.publishing, &self.consuming] {
            let conn = slot.read().await.conn.clone();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "bye".into())).await;
        }
    }
}

async fn open_channel(conn: &Connection, role: Role) -> Result<Channel, QueueError> {
    let channel = conn.create_channel().await?;
    if role == Role::Publish {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    Ok(channel)
}

/// Declares the queues of `names`, idempotently.
async fn declare(ch: &Channel, names: &QueueNames) -> Result<(), QueueError> {
    let declare = |name: String, args: FieldTable| {
        ch.queue_declare(name.into(), QueueDeclareOptions::durable(), args)
    };
    let mut work = FieldTable::default();
    work.insert("x-message-ttl".into(), AMQPValue::LongInt(WORK_TTL_MS));
    work.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    work.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(names.dead().into()),
    );
    declare(names.work.clone(), work).await?;
    declare(names.dead(), FieldTable::default()).await?;
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
            AMQPValue::LongString(names.work.clone().into()),
        );
        declare(names.retry(tier), args).await?;
    }
    Ok(())
}

/// A lapin I/O error, for failures that lapin itself does not report.
pub(super) fn io_error(kind: std::io::ErrorKind, what: &str) -> lapin::Error {
    lapin::Error::from(std::io::Error::new(kind, what.to_string()))
}

//! Fire-and-forget messages that outlive their node: in a cluster they
//! wait in the work-queue stream `<cluster>_outbox`, and every node pulls
//! from one shared durable consumer, so whichever node is alive delivers
//! them (through its registry: to a local agent, or over NATS to the node
//! that runs it). A message is acknowledged after the receiver handled it;
//! one not acknowledged (its deliverer died) comes back after `ACK_WAIT`.
//! The retry rules are the node outbox's (`outbox::dispatch::outcome`):
//! a busy, suspended or moving receiver is offered the message again
//! later without spending a try, a failure is retried with backoff, and
//! the `outbox.max_attempts`-th failed delivery (JetStream's delivery
//! count) makes it a dead letter of the node that tried last. While NATS is away, messages go to the node's own
//! outbox.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt as _;

use crate::messaging::MessageBus;
use crate::outbox::dispatch::{Outcome, outcome};
use crate::outbox::{Outbox, OutboxConfig, Queued, SharedOutbox};

/// How long a delivery may go unacknowledged before another node may
/// take the message (a delivery in progress says so every `PROGRESS`).
const ACK_WAIT: Duration = Duration::from_secs(10);
const PROGRESS: Duration = Duration::from_secs(3);
/// How long a message waits in hand for a receiver that cannot take it
/// now before it goes back to the stream (counted as a delivery).
const HOLD_LATER: Duration = Duration::from_secs(60);
/// How long a send waits for the stream to store its messages.
const STORE_WITHIN: Duration = Duration::from_secs(5);

pub struct ClusterOutbox {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    subject: String,
}

impl ClusterOutbox {
    pub fn new(client: async_nats::Client, cluster: &str) -> Self {
        ClusterOutbox {
            js: jetstream::new(client.clone()),
            client,
            stream: format!("{cluster}_outbox"),
            subject: format!("{cluster}.outbox"),
        }
    }

    async fn open(&self) -> Result<stream::Stream, String> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot open the outbox stream {}: {e}", self.stream))
    }
}

#[async_trait::async_trait]
impl SharedOutbox for ClusterOutbox {
    fn available(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn enqueue(&self, items: Vec<Queued>) -> Result<(), String> {
        let store = async {
            self.open().await?;
            let mut acks = Vec::with_capacity(items.len());
            for item in &items {
                let bytes = serde_json::to_vec(item).map_err(|e| e.to_string())?;
                let mut headers = async_nats::HeaderMap::new();
                let to = match &item.to {
                    crate::outbox::Target::Agent(a) => format!("agent:{a}"),
                    crate::outbox::Target::Capability(c) => format!("capability:{c}"),
                };
                let id = format!("{}:{to}", item.message.id);
                headers.insert("Nats-Msg-Id", id.as_str());
                acks.push(
                    self.js
                        .publish_with_headers(self.subject.clone(), headers, bytes.into())
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            for ack in acks {
                ack.await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        match tokio::time::timeout(STORE_WITHIN, store).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "the cluster's outbox did not take the messages: {e}"
            )),
            Err(_) => Err("the cluster's outbox did not take the messages within 5 s".into()),
        }
    }
}

/// Delivers from the shared outbox for as long as the node runs.
pub async fn deliver(
    outbox: Arc<ClusterOutbox>,
    bus: Weak<dyn MessageBus>,
    local: Option<Arc<Outbox>>,
    settings: OutboxConfig,
) {
    let mut problem: Option<String> = None;
    loop {
        let outcome = follow(&outbox, &bus, local.as_ref(), &settings).await;
        let now = outcome.err().unwrap_or_else(|| "the stream ended".into());
        if problem.as_deref() != Some(now.as_str()) {
            tracing::warn!(problem = %now, "cannot deliver from the cluster's outbox; retrying");
        }
        problem = Some(now);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(
    outbox: &ClusterOutbox,
    bus: &Weak<dyn MessageBus>,
    local: Option<&Arc<Outbox>>,
    settings: &OutboxConfig,
) -> Result<(), String> {
    let stream = outbox.open().await?;
    let consumer = stream
        .get_or_create_consumer(
            "deliver",
            consumer::pull::Config {
                durable_name: Some("deliver".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: i64::try_from(settings.concurrency).unwrap_or(64),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("cannot open the outbox consumer: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("cannot read the outbox: {e}"))?;
    let timeout = Duration::from_millis(settings.delivery_timeout_ms);
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| format!("reading the outbox: {e}"))?;
        let Some(bus) = bus.upgrade() else {
            return Ok(());
        };
        let (local, settings) = (local.cloned(), settings.clone());
        tokio::spawn(async move {
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1);
            let Ok(mut queued) = serde_json::from_slice::<Queued>(&message.payload) else {
                tracing::warn!("an unreadable message in the cluster's outbox; dropped");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            };
            // A receiver that cannot take it now (busy, suspended, moving
            // to another node) is asked again from here, the message kept
            // in hand (and its lease renewed), so only failures count as
            // deliveries; after `HOLD_LATER` it goes back to the stream.
            let held = tokio::time::Instant::now();
            let mut progress = tokio::time::interval(PROGRESS);
            progress.tick().await;
            let result = loop {
                let request = bus.request(
                    queued.from_agent.as_deref(),
                    queued.to.address(),
                    queued.message.clone(),
                    timeout,
                );
                tokio::pin!(request);
                let result = loop {
                    tokio::select! {
                        result = &mut request => break result.map(|_| ()),
                        _ = progress.tick() => { let _ = message.ack_with(AckKind::Progress).await; }
                    }
                };
                match outcome(&result) {
                    Outcome::Later(ms) if held.elapsed() < HOLD_LATER => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    _ => break result,
                }
            };
            let attempts = u32::try_from(delivered).unwrap_or(u32::MAX);
            let ack = match outcome(&result) {
                Outcome::Done => AckKind::Ack,
                Outcome::Later(ms) => AckKind::Nak(Some(Duration::from_millis(ms))),
                Outcome::Failed(why) if attempts < settings.max_attempts => {
                    tracing::debug!(message = %queued.message.id, attempts, error = %why, "a fire-and-forget message failed; retrying");
                    AckKind::Nak(Some(Duration::from_millis(settings.backoff_ms(attempts))))
                }
                Outcome::Failed(why) | Outcome::Hopeless(why) => {
                    queued.attempts = attempts;
                    queued.last_error = Some(why);
                    tracing::warn!(message = %queued.message.id, attempts, "a fire-and-forget message failed every try; it is a dead letter of this node now (`caxton dead-letters list`)");
                    if let Some(local) = &local {
                        let _ = local.bury(queued);
                    }
                    AckKind::Term
                }
            };
            let _ = message.ack_with(ack).await;
        });
    }
    Ok(())
}

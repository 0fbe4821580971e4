//! Where a message runs: each agent is one task that takes envelopes from
//! its bounded mailbox, one at a time, in order, and hands them to its one
//! live instance (its [`Runner`]). A request that finds a WASM agent idle
//! (nothing queued, the runner free) runs its message itself, on its own
//! task, without the hop to the actor's task and back. A failure discards
//! the instance; the next message gets a fresh one, so one bad message
//! never takes the agent (or the server) down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::record::AgentKind;
use super::registry::{AgentHandle, lock};
use crate::messaging::{AclMessage, Delivered, DeliveryError, acl};
use crate::runtime::wit_convert::{from_wit_performative, to_wit_message};
use crate::runtime::{AgentContext, AgentInstance, AgentProgram, ExecutionFailure};
use crate::trace::SpanKind;

pub enum Envelope {
    /// A message to handle; the reply (or failure) goes back on `reply`.
    Deliver {
        message: Box<AclMessage>,
        enqueued: Instant,
        reply: oneshot::Sender<Result<Delivered, DeliveryError>>,
        /// Stream the reply's text here as the agent's model writes it.
        stream: Option<crate::llm::TextSink>,
    },
    /// Liveness check: makes sure an instance exists, without calling the
    /// agent's handler; answers how long that took.
    Ping {
        reply: oneshot::Sender<Result<Duration, ExecutionFailure>>,
    },
}

/// What runs an agent's messages: its program, its context and its live
/// instance. Behind a fair lock shared by the agent's actor and the
/// requests that find the agent idle, which run their message themselves
/// (see `Registry::deliver_to`): the actor's mailbox keeps the order and
/// the overload limit, the lock that one message runs at a time.
pub struct Runner {
    pub program: Arc<AgentProgram>,
    pub context: Arc<AgentContext>,
    /// An instance made during deployment, reused for the first message.
    pub live: Option<AgentInstance>,
    /// Set when the actor stopped: nothing runs here any more.
    pub stopped: bool,
}

/// A [`Runner`] behind its lock.
pub type SharedRunner = Arc<tokio::sync::Mutex<Runner>>;

pub struct Actor {
    pub handle: Arc<AgentHandle>,
    pub runner: SharedRunner,
}

impl Actor {
    pub async fn run(self, mut mailbox: mpsc::Receiver<Envelope>) {
        let handle = self.handle.clone();
        // Retiring (a newer version took the name): nothing new gets in,
        // and what is queued is handled before the actor stops.
        let mut draining = false;
        loop {
            let envelope = tokio::select! {
                biased;
                () = handle.stopped(), if !draining => {
                    if handle.is_retiring() {
                        draining = true;
                        mailbox.close();
                        continue;
                    }
                    break;
                }
                next = mailbox.recv() => match next {
                    Some(envelope) => envelope,
                    None => break,
                },
            };
            match envelope {
                Envelope::Deliver {
                    message,
                    enqueued,
                    mut reply,
                    stream,
                } => {
                    // The runner may be busy with a message a request runs
                    // itself: waiting for it is part of waiting in line.
                    let mut runner = self.runner.lock().await;
                    // The sender stopped waiting (timed out, disconnected)
                    // while this waited: nobody would read it.
                    if reply.is_closed() {
                        self.handle
                            .log
                            .push("host", "message skipped: its sender stopped waiting");
                        continue;
                    }
                    let queued = enqueued.elapsed();
                    let result = runner
                        .run_message(&self.handle, *message, queued, stream, reply.closed())
                        .await;
                    if let Some(answer) = result {
                        // The sender may have given up waiting; that is fine.
                        let _ = reply.send(answer);
                    }
                }
                Envelope::Ping { reply } => {
                    let mut runner = self.runner.lock().await;
                    let started = Instant::now();
                    let result = runner
                        .ensure_instance(&self.handle)
                        .await
                        .map(|_| started.elapsed());
                    if let Err(failure) = &result {
                        let _ = runner.failed(&self.handle, failure.clone());
                    }
                    let _ = reply.send(result);
                }
            }
        }
        // Nothing new gets in; what was queued is told why it will not run.
        mailbox.close();
        while let Ok(envelope) = mailbox.try_recv() {
            match envelope {
                Envelope::Deliver { reply, .. } => {
                    let _ = reply.send(Err(DeliveryError::Stopped(self.handle.name.clone())));
                }
                Envelope::Ping { reply } => {
                    let _ = reply.send(Err(ExecutionFailure::Instantiate(format!(
                        "agent `{}` was stopped",
                        self.handle.name
                    ))));
                }
            }
        }
        // Frees the instance's pool slot now, not when the last handle
        // goes; a request running its message inline finishes it first.
        let mut runner = self.runner.lock().await;
        runner.stopped = true;
        runner.live = None;
        tracing::debug!(agent = %self.handle.name, "actor stopped");
    }
}

impl Runner {
    /// Runs one message on the instance: its trace span, the call, the
    /// stats, a failure's discarded instance. `None` when the run was
    /// abandoned because `sender_gone` resolved first: a config agent's
    /// run is model calls whose results only the sender wants (its durable
    /// state is in its key-value store), so it stops; a WASM agent's
    /// instance holds state a run abandoned half-way would corrupt, so it
    /// finishes whatever happens.
    pub async fn run_message(
        &mut self,
        handle: &AgentHandle,
        message: AclMessage,
        queued: Duration,
        stream: Option<crate::llm::TextSink>,
        sender_gone: impl std::future::Future<Output = ()>,
    ) -> Option<Result<Delivered, DeliveryError>> {
        let started = Instant::now();
        let span = self.context.trace.start(
            &handle.name,
            message.conversation_id.as_deref().unwrap_or(&message.id),
            message.trace_parent,
        );
        let hop = SpanKind::Message {
            sender: message.sender.clone(),
            performative: message.performative.as_str().to_string(),
            queued_ms: crate::trace::millis(queued),
        };
        let context = span.context.clone();
        // Log lines of the agent's run carry the trace of the request that
        // caused it.
        let log_span = tracing::error_span!(
            "message",
            agent = %handle.name,
            trace = %format_args!("{:032x}", context.trace_id),
        );
        let abandonable = handle.record().kind == AgentKind::Config;
        let delivery = self
            .deliver(handle, message, stream, context)
            .instrument(log_span);
        let result = if abandonable {
            tokio::select! {
                result = delivery => Some(result),
                () = sender_gone => None,
            }
        } else {
            Some(delivery.await)
        };
        let Some(result) = result else {
            self.live = None;
            handle
                .log
                .push("host", "message abandoned: its sender stopped waiting");
            self.context
                .trace
                .finish(span, hop, Some("the sender stopped waiting"));
            tracing::info!(agent = %handle.name, "run stopped: its sender stopped waiting");
            return None;
        };
        let executed = started.elapsed();
        crate::observe::MESSAGE_SECONDS.observe(executed);
        let error = match &result {
            Ok(Some(reply)) if reply.performative == acl::Performative::Failure => {
                Some(reply.content.clone())
            }
            Ok(_) => None,
            Err(failure) => Some(failure.to_string()),
        };
        self.context.trace.finish(span, hop, error.as_deref());
        Some(match result {
            Ok(reply) => {
                lock(&handle.stats)
                    .record_success(u64::try_from(executed.as_micros()).unwrap_or(u64::MAX));
                Ok(Delivered {
                    agent_id: handle.id.clone(),
                    agent_name: handle.name.clone(),
                    reply,
                    queued,
                    executed,
                })
            }
            Err(failure) => Err(self.failed(handle, failure)),
        })
    }

    async fn ensure_instance(
        &mut self,
        handle: &AgentHandle,
    ) -> Result<&mut AgentInstance, ExecutionFailure> {
        if self.live.is_none() {
            let record = handle.record();
            let instance = self
                .program
                .instantiate(self.context.clone(), record.limits, &record.config_json)
                .await?;
            lock(&handle.stats).instances_created += 1;
            self.live = Some(instance);
        }
        self.live
            .as_mut()
            .ok_or_else(|| ExecutionFailure::Instantiate("instance vanished".into()))
    }

    async fn deliver(
        &mut self,
        handle: &AgentHandle,
        message: AclMessage,
        stream: Option<crate::llm::TextSink>,
        span: crate::trace::SpanContext,
    ) -> Result<Option<AclMessage>, ExecutionFailure> {
        // What the reply needs of the request; the rest goes to the guest.
        let sender = message.sender.clone();
        let conversation_id = message.conversation_id.clone();
        let in_reply_to = message
            .reply_with
            .clone()
            .unwrap_or_else(|| message.id.clone());
        let instance = self.ensure_instance(handle).await?;
        let reply = instance
            .handle(to_wit_message(message), stream, Some(span))
            .await?;
        Ok(reply.map(|r| AclMessage {
            id: acl::new_message_id(),
            performative: from_wit_performative(r.performative),
            sender: handle.name.clone(),
            receiver: Some(sender),
            capability: None,
            content: r.content,
            content_type: r
                .content_type
                .unwrap_or_else(|| acl::TEXT_PLAIN.to_string()),
            conversation_id,
            reply_with: None,
            in_reply_to: Some(in_reply_to),
            trace_parent: None,
        }))
    }

    /// Records a failure, discards the instance and builds the error.
    fn failed(&mut self, handle: &AgentHandle, failure: ExecutionFailure) -> DeliveryError {
        self.live = None;
        lock(&handle.stats).record_failure(&failure);
        handle
            .log
            .push("host", &format!("message failed: {failure}"));
        tracing::warn!(agent = %handle.name, code = failure.code(), "{failure}");
        DeliveryError::AgentFailed {
            agent: handle.name.clone(),
            failure,
        }
    }
}

//! Where a message runs: each agent is one task that takes envelopes from
//! its bounded mailbox, one at a time, in order, and hands them to its one
//! live instance. A failure discards the instance; the next message gets a
//! fresh one, so one bad message never takes the agent (or the server) down.

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

pub struct Actor {
    pub handle: Arc<AgentHandle>,
    pub program: Arc<AgentProgram>,
    pub context: Arc<AgentContext>,
    /// An instance made during deployment, reused for the first message.
    pub live: Option<AgentInstance>,
}

impl Actor {
    pub async fn run(mut self, mut mailbox: mpsc::Receiver<Envelope>) {
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
                    // The sender stopped waiting (timed out, disconnected)
                    // while this waited in the mailbox: nobody would read it.
                    if reply.is_closed() {
                        self.handle
                            .log
                            .push("host", "message skipped: its sender stopped waiting");
                        continue;
                    }
                    let queued = enqueued.elapsed();
                    let started = Instant::now();
                    let span = self.context.trace.start(
                        &self.handle.name,
                        message.conversation_id.as_deref().unwrap_or(&message.id),
                        message.trace_parent,
                    );
                    let hop = SpanKind::Message {
                        sender: message.sender.clone(),
                        performative: message.performative.as_str().to_string(),
                        queued_ms: crate::trace::millis(queued),
                    };
                    let context = span.context.clone();
                    // Log lines of the agent's run carry the trace of the
                    // request that caused it.
                    let log_span = tracing::error_span!(
                        "message",
                        agent = %self.handle.name,
                        trace = %format_args!("{:032x}", context.trace_id),
                    );
                    // A config agent's run is model calls whose results
                    // only the sender wants (its durable state is in its
                    // key-value store): when the sender goes, the run
                    // stops. A WASM agent's instance holds state a run
                    // abandoned half-way would corrupt, so it finishes.
                    let abandonable = self.handle.record().kind == AgentKind::Config;
                    let delivery = self.deliver(*message, stream, context).instrument(log_span);
                    let result = if abandonable {
                        tokio::select! {
                            result = delivery => Some(result),
                            () = reply.closed() => None,
                        }
                    } else {
                        Some(delivery.await)
                    };
                    let Some(result) = result else {
                        self.live = None;
                        self.handle
                            .log
                            .push("host", "message abandoned: its sender stopped waiting");
                        self.context
                            .trace
                            .finish(span, hop, Some("the sender stopped waiting"));
                        tracing::info!(agent = %self.handle.name, "run stopped: its sender stopped waiting");
                        continue;
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
                    let answer = match result {
                        Ok(reply) => {
                            lock(&self.handle.stats).record_success(
                                u64::try_from(executed.as_micros()).unwrap_or(u64::MAX),
                            );
                            Ok(Delivered {
                                agent_id: self.handle.id.clone(),
                                agent_name: self.handle.name.clone(),
                                reply,
                                queued,
                                executed,
                            })
                        }
                        Err(failure) => Err(self.failed(failure)),
                    };
                    // The sender may have given up waiting; that is fine.
                    let _ = reply.send(answer);
                }
                Envelope::Ping { reply } => {
                    let started = Instant::now();
                    let result = self.ensure_instance().await.map(|_| started.elapsed());
                    if let Err(failure) = &result {
                        let _ = self.failed(failure.clone());
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
        // Frees the instance's pool slot now, not when the last handle goes.
        self.live = None;
        tracing::debug!(agent = %self.handle.name, "actor stopped");
    }

    async fn ensure_instance(&mut self) -> Result<&mut AgentInstance, ExecutionFailure> {
        if self.live.is_none() {
            let record = self.handle.record();
            let instance = self
                .program
                .instantiate(self.context.clone(), record.limits, &record.config_json)
                .await?;
            lock(&self.handle.stats).instances_created += 1;
            self.live = Some(instance);
        }
        self.live
            .as_mut()
            .ok_or_else(|| ExecutionFailure::Instantiate("instance vanished".into()))
    }

    async fn deliver(
        &mut self,
        message: AclMessage,
        stream: Option<crate::llm::TextSink>,
        span: crate::trace::SpanContext,
    ) -> Result<Option<AclMessage>, ExecutionFailure> {
        let request = message.clone();
        let instance = self.ensure_instance().await?;
        let reply = instance
            .handle(to_wit_message(message), stream, Some(span))
            .await?;
        Ok(reply.map(|r| AclMessage {
            id: acl::new_message_id(),
            performative: from_wit_performative(r.performative),
            sender: self.handle.name.clone(),
            receiver: Some(request.sender),
            capability: None,
            content: r.content,
            content_type: r
                .content_type
                .unwrap_or_else(|| acl::TEXT_PLAIN.to_string()),
            conversation_id: request.conversation_id,
            reply_with: None,
            in_reply_to: Some(request.reply_with.unwrap_or(request.id)),
            trace_parent: None,
        }))
    }

    /// Records a failure, discards the instance and builds the error.
    fn failed(&mut self, failure: ExecutionFailure) -> DeliveryError {
        self.live = None;
        lock(&self.handle.stats).record_failure(&failure);
        self.handle
            .log
            .push("host", &format!("message failed: {failure}"));
        tracing::warn!(agent = %self.handle.name, code = failure.code(), "{failure}");
        DeliveryError::AgentFailed {
            agent: self.handle.name.clone(),
            failure,
        }
    }
}

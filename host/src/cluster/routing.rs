//! Messages across nodes. Each node subscribes, for every agent it runs,
//! to `<cluster>.agent.<name>` and, for every capability one of them takes,
//! to `<cluster>.cap.<capability>`, both in one queue group (so an agent
//! running on several nodes gets each message once). A node that does not
//! run the agent a message is for sends it as a NATS request there: the
//! body is the ACL message, the `traceparent` and the conversation travel
//! as headers, and the reply is the same result the local path returns,
//! errors included. The answering node first says it took the message
//! (an empty message with its name in a header), so the asking node
//! knows whom to watch: if that node drops out of the membership before
//! answering, the request fails then, not at its deadline. NATS's "no
//! responders", a node that died mid-request and a request that outlives
//! its deadline all become [`DeliveryError::Unreachable`], which says to
//! retry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::membership::{LocalAgent, NodeView};
use crate::agents::Registry;
use crate::messaging::{AclMessage, Address, Delivered, DeliveryError, Elsewhere};

/// The queue group every node's subscriptions join.
const QUEUE_GROUP: &str = "caxton";
/// Header carrying the message's conversation (for `nats sub` readers and
/// logs; the body has it too).
const CONVERSATION_HEADER: &str = "Caxton-Conversation";
/// Header of the first answer: the node that took the message.
const ACCEPTED_HEADER: &str = "Caxton-Accepted-By";
/// How often a waiting request checks that its node is still alive.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// How long a node has to say it took a message (it says so before doing
/// anything else): past it, the node that got it is taken to have died
/// with it.
const ACCEPT_WITHIN: Duration = Duration::from_secs(3);
/// Longest wait the wire allows, as for local requests.
const MAX_TIMEOUT_MS: u64 = 600_000;
/// How much longer than the request's own timeout the asking node waits:
/// the answering node's own timeout error should arrive first.
const GRACE: Duration = Duration::from_secs(1);
/// Most requests from other nodes handled at once; past it, the next is
/// told this node is busy (a retryable answer) instead of queuing without
/// bound.
const MAX_IN_FLIGHT: usize = 4_096;
/// How often the subscriptions follow this node's agents.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// One message, as it crosses to another node.
#[derive(Serialize, Deserialize)]
struct WireRequest {
    message: AclMessage,
    timeout_ms: u64,
    /// The id of the sending agent on the asking node, if one sent it.
    #[serde(default)]
    from_agent: Option<String>,
}

/// The answer, as it crosses back.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireReply {
    Delivered {
        agent_id: String,
        agent_name: String,
        reply: Option<Box<AclMessage>>,
        queued_us: u64,
        executed_us: u64,
    },
    Failed(DeliveryError),
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<Result<Delivered, DeliveryError>> for WireReply {
    fn from(result: Result<Delivered, DeliveryError>) -> Self {
        match result {
            Ok(d) => WireReply::Delivered {
                agent_id: d.agent_id,
                agent_name: d.agent_name,
                reply: d.reply.map(Box::new),
                queued_us: micros(d.queued),
                executed_us: micros(d.executed),
            },
            Err(e) => WireReply::Failed(e),
        }
    }
}

impl From<WireReply> for Result<Delivered, DeliveryError> {
    fn from(reply: WireReply) -> Self {
        match reply {
            WireReply::Delivered {
                agent_id,
                agent_name,
                reply,
                queued_us,
                executed_us,
            } => Ok(Delivered {
                agent_id,
                agent_name,
                reply: reply.map(|r| *r),
                queued: Duration::from_micros(queued_us),
                executed: Duration::from_micros(executed_us),
            }),
            WireReply::Failed(e) => Err(e),
        }
    }
}

/// A name as one subject token: as it is when NATS allows it and a reader
/// would recognise it (letters, digits, `-`, `_`), otherwise `%` and its
/// bytes in hex (`%` is in no name, so the two never collide).
fn token(name: &str) -> String {
    super::kv::escaped_token(name, '%')
}

fn agent_subject(cluster: &str, name: &str) -> String {
    format!("{cluster}.agent.{}", token(name))
}

fn capability_subject(cluster: &str, capability: &str) -> String {
    format!("{cluster}.cap.{}", token(capability))
}

/// This node's way to the agents of the others.
pub struct Routes {
    client: async_nats::Client,
    cluster: String,
    node: String,
    view: Arc<Mutex<NodeView>>,
}

impl Routes {
    pub fn new(
        client: async_nats::Client,
        cluster: String,
        node: String,
        view: Arc<Mutex<NodeView>>,
    ) -> Self {
        Routes {
            client,
            cluster,
            node,
            view,
        }
    }

    /// The agent's name when `name_or_id` is an id another node listed.
    fn name_of(&self, name_or_id: &str) -> String {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.nodes
            .values()
            .find_map(|n| n.ids.get(name_or_id))
            .cloned()
            .unwrap_or_else(|| name_or_id.to_string())
    }

    /// Names from the other nodes' records, `pick`ed from each, in name
    /// order, once each.
    fn gather(&self, pick: impl Fn(&super::NodeRecord) -> Option<&Vec<String>>) -> Vec<String> {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let names: BTreeSet<String> = view
            .nodes
            .values()
            .filter(|n| n.node != self.node)
            .filter_map(pick)
            .flatten()
            .cloned()
            .collect();
        names.into_iter().collect()
    }
}

#[async_trait::async_trait]
impl Elsewhere for Routes {
    fn knows(&self, to: &Address) -> bool {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let mut others = view.nodes.values().filter(|n| n.node != self.node);
        match to {
            // A record that lists only some of its node's agents may hold
            // this one: NATS will say whether anyone takes it.
            Address::Agent(name) => {
                others.any(|n| !n.complete() || n.agents.contains(name) || n.ids.contains_key(name))
            }
            Address::Capability(c) => others.any(|n| n.capabilities.contains_key(c)),
        }
    }

    fn recipients(&self, capability: &str) -> Vec<String> {
        self.gather(|n| n.capabilities.get(capability))
    }

    fn subscribers(&self, topic: &str) -> Vec<String> {
        self.gather(|n| n.topics.get(topic))
    }

    async fn request(
        &self,
        from_agent: Option<&str>,
        to: &Address,
        message: AclMessage,
        timeout: Duration,
    ) -> Result<Delivered, DeliveryError> {
        let (subject, agent) = match to {
            Address::Agent(name_or_id) => {
                let name = self.name_of(name_or_id);
                (agent_subject(&self.cluster, &name), name)
            }
            Address::Capability(c) => (
                capability_subject(&self.cluster, c),
                format!("with capability {c}"),
            ),
        };
        let unreachable = |reason: String| DeliveryError::Unreachable {
            agent: agent.clone(),
            reason,
        };
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unreachable("this node is not connected to NATS".into()));
        }
        let mut headers = async_nats::HeaderMap::new();
        if let Some(parent) = message.trace_parent {
            headers.insert(crate::trace::TRACEPARENT_HEADER, parent.header().as_str());
        }
        if let Some(conversation) = &message.conversation_id {
            headers.insert(CONVERSATION_HEADER, conversation.as_str());
        }
        let body = WireRequest {
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            from_agent: from_agent.map(str::to_string),
            message,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| DeliveryError::NotQueued(format!("cannot encode the message: {e}")))?;
        self.exchange(subject, headers, body, timeout + GRACE)
            .await
            .map_err(|reason| match reason {
                Failure::TooLarge => DeliveryError::NotQueued(
                    "the message is larger than the NATS server's max_payload".into(),
                ),
                Failure::Unreachable(reason) => unreachable(reason),
            })?
    }
}

/// Why a request to another node got no answer.
enum Failure {
    TooLarge,
    Unreachable(String),
}

impl Routes {
    fn alive(&self, node: &str) -> bool {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.problem.is_some() || view.nodes.contains_key(node)
    }

    /// Sends `body` to `subject` and waits for the answer: first who took
    /// it, then the result, watching that the node which took it stays
    /// alive meanwhile.
    async fn exchange(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        body: Vec<u8>,
        wait: Duration,
    ) -> Result<Result<Delivered, DeliveryError>, Failure> {
        let other = |e: &dyn std::fmt::Display| Failure::Unreachable(e.to_string());
        let inbox = self.client.new_inbox();
        let mut answers = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| other(&e))?;
        self.client
            .publish_with_reply_and_headers(subject, inbox, headers, body.into())
            .await
            .map_err(|e| match e.kind() {
                async_nats::client::PublishErrorKind::MaxPayloadExceeded => Failure::TooLarge,
                _ => other(&e),
            })?;
        let sent = tokio::time::Instant::now();
        let deadline = sent + wait;
        let mut taken_by: Option<String> = None;
        let mut watch = tokio::time::interval(WATCH_EVERY);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                answer = answers.next() => {
                    let Some(answer) = answer else {
                        break Err(Failure::Unreachable("the connection to NATS closed".into()));
                    };
                    if answer.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                        break Err(Failure::Unreachable(
                            "no node takes its messages now (it is moving, or its node just stopped)".into(),
                        ));
                    }
                    if let Some(node) = answer.headers.as_ref().and_then(|h| h.get(ACCEPTED_HEADER)) {
                        taken_by = Some(node.to_string());
                        continue;
                    }
                    break match serde_json::from_slice::<WireReply>(&answer.payload) {
                        Ok(reply) => Ok(reply.into()),
                        Err(e) => Err(Failure::Unreachable(format!(
                            "the other node's answer could not be read ({e}); do all nodes run the same Caxton version?"
                        ))),
                    };
                }
                _ = watch.tick() => {
                    match &taken_by {
                        Some(node) if !self.alive(node) => {
                            break Err(Failure::Unreachable(format!(
                                "node {node} took the message and left the cluster before answering"
                            )));
                        }
                        None if sent.elapsed() >= ACCEPT_WITHIN => {
                            break Err(Failure::Unreachable(format!(
                                "no node said it took the message within {} ms (the one that got it may have stopped)",
                                ACCEPT_WITHIN.as_millis()
                            )));
                        }
                        _ => {}
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    break Err(Failure::Unreachable(format!(
                        "no answer within {} ms (its node may have stopped)",
                        wait.as_millis()
                    )));
                }
            }
        };
        let _ = answers.unsubscribe().await;
        outcome
    }
}

/// Keeps this node's subscriptions in step with the agents it runs, and
/// hands what arrives on them to the registry. Runs until aborted;
/// aborting drops every subscription (NATS forgets them at once).
/// `subscribed` is kept to the names of the agents whose subject this
/// node listens on: membership announces only those, so no node is told
/// of an agent before a message to it can be taken.
pub async fn serve(
    client: async_nats::Client,
    cluster: String,
    node: String,
    registry: Arc<Registry>,
    agents: super::AgentLister,
    subscribed: Arc<Mutex<BTreeSet<String>>>,
) {
    let mut subscriptions: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let local = agents();
        let wanted = wanted_subjects(&cluster, &local);
        let wanted_names: Vec<(String, String)> = local
            .iter()
            .map(|a| (agent_subject(&cluster, &a.name), a.name.clone()))
            .collect();
        subscriptions.retain(|subject, task| {
            let keep = wanted.contains_key(subject) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (subject, to) in wanted {
            if subscriptions.contains_key(&subject) {
                continue;
            }
            match client
                .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
                .await
            {
                Ok(subscriber) => {
                    let task = tokio::spawn(answer_all(
                        subscriber,
                        node.clone(),
                        to,
                        registry.clone(),
                        client.clone(),
                        in_flight.clone(),
                    ));
                    subscriptions.insert(subject, task);
                }
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "cannot subscribe; other nodes cannot reach this agent until it works")
                }
            }
        }
        let names: BTreeSet<String> = wanted_names
            .into_iter()
            .filter(|(subject, _)| subscriptions.contains_key(subject))
            .map(|(_, name)| name)
            .collect();
        *subscribed.lock().unwrap_or_else(|p| p.into_inner()) = names;
    }
}

/// The subjects this node answers on, and where each one's messages go.
fn wanted_subjects(cluster: &str, agents: &[LocalAgent]) -> BTreeMap<String, Address> {
    let mut wanted = BTreeMap::new();
    for agent in agents {
        wanted.insert(
            agent_subject(cluster, &agent.name),
            Address::Agent(agent.name.clone()),
        );
        for capability in &agent.capabilities {
            wanted.insert(
                capability_subject(cluster, capability),
                Address::Capability(capability.clone()),
            );
        }
    }
    wanted
}

async fn answer_all(
    mut subscriber: async_nats::Subscriber,
    node: String,
    to: Address,
    registry: Arc<Registry>,
    client: async_nats::Client,
    in_flight: Arc<tokio::sync::Semaphore>,
) {
    while let Some(request) = subscriber.next().await {
        let Some(reply_to) = request.reply.clone() else {
            continue;
        };
        let answer = match in_flight.clone().try_acquire_owned() {
            Ok(permit) => {
                let mut accepted = async_nats::HeaderMap::new();
                accepted.insert(ACCEPTED_HEADER, node.as_str());
                let _ = client
                    .publish_with_headers(reply_to.clone(), accepted, Vec::new().into())
                    .await;
                let (to, registry, client) = (to.clone(), registry.clone(), client.clone());
                tokio::spawn(async move {
                    let reply = answer(&registry, to, &request).await;
                    publish(&client, reply_to, &reply).await;
                    drop(permit);
                });
                continue;
            }
            Err(_) => WireReply::Failed(DeliveryError::Unreachable {
                agent: label(&to),
                reason: format!("its node is handling {MAX_IN_FLIGHT} messages from other nodes"),
            }),
        };
        publish(&client, reply_to, &answer).await;
    }
}

fn label(to: &Address) -> String {
    match to {
        Address::Agent(name) => name.clone(),
        Address::Capability(c) => format!("with capability {c}"),
    }
}

async fn answer(registry: &Registry, to: Address, request: &async_nats::Message) -> WireReply {
    let mut wire: WireRequest = match serde_json::from_slice(&request.payload) {
        Ok(wire) => wire,
        Err(e) => {
            return WireReply::Failed(DeliveryError::NotQueued(format!(
                "another node sent a message this node cannot read ({e}); do all nodes run the same Caxton version?"
            )));
        }
    };
    wire.message.trace_parent = request
        .headers
        .as_ref()
        .and_then(|h| h.get(crate::trace::TRACEPARENT_HEADER))
        .and_then(|v| crate::trace::TraceParent::parse(v.as_str()));
    let timeout = Duration::from_millis(wire.timeout_ms.clamp(1, MAX_TIMEOUT_MS));
    registry
        .request_here(wire.from_agent.as_deref(), to, wire.message, timeout)
        .await
        .into()
}

async fn publish(client: &async_nats::Client, reply_to: async_nats::Subject, reply: &WireReply) {
    let bytes = match serde_json::to_vec(reply) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode an answer for another node");
            return;
        }
    };
    if let Err(e) = client.publish(reply_to, bytes.into()).await {
        tracing::debug!(error = %e, "cannot send an answer to another node");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_subject_tokens_that_never_collide() {
        assert_eq!(token("echo"), "echo");
        assert_eq!(token("my_agent-2"), "my_agent-2");
        // `.` would split the subject; `*` and `>` are wildcards.
        assert_eq!(token("a.b"), "%612e62");
        assert_eq!(token("x*"), "%782a");
        assert_eq!(token("a b>"), "%6120623e");
        assert_ne!(token("a.b"), token("a_b"));
        assert_eq!(agent_subject("caxton", "echo"), "caxton.agent.echo");
        assert_eq!(
            capability_subject("c1", "text.summarize"),
            "c1.cap.%746578742e73756d6d6172697a65"
        );
    }

    #[test]
    fn errors_cross_nodes_unchanged() {
        let failed: Result<Delivered, DeliveryError> = Err(DeliveryError::AgentFailed {
            agent: "echo".into(),
            failure: crate::messaging::ExecutionFailure::OutOfFuel { max_fuel: 7 },
        });
        let bytes = serde_json::to_vec(&WireReply::from(failed)).expect("encode");
        let back: Result<Delivered, DeliveryError> = serde_json::from_slice::<WireReply>(&bytes)
            .expect("decode")
            .into();
        let Err(DeliveryError::AgentFailed { agent, failure }) = back else {
            panic!("not the same error: {back:?}");
        };
        assert_eq!(agent, "echo");
        assert_eq!(failure.code(), "agent_out_of_fuel");
        let timeout = WireReply::Failed(DeliveryError::Timeout {
            agent: "slow".into(),
            timeout_ms: 5,
        });
        let text = serde_json::to_string(&timeout).expect("encode");
        assert!(text.contains("\"timeout\""), "{text}");
    }
}

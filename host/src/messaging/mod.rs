//! Messages between agents: the FIPA-ACL shape ([`acl`]) and the bus that
//! carries them ([`MessageBus`], implemented by the agent registry, which
//! routes by name, id or capability).

pub mod acl;
pub mod elsewhere;
pub mod failure;
pub mod fan_out;
pub mod names;

use std::time::Duration;

use thiserror::Error;

pub use acl::{AclMessage, Performative};
pub use elsewhere::Elsewhere;
pub use failure::ExecutionFailure;

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An agent name or id.
    Agent(String),
    /// Any agent declaring this capability.
    Capability(String),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Agent(a) => write!(f, "agent `{a}`"),
            Address::Capability(c) => write!(f, "capability `{c}`"),
        }
    }
}

/// Why a message did not get an answer. Serialisable: in a cluster the
/// node that ran the agent sends it back to the node that asked.
#[derive(Debug, Clone, Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum DeliveryError {
    #[error("no agent named `{0}`; list agents with `caxton agents list`")]
    UnknownAgent(String),
    #[error("no running agent declares capability `{0}`; see `caxton agents list`")]
    UnknownCapability(String),
    #[error("agent `{0}` is suspended; resume it with `caxton agents resume {0}`")]
    Suspended(String),
    #[error("agent `{agent}` is busy: {capacity} messages are already waiting; retry later")]
    MailboxFull { agent: String, capacity: usize },
    #[error("agent `{0}` cannot send a request to itself: it would wait for its own reply")]
    SelfRequest(String),
    #[error(
        "agent `{agent}` did not answer within {timeout_ms} ms; to wait longer, send `timeout_ms` (up to 600000) with the message, or `caxton agents message --timeout SECONDS`"
    )]
    Timeout { agent: String, timeout_ms: u64 },
    #[error("agent `{0}` stopped before answering (it was removed or the server is shutting down)")]
    Stopped(String),
    #[error(
        "conversation `{0}` was cancelled; `caxton conversations show {0}` shows what happened before"
    )]
    Cancelled(String),
    #[error("the message was not queued: {0}")]
    NotQueued(String),
    #[error("agent `{agent}` failed: {failure}")]
    AgentFailed {
        agent: String,
        failure: ExecutionFailure,
    },
    /// The agent runs on another node of the cluster, which did not take
    /// or did not answer the message: worth retrying (the agent may be
    /// moving to a surviving node).
    #[error(
        "agent `{agent}` runs on another node of the cluster, which could not be reached: {reason}; retry in a few seconds (`caxton cluster status` shows the nodes)"
    )]
    Unreachable { agent: String, reason: String },
}

/// The reply to a delivered message, with where the time went.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub agent_id: String,
    pub agent_name: String,
    pub reply: Option<AclMessage>,
    /// Time spent waiting in the agent's mailbox.
    pub queued: Duration,
    /// Time spent in the agent (instantiation included when it happened).
    pub executed: Duration,
}

/// Carries messages to agents. Implemented by the agent registry; the
/// host imports and built-in tools hold it as `Arc<dyn MessageBus>`, so the
/// runtime knows nothing of how routing works.
#[async_trait::async_trait]
pub trait MessageBus: Send + Sync {
    /// Whether `to` names someone who can take a message now, without
    /// sending one (a fire-and-forget `send` reports a wrong address).
    fn check(&self, to: &Address) -> Result<(), DeliveryError>;

    /// The names of the running, not suspended agents declaring
    /// `capability`, in name order, without the agent whose id is
    /// `excluding` (a sender never receives its own broadcast).
    fn recipients(&self, capability: &str, excluding: Option<&str>) -> Vec<String>;

    /// Where the conversations of the messages carried are recorded.
    fn conversations(&self) -> &std::sync::Arc<crate::conversations::ConversationStore>;

    /// Delivers `message` to `to` and waits up to `timeout` for the reply.
    /// `from_agent` is the id of the sending agent, if an agent sent it.
    async fn request(
        &self,
        from_agent: Option<&str>,
        to: Address,
        message: AclMessage,
        timeout: Duration,
    ) -> Result<Delivered, DeliveryError>;

    /// Queues messages without waiting for replies: durable (written
    /// before this returns, all or none). A wrong address is reported now
    /// and queues nothing.
    async fn post_all(
        &self,
        from_agent: Option<&str>,
        messages: Vec<(Address, AclMessage)>,
    ) -> Result<usize, DeliveryError>;

    /// [`MessageBus::post_all`] for one message.
    async fn post(
        &self,
        from_agent: Option<&str>,
        to: Address,
        message: AclMessage,
    ) -> Result<(), DeliveryError> {
        self.post_all(from_agent, vec![(to, message)])
            .await
            .map(|_| ())
    }

    /// The names of the running, not suspended agents subscribed to
    /// `topic`, in name order, without the agent whose id is `excluding`.
    fn subscribers(&self, topic: &str, excluding: Option<&str>) -> Vec<String>;

    /// Subscribes the agent named (or with id) `agent` to `topic`, or ends
    /// that subscription, durably; answers the agent's topics.
    async fn subscribe(
        &self,
        agent: &str,
        topic: &str,
        subscribed: bool,
    ) -> Result<Vec<String>, SubscribeError>;

    /// The topics the agent named (or with id) `agent` subscribes to, in
    /// name order.
    fn subscriptions(&self, agent: &str) -> Vec<String>;
}

/// Why a subscription did not change.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// A bad topic name, or one topic too many; the text says which.
    #[error("{0}")]
    Invalid(String),
    #[error("no agent `{0}`")]
    UnknownAgent(String),
    #[error("cannot store the subscription: {0}")]
    Storage(String),
}

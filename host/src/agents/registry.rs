//! Where a message is routed: running agents by name, by id and by
//! capability. The registry is the [`MessageBus`] every sender uses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::actor::{Envelope, SharedRunner};
use super::exchange::Exchange;
use super::record::AgentRecord;
use super::run_to_end::{RunToEnd, Work};
use super::stats::AgentStats;
use crate::conversations::ConversationStore;
use crate::messaging::{
    AclMessage, Address, Delivered, DeliveryError, Elsewhere, MessageBus, SubscribeError,
};
use crate::outbox::{Outbox, Queued, Target};
use crate::runtime::guest_log::AgentLog;

/// What an operator sees of an agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Ready for messages.
    Running,
    /// Its last `failure_threshold` messages all failed; it still receives
    /// messages and returns to `running` on the next success.
    Failed,
    /// Suspended by an operator: messages are refused until resumed.
    Suspended,
}

/// A running agent as the rest of the server sees it.
pub struct AgentHandle {
    pub id: String,
    pub name: String,
    pub record: Mutex<AgentRecord>,
    pub stats: Mutex<AgentStats>,
    pub log: Arc<AgentLog>,
    mailbox: mpsc::Sender<Envelope>,
    mailbox_capacity: usize,
    /// A WASM agent's runner, for requests that find it idle to run their
    /// message themselves (see [`Registry::deliver_to`]); `None` for the
    /// agents whose messages always go through the actor.
    runner: Option<SharedRunner>,
    /// Set by `stop` and `retire`: no request runs a message inline any
    /// more, they go to the mailbox, which tells them what happened.
    stopping: std::sync::atomic::AtomicBool,
    /// Requests waiting for the runner (they count against the mailbox's
    /// capacity, see `run_here`).
    waiting: std::sync::atomic::AtomicUsize,
    failure_threshold: u32,
    /// Tells the actor to stop: it finishes the message in hand, answers
    /// the queued ones with an error (or, when retiring, handles them),
    /// and drops its instance.
    stop: tokio::sync::Notify,
    /// Set by [`AgentHandle::retire`]: a newer version has taken the name.
    retiring: std::sync::atomic::AtomicBool,
}

impl AgentHandle {
    pub fn new(
        record: AgentRecord,
        log: Arc<AgentLog>,
        mailbox: mpsc::Sender<Envelope>,
        mailbox_capacity: usize,
        failure_threshold: u32,
    ) -> Self {
        AgentHandle {
            id: record.id.clone(),
            name: record.name.clone(),
            record: Mutex::new(record),
            stats: Mutex::new(AgentStats::default()),
            log,
            mailbox,
            mailbox_capacity,
            runner: None,
            stopping: std::sync::atomic::AtomicBool::new(false),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            failure_threshold,
            stop: tokio::sync::Notify::new(),
            retiring: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The runner requests may run this agent's messages on.
    pub fn with_runner(mut self, runner: Option<SharedRunner>) -> Self {
        self.runner = runner;
        self
    }

    /// The runner, unless this agent's messages go through its actor (not
    /// a WASM agent, stopping, or retiring).
    fn inline_runner(&self) -> Option<&SharedRunner> {
        self.runner.as_ref().filter(|_| !self.is_stopping())
    }

    /// Whether `stop` or `retire` was called.
    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Asks the actor to stop once it has handled every message already
    /// queued for it (a reload: the new version takes the new messages,
    /// none of the old ones is failed).
    pub fn retire(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        self.retiring
            .store(true, std::sync::atomic::Ordering::Release);
        self.stop.notify_one();
    }

    /// Whether [`AgentHandle::retire`] was called.
    pub fn is_retiring(&self) -> bool {
        self.retiring.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Asks the actor to stop (removal, reload, shutdown).
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        // `notify_one` keeps the permit if the actor is busy with a message.
        self.stop.notify_one();
    }

    /// Resolves when [`AgentHandle::stop`] was called.
    pub async fn stopped(&self) {
        self.stop.notified().await;
    }

    pub fn record(&self) -> AgentRecord {
        lock(&self.record).clone()
    }

    pub fn stats(&self) -> AgentStats {
        lock(&self.stats).clone()
    }

    pub fn status(&self) -> AgentStatus {
        if lock(&self.record).suspended {
            AgentStatus::Suspended
        } else if lock(&self.stats).consecutive_failures >= self.failure_threshold {
            AgentStatus::Failed
        } else {
            AgentStatus::Running
        }
    }

    pub fn capabilities(&self) -> Vec<String> {
        lock(&self.record).capabilities.clone()
    }

    /// Messages waiting right now: in the mailbox, or for the runner.
    pub fn queued(&self) -> usize {
        self.queued_in_mailbox() + self.waiting.load(std::sync::atomic::Ordering::Acquire)
    }

    fn queued_in_mailbox(&self) -> usize {
        self.mailbox_capacity - self.mailbox.capacity()
    }

    /// Puts an envelope in the mailbox without waiting.
    pub fn post(&self, envelope: Envelope) -> Result<(), DeliveryError> {
        self.try_post(envelope).map_err(|(error, _)| error)
    }

    /// [`AgentHandle::post`], giving the envelope back when it was refused.
    fn try_post(&self, envelope: Envelope) -> Result<(), (DeliveryError, Envelope)> {
        self.mailbox.try_send(envelope).map_err(|e| match e {
            mpsc::error::TrySendError::Full(envelope) => (
                DeliveryError::MailboxFull {
                    agent: self.name.clone(),
                    capacity: self.mailbox_capacity,
                },
                envelope,
            ),
            mpsc::error::TrySendError::Closed(envelope) => {
                (DeliveryError::Stopped(self.name.clone()), envelope)
            }
        })
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it:
/// the data here are counters and records that stay consistent per field.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct Registry {
    /// Keyed by name, so listings come out in name order.
    agents: RwLock<BTreeMap<String, Arc<AgentHandle>>>,
    /// Every delivery is recorded in its conversation.
    conversations: Arc<ConversationStore>,
    /// Where fire-and-forget messages wait; without one they are sent
    /// from memory (tests of routing alone).
    outbox: std::sync::OnceLock<Arc<Outbox>>,
    /// Who subscribes to which topic.
    topics: super::topics::Topics,
    /// Where subscriptions are kept; without it (tests of routing alone)
    /// they cannot change.
    storage: Option<Arc<crate::storage::Storage>>,
    /// The agents of the other nodes, when this node is in a cluster.
    elsewhere: std::sync::OnceLock<Arc<dyn Elsewhere>>,
    /// The cluster's outbox, when this node is in one.
    shared_outbox: std::sync::OnceLock<Arc<dyn crate::outbox::SharedOutbox>>,
}

/// Where a message goes: an agent of this node, or another node.
enum Route {
    Here(Arc<AgentHandle>),
    Elsewhere(Arc<dyn Elsewhere>),
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry recording conversations under `settings`' caps.
    pub fn with_conversations(settings: crate::conversations::ConversationsConfig) -> Self {
        Registry {
            agents: RwLock::default(),
            conversations: Arc::new(ConversationStore::new(settings)),
            outbox: std::sync::OnceLock::new(),
            topics: super::topics::Topics::default(),
            storage: None,
            elsewhere: std::sync::OnceLock::new(),
            shared_outbox: std::sync::OnceLock::new(),
        }
    }

    /// Keeps fire-and-forget messages in the cluster's outbox from now on
    /// (while it is reachable), so any live node delivers them. Once only.
    pub fn share_outbox(&self, outbox: Arc<dyn crate::outbox::SharedOutbox>) {
        let _ = self.shared_outbox.set(outbox);
    }

    /// Routes what no agent of this node takes to the other nodes of its
    /// cluster. Once only.
    pub fn reach_elsewhere(&self, elsewhere: Arc<dyn Elsewhere>) {
        let _ = self.elsewhere.set(elsewhere);
    }

    /// Where a message to `to` goes: a local agent first, then another
    /// node that says it runs one (unless `here_only`).
    fn route(&self, to: &Address, here_only: bool) -> Result<Route, DeliveryError> {
        match self.resolve(to) {
            Ok(handle) => Ok(Route::Here(handle)),
            Err(error) => match self.elsewhere.get() {
                Some(elsewhere) if !here_only && elsewhere.knows(to) => {
                    Ok(Route::Elsewhere(elsewhere.clone()))
                }
                _ => Err(error),
            },
        }
    }

    /// Keeps topic subscriptions in `storage`.
    pub fn with_storage(mut self, storage: Arc<crate::storage::Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Subscribes an agent to a topic, or ends its subscription; stored,
    /// so it outlives reloads and restarts. Answers the agent's topics.
    pub async fn subscribe(
        &self,
        name_or_id: &str,
        topic: &str,
        subscribed: bool,
    ) -> Result<Vec<String>, SubscribeError> {
        super::topics::check_topic(topic).map_err(SubscribeError::Invalid)?;
        let handle = self
            .get(name_or_id)
            .ok_or_else(|| SubscribeError::UnknownAgent(name_or_id.to_string()))?;
        let current = self.topics.of_agent(&handle.name);
        let already = current.iter().any(|t| t == topic);
        if already == subscribed {
            // Nothing changes (a config agent's declared topics at every
            // reload, say): no write.
            return Ok(current);
        }
        if subscribed && current.len() >= super::topics::MAX_PER_AGENT {
            return Err(SubscribeError::Invalid(format!(
                "agent `{}` already subscribes to {} topics, the most one may",
                handle.name,
                super::topics::MAX_PER_AGENT
            )));
        }
        let storage = self.storage.clone().ok_or_else(|| {
            SubscribeError::Storage("this registry keeps no subscriptions".into())
        })?;
        let (t, name) = (topic.to_string(), handle.name.clone());
        tokio::task::spawn_blocking(move || super::topics::store(&storage, &t, &name, subscribed))
            .await
            .map_err(|e| SubscribeError::Storage(e.to_string()))?
            .map_err(|e| SubscribeError::Storage(e.to_string()))?;
        self.topics.set(topic, &handle.name, subscribed);
        handle.log.push(
            "host",
            &if subscribed {
                format!("subscribed to topic {topic}")
            } else {
                format!("unsubscribed from topic {topic}")
            },
        );
        Ok(self.topics.of_agent(&handle.name))
    }

    /// Topic subscriptions, by agent name.
    pub fn topics(&self) -> &super::topics::Topics {
        &self.topics
    }

    /// Makes fire-and-forget messages durable through `outbox`, and starts
    /// its delivery through this registry. Once only.
    pub fn use_outbox(self: &Arc<Self>, outbox: Arc<Outbox>) {
        if self.outbox.set(outbox.clone()).is_ok() {
            let bus: Arc<dyn MessageBus> = self.clone();
            outbox.start(Arc::downgrade(&bus));
        }
    }

    /// The outbox, once [`Registry::use_outbox`] set it.
    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.get()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<AgentHandle>>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<AgentHandle>>> {
        self.agents.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a running agent. A name or id already in use is refused, so a
    /// newcomer never displaces an agent that is running.
    pub fn insert(&self, handle: Arc<AgentHandle>) -> Result<(), Arc<AgentHandle>> {
        let mut agents = self.write();
        let taken = agents.contains_key(&handle.name)
            || agents.contains_key(&handle.id)
            || agents
                .values()
                .any(|h| h.id == handle.id || h.id == handle.name);
        if taken {
            return Err(handle);
        }
        agents.insert(handle.name.clone(), handle);
        Ok(())
    }

    /// Puts `next` in the place of `previous` in one step, and retires
    /// `previous` (see [`AgentHandle::retire`]). The newcomer's name and id
    /// may be `previous`'s, not another agent's.
    pub fn swap(
        &self,
        previous: &Arc<AgentHandle>,
        next: Arc<AgentHandle>,
    ) -> Result<(), Arc<AgentHandle>> {
        let mut agents = self.write();
        let taken = agents.iter().any(|(name, h)| {
            !Arc::ptr_eq(h, previous)
                && (*name == next.name || h.id == next.id || h.id == next.name || *name == next.id)
        });
        if taken {
            return Err(next);
        }
        if agents
            .get(&previous.name)
            .is_some_and(|h| Arc::ptr_eq(h, previous))
        {
            agents.remove(&previous.name);
        }
        agents.insert(next.name.clone(), next);
        drop(agents);
        previous.retire();
        Ok(())
    }

    /// Whether `name` is some running agent's name or id.
    pub fn is_taken(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Takes an agent out of routing; its actor handles what is queued
    /// for it, then stops (see [`AgentHandle::retire`]).
    pub fn retire(&self, name: &str) -> Option<Arc<AgentHandle>> {
        let removed = self.write().remove(name);
        if let Some(handle) = &removed {
            handle.retire();
        }
        removed
    }

    /// Takes an agent out of routing and stops its actor.
    pub fn remove(&self, name: &str) -> Option<Arc<AgentHandle>> {
        let removed = self.write().remove(name);
        if let Some(handle) = &removed {
            handle.stop();
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    pub fn all(&self) -> Vec<Arc<AgentHandle>> {
        self.read().values().cloned().collect()
    }

    /// Finds an agent by name, or by id.
    pub fn get(&self, name_or_id: &str) -> Option<Arc<AgentHandle>> {
        let agents = self.read();
        agents
            .get(name_or_id)
            .or_else(|| agents.values().find(|h| h.id == name_or_id))
            .cloned()
    }

    /// Finds the agent a message to `to` goes to. For a capability, the
    /// least busy non-suspended agent that declares it.
    pub fn resolve(&self, to: &Address) -> Result<Arc<AgentHandle>, DeliveryError> {
        match to {
            Address::Agent(name) => self
                .get(name)
                .ok_or_else(|| DeliveryError::UnknownAgent(name.clone())),
            Address::Capability(capability) => self
                .read()
                .values()
                .filter(|h| h.status() != AgentStatus::Suspended)
                .filter(|h| h.capabilities().iter().any(|c| c == capability))
                .min_by_key(|h| h.queued())
                .cloned()
                .ok_or_else(|| DeliveryError::UnknownCapability(capability.clone())),
        }
    }
}

impl Registry {
    /// [`MessageBus::request`] from an operator (no sending agent), with the
    /// reply's text streamed to `stream` as the agent's model writes it.
    pub async fn request_streaming(
        &self,
        to: Address,
        message: AclMessage,
        timeout: Duration,
        stream: crate::llm::TextSink,
    ) -> Result<Delivered, DeliveryError> {
        self.deliver(None, to, message, timeout, Some(stream), false)
            .await
    }

    /// [`MessageBus::request`] to this node's agents only: what another
    /// node of the cluster asks for (it already chose this node, and a
    /// message must never bounce between nodes).
    pub async fn request_here(
        &self,
        from_agent: Option<&str>,
        to: Address,
        message: AclMessage,
        timeout: Duration,
    ) -> Result<Delivered, DeliveryError> {
        self.deliver(from_agent, to, message, timeout, None, true)
            .await
    }

    /// Whether a message to `to` would find a receiver, here or on
    /// another node.
    pub fn check_route(&self, to: &Address) -> Result<(), DeliveryError> {
        self.route(to, false).map(|_| ())
    }

    async fn deliver(
        &self,
        from_agent: Option<&str>,
        to: Address,
        message: AclMessage,
        timeout: Duration,
        stream: Option<crate::llm::TextSink>,
        here_only: bool,
    ) -> Result<Delivered, DeliveryError> {
        let route = self.route(&to, here_only)?;
        let receiver = match (&route, &to) {
            (Route::Here(handle), _) => handle.name.clone(),
            (Route::Elsewhere(_), Address::Agent(name)) => name.clone(),
            (Route::Elsewhere(_), Address::Capability(capability)) => capability.clone(),
        };
        // Recorded once routed (a message to nobody is in no
        // conversation); dropped unfinished when the sender stops waiting.
        let mut exchange = Exchange::begin(
            &self.conversations,
            &message,
            from_agent.is_some(),
            &receiver,
            timeout,
        );
        let conversation_id = exchange.conversation_id().to_string();
        let delivery = async {
            match route {
                Route::Here(handle) => {
                    self.deliver_to(handle, from_agent, to, message, timeout, stream)
                        .await
                }
                // Another node's answer comes whole: its model's tokens
                // are not streamed across nodes.
                Route::Elsewhere(elsewhere) => {
                    elsewhere.request(from_agent, &to, message, timeout).await
                }
            }
        };
        let result = tokio::select! {
            result = delivery => result,
            () = exchange.cancelled() => Err(DeliveryError::Cancelled(conversation_id)),
        };
        exchange.finish(&result);
        result
    }

    async fn deliver_to(
        &self,
        mut handle: Arc<AgentHandle>,
        from_agent: Option<&str>,
        to: Address,
        message: AclMessage,
        timeout: Duration,
        stream: Option<crate::llm::TextSink>,
    ) -> Result<Delivered, DeliveryError> {
        if from_agent == Some(handle.id.as_str()) {
            return Err(DeliveryError::SelfRequest(handle.name.clone()));
        }
        if handle.status() == AgentStatus::Suspended {
            return Err(DeliveryError::Suspended(handle.name.clone()));
        }
        if from_agent.is_none()
            && !crate::messaging::fan_out::in_fan_out()
            && handle.queued_in_mailbox() == 0
            && let Some(runner) = handle.inline_runner()
        {
            let runner = runner.clone();
            return run_here(handle, runner, message, timeout, stream).await;
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let mut envelope = Envelope::Deliver {
            message: Box::new(message),
            enqueued: Instant::now(),
            reply: reply_tx,
            stream,
        };
        // A reload swaps the agent behind a name between the lookup and
        // the post: a message that finds the old version closed goes to
        // the new one rather than failing.
        let mut attempts = 0;
        loop {
            match handle.try_post(envelope) {
                Ok(()) => break,
                Err((DeliveryError::Stopped(name), returned)) if attempts < 3 => {
                    attempts += 1;
                    match self.resolve(&to) {
                        Ok(next) if handle.is_retiring() && !Arc::ptr_eq(&next, &handle) => {
                            handle = next;
                            envelope = returned;
                        }
                        _ => return Err(DeliveryError::Stopped(name)),
                    }
                }
                Err((error, _)) => return Err(error),
            }
        }
        match tokio::time::timeout(timeout, reply_rx).await {
            Err(_) => Err(DeliveryError::Timeout {
                agent: handle.name.clone(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            Ok(Err(_)) => Err(DeliveryError::Stopped(handle.name.clone())),
            Ok(Ok(result)) => result,
        }
    }
}

/// Runs a message to a WASM agent on the request's own task: no hop to
/// the actor's task and back (two wake-ups, most of a short message's
/// cost). The runner's lock is fair, so requests that find the agent busy
/// wait their turn in order, as in the mailbox, and as many as the
/// mailbox holds: one more is refused (`MailboxFull`). The wait ends at
/// `timeout` with nothing run; once the call started it is never left
/// half-way — if the request goes (timeout, disconnect), the rest runs
/// spawned and holds the lock until it ends.
async fn run_here(
    handle: Arc<AgentHandle>,
    runner: SharedRunner,
    message: AclMessage,
    timeout: Duration,
    stream: Option<crate::llm::TextSink>,
) -> Result<Delivered, DeliveryError> {
    let enqueued = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || DeliveryError::Timeout {
        agent: handle.name.clone(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let ticket = Waiting::take(&handle)?;
    let Ok(mut runner) = tokio::time::timeout_at(deadline, runner.lock_owned()).await else {
        return Err(timed_out());
    };
    drop(ticket);
    // Removed while this waited (a retiring version still handles what
    // was waiting for it, as its actor does with its mailbox).
    if runner.stopped || (handle.is_stopping() && !handle.is_retiring()) {
        return Err(DeliveryError::Stopped(handle.name.clone()));
    }
    let agent = handle.clone();
    let work: Work<_> = Box::pin(async move {
        runner
            .run_message(
                &agent,
                message,
                enqueued.elapsed(),
                stream,
                std::future::pending(),
            )
            .await
    });
    let mut work = RunToEnd::new(work);
    match tokio::time::timeout_at(deadline, work.run()).await {
        Err(_) => Err(timed_out()),
        Ok(Some(Some(result))) => result,
        Ok(_) => Err(DeliveryError::Stopped(handle.name.clone())),
    }
}

/// One request waiting for an agent's runner, counted while it waits.
struct Waiting<'a>(&'a AgentHandle);

impl<'a> Waiting<'a> {
    fn take(handle: &'a AgentHandle) -> Result<Waiting<'a>, DeliveryError> {
        use std::sync::atomic::Ordering;
        let before = handle.waiting.fetch_add(1, Ordering::AcqRel);
        let ticket = Waiting(handle);
        if before + handle.queued_in_mailbox() >= handle.mailbox_capacity {
            return Err(DeliveryError::MailboxFull {
                agent: handle.name.clone(),
                capacity: handle.mailbox_capacity,
            });
        }
        Ok(ticket)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Registry {
    /// `here` and then the names of `elsewhere` no local agent has, in
    /// name order.
    fn with_elsewhere(&self, here: Vec<String>, elsewhere: Vec<String>) -> Vec<String> {
        let mut all: std::collections::BTreeSet<String> = here.into_iter().collect();
        all.extend(
            elsewhere
                .into_iter()
                .filter(|name| self.get(name).is_none()),
        );
        all.into_iter().collect()
    }
}

/// Whether a protocol may address `handle`: not suspended, and not the
/// sending agent itself (`excluding`, its id).
fn reachable(handle: &AgentHandle, excluding: Option<&str>) -> bool {
    excluding.is_none_or(|id| handle.id != id) && handle.status() != AgentStatus::Suspended
}

#[async_trait::async_trait]
impl MessageBus for Registry {
    fn check(&self, to: &Address) -> Result<(), DeliveryError> {
        self.check_route(to)
    }

    /// This node's agents, then the other nodes' (a name both here and
    /// elsewhere is the local agent).
    fn recipients(&self, capability: &str, excluding: Option<&str>) -> Vec<String> {
        let here: Vec<String> = self
            .read()
            .values()
            .filter(|h| reachable(h, excluding))
            .filter(|h| h.capabilities().iter().any(|c| c == capability))
            .map(|h| h.name.clone())
            .collect();
        match self.elsewhere.get() {
            Some(elsewhere) => self.with_elsewhere(here, elsewhere.recipients(capability)),
            None => here,
        }
    }

    fn conversations(&self) -> &Arc<ConversationStore> {
        &self.conversations
    }

    async fn request(
        &self,
        from_agent: Option<&str>,
        to: Address,
        message: AclMessage,
        timeout: Duration,
    ) -> Result<Delivered, DeliveryError> {
        self.deliver(from_agent, to, message, timeout, None, false)
            .await
    }

    /// Each address is checked now, then all are written at once (or
    /// none) to the outbox.
    async fn post_all(
        &self,
        from_agent: Option<&str>,
        messages: Vec<(Address, AclMessage)>,
    ) -> Result<usize, DeliveryError> {
        for (to, _) in &messages {
            self.check_route(to)?;
        }
        let count = messages.len();
        let shared = self.shared_outbox.get().filter(|o| o.available());
        let now = crate::conversations::now_ms();
        let items = messages
            .into_iter()
            .map(|(to, message)| Queued {
                message,
                to: Target::of(&to),
                from_agent: from_agent.map(str::to_string),
                attempts: 0,
                next_attempt_ms: now,
                last_error: None,
                queued_at_ms: now,
            })
            .collect();
        match (shared, self.outbox.get()) {
            (Some(shared), _) => shared
                .enqueue(items)
                .await
                .map_err(DeliveryError::NotQueued)?,
            (None, Some(outbox)) => {
                outbox
                    .enqueue(items)
                    .await
                    .map_err(|e| DeliveryError::NotQueued(e.to_string()))?;
            }
            (None, None) => {
                return Err(DeliveryError::NotQueued(
                    "this registry has no outbox to keep fire-and-forget messages in".into(),
                ));
            }
        }
        Ok(count)
    }

    async fn subscribe(
        &self,
        agent_id: &str,
        topic: &str,
        subscribed: bool,
    ) -> Result<Vec<String>, SubscribeError> {
        Registry::subscribe(self, agent_id, topic, subscribed).await
    }

    fn subscriptions(&self, agent_id: &str) -> Vec<String> {
        self.get(agent_id)
            .map(|h| self.topics.of_agent(&h.name))
            .unwrap_or_default()
    }

    fn subscribers(&self, topic: &str, excluding: Option<&str>) -> Vec<String> {
        let here: Vec<String> = {
            let agents = self.read();
            self.topics
                .subscribers(topic)
                .into_iter()
                .filter(|name| agents.get(name).is_some_and(|h| reachable(h, excluding)))
                .collect()
        };
        match self.elsewhere.get() {
            Some(elsewhere) => self.with_elsewhere(here, elsewhere.subscribers(topic)),
            None => here,
        }
    }
}

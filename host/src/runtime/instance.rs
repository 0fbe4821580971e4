//! One agent's compiled program and its live, sandboxed instance.
//!
//! Every entry into the guest — instantiation, `init`, `describe`,
//! `handle-message` — runs under the agent's limits: fuel is refilled to
//! `max_fuel`, the wall clock is bounded by `max_execution_time_ms`, and
//! memory growth past `max_memory_bytes` is refused. Any failure leaves the
//! instance unusable, so the caller drops it and instantiates afresh.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use super::bindings::exports::caxton::agent0_2_0::agent_handler::AgentInfo;
use super::bindings::{Agent, AgentPre, caxton::agent0_1_0::types as wit};
use super::bindings_v0_1::{Agent as AgentV0_1, AgentPre as AgentPreV0_1};
use super::engine::FUEL_YIELD_INTERVAL;
use super::limits::{MemoryLimiter, ResourceLimits};
use super::wit_convert::describe_wit_error;
use super::{AgentContext, ExecutionFailure, HostState};
use crate::runtime::guest_log::{AgentLog, MAX_LINE_BYTES, truncated};

/// Longest stderr excerpt attached to a trap report.
const MAX_STDERR_IN_ERROR: usize = 600;

/// A component checked against the `agent` world and ready to instantiate
/// cheaply (imports resolved once, through `InstancePre`).
pub struct AgentProgram {
    engine: Engine,
    pre: Contract,
}

/// The version of the contract a component was built against, told by the
/// `agent-handler` it exports. Both versions import the same host
/// functions; only the export differs.
enum Contract {
    V0_2(AgentPre<HostState>),
    V0_1(AgentPreV0_1<HostState>),
}

/// A live instance's exports, of the version its component exports.
enum Exports {
    V0_2(Agent),
    V0_1(AgentV0_1),
}

impl AgentProgram {
    /// Fails with a sentence saying what the component lacks when it does
    /// not fit the `agent` world (unknown imports, missing exports).
    pub fn new(
        engine: &Engine,
        linker: &Linker<HostState>,
        component: &Component,
    ) -> Result<Self, String> {
        let instance_pre = linker.instantiate_pre(component).map_err(|e| {
            format!(
                "the component imports something this host does not provide \
                 (it must target the `agent` world of caxton:agent@0.2.0 or 0.1.0, plus \
                 WASI 0.2): {e}"
            )
        })?;
        let pre = match AgentPre::new(instance_pre.clone()) {
            Ok(pre) => Contract::V0_2(pre),
            Err(current) => Contract::V0_1(AgentPreV0_1::new(instance_pre).map_err(|_| {
                format!(
                    "the component does not export `caxton:agent/agent-handler@0.2.0` \
                     (or the 0.1.0 one): build it against the `agent` world in wit/: {current}"
                )
            })?),
        };
        Ok(AgentProgram {
            engine: engine.clone(),
            pre,
        })
    }

    /// Makes a fresh instance and runs its `init` with `config_json`.
    pub async fn instantiate(
        &self,
        agent: Arc<AgentContext>,
        limits: ResourceLimits,
        config_json: &str,
    ) -> Result<AgentInstance, ExecutionFailure> {
        let log = agent.log.clone();
        let mut store = sandboxed_store(
            &self.engine,
            HostState::new(agent, limits.max_memory_bytes),
            &limits,
        )?;
        let bookmark = log.bookmark();
        let time_limit = Duration::from_millis(limits.max_execution_time_ms);
        let instantiated = tokio::time::timeout(time_limit, async {
            Ok(match &self.pre {
                Contract::V0_2(pre) => Exports::V0_2(pre.instantiate_async(&mut store).await?),
                Contract::V0_1(pre) => Exports::V0_1(pre.instantiate_async(&mut store).await?),
            })
        })
        .await;
        let bindings = settle(&mut store, &limits, instantiated, bookmark)
            .map_err(ExecutionFailure::at_instantiation)?;
        let mut instance = AgentInstance {
            store,
            bindings,
            limits,
        };
        let (time_limit, bookmark) = instance.begin()?;
        let store = &mut instance.store;
        let outcome = tokio::time::timeout(time_limit, async {
            match &instance.bindings {
                Exports::V0_2(b) => {
                    b.caxton_agent0_2_0_agent_handler()
                        .call_init(store, config_json)
                        .await
                }
                Exports::V0_1(b) => {
                    b.caxton_agent0_1_0_agent_handler()
                        .call_init(store, config_json)
                        .await
                }
            }
        })
        .await;
        instance.finish(outcome, bookmark)?.map_err(|e| {
            // The guest's own text, shown in the deploy error and logs.
            let text = describe_wit_error(&e);
            ExecutionFailure::Init(truncated(&text, MAX_LINE_BYTES).into_owned())
        })?;
        Ok(instance)
    }
}

/// A live instance: its store (memory, fuel, host state) and its exports.
pub struct AgentInstance {
    store: Store<HostState>,
    bindings: Exports,
    limits: ResourceLimits,
}

impl AgentInstance {
    /// The agent context this instance was made with (its host state).
    pub fn context(&self) -> Arc<AgentContext> {
        self.store.data().agent.clone()
    }

    pub async fn describe(&mut self) -> Result<AgentInfo, ExecutionFailure> {
        let (time_limit, bookmark) = self.begin()?;
        let store = &mut self.store;
        let outcome = tokio::time::timeout(time_limit, async {
            match &self.bindings {
                Exports::V0_2(b) => {
                    b.caxton_agent0_2_0_agent_handler()
                        .call_describe(store)
                        .await
                }
                Exports::V0_1(b) => {
                    let info = b
                        .caxton_agent0_1_0_agent_handler()
                        .call_describe(store)
                        .await?;
                    Ok(AgentInfo {
                        capabilities: info.capabilities,
                        description: info.description,
                        subscriptions: Vec::new(),
                    })
                }
            }
        })
        .await;
        self.finish(outcome, bookmark)
    }

    /// Handles one message. An error the agent itself returns becomes a
    /// `failure` reply; only traps and limit hits are [`ExecutionFailure`]s.
    /// `stream` receives the reply's text as the agent's model writes it.
    pub async fn handle(
        &mut self,
        msg: wit::Message,
        stream: Option<crate::llm::TextSink>,
        span: Option<crate::trace::SpanContext>,
    ) -> Result<Option<wit::Reply>, ExecutionFailure> {
        let (time_limit, bookmark) = self.begin()?;
        self.store.data_mut().stream = stream;
        self.store.data_mut().span = span;
        self.store.data_mut().sender = Some(msg.sender.clone());
        let started = std::time::Instant::now();
        {
            let agent = self.store.data().agent.name.clone();
            self.store
                .data()
                .record(|| crate::recordings::Event::Inbound {
                    agent,
                    sender: msg.sender.clone(),
                    performative: super::wit_convert::from_wit_performative(msg.performative)
                        .as_str()
                        .to_string(),
                    content: msg.content.clone(),
                });
        }
        let store = &mut self.store;
        let outcome = tokio::time::timeout(time_limit, async {
            match &self.bindings {
                Exports::V0_2(b) => {
                    b.caxton_agent0_2_0_agent_handler()
                        .call_handle_message(store, &msg)
                        .await
                }
                Exports::V0_1(b) => {
                    b.caxton_agent0_1_0_agent_handler()
                        .call_handle_message(store, &msg)
                        .await
                }
            }
        })
        .await;
        self.store.data_mut().stream = None;
        self.store.data_mut().sender = None;
        let reply = match self.finish(outcome, bookmark) {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => Some(failure(describe_wit_error(&e))),
            Err(failed) => {
                self.record_reply("failure", &failed.to_string(), started);
                self.store.data_mut().span = None;
                return Err(failed);
            }
        };
        match &reply {
            Some(r) => self.record_reply(
                super::wit_convert::from_wit_performative(r.performative).as_str(),
                &r.content,
                started,
            ),
            None => self.record_reply("none", "", started),
        }
        self.store.data_mut().span = None;
        // What the guest hands back is held, traced and sent on: a reply
        // over the cap becomes a failure saying so.
        Ok(reply.map(|reply| {
            let content_type = reply.content_type.as_deref();
            match oversized("the agent's reply", &reply.content, content_type) {
                Some(why) => {
                    self.store.data().agent.log.push("host", &why);
                    failure(why)
                }
                None => reply,
            }
        }))
    }

    /// Fuel left after the last call (for benchmarks and diagnostics).
    pub fn fuel_remaining(&self) -> u64 {
        self.store.get_fuel().unwrap_or(0)
    }

    /// Prepares a call into the guest: refills fuel, arms the clock, and
    /// bookmarks the log so a trap report can quote what the guest printed.
    fn begin(&mut self) -> Result<(Duration, u64), ExecutionFailure> {
        refill(&mut self.store, &self.limits)?;
        let bookmark = self.store.data().agent.log.bookmark();
        Ok((
            Duration::from_millis(self.limits.max_execution_time_ms),
            bookmark,
        ))
    }

    /// Turns the outcome of a timed guest call into a result.
    fn finish<T>(
        &mut self,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
        bookmark: u64,
    ) -> Result<T, ExecutionFailure> {
        settle(&mut self.store, &self.limits, outcome, bookmark)
    }
}

/// Largest content a guest may hand the host in one reply or message: the
/// API's default `server.max_request_bytes`, so a reply may be as large as
/// a message sent to the agent, but not so large that one reply (kept in
/// traces, conversations and queues) can exhaust the server's memory.
pub const MAX_CONTENT_BYTES: usize = 4 * 1024 * 1024;
/// Longest content type a guest may give (`text/plain`, `application/json`).
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// Why content a guest handed over (`what`: "the agent's reply") is
/// refused, if it is: which cap it passes, by how much, and what to do
/// instead.
pub fn oversized(what: &str, content: &str, content_type: Option<&str>) -> Option<String> {
    if content.len() > MAX_CONTENT_BYTES {
        return Some(format!(
            "{what} is {} bytes, over the {MAX_CONTENT_BYTES}-byte cap on what an agent may \
             reply or send; send large data in pieces, or store it (memory, key-value) and \
             send a reference",
            content.len()
        ));
    }
    match content_type {
        Some(t) if t.len() > MAX_CONTENT_TYPE_BYTES => Some(format!(
            "the content type of {what} is {} bytes, over the {MAX_CONTENT_TYPE_BYTES}-byte cap; \
             use a media type such as text/plain or application/json",
            t.len()
        )),
        _ => None,
    }
}

/// A `failure` reply saying `why`.
impl AgentInstance {
    /// Records what the agent answered, when its conversations are
    /// recorded.
    fn record_reply(&self, performative: &str, content: &str, started: std::time::Instant) {
        let agent = self.store.data().agent.name.clone();
        self.store
            .data()
            .record(|| crate::recordings::Event::Reply {
                agent,
                performative: performative.to_string(),
                content: content.to_string(),
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            });
    }
}

fn failure(why: String) -> wit::Reply {
    wit::Reply {
        performative: wit::Performative::Failure,
        content: why,
        content_type: None,
    }
}

/// What a store must give the limit machinery: its memory limiter and the
/// log its guest's stdout and stderr go to.
pub(crate) trait Sandboxed: Send + 'static {
    fn limiter(&mut self) -> &mut MemoryLimiter;
    fn log(&self) -> &AgentLog;
}

impl Sandboxed for HostState {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
    fn log(&self) -> &AgentLog {
        &self.agent.log
    }
}

/// A store for one guest: memory limited, fuel filled, yielding to the
/// executor so the wall-clock limit can fire.
pub(crate) fn sandboxed_store<T: Sandboxed>(
    engine: &Engine,
    state: T,
    limits: &ResourceLimits,
) -> Result<Store<T>, ExecutionFailure> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| state.limiter());
    store
        .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
        .map_err(|e| ExecutionFailure::Instantiate(e.to_string()))?;
    refill(&mut store, limits)?;
    Ok(store)
}

/// Turns the outcome of a timed guest call into a result.
pub(crate) fn settle<S: Sandboxed, T>(
    store: &mut Store<S>,
    limits: &ResourceLimits,
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    bookmark: u64,
) -> Result<T, ExecutionFailure> {
    match outcome {
        Err(_) => Err(timeout(limits)),
        Ok(Err(e)) => Err(classify(store, limits, &e, bookmark)),
        Ok(Ok(value)) => Ok(value),
    }
}

pub(crate) fn refill<T>(
    store: &mut Store<T>,
    limits: &ResourceLimits,
) -> Result<(), ExecutionFailure> {
    store
        .set_fuel(limits.max_fuel)
        .map_err(|e| ExecutionFailure::Instantiate(format!("cannot set fuel: {e}")))?;
    // Yield to the executor at every epoch tick, so the wall-clock timeout
    // around the call gets to run even while the guest spins.
    store.epoch_deadline_async_yield_and_update(1);
    Ok(())
}

fn timeout(limits: &ResourceLimits) -> ExecutionFailure {
    ExecutionFailure::Timeout {
        limit_ms: limits.max_execution_time_ms,
    }
}

/// Turns a wasmtime error into the failure an operator can act on.
fn classify<S: Sandboxed>(
    store: &mut Store<S>,
    limits: &ResourceLimits,
    error: &wasmtime::Error,
    bookmark: u64,
) -> ExecutionFailure {
    if store.data_mut().limiter().take_hit() {
        return ExecutionFailure::MemoryLimit {
            max_memory_bytes: limits.max_memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ExecutionFailure::OutOfFuel {
            max_fuel: limits.max_fuel,
        },
        Some(Trap::Interrupt) => timeout(limits),
        trap => {
            let mut text = match trap {
                Some(trap) => trap.to_string(),
                None => error.to_string(),
            };
            let stderr = store.data().log().since(bookmark, "stderr").join(" | ");
            if !stderr.is_empty() {
                let mut excerpt = stderr;
                if excerpt.len() > MAX_STDERR_IN_ERROR {
                    let mut cut = MAX_STDERR_IN_ERROR;
                    while !excerpt.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    excerpt.truncate(cut);
                    excerpt.push('…');
                }
                text = format!("{text}; the agent wrote to stderr: {excerpt}");
            }
            ExecutionFailure::Trap(text)
        }
    }
}

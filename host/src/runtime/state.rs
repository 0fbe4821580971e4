//! The data every agent's wasmtime `Store` carries.

use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::ToolHost;
use super::limits::MemoryLimiter;
use crate::llm::LlmService;
use crate::memory::MemoryService;
use crate::messaging::MessageBus;
use crate::runtime::guest_log::AgentLog;
use crate::storage::Storage;

/// Who the agent is and what it can reach, shared by its instances.
pub struct AgentContext {
    pub id: String,
    pub name: String,
    pub storage: Arc<Storage>,
    /// Where the agent's outgoing messages go.
    pub bus: Arc<dyn MessageBus>,
    pub log: Arc<AgentLog>,
    pub memory: Arc<MemoryService>,
    /// Shared memory scopes this agent may use besides its own
    /// (`workspace`, `global`).
    pub memory_grants: Vec<String>,
    /// Tools this agent may call, and where they live.
    pub tools: Vec<String>,
    pub tool_host: Arc<dyn ToolHost>,
    /// The LLM providers, and this agent's choice among them.
    pub llm: Arc<LlmService>,
    pub llm_provider: Option<String>,
    /// Whether the `llm` import answers this agent at all.
    pub llm_granted: bool,
    /// Where message hops, LLM calls and tool calls are recorded.
    pub trace: Arc<crate::trace::TraceStore>,
    /// Where the agent's key-value state lives when not (only) in this
    /// node's database: a cluster's, so the agent can move. Set once, by
    /// the cluster, possibly after the agent started.
    pub shared_state: Arc<std::sync::OnceLock<Arc<dyn SharedState>>>,
    /// What the agent, its callers and the server may spend on models,
    /// once the server set it up.
    pub budgets: Arc<std::sync::OnceLock<Arc<crate::budgets::Budgets>>>,
    /// Where its conversations are recorded, once the server set it up.
    pub recorder: Arc<std::sync::OnceLock<Arc<crate::recordings::Recorder>>>,
    /// A config agent (recorded by default).
    pub config_agent: bool,
}

/// Agents' key-value state kept beyond this node (a cluster's JetStream
/// KV), keyed by agent id, which is the same on every node. Errors are
/// text for the agent: it sees them as `internal` failures.
#[async_trait::async_trait]
pub trait SharedState: Send + Sync {
    async fn get(&self, agent_id: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
    async fn set(&self, agent_id: &str, key: &str, value: Vec<u8>) -> Result<(), String>;
    /// Whether the key was there.
    async fn delete(&self, agent_id: &str, key: &str) -> Result<bool, String>;
    /// The agent's keys starting with `prefix`, in order.
    async fn keys(&self, agent_id: &str, prefix: &str) -> Result<Vec<String>, String>;
}

impl AgentContext {
    /// This agent as the initiator of a protocol: its messages go out in
    /// its name, under `trace_parent` when a message is being handled.
    pub fn initiator(
        &self,
        trace_parent: Option<crate::trace::TraceParent>,
    ) -> crate::protocols::Initiator {
        crate::protocols::Initiator {
            name: self.name.clone(),
            agent_id: Some(self.id.clone()),
            trace_parent,
        }
    }
}

pub struct HostState {
    pub agent: Arc<AgentContext>,
    pub limiter: MemoryLimiter,
    /// Where the current call's reply text streams to, when its sender
    /// asked for a stream; handed in with the call
    /// ([`super::AgentInstance::handle`]), read by the `llm` import.
    pub stream: Option<crate::llm::TextSink>,
    /// The span of the message being handled, parent of the LLM calls,
    /// tool calls and messages the call makes; handed in with the call.
    pub span: Option<crate::trace::SpanContext>,
    /// Who sent the message being handled (a principal, or an agent):
    /// the principal whose budget the call's model use counts against.
    pub sender: Option<String>,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    /// A sandbox with nothing granted: no files, no sockets, no environment,
    /// no arguments; stdout and stderr go to the agent's log.
    pub fn new(agent: Arc<AgentContext>, max_memory_bytes: u64) -> Self {
        HostState {
            wasi: sandbox_wasi(&agent.log),
            agent,
            limiter: MemoryLimiter::new(max_memory_bytes),
            stream: None,
            span: None,
            sender: None,
            table: ResourceTable::new(),
        }
    }

    /// The replay the message being handled is part of, if any.
    pub fn replay(&self) -> Option<std::sync::Arc<crate::recordings::replay::ReplaySession>> {
        let (recorder, span) = (self.agent.recorder.get()?, self.span.as_ref()?);
        recorder.replay(&span.conversation_id, &self.agent.name)
    }

    /// Records `event` in the conversation being handled, when this
    /// agent's conversations are recorded.
    pub fn record(&self, event: impl FnOnce() -> crate::recordings::Event) {
        if let Some((recorder, conversation)) = self.recorded_in() {
            recorder.record(conversation, event());
        }
    }

    /// [`HostState::record`] for an event built on the recorder's thread
    /// (see `Recorder::record_later`).
    pub fn record_later(&self, make: impl FnOnce() -> crate::recordings::Event + Send + 'static) {
        if let Some((recorder, conversation)) = self.recorded_in() {
            recorder.record_later(conversation, make);
        }
    }

    /// The recorder and the conversation what happens while handling the
    /// current message is recorded in; `None` when it is not recorded.
    pub fn recorded_in(&self) -> Option<(&Arc<crate::recordings::Recorder>, &str)> {
        let span = self.span.as_ref()?;
        let recorder = self.agent.recorder.get()?;
        recorder
            .records(self.agent.config_agent)
            .then_some((recorder, span.conversation_id.as_str()))
    }

    /// Whether what happens while handling the current message is
    /// recorded (work done only for a recording is skipped otherwise).
    pub fn recording(&self) -> bool {
        self.recorded_in().is_some()
    }

    /// Starts the span of a host call made while handling the current
    /// message (none outside a message, e.g. during `init`).
    pub fn child_span(&self) -> Option<crate::trace::Started> {
        self.span.as_ref().map(|s| {
            self.agent
                .trace
                .start(&self.agent.name, &s.conversation_id, Some(s.as_parent()))
        })
    }
}

/// WASI with nothing granted (no files, sockets, environment or
/// arguments); stdout and stderr are written line by line into `log`.
pub(crate) fn sandbox_wasi(log: &Arc<AgentLog>) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(LogOutput::new(log, "stdout"))
        .stderr(LogOutput::new(log, "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A guest's stdout or stderr, written line by line into its log.
struct LogOutput {
    log: Arc<AgentLog>,
    stream: &'static str,
}

impl LogOutput {
    fn new(log: &Arc<AgentLog>, stream: &'static str) -> Self {
        LogOutput {
            log: Arc::clone(log),
            stream,
        }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: Arc::clone(&self.log),
            stream: self.stream,
            partial: Vec::new(),
        })
    }
}

/// Longest line kept; longer output is split.
const MAX_LINE_BYTES: usize = 4096;

struct LineWriter {
    log: Arc<AgentLog>,
    stream: &'static str,
    partial: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.partial);
        let line = line.trim_end();
        if !line.is_empty() {
            self.log.push(self.stream, line);
        }
        self.partial.clear();
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &byte in buf {
            if byte == b'\n' {
                self.emit();
            } else {
                self.partial.push(byte);
                if self.partial.len() >= MAX_LINE_BYTES {
                    self.emit();
                }
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

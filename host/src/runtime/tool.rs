//! Tool components (the `tool` world): checked once at deploy, then run in
//! a fresh sandbox for every call, under the tool's limits.
//!
//! A tool can log and nothing else. Its log lines (and stdout/stderr) go to
//! the log of the agent that called it, so `caxton agents logs NAME` shows
//! what the tool said while working for that agent.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::ExecutionFailure;
use super::instance::{Sandboxed, sandboxed_store, settle};
use super::limits::{MemoryLimiter, ResourceLimits};
use super::state::sandbox_wasi;
use crate::runtime::guest_log::AgentLog;

/// Host bindings of the `tool` world. Its `types` and `logging` are the
/// same interfaces the `agent` world uses, so they share one host
/// implementation.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "tool",
        imports: { default: async },
        exports: { default: async },
        with: {
            "caxton:agent/types@0.1.0": crate::runtime::bindings::caxton::agent0_1_0::types,
            "caxton:agent/logging@0.1.0": crate::runtime::bindings::caxton::agent0_1_0::logging,
        },
    });
}

use bindings::exports::caxton::agent0_1_0::tool_handler::ToolDescription;
use bindings::{Tool, ToolPre};

/// What a running tool can reach: a log (the caller's), its memory
/// limiter, and a deny-all WASI.
pub struct ToolState {
    pub(crate) log: Arc<AgentLog>,
    /// Prefixes the tool's log lines, so they stand out in the agent's log.
    pub(crate) tool_name: String,
    limiter: MemoryLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl ToolState {
    fn new(log: Arc<AgentLog>, tool_name: &str, limits: &ResourceLimits) -> Self {
        ToolState {
            wasi: sandbox_wasi(&log),
            log,
            tool_name: tool_name.to_string(),
            limiter: MemoryLimiter::new(limits.max_memory_bytes),
            table: ResourceTable::new(),
        }
    }
}

impl Sandboxed for ToolState {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
    fn log(&self) -> &AgentLog {
        &self.log
    }
}

impl WasiView for ToolState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A linker for tools: deny-all WASI plus `logging`, nothing else.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<ToolState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Tool::add_to_linker::<ToolState, HasSelf<ToolState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// A component checked against the `tool` world.
pub struct ToolProgram {
    engine: Engine,
    pre: ToolPre<ToolState>,
}

/// What one call of a tool produced: its answer, or the error it returned.
pub type ToolOutcome = Result<String, super::bindings::caxton::agent0_1_0::types::Error>;

impl ToolProgram {
    /// Fails with a sentence saying what the component lacks when it does
    /// not fit the `tool` world.
    pub fn new(
        engine: &Engine,
        linker: &Linker<ToolState>,
        component: &Component,
    ) -> Result<Self, String> {
        let instance_pre = linker.instantiate_pre(component).map_err(|e| {
            format!(
                "the component imports something a tool may not use: a tool may import only \
                 `caxton:agent/logging` and WASI 0.2 (build it against the `tool` world of \
                 caxton:agent@0.1.0; agents are deployed with `caxton agents deploy`): {e}"
            )
        })?;
        let pre = ToolPre::new(instance_pre).map_err(|e| {
            format!(
                "the component does not export `caxton:agent/tool-handler@0.1.0` (build it \
                 against the `tool` world in wit/, e.g. with the guest SDK's `export_tool!`): {e}"
            )
        })?;
        Ok(ToolProgram {
            engine: engine.clone(),
            pre,
        })
    }

    /// Asks the tool to describe itself, in a fresh sandbox.
    pub async fn describe(
        &self,
        log: Arc<AgentLog>,
        limits: ResourceLimits,
    ) -> Result<ToolDescription, ExecutionFailure> {
        self.run(log, "", limits, |tool, store| {
            Box::pin(async move {
                tool.caxton_agent0_1_0_tool_handler()
                    .call_describe(store)
                    .await
            })
        })
        .await
    }

    /// Calls the tool once with a JSON arguments object, in a fresh sandbox.
    pub async fn invoke(
        &self,
        log: Arc<AgentLog>,
        tool_name: &str,
        limits: ResourceLimits,
        arguments_json: String,
    ) -> Result<ToolOutcome, ExecutionFailure> {
        self.run(log, tool_name, limits, move |tool, store| {
            Box::pin(async move {
                tool.caxton_agent0_1_0_tool_handler()
                    .call_invoke(store, &arguments_json)
                    .await
            })
        })
        .await
    }

    /// Instantiates and makes one call, all within one wall-clock limit
    /// and one fuel budget.
    async fn run<T>(
        &self,
        log: Arc<AgentLog>,
        tool_name: &str,
        limits: ResourceLimits,
        call: impl for<'a> FnOnce(
            &'a Tool,
            &'a mut wasmtime::Store<ToolState>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = wasmtime::Result<T>> + Send + 'a>,
        >,
    ) -> Result<T, ExecutionFailure> {
        let bookmark = log.bookmark();
        let mut store = sandboxed_store(
            &self.engine,
            ToolState::new(log, tool_name, &limits),
            &limits,
        )?;
        let time_limit = Duration::from_millis(limits.max_execution_time_ms);
        let outcome = tokio::time::timeout(time_limit, async {
            let tool = self.pre.instantiate_async(&mut store).await?;
            call(&tool, &mut store).await
        })
        .await;
        settle(&mut store, &limits, outcome, bookmark)
    }
}

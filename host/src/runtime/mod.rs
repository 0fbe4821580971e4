//! Where agents (and tool components) run: the wasmtime engine, the compiled-component cache,
//! sandboxed instances with their limits, and the host side of every WIT
//! import (`imports/`, one file per interface).

pub mod component_cache;
pub mod engine;
pub mod guest_log;
pub mod imports;
pub mod instance;
pub mod limits;
pub mod settings;
pub mod state;
pub mod tool;
pub mod tool_host;
pub mod upload;
pub mod wit_convert;

pub use crate::messaging::ExecutionFailure;

/// Host bindings generated from `wit/` — the contract is the single source
/// of truth; nothing here restates it by hand. This is the current world,
/// `caxton:agent/agent@0.2.0`; the interfaces it kept from 0.1.0 are
/// generated here once and serve both versions.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "agent",
        imports: { default: async },
        exports: { default: async },
    });
}

/// The `agent` world of `caxton:agent@0.1.0`, for components built before
/// 0.2.0: its imports are the very interfaces of [`bindings`] (mapped with
/// `with`, so one host implementation serves both); only its export, the
/// 0.1.0 `agent-handler`, is its own.
pub mod bindings_v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "caxton:agent/agent@0.1.0",
        imports: { default: async },
        exports: { default: async },
        with: {
            "caxton:agent/types@0.1.0": super::bindings::caxton::agent0_1_0::types,
            "caxton:agent/messaging@0.1.0": super::bindings::caxton::agent0_1_0::messaging,
            "caxton:agent/memory@0.1.0": super::bindings::caxton::agent0_1_0::memory,
            "caxton:agent/keyvalue@0.1.0": super::bindings::caxton::agent0_1_0::keyvalue,
            "caxton:agent/tools@0.1.0": super::bindings::caxton::agent0_1_0::tools,
            "caxton:agent/llm@0.1.0": super::bindings::caxton::agent0_1_0::llm,
            "caxton:agent/logging@0.1.0": super::bindings::caxton::agent0_1_0::logging,
        },
    });
}

pub use instance::{AgentInstance, AgentProgram};

/// The one engine agents and tools share, with its compiled-component
/// cache under `data_dir/cache/components` (its key in `storage`).
pub fn component_cache(
    data_dir: &std::path::Path,
    storage: &crate::storage::Storage,
    max_limits: &limits::ResourceLimits,
    instance_pool: bool,
) -> anyhow::Result<std::sync::Arc<component_cache::ComponentCache>> {
    let engine = engine::new_engine(max_limits.max_memory_bytes, instance_pool)?;
    let key = component_cache::mac_key(storage)?;
    let cache = component_cache::ComponentCache::new(
        engine,
        data_dir.join("cache").join("components"),
        key,
    )?;
    Ok(std::sync::Arc::new(cache))
}
pub use state::{AgentContext, HostState};
pub use tool_host::{ToolError, ToolHost, ToolSpec};

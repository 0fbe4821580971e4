//! Host implementations of the WIT imports, one file per interface in
//! `wit/caxton.wit`. Each implements the trait `bindgen!` generated for it.

pub mod keyvalue;
mod llm;
mod logging;
mod memory;
mod memory_time;
pub(crate) mod messaging;
mod protocols;
mod tools;

use wasmtime::component::{HasSelf, Linker};

use super::HostState;
use super::bindings::{Agent, caxton::agent0_1_0::types};

impl types::Host for HostState {}
impl types::Host for super::tool::ToolState {}

/// A linker with WASI (deny-by-default, see [`HostState::new`]) and every
/// Caxton interface.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Agent::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
    Ok(linker)
}

//! Black-box tests: the real `caxton` binary, an ephemeral port, a temporary
//! data directory, real components built from `examples/`. One test binary
//! (each links wasmtime), one module per area.

mod harness;

mod a2a;
mod budgets;
mod cluster;
mod config_agents;
mod hostile_uploads;
mod interop;
mod lifecycle;
mod limits;
mod local_llm;
mod memory;
mod messaging;
mod observability;
mod operations;
mod polyglot;
mod portability;
mod protocols;
mod remote_llm;
mod sandbox;
mod security;
mod temporal;

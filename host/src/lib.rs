//! Caxton: a multi-agent server.
//!
//! A newcomer's map of where things happen:
//! - a message **enters** through the REST API in [`server`] (or the CLI in
//!   [`cli`], which calls that API);
//! - it is **routed** by [`agents::registry`] (by name, id or capability)
//!   into the agent's mailbox;
//! - it **runs** in [`agents::actor`], which hands it to a sandboxed
//!   instance from [`runtime`]; the agent reaches the host through the WIT
//!   imports implemented in [`runtime::imports`];
//! - agent state is **written** to redb by [`storage`].

pub mod agents;
pub mod app;
pub mod auth;
pub mod backup;
pub mod budgets;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod config_agents;
pub mod conversations;
pub mod llm;
pub mod logging;
pub mod memory;
pub mod messaging;
pub mod observe;
pub mod outbox;
pub mod protocols;
pub mod recordings;
pub mod redact;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod storage_check;
pub mod tools;
pub mod trace;

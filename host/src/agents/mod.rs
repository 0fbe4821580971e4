//! Deployed agents: what is stored about them ([`record`]), how a deployment
//! is checked ([`deploy`]), where they are found by name, id or capability
//! ([`registry`]), the actor loop that feeds each one its messages and the
//! runner requests use to run a message themselves when the agent is idle
//! ([`actor`], [`run_to_end`]), the hook that records every delivery in its conversation
//! ([`exchange`]), and the lifecycle that ties these together ([`manager`]).

pub mod actor;
pub mod deploy;
mod exchange;
pub mod manager;
pub mod record;
pub mod registry;
pub mod remote;
pub mod run_to_end;
pub mod stats;
pub mod store;
pub mod topics;

pub use manager::AgentManager;
pub use registry::{AgentHandle, Registry};

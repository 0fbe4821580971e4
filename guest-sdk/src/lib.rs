//! # Caxton guest SDK
//!
//! Write a Caxton agent in Rust: implement [`Agent`] for a struct, call
//! [`export_agent!`] once, and build with `cargo build --target wasm32-wasip2`.
//! The result is a WebAssembly component that targets the `agent` world of
//! the `caxton:agent@0.2.0` WIT package (the contract in the repository's
//! `wit/` folder) and can be deployed with `caxton agents deploy`.
//!
//! ```ignore
//! use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent};
//!
//! struct Echo;
//!
//! impl Agent for Echo {
//!     fn new(_config_json: &str) -> Result<Self, Error> {
//!         Ok(Echo)
//!     }
//!     fn describe() -> AgentInfo {
//!         AgentInfo::new("Repeats what it is told", &["echo"])
//!     }
//!     fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
//!         Ok(Some(Reply::inform(msg.content)))
//!     }
//! }
//!
//! export_agent!(Echo);
//! ```
//!
//! One instance of the struct lives as long as the host keeps the component
//! instance: fields persist between messages, but are lost when the host
//! discards the instance (after a trap or a limit hit, or a server restart).
//! State that must survive goes through [`kv`].
//!
//! The same crate writes tool components (functions an agent's model can
//! call, the `tool` world): see [`tool`].
#![deny(missing_docs)]

/// Raw bindings generated from `wit/` by `wit-bindgen`. Prefer the typed
/// wrappers in this crate; the bindings are here for what they do not cover.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "agent",
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "caxton_guest_sdk::bindings",
        generate_all,
    });
}

/// Raw bindings of the `tool` world (for [`tool`] components).
#[allow(missing_docs, clippy::all)]
pub mod tool_bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "tool",
        pub_export_macro: true,
        export_macro_name: "__export_tool_world",
        default_bindings_module: "caxton_guest_sdk::tool_bindings",
        generate_all,
    });
}

pub mod kv;
pub mod llm;
pub mod log;
pub mod memory;
pub mod messaging;
pub mod protocols;
pub mod tool;
pub mod tools;

#[doc(hidden)]
pub mod __private;

pub use bindings::caxton::agent0_1_0::types::{Error, Message, Performative, Reply};
pub use bindings::exports::caxton::agent0_2_0::agent_handler::AgentInfo;

/// An agent: one value of this type handles the messages sent to one
/// deployed agent, one at a time, in order.
pub trait Agent: Sized + 'static {
    /// Creates the agent when the host makes a fresh instance.
    /// `config_json` is the JSON object given at deploy time (`{}` if none).
    fn new(config_json: &str) -> Result<Self, Error>;

    /// Capabilities and description. Called without an instance of the
    /// agent, so it cannot depend on state.
    fn describe() -> AgentInfo;

    /// Handles one message. Return `Ok(None)` to send no reply; an `Err`
    /// becomes a `failure` answer to the sender.
    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error>;
}

impl AgentInfo {
    /// Builds the description of an agent from a sentence and capability names.
    pub fn new(description: &str, capabilities: &[&str]) -> Self {
        AgentInfo {
            description: description.to_string(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            subscriptions: Vec::new(),
        }
    }

    /// Names the topics the agent is subscribed to when it is deployed
    /// (see [`protocols::publish`]); more can be added at run time with
    /// [`protocols::subscribe`].
    pub fn with_subscriptions(mut self, topics: &[&str]) -> Self {
        self.subscriptions = topics.iter().map(|t| t.to_string()).collect();
        self
    }
}

impl Reply {
    /// A reply with the given performative, as plain text.
    pub fn new(performative: Performative, content: impl Into<String>) -> Self {
        Reply {
            performative,
            content: content.into(),
            content_type: None,
        }
    }

    /// An `inform` reply: the usual answer to a request.
    pub fn inform(content: impl Into<String>) -> Self {
        Self::new(Performative::Inform, content)
    }

    /// A `failure` reply: the agent tried and could not do it.
    pub fn failure(reason: impl Into<String>) -> Self {
        Self::new(Performative::Failure, reason)
    }

    /// A `not-understood` reply: the message made no sense to the agent.
    pub fn not_understood(reason: impl Into<String>) -> Self {
        Self::new(Performative::NotUnderstood, reason)
    }

    /// A `refuse` reply: the agent will not do it (for a call for
    /// proposals: no bid).
    pub fn refuse(reason: impl Into<String>) -> Self {
        Self::new(Performative::Refuse, reason)
    }

    /// A `propose` reply to a call for proposals (`cfp`): the bid the host
    /// ranks proposals by, and a text for whoever reads them, in the form
    /// the host reads (it makes the reply: `protocols.propose`). A bid that
    /// is not a finite number cannot be ranked, so the host reads that
    /// proposal as invalid.
    pub fn propose(bid: f64, text: &str) -> Self {
        protocols::propose(bid, text)
    }

    /// Sets the MIME type of the content (for example `application/json`).
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

impl Error {
    /// An `invalid-input` error with the given explanation.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        Error::InvalidInput(reason.into())
    }

    /// An `internal` error with the given explanation.
    pub fn internal(reason: impl Into<String>) -> Self {
        Error::Internal(reason.into())
    }
}

/// Exports a type implementing [`Agent`] as the component's `agent-handler`.
/// Call it exactly once, at the top level of the agent crate.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        #[doc(hidden)]
        struct __CaxtonAgentExport;

        impl $crate::bindings::exports::caxton::agent0_2_0::agent_handler::Guest for __CaxtonAgentExport {
            fn init(config_json: ::std::string::String) -> ::core::result::Result<(), $crate::Error> {
                $crate::__private::init::<$agent>(&config_json)
            }

            fn describe() -> $crate::AgentInfo {
                <$agent as $crate::Agent>::describe()
            }

            fn handle_message(
                msg: $crate::Message,
            ) -> ::core::result::Result<::core::option::Option<$crate::Reply>, $crate::Error> {
                $crate::__private::handle::<$agent>(msg)
            }
        }

        $crate::bindings::__export_agent_world!(__CaxtonAgentExport with_types_in $crate::bindings);
    };
}

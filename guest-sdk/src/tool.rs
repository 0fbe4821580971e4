//! Writing a tool component: a function an LLM-driven agent can call.
//!
//! A tool targets the `tool` world of `caxton:agent@0.1.0`: it can log and
//! nothing else (no messaging, memory or network), and each call runs in a
//! fresh sandbox, so a tool keeps no state between calls. Implement [`Tool`]
//! for a type, call [`export_tool!`](crate::export_tool) once, build with
//! `cargo build --target wasm32-wasip2`, and deploy the component with
//! `caxton tools deploy FILE.wasm` (or `POST /api/v1/tools`). Agents that list
//! the tool's name in their `tools` may then call it.
//!
//! ```ignore
//! use caxton_guest_sdk::tool::{Tool, ToolDescription};
//! use caxton_guest_sdk::{Error, export_tool};
//!
//! struct Shout;
//!
//! impl Tool for Shout {
//!     fn describe() -> ToolDescription {
//!         ToolDescription::new(
//!             "shout",
//!             "Upper-cases a text",
//!             r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#,
//!         )
//!     }
//!     fn invoke(arguments_json: &str) -> Result<String, Error> {
//!         Ok(format!("{{\"text\":{:?}}}", arguments_json.to_uppercase()))
//!     }
//! }
//!
//! export_tool!(Shout);
//! ```
//! For calling tools from an agent, see [`crate::tools`].

pub use crate::tool_bindings::caxton::agent0_1_0::types::Error;
pub use crate::tool_bindings::exports::caxton::agent0_1_0::tool_handler::ToolDescription;

/// A tool: a pure function from a JSON arguments object to a JSON answer.
pub trait Tool: 'static {
    /// The tool's name (letters, digits, `_` and `-`, starting with a
    /// letter; at most 64 characters), a sentence for the model, and the JSON Schema of
    /// its arguments object. Must not depend on any call.
    fn describe() -> ToolDescription;

    /// Runs the tool on a JSON object of arguments and answers JSON. Return
    /// [`Error::InvalidInput`] when the arguments are wrong, saying what
    /// was expected: the model reads the text and can correct its call.
    fn invoke(arguments_json: &str) -> Result<String, Error>;
}

impl ToolDescription {
    /// Builds a description from the name, a sentence for the model, and
    /// the JSON Schema of the arguments object.
    pub fn new(name: &str, description: &str, parameters_schema: &str) -> Self {
        ToolDescription {
            name: name.to_string(),
            description: description.to_string(),
            parameters_schema: parameters_schema.to_string(),
        }
    }
}

/// Logs into the calling agent's log (`caxton agents logs NAME`), at info level.
pub fn log(message: &str) {
    use crate::tool_bindings::caxton::agent0_1_0::logging::{Level, log};
    log(Level::Info, message);
}

/// Exports a type implementing [`Tool`] as the component's `tool-handler`.
/// Call it exactly once, at the top level of the tool crate.
#[macro_export]
macro_rules! export_tool {
    ($tool:ty) => {
        #[doc(hidden)]
        struct __CaxtonToolExport;

        impl $crate::tool_bindings::exports::caxton::agent0_1_0::tool_handler::Guest
            for __CaxtonToolExport
        {
            fn describe() -> $crate::tool::ToolDescription {
                <$tool as $crate::tool::Tool>::describe()
            }

            fn invoke(
                arguments_json: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, $crate::tool::Error> {
                <$tool as $crate::tool::Tool>::invoke(&arguments_json)
            }
        }

        $crate::tool_bindings::__export_tool_world!(__CaxtonToolExport with_types_in $crate::tool_bindings);
    };
}

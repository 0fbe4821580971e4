//! Who is asking, and what they may do: bearer tokens with scopes, stored
//! hashed in the database ([`tokens`]), and the settings that decide when
//! a request without one is still let in ([`AuthSettings`]).
//!
//! The HTTP side (reading headers, loopback and browser checks, the scope
//! each route needs) is in `server::auth`; this module knows nothing of HTTP.

pub mod tokens;

use serde::{Deserialize, Serialize};

/// What a token may do. Each scope includes the ones below it:
/// `admin` ⊇ `message` ⊇ `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Status, lists, logs, metrics, memory queries.
    Read,
    /// Talk to agents (and everything `read` can).
    Message,
    /// Everything: deploy, remove, reload, memory writes, shutdown, tokens.
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Scope::Read),
            "message" => Ok(Scope::Message),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope `{other}`; scopes are `read`, `message` and `admin`"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Message => "message",
            Scope::Admin => "admin",
        }
    }
}

/// The caller of one request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name messages are sent under: the token's name, or `user` for
    /// the operator on the machine itself (loopback without a token).
    pub name: String,
    /// Token id; `None` for the local operator.
    pub token_id: Option<String>,
    pub scope: Scope,
}

impl Principal {
    /// The operator at the machine's own console (loopback, no token).
    pub fn local_operator() -> Principal {
        Principal {
            name: crate::messaging::acl::USER_SENDER.to_string(),
            token_id: None,
            scope: Scope::Admin,
        }
    }

    pub fn allows(&self, needed: Scope) -> bool {
        self.scope >= needed
    }
}

/// `auth:` in `caxton.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Require a token even on a loopback bind (on any other bind tokens
    /// are always required).
    pub required: bool,
    /// Serve `/metrics` without a token on a non-loopback bind too (for a
    /// Prometheus that cannot send one). On loopback it is always open.
    pub metrics_public: bool,
}

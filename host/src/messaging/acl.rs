//! The FIPA-ACL message shape used on the wire (JSON) and between agents.

use serde::{Deserialize, Serialize};

/// FIPA communicative acts. JSON spells them in kebab-case (`query-if`);
/// snake_case (`query_if`) is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Performative {
    Request,
    Inform,
    #[serde(alias = "query_if")]
    QueryIf,
    #[serde(alias = "query_ref")]
    QueryRef,
    Propose,
    #[serde(alias = "accept_proposal")]
    AcceptProposal,
    #[serde(alias = "reject_proposal")]
    RejectProposal,
    Agree,
    Refuse,
    Failure,
    #[serde(alias = "not_understood")]
    NotUnderstood,
    Cfp,
    Confirm,
    Disconfirm,
    Subscribe,
    Cancel,
}

impl Performative {
    pub const ALL: [Performative; 16] = [
        Performative::Request,
        Performative::Inform,
        Performative::QueryIf,
        Performative::QueryRef,
        Performative::Propose,
        Performative::AcceptProposal,
        Performative::RejectProposal,
        Performative::Agree,
        Performative::Refuse,
        Performative::Failure,
        Performative::NotUnderstood,
        Performative::Cfp,
        Performative::Confirm,
        Performative::Disconfirm,
        Performative::Subscribe,
        Performative::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Performative::Request => "request",
            Performative::Inform => "inform",
            Performative::QueryIf => "query-if",
            Performative::QueryRef => "query-ref",
            Performative::Propose => "propose",
            Performative::AcceptProposal => "accept-proposal",
            Performative::RejectProposal => "reject-proposal",
            Performative::Agree => "agree",
            Performative::Refuse => "refuse",
            Performative::Failure => "failure",
            Performative::NotUnderstood => "not-understood",
            Performative::Cfp => "cfp",
            Performative::Confirm => "confirm",
            Performative::Disconfirm => "disconfirm",
            Performative::Subscribe => "subscribe",
            Performative::Cancel => "cancel",
        }
    }
}

impl std::str::FromStr for Performative {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Performative::ALL
            .into_iter()
            .find(|p| p.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Performative::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown performative `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A complete message. The host fills `id`, `sender` and routing fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AclMessage {
    pub id: String,
    pub performative: Performative,
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    pub content: String,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// The span of the call that sent it (see `crate::trace`); set by the
    /// host, never read from or written to the wire.
    #[serde(skip)]
    pub trace_parent: Option<crate::trace::TraceParent>,
}

/// Sender name used for messages that come from the HTTP API or CLI.
pub const USER_SENDER: &str = "user";

/// Content type used when none is given.
pub const TEXT_PLAIN: &str = "text/plain";
/// The content type of JSON content (a proposal, a structured answer).
pub const APPLICATION_JSON: &str = "application/json";
/// A whole chat, `{"messages": [{"role", "content"}, …]}`, the last one the
/// user's: what the OpenAI-compatible API hands a config agent, which then
/// answers from it instead of its own stored history.
pub const CHAT_CONTENT_TYPE: &str = "application/vnd.caxton.chat+json";

pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performatives_round_trip_and_accept_snake_case() {
        for p in Performative::ALL {
            let json = serde_json::to_string(&p).expect("serialize");
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            let back: Performative = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, p);
            assert_eq!(p.as_str().parse::<Performative>(), Ok(p));
        }
        let p: Performative = serde_json::from_str("\"not_understood\"").expect("alias");
        assert_eq!(p, Performative::NotUnderstood);
        assert!("shout".parse::<Performative>().is_err());
    }
}

//! Conversions between the WIT contract's types and the host's own
//! ([`AclMessage`], [`Performative`]): one place, used by the actor, the
//! messaging import and the instance.

use crate::messaging::{AclMessage, Performative};
use crate::runtime::bindings::caxton::agent0_1_0::types::{self as wit, Error};

pub fn to_wit_message(m: AclMessage) -> wit::Message {
    wit::Message {
        id: m.id,
        performative: to_wit_performative(m.performative),
        sender: m.sender,
        receiver: m.receiver,
        capability: m.capability,
        content: m.content,
        content_type: m.content_type,
        conversation_id: m.conversation_id,
        reply_with: m.reply_with,
        in_reply_to: m.in_reply_to,
    }
}

pub fn to_wit_performative(p: Performative) -> wit::Performative {
    use wit::Performative as W;
    match p {
        Performative::Request => W::Request,
        Performative::Inform => W::Inform,
        Performative::QueryIf => W::QueryIf,
        Performative::QueryRef => W::QueryRef,
        Performative::Propose => W::Propose,
        Performative::AcceptProposal => W::AcceptProposal,
        Performative::RejectProposal => W::RejectProposal,
        Performative::Agree => W::Agree,
        Performative::Refuse => W::Refuse,
        Performative::Failure => W::Failure,
        Performative::NotUnderstood => W::NotUnderstood,
        Performative::Cfp => W::Cfp,
        Performative::Confirm => W::Confirm,
        Performative::Disconfirm => W::Disconfirm,
        Performative::Subscribe => W::Subscribe,
        Performative::Cancel => W::Cancel,
    }
}

pub fn from_wit_performative(p: wit::Performative) -> Performative {
    use wit::Performative as W;
    match p {
        W::Request => Performative::Request,
        W::Inform => Performative::Inform,
        W::QueryIf => Performative::QueryIf,
        W::QueryRef => Performative::QueryRef,
        W::Propose => Performative::Propose,
        W::AcceptProposal => Performative::AcceptProposal,
        W::RejectProposal => Performative::RejectProposal,
        W::Agree => Performative::Agree,
        W::Refuse => Performative::Refuse,
        W::Failure => Performative::Failure,
        W::NotUnderstood => Performative::NotUnderstood,
        W::Cfp => Performative::Cfp,
        W::Confirm => Performative::Confirm,
        W::Disconfirm => Performative::Disconfirm,
        W::Subscribe => Performative::Subscribe,
        W::Cancel => Performative::Cancel,
    }
}

/// Text of a WIT error as the agent returned it.
pub fn describe_wit_error(e: &Error) -> String {
    match e {
        Error::NotFound(t) => format!("not found: {t}"),
        Error::InvalidInput(t) => format!("invalid input: {t}"),
        Error::Denied(t) => format!("denied: {t}"),
        Error::Timeout(t) => format!("timeout: {t}"),
        Error::Unavailable(t) => format!("unavailable: {t}"),
        Error::Internal(t) => format!("internal: {t}"),
    }
}

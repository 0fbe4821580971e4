//! Asker: forwards a question to another agent and reports its answer.
//!
//! `ask AGENT TEXT` asks the agent named AGENT; `cap CAPABILITY TEXT` asks
//! whichever agent declares CAPABILITY; `self` tries to ask itself (the
//! host refuses, because the agent would wait on its own mailbox); `tell
//! AGENT TEXT` sends without waiting (durable fire-and-forget).

use caxton_guest_sdk::{
    Agent, AgentInfo, Error, Message, Performative, Reply, export_agent, messaging,
};

struct Asker {
    name: String,
}

fn split_first(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    let (head, rest) = text.split_once(' ')?;
    Some((head, rest.trim()))
}

impl Agent for Asker {
    fn new(_config_json: &str) -> Result<Self, Error> {
        Ok(Asker {
            name: String::new(),
        })
    }

    fn describe() -> AgentInfo {
        AgentInfo::new(
            "Asks other agents: `ask AGENT TEXT`, `cap CAPABILITY TEXT`, or tells one without waiting: `tell AGENT TEXT`",
            &["asking"],
        )
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        if let Some(receiver) = &msg.receiver {
            self.name = receiver.clone();
        }
        let answer = match split_first(&msg.content) {
            Some(("ask", rest)) => {
                let (agent, text) = split_first(rest).unwrap_or((rest, ""));
                messaging::ask(agent, text)
            }
            Some(("cap", rest)) => {
                let (capability, text) = split_first(rest).unwrap_or((rest, ""));
                messaging::ask_capability(capability, text)
            }
            // Fire-and-forget: the host queues it durably before `send`
            // returns; no answer comes back here.
            Some(("tell", rest)) => {
                let (agent, text) = split_first(rest).unwrap_or((rest, ""));
                let outgoing = messaging::to_agent(agent, Performative::Inform, text);
                return Ok(Some(match messaging::send(&outgoing) {
                    Ok(()) => Reply::inform(format!("told {agent}")),
                    Err(e) => Reply::failure(format!("telling failed: {e}")),
                }));
            }
            _ if msg.content.trim() == "self" => messaging::ask(&self.name, "hello me"),
            _ => {
                return Ok(Some(Reply::not_understood(
                    "expected `ask AGENT TEXT`, `cap CAPABILITY TEXT`, `tell AGENT TEXT` or `self`",
                )));
            }
        };
        match answer {
            Ok(content) => Ok(Some(Reply::inform(format!("they said: {content}")))),
            Err(e) => Ok(Some(Reply::failure(format!("asking failed: {e}")))),
        }
    }
}

export_agent!(Asker);

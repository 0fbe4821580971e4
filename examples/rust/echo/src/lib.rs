//! Echo: answers every request with its own content. The smallest useful agent.

use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent};

struct Echo;

impl Agent for Echo {
    fn new(_config_json: &str) -> Result<Self, Error> {
        Ok(Echo)
    }

    fn describe() -> AgentInfo {
        AgentInfo::new("Replies with the content it receives", &["echo"])
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        Ok(Some(Reply::inform(msg.content)))
    }
}

export_agent!(Echo);

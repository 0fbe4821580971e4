//! Ask-LLM: passes each message to the server's LLM and replies with the
//! model's answer — the smallest WASM agent that uses the `llm` import. It
//! must be deployed with `"llm": true` (`caxton agents deploy --llm`): the
//! model is the operator's, and so is its bill.

use caxton_guest_sdk::llm::{self, ChatMessage, ChatRequest, Role};
use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent};

struct AskLlm;

impl Agent for AskLlm {
    fn new(_config_json: &str) -> Result<Self, Error> {
        Ok(AskLlm)
    }

    fn describe() -> AgentInfo {
        AgentInfo::new("Answers with the server's LLM", &["ask-llm"])
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        let answer = llm::chat(&ChatRequest {
            model: None,
            messages: vec![ChatMessage::text(Role::User, msg.content)],
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
        })?;
        Ok(Some(Reply::inform(answer.content.unwrap_or_default())))
    }
}

export_agent!(AskLlm);

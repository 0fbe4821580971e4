//! `caxton:agent/llm`: chat completion. Not provided by this host version
//! yet; calls answer `unavailable`.

use super::not_available;
use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent::llm::{self, ChatRequest, ChatResponse};
use crate::runtime::bindings::caxton::agent::types::Error;

impl llm::Host for HostState {
    async fn chat(&mut self, _request: ChatRequest) -> Result<ChatResponse, Error> {
        Err(not_available("llm"))
    }
}

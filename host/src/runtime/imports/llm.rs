//! `caxton:agent/llm`: chat completion through the configured providers
//! (`crate::llm`), with the calling agent's provider choice.

use crate::llm::{self as host, LlmError};
use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent0_1_0::llm::{
    self, ChatMessage, ChatRequest, ChatResponse, FinishReason, Role, ToolCall, Usage,
};
use crate::runtime::bindings::caxton::agent0_1_0::types::Error;
use crate::trace::SpanKind;

fn role(r: Role) -> host::Role {
    match r {
        Role::System => host::Role::System,
        Role::User => host::Role::User,
        Role::Assistant => host::Role::Assistant,
        Role::Tool => host::Role::Tool,
    }
}

fn call_to_host(c: ToolCall) -> host::ToolCall {
    host::ToolCall {
        id: c.id,
        name: c.name,
        arguments_json: c.arguments_json,
    }
}

fn message(m: ChatMessage) -> host::ChatMessage {
    host::ChatMessage {
        role: role(m.role),
        content: m.content,
        tool_calls: m.tool_calls.into_iter().map(call_to_host).collect(),
        tool_call_id: m.tool_call_id,
    }
}

fn to_wit_error(e: LlmError) -> Error {
    let text = e.to_string();
    match e {
        LlmError::Unavailable(_) | LlmError::RateLimited { .. } | LlmError::Transient { .. } => {
            Error::Unavailable(text)
        }
        LlmError::Timeout { .. } => Error::Timeout(text),
        LlmError::Invalid(_) => Error::InvalidInput(text),
        LlmError::Provider { .. } => Error::Internal(text),
    }
}

impl llm::Host for HostState {
    async fn chat(&mut self, request: ChatRequest) -> Result<ChatResponse, Error> {
        if !self.agent.llm_granted {
            return Err(Error::Denied(format!(
                "agent `{}` may not use the LLM: it spends the operator's provider key, so it \
                 is granted at deploy (`\"llm\": true`, or `caxton agents deploy --llm`)",
                self.agent.name
            )));
        }
        let mut request = host::ChatRequest {
            model: request.model,
            messages: request.messages.into_iter().map(message).collect(),
            tools: request
                .tools
                .into_iter()
                .map(|t| host::ToolSpec {
                    name: t.name,
                    description: t.description,
                    parameters_schema: t.parameters_schema,
                })
                .collect(),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
        };
        let agent = self.agent.clone();
        let replay = self.replay();
        if let Some(replay) = &replay {
            let asked = serde_json::to_value(&request).unwrap_or_default();
            if let crate::recordings::replay::Served::Recorded(answer) = replay.model_call(&asked) {
                let response = answer
                    .and_then(|v| {
                        serde_json::from_value::<host::ChatResponse>(v).map_err(|e| e.to_string())
                    })
                    .map_err(Error::Internal)?;
                if let (Some(sink), Some(text)) = (&self.stream, &response.content)
                    && response.tool_calls.is_empty()
                {
                    let _ = sink.send(text.clone());
                }
                return Ok(to_wit_response(response));
            }
        }
        let sink = self.stream.clone();
        let (provider, model) = agent
            .llm
            .resolve(agent.llm_provider.as_deref(), request.model.as_deref());
        // As the agent asked it (before a budget lowers max_tokens): what
        // a replay compares with. Turned into JSON by the recorder.
        let recorded_request = self.recording().then(|| request.clone());
        let budgets = agent.budgets.get().cloned();
        let estimated_in = crate::budgets::estimate_tokens(
            request
                .messages
                .iter()
                .map(|m| m.content.as_str())
                .chain(request.tools.iter().map(|t| t.parameters_schema.as_str())),
        );
        let call = crate::budgets::Call {
            agent: &agent.name,
            principal: self.sender.as_deref(),
            model: &model,
            estimated_in,
            conversation: self.span.as_ref().map(|s| s.conversation_id.as_str()),
        };
        if let Some(budgets) = &budgets {
            match budgets.check(&call) {
                Ok(None) => {}
                Ok(Some(room)) => {
                    let room = u32::try_from(room).unwrap_or(u32::MAX);
                    request.max_tokens = Some(request.max_tokens.map_or(room, |m| m.min(room)));
                }
                Err(e) => {
                    let text = e.to_string();
                    agent.log.push("host", &text);
                    tracing::warn!(agent = %agent.name, "{text}");
                    if let Some(recorded_request) = recorded_request {
                        let (agent, error) = (agent.name.clone(), text.clone());
                        self.record_later(move || crate::recordings::Event::Llm {
                            agent,
                            provider,
                            model,
                            request: serde_json::to_value(&recorded_request).unwrap_or_default(),
                            response: None,
                            error: Some(error),
                            refused: true,
                            elapsed_ms: 0.0,
                        });
                    }
                    return Err(Error::Denied(text));
                }
            }
        }
        let span = self.child_span();
        let started = std::time::Instant::now();
        let result = agent
            .llm
            .chat_with(agent.llm_provider.as_deref(), request, sink)
            .await;
        if let Some(recorded_request) = recorded_request {
            let (name, provider, model) = (agent.name.clone(), provider.clone(), model.clone());
            let response = result.as_ref().ok().cloned();
            let error = result.as_ref().err().map(ToString::to_string);
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            self.record_later(move || crate::recordings::Event::Llm {
                agent: name,
                provider,
                model,
                request: serde_json::to_value(&recorded_request).unwrap_or_default(),
                response: response.and_then(|r| serde_json::to_value(r).ok()),
                error,
                refused: false,
                elapsed_ms,
            });
        }
        if let (Some(budgets), Ok(response)) = (&budgets, &result) {
            match budgets.record(
                &call,
                u64::from(response.prompt_tokens),
                u64::from(response.completion_tokens),
            ) {
                Ok(warnings) => {
                    for warning in warnings {
                        agent.log.push("host", &warning);
                        tracing::warn!(agent = %agent.name, "{warning}");
                    }
                }
                Err(e) => {
                    tracing::error!(agent = %agent.name, error = %e, "could not record LLM spend")
                }
            }
        }
        if let Some(span) = span {
            let (prompt_tokens, completion_tokens) = result
                .as_ref()
                .map_or((0, 0), |r| (r.prompt_tokens, r.completion_tokens));
            let kind = SpanKind::Llm {
                provider,
                model,
                prompt_tokens,
                completion_tokens,
            };
            let error = result.as_ref().err().map(ToString::to_string);
            agent.trace.finish(span, kind, error.as_deref());
        }
        let response = result.map_err(to_wit_error)?;
        Ok(to_wit_response(response))
    }
}

fn to_wit_response(response: host::ChatResponse) -> ChatResponse {
    ChatResponse {
        content: response.content,
        tool_calls: response
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments_json: c.arguments_json,
            })
            .collect(),
        finish_reason: match response.finish_reason {
            host::FinishReason::Stop => FinishReason::Stop,
            host::FinishReason::Length => FinishReason::Length,
            host::FinishReason::ToolCalls => FinishReason::ToolCalls,
        },
        usage: Usage {
            prompt_tokens: response.prompt_tokens,
            completion_tokens: response.completion_tokens,
        },
    }
}

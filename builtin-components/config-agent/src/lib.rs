//! The config-agent interpreter: the component that runs every agent
//! defined by a markdown (or TOML) file.
//!
//! The host parses and validates the file, then instantiates this component
//! once per config agent with the definition as its `init` config. For each
//! message it:
//! 1. assembles the prompt — system prompt and user template with
//!    `{{request}}`, `{{parameters.*}}`, `{{memory_context}}` (a memory
//!    search when memory is enabled) and `{{conversation_history}}`, plus the
//!    recent turns of the conversation as chat messages;
//! 2. calls the host `llm` with the tools the agent may use (the host lists
//!    only those, and refuses any other at call time);
//! 3. runs the tool-call loop, at most `max_tool_steps` model calls;
//! 4. answers `inform` with the model's text, or `failure` saying why not.
//!
//! Everything durable goes through the host: the conversation in the
//! agent's key-value store, facts in its memory.

mod definition;
mod prompt;

use std::sync::OnceLock;

use caxton_guest_sdk::llm::{self, ChatMessage, ChatRequest, FinishReason, Role, ToolDefinition};
use caxton_guest_sdk::memory::{self, Entity, Scope};
use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent, kv, log, tools};
use serde::{Deserialize, Serialize};

use definition::Definition;

/// The definition, for `describe` (which has no instance to ask).
static DEFINITION: OnceLock<Definition> = OnceLock::new();

/// Results longer than this are cut before going back to the model: a tool
/// answering megabytes must not blow the context window.
const MAX_TOOL_RESULT_CHARS: usize = 8_000;

struct ConfigAgent {
    def: Definition,
}

/// One exchange, as kept in the conversation history.
#[derive(Serialize, Deserialize)]
struct Turn {
    user: String,
    assistant: String,
}

/// History is keyed by who is talking and which conversation: the host
/// sets `sender` from the caller's identity, so one caller cannot read
/// another's conversation by guessing its id. The sender's length comes
/// first so no (sender, id) pair can spell another's key.
fn history_key(msg: &Message) -> String {
    format!(
        "conversation/{}:{}/{}",
        msg.sender.len(),
        msg.sender,
        msg.conversation_id.as_deref().unwrap_or("default")
    )
}

/// What the OpenAI-compatible API sends (`application/vnd.caxton.chat+json`):
/// the whole conversation, which the client keeps. The agent answers from
/// it and stores no history of its own for it.
const CHAT_CONTENT_TYPE: &str = "application/vnd.caxton.chat+json";

#[derive(Deserialize)]
struct Chat {
    messages: Vec<ChatLine>,
}

#[derive(Deserialize)]
struct ChatLine {
    role: String,
    content: String,
}

/// One earlier message of the conversation.
struct Said {
    role: Role,
    text: String,
}

fn said_from_turns(history: &[Turn]) -> Vec<Said> {
    history
        .iter()
        .flat_map(|t| {
            [
                Said {
                    role: Role::User,
                    text: t.user.clone(),
                },
                Said {
                    role: Role::Assistant,
                    text: t.assistant.clone(),
                },
            ]
        })
        .collect()
}

/// A chat split into the request (its last message, the user's), what
/// was said before it, and the client's own system instructions.
fn split_chat(content: &str) -> Result<(String, Vec<Said>, String), String> {
    let chat: Chat = serde_json::from_str(content)
        .map_err(|e| format!("the chat is not valid JSON of the expected shape: {e}"))?;
    let mut lines = chat.messages;
    let last = match lines.pop() {
        Some(line) if line.role == "user" => line.content,
        _ => return Err("the chat's last message must be the user's".into()),
    };
    let mut system = Vec::new();
    let mut earlier = Vec::new();
    for line in lines {
        match line.role.as_str() {
            "system" => system.push(line.content),
            "user" => earlier.push(Said {
                role: Role::User,
                text: line.content,
            }),
            "assistant" => earlier.push(Said {
                role: Role::Assistant,
                text: line.content,
            }),
            other => return Err(format!("the chat has a message of role `{other}`")),
        }
    }
    Ok((last, earlier, system.join("\n\n")))
}

fn load_history(key: &str) -> Vec<Turn> {
    match kv::get_string(key) {
        Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn memory_scope(def: &Definition) -> Scope {
    match def.memory.scope.as_deref() {
        Some("workspace") => Scope::Workspace,
        Some("global") => Scope::Global,
        _ => Scope::Agent,
    }
}

fn memory_context(def: &Definition, request: &str) -> String {
    if !def.memory.enabled {
        return String::new();
    }
    match memory::search(memory_scope(def), request, 5) {
        Ok(hits) => hits
            .into_iter()
            .map(|h| {
                format!(
                    "- {} ({}): {}",
                    h.entity.name,
                    h.entity.entity_type,
                    h.matched.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => {
            log::warn(&format!(
                "memory search failed, answering without it: {e:?}"
            ));
            String::new()
        }
    }
}

fn cut(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… [cut at {max} characters]", &text[..at]),
        None => text,
    }
}

impl ConfigAgent {
    /// The model's messages: the system prompt (with the client's own
    /// instructions after it), what was said before, then the request.
    fn messages(&self, request: &str, earlier: &[Said], client_system: &str) -> Vec<ChatMessage> {
        let def = &self.def;
        let memory_context = memory_context(def, request);
        let transcript = earlier
            .iter()
            .map(|s| {
                let who = if s.role == Role::User {
                    "User"
                } else {
                    "Assistant"
                };
                format!("{who}: {}", s.text)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let ctx = prompt::Context {
            request,
            parameters: &def.parameters,
            memory_context: &memory_context,
            conversation_history: &transcript,
        };
        let mut system = prompt::render(&def.system_prompt, &ctx);
        let template = def.user_prompt_template.as_deref().unwrap_or("{{request}}");
        // Memory found something but the author's template does not place
        // it: it goes into the system prompt rather than being dropped.
        if !memory_context.is_empty()
            && !template.contains("memory_context")
            && !def.system_prompt.contains("memory_context")
        {
            system.push_str("\n\nRelevant facts from memory:\n");
            system.push_str(&memory_context);
        }
        let mut messages = vec![ChatMessage::text(Role::System, system)];
        if !client_system.is_empty() {
            messages.push(ChatMessage::text(Role::System, client_system.to_string()));
        }
        // The transcript is in the prompt already when the template asks for it.
        if !template.contains("conversation_history") {
            for said in earlier {
                messages.push(ChatMessage::text(said.role, said.text.clone()));
            }
        }
        messages.push(ChatMessage::text(
            Role::User,
            prompt::render(template, &ctx),
        ));
        messages
    }

    /// Stores the exchange in memory when the definition asks for it.
    fn remember(&self, sender: &str, request: &str, answer: &str) {
        if !(self.def.memory.enabled && self.def.memory.auto_store) {
            return;
        }
        let fact = format!("Asked: {request} — answered: {answer}");
        let entity = Entity::new(
            &format!("conversation with {sender}"),
            "conversation",
            &[&cut(fact, 3_000)],
        );
        if let Err(e) = memory::create_entities(memory_scope(&self.def), &[entity]) {
            log::warn(&format!("could not store the exchange in memory: {e:?}"));
        }
    }

    /// The tool-call loop: model, tools, model… until it answers in text.
    fn run(&self, mut messages: Vec<ChatMessage>) -> Result<String, String> {
        let tool_defs: Vec<ToolDefinition> = tools::list_tools()
            .into_iter()
            .map(|t| ToolDefinition {
                name: t.name,
                description: t.description,
                parameters_schema: t.parameters_schema,
            })
            .collect();
        let settings = self.def.llm.clone().unwrap_or_default();
        for _ in 0..self.def.max_tool_steps.max(1) {
            let request = ChatRequest {
                model: settings.model.clone(),
                messages: messages.clone(),
                tools: tool_defs.clone(),
                temperature: settings.temperature,
                max_tokens: settings.max_tokens,
            };
            let response = llm::chat(&request)
                .map_err(|e| format!("the LLM call failed: {}", describe(&e)))?;
            if response.tool_calls.is_empty() {
                let text = response.content.unwrap_or_default();
                if text.trim().is_empty() && response.finish_reason == FinishReason::Length {
                    return Err(
                        "the model ran out of tokens before answering; raise llm.max_tokens".into(),
                    );
                }
                return Ok(text);
            }
            messages.push(ChatMessage {
                role: Role::Assistant,
                content: response.content.unwrap_or_default(),
                tool_calls: response.tool_calls.clone(),
                tool_call_id: None,
            });
            for call in response.tool_calls {
                let result = match tools::invoke(&call.name, &call.arguments_json) {
                    Ok(json) => json,
                    Err(e) => serde_json::json!({"error": describe(&e)}).to_string(),
                };
                log::debug(&format!(
                    "tool {} answered {} bytes",
                    call.name,
                    result.len()
                ));
                messages.push(ChatMessage {
                    role: Role::Tool,
                    content: cut(result, MAX_TOOL_RESULT_CHARS),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id),
                });
            }
        }
        Err(format!(
            "the model was still calling tools after {} steps; stopped (raise max_tool_steps if the task needs more)",
            self.def.max_tool_steps.max(1)
        ))
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::NotFound(m)
        | Error::InvalidInput(m)
        | Error::Denied(m)
        | Error::Timeout(m)
        | Error::Unavailable(m)
        | Error::Internal(m) => m.clone(),
    }
}

impl Agent for ConfigAgent {
    fn new(config_json: &str) -> Result<Self, Error> {
        let def: Definition = serde_json::from_str(config_json).map_err(|e| {
            Error::invalid_input(format!("the config agent definition is not valid: {e}"))
        })?;
        let _ = DEFINITION.set(def.clone());
        Ok(ConfigAgent { def })
    }

    fn describe() -> AgentInfo {
        match DEFINITION.get() {
            Some(def) => AgentInfo {
                description: def
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Config agent {}", def.name)),
                capabilities: def.capabilities.clone(),
            },
            None => AgentInfo::new("Config agent (not initialised)", &[]),
        }
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        if msg.content.trim().is_empty() {
            return Ok(Some(Reply::not_understood(
                "the message is empty; send the request as text",
            )));
        }
        if msg.content_type == CHAT_CONTENT_TYPE {
            let (request, earlier, client_system) = match split_chat(&msg.content) {
                Ok(parts) => parts,
                Err(why) => return Ok(Some(Reply::not_understood(&why))),
            };
            let answer = match self.run(self.messages(&request, &earlier, &client_system)) {
                Ok(answer) => answer,
                Err(reason) => return Ok(Some(Reply::failure(reason))),
            };
            self.remember(&msg.sender, &request, &answer);
            return Ok(Some(Reply::inform(answer)));
        }
        let key = history_key(&msg);
        let mut history = load_history(&key);
        let keep = self.def.conversation.max_turns as usize;
        if history.len() > keep {
            history.drain(..history.len() - keep);
        }
        let answer = match self.run(self.messages(&msg.content, &said_from_turns(&history), "")) {
            Ok(answer) => answer,
            Err(reason) => return Ok(Some(Reply::failure(reason))),
        };
        history.push(Turn {
            user: msg.content.clone(),
            assistant: answer.clone(),
        });
        if history.len() > keep {
            history.drain(..history.len() - keep);
        }
        if let Ok(text) = serde_json::to_string(&history)
            && let Err(e) = kv::set(&key, text)
        {
            log::warn(&format!("could not save the conversation: {e:?}"));
        }
        self.remember(&msg.sender, &msg.content, &answer);
        Ok(Some(Reply::inform(answer)))
    }
}

export_agent!(ConfigAgent);

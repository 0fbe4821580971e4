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
//! 3. runs the tool-call loop: at most `max_tool_steps` model calls with
//!    tools, then (or at the first repeated identical call) one without;
//! 4. answers `inform` with the model's text, or `failure` saying why not.
//!
//! In a contract net ([`bidding`]) a `cfp` asks the model for a bid and is
//! answered `propose` or `refuse`; the `accept-proposal` that may follow is
//! handled like any request, a `reject-proposal` is not answered.
//!
//! Everything durable goes through the host: the conversation in the
//! agent's key-value store (bounded, see [`history`]), facts in its memory.

mod bidding;
mod definition;
mod history;
mod prompt;

use std::sync::OnceLock;

use caxton_guest_sdk::llm::{self, ChatMessage, ChatRequest, FinishReason, Role, ToolDefinition};
use caxton_guest_sdk::memory::{self, Entity, Scope};
use caxton_guest_sdk::{
    Agent, AgentInfo, Error, Message, Performative, Reply, export_agent, log, tools,
};
use serde::Deserialize;

use definition::Definition;
use history::{Conversation, Turn};

/// The definition, for `describe` (which has no instance to ask).
static DEFINITION: OnceLock<Definition> = OnceLock::new();

/// Results longer than this are cut before going back to the model: a tool
/// answering megabytes must not blow the context window.
const MAX_TOOL_RESULT_CHARS: usize = 8_000;

struct ConfigAgent {
    def: Definition,
    /// Conversations stored before the use index have been indexed (once
    /// per instance; the store remembers it across instances).
    older_conversations_indexed: bool,
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
    ///
    /// Small models (the embedded local one among them) often call the
    /// same tool with the same arguments again instead of answering. So
    /// the loop is finished for them: a repeated identical call gets the
    /// earlier result again, and the next model call — like the call after
    /// `max_tool_steps` calls with tools — offers no tools and asks for
    /// the answer. Only a model that still calls tools then is a failure.
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
        let steps = self.def.max_tool_steps.max(1);
        // (tool, arguments) → the result it gave, for repeated calls.
        let mut answered: Vec<((String, String), String)> = Vec::new();
        let mut must_answer = tool_defs.is_empty();
        // `steps` model calls may use tools; one more, without, must answer.
        for step in 1..=steps + 1 {
            let last = must_answer || step > steps;
            if last && !tool_defs.is_empty() {
                messages.push(ChatMessage::text(Role::User, FINISH_NOW.to_string()));
            }
            let request = ChatRequest {
                model: settings.model.clone(),
                messages: messages.clone(),
                tools: if last { Vec::new() } else { tool_defs.clone() },
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
            if last {
                return Err(format!(
                    "the model was still calling tools after {step} steps, though told to answer without them; stopped (raise max_tool_steps if the task needs more)"
                ));
            }
            messages.push(ChatMessage {
                role: Role::Assistant,
                content: response.content.unwrap_or_default(),
                tool_calls: response.tool_calls.clone(),
                tool_call_id: None,
            });
            for call in response.tool_calls {
                let key = (call.name.clone(), canonical_arguments(&call.arguments_json));
                let earlier = answered
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, r)| r.clone());
                let result = match earlier {
                    Some(result) => {
                        must_answer = true;
                        log::debug(&format!(
                            "tool {} called again with the same arguments",
                            call.name
                        ));
                        result
                    }
                    None => {
                        let result = match tools::invoke(&call.name, &call.arguments_json) {
                            Ok(json) => json,
                            Err(e) => serde_json::json!({"error": describe(&e)}).to_string(),
                        };
                        log::debug(&format!(
                            "tool {} answered {} bytes",
                            call.name,
                            result.len()
                        ));
                        let result = cut(result, MAX_TOOL_RESULT_CHARS);
                        answered.push((key, result.clone()));
                        result
                    }
                };
                messages.push(ChatMessage {
                    role: Role::Tool,
                    content: result,
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id),
                });
            }
        }
        Err("the tool-call loop ended without an answer".into())
    }
}

/// Said to the model when it must answer from the tool results it has.
const FINISH_NOW: &str = "You have the tool results above. Answer the request now, in plain text, without calling any tool.";

/// Arguments compared as JSON values (key order and spacing aside), or as
/// text when they are not JSON.
fn canonical_arguments(arguments: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(value) => value.to_string(),
        Err(_) => arguments.trim().to_string(),
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
        Ok(ConfigAgent {
            def,
            older_conversations_indexed: false,
        })
    }

    fn describe() -> AgentInfo {
        match DEFINITION.get() {
            Some(def) => AgentInfo {
                description: def
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Config agent {}", def.name)),
                capabilities: def.capabilities.clone(),
                subscriptions: def.subscriptions.clone(),
            },
            None => AgentInfo::new("Config agent (not initialised)", &[]),
        }
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        match msg.performative {
            Performative::Cfp => {
                let messages = self.messages(&bidding::prompt(&msg.content), &[], "");
                return Ok(Some(match self.run(messages) {
                    Ok(answer) => bidding::reply_from(&answer),
                    Err(reason) => Reply::failure(reason),
                }));
            }
            Performative::RejectProposal => return Ok(None),
            _ => {}
        }
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
        let limits = &self.def.history_limits;
        if !self.older_conversations_indexed {
            history::index_older_conversations(history::now_ms());
            self.older_conversations_indexed = true;
        }
        let mut conversation = Conversation::load(&msg, limits, history::now_ms());
        let keep = self.def.conversation.max_turns as usize;
        let turns = &mut conversation.turns;
        if turns.len() > keep {
            turns.drain(..turns.len() - keep);
        }
        let answer = match self.run(self.messages(&msg.content, &said_from_turns(turns), "")) {
            Ok(answer) => answer,
            Err(reason) => return Ok(Some(Reply::failure(reason))),
        };
        turns.push(Turn {
            user: msg.content.clone(),
            assistant: answer.clone(),
        });
        if turns.len() > keep {
            turns.drain(..turns.len() - keep);
        }
        conversation.save(limits, history::now_ms(), &msg.id);
        self.remember(&msg.sender, &msg.content, &answer);
        Ok(Some(Reply::inform(answer)))
    }
}

export_agent!(ConfigAgent);

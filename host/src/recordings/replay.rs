//! Replaying a recorded conversation: its inbound messages are sent again
//! to the agent as it is now (or to another version of it), and while
//! that run lasts (a conversation of its own) the agent's model calls,
//! tool calls, memory calls and asks of other agents are answered from the
//! recording, in order, without calling the provider, the tool, the memory
//! or the other agent. Each call is compared with the recorded one; the
//! first that differs (a different prompt, a different tool call) is
//! where the new run diverges. With `live_llm`, the model is called for
//! real from there on.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use super::Event;

/// Where the new run differs from the recorded one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Divergence {
    /// 1-based, counting model, tool and memory calls, asks and replies
    /// in order.
    pub step: u32,
    /// `model_request`, `tool_call`, `memory_call`, `ask`, `reply`, or
    /// `extra_` and one of the first four (a call the recording lacks).
    pub kind: String,
    /// A line diff of the recorded (`-`) and new (`+`) value.
    pub diff: String,
}

/// A recorded model call.
struct Call {
    request: serde_json::Value,
    response: Option<serde_json::Value>,
    error: Option<String>,
}

/// A recorded call of a tool, of the memory, or of another agent: what
/// was called, with what, and its answer (all as text).
struct HostCall {
    name: String,
    arguments: String,
    answer: Result<String, String>,
}

/// The recorded host calls of one kind, in order.
struct Calls {
    /// What a divergence of this kind is called (`tool_call`, …).
    kind: &'static str,
    queue: Mutex<VecDeque<HostCall>>,
}

impl Calls {
    fn new(kind: &'static str) -> Calls {
        Calls {
            kind,
            queue: Mutex::new(VecDeque::new()),
        }
    }

    fn push(&mut self, call: HostCall) {
        self.queue
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(call);
    }

    fn pop(&self) -> Option<HostCall> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

fn answer(result: Option<String>, error: Option<String>) -> Result<String, String> {
    result.ok_or_else(|| error.unwrap_or_default())
}

fn json_text(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// What the `llm` import does with a call during a replay.
pub enum Served {
    /// The recorded answer (a response as JSON, or the recorded error).
    Recorded(Result<serde_json::Value, String>),
    /// Call the model for real.
    Live,
}

/// One replay in progress.
pub struct ReplaySession {
    /// The agent whose calls are served: the recorded one, or the other
    /// version of it the replay runs.
    agent: String,
    calls: Mutex<VecDeque<Call>>,
    tools: Calls,
    memory: Calls,
    asks: Calls,
    live_llm: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A fork past its recorded history: everything is live.
    forked: bool,
    step: u32,
    diverged: bool,
    divergences: Vec<Divergence>,
    served: u32,
    live: u32,
}

/// A line diff: lines only in `old` with `-`, only in `new` with `+`,
/// around their common prefix and suffix.
pub fn diff(old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = Vec::new();
    if prefix > 0 {
        out.push(format!("  {}", a[prefix - 1]));
    }
    out.extend(a[prefix..a.len() - suffix].iter().map(|l| format!("- {l}")));
    out.extend(b[prefix..b.len() - suffix].iter().map(|l| format!("+ {l}")));
    if suffix > 0 {
        out.push(format!("  {}", a[a.len() - suffix]));
    }
    out.join("\n")
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

impl ReplaySession {
    /// A replay of `agent`'s part of `events`, served to the agent named
    /// `runs_as` (the same agent, or another version of it).
    pub fn new(agent: &str, runs_as: &str, events: &[Event], live_llm: bool) -> ReplaySession {
        let mut calls = VecDeque::new();
        let (mut tools, mut memory, mut asks) = (
            Calls::new("tool_call"),
            Calls::new("memory_call"),
            Calls::new("ask"),
        );
        for event in events.iter().cloned() {
            match event {
                Event::Llm {
                    agent: a,
                    request,
                    response,
                    error,
                    ..
                } if a == agent => calls.push_back(Call {
                    request,
                    response,
                    error,
                }),
                Event::Tool {
                    agent: a,
                    tool,
                    arguments,
                    result,
                    error,
                    ..
                } if a == agent => tools.push(HostCall {
                    name: tool,
                    arguments,
                    answer: answer(result, error),
                }),
                Event::Memory {
                    agent: a,
                    function,
                    arguments,
                    result,
                    error,
                    ..
                } if a == agent => memory.push(HostCall {
                    name: function,
                    arguments: json_text(&arguments),
                    answer: answer(
                        result.as_ref().map(json_text),
                        error.as_ref().map(json_text),
                    ),
                }),
                Event::Ask {
                    agent: a,
                    to,
                    content,
                    reply,
                    error,
                    ..
                } if a == agent => asks.push(HostCall {
                    name: to,
                    arguments: content,
                    answer: answer(reply, error),
                }),
                _ => {}
            }
        }
        ReplaySession {
            agent: runs_as.to_string(),
            calls: Mutex::new(calls),
            tools,
            memory,
            asks,
            live_llm,
            state: Mutex::new(State::default()),
        }
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn diverge(&self, state: &mut State, kind: &str, diff: String) {
        if state.divergences.len() < 100 {
            state.divergences.push(Divergence {
                step: state.step,
                kind: kind.into(),
                diff,
            });
        }
        state.diverged = true;
    }

    /// From now on every model and tool call is made for real (a fork:
    /// the recorded history is behind, the new message ahead).
    pub fn go_live(&self) {
        self.state().forked = true;
    }

    /// Whether calls are made for real now (a fork past its history).
    pub fn is_live(&self) -> bool {
        self.state().forked
    }

    /// The agent asks the model `request` (as JSON): the recorded answer,
    /// or a live call once the run diverged and `live_llm` is set.
    pub fn model_call(&self, request: &serde_json::Value) -> Served {
        let mut state = self.state();
        state.step += 1;
        if state.forked || (state.diverged && self.live_llm) {
            state.live += 1;
            return Served::Live;
        }
        let recorded = self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let Some(recorded) = recorded else {
            self.diverge(&mut state, "extra_model_call", diff("", &pretty(request)));
            if self.live_llm {
                state.live += 1;
                return Served::Live;
            }
            return Served::Recorded(Err(
                "replay: the recording has no model call left for this one (the new run diverged; --live-llm calls the model from here)".into(),
            ));
        };
        if &recorded.request != request {
            let d = diff(&pretty(&recorded.request), &pretty(request));
            self.diverge(&mut state, "model_request", d);
            if self.live_llm {
                state.live += 1;
                return Served::Live;
            }
        }
        state.served += 1;
        Served::Recorded(match (recorded.response, recorded.error) {
            (Some(response), _) => Ok(response),
            (None, error) => Err(error.unwrap_or_else(|| "recorded call failed".into())),
        })
    }

    /// The agent calls `tool`: the recorded result when the call matches
    /// the recorded one, `None` (call it for real) when it does not.
    pub fn tool_call(&self, tool: &str, arguments: &str) -> Option<Result<String, String>> {
        self.serve(&self.tools, tool, arguments)
    }

    /// The agent calls the memory's `function` with `arguments` (JSON):
    /// the recorded answer (JSON text of the result, or of the error) when
    /// the call matches the recorded one, `None` when it does not.
    pub fn memory_call(
        &self,
        function: &str,
        arguments: &serde_json::Value,
    ) -> Option<Result<String, String>> {
        self.serve(&self.memory, function, &json_text(arguments))
    }

    /// The agent asks agent `to` with `content`: the recorded reply (or
    /// error) when the ask matches the recorded one, `None` when it does
    /// not (ask for real).
    pub fn ask(&self, to: &str, content: &str) -> Option<Result<String, String>> {
        self.serve(&self.asks, to, content)
    }

    /// The next recorded call of `calls`' kind, if it is `name(arguments)`;
    /// otherwise a divergence, and `None`.
    fn serve(&self, calls: &Calls, name: &str, arguments: &str) -> Option<Result<String, String>> {
        let mut state = self.state();
        state.step += 1;
        if state.forked {
            return None;
        }
        match calls.pop() {
            Some(r) if r.name == name && r.arguments == arguments => Some(r.answer),
            Some(r) => {
                let d = diff(
                    &format!("{} {}", r.name, r.arguments),
                    &format!("{name} {arguments}"),
                );
                self.diverge(&mut state, calls.kind, d);
                None
            }
            None => {
                let kind = format!("extra_{}", calls.kind);
                self.diverge(&mut state, &kind, diff("", &format!("{name} {arguments}")));
                None
            }
        }
    }

    /// Compares a reply of the new run with the recorded one.
    pub fn reply(&self, recorded: &str, new: &str) {
        let mut state = self.state();
        state.step += 1;
        if recorded != new {
            self.diverge(&mut state, "reply", diff(recorded, new));
        }
    }

    /// (divergences, model calls served from the recording, live calls).
    pub fn outcome(&self) -> (Vec<Divergence>, u32, u32) {
        let state = self.state();
        (state.divergences.clone(), state.served, state.live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_shows_what_changed_in_context() {
        let d = diff("a\nb\nc\nd", "a\nB\nc\nd");
        assert_eq!(d, "  a\n- b\n+ B\n  c");
        assert_eq!(diff("same", "same"), "");
    }
}

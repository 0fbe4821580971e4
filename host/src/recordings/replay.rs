//! Replaying a recorded conversation: its inbound messages are sent again
//! to the agent as it is now, and while that run lasts (a conversation of
//! its own) the agent's model calls and tool calls are answered from the
//! recording, in order, without calling the provider or the tool. Each
//! call is compared with the recorded one; the first that differs (a
//! different prompt, a different tool call) is where the new run
//! diverges. With `live_llm`, the model is called for real from there on.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use super::Event;

/// Where the new run differs from the recorded one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Divergence {
    /// 1-based, counting model calls, tool calls and replies in order.
    pub step: u32,
    /// `model_request`, `tool_call`, `extra_model_call`, `extra_tool_call`
    /// or `reply`.
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

/// A recorded tool call.
struct ToolUse {
    tool: String,
    arguments: String,
    result: Option<String>,
    error: Option<String>,
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
    agent: String,
    calls: Mutex<VecDeque<Call>>,
    tools: Mutex<VecDeque<ToolUse>>,
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
    /// A replay of `agent`'s part of `events`.
    pub fn new(agent: &str, events: &[Event], live_llm: bool) -> ReplaySession {
        let mut calls = VecDeque::new();
        let mut tools = VecDeque::new();
        for event in events {
            match event {
                Event::Llm {
                    agent: a,
                    request,
                    response,
                    error,
                    ..
                } if a == agent => calls.push_back(Call {
                    request: request.clone(),
                    response: response.clone(),
                    error: error.clone(),
                }),
                Event::Tool {
                    agent: a,
                    tool,
                    arguments,
                    result,
                    error,
                    ..
                } if a == agent => tools.push_back(ToolUse {
                    tool: tool.clone(),
                    arguments: arguments.clone(),
                    result: result.clone(),
                    error: error.clone(),
                }),
                _ => {}
            }
        }
        ReplaySession {
            agent: agent.to_string(),
            calls: Mutex::new(calls),
            tools: Mutex::new(tools),
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
        let mut state = self.state();
        state.step += 1;
        if state.forked {
            return None;
        }
        let recorded = self
            .tools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        match recorded {
            Some(r) if r.tool == tool && r.arguments == arguments => {
                Some(r.result.ok_or_else(|| r.error.unwrap_or_default()))
            }
            Some(r) => {
                let d = diff(
                    &format!("{} {}", r.tool, r.arguments),
                    &format!("{tool} {arguments}"),
                );
                self.diverge(&mut state, "tool_call", d);
                None
            }
            None => {
                self.diverge(
                    &mut state,
                    "extra_tool_call",
                    diff("", &format!("{tool} {arguments}")),
                );
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

//! The conversation handed to a local model ([`Turn`], [`ToolDecl`]), and
//! ChatML with Qwen's tool-calling section: the prompt format used when a
//! GGUF carries no chat template of its own (a file that has one is
//! prompted through [`crate::llm::template`]).

use serde_json::Value;

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    System,
    User,
    Assistant,
    /// A tool's result, fed back to the model.
    Tool,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub speaker: Speaker,
    pub content: String,
    /// Tool calls the assistant made in this turn: `(name, arguments)`.
    pub tool_calls: Vec<(String, Value)>,
}

impl Turn {
    /// A turn of plain text, without tool calls.
    pub fn text(speaker: Speaker, content: impl Into<String>) -> Turn {
        Turn {
            speaker,
            content: content.into(),
            tool_calls: Vec::new(),
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDecl {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// Used when the conversation has no system turn (as Qwen's template does).
const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// The prompt text, ending with the opened assistant turn the model completes.
pub fn render(turns: &[Turn], tools: &[ToolDecl]) -> String {
    let mut out = String::new();
    let system: Vec<&str> = turns
        .iter()
        .filter(|t| t.speaker == Speaker::System)
        .map(|t| t.content.as_str())
        .collect();
    let system = if system.is_empty() {
        DEFAULT_SYSTEM.to_string()
    } else {
        system.join("\n\n")
    };
    out.push_str("<|im_start|>system\n");
    out.push_str(&system);
    if !tools.is_empty() {
        out.push_str(
            "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
        );
        for tool in tools {
            let signature = serde_json::json!({
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                }
            });
            out.push('\n');
            out.push_str(&signature.to_string());
        }
        out.push_str(
            "\n</tools>\n\nFor each function call, return a json object with function name and \
             arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
             {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
        );
    }
    out.push_str("<|im_end|>\n");

    let mut i = 0;
    while i < turns.len() {
        let turn = &turns[i];
        match turn.speaker {
            Speaker::System => {}
            Speaker::User => push_turn(&mut out, "user", &turn.content),
            Speaker::Assistant => {
                let mut content = turn.content.clone();
                for (name, arguments) in &turn.tool_calls {
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    let call = serde_json::json!({"name": name, "arguments": arguments});
                    content.push_str(&format!("<tool_call>\n{call}\n</tool_call>"));
                }
                push_turn(&mut out, "assistant", &content);
            }
            Speaker::Tool => {
                // Consecutive tool results share one user turn.
                let mut content = String::new();
                while i < turns.len() && turns[i].speaker == Speaker::Tool {
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    content.push_str("<tool_response>\n");
                    content.push_str(&turns[i].content);
                    content.push_str("\n</tool_response>");
                    i += 1;
                }
                push_turn(&mut out, "user", &content);
                continue;
            }
        }
        i += 1;
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

fn push_turn(out: &mut String, role: &str, content: &str) {
    out.push_str("<|im_start|>");
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
    out.push_str("<|im_end|>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(speaker: Speaker, content: &str) -> Turn {
        Turn::text(speaker, content)
    }

    #[test]
    fn plain_conversation() {
        let prompt = render(
            &[
                turn(Speaker::System, "Be brief."),
                turn(Speaker::User, "Hi"),
            ],
            &[],
        );
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn default_system_prompt_when_none_given() {
        let prompt = render(&[turn(Speaker::User, "Hi")], &[]);
        assert!(prompt.starts_with("<|im_start|>system\nYou are a helpful assistant.<|im_end|>"));
    }

    #[test]
    fn tools_and_a_tool_round_trip() {
        let tools = [ToolDecl {
            name: "get_weather".into(),
            description: "Weather".into(),
            parameters: json!({"type": "object"}),
        }];
        let turns = [
            turn(Speaker::User, "Weather in Paris?"),
            Turn {
                speaker: Speaker::Assistant,
                content: String::new(),
                tool_calls: vec![("get_weather".into(), json!({"city": "Paris"}))],
            },
            turn(Speaker::Tool, "{\"temp\": 21}"),
        ];
        let prompt = render(&turns, &tools);
        let listed = prompt
            .split("<tools>\n")
            .nth(1)
            .and_then(|s| s.split('\n').next())
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON line"));
        assert_eq!(
            listed.expect("a tools section")["function"]["name"],
            "get_weather"
        );
        let call = prompt
            .split("<|im_start|>assistant\n<tool_call>\n")
            .nth(1)
            .and_then(|s| s.split('\n').next())
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON line"));
        assert_eq!(
            call.expect("the call"),
            json!({"name": "get_weather", "arguments": {"city": "Paris"}})
        );
        assert!(prompt.contains(
            "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        ));
    }
}

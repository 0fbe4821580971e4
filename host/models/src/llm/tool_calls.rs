//! Lenient tool-call extraction from a local model's text.
//!
//! Small models asked (in Qwen's format) to answer a tool call inside
//! `<tool_call>…</tool_call>` often drop the tags and write the JSON bare, or
//! wrap it in a fenced ```json block, or spell the keys differently
//! (`tool`/`parameters`). All of those are accepted — but only when the name
//! is one of the tools offered, so a reply that merely contains JSON stays a
//! reply.

use serde_json::{Map, Value};

/// A tool call found in generated text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedToolCall {
    pub name: String,
    /// Always a JSON object (`{}` when the model gave no arguments).
    pub arguments: Value,
}

/// What the model said: free text, tool calls, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReply {
    /// The text with any recognised tool calls removed, trimmed.
    pub text: String,
    pub tool_calls: Vec<ParsedToolCall>,
}

/// Cuts candidate JSON snippets out of text: `(snippets, the rest)`.
type Extractor = fn(&str) -> (Vec<String>, String);

/// Splits `generated` into text and calls of the tools named in `tools`.
pub fn parse_reply(generated: &str, tools: &[&str]) -> ParsedReply {
    if tools.is_empty() {
        return text_only(generated);
    }
    // In order of preference: the documented <tool_call> blocks, fenced
    // code blocks (```json … ```), then bare outermost `{…}` / `[…]` spans.
    let extractors: [Extractor; 3] = [
        |text| take_blocks(text, "<tool_call>", "</tool_call>"),
        take_fenced,
        take_json_spans,
    ];
    for extract in extractors {
        let (snippets, rest) = extract(generated);
        let calls = calls_in(&snippets, tools);
        if !calls.is_empty() {
            return ParsedReply {
                text: rest.trim().to_string(),
                tool_calls: calls,
            };
        }
    }
    text_only(generated)
}

fn text_only(generated: &str) -> ParsedReply {
    ParsedReply {
        text: generated.trim().to_string(),
        tool_calls: Vec::new(),
    }
}

/// Every tool call in the JSON snippets; a snippet that does not parse or
/// names no offered tool contributes nothing.
fn calls_in(snippets: &[String], tools: &[&str]) -> Vec<ParsedToolCall> {
    let mut calls = Vec::new();
    for snippet in snippets {
        let Ok(value) = serde_json::from_str::<Value>(snippet.trim()) else {
            continue;
        };
        match value {
            Value::Array(items) => calls.extend(items.iter().filter_map(|v| as_call(v, tools))),
            other => calls.extend(as_call(&other, tools)),
        }
    }
    calls
}

/// `{"name", "arguments"}` and its variants: `parameters`/`args`/`input` for
/// the arguments, `tool`/`function` for the name, OpenAI's nested
/// `{"function": {"name", "arguments"}}`, and arguments given as a JSON string.
fn as_call(value: &Value, tools: &[&str]) -> Option<ParsedToolCall> {
    let object = value.as_object()?;
    if let Some(inner) = object.get("function").and_then(Value::as_object) {
        return as_call(&Value::Object(inner.clone()), tools);
    }
    let name = ["name", "tool", "function", "tool_name"]
        .iter()
        .find_map(|k| object.get(*k).and_then(Value::as_str))?;
    if !tools.contains(&name) {
        return None;
    }
    let raw = ["arguments", "parameters", "args", "input"]
        .iter()
        .find_map(|k| object.get(*k));
    let arguments = match raw {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return None,
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return None,
    };
    Some(ParsedToolCall {
        name: name.to_string(),
        arguments,
    })
}

/// Cuts out every `open…close` block (an unclosed last block runs to the
/// end: generation may stop right after the JSON).
fn take_blocks(text: &str, open: &str, close: &str) -> (Vec<String>, String) {
    let mut blocks = Vec::new();
    let mut rest = String::new();
    let mut remaining = text;
    while let Some(start) = remaining.find(open) {
        rest.push_str(&remaining[..start]);
        let after = &remaining[start + open.len()..];
        match after.find(close) {
            Some(end) => {
                blocks.push(after[..end].to_string());
                remaining = &after[end + close.len()..];
            }
            None => {
                blocks.push(after.to_string());
                remaining = "";
            }
        }
    }
    rest.push_str(remaining);
    (blocks, rest)
}

/// Cuts out fenced blocks, dropping the info string (`json`) after the fence.
fn take_fenced(text: &str) -> (Vec<String>, String) {
    let (blocks, rest) = take_blocks(text, "```", "```");
    let blocks = blocks
        .into_iter()
        .map(|b| match b.split_once('\n') {
            Some((info, body)) if !info.trim_start().starts_with(['{', '[']) => body.to_string(),
            _ => b,
        })
        .collect();
    (blocks, rest)
}

/// Cuts out balanced top-level `{…}` / `[…]` spans (string-aware).
fn take_json_spans(text: &str) -> (Vec<String>, String) {
    let mut spans = Vec::new();
    let mut rest = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if (bytes[i] == b'{' || bytes[i] == b'[')
            && let Some(end) = balanced_end(bytes, i)
        {
            rest.push_str(&text[last..i]);
            spans.push(text[i..=end].to_string());
            i = end + 1;
            last = i;
            continue;
        }
        i += 1;
    }
    rest.push_str(&text[last..]);
    (spans, rest)
}

/// Index of the bracket closing the one at `start`, skipping strings.
fn balanced_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOOLS: &[&str] = &["get_weather", "memory_store"];

    #[test]
    fn tagged_call() {
        let r = parse_reply(
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            TOOLS,
        );
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "get_weather");
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(r.text, "");
    }

    #[test]
    fn bare_json_as_small_models_write_it() {
        let r = parse_reply(
            "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Berlin\"}}",
            TOOLS,
        );
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Berlin"}));
    }

    #[test]
    fn fenced_json_with_other_key_names() {
        let r = parse_reply(
            "Sure:\n```json\n{\"tool\": \"memory_store\", \"parameters\": {\"name\": \"x\"}}\n```",
            TOOLS,
        );
        assert_eq!(r.tool_calls[0].name, "memory_store");
        assert_eq!(r.text, "Sure:");
    }

    #[test]
    fn arguments_as_a_string_and_nested_function() {
        let r = parse_reply(
            "{\"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}}",
            TOOLS,
        );
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Oslo"}));
    }

    #[test]
    fn unknown_names_and_plain_json_stay_text() {
        let r = parse_reply("{\"name\": \"say_hello\", \"arguments\": {}}", TOOLS);
        assert!(r.tool_calls.is_empty());
        let r = parse_reply("The result is {\"a\": 1}.", TOOLS);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.text, "The result is {\"a\": 1}.");
        let r = parse_reply("{\"name\": \"get_weather\"", TOOLS);
        assert!(r.tool_calls.is_empty(), "unbalanced JSON is not a call");
    }

    #[test]
    fn no_tools_offered_means_text() {
        let r = parse_reply("{\"name\": \"get_weather\", \"arguments\": {}}", &[]);
        assert!(r.tool_calls.is_empty());
    }

    #[test]
    fn several_calls_and_unclosed_tag() {
        let r = parse_reply(
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"memory_store\", \"arguments\": {}}",
            TOOLS,
        );
        assert_eq!(r.tool_calls.len(), 2);
        let r = parse_reply(
            "[{\"name\": \"get_weather\", \"arguments\": {}}, {\"name\": \"memory_store\"}]",
            TOOLS,
        );
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[1].arguments, json!({}));
    }

    #[test]
    fn braces_inside_strings_do_not_confuse_the_scanner() {
        let r = parse_reply(
            "{\"name\": \"memory_store\", \"arguments\": {\"text\": \"a } b { c\"}}",
            TOOLS,
        );
        assert_eq!(r.tool_calls[0].arguments, json!({"text": "a } b { c"}));
    }
}

//! Config agents answered by the real embedded model (Qwen2.5-Coder-0.5B,
//! run in-process with candle): the runbook's greeter, and a tool call
//! chosen by the model, parsed leniently and dispatched.
//!
//! A 0.5B model's wording is not stable across CPUs or library versions, so
//! these tests assert structure — an `inform` reply with text, a tool call
//! recorded in the agent's log — never exact words.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::{Server, pull_once, temp_data_dir};

/// The runbook's greeter, verbatim.
const GREETER: &str = r#"---
name: Greeter
version: "1.0.0"
capabilities:
  - greeting
tools: []
system_prompt: |
  You are a friendly greeter who welcomes users.
---
# Greeter Agent
I help welcome users to Caxton!
"#;

/// A single-step tool task: the model must choose `csv_parser` and pass the
/// text. One model call (the tool still runs; the reply is then a failure
/// saying the step limit was reached) keeps the test short on two cores,
/// where prefill is ~20 tokens/s.
const CSV_READER: &str = r#"---
name: CsvReader
version: "1.0.0"
capabilities:
  - csv-reading
tools:
  - csv_parser
max_tool_steps: 1
llm:
  max_tokens: 64
system_prompt: |
  Always call the csv_parser tool first.
---
"#;

/// Runs `caxton llm pull` once per test run; fails loudly when the model
/// cannot be had (these tests must not pass without it).
fn ensure_local_model() {
    static PULLED: OnceLock<Result<(), String>> = OnceLock::new();
    pull_once(
        &PULLED,
        &["llm", "pull"],
        "the real-model tests need the local LLM",
    );
}

/// A server with no `llm:` section at all: the local model is the default.
fn start(files: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    ensure_local_model();
    let (guard, data) = temp_data_dir();
    let agents: PathBuf = guard.path().join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    for (name, text) in files {
        std::fs::write(agents.join(name), text).expect("write definition");
    }
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, format!("agents:\n  dir: {}\n", agents.display())).expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    (guard, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_greets_and_calls_a_tool() {
    let (_guard, server) = start(&[("greeter.md", GREETER), ("csv-reader.md", CSV_READER)]);

    let (status, body) = server.message("greeter", "Hello! I just joined.").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "inform", "{body}");
    let greeting = body["reply"]["content"].as_str().unwrap_or("");
    assert!(
        greeting.split_whitespace().count() >= 2,
        "the greeter answered with no real text: {body}"
    );

    // The same question as server-sent events: text arrives in pieces
    // before the final reply, and the pieces make up the reply.
    let (tokens, reply, first_token_before_reply) =
        server.stream_message("greeter", "Hi there!").await;
    assert!(
        tokens.len() >= 2,
        "expected several token events, got {tokens:?}"
    );
    assert!(
        first_token_before_reply,
        "the first token arrived with the reply, not before it"
    );
    assert_eq!(reply["reply"]["performative"], "inform", "{reply}");
    assert_eq!(
        tokens.concat().trim(),
        reply["reply"]["content"].as_str().unwrap_or("").trim(),
        "the streamed text is the reply"
    );

    let (status, body) = server
        .message(
            "csv-reader",
            "Parse this CSV and tell me how many rows it has:\nname,age\nann,31\nbob,42",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let performative = body["reply"]["performative"].as_str().unwrap_or("");
    assert!(
        performative == "inform" || performative == "failure",
        "an agent reply, not an error: {body}"
    );
    let (status, logs) = server.get("/api/v1/agents/csv-reader/logs").await;
    assert_eq!(status, 200, "{logs}");
    let lines: Vec<String> = logs["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("call csv_parser")),
        "the model's tool call was not dispatched; reply {body}, log {logs}"
    );
}

/// The prompt the server builds from the model file's own chat template is
/// byte for byte what Jinja2 renders from that template when set up as
/// Hugging Face transformers sets it up, for a conversation with tools,
/// tool calls, two tool results and non-ASCII text, and for a bare one
/// (the template's default system prompt).
#[test]
fn the_model_files_chat_template_renders_as_jinja2_renders_it() {
    use caxton_models::llm::{LocalLlm, Speaker, ToolDecl, Turn};
    use serde_json::json;

    ensure_local_model();
    let path = caxton_models::llm_model_path(&caxton_models::default_cache_dir());
    let llm = LocalLlm::load(&path).expect("load the local model");
    assert_eq!(
        llm.prompt_format(),
        ("gguf", None),
        "the file's template is used"
    );
    let template = llm
        .chat_template()
        .expect("the GGUF carries a chat template");
    let (bos, eos) = template.special_tokens();
    assert_eq!(eos, "<|im_end|>", "EOS text from the file's vocabulary");

    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("template.json");
    std::fs::write(
        &input,
        json!({"template": template.source(), "bos_token": bos, "eos_token": eos}).to_string(),
    )
    .expect("write input");
    let jinja2 = crate::interop::run_script(
        "hf_chat_template.py",
        &[input.to_str().expect("UTF-8 path")],
    );

    let turn = |speaker, content: &str| Turn {
        speaker,
        content: content.into(),
        tool_calls: vec![],
    };
    let tools = [ToolDecl {
        name: "get_weather".into(),
        description: "Current weather for a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }),
    }];
    let with_tools = [
        turn(Speaker::System, "You are terse."),
        turn(Speaker::User, "Weather in Paris? Réponds en français."),
        Turn {
            speaker: Speaker::Assistant,
            content: String::new(),
            tool_calls: vec![("get_weather".into(), json!({"city": "Paris"}))],
        },
        turn(Speaker::Tool, "{\"temp\": 21}"),
        turn(Speaker::Tool, "{\"wind\": \"calm\"}"),
        turn(Speaker::Assistant, "21 °C, calme."),
        turn(Speaker::User, "Merci <3"),
    ];
    let ours = llm.prompt(&with_tools, &tools).expect("render with tools");
    assert_eq!(
        ours,
        jinja2["with_tools"].as_str().expect("a prompt"),
        "with tools"
    );
    assert!(ours.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"), "{ours}");
    let plain = llm
        .prompt(&[turn(Speaker::User, "Hello!")], &[])
        .expect("render plain");
    assert_eq!(plain, jinja2["plain"].as_str().expect("a prompt"), "plain");
    assert!(plain.ends_with("<|im_start|>assistant\n"), "{plain}");
}

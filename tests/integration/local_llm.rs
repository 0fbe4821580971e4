//! Config agents answered by the real embedded model (Qwen2.5-Coder-0.5B,
//! run in-process with candle): the runbook's greeter, and the documented
//! tool-using agent: a tool call chosen by the model, parsed leniently and
//! dispatched, and an answer made from its result.
//!
//! A 0.5B model's wording is not stable across CPUs or library versions, so
//! these tests assert structure — an `inform` reply with text, a tool call
//! recorded in the agent's log, the number the tool answered — never
//! exact words.

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

/// The tool-using agent of docs/CONFIG-AGENTS.md, verbatim (read from
/// the document, so the example there is the one that is tested): the
/// model must call `json_processor`, then answer from its result.
fn json_reader() -> String {
    let doc = std::fs::read_to_string(crate::harness::repo_root().join("docs/CONFIG-AGENTS.md"))
        .expect("docs/CONFIG-AGENTS.md");
    let start = doc
        .find("`agents/json-reader.md`:\n\n```markdown\n")
        .expect("the example's start")
        + "`agents/json-reader.md`:\n\n```markdown\n".len();
    let end = start + doc[start..].find("```").expect("the example's end");
    doc[start..end].to_string()
}

/// How long the tool-using agent may take on two loaded cores: two model
/// calls (one with the tool schemas in the prompt) and the tool.
const TOOL_ANSWER_LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

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
    let reader = json_reader();
    let (_guard, server) = start(&[("greeter.md", GREETER), ("json-reader.md", &reader)]);

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

    // A tool call, its result, and an answer from it, in a stated time.
    let started = std::time::Instant::now();
    let (status, body) = server
        .post(
            "/api/v1/agents/json-reader/message",
            &serde_json::json!({
                "message": "In {\"order\": {\"total\": 42}}, what is order.total?",
                "timeout_ms": TOOL_ANSWER_LIMIT.as_millis() as u64,
            }),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        status, 200,
        "no answer within {TOOL_ANSWER_LIMIT:?}: {body}"
    );
    assert_eq!(body["reply"]["performative"], "inform", "{body}");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("42"),
        "the answer is not the tool's result: {body}"
    );
    eprintln!("the tool-using agent answered in {took:?}");
    let (status, logs) = server.get("/api/v1/agents/json-reader/logs").await;
    assert_eq!(status, 200, "{logs}");
    let lines: Vec<String> = logs["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("call json_processor")),
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

    let turn = Turn::text;
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

/// A Hugging Face endpoint as `HF_ENDPOINT` names one (a mirror), serving
/// one file: a HEAD on `/resolve/main/…` answers like the hub, a redirect
/// carrying the LFS pointer's sha256 and size; the redirect serves the
/// bytes. Counts the GETs of the bytes.
struct Hub {
    url: String,
    downloads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Hub {
    fn start(file: PathBuf, linked_etag: String) -> Hub {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let downloads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = downloads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let size = std::fs::metadata(&file).map_or(0, |m| m.len());
                if request.starts_with("GET /cdn/") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                    );
                    if let Ok(mut body) = std::fs::File::open(&file) {
                        let _ = std::io::copy(&mut body, &mut stream);
                    }
                } else if request.contains("/resolve/main/") {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 302 Found\r\nlocation: /cdn/blob\r\nx-linked-etag: \"{linked_etag}\"\r\n\
                         x-linked-size: {size}\r\nx-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\n\
                         content-length: 0\r\nconnection: close\r\n\r\n"
                    );
                } else {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                }
            }
        });
        Hub { url, downloads }
    }

    fn downloads(&self) -> usize {
        self.downloads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `caxton llm pull` takes the chat model from its official home first
/// (here a mirror named by `HF_ENDPOINT`) when the hub says the file there
/// is the pinned one; refuses a hub file with another sha256 before
/// downloading it; and takes the pinned blob from the Hugging Face cache
/// with no network at all. PyPI is never reachable here (every proxy
/// points nowhere), so a pass cannot come from it.
#[test]
fn the_chat_model_comes_from_its_official_home_first() {
    ensure_local_model();
    let verified = caxton_models::llm_model_path(&caxton_models::default_cache_dir());
    let sha256 = std::fs::read_to_string(verified.with_file_name(".verified"))
        .expect("marker")
        .split_whitespace()
        .next()
        .expect("pinned sha256")
        .to_string();
    let nowhere = "http://127.0.0.1:9";
    let pull = |endpoint: &str, hf_home: &std::path::Path, cache: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
            .args(["llm", "pull", "--cache-dir"])
            .arg(cache)
            .env("HF_HOME", hf_home)
            .env_remove("HF_HUB_CACHE")
            .env("HF_ENDPOINT", endpoint)
            .env("HTTPS_PROXY", nowhere)
            .env("HTTP_PROXY", nowhere)
            .env("ALL_PROXY", nowhere)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .expect("run caxton llm pull")
    };
    let no_hf_cache = tempfile::tempdir().expect("temp dir");

    let hub = Hub::start(verified.clone(), sha256.clone());
    let cache = tempfile::tempdir().expect("temp dir");
    let output = pull(&hub.url, no_hf_cache.path(), cache.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "from the hub: {stderr}");
    assert!(stderr.contains("from huggingface.co"), "{stderr}");
    assert_eq!(hub.downloads(), 1);
    let status = caxton_models::llm_model_status(cache.path());
    assert!(status.verified, "{}", status.detail);

    // The hub's file is not the pinned one: refused from the HEAD, nothing
    // downloaded, and the error says why.
    let other = "0".repeat(64);
    let hub = Hub::start(verified.clone(), other.clone());
    let cache = tempfile::tempdir().expect("temp dir");
    let output = pull(&hub.url, no_hf_cache.path(), cache.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a different file was accepted");
    assert!(
        stderr.contains(&format!("has sha256 {other}, not the pinned {sha256}")),
        "{stderr}"
    );
    assert_eq!(hub.downloads(), 0, "downloaded a file known to be wrong");
    assert!(!caxton_models::llm_model_status(cache.path()).verified);

    // The pinned blob in the Hugging Face cache, no network at all.
    let hf_home = tempfile::tempdir().expect("temp dir");
    let blobs = hf_home
        .path()
        .join("hub/models--Qwen--Qwen2.5-Coder-0.5B-Instruct-GGUF/blobs");
    std::fs::create_dir_all(&blobs).expect("blobs dir");
    std::os::unix::fs::symlink(&verified, blobs.join(&sha256)).expect("link");
    let cache = tempfile::tempdir().expect("temp dir");
    let output = pull(nowhere, hf_home.path(), cache.path());
    assert!(
        output.status.success(),
        "from the Hugging Face cache: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(caxton_models::llm_model_status(cache.path()).verified);
}

/// The shipped contract-net example, on the local model: the manager
/// config agent hands the task out with `contract_net`; the bidder config
/// agent bids from its model; a Rust contractor bids too. The model's
/// words and bid vary, so this asserts the protocol: a contract net the
/// manager started, a `cfp` to both bidders, an award, an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_manager_runs_a_contract_net_on_the_local_model() {
    let example = |file: &str| {
        std::fs::read_to_string(
            crate::harness::repo_root()
                .join("examples/config")
                .join(file),
        )
        .expect("the example")
    };
    let (manager, bidder) = (example("manager.md"), example("bidder.md"));
    let (_guard, server) = start(&[("manager.md", &manager), ("bidder.md", &bidder)]);
    let mut body = crate::harness::deploy_body(
        "rusty",
        &crate::harness::rust_example("contractor"),
        serde_json::json!({}),
    );
    body["config"] = serde_json::json!({"name": "rusty", "bid": 5});
    let (status, answer) = server.post("/api/v1/agents", &body).await;
    assert_eq!(status, 201, "{answer}");

    let started = std::time::Instant::now();
    let (status, body) = server
        .post(
            "/api/v1/agents/Manager/message",
            &serde_json::json!({
                "message": "Paint the fence",
                "timeout_ms": TOOL_ANSWER_LIMIT.as_millis() as u64,
            }),
        )
        .await;
    eprintln!("the manager answered in {:?}", started.elapsed());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "inform", "{body}");

    let (_, page) = server
        .get("/api/v1/conversations?protocol=contract-net")
        .await;
    let id = page["conversations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["initiator"] == "Manager")
        .and_then(|c| c["id"].as_str())
        .unwrap_or_else(|| panic!("the manager ran no contract net: {page}; reply {body}"))
        .to_string();
    let (_, net) = server.get(&format!("/api/v1/conversations/{id}")).await;
    let history: Vec<(String, String)> = net["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["performative"].as_str().unwrap_or("").to_string(),
                e["receiver"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for bidder in ["Bidder", "rusty"] {
        assert!(
            history.iter().any(|(p, to)| p == "cfp" && to == bidder),
            "no cfp to {bidder}: {net}"
        );
    }
    assert!(
        history.iter().any(|(p, _)| p == "accept-proposal"),
        "nothing was awarded: {net}"
    );
    assert_ne!(net["state"], "active", "{net}");
}

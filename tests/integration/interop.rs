//! Interoperability with the real other side: the official MCP Python SDK
//! (over Streamable HTTP and stdio) and the official `openai` Python
//! client, pinned and installed by `scripts/test` into
//! `target/interop-venv`; schemathesis against the served OpenAPI
//! document; and WASM agents given tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Server, repo_root, rust_example, temp_data_dir};

/// The Python of the interop virtualenv; fails loudly when it is missing.
pub(crate) fn interop_python() -> PathBuf {
    let python = repo_root().join("target/interop-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scripts/test creates it (python3 -m venv target/interop-venv && \
         target/interop-venv/bin/pip install mcp==2.3.0 openai==3.51.0 schemathesis==4.32.5 jinja2==3.1.6)",
        python.display()
    );
    python
}

/// The Python of the A2A virtualenv (the official `a2a-sdk`, kept apart
/// from the MCP and OpenAI clients' dependencies); fails loudly when it is
/// missing.
pub(crate) fn a2a_python() -> PathBuf {
    let python = repo_root().join("target/a2a-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scripts/test creates it (python3 -m venv target/a2a-venv && \
         target/a2a-venv/bin/pip install 'a2a-sdk[http-server]==1.3.0' uvicorn==0.55.0)",
        python.display()
    );
    python
}

/// Runs an interop script; panics with its output unless it succeeds;
/// returns the JSON line it printed.
pub(crate) fn run_script(script: &str, args: &[&str]) -> Value {
    run_script_with(&interop_python(), script, args)
}

/// [`run_script`] with another Python.
pub(crate) fn run_script_with(python: &Path, script: &str, args: &[&str]) -> Value {
    let output = Command::new(python)
        .arg(repo_root().join("tests/interop").join(script))
        .args(args)
        .output()
        .expect("run the interop script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

fn admin_token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .expect("admin token")
        .trim()
        .to_string()
}

/// A server with the scripted LLM and one config agent, `helper`.
fn scripted_server(root: &Path, data: &Path) -> Server {
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(
        agents.join("helper.md"),
        "---\nname: helper\nversion: \"1.0.0\"\ncapabilities: [helping]\nsystem_prompt: You help.\n---\nHelps.\n",
    )
    .expect("definition");
    std::fs::write(
        root.join("script.yaml"),
        "- when: \"and once more\"\n  content: \"Again: forty-two.\"\n- content: \"The answer is forty-two.\"\n",
    )
    .expect("script");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\n    record: {}\n",
            agents.display(),
            root.join("script.yaml").display(),
            root.join("requests.jsonl").display()
        ),
    )
    .expect("config");
    Server::start_with_config(data, Some(&config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_client_talks_to_wasm_and_config_agents() {
    let (guard, data) = temp_data_dir();
    let server = scripted_server(guard.path(), &data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let token = server.token("openai-user", "message").await;
    let seen = run_script(
        "openai_client.py",
        &[
            &server.url("/v1"),
            &token,
            "echo",
            "hello through the OpenAI API",
            "helper",
            "What is the answer?",
        ],
    );
    let models: Vec<&str> = seen["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        models.contains(&"echo") && models.contains(&"helper"),
        "{models:?}"
    );

    let echo = &seen["agents"]["echo"];
    assert_eq!(echo["content"], "hello through the OpenAI API");
    assert_eq!(echo["streamed"], "hello through the OpenAI API");
    assert_eq!(
        echo["follow_up"], "and once more",
        "a WASM agent gets the last user message"
    );
    assert_eq!(echo["usage"]["total_tokens"], 0, "echo calls no model");

    let helper = &seen["agents"]["helper"];
    assert_eq!(helper["content"], "The answer is forty-two.");
    assert_eq!(helper["streamed"], "The answer is forty-two.");
    assert_eq!(helper["follow_up"], "Again: forty-two.");
    assert!(
        helper["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0
            && helper["usage"]["completion_tokens"] == 4,
        "usage counts the model call: {}",
        helper["usage"]
    );
    assert_eq!(helper["stream_usage"]["completion_tokens"], 4);

    // The config agent answered the follow-up from the conversation the
    // client sent: its system line and the earlier turns reached the model.
    let requests: Vec<Value> = std::fs::read_to_string(guard.path().join("requests.jsonl"))
        .expect("recorded requests")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let follow_up = requests
        .iter()
        .find(|r| r["messages"].to_string().contains("and once more"))
        .expect("the follow-up reached the model");
    let said: Vec<(String, String)> = follow_up["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("").to_string(),
                m["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        said.contains(&("system".into(), "Answer briefly.".into())),
        "{said:?}"
    );
    assert!(
        said.contains(&("assistant".into(), "The answer is forty-two.".into())),
        "{said:?}"
    );
    assert_eq!(said.last().map(|s| s.1.as_str()), Some("and once more"));

    assert!(
        seen["unknown_model_error"]
            .as_str()
            .unwrap_or("")
            .contains("no agent named `no-such-agent`"),
        "{}",
        seen["unknown_model_error"]
    );
    assert!(
        seen["empty_messages_error"]
            .as_str()
            .unwrap_or("")
            .contains("messages")
    );

    // A read-only token may list models but not talk to agents.
    let reader = server.token("reader", "read").await;
    let client = reqwest::Client::new();
    let refused = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&reader)
        .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_uses_every_tool_over_http_and_stdio() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let admin = admin_token(&data);
    let url = server.url("/mcp");
    for (mode, args) in [
        (
            "http",
            vec!["http", url.as_str(), admin.as_str(), "viahttp"],
        ),
        (
            "stdio",
            vec![
                "stdio",
                env!("CARGO_BIN_EXE_caxton"),
                server.url("").trim_end_matches('/'),
                admin.as_str(),
                "viastdio",
            ],
        ),
    ] {
        let seen = run_script("mcp_client.py", &args);
        assert_eq!(
            seen["echo_answer"],
            format!("hello from via{}", mode),
            "{mode}: ask_agent reaches the agent"
        );
        assert!(
            seen["missing_entity_error"]
                .as_str()
                .unwrap_or("")
                .contains("not found"),
            "{mode}: {seen}"
        );
        assert!(
            seen["unknown_agent_error"]
                .as_str()
                .unwrap_or("")
                .contains("no-such-agent"),
            "{mode}: {seen}"
        );
        assert!(
            seen["bad_arguments_error"]
                .as_str()
                .unwrap_or("")
                .contains("entityType"),
            "{mode}: the schema error names the missing field: {seen}"
        );
    }

    // A token's scope limits MCP tools as it limits REST.
    let reader = server.token("mcp-reader", "read").await;
    let read = server
        .mcp_tool(Some(&reader), "read_graph", json!({}))
        .await;
    assert_eq!(read["result"]["isError"], false, "{read}");
    let write = server
        .mcp_tool(
            Some(&reader),
            "create_entities",
            json!({"entities": [{"name": "x", "entityType": "y", "observations": []}]}),
        )
        .await;
    Server::assert_tool_refused(&write, "needs the `admin` scope");
    // Without a token, a page of another origin gets nowhere.
    let foreign = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("origin", "https://evil.example")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("request");
    assert_eq!(foreign.status().as_u16(), 401);
    // A body that is not JSON-RPC is a bad request that says so.
    for (body, what) in [(r#"{"jsonrpc":"#, "EOF"), (r#"{"id": 1}"#, "unrecognized")] {
        let broken = reqwest::Client::new()
            .post(server.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(broken.status().as_u16(), 400, "{body}");
        let answer: Value = broken.json().await.expect("a JSON error");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("not a JSON-RPC 2.0 message") && message.contains(what),
            "{answer}"
        );
    }
}

/// The reference MCP memory server's entry point, installed by scripts/test.
fn reference_memory_server() -> PathBuf {
    let script = repo_root()
        .join("target/interop-node/node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    assert!(
        script.is_file(),
        "{} is missing: scripts/test installs it (npm install --prefix target/interop-node \
         @modelcontextprotocol/server-memory@2026.8.31)",
        script.display()
    );
    script
}

async fn health(server: &Server) -> Value {
    server.get("/api/v1/health").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_agent_uses_the_reference_mcp_memory_server_as_tools() {
    let (guard, data) = temp_data_dir();
    let root = guard.path();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(
        agents.join("archivist.md"),
        "---\nname: archivist\nversion: \"1.0.0\"\ncapabilities: [filing]\ntools: [memory/create_entities, memory/read_graph]\nsystem_prompt: You file facts.\n---\n",
    )
    .expect("definition");
    std::fs::write(
        root.join("script.yaml"),
        r#"
- when: "remember"
  tool_calls: [{name: "memory/create_entities", arguments: {entities: [{name: "Caxton", entityType: "project", observations: ["speaks MCP both ways"]}]}}]
- when: "speaks MCP both ways"
  content: "Filed."
"#,
    )
    .expect("script");
    let graph_file = root.join("mcp-memory.jsonl");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {agents}\nllm:\n  scripted:\n    script: {script}\n    record: {record}\nmcp_servers:\n  memory:\n    command: node\n    args: [{server}]\n    env: {{ MEMORY_FILE_PATH: {graph} }}\n    timeout_secs: 20\n",
            agents = agents.display(),
            script = root.join("script.yaml").display(),
            record = root.join("requests.jsonl").display(),
            server = reference_memory_server().display(),
            graph = graph_file.display(),
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));

    let status = health(&server).await;
    assert_eq!(status["mcp_servers"]["memory"]["state"], "up", "{status}");
    let (ok, out, err) = server.cli(&["tools", "list", "--json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("tools JSON");
    let create = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == "memory/create_entities")
        .unwrap_or_else(|| panic!("the MCP server's tools are listed: {out}"));
    assert_eq!(create["kind"], "mcp");
    assert_eq!(
        create["parameters"]["type"], "object",
        "its own schema: {create}"
    );

    // The agent's tool call reaches the reference server, whose answer
    // comes back to the model.
    let (status, body) = server.message("archivist", "remember Caxton").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["content"], "Filed.", "{body}");
    let stored = std::fs::read_to_string(&graph_file).expect("the reference server wrote its file");
    assert!(
        stored.contains("\"Caxton\"") && stored.contains("speaks MCP both ways"),
        "{stored}"
    );
    let requests = std::fs::read_to_string(root.join("requests.jsonl")).expect("requests");
    assert!(
        requests.contains("memory__create_entities"),
        "tool names go to the model in a form providers accept"
    );

    // Operators can call it directly, too.
    let (ok, out, err) = server.cli(&["tools", "invoke", "memory/read_graph", "{}"]);
    assert!(ok, "{err}");
    assert!(out.contains("speaks MCP both ways"), "{out}");

    // A server that dies is reported and started again.
    let killed = Command::new("pkill")
        .args(["-P", &server.pid().to_string(), "-x", "node"])
        .status()
        .expect("pkill");
    assert!(killed.success(), "the MCP server process was found");
    let mut saw_down = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = health(&server).await;
        match status["mcp_servers"]["memory"]["state"].as_str() {
            Some("down") => {
                saw_down = true;
                assert_eq!(status["status"], "degraded", "{status}");
            }
            Some("up") if saw_down => break,
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not restarted: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (ok, out, err) = server.cli(&["tools", "invoke", "memory/read_graph", "{}"]);
    assert!(
        ok && out.contains("Caxton"),
        "after the restart: {out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_agents_call_the_tools_they_were_granted() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let tool_caller = rust_example("tool_caller");
    let word_stats = rust_example("word_stats");
    let (ok, out, err) = server.cli(&["tools", "deploy", word_stats.to_str().expect("path")]);
    assert!(ok, "{out}{err}");

    // Unknown tools are refused at deploy, with the fix.
    let (ok, _, err) = server.cli(&[
        "agents",
        "deploy",
        tool_caller.to_str().expect("path"),
        "--tool",
        "no_such_tool",
    ]);
    assert!(!ok && err.contains("no tool named `no_such_tool`"), "{err}");

    let (ok, out, err) = server.cli(&[
        "agents",
        "deploy",
        tool_caller.to_str().expect("path"),
        "--tool",
        "word_stats,csv_parser",
    ]);
    assert!(ok, "{out}{err}");
    let (_, agent) = server.get("/api/v1/agents/tool-caller").await;
    assert_eq!(agent["tools"], json!(["word_stats", "csv_parser"]));

    assert_eq!(
        server.ask("tool-caller", "tools").await,
        "word_stats,csv_parser"
    );
    let answer = server
        .ask(
            "tool-caller",
            r#"word_stats {"text": "One fish. Two fish."}"#,
        )
        .await;
    let stats: Value = serde_json::from_str(&answer).expect("tool result JSON");
    assert_eq!(stats["words"], 4, "{stats}");

    // A tool it was not granted is refused by the host.
    let (status, body) = server
        .message(
            "tool-caller",
            r#"http_client {"url": "https://example.com"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "failure");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("may not call the tool `http_client`"),
        "{body}"
    );

    // Operators try tools directly, as themselves or as an agent.
    let (ok, out, err) = server.cli(&["tools", "invoke", "word_stats", r#"{"text": "a b c"}"#]);
    assert!(ok, "{err}");
    let result: Value = serde_json::from_str(&out).expect("result JSON");
    assert_eq!(result["words"], 3);
    let (status, body) = server
        .post("/api/v1/tools/word_stats/invoke", &json!({"top": 2}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_tool_arguments", "{body}");
    let (status, body) = server.post("/api/v1/tools/nope/invoke", &json!({})).await;
    assert_eq!(status, 404, "{body}");
}

/// A free port on loopback (closed again before it is used).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_server_reached_by_url_lends_its_tools() {
    let port = free_port();
    let _peer = KillOnDrop(
        Command::new(interop_python())
            .arg(repo_root().join("tests/interop/mcp_http_server.py"))
            .args([&port.to_string(), "s3cret"])
            .spawn()
            .expect("start the SDK's MCP server"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the SDK server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "mcp_servers:\n  shouter:\n    url: http://127.0.0.1:{port}/mcp\n    bearer_token_env: SHOUTER_TOKEN\n  locked-out:\n    url: http://127.0.0.1:{port}/mcp\n"
        ),
    )
    .expect("config");
    let server = Server::start_with_env(&data, Some(&config), &[("SHOUTER_TOKEN", "s3cret")]);
    let status = health(&server).await;
    assert_eq!(status["mcp_servers"]["shouter"]["state"], "up", "{status}");
    // Without the token the same server refuses: reported, not fatal.
    assert_eq!(
        status["mcp_servers"]["locked-out"]["state"], "down",
        "{status}"
    );
    assert_eq!(status["status"], "degraded");
    let (ok, out, err) = server.cli(&[
        "tools",
        "invoke",
        "shouter/shout",
        r#"{"text": "quiet please"}"#,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("QUIET PLEASE"), "{out}");
    // The SDK server's schema is enforced before the call.
    let (status, body) = server
        .post("/api/v1/tools/shouter%2Fshout/invoke", &json!({"text": 5}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("/text"),
        "{body}"
    );
}

/// A child process stopped when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// schemathesis's settings: path parameters that name things that exist,
/// so operations get past their 404s.
const SCHEMATHESIS_CONFIG: &str = r#"
[parameters]
agent = "echo"
tool = "csv_parser"
model = "echo"
"#;

/// schemathesis (pinned, PyPI) reads the served OpenAPI document and sends
/// every operation generated requests, valid and not, and undeclared
/// methods: no answer may be a 5xx, and every answer must match what the
/// document says (status codes, content types, headers, response schemas,
/// 405 with `Allow`). Request schemas are the handlers' own types, with
/// their rules where JSON Schema can say them (non-blank names, scope
/// patterns, enums, caps), but the check that every schema-valid body is
/// accepted is left out: some rules cannot be said (a body that must be a
/// WASM component or an agent definition; "message or content"; a tool's
/// own argument schema; limits counted in bytes where `maxLength` counts
/// characters; `1365.0` is a JSON Schema integer but not a Rust one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_denies() {
    let schemathesis = interop_python().with_file_name("schemathesis");
    let (guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let workdir = guard.path().join("schemathesis");
    std::fs::create_dir_all(&workdir).expect("workdir");
    std::fs::write(workdir.join("schemathesis.toml"), SCHEMATHESIS_CONFIG).expect("config");
    let output = Command::new(&schemathesis)
        .current_dir(&workdir)
        .args(["run", &server.url("/api/v1/openapi.json")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "30", "--seed", "20261202"])
        // A deploy or a semantic search on a loaded machine can take longer
        // than schemathesis's default 10 s; that is not a server error.
        .args(["--request-timeout", "60"])
        // Stopping the server, turning safe mode on (every write then
        // answers 503 by design) or loading a file of lines is not fuzzed
        // here.
        .args(["--exclude-path", "/api/v1/shutdown"])
        .args(["--exclude-path", "/api/v1/safe-mode"])
        .args(["--exclude-path", "/api/v1/memory/import"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", schemathesis.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "1639 generated, 1639 passed"
    let generated: u64 = stdout
        .lines()
        .find(|l| l.contains(" generated,"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        generated > 500,
        "schemathesis ran too few test cases ({generated}):\n{stdout}"
    );
    // The server is still there (schemathesis may have removed echo:
    // DELETE is one of the operations it tries).
    let (status, health) = server.get("/api/v1/health").await;
    assert_eq!(status, 200, "{health}");
}

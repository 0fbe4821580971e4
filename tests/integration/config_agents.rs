//! Config agents: markdown definitions run by the built-in interpreter,
//! driven by the scripted LLM provider (deterministic, records requests).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, rust_example, temp_data_dir};

/// The runbook's example agent, verbatim.
const DATA_ANALYZER: &str = r#"---
name: DataAnalyzer
version: "1.0.0"
capabilities:
  - data-analysis
  - report-generation
tools:
  - http_client
  - csv_parser
parameters:
  max_file_size: "10MB"
system_prompt: |
  You are a data analysis expert who helps users understand their data.
---

# DataAnalyzer Agent

This agent specializes in data analysis and can fetch data from URLs,
parse various formats, and generate visualizations.
"#;

struct Setup {
    _guard: tempfile::TempDir,
    root: PathBuf,
    agents: PathBuf,
    server: Server,
}

impl Setup {
    /// A server whose LLM is the scripted provider with `script`, and whose
    /// agents directory holds `files` before it starts.
    fn start(script: &str, files: &[(&str, &str)]) -> Setup {
        let (guard, data) = temp_data_dir();
        let root = guard.path().to_path_buf();
        let agents = root.join("agents");
        std::fs::create_dir_all(&agents).expect("agents dir");
        for (name, text) in files {
            std::fs::write(agents.join(name), text).expect("write definition");
        }
        std::fs::write(root.join("script.yaml"), script).expect("write script");
        let config = root.join("caxton.yaml");
        std::fs::write(
            &config,
            format!(
                "agents:\n  dir: {agents}\nllm:\n  scripted:\n    script: {script}\n    record: {record}\n",
                agents = agents.display(),
                script = root.join("script.yaml").display(),
                record = root.join("requests.jsonl").display(),
            ),
        )
        .expect("write config");
        let server = Server::start_with_config(&data, Some(&config));
        Setup {
            _guard: guard,
            root,
            agents,
            server,
        }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.root.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("recorded request is JSON"))
            .collect()
    }

    async fn reply(&self, agent: &str, text: &str) -> Value {
        let (status, body) = self.server.message(agent, text).await;
        assert_eq!(status, 200, "{body}");
        body["reply"].clone()
    }

    /// Waits until `agent` answers `text` with `expected` (hot reload is
    /// asynchronous); panics after 10 s.
    async fn await_answer(&self, agent: &str, text: &str, expected: &str) -> Duration {
        let started = Instant::now();
        loop {
            let reply = self.reply(agent, text).await;
            if reply["content"] == expected {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "still answering {reply} instead of {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write definition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_sequence_works_and_runs_the_tool_loop() {
    let script = r#"
- when: "sales data"
  tool_calls: [{name: csv_parser, arguments: {csv: "region,total\nnorth,10\nsouth,20"}}]
- when: "row_count"
  content: "North sold 10 and south 20."
"#;
    let setup = Setup::start(script, &[]);
    // Written after the server started: `agents reload` picks it up.
    write(&setup.agents.join("data-analyzer.md"), DATA_ANALYZER);
    let (ok, out, err) = setup.server.cli(&["agents", "reload", "data-analyzer"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Reloaded data-analyzer (DataAnalyzer v1.0.0)"),
        "{out}"
    );
    let (ok, out, _) = setup.server.cli(&["agents", "list"]);
    assert!(
        ok && out
            .lines()
            .any(|l| l.contains("DataAnalyzer") && l.contains("config")),
        "{out}"
    );

    let (status, body) = setup
        .server
        .post(
            "/api/v1/agents/data-analyzer/message",
            &json!({"message": "Analyze sales data at example.com/data.csv"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "inform", "{body}");
    assert_eq!(body["reply"]["content"], "North sold 10 and south 20.");

    let requests = setup.requests();
    assert_eq!(requests.len(), 2, "model, tool, model: {requests:?}");
    let first = &requests[0];
    assert_eq!(first["messages"][0]["role"], "system");
    assert!(
        first["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .contains("data analysis expert")
    );
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        tools,
        vec!["http_client", "csv_parser"],
        "only the agent's own tools are offered"
    );
    let tool_message = requests[1]["messages"]
        .as_array()
        .expect("messages")
        .last()
        .cloned()
        .expect("last");
    assert_eq!(tool_message["role"], "tool");
    assert!(
        tool_message["content"]
            .as_str()
            .unwrap_or("")
            .contains("\"row_count\":2"),
        "{tool_message}"
    );

    // Lookups accept the display name too, and `show` has the markdown body.
    let (ok, out, _) = setup
        .server
        .cli(&["agents", "show", "DataAnalyzer", "--json"]);
    assert!(
        ok && out.contains("This agent specializes in data analysis"),
        "{out}"
    );
    // Config agents live in their files, not in the API's delete.
    let (status, body) = setup.server.delete("/api/v1/agents/data-analyzer").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("data-analyzer.md"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_serves_edits_and_keeps_the_last_good_version() {
    let script = r#"
- when: "v1:"
  content: "answer one"
- when: "v2:"
  content: "answer two"
"#;
    let version = |v: &str| {
        format!(
            "---\nname: Greeter\nversion: \"1.0.{v}\"\ncapabilities: [greeting]\nuser_prompt_template: \"v{v}: {{{{request}}}}\"\nsystem_prompt: Greet people.\n---\n# Greeter\n"
        )
    };
    let setup = Setup::start(script, &[("greeter.md", &version("1"))]);
    assert_eq!(
        setup.reply("greeter", "hello").await["content"],
        "answer one"
    );

    write(&setup.agents.join("greeter.md"), &version("2"));
    setup.await_answer("greeter", "hello", "answer two").await;
    let (_, status) = setup
        .server
        .get("/api/v1/agents/greeter/reload-status")
        .await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["version"], "1.0.2");

    // A broken edit: the running version keeps answering, the error is reported.
    write(
        &setup.agents.join("greeter.md"),
        "---\nname: Greeter\nversion: \"1.0.3\ncapabilities: [greeting]\n---\n",
    );
    let started = Instant::now();
    loop {
        let (_, status) = setup
            .server
            .get("/api/v1/agents/greeter/reload-status")
            .await;
        if status["state"] == "stale" {
            assert_eq!(status["problems"][0]["line"], 3, "{status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        setup.reply("greeter", "hello").await["content"],
        "answer two"
    );
    let (ok, out, _) = setup.server.cli(&["agents", "reload-status", "greeter"]);
    assert!(
        !ok && out.contains("STATE:        stale") && out.contains("YAML syntax error"),
        "{out}"
    );
    // `agents status` says why, not only that the file is stale.
    let (ok, out, _) = setup.server.cli(&["agents", "status", "greeter"]);
    assert!(
        ok && out.contains("(stale)")
            && out.contains("greeter.md:3")
            && out.contains("YAML syntax error")
            && out.contains("fix:"),
        "{out}"
    );
    let (ok, out, _) = setup.server.cli(&["agents", "reload", "greeter"]);
    assert!(!ok && out.contains("keeps serving"), "{out}");
    // …and counted in the metrics.
    let metrics = reqwest::get(setup.server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("caxton_agent_reload_failure_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reload failure counter in:\n{metrics}"));
    assert!(failures >= 1.0, "{metrics}");

    // Deleting the file unloads the agent.
    std::fs::remove_file(setup.agents.join("greeter.md")).expect("remove");
    let started = Instant::now();
    while setup.server.get("/api/v1/agents/greeter").await.0 != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "agent still loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_reports_every_problem_with_line_field_and_fix() {
    let setup = Setup::start("- content: ok\n", &[("data-analyzer.md", DATA_ANALYZER)]);
    let bad = setup.root.join("copycat.md");
    write(
        &bad,
        "---\nname: DataAnalyzer\nversoin: \"1\"\ncapabilities: analysis\ntools: [csv_parser, magic_wand]\nsystem_prompt: \"Hi {{parameters.nope}}\"\n---\n",
    );
    let syntax = setup.root.join("broken.md");
    write(
        &syntax,
        "---\nname: Broken\nversion: \"1.0.0\ncapabilities: [x]\n---\n",
    );
    let missing = setup.root.join("nowhere.md");
    let (ok, out, _) = setup.server.cli(&[
        "agents",
        "validate",
        bad.to_str().expect("utf-8"),
        syntax.to_str().expect("utf-8"),
        missing.to_str().expect("utf-8"),
    ]);
    assert!(!ok, "exit code must be non-zero: {out}");
    for expected in [
        "copycat.md: 6 problem(s)",
        "copycat.md:3:1: field `versoin`: unknown field `versoin`",
        "did you mean `version`?",
        "field `version`: missing required field `version`",
        "copycat.md:4:1: field `capabilities`: `capabilities` must be a list of strings",
        "field `tools`: unknown tool `magic_wand`",
        "caxton tools list",
        "field `name`: another loaded agent is already named `DataAnalyzer`",
        "unknown placeholder `{{parameters.nope}}`",
        "broken.md:3",
        "YAML syntax error",
        "nowhere.md: 1 problem(s)",
        "file not found",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    let (ok, out, _) = setup.server.cli(&[
        "agents",
        "validate",
        setup
            .agents
            .join("data-analyzer.md")
            .to_str()
            .expect("utf-8"),
    ]);
    assert!(ok && out.contains("valid"), "{out}");
    let (ok, out, _) = setup.server.cli(&[
        "config",
        "verify",
        "--agents-dir",
        setup.agents.to_str().expect("utf-8"),
    ]);
    assert!(ok && out.contains("data-analyzer.md: valid"), "{out}");
    let (ok, out, _) = setup.server.cli(&["tools", "list"]);
    assert!(
        ok && out.contains("csv_parser (builtin)") && out.contains("\"required\":[\"csv\"]"),
        "{out}"
    );

    // An invalid definition deployed over the API changes nothing.
    let (status, body) = setup
        .server
        .post(
            "/api/v1/config-agents",
            &json!({"file": "copycat.md", "source": std::fs::read_to_string(&bad).expect("read")}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["details"]["problems"]
            .as_array()
            .is_some_and(|p| p.len() == 6),
        "{body}"
    );
    assert!(!setup.agents.join("copycat.md").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_outside_the_list_are_refused_and_looping_models_are_stopped() {
    let script = r#"
- when: "fetch it"
  tool_calls: [{name: http_client, arguments: {url: "https://example.com"}}]
- when: "may not call"
  content: "I am not allowed to fetch that."
- when: "loop"
  tool_calls: [{name: json_processor, arguments: {json: "{\"a\": 1}", path: "a"}}]
- when: "\"value\""
  tool_calls: [{name: json_processor, arguments: {json: "{\"a\": 1}", path: "a"}}]
- when: "without calling any tool"
  tool_calls: [{name: json_processor, arguments: {json: "{\"a\": 1}", path: "a"}}]
"#;
    let agent = "---\nname: Looper\nversion: \"0.1.0\"\ncapabilities: [looping]\ntools: [json_processor]\nmax_tool_steps: 3\nsystem_prompt: You loop.\n---\n";
    let toml_agent = "name = \"Tomly\"\nversion = \"0.1.0\"\ncapabilities = [\"toml\"]\nsystem_prompt = \"TOML works too.\"\ndocumentation = \"Written in TOML.\"\n";
    let setup = Setup::start(script, &[("looper.md", agent), ("tomly.toml", toml_agent)]);

    let reply = setup.reply("looper", "fetch it").await;
    assert_eq!(
        reply["content"], "I am not allowed to fetch that.",
        "{reply}"
    );
    let requests = setup.requests();
    let refusal = requests[1]["messages"]
        .as_array()
        .expect("messages")
        .last()
        .cloned()
        .expect("tool message");
    assert!(
        refusal["content"]
            .as_str()
            .unwrap_or("")
            .contains("may not call the tool `http_client`"),
        "enforced at call time even though the model asked: {refusal}"
    );

    let before = setup.requests().len();
    let reply = setup.reply("looper", "loop").await;
    assert_eq!(reply["performative"], "failure", "{reply}");
    assert!(
        reply["content"]
            .as_str()
            .unwrap_or("")
            .contains("still calling tools after 3 steps, though told to answer without them"),
        "{reply}"
    );
    // A call, its identical repeat (answered from the first result), and
    // a last call offering no tools.
    let requests = setup.requests();
    assert_eq!(requests.len() - before, 3, "{requests:?}");
    assert_eq!(
        requests[before + 1]["tools"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        requests[before + 2]["tools"],
        json!([]),
        "the last call offers no tools"
    );

    let (ok, out, err) = setup.server.cli(&["agents", "message", "looper", "loop"]);
    assert!(!ok, "a failure reply exits non-zero: {out}{err}");
    assert!(out.starts_with("[failure]"), "{out}{err}");

    let reply = setup.reply("tomly", "hi").await;
    assert_eq!(reply["performative"], "failure", "no rule matches: {reply}");
    assert!(
        reply["content"]
            .as_str()
            .unwrap_or("")
            .contains("no rule of the script matches"),
        "{reply}"
    );
    let (_, shown) = setup.server.get("/api/v1/agents/Tomly").await;
    assert_eq!(shown["documentation"], "Written in TOML.", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_that_break_a_tools_schema_go_back_to_the_model_to_correct() {
    // The first call passes `limit` as a string; csv_parser's schema says
    // integer. The model sees why, and calls again correctly.
    let script = r#"
- when: "do not match its schema"
  tool_calls: [{name: csv_parser, arguments: {csv: "region\nnorth", limit: 10}}]
- when: "row_count"
  content: "Corrected and done."
- when: "parse"
  tool_calls: [{name: csv_parser, arguments: {csv: "region\nnorth", limit: "ten"}}]
"#;
    let agent = "---\nname: Parser\nversion: \"0.1.0\"\ncapabilities: [parsing]\ntools: [csv_parser]\nsystem_prompt: You parse.\n---\n";
    let setup = Setup::start(script, &[("parser.md", agent)]);
    let reply = setup.reply("parser", "parse the table").await;
    assert_eq!(reply["content"], "Corrected and done.", "{reply}");
    let requests = setup.requests();
    assert_eq!(requests.len(), 3, "call, corrected call, answer");
    let told = requests[1]["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    assert!(
        told.contains("/limit") && told.contains("integer"),
        "the model is told what was wrong and where: {told}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_llm_a_config_agent_fails_clearly() {
    let (_guard, data) = temp_data_dir();
    let root = data.parent().expect("parent").to_path_buf();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("dir");
    write(
        &agents.join("greeter.md"),
        "---\nname: Greeter\nversion: \"1.0.0\"\ncapabilities: [greeting]\nsystem_prompt: Greet.\n---\n",
    );
    let config = root.join("caxton.yaml");
    // The local model is the default provider; point it at a file that is
    // not there.
    let missing = root.join("no-such-model.gguf");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {}\nllm:\n  local:\n    model_path: {}\n",
            agents.display(),
            missing.display()
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let (status, body) = server.message("greeter", "hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "failure");
    let reason = body["reply"]["content"].as_str().unwrap_or("");
    assert!(
        reason.contains("no-such-model.gguf") && reason.contains("does not exist"),
        "{body}"
    );

    // With the local model switched off too, nothing can answer.
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {}\nllm:\n  local:\n    enabled: false\n",
            agents.display()
        ),
    )
    .expect("config");
    let server = server.restart();
    let (status, body) = server.message("greeter", "hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "failure");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("no LLM provider is configured"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_watch_deploys_a_directory_and_redeploys_saved_files() {
    let setup = Setup::start("- content: \"hi\"\n", &[]);
    let outside = setup.root.join("my-agents");
    std::fs::create_dir_all(&outside).expect("dir");
    let version = |v: &str| {
        format!(
            "---\nname: Watched\nversion: \"{v}\"\ncapabilities: [watching]\nsystem_prompt: Hi.\n---\n"
        )
    };
    write(&outside.join("watched.md"), &version("1.0.0"));
    let dir = outside.to_string_lossy().to_string();

    // Without --auto-reload: one pass, then exit.
    let (ok, out, err) = setup.server.cli(&["agents", "watch", &dir]);
    assert!(ok, "{out}{err}");
    let (status, shown) = setup.server.get("/api/v1/agents/watched").await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["version"], "1.0.0", "{shown}");

    // With --auto-reload: a saved edit reaches the server.
    let mut watcher = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args([
            "--server",
            &setup.server.base,
            "agents",
            "watch",
            &dir,
            "--auto-reload",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn watch");
    // The edit is made once the watcher says it watches (it prints that
    // after registering), not after a guessed delay.
    let stdout = watcher.stdout.take().expect("piped stdout");
    let (watching_rx, _) = crate::harness::watch_for_line(stdout, "Watching ");
    assert!(
        watching_rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "`caxton agents watch --auto-reload` did not say it was watching within 30 s"
    );
    write(&outside.join("watched.md"), &version("2.0.0"));
    let started = Instant::now();
    let served = loop {
        let (_, shown) = setup.server.get("/api/v1/agents/watched").await;
        if shown["version"] == "2.0.0" || started.elapsed() > Duration::from_secs(30) {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(
        served["version"], "2.0.0",
        "the saved edit was not redeployed: {served}"
    );
}

/// The runbook's "Production Configuration" file, as written there, with only
/// its two directories moved into the test's temporary directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_production_config_is_accepted() {
    let (guard, data) = temp_data_dir();
    let agents = guard.path().join("var-lib-caxton-agents");
    std::fs::create_dir_all(&agents).expect("dir");
    write(
        &agents.join("greeter.md"),
        "---\nname: Greeter\nversion: \"1.0.0\"\ncapabilities: [greeting]\ntools: []\nsystem_prompt: |\n  You are a friendly greeter who welcomes users.\n---\n",
    );
    let config = guard.path().join("caxton.yaml");
    let text = format!(
        r#"server:
  port: 8080
  host: "0.0.0.0"
  data_dir: "{data}"
  agents_dir: "{agents}"

memory:
  backend: "embedded"  # SQLite + Candle
  sqlite_path: "memory.db"
  embedding_model: "all-MiniLM-L6-v2"
  cleanup_interval: "1h"

logging:
  level: "info"
  file: "/var/log/caxton/caxton.log"

monitoring:
  metrics_port: 9090
  health_check_interval: "30s"
"#,
        data = data.display(),
        agents = agents.display()
    );
    // The runbook's metrics port, moved to a free one.
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let text = text.replace(
        "metrics_port: 9090",
        &format!("metrics_port: {metrics_port}"),
    );
    // ...and its log file, into the temporary directory too (its directory
    // does not exist yet: the server creates it).
    let log = guard.path().join("var-log-caxton").join("caxton.log");
    let text = text.replace("/var/log/caxton/caxton.log", &log.to_string_lossy());
    std::fs::write(&config, &text).expect("config");
    // The harness quiets servers with CAXTON_LOG=warn; empty, it leaves
    // the level to the file's `logging.level: "info"`.
    let server = Server::start_with_env(&data, Some(&config), &[("CAXTON_LOG", "")]);
    let (status, shown) = server.get("/api/v1/agents/greeter").await;
    assert_eq!(status, 200, "server.agents_dir was not used: {shown}");
    let answer = server.mcp_tool(None, "list_agents", json!({})).await;
    assert_eq!(answer["result"]["isError"], false, "{answer}");

    // `tail -f /var/log/caxton/caxton.log`: the file gets the server's lines,
    // and not the MCP SDK's three `info` lines per request.
    let logged = std::fs::read_to_string(&log).expect("logging.file was not written");
    assert!(
        logged.contains("caxton server ready") && logged.contains("config agents loaded"),
        "logging.file lacks the start-up lines:\n{logged}"
    );
    assert!(
        !logged.contains("rmcp"),
        "an MCP request filled the log at `info`:\n{logged}"
    );
    assert!(
        !logged.contains('\u{1b}'),
        "logging.file has terminal colour codes"
    );

    // `curl -s localhost:9090/metrics | grep caxton_agent_`
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics port answers")
        .text()
        .await
        .expect("metrics text");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
    };
    assert_eq!(value("caxton_agent_config_count "), 1.0);
    assert_eq!(value("caxton_agent_wasm_count "), 0.0);
    assert!(value("caxton_agent_reload_success_total ") >= 1.0);
    assert!(value("caxton_server_uptime_seconds ") > 0.0);
    assert!(value("caxton_server_memory_usage_bytes ") > 1e6);
    assert_eq!(value("caxton_memory_entities_total "), 0.0);

    let (ok, out, err) = server.cli(&[
        "config",
        "verify",
        "--config",
        &config.to_string_lossy(),
        "--agents-dir",
        &agents.to_string_lossy(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("sqlite_path"),
        "the notes explain unused keys: {out}"
    );

    // A backend this build does not have is refused, with the reason.
    std::fs::write(&config, text.replace("\"embedded\"", "\"qdrant\"")).expect("config");
    let (ok, out, _) = server.cli(&["config", "verify", "--config", &config.to_string_lossy()]);
    assert!(!ok, "{out}");
    assert!(out.contains("memory.backend `qdrant`"), "{out}");

    // So is a log level that is not one, before anything starts.
    std::fs::write(
        &config,
        text.replace("level: \"info\"", "level: \"chatty\""),
    )
    .expect("config");
    let (ok, out, _) = server.cli(&["config", "verify", "--config", &config.to_string_lossy()]);
    assert!(!ok, "{out}");
    assert!(out.contains("logging.level `chatty`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_components_are_deployed_over_rest_and_called_by_agents() {
    let script = r#"
- when: "measure"
  tool_calls: [{name: word_stats, arguments: {text: "The cat sat. The cat ran!", top: 2}}]
- when: "\"words\""
  content: "Six words, two sentences."
"#;
    let mut setup = Setup::start(script, &[]);
    let tool = rust_example("word_stats");
    let (status, body) = setup.server.get("/api/v1/tools/word_stats").await;
    assert_eq!(status, 404, "{body}");

    // The CLI deploys it; its name and schema come from its own `describe`.
    let path = tool.to_str().expect("utf-8 path");
    let (ok, out, err) = setup.server.cli(&["tools", "deploy", path]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Deployed tool word_stats"), "{out}");
    let (ok, out, _) = setup.server.cli(&["tools", "list"]);
    assert!(ok && out.contains("word_stats (component)"), "{out}");
    let (_, listed) = setup.server.get("/api/v1/tools").await;
    let entry = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == "word_stats")
        .cloned()
        .expect("word_stats listed");
    assert_eq!(entry["kind"], "component", "{entry}");
    assert_eq!(entry["parameters"]["required"], json!(["text"]), "{entry}");
    assert!(
        entry["component_sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );

    // A second upload of the same name needs `replace`.
    let bytes = std::fs::read(&tool).expect("read tool");
    let (status, body) = setup
        .server
        .post_raw("/api/v1/tools", "application/wasm", bytes.clone())
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("--replace"),
        "{body}"
    );
    let (status, body) = setup
        .server
        .post_raw(
            "/api/v1/tools?replace=true",
            "application/wasm",
            bytes.clone(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replaced"], true, "{body}");

    // Wrong uploads are refused with what to do, and change nothing.
    let agent_component = std::fs::read(rust_example("echo")).expect("read echo");
    let (status, body) = setup
        .server
        .post_raw("/api/v1/tools", "application/wasm", agent_component)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("`tool` world"),
        "{body}"
    );
    let (status, body) = setup
        .server
        .post_raw(
            "/api/v1/tools",
            "application/wasm",
            b"not wasm at all".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = setup
        .server
        .post_raw("/api/v1/tools?max_fuel=1000", "application/wasm", bytes)
        .await;
    assert_eq!(status, 422, "limits apply to tools too: {body}");
    assert_eq!(
        body["error"]["details"]["failure"], "agent_out_of_fuel",
        "{body}"
    );

    // An agent that lists the tool calls it; the answer goes back to the model.
    let agent = "---\nname: Counter\nversion: \"1.0.0\"\ncapabilities: [counting]\ntools: [word_stats]\nsystem_prompt: You count words with tools.\n---\n";
    write(&setup.agents.join("counter.md"), agent);
    let (ok, out, err) = setup.server.cli(&["agents", "reload", "counter"]);
    assert!(ok, "{out}{err}");
    let reply = setup.reply("counter", "measure this").await;
    assert_eq!(reply["content"], "Six words, two sentences.", "{reply}");
    let requests = setup.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(offered, vec!["word_stats"]);
    let answer = requests[1]["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .expect("tool message");
    assert_eq!(answer["role"], "tool", "{answer}");
    let content: Value = serde_json::from_str(answer["content"].as_str().unwrap_or(""))
        .expect("tool answer is JSON");
    assert_eq!(content["words"], 6, "{content}");
    assert_eq!(content["sentences"], 2, "{content}");
    assert_eq!(
        content["top_words"],
        json!([{"word": "cat", "count": 2}, {"word": "the", "count": 2}]),
        "{content}"
    );
    // The turn is traced: the message, the model's two calls and the tool
    // call between them, each under the message.
    let conversation = reply["conversation_id"].as_str().expect("conversation id");
    let (status, trace) = setup
        .server
        .get(&format!(
            "/api/v1/traces?agent=counter&conversation_id={conversation}"
        ))
        .await;
    assert_eq!(status, 200, "{trace}");
    let spans = trace["spans"].as_array().expect("spans");
    let kinds: Vec<&str> = spans.iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["request", "message", "llm", "tool", "llm"],
        "{trace}"
    );
    assert_eq!(spans[1]["parent"], spans[0]["id"], "{trace}");
    let hop = &spans[1]["id"];
    assert!(spans[2..].iter().all(|s| &s["parent"] == hop), "{trace}");
    assert!(
        spans.iter().all(|s| s["trace_id"] == spans[0]["trace_id"]),
        "{trace}"
    );
    assert_eq!(spans[3]["tool"], "word_stats", "{trace}");
    let (ok, tree, err) = setup.server.cli(&[
        "trace",
        "--agent",
        "counter",
        "--conversation-id",
        conversation,
    ]);
    assert!(ok, "{tree}{err}");
    assert!(tree.contains("├─ [+"), "{tree}");
    assert!(tree.contains("tool word_stats by Counter"), "{tree}");
    assert!(tree.contains("llm scripted/"), "{tree}");

    // The tool's own log line lands in the calling agent's log.
    let (_, logs) = setup.server.get("/api/v1/agents/counter/logs").await;
    assert!(
        logs.to_string().contains("[word_stats] measured 6 words"),
        "{logs}"
    );

    // Deployed tools survive a restart.
    setup.server = setup.server.restart();
    let (status, body) = setup.server.get("/api/v1/tools/word_stats").await;
    assert_eq!(status, 200, "{body}");
    let reply = setup.reply("counter", "measure this").await;
    assert_eq!(reply["content"], "Six words, two sentences.", "{reply}");

    // Removal: components go, built-ins stay.
    let (status, body) = setup.server.delete("/api/v1/tools/csv_parser").await;
    assert_eq!(status, 409, "{body}");
    let (ok, out, err) = setup.server.cli(&["tools", "remove", "word_stats"]);
    assert!(ok, "{out}{err}");
    let (status, _) = setup.server.get("/api/v1/tools/word_stats").await;
    assert_eq!(status, 404);
    let (status, _) = setup.server.delete("/api/v1/tools/word_stats").await;
    assert_eq!(status, 404);
}

/// Issue 25.5: a reload never fails the messages queued for the version it
/// replaces. Each message takes 20 ms of the (scripted) model, so a burst
/// of 60 keeps the mailbox full while the definition is rewritten three
/// times; every message must be answered by one version or the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_a_message_burst_fails_no_message() {
    let script = r#"
- when: "v1:"
  content: "answer one"
  delay_ms: 20
- when: "v2:"
  content: "answer two"
  delay_ms: 20
"#;
    let version = |v: &str| {
        format!(
            "---\nname: Busy\nversion: \"1.0.{v}\"\ncapabilities: [busy-work]\nuser_prompt_template: \"v{v}: {{{{request}}}}\"\nsystem_prompt: Answer.\n---\n# Busy\n"
        )
    };
    let setup = Setup::start(script, &[("busy.md", &version("1"))]);
    assert_eq!(
        setup.reply("busy", "warm up").await["content"],
        "answer one"
    );
    let burst: Vec<_> = (0..60)
        .map(|i| {
            let url = setup.server.url("/api/v1/agents/busy/message");
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(url)
                    .json(&json!({"message": format!("m{i}"), "timeout_ms": 120000}))
                    .send()
                    .await
                    .expect("send");
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    for v in ["2", "1", "2"] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (ok, out, err) = {
            write(&setup.agents.join("busy.md"), &version(v));
            setup.server.cli(&["agents", "reload", "busy"])
        };
        assert!(ok, "reload to v{v}: {out}{err}");
    }
    let mut answers = std::collections::BTreeMap::new();
    for task in burst {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, 200, "a message failed across a reload: {body}");
        let content = body["reply"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(content == "answer one" || content == "answer two", "{body}");
        *answers.entry(content).or_insert(0) += 1;
    }
    assert_eq!(answers.values().sum::<i32>(), 60, "{answers:?}");
}

/// Issue 25.8: a model that calls the same tool with the same arguments
/// again (the local model's habit) is given the result once more, then
/// asked to answer without tools, and its answer is the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_tool_call_is_answered_and_the_model_made_to_finish() {
    let script = r#"
- when: "what is a"
  tool_calls: [{name: json_processor, arguments: {json: "{\"a\": 1}", path: "a"}}]
- when: "\"value\""
  tool_calls: [{name: json_processor, arguments: {path: "a", json: "{\"a\": 1}"}}]
- when: "without calling any tool"
  content: "a is 1."
"#;
    let agent = "---\nname: Repeater\nversion: \"0.1.0\"\ncapabilities: [repeating]\ntools: [json_processor]\nmax_tool_steps: 10\nsystem_prompt: You look things up.\n---\n";
    let setup = Setup::start(script, &[("repeater.md", agent)]);
    let reply = setup.reply("repeater", "what is a?").await;
    assert_eq!(reply["performative"], "inform", "{reply}");
    assert_eq!(reply["content"], "a is 1.", "{reply}");
    let requests = setup.requests();
    assert_eq!(requests.len(), 3, "not max_tool_steps calls: {requests:?}");
    let last = &requests[2];
    assert_eq!(last["tools"], json!([]), "{last}");
    // The repeat got the first result again, not a second run.
    let messages = last["messages"].as_array().expect("messages");
    let results: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(results.len(), 2, "{messages:?}");
    assert_eq!(results[0]["content"], results[1]["content"]);
}

/// Issue 25.8: when the sender stops waiting (504 at its `timeout_ms`),
/// the config agent's run stops too instead of holding the agent; the 504
/// says how to wait longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_sender_has_gone_stops() {
    let script = r#"
- when: "slow"
  content: "finally"
  delay_ms: 30000
- content: "quick"
"#;
    let agent = "---\nname: Sleepy\nversion: \"0.1.0\"\ncapabilities: [sleeping]\nsystem_prompt: You take your time.\n---\n";
    let setup = Setup::start(script, &[("sleepy.md", agent)]);
    let (status, body) = setup
        .server
        .post(
            "/api/v1/agents/sleepy/message",
            &json!({"message": "slow", "timeout_ms": 500}),
        )
        .await;
    assert_eq!(status, 504, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("timeout_ms") && text.contains("--timeout"),
        "{body}"
    );
    // Had the slow run gone on, this would wait 30 s behind it.
    let started = Instant::now();
    assert_eq!(setup.reply("sleepy", "hello").await["content"], "quick");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the next message waited {:?} behind a run nobody waits for",
        started.elapsed()
    );
    let (_, logs) = setup.server.get("/api/v1/agents/sleepy/logs").await;
    assert!(
        logs.to_string().contains("sender stopped waiting"),
        "{logs}"
    );

    // The CLI: --timeout reaches the server, and a failure exits non-zero.
    let started = Instant::now();
    let (ok, out, err) =
        setup
            .server
            .cli(&["agents", "message", "sleepy", "slow", "--timeout", "1"]);
    assert!(!ok, "{out}{err}");
    assert!(err.contains("did not answer within 1000 ms"), "{out}{err}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    let (ok, out, err) = setup.server.cli(&["agents", "message", "sleepy", "hello"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out.trim(),
        "[inform] quick",
        "nothing but the reply on stdout: {err}"
    );
}

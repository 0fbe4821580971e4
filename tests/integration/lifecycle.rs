//! Deploy, list, show, message, delete, restart: over REST and the CLI.

use serde_json::json;

use crate::harness::{Server, rust_example, temp_data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_has_the_runbook_shape() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let (status, body) = server.get("/api/v1/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "healthy", "memory_backend": "embedded", "agents": 0})
    );
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let (_, body) = server.get("/api/v1/health").await;
    assert_eq!(body["agents"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_list_show_message_delete_and_survive_restart() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);

    let limits =
        json!({"max_memory_bytes": 10485760, "max_fuel": 1000000, "max_execution_time_ms": 5000});
    let agent = server
        .deploy("echo", &rust_example("echo"), limits.clone())
        .await;
    let id = agent["id"].as_str().expect("id").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "id is a UUID: {id}");
    assert_eq!(agent["name"], "echo");
    assert_eq!(agent["type"], "wasm");
    assert_eq!(agent["status"], "running");
    assert_eq!(agent["capabilities"], json!(["echo"]));
    assert_eq!(agent["resource_limits"], limits);

    let (status, list) = server.get("/api/v1/agents").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1);
    assert_eq!(list["agents"][0]["name"], "echo");

    for key in ["echo", id.as_str()] {
        let (status, shown) = server.get(&format!("/api/v1/agents/{key}")).await;
        assert_eq!(status, 200, "show by {key}");
        assert_eq!(shown["id"], id.as_str());
    }

    // The runbook's message form, then a full FIPA message keeping its conversation.
    assert_eq!(server.ask("echo", "hello caxton").await, "hello caxton");
    let (status, body) = server
        .post(
            &format!("/api/v1/agents/{id}/message"),
            &json!({"performative": "query-ref", "content": {"q": 1}, "conversation_id": "conv-42", "reply_with": "r1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation_id"], "conv-42");
    assert_eq!(body["reply"]["conversation_id"], "conv-42");
    assert_eq!(body["reply"]["in_reply_to"], "r1");
    assert_eq!(body["reply"]["performative"], "inform");
    assert_eq!(body["reply"]["sender"], "echo");
    assert_eq!(body["reply"]["content"], "{\"q\":1}");
    assert!(
        body["timing"]["total_ms"]
            .as_f64()
            .is_some_and(|t| t >= 0.0)
    );

    // Durable state through the keyvalue import.
    server
        .deploy("counter", &rust_example("counter"), json!({}))
        .await;
    assert_eq!(server.ask("counter", "increment").await, "1");
    assert_eq!(server.ask("counter", "inc 41").await, "42");

    let (_, shown) = server.get("/api/v1/agents/echo").await;
    assert_eq!(shown["stats"]["messages_handled"], 2);

    // Restart: same agents, same ids, same state.
    let server = server.restart();
    let (_, list) = server.get("/api/v1/agents").await;
    assert_eq!(list["total"], 2, "{list}");
    let (status, shown) = server.get("/api/v1/agents/echo").await;
    assert_eq!(status, 200);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["resource_limits"], limits);
    assert_eq!(server.ask("echo", "after restart").await, "after restart");
    assert_eq!(server.ask("counter", "increment").await, "43");
    assert!(
        std::fs::read_dir(data.join("cache/components"))
            .expect("cache dir")
            .count()
            >= 2,
        "compiled components are cached on disk"
    );

    // Delete: gone now, and gone after a restart; its state goes with it.
    let (status, _) = server.delete("/api/v1/agents/counter").await;
    assert_eq!(status, 200);
    let (status, body) = server.get("/api/v1/agents/counter").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "agent_not_found");
    let server = server.restart();
    let (_, list) = server.get("/api/v1/agents").await;
    assert_eq!(list["total"], 1);
    server
        .deploy("counter", &rust_example("counter"), json!({}))
        .await;
    assert_eq!(
        server.ask("counter", "get").await,
        "0",
        "a redeployed agent starts with fresh state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploys_lists_shows_pings_and_removes() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let wasm = rust_example("echo");
    let wasm = wasm.to_str().expect("utf-8 path");

    let (ok, out, err) = server.cli(&[
        "agents",
        "deploy",
        wasm,
        "--name",
        "cli-echo",
        "--max-fuel",
        "5000000",
    ]);
    assert!(ok, "deploy failed: {err}");
    assert!(out.contains("cli-echo"), "{out}");

    let (ok, out, _) = server.cli(&["agents", "list"]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("cli-echo") && l.contains("wasm") && l.contains("running")),
        "{out}"
    );
    assert_eq!(server.cli(&["agents", "list", "--count"]).1.trim(), "1");
    // More log lines than the server keeps is refused before asking it.
    let (ok, _, err) = server.cli(&["agents", "logs", "cli-echo", "--tail", "5000"]);
    assert!(!ok && err.contains("0..=1000"), "{err}");
    assert_eq!(
        server
            .cli(&["agents", "list", "--type", "wasm", "--count"])
            .1
            .trim(),
        "1"
    );
    assert_eq!(
        server
            .cli(&["agents", "list", "--type", "config", "--count"])
            .1
            .trim(),
        "0"
    );
    let (ok, out, _) = server.cli(&["agents", "list", "--json"]);
    assert!(ok);
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(parsed["agents"][0]["resource_limits"]["max_fuel"], 5000000);

    let (ok, out, _) = server.cli(&["agents", "show", "cli-echo"]);
    assert!(ok);
    assert!(out.contains("Status:        running"), "{out}");
    assert_eq!(
        server.cli(&["agents", "capabilities", "cli-echo"]).1.trim(),
        "echo"
    );

    let (ok, out, _) = server.cli(&["agents", "ping", "cli-echo"]);
    assert!(ok, "{out}");
    assert!(out.contains("alive"));
    let (ok, out, _) = server.cli(&["agents", "message", "cli-echo", "via the cli"]);
    assert!(ok);
    assert_eq!(out.trim(), "[inform] via the cli");

    // Every command that prints data prints one JSON document with --json.
    for command in [
        &["status"][..],
        &["version"],
        &["agents", "show", "cli-echo"],
        &["agents", "capabilities", "cli-echo"],
        &["agents", "ping", "cli-echo"],
        &["agents", "message", "cli-echo", "json please"],
        &["agents", "logs", "cli-echo"],
        &["agents", "status", "cli-echo"],
        &["agents", "status"],
        &["agents", "diagnose"],
        &["agents", "analyze", "--pattern", "error"],
        &["agents", "audit-tools"],
        &["tools", "list"],
        &["tools", "invoke", "csv_parser", r#"{"csv": "a,b\n1,2"}"#],
        &["memory", "status"],
        &["memory", "stats"],
        &["memory", "usage"],
        &["memory", "diagnose"],
        &["memory", "capacity-check"],
        &["memory", "model-status"],
        &["memory", "emergency-diagnosis"],
        &["memory", "search", "anything"],
        &["storage", "verify", "--quick"],
        &["storage", "corruption-level"],
        &["storage", "repair", "--dry-run"],
        &["tokens", "list"],
        &["trace", "--agent", "cli-echo"],
    ] {
        let mut args = command.to_vec();
        args.push("--json");
        let (_, out, err) = server.cli(&args);
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&out);
        assert!(
            parsed.as_ref().is_ok_and(|v| v.is_object()),
            "`caxton {}` did not print one JSON object: {out}{err}",
            args.join(" ")
        );
    }
    // Columns line up whatever the length of the names.
    server
        .deploy(
            "an-agent-with-a-rather-long-name-indeed",
            &rust_example("echo"),
            serde_json::json!({}),
        )
        .await;
    let (_, out, _) = server.cli(&["agents", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    let column = |line: &str, word: &str| line.find(word);
    let header = lines[0];
    for row in &lines[1..] {
        assert_eq!(
            column(header, "TYPE"),
            column(row, "wasm"),
            "TYPE is misaligned:\n{out}"
        );
        assert_eq!(
            column(header, "CAPABILITIES"),
            row.rfind("echo"),
            "CAPABILITIES is misaligned:\n{out}"
        );
    }
    let (status, _) = server
        .delete("/api/v1/agents/an-agent-with-a-rather-long-name-indeed")
        .await;
    assert_eq!(status, 200);

    let (ok, _, _) = server.cli(&["agents", "remove", "cli-echo"]);
    assert!(ok);
    let (ok, _, err) = server.cli(&["agents", "ping", "cli-echo"]);
    assert!(!ok, "ping of a removed agent must fail");
    assert!(err.contains("no agent named"), "{err}");
    let (ok, _, err) = server.cli(&["agents", "show", "nobody"]);
    assert!(!ok);
    assert!(err.contains("no agent named `nobody`"), "{err}");

    let (ok, out, _) = server.cli(&["status"]);
    assert!(ok);
    assert!(out.contains("healthy"), "{out}");
    let (ok, out, _) = server.cli(&["version"]);
    assert!(ok && out.starts_with("caxton "), "{out}");
}

#[test]
fn shell_completions_know_the_commands_and_the_unit_starts_a_real_command() {
    for shell in ["bash", "zsh", "fish"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
            .args(["completions", shell])
            .output()
            .expect("run the CLI");
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for word in ["agents", "memory", "storage", "tokens", "mcp"] {
            assert!(script.contains(word), "{shell} completion lacks `{word}`");
        }
    }
    // The shipped systemd unit's ExecStart parses as a caxton command.
    let unit =
        std::fs::read_to_string(crate::harness::repo_root().join("packaging/caxton.service"))
            .expect("packaging/caxton.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().skip(1).chain(["--help"]).collect();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(&args)
        .output()
        .expect("run the CLI");
    assert!(
        output.status.success(),
        "{exec}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Issue 25.10: the shipped unit passes `systemd-analyze verify` (with
/// its ExecStart pointed at this build), and the steps its header gives
/// make an install whose configuration `caxton config verify` accepts.
#[test]
fn the_systemd_unit_verifies_and_its_install_steps_work() {
    let unit =
        std::fs::read_to_string(crate::harness::repo_root().join("packaging/caxton.service"))
            .expect("packaging/caxton.service");
    let dir = tempfile::tempdir().expect("temp dir");
    let installed = dir.path().join("caxton.service");
    std::fs::write(
        &installed,
        unit.replace("/usr/local/bin/caxton", env!("CARGO_BIN_EXE_caxton")),
    )
    .expect("write the unit");
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&installed)
        .output()
        .expect("systemd-analyze is installed (scripts/test installs systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("caxton.service"),
        "systemd-analyze warns about the unit: {stderr}"
    );
    // The header's `caxton init` line, under a temporary root.
    let root = dir.path();
    let header: Vec<&str> = unit.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(
        header
            .iter()
            .any(|l| l.contains("caxton init --config /etc/caxton/caxton.yaml")),
        "the header says how to make the configuration"
    );
    let under = |p: &str| root.join(p.trim_start_matches('/'));
    std::fs::create_dir_all(under("/etc/caxton")).expect("etc");
    let caxton = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
            .args(args)
            .current_dir(root)
            .output()
            .expect("run the CLI")
    };
    let config = under("/etc/caxton/caxton.yaml");
    let agents = under("/var/lib/caxton/agents");
    let init = caxton(&[
        "init".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        under("/var/lib/caxton").as_os_str(),
        "--agents-dir".as_ref(),
        agents.as_os_str(),
    ]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let verify = caxton(&[
        "config".as_ref(),
        "verify".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--agents-dir".as_ref(),
        agents.as_os_str(),
    ]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(under("/var/lib/caxton/admin.token").is_file());
}

#[test]
fn a_reader_that_stops_early_ends_the_cli_quietly() {
    use std::io::BufRead as _;
    // 190 KB of bash completions: more than a pipe holds.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the CLI");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read a line");
    assert!(!first.is_empty());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_an_unreachable_server() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(["--server", "http://127.0.0.1:9", "agents", "list"])
        .output()
        .expect("run the CLI");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("cannot reach the caxton server"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_wasm_upload_suspend_resume_and_logs() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let bytes = std::fs::read(rust_example("counter")).expect("read");
    let (status, body) = server
        .post_raw(
            "/api/v1/agents?name=raw-counter&max_fuel=20000000",
            "application/wasm",
            bytes.clone(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["resource_limits"]["max_fuel"], 20000000);
    let (status, body) = server
        .post_raw("/api/v1/agents", "application/wasm", bytes)
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "missing_name");

    assert_eq!(server.ask("raw-counter", "increment").await, "1");
    let (status, body) = server
        .post("/api/v1/agents/raw-counter/suspend", &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "suspended");
    let (status, body) = server.message("raw-counter", "increment").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "agent_suspended");
    // Suspension is stored: it survives a restart.
    let server = server.restart();
    let (_, body) = server.get("/api/v1/agents/raw-counter").await;
    assert_eq!(body["status"], "suspended");
    let (status, _) = server
        .post("/api/v1/agents/raw-counter/resume", &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.ask("raw-counter", "increment").await, "2");

    let (status, logs) = server.get("/api/v1/agents/raw-counter/logs?tail=10").await;
    assert_eq!(status, 200);
    let lines = logs["lines"].as_array().expect("lines");
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "info" && l["message"] == "count is now 2"),
        "the agent's own log line is captured: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route_and_errors_have_one_shape() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let (status, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/health",
        "/api/v1/agents",
        "/api/v1/agents/{agent}",
        "/api/v1/agents/{agent}/message",
        "/api/v1/agents/{agent}/ping",
        "/api/v1/agents/{agent}/suspend",
        "/api/v1/agents/{agent}/resume",
        "/api/v1/agents/{agent}/logs",
        "/api/v1/messages",
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/docs/app.js",
        "/api/v1/shutdown",
        "/api/v1/health/memory",
        "/api/v1/memory/entities",
        "/api/v1/memory/search",
        "/api/v1/memory/traverse",
        "/api/v1/memory/graph",
        "/api/v1/memory/export",
        "/api/v1/memory/import",
        "/api/v1/tools",
        "/api/v1/tools/{tool}",
        "/api/v1/config-agents",
        "/api/v1/config-agents/validate",
        "/api/v1/agents/{agent}/reload",
        "/api/v1/traces",
        "/api/v1/tools/{tool}/invoke",
        "/v1/chat/completions",
        "/v1/models",
        "/mcp",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lists {path}");
    }
    // Bodies are the handlers' own types: the search body's fields come
    // from the struct the handler reads, and errors have their one shape.
    let schemas = &doc["components"]["schemas"];
    let search = &doc["paths"]["/api/v1/memory/search"]["post"];
    let body_ref = search["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("the search body is a component: {search}"));
    let body = &schemas[body_ref.trim_start_matches("#/components/schemas/")];
    assert!(body["properties"]["query"].is_object(), "{body}");
    assert!(
        schemas["ErrorBody"]["properties"]["error"].is_object(),
        "{schemas}"
    );
    // Every operation has a summary and a unique id.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_string()),
                "{method} {path}: operationId `{id}` twice"
            );
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
        }
    }
    // The page to browse it: its own script only, which renders the
    // document's texts as text.
    let page = reqwest::get(server.url("/api/v1/docs"))
        .await
        .expect("docs");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(
        html.contains(r#"<script src="/api/v1/docs/app.js">"#),
        "{html}"
    );
    let script = reqwest::get(server.url("/api/v1/docs/app.js"))
        .await
        .expect("script")
        .text()
        .await
        .expect("text");
    assert!(
        script.contains("/api/v1/openapi.json") && !script.contains("innerHTML"),
        "{script}"
    );
    let (status, body) = server.get("/api/v1/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "route_not_found");
    let (status, body) = server.message("ghost", "hi").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "agent_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ghost")
    );

    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let (status, body) = server
        .post_raw(
            "/api/v1/agents/echo/message",
            "application/json",
            b"{\"message\": ".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("line 1"),
        "{body}"
    );
    let (status, body) = server
        .post("/api/v1/agents/echo/message", &json!({"mesage": "typo"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("mesage"),
        "{body}"
    );
    let (status, body) = server.post("/api/v1/agents/echo/message", &json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_over_the_api_stops_the_server() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let (ok, out, err) = server.cli(&["shutdown"]);
    assert!(ok, "{err}");
    assert!(out.contains("shutdown"), "{out}");
    let mut stopped = false;
    for _ in 0..600 {
        if reqwest::get(server.url("/api/v1/health")).await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(stopped, "the server still answers after shutdown");
}

//! A2A 1.0 both ways, against the official `a2a-sdk` (1.3.0, pinned and
//! installed by `scripts/test` into `target/a2a-venv`): its client talks
//! to Caxton agents on both bindings, and tasks behave as the protocol
//! says (states, cancel, subscribe, errors, tokens).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, repo_root, rust_example, temp_data_dir};
use crate::interop::{a2a_python, free_port, run_script_with};

/// One JSON-RPC call to an agent's A2A endpoint; answers the response.
async fn rpc(server: &Server, token: &str, agent: &str, method: &str, params: Value) -> Value {
    let (status, body) = server
        .post_as(
            token,
            &format!("/a2a/{agent}"),
            &json!({"jsonrpc": "2.0", "id": "1", "method": method, "params": params}),
        )
        .await;
    assert_eq!(status, 200, "{method}: {body}");
    body
}

fn user_message(text: &str) -> Value {
    json!({"messageId": uuid(), "role": "ROLE_USER", "parts": [{"text": text}]})
}

fn uuid() -> String {
    format!(
        "m-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_a2a_client_talks_to_caxton_agents_on_both_bindings() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let token = server.token("a2a-client", "message").await;

    let (status, card) = server.get("/a2a/echo/.well-known/agent-card.json").await;
    assert_eq!(status, 200, "{card}");
    let interfaces = card["supportedInterfaces"].as_array().expect("interfaces");
    let bindings: Vec<&str> = interfaces
        .iter()
        .filter_map(|i| i["protocolBinding"].as_str())
        .collect();
    assert_eq!(bindings, ["JSONRPC", "HTTP+JSON"], "{card}");
    for interface in interfaces {
        assert_eq!(interface["url"], server.url("/a2a/echo"), "{card}");
        assert_eq!(interface["protocolVersion"], "1.0");
    }
    assert_eq!(card["skills"][0]["id"], "echo", "skills are capabilities");
    assert_eq!(
        card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"],
        "bearer"
    );

    let python = a2a_python();
    for (binding, tasks_after) in [("jsonrpc", 2), ("rest", 4)] {
        let out = run_script_with(
            &python,
            "a2a_client.py",
            &[&server.base, "echo", &token, binding],
        );
        assert_eq!(out["card_name"], "echo", "{out}");
        assert_eq!(out["send_state"], "TASK_STATE_COMPLETED", "{out}");
        assert_eq!(out["send_text"], "hello a2a", "{out}");
        assert_eq!(
            out["stream_events"],
            json!(["task", "status_update", "artifact_update", "status_update"]),
            "{out}"
        );
        assert_eq!(out["stream_text"], "hello a2a", "{out}");
        assert_eq!(out["stream_state"], "TASK_STATE_COMPLETED", "{out}");
        assert_eq!(out["get_state"], "TASK_STATE_COMPLETED", "{out}");
        assert_eq!(
            out["list_count"], tasks_after,
            "only this caller's tasks: {out}"
        );
        assert_eq!(out["cancel_error_code"], -32002, "not cancelable: {out}");
        assert_eq!(out["unknown_error_code"], -32001, "not found: {out}");
        // The context is the conversation, recorded as A2A, the token's.
        let context = out["context_id"].as_str().expect("context id");
        let (status, conversation) = server
            .get(&format!("/api/v1/conversations/{context}"))
            .await;
        assert_eq!(status, 200, "{conversation}");
        assert_eq!(conversation["protocol"], "a2a", "{conversation}");
        assert_eq!(conversation["initiator"], "a2a-client", "{conversation}");
        assert_eq!(conversation["state"], "completed", "{conversation}");
    }

    // Another principal sees none of those tasks.
    let other = server.token("someone-else", "message").await;
    let listed = rpc(&server, &other, "echo", "ListTasks", json!({})).await;
    assert_eq!(listed["result"]["totalSize"], 0, "{listed}");
    let mine = rpc(&server, &token, "echo", "ListTasks", json!({})).await;
    let task_id = mine["result"]["tasks"][0]["id"].as_str().expect("a task");
    let theirs = rpc(&server, &other, "echo", "GetTask", json!({"id": task_id})).await;
    assert_eq!(theirs["error"]["code"], -32001, "{theirs}");

    // A `read` token may read the card and tasks, not send.
    let reader = server.token("a2a-reader", "read").await;
    let (status, refused) = server
        .post_as(
            &reader,
            "/a2a/echo",
            &json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                "params": {"message": user_message("hi")}}),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    let (status, _) = server
        .post_as(
            &reader,
            "/a2a/echo/message:send",
            &json!({"message": user_message("hi")}),
        )
        .await;
    assert_eq!(status, 403);
}

/// Reads a server-sent event stream to its end; answers the `data` JSONs.
async fn read_events(response: reqwest::Response) -> Vec<Value> {
    let text = response.text().await.expect("the stream");
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).expect("JSON data"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_tasks_follow_fipa_replies_and_can_be_cancelled_and_followed() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy(
            "spinner",
            &rust_example("misbehave"),
            json!({"max_fuel": 100_000_000_000u64, "max_execution_time_ms": 3000}),
        )
        .await;
    let token = server.token("a2a-user", "message").await;

    // A failure reply fails the task, with the reason as its status message.
    let failed = rpc(
        &server,
        &token,
        "spinner",
        "SendMessage",
        json!({"message": user_message("open-file /etc/hostname")}),
    )
    .await;
    let task = &failed["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED", "{failed}");
    assert!(
        task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("open-file denied")),
        "{failed}"
    );

    // A task still working: followed over HTTP+JSON, cancelled over JSON-RPC.
    let started = rpc(
        &server,
        &token,
        "spinner",
        "SendMessage",
        json!({"message": user_message("loop"), "configuration": {"returnImmediately": true}}),
    )
    .await;
    let task = &started["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_WORKING", "{started}");
    let id = task["id"].as_str().expect("task id").to_string();
    let follower = reqwest::Client::new()
        .post(server.url(&format!("/a2a/spinner/tasks/{id}:subscribe")))
        .bearer_auth(&token)
        .header("a2a-version", "1.0")
        .send()
        .await
        .expect("subscribe");
    assert_eq!(follower.status().as_u16(), 200);
    let follow = tokio::spawn(read_events(follower));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = rpc(&server, &token, "spinner", "CancelTask", json!({"id": id})).await;
    assert_eq!(
        cancelled["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{cancelled}"
    );
    let events = tokio::time::timeout(Duration::from_secs(10), follow)
        .await
        .expect("the stream ends once the task does")
        .expect("reader");
    assert_eq!(events[0]["task"]["id"], id.as_str(), "{events:?}");
    assert_eq!(
        events
            .last()
            .map(|e| e["statusUpdate"]["status"]["state"].clone()),
        Some(json!("TASK_STATE_CANCELED")),
        "{events:?}"
    );
    // The agent's time limit ends its work later; the task stays cancelled.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = rpc(&server, &token, "spinner", "GetTask", json!({"id": id})).await;
    assert_eq!(
        got["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{got}"
    );
    let again = rpc(&server, &token, "spinner", "CancelTask", json!({"id": id})).await;
    assert_eq!(again["error"]["code"], -32002, "{again}");

    // A task is the server's, not the connection's: a caller that stops
    // waiting for a blocking SendMessage finds the task completed later.
    let mut body = crate::harness::deploy_body(
        "slow",
        &rust_example("contractor"),
        json!({"max_execution_time_ms": 10000}),
    );
    body["config"] = json!({"name": "slow", "bid": 1, "stall_ms": 1500});
    let (status, answer) = server.post("/api/v1/agents", &body).await;
    assert_eq!(status, 201, "{answer}");
    let gave_up = reqwest::Client::new()
        .post(server.url("/a2a/slow"))
        .bearer_auth(&token)
        .header("a2a-version", "1.0")
        .timeout(Duration::from_millis(300))
        .json(
            &json!({"jsonrpc": "2.0", "id": "1", "method": "SendMessage",
                      "params": {"message": user_message("a quote, please")}}),
        )
        .send()
        .await;
    assert!(gave_up.is_err(), "the caller should have stopped waiting");
    let listed = rpc(&server, &token, "slow", "ListTasks", json!({})).await;
    let id = listed["result"]["tasks"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the task is kept: {listed}"))
        .to_string();
    let waited = std::time::Instant::now();
    loop {
        let got = rpc(&server, &token, "slow", "GetTask", json!({"id": id})).await;
        if got["result"]["status"]["state"] == "TASK_STATE_COMPLETED" {
            assert_eq!(
                got["result"]["artifacts"][0]["parts"][0]["text"], "slow quotes 1",
                "{got}"
            );
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the task did not finish without its caller: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Bad requests get the protocol's errors, and say what was wrong.
    let (status, parse) = server
        .post_raw("/a2a/spinner", "application/json", b"{nope".to_vec())
        .await;
    assert_eq!(status, 400, "not a request at all");
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    let unknown = rpc(&server, &token, "spinner", "message/send", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    let no_message = rpc(&server, &token, "spinner", "SendMessage", json!({})).await;
    assert_eq!(no_message["error"]["code"], -32602, "{no_message}");
    let old = reqwest::Client::new()
        .post(server.url("/a2a/spinner"))
        .bearer_auth(&token)
        .header("a2a-version", "0.3")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": id}}))
        .send()
        .await
        .expect("post");
    let old: Value = old.json().await.expect("json");
    assert_eq!(old["error"]["code"], -32009, "{old}");
    let (status, missing) = server.get("/a2a/spinner/tasks/no-such-task").await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["details"][0]["reason"], "TASK_NOT_FOUND");
    let (status, _) = server.get("/a2a/nobody/.well-known/agent-card.json").await;
    assert_eq!(status, 404);
}

/// The SDK's own A2A server (`tests/interop/a2a_echo_server.py`): answers
/// `echo: TEXT`. Killed when dropped.
struct SdkAgent {
    child: std::process::Child,
    port: u16,
}

impl SdkAgent {
    fn start() -> SdkAgent {
        use std::io::BufRead as _;
        let port = free_port();
        let mut child = std::process::Command::new(a2a_python())
            .arg(repo_root().join("tests/interop/a2a_echo_server.py"))
            .arg(port.to_string())
            .arg("echo")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the a2a-sdk server");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut first);
        assert_eq!(first.trim(), "ready", "the a2a-sdk server did not start");
        SdkAgent { child, port }
    }
}

impl Drop for SdkAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const RELAY: &str = "---\nname: relay\nversion: \"1.0.0\"\ncapabilities: [relaying]\ntools: [ask_agent]\nsystem_prompt: You ask the far agent.\n---\nAsks a remote agent.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caxton_agents_call_an_a2a_server_built_with_the_sdk() {
    let remote = SdkAgent::start();
    let (guard, data) = temp_data_dir();
    let root = guard.path();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(agents.join("relay.md"), RELAY).expect("relay");
    std::fs::write(
        root.join("script.yaml"),
        "- when: \"forecast please\"\n  tool_calls: [{name: ask_agent, arguments: {agent: far-echo, message: forecast}}]\n- when: \"echo: forecast\"\n  content: \"The far agent said: echo: forecast\"\n",
    )
    .expect("script");
    let closed = free_port();
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {agents}\nllm:\n  scripted:\n    script: {script}\na2a_agents:\n  far-echo:\n    url: http://127.0.0.1:{port}/a2a/echo\n    timeout_secs: 20\n  gone:\n    url: http://127.0.0.1:{closed}/a2a/gone\n    timeout_secs: 2\n    retries: 1\n    capabilities: [nothing-here]\n",
            agents = agents.display(),
            script = root.join("script.yaml").display(),
            port = remote.port,
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));

    // The card is read: the remote agent's skills are its capabilities.
    let started = std::time::Instant::now();
    loop {
        let (status, agent) = server.get("/api/v1/agents/far-echo").await;
        assert_eq!(status, 200, "{agent}");
        if agent["capabilities"] == json!(["echo"]) {
            assert_eq!(agent["type"], "a2a", "{agent}");
            let (_, remote) = server.get("/api/v1/agents?type=a2a").await;
            let names: Vec<&str> = remote["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["name"].as_str())
                .collect();
            assert_eq!(names, ["far-echo", "gone"], "{remote}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the card was never read: {agent}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // By name over REST, by capability, and from a WASM agent.
    assert_eq!(server.ask("far-echo", "hi").await, "echo: hi");
    let (status, routed) = server
        .post(
            "/api/v1/messages",
            &json!({"capability": "echo", "message": "by skill"}),
        )
        .await;
    assert_eq!(status, 200, "{routed}");
    assert_eq!(routed["reply"]["content"], "echo: by skill", "{routed}");
    assert_eq!(routed["agent"]["name"], "far-echo");
    server
        .deploy("asker", &rust_example("asker"), json!({}))
        .await;
    let asked = server.ask("asker", "ask far-echo from wasm").await;
    assert!(asked.contains("echo: from wasm"), "{asked}");

    // In a broadcast to its capability.
    let (status, gathered) = server
        .post(
            "/api/v1/broadcast",
            &json!({"capability": "echo", "content": "all", "timeout_ms": 10000}),
        )
        .await;
    assert_eq!(status, 200, "{gathered}");
    assert_eq!(gathered["answers"][0]["agent"], "far-echo", "{gathered}");
    assert_eq!(gathered["answers"][0]["status"], "replied", "{gathered}");
    assert_eq!(gathered["answers"][0]["content"], "echo: all", "{gathered}");

    // A config agent uses it as a tool.
    let relayed = server.ask("relay", "forecast please").await;
    assert_eq!(relayed, "The far agent said: echo: forecast");

    // One that cannot be reached fails clearly, after its retries.
    let (status, failed) = server.message("gone", "anyone?").await;
    assert_eq!(status, 502, "{failed}");
    assert_eq!(failed["error"]["code"], "remote_agent_failed", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot connect")),
        "{failed}"
    );
    // Health tells which remote agents are reachable, like MCP servers.
    let (_, health) = server.get("/api/v1/health").await;
    assert_eq!(health["a2a_agents"]["far-echo"]["state"], "up", "{health}");
    assert_eq!(health["a2a_agents"]["gone"]["state"], "down", "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("A2A agents unreachable: gone")),
        "{health}"
    );
    // It is defined by the configuration, not removable over the API.
    let (status, _) = server.delete("/api/v1/agents/far-echo").await;
    assert_eq!(status, 409);
}

//! A2A 1.0 both ways, against the official `a2a-sdk` (1.3.0, pinned and
//! installed by `scripts/test` into `target/a2a-venv`): its client talks
//! to Caxton agents on both bindings, and tasks behave as the protocol
//! says (states, cancel, subscribe, errors, tokens).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, rust_example, temp_data_dir};
use crate::interop::{a2a_python, run_script_with};

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

//! Agents asking agents, by name and by capability, through the host's
//! messaging import; and API messages routed by capability.

use serde_json::json;

use crate::harness::{Server, rust_example, temp_data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_ask_each_other_by_name_and_by_capability() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    server
        .deploy("asker", &rust_example("asker"), json!({}))
        .await;

    assert_eq!(
        server.ask("asker", "ask echo good morning").await,
        "they said: good morning"
    );
    assert_eq!(
        server.ask("asker", "cap echo by capability").await,
        "they said: by capability"
    );

    // The hop from asker to echo is traced under the message that caused
    // it, in the same conversation.
    let (status, body) = server.message("asker", "ask echo trace me").await;
    assert_eq!(status, 200, "{body}");
    let conversation = body["reply"]["conversation_id"]
        .as_str()
        .expect("the reply names its conversation")
        .to_string();
    let (ok, tree, err) = server.cli(&[
        "trace",
        "--agent",
        "echo",
        "--conversation-id",
        &conversation,
    ]);
    assert!(ok, "{tree}{err}");
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[0].contains("3 span(s), 2 agent(s)"), "{tree}");
    assert!(
        lines[1].starts_with("└─ ")
            && lines[1].contains("POST /api/v1/agents/{agent}/message → 200"),
        "the HTTP request is the root: {tree}"
    );
    assert!(
        lines[2].starts_with("   └─ ") && lines[2].contains("user → asker  request"),
        "{tree}"
    );
    assert!(
        lines[3].starts_with("      └─ ") && lines[3].contains("asker → echo  request"),
        "{tree}"
    );
    let (_, listed, _) = server.cli(&["trace", "--agent", "echo"]);
    assert!(listed.contains(&conversation), "{listed}");
    let (ok, out, err) = server.cli(&["trace", "--agent", "asker", "--conversation-id", "nope"]);
    assert!(!ok, "{out}");
    assert!(err.contains("no trace of conversation `nope`"), "{err}");

    let (status, body) = server.message("asker", "ask nobody hi").await;
    assert_eq!(status, 200);
    assert_eq!(body["reply"]["performative"], "failure");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("no agent named `nobody`"),
        "{body}"
    );

    let (_, body) = server.message("asker", "self").await;
    assert_eq!(body["reply"]["performative"], "failure");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("cannot send a request to itself"),
        "{body}"
    );

    // A failure inside the asked agent comes back as an error, not a hang.
    server
        .deploy(
            "spinner",
            &rust_example("misbehave"),
            json!({"max_fuel": 1_000_000}),
        )
        .await;
    let (_, body) = server.message("asker", "ask spinner loop").await;
    assert_eq!(body["reply"]["performative"], "failure");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("ran out of fuel"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_messages_route_by_capability() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("counter", &rust_example("counter"), json!({}))
        .await;
    let (status, body) = server
        .post(
            "/api/v1/messages",
            &json!({"capability": "counting", "content": "increment"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"]["name"], "counter");
    assert_eq!(body["reply"]["content"], "1");
    let (status, body) = server
        .post(
            "/api/v1/messages",
            &json!({"capability": "flying", "content": "up"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "capability_not_found");
    let (status, _) = server
        .post("/api/v1/messages", &json!({"content": "nobody"}))
        .await;
    assert_eq!(status, 400);
}

//! WASI is deny-by-default: no files, no sockets, no environment.

use serde_json::json;

use crate::harness::{Server, rust_example, temp_data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_cannot_open_files_sockets_or_read_the_environment() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("prober", &rust_example("misbehave"), json!({}))
        .await;

    let secret = data.parent().expect("parent").join("secret.txt");
    std::fs::write(&secret, "top secret").expect("write");
    for path in ["/etc/passwd", secret.to_str().expect("utf-8")] {
        let (status, body) = server.message("prober", &format!("open-file {path}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reply"]["performative"], "failure", "{body}");
        assert!(
            body["reply"]["content"]
                .as_str()
                .unwrap_or("")
                .starts_with("open-file denied"),
            "{body}"
        );
    }

    // The server's own port is listening; the guest still cannot connect.
    let address = server.base.trim_start_matches("http://").to_string();
    let (status, body) = server
        .message("prober", &format!("connect {address}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "failure", "{body}");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("connect denied"),
        "{body}"
    );

    assert_eq!(server.ask("prober", "env").await, "0 variables: ");
}

/// What a guest hands back is bounded: a reply over the cap becomes a
/// `failure` saying the cap, an oversized log line is cut with a marker,
/// and an agent describing itself beyond the caps is not deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_guest_hands_back_is_capped() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let limits = json!({"max_memory_bytes": 64 << 20});
    server
        .deploy("talker", &rust_example("misbehave"), limits.clone())
        .await;

    let (status, body) = server.message("talker", "big 5000000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "failure", "{body}");
    let content = body["reply"]["content"].as_str().unwrap_or_default();
    assert!(
        content.contains("5000000 bytes") && content.contains("4194304-byte cap"),
        "{content}"
    );
    // Under the cap, a large reply is whole.
    let (_, body) = server.message("talker", "big 100000").await;
    assert_eq!(
        body["reply"]["content"].as_str().map(str::len),
        Some(100_000)
    );

    assert_eq!(server.ask("talker", "shout 100000").await, "shouted");
    let (_, logs) = server.get("/api/v1/agents/talker/logs").await;
    let line = logs["lines"]
        .as_array()
        .and_then(|lines| lines.iter().find(|l| l["level"] == "info"))
        .and_then(|l| l["message"].as_str())
        .unwrap_or_else(|| panic!("no info line: {logs}"))
        .to_string();
    assert!(line.len() <= 16 * 1024, "{} bytes", line.len());
    assert!(
        line.ends_with("[truncated: 100000 bytes in all]"),
        "{}",
        &line[line.len() - 60..]
    );

    let mut body = crate::harness::deploy_body("boaster", &rust_example("misbehave"), limits);
    body["config"] = json!({"huge_describe": true});
    let (status, answer) = server.post("/api/v1/agents", &body).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_description", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("description is 1048576 bytes") && message.contains("4096"),
        "{message}"
    );
    let (status, _) = server.get("/api/v1/agents/boaster").await;
    assert_eq!(status, 404);
}

//! Fuel, wall-time and memory limits: each stops a misbehaving agent with a
//! clear error, the agent answers the next message, others never notice.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Server, rust_example, temp_data_dir};

async fn expect_failure(
    server: &Server,
    agent: &str,
    command: &str,
    status: u16,
    code: &str,
) -> String {
    let (got, body) = server.message(agent, command).await;
    assert_eq!(got, status, "`{command}` to {agent}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_limit_stops_an_infinite_loop() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy(
            "spinner",
            &rust_example("misbehave"),
            json!({"max_fuel": 10_000_000}),
        )
        .await;
    let message = expect_failure(&server, "spinner", "loop", 502, "agent_out_of_fuel").await;
    assert!(message.contains("max_fuel = 10000000"), "{message}");
    assert_eq!(server.ask("spinner", "hi").await, "still here: hi");
    let (_, agent) = server.get("/api/v1/agents/spinner").await;
    assert_eq!(agent["stats"]["fuel_exhausted"], 1);
    assert_eq!(agent["stats"]["messages_handled"], 1);
    assert_eq!(agent["stats"]["last_error_code"], "agent_out_of_fuel");
    assert_eq!(agent["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_stops_an_infinite_loop_while_others_keep_answering() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy(
            "spinner",
            &rust_example("misbehave"),
            json!({"max_fuel": 100_000_000_000u64, "max_execution_time_ms": 5000}),
        )
        .await;
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;

    // While the spinner burns its core, echo still answers: before the
    // spinner is stopped, not after (an order, not a time, so a loaded
    // machine cannot fail it).
    let started = Instant::now();
    let looping = async { (server.message("spinner", "loop").await, Instant::now()) };
    let bystander = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        (server.ask("echo", "still fine?").await, Instant::now())
    };
    let (((status, body), stopped_at), (reply, echoed_at)) = tokio::join!(looping, bystander);
    let elapsed = stopped_at - started;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "agent_timeout");
    assert!(
        elapsed >= Duration::from_millis(4900) && elapsed < Duration::from_secs(30),
        "stopped after {elapsed:?}"
    );
    assert_eq!(reply, "still fine?");
    assert!(
        echoed_at < stopped_at,
        "echo answered only {:?} after the spinner was stopped",
        echoed_at - stopped_at
    );
    assert_eq!(server.ask("spinner", "back").await, "still here: back");
    let (_, agent) = server.get("/api/v1/agents/spinner").await;
    assert_eq!(agent["stats"]["timeouts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_stops_a_memory_hog() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy(
            "hog",
            &rust_example("misbehave"),
            json!({"max_memory_bytes": 16 * 1024 * 1024}),
        )
        .await;
    let message = expect_failure(&server, "hog", "hog", 502, "agent_memory_limit").await;
    assert!(message.contains("max_memory_bytes = 16777216"), "{message}");
    assert_eq!(server.ask("hog", "hi").await, "still here: hi");
    let (_, agent) = server.get("/api/v1/agents/hog").await;
    assert_eq!(agent["stats"]["memory_limit_hits"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_reported_with_the_panic_message_and_the_agent_recovers() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("trapper", &rust_example("misbehave"), json!({}))
        .await;
    let message = expect_failure(&server, "trapper", "trap", 502, "agent_trapped").await;
    assert!(
        message.contains("misbehave was told to trap"),
        "the guest's panic text is in the error: {message}"
    );
    assert_eq!(server.ask("trapper", "again").await, "still here: again");
    let (_, agent) = server.get("/api/v1/agents/trapper").await;
    assert_eq!(agent["stats"]["traps"], 1);
    assert_eq!(
        agent["stats"]["instances_created"], 2,
        "the trapped instance was replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_mark_the_agent_failed_until_it_succeeds() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy(
            "flaky",
            &rust_example("misbehave"),
            json!({"max_fuel": 1_000_000}),
        )
        .await;
    for _ in 0..5 {
        expect_failure(&server, "flaky", "loop", 502, "agent_out_of_fuel").await;
    }
    let (_, agent) = server.get("/api/v1/agents/flaky").await;
    assert_eq!(agent["status"], "failed");
    assert_eq!(server.ask("flaky", "ok").await, "still here: ok");
    let (_, agent) = server.get("/api/v1/agents/flaky").await;
    assert_eq!(agent["status"], "running");
}

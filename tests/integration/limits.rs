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
            // The most fuel the runtime allows, and a time limit it lasts
            // well beyond: a free core spins through ~2e10 fuel a second,
            // so with 5 s the fuel could run out first on a fast machine.
            json!({"max_fuel": 100_000_000_000u64, "max_execution_time_ms": 2000}),
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
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(30),
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

/// A definition listing tens of thousands of capabilities and tools, sent
/// to the validate endpoint any `read` token may call, is refused with
/// one problem per list (not one per item), and four such requests at
/// once do not hold up the health check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_lists_in_a_definition_are_capped_and_do_not_stall_the_server() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    // Within the 256 KiB a definition may have: 50 000 capabilities and
    // 20 000 distinct unknown tools.
    let capabilities = vec!["c"; 50_000].join(",");
    let tools: Vec<String> = (0..20_000).map(|i| format!("t{i:x}")).collect();
    let source = format!(
        "---\nname: Lists\nversion: \"1.0.0\"\ncapabilities: [{capabilities}]\ntools: [{}]\nsystem_prompt: hi\n---\n",
        tools.join(",")
    );
    let body = json!({"file": "lists.md", "source": source});
    let validate = || server.post("/api/v1/config-agents/validate", &body);

    let health = async {
        // Let the four validations start first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let (status, health) = server.get("/api/v1/health").await;
        assert_eq!(status, 200, "{health}");
        started.elapsed()
    };
    let (a, b, c, d, health_took) =
        tokio::join!(validate(), validate(), validate(), validate(), health);
    assert!(
        health_took < Duration::from_secs(2),
        "/health took {health_took:?} while four validations ran"
    );
    for (status, answer) in [a, b, c, d] {
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["valid"], false, "{answer}");
        let problems = answer["problems"].as_array().expect("problems");
        assert!(
            problems.len() <= 4,
            "one problem per list, not per item: {problems:?}"
        );
        for (field, count, max) in [("capabilities", 50_000, 256), ("tools", 20_000, 64)] {
            let problem = problems
                .iter()
                .find(|p| p["field"] == field)
                .unwrap_or_else(|| panic!("no problem for `{field}`: {problems:?}"));
            let message = problem["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(&format!("lists {count} items"))
                    && message.contains(&format!("at most {max}")),
                "{problem}"
            );
            assert_eq!(
                problem["line"],
                if field == "capabilities" { 4 } else { 5 },
                "{problem}"
            );
            assert!(
                problem["fix"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("remove the rest"),
                "{problem}"
            );
        }
    }
}

/// A request that finds its agent idle runs the message on its own task;
/// one that goes away half-way through (here the client gives up) must not
/// take the WASM call with it: the call runs on to its end (its time
/// limit), is counted, and holds the agent until then. Meanwhile requests
/// wait their turn, and beyond the mailbox's capacity are refused (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_goes_away_does_not_cut_a_wasm_call_short() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, "runtime:\n  mailbox_capacity: 2\n").expect("write config");
    let server = Server::start_with_config(&data, Some(&config));
    server
        .deploy(
            "spinner",
            &rust_example("misbehave"),
            json!({"max_fuel": 100_000_000_000u64, "max_execution_time_ms": 2000}),
        )
        .await;

    let started = Instant::now();
    let gone = reqwest::Client::new()
        .post(server.url("/api/v1/agents/spinner/message"))
        .json(&json!({"message": "loop"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up first: {gone:?}");

    // The call goes on: two requests wait their turn behind it, a third
    // finds the line full.
    let waiting: Vec<_> = (0..2)
        .map(|i| server.message("spinner", if i == 0 { "hello" } else { "again" }))
        .collect();
    let (waited, overflow) = tokio::join!(futures_util::future::join_all(waiting), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.message("spinner", "one too many").await
    });
    assert_eq!(overflow.0, 503, "{}", overflow.1);
    assert_eq!(overflow.1["error"]["code"], "agent_busy", "{}", overflow.1);
    for (status, body) in &waited {
        assert_eq!(*status, 200, "{body}");
        assert!(
            body["reply"]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("still here")),
            "{body}"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "the waiting requests were answered only after the abandoned call's 2 s: {:?}",
        started.elapsed()
    );

    let (_, agent) = server.get("/api/v1/agents/spinner").await;
    assert_eq!(agent["stats"]["timeouts"], 1, "{agent}");
    assert_eq!(
        agent["stats"]["last_error_code"], "agent_timeout",
        "{agent}"
    );
    assert_eq!(agent["stats"]["messages_failed"], 1, "{agent}");
    assert_eq!(agent["stats"]["messages_handled"], 2, "{agent}");
}

/// When an agent's time limit stops it while it waits on a host call (here
/// asking a busy agent), the host call is dropped with it: the request it
/// queued is never handled, because nobody waits for its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_work_a_guest_started_stops_with_its_time_limit() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy(
            "busy",
            &rust_example("misbehave"),
            json!({"max_fuel": 100_000_000_000u64, "max_execution_time_ms": 4000}),
        )
        .await;
    server
        .deploy(
            "impatient",
            &rust_example("asker"),
            json!({"max_execution_time_ms": 1000}),
        )
        .await;

    // `busy` spins for 4 s; meanwhile `impatient` asks it something (the
    // request would wait 5 s) and is stopped by its own 1 s limit.
    let spinning = server.message("busy", "loop");
    let asking = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.message("impatient", "ask busy are you there").await
    };
    let ((spun, _), (status, body)) = tokio::join!(spinning, asking);
    assert_eq!(spun, 504);
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "agent_timeout", "{body}");

    // Once free, `busy` finds the request abandoned and skips it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, logs) = server.get("/api/v1/agents/busy/logs").await;
        let lines = logs["lines"].as_array().cloned().unwrap_or_default();
        let skipped = lines.iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("its sender stopped waiting"))
        });
        if skipped {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request was not skipped: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Neither the spin nor the abandoned request was handled.
    let (_, agent) = server.get("/api/v1/agents/busy").await;
    assert_eq!(agent["stats"]["messages_handled"], 0, "{agent}");
}

/// A server that accepts connections and never answers: every CLI command
/// gives up after its timeout with a sentence saying what timed out and
/// how to wait longer, set by flag or environment.
#[test]
fn the_cli_gives_up_on_a_server_that_never_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    // Accepts, then holds each connection open without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in listener.incoming() {
            held.push(connection);
        }
    });
    let (_guard, dir) = temp_data_dir();
    let cwd = dir.parent().expect("parent");
    for (args, env) in [
        (vec!["status", "--request-timeout", "2"], None),
        (
            vec!["agents", "list"],
            Some(("CAXTON_REQUEST_TIMEOUT", "2s")),
        ),
    ] {
        let started = Instant::now();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"));
        command
            .arg("--server")
            .arg(&address)
            .args(&args)
            .current_dir(cwd)
            .env_remove("CAXTON_TOKEN")
            .env("CAXTON_DATA_DIR", &dir);
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let output = command.output().expect("run the caxton CLI");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
        assert!(
            took >= Duration::from_secs(2),
            "{args:?} gave up after {took:?}"
        );
        assert!(
            stderr.contains("timed out") && stderr.contains("did not answer within 2 s"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("--request-timeout"), "{stderr}");
    }
}

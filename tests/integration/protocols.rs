//! Agents working together: conversations the server keeps (shown only to
//! whoever started them, cancellable), broadcast by capability, and the
//! contract net the host runs, against real contractor components.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, deploy_body, rust_example, temp_data_dir};
use crate::security::{get_with, post_with};

/// Deploys the contractor example as `name` with its behaviour `config`.
async fn contractor(server: &Server, name: &str, config: Value) {
    let mut body = deploy_body(
        name,
        &rust_example("contractor"),
        json!({"max_execution_time_ms": 60000}),
    );
    body["config"] = config;
    let (status, answer) = server.post("/api/v1/agents", &body).await;
    assert_eq!(status, 201, "deploying {name}: {answer}");
}

fn ids(page: &Value) -> Vec<String> {
    page["conversations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str().map(String::from))
        .collect()
}

fn performatives(conversation: &Value) -> Vec<String> {
    conversation["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["performative"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_kept_shown_only_to_their_initiator_and_cancellable() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    contractor(&server, "slow", json!({"name": "slow", "stall_ms": 20000})).await;
    let alice = server.token("alice", "message").await;
    let bob = server.token("bob", "read").await;
    let carol = server.token("carol", "message").await;

    let (status, body) = post_with(
        &server,
        "/api/v1/agents/echo/message",
        &alice,
        &json!({"message": "hello", "conversation_id": "alice-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, mine) = get_with(&server, "/api/v1/conversations/alice-1", &alice).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["protocol"], "request");
    assert_eq!(mine["state"], "completed");
    assert_eq!(mine["initiator"], "alice");
    assert_eq!(mine["participants"], json!(["alice", "echo"]));
    assert_eq!(performatives(&mine), ["request", "inform"], "{mine}");
    assert_eq!(mine["outcome"], "hello");

    // Nobody else's principal sees it; an admin does.
    let (status, _) = get_with(&server, "/api/v1/conversations/alice-1", &bob).await;
    assert_eq!(status, 404, "a read token sees only its own");
    let (status, page) = get_with(&server, "/api/v1/conversations", &bob).await;
    assert_eq!(status, 200, "{page}");
    assert!(!ids(&page).contains(&"alice-1".to_string()), "{page}");
    let (status, page) = get_with(&server, "/api/v1/conversations", &alice).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), ["alice-1"]);
    let (status, page) = server
        .get("/api/v1/conversations?protocol=request&agent=echo&state=completed")
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(ids(&page).contains(&"alice-1".to_string()), "{page}");
    let (status, body) = server.get("/api/v1/conversations?state=sleeping").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown state `sleeping`"),
        "{body}"
    );
    let (status, body) = post_with(
        &server,
        "/api/v1/agents/echo/message",
        &alice,
        &json!({"message": "x", "conversation_id": "a\nb"}),
    )
    .await;
    assert_eq!(status, 400, "a control character in an id: {body}");

    // Cancelling answers the waiting request at once.
    let url = server.url("/api/v1/agents/slow/message");
    let waiting_token = alice.clone();
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(waiting_token)
            .json(&json!({"message": "take your time", "conversation_id": "alice-2"}))
            .send()
            .await
            .expect("message");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("JSON"))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, c) = server.get("/api/v1/conversations/alice-2").await;
        if status == 200 && c["state"] == "active" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice-2 never became active: {c}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = post_with(
        &server,
        "/api/v1/conversations/alice-2/cancel",
        &bob,
        &json!({}),
    )
    .await;
    assert_eq!(status, 403, "a read token cannot cancel");
    let (status, _) = post_with(
        &server,
        "/api/v1/conversations/alice-2/cancel",
        &carol,
        &json!({}),
    )
    .await;
    assert_eq!(status, 404, "nor can another principal");
    let (status, cancelled) = post_with(
        &server,
        "/api/v1/conversations/alice-2/cancel",
        &alice,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (status, body) = waiting.await.expect("the waiting request");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conversation_cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered when cancelled, not when the agent finished"
    );
    let (status, body) = post_with(
        &server,
        "/api/v1/conversations/alice-1/cancel",
        &alice,
        &json!({}),
    )
    .await;
    assert_eq!(status, 409, "a finished one cannot be: {body}");

    let (ok, out, err) = server.cli(&["conversations", "list", "--agent", "echo"]);
    assert!(
        ok && out.contains("alice-1") && out.contains("completed"),
        "{out}{err}"
    );
    let (ok, out, err) = server.cli(&["conversations", "show", "alice-1"]);
    assert!(ok, "{err}");
    assert!(out.contains("alice → echo  request  hello"), "{out}");
    assert!(out.contains("echo → alice  inform  hello"), "{out}");
    let (ok, _, err) = server.cli(&["conversations", "show", "nope"]);
    assert!(!ok && err.contains("no conversation `nope`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_gathers_every_answer_and_names_the_agent_that_timed_out() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    for n in 1..=5 {
        let name = format!("c{n}");
        contractor(&server, &name, json!({"name": name, "bid": n})).await;
    }
    contractor(&server, "c6", json!({"name": "c6", "stall_ms": 6000})).await;

    let (status, gathered) = server
        .post(
            "/api/v1/broadcast",
            &json!({"capability": "quote", "content": "price?", "timeout_ms": 2000}),
        )
        .await;
    assert_eq!(status, 200, "{gathered}");
    assert_eq!(
        gathered["asked"], 6,
        "echo does not declare `quote`: {gathered}"
    );
    assert_eq!(gathered["answered"], 5);
    let answers = gathered["answers"].as_array().expect("answers");
    for (n, answer) in answers.iter().take(5).enumerate() {
        assert_eq!(answer["agent"], format!("c{}", n + 1));
        assert_eq!(answer["status"], "replied", "{answer}");
        assert_eq!(answer["content"], format!("c{} quotes {}", n + 1, n + 1));
    }
    assert_eq!(answers[5]["agent"], "c6");
    assert_eq!(answers[5]["status"], "timeout", "{gathered}");
    let id = gathered["conversation_id"].as_str().expect("id");
    let (status, c) = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(c["protocol"], "broadcast");
    assert_eq!(c["state"], "completed");
    assert!(
        c["outcome"]
            .as_str()
            .unwrap_or("")
            .starts_with("5 of 6 answered"),
        "{c}"
    );
    assert_eq!(c["participants"].as_array().map(Vec::len), Some(7), "{c}");

    // Enough answers end the gathering.
    let (status, gathered) = server
        .post(
            "/api/v1/broadcast",
            &json!({"capability": "quote", "content": "again", "timeout_ms": 5000, "max_answers": 2}),
        )
        .await;
    assert_eq!(status, 200, "{gathered}");
    assert_eq!(gathered["answered"], 2);
    let statuses: Vec<&str> = gathered["answers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "replied").count(),
        2,
        "{gathered}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "unanswered").count(),
        4,
        "{gathered}"
    );

    let (status, body) = server
        .post(
            "/api/v1/broadcast",
            &json!({"capability": "nobody-has-it", "content": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "capability_not_found");
    let (status, body) = server
        .post(
            "/api/v1/broadcast",
            &json!({"capability": "quote", "content": "x", "timeout_ms": 0}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (ok, out, err) = server.cli(&["broadcast", "quote", "hello", "--timeout", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("5 of 6 answered"), "{out}");
    assert!(
        out.contains("c3") && out.contains("[inform] c3 quotes 3"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_net_awards_the_best_bid_and_falls_back_when_the_winner_fails() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    contractor(
        &server,
        "cheap",
        json!({"name": "cheap", "bid": 3, "fail": true}),
    )
    .await;
    contractor(&server, "mid", json!({"name": "mid", "bid": 5})).await;
    contractor(&server, "mid2", json!({"name": "mid2", "bid": 5})).await;
    contractor(&server, "pricey", json!({"name": "pricey", "bid": 9})).await;
    contractor(
        &server,
        "refuser",
        json!({"name": "refuser", "refuse": true}),
    )
    .await;
    contractor(
        &server,
        "sleeper",
        json!({"name": "sleeper", "bid": 1, "stall_ms": 6000}),
    )
    .await;

    let (status, outcome) = server
        .post(
            "/api/v1/contract-net",
            &json!({"capability": "quote", "task": "paint the fence",
                    "timeout_ms": 2000, "result_timeout_ms": 5000}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["state"], "completed", "{outcome}");
    assert_eq!(
        outcome["winner"], "mid",
        "the failed winner's next best; ties by name"
    );
    assert_eq!(outcome["result"], "mid did: paint the fence");
    let by_agent = |name: &str| -> Value {
        outcome["proposals"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["agent"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_agent("cheap")["bid"], 3.0);
    assert_eq!(by_agent("mid2")["status"], "proposed");
    assert_eq!(by_agent("refuser")["status"], "refused");
    assert_eq!(by_agent("sleeper")["status"], "timeout", "{outcome}");
    let tried: Vec<(&str, bool)> = outcome["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (a["agent"].as_str().unwrap_or(""), a["completed"] == true))
        .collect();
    assert_eq!(tried, [("cheap", false), ("mid", true)]);
    assert_eq!(outcome["rejected"], json!(["mid2", "pricey"]));
    assert_eq!(
        server.ask("mid2", "rejections").await,
        "1",
        "the rejection arrived"
    );
    assert_eq!(server.ask("mid", "rejections").await, "0");

    let id = outcome["conversation_id"].as_str().expect("id");
    let (_, c) = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c["protocol"], "contract-net");
    assert_eq!(c["state"], "completed", "{c}");
    let steps = performatives(&c);
    for step in [
        "cfp",
        "propose",
        "refuse",
        "accept-proposal",
        "failure",
        "inform",
        "reject-proposal",
    ] {
        assert!(steps.iter().any(|s| s == step), "{step} missing: {steps:?}");
    }

    // The highest bid, and no fallback when the winner fails.
    let (_, outcome) = server
        .post(
            "/api/v1/contract-net",
            &json!({"capability": "quote", "task": "t", "award": "highest", "timeout_ms": 2000}),
        )
        .await;
    assert_eq!(outcome["winner"], "pricey", "{outcome}");
    let (_, outcome) = server
        .post(
            "/api/v1/contract-net",
            &json!({"capability": "quote", "task": "t", "fallback": false, "timeout_ms": 2000}),
        )
        .await;
    assert_eq!(outcome["state"], "failed", "{outcome}");
    assert_eq!(outcome["winner"], Value::Null);
    assert!(
        outcome["reason"].as_str().unwrap_or("").contains("1 tried"),
        "{outcome}"
    );

    let (ok, out, err) = server.cli(&["contract-net", "quote", "mow the lawn", "--timeout", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("Winner: mid: mid did: mow the lawn"), "{out}");
}

/// Waits until `agent` answers `question` with `expected`; panics with the
/// last answer after `limit`.
async fn await_answer(
    server: &Server,
    agent: &str,
    question: &str,
    expected: &str,
    limit: Duration,
) {
    let started = Instant::now();
    loop {
        let answer = server.ask(agent, question).await;
        if answer == expected {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{agent} still answers {answer}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_messages_survive_kill_9_and_arrive_once() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    server
        .deploy("tally", &rust_example("counter"), json!({}))
        .await;
    let batch: Vec<Value> = (0..500)
        .map(|_| json!({"receiver": "tally", "message": "record"}))
        .collect();
    let (status, queued) = server
        .post("/api/v1/send", &json!({ "messages": batch }))
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["queued"], 500);
    // Acknowledged means on disk: killed at once, nothing is lost.
    server.kill();
    let mut server = Server::start(&data);
    await_answer(&server, "tally", "recorded", "500", Duration::from_secs(60)).await;
    let (status, outbox) = server.get("/api/v1/dead-letters").await;
    assert_eq!(status, 200, "{outbox}");
    assert_eq!(outbox["dead"], 0, "{outbox}");
    // Settled: none is delivered again later.
    let started = Instant::now();
    loop {
        let (_, outbox) = server.get("/api/v1/dead-letters").await;
        if outbox["waiting"] == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{outbox}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.ask("tally", "recorded").await, "500");

    // A WASM agent's `send` is durable too.
    server
        .deploy("teller", &rust_example("asker"), json!({}))
        .await;
    assert_eq!(
        server.ask("teller", "tell tally record").await,
        "told tally"
    );
    await_answer(&server, "tally", "recorded", "501", Duration::from_secs(20)).await;
    // A wrong address is reported at once, and queues nothing.
    let (status, refused) = server
        .post(
            "/api/v1/send",
            &json!({"messages": [{"receiver": "tally", "message": "record"}, {"receiver": "nobody", "message": "x"}]}),
        )
        .await;
    assert_eq!(status, 404, "{refused}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.ask("tally", "recorded").await, "501");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_fire_and_forget_messages_become_dead_letters_to_replay() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(
        &config,
        "outbox:\n  max_attempts: 2\n  retry_initial_ms: 100\n  retry_max_ms: 200\n",
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    server
        .deploy("trapper", &rust_example("misbehave"), json!({}))
        .await;
    let (status, queued) = server
        .post(
            "/api/v1/send",
            &json!({"receiver": "trapper", "message": "trap"}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let message_id = queued["messages"][0]["id"].clone();
    let letter = first_dead_letter(&server).await;
    assert_eq!(letter["message"]["id"], message_id, "{letter}");
    assert_eq!(letter["attempts"], 2, "tried max_attempts times: {letter}");
    assert!(
        letter["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("trapped")),
        "{letter}"
    );
    let (ok, out, err) = server.cli(&["dead-letters", "list"]);
    assert!(ok && out.contains("trapped"), "{out}{err}");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("\ncaxton_outbox_dead_letters 1\n"),
        "{metrics}"
    );
    // Replayed: tried again from zero, and dead again.
    let id = letter["id"].as_u64().expect("id");
    let (ok, out, err) = server.cli(&["dead-letters", "replay", &id.to_string()]);
    assert!(ok && out.contains("queued again"), "{out}{err}");
    let again = first_dead_letter(&server).await;
    assert_eq!(again["message"]["id"], message_id, "{again}");
    assert_ne!(again["id"], letter["id"], "a new dead letter: {again}");
    // Discarded: gone.
    let again_id = again["id"].as_u64().expect("id");
    let (status, _) = server
        .delete(&format!("/api/v1/dead-letters/{again_id}"))
        .await;
    assert_eq!(status, 200);
    let (_, page) = server.get("/api/v1/dead-letters").await;
    assert_eq!(page["dead_letters"], json!([]), "{page}");
    let (status, _) = server
        .delete(&format!("/api/v1/dead-letters/{again_id}"))
        .await;
    assert_eq!(status, 404);
    // Other principals' messages: an admin's to read.
    let reader = server.token("reader", "read").await;
    let (status, _) = get_with(&server, "/api/v1/dead-letters", &reader).await;
    assert_eq!(status, 403);
}

/// The first dead letter, once there is one (20 s at most).
async fn first_dead_letter(server: &Server) -> Value {
    let started = Instant::now();
    loop {
        let (status, page) = server.get("/api/v1/dead-letters").await;
        assert_eq!(status, 200, "{page}");
        if let Some(letter) = page["dead_letters"].get(0) {
            return letter.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dead letter: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_each_publication_once_across_restarts() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    for name in ["t1", "t2"] {
        server
            .deploy(name, &rust_example("counter"), json!({}))
            .await;
    }
    server
        .deploy("loner", &rust_example("echo"), json!({}))
        .await;
    let client = reqwest::Client::new();
    for name in ["t1", "t2"] {
        let answer = client
            .post(server.url(&format!("/api/v1/topics/news/subscribers/{name}")))
            .send()
            .await
            .expect("subscribe");
        assert_eq!(answer.status().as_u16(), 200);
    }
    let (status, published) = server
        .post("/api/v1/topics/news/publish", &json!({"content": "record"}))
        .await;
    assert_eq!(status, 202, "{published}");
    assert_eq!(published["subscribers"], json!(["t1", "t2"]), "{published}");
    for name in ["t1", "t2"] {
        await_answer(&server, name, "recorded", "1", Duration::from_secs(20)).await;
    }
    let conversation = published["conversation_id"].as_str().expect("id");
    let (_, shown) = server
        .get(&format!("/api/v1/conversations/{conversation}"))
        .await;
    assert_eq!(shown["protocol"], "publish", "{shown}");
    let (_, topics) = server.get("/api/v1/topics").await;
    assert_eq!(
        topics["topics"],
        json!([{"topic": "news", "subscribers": ["t1", "t2"]}])
    );

    // Subscriptions are kept: after a restart both still get the news.
    server.stop();
    let server = Server::start(&data);
    let (status, published) = server
        .post("/api/v1/topics/news/publish", &json!({"content": "record"}))
        .await;
    assert_eq!(status, 202, "{published}");
    for name in ["t1", "t2"] {
        await_answer(&server, name, "recorded", "2", Duration::from_secs(20)).await;
    }
    // Unsubscribed: no more.
    let answer = client
        .delete(server.url("/api/v1/topics/news/subscribers/t2"))
        .send()
        .await
        .expect("unsubscribe");
    assert_eq!(answer.status().as_u16(), 200);
    let (_, published) = server
        .post("/api/v1/topics/news/publish", &json!({"content": "record"}))
        .await;
    assert_eq!(published["subscribers"], json!(["t1"]), "{published}");
    await_answer(&server, "t1", "recorded", "3", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.ask("t2", "recorded").await, "2");

    // The same from the CLI.
    let (ok, out, err) = server.cli(&["topics", "list"]);
    assert!(
        ok && out.contains("news") && out.contains("t1"),
        "{out}{err}"
    );
    let (ok, out, err) = server.cli(&["topics", "publish", "news", "record"]);
    assert!(ok && out.contains("1 subscribers"), "{out}{err}");
    let (ok, out, err) = server.cli(&["send", "t2", "record"]);
    assert!(ok && out.contains("Queued"), "{out}{err}");
    await_answer(&server, "t1", "recorded", "4", Duration::from_secs(20)).await;
    await_answer(&server, "t2", "recorded", "3", Duration::from_secs(20)).await;

    // Scopes: publishing is talking (message), subscribing is admin.
    let reader = server.token("news-reader", "read").await;
    let (status, _) = post_with(
        &server,
        "/api/v1/topics/news/publish",
        &reader,
        &json!({"content": "x"}),
    )
    .await;
    assert_eq!(status, 403);
    let talker = server.token("news-talker", "message").await;
    let refused = client
        .post(server.url("/api/v1/topics/news/subscribers/loner"))
        .bearer_auth(&talker)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(refused.status().as_u16(), 403);
    let (status, bad) = server
        .post("/api/v1/topics/a%20b/publish", &json!({"content": "x"}))
        .await;
    assert_eq!(status, 400, "{bad}");
}

/// Deploys the coordinator example and asks it `command`; its answer is JSON.
async fn coordinate(server: &Server, command: &str) -> Value {
    let answer = server.ask("coordinator", command).await;
    serde_json::from_str(&answer).unwrap_or_else(|_| panic!("`{command}` answered {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_agents_run_the_protocols_through_the_0_2_contract() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy(
            "coordinator",
            &rust_example("coordinator"),
            json!({"max_execution_time_ms": 60000}),
        )
        .await;
    contractor(&server, "dear", json!({"name": "dear", "bid": 5})).await;
    contractor(&server, "cheap", json!({"name": "cheap", "bid": 2})).await;

    // Subscribed from its `describe`, at deploy.
    let (_, topics) = server.get("/api/v1/topics").await;
    assert_eq!(
        topics["topics"],
        json!([{"topic": "news", "subscribers": ["coordinator"]}]),
        "{topics}"
    );

    // A contract net run by the agent: the host gathers, ranks, awards.
    let outcome = coordinate(&server, "cfp quote fix the roof").await;
    assert_eq!(outcome["completed"], true, "{outcome}");
    assert_eq!(outcome["winner"], "cheap", "{outcome}");
    assert_eq!(outcome["result"], "cheap did: fix the roof");
    assert_eq!(outcome["rejected"], json!(["dear"]));
    assert_eq!(
        outcome["proposals"],
        json!([{"agent": "cheap", "status": "proposed", "bid": 2.0},
               {"agent": "dear", "status": "proposed", "bid": 5.0}])
    );
    let id = outcome["conversation_id"].as_str().expect("id");
    let (_, c) = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c["protocol"], "contract-net", "{c}");
    assert_eq!(c["initiator"], "coordinator", "{c}");
    let outcome = coordinate(&server, "cfp-high quote fix the roof").await;
    assert_eq!(outcome["winner"], "dear", "{outcome}");
    // The agent sees the proposals and chooses itself.
    let picked = coordinate(&server, "cfp-pick quote dear fix the roof").await;
    assert_eq!(
        picked,
        json!({"offered": ["cheap", "dear"], "winner": "dear",
               "result": "dear did: fix the roof", "rejected": ["cheap"]})
    );
    let answer = server
        .ask("coordinator", "cfp-pick quote nobody fix it")
        .await;
    assert!(
        answer.contains("InvalidInput") && answer.contains("made no proposal"),
        "{answer}"
    );

    let gathered = coordinate(&server, "broadcast quote how much?").await;
    assert_eq!(gathered["asked"], 2, "{gathered}");
    assert_eq!(gathered["answered"], 2, "{gathered}");
    assert_eq!(gathered["answers"][0]["content"], "cheap quotes 2");

    // What the host knows of the conversation being handled.
    let conversation = coordinate(&server, "conversation").await;
    assert_eq!(conversation["protocol"], "request", "{conversation}");
    assert_eq!(conversation["state"], "active", "{conversation}");
    assert!(
        conversation["participants"]
            .as_array()
            .is_some_and(|p| p.iter().any(|n| n == "coordinator")),
        "{conversation}"
    );

    // Topics: a publication reaches the declared subscription; the agent
    // subscribes and unsubscribes at run time; its own publication goes to
    // the others only.
    let (status, published) = server
        .post(
            "/api/v1/topics/news/publish",
            &json!({"content": "rain at noon"}),
        )
        .await;
    assert_eq!(status, 202, "{published}");
    await_answer(
        &server,
        "coordinator",
        "news",
        r#"{"news":"rain at noon"}"#,
        Duration::from_secs(20),
    )
    .await;
    let topics = coordinate(&server, "subscribe weather").await;
    assert_eq!(topics["topics"], json!(["news", "weather"]));
    let topics = coordinate(&server, "unsubscribe news").await;
    assert_eq!(
        topics,
        json!({"was_subscribed": true, "topics": ["weather"]})
    );
    let topics = coordinate(&server, "unsubscribe news").await;
    assert_eq!(topics["was_subscribed"], false);
    let published = coordinate(&server, "publish weather sunny").await;
    assert_eq!(published["subscribers"], json!([]), "not to itself");
    let answer = server.ask("coordinator", "subscribe a b").await;
    assert!(answer.contains("InvalidInput"), "{answer}");

    // Bad arguments are the guest's error, not a trap.
    let answer = server.ask("coordinator", "cfp nobody-does-this task").await;
    assert!(answer.contains("NotFound"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_net_across_rust_python_and_config_bidders_run_by_a_config_manager() {
    let (guard, data) = temp_data_dir();
    let root = guard.path().to_path_buf();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    // The shipped examples, as written; the scripted model plays their part.
    for file in ["manager.md", "bidder.md"] {
        std::fs::copy(
            crate::harness::repo_root()
                .join("examples/config")
                .join(file),
            agents.join(file),
        )
        .expect("copy example");
    }
    let script = r#"
- when: "asked for a proposal"
  content: "Here you are: {\"bid\": 4, \"text\": \"Bidder paints it for 4\"}"
- when: "\"winner\""
  content: "The fence went to the lowest bidder that delivered."
- when: "The fence, please"
  tool_calls: [{name: contract_net, arguments: {capability: quote, task: "paint the fence", timeout_seconds: 3, result_timeout_seconds: 10}}]
- when: "paint the fence"
  content: "Bidder painted the fence"
"#;
    std::fs::write(root.join("script.yaml"), script).expect("script");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\n",
            agents.display(),
            root.join("script.yaml").display()
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let started = Instant::now();
    while server.get("/api/v1/agents/Bidder").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Bidder never loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Rust and Python contractors; the Python one bids lowest but fails,
    // a Rust one bids lower still but never answers in time.
    contractor(&server, "rusty", json!({"name": "rusty", "bid": 5})).await;
    contractor(
        &server,
        "sleepy",
        json!({"name": "sleepy", "bid": 1, "stall_ms": 8000}),
    )
    .await;
    let mut body = deploy_body(
        "pyco",
        &crate::harness::python_example("py-contractor"),
        json!({"max_execution_time_ms": 60000}),
    );
    body["config"] = json!({"name": "pyco", "bid": 3, "fail": true});
    let (status, answer) = server.post("/api/v1/agents", &body).await;
    assert_eq!(status, 201, "{answer}");

    let (status, outcome) = server
        .post(
            "/api/v1/contract-net",
            &json!({"capability": "quote", "task": "paint the fence",
                    "timeout_ms": 3000, "result_timeout_ms": 10000}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    let bids: Vec<(String, String, Value)> = outcome["proposals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["agent"].as_str().unwrap_or("").to_string(),
                p["status"].as_str().unwrap_or("").to_string(),
                p["bid"].clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String, Value)> = [
        ("Bidder", "proposed", json!(4.0)),
        ("pyco", "proposed", json!(3.0)),
        ("rusty", "proposed", json!(5.0)),
        ("sleepy", "timeout", Value::Null),
    ]
    .into_iter()
    .map(|(a, s, b)| (a.to_string(), s.to_string(), b))
    .collect();
    assert_eq!(bids, expected, "{outcome}");
    let tried: Vec<&str> = outcome["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(
        tried,
        ["pyco", "Bidder"],
        "the failed winner, then the next bid"
    );
    assert_eq!(outcome["winner"], "Bidder", "{outcome}");
    assert_eq!(outcome["result"], "Bidder painted the fence");
    assert_eq!(outcome["rejected"], json!(["rusty"]));
    await_answer(&server, "pyco", "rejections", "0", Duration::from_secs(5)).await;
    await_answer(&server, "rusty", "rejections", "1", Duration::from_secs(10)).await;

    // The manager config agent runs the same contract net from its model's
    // tool call, and reports what came back.
    let (status, answer) = server.message("Manager", "The fence, please").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["reply"]["content"],
        "The fence went to the lowest bidder that delivered."
    );
    let (_, page) = server
        .get("/api/v1/conversations?protocol=contract-net")
        .await;
    let by_manager: Vec<&Value> = page["conversations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["initiator"] == "Manager")
        .collect();
    assert_eq!(by_manager.len(), 1, "{page}");
    assert_eq!(by_manager[0]["state"], "completed", "{page}");
    assert!(
        by_manager[0]["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("Bidder")),
        "{page}"
    );
    await_answer(&server, "rusty", "rejections", "2", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initiator_may_choose_the_winner_itself_in_time() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    contractor(&server, "dear", json!({"name": "dear", "bid": 5})).await;
    contractor(&server, "cheap", json!({"name": "cheap", "bid": 2})).await;
    contractor(&server, "never", json!({"name": "never", "refuse": true})).await;

    let (status, waiting) = server
        .post(
            "/api/v1/contract-net",
            &json!({"capability": "quote", "task": "paint", "award": "initiator",
                    "timeout_ms": 2000}),
        )
        .await;
    assert_eq!(status, 200, "{waiting}");
    assert_eq!(waiting["state"], "awaiting-award", "{waiting}");
    assert_eq!(waiting["award_within_ms"], 60000);
    assert_eq!(waiting["attempts"], json!([]));
    let id = waiting["conversation_id"].as_str().expect("id").to_string();
    let award = format!("/api/v1/contract-net/{id}/award");
    let (_, c) = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c["state"], "active", "waiting for the award: {c}");

    // Only its initiator may award it, only to a proposer.
    let other = server.token("other-manager", "message").await;
    let (status, body) = post_with(&server, &award, &other, &json!({"agents": ["dear"]})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.post(&award, &json!({"agents": ["never"]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("made no proposal"), "{body}");
    let (status, body) = server.post(&award, &json!({"agents": []})).await;
    assert_eq!(status, 400, "{body}");

    // The dearer one, chosen: accepted, the other rejected.
    let (status, outcome) = server
        .post(&award, &json!({"agents": ["dear", "cheap"]}))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["winner"], "dear", "{outcome}");
    assert_eq!(outcome["result"], "dear did: paint");
    assert_eq!(outcome["rejected"], json!(["cheap"]));
    assert_eq!(outcome["award"], "initiator");
    await_answer(&server, "cheap", "rejections", "1", Duration::from_secs(10)).await;
    let (status, _) = server.post(&award, &json!({"agents": ["dear"]})).await;
    assert_eq!(status, 404, "awarded once only");
    let (_, c) = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c["state"], "completed", "{c}");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .contains("\ncaxton_conversations{protocol=\"contract-net\",state=\"completed\"} 1\n"),
        "{metrics}"
    );

    // Nobody chooses in time: every proposer is rejected, the
    // conversation fails saying why.
    let (_, waiting) = server
        .post(
            "/api/v1/contract-net",
            &json!({"capability": "quote", "task": "paint", "award": "initiator",
                    "timeout_ms": 2000, "award_timeout_ms": 300}),
        )
        .await;
    let id = waiting["conversation_id"].as_str().expect("id").to_string();
    await_answer(&server, "cheap", "rejections", "2", Duration::from_secs(10)).await;
    await_answer(&server, "dear", "rejections", "1", Duration::from_secs(10)).await;
    let (_, c) = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c["state"], "failed", "{c}");
    assert!(
        c["outcome"]
            .as_str()
            .unwrap_or("")
            .contains("did not choose"),
        "{c}"
    );

    // The same from the CLI.
    let (ok, out, err) = server.cli(&[
        "contract-net",
        "quote",
        "mow",
        "--award",
        "initiator",
        "--timeout",
        "2",
    ]);
    assert!(ok && out.contains("Awaiting your award"), "{out}{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("(conversation "))
        .and_then(|rest| rest.strip_suffix(')'))
        .expect("the conversation id")
        .to_string();
    let (ok, out, err) = server.cli(&["award", &id, "cheap"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Winner: cheap: cheap did: mow"), "{out}");
}

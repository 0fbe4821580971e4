//! LLM budgets, recorded conversations and their replay against the real
//! server: config agents on the scripted provider (which counts words as
//! tokens and records every request it gets, so a test can count the
//! calls that reached it).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, metric, temp_data_dir};

const SPENDER: &str = "---\nname: Spender\nversion: \"1.0.0\"\ncapabilities: [spending]\nsystem_prompt: You answer briefly.\nbudget:\n  - {per: 6s, tokens: 100}\n  - {per: hour, tokens: 100000}\n---\nSpends tokens.\n";

fn start(root: &std::path::Path, data: &std::path::Path) -> Server {
    let config = root.join("caxton.yaml");
    Server::start_with_config(data, Some(&config))
}

/// Writes under `root` the config agents `agents` (file name, definition),
/// the scripted provider's `script` and the `caxton.yaml` that runs them
/// (the provider records every request it gets in `requests.jsonl`).
fn scripted_agents(root: &std::path::Path, agents: &[(&str, &str)], script: &str) {
    let dir = root.join("agents");
    std::fs::create_dir_all(&dir).expect("agents dir");
    for (file, definition) in agents {
        std::fs::write(dir.join(file), definition).expect("definition");
    }
    std::fs::write(root.join("script.yaml"), script).expect("script");
    std::fs::write(
        root.join("caxton.yaml"),
        format!(
            "agents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\n    record: {}\n",
            dir.display(),
            root.join("script.yaml").display(),
            root.join("requests.jsonl").display()
        ),
    )
    .expect("config");
}

async fn ask(server: &Server, text: &str) -> Value {
    let (status, body) = server.message("Spender", text).await;
    assert_eq!(status, 200, "{body}");
    body["reply"].clone()
}

fn provider_calls(root: &std::path::Path) -> usize {
    std::fs::read_to_string(root.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

async fn spent(server: &Server, window: &str) -> u64 {
    let (status, body) = server.get("/api/v1/budgets/agent:Spender").await;
    assert_eq!(status, 200, "{body}");
    let s = &body["spent"][window];
    s["tokens_in"].as_u64().unwrap_or(0) + s["tokens_out"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_refuses_before_the_provider_resets_and_survives_a_crash() {
    let (guard, data) = temp_data_dir();
    let root = guard.path().to_path_buf();
    scripted_agents(
        &root,
        &[("spender.md", SPENDER)],
        "- content: \"fine, thanks\"\n",
    );
    let mut server = start(&root, &data);

    // Wait for the start of a fresh 6 s window, so the spend below all
    // falls in one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    tokio::time::sleep(Duration::from_millis(
        6000 - (now.as_millis() % 6000) as u64 + 50,
    ))
    .await;

    // Answers until the budget is spent; the refused call never reaches
    // the provider.
    let mut answered = 0;
    let refusal = loop {
        let before = provider_calls(&root);
        let reply = ask(&server, "please say something short").await;
        if reply["content"] == "fine, thanks" {
            answered += 1;
            assert!(answered < 30, "never refused: {reply}");
            continue;
        }
        assert_eq!(
            provider_calls(&root),
            before,
            "the refused call reached the provider"
        );
        break reply["content"].as_str().unwrap_or_default().to_string();
    };
    assert!(answered >= 1, "refused at once: {refusal}");
    // The refusal is in the conversation's recording, as a model call that
    // never went out.
    let (status, body) = server
        .post(
            "/api/v1/agents/Spender/message",
            &json!({"message": "please say something short", "conversation_id": "refused-1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, recording) = server
        .get("/api/v1/conversations/refused-1/recording")
        .await;
    assert_eq!(status, 200, "{recording}");
    let refused = recording["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == "llm")
        .cloned()
        .unwrap_or_default();
    assert!(
        refused["refused"] == true
            && refused["error"]
                .as_str()
                .is_some_and(|e| e.contains("agent:Spender")),
        "{recording}"
    );
    assert!(
        refusal.contains("LLM budget of agent:Spender is spent")
            && refusal.contains("per 6s")
            && refusal.contains("resets at"),
        "{refusal}"
    );
    let (_, status) = server.get("/api/v1/budgets/agent:Spender").await;
    let window = status["limits"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["limit"]["per"] == "6s"))
        .cloned()
        .expect("the 6s limit");
    let in_window =
        window["tokens_in"].as_u64().unwrap_or(0) + window["tokens_out"].as_u64().unwrap_or(0);
    // A hard cap: no call was let through that its prompt alone would have
    // taken past 100; the last answer's two words may end at most there.
    assert!(in_window <= 102, "{status}");
    assert_eq!(status["source"], "definition", "{status}");

    // The window turns: answers again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = ask(&server, "please say something short").await;
        if reply["content"] == "fine, thanks" {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {reply}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Spend is durable.
    let hour = spent(&server, "hour").await;
    assert!(
        hour > in_window,
        "the hour holds both windows' spend: {hour}"
    );
    // Warned once its window was 80 % spent, in the agent's log.
    let (_, logs) = server.get("/api/v1/agents/Spender/logs?tail=200").await;
    assert!(
        logs.to_string()
            .contains("LLM budget of agent:Spender per 6s is"),
        "{logs}"
    );
    server.kill();
    let server = start(&root, &data);
    assert_eq!(spent(&server, "hour").await, hour, "spend lost in a crash");

    // Set at run time: the server's budget, then removed again.
    let (status, body) = server
        .put(
            "/api/v1/budgets/server",
            &json!({"per": "hour", "tokens": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "set", "{body}");
    let reply = ask(&server, "please say something short").await;
    assert!(
        reply["content"]
            .as_str()
            .unwrap_or_default()
            .contains("LLM budget of server is spent"),
        "{reply}"
    );
    let (status, body) = server.delete("/api/v1/budgets/server").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ask(&server, "please say something short").await["content"],
        "fine, thanks"
    );
    let (status, body) = server.delete("/api/v1/budgets/server").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .put(
            "/api/v1/budgets/team:x",
            &json!({"per": "hour", "tokens": 1}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .put(
            "/api/v1/budgets/server",
            &json!({"per": "fortnight", "tokens": 1}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // The CLI lists it; /metrics counts it.
    let (ok, out, err) = server.cli(&["budgets", "show", "agent:Spender"]);
    assert!(
        ok && out.contains("per 6s") && out.contains("budget from: definition"),
        "{out}{err}"
    );
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("caxton_llm_tokens_total{agent=\"Spender\"")
            && metrics.contains("caxton_budget_refusals_total{budget=\"server\"} 1"),
        "{metrics}"
    );

    // A budget the file gets wrong is named, with the fix.
    std::fs::write(
        root.join("agents/spender.md"),
        SPENDER.replace("per: 6s", "per: fortnight"),
    )
    .expect("rewrite");
    let (ok, out, err) = server.cli(&["agents", "reload", "spender"]);
    assert!(
        !ok && format!("{out}{err}").contains("fortnight"),
        "{out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_is_recorded_whole_and_without_secrets() {
    let (guard, data) = temp_data_dir();
    let root = guard.path().to_path_buf();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(
        agents.join("helper.md"),
        "---\nname: Helper\nversion: \"1.0.0\"\ncapabilities: [helping]\ntools: [json_processor]\nsystem_prompt: You help.\n---\n",
    )
    .expect("definition");
    std::fs::write(
        root.join("script.yaml"),
        "- when: \"tally this\"\n  tool_calls: [{name: json_processor, arguments: {json: \"{\\\"a\\\": 1}\", operation: validate}}]\n- content: \"all tallied\"\n",
    )
    .expect("script");
    std::fs::write(
        root.join("caxton.yaml"),
        format!(
            "agents:\n  dir: {}\nllm:\n  provider: scripted\n  scripted:\n    script: {}\n    record: {}\n  openai:\n    api_key_env: RECORDING_TEST_KEY\n",
            agents.display(),
            root.join("script.yaml").display(),
            root.join("requests.jsonl").display()
        ),
    )
    .expect("config");
    let server = Server::start_with_env(
        &data,
        Some(&root.join("caxton.yaml")),
        &[("RECORDING_TEST_KEY", "sk-provider-secret-4242")],
    );
    let token = server.token("recorder-test", "message").await;
    let answer = reqwest::Client::new()
        .post(server.url("/api/v1/agents/Helper/message"))
        .bearer_auth(&token)
        .json(&json!({"message": "tally this from https://alice:hunter2@example.com/data", "conversation_id": "conv-recorded-1"}))
        .send()
        .await
        .expect("message");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["reply"]["content"], "all tallied", "{body}");

    let out = root.join("recording.json");
    let (ok, stdout, stderr) = server.cli_with_env(
        &[
            "conversations",
            "export",
            "conv-recorded-1",
            "--output",
            out.to_str().expect("utf-8"),
        ],
        &[("CAXTON_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    assert!(ok, "{stdout}{stderr}");
    let text = std::fs::read_to_string(&out).expect("export");
    let recording: Value = serde_json::from_str(&text).expect("one JSON document");
    let kinds: Vec<&str> = recording["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    // In, two model rounds around one tool call, out.
    assert_eq!(kinds, ["inbound", "llm", "tool", "llm", "reply"], "{text}");
    let events = recording["events"].as_array().expect("events");
    assert_eq!(events[2]["tool"], "json_processor", "{text}");
    // Performatives by their FIPA names.
    assert_eq!(events[0]["performative"], "request", "{text}");
    assert_eq!(events[4]["performative"], "inform", "{text}");
    assert!(
        events[1]["response"]["tool_calls"][0]["name"] == "json_processor",
        "{text}"
    );
    assert_eq!(events[3]["response"]["content"], "all tallied", "{text}");
    assert_eq!(events[4]["content"], "all tallied", "{text}");
    assert!(events[1]["elapsed_ms"].as_f64().is_some(), "{text}");
    for secret in ["sk-provider-secret-4242", token.as_str(), "hunter2"] {
        assert!(
            !text.contains(secret),
            "the recording holds `{secret}`: {text}"
        );
    }
    // Recordings are the admin's: a message token may not read them.
    let denied = reqwest::Client::new()
        .get(server.url("/api/v1/conversations/conv-recorded-1/recording"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(denied.status(), 403);
    let (status, _) = server.get("/api/v1/conversations/no-such/recording").await;
    assert_eq!(status, 404);
    // What is recorded shows in the metrics.
    let metrics = server.metrics().await;
    assert!(metric(&metrics, "caxton_recorded_conversations") >= 1.0);
    assert!(metric(&metrics, "caxton_recordings_bytes") > text.len() as f64 / 2.0);
    assert_eq!(
        metric(&metrics, "caxton_recording_events_dropped_total"),
        0.0
    );

    // Replayed against the agent as it is: identical, and not one call
    // reaches the provider.
    let calls = std::fs::read_to_string(root.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(calls, 2, "two model rounds were recorded");
    let provider_calls = || {
        std::fs::read_to_string(root.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let (ok, out, err) = server.cli_with_env(
        &["replay", "conv-recorded-1"],
        &[("CAXTON_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    assert!(
        ok && out.contains("identical")
            && out.contains("2 model call(s) from the recording, 0 live"),
        "{out}{err}"
    );
    assert_eq!(provider_calls(), 2, "the replay called the provider");

    // The prompt changes: the replay says where the run first differs.
    std::fs::write(
        agents.join("helper.md"),
        "---\nname: Helper\nversion: \"1.0.1\"\ncapabilities: [helping]\ntools: [json_processor]\nsystem_prompt: You help a lot.\n---\n",
    )
    .expect("edit the definition");
    let (ok, out, err) = server.cli(&["agents", "reload", "helper"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = server.cli_with_env(
        &["replay", "conv-recorded-1"],
        &[("CAXTON_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    assert!(!ok, "a diverging replay exits 1: {out}{err}");
    assert!(
        out.contains("diverges at step 1 (model_request)")
            && out.contains("- ")
            && out.contains("You help.")
            && out.contains("+ ")
            && out.contains("You help a lot."),
        "{out}{err}"
    );
    assert_eq!(
        provider_calls(),
        2,
        "a replay without --live-llm never calls the provider"
    );
    // --live-llm: the model answers from the divergence on.
    let (_, out, err) = server.cli_with_env(
        &["replay", "conv-recorded-1", "--live-llm", "--json"],
        &[("CAXTON_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    let outcome: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(outcome["live_model_calls"], 2, "{outcome}");
    assert_eq!(
        outcome["replies"][0]["replayed"], "all tallied",
        "{outcome}"
    );
    assert_eq!(provider_calls(), 4, "{outcome}");
    // Against another version (the first one, from a file): identical
    // again, and the deployed agent is left as it is.
    let first_version = root.join("helper-1.0.0.md");
    std::fs::write(
        &first_version,
        "---\nname: Helper\nversion: \"1.0.0\"\ncapabilities: [helping]\ntools: [json_processor]\nsystem_prompt: You help.\n---\n",
    )
    .expect("old version");
    let (ok, out, err) = server.cli_with_env(
        &[
            "replay",
            "conv-recorded-1",
            "--agent-version",
            first_version.to_str().expect("utf-8"),
        ],
        &[("CAXTON_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    assert!(
        ok && out.contains("identical") && out.contains("helper-1.0.0.md"),
        "{out}{err}"
    );
    assert_eq!(
        provider_calls(),
        4,
        "the version's replay called the provider"
    );
    let (_, listed) = server.get("/api/v1/agents").await;
    let names: Vec<String> = listed
        .as_array()
        .or_else(|| listed["agents"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        names.iter().any(|n| n == "Helper") && !names.iter().any(|n| n.starts_with("replay-")),
        "the version outlived its replay: {names:?}"
    );
    let (status, body) = server
        .post(
            "/api/v1/conversations/conv-recorded-1/replay",
            &json!({"agent_version": "---\nname: Helper\nversion: one\n---\n"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_agent_definition", "{body}");

    // A fork from message 2: message 1 replayed from the recording, the
    // new message 2 answered live, in a conversation of its own.
    let (ok, out, err) = server.cli_with_env(
        &[
            "fork",
            "conv-recorded-1",
            "--at",
            "2",
            "tally this once more",
            "--json",
        ],
        &[("CAXTON_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    assert!(ok, "{out}{err}");
    let forked: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(forked["reply"], "all tallied", "{forked}");
    assert_eq!(forked["model_calls_from_recording"], 2, "{forked}");
    assert_eq!(forked["live_model_calls"], 2, "{forked}");
    assert_eq!(provider_calls(), 6, "{forked}");
    let asked = std::fs::read_to_string(root.join("requests.jsonl")).unwrap_or_default();
    assert!(
        asked.contains("tally this once more"),
        "the fork's message reached the model live"
    );
    let (status, body) = server
        .post(
            "/api/v1/conversations/conv-recorded-1/fork",
            &json!({"at": 9, "message": "x"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// An agent that asks another passes on at most what it has left: the
/// asked agent's model calls count against the asker's budget too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asked_agent_spends_from_the_askers_budget() {
    let (guard, data) = temp_data_dir();
    let root = guard.path().to_path_buf();
    scripted_agents(
        &root,
        &[
            (
                "boss.md",
                "---\nname: Boss\nversion: \"1.0.0\"\ncapabilities: [bossing]\ntools: [ask_agent]\nsystem_prompt: You delegate.\nbudget: {per: hour, tokens: 100000}\n---\n",
            ),
            (
                "worker.md",
                "---\nname: Worker\nversion: \"1.0.0\"\ncapabilities: [working]\nsystem_prompt: You work.\n---\n",
            ),
        ],
        "- when: \"delegate this\"\n  tool_calls: [{name: ask_agent, arguments: {agent: Worker, message: \"work hard on it\"}}]\n- when: \"work hard on it\"\n  content: \"worked\"\n- content: \"delegated\"\n",
    );
    let server = start(&root, &data);
    let reply = ask_agent(&server, "Boss", "delegate this").await;
    assert_eq!(reply["content"], "delegated", "{reply}");
    let tokens = |status: &Value| {
        let s = &status["spent"]["hour"];
        s["tokens_in"].as_u64().unwrap_or(0) + s["tokens_out"].as_u64().unwrap_or(0)
    };
    let (_, boss) = server.get("/api/v1/budgets/agent:Boss").await;
    let (_, worker) = server.get("/api/v1/budgets/agent:Worker").await;
    let (_, all) = server.get("/api/v1/budgets/server").await;
    assert!(tokens(&worker) > 0, "{worker}");
    // Every call of this run was the boss's or made for it.
    assert_eq!(tokens(&boss), tokens(&all), "{boss}\n{all}");

    // With little left, the delegated run is refused (the boss's or the
    // worker's call, whichever passes the limit first), naming the boss's
    // budget.
    let spent = tokens(&boss);
    let (status, body) = server
        .put(
            "/api/v1/budgets/agent:Boss",
            &json!({"per": "hour", "tokens": spent + 40}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = server.message("Boss", "delegate this").await;
    assert!(
        body.to_string()
            .contains("LLM budget of agent:Boss is spent"),
        "{body}"
    );
}

async fn ask_agent(server: &Server, agent: &str, text: &str) -> Value {
    let (status, body) = server.message(agent, text).await;
    assert_eq!(status, 200, "{body}");
    body["reply"].clone()
}

/// WASM agents are recorded too when asked (`recordings.record: all`),
/// their asks of other agents with the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_agents_conversation_is_recorded_with_its_asks() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, "recordings:\n  record: all\n").expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    server
        .deploy("asker", &crate::harness::rust_example("asker"), json!({}))
        .await;
    server
        .deploy("echo", &crate::harness::rust_example("echo"), json!({}))
        .await;
    let (status, body) = server
        .post(
            "/api/v1/agents/asker/message",
            &json!({"message": "ask echo hello there", "conversation_id": "wasm-recorded"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, recording) = server
        .get("/api/v1/conversations/wasm-recorded/recording")
        .await;
    assert_eq!(status, 200, "{recording}");
    let events = recording["events"].as_array().cloned().unwrap_or_default();
    let ask = events
        .iter()
        .find(|e| e["kind"] == "ask")
        .unwrap_or_else(|| panic!("no ask recorded: {recording}"));
    assert_eq!(ask["agent"], "asker", "{recording}");
    assert_eq!(ask["to"], "echo", "{recording}");
    assert!(
        ask["reply"]
            .as_str()
            .is_some_and(|r| r.contains("hello there")),
        "{recording}"
    );
    // The asked agent's handling is in the same conversation.
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "inbound" && e["agent"] == "echo"),
        "{recording}"
    );

    // Replayed: the ask is answered from the recording, echo is not asked.
    let (status, outcome) = server
        .post("/api/v1/conversations/wasm-recorded/replay", &json!({}))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["identical"], true, "{outcome}");
    let run = outcome["replay_conversation_id"]
        .as_str()
        .unwrap_or_default();
    let (_, replayed) = server
        .get(&format!("/api/v1/conversations/{run}/recording"))
        .await;
    let replayed_events = replayed["events"].as_array().cloned().unwrap_or_default();
    assert!(
        replayed_events.iter().any(|e| e["agent"] == "asker")
            && !replayed_events.iter().any(|e| e["agent"] == "echo"),
        "echo was asked during the replay: {replayed}"
    );

    // Memory calls are recorded with their answers and, in a replay,
    // answered from the recording: memory is neither read nor changed.
    server
        .deploy("memo", &crate::harness::rust_example("memo"), json!({}))
        .await;
    for text in ["remember alice person: likes green tea", "recall green tea"] {
        let (status, body) = server
            .post(
                "/api/v1/agents/memo/message",
                &json!({"message": text, "conversation_id": "memo-recorded"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, recording) = server
        .get("/api/v1/conversations/memo-recorded/recording")
        .await;
    let memory: Vec<Value> = recording["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "memory")
        .cloned()
        .collect();
    assert_eq!(memory.len(), 2, "{recording}");
    assert_eq!(memory[0]["function"], "create-entities", "{recording}");
    assert_eq!(memory[1]["function"], "search", "{recording}");
    assert_eq!(memory[1]["arguments"]["query"], "green tea", "{recording}");
    assert_eq!(
        memory[1]["result"][0]["entity"]["name"], "alice",
        "{recording}"
    );
    // Bob likes green tea too, after the recording: a live search would
    // find him; the replay answers as recorded, and writes nothing.
    let (status, body) = server
        .post(
            "/api/v1/agents/memo/message",
            &json!({"message": "remember bob person: likes green tea a lot"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, before) = server.get("/api/v1/memory/stats").await;
    let (status, outcome) = server
        .post("/api/v1/conversations/memo-recorded/replay", &json!({}))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["identical"], true, "{outcome}");
    assert_eq!(outcome["replies"][1]["replayed"], "alice", "{outcome}");
    let (_, after) = server.get("/api/v1/memory/stats").await;
    assert_eq!(before["counts"], after["counts"], "the replay wrote memory");
    assert!(before["counts"].is_object(), "{before}");
}

/// The kinds of the events recorded for `conversation`, or the status when
/// there is no recording.
async fn recorded_kinds(server: &Server, conversation: &str) -> Result<Vec<String>, u16> {
    let (status, body) = server
        .get(&format!("/api/v1/conversations/{conversation}/recording"))
        .await;
    if status != 200 {
        return Err(status);
    }
    Ok(body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect())
}

/// Writes the Noter config agent (one model call per message, answered
/// "noted") and its `caxton.yaml` under `root`.
fn noter(root: &std::path::Path) {
    scripted_agents(
        root,
        &[(
            "noter.md",
            "---\nname: Noter\nversion: \"1.0.0\"\ncapabilities: [noting]\nsystem_prompt: You note.\n---\n",
        )],
        "- content: \"noted\"\n",
    );
}

/// One message to Noter in `conversation`.
async fn note(server: &Server, conversation: &str) {
    let (status, body) = server
        .post(
            "/api/v1/agents/Noter/message",
            &json!({"message": "note this", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A recording outlives its server: a graceful stop keeps every event
/// recorded before it, and a crash keeps what the writer wrote, synced or
/// not (it is in the page cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_outlive_a_stop_and_a_crash() {
    let (guard, data) = temp_data_dir();
    let root = guard.path().to_path_buf();
    noter(&root);
    let server = start(&root, &data);
    note(&server, "kept-over-a-stop").await;
    let mut server = server.restart();
    assert_eq!(
        recorded_kinds(&server, "kept-over-a-stop").await,
        Ok(vec!["inbound".into(), "llm".into(), "reply".into()]),
        "the events recorded before a graceful stop"
    );
    // Killed sooner than the writer syncs when idle (2 s): what it wrote
    // survives the process through the page cache, with no sync.
    note(&server, "kept-over-a-crash").await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    server.kill();
    let server = start(&root, &data);
    assert_eq!(
        recorded_kinds(&server, "kept-over-a-crash").await,
        Ok(vec!["inbound".into(), "llm".into(), "reply".into()]),
        "the events recorded 1 s before a crash"
    );
}

/// The recordings' caps hold on the real server and across a restart: the
/// oldest conversations go once the total passes `max_bytes`, a
/// conversation past `max_conversation_bytes` keeps its first events and
/// counts the rest, and a restarted server rebuilds the same from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_keep_their_caps_across_a_restart() {
    let (guard, data) = temp_data_dir();
    let root = guard.path().to_path_buf();
    noter(&root);
    let config = root.join("caxton.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("recordings:\n  max_bytes: 16384\n  max_conversation_bytes: 2048\n");
    std::fs::write(&config, text).expect("config");
    let recording = async |server: &Server, conversation: &str| -> (u16, Value) {
        server
            .get(&format!("/api/v1/conversations/{conversation}/recording"))
            .await
    };

    let server = start(&root, &data);
    for n in 0..40 {
        note(&server, &format!("cap-{n}")).await;
    }
    for _ in 0..6 {
        note(&server, "long").await;
    }
    let check = async |server: &Server| {
        let (status, newest) = recording(server, "long").await;
        assert_eq!(status, 200, "{newest}");
        assert!(newest["bytes"].as_u64().expect("bytes") <= 2048, "{newest}");
        assert!(
            newest["truncated"].as_u64().expect("truncated") > 0,
            "{newest}"
        );
        let events = newest["events"].as_array().expect("events");
        assert_eq!(events[0]["kind"], "inbound", "the first events are kept");
        for (seq, event) in events.iter().enumerate() {
            assert_eq!(event["seq"], seq as u64, "{newest}");
        }
        let (status, _) = recording(server, "cap-0").await;
        assert_eq!(
            status, 404,
            "the oldest conversation went for the total cap"
        );
        let (status, kept) = recording(server, "cap-39").await;
        assert_eq!(status, 200, "{kept}");
        assert_eq!(kept["events"].as_array().map(Vec::len), Some(3), "{kept}");
        let bytes = metric(&server.metrics().await, "caxton_recordings_bytes");
        assert!(bytes > 0.0 && bytes <= 16384.0, "{bytes} bytes recorded");
        newest
    };
    let before = check(&server).await;
    let server = server.restart();
    let after = check(&server).await;
    assert_eq!(before, after, "the same recording after a restart");
    // `storage verify` reads every record back.
    let (ok, out, err) = server.cli(&["storage", "verify"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("✓ recordings: ") && !l.contains(": 0 conversations")),
        "{out}"
    );
}

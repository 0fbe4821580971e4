//! LLM budgets against the real server: a config agent on the scripted
//! provider (which counts words as tokens and records every request it
//! gets), refused when its budget is spent, answering again after the
//! window turns, its spend surviving `kill -9`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, temp_data_dir};

const SPENDER: &str = "---\nname: Spender\nversion: \"1.0.0\"\ncapabilities: [spending]\nsystem_prompt: You answer briefly.\nbudget:\n  - {per: 6s, tokens: 100}\n  - {per: hour, tokens: 100000}\n---\nSpends tokens.\n";

fn start(root: &std::path::Path, data: &std::path::Path) -> Server {
    let config = root.join("caxton.yaml");
    Server::start_with_config(data, Some(&config))
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
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(agents.join("spender.md"), SPENDER).expect("definition");
    std::fs::write(root.join("script.yaml"), "- content: \"fine, thanks\"\n").expect("script");
    std::fs::write(
        root.join("caxton.yaml"),
        format!(
            "agents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\n    record: {}\n",
            agents.display(),
            root.join("script.yaml").display(),
            root.join("requests.jsonl").display()
        ),
    )
    .expect("config");
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
        agents.join("spender.md"),
        SPENDER.replace("per: 6s", "per: fortnight"),
    )
    .expect("rewrite");
    let (ok, out, err) = server.cli(&["agents", "reload", "spender"]);
    assert!(
        !ok && format!("{out}{err}").contains("fortnight"),
        "{out}{err}"
    );
}

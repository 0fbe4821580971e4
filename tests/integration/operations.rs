//! The runbook's operations against the real binary: backup while serving,
//! verify, restore into a fresh directory, and what a restore refuses.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Server, metric, rust_example, temp_data_dir};

fn caxton(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(args)
        .env_remove("CAXTON_DATA_DIR")
        .env_remove("CAXTON_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run the caxton CLI");
    // Notes (stderr) before the data (stdout), as a terminal shows them
    // when the notes come first.
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ),
    )
}

/// `caxton start` on a port of its choosing, then a command with no
/// `--server`: the CLI finds the server its data directory recorded (and
/// sends it the admin token); an address that is not on this machine is
/// never taken from a data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_finds_the_server_of_its_data_directory() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let data_text = data.to_str().expect("utf-8");
    let run = |data_dir: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_caxton"))
            .args(["tokens", "list", "--request-timeout", "5s"])
            .env_remove("CAXTON_SERVER")
            .env_remove("CAXTON_TOKEN")
            .env_remove("CAXTON_CONFIG")
            .env("CAXTON_DATA_DIR", data_dir)
            .output()
            .expect("run the caxton CLI");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // An admin command: it needs the server and its token both.
    let (ok, err) = run(data_text);
    assert!(ok, "{err}");

    let (_other_guard, planted) = temp_data_dir();
    std::fs::create_dir_all(&planted).expect("data dir");
    std::fs::write(planted.join("server.addr"), "http://192.0.2.1:9\n").expect("plant");
    let (ok, err) = run(planted.to_str().expect("utf-8"));
    assert!(!ok);
    assert!(err.contains("http://127.0.0.1:8080"), "{err}");
    assert!(!err.contains("192.0.2.1"), "{err}");
    drop(server);
}

fn names(search: &Value) -> Vec<String> {
    search["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["entity"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_to_the_same_answers() {
    let (guard, data) = temp_data_dir();
    let root = guard.path().to_path_buf();
    let server = Server::start(&data);
    server
        .deploy("counter", &rust_example("counter"), json!({}))
        .await;
    for expected in ["1", "2"] {
        let (status, body) = server.message("counter", "increment").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reply"]["content"], expected);
    }
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"scope": "global", "entities": [
                {"name": "Alice", "entity_type": "person", "observations": ["Paid invoice INV-7 for the Postgres cluster"]},
                {"name": "Bob", "entity_type": "person", "observations": ["Runs the billing team"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let query = json!({"query": "who paid for the database?"});
    let (_, before) = server.post("/api/v1/memory/search", &query).await;
    assert!(!names(&before).is_empty(), "{before}");

    // Taken by the running server, while it serves.
    let archive = root.join("backups").join("nightly.tar.gz");
    let archive_text = archive.to_str().expect("utf-8").to_string();
    let (ok, out, err) = server.cli(&[
        "backup",
        "--embedded",
        "--output",
        &archive_text,
        "--compress",
    ]);
    assert!(ok, "{out}{err}");
    let (status, _) = server.message("counter", "increment").await;
    assert_eq!(status, 200, "the server kept serving");
    let (ok, out) = caxton(&["backup", "verify", &archive_text], &[]);
    assert!(ok && out.contains('✓'), "{out}");

    // A damaged copy is caught.
    let mut bytes = std::fs::read(&archive).expect("archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let damaged = root.join("damaged.tar.gz");
    std::fs::write(&damaged, bytes).expect("write");
    let (ok, out) = caxton(&["backup", "verify", damaged.to_str().expect("utf-8")], &[]);
    assert!(!ok && out.contains('✗'), "{out}");

    // A restore never replaces the data of a running server.
    let data_text = data.to_str().expect("utf-8");
    let (ok, out) = caxton(
        &["restore", "--backup", &archive_text],
        &[("CAXTON_DATA_DIR", data_text)],
    );
    assert!(
        !ok && out.contains("in use by a running caxton server"),
        "{out}"
    );

    // Restored elsewhere, a new server answers what the original answered
    // when the backup was taken.
    let target = root.join("restored");
    let (ok, out) = caxton(
        &[
            "restore",
            &archive_text,
            "--target",
            target.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(ok, "{out}");
    let restored = Server::start(&target.join("data"));
    let (_, agents) = restored.get("/api/v1/agents").await;
    assert_eq!(agents["agents"][0]["name"], "counter", "{agents}");
    let (status, body) = restored.message("counter", "increment").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reply"]["content"], "3",
        "key-value state came back: {body}"
    );
    let (_, after) = restored.post("/api/v1/memory/search", &query).await;
    assert_eq!(names(&after), names(&before), "{after}");
    let token = std::fs::read_to_string(target.join("data").join("admin.token")).expect("token");
    assert_eq!(
        token,
        std::fs::read_to_string(data.join("admin.token")).expect("token"),
        "the admin token came back with its database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_answers_reads_refuses_writes_and_survives_a_restart() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let (ok, out, err) = server.cli(&["storage", "safe-mode", "--enable"]);
    assert!(ok, "{out}{err}");
    // The runbook's line, as written.
    let (ok, out, _) = server.cli(&["status"]);
    assert!(ok && out.contains("Status: SAFE_MODE (read-only)"), "{out}");
    let (status, body) = server.get("/api/v1/agents").await;
    assert_eq!(status, 200, "reads go on: {body}");
    let (status, body) = server.message("echo", "hi").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "safe_mode");
    let (status, _) = server.delete("/api/v1/agents/echo").await;
    assert_eq!(status, 503);
    // What an operator does first in safe mode: take a backup (a read,
    // though it needs `admin`) and query memory (reads sent as POST).
    let archive = _guard.path().join("in-safe-mode.tar.gz");
    let archive_text = archive.to_str().expect("utf-8").to_string();
    let (ok, out, err) = server.cli(&["backup", "--embedded", "--output", &archive_text]);
    assert!(ok, "a backup is taken in safe mode: {out}{err}");
    let (status, body) = server
        .post("/api/v1/memory/search", &json!({"query": "anything"}))
        .await;
    assert_eq!(status, 200, "searches go on: {body}");
    // Over MCP too: each tool is judged by the REST requests it makes.
    let read = server
        .mcp_tool(None, "search_nodes", json!({"query": "anything"}))
        .await;
    assert_eq!(read["result"]["isError"], false, "{read}");
    let write = server
        .mcp_tool(
            None,
            "create_entities",
            json!({"entities": [{"name": "x", "entityType": "y", "observations": []}]}),
        )
        .await;
    Server::assert_tool_refused(&write, "safe mode");

    let server = server.restart();
    let (_, health) = server.get("/api/v1/health").await;
    assert_eq!(
        health["safe_mode"], true,
        "kept across the restart: {health}"
    );
    let text = server.metrics().await;
    assert_eq!(metric(&text, "caxton_server_restarts_total"), 1.0);
    let (ok, out, err) = server.cli(&["storage", "safe-mode", "--disable"]);
    assert!(ok, "{out}{err}");
    let (status, body) = server.message("echo", "hi again").await;
    assert_eq!(status, 200, "{body}");
    let text = server.metrics().await;
    assert!(
        metric(&text, "caxton_agent_response_latency_p99") > 0.0,
        "the agent's handling time is measured: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_latency_gauges_read_the_recorded_queries() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"scope": "global", "entities": [
                {"name": "Alice", "entity_type": "person", "observations": ["Knows Bob"]},
                {"name": "Bob", "entity_type": "person", "observations": ["Knows Alice"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .post(
            "/api/v1/memory/relations",
            &json!({"scope": "global", "relations": [{"from": "Alice", "to": "Bob", "relation_type": "knows"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..5 {
        let (status, _) = server
            .post("/api/v1/memory/search", &json!({"query": "who knows Bob?"}))
            .await;
        assert_eq!(status, 200);
        let (status, body) = server
            .post(
                "/api/v1/memory/traverse",
                &json!({"start": "Alice", "scope": "global", "max_depth": 2}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let text = server.metrics().await;
    assert!(
        metric(&text, "caxton_memory_search_latency_p99") > 0.0,
        "{text}"
    );
    assert!(
        metric(&text, "caxton_memory_traverse_latency_p99") > 0.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_immediate_and_with_a_grace_period_both_stop_the_server() {
    for args in [
        &["shutdown", "--graceful", "--timeout", "30s"][..],
        &["shutdown", "--immediate"][..],
    ] {
        let (_guard, data) = temp_data_dir();
        let mut server = Server::start(&data);
        let (ok, out, err) = server.cli(args);
        assert!(ok, "{args:?}: {out}{err}");
        assert!(
            server.exits_within(std::time::Duration::from_secs(30)),
            "{args:?} did not stop the server"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_agents_are_suspended_together_and_resumed_together() {
    let (guard, data) = temp_data_dir();
    let agents = guard.path().join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(
        agents.join("greeter.md"),
        "---\nname: Greeter\nversion: \"1.0.0\"\ncapabilities: [greeting]\nsystem_prompt: You greet.\n---\n",
    )
    .expect("definition");
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, format!("agents:\n  dir: {}\n", agents.display())).expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    server
        .deploy("flaky", &rust_example("misbehave"), json!({}))
        .await;
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    for _ in 0..5 {
        let (status, _) = server.message("flaky", "trap").await;
        assert_ne!(status, 200);
    }
    let status_of = |list: &Value, name: &str| {
        list["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == name)
            .map(|a| a["status"].clone())
            .unwrap_or(Value::Null)
    };
    let (_, list) = server.get("/api/v1/agents").await;
    assert_eq!(status_of(&list, "flaky"), "failed", "{list}");

    let (ok, out, err) = server.cli(&["agents", "diagnose", "--show-errors"]);
    assert!(!ok, "a failing agent makes diagnose fail: {out}");
    let flaky = out.lines().find(|l| l.starts_with("flaky")).unwrap_or("");
    assert!(flaky.contains("failed"), "{out}{err}");
    assert!(out.contains("last error at"), "{out}");
    let (ok, out, err) = server.cli(&[
        "agents",
        "analyze",
        "--pattern",
        "message failed",
        "--last",
        "1h",
    ]);
    assert!(ok, "{out}{err}");
    let flaky = out.lines().find(|l| l.starts_with("flaky")).unwrap_or("");
    assert!(flaky.split_whitespace().nth(1) == Some("5"), "{out}");
    let (ok, out, _) = server.cli(&["agents", "analyze", "--pattern", "(unclosed"]);
    assert!(!ok && out.is_empty(), "a bad pattern is refused");

    let (ok, out, err) = server.cli(&["agents", "suspend", "--failing-only"]);
    assert!(ok && out.contains("Suspended agent flaky"), "{out}{err}");
    let (_, list) = server.get("/api/v1/agents").await;
    assert_eq!(status_of(&list, "flaky"), "suspended", "{list}");
    assert_eq!(
        status_of(&list, "echo"),
        "running",
        "only the failing one: {list}"
    );

    let (ok, out, err) = server.cli(&["agents", "resume", "--all"]);
    assert!(ok && out.contains("Resumed agent flaky"), "{out}{err}");
    let (_, list) = server.get("/api/v1/agents").await;
    assert_ne!(status_of(&list, "flaky"), "suspended", "{list}");

    let (ok, out, err) = server.cli(&["reload", "--agent", "greeter"]);
    assert!(ok && out.contains("Reloaded"), "{out}{err}");
    let (ok, out, err) = server.cli(&["agents", "reload", "--validate-first", "--gradual"]);
    assert!(
        ok && out.contains("greeter reloaded and answering (1/1)"),
        "{out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_emergency_diagnosis_and_profile_report_what_happened() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start_keyword_only(&data);
    let (ok, out, err) = server.cli(&["memory", "emergency-diagnosis"]);
    assert!(!ok, "keyword-only memory is degraded: {out}{err}");
    assert!(
        out.contains("VERDICT: DEGRADED") && out.contains("NEXT:"),
        "{out}"
    );

    // The searches go out once the profile has taken its first snapshot
    // (it says so on stderr), and the window is long enough for seven
    // searches on a loaded machine: both ends of the window are awaited,
    // not guessed.
    let mut profile = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(["--server", &server.base])
        .args([
            "memory",
            "profile",
            "--duration",
            "10s",
            "--include-queries",
        ])
        .env_remove("CAXTON_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run caxton memory profile");
    let stderr = profile.stderr.take().expect("piped stderr");
    let (profiling_rx, err_reader) = crate::harness::watch_for_line(stderr, "profiling memory for");
    assert!(
        profiling_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .is_ok(),
        "`caxton memory profile` did not start its window within 30 s"
    );
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/memory/search");
    for _ in 0..7 {
        let response = http
            .post(&url)
            .json(&json!({"query": "anything at all", "limit": 3}))
            .send()
            .await
            .expect("search");
        assert!(response.status().is_success());
    }
    let output = profile.wait_with_output().expect("caxton memory profile");
    let ok = output.status.success();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = err_reader.join().unwrap_or_default();
    assert!(ok, "{out}{err}");
    let counted: u64 = out
        .lines()
        .filter(|l| l.contains("search"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, 7, "{out}");
    assert!(out.contains("Slow queries in the window"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_verify_online_and_offline_finds_what_is_missing() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"scope": "global", "entities": [
                {"name": "Alice", "entity_type": "person", "observations": ["Knows Bob"]},
                {"name": "Bob", "entity_type": "person", "observations": ["Knows Alice"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server
        .post(
            "/api/v1/memory/relations",
            &json!({"scope": "global", "relations": [{"from": "Alice", "to": "Bob", "relation_type": "knows"}]}),
        )
        .await;
    assert_eq!(status, 201);
    for level in ["--quick", "--full", "--deep"] {
        let (ok, out, err) = server.cli(&["storage", "verify", level]);
        assert!(
            ok && out.contains("storage verified"),
            "{level}: {out}{err}"
        );
    }
    let (ok, out, _) = server.cli(&["storage", "verify"]);
    assert!(ok && out.contains("2 entities, 1 relations"), "{out}");
    server.stop();

    // Offline, deep: redb's own check runs too.
    let data_text = data.to_str().expect("utf-8");
    let (ok, out) = caxton(
        &[
            "--server",
            "http://127.0.0.1:9",
            "storage",
            "verify",
            "--deep",
        ],
        &[("CAXTON_DATA_DIR", data_text)],
    );
    assert!(ok && out.contains("database integrity"), "{out}");

    // A component gone from under its agent is found.
    {
        let db = redb::Database::open(data.join("caxton.redb")).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let table: redb::TableDefinition<&str, &[u8]> =
                redb::TableDefinition::new("components");
            let mut components = txn.open_table(table).expect("components");
            components.retain(|_, _| false).expect("clear");
        }
        txn.commit().expect("commit");
    }
    let (ok, out) = caxton(
        &["--server", "http://127.0.0.1:9", "storage", "verify"],
        &[("CAXTON_DATA_DIR", data_text)],
    );
    assert!(!ok && out.contains("missing for echo"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_repair_analyze_and_compact_work_online_and_offline() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"scope": "global", "entities": [
                {"name": "Alice", "entity_type": "person", "observations": ["Knows Bob"]},
                {"name": "Bob", "entity_type": "person", "observations": ["Knows Carol"]},
                {"name": "Carol", "entity_type": "person", "observations": ["Plays the oboe"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server
        .post(
            "/api/v1/memory/relations",
            &json!({"scope": "global", "relations": [
                {"from": "Alice", "to": "Bob", "relation_type": "knows"},
                {"from": "Bob", "to": "Carol", "relation_type": "knows"}
            ]}),
        )
        .await;
    assert_eq!(status, 201);

    let (ok, out, err) = server.cli(&[
        "storage",
        "analyze",
        "--show-indexes",
        "--show-fragmentation",
    ]);
    assert!(
        ok && out.contains("Free space:") && out.contains("mem_rel_out"),
        "{out}{err}"
    );
    let (ok, out, _) = server.cli(&["storage", "analyze", "--json"]);
    let analysis: Value = serde_json::from_str(&out).expect("analysis JSON");
    assert!(ok && analysis["file_bytes"].as_u64() > Some(0), "{out}");
    let entities = analysis["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "mem_entities"))
        .expect("mem_entities listed");
    assert_eq!(entities["entries"], 3, "{entities}");

    let (ok, out, _) = server.cli(&["storage", "repair", "--can-repair"]);
    assert!(ok && out.contains("can repair: yes"), "{out}");
    let (ok, out, _) = server.cli(&["storage", "compact"]);
    assert!(ok && out.contains("Compaction scheduled"), "{out}");
    server.stop();

    // Carol's record vanishes under her relation, name and documents.
    {
        let db = redb::Database::open(data.join("caxton.redb")).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let names: redb::TableDefinition<(&str, &str), u64> =
                redb::TableDefinition::new("mem_entities");
            let data_table: redb::TableDefinition<u64, &[u8]> =
                redb::TableDefinition::new("mem_entity_data");
            let carol = {
                let names = txn.open_table(names).expect("names");
                let mut found = None;
                for entry in redb::ReadableTable::iter(&names).expect("iterate") {
                    let (key, id) = entry.expect("entry");
                    if key.value().1 == "Carol" {
                        found = Some(id.value());
                    }
                }
                found.expect("Carol is stored")
            };
            let mut records = txn.open_table(data_table).expect("records");
            records.remove(carol).expect("remove");
        }
        txn.commit().expect("commit");
    }
    let data_text = data.to_str().expect("utf-8");
    let offline = [("CAXTON_DATA_DIR", data_text)];
    let cli = |args: &[&str]| {
        let mut all = vec!["--server", "http://127.0.0.1:9"];
        all.extend_from_slice(args);
        caxton(&all, &offline)
    };
    let (ok, out) = cli(&["storage", "verify"]);
    assert!(!ok && out.contains("its target entity is gone"), "{out}");
    let (ok, out) = cli(&["storage", "repair", "--dry-run"]);
    assert!(
        ok && out.contains("would remove 1 relations to missing entities"),
        "{out}"
    );
    let (ok, out) = cli(&["storage", "verify"]);
    assert!(!ok, "a dry run changed something: {out}");
    let (ok, out) = cli(&["storage", "corruption-level"]);
    let percent: u64 = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("a bare percent");
    assert!(ok && percent > 0 && percent < 100, "{out}");
    let (ok, out) = cli(&["storage", "diagnose", "--corruption-level"]);
    assert!(
        ok && out.contains("CORRUPTION_LEVEL: ") && out.contains("next: "),
        "{out}"
    );
    let (ok, out) = cli(&["storage", "verify", "--repair"]);
    assert!(ok && out.contains("Repair completed successfully"), "{out}");
    assert!(out.contains("removed 1 names of missing entities"), "{out}");
    assert!(out.trim_end().ends_with("storage verified"), "{out}");
    let (ok, out) = cli(&["storage", "verify", "--comprehensive"]);
    assert!(
        ok && out.contains("storage verified") && out.contains("database integrity"),
        "{out}"
    );
    let (ok, out) = cli(&["storage", "corruption-level"]);
    assert!(ok && out.lines().last() == Some("0"), "{out}");
    let (ok, out) = cli(&["storage", "compact"]);
    assert!(ok && out.contains("Database compacted"), "{out}");

    // What is left serves, and no search or traversal reaches Carol.
    let server = Server::start(&data);
    let (status, found) = server
        .post(
            "/api/v1/memory/search",
            &json!({"query": "oboe", "limit": 5}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(!names(&found).contains(&"Carol".to_string()), "{found}");
    let (status, walk) = server
        .post(
            "/api/v1/memory/traverse",
            &json!({"start": "Alice", "max_depth": 3}),
        )
        .await;
    assert_eq!(status, 200, "{walk}");
    let reached: Vec<&str> = walk["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["entity"]["name"].as_str())
        .collect();
    assert_eq!(reached, ["Alice", "Bob"], "{walk}");
    drop(server);

    // A missing component is beyond repair: said so, exit code 1.
    {
        let db = redb::Database::open(data.join("caxton.redb")).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let table: redb::TableDefinition<&str, &[u8]> =
                redb::TableDefinition::new("components");
            let mut components = txn.open_table(table).expect("components");
            components.retain(|_, _| false).expect("clear");
        }
        txn.commit().expect("commit");
    }
    let (ok, out) = cli(&["storage", "can-repair"]);
    assert!(
        !ok && out.contains("agents without their component: echo"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_on_9090_without_any_configuration() {
    // Another process already on 9090 would make this test meaningless:
    // say so instead of passing.
    let before = reqwest::get("http://127.0.0.1:9090/metrics").await;
    if let Ok(response) = &before {
        let text = format!("{:?}", response.headers());
        assert!(
            text.contains("text/plain"),
            "port 9090 is held by something that is not a caxton metrics listener; free it to run this test"
        );
    }
    // The other tests' servers take 9090 too when it is free, and a server
    // started while one of them held it serves metrics on its API port
    // only. So when nobody answers on 9090, ours was started too early:
    // it is started again, until it answers or a minute has passed.
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        match reqwest::get("http://127.0.0.1:9090/metrics").await {
            Ok(response) => {
                last = response.text().await.unwrap_or_default();
                if last.contains("caxton_server_uptime_seconds") {
                    return;
                }
            }
            Err(e) => {
                last = e.to_string();
                server.stop();
                server = Server::start(&data);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("nothing serves caxton metrics on 127.0.0.1:9090: {last}");
}

/// The files of a `.tar.gz`, by path.
fn untar(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let file = std::fs::File::open(path).expect("open the archive");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).expect("utf-8 entry");
        files.insert(name, text);
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_dump_collects_the_state_without_secrets_and_shutdown_can_dump_first() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    let log = guard.path().join("caxton.log");
    std::fs::write(
        &config,
        format!(
            "llm:\n  openai:\n    base_url: http://me:hunter2@127.0.0.1:9/v1\n    model: m\n    api_key_env: CAXTON_DUMP_SECRET_NAME\nlogging:\n  file: {}\n",
            log.display()
        ),
    )
    .expect("config");
    let mut server = Server::start_with_env(&data, Some(&config), &[("CAXTON_LOG", "info")]);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    assert_eq!(server.ask("echo", "hello").await, "hello");

    let dump = guard.path().join("dump.tar.gz");
    let (ok, out, err) = server.cli(&[
        "debug",
        "dump",
        "--embedded",
        "--output",
        dump.to_str().expect("utf-8"),
    ]);
    assert!(ok && out.contains("Debug dump written"), "{out}{err}");
    let files = untar(&dump);
    for name in [
        "manifest.json",
        "state.json",
        "health.json",
        "agents.json",
        "metrics.txt",
        "logs/echo.json",
        "storage.json",
        "traces.json",
        "server.log",
    ] {
        assert!(
            files.contains_key(name),
            "{name} missing from {:?}",
            files.keys()
        );
    }
    assert!(
        !files.contains_key("errors.txt"),
        "{:?}",
        files.get("errors.txt")
    );
    let everything: String = files.values().cloned().collect();
    assert!(
        !everything.contains("hunter2") && !everything.contains("CAXTON_DUMP_SECRET_NAME"),
        "a secret leaked into the dump"
    );
    let state: Value = serde_json::from_str(&files["state.json"]).expect("state JSON");
    assert_eq!(
        state["config"]["llm"]["openai"]["api_key_env"], "[redacted]",
        "{state}"
    );
    assert!(files["metrics.txt"].contains("caxton_server_uptime_seconds"));
    assert!(
        files["server.log"].contains("caxton server ready"),
        "{}",
        files["server.log"]
    );
    assert!(
        files["logs/echo.json"].contains("deployed"),
        "{}",
        files["logs/echo.json"]
    );

    let last = guard.path().join("last.tar.gz");
    let (ok, out, err) = server.cli(&[
        "shutdown",
        "--dump-state",
        "--output",
        last.to_str().expect("utf-8"),
    ]);
    assert!(
        ok && out.contains("Graceful shutdown requested"),
        "{out}{err}"
    );
    assert!(untar(&last).contains_key("state.json"));
    assert!(
        server.exits_within(std::time::Duration::from_secs(20)),
        "the server did not stop"
    );
}

/// Every file and directory under `root`, by path: its mode, and its bytes
/// for a file.
fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, (u32, Option<Vec<u8>>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut all = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let mode = meta.permissions().mode() & 0o7777;
            let bytes = if meta.is_dir() {
                todo.push(path.clone());
                None
            } else {
                Some(std::fs::read(&path).expect("read"))
            };
            let name = path.strip_prefix(root).expect("under root");
            all.insert(name.to_string_lossy().into_owned(), (mode, bytes));
        }
    }
    all
}

/// A working install under `root` (a database, an admin token, an agent
/// definition and a `caxton.yaml`, each saying `tag`), and its backup,
/// taken by the CLI with no server running.
fn install_with_backup(root: &std::path::Path, tag: &str) -> std::path::PathBuf {
    let (data, agents) = (root.join("data"), root.join("agents"));
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&agents).expect("agents dir");
    // 0644, as a restore before this fix left it.
    std::fs::write(data.join("admin.token"), format!("token-{tag}\n")).expect("token");
    std::fs::write(agents.join("helper.md"), format!("# helper {tag}\n")).expect("agent");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "# {tag}\ndata_dir: {}\nagents:\n  dir: {}\n",
            data.display(),
            agents.display()
        ),
    )
    .expect("config");
    let archive = root.join("backup.tar.gz");
    let (ok, out) = caxton(
        &["backup", "--output", archive.to_str().expect("utf-8")],
        &[
            ("CAXTON_CONFIG", config.to_str().expect("utf-8")),
            ("CAXTON_SERVER", "http://127.0.0.1:1"),
        ],
    );
    assert!(ok && data.join("caxton.redb").is_file(), "{out}");
    archive
}

/// An archive's entries, in order: name and bytes.
type Entries = Vec<(String, Vec<u8>)>;

/// The entries of a `.tar.gz`.
fn tar_entries(path: &std::path::Path) -> Entries {
    let file = std::fs::File::open(path).expect("open the archive");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut all = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("entry");
        all.push((name, bytes));
    }
    all
}

fn tar_write(entries: &[(String, Vec<u8>)], out: &std::path::Path) {
    let file = std::fs::File::create(out).expect("create the archive");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        tar.append_data(&mut header, name, bytes.as_slice())
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip");
}

/// The manifest of `entries`, edited.
fn with_manifest(entries: &mut [(String, Vec<u8>)], edit: impl FnOnce(&mut Value)) {
    let (_, bytes) = entries
        .iter_mut()
        .find(|(name, _)| name == "manifest.json")
        .expect("a manifest");
    let mut manifest: Value = serde_json::from_slice(bytes).expect("manifest json");
    edit(&mut manifest);
    *bytes = serde_json::to_vec(&manifest).expect("json");
}

#[test]
fn a_refused_restore_changes_nothing_and_a_restore_writes_private_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = install_with_backup(&dir.path().join("source"), "backup");
    let live = dir.path().join("live");
    install_with_backup(&live, "live");
    let live_text = live.to_str().expect("utf-8");
    let original = tar_entries(&good);
    let names: Vec<&str> = original.iter().map(|(n, _)| n.as_str()).collect();
    let config = names.iter().position(|n| *n == "caxton.yaml");
    assert!(
        names.iter().position(|n| n.starts_with("agents/")) < config,
        "{names:?}"
    );
    let config = config.expect("the backup holds caxton.yaml");

    // A file after the agents does not match its checksum.
    let mut corrupt = original.clone();
    corrupt[config].1 = b"# planted\n".to_vec();
    // An agent file that expands to 17 MiB from some 17 KB, after the
    // real one: over the cap on any file but the database.
    let mut bomb = original.clone();
    bomb.insert(config, ("agents/bomb.md".into(), vec![0; 17 << 20]));
    // Written by a later caxton in a format this one does not read.
    let mut future = original.clone();
    with_manifest(&mut future, |m| {
        m["format"] = json!(2);
        m["caxton_version"] = json!("9.9.9");
    });
    let cases: [(&str, &Entries, &[&str], &str); 4] = [
        (
            "corrupt",
            &corrupt,
            &[],
            "caxton.yaml does not match its checksum",
        ),
        (
            "bomb",
            &bomb,
            &[],
            "agents/bomb.md expands to 17825792 bytes (17.0 MiB), which is over the cap of 16777216 bytes",
        ),
        (
            "capped",
            &original,
            &["--max-bytes", "4096"],
            "over the cap of 4096 bytes on a whole backup unpacked",
        ),
        (
            "future",
            &future,
            &[],
            "backup format 2 (written by caxton 9.9.9), and this caxton",
        ),
    ];
    for (label, entries, extra, says) in cases {
        let archive = dir.path().join(format!("{label}.tar.gz"));
        tar_write(entries, &archive);
        let before = tree(&live);
        let mut args = vec![
            "restore",
            archive.to_str().expect("utf-8"),
            "--target",
            live_text,
        ];
        args.extend_from_slice(extra);
        let (ok, out) = caxton(&args, &[]);
        assert!(!ok && out.contains(says), "{label}: {out}");
        assert_eq!(tree(&live), before, "{label} changed the install: {out}");
    }
    let (_, out) = caxton(
        &[
            "backup",
            "verify",
            dir.path().join("future.tar.gz").to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(out.contains("reads format 1 only"), "{out}");

    // A good one, into a directory that does not exist yet: every file
    // 0600, every directory 0700.
    let fresh = dir.path().join("fresh");
    let (ok, out) = caxton(
        &[
            "restore",
            good.to_str().expect("utf-8"),
            "--target",
            fresh.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(ok && out.contains("configuration written to"), "{out}");
    let restored = tree(&fresh);
    assert_eq!(restored.len(), 6, "{:?}", restored.keys());
    for (path, (mode, bytes)) in restored {
        let private = if bytes.is_some() { 0o600 } else { 0o700 };
        assert_eq!(mode, private, "{path}");
    }
    let mode = |path: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).expect("mode").permissions(),
        ) & 0o777
    };
    assert_eq!(mode(&fresh), 0o700);

    // Over the live install: the token it replaces was 0644.
    let (ok, out) = caxton(
        &[
            "restore",
            good.to_str().expect("utf-8"),
            "--target",
            live_text,
        ],
        &[],
    );
    assert!(ok && out.contains("kept as"), "{out}");
    let token = live.join("data/admin.token");
    assert_eq!(
        std::fs::read_to_string(&token).expect("token"),
        "token-backup\n"
    );
    assert_eq!(mode(&token), 0o600);

    // A backup without a configuration is not reported as writing one.
    let mut bare = original.clone();
    bare.remove(config);
    with_manifest(&mut bare, |m| {
        m["files"]
            .as_array_mut()
            .expect("files")
            .retain(|f| f["path"] != "caxton.yaml");
    });
    let archive = dir.path().join("bare.tar.gz");
    tar_write(&bare, &archive);
    let elsewhere = dir.path().join("elsewhere");
    let (ok, out) = caxton(
        &[
            "restore",
            archive.to_str().expect("utf-8"),
            "--target",
            elsewhere.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(ok && !out.contains("configuration written"), "{out}");
    assert!(!elsewhere.join("caxton.yaml").exists());
}

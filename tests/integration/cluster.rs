//! Several nodes on one NATS server (docs/CLUSTER.md): a real
//! `nats-server` (Debian's 2.9, installed by `scripts/test`) and real
//! `caxton` processes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Server, rust_example, temp_data_dir};

/// A `nats-server` with JetStream on a free loopback port, stopped on drop.
struct Nats {
    child: Child,
    url: String,
}

impl Nats {
    fn start(store: &Path) -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Nats::start_on(store, port)
    }

    /// On `port` (a restart where the nodes expect it).
    fn start_on(store: &Path, port: u16) -> Nats {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/test installs Debian's nats-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(dir: &Path, name: &str, nats: &str) -> Server {
    let data = dir.join(name);
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "memory:\n  semantic_search: false\ncluster:\n  nats_url: {nats}\n  node: {name}\n  heartbeat_ms: 500\n  dead_after_ms: 3000\n  memory_snapshot_every: 20\n"
        ),
    )
    .expect("write config");
    Server::start_with_config(&data, Some(&config))
}

fn names(status: &Value) -> Vec<String> {
    status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node"].as_str().map(str::to_string))
        .collect()
}

/// Polls `GET /api/v1/cluster` on `server` until the live nodes are
/// `expected`, or fails with the last view.
async fn wait_for_nodes(server: &Server, expected: &[&str], within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = server.get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{body}");
        if names(&body) == expected {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "expected nodes {expected:?} within {within:?}; the view: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_see_each_other_join_leave_and_die() {
    let (guard, _) = temp_data_dir();
    let nats = Nats::start(&guard.path().join("jetstream"));
    let a = node(guard.path(), "node-a", &nats.url);
    let mut b = node(guard.path(), "node-b", &nats.url);

    // Each sees both, with the other's API address and agents.
    b.deploy("echo", &rust_example("echo"), serde_json::json!({}))
        .await;
    wait_for_nodes(&a, &["node-a", "node-b"], Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let (_, view) = a.get("/api/v1/cluster").await;
        if view["nodes"][1]["agents"] == serde_json::json!(["echo"]) {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "node-b's echo never showed: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["nodes"][1]["agent_count"], 1, "{view}");
    assert_eq!(view["nodes"][0]["agent_count"], 0, "{view}");
    assert_eq!(view["cluster"], "caxton");
    assert_eq!(view["node"], "node-a");
    assert_eq!(view["nats"], "connected");
    let b_record = &view["nodes"][1];
    assert_eq!(b_record["api_url"], b.base.as_str(), "{view}");
    wait_for_nodes(&b, &["node-a", "node-b"], Duration::from_secs(10)).await;
    let (_, health) = a.get("/api/v1/health").await;
    assert_eq!(health["status"], "healthy", "{health}");

    // kill -9: nobody says goodbye; the entry expires (3 s after its
    // last heartbeat) and A notices within a read or two of that.
    b.kill();
    let killed = Instant::now();
    wait_for_nodes(&a, &["node-a"], Duration::from_secs(10)).await;
    assert!(
        killed.elapsed() >= Duration::from_millis(2400),
        "node-b counted as gone after only {:?}: before its entry could expire",
        killed.elapsed()
    );

    // A new node joins; a graceful stop removes it at once.
    let mut c = node(guard.path(), "node-c", &nats.url);
    wait_for_nodes(&a, &["node-a", "node-c"], Duration::from_secs(10)).await;
    let (ok, out, err) = a.cli(&["cluster", "status"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("node-c") && out.contains("NATS connected"),
        "{out}"
    );
    c.stop();
    wait_for_nodes(&a, &["node-a"], Duration::from_millis(1200)).await;

    // NATS itself gone: the node keeps serving and says why it is degraded.
    drop(nats);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, health) = a.get("/api/v1/health").await;
        assert_eq!(status, 200);
        if health["status"] == "degraded" {
            assert!(
                health["reason"].as_str().unwrap_or("").contains("NATS"),
                "{health}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "still {health} without NATS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outside_a_cluster_says_so_and_bad_cluster_settings_are_refused() {
    let (guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let (status, body) = server.get("/api/v1/cluster").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cluster.nats_url"),
        "{body}"
    );
    drop(server);

    let config = guard.path().join("bad.yaml");
    std::fs::write(
        &config,
        "cluster:\n  nats_url: nats://127.0.0.1:4222\n  heartbeat_ms: 1000\n  dead_after_ms: 1500\n",
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(["start", "--port", "0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(guard.path().join("bad-data"))
        .output()
        .expect("run caxton");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cluster.dead_after_ms"), "{stderr}");
}

/// Deploys the contractor example on `server` as `name`, bidding `bid`
/// for capability `quote`.
async fn bidder(server: &Server, name: &str, bid: u32) {
    let mut body = crate::harness::deploy_body(
        name,
        &rust_example("contractor"),
        serde_json::json!({"max_execution_time_ms": 60000}),
    );
    body["config"] = serde_json::json!({"name": name, "bid": bid});
    let (status, answer) = server.post("/api/v1/agents", &body).await;
    assert_eq!(status, 201, "deploying {name}: {answer}");
}

/// Sends `text` to `agent` through `server` until the other nodes' agents
/// are known there (a fraction of a heartbeat), then answers the reply.
async fn ask_through(server: &Server, agent: &str, text: &str) -> Value {
    // Generous: on a loaded 2-core CI host a first config agent compiles
    // the interpreter component.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.message(agent, text).await;
        if status == 200 {
            return body;
        }
        assert!(
            status == 404 && Instant::now() < deadline,
            "{agent} through {}: {status} {body}",
            server.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_three_nodes_answer_each_other() {
    let (guard, _) = temp_data_dir();
    let nats = Nats::start(&guard.path().join("jetstream"));
    let mut a = node(guard.path(), "node-a", &nats.url);
    let b = node(guard.path(), "node-b", &nats.url);
    let c = node(guard.path(), "node-c", &nats.url);
    a.deploy("echo", &rust_example("echo"), serde_json::json!({}))
        .await;
    bidder(&a, "bid-a", 7).await;
    bidder(&b, "bid-b", 3).await;
    bidder(&c, "bid-c", 5).await;

    // Deployed on A, asked through C: A's echo answers, its conversation
    // id and the agent's name come back as they would locally.
    let body = ask_through(&c, "echo", "over the wire").await;
    assert_eq!(body["reply"]["content"], "over the wire", "{body}");
    assert_eq!(body["agent"]["name"], "echo", "{body}");
    // By id too.
    let id = body["agent"]["id"].as_str().expect("id").to_string();
    let body = ask_through(&c, &id, "by id").await;
    assert_eq!(body["reply"]["content"], "by id", "{body}");
    let (status, body) = c
        .post(
            "/api/v1/messages",
            &serde_json::json!({"capability": "echo", "content": "by capability"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["content"], "by capability", "{body}");
    // An agent nobody runs is still unknown, not sent anywhere.
    let (status, body) = c.message("nobody", "hello").await;
    assert_eq!(status, 404, "{body}");

    // A broadcast from B gathers every node's bidder.
    let deadline = Instant::now() + Duration::from_secs(10);
    let gathered = loop {
        let (status, gathered) = b
            .post(
                "/api/v1/broadcast",
                &serde_json::json!({"capability": "quote", "content": "price?", "timeout_ms": 5000}),
            )
            .await;
        assert_eq!(status, 200, "{gathered}");
        if gathered["asked"] == 3 || Instant::now() > deadline {
            break gathered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(gathered["asked"], 3, "{gathered}");
    assert_eq!(gathered["answered"], 3, "{gathered}");
    let contents: Vec<&str> = gathered["answers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["content"].as_str())
        .collect();
    assert_eq!(
        contents,
        ["bid-a quotes 7", "bid-b quotes 3", "bid-c quotes 5"],
        "{gathered}"
    );

    // A contract net run from C awards B's bidder (the lowest bid); the
    // rejections reach A's and C's bidders as fire-and-forget messages.
    let (status, outcome) = c
        .post(
            "/api/v1/contract-net",
            &serde_json::json!({"capability": "quote", "task": "paint the fence",
                    "timeout_ms": 5000, "result_timeout_ms": 5000}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["winner"], "bid-b", "{outcome}");
    assert_eq!(outcome["result"], "bid-b did: paint the fence", "{outcome}");
    assert_eq!(
        outcome["rejected"],
        serde_json::json!(["bid-c", "bid-a"]),
        "{outcome}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.ask("bid-a", "rejections").await != "1" {
        assert!(
            Instant::now() < deadline,
            "the rejection from node-c never reached bid-a on node-a"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Node A killed: a request for its echo fails at once with a clear,
    // retryable error (NATS knows A's subscriptions went with its
    // connection — or, if NATS has not yet noticed, nobody says it took
    // the message within 3 s); once A's entry expired (3 s here), a
    // survivor claims
    // echo's slot, starts it from the cluster's object store, and it
    // answers again.
    a.kill();
    let killed = Instant::now();
    let (status, body) = c.message("echo", "anyone?").await;
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "took {:?}",
        killed.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "agent_unreachable", "{body}");
    assert_eq!(body["error"]["details"]["retryable"], true, "{body}");
    let body = loop {
        let (status, body) = c.message("echo", "back?").await;
        if status == 200 {
            break body;
        }
        assert!(
            [503, 404].contains(&status) && killed.elapsed() < Duration::from_secs(10),
            "echo not back within 10 s of node-a's death: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["reply"]["content"], "back?", "{body}");
    eprintln!("failover after kill -9: {:?}", killed.elapsed());
    let view = wait_for_nodes(&c, &["node-b", "node-c"], Duration::from_secs(10)).await;
    let runs_echo: Vec<&Value> = view["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            n["agents"]
                .as_array()
                .is_some_and(|a| a.contains(&"echo".into()))
        })
        .collect();
    assert_eq!(runs_echo.len(), 1, "one replica, on one survivor: {view}");

    // Two replicas of a new agent, deployed on B: on two nodes.
    let mut body =
        crate::harness::deploy_body("twice", &rust_example("echo"), serde_json::json!({}));
    body["replicas"] = 2.into();
    let (status, answer) = b.post("/api/v1/agents", &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["cluster"]["published"], true, "{answer}");
    // The name is the cluster's now: no other node may deploy it.
    let (status, answer) = c
        .post(
            "/api/v1/agents",
            &crate::harness::deploy_body("twice", &rust_example("echo"), serde_json::json!({})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    let on_nodes = |view: &Value, agent: &str| -> usize {
        view["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n["agents"]
                    .as_array()
                    .is_some_and(|a| a.contains(&agent.into()))
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, view) = c.get("/api/v1/cluster").await;
        if on_nodes(&view, "twice") == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "twice never ran on two nodes: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Removed through C: gone from every node.
    let (status, answer) = c.delete("/api/v1/agents/twice").await;
    assert_eq!(status, 200, "{answer}");
    for through in [&b, &c] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, view) = through.get("/api/v1/cluster").await;
            if on_nodes(&view, "twice") == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "twice still runs: {view}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (status, body) = c.message("twice", "hello").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_acknowledged_update_or_message() {
    let (guard, _) = temp_data_dir();
    let nats = Nats::start(&guard.path().join("jetstream"));
    let mut a = node(guard.path(), "node-a", &nats.url);
    let b = node(guard.path(), "node-b", &nats.url);
    let c = node(guard.path(), "node-c", &nats.url);
    a.deploy("tally", &rust_example("counter"), serde_json::json!({}))
        .await;
    let mut body = crate::harness::deploy_body(
        "sleeper",
        &rust_example("contractor"),
        serde_json::json!({"max_execution_time_ms": 60000}),
    );
    body["config"] = serde_json::json!({"name": "sleeper", "stall_ms": 30000});
    let (status, answer) = a.post("/api/v1/agents", &body).await;
    assert_eq!(status, 201, "{answer}");
    ask_through(&c, "tally", "get").await;
    until(
        "sleeper reachable through node-c",
        Duration::from_secs(30),
        async || runs_on(&c, "sleeper").await == ["node-a"],
    )
    .await;
    // A request that node A is handling when it dies.
    let in_flight = {
        let url = c.url("/api/v1/messages");
        tokio::spawn(async move {
            let asked = Instant::now();
            let answer = reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({"receiver": "sleeper", "content": "quote?", "timeout_ms": 60000}))
                .send()
                .await
                .expect("an answer");
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, body, asked.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A burst through C: increments (request/reply, acknowledged by the
    // reply) and durable fire-and-forget `record`s (acknowledged by 202),
    // with node A, which runs the counter, killed in the middle.
    let (mut acked, mut attempted, mut sent) = (0u32, 0u32, 0u32);
    let mut slowest = Duration::ZERO;
    let mut killed: Option<Instant> = None;
    while acked < 80 {
        attempted += 1;
        let asked = Instant::now();
        let (status, body) = c
            .post(
                "/api/v1/agents/tally/message",
                &serde_json::json!({"message": "increment", "timeout_ms": 20000}),
            )
            .await;
        slowest = slowest.max(asked.elapsed());
        match status {
            200 => acked += 1,
            // Unreachable while it moves, or unknown for a moment between
            // A's expiry and the survivor's start: retryable, not acked.
            503 | 404 => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("increment: {other} {body}"),
        }
        if attempted % 2 == 0 {
            let (status, body) = c
                .post(
                    "/api/v1/send",
                    &serde_json::json!({"receiver": "tally", "content": "record"}),
                )
                .await;
            if status == 202 {
                sent += 1;
            } else {
                assert!([503, 404].contains(&status), "send: {status} {body}");
            }
        }
        if acked == 30 && killed.is_none() {
            a.kill();
            killed = Some(Instant::now());
        }
    }
    let killed = killed.expect("node-a was killed");
    let (status, body, waited) = in_flight.await.expect("the in-flight request");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "agent_unreachable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("node-a"),
        "{body}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "the request to the dead node waited {waited:?} of its 60 s"
    );
    eprintln!(
        "in-flight request failed after {waited:?}: {}",
        body["error"]["message"]
    );
    eprintln!(
        "acked {acked} of {attempted} increments, {sent} sends; back {:?} after the kill; slowest request {slowest:?}",
        killed.elapsed()
    );
    // No request hung until its 20 s deadline: the one in flight at the
    // kill failed when node A left the membership.
    assert!(
        slowest < Duration::from_secs(5),
        "a request took {slowest:?}"
    );

    // Every acknowledged increment is in the count the survivor reads
    // from the cluster's state (a request lost with A may have counted).
    let count: u32 = c.ask("tally", "get").await.parse().expect("a number");
    assert!(
        acked <= count && count <= attempted,
        "count {count}: acked {acked}, attempted {attempted}"
    );
    // Every accepted fire-and-forget message arrives, once (`record`
    // keys by message id).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded: u32 = c.ask("tally", "recorded").await.parse().expect("a number");
        if recorded == sent {
            break;
        }
        if recorded > sent || Instant::now() > deadline {
            let (_, dead) = c.get("/api/v1/dead-letters").await;
            panic!("recorded {recorded} of {sent} sends; dead letters: {dead}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, dead) = c.get("/api/v1/dead-letters").await;
    assert_eq!(dead["dead_letters"], serde_json::json!([]), "{dead}");

    // The sending node dies with its messages undelivered (the receiver
    // is suspended): they wait in the cluster's outbox, and another node
    // delivers them once the receiver is back.
    // Where tally runs, by each node's own list (one replica: one node).
    let on_b = b.get("/api/v1/agents/tally").await.0 == 200;
    let on_c = c.get("/api/v1/agents/tally").await.0 == 200;
    assert!(on_b != on_c, "tally on node-b: {on_b}, on node-c: {on_c}");
    let (mut sender, runner) = if on_c { (b, c) } else { (c, b) };
    let (status, body) = runner
        .post("/api/v1/agents/tally/suspend", &serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..20 {
        let (status, body) = sender
            .post(
                "/api/v1/send",
                &serde_json::json!({"receiver": "tally", "content": "record"}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    sender.kill();
    let (status, body) = runner
        .post("/api/v1/agents/tally/resume", &serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    until(
        "the dead sender's 20 messages delivered",
        Duration::from_secs(60),
        async || runner.ask("tally", "recorded").await == (sent + 20).to_string(),
    )
    .await;
}

async fn export(server: &Server) -> String {
    reqwest::get(server.url("/api/v1/memory/export"))
        .await
        .expect("export")
        .text()
        .await
        .expect("export body")
}

async fn remember(server: &Server, i: usize) {
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &serde_json::json!({"scope": "global", "entities": [
                {"name": format!("item-{i}"), "entity_type": "thing",
                 "observations": [format!("widget note number {i}")]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "writing item-{i} on {}: {body}", server.base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_written_on_any_node_is_on_every_node() {
    let (guard, _) = temp_data_dir();
    let nats = Nats::start(&guard.path().join("jetstream"));
    let a = node(guard.path(), "node-a", &nats.url);
    let mut b = node(guard.path(), "node-b", &nats.url);
    let c = node(guard.path(), "node-c", &nats.url);

    // Written anywhere; the writer reads its own write at once.
    for i in 0..30 {
        let writer = [&a, &b, &c][i % 3];
        remember(writer, i).await;
        let (status, hits) = writer
            .post(
                "/api/v1/memory/search",
                &serde_json::json!({"query": format!("item-{i}")}),
            )
            .await;
        assert_eq!(status, 200, "{hits}");
        assert!(
            hits.to_string().contains(&format!("\"item-{i}\"")),
            "item-{i} not found right after its write on {}: {hits}",
            writer.base
        );
    }
    let (status, body) = b
        .post(
            "/api/v1/memory/relations",
            &serde_json::json!({"scope": "global", "relations": [
                {"from": "item-0", "to": "item-1", "relation_type": "next_to"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = c
        .post(
            "/api/v1/memory/observations",
            &serde_json::json!({"scope": "global", "entity": "item-2", "observations": ["painted blue"]}),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");

    // Node B killed mid-burst; the writes through A and C go on.
    for i in 30..60 {
        if i == 40 {
            b.kill();
        }
        remember([&a, &c][i % 2], i).await;
    }
    // An import through C reaches every node too.
    let lines = [
        r#"{"type":"entity","scope":"global","name":"imported-1","entity_type":"thing","observations":["came from a file"]}"#,
        r#"{"type":"entity","scope":"global","name":"imported-2","entity_type":"thing","observations":["also from the file"]}"#,
        r#"{"type":"relation","scope":"global","from":"imported-1","to":"imported-2","relation_type":"next_to"}"#,
    ];
    let (status, body) = c
        .post_raw(
            "/api/v1/memory/import",
            "application/x-ndjson",
            lines.join("\n").into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Once B is out of the view, the stream is trimmed below a snapshot
    // past B's last position: B cannot replay what it missed.
    wait_for_nodes(&a, &["node-a", "node-c"], Duration::from_secs(10)).await;
    for i in 60..80 {
        remember([&a, &c][i % 2], i).await;
    }
    until(
        "a snapshot past node-b's last position",
        Duration::from_secs(20),
        async || {
            let (_, status) = a.get("/api/v1/cluster").await;
            status["memory_snapshot"]["taken"].as_u64().unwrap_or(0) >= 70
        },
    )
    .await;
    // B comes back on its data, and a new node D joins: both catch up
    // from the snapshot and the stream after it.
    let b = node(guard.path(), "node-b", &nats.url);
    let d = node(guard.path(), "node-d", &nats.url);
    let reference = export(&a).await;
    assert_eq!(
        reference
            .lines()
            .filter(|l| !l.contains(r#""type":"history""#))
            .count(),
        84,
        "82 entities and two relations (and the facts' times): {reference}"
    );
    assert!(reference.contains("came from a file"), "{reference}");
    assert!(reference.contains("painted blue"), "{reference}");
    for other in [&b, &c, &d] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let theirs = export(other).await;
            if theirs == reference {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} differs from node-a:\n{theirs}\n---\n{reference}",
                other.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // And answers searches the same way.
    let (_, on_a) = a
        .post(
            "/api/v1/memory/search",
            &serde_json::json!({"query": "widget note"}),
        )
        .await;
    let (_, on_d) = d
        .post(
            "/api/v1/memory/search",
            &serde_json::json!({"query": "widget note"}),
        )
        .await;
    assert!(
        on_a["results"].as_array().is_some_and(|r| r.len() >= 5),
        "{on_a}"
    );
    assert_eq!(on_a["results"], on_d["results"], "{on_a}\n{on_d}");
    let (_, status) = d.get("/api/v1/cluster").await;
    let applied: Vec<u64> = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["memory_applied"].as_u64())
        .collect();
    assert_eq!(applied.len(), 4, "{status}");
    // Marked loaded once the vector index is rebuilt, a moment after the
    // loaded memory is readable.
    for caught_up in [&b, &d] {
        until(
            &format!("{} marks the snapshot it caught up from", caught_up.base),
            Duration::from_secs(10),
            async || {
                let (_, status) = caught_up.get("/api/v1/cluster").await;
                status["memory_snapshot"]["loaded"].as_u64().is_some()
            },
        )
        .await;
    }
}

async fn health(server: &Server) -> String {
    let (_, health) = server.get("/api/v1/health").await;
    health["status"].as_str().unwrap_or("").to_string()
}

async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_hands_over_and_nodes_ride_out_a_nats_restart() {
    let (guard, _) = temp_data_dir();
    let store = guard.path().join("jetstream");
    let nats = Nats::start(&store);
    let port: u16 = nats
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let a = node(guard.path(), "node-a", &nats.url);
    let b = node(guard.path(), "node-b", &nats.url);
    a.deploy("echo", &rust_example("echo"), serde_json::json!({}))
        .await;
    ask_through(&b, "echo", "hello").await;

    // Drained: echo moves to B, and still answers through A.
    let (ok, out, err) = b.cli(&["cluster", "drain", "node-a", "--wait", "20"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("node-a runs no agent now"), "{out}");
    let body = ask_through(&a, "echo", "moved?").await;
    assert_eq!(body["reply"]["content"], "moved?", "{body}");
    until(
        "node-a shown draining",
        Duration::from_secs(5),
        async || {
            let (_, view) = a.get("/api/v1/cluster").await;
            view["draining"] == serde_json::json!(["node-a"])
        },
    )
    .await;
    let (ok, out, err) = a.cli(&["cluster", "status"]);
    assert!(ok && out.contains("node-a (draining)"), "{out}{err}");
    let (status, body) = a
        .post(
            "/api/v1/cluster/drain",
            &serde_json::json!({"node": "node-z"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (ok, out, err) = a.cli(&["cluster", "resume", "node-a"]);
    assert!(ok, "{out}{err}");
    until("the drain ended", Duration::from_secs(5), async || {
        let (_, view) = a.get("/api/v1/cluster").await;
        view["draining"] == serde_json::json!([])
    })
    .await;

    // Each node's metrics say which node they are from.
    let metrics = reqwest::get(a.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("caxton_cluster_nodes{node=\"node-a\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("caxton_memory_replication_behind{node=\"node-a\"}"),
        "{metrics}"
    );

    // NATS gone: local work goes on, cluster work fails fast and says
    // why, health is degraded; NATS back: all of it recovers.
    drop(nats);
    until("node-b degraded", Duration::from_secs(10), async || {
        health(&b).await == "degraded"
    })
    .await;
    assert_eq!(b.ask("echo", "still here").await, "still here");
    let asked = Instant::now();
    let (status, body) = b
        .post(
            "/api/v1/memory/entities",
            &serde_json::json!({"entities": [{"name": "offline", "entity_type": "t", "observations": ["x"]}]}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "memory_unavailable", "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let _nats = Nats::start_on(&store, port);
    until("both healthy again", Duration::from_secs(20), async || {
        health(&a).await == "healthy" && health(&b).await == "healthy"
    })
    .await;
    until(
        "echo through node-a again",
        Duration::from_secs(20),
        async || a.message("echo", "back").await.0 == 200,
    )
    .await;
    let (status, body) = a
        .post(
            "/api/v1/memory/entities",
            &serde_json::json!({"entities": [{"name": "online", "entity_type": "t", "observations": ["y"]}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    until(
        "node-b has the write",
        Duration::from_secs(10),
        async || {
            let (_, found) = b
                .post(
                    "/api/v1/memory/nodes",
                    &serde_json::json!({"names": ["online"]}),
                )
                .await;
            found["entities"].as_array().is_some_and(|e| e.len() == 1)
        },
    )
    .await;
}

/// A node whose agents directory is `agents` and whose model is the
/// scripted provider.
fn config_node(dir: &Path, name: &str, nats: &str, agents: &Path, script: &Path) -> Server {
    std::fs::create_dir_all(agents).expect("agents dir");
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "memory:\n  semantic_search: false\nagents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\ncluster:\n  nats_url: {nats}\n  node: {name}\n  heartbeat_ms: 500\n  dead_after_ms: 3000\n",
            agents.display(),
            script.display()
        ),
    )
    .expect("write config");
    Server::start_with_config(&dir.join(name), Some(&config))
}

async fn runs_on(server: &Server, agent: &str) -> Vec<String> {
    let (_, view) = server.get("/api/v1/cluster").await;
    view["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            n["agents"]
                .as_array()
                .is_some_and(|a| a.contains(&agent.into()))
        })
        .filter_map(|n| n["node"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_agent_moves_when_its_home_node_dies_and_returns_home() {
    let (guard, _) = temp_data_dir();
    let dir = guard.path();
    let nats = Nats::start(&dir.join("jetstream"));
    let script = dir.join("script.yaml");
    std::fs::write(
        &script,
        "- when: \"hello\"\n  content: \"hi from the model\"\n",
    )
    .expect("script");
    let home_agents = dir.join("agents-a");
    std::fs::create_dir_all(&home_agents).expect("dir");
    std::fs::write(
        home_agents.join("greeter.md"),
        "---\nname: greeter\nversion: \"1.0.0\"\ncapabilities: [greeting]\nsystem_prompt: You greet.\n---\nGreets.\n",
    )
    .expect("definition");
    let mut a = config_node(dir, "node-a", &nats.url, &home_agents, &script);
    let b = config_node(dir, "node-b", &nats.url, &dir.join("agents-b"), &script);
    let body = ask_through(&b, "greeter", "hello").await;
    assert_eq!(body["reply"]["content"], "hi from the model", "{body}");
    assert_eq!(runs_on(&b, "greeter").await, ["node-a"]);
    // Reachable is not yet published: wait until the registry has it.
    until("greeter published", Duration::from_secs(30), async || {
        let (_, view) = b.get("/api/v1/cluster").await;
        view["published"]
            .as_array()
            .is_some_and(|p| p.contains(&"greeter".into()))
    })
    .await;

    // Its home node dies: node B runs the published definition.
    a.kill();
    let killed = Instant::now();
    let body = loop {
        let (status, body) = b.message("greeter", "hello").await;
        if status == 200 {
            break body;
        }
        assert!(
            [503, 404].contains(&status) && killed.elapsed() < Duration::from_secs(30),
            "greeter not back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["reply"]["content"], "hi from the model", "{body}");
    until(
        "greeter runs on node-b",
        Duration::from_secs(5),
        async || runs_on(&b, "greeter").await == ["node-b"],
    )
    .await;

    // Home again: node A runs it from its file, node B stops its copy.
    let _a = config_node(dir, "node-a", &nats.url, &home_agents, &script);
    until(
        "greeter back on node-a only",
        Duration::from_secs(10),
        async || runs_on(&b, "greeter").await == ["node-a"],
    )
    .await;

    // Its file deleted on the home node: it leaves the cluster.
    std::fs::remove_file(home_agents.join("greeter.md")).expect("remove");
    until(
        "greeter gone everywhere",
        Duration::from_secs(10),
        async || {
            runs_on(&b, "greeter").await.is_empty() && b.message("greeter", "hello").await.0 == 404
        },
    )
    .await;
}

/// A cluster whose NATS store is lost comes back from one node's backup:
/// the registry, components, agents' state and memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_comes_back_from_one_nodes_backup() {
    let (guard, _) = temp_data_dir();
    let root = guard.path();
    let nats = Nats::start(&root.join("jetstream"));
    let a = node(root, "node-a", &nats.url);
    let b = node(root, "node-b", &nats.url);
    a.deploy("tally", &rust_example("counter"), serde_json::json!({}))
        .await;
    for _ in 0..3 {
        ask_through(&b, "tally", "increment").await;
    }
    for i in 0..10 {
        remember(&a, i).await;
    }
    let count = ask_through(&b, "tally", "get").await["reply"]["content"].clone();
    assert_eq!(count, "3", "three increments");
    // B applies A's writes from the stream a moment later: the backup is
    // taken once it holds them all.
    let reference = export(&a).await;
    until(
        "node-b holds the ten entities written on node-a",
        Duration::from_secs(20),
        async || export(&b).await == reference,
    )
    .await;
    let before = export(&b).await;
    assert!(before.contains("item-9"), "{before}");

    // Taken on B, which never ran the agent.
    let archive = root.join("cluster.tar.gz");
    let data_b = root.join("node-b");
    let (ok, out, err) = b.cli_with_env(
        &["backup", "--output", archive.to_str().expect("utf-8")],
        &[("CAXTON_DATA_DIR", data_b.to_str().expect("utf-8"))],
    );
    assert!(ok, "{out}{err}");
    drop((a, b, nats));

    // A new NATS with nothing in it; one node restored from the backup.
    let target = root.join("restored");
    let output = Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(["restore", archive.to_str().expect("utf-8"), "--target"])
        .arg(&target)
        .env_remove("CAXTON_DATA_DIR")
        .output()
        .expect("caxton restore");
    assert!(output.status.success(), "{output:?}");
    assert!(
        target.join("data/cluster-restore/registry.json").is_file(),
        "the restore kept the cluster's registry"
    );
    let nats = Nats::start(&root.join("jetstream-new"));
    std::fs::rename(target.join("data"), root.join("node-x")).expect("move the restored data");
    let x = node(root, "node-x", &nats.url);
    // Agents' state carried on from the backup.
    let answer = ask_through(&x, "tally", "get").await;
    assert_eq!(answer["reply"]["content"], count, "{answer}");
    assert_eq!(export(&x).await, before);
    // A node joining the new cluster gets the memory the stream never
    // carried, from the snapshot the restored node takes.
    let y = node(root, "node-y", &nats.url);
    // The loaded memory is readable a moment before the node marks the
    // snapshot loaded (it rebuilds its vector index in between): both
    // are waited for.
    until(
        "node-y loads the snapshot and its memory equals the backup's",
        Duration::from_secs(20),
        async || {
            let (_, status) = y.get("/api/v1/cluster").await;
            status["memory_snapshot"]["loaded"].as_u64().is_some() && export(&y).await == before
        },
    )
    .await;
    let data_x = root.join("node-x");
    assert!(
        !data_x.join("cluster-restore").exists(),
        "the restore was applied once and set aside"
    );
}

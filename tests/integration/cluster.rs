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
            "memory:\n  semantic_search: false\ncluster:\n  nats_url: {nats}\n  node: {name}\n  heartbeat_ms: 200\n  dead_after_ms: 1500\n"
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

    // kill -9: nobody says goodbye; the entry expires (1.5 s) and A
    // notices within a heartbeat or two of that.
    b.kill();
    let killed = Instant::now();
    wait_for_nodes(&a, &["node-a"], Duration::from_secs(10)).await;
    assert!(
        killed.elapsed() >= Duration::from_millis(1000),
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

//! `caxton-bench cluster`: three real nodes on one real `nats-server`
//! (Debian's 2.9 here), all on this machine's loopback.
//!
//! - request/reply through the REST API to `echo` on node A, asked on A
//!   (local) and on B (across NATS): sequential p50/p99, and messages per
//!   second with 16 clients;
//! - memory writes through A at a fixed 500 per second: acknowledged
//!   rate, and replication lag (from A's acknowledgement until B and C
//!   answer the entity), p50/p99 over every 10th write;
//! - failover: `kill -9` of the node running an agent, until a request
//!   through another node is answered again (shipped heartbeat 1 s,
//!   death after 3 s).
//!
//! Memory runs keyword-only here: a write is embedded once, on the node
//! that takes it, and the vectors travel with it, so the model's cost is
//! the single-node bench's; these rows measure the replication itself.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{ServerProcess, deploy, example, ms, percentile, start_server};

/// Sequential requests per timed row.
const SEQUENTIAL: usize = 2_000;
/// Memory writes per second asked, and for how long.
const WRITE_RATE: u64 = 500;
const WRITE_SECONDS: u64 = 10;

struct Nats(Child);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_nats(store: &Path) -> anyhow::Result<(Nats, String)> {
    let port = free_port()?;
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nats-server is not installed (Debian: apt-get install nats-server)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nats-server did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((Nats(child), format!("nats://127.0.0.1:{port}")))
}

fn start_node(root: &Path, name: &str, nats: &str) -> anyhow::Result<ServerProcess> {
    let config = root.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "memory:\n  semantic_search: false\nmonitoring:\n  metrics_port: 0\ncluster:\n  nats_url: {nats}\n  node: {name}\n"
        ),
    )?;
    start_server(&root.join(name), Some(&config))
}

/// Waits until `base` answers a message to `agent`.
async fn reachable(client: &reqwest::Client, base: &str, agent: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client
            .post(format!("{base}/api/v1/agents/{agent}/message"))
            .json(&json!({"message": "ping"}))
            .send()
            .await?;
        if answer.status().as_u16() == 200 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{agent} not reachable through {base}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn round_trips(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Duration>> {
    let url = format!("{base}/api/v1/agents/echo/message");
    let body = json!({"message": "hello"});
    let mut times = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        let answer = client.post(&url).json(&body).send().await?;
        if answer.status().as_u16() != 200 {
            bail!("echo through {base}: {}", answer.text().await?);
        }
        answer.bytes().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}

async fn throughput(client: &reqwest::Client, base: &str) -> anyhow::Result<f64> {
    let url = format!("{base}/api/v1/agents/echo/message");
    let until = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                match client
                    .post(&url)
                    .json(&json!({"message": "hi"}))
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 200 => {
                        let _ = r.bytes().await;
                        done += 1;
                    }
                    _ => {}
                }
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    Ok(total as f64 / 3.0)
}

async fn found(client: &reqwest::Client, base: &str, name: &str) -> bool {
    let answer = client
        .post(format!("{base}/api/v1/memory/nodes"))
        .json(&json!({"names": [name]}))
        .send()
        .await;
    match answer {
        Ok(r) => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["entities"].as_array().map(|e| !e.is_empty()))
            .unwrap_or(false),
        Err(_) => false,
    }
}

pub async fn run(root: &Path) -> anyhow::Result<()> {
    let echo = example("echo")?;
    let (_nats, url) = start_nats(&root.join("jetstream"))?;
    let a = start_node(root, "node-a", &url)?;
    let b = start_node(root, "node-b", &url)?;
    let c = start_node(root, "node-c", &url)?;
    let client = reqwest::Client::new();
    deploy(&client, None, &a.base, "echo", &echo, json!({})).await?;
    reachable(&client, &b.base, "echo").await?;

    println!("cluster: 3 nodes and nats-server on this machine's loopback");
    let local = round_trips(&client, &a.base).await?;
    let across = round_trips(&client, &b.base).await?;
    let (p50_local, p50_across) = (percentile(&local, 0.5), percentile(&across, 0.5));
    println!(
        "  echo asked on its node (REST, 1 client): p50 {} p99 {}",
        ms(p50_local),
        ms(percentile(&local, 0.99))
    );
    println!(
        "  echo asked on another node (REST + NATS): p50 {} p99 {}  (target p50 < 1 ms)",
        ms(p50_across),
        ms(percentile(&across, 0.99))
    );
    println!(
        "  the hop across nodes adds p50 {}",
        ms(p50_across.saturating_sub(p50_local))
    );
    let local_rate = throughput(&client, &a.base).await?;
    let across_rate = throughput(&client, &b.base).await?;
    println!(
        "  16 clients: {local_rate:.0} msg/s on its node, {across_rate:.0} msg/s across nodes"
    );

    // Memory writes at a fixed rate through A; every 10th is looked for on
    // B and C until both answer it.
    let total = WRITE_RATE * WRITE_SECONDS;
    let gap = Duration::from_secs(1) / WRITE_RATE as u32;
    let started = Instant::now();
    let mut writes = Vec::new();
    for i in 0..total {
        let due = started + gap * i as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let (client, a_base, b_base, c_base) = (
            client.clone(),
            a.base.clone(),
            b.base.clone(),
            c.base.clone(),
        );
        writes.push(tokio::spawn(async move {
            let name = format!("bench-{i}");
            let answer = client
                .post(format!("{a_base}/api/v1/memory/entities"))
                .json(&json!({"entities": [{"name": name, "entity_type": "thing",
                                            "observations": [format!("note {i}")]}]}))
                .send()
                .await
                .ok()?;
            if answer.status().as_u16() != 201 {
                return None;
            }
            let acked = Instant::now();
            if i % 10 != 0 {
                return Some(None);
            }
            let mut seen = [false, false];
            while !(seen[0] && seen[1]) {
                if acked.elapsed() > Duration::from_secs(30) {
                    return Some(Some(Duration::MAX));
                }
                for (k, base) in [&b_base, &c_base].into_iter().enumerate() {
                    if !seen[k] {
                        seen[k] = found(&client, base, &name).await;
                    }
                }
            }
            Some(Some(acked.elapsed()))
        }));
    }
    let mut acked = 0u64;
    let mut lags = Vec::new();
    for write in writes {
        match write.await? {
            Some(Some(lag)) => {
                acked += 1;
                lags.push(lag);
            }
            Some(None) => acked += 1,
            None => {}
        }
    }
    let elapsed = started.elapsed();
    lags.sort();
    println!(
        "  memory writes through node-a at {WRITE_RATE}/s asked: {acked} of {total} acknowledged, {:.0}/s",
        acked as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  replication lag to nodes b and c (ack on a → both answer it): p50 {} p99 {}  (target p99 < 100 ms)",
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99))
    );

    // Failover with the shipped timings: an agent on C, C killed.
    deploy(&client, None, &c.base, "victim", &echo, json!({})).await?;
    reachable(&client, &a.base, "victim").await?;
    let mut c = c;
    let _ = c.child.kill();
    let _ = c.child.wait();
    let killed = Instant::now();
    reachable(&client, &a.base, "victim").await?;
    println!(
        "  failover after kill -9 of the agent's node: {:.2} s  (target < 5 s; death noticed after 3 s)",
        killed.elapsed().as_secs_f64()
    );
    drop((a, b));
    Ok(())
}

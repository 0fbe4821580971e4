//! `caxton-bench`: message dispatch and instantiation benchmarks.
//!
//! Run with `scripts/bench` (builds release binaries, then runs this);
//! `scripts/bench interop` runs only the OpenAI API and MCP rows,
//! `scripts/bench text` only long documents (ingest, search quality).
//! Starts the real `caxton` binary (next to this one) on an ephemeral
//! port, deploys the echo example, and measures over loopback HTTP:
//! - `GET /api/v1/health` and a message round trip to the echo agent, with
//!   1 and 16 concurrent clients: throughput, p50, p99; the ratio of the
//!   two throughputs shows what WASM dispatch adds on top of HTTP;
//! - the first message after a trap (a fresh instance is made), as the
//!   server reports its execution time;
//! - `/v1/chat/completions` and MCP tools next to the REST routes they
//!   stand for (the OpenAI API and MCP add at most 10%: the target);
//!
//! In-process, it also times loading a compiled component from the on-disk
//! cache and instantiating it (`InstancePre` + `init`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

mod cluster;
mod man_pages;
mod recording;
mod text;

const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    // SAFETY: first statement of the process; no other thread exists yet.
    unsafe { caxton_models::fix_thread_count() };
    // One thread for the load generator: on a small machine the server gets
    // the other cores instead of fighting the client for them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn example(name: &str) -> anyhow::Result<PathBuf> {
    let path = repo_root().join(format!(
        "examples/rust/target/wasm32-wasip2/release/{name}.wasm"
    ));
    if !path.is_file() {
        bail!(
            "{} is missing; build the examples first: (cd examples/rust && cargo build --release)",
            path.display()
        );
    }
    Ok(path)
}

struct ServerProcess {
    child: Child,
    base: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<ServerProcess> {
    let exe = std::env::current_exe()?;
    let caxton = exe
        .parent()
        .map(|d| d.join("caxton"))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "the caxton binary is not next to {}; run scripts/bench",
                exe.display()
            )
        })?;
    let mut command = Command::new(caxton);
    command
        .args(["start", "--port", "0", "--data-dir"])
        .arg(data_dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .env("CAXTON_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("caxton listening on ")
        .ok_or_else(|| anyhow!("unexpected first line from caxton: {line}"))?
        .to_string();
    Ok(ServerProcess { child, base })
}

async fn deploy(
    client: &reqwest::Client,
    token: Option<&str>,
    base: &str,
    name: &str,
    wasm: &Path,
    limits: Value,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(wasm)?;
    let body = json!({
        "name": name,
        "wasm_module": base64::engine::general_purpose::STANDARD.encode(bytes),
        "resource_limits": limits,
    });
    let mut request = client.post(format!("{base}/api/v1/agents")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    if response.status().as_u16() != 201 {
        bail!("deploying {name}: {}", response.text().await?);
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Health,
    Echo,
    /// `/v1/chat/completions` to the echo agent.
    ChatEcho,
    /// `POST /api/v1/memory/search`.
    RestSearch,
    /// The MCP `search` tool at `/mcp` (one JSON-RPC POST).
    McpSearch,
    /// The MCP `search_nodes` tool (search, then the matches' relations).
    McpSearchNodes,
    /// What `search_nodes` answers, over REST: a search, then the matches
    /// and the relations among them (`POST /api/v1/memory/nodes`).
    RestSearchNodes,
    /// An MCP `ping`: the MCP transport alone, no tool.
    McpPing,
    /// A2A `SendMessage` (JSON-RPC) to the echo agent.
    A2aEcho,
}

/// A JSON-RPC `tools/call` of the stateless MCP endpoint.
fn mcp_call(tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}})
}

struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// One request of a target, built once before the run: what is measured
/// is the server's answer, not the client building JSON for each request
/// (the benchmark is compiled with Caxton's own code, unoptimised in the
/// dev profile, where that would count for the larger bodies).
#[derive(Clone)]
struct Prepared {
    target: Target,
    url: reqwest::Url,
    /// `None`: a GET.
    body: Option<axum::body::Bytes>,
    /// Extra headers (MCP's `accept`, A2A's version).
    headers: reqwest::header::HeaderMap,
}

const QUERY: &str = "benchmark entity about distributed systems";

fn prepare(base: &str, target: Target) -> anyhow::Result<Prepared> {
    let mcp_headers = || {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json, text/event-stream"),
        );
        h.insert(
            "mcp-protocol-version",
            reqwest::header::HeaderValue::from_static("2025-06-18"),
        );
        h
    };
    let (path, body, headers) = match target {
        Target::Health => ("/api/v1/health", None, reqwest::header::HeaderMap::new()),
        Target::Echo => (
            "/api/v1/agents/echo/message",
            Some(json!({"message": "benchmark payload of a typical short request"})),
            reqwest::header::HeaderMap::new(),
        ),
        Target::ChatEcho => (
            "/v1/chat/completions",
            Some(json!({"model": "echo", "messages": [{"role": "user",
                "content": "benchmark payload of a typical short request"}]})),
            reqwest::header::HeaderMap::new(),
        ),
        Target::RestSearch | Target::RestSearchNodes => (
            "/api/v1/memory/search",
            Some(json!({"query": QUERY, "limit": 10})),
            reqwest::header::HeaderMap::new(),
        ),
        Target::McpSearch => (
            "/mcp",
            Some(mcp_call("search", json!({"query": QUERY, "limit": 10}))),
            mcp_headers(),
        ),
        Target::McpSearchNodes => (
            "/mcp",
            Some(mcp_call("search_nodes", json!({"query": QUERY}))),
            mcp_headers(),
        ),
        Target::McpPing => (
            "/mcp",
            Some(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
            mcp_headers(),
        ),
        Target::A2aEcho => {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(
                "a2a-version",
                reqwest::header::HeaderValue::from_static("1.0"),
            );
            (
                "/a2a/echo",
                Some(json!({"jsonrpc": "2.0", "id": "1", "method": "SendMessage",
                    "params": {"message": {"messageId": "bench", "role": "ROLE_USER",
                        "parts": [{"text": "benchmark payload of a typical short request"}]}}})),
                h,
            )
        }
    };
    let mut headers = headers;
    if body.is_some() {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
    }
    Ok(Prepared {
        target,
        url: reqwest::Url::parse(&format!("{base}{path}"))?,
        body: body.map(|b| axum::body::Bytes::from(b.to_string())),
        headers,
    })
}

/// One request of `target`; an error unless it succeeded and its whole
/// answer arrived.
async fn send(client: &reqwest::Client, base: &str, prepared: &Prepared) -> anyhow::Result<()> {
    let response = match (prepared.target, &prepared.body) {
        (Target::RestSearchNodes, _) => rest_search_nodes(client, base, QUERY).await,
        (_, None) => {
            client
                .get(prepared.url.clone())
                .headers(prepared.headers.clone())
                .send()
                .await
        }
        (_, Some(body)) => {
            client
                .post(prepared.url.clone())
                .headers(prepared.headers.clone())
                .body(body.clone())
                .send()
                .await
        }
    };
    let ok = match response {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(anyhow!("request failed during the benchmark"))
    }
}

/// Rates and percentiles of requests sent over `measure`.
fn measured(mut latencies: Vec<Duration>, measure: Duration) -> Measured {
    latencies.sort();
    Measured {
        per_second: latencies.len() as f64 / measure.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

async fn load(
    base: &str,
    token: Option<&str>,
    target: Target,
    clients: usize,
) -> anyhow::Result<Measured> {
    load_for(base, token, target, clients, MEASURE).await
}

/// [`load`] measured for `measure` after the warm-up.
async fn load_for(
    base: &str,
    token: Option<&str>,
    target: Target,
    clients: usize,
    measure: Duration,
) -> anyhow::Result<Measured> {
    let prepared = prepare(base, target)?;
    let base = Arc::new(base.to_string());
    let token = token.map(str::to_string);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let base = base.clone();
        let token = token.clone();
        let prepared = prepared.clone();
        tasks.push(tokio::spawn(async move {
            let mut headers = reqwest::header::HeaderMap::new();
            if let Some(token) = &token {
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {token}").parse()?,
                );
            }
            let client = reqwest::Client::builder()
                .default_headers(headers)
                .build()?;
            let mut latencies = Vec::new();
            loop {
                let now = Instant::now();
                let elapsed = now - start;
                if elapsed > WARMUP + measure {
                    break;
                }
                send(&client, &base, &prepared).await?;
                if elapsed >= WARMUP {
                    latencies.push(now.elapsed());
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(measured(all, measure))
}

/// Where a run goes: the server, the token to send, the request.
type Side<'a> = (&'a str, Option<&'a str>, Target);

/// The `load` subcommand: prints the server's pid, then loads it.
async fn hold_load(server: &ServerProcess) -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let usage = "usage: caxton-bench load echo|health CLIENTS SECONDS";
    let target = match args.first().map(String::as_str) {
        Some("echo") => Target::Echo,
        Some("health") => Target::Health,
        _ => bail!("{usage}"),
    };
    let (Some(Ok(clients)), Some(Ok(seconds))) = (
        args.get(1).map(|a| a.parse::<usize>()),
        args.get(2).map(|a| a.parse::<u64>()),
    ) else {
        bail!("{usage}");
    };
    println!("server pid {}", server.child.id());
    let measured = load_for(
        &server.base,
        None,
        target,
        clients,
        Duration::from_secs(seconds),
    )
    .await?;
    println!(
        "{:.0} req/s, p50 {}, p99 {}",
        measured.per_second,
        ms(measured.p50),
        ms(measured.p99)
    );
    Ok(())
}

/// Runs `a` and `b` one after the other, three times each, and keeps each
/// side's median run: on two cores one run moves by ±10 %, more than most
/// of what is compared.
async fn alternated(
    a: Side<'_>,
    b: Side<'_>,
    clients: usize,
) -> anyhow::Result<(Measured, Measured)> {
    let (mut runs_a, mut runs_b) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        runs_a.push(load(a.0, a.1, a.2, clients).await?);
        runs_b.push(load(b.0, b.1, b.2, clients).await?);
    }
    Ok((median(runs_a), median(runs_b)))
}

/// The middle run by rate.
fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs.swap_remove(runs.len() / 2)
}

/// Two targets from one client, alternating request by request, so both
/// see the same machine: on a shared two-core VM the speed drifts from
/// one second to the next by more than the 10 % being compared. Each
/// side's rate is per second of its own share of the run.
async fn paired(base: &str, a: Target, b: Target) -> anyhow::Result<(Measured, Measured)> {
    let client = reqwest::Client::new();
    let (a, b) = (prepare(base, a)?, prepare(base, b)?);
    let start = Instant::now();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    loop {
        let elapsed = start.elapsed();
        if elapsed > WARMUP + 2 * MEASURE {
            break;
        }
        for (target, latencies) in [(&a, &mut first), (&b, &mut second)] {
            let now = Instant::now();
            send(&client, base, target).await?;
            if elapsed >= WARMUP {
                latencies.push(now.elapsed());
            }
        }
    }
    let share = |own: &[Duration], other: &[Duration]| {
        let own: Duration = own.iter().sum();
        let all = own + other.iter().sum::<Duration>();
        own.as_secs_f64() / all.as_secs_f64().max(f64::EPSILON)
    };
    let (share_a, share_b) = (share(&first, &second), share(&second, &first));
    let (mut a, mut b) = (measured(first, MEASURE), measured(second, MEASURE));
    // These ran for 2 × MEASURE between them, split.
    a.per_second /= 2.0 * share_a;
    b.per_second /= 2.0 * share_b;
    Ok((a, b))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn run() -> anyhow::Result<()> {
    let echo = example("echo")?;
    let misbehave = example("misbehave")?;
    let temp = tempfile::tempdir()?;
    // `caxton-bench interop`: only the OpenAI API, MCP and A2A rows;
    // `caxton-bench protocols`: only broadcast, contract net, send.
    if std::env::args().nth(1).as_deref() == Some("interop") {
        return interop(temp.path(), &echo).await;
    }
    if std::env::args().nth(1).as_deref() == Some("protocols") {
        return protocols(temp.path(), &echo).await;
    }
    // `caxton-bench cluster`: three nodes on a real nats-server.
    if std::env::args().nth(1).as_deref() == Some("cluster") {
        return cluster::run(temp.path()).await;
    }
    // `caxton-bench recording [--noise]`: a config agent with recording
    // on and off (or off and off: the host's noise).
    if std::env::args().nth(1).as_deref() == Some("recording") {
        let noise = std::env::args().nth(2).as_deref() == Some("--noise");
        return recording::run(temp.path(), noise).await;
    }
    // `caxton-bench text`: long real documents, ingest and search quality.
    if std::env::args().nth(1).as_deref() == Some("text") {
        return text::run(temp.path()).await;
    }
    let server = start_server(&temp.path().join("server"), None)?;
    let client = reqwest::Client::new();
    deploy(&client, None, &server.base, "echo", &echo, json!({})).await?;
    // `caxton-bench load echo|health CLIENTS SECONDS`: one row's load held
    // for as long as asked, so `perf record -p PID` can watch the server.
    if std::env::args().nth(1).as_deref() == Some("load") {
        return hold_load(&server).await;
    }
    deploy(
        &client,
        None,
        &server.base,
        "trapper",
        &misbehave,
        json!({}),
    )
    .await?;

    println!(
        "caxton-bench — {} cores, loopback HTTP, {}s per run after {}ms warm-up\n\
         (compared rows: the median of three alternated runs; interop rows: \
         requests alternated one by one)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        MEASURE.as_secs(),
        WARMUP.as_millis()
    );
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "round trip", "req/s", "p50", "p99"
    );
    for clients in [1usize, 16] {
        let (health, agent) = alternated(
            (&server.base, None, Target::Health),
            (&server.base, None, Target::Echo),
            clients,
        )
        .await?;
        println!(
            "{:<34} {:>12.0} {:>12} {:>12}",
            format!("GET /health, {clients} clients"),
            health.per_second,
            ms(health.p50),
            ms(health.p99)
        );
        println!(
            "{:<34} {:>12.0} {:>12} {:>12}",
            format!("message to echo, {clients} clients"),
            agent.per_second,
            ms(agent.p50),
            ms(agent.p99)
        );
        // Issue 27's targets: a message within 10 % of a health check with
        // one client, 20 % with sixteen.
        let target = if clients == 1 { 0.90 } else { 0.80 };
        println!(
            "{:<34} {:>12.2}   (target >= {target:.2})",
            format!("  ratio echo/health, {clients} clients"),
            agent.per_second / health.per_second
        );
    }

    // First message after a trap: the server makes a fresh instance.
    let mut after_trap = Vec::new();
    for _ in 0..50 {
        let url = format!("{}/api/v1/agents/trapper/message", server.base);
        let _ = client
            .post(&url)
            .json(&json!({"message": "trap"}))
            .send()
            .await?;
        let reply: Value = client
            .post(&url)
            .json(&json!({"message": "hi"}))
            .send()
            .await?
            .json()
            .await?;
        let executed = reply["timing"]["execution_ms"]
            .as_f64()
            .ok_or_else(|| anyhow!("no timing in reply: {reply}"))?;
        after_trap.push(Duration::from_secs_f64(executed / 1000.0));
    }
    after_trap.sort();
    println!();
    println!("{:<34} {:>12} {:>12}", "fresh instance", "p50", "p99");
    println!(
        "{:<34} {:>12} {:>12}   (target < 1 ms)",
        "first message after a trap",
        ms(percentile(&after_trap, 0.5)),
        ms(percentile(&after_trap, 0.99))
    );
    drop(server);

    interop(temp.path(), &echo).await?;
    protocols(temp.path(), &echo).await?;
    auth_cost(temp.path(), &echo).await?;
    config_agents(temp.path()).await?;
    in_process(&echo, &temp.path().join("inproc")).await
}

/// The OpenAI-compatible API and MCP next to their REST equivalents, one
/// client, on one server with 200 entities in memory.
async fn interop(root: &Path, echo: &Path) -> anyhow::Result<()> {
    let server = start_server(&root.join("interop"), None)?;
    let client = reqwest::Client::new();
    deploy(&client, None, &server.base, "echo", echo, json!({})).await?;
    let entities: Vec<Value> = (0..200)
        .map(|i| {
            json!({"name": format!("entity {i}"), "entity_type": "note",
                "observations": [format!("note {i} about distributed systems and consensus round {}", i % 7)]})
        })
        .collect();
    let response = client
        .post(format!("{}/api/v1/memory/entities", server.base))
        .json(&json!({"entities": entities}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("storing the benchmark entities: {}", response.text().await?);
    }
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "interop, 1 client", "req/s", "p50", "p99"
    );
    // Each interface next to its REST equivalent, request by request.
    // The ping row shows what the MCP transport itself adds to every call.
    const TARGET: &str = "   (target <= 1.10)";
    for (rest, other, ratio_label, target) in [
        (
            ("health (REST)", Target::Health),
            ("MCP `ping` (transport only)", Target::McpPing),
            "  p50 MCP ping / REST health",
            "   (no target: the transport alone)",
        ),
        (
            ("message to echo (REST)", Target::Echo),
            ("chat completion to echo (/v1)", Target::ChatEcho),
            "  p50 chat completion / REST",
            TARGET,
        ),
        (
            ("message to echo (REST)", Target::Echo),
            ("A2A SendMessage to echo", Target::A2aEcho),
            "  p50 A2A SendMessage / REST",
            TARGET,
        ),
        (
            ("memory search (REST)", Target::RestSearch),
            ("memory search (MCP `search`)", Target::McpSearch),
            "  p50 MCP search / REST",
            // MCP sends a tool's JSON twice, as text and as structured
            // content, which REST does not.
            TARGET,
        ),
        (
            ("search + nodes (REST, 2 requests)", Target::RestSearchNodes),
            ("MCP `search_nodes`", Target::McpSearchNodes),
            "  p50 MCP search_nodes / REST",
            TARGET,
        ),
    ] {
        let (rest_m, other_m) = paired(&server.base, rest.1, other.1).await?;
        for (label, m) in [(rest.0, &rest_m), (other.0, &other_m)] {
            println!(
                "{label:<34} {:>12.0} {:>12} {:>12}",
                m.per_second,
                ms(m.p50),
                ms(m.p99)
            );
        }
        println!(
            "{ratio_label:<34} {:>12.2}{target}",
            other_m.p50.as_secs_f64() / rest_m.p50.as_secs_f64()
        );
    }
    Ok(())
}

/// POSTs `body` and fails unless the answer is a success.
async fn post_ok(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let response = client.post(url).json(body).send().await?;
    let ok = response.status().is_success();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !ok {
        bail!("{url}: {answer}");
    }
    Ok(answer)
}

/// Broadcast to 10 and 100 echo agents, a contract net with 10 bidders,
/// and durable fire-and-forget throughput.
async fn protocols(root: &Path, echo: &Path) -> anyhow::Result<()> {
    let server = start_server(&root.join("protocols"), None)?;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "protocols, 1 client", "rounds/s", "p50", "p99"
    );
    let mut deployed = 0;
    for agents in [10usize, 100] {
        while deployed < agents {
            deploy(
                &client,
                None,
                &base,
                &format!("echo{deployed:03}"),
                echo,
                json!({}),
            )
            .await?;
            deployed += 1;
        }
        let rounds = if agents == 10 { 200 } else { 40 };
        let mut latencies = Vec::with_capacity(rounds);
        let started = Instant::now();
        for _ in 0..rounds {
            let sent = Instant::now();
            let gathered = post_ok(
                &client,
                &format!("{base}/api/v1/broadcast"),
                &json!({"capability": "echo", "content": "ping", "timeout_ms": 10000}),
            )
            .await?;
            if gathered["answered"].as_u64() != Some(agents as u64) {
                bail!("a broadcast to {agents} got {}", gathered["answered"]);
            }
            latencies.push(sent.elapsed());
        }
        let m = measured(latencies, started.elapsed());
        println!(
            "{:<34} {:>12.0} {:>12} {:>12}",
            format!("broadcast to {agents} echo agents"),
            m.per_second,
            ms(m.p50),
            ms(m.p99)
        );
    }
    let contractor = example("contractor")?;
    for i in 0..10 {
        let name = format!("bidder{i}");
        let body = json!({
            "name": name,
            "wasm_module": base64::engine::general_purpose::STANDARD.encode(std::fs::read(&contractor)?),
            "config": {"name": name, "bid": 10.0 + f64::from(i)},
        });
        post_ok(&client, &format!("{base}/api/v1/agents"), &body).await?;
    }
    let rounds = 100;
    let mut latencies = Vec::with_capacity(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        let sent = Instant::now();
        let outcome = post_ok(
            &client,
            &format!("{base}/api/v1/contract-net"),
            &json!({"capability": "quote", "task": "paint the fence", "timeout_ms": 10000}),
        )
        .await?;
        if outcome["winner"] != "bidder0" {
            bail!("the contract net awarded {}", outcome["winner"]);
        }
        latencies.push(sent.elapsed());
    }
    let m = measured(latencies, started.elapsed());
    println!(
        "{:<34} {:>12.0} {:>12} {:>12}",
        "contract net, 10 bidders",
        m.per_second,
        ms(m.p50),
        ms(m.p99)
    );
    println!(
        "  (a local agent-to-agent call in Golem's own benchmark: ~100 ms median; \
         one message to echo here is the `message to echo` row above)"
    );

    // Durable fire-and-forget: messages acknowledged (on disk) per second,
    // batches of 100 from 4 clients and single messages from 16; then how
    // fast the outbox drains (delivered to echo).
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "durable send", "msgs/s", "p50", "p99"
    );
    for (clients, batch, requests) in [(4usize, 100usize, 50usize), (16, 1, 300)] {
        let messages: Vec<Value> = (0..batch)
            .map(|_| json!({"receiver": "echo000", "message": "fire and forget"}))
            .collect();
        let body = if batch == 1 {
            messages[0].clone()
        } else {
            json!({ "messages": messages })
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, base, body) = (client.clone(), base.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                for _ in 0..requests {
                    let sent = Instant::now();
                    let response = client
                        .post(format!("{base}/api/v1/send"))
                        .json(&body)
                        .send()
                        .await?;
                    if response.status().as_u16() != 202 {
                        bail!("send: {}", response.text().await?);
                    }
                    latencies.push(sent.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await??);
        }
        let acknowledged = started.elapsed();
        let m = measured(latencies, acknowledged);
        let total = clients * batch * requests;
        println!(
            "{:<34} {:>12.0} {:>12} {:>12}   (target >= 5000)",
            format!("acknowledged, {clients}x{batch} per request"),
            m.per_second * batch as f64,
            ms(m.p50),
            ms(m.p99)
        );
        loop {
            let page: Value = client
                .get(format!("{base}/api/v1/dead-letters?limit=1"))
                .send()
                .await?
                .json()
                .await?;
            if page["waiting"] == 0 {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("the outbox did not drain: {page}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "{:<34} {:>12.0}",
            format!("  delivered, {total} messages"),
            total as f64 / started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `search_nodes` done by a REST client: the search, then the matches with
/// the relations among them.
async fn rest_search_nodes(
    client: &reqwest::Client,
    base: &str,
    query: &str,
) -> reqwest::Result<reqwest::Response> {
    let hits: Value = client
        .post(format!("{base}/api/v1/memory/search"))
        .json(&json!({"query": query, "limit": 20}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let names: Vec<Value> = hits["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .map(|h| h["entity"]["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    client
        .post(format!("{base}/api/v1/memory/nodes"))
        .json(&json!({"names": names}))
        .send()
        .await
}

/// What checking a bearer token costs a message: the same echo round trip
/// on a server that needs no token (loopback operator) and on one with
/// `auth.required`, measured alternately in one run (median of three).
async fn auth_cost(root: &Path, echo: &Path) -> anyhow::Result<()> {
    let open_server = start_server(&root.join("auth-off"), None)?;
    let config = root.join("auth-required.yaml");
    std::fs::write(&config, "auth:\n  required: true\n")?;
    let data = root.join("auth-on");
    let auth_server = start_server(&data, Some(&config))?;
    let token = std::fs::read_to_string(data.join("admin.token"))?;
    let token = token.trim();
    let client = reqwest::Client::new();
    deploy(&client, None, &open_server.base, "echo", echo, json!({})).await?;
    deploy(
        &client,
        Some(token),
        &auth_server.base,
        "echo",
        echo,
        json!({}),
    )
    .await?;
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "auth: message to echo", "req/s", "p50", "p99"
    );
    for clients in [1usize, 16] {
        let (off, on) = alternated(
            (&open_server.base, None, Target::Echo),
            (&auth_server.base, Some(token), Target::Echo),
            clients,
        )
        .await?;
        for (label, m) in [("no token", &off), ("bearer token", &on)] {
            println!(
                "{:<34} {:>12.0} {:>12} {:>12}",
                format!("{label}, {clients} clients"),
                m.per_second,
                ms(m.p50),
                ms(m.p99)
            );
        }
        println!(
            "{:<34} {:>12.3}   (target >= 0.95)",
            format!("  ratio token/no token, {clients}"),
            on.per_second / off.per_second
        );
    }
    Ok(())
}

/// A config agent as the benchmark writes it; `version` tells versions apart.
fn bench_agent(version: u32) -> String {
    format!(
        "---\nname: BenchAgent\nversion: \"{version}.0.0\"\ncapabilities: [bench]\n\
         tools: [json_processor]\nsystem_prompt: You answer briefly. Version {version}.\n---\n"
    )
}

/// Config agents with the scripted provider (answers at once), so the times
/// are Caxton's own: the interpreter's overhead per message (prompt
/// assembly, history, the llm import, the reply), with and without a tool
/// round, and how long a saved file takes to serve its new version.
async fn config_agents(root: &Path) -> anyhow::Result<()> {
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents)?;
    let file = agents.join("bench-agent.md");
    std::fs::write(&file, bench_agent(1))?;
    let script = root.join("script.yaml");
    std::fs::write(
        &script,
        "- when: \"use the tool\"\n  tool_calls: [{name: json_processor, arguments: {json: \"{\\\"a\\\": 1}\"}}]\n\
         - content: \"done\"\n",
    )?;
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\n",
            agents.display(),
            script.display()
        ),
    )?;
    let server = start_server(&root.join("config-server"), Some(&config))?;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/agents/bench-agent/message", server.base);

    println!();
    println!(
        "{:<34} {:>12} {:>12}",
        "config agent (scripted LLM)", "p50", "p99"
    );
    for (label, text) in [
        ("interpreter, no tool", "hello"),
        ("interpreter, one tool round", "use the tool"),
    ] {
        let mut executed = Vec::new();
        for i in 0..300 {
            let reply: Value = client
                .post(&url)
                .json(&json!({"message": text}))
                .send()
                .await?
                .json()
                .await?;
            if reply["reply"]["content"] != "done" {
                bail!("unexpected config agent reply: {reply}");
            }
            let ms = reply["timing"]["execution_ms"]
                .as_f64()
                .ok_or_else(|| anyhow!("no timing in reply: {reply}"))?;
            if i >= 20 {
                executed.push(Duration::from_secs_f64(ms / 1000.0));
            }
        }
        if text == "use the tool" {
            let logs: Value = client
                .get(format!(
                    "{}/api/v1/agents/bench-agent/logs?tail=5",
                    server.base
                ))
                .send()
                .await?
                .json()
                .await?;
            if !logs.to_string().contains("call json_processor") {
                bail!("the tool round did not call the tool: {logs}");
            }
        }
        executed.sort();
        println!(
            "{:<34} {:>12} {:>12}   (target p99 < 5 ms)",
            label,
            ms(percentile(&executed, 0.5)),
            ms(percentile(&executed, 0.99))
        );
    }

    // Save → the server reports the new version.
    let show = format!("{}/api/v1/agents/bench-agent", server.base);
    let mut reloads = Vec::new();
    for version in 2..=41u32 {
        let expected = format!("{version}.0.0");
        let started = Instant::now();
        std::fs::write(&file, bench_agent(version))?;
        loop {
            let shown: Value = client.get(&show).send().await?.json().await?;
            if shown["version"] == expected.as_str() {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("version {expected} not served after 10 s: {shown}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        reloads.push(started.elapsed());
        // Let the watcher settle so saves do not coalesce.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reloads.sort();
    println!(
        "{:<34} {:>12} {:>12}   (target p99 < 100 ms)",
        "file save -> new version serving",
        ms(percentile(&reloads, 0.5)),
        ms(percentile(&reloads, 0.99))
    );
    Ok(())
}

/// Cache load and instantiation, timed inside one process.
async fn in_process(echo: &Path, data_dir: &Path) -> anyhow::Result<()> {
    use caxton::agents::deploy::DeployRequest;
    use caxton::agents::{AgentManager, Registry};
    use caxton::runtime::limits::RequestedLimits;
    use caxton::runtime::settings::RuntimeConfig;
    use caxton::storage::Storage;

    std::fs::create_dir_all(data_dir)?;
    let storage = Arc::new(Storage::open(data_dir)?);
    let memory = caxton::memory::MemoryService::open(
        storage.clone(),
        caxton::memory::embedding::EmbedderState::unavailable("not needed by this benchmark"),
        caxton::memory::MemoryOptions::in_data_dir(data_dir),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let cache = caxton::runtime::component_cache(
        data_dir,
        &storage,
        &RuntimeConfig::default().max_limits,
        true,
    )?;
    let manager = AgentManager::new(
        RuntimeConfig::default(),
        storage,
        Arc::new(Registry::new()),
        memory,
        Arc::new(caxton::llm::LlmService::none()),
        Arc::new(caxton::tools::ToolRegistry::with_builtins(
            &Default::default(),
        )),
        cache,
    )?;
    manager
        .deploy(DeployRequest {
            name: "echo".into(),
            id: None,
            component: std::fs::read(echo)?,
            limits: RequestedLimits::default(),
            config: None,
            memory_grants: Vec::new(),
            llm: false,
            tools: Vec::new(),
        })
        .await
        .map_err(|e| anyhow!("{e}"))?;

    let mut loads = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        manager.program_for("echo").await?;
        loads.push(started.elapsed());
    }
    loads.sort();

    let (program, record) = manager.program_for("echo").await?;
    let context = manager.detached_context(&record);
    let mut instantiations = Vec::new();
    for _ in 0..1000 {
        let started = Instant::now();
        let instance = program
            .instantiate(context.clone(), record.limits, "{}")
            .await
            .map_err(|e| anyhow!("{e}"))?;
        instantiations.push(started.elapsed());
        drop(instance);
    }
    instantiations.sort();
    println!(
        "{:<34} {:>12} {:>12}",
        "load compiled component from cache",
        ms(percentile(&loads, 0.5)),
        ms(percentile(&loads, 0.99))
    );
    println!(
        "{:<34} {:>12} {:>12}",
        "instantiate + init (InstancePre)",
        ms(percentile(&instantiations, 0.5)),
        ms(percentile(&instantiations, 0.99))
    );
    Ok(())
}

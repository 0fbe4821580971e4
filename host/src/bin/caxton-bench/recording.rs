//! `caxton-bench recording`: what recording conversations costs a config
//! agent (issue 29's target: at most 5 %), measured as the same config
//! agent with one tool round per message on two servers, one recording
//! (the default for config agents) and one with `recordings.record: none`,
//! taking turns (20 rounds of 300 messages each). `--noise` runs two
//! servers without recording instead: what the same figures show when
//! nothing differs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::{ms, percentile, start_server};

const AGENT: &str = "---\nname: BenchAgent\nversion: \"1.0.0\"\ncapabilities: [bench]\ntools: [json_processor]\nsystem_prompt: You answer briefly.\n---\n";

/// One message with a tool round to the bench agent, its reply checked.
async fn use_the_tool(client: &reqwest::Client, base: &str, body: Value) -> anyhow::Result<()> {
    let reply: Value = client
        .post(format!("{base}/api/v1/agents/bench-agent/message"))
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    if reply["reply"]["content"] != "done" {
        bail!("unexpected reply: {reply}");
    }
    Ok(())
}

/// Latencies of `count` sequential messages, and the time they took.
async fn measure(base: &str, count: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let asked = Instant::now();
        use_the_tool(&client, base, json!({"message": "use the tool"})).await?;
        times.push(asked.elapsed());
    }
    Ok((times, started.elapsed()))
}

/// Messages per server per round, and rounds: the two servers take turns,
/// so a drift of the host (a busy neighbour, a warming cache) falls on
/// both alike rather than on whichever ran second. `CAXTON_BENCH_ROUNDS`
/// asks for more rounds on a noisy host.
const PER_ROUND: usize = 300;
const ROUNDS: usize = 20;
/// Pause after each server's turn, longer than the recorder's gather, so
/// the recording server's writer finishes its batch before the other
/// server is measured: its work is charged to its own turn, not the
/// other's.
const SETTLE: Duration = Duration::from_millis(50);

/// One server's turn in a round.
struct Turn {
    p50: Duration,
    p99: Duration,
    rate: f64,
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `on` over `off` minus one, in percent.
fn change(on: f64, off: f64) -> f64 {
    (on / off - 1.0) * 100.0
}

/// A 20-step conversation (ten messages, each a tool round: twenty model
/// calls) recorded, then replayed end to end over REST, ten times.
async fn replay_row(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let body = json!({"message": "use the tool", "conversation_id": "bench-replay"});
        use_the_tool(&client, base, body).await?;
    }
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let outcome: Value = client
            .post(format!("{base}/api/v1/conversations/bench-replay/replay"))
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        times.push(started.elapsed());
        if outcome["identical"] != true || outcome["model_calls_from_recording"] != 20 {
            bail!("the replay did not reproduce the run: {outcome}");
        }
    }
    times.sort();
    println!(
        "{:<40} {:>10} {:>10}   (target < 50 ms, no network)",
        "replay of a 20-step conversation",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    Ok(())
}

/// `noise`: both servers without recording (`caxton-bench recording
/// --noise`), so the "costs" printed are this host's own noise: the floor
/// under which a difference means nothing.
pub async fn run(root: &Path, noise: bool) -> anyhow::Result<()> {
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents)?;
    std::fs::write(agents.join("bench-agent.md"), AGENT)?;
    let script = root.join("script.yaml");
    std::fs::write(
        &script,
        "- when: \"use the tool\"\n  tool_calls: [{name: json_processor, arguments: {json: \"{\\\"a\\\": 1}\"}}]\n- content: \"done\"\n",
    )?;
    println!(
        "{:<40} {:>10} {:>10} {:>12}",
        "config agent, one tool round", "p50", "p99", "messages/s"
    );
    let mut servers = Vec::new();
    let modes = if noise {
        ["none", "none"]
    } else {
        ["none", "config"]
    };
    for (i, record) in modes.into_iter().enumerate() {
        let config = root.join(format!("{i}-{record}.yaml"));
        std::fs::write(
            &config,
            format!(
                "agents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\nrecordings:\n  record: {record}\n",
                agents.display(),
                script.display()
            ),
        )?;
        let server = start_server(&root.join(format!("server-{i}-{record}")), Some(&config))?;
        measure(&server.base, 30).await?; // warm-up
        servers.push(server);
    }
    let rounds = std::env::var("CAXTON_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r: &usize| r > 0)
        .unwrap_or(ROUNDS);
    let mut samples = [Vec::new(), Vec::new()];
    let mut elapsed = [Duration::ZERO; 2];
    // Each round's figures with recording over without it: paired in
    // time, so their median is what drift moves least. The servers take
    // the first turn in turn.
    let (mut p50s, mut p99s, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut turns: [Option<Turn>; 2] = [None, None];
        for step in 0..2 {
            let i = (round + step) % 2;
            let (mut times, took) = measure(&servers[i].base, PER_ROUND).await?;
            tokio::time::sleep(SETTLE).await;
            samples[i].extend_from_slice(&times);
            elapsed[i] += took;
            times.sort();
            turns[i] = Some(Turn {
                p50: percentile(&times, 0.5),
                p99: percentile(&times, 0.99),
                rate: PER_ROUND as f64 / took.as_secs_f64(),
            });
        }
        if let [Some(off), Some(on)] = turns {
            p50s.push(change(on.p50.as_secs_f64(), off.p50.as_secs_f64()));
            p99s.push(change(on.p99.as_secs_f64(), off.p99.as_secs_f64()));
            rates.push(change(on.rate, off.rate));
        }
    }
    let mut rows = Vec::new();
    let labels = if noise {
        ["recording off (A)", "recording off (B)"]
    } else {
        ["recording off", "recording on"]
    };
    for (i, label) in labels.into_iter().enumerate() {
        samples[i].sort();
        let (p50, p99) = (percentile(&samples[i], 0.5), percentile(&samples[i], 0.99));
        let rate = samples[i].len() as f64 / elapsed[i].as_secs_f64();
        println!(
            "{:<40} {:>10} {:>10} {:>12.0}",
            label,
            ms(p50),
            ms(p99),
            rate
        );
        rows.push((p99, rate));
    }
    if !noise {
        replay_row(&servers[1].base).await?;
    }
    let (off, on) = (rows[0], rows[1]);
    println!(
        "recording costs, all samples pooled: {:+.1} % at p99, {:+.1} % in throughput",
        change(on.0.as_secs_f64(), off.0.as_secs_f64()),
        change(on.1, off.1)
    );
    println!(
        "median of {rounds} paired rounds: {:+.1} % at p50, {:+.1} % at p99, {:+.1} % in throughput (target: within 5 %)",
        median(p50s),
        median(p99s),
        median(rates)
    );
    Ok(())
}

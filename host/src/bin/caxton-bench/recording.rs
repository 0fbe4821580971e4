//! `caxton-bench recording`: what recording conversations costs a config
//! agent (issue 29's target: at most 5 %), measured as the same config
//! agent with one tool round per message on two servers, one recording
//! (the default for config agents) and one with `recordings.record: none`,
//! taking turns (10 rounds of 200 messages each).

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
/// both alike rather than on whichever ran second.
const PER_ROUND: usize = 200;
const ROUNDS: usize = 10;

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

pub async fn run(root: &Path) -> anyhow::Result<()> {
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
    for record in ["none", "config"] {
        let config = root.join(format!("{record}.yaml"));
        std::fs::write(
            &config,
            format!(
                "agents:\n  dir: {}\nllm:\n  scripted:\n    script: {}\nrecordings:\n  record: {record}\n",
                agents.display(),
                script.display()
            ),
        )?;
        let server = start_server(&root.join(format!("server-{record}")), Some(&config))?;
        measure(&server.base, 30).await?; // warm-up
        servers.push(server);
    }
    let mut samples = [Vec::new(), Vec::new()];
    let mut elapsed = [Duration::ZERO; 2];
    // Each round's throughput with recording over without it: paired in
    // time, so their median is what drift moves least.
    let mut ratios = Vec::new();
    for _ in 0..ROUNDS {
        let mut rates = [0.0; 2];
        for (i, server) in servers.iter().enumerate() {
            let (times, took) = measure(&server.base, PER_ROUND).await?;
            samples[i].extend(times);
            elapsed[i] += took;
            rates[i] = PER_ROUND as f64 / took.as_secs_f64();
        }
        ratios.push(rates[1] / rates[0]);
    }
    ratios.sort_by(f64::total_cmp);
    let paired = ratios[ratios.len() / 2];
    let mut rows = Vec::new();
    for (i, label) in ["recording off", "recording on"].into_iter().enumerate() {
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
    replay_row(&servers[1].base).await?;
    let (off, on) = (rows[0], rows[1]);
    println!(
        "recording costs {:+.1} % at p99 and {:+.1} % in throughput; median of {ROUNDS} paired rounds {:+.1} % (target: within 5 %)",
        (on.0.as_secs_f64() / off.0.as_secs_f64() - 1.0) * 100.0,
        (on.1 / off.1 - 1.0) * 100.0,
        (paired - 1.0) * 100.0
    );
    Ok(())
}

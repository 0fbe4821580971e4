//! `caxton-bench text`: long real documents through the REST API.
//!
//! Stores one entity per manual page (its text, ~1,500 characters, as the
//! observation) 50 per request, then asks each page's one-line summary and
//! looks for the page among the answers:
//! - ingest: entities acknowledged per second, and how long until every
//!   stored text is searchable by meaning (the embedding backlog at zero);
//! - one more request of 50 into the settled store, many times: from the
//!   acknowledgement to searchable by meaning, p50 / p99;
//! - search quality: recall@1, recall@10 and MRR@10 of the hybrid search.
//!
//! `CAXTON_BENCH_TEXT_DIR=DIR` keeps the server's data there and, when it
//! already holds the pages, skips the ingest (for tuning search alone).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::{man_pages, ms, percentile, start_server};

/// Pairs in the quality set.
const PAIRS: usize = 1_700;
/// Entities per request.
const BATCH: usize = 50;
/// Timed fresh batches after the store settled.
const FRESH_BATCHES: usize = 10;

pub async fn run(root: &Path) -> anyhow::Result<()> {
    let pairs = man_pages::pairs(PAIRS)?;
    let kept = std::env::var_os("CAXTON_BENCH_TEXT_DIR").map(std::path::PathBuf::from);
    let data = kept.clone().unwrap_or_else(|| root.join("text"));
    let server = start_server(&data, None)?;
    let client = reqwest::Client::new();
    let base = server.base.as_str();
    println!(
        "caxton-bench text — {} manual pages (query: the NAME summary; document: DESCRIPTION on, {}–{} chars), {BATCH} per request",
        pairs.len(),
        pairs.iter().map(|p| p.document.len()).min().unwrap_or(0),
        pairs.iter().map(|p| p.document.len()).max().unwrap_or(0),
    );

    let stored = entity_count(&client, base).await?;
    if kept.is_some() && stored >= pairs.len() as u64 {
        println!(
            "  ingest skipped: {stored} entities already in {}",
            data.display()
        );
    } else {
        let started = Instant::now();
        for chunk in pairs.chunks(BATCH) {
            store(
                &client,
                base,
                chunk.iter().map(|p| (p.name.as_str(), p.document.as_str())),
            )
            .await?;
        }
        let acknowledged = started.elapsed();
        let settled = wait_for_backlog(&client, base).await?;
        println!(
            "  ingest: {:.0} entities/s acknowledged ({:.1} s); all searchable by meaning after {:.1} s ({:.0} entities/s)",
            pairs.len() as f64 / acknowledged.as_secs_f64(),
            acknowledged.as_secs_f64(),
            settled.as_secs_f64() + acknowledged.as_secs_f64(),
            pairs.len() as f64 / (settled + acknowledged).as_secs_f64(),
        );
        let mut delays = Vec::new();
        for round in 0..FRESH_BATCHES {
            let fresh = pairs
                .iter()
                .skip(round * BATCH)
                .take(BATCH)
                .map(|p| (format!("fresh {round} {}", p.name), p.document.as_str()));
            let fresh: Vec<(String, &str)> = fresh.collect();
            store(&client, base, fresh.iter().map(|(n, d)| (n.as_str(), *d))).await?;
            delays.push(wait_for_backlog(&client, base).await?);
        }
        delays.sort();
        println!(
            "  a fresh request of {BATCH} into the settled store: searchable by meaning p50 {} / p99 {} after the acknowledgement (target p99 <= 2 s)",
            ms(percentile(&delays, 0.5)),
            ms(percentile(&delays, 0.99)),
        );
    }

    let mut first = 0;
    let mut top10 = 0;
    let mut reciprocal = 0.0;
    let mut latencies = Vec::with_capacity(pairs.len());
    for pair in &pairs {
        let started = Instant::now();
        let answer: Value = client
            .post(format!("{base}/api/v1/memory/search"))
            .json(&json!({"query": pair.query, "limit": 10}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        latencies.push(started.elapsed());
        let names = answer["results"].as_array().cloned().unwrap_or_default();
        let rank = names
            .iter()
            .position(|hit| hit["entity"]["name"] == pair.name.as_str());
        if let Some(rank) = rank {
            first += usize::from(rank == 0);
            top10 += 1;
            reciprocal += 1.0 / (rank + 1) as f64;
        }
    }
    latencies.sort();
    let n = pairs.len() as f64;
    println!(
        "  search quality: recall@1 {:.3}, recall@10 {:.3}, MRR@10 {:.3} (targets >= 0.65 / >= 0.93); search p50 {} / p99 {}",
        first as f64 / n,
        top10 as f64 / n,
        reciprocal / n,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );
    Ok(())
}

async fn store<'a>(
    client: &reqwest::Client,
    base: &str,
    pages: impl Iterator<Item = (&'a str, &'a str)>,
) -> anyhow::Result<()> {
    let entities: Vec<Value> = pages
        .map(|(name, text)| json!({"name": name, "entity_type": "manual page", "observations": [text]}))
        .collect();
    let response = client
        .post(format!("{base}/api/v1/memory/entities"))
        .json(&json!({"entities": entities}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("storing manual pages: {}", response.text().await?);
    }
    Ok(())
}

async fn entity_count(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let stats: Value = client
        .get(format!("{base}/api/v1/memory/stats"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(stats["counts"]["entities"].as_u64().unwrap_or(0))
}

/// Waits until `GET /api/v1/health/memory` shows no text waiting for its
/// embedding; answers how long that took.
async fn wait_for_backlog(client: &reqwest::Client, base: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let health: Value = client
            .get(format!("{base}/api/v1/health/memory"))
            .send()
            .await?
            .json()
            .await?;
        if health["embedding_backlog"].as_u64().unwrap_or(0) == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the embedding backlog did not drain in 10 minutes: {health}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

//! Latency of embedding one short query at a time (what a search pays):
//! `cargo run -p caxton-models --example query_latency [ROUNDS]`.

use std::time::{Duration, Instant};

use caxton_models::{Embedder, default_cache_dir, pull};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first statement of the process; no other thread exists yet.
    unsafe { caxton_models::fix_thread_count() };
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = pull(&default_cache_dir(), &mut |_| {})?;
    let embedder = Embedder::load(&dir)?;
    let queries: Vec<String> = (0..rounds)
        .map(|i| {
            format!(
                "Which {} failed over {} ({i})",
                [
                    "the payments service",
                    "our billing team",
                    "the search cluster"
                ][i % 3],
                ["twice last week", "during the night", "after the deploy"][(i / 3) % 3]
            )
        })
        .collect();
    embedder.embed_one("warm up")?;
    let mut samples: Vec<Duration> = Vec::with_capacity(rounds);
    for q in &queries {
        let started = Instant::now();
        embedder.embed_one(q)?;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "query embedding ({rounds} queries): p50 {:.2?}  p99 {:.2?}",
        at(0.5),
        at(0.99)
    );
    Ok(())
}

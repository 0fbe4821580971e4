//! Measures pull time, load time and embedding throughput on this machine.
//!
//! `cargo run -p caxton-models --example throughput` (set CAXTON_MODEL_CACHE to
//! an empty directory to time a fresh download).

use std::time::Instant;

use caxton_models::{Embedder, PullSource, default_cache_dir, model_status, pull};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first statement of the process; no other thread exists yet.
    unsafe { caxton_models::fix_thread_count() };
    let cache = default_cache_dir();
    println!("cache: {}", cache.display());
    println!("status before pull: {}", model_status(&cache).detail);

    let started = Instant::now();
    let mut last: Option<(PullSource, u64)> = None;
    let dir = pull(&cache, &mut |p| {
        // Print each source's progress in 10% steps.
        let step = p.total.map_or(0, |t| p.downloaded * 10 / t.max(1));
        if last.is_none_or(|(source, s)| source != p.source || step > s) {
            println!("  {}: {} / {:?} bytes", p.source, p.downloaded, p.total);
            last = Some((p.source, step));
        }
    })?;
    println!("pull: {:.2?}", started.elapsed());

    let started = Instant::now();
    let embedder = Embedder::load(&dir)?;
    println!("load: {:.2?}", started.elapsed());

    let owned: Vec<String> = (0..64)
        .map(|i| {
            format!(
                "Agent {i} stored a note about the {} deployment and the {} incident review.",
                ["payments", "search", "billing", "mail"][i % 4],
                ["Monday", "quarterly", "database", "network", "late"][i % 5]
            )
        })
        .collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    println!("resident memory after load: {:.1} MB", resident_mb());

    embedder.embed(&texts[..4])?; // warm-up
    let started = Instant::now();
    for text in &texts {
        embedder.embed_one(text)?;
    }
    let single = started.elapsed();
    println!(
        "single: {:.1} ms/sentence ({:.0} sentences/s)",
        single.as_secs_f64() * 1000.0 / texts.len() as f64,
        texts.len() as f64 / single.as_secs_f64()
    );

    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        embedder.embed(&texts)?;
    }
    let batched = started.elapsed();
    println!(
        "batched (64 per call): {:.0} ms/batch ({:.0} sentences/s)",
        batched.as_secs_f64() * 1000.0 / rounds as f64,
        (rounds * texts.len()) as f64 / batched.as_secs_f64()
    );
    println!("resident memory: {:.1} MB", resident_mb());
    Ok(())
}

/// This process's resident set (Linux), for seeing what embedding keeps.
fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / 1e6)
}

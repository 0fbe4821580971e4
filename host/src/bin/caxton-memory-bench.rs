//! `caxton-memory-bench`: embedded memory at 10K, 100K (and 1M) entities.
//!
//! Run with `scripts/bench-memory [SIZES]` (e.g. `10000,100000,1000000`).
//! In-process, against `MemoryService` with the real all-MiniLM-L6-v2:
//!
//! - embedding throughput, one sentence at a time and in batches of 64;
//! - ingestion with real embeddings (a 1,000-entity sample: the model is
//!   the bottleneck, so a larger sample only takes longer);
//! - at each size: ingestion of the corpus and ~10 relations per entity,
//!   hybrid search end to end (query embedded by the real model, every
//!   query distinct so the query cache never helps), the vector index
//!   alone, recall@10 of the HNSW graph against an exact scan, depth-3
//!   traversal, resident memory, bytes on disk per entity, restart time
//!   (snapshot load) and full index rebuild time.
//! - `temporal [N]` instead (`scripts/bench-memory temporal`): facts in
//!   time at N entities (default 100K) with 10 % of them updated 5 times,
//!   against a store that only ever held the final facts: search p50/p99,
//!   agreement of the two stores' top 10, HNSW recall, `as_of` search, and
//!   disk per retired fact.
//!
//! Embedding 1M real texts takes hours on 2 cores, so the corpus texts are
//! drawn from 2,000 distinct base sentences embedded once by the real model;
//! each entity's vectors are its base sentence's vector plus small
//! deterministic noise. That keeps the clustered shape of real embeddings
//! (uniform random vectors would be a pathological case for HNSW) while the
//! scale runs measure storage and index, not the model.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use caxton::memory::embedding::{EmbedderState, TextEmbedder};
use caxton::memory::model::{Direction, EntityInput, Relation, ScopeKey, TraverseOptions};
use caxton::memory::{MemoryOptions, MemoryService, resident_memory_bytes};
use caxton::storage::Storage;

const BASES: usize = 2000;
/// Samples per latency figure: p99 of 1,000 is the tenth slowest, steady
/// from run to run where p99 of 200 (the second slowest) was not.
const QUERIES: usize = 1000;
const INGEST_BATCH: usize = 500;
const RELATIONS_PER_ENTITY: usize = 5; // out-degree 5 → ~10 relations touch each entity

const SUBJECTS: [&str; 20] = [
    "The payments service",
    "Our billing team",
    "The search cluster",
    "The mobile app",
    "A customer in Berlin",
    "The data warehouse",
    "The on-call engineer",
    "The marketing site",
    "The checkout flow",
    "The authentication gateway",
    "The recommendation model",
    "The support desk",
    "The nightly backup job",
    "The London office",
    "The inventory system",
    "The fraud detector",
    "The email pipeline",
    "The analytics dashboard",
    "The release manager",
    "The Kubernetes cluster",
];
const PREDICATES: [&str; 20] = [
    "failed to process refunds",
    "reported slow database queries",
    "ran out of disk space",
    "shipped a new feature",
    "asked for a discount on their invoice",
    "migrated to a new storage format",
    "was paged about high latency",
    "got a redesign of its landing page",
    "dropped orders during peak traffic",
    "rejected valid login attempts",
    "recommended irrelevant products",
    "received complaints about response times",
    "skipped a backup because of a lock",
    "moved to a bigger building",
    "counted the warehouse stock twice",
    "flagged legitimate card payments",
    "delivered newsletters twice",
    "showed wrong revenue numbers",
    "postponed the quarterly release",
    "evicted pods under memory pressure",
];
const WHEN: [&str; 5] = [
    "last Monday",
    "during the holiday sale",
    "after the upgrade",
    "every night",
    "this quarter",
];
const TYPES: [&str; 8] = [
    "incident", "service", "person", "project", "document", "customer", "team", "system",
];

fn base_sentence(i: usize) -> String {
    let s = SUBJECTS[i % 20];
    let p = PREDICATES[(i / 20) % 20];
    let w = WHEN[(i / 400) % 5];
    format!("{s} {p} {w}")
}

/// A paraphrase-style question about base sentence `i`, different from
/// every stored text (so it exercises meaning, not keywords).
fn question(i: usize, n: usize) -> String {
    let asks = [
        "Which",
        "Tell me what",
        "Who knows why",
        "Find the note where",
    ];
    format!(
        "{} {} {} ({n})",
        asks[n % asks.len()],
        SUBJECTS[i % 20].to_lowercase(),
        PREDICATES[(i / 20) % 20]
    )
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

fn entity_name(i: usize) -> String {
    format!("entity-{i:07}")
}

fn base_of(i: usize) -> usize {
    (mix(i as u64) % BASES as u64) as usize
}

/// Real model for anything it has not seen (queries); for corpus texts
/// (which name their entity number) the base sentence's real vector plus
/// deterministic noise.
struct CorpusEmbedder {
    real: Arc<dyn TextEmbedder>,
    bases: Vec<Vec<f32>>,
}

impl CorpusEmbedder {
    fn entity_number(text: &str) -> Option<usize> {
        let at = text.find("entity-")?;
        text[at + 7..at + 14].parse().ok()
    }

    fn synthetic(&self, entity: usize, salt: u64) -> Vec<f32> {
        let base = &self.bases[base_of(entity)];
        let mut seed = mix(entity as u64 ^ (salt << 40));
        let mut v: Vec<f32> = base
            .iter()
            .map(|x| {
                seed = mix(seed);
                let noise = (seed % 2001) as f32 / 1000.0 - 1.0; // [-1, 1]
                x + noise * 0.02
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

impl TextEmbedder for CorpusEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = vec![Vec::new(); texts.len()];
        let mut unknown = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match Self::entity_number(text) {
                Some(n) => out[i] = self.synthetic(n, text.len() as u64),
                None => unknown.push(i),
            }
        }
        if !unknown.is_empty() {
            let real: Vec<&str> = unknown.iter().map(|&i| texts[i]).collect();
            for (i, v) in unknown.into_iter().zip(self.real.embed(&real)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn name(&self) -> &str {
        "all-MiniLM-L6-v2 (corpus vectors precomputed)"
    }

    fn memory_bytes(&self) -> u64 {
        self.real.memory_bytes()
    }
}

fn entity(i: usize) -> EntityInput {
    EntityInput {
        name: entity_name(i),
        entity_type: TYPES[i % TYPES.len()].to_string(),
        observations: vec![format!("{} (entity-{i:07})", base_sentence(base_of(i)))],
        metadata: None,
        valid_from: None,
        valid_to: None,
    }
}

fn relations(i: usize, n: usize) -> Vec<Relation> {
    (0..RELATIONS_PER_ENTITY)
        .map(|k| {
            let to = (mix((i * RELATIONS_PER_ENTITY + k) as u64) % n as u64) as usize;
            Relation {
                from: entity_name(i),
                to: entity_name(if to == i { (to + 1) % n } else { to }),
                relation_type: ["depends_on", "mentions", "owns", "related_to", "caused"][k]
                    .to_string(),
                strength: 0.5 + (k as f32) / 10.0,
                confidence: 1.0,
                valid_from: None,
                valid_to: None,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn p50_p99(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:.2} ms  p99 {:.2} ms",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    )
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            total += if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

/// Where the bytes on disk go, per entity: each memory table (stored
/// bytes, plus its B-tree pages and fragmentation), the file's free pages,
/// and the vector index snapshot beside the database.
fn print_disk_breakdown(storage: &Storage, dir: &Path, entities: usize) -> anyhow::Result<()> {
    let analysis = storage.analyze().map_err(|e| anyhow!("{e}"))?;
    let per = |bytes: u64| bytes as f64 / entities as f64;
    let mut tables = analysis.tables;
    tables
        .sort_by_key(|t| std::cmp::Reverse(t.stored_bytes + t.metadata_bytes + t.fragmented_bytes));
    let mut line = String::from("  on disk per entity:");
    for t in tables.iter().filter(|t| t.stored_bytes > 0) {
        let total = t.stored_bytes + t.metadata_bytes + t.fragmented_bytes;
        line.push_str(&format!(
            " {} {:.0} B ({:.0} stored);",
            t.name,
            per(total),
            per(t.stored_bytes)
        ));
    }
    let index = dir_bytes(&MemoryOptions::in_data_dir(dir).index_dir);
    line.push_str(&format!(
        " free pages {:.0} B; vector index snapshot {:.0} B",
        per(analysis.free_bytes),
        per(index)
    ));
    println!("{line}");
    Ok(())
}

fn open(
    dir: &Path,
    embedder: Arc<dyn TextEmbedder>,
) -> anyhow::Result<(Arc<Storage>, Arc<MemoryService>)> {
    // CAXTON_BENCH_CACHE_MB plays `memory.database_cache_mb`.
    let cache_mb = std::env::var("CAXTON_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(caxton::storage::DEFAULT_CACHE_MB);
    let storage = Arc::new(Storage::open_with_cache(dir, cache_mb)?);
    let memory = MemoryService::open(
        storage.clone(),
        EmbedderState::loaded(embedder),
        MemoryOptions::in_data_dir(dir),
    )
    .map_err(|e| anyhow!("{e}"))?;
    Ok((storage, memory))
}

fn main() -> anyhow::Result<()> {
    // SAFETY: first statement of the process; no other thread exists yet.
    unsafe { caxton_models::fix_thread_count() };
    // `temporal [N]`: memory with history (issue 30) instead of the sizes.
    let temporal = match std::env::args().nth(1).as_deref() {
        Some("temporal") => Some(match std::env::args().nth(2) {
            Some(n) => n.parse().context("temporal takes an entity count")?,
            None => 100_000,
        }),
        _ => None,
    };
    let sizes: Vec<usize> = match std::env::args().nth(1).filter(|_| temporal.is_none()) {
        Some(list) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .context("sizes are numbers, e.g. 10000,100000")
            })
            .collect::<anyhow::Result<_>>()?,
        None => vec![10_000, 100_000],
    };
    let cache = caxton_models::default_cache_dir();
    let model_dir =
        caxton_models::pull(&cache, &mut |_| {}).context("pulling the embedding model")?;
    let model = caxton_models::Embedder::load(&model_dir)?;
    let real: Arc<dyn TextEmbedder> = Arc::new(RealModel(model));
    println!(
        "caxton memory benchmark ({} cores, {} matrix kernels)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        caxton_models::cpu::matrix_kernels()
    );

    // Embedding throughput.
    let sentences: Vec<String> = (0..64).map(|i| base_sentence(i * 31 % BASES)).collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    real.embed(&refs[..8]).map_err(|e| anyhow!(e))?;
    let started = Instant::now();
    for s in &refs {
        real.embed(std::slice::from_ref(s))
            .map_err(|e| anyhow!(e))?;
    }
    let single = refs.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..4 {
        real.embed(&refs).map_err(|e| anyhow!(e))?;
    }
    let batched = (4 * refs.len()) as f64 / started.elapsed().as_secs_f64();
    println!("embedding: single {single:.0} sentences/s, batched(64) {batched:.0} sentences/s");

    // Ingestion with real embeddings.
    {
        let tmp = tempfile::tempdir()?;
        let (_storage, memory) = open(tmp.path(), real.clone())?;
        let sample = 1000;
        let started = Instant::now();
        for chunk in (0..sample).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<EntityInput> = chunk
                .iter()
                .map(|&i| EntityInput {
                    name: format!("real-{i}"),
                    entity_type: TYPES[i % 8].into(),
                    observations: vec![format!("{} (note {i})", base_sentence(base_of(i)))],
                    metadata: None,
                    valid_from: None,
                    valid_to: None,
                })
                .collect();
            memory
                .create_entities(&ScopeKey::global(), &batch)
                .map_err(|e| anyhow!("{e}"))?;
        }
        let acknowledged = sample as f64 / started.elapsed().as_secs_f64();
        // Batches this large are embedded in the background: wait until
        // every text is searchable by meaning.
        wait_for_backlog(&memory);
        let embedded = sample as f64 / started.elapsed().as_secs_f64();
        println!(
            "ingest with real embeddings: {acknowledged:.0} entities/s acknowledged, \
             {embedded:.0} entities/s embedded (2 texts each; batches of 100)"
        );
    }

    // The base sentences, embedded once for the corpus.
    let started = Instant::now();
    let texts: Vec<String> = (0..BASES).map(base_sentence).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bases = real.embed(&refs).map_err(|e| anyhow!(e))?;
    println!(
        "embedded {BASES} base sentences in {:.1} s; resident memory now {:.1} MB (model loaded and used)",
        started.elapsed().as_secs_f64(),
        resident_memory_bytes().unwrap_or(0) as f64 / 1e6
    );
    let corpus: Arc<dyn TextEmbedder> = Arc::new(CorpusEmbedder {
        real: real.clone(),
        bases,
    });

    if let Some(n) = temporal {
        return run_temporal(n, &corpus);
    }
    for n in sizes {
        run_size(n, &corpus, &real)?;
    }
    Ok(())
}

struct RealModel(caxton_models::Embedder);

impl TextEmbedder for RealModel {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.0.embed(texts).map_err(|e| e.to_string())
    }
    fn name(&self) -> &str {
        "all-MiniLM-L6-v2"
    }
    fn memory_bytes(&self) -> u64 {
        0
    }
}

/// Returns once every stored text has its vector in the index.
fn wait_for_backlog(memory: &MemoryService) {
    while memory.health().embedding_backlog > 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_size(
    n: usize,
    corpus: &Arc<dyn TextEmbedder>,
    real: &Arc<dyn TextEmbedder>,
) -> anyhow::Result<()> {
    println!("\n== {n} entities ==");
    let tmp = tempfile::tempdir()?;
    let scope = ScopeKey::global();
    let (storage, memory) = open(tmp.path(), corpus.clone())?;
    let err = |e: caxton::memory::model::MemoryError| anyhow!("{e}");

    let started = Instant::now();
    for start in (0..n).step_by(INGEST_BATCH) {
        let batch: Vec<EntityInput> = (start..(start + INGEST_BATCH).min(n)).map(entity).collect();
        memory.create_entities(&scope, &batch).map_err(err)?;
    }
    let acknowledged = started.elapsed().as_secs_f64();
    // Batches this large are indexed by the background embedder: wait for
    // it, so what follows measures a settled store.
    wait_for_backlog(&memory);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingest entities: {:.0} entities/s acknowledged, {:.0} entities/s indexed ({secs:.1} s; corpus vectors precomputed)",
        n as f64 / acknowledged,
        n as f64 / secs
    );
    let started = Instant::now();
    let per_batch = (INGEST_BATCH / RELATIONS_PER_ENTITY).max(1);
    for start in (0..n).step_by(per_batch) {
        let batch: Vec<Relation> = (start..(start + per_batch).min(n))
            .flat_map(|i| relations(i, n))
            .collect();
        memory.create_relations(&scope, &batch).map_err(err)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingest relations: {:.0} relations/s ({} relations, {secs:.1} s)",
        (n * RELATIONS_PER_ENTITY) as f64 / secs,
        n * RELATIONS_PER_ENTITY
    );

    // Queries: distinct paraphrases, embedded by the real model.
    let questions: Vec<String> = (0..QUERIES)
        .map(|q| question(mix(q as u64 + 7) as usize % BASES, q))
        .collect();
    let mut e2e = Vec::new();
    for q in &questions {
        let started = Instant::now();
        let hits = memory
            .search(std::slice::from_ref(&scope), q, 10)
            .map_err(err)?;
        e2e.push(started.elapsed());
        if hits.is_empty() {
            return Err(anyhow!("search for `{q}` found nothing"));
        }
    }
    println!(
        "search end-to-end (query embedding + hybrid, top 10): {}",
        p50_p99(e2e)
    );

    let refs: Vec<&str> = questions.iter().map(String::as_str).collect();
    let vectors = real.embed(&refs).map_err(|e| anyhow!(e))?;
    let mut index_only = Vec::new();
    let mut overlap = 0usize;
    let mut wanted = 0usize;
    for v in &vectors {
        let started = Instant::now();
        let ann = memory
            .vector_search(v, std::slice::from_ref(&scope), 10, false)
            .map_err(err)?;
        index_only.push(started.elapsed());
        let exact = memory
            .vector_search(v, std::slice::from_ref(&scope), 10, true)
            .map_err(err)?;
        let truth: HashSet<u64> = exact.iter().map(|h| h.0).collect();
        overlap += ann.iter().filter(|h| truth.contains(&h.0)).count();
        wanted += truth.len();
    }
    println!("search index only (HNSW, top 10): {}", p50_p99(index_only));
    println!(
        "recall@10 (HNSW vs exact): {:.3}",
        overlap as f64 / wanted.max(1) as f64
    );

    for direction in [Direction::Outgoing, Direction::Both] {
        let options = TraverseOptions {
            max_depth: 3,
            relation_types: Vec::new(),
            direction,
            min_strength: 0.0,
        };
        let mut samples = Vec::new();
        let mut visited = 0usize;
        for q in 0..QUERIES {
            let start = entity_name(mix(q as u64 + 99) as usize % n);
            let started = Instant::now();
            let t = memory.traverse(&scope, &start, &options).map_err(err)?;
            samples.push(started.elapsed());
            visited += t.nodes.len();
        }
        // The first traversals after ingest find few of their pages in
        // redb's cache; a running server is past that. Both are shown.
        let cold = p50_p99(samples[..QUERIES / 5].to_vec());
        println!(
            "traverse depth 3 ({direction:?}): {} ({} entities reached on average; first {}: {cold})",
            p50_p99(samples),
            visited / QUERIES,
            QUERIES / 5
        );
    }

    memory.save_index().map_err(err)?;
    let rss = resident_memory_bytes().unwrap_or(0);
    let disk = dir_bytes(tmp.path());
    let index_bytes = memory.stats().map_err(err)?.index_memory_bytes;
    println!(
        "resident memory: {} (process, model included; the vector index reserves {}); on disk: {} ({:.0} bytes/entity)",
        mb(rss),
        mb(index_bytes as u64),
        mb(disk),
        disk as f64 / n as f64
    );
    print_disk_breakdown(&storage, tmp.path(), n)?;
    let counts = memory.counts().map_err(err)?;
    drop(memory);
    drop(storage);

    let started = Instant::now();
    let (storage, memory) = open(tmp.path(), corpus.clone())?;
    let restart = started.elapsed();
    let started = Instant::now();
    let rebuilt = memory.rebuild_index().map_err(err)?;
    let rebuild = started.elapsed();
    println!(
        "restart (open database + load index snapshot): {:.2} s; full index rebuild: {:.1} s ({rebuilt} vectors; {} docs)",
        restart.as_secs_f64(),
        rebuild.as_secs_f64(),
        counts.documents
    );
    // What `caxton storage compact` gives back: the free pages a bulk
    // ingest leaves in the file (redb compacts at the next open).
    memory.save_index().map_err(err)?;
    storage.request_compaction()?;
    drop(memory);
    drop(storage);
    let started = Instant::now();
    let (storage, memory) = open(tmp.path(), corpus.clone())?;
    let compaction = started.elapsed();
    let disk = dir_bytes(tmp.path());
    println!(
        "after `storage compact` ({:.1} s): on disk {} ({:.0} bytes/entity)",
        compaction.as_secs_f64(),
        mb(disk),
        disk as f64 / n as f64
    );
    drop(memory);
    drop(storage);
    Ok(())
}

/// Versions each updated entity goes through after its first.
const UPDATES: usize = 5;

/// Version `v` of entity `i`'s one fact: an attribute (`note: …`), so a
/// new version retires the previous. The bracketed number picks the
/// version's vector (a different base sentence per version).
fn versioned_note(i: usize, v: usize) -> String {
    let pseudo = (i + v * 1_000_003) % 10_000_000;
    format!(
        "note: {} [entity-{pseudo:07}]",
        base_sentence(base_of(pseudo))
    )
}

fn final_version(i: usize) -> usize {
    if i.is_multiple_of(10) { UPDATES } else { 0 }
}

fn write_notes(
    memory: &MemoryService,
    entities: impl Iterator<Item = (usize, usize)>,
) -> anyhow::Result<()> {
    let all: Vec<(usize, usize)> = entities.collect();
    for chunk in all.chunks(INGEST_BATCH) {
        let batch: Vec<EntityInput> = chunk
            .iter()
            .map(|&(i, v)| EntityInput {
                name: entity_name(i),
                entity_type: TYPES[i % TYPES.len()].to_string(),
                observations: vec![versioned_note(i, v)],
                metadata: None,
                valid_from: None,
                valid_to: None,
            })
            .collect();
        memory
            .create_entities(&ScopeKey::global(), &batch)
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

/// Issue 30's benchmark: the cost of history for what is current, and of
/// asking about the past.
fn run_temporal(n: usize, corpus: &Arc<dyn TextEmbedder>) -> anyhow::Result<()> {
    println!("\n== facts in time: {n} entities, 10 % updated {UPDATES} times ==");
    let err = |e: caxton::memory::model::MemoryError| anyhow!("{e}");
    let scope = ScopeKey::global();
    // A store that only ever held the final facts.
    let clean_dir = tempfile::tempdir()?;
    let (clean_storage, clean) = open(clean_dir.path(), corpus.clone())?;
    write_notes(&clean, (0..n).map(|i| (i, final_version(i))))?;
    wait_for_backlog(&clean);
    // The same final facts, reached through every version.
    let history_dir = tempfile::tempdir()?;
    let (history_storage, history) = open(history_dir.path(), corpus.clone())?;
    let started = Instant::now();
    write_notes(&history, (0..n).map(|i| (i, 0)))?;
    let mut middle = String::new();
    for v in 1..=UPDATES {
        write_notes(&history, (0..n).step_by(10).map(|i| (i, v)))?;
        if v == 2 {
            std::thread::sleep(Duration::from_millis(5));
            middle = caxton::clock::now_rfc3339();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    wait_for_backlog(&history);
    let retired = history.stats().map_err(err)?.counts.retired_facts;
    println!(
        "ingest with history: {:.1} s ({} retired facts)",
        started.elapsed().as_secs_f64(),
        retired
    );

    let questions: Vec<String> = (0..QUERIES)
        .map(|q| question(mix(q as u64 + 7) as usize % BASES, q))
        .collect();
    let names = |hits: &[caxton::memory::model::SearchHit]| -> Vec<String> {
        hits.iter().map(|h| h.entity.name.clone()).collect()
    };
    let (mut clean_times, mut history_times, mut past_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut agree, mut wanted) = (0usize, 0usize);
    let at = caxton::memory::temporal::At::parse(Some(&middle), None).map_err(err)?;
    for q in &questions {
        let started = Instant::now();
        let a = clean
            .search(std::slice::from_ref(&scope), q, 10)
            .map_err(err)?;
        clean_times.push(started.elapsed());
        let started = Instant::now();
        let b = history
            .search(std::slice::from_ref(&scope), q, 10)
            .map_err(err)?;
        history_times.push(started.elapsed());
        let truth: HashSet<String> = names(&a).into_iter().collect();
        agree += names(&b).iter().filter(|n| truth.contains(*n)).count();
        wanted += truth.len();
    }
    println!(
        "search, store that never had old versions: {}",
        p50_p99(clean_times)
    );
    println!(
        "search, store with history (current facts): {}",
        p50_p99(history_times)
    );
    println!(
        "current top 10 agreement (history store vs clean store): {:.3}",
        agree as f64 / wanted.max(1) as f64
    );
    // Other questions: none of their embeddings is in the query cache.
    for q in 0..QUERIES {
        let question = question(mix(q as u64 + 11) as usize % BASES, q + QUERIES);
        let started = Instant::now();
        history
            .search_at(std::slice::from_ref(&scope), &question, 10, &at)
            .map_err(err)?;
        past_times.push(started.elapsed());
    }
    println!("search as_of (mid-history): {}", p50_p99(past_times));
    // HNSW recall on the store whose index saw every removal.
    let real_vectors: Vec<Vec<f32>> = questions
        .iter()
        .take(200)
        .map(|q| corpus.embed(&[q.as_str()]).map(|mut v| v.remove(0)))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!(e))?;
    for (label, memory) in [("clean", &clean), ("with history", &history)] {
        let (mut overlap, mut total) = (0usize, 0usize);
        for v in &real_vectors {
            let ann = memory
                .vector_search(v, std::slice::from_ref(&scope), 10, false)
                .map_err(err)?;
            let exact = memory
                .vector_search(v, std::slice::from_ref(&scope), 10, true)
                .map_err(err)?;
            let truth: HashSet<u64> = exact.iter().map(|h| h.0).collect();
            overlap += ann.iter().filter(|h| truth.contains(&h.0)).count();
            total += truth.len();
        }
        println!(
            "recall@10 (HNSW vs exact), {label}: {:.3}",
            overlap as f64 / total.max(1) as f64
        );
    }
    // Compacted (what `caxton storage compact` does), so free pages left
    // by the rewrites do not count as history.
    let mut sizes = Vec::new();
    for (dir, memory, storage) in [
        (&clean_dir, clean, clean_storage),
        (&history_dir, history, history_storage),
    ] {
        memory.save_index().map_err(err)?;
        storage.request_compaction()?;
        drop(memory);
        drop(storage);
        let reopened = open(dir.path(), corpus.clone())?;
        drop(reopened);
        sizes.push(dir_bytes(dir.path()));
    }
    let (a, b) = (sizes[0], sizes[1]);
    println!(
        "on disk after compaction: clean {}, with history {}; {:.0} bytes per retired fact",
        mb(a),
        mb(b),
        b.saturating_sub(a) as f64 / retired.max(1) as f64
    );
    Ok(())
}

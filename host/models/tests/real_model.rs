//! End-to-end tests against the real all-MiniLM-L6-v2.
//!
//! They pull the model into `default_cache_dir()` (a no-op once it is there)
//! and fail, never skip, when that is impossible: a silently skipped suite
//! would hide a broken download path.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caxton_models::{
    DIMENSIONS, Embedder, cosine, default_cache_dir, model_dir, model_status, pull,
};

/// Pulls once per test binary; the other tests wait for it.
fn pulled_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cache = default_cache_dir();
        pull(&cache, &mut |_| {}).unwrap_or_else(|e| {
            panic!(
                "these tests need the real model, and pulling it into {} failed: {e}",
                cache.display()
            )
        })
    })
}

fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let dir = pulled_dir();
        Embedder::load(dir)
            .unwrap_or_else(|e| panic!("loading the model from {} failed: {e}", dir.display()))
    })
}

fn assert_unit(v: &[f32]) {
    assert_eq!(v.len(), DIMENSIONS);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

/// The reference vectors in `fixtures/reference_embeddings.json` are
/// sentence-transformers' `encode` output for this model (provenance in the
/// file's `source`): tokenisation must match exactly, vectors to cos ≥ 0.9999 (the issue asks 0.99)
/// (the bar; in practice they agree to ~1e-6).
#[test]
fn embeddings_match_the_reference_pipeline() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/reference_embeddings.json"))
            .expect("fixture is JSON");
    let items = fixture["items"].as_array().expect("items");
    assert!(items.len() >= 4, "the fixture lost its items");
    let mut tokenizer = tokenizers::Tokenizer::from_file(pulled_dir().join("tokenizer.json"))
        .expect("tokenizer.json loads");
    // tokenizer.json pads to 128; the reference ids are unpadded.
    tokenizer.with_padding(None);
    for item in items {
        let text = item["text"].as_str().expect("text");
        let expected_ids: Vec<u32> = item["token_ids"]
            .as_array()
            .expect("token_ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        let ids = tokenizer
            .encode(text, true)
            .expect("encode")
            .get_ids()
            .to_vec();
        assert_eq!(ids, expected_ids, "token ids of {text:?}");
        let reference: Vec<f32> = item["embedding"]
            .as_array()
            .expect("embedding")
            .iter()
            .map(|v| v.as_f64().expect("float") as f32)
            .collect();
        let ours = embedder().embed_one(text).expect("embed");
        assert_unit(&ours);
        let similarity = cosine(&ours, &reference);
        println!("cos(ours, reference) = {similarity:.7} for {text:?}");
        // The issue asks for ≥ 0.99; we measure 1.0000000, so anything
        // below 0.9999 means the pipeline changed, not rounding.
        assert!(
            similarity >= 0.9999,
            "{text:?}: cosine {similarity} < 0.9999"
        );
    }
}

#[test]
fn known_similarities_match_sentence_transformers() {
    let e = embedder();
    let v = e
        .embed(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ])
        .expect("embed");
    let close = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    println!("cos(food, bread) = {close:.4}, cos(food, baby) = {far:.4}");
    assert!(
        (close - 0.755).abs() < 0.01,
        "cos(food, bread) = {close}, expected ~0.755"
    );
    assert!(
        (far - -0.105).abs() < 0.01,
        "cos(food, baby) = {far}, expected ~-0.105"
    );
}

#[test]
fn batched_agrees_with_single() {
    let e = embedder();
    let texts = [
        "Hi.",
        "A man is eating food.",
        "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
        "Rust's ownership model prevents data races at compile time.",
        "",
        "Embeddings map sentences with similar meaning to nearby points in a vector space, \
         which lets a memory store find related notes even when they share no words.",
        "ok",
    ];
    let batch = e.embed(&texts).expect("embed batch");
    assert_eq!(batch.len(), texts.len());
    for (text, batched) in texts.iter().zip(&batch) {
        assert_unit(batched);
        let single = e.embed_one(text).expect("embed single");
        let c = cosine(&single, batched);
        assert!(
            c > 0.9999,
            "batched and single differ for {text:?}: cosine {c}"
        );
    }
}

#[test]
fn batches_longer_than_one_chunk_keep_their_order() {
    let e = embedder();
    // ~3,000 tokens: more than one 2,048-token forward pass.
    let owned: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "Sentence number {i} talks about {}.",
                "topic ".repeat(i % 13)
            )
        })
        .collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let all = e.embed(&texts).expect("embed");
    assert_eq!(all.len(), texts.len());
    for i in [0, 31, 32, 45, 69, 130, 199] {
        let single = e.embed_one(texts[i]).expect("embed single");
        assert!(cosine(&single, &all[i]) > 0.9999, "text {i} out of place");
    }
}

#[test]
fn empty_input_gives_empty_output() {
    let e = embedder();
    assert!(e.embed(&[]).expect("embed").is_empty());
    // An empty string is still a valid text ([CLS] [SEP]).
    assert_unit(&e.embed_one("").expect("embed empty string"));
}

#[test]
fn long_input_is_truncated() {
    let e = embedder();
    let words: Vec<String> = (0..2000).map(|i| format!("word{}", i % 97)).collect();
    let long = words.join(" ");
    let a = e
        .embed_one(&format!("{long} and it ends about cats"))
        .expect("embed long text");
    let b = e
        .embed_one(&format!("{long} but finishes with tax law"))
        .expect("embed long text");
    assert_unit(&a);
    // Only the first 256 tokens count, so different endings cannot matter.
    assert!(cosine(&a, &b) > 0.9999, "tails were not truncated away");
}

#[test]
fn status_is_verified_after_pull() {
    let dir = pulled_dir();
    let status = model_status(&default_cache_dir());
    assert!(status.present && status.verified, "{status:?}");
    assert!(status.missing.is_empty());
    assert_eq!(&status.dir, dir);
    // Idempotent: a second pull finds it and returns at once.
    let again = pull(&default_cache_dir(), &mut |_| {
        panic!("second pull downloaded")
    })
    .expect("pull");
    assert_eq!(&again, dir);
}

#[test]
fn tampering_is_detected_despite_the_marker() {
    let source = pulled_dir();
    let cache = std::env::temp_dir().join(format!(
        "caxton-models-tamper-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let copy = model_dir(&cache);
    copy_dir(source, &copy);

    let status = model_status(&cache);
    assert!(status.verified, "an exact copy must verify: {status:?}");

    // Same size, one byte different, written after the marker.
    std::thread::sleep(Duration::from_millis(50));
    let config = copy.join("config.json");
    let mut bytes = fs::read(&config).expect("read config");
    bytes[0] = b' ';
    fs::write(&config, bytes).expect("write config");
    let status = model_status(&cache);
    assert!(
        status.present && !status.verified,
        "tampered copy verified: {status:?}"
    );
    assert!(status.detail.contains("config.json"), "{}", status.detail);

    fs::remove_dir_all(&cache).ok();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy dir");
    for entry in fs::read_dir(from).expect("read model dir") {
        let entry = entry.expect("dir entry");
        // The marker stays behind: the copy must earn its own.
        if entry.file_name() != ".verified" {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copy model file");
        }
    }
}

//! Keyword side of hybrid search: how text becomes terms, and BM25.
//!
//! Embeddings are weak exactly where operators search most precisely — ids,
//! codes, names, rare words — so every text is also indexed by its terms.
//! A compound token like `INV-2024-0042` is indexed whole *and* by its
//! parts, so both the full id and `0042` find it.

use std::collections::HashMap;

/// BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Terms longer than this are cut (they are ids, not prose).
const MAX_TERM_BYTES: usize = 64;

/// English function words: in nearly every text, so they cost postings and
/// scan time while adding almost nothing to a BM25 score.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "did", "do", "does", "for", "from",
    "had", "has", "have", "he", "her", "his", "i", "in", "into", "is", "it", "its", "me", "my",
    "of", "on", "or", "our", "she", "so", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "those", "to", "was", "we", "were", "what", "when", "where", "which", "who",
    "whom", "why", "will", "with", "you", "your",
];

fn is_stop_word(term: &str) -> bool {
    STOP_WORDS.contains(&term)
}

/// Lower-cased terms of `text` with their counts (stop words left out,
/// unless the text has nothing else).
pub fn terms(text: &str) -> HashMap<String, u32> {
    let all = all_terms(text);
    if all.keys().all(|t| is_stop_word(t)) {
        return all;
    }
    all.into_iter().filter(|(t, _)| !is_stop_word(t)).collect()
}

fn all_terms(text: &str) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))) {
        let compound = raw.trim_matches(|c: char| matches!(c, '-' | '_' | '.' | '@'));
        if compound.is_empty() {
            continue;
        }
        let compound = compound.to_lowercase();
        let parts: Vec<&str> = compound
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() > 1 {
            *counts.entry(cut(&compound)).or_insert(0) += 1;
        }
        for part in parts {
            *counts.entry(cut(part)).or_insert(0) += 1;
        }
    }
    counts
}

fn cut(term: &str) -> String {
    if term.len() <= MAX_TERM_BYTES {
        return term.to_string();
    }
    let mut end = MAX_TERM_BYTES;
    while !term.is_char_boundary(end) {
        end -= 1;
    }
    term[..end].to_string()
}

/// Number of terms (with repeats) in a text: its BM25 length.
pub fn length(terms: &HashMap<String, u32>) -> u32 {
    terms.values().sum()
}

/// BM25 contribution of one term to one document.
pub fn bm25(
    term_frequency: u32,
    doc_len: u32,
    avg_doc_len: f32,
    doc_count: u64,
    doc_frequency: u64,
) -> f32 {
    let n = doc_count.max(1) as f32;
    let df = doc_frequency.max(1) as f32;
    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
    let tf = term_frequency as f32;
    let norm = 1.0 - B + B * doc_len as f32 / avg_doc_len.max(1.0);
    idf * tf * (K1 + 1.0) / (tf + K1 * norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_ids_are_indexed_whole_and_by_parts() {
        let t = terms("Invoice INV-2024-0042 was paid by alice@example.com.");
        for expected in [
            "invoice",
            "inv-2024-0042",
            "inv",
            "2024",
            "0042",
            "alice@example.com",
            "example",
            "paid",
        ] {
            assert!(t.contains_key(expected), "missing {expected}: {t:?}");
        }
        assert!(!t.contains_key(""));
        assert!(
            !t.contains_key("was") && !t.contains_key("by"),
            "stop words"
        );
        assert_eq!(
            terms("The Who").len(),
            2,
            "a text of only stop words keeps them"
        );
    }

    #[test]
    fn rarer_terms_score_higher() {
        let rare = bm25(1, 10, 10.0, 1000, 2);
        let common = bm25(1, 10, 10.0, 1000, 500);
        assert!(rare > common && common > 0.0);
    }
}

//! word_stats: a tool component. Counts the words, sentences and characters
//! of a text and names its most frequent words — the kind of exact
//! arithmetic a small model gets wrong when it tries it in its head.
//!
//! Deploy: `caxton tools deploy target/wasm32-wasip2/release/word_stats.wasm`,
//! then list `word_stats` in a config agent's `tools`.

use std::collections::BTreeMap;

use caxton_guest_sdk::export_tool;
use caxton_guest_sdk::tool::{Error, Tool, ToolDescription, log};
use serde_json::{Value, json};

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "text": {"type": "string", "description": "The text to measure"},
    "top": {"type": "integer", "minimum": 0, "maximum": 50, "description": "How many frequent words to list (default 3)"}
  },
  "required": ["text"]
}"#;

struct WordStats;

impl Tool for WordStats {
    fn describe() -> ToolDescription {
        ToolDescription::new(
            "word_stats",
            "Counts the words, sentences and characters of a text and lists its most frequent words",
            SCHEMA,
        )
    }

    fn invoke(arguments_json: &str) -> Result<String, Error> {
        let args: Value = serde_json::from_str(arguments_json)
            .map_err(|e| Error::InvalidInput(format!("arguments are not JSON: {e}")))?;
        let text = args["text"].as_str().ok_or_else(|| {
            Error::InvalidInput(
                "`text` (a string) is required, e.g. {\"text\": \"Hello there.\"}".into(),
            )
        })?;
        let top = match &args["top"] {
            Value::Null => 3,
            v => v.as_u64().filter(|n| *n <= 50).ok_or_else(|| {
                Error::InvalidInput("`top` must be an integer from 0 to 50".into())
            })? as usize,
        };
        let stats = measure(text, top);
        log(&format!("measured {} words", stats["words"]));
        Ok(stats.to_string())
    }
}

fn measure(text: &str, top: usize) -> Value {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut words = 0u64;
    for word in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        words += 1;
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let sentences = text
        .split(['.', '!', '?'])
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .count();
    let mut frequent: Vec<(String, u64)> = counts.into_iter().collect();
    // Most frequent first; ties alphabetical, so the answer is deterministic.
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    frequent.truncate(top);
    json!({
        "words": words,
        "sentences": sentences,
        "characters": text.chars().count(),
        "top_words": frequent.iter().map(|(w, n)| json!({"word": w, "count": n})).collect::<Vec<_>>(),
    })
}

export_tool!(WordStats);

//! The conversations a config agent remembers, in its key-value store.
//!
//! Anyone who may message the agent can open a new conversation with every
//! message, so what is kept is bounded three ways (the server's
//! `agents.conversations`, handed over as the definition's
//! `history_limits`): a conversation unused for `ttl_secs` is forgotten, at
//! most `max_per_agent` are kept (the least recently used go first), and
//! one conversation's turns are cut to `max_bytes`, oldest first.
//!
//! Layout: `conversation/<sender's length>:<sender>/<conversation id>`
//! holds a [`Stored`] conversation; `conversation-used/<unix milliseconds,
//! 20 digits>/<message id>` is its entry in the use index, whose value is
//! the conversation's key (milliseconds, so conversations used within one
//! second still sort in the order they were used). The store lists keys in order, so the index lists
//! conversations least recently used first and a sweep stops at the first
//! one it keeps.

use caxton_guest_sdk::{Message, kv, log};
use serde::{Deserialize, Serialize};

use crate::definition::HistoryLimits;

const CONVERSATIONS: &str = "conversation/";
const USE_INDEX: &str = "conversation-used/";
/// Set once conversations stored before the index existed are indexed.
const INDEXED_MARKER: &str = "conversation-index-version";

/// One exchange, as kept in the conversation history.
#[derive(Serialize, Deserialize)]
pub struct Turn {
    pub user: String,
    pub assistant: String,
}

/// A conversation as stored: its turns, when it was last used (Unix
/// milliseconds) and its entry in the use index.
#[derive(Serialize, Deserialize)]
struct Stored {
    used_ms: u64,
    index: String,
    turns: Vec<Turn>,
}

/// [`Stored`], borrowed for writing.
#[derive(Serialize)]
struct StoredRef<'a> {
    used_ms: u64,
    index: &'a str,
    turns: &'a [Turn],
}

/// One caller's conversation, loaded for a message.
pub struct Conversation {
    key: String,
    /// Its current entry in the use index, if it has one.
    index: Option<String>,
    pub turns: Vec<Turn>,
}

/// Milliseconds since the Unix epoch (WASI's wall clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

thread_local! {
    /// The last use stamp given (see [`use_stamp`]).
    static LAST_USE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// When a conversation is used, for the use index: the wall clock in
/// milliseconds, but strictly increasing, so two uses within one
/// millisecond keep their order (the index would otherwise order them by
/// message id, at random, and the sweep could forget the newer one).
fn use_stamp(now_ms: u64) -> u64 {
    LAST_USE.with(|last| {
        let stamp = now_ms.max(last.get().saturating_add(1));
        last.set(stamp);
        stamp
    })
}

/// Whether something last used at `used_ms` is past the time to live.
fn expired(limits: &HistoryLimits, used_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(used_ms) > limits.ttl_secs.saturating_mul(1000)
}

/// History is keyed by who is talking and which conversation: the host
/// sets `sender` from the caller's identity, so one caller cannot read
/// another's conversation by guessing its id. The sender's length comes
/// first so no (sender, id) pair can spell another's key.
fn key_of(msg: &Message) -> String {
    format!(
        "{CONVERSATIONS}{}:{}/{}",
        msg.sender.len(),
        msg.sender,
        msg.conversation_id.as_deref().unwrap_or("default")
    )
}

/// What is stored under `key`: the current format, or a bare list of turns
/// (before the use index), which counts as used now.
fn read(key: &str, now_ms: u64) -> Option<Stored> {
    let text = kv::get_string(key).ok()??;
    if let Ok(stored) = serde_json::from_str::<Stored>(&text) {
        return Some(stored);
    }
    serde_json::from_str::<Vec<Turn>>(&text)
        .ok()
        .map(|turns| Stored {
            used_ms: now_ms,
            index: String::new(),
            turns,
        })
}

fn warn_on_error<T>(what: &str, result: Result<T, caxton_guest_sdk::Error>) {
    if let Err(e) = result {
        log::warn(&format!("could not {what}: {e:?}"));
    }
}

impl Conversation {
    /// The caller's conversation of `msg`; empty when new or expired.
    pub fn load(msg: &Message, limits: &HistoryLimits, now_ms: u64) -> Conversation {
        let key = key_of(msg);
        match read(&key, now_ms) {
            Some(stored) => Conversation {
                key,
                turns: if expired(limits, stored.used_ms, now_ms) {
                    Vec::new()
                } else {
                    stored.turns
                },
                index: Some(stored.index).filter(|i| !i.is_empty()),
            },
            None => Conversation {
                key,
                index: None,
                turns: Vec::new(),
            },
        }
    }

    /// Stores the conversation as used at `now_ms` (by message
    /// `message_id`), cut to `max_bytes`, then forgets what is past the
    /// limits.
    pub fn save(mut self, limits: &HistoryLimits, now_ms: u64, message_id: &str) {
        let used_ms = use_stamp(now_ms);
        let index = format!("{USE_INDEX}{used_ms:020}/{message_id}");
        let text = loop {
            let stored = StoredRef {
                used_ms,
                index: &index,
                turns: &self.turns,
            };
            let Ok(text) = serde_json::to_string(&stored) else {
                return;
            };
            if text.len() as u64 <= limits.max_bytes || self.turns.is_empty() {
                break text;
            }
            self.turns.remove(0);
        };
        if self.turns.is_empty() {
            // Even the last exchange alone is over the limit: keep nothing.
            warn_on_error("forget the conversation", kv::delete(&self.key));
        } else {
            // The index entry first: a conversation is never stored
            // without one, so a sweep always finds it.
            warn_on_error("index the conversation", kv::set(&index, &self.key));
            warn_on_error("save the conversation", kv::set(&self.key, text));
        }
        if let Some(old) = self.index.filter(|old| *old != index) {
            warn_on_error("update the conversation index", kv::delete(&old));
        }
        sweep(limits, now_ms);
    }
}

/// Forgets the conversations unused for longer than the time to live, and
/// the least recently used beyond the cap.
fn sweep(limits: &HistoryLimits, now_ms: u64) {
    let entries = match kv::list_keys(USE_INDEX) {
        Ok(entries) => entries,
        Err(e) => {
            log::warn(&format!("could not list the conversations: {e:?}"));
            return;
        }
    };
    let excess = entries
        .len()
        .saturating_sub(limits.max_per_agent.max(1) as usize);
    for (position, entry) in entries.iter().enumerate() {
        let used_ms = entry
            .strip_prefix(USE_INDEX)
            .and_then(|rest| rest.split('/').next())
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(0);
        if position >= excess && !expired(limits, used_ms, now_ms) {
            // The index is in order of use: everything after is newer.
            break;
        }
        forget(entry, now_ms);
    }
}

/// Removes an index entry and, when the entry is its current one, the
/// conversation it points at.
fn forget(entry: &str, now_ms: u64) {
    if let Ok(Some(key)) = kv::get_string(entry)
        && read(&key, now_ms).is_some_and(|stored| stored.index == entry)
    {
        warn_on_error("forget a conversation", kv::delete(&key));
    }
    warn_on_error("forget a conversation's index entry", kv::delete(entry));
}

/// Gives conversations stored before the use index an entry in it (as
/// used now), once per agent, so they expire like the others.
pub fn index_older_conversations(now_ms: u64) {
    if matches!(kv::get_string(INDEXED_MARKER), Ok(Some(_))) {
        return;
    }
    let Ok(keys) = kv::list_keys(CONVERSATIONS) else {
        return;
    };
    for (n, key) in keys.iter().enumerate() {
        let Ok(Some(text)) = kv::get_string(key) else {
            continue;
        };
        let Ok(turns) = serde_json::from_str::<Vec<Turn>>(&text) else {
            continue;
        };
        let index = format!("{USE_INDEX}{now_ms:020}/older-{n}");
        let stored = StoredRef {
            used_ms: now_ms,
            index: &index,
            turns: &turns,
        };
        if let Ok(text) = serde_json::to_string(&stored) {
            warn_on_error("index an older conversation", kv::set(&index, key));
            warn_on_error("update an older conversation", kv::set(key, text));
        }
    }
    warn_on_error(
        "mark the conversations indexed",
        kv::set(INDEXED_MARKER, "1"),
    );
}

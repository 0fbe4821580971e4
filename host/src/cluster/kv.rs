//! JetStream KV buckets, made so that Debian's nats-server 2.9 takes them.
//!
//! `async-nats`'s `create_key_value` first asks the server for the
//! account's limits, and cannot parse 2.9's answer (probed with 0.46 and
//! 0.52: "data did not match any variant of untagged enum Response"). A
//! bucket is only a stream named `KV_<bucket>` over `$KV.<bucket>.>` with
//! these settings; made directly, the client binds to it like to any other.
//! On 2.9 an entry that expires (`max_age`) leaves no delete marker, so
//! expiry is noticed by reading the bucket, never by watching it.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use futures_util::StreamExt as _;

/// The bucket `name`, created if missing, keeping `history` values per
/// key, each for at most `max_age` (zero: forever). An existing bucket is
/// bound as it is.
pub async fn bucket(
    js: &jetstream::Context,
    name: &str,
    history: i64,
    max_age: Duration,
) -> Result<kv::Store, String> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history,
        max_age,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot create the KV bucket {name}: {e}"))?;
    js.get_key_value(name)
        .await
        .map_err(|e| format!("cannot open the KV bucket {name}: {e}"))
}

/// How long one read of a whole bucket may take: a listing whose answer
/// never comes must not stall the loop that reads (membership, placement)
/// for good.
const READ_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Every live key of `store` (at most `max_keys`) with its value and
/// revision; values over `max_bytes` and deleted keys are left out. One
/// read of the whole bucket: 2.9 gives no expiry markers to watch.
pub async fn read_all(
    store: &kv::Store,
    max_keys: usize,
    max_bytes: usize,
) -> Result<Vec<(String, Vec<u8>, u64)>, String> {
    tokio::time::timeout(READ_WITHIN, read_all_now(store, max_keys, max_bytes))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no complete answer within {} s",
                READ_WITHIN.as_secs()
            ))
        })
}

async fn read_all_now(
    store: &kv::Store,
    max_keys: usize,
    max_bytes: usize,
) -> Result<Vec<(String, Vec<u8>, u64)>, String> {
    let mut keys = store
        .keys()
        .await
        .map_err(|e| format!("cannot list the bucket: {e}"))?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| format!("cannot list the bucket: {e}"))?;
        if out.len() >= max_keys {
            break;
        }
        let entry = store
            .entry(&key)
            .await
            .map_err(|e| format!("cannot read {key}: {e}"))?;
        // An entry that expired or was deleted between the listing and
        // the read is not there.
        if let Some(entry) =
            entry.filter(|e| e.operation == kv::Operation::Put && e.value.len() <= max_bytes)
        {
            out.push((key, entry.value.to_vec(), entry.revision));
        }
    }
    Ok(out)
}

/// A name as one KV key token: as it is when it is letters, digits, `-`
/// and `_`, otherwise `=` and its bytes in hex (`=` is in no plain token,
/// so the forms never collide; `.` would split the key, `%` is not a key
/// character).
pub fn key_token(name: &str) -> String {
    escaped_token(name, '=')
}

/// `name` as it is when it is letters, digits, `-` and `_` (what both KV
/// keys and subjects take, and a reader recognises), otherwise `escape`
/// and its bytes in hex: the one encoding of names into NATS tokens, with
/// the escape each use needs.
pub fn escaped_token(name: &str, escape: char) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return name.to_string();
    }
    let mut out = String::with_capacity(1 + 2 * name.len());
    out.push(escape);
    for b in name.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The name a [`key_token`] stands for.
pub fn from_key_token(token: &str) -> Option<String> {
    let Some(hex) = token.strip_prefix('=') else {
        return Some(token.to_string());
    };
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_collide() {
        for key in ["count", "seen:1f2e", "a.b", "=41", "ünï", "x y"] {
            assert_eq!(
                from_key_token(&key_token(key)).as_deref(),
                Some(key),
                "{key}"
            );
        }
        assert_eq!(key_token("count"), "count");
        assert_ne!(key_token("=41"), key_token("A"));
        assert!(key_token("a.b").bytes().all(|b| b != b'.'));
    }
}

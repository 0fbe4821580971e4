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

//! Recorded events in redb. Written without an fsync of their own
//! (`Durability::None`): they become durable with the next durable
//! commit of anything, so a crash may lose the last few events of a
//! recording but never costs a model call the time of a disk flush.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::settings::RecordingSettings;
use super::{Event, Recorded, Recording};
use redb::{Database, ReadableDatabase};

use crate::storage::{Result, StorageError, db_err};

/// (conversation, seq) → JSON [`Recorded`].
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("recording_events");
/// conversation → (first event ms, last event ms, bytes, events, truncated).
const INDEX: TableDefinition<&str, (u64, u64, u64, u64, u64)> =
    TableDefinition::new("recording_index");

fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> StorageError + '_ {
    move |source| StorageError::CorruptRecord {
        what: what.to_string(),
        source,
    }
}

/// An event as stored; its position is the key's.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    at: String,
    #[serde(flatten)]
    event: Event,
}

/// [`Stored`] as written: the event borrowed, not copied.
#[derive(serde::Serialize)]
struct StoredRef<'a> {
    at: String,
    #[serde(flatten)]
    event: &'a Event,
}

/// Appends `events` (conversation, event, when) in one transaction,
/// encoded before it begins: the database has one writer at a time, and
/// budgets record spend on the agents' path.
pub fn append(
    db: &Database,
    events: &[(String, Event, u64)],
    settings: &RecordingSettings,
) -> Result<()> {
    let mut encoded = Vec::with_capacity(events.len());
    for (conversation, event, now_ms) in events {
        let stored = StoredRef {
            at: crate::clock::rfc3339_from_millis(*now_ms),
            event,
        };
        let json = serde_json::to_vec(&stored).map_err(json_err("a recorded event"))?;
        encoded.push((conversation.as_str(), *now_ms, json));
    }
    let mut txn = db.begin_write().map_err(db_err)?;
    txn.set_durability(redb::Durability::None).map_err(db_err)?;
    {
        let mut index = txn.open_table(INDEX).map_err(db_err)?;
        let mut table = txn.open_table(EVENTS).map_err(db_err)?;
        for (conversation, now_ms, json) in encoded {
            let (first, _, bytes, count, truncated) = index
                .get(conversation)
                .map_err(db_err)?
                .map_or((now_ms, now_ms, 0, 0, 0), |v| v.value());
            let size = json.len() as u64;
            if bytes + size > settings.max_conversation_bytes {
                index
                    .insert(conversation, (first, now_ms, bytes, count, truncated + 1))
                    .map_err(db_err)?;
            } else {
                table
                    .insert((conversation, count), json.as_slice())
                    .map_err(db_err)?;
                index
                    .insert(
                        conversation,
                        (first, now_ms, bytes + size, count + 1, truncated),
                    )
                    .map_err(db_err)?;
            }
        }
    }
    txn.commit().map_err(db_err)
}

/// Deletes recordings past their retention, then the oldest until all
/// fit in `max_bytes`.
pub fn prune(db: &Database, settings: &RecordingSettings, now_ms: u64) -> Result<usize> {
    let oldest_kept = now_ms.saturating_sub(settings.retention_hours * 3_600_000);
    let txn = db.begin_write().map_err(db_err)?;
    let removed = {
        let mut index = txn.open_table(INDEX).map_err(db_err)?;
        let mut all: Vec<(u64, String, u64)> =
            Vec::with_capacity(index.len().map_err(db_err)? as usize);
        for row in index.iter().map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            let (_, last, bytes, _, _) = value.value();
            all.push((last, key.value().to_string(), bytes));
        }
        all.sort_unstable();
        let mut total: u64 = all.iter().map(|(_, _, b)| b).sum();
        let mut events = txn.open_table(EVENTS).map_err(db_err)?;
        let mut removed = 0usize;
        for (last, conversation, bytes) in all {
            if last >= oldest_kept && total <= settings.max_bytes {
                break;
            }
            index.remove(conversation.as_str()).map_err(db_err)?;
            events
                .retain_in(
                    (conversation.as_str(), 0)..=(conversation.as_str(), u64::MAX),
                    |_, _| false,
                )
                .map_err(db_err)?;
            total = total.saturating_sub(bytes);
            removed += 1;
        }
        removed
    };
    txn.commit().map_err(db_err)?;
    Ok(removed)
}

pub fn read(db: &Database, conversation: &str) -> Result<Option<Recording>> {
    let txn = db.begin_read().map_err(db_err)?;
    {
        let index = match txn.open_table(INDEX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let Some((_, _, bytes, _, truncated)) =
            index.get(conversation).map_err(db_err)?.map(|v| v.value())
        else {
            return Ok(None);
        };
        let table = txn.open_table(EVENTS).map_err(db_err)?;
        let mut events = Vec::new();
        for row in table
            .range((conversation, 0)..=(conversation, u64::MAX))
            .map_err(db_err)?
        {
            let (key, value) = row.map_err(db_err)?;
            let stored = serde_json::from_slice::<Stored>(value.value())
                .map_err(json_err("a recorded event"))?;
            events.push(Recorded {
                seq: key.value().1,
                at: stored.at,
                event: stored.event,
            });
        }
        Ok(Some(Recording {
            conversation_id: conversation.to_string(),
            caxton_version: env!("CARGO_PKG_VERSION").to_string(),
            events,
            bytes,
            truncated,
        }))
    }
}

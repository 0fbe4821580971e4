//! Recorded events in redb. Written without an fsync of their own
//! (`Durability::None`); the writer makes them durable ([`persist`]) at
//! most a second later, when asked to flush (an export, the server
//! stopping) and with every prune, so a crash may lose the last second
//! of a recording but never costs a model call the time of a disk flush.

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
/// (first event ms, conversation): the conversations oldest first, written
/// once per conversation, so pruning reads the few it drops rather than
/// every conversation there is.
const BY_AGE: TableDefinition<(u64, &str), ()> = TableDefinition::new("recording_by_age");

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
///
/// Answers how many bytes the recordings grew by.
pub fn append(
    db: &Database,
    events: &[(String, Event, u64)],
    settings: &RecordingSettings,
) -> Result<u64> {
    let mut encoded = Vec::with_capacity(events.len());
    for (conversation, event, now_ms) in events {
        let stored = StoredRef {
            at: crate::clock::rfc3339_from_millis(*now_ms),
            event,
        };
        let json = serde_json::to_vec(&stored).map_err(json_err("a recorded event"))?;
        encoded.push((conversation.as_str(), *now_ms, json));
    }
    let mut grown = 0;
    let mut txn = db.begin_write().map_err(db_err)?;
    txn.set_durability(redb::Durability::None).map_err(db_err)?;
    {
        let mut index = txn.open_table(INDEX).map_err(db_err)?;
        let mut table = txn.open_table(EVENTS).map_err(db_err)?;
        let mut by_age = txn.open_table(BY_AGE).map_err(db_err)?;
        for (conversation, now_ms, json) in encoded {
            let known = index.get(conversation).map_err(db_err)?.map(|v| v.value());
            if known.is_none() {
                by_age.insert((now_ms, conversation), ()).map_err(db_err)?;
            }
            let (first, _, bytes, count, truncated) = known.unwrap_or((now_ms, now_ms, 0, 0, 0));
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
                grown += size;
            }
        }
    }
    txn.commit().map_err(db_err)?;
    Ok(grown)
}

/// Makes every commit so far durable: an empty commit that syncs.
pub fn persist(db: &Database) -> Result<()> {
    db.begin_write().map_err(db_err)?.commit().map_err(db_err)
}

/// Readies a recordings database for [`append`] and [`prune`]: the age
/// index is built if the store predates it. Answers the bytes recorded.
pub fn open(db: &Database) -> Result<u64> {
    let txn = db.begin_write().map_err(db_err)?;
    let total = {
        let index = txn.open_table(INDEX).map_err(db_err)?;
        let mut by_age = txn.open_table(BY_AGE).map_err(db_err)?;
        let complete = by_age.len().map_err(db_err)? == index.len().map_err(db_err)?;
        if !complete {
            by_age.retain(|_, _| false).map_err(db_err)?;
        }
        let mut total = 0u64;
        for row in index.iter().map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            let (first, _, bytes, _, _) = value.value();
            total += bytes;
            if !complete {
                by_age.insert((first, key.value()), ()).map_err(db_err)?;
            }
        }
        total
    };
    txn.commit().map_err(db_err)?;
    Ok(total)
}

/// Deletes the oldest conversations (by their first event) while the
/// oldest has had no event within the retention or the recordings hold
/// more than `max_bytes`; `total` is the bytes recorded, kept up to date.
/// Answers how many went. A conversation still going keeps younger ones
/// that ended from being dropped for age until it ends too (they still
/// count towards `max_bytes`): the price of reading only what goes.
pub fn prune(
    db: &Database,
    settings: &RecordingSettings,
    now_ms: u64,
    total: &mut u64,
) -> Result<usize> {
    let oldest_kept = now_ms.saturating_sub(settings.retention_hours * 3_600_000);
    let txn = db.begin_write().map_err(db_err)?;
    let removed = {
        let mut index = txn.open_table(INDEX).map_err(db_err)?;
        let mut events = txn.open_table(EVENTS).map_err(db_err)?;
        let mut by_age = txn.open_table(BY_AGE).map_err(db_err)?;
        let mut removed = 0usize;
        loop {
            let Some(oldest) = by_age.first().map_err(db_err)? else {
                break;
            };
            let (first, conversation) = oldest.0.value();
            let conversation = conversation.to_string();
            drop(oldest);
            let (last, bytes) =
                index
                    .get(conversation.as_str())
                    .map_err(db_err)?
                    .map_or((0, 0), |v| {
                        let (_, last, bytes, _, _) = v.value();
                        (last, bytes)
                    });
            if last >= oldest_kept && *total <= settings.max_bytes {
                break;
            }
            by_age
                .remove((first, conversation.as_str()))
                .map_err(db_err)?;
            index.remove(conversation.as_str()).map_err(db_err)?;
            events
                .retain_in(
                    (conversation.as_str(), 0)..=(conversation.as_str(), u64::MAX),
                    |_, _| false,
                )
                .map_err(db_err)?;
            *total = total.saturating_sub(bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn said(agent: &str, content: &str) -> Event {
        Event::Inbound {
            agent: agent.into(),
            sender: "user".into(),
            performative: "request".into(),
            content: content.into(),
        }
    }

    fn contents(recording: &Recording) -> Vec<(u64, String)> {
        recording
            .events
            .iter()
            .map(|r| match &r.event {
                Event::Inbound { content, .. } => (r.seq, content.clone()),
                other => panic!("unexpected event {other:?}"),
            })
            .collect()
    }

    #[test]
    fn conversations_interleave_and_read_back_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::create(dir.path().join("r.redb")).expect("db");
        let settings = RecordingSettings {
            max_conversation_bytes: 1_000,
            ..RecordingSettings::default()
        };
        let batch = |items: &[(&str, &str)], ms: u64| -> Vec<(String, Event, u64)> {
            items
                .iter()
                .map(|(c, text)| (c.to_string(), said("a", text), ms))
                .collect()
        };
        append(
            &db,
            &batch(&[("one", "1a"), ("two", "2a"), ("one", "1b")], 1_000),
            &settings,
        )
        .expect("first batch");
        append(
            &db,
            &batch(&[("two", "2b"), ("one", "1c")], 2_000),
            &settings,
        )
        .expect("second batch");
        let one = read(&db, "one").expect("read").expect("recorded");
        assert_eq!(
            contents(&one),
            [(0, "1a".into()), (1, "1b".into()), (2, "1c".into())]
        );
        let two = read(&db, "two").expect("read").expect("recorded");
        assert_eq!(contents(&two), [(0, "2a".into()), (1, "2b".into())]);
        assert_eq!(two.events[1].at, crate::clock::rfc3339_from_millis(2_000));
        assert!(read(&db, "three").expect("read").is_none());

        // Past the byte cap, events are counted, not kept, and the kept
        // ones stay in order.
        let long = "x".repeat(1_000);
        append(
            &db,
            &batch(&[("one", &long), ("one", "1d")], 3_000),
            &settings,
        )
        .expect("third batch");
        let one = read(&db, "one").expect("read").expect("recorded");
        assert_eq!(one.truncated, 1);
        assert_eq!(contents(&one).last(), Some(&(3, "1d".into())));
    }

    /// The conversations recorded, by name.
    fn names(db: &Database) -> Vec<String> {
        let txn = db.begin_read().expect("read");
        let index = txn.open_table(INDEX).expect("index");
        index
            .iter()
            .expect("iter")
            .map(|row| row.expect("row").0.value().to_string())
            .collect()
    }

    #[test]
    fn prune_drops_the_oldest_past_retention_then_past_the_byte_cap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::create(dir.path().join("r.redb")).expect("db");
        let hour = 3_600_000;
        let settings = RecordingSettings {
            retention_hours: 1,
            ..RecordingSettings::default()
        };
        let mut total = store_open(&db);
        for (conversation, ms) in [("a", 1_000), ("b", 2_000), ("c", hour + 3_000)] {
            total += append(
                &db,
                &[(conversation.into(), said("x", "hi"), ms)],
                &settings,
            )
            .expect("append");
        }
        let each = total / 3;
        // At 1 h + 2.5 s: a and b have had nothing for an hour.
        let removed = prune(&db, &settings, hour + 2_500, &mut total).expect("prune");
        assert_eq!(removed, 2);
        assert_eq!(names(&db), ["c"]);
        assert_eq!(total, each);
        assert_eq!(store_open(&db), total, "the count kept matches the store");

        // The byte cap: the oldest go first, however recent.
        for (conversation, ms) in [("d", hour + 4_000), ("e", hour + 5_000)] {
            total += append(
                &db,
                &[(conversation.into(), said("x", "hi"), ms)],
                &settings,
            )
            .expect("append");
        }
        let capped = RecordingSettings {
            max_bytes: 2 * each,
            max_conversation_bytes: each,
            ..settings
        };
        assert_eq!(
            prune(&db, &capped, hour + 6_000, &mut total).expect("prune"),
            1
        );
        assert_eq!(names(&db), ["d", "e"]);
        assert!(read(&db, "c").expect("read").is_none());
    }

    #[test]
    fn a_store_without_the_age_index_gets_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::create(dir.path().join("r.redb")).expect("db");
        let settings = RecordingSettings::default();
        append(&db, &[("old".into(), said("x", "hi"), 1_000)], &settings).expect("append");
        let txn = db.begin_write().expect("txn");
        txn.delete_table(BY_AGE).expect("drop the age index");
        txn.commit().expect("commit");
        let mut total = store_open(&db);
        assert!(total > 0);
        let removed = prune(&db, &settings, 30 * 24 * 3_600_000, &mut total).expect("prune");
        assert_eq!(removed, 1, "found through the rebuilt index");
        assert_eq!(total, 0);
    }

    fn store_open(db: &Database) -> u64 {
        open(db).expect("open the recordings")
    }
}

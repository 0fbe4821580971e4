//! Recordings made before the log (`recordings.redb`, Caxton up to stop
//! 41) are moved into it once, when the server starts, so an upgrade keeps
//! the last days' conversations.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::Event;
use super::settings::RecordingSettings;
use super::store::Store;

/// The file the recordings used to be kept in.
const OLD_FILE: &str = "recordings.redb";
/// Its events: (conversation, seq) → JSON `{at, …event}`.
const OLD_EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("recording_events");
/// Events moved per append.
const BATCH: usize = 1024;

#[derive(serde::Deserialize)]
struct OldEvent {
    at: String,
    #[serde(flatten)]
    event: Event,
}

/// Moves `data_dir/recordings.redb` into `store` and deletes it. A file
/// that cannot be read is renamed `recordings.redb.unreadable` (and said
/// so) rather than tried again at every start.
pub fn from_redb(data_dir: &Path, store: &Store, settings: &RecordingSettings) {
    let path = data_dir.join(OLD_FILE);
    if !path.exists() {
        return;
    }
    match move_events(&path, store, settings) {
        Ok(moved) => {
            tracing::info!(events = moved, from = %path.display(), "recorded conversations moved to the recordings log");
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, file = %path.display(), "could not delete the old recordings file after moving its events");
            }
        }
        Err(why) => {
            let aside = data_dir.join(format!("{OLD_FILE}.unreadable"));
            tracing::warn!(file = %path.display(), reason = %why, kept_as = %aside.display(), "could not move the old recorded conversations; the file is set aside");
            if let Err(e) = std::fs::rename(&path, &aside) {
                tracing::warn!(error = %e, "could not set the old recordings file aside");
            }
        }
    }
}

fn move_events(path: &Path, store: &Store, settings: &RecordingSettings) -> Result<usize, String> {
    let db = redb::Database::open(path).map_err(|e| e.to_string())?;
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = match txn.open_table(OLD_EVENTS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    let mut moved = 0;
    let mut batch = Vec::with_capacity(BATCH);
    for row in table.iter().map_err(|e| e.to_string())? {
        let (key, value) = row.map_err(|e| e.to_string())?;
        let (conversation, seq) = key.value();
        let old: OldEvent = serde_json::from_slice(value.value())
            .map_err(|e| format!("event {seq} of `{conversation}`: {e}"))?;
        let at_ms = crate::clock::parse_millis(&old.at)
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or(0);
        batch.push((conversation.to_string(), old.event, at_ms));
        if batch.len() == BATCH {
            store.append(&batch, settings).map_err(|e| e.to_string())?;
            moved += batch.len();
            batch.clear();
        }
    }
    store.append(&batch, settings).map_err(|e| e.to_string())?;
    moved += batch.len();
    store.sync().map_err(|e| e.to_string())?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_recordings_file_is_moved_into_the_log_and_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = redb::Database::create(dir.path().join(OLD_FILE)).expect("old file");
        let txn = old.begin_write().expect("write");
        {
            let mut table = txn.open_table(OLD_EVENTS).expect("table");
            for (seq, content) in ["first", "second"].into_iter().enumerate() {
                let json = serde_json::json!({
                    "at": "2026-12-01T10:00:00Z",
                    "kind": "inbound",
                    "agent": "a",
                    "sender": "user",
                    "performative": "request",
                    "content": content,
                });
                table
                    .insert(("c-1", seq as u64), json.to_string().as_bytes())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
        drop(old);

        let settings = RecordingSettings::default();
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        from_redb(dir.path(), &store, &settings);
        let moved = store.read("c-1").expect("read").expect("moved");
        let contents: Vec<&str> = moved
            .events
            .iter()
            .map(|r| match &r.event {
                Event::Inbound { content, .. } => content.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(contents, ["first", "second"]);
        assert_eq!(moved.events[0].at, "2026-12-01T10:00:00Z");
        assert!(
            !dir.path().join(OLD_FILE).exists(),
            "moved once, then deleted"
        );
    }

    #[test]
    fn an_unreadable_old_file_is_set_aside() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(OLD_FILE), b"not a database").expect("write");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        from_redb(dir.path(), &store, &RecordingSettings::default());
        assert!(!dir.path().join(OLD_FILE).exists());
        assert!(dir.path().join(format!("{OLD_FILE}.unreadable")).exists());
    }
}

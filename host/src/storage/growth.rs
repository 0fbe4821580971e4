//! How the database grows: a sample of its size at every server start and
//! once a day while it runs, so `storage analyze` can say how fast it
//! grows and an operator can see the disk filling before it is full.

use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Storage, db_err};

/// Unix seconds → file bytes and stored bytes, 8 bytes each.
const SAMPLES: TableDefinition<u64, [u8; 16]> = TableDefinition::new("storage_growth");

/// Samples kept: a year of daily ones.
const MAX_SAMPLES: usize = 366;

const DAY_SECS: u64 = 86_400;

/// Growth since the oldest sample of the last 30 days (or the oldest
/// there is, when all are younger).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StorageGrowth)]
pub struct Growth {
    /// When the compared sample was taken (Unix seconds).
    pub since_unix: u64,
    pub days: f64,
    pub file_bytes_then: u64,
    pub stored_bytes_then: u64,
    /// Stored bytes gained per day over that span (negative: shrinking).
    pub stored_bytes_per_day: f64,
    pub samples: usize,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Storage {
    /// Stores one size sample (the file, and the bytes its tables hold),
    /// dropping the oldest beyond a year's worth.
    pub fn record_growth_sample(&self) -> super::Result<()> {
        self.record_sample_at(now_unix(), None)
    }

    /// A sample taken at `when`; `stored` overrides the measured figure
    /// (tests of the rate).
    fn record_sample_at(&self, when: u64, stored: Option<u64>) -> super::Result<()> {
        let write = self.db.begin_write().map_err(db_err)?;
        let stored = match stored {
            Some(stored) => stored,
            None => write.stats().map_err(db_err)?.stored_bytes(),
        };
        {
            let mut table = write.open_table(SAMPLES).map_err(db_err)?;
            let mut value = [0u8; 16];
            value[..8].copy_from_slice(&self.file_bytes().to_le_bytes());
            value[8..].copy_from_slice(&stored.to_le_bytes());
            table.insert(when, value).map_err(db_err)?;
            let excess = usize::try_from(table.len().map_err(db_err)?)
                .unwrap_or(usize::MAX)
                .saturating_sub(MAX_SAMPLES);
            for _ in 0..excess {
                table.pop_first().map_err(db_err)?;
            }
        }
        write.commit().map_err(db_err)?;
        Ok(())
    }

    /// Growth up to `stored_now` bytes, when a sample old enough exists.
    pub(super) fn growth(&self, stored_now: u64) -> super::Result<Option<Growth>> {
        let read = self.db.begin_read().map_err(db_err)?;
        let table = match read.open_table(SAMPLES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let samples = usize::try_from(table.len().map_err(db_err)?).unwrap_or(usize::MAX);
        let now = now_unix();
        let month_ago = now.saturating_sub(30 * DAY_SECS);
        let oldest = match table.range(month_ago..).map_err(db_err)?.next() {
            Some(entry) => Some(entry.map_err(db_err)?),
            None => table.first().map_err(db_err)?,
        };
        let Some((when, value)) = oldest else {
            return Ok(None);
        };
        let (when, value) = (when.value(), value.value());
        let file_then = u64::from_le_bytes(value[..8].try_into().unwrap_or_default());
        let stored_then = u64::from_le_bytes(value[8..].try_into().unwrap_or_default());
        // Less than an hour of history says nothing about a rate.
        let seconds = now.saturating_sub(when);
        if seconds < 3_600 {
            return Ok(None);
        }
        let days = seconds as f64 / DAY_SECS as f64;
        Ok(Some(Growth {
            since_unix: when,
            days,
            file_bytes_then: file_then,
            stored_bytes_then: stored_then,
            stored_bytes_per_day: (stored_now as f64 - stored_then as f64) / days,
            samples,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_a_rate_over_the_samples_of_the_last_month() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("open");
        storage.record_growth_sample().expect("sample");
        assert!(
            storage.growth(1_000).expect("growth").is_none(),
            "no hour of history yet"
        );
        let now = now_unix();
        storage
            .record_sample_at(now - 40 * DAY_SECS, Some(0))
            .expect("old sample");
        storage
            .record_sample_at(now - 2 * DAY_SECS, Some(1_000_000))
            .expect("sample");
        let growth = storage.growth(3_000_000).expect("growth").expect("known");
        assert_eq!(
            growth.stored_bytes_then, 1_000_000,
            "the oldest of the last 30 days"
        );
        assert!(
            (growth.stored_bytes_per_day - 1_000_000.0).abs() < 1_000.0,
            "{growth:?}"
        );
        assert_eq!(growth.samples, 3);
    }
}

//! `caxton storage analyze`: where the database's bytes go — per table
//! (entries, stored bytes, metadata, fragmentation, tree height) and for the
//! whole file (allocated pages, free space a compaction would return), and
//! how fast it grows.

use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
use serde::{Deserialize, Serialize};

use super::{Storage, db_err};

/// One table of the database.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StorageTable)]
pub struct TableInfo {
    pub name: String,
    pub entries: u64,
    pub stored_bytes: u64,
    pub metadata_bytes: u64,
    pub fragmented_bytes: u64,
    pub tree_height: u32,
}

/// Where the database's bytes go.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StorageAnalysis)]
pub struct Analysis {
    pub file_bytes: u64,
    pub page_size: usize,
    pub allocated_bytes: u64,
    pub stored_bytes: u64,
    pub metadata_bytes: u64,
    pub fragmented_bytes: u64,
    /// Allocated bytes that hold no data: what `storage compact` can return.
    pub free_bytes: u64,
    pub fragmentation_percent: f64,
    /// A compaction is scheduled for the next start.
    pub compaction_pending: bool,
    /// Largest first.
    pub tables: Vec<TableInfo>,
    /// How fast the stored data grows (from samples taken at every start
    /// and daily); absent until there is an hour of history.
    #[serde(default)]
    pub growth: Option<super::Growth>,
}

impl Storage {
    /// Measures the database in one snapshot. The whole-file figures come
    /// from a write transaction that is aborted (redb computes them only
    /// there); it waits for a writer in progress and writes nothing.
    pub fn analyze(&self) -> super::Result<Analysis> {
        let mut tables = Vec::new();
        {
            let read = self.db.begin_read().map_err(db_err)?;
            for handle in read.list_tables().map_err(db_err)? {
                let name = handle.name().to_string();
                let table = read.open_untyped_table(handle).map_err(db_err)?;
                let stats = table.stats().map_err(db_err)?;
                tables.push(TableInfo {
                    name,
                    entries: table.len().map_err(db_err)?,
                    stored_bytes: stats.stored_bytes(),
                    metadata_bytes: stats.metadata_bytes(),
                    fragmented_bytes: stats.fragmented_bytes(),
                    tree_height: stats.tree_height(),
                });
            }
        }
        tables.sort_by_key(|t| std::cmp::Reverse(t.stored_bytes + t.metadata_bytes));
        let write = self.db.begin_write().map_err(db_err)?;
        let stats = write.stats().map_err(db_err)?;
        write.abort().map_err(db_err)?;
        let page_size = stats.page_size();
        let allocated_bytes = stats.allocated_pages() * page_size as u64;
        let used = stats.stored_bytes() + stats.metadata_bytes();
        let file_bytes = self.file_bytes();
        let free_bytes = file_bytes.saturating_sub(used);
        let growth = self.growth(stats.stored_bytes())?;
        Ok(Analysis {
            file_bytes,
            page_size,
            allocated_bytes,
            stored_bytes: stats.stored_bytes(),
            metadata_bytes: stats.metadata_bytes(),
            fragmented_bytes: stats.fragmented_bytes(),
            free_bytes,
            fragmentation_percent: if file_bytes == 0 {
                0.0
            } else {
                free_bytes as f64 * 100.0 / file_bytes as f64
            },
            compaction_pending: self.dir.join(super::COMPACT_MARKER).exists(),
            tables,
            growth,
        })
    }
}

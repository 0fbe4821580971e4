//! Where spend and budgets set at run time are kept: redb, so both
//! survive restarts and `kill -9` (every record commits durably before
//! the call that spent it answers).

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition};

use super::model::{Limit, Spend, Window};
use crate::storage::{Result, Storage, db_err};

/// (subject, window key, window start) → (tokens in, tokens out, cost
/// in millionths).
const SPEND: TableDefinition<(&str, &str, u64), (u64, u64, u64)> =
    TableDefinition::new("budget_spend");
/// subject → JSON list of limits: budgets set over REST/CLI or at deploy.
const LIMITS: TableDefinition<&str, &[u8]> = TableDefinition::new("budget_limits");

/// Windows of the past kept per (subject, window): enough to show the
/// previous ones, few enough that a long-lived subject stays small.
const KEEP_WINDOWS: u64 = 48;

pub struct BudgetStore<'a> {
    pub storage: &'a Storage,
}

impl BudgetStore<'_> {
    /// What `subject` spent in the window of `window` starting at `start`.
    pub fn spent(&self, subject: &str, window: &Window, start: u64) -> Result<Spend> {
        self.storage.read(|txn| {
            let table = match txn.open_table(SPEND) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Spend::default()),
                Err(e) => return Err(db_err(e)),
            };
            let row = table
                .get((subject, window.key().as_str(), start))
                .map_err(db_err)?;
            Ok(row.map_or_else(Spend::default, |v| {
                let (tokens_in, tokens_out, cost_micros) = v.value();
                Spend {
                    tokens_in,
                    tokens_out,
                    cost_micros,
                }
            }))
        })
    }

    /// Adds `spend` to each (subject, window, start) of `rows`, in one
    /// durable transaction, and drops rows older than [`KEEP_WINDOWS`]
    /// windows of each.
    pub fn add(&self, rows: &[(String, Window, (u64, u64))], spend: Spend) -> Result<()> {
        self.storage.write(|txn| {
            let mut table = txn.open_table(SPEND).map_err(db_err)?;
            for (subject, window, (start, end)) in rows {
                let key = window.key();
                let mut now = table
                    .get((subject.as_str(), key.as_str(), *start))
                    .map_err(db_err)?
                    .map_or_else(Spend::default, |v| {
                        let (tokens_in, tokens_out, cost_micros) = v.value();
                        Spend {
                            tokens_in,
                            tokens_out,
                            cost_micros,
                        }
                    });
                now.add(spend);
                table
                    .insert(
                        (subject.as_str(), key.as_str(), *start),
                        (now.tokens_in, now.tokens_out, now.cost_micros),
                    )
                    .map_err(db_err)?;
                let keep_from = start.saturating_sub((end - start).saturating_mul(KEEP_WINDOWS));
                if keep_from > 0 {
                    table
                        .retain_in(
                            (subject.as_str(), key.as_str(), 0)
                                ..(subject.as_str(), key.as_str(), keep_from),
                            |_, _| false,
                        )
                        .map_err(db_err)?;
                }
            }
            Ok(())
        })
    }

    /// Every subject with spend rows.
    pub fn subjects_with_spend(&self) -> Result<Vec<String>> {
        self.storage.read(|txn| {
            let table = match txn.open_table(SPEND) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            };
            let mut out: Vec<String> = Vec::new();
            for row in table.iter().map_err(db_err)? {
                let (key, _) = row.map_err(db_err)?;
                let subject = key.value().0;
                if out.last().map(String::as_str) != Some(subject) {
                    out.push(subject.to_string());
                }
                if out.len() >= 10_000 {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Budgets set at run time, by subject.
    pub fn limits(&self) -> Result<BTreeMap<String, Vec<Limit>>> {
        self.storage.read(|txn| {
            let table = match txn.open_table(LIMITS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
                Err(e) => return Err(db_err(e)),
            };
            let mut out = BTreeMap::new();
            for row in table.iter().map_err(db_err)? {
                let (key, value) = row.map_err(db_err)?;
                // A row this version cannot read is skipped, not fatal.
                if let Ok(limits) = serde_json::from_slice::<Vec<Limit>>(value.value()) {
                    out.insert(key.value().to_string(), limits);
                }
            }
            Ok(out)
        })
    }

    /// Sets (or with `None`, removes) the budget of `subject`.
    pub fn set_limits(&self, subject: &str, limits: Option<&[Limit]>) -> Result<bool> {
        self.storage.write(|txn| {
            let mut table = txn.open_table(LIMITS).map_err(db_err)?;
            match limits {
                Some(limits) => {
                    let json = serde_json::to_vec(limits).map_err(|source| {
                        crate::storage::StorageError::CorruptRecord {
                            what: format!("budget {subject}"),
                            source,
                        }
                    })?;
                    table.insert(subject, json.as_slice()).map_err(db_err)?;
                    Ok(true)
                }
                None => Ok(table.remove(subject).map_err(db_err)?.is_some()),
            }
        })
    }
}

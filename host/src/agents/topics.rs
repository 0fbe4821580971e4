//! Topics: which agents subscribe to what. Kept by agent name in the
//! `topic_subscriptions` table (so a config agent keeps its subscriptions
//! across reloads, and a restart keeps them all), mirrored in memory for
//! the registry's lookups. Publishing is `protocols::publish`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use redb::{ReadableTable, TableDefinition};

use crate::storage::{Result, Storage, db_err};

/// (topic, agent name) → nothing: one row per subscription.
const SUBSCRIPTIONS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("topic_subscriptions");

pub use crate::protocols::publish::check_topic;

/// Most topics one agent may subscribe to.
pub const MAX_PER_AGENT: usize = 64;

/// Subscriptions in memory: topic → agent names.
#[derive(Default)]
pub struct Topics {
    by_topic: RwLock<BTreeMap<String, BTreeSet<String>>>,
}

impl Topics {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.by_topic.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.by_topic.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The agents subscribed to `topic`, in name order.
    pub fn subscribers(&self, topic: &str) -> Vec<String> {
        self.read()
            .get(topic)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The topics `agent` subscribes to.
    pub fn of_agent(&self, agent: &str) -> Vec<String> {
        self.read()
            .iter()
            .filter(|(_, names)| names.contains(agent))
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// Every topic with its subscribers.
    pub fn all(&self) -> Vec<(String, Vec<String>)> {
        self.read()
            .iter()
            .map(|(topic, names)| (topic.clone(), names.iter().cloned().collect()))
            .collect()
    }

    pub(crate) fn set(&self, topic: &str, agent: &str, subscribed: bool) {
        let mut map = self.write();
        if subscribed {
            map.entry(topic.to_string())
                .or_default()
                .insert(agent.to_string());
        } else if let Some(names) = map.get_mut(topic) {
            names.remove(agent);
            if names.is_empty() {
                map.remove(topic);
            }
        }
    }

    pub(crate) fn forget_agent(&self, agent: &str) {
        let mut map = self.write();
        map.retain(|_, names| {
            names.remove(agent);
            !names.is_empty()
        });
    }

    /// Loads what the table holds.
    pub(crate) fn load(&self, storage: &Storage) -> Result<usize> {
        let rows = storage.write(|txn| {
            let table = txn.open_table(SUBSCRIPTIONS).map_err(db_err)?;
            let mut rows = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (key, _) = entry.map_err(db_err)?;
                let (topic, agent) = key.value();
                rows.push((topic.to_string(), agent.to_string()));
            }
            Ok(rows)
        })?;
        let count = rows.len();
        for (topic, agent) in rows {
            self.set(&topic, &agent, true);
        }
        Ok(count)
    }
}

/// Stores (or deletes) one subscription.
pub(crate) fn store(storage: &Storage, topic: &str, agent: &str, subscribed: bool) -> Result<()> {
    storage.write(|txn| {
        let mut table = txn.open_table(SUBSCRIPTIONS).map_err(db_err)?;
        if subscribed {
            table.insert((topic, agent), ()).map_err(db_err)?;
        } else {
            table.remove((topic, agent)).map_err(db_err)?;
        }
        Ok(())
    })
}

/// Deletes every subscription of `agent` (it was removed).
pub(crate) fn forget(storage: &Storage, agent: &str, topics: &[String]) -> Result<()> {
    storage.write(|txn| {
        let mut table = txn.open_table(SUBSCRIPTIONS).map_err(db_err)?;
        for topic in topics {
            table.remove((topic.as_str(), agent)).map_err(db_err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_come_and_go() {
        let topics = Topics::default();
        topics.set("news", "b", true);
        topics.set("news", "a", true);
        topics.set("sports", "a", true);
        assert_eq!(topics.subscribers("news"), ["a", "b"]);
        assert_eq!(topics.of_agent("a"), ["news", "sports"]);
        topics.set("news", "b", false);
        assert_eq!(topics.subscribers("news"), ["a"]);
        topics.forget_agent("a");
        assert!(topics.all().is_empty());
    }
}

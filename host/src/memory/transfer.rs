//! Export and import: the whole graph as JSON records, one per line
//! (entities of a scope first, then its relations, so an import can replay
//! the lines in order).

use serde::{Deserialize, Serialize};

use super::model::{EntityInput, MemoryError, Relation, Result, ScopeKey};
use super::store::{GraphReader, HistoryReader};
use super::temporal::FactVersion;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Record {
    Entity {
        scope: String,
        #[serde(flatten)]
        entity: EntityRecord,
    },
    Relation {
        scope: String,
        #[serde(flatten)]
        relation: Relation,
    },
    /// An entity's facts in time: when each current fact was recorded and
    /// holds, and the retired ones (after the scope's relations).
    History {
        scope: String,
        entity: String,
        versions: Vec<FactVersion>,
    },
}

impl Record {
    pub fn scope(&self) -> &str {
        match self {
            Record::Entity { scope, .. }
            | Record::Relation { scope, .. }
            | Record::History { scope, .. } => scope,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityRecord {
    pub name: String,
    pub entity_type: String,
    pub observations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl From<EntityRecord> for EntityInput {
    fn from(e: EntityRecord) -> Self {
        EntityInput {
            name: e.name,
            entity_type: e.entity_type,
            observations: e.observations,
            metadata: e.metadata,
            valid_from: None,
            valid_to: None,
        }
    }
}

/// Checks a scope key read from a file.
pub fn parse_scope(text: &str) -> Result<ScopeKey> {
    match text {
        "global" => Ok(ScopeKey::global()),
        "workspace" => Ok(ScopeKey::workspace()),
        other => match other.strip_prefix("agent:") {
            Some(id) if !id.is_empty() => Ok(ScopeKey::agent(id)),
            _ => Err(MemoryError::Invalid(format!(
                "unknown scope `{text}`; expected global, workspace or agent:<id>"
            ))),
        },
    }
}

/// Emits every record; answers how many.
pub fn export(
    reader: &GraphReader,
    history: &HistoryReader,
    emit: &mut dyn FnMut(Record) -> std::io::Result<()>,
) -> Result<usize> {
    const PAGE: usize = 500;
    let io = |e: std::io::Error| MemoryError::Storage(format!("writing the export: {e}"));
    let mut count = 0;
    for scope in reader.scopes()? {
        let mut relations = Vec::new();
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = super::graph::page(reader, &scope, cursor.as_deref(), PAGE)?;
            for entity in page.entities {
                names.push(entity.name.clone());
                emit(Record::Entity {
                    scope: scope.to_string(),
                    entity: EntityRecord {
                        name: entity.name,
                        entity_type: entity.entity_type,
                        observations: entity.observations,
                        metadata: entity.metadata,
                    },
                })
                .map_err(io)?;
                count += 1;
            }
            relations.extend(page.relations);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for relation in relations {
            emit(Record::Relation {
                scope: scope.to_string(),
                relation,
            })
            .map_err(io)?;
            count += 1;
        }
        for entity in names {
            let Some(versions) = history.history(&scope, &entity)? else {
                continue;
            };
            if versions.is_empty() {
                continue;
            }
            emit(Record::History {
                scope: scope.to_string(),
                entity,
                versions,
            })
            .map_err(io)?;
            count += 1;
        }
    }
    Ok(count)
}

//! `caxton storage verify`: the database's own soundness, then the
//! cross-checks only Caxton can make — every agent, tool and token record
//! decodes, every agent's component is there, memory's relations,
//! observations, embeddings (and, deep, keyword postings) point at what
//! exists. Runs inside the server (one snapshot while it serves) or, with
//! no server, on the data directory directly, where `deep` also runs redb's
//! integrity check (it needs the file to itself).

use serde::{Deserialize, Serialize};

use crate::memory::store::StoreCheck;
use crate::storage::Storage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The database answers; counts.
    Quick,
    /// Every record decodes and points at what exists.
    Full,
    /// Full, plus every keyword posting, plus redb's integrity check offline.
    Deep,
}

/// One check and what it found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub level: Level,
    pub ok: bool,
    pub checks: Vec<Check>,
}

fn check(name: &str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name: name.into(),
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name: name.into(),
            ok: false,
            detail,
        },
    }
}

/// The checks at `level` on `storage`; `memory` runs memory's own check
/// (`true`: with keyword postings). Blocking.
pub fn run(
    storage: &Storage,
    level: Level,
    memory: impl FnOnce(bool) -> Result<StoreCheck, String>,
) -> Report {
    let mut checks = Vec::new();
    let agents = crate::agents::store::all(storage);
    checks.push(check(
        "agent records",
        match &agents {
            Ok(records) => Ok(format!("{} agents", records.len())),
            Err(e) => Err(e.to_string()),
        },
    ));
    if level != Level::Quick {
        if let Ok(records) = &agents {
            let missing: Vec<String> = records
                .iter()
                .filter(|r| crate::agents::store::component(storage, &r.component_sha256).is_err())
                .map(|r| r.name.clone())
                .collect();
            checks.push(check(
                "agent components",
                if missing.is_empty() {
                    Ok(format!("{} components present", records.len()))
                } else {
                    Err(format!(
                        "missing for {}: deploy those agents again",
                        missing.join(", ")
                    ))
                },
            ));
        }
        checks.push(check(
            "tool components",
            match crate::tools::store::all(storage) {
                Ok(tools) => {
                    let bad: Vec<String> = tools
                        .iter()
                        .filter_map(|t| t.as_ref().err().map(ToString::to_string))
                        .collect();
                    if bad.is_empty() {
                        Ok(format!("{} tools", tools.len()))
                    } else {
                        Err(bad.join("; "))
                    }
                }
                Err(e) => Err(e.to_string()),
            },
        ));
        checks.push(check(
            "memory",
            memory(level == Level::Deep).and_then(|m| {
                let detail = format!(
                    "{} entities, {} relations, {} observations{}",
                    m.records,
                    m.relations,
                    m.observations,
                    if level == Level::Deep {
                        format!(", {} keyword postings", m.postings)
                    } else {
                        String::new()
                    }
                );
                if m.problems == 0 {
                    Ok(detail)
                } else {
                    Err(format!(
                        "{detail}: {} problems, e.g. {} — `caxton memory optimize --rebuild-index` rebuilds what is derived",
                        m.problems,
                        m.examples.join("; ")
                    ))
                }
            }),
        ));
    }
    let ok = checks.iter().all(|c| c.ok);
    Report { level, ok, checks }
}

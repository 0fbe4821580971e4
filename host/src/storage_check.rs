//! `caxton storage verify`: the database's own soundness, then the
//! cross-checks only Caxton can make — every agent, tool and token record
//! decodes, every agent's component is there, memory's relations,
//! observations, embeddings (and, deep, keyword postings) point at what
//! exists, and every record of the recordings' log reads back. Runs inside the server (one snapshot while it serves) or, with
//! no server, on the data directory directly, where `deep` also runs redb's
//! integrity check (it needs the file to itself).

use serde::{Deserialize, Serialize};

use crate::memory::store::StoreCheck;
use crate::storage::Storage;

/// How far `storage verify` looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StorageCheckLevel)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StorageCheck)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What `storage verify` found: every check, and whether all passed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StorageReport)]
pub struct Report {
    pub level: Level,
    pub ok: bool,
    pub checks: Vec<Check>,
    /// Records looked at (agents, tools, entities, relations,
    /// observations) and how many of them had a problem.
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub problems: u64,
}

impl Report {
    /// Share of the records with a problem, in whole percent (rounded up:
    /// one bad record in many is 1, not 0).
    pub fn corruption_percent(&self) -> u64 {
        if self.problems == 0 {
            0
        } else {
            (self.problems.saturating_mul(100))
                .div_ceil(self.records.max(1))
                .min(100)
        }
    }
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
    let (mut records, mut problems) = (0u64, 0u64);
    let agents = crate::agents::store::all(storage);
    match &agents {
        Ok(list) => records += list.len() as u64,
        Err(_) => problems += 1,
    }
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
            problems += missing.len() as u64;
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
                    records += tools.len() as u64;
                    problems += bad.len() as u64;
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
                records += m.records + m.relations + m.observations;
                problems += m.problems;
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
        checks.push(check(
            "recordings",
            match crate::recordings::check(storage.dir()) {
                Ok(log) if log.damaged.is_empty() => Ok(format!(
                    "{} conversations in {} segment file{}, {} bytes",
                    log.conversations,
                    log.segments,
                    if log.segments == 1 { "" } else { "s" },
                    log.bytes
                )),
                Ok(log) => {
                    problems += log.damaged.len() as u64;
                    Err(format!(
                        "damaged records in {} — the server skips the rest of such a segment; delete the file to drop those recordings",
                        log.damaged.join("; ")
                    ))
                }
                Err(e) => Err(e.to_string()),
            },
        ));
    }
    let ok = checks.iter().all(|c| c.ok);
    Report {
        level,
        ok,
        checks,
        records,
        problems: if ok { 0 } else { problems.max(1) },
    }
}

/// What `storage repair` did (or, without `applied`, would do), and what
/// it cannot repair.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StorageRepairReport)]
pub struct RepairReport {
    pub applied: bool,
    pub memory: crate::memory::store::StoreRepair,
    /// One line per kind of fix.
    pub fixed: Vec<String>,
    /// Problems no repair can fix (a backup can), with what to do.
    pub left: Vec<String>,
}

impl RepairReport {
    /// Everything found is repairable (`storage repair --can-repair`).
    pub fn repairable(&self) -> bool {
        self.left.is_empty()
    }
}

/// Repairs what dangles or is derived (`apply`), or says what it would do.
/// Records a user wrote are never dropped: those problems are `left`.
pub fn repair(
    storage: &Storage,
    apply: bool,
    memory: impl FnOnce(bool) -> Result<crate::memory::store::StoreRepair, String>,
) -> RepairReport {
    let mut left = Vec::new();
    match crate::agents::store::all(storage) {
        Ok(records) => {
            let missing: Vec<String> = records
                .iter()
                .filter(|r| crate::agents::store::component(storage, &r.component_sha256).is_err())
                .map(|r| r.name.clone())
                .collect();
            if !missing.is_empty() {
                left.push(format!(
                    "agents without their component: {} — deploy them again, or restore a backup",
                    missing.join(", ")
                ));
            }
        }
        Err(e) => left.push(format!("agent records: {e} — restore a backup")),
    }
    match crate::tools::store::all(storage) {
        Ok(tools) => {
            for bad in tools.iter().filter_map(|t| t.as_ref().err()) {
                left.push(format!("{bad} — remove the tool and deploy it again"));
            }
        }
        Err(e) => left.push(format!("tool records: {e} — restore a backup")),
    }
    let memory = match memory(apply) {
        Ok(done) => done,
        Err(e) => {
            left.push(format!("memory tables: {e} — restore a backup"));
            Default::default()
        }
    };
    if memory.unreadable_entities > 0 {
        left.push(format!(
            "{} memory entities have unreadable records — restore a backup (`caxton restore --latest-backup`)",
            memory.unreadable_entities
        ));
    }
    let verb = if apply { "removed" } else { "would remove" };
    let mut fixed = Vec::new();
    for (count, what) in [
        (memory.relations_removed, "relations to missing entities"),
        (
            memory.reverse_entries_removed,
            "stray reverse-index entries",
        ),
        (memory.names_removed, "names of missing entities"),
        (memory.documents_removed, "documents of missing entities"),
        (
            memory.observations_removed,
            "observations of missing documents",
        ),
        (memory.embeddings_removed, "embeddings of missing documents"),
        (
            memory.postings_removed,
            "keyword postings of missing documents",
        ),
    ] {
        if count > 0 {
            fixed.push(format!("{verb} {count} {what}"));
        }
    }
    if memory.reverse_entries_added > 0 {
        fixed.push(format!(
            "{} {} missing reverse-index entries",
            if apply { "restored" } else { "would restore" },
            memory.reverse_entries_added
        ));
    }
    if apply && memory.fixes() > 0 {
        fixed.push("rebuilt the vector index from the embeddings left".into());
    }
    RepairReport {
        applied: apply,
        memory,
        fixed,
        left,
    }
}

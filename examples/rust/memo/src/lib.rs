//! Memo: remembers facts in its private memory and recalls them by search,
//! through the host's `memory` interface.
//!
//! `remember NAME TYPE: FACT` stores an entity (or adds the fact to it);
//! `recall QUERY` answers the names of the best matches, best first;
//! `shared QUERY` searches the `global` scope (denied unless granted);
//! `history NAME` lists every version of NAME's facts (`fact` or
//! `fact (retired)`); `as-of TIME NAME` answers NAME's facts as they held
//! then (a fact `key: value` replaces the entity's previous one with the
//! same key, which stays in its history).

use caxton_guest_sdk::memory::{self, Entity, Scope, time};
use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent};

struct Memo;

fn recall(scope: Scope, query: &str) -> Result<Option<Reply>, Error> {
    let hits = memory::search(scope, query, 3)?;
    let names: Vec<String> = hits.into_iter().map(|h| h.entity.name).collect();
    Ok(Some(Reply::inform(names.join(","))))
}

impl Agent for Memo {
    fn new(_config_json: &str) -> Result<Self, Error> {
        Ok(Memo)
    }

    fn describe() -> AgentInfo {
        AgentInfo::new(
            "Remembers facts and recalls them: remember NAME TYPE: FACT, recall QUERY, history NAME, as-of TIME NAME",
            &["memo"],
        )
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        let content = msg.content.trim();
        if let Some(rest) = content.strip_prefix("remember ") {
            let (head, fact) = rest
                .split_once(':')
                .ok_or_else(|| Error::invalid_input("expected `remember NAME TYPE: FACT`"))?;
            let (name, kind) = head
                .trim()
                .split_once(' ')
                .ok_or_else(|| Error::invalid_input("expected `remember NAME TYPE: FACT`"))?;
            memory::create_entities(
                Scope::Agent,
                &[Entity::new(name, kind.trim(), &[fact.trim()])],
            )?;
            return Ok(Some(Reply::inform(format!("remembered {name}"))));
        }
        if let Some(query) = content.strip_prefix("recall ") {
            return recall(Scope::Agent, query);
        }
        if let Some(query) = content.strip_prefix("shared ") {
            return recall(Scope::Global, query);
        }
        if let Some(name) = content.strip_prefix("history ") {
            let versions = time::history(Scope::Agent, name.trim())?;
            let lines: Vec<String> = versions
                .into_iter()
                .map(|v| match v.retired_at {
                    Some(_) => format!("{} (retired)", v.fact),
                    None => v.fact,
                })
                .collect();
            return Ok(Some(Reply::inform(lines.join("; "))));
        }
        if let Some(rest) = content.strip_prefix("as-of ") {
            let (when, name) = rest
                .trim()
                .split_once(' ')
                .ok_or_else(|| Error::invalid_input("expected `as-of TIME NAME`"))?;
            let found = time::open_nodes_at(
                Scope::Agent,
                &[name.trim().to_string()],
                &time::At::as_of(when),
            )?;
            let facts: Vec<String> = found.into_iter().flat_map(|e| e.observations).collect();
            return Ok(Some(Reply::inform(facts.join("; "))));
        }
        Ok(Some(Reply::not_understood(
            "try `remember NAME TYPE: FACT` or `recall QUERY`",
        )))
    }
}

export_agent!(Memo);

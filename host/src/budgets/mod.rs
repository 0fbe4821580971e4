//! LLM budgets: how much an agent, a principal (a token's name) or the
//! whole server may spend on models per window, in tokens and, for
//! models with a price (`budgets.prices`), in money.
//!
//! Enforced where every model call passes, the `llm` import (config
//! agents' interpreter and WASM agents alike): before the call, each
//! budget that applies is compared with what was spent in its current
//! window plus the prompt's estimated size. A call whose prompt alone
//! would pass a limit is refused before it reaches the provider, with an
//! error naming the budget, the spend and when the window resets;
//! otherwise the call's `max_tokens` is lowered to what is left, so a
//! token limit holds even for the completion. What the provider reports
//! is recorded after the call, durably, in the hour, day and month
//! windows (always, so a limit set later knows the spend before it) and
//! in any other window a limit names.
//!
//! Where a budget comes from, first found wins: set at run time (REST,
//! `caxton budgets set`, or `budget` at deploy), the agent's file
//! (`budget:` in the frontmatter), `caxton.yaml` (`budgets:`).

pub mod model;
pub mod settings;
mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

pub use model::{Limit, LimitsSpec, Price, Spend, Subject, Window};
pub use settings::BudgetSettings;
use store::BudgetStore;

use crate::storage::{Storage, StorageError};

/// A call refused by a budget, or a budget that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("{0}")]
    Exceeded(Box<Refusal>),
    #[error("the LLM budget cannot be checked: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Invalid(String),
}

/// Why a call was refused: the budget, its spend, when it resets.
#[derive(Debug, thiserror::Error)]
#[error(
    "the LLM budget of {subject} is spent: {spent} of {limit} per {window} used{need}; it resets at {resets_at} (`caxton budgets show {subject}`; raise it with `caxton budgets set {subject}`)"
)]
pub struct Refusal {
    pub subject: String,
    pub window: Window,
    /// What is limited, e.g. `100 tokens`.
    pub limit: String,
    pub spent: String,
    /// What the call would add, when known.
    pub need: String,
    pub resets_at: String,
}

/// One model call, as budgets see it.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub agent: &'a str,
    /// Who sent the message being handled, when a principal did.
    pub principal: Option<&'a str>,
    pub model: &'a str,
    /// The prompt's size in tokens, estimated before the call.
    pub estimated_in: u64,
    /// The conversation the call is made in: an agent asked by another
    /// spends from the asker's budget too (see [`Budgets::on_behalf_of`]).
    pub conversation: Option<&'a str>,
}

/// While it lives, model calls in one conversation by agents other than
/// the asker count against the asker's budget too.
pub struct OnBehalf<'a> {
    budgets: &'a Budgets,
    conversation: String,
}

impl Drop for OnBehalf<'_> {
    fn drop(&mut self) {
        self.budgets
            .on_behalf
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.conversation);
    }
}

/// Where a subject's budget came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// REST, CLI or deploy.
    Set,
    /// The agent's definition file.
    Definition,
    /// `caxton.yaml`.
    Config,
    /// No budget: spend only.
    None,
}

/// One limit with its current window's spend.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LimitStatus {
    pub limit: Limit,
    pub window_start: String,
    pub resets_at: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// In the price table's currency.
    pub cost: f64,
    /// The highest share of any quantity the limit sets, in percent.
    pub percent: f64,
}

/// A subject's budget and spend.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetStatus {
    pub subject: String,
    pub source: Source,
    pub limits: Vec<LimitStatus>,
    /// Spend in the current hour, day and month, whatever the limits.
    pub spent: BTreeMap<String, SpendView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SpendView {
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost: f64,
}

impl From<Spend> for SpendView {
    fn from(s: Spend) -> Self {
        SpendView {
            tokens_in: s.tokens_in,
            tokens_out: s.tokens_out,
            cost: s.cost_micros as f64 / 1e6,
        }
    }
}

/// Tokens and cost since start, by (agent, model), for `/metrics`.
pub type Counters = BTreeMap<(String, String), Spend>;

/// Budgets and spend, for the whole server.
pub struct Budgets {
    storage: Arc<Storage>,
    settings: BudgetSettings,
    /// From agents' definition files, by agent name.
    declared: RwLock<HashMap<String, Vec<Limit>>>,
    /// Set at run time (a copy of the table), by subject.
    set: RwLock<BTreeMap<String, Vec<Limit>>>,
    /// Windows already warned about (subject, window, start).
    warned: Mutex<HashSet<(String, Window, u64)>>,
    counters: Mutex<Counters>,
    refusals: Mutex<BTreeMap<String, u64>>,
    /// Conversation → the agent that asked in it, while it waits.
    on_behalf: Mutex<HashMap<String, String>>,
}

fn now_secs() -> u64 {
    crate::clock::now_unix_ms() / 1000
}

fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Budgets {
    pub fn open(storage: Arc<Storage>, settings: BudgetSettings) -> Result<Budgets, BudgetError> {
        settings.validate().map_err(BudgetError::Invalid)?;
        let set = BudgetStore { storage: &storage }.limits()?;
        Ok(Budgets {
            storage,
            settings,
            declared: RwLock::new(HashMap::new()),
            set: RwLock::new(set),
            warned: Mutex::new(HashSet::new()),
            counters: Mutex::new(BTreeMap::new()),
            refusals: Mutex::new(BTreeMap::new()),
            on_behalf: Mutex::new(HashMap::new()),
        })
    }

    fn store(&self) -> BudgetStore<'_> {
        BudgetStore {
            storage: &self.storage,
        }
    }

    /// The budget agent `agent`'s definition file declares (empty: none).
    pub fn declare(&self, agent: &str, limits: Vec<Limit>) {
        let mut declared = self.declared.write().unwrap_or_else(|p| p.into_inner());
        if limits.is_empty() {
            declared.remove(agent);
        } else {
            declared.insert(agent.to_string(), limits);
        }
    }

    /// Sets `subject`'s budget at run time (kept across restarts), or
    /// with `None` removes it (the definition's or configuration's
    /// applies again). Answers whether something changed.
    pub fn set(&self, subject: &Subject, limits: Option<Vec<Limit>>) -> Result<bool, BudgetError> {
        if let Some(limits) = &limits {
            model::validate(limits).map_err(BudgetError::Invalid)?;
        }
        let key = subject.to_string();
        let changed = self.store().set_limits(&key, limits.as_deref())?;
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        match limits {
            Some(limits) => {
                set.insert(key, limits);
            }
            None => {
                set.remove(&key);
            }
        }
        Ok(changed)
    }

    /// `subject`'s limits and where they come from.
    pub fn limits(&self, subject: &Subject) -> (Vec<Limit>, Source) {
        let key = subject.to_string();
        if let Some(limits) = self.set.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return (limits.clone(), Source::Set);
        }
        if let Subject::Agent(name) = subject
            && let Some(limits) = self
                .declared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
        {
            return (limits.clone(), Source::Definition);
        }
        let configured = match subject {
            Subject::Server => Some(&self.settings.server),
            Subject::Agent(name) => self.settings.agents.get(name),
            Subject::Principal(name) => self.settings.principals.get(name),
        };
        match configured {
            Some(limits) if !limits.is_empty() => (limits.clone(), Source::Config),
            _ => (Vec::new(), Source::None),
        }
    }

    /// Agent `asker` asks another agent in `conversation`: until the
    /// guard is dropped (the answer came), the other agents' model calls
    /// in it count against `asker`'s budget as well as their own, so an
    /// agent passes on at most what it has left.
    pub fn on_behalf_of(&self, conversation: &str, asker: &str) -> OnBehalf<'_> {
        let mut map = self.on_behalf.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a guard always removes its entry, so this only fills
        // with that many asks waiting at once.
        if map.len() < 100_000 {
            map.insert(conversation.to_string(), asker.to_string());
        }
        OnBehalf {
            budgets: self,
            conversation: conversation.to_string(),
        }
    }

    fn subjects(&self, call: &Call<'_>) -> Vec<Subject> {
        let mut out = vec![Subject::Agent(call.agent.to_string())];
        if let Some(asker) = call.conversation.and_then(|c| {
            self.on_behalf
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(c)
                .cloned()
        }) && asker != call.agent
        {
            out.push(Subject::Agent(asker));
        }
        if let Some(principal) = call.principal {
            out.push(Subject::Principal(principal.to_string()));
        }
        out.push(Subject::Server);
        out
    }

    fn price(&self, model: &str) -> Option<Price> {
        self.settings.prices.get(model).copied()
    }

    /// Checks `call` against every budget that applies. Answers the most
    /// completion tokens the call may spend (`None`: no limit), or why it
    /// is refused. Calls of one subject running at the same moment each
    /// see the spend recorded before them, so together they may pass a
    /// limit by what they are completing; the next call is refused.
    pub fn check(&self, call: &Call<'_>) -> Result<Option<u64>, BudgetError> {
        let now = now_secs();
        let price = self.price(call.model);
        let mut room: Option<u64> = None;
        let mut narrow = |left: u64| room = Some(room.map_or(left, |r| r.min(left)));
        for subject in self.subjects(call) {
            let (limits, _) = self.limits(&subject);
            for limit in &limits {
                let (start, end) = limit.per.bounds(now);
                let spent = self
                    .store()
                    .spent(&subject.to_string(), &limit.per, start)?;
                let refuse =
                    |what: &str, limit_value: String, spent_value: String, need: String| {
                        self.refused(&subject);
                        BudgetError::Exceeded(Box::new(Refusal {
                            subject: subject.to_string(),
                            window: limit.per,
                            limit: format!("{limit_value} {what}"),
                            spent: spent_value,
                            need,
                            resets_at: rfc3339(end),
                        }))
                    };
                let need = |n: u64| format!(", and this call's prompt is about {n} tokens");
                if let Some(max) = limit.tokens {
                    let after_prompt = spent.tokens().saturating_add(call.estimated_in);
                    if after_prompt >= max {
                        return Err(refuse(
                            "tokens",
                            max.to_string(),
                            spent.tokens().to_string(),
                            need(call.estimated_in),
                        ));
                    }
                    narrow(max - after_prompt);
                }
                if let Some(max) = limit.tokens_in
                    && spent.tokens_in.saturating_add(call.estimated_in) > max
                {
                    return Err(refuse(
                        "prompt tokens",
                        max.to_string(),
                        spent.tokens_in.to_string(),
                        need(call.estimated_in),
                    ));
                }
                if let Some(max) = limit.tokens_out {
                    if spent.tokens_out >= max {
                        return Err(refuse(
                            "completion tokens",
                            max.to_string(),
                            spent.tokens_out.to_string(),
                            String::new(),
                        ));
                    }
                    narrow(max - spent.tokens_out);
                }
                if let Some(max) = limit.cost {
                    let max_micros = (max * 1e6) as u64;
                    let prompt = price.map_or(0, |p| p.micros(call.estimated_in, 0));
                    let after_prompt = spent.cost_micros.saturating_add(prompt);
                    if after_prompt >= max_micros {
                        return Err(refuse(
                            "(cost)",
                            format!("{max}"),
                            format!("{:.6}", spent.cost_micros as f64 / 1e6),
                            String::new(),
                        ));
                    }
                    if let Some(p) = price.filter(|p| p.output_per_million > 0.0) {
                        let left = (max_micros - after_prompt) as f64 / p.output_per_million;
                        narrow(left.floor() as u64);
                    }
                }
            }
        }
        Ok(room)
    }

    fn refused(&self, subject: &Subject) {
        *self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(subject.to_string())
            .or_default() += 1;
    }

    /// Records what `call` spent (as the provider reported it). Answers
    /// the warnings to pass on (a budget past `warn_percent`, first time
    /// in its window).
    pub fn record(
        &self,
        call: &Call<'_>,
        tokens_in: u64,
        tokens_out: u64,
    ) -> Result<Vec<String>, BudgetError> {
        let now = now_secs();
        let spend = Spend {
            tokens_in,
            tokens_out,
            cost_micros: self
                .price(call.model)
                .map_or(0, |p| p.micros(tokens_in, tokens_out)),
        };
        let subjects = self.subjects(call);
        let mut rows = Vec::new();
        for subject in &subjects {
            let (limits, _) = self.limits(subject);
            let mut windows: Vec<Window> = Window::STANDARD.to_vec();
            windows.extend(limits.iter().map(|l| l.per));
            windows.sort();
            windows.dedup();
            for window in windows {
                rows.push((subject.to_string(), window, window.bounds(now)));
            }
        }
        self.store().add(&rows, spend)?;
        {
            let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            counters
                .entry((call.agent.to_string(), call.model.to_string()))
                .or_default()
                .add(spend);
        }
        let mut warnings = Vec::new();
        for subject in &subjects {
            // Most subjects have no limit: nothing to warn about, and no
            // spend to read back on the model call's path.
            if self.limits(subject).0.is_empty() {
                continue;
            }
            for status in self.status(subject)?.limits {
                if status.percent < f64::from(self.settings.warn_percent) {
                    continue;
                }
                let (start, _) = status.limit.per.bounds(now);
                let first = self
                    .warned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((subject.to_string(), status.limit.per, start));
                if first {
                    warnings.push(format!(
                        "the LLM budget of {subject} per {} is {:.0} % spent; it resets at {}",
                        status.limit.per, status.percent, status.resets_at
                    ));
                }
            }
        }
        Ok(warnings)
    }

    /// `subject`'s budget and spend now.
    pub fn status(&self, subject: &Subject) -> Result<BudgetStatus, BudgetError> {
        let now = now_secs();
        let key = subject.to_string();
        let (limits, source) = self.limits(subject);
        let mut out = Vec::new();
        for limit in limits {
            let (start, end) = limit.per.bounds(now);
            let spent = self.store().spent(&key, &limit.per, start)?;
            let share = |used: u64, max: Option<u64>| {
                max.map(|m| {
                    if m == 0 {
                        100.0
                    } else {
                        used as f64 * 100.0 / m as f64
                    }
                })
            };
            let cost_share = limit.cost.map(|m| {
                if m <= 0.0 {
                    100.0
                } else {
                    spent.cost_micros as f64 / 1e6 * 100.0 / m
                }
            });
            let percent = [
                share(spent.tokens(), limit.tokens),
                share(spent.tokens_in, limit.tokens_in),
                share(spent.tokens_out, limit.tokens_out),
                cost_share,
            ]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max);
            out.push(LimitStatus {
                limit,
                window_start: rfc3339(start),
                resets_at: rfc3339(end),
                tokens_in: spent.tokens_in,
                tokens_out: spent.tokens_out,
                cost: spent.cost_micros as f64 / 1e6,
                percent: (percent * 10.0).round() / 10.0,
            });
        }
        let mut spent = BTreeMap::new();
        for window in Window::STANDARD {
            let (start, _) = window.bounds(now);
            spent.insert(
                window.key(),
                self.store().spent(&key, &window, start)?.into(),
            );
        }
        Ok(BudgetStatus {
            subject: key,
            source,
            limits: out,
            spent,
        })
    }

    /// Every subject with a budget or any spend on record.
    pub fn list(&self) -> Result<Vec<BudgetStatus>, BudgetError> {
        let mut subjects: std::collections::BTreeSet<String> =
            self.store().subjects_with_spend()?.into_iter().collect();
        subjects.insert("server".into());
        subjects.extend(
            self.set
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned(),
        );
        subjects.extend(
            self.declared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .map(|a| format!("agent:{a}")),
        );
        subjects.extend(self.settings.agents.keys().map(|a| format!("agent:{a}")));
        subjects.extend(
            self.settings
                .principals
                .keys()
                .map(|p| format!("principal:{p}")),
        );
        subjects
            .iter()
            .filter_map(|s| Subject::parse(s).ok())
            .map(|s| self.status(&s))
            .collect()
    }

    /// Tokens and cost since start, by (agent, model).
    pub fn counters(&self) -> Counters {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Calls refused since start, by subject.
    pub fn refusals(&self) -> BTreeMap<String, u64> {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A prompt's size in tokens, estimated from its text before the call:
/// a character count over four (English averages about four characters
/// a token), rounded up, plus a few tokens of framing per message.
pub fn estimate_tokens<'a>(texts: impl Iterator<Item = &'a str>) -> u64 {
    texts
        .map(|t| (t.chars().count() as u64).div_ceil(4) + 4)
        .sum()
}

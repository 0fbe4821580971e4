//! Time on facts. Every observation and relation carries when it was true
//! in the world (`valid_from`, `valid_to`: given by its writer, or from
//! when it was written) and when memory recorded it and, once replaced,
//! retired it (`recorded_at`, `retired_at`: set here). A retired fact
//! leaves the current graph and its indexes in the write that retires it,
//! and stays in the entity's history until `memory cleanup
//! --retired-before` drops it.
//!
//! What retires a fact, applied in the write transaction, no model
//! involved:
//! - an *attribute* observation (`key: value`, a lowercase key of at most
//!   40 bytes) retires the entity's current observation with the same key;
//! - a relation whose type is declared single-valued
//!   (`memory.single_valued_relations`) retires the source's current
//!   relation of that type to any other target;
//! - an explicit `supersede` names the facts it retires.
//!
//! A replaced fact stops being valid where its replacement starts
//! (`valid_to` = the new fact's `valid_from`), so asking "as of" a past
//! date finds the fact that held then.

use serde::{Deserialize, Serialize};

use super::model::{MemoryError, Result};

/// Longest attribute key.
pub const MAX_KEY_BYTES: usize = 40;

/// The attribute key of an observation written `key: value`: a lowercase
/// ASCII word (letters, digits, `_`, `-`, inner single spaces) followed by
/// `": "` and a value. `None` for anything else ("Note: …", URLs, prose).
pub fn attribute_key(text: &str) -> Option<&str> {
    let (key, value) = text.split_once(": ")?;
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && !key.ends_with(' ')
        && !key.contains("  ")
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | ' '));
    (valid && !value.trim().is_empty()).then_some(key)
}

/// When a fact was true and when memory knew it, in milliseconds since the
/// Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub recorded_at: i64,
    pub valid_from: i64,
    /// `None`: still true, as far as memory knows.
    pub valid_to: Option<i64>,
}

/// How [`Times`] sit in a table row: `valid_to` open is `i64::MAX`.
pub type TimesRow = (i64, i64, i64);

impl Times {
    pub fn to_row(self) -> TimesRow {
        (
            self.recorded_at,
            self.valid_from,
            self.valid_to.unwrap_or(i64::MAX),
        )
    }

    pub fn from_row((recorded_at, valid_from, valid_to): TimesRow) -> Times {
        Times {
            recorded_at,
            valid_from,
            valid_to: (valid_to != i64::MAX).then_some(valid_to),
        }
    }

    /// The times of a fact from before times were kept: recorded and
    /// valid from its entity's creation.
    pub fn since(created: i64) -> Times {
        Times {
            recorded_at: created,
            valid_from: created,
            valid_to: None,
        }
    }

    /// The times of a fact written now with the writer's `validity`.
    pub fn written(now: i64, validity: &Validity) -> Times {
        Times {
            recorded_at: now,
            valid_from: validity.from.unwrap_or(now),
            valid_to: validity.to,
        }
    }
}

/// A time a caller gives in field `name` (RFC 3339, or `YYYY-MM-DD`), in
/// milliseconds since the Unix epoch.
pub fn parse_time(name: &str, text: &str) -> Result<i64> {
    crate::clock::parse_millis(text).ok_or_else(|| {
        MemoryError::Invalid(format!(
            "`{name}` is `{text}`, not a time; write RFC 3339 (2024-05-01T09:00:00Z) or a date (2024-05-01)"
        ))
    })
}

fn parse_optional_time(name: &str, text: Option<&str>) -> Result<Option<i64>> {
    text.map(|t| parse_time(name, t)).transpose()
}

/// The world time a writer gives a fact, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Validity {
    /// Parses `valid_from` / `valid_to` (RFC 3339, or `YYYY-MM-DD`).
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Validity> {
        let validity = Validity {
            from: parse_optional_time("valid_from", from)?,
            to: parse_optional_time("valid_to", to)?,
        };
        if let (Some(f), Some(t)) = (validity.from, validity.to)
            && t <= f
        {
            return Err(MemoryError::Invalid(
                "`valid_to` must be after `valid_from`".into(),
            ));
        }
        Ok(validity)
    }
}

/// A point of view in time: what held in the world `as_of`, as memory
/// knew it `known_at`. Neither: what memory holds now (current facts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct At {
    pub as_of: Option<i64>,
    pub known_at: Option<i64>,
}

impl At {
    pub fn parse(as_of: Option<&str>, known_at: Option<&str>) -> Result<At> {
        Ok(At {
            as_of: parse_optional_time("as_of", as_of)?,
            known_at: parse_optional_time("known_at", known_at)?,
        })
    }

    /// Now: current facts only.
    pub fn is_now(&self) -> bool {
        self.as_of.is_none() && self.known_at.is_none()
    }

    /// Whether a fact with `times`, retired at `retired_at` (if it was),
    /// is seen from this point of view.
    pub fn admits(&self, times: &Times, retired_at: Option<i64>) -> bool {
        if self.is_now() {
            return retired_at.is_none();
        }
        let world = self
            .as_of
            .is_none_or(|t| times.valid_from <= t && times.valid_to.is_none_or(|end| t < end));
        let known = self
            .known_at
            .is_none_or(|t| times.recorded_at <= t && retired_at.is_none_or(|r| t < r));
        world && known
    }
}

/// What a retired fact was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PastKind {
    Observation {
        text: String,
    },
    Relation {
        relation_type: String,
        to: String,
        strength: f32,
        confidence: f32,
    },
}

/// A retired fact, as its entity's history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastFact {
    pub kind: PastKind,
    pub recorded_at: i64,
    pub valid_from: i64,
    pub valid_to: Option<i64>,
    pub retired_at: i64,
}

impl PastFact {
    pub fn times(&self) -> Times {
        Times {
            recorded_at: self.recorded_at,
            valid_from: self.valid_from,
            valid_to: self.valid_to,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        postcard::to_stdvec(self)
            .map_err(|e| MemoryError::Storage(format!("cannot encode a retired fact: {e}")))
    }

    pub fn decode(bytes: &[u8]) -> Result<PastFact> {
        postcard::from_bytes(bytes)
            .map_err(|e| MemoryError::Storage(format!("unreadable retired fact: {e}")))
    }
}

/// The times of a fact retired at `now` because a fact valid from
/// `replaced_from` took its place: it stops being valid there (never
/// before it began).
pub fn retired_times(times: Times, replaced_from: i64) -> Times {
    let end = replaced_from.max(times.valid_from);
    Times {
        valid_to: Some(times.valid_to.map_or(end, |t| t.min(end))),
        ..times
    }
}

/// One version of a fact, as `history` answers it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FactVersion {
    /// `observation` or `relation`.
    pub kind: String,
    /// The observation's text; for a relation, `TYPE → TARGET`.
    pub fact: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// A relation's strength and confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// RFC 3339.
    pub valid_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    pub recorded_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    /// Not retired.
    pub current: bool,
}

impl FactVersion {
    pub fn new(kind: &PastKind, times: Times, retired_at: Option<i64>) -> FactVersion {
        let text = crate::clock::rfc3339_from_signed_millis;
        let (kind_name, fact, key, relation_type, to, weights) = match kind {
            PastKind::Observation { text } => (
                "observation",
                text.clone(),
                attribute_key(text).map(str::to_string),
                None,
                None,
                None,
            ),
            PastKind::Relation {
                relation_type,
                to,
                strength,
                confidence,
            } => (
                "relation",
                format!("{relation_type} → {to}"),
                None,
                Some(relation_type.clone()),
                Some(to.clone()),
                Some((*strength, *confidence)),
            ),
        };
        FactVersion {
            kind: kind_name.into(),
            fact,
            key,
            relation_type,
            to,
            strength: weights.map(|w| w.0),
            confidence: weights.map(|w| w.1),
            valid_from: text(times.valid_from),
            valid_to: times.valid_to.map(text),
            recorded_at: text(times.recorded_at),
            retired_at: retired_at.map(text),
            current: retired_at.is_none(),
        }
    }
}

impl FactVersion {
    /// Back to what it records (an exported version being imported).
    pub fn parse(&self) -> Result<(PastKind, Times, Option<i64>)> {
        let time = |name: &str, text: &str| {
            crate::clock::parse_millis(text).ok_or_else(|| {
                MemoryError::Invalid(format!(
                    "`{name}` of `{}` is `{text}`, not a time",
                    self.fact
                ))
            })
        };
        let kind = match (self.kind.as_str(), &self.relation_type, &self.to) {
            ("observation", _, _) => PastKind::Observation {
                text: self.fact.clone(),
            },
            ("relation", Some(relation_type), Some(to)) => PastKind::Relation {
                relation_type: relation_type.clone(),
                to: to.clone(),
                strength: self.strength.unwrap_or(1.0),
                confidence: self.confidence.unwrap_or(1.0),
            },
            _ => {
                return Err(MemoryError::Invalid(format!(
                    "a fact version is `observation`, or `relation` with `relation_type` and `to`; not `{}`",
                    self.kind
                )));
            }
        };
        let times = Times {
            recorded_at: time("recorded_at", &self.recorded_at)?,
            valid_from: time("valid_from", &self.valid_from)?,
            valid_to: self
                .valid_to
                .as_deref()
                .map(|t| time("valid_to", t))
                .transpose()?,
        };
        let retired_at = self
            .retired_at
            .as_deref()
            .map(|t| time("retired_at", t))
            .transpose()?;
        Ok((kind, times, retired_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_lowercase_keys_before_colon_space() {
        assert_eq!(attribute_key("employer: Acme"), Some("employer"));
        assert_eq!(attribute_key("job title: engineer"), Some("job title"));
        assert_eq!(attribute_key("Note: call back"), None);
        assert_eq!(attribute_key("see https://x.org"), None);
        assert_eq!(attribute_key("employer:Acme"), None);
        assert_eq!(attribute_key("employer:  "), None);
        assert_eq!(attribute_key("likes green tea"), None);
    }

    #[test]
    fn a_point_in_time_admits_what_held_and_was_known_then() {
        let t = Times {
            recorded_at: 100,
            valid_from: 10,
            valid_to: Some(50),
        };
        let at = |as_of, known_at| At { as_of, known_at };
        assert!(at(Some(10), None).admits(&t, None));
        assert!(!at(Some(50), None).admits(&t, None));
        assert!(!at(Some(9), None).admits(&t, None));
        assert!(at(None, Some(100)).admits(&t, Some(200)));
        assert!(!at(None, Some(99)).admits(&t, None));
        assert!(!at(None, Some(200)).admits(&t, Some(200)));
        assert!(At::default().admits(&t, None));
        assert!(!At::default().admits(&t, Some(200)));
        // A replaced fact ends where its replacement begins.
        let old = Times {
            recorded_at: 1,
            valid_from: 10,
            valid_to: None,
        };
        assert_eq!(retired_times(old, 30).valid_to, Some(30));
        assert_eq!(retired_times(old, 5).valid_to, Some(10));
    }

    #[test]
    fn times_are_parsed_from_dates_and_rfc3339() {
        let v = Validity::parse(Some("2024-01-01"), Some("2024-01-02T00:00:00Z")).expect("valid");
        assert_eq!(v.to.unwrap_or(0) - v.from.unwrap_or(0), 86_400_000);
        assert!(Validity::parse(Some("yesterday"), None).is_err());
        assert!(Validity::parse(Some("2024-01-02"), Some("2024-01-01")).is_err());
    }
}

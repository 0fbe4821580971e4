//! What a budget is: limits per window, who they apply to, what was
//! spent, what a model costs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A window spend is counted in: the current hour, day or month (UTC,
/// calendar), or fixed slices of a duration counted from the Unix epoch
/// (`30s`, `10m`, `6h`, `7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Hour,
    Day,
    Month,
    /// Seconds.
    Every(u64),
}

/// Longest custom window: a year.
const MAX_WINDOW_SECS: u64 = 366 * 86_400;

impl Window {
    /// The windows spend is always counted in, whatever the limits say,
    /// so a limit set later over one of them knows what was spent already.
    pub const STANDARD: [Window; 3] = [Window::Hour, Window::Day, Window::Month];

    pub fn parse(text: &str) -> Result<Window, String> {
        let fix = "use hour, day, month, or a duration such as 30s, 10m, 6h, 7d";
        match text {
            "hour" => return Ok(Window::Hour),
            "day" => return Ok(Window::Day),
            "month" => return Ok(Window::Month),
            "minute" => return Ok(Window::Every(60)),
            _ => {}
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{text}` is not a window: {fix}"))?;
        let (number, unit) = text.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a window: {fix}"))?;
        let unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("`{text}` is not a window: {fix}")),
        };
        match n.checked_mul(unit) {
            Some(secs) if secs > 0 && secs <= MAX_WINDOW_SECS => Ok(Window::Every(secs)),
            _ => Err(format!(
                "`{text}` is not a window: between 1s and 366d ({fix})"
            )),
        }
    }

    /// The name spend rows carry.
    pub fn key(&self) -> String {
        match self {
            Window::Hour => "hour".into(),
            Window::Day => "day".into(),
            Window::Month => "month".into(),
            Window::Every(secs) => format!("{secs}s"),
        }
    }

    /// Start and end (Unix seconds) of the window holding `now`.
    pub fn bounds(&self, now: u64) -> (u64, u64) {
        let slice = |len: u64| {
            let start = now - now % len;
            (start, start + len)
        };
        match self {
            Window::Hour => slice(3600),
            Window::Day => slice(86_400),
            Window::Every(secs) => slice(*secs),
            Window::Month => month_bounds(now),
        }
    }
}

/// The calendar month (UTC) holding `now`.
fn month_bounds(now: u64) -> (u64, u64) {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(now).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let first = |year: i32, month: time::Month| {
        time::Date::from_calendar_date(year, month, 1)
            .map(|d| d.midnight().assume_utc().unix_timestamp())
            .map_or(0, |t| u64::try_from(t).unwrap_or(0))
    };
    let start = first(at.year(), at.month());
    let end = match at.month() {
        time::Month::December => first(at.year() + 1, time::Month::January),
        month => first(at.year(), month.next()),
    };
    (start, end)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Window {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "hour, day, month (UTC calendar), or a duration: 30s, 10m, 6h, 7d",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Window {}

/// One limit: at most this much per window. Tokens count prompt and
/// completion together; `tokens_in` / `tokens_out` each alone; `cost`
/// in the currency of the price table (`budgets.prices`), for models
/// that have a price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub per: Window,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl Limit {
    pub fn validate(&self) -> Result<(), String> {
        if self.tokens.is_none()
            && self.tokens_in.is_none()
            && self.tokens_out.is_none()
            && self.cost.is_none()
        {
            return Err(format!(
                "a budget limit per {} sets nothing: give tokens, tokens_in, tokens_out or cost",
                self.per
            ));
        }
        if let Some(cost) = self.cost
            && !(cost.is_finite() && cost >= 0.0)
        {
            return Err(format!("budget cost {cost} must be a number ≥ 0"));
        }
        Ok(())
    }
}

/// A budget as written: one limit or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LimitsSpec {
    One(Limit),
    Many(Vec<Limit>),
}

impl LimitsSpec {
    pub fn into_limits(self) -> Vec<Limit> {
        match self {
            LimitsSpec::One(limit) => vec![limit],
            LimitsSpec::Many(limits) => limits,
        }
    }
}

/// A budget from JSON: one limit or a list; the error names the limit
/// and what is wrong with it (serde's untagged enums say neither).
pub fn limits_from_json(value: &serde_json::Value) -> Result<Vec<Limit>, String> {
    let one = |v: &serde_json::Value| serde_json::from_value::<Limit>(v.clone());
    let limits = match value {
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| one(v).map_err(|e| format!("limit {}: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?,
        serde_json::Value::Object(_) => vec![one(value).map_err(|e| e.to_string())?],
        _ => {
            return Err("a budget is a limit ({per: hour, tokens: 1000}) or a list of them".into());
        }
    };
    validate(&limits)?;
    Ok(limits)
}

/// Checks `limits`; at most 16, each setting something.
pub fn validate(limits: &[Limit]) -> Result<(), String> {
    if limits.len() > 16 {
        return Err(format!(
            "a budget has at most 16 limits, this one has {}",
            limits.len()
        ));
    }
    limits.iter().try_for_each(Limit::validate)
}

/// Who a budget applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Agent(String),
    Principal(String),
    Server,
}

impl Subject {
    /// `agent:NAME`, `principal:NAME` or `server`.
    pub fn parse(text: &str) -> Result<Subject, String> {
        let fix = "write agent:NAME, principal:NAME (a token's name) or server";
        if text == "server" {
            return Ok(Subject::Server);
        }
        let (kind, name) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` names no budget: {fix}"))?;
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(format!("`{text}` names no budget: {fix}"));
        }
        match kind {
            "agent" => Ok(Subject::Agent(name.into())),
            "principal" => Ok(Subject::Principal(name.into())),
            _ => Err(format!("`{text}` names no budget: {fix}")),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Agent(name) => write!(f, "agent:{name}"),
            Subject::Principal(name) => write!(f, "principal:{name}"),
            Subject::Server => f.write_str("server"),
        }
    }
}

/// What was spent in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Millionths of the price table's currency.
    pub cost_micros: u64,
}

impl Spend {
    pub fn tokens(&self) -> u64 {
        self.tokens_in.saturating_add(self.tokens_out)
    }

    pub fn add(&mut self, other: Spend) {
        self.tokens_in = self.tokens_in.saturating_add(other.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(other.tokens_out);
        self.cost_micros = self.cost_micros.saturating_add(other.cost_micros);
    }
}

/// A model's price, per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl Price {
    /// What `tokens_in` and `tokens_out` cost, in millionths.
    pub fn micros(&self, tokens_in: u64, tokens_out: u64) -> u64 {
        let cost =
            tokens_in as f64 * self.input_per_million + tokens_out as f64 * self.output_per_million;
        if cost.is_finite() && cost > 0.0 {
            cost.round() as u64
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_bound_what_they_say() {
        assert_eq!(Window::parse("hour"), Ok(Window::Hour));
        assert_eq!(Window::parse("30s"), Ok(Window::Every(30)));
        assert_eq!(Window::parse("7d"), Ok(Window::Every(7 * 86_400)));
        for bad in ["", "0s", "5", "5y", "999d", "-3s", "hours"] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Window::Hour.bounds(7_250), (7_200, 10_800));
        assert_eq!(Window::Every(30).bounds(61), (60, 90));
        // 2026-12-07 → December 2026.
        let (start, end) = Window::Month.bounds(1_796_601_600);
        assert_eq!((start, end), (1_796_083_200, 1_798_761_600));
    }

    #[test]
    fn subjects_round_trip_and_refuse_nonsense() {
        for text in ["server", "agent:echo", "principal:ci-bot"] {
            assert_eq!(
                Subject::parse(text).map(|s| s.to_string()).as_deref(),
                Ok(text)
            );
        }
        for bad in ["", "agent:", "team:x", "echo"] {
            assert!(Subject::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_limit_must_limit_something() {
        let limit = Limit {
            per: Window::Hour,
            tokens: None,
            tokens_in: None,
            tokens_out: None,
            cost: None,
        };
        assert!(limit.validate().is_err());
        assert!(serde_json::from_str::<Limit>(r#"{"per":"hour","tokens":5,"oops":1}"#).is_err());
        let spec: LimitsSpec = serde_json::from_str(r#"{"per":"day","cost":2.5}"#).expect("one");
        assert_eq!(spec.into_limits()[0].cost, Some(2.5));
    }

    #[test]
    fn prices_are_per_million_tokens() {
        let price = Price {
            input_per_million: 0.15,
            output_per_million: 0.6,
        };
        // 1M in + 1M out = 0.75 units = 750,000 millionths.
        assert_eq!(price.micros(1_000_000, 1_000_000), 750_000);
    }
}

//! The agent file: `agents/<id>.md` (YAML frontmatter, then a markdown body
//! that documents the agent) or `agents/<id>.toml` (the same fields; the
//! body goes in `documentation`). The file stem is the agent's id, used in
//! URLs and commands; `name` is its display name.
//!
//! Parsing checks the shape — syntax, unknown keys (with a "did you mean"),
//! missing required fields, wrong types — and reports every such problem at
//! once; [`super::validate`] then checks meaning against the running server.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::positions::Positions;
pub use super::validate::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Markdown,
    Toml,
}

/// A parsed definition. It is handed to the interpreter component as JSON,
/// so every field serializes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDefinition {
    /// The file stem (`data-analyzer`).
    pub id: String,
    /// The display name (`DataAnalyzer`).
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub capabilities: Vec<String>,
    /// Topics the agent is subscribed to when it starts.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    pub tools: Vec<String>,
    pub parameters: Map<String, Value>,
    pub system_prompt: String,
    pub user_prompt_template: Option<String>,
    pub llm: Option<LlmSettings>,
    pub memory: MemorySettings,
    pub conversation: ConversationSettings,
    /// Model calls per message that may call tools; one more, without
    /// tools, must answer (see the interpreter's tool loop).
    pub max_tool_steps: u32,
    /// The markdown body (or TOML `documentation`), shown by `agents show`.
    pub documentation: String,
    pub format: SourceFormat,
    /// What the agent may spend on models (`budget:`: one limit or a
    /// list), enforced by the host (`crate::budgets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget: Vec<crate::budgets::Limit>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemorySettings {
    pub enabled: bool,
    /// `agent` (private), `workspace` or `global`.
    pub scope: String,
    pub auto_store: bool,
}

impl Default for MemorySettings {
    fn default() -> Self {
        MemorySettings {
            enabled: false,
            scope: "agent".into(),
            auto_store: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversationSettings {
    pub max_turns: u32,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        ConversationSettings { max_turns: 10 }
    }
}

/// Used when a file does not set `max_tool_steps`.
pub const DEFAULT_MAX_TOOL_STEPS: u32 = 8;

/// Largest definition file accepted. A long system prompt is a few KiB;
/// this bound keeps parsing and locating problems cheap whatever is sent.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Unknown fields reported one by one; the rest are counted in one problem,
/// so a file of thousands of stray keys costs no more than one of twenty.
const MAX_UNKNOWN_REPORTED: usize = 20;

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    StringList,
    Map,
    /// Fits a `u32`.
    Count,
    Number,
    Bool,
    /// A mapping or a list of mappings.
    Limits,
}

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::StringList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::Map => v.is_object(),
            Kind::Count => v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
            Kind::Number => v.is_number(),
            Kind::Bool => v.is_boolean(),
            Kind::Limits => {
                v.is_object() || v.as_array().is_some_and(|a| a.iter().all(Value::is_object))
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::StringList => "a list of strings",
            Kind::Map => "a mapping of keys to values",
            Kind::Count => "a whole number (0 or more)",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::Limits => "a limit such as {per: hour, tokens: 1000}, or a list of them",
        }
    }
}

/// Top-level keys; `documentation` only in TOML (a markdown file's body is
/// its documentation).
pub(crate) const FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::String),
    ("version", Kind::String),
    ("description", Kind::String),
    ("capabilities", Kind::StringList),
    ("subscriptions", Kind::StringList),
    ("tools", Kind::StringList),
    ("parameters", Kind::Map),
    ("system_prompt", Kind::String),
    ("user_prompt_template", Kind::String),
    ("llm", Kind::Map),
    ("memory", Kind::Map),
    ("conversation", Kind::Map),
    ("max_tool_steps", Kind::Count),
    ("budget", Kind::Limits),
    ("documentation", Kind::String),
];

/// Required keys, with the example a fix shows (YAML, TOML).
const REQUIRED: &[(&str, &str, &str)] = &[
    ("name", "name: MyAgent", "name = \"MyAgent\""),
    ("version", "version: \"1.0.0\"", "version = \"1.0.0\""),
    (
        "capabilities",
        "capabilities: [my-capability]",
        "capabilities = [\"my-capability\"]",
    ),
    (
        "system_prompt",
        "system_prompt: You are …",
        "system_prompt = \"You are …\"",
    ),
];

/// The keys of each nested section.
pub(crate) const SECTIONS: &[(&str, &[(&str, Kind)])] = &[
    (
        "llm",
        &[
            ("provider", Kind::String),
            ("model", Kind::String),
            ("temperature", Kind::Number),
            ("max_tokens", Kind::Count),
        ],
    ),
    (
        "memory",
        &[
            ("enabled", Kind::Bool),
            ("scope", Kind::String),
            ("auto_store", Kind::Bool),
        ],
    ),
    ("conversation", &[("max_turns", Kind::Count)]),
];

const MINIMAL_FRONTMATTER: &str = "start the file with a frontmatter like:\n---\nname: MyAgent\nversion: \"1.0.0\"\ncapabilities: [my-capability]\nsystem_prompt: |\n  You are …\n---";

/// `.md`/`.markdown` → Markdown, `.toml` → TOML, anything else is not an
/// agent file (so editors' swap files and notes are ignored).
pub fn format_for_path(path: &Path) -> Option<SourceFormat> {
    match path.extension()?.to_str()? {
        "md" | "markdown" => Some(SourceFormat::Markdown),
        "toml" => Some(SourceFormat::Toml),
        _ => None,
    }
}

/// The agent id: the file stem, which must be usable in URLs and commands
/// (`^[a-z0-9][a-z0-9_-]{0,62}$`). Boxed because a `Problem` is large and
/// this error is rare.
pub fn agent_id_from_path(path: &Path) -> Result<String, Box<Problem>> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if is_agent_id(&stem) {
        return Ok(stem);
    }
    let suggestion = suggest_id(&stem);
    let ext = path
        .extension()
        .map_or("md".into(), |e| e.to_string_lossy());
    Err(Box::new(Problem {
        file: path.display().to_string(),
        line: None,
        column: None,
        field: None,
        message: format!("`{stem}` cannot be an agent id (the file name is the id)"),
        fix: if suggestion.is_empty() {
            "rename the file: 1 to 63 lowercase letters, digits, `-` and `_`, starting with a letter or digit (e.g. data-analyzer.md)".into()
        } else {
            format!(
                "rename the file to {suggestion}.{ext} (lowercase letters, digits, `-` and `_`, at most 63, starting with a letter or digit)"
            )
        },
    }))
}

fn is_agent_id(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.len() <= 63
        && s.chars().next().is_some_and(ok)
        && s.chars().all(|c| ok(c) || c == '-' || c == '_')
}

/// The nearest valid id: `Data Analyzer` → `data-analyzer`.
fn suggest_id(stem: &str) -> String {
    let mut id = String::new();
    for c in stem.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (id.is_empty() || id.ends_with('-'))) {
            id.push(c);
        }
    }
    let id = id.trim_start_matches(['-', '_']).trim_end_matches('-');
    id.chars().take(63).collect()
}

/// Where the fields of a file are: the YAML frontmatter of a markdown file,
/// or a whole TOML file.
#[derive(Debug, Clone, Copy)]
pub struct Structured<'a> {
    pub text: &'a str,
    /// File line of `text`'s first line: parsers number lines within the
    /// text they are given, problems carry file lines.
    pub first_line: usize,
    /// File line where a missing key would go: the closing `---`, or 1.
    pub end_line: usize,
    /// What follows the frontmatter (empty for TOML).
    pub body: &'a str,
}

/// Splits a file into its structured part and body, or says why the
/// frontmatter cannot be found.
pub fn structured(source: &str, format: SourceFormat) -> Result<Structured<'_>, (String, String)> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    if format == SourceFormat::Toml {
        return Ok(Structured {
            text: source,
            first_line: 1,
            end_line: 1,
            body: "",
        });
    }
    let mut lines = source.split_inclusive('\n');
    let opening = lines.next().unwrap_or("");
    if opening.trim_end() != "---" {
        let message = if source.trim_start().starts_with("---") {
            "the frontmatter's `---` must be the very first line (no blank lines or spaces before it)"
        } else {
            "no YAML frontmatter: the file must start with a `---` line"
        };
        return Err((message.into(), MINIMAL_FRONTMATTER.into()));
    }
    let start = opening.len();
    let mut offset = start;
    for (i, line) in lines.enumerate() {
        if line.trim_end() == "---" {
            return Ok(Structured {
                text: &source[start..offset],
                first_line: 2,
                end_line: i + 2,
                body: &source[offset + line.len()..],
            });
        }
        offset += line.len();
    }
    Err((
        "the frontmatter opened on line 1 is never closed".into(),
        "add a `---` line after the last field, before the markdown body".into(),
    ))
}

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The closest candidate within two edits (case and `-`/`_` mix-ups
/// count as one).
pub fn did_you_mean<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normal = |s: &str| s.to_lowercase().replace('-', "_");
    candidates
        .into_iter()
        .map(|c| {
            let d = edit_distance(key, c).min(edit_distance(&normal(key), &normal(c)) + 1);
            (d, c)
        })
        .filter(|(d, c)| *d <= 2 && *d < c.chars().count())
        .min()
        .map(|(_, c)| c)
}

/// Parses a definition, reporting every problem of shape at once.
pub fn parse_source(
    id: &str,
    file: &str,
    source: &str,
    format: SourceFormat,
) -> Result<AgentDefinition, Vec<Problem>> {
    match parse_lenient(id, file, source, format)? {
        (def, problems) if problems.is_empty() => Ok(def),
        (_, problems) => Err(problems),
    }
}

/// Like [`parse_source`], but past a syntax error it answers a best-effort
/// definition (defaults where fields are missing or wrong) with the shape
/// problems, so the meaning checks can run too and the author sees
/// everything in one go. `Err` only when the file cannot be read as YAML or
/// TOML at all.
pub fn parse_lenient(
    id: &str,
    file: &str,
    source: &str,
    format: SourceFormat,
) -> Result<(AgentDefinition, Vec<Problem>), Vec<Problem>> {
    let problem = |line, column, field: Option<&str>, message: String, fix: String| Problem {
        file: file.to_string(),
        line,
        column,
        field: field.map(str::to_string),
        message,
        fix,
    };
    if source.len() > MAX_DEFINITION_BYTES {
        return Err(vec![problem(
            None,
            None,
            None,
            format!(
                "the definition is {} bytes; the limit is {MAX_DEFINITION_BYTES}",
                source.len()
            ),
            "keep long reference material in memory or a tool, not in the definition".into(),
        )]);
    }
    let part = structured(source, format)
        .map_err(|(message, fix)| vec![problem(Some(1), Some(1), None, message, fix)])?;
    let map = parse_map(file, part, format).map_err(|p| vec![*p])?;
    let at = Positions::new(part, format);
    let toml = format == SourceFormat::Toml;
    let wrong_type = |field: &str, kind: Kind, value: &Value| {
        let (line, column) = at.key_at(field);
        type_problem(kind, value, field, format)
            .map(|(message, fix)| problem(line, column, Some(field), message, fix))
    };

    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    for (key, value) in &map {
        let known = FIELDS
            .iter()
            .find(|(k, _)| k == key && (toml || *k != "documentation"));
        match known {
            None => unknown.push(key.as_str()),
            // An empty value (`description:`) means "not set".
            Some(_) if value.is_null() => {}
            Some((_, kind)) => problems.extend(wrong_type(key, *kind, value)),
        }
    }
    let mut unknown_in_sections = 0usize;
    for (parent, fields) in SECTIONS {
        let Some(Value::Object(inner)) = map.get(*parent) else {
            continue;
        };
        for (key, value) in inner {
            let field = format!("{parent}.{key}");
            let known = fields.iter().find(|(k, _)| k == key);
            if known.is_none() {
                unknown_in_sections += 1;
                if unknown_in_sections > MAX_UNKNOWN_REPORTED {
                    continue;
                }
            }
            match known {
                Some(_) if value.is_null() => {}
                Some((_, kind)) => problems.extend(wrong_type(&field, *kind, value)),
                None => {
                    let (line, column) = at.key_at(&field);
                    problems.push(problem(
                        line,
                        column,
                        Some(&field),
                        format!("unknown field `{field}`"),
                        match did_you_mean(key, fields.iter().map(|(k, _)| *k)) {
                            Some(k) => format!("did you mean `{parent}.{k}`?"),
                            None => format!(
                                "remove it; `{parent}` has: {}",
                                fields
                                    .iter()
                                    .map(|(k, _)| *k)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        },
                    ));
                }
            }
        }
    }
    let unknown_total = unknown.len() + unknown_in_sections;
    if unknown.len() > MAX_UNKNOWN_REPORTED || unknown_in_sections > MAX_UNKNOWN_REPORTED {
        problems.push(problem(
            None,
            None,
            None,
            format!(
                "{unknown_total} unknown fields in all; only the first {MAX_UNKNOWN_REPORTED} of each level are listed"
            ),
            "remove the stray keys; the README lists every field an agent definition has".into(),
        ));
    }
    for key in unknown.into_iter().take(MAX_UNKNOWN_REPORTED) {
        let (line, column) = at.key_at(key);
        problems.push(problem(
            line,
            column,
            Some(key),
            format!("unknown field `{key}`"),
            unknown_fix(key, format),
        ));
    }
    for (key, yaml, toml_example) in REQUIRED {
        if map.get(*key).is_none_or(Value::is_null) {
            problems.push(problem(
                Some(at.end_line()),
                Some(1),
                Some(key),
                format!("missing required field `{key}`"),
                if toml {
                    format!("add `{toml_example}` before any [table]")
                } else {
                    format!("add `{yaml}` to the frontmatter")
                },
            ));
        }
    }

    let string = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
    let strings = |key: &str| -> Vec<String> {
        map.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let budget = match map.get("budget").filter(|v| Kind::Limits.accepts(v)) {
        None => Vec::new(),
        Some(value) => {
            let parsed = crate::budgets::model::limits_from_json(value);
            match parsed {
                Ok(limits) => limits,
                Err(e) => {
                    let (line, column) = at.key_at("budget");
                    problems.push(problem(
                        line,
                        column,
                        Some("budget"),
                        format!("budget: {e}"),
                        "write `budget: {per: hour, tokens: 1000}` (per: hour, day, month or a duration such as 10m; limits: tokens, tokens_in, tokens_out, cost)".into(),
                    ));
                    Vec::new()
                }
            }
        }
    };
    let def = AgentDefinition {
        id: id.to_string(),
        name: string("name").unwrap_or_default(),
        version: string("version").unwrap_or_default(),
        description: string("description"),
        capabilities: strings("capabilities"),
        subscriptions: strings("subscriptions"),
        tools: strings("tools"),
        parameters: map
            .get("parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        system_prompt: string("system_prompt").unwrap_or_default(),
        user_prompt_template: string("user_prompt_template"),
        llm: map
            .get("llm")
            .filter(|v| v.is_object())
            .map(|_| section(&map, "llm")),
        memory: section(&map, "memory"),
        conversation: section(&map, "conversation"),
        max_tool_steps: map
            .get("max_tool_steps")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_TOOL_STEPS),
        documentation: if toml {
            string("documentation").unwrap_or_default()
        } else {
            part.body.trim().to_string()
        },
        format,
        budget,
    };
    Ok((def, problems))
}

/// (message, fix) when `value` is not of `kind`.
fn type_problem(
    kind: Kind,
    value: &Value,
    field: &str,
    format: SourceFormat,
) -> Option<(String, String)> {
    if kind.accepts(value) {
        return None;
    }
    let key = field.rsplit('.').next().unwrap_or(field);
    let toml = format == SourceFormat::Toml;
    let assign = |value: &str| {
        if toml {
            format!("{key} = {value}")
        } else {
            format!("{key}: {value}")
        }
    };
    let fix = match (kind, value) {
        (Kind::String, Value::Number(_) | Value::Bool(_)) if key == "version" => {
            format!("quote it: {}", assign("\"1.0.0\""))
        }
        (Kind::String, Value::Number(_) | Value::Bool(_)) => {
            format!("quote it: {}", assign(&format!("\"{value}\"")))
        }
        (Kind::StringList, _) if toml => {
            format!("write it as a list: {key} = [\"first\", \"second\"]")
        }
        (Kind::StringList, _) => format!("write it as a list: {key}: [first, second]"),
        _ => format!("give `{field}` {}", kind.describe()),
    };
    Some((format!("`{field}` must be {}", kind.describe()), fix))
}

/// Parses the structured text into a mapping, or says where its syntax
/// error is.
fn parse_map(
    file: &str,
    part: Structured<'_>,
    format: SourceFormat,
) -> Result<Map<String, Value>, Box<Problem>> {
    let problem = |line, column, message: String, fix: &str| {
        Box::new(Problem {
            file: file.to_string(),
            line,
            column,
            field: None,
            message,
            fix: fix.to_string(),
        })
    };
    let value = match format {
        SourceFormat::Markdown => serde_saphyr::from_str::<Value>(part.text).map_err(|e| {
            use serde_saphyr::MessageFormatter as _;
            // `location()` is 1-based within the text it was given; the
            // message comes without the location Display would prepend.
            let location = e.location();
            let message = serde_saphyr::DefaultMessageFormatter.format_message(&e);
            let message = clean(message.split(", set DuplicateKeyPolicy").next().unwrap_or(""));
            let fix = if message.starts_with("duplicate mapping key") {
                "each key may appear once: remove or merge the repeated one"
            } else {
                "check indentation and quoting at that line (a value containing `: ` or ` #`, or starting with a special character, needs quotes)"
            };
            problem(
                location.map(|l| to_usize(l.line()) + part.first_line - 1),
                location.map(|l| to_usize(l.column())),
                format!("YAML syntax error: {message}"),
                fix,
            )
        })?,
        SourceFormat::Toml => {
            let table = toml::from_str::<toml::Table>(part.text).map_err(|e| {
                let (line, column) = e.span().map_or((None, None), |span| {
                    let before = part.text.get(..span.start).unwrap_or(part.text);
                    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                    (
                        Some(before.matches('\n').count() + part.first_line),
                        Some(before[line_start..].chars().count() + 1),
                    )
                });
                problem(
                    line,
                    column,
                    format!("TOML syntax error: {}", clean(e.message())),
                    "check quoting and brackets at that line",
                )
            })?;
            serde_json::to_value(table).map_err(|e| {
                problem(
                    None,
                    None,
                    format!("cannot read the TOML values: {e}"),
                    "use strings, numbers, booleans, lists and tables only",
                )
            })?
        }
    };
    match value {
        Value::Object(map) => Ok(map),
        // Empty frontmatter: every required field is then reported missing.
        Value::Null => Ok(Map::new()),
        _ => Err(problem(
            Some(part.first_line),
            Some(1),
            "the frontmatter is not a mapping of `key: value` lines".into(),
            MINIMAL_FRONTMATTER,
        )),
    }
}

/// Messages are shown on one line, and may quote the file.
fn clean(message: &str) -> String {
    message
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A nested section built from its well-typed keys only, so one wrong or
/// unknown key (already reported) does not lose the others.
fn section<T: serde::de::DeserializeOwned + Default>(map: &Map<String, Value>, key: &str) -> T {
    let fields = SECTIONS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[][..], |(_, f)| *f);
    let known: Map<String, Value> = map
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, v)| fields.iter().any(|(f, kind)| f == k && kind.accepts(v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Value::Object(known)).unwrap_or_default()
}

fn unknown_fix(key: &str, format: SourceFormat) -> String {
    if key == "documentation" {
        return "remove it: a markdown file's documentation is its body, after the closing `---`"
            .into();
    }
    if let Some((parent, _)) = SECTIONS
        .iter()
        .find(|(_, fields)| fields.iter().any(|(k, _)| *k == key))
    {
        return match format {
            SourceFormat::Markdown => format!("move it under `{parent}:` (indented)"),
            SourceFormat::Toml => format!("move it under a `[{parent}]` table"),
        };
    }
    let known = FIELDS
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| format == SourceFormat::Toml || *k != "documentation");
    match did_you_mean(key, known.clone()) {
        Some(k) => format!("did you mean `{k}`?"),
        None => format!(
            "remove it; known fields: {}",
            known.collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The runbook's example agent (`agents/data-analyzer.md`), for tests.
#[cfg(test)]
pub(crate) const RUNBOOK_EXAMPLE: &str = r#"---
name: DataAnalyzer
version: "1.0.0"
capabilities:
  - data-analysis
  - report-generation
tools:
  - http_client
  - csv_parser
parameters:
  max_file_size: "10MB"
system_prompt: |
  You are a data analysis expert who helps users understand their data.
---

# DataAnalyzer Agent

This agent specializes in data analysis and can fetch data from URLs,
parse various formats, and generate visualizations.
"#;

#[cfg(test)]
mod tests {
    /// docs/CONFIG-AGENTS.md has a table row for every field a file may
    /// set, so the reference cannot fall behind the parser.
    #[test]
    fn the_reference_documents_every_field() {
        let doc = include_str!("../../../docs/CONFIG-AGENTS.md");
        let mut missing: Vec<String> = FIELDS
            .iter()
            .map(|(name, _)| name.to_string())
            .chain(SECTIONS.iter().flat_map(|(section, keys)| {
                keys.iter().map(move |(key, _)| format!("{section}.{key}"))
            }))
            .filter(|field| !doc.contains(&format!("| `{field}` |")))
            .collect();
        missing.sort();
        assert!(
            missing.is_empty(),
            "not in docs/CONFIG-AGENTS.md: {missing:?}"
        );
    }

    use super::*;

    const DATA_ANALYZER_TOML: &str = r##"name = "DataAnalyzer"
version = "1.0.0"
capabilities = ["data-analysis", "report-generation"]
tools = ["http_client", "csv_parser"]
system_prompt = """
You are a data analysis expert who helps users understand their data.
"""
documentation = "# DataAnalyzer Agent"

[parameters]
max_file_size = "10MB"
"##;

    fn md(source: &str) -> Result<AgentDefinition, Vec<Problem>> {
        parse_source("a", "agents/a.md", source, SourceFormat::Markdown)
    }

    fn toml(source: &str) -> Result<AgentDefinition, Vec<Problem>> {
        parse_source("a", "agents/a.toml", source, SourceFormat::Toml)
    }

    fn problems(result: Result<AgentDefinition, Vec<Problem>>) -> Vec<Problem> {
        match result {
            Ok(def) => panic!("expected problems, parsed {def:?}"),
            Err(problems) => problems,
        }
    }

    fn one(result: Result<AgentDefinition, Vec<Problem>>) -> Problem {
        let mut all = problems(result);
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }

    fn valid(source: &str) -> String {
        format!(
            "---\nname: A\nversion: \"1.0.0\"\ncapabilities: [x]\nsystem_prompt: Hi.\n{source}---\n"
        )
    }

    #[test]
    fn parses_the_runbook_example() {
        let def = parse_source(
            "data-analyzer",
            "agents/data-analyzer.md",
            RUNBOOK_EXAMPLE,
            SourceFormat::Markdown,
        )
        .expect("valid");
        assert_eq!(def.id, "data-analyzer");
        assert_eq!(def.name, "DataAnalyzer");
        assert_eq!(def.version, "1.0.0");
        assert_eq!(def.capabilities, ["data-analysis", "report-generation"]);
        assert_eq!(def.tools, ["http_client", "csv_parser"]);
        assert_eq!(def.parameters["max_file_size"], "10MB");
        assert_eq!(
            def.system_prompt,
            "You are a data analysis expert who helps users understand their data.\n"
        );
        assert!(
            def.documentation
                .starts_with("# DataAnalyzer Agent\n\nThis agent")
        );
        assert!(def.documentation.ends_with("generate visualizations."));
        assert_eq!(def.description, None);
        assert_eq!(def.llm, None);
        assert_eq!(def.memory, MemorySettings::default());
        assert_eq!(def.memory.scope, "agent");
        assert_eq!(def.conversation.max_turns, 10);
        assert_eq!(def.max_tool_steps, DEFAULT_MAX_TOOL_STEPS);
        assert_eq!(def.format, SourceFormat::Markdown);
    }

    #[test]
    fn the_same_agent_in_toml_parses_to_the_same_fields() {
        let from_md = md(RUNBOOK_EXAMPLE).expect("markdown");
        let from_toml = toml(DATA_ANALYZER_TOML).expect("toml");
        assert_eq!(from_toml.format, SourceFormat::Toml);
        assert_eq!(from_toml.documentation, "# DataAnalyzer Agent");
        assert_eq!(
            AgentDefinition {
                documentation: String::new(),
                format: SourceFormat::Markdown,
                ..from_toml
            },
            AgentDefinition {
                documentation: String::new(),
                ..from_md
            }
        );
    }

    #[test]
    fn optional_sections_parse_and_round_trip_through_json() {
        let def = md(&valid(
            "description: Helps.\nuser_prompt_template: \"{{request}}\"\nllm:\n  provider: openai\n  model: gpt-4o\n  temperature: 1\n  max_tokens: 500\nmemory:\n  enabled: true\n  scope: workspace\nconversation:\n  max_turns: 4\nmax_tool_steps: 3\n",
        ))
        .expect("valid");
        let llm = def.llm.clone().expect("llm");
        assert_eq!(llm.provider.as_deref(), Some("openai"));
        assert_eq!(llm.model.as_deref(), Some("gpt-4o"));
        assert_eq!(llm.temperature, Some(1.0));
        assert_eq!(llm.max_tokens, Some(500));
        assert!(def.memory.enabled && !def.memory.auto_store);
        assert_eq!(def.memory.scope, "workspace");
        assert_eq!(def.conversation.max_turns, 4);
        assert_eq!(def.max_tool_steps, 3);
        assert_eq!(def.description.as_deref(), Some("Helps."));
        let json = serde_json::to_string(&def).expect("encode");
        let back: AgentDefinition = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, def);
    }

    #[test]
    fn empty_values_mean_not_set() {
        let def = md(&valid("description:\ntools:\nllm:\n")).expect("valid");
        assert_eq!(def.description, None);
        assert!(def.tools.is_empty());
        assert_eq!(def.llm, None);
    }

    #[test]
    fn crlf_and_a_byte_order_mark_are_accepted() {
        let source = format!("\u{feff}{}", RUNBOOK_EXAMPLE.replace('\n', "\r\n"));
        let def = md(&source).expect("valid");
        assert_eq!(def.name, "DataAnalyzer");
        assert!(def.documentation.starts_with("# DataAnalyzer Agent"));
    }

    #[test]
    fn yaml_syntax_errors_carry_file_lines_and_columns() {
        // The quote opened on file line 3 (frontmatter line 2) never closes.
        let p = one(md(
            "---\nname: Broken\nversion: \"1.0.0\ncapabilities: [x]\n---\n",
        ));
        assert_eq!((p.line, p.column), (Some(3), Some(10)), "{p}");
        assert!(p.message.starts_with("YAML syntax error: "), "{p}");
        assert!(
            !p.message.contains("line 2"),
            "parser-relative line leaked: {p}"
        );

        let p = one(md("---\nname: A\n  bad: b\n---\n"));
        assert_eq!((p.line, p.column), (Some(3), Some(6)), "{p}");
        assert!(p.fix.contains("indentation"), "{p}");
    }

    #[test]
    fn duplicate_keys_are_syntax_errors_with_a_plain_fix() {
        let p = one(md("---\nname: A\nname: B\n---\n"));
        assert_eq!(p.line, Some(3));
        assert!(p.message.contains("duplicate mapping key"), "{p}");
        assert!(!p.message.contains("DuplicateKeyPolicy"), "{p}");
        assert!(p.fix.contains("once"), "{p}");
    }

    #[test]
    fn toml_syntax_errors_carry_lines_and_columns() {
        let p = one(toml("name = \"A\"\nversion = 1.0.0\n"));
        assert!(p.message.starts_with("TOML syntax error: "), "{p}");
        assert_eq!(p.line, Some(2), "{p}");
        assert!(p.column.is_some(), "{p}");
    }

    #[test]
    fn missing_frontmatter_shows_a_minimal_one() {
        let p = one(md("# Just markdown\n"));
        assert_eq!((p.line, p.column), (Some(1), Some(1)));
        assert!(p.message.contains("no YAML frontmatter"), "{p}");
        assert!(
            p.fix.contains("---\nname: MyAgent\nversion: \"1.0.0\""),
            "{p}"
        );

        let p = one(md("\n---\nname: A\n---\n"));
        assert!(p.message.contains("very first line"), "{p}");

        let p = one(md("---\nname: A\n"));
        assert!(p.message.contains("never closed"), "{p}");
    }

    #[test]
    fn empty_frontmatter_reports_every_required_field_where_to_add_it() {
        let all = problems(md("---\n---\nbody\n"));
        let fields: Vec<_> = all.iter().filter_map(|p| p.field.as_deref()).collect();
        assert_eq!(fields, ["name", "version", "capabilities", "system_prompt"]);
        assert!(all.iter().all(|p| p.line == Some(2)), "{all:#?}");
        assert!(all[1].fix.contains("version: \"1.0.0\""), "{}", all[1]);
    }

    #[test]
    fn every_shape_problem_is_reported_at_once() {
        let source = "---\nname: A\nversoin: \"1\"\ncapabilities: analysis\ntools: [1, 2]\nsystem_prompt: Hi\nllm:\n  temprature: 0.5\n  max_tokens: -3\nmemory:\n  enabled: \"yes\"\n---\n";
        let all = problems(md(source));
        let found: Vec<_> = all
            .iter()
            .map(|p| (p.field.as_deref().unwrap_or(""), p.line))
            .collect();
        for expected in [
            ("versoin", Some(3)),
            ("version", Some(12)),
            ("capabilities", Some(4)),
            ("tools", Some(5)),
            ("llm.temprature", Some(8)),
            ("llm.max_tokens", Some(9)),
            ("memory.enabled", Some(11)),
        ] {
            assert!(found.contains(&expected), "{expected:?} not in {found:?}");
        }
        assert_eq!(all.len(), 7, "{all:#?}");
        let typo = all.iter().find(|p| p.field.as_deref() == Some("versoin"));
        assert_eq!(
            typo.map(|p| p.fix.as_str()),
            Some("did you mean `version`?")
        );
        let nested = all
            .iter()
            .find(|p| p.field.as_deref() == Some("llm.temprature"));
        assert_eq!(
            nested.map(|p| p.fix.as_str()),
            Some("did you mean `llm.temperature`?")
        );
    }

    #[test]
    fn lenient_parsing_keeps_the_good_parts_of_a_section() {
        let source = valid("llm:\n  model: m\n  temprature: 0.5\n  max_tokens: lots\n");
        let (def, problems) =
            parse_lenient("a", "a.md", &source, SourceFormat::Markdown).expect("readable");
        assert_eq!(problems.len(), 2, "{problems:#?}");
        let llm = def.llm.expect("llm kept");
        assert_eq!(llm.model.as_deref(), Some("m"));
        assert_eq!(llm.max_tokens, None);
    }

    #[test]
    fn unknown_keys_get_a_suggestion_or_the_list() {
        let p = one(md(&valid("System-Prompt: x\n")));
        assert_eq!(p.fix, "did you mean `system_prompt`?");
        let p = one(md(&valid("temperature: 0.5\n")));
        assert_eq!(p.fix, "move it under `llm:` (indented)");
        let p = one(md(&valid("colour: blue\n")));
        assert!(
            p.fix.starts_with("remove it; known fields: name, version"),
            "{p}"
        );
        assert!(!p.fix.contains("documentation"), "{p}");
        let p = one(md(&valid("documentation: x\n")));
        assert!(p.fix.contains("body"), "{p}");
        assert_eq!(p.line, Some(6));
    }

    #[test]
    fn wrong_types_say_how_to_write_the_value() {
        let p = one(md(
            "---\nname: A\nversion: 1.0\ncapabilities: [x]\nsystem_prompt: Hi\n---\n",
        ));
        assert_eq!(p.field.as_deref(), Some("version"));
        assert_eq!(p.fix, "quote it: version: \"1.0.0\"");
        let p = one(md(
            "---\nname: 42\nversion: \"1.0.0\"\ncapabilities: [x]\nsystem_prompt: Hi\n---\n",
        ));
        assert_eq!(p.fix, "quote it: name: \"42\"");
        let p = one(toml(
            "name = \"A\"\nversion = \"1.0.0\"\ncapabilities = \"x\"\nsystem_prompt = \"Hi\"\n",
        ));
        assert_eq!((p.line, p.column), (Some(3), Some(1)));
        assert_eq!(
            p.fix,
            "write it as a list: capabilities = [\"first\", \"second\"]"
        );
    }

    #[test]
    fn toml_nested_keys_are_located_in_their_table() {
        let source = "name = \"A\"\nversion = \"1.0.0\"\ncapabilities = [\"x\"]\nsystem_prompt = \"Hi\"\n\n[llm]\nmodel = \"m\"\ntemprature = 0.5\n";
        let p = one(toml(source));
        assert_eq!(p.field.as_deref(), Some("llm.temprature"));
        assert_eq!(p.line, Some(8));
    }

    #[test]
    fn ids_come_from_the_file_stem() {
        assert_eq!(
            agent_id_from_path(Path::new("agents/data-analyzer.md")).ok(),
            Some("data-analyzer".to_string())
        );
        assert_eq!(
            agent_id_from_path(Path::new("x/a_1.toml")).ok(),
            Some("a_1".to_string())
        );
        assert!(agent_id_from_path(Path::new(&format!("{}.md", "a".repeat(63)))).is_ok());
        assert!(agent_id_from_path(Path::new(&format!("{}.md", "a".repeat(64)))).is_err());
        for bad in ["-a.md", "_a.md", ".md", "a b.md", "é.md"] {
            assert!(agent_id_from_path(Path::new(bad)).is_err(), "{bad}");
        }
        let p = agent_id_from_path(Path::new("agents/Data Analyzer.md")).expect_err("invalid");
        assert_eq!(p.file, "agents/Data Analyzer.md");
        assert!(p.fix.contains("rename the file to data-analyzer.md"), "{p}");
    }

    #[test]
    fn formats_come_from_the_extension() {
        let f = |p: &str| format_for_path(Path::new(p));
        assert_eq!(f("a.md"), Some(SourceFormat::Markdown));
        assert_eq!(f("a.markdown"), Some(SourceFormat::Markdown));
        assert_eq!(f("a.toml"), Some(SourceFormat::Toml));
        assert_eq!(f("a.md.swp"), None);
        assert_eq!(f("a"), None);
    }

    #[test]
    fn positions_come_from_the_parsers() {
        let at = Positions::for_source(RUNBOOK_EXAMPLE, SourceFormat::Markdown);
        assert_eq!(at.key("name"), Some(2));
        assert_eq!(at.key("system_prompt"), Some(12));
        assert_eq!(at.key("parameters.max_file_size"), Some(11));
        assert_eq!(at.key_at("parameters.max_file_size"), (Some(11), Some(3)));
        assert_eq!(at.key("nope"), None);
        assert_eq!(at.key_at("nope"), (None, None));
        assert_eq!(at.value("tools", "csv_parser"), (Some(9), Some(5)));
        // Whole words only: `csv` is not found inside `csv_parser`.
        assert_eq!(at.value("tools", "csv"), (Some(7), Some(1)));
        assert_eq!(at.end_line(), 14);

        let flow = "---\ntools: [http_client, magic]\nllm: {model: m}\n---\n";
        let at = Positions::for_source(flow, SourceFormat::Markdown);
        assert_eq!(at.value("tools", "magic"), (Some(2), Some(22)));
        assert_eq!(at.key("llm.model"), Some(3));

        let at = Positions::for_source(DATA_ANALYZER_TOML, SourceFormat::Toml);
        assert_eq!(at.key("tools"), Some(4));
        assert_eq!(at.key("parameters.max_file_size"), Some(11));
        // A quoted item starts at its opening quote.
        assert_eq!(at.value("tools", "csv_parser"), (Some(4), Some(25)));

        // What a line scan gets wrong: quoted and indented-by-flow keys, a
        // key named inside a block scalar, TOML dotted keys.
        let tricky = "---\n\"name\": A\nsystem_prompt: |\n  tools: not a key\n  use {{request}}\ntools:\n    - \"x\"\n---\n";
        let at = Positions::for_source(tricky, SourceFormat::Markdown);
        assert_eq!(at.key_at("name"), (Some(2), Some(1)));
        assert_eq!(at.key("tools"), Some(6));
        assert_eq!(at.value("system_prompt", "{{request}}"), (Some(5), Some(7)));
        assert_eq!(at.value("tools", "x"), (Some(7), Some(7)));
        let dotted = "name = \"A\"\nllm.model = \"m\"\n[memory]\nscope = \"agent\"\n";
        let at = Positions::for_source(dotted, SourceFormat::Toml);
        assert_eq!(at.key_at("llm.model"), (Some(2), Some(5)));
        assert_eq!(at.key_at("memory.scope"), (Some(4), Some(1)));
    }

    #[test]
    fn suggestions_use_edit_distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(did_you_mean("tool", ["tools", "name"]), Some("tools"));
        assert_eq!(did_you_mean("Tools", ["tools"]), Some("tools"));
        assert_eq!(did_you_mean("zzz", ["tools", "name"]), None);
        assert_eq!(did_you_mean("ab", ["llm"]), None);
    }
}

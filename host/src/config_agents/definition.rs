//! The agent file: `agents/<id>.md` (YAML frontmatter, then a markdown body
//! that documents the agent) or `agents/<id>.toml` (same fields; the body
//! goes in `documentation`). The file stem is the agent's id; `name` is its
//! display name.
//!
//! Parsing checks the shape — syntax, unknown keys (with a "did you mean"),
//! missing required fields, wrong types — and reports every such problem at
//! once; [`super::validate`] then checks meaning.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use super::validate::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Markdown,
    Toml,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDefinition {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub capabilities: Vec<String>,
    pub tools: Vec<String>,
    pub parameters: Map<String, Value>,
    pub system_prompt: String,
    pub user_prompt_template: Option<String>,
    pub llm: Option<LlmSettings>,
    pub memory: MemorySettings,
    pub conversation: ConversationSettings,
    /// Most model calls per message (tool calls included).
    pub max_tool_steps: u32,
    /// The markdown body (or TOML `documentation`), shown by `agents show`.
    pub documentation: String,
    pub format: SourceFormat,
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

/// Expected JSON type of each top-level key; the first five are required.
const FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::String),
    ("version", Kind::String),
    ("capabilities", Kind::StringList),
    ("system_prompt", Kind::String),
    ("tools", Kind::StringList),
    ("parameters", Kind::Map),
    ("description", Kind::String),
    ("user_prompt_template", Kind::String),
    ("llm", Kind::Map),
    ("memory", Kind::Map),
    ("conversation", Kind::Map),
    ("max_tool_steps", Kind::Integer),
    ("documentation", Kind::String),
];
const REQUIRED: &[&str] = &["name", "version", "capabilities", "system_prompt"];
const NESTED: &[(&str, &[&str])] = &[
    ("llm", &["provider", "model", "temperature", "max_tokens"]),
    ("memory", &["enabled", "scope", "auto_store"]),
    ("conversation", &["max_turns"]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    StringList,
    Map,
    Integer,
}

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::StringList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::Map => v.is_object(),
            Kind::Integer => v.is_u64(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::StringList => "a list of strings",
            Kind::Map => "a mapping of keys to values",
            Kind::Integer => "a whole number",
        }
    }
}

/// `.md`/`.markdown` → Markdown, `.toml` → TOML.
pub fn format_for_path(path: &Path) -> Option<SourceFormat> {
    match path.extension()?.to_str()? {
        "md" | "markdown" => Some(SourceFormat::Markdown),
        "toml" => Some(SourceFormat::Toml),
        _ => None,
    }
}

/// The agent id: the file stem, which must be usable in URLs and commands.
pub fn agent_id_from_path(path: &Path) -> Result<String, Box<Problem>> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let valid = !stem.is_empty()
        && stem.len() <= 63
        && stem
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && stem
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(stem)
    } else {
        Err(Box::new(Problem {
            file: path.display().to_string(),
            line: None,
            column: None,
            field: None,
            message: format!("`{stem}` cannot be an agent id (the file name is the id)"),
            fix:
                "rename the file to lowercase letters, digits, `-` and `_` (e.g. data-analyzer.md)"
                    .into(),
        }))
    }
}

/// Splits `---\nYAML\n---\nbody`; answers (yaml, body, line of the first
/// YAML line).
fn split_frontmatter(source: &str) -> Option<(&str, &str)> {
    let rest = source
        .strip_prefix("---\n")
        .or_else(|| source.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

/// 1-based line of `key:` in `text` (top level, or indented under
/// `parent:` when given), shifted by `first_line - 1`.
pub fn key_line(text: &str, parent: Option<&str>, key: &str, first_line: usize) -> Option<usize> {
    let mut inside = parent.is_none();
    for (i, line) in text.lines().enumerate() {
        let indented = line.starts_with(' ') || line.starts_with('\t');
        let trimmed = line.trim_start();
        if let Some(parent) = parent {
            if !indented && !trimmed.is_empty() {
                inside = trimmed.starts_with(&format!("{parent}:"))
                    || trimmed.starts_with(&format!("[{parent}]"));
                continue;
            }
        } else if indented {
            continue;
        }
        let is_key = trimmed.starts_with(&format!("{key}:"))
            || trimmed.starts_with(&format!("{key} ="))
            || trimmed.starts_with(&format!("{key}="));
        if inside && is_key {
            return Some(i + first_line);
        }
    }
    None
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn did_you_mean<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

const MINIMAL_FRONTMATTER: &str = "start the file with:\n---\nname: MyAgent\nversion: \"1.0.0\"\ncapabilities: [my_capability]\nsystem_prompt: |\n  You are …\n---";

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

/// Like [`parse_source`], but past a syntax error it answers a
/// best-effort definition (defaults where fields are missing or wrong)
/// with the shape problems, so meaning checks can run too and the author
/// sees everything in one go.
pub fn parse_lenient(
    id: &str,
    file: &str,
    source: &str,
    format: SourceFormat,
) -> Result<(AgentDefinition, Vec<Problem>), Vec<Problem>> {
    let at = |line: Option<usize>,
              column: Option<usize>,
              field: Option<&str>,
              message: String,
              fix: String| Problem {
        file: file.to_string(),
        line,
        column,
        field: field.map(str::to_string),
        message,
        fix,
    };
    // (the structured part, the documentation body, line of its first line)
    let (text, body, first_line) = match format {
        SourceFormat::Markdown => match split_frontmatter(source) {
            Some((yaml, body)) => (yaml, body.trim().to_string(), 2),
            None => {
                return Err(vec![at(
                    Some(1),
                    Some(1),
                    None,
                    "no YAML frontmatter: the file must start with a `---` line and the frontmatter must end with another `---` line".into(),
                    MINIMAL_FRONTMATTER.into(),
                )]);
            }
        },
        SourceFormat::Toml => (source, String::new(), 1),
    };
    let value: Value = match format {
        SourceFormat::Markdown => match serde_saphyr::from_str::<Value>(text) {
            Ok(Value::Null) => Value::Object(Map::new()),
            Ok(v) => v,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| {
                        (
                            Some(l.line() as usize + first_line - 1),
                            Some(l.column() as usize),
                        )
                    })
                    .unwrap_or((None, None));
                let message = e.to_string();
                let message = message.lines().next().unwrap_or("");
                // The parser numbers lines within the frontmatter; the
                // problem carries file lines, so drop its prefix.
                let message = match message.find(": ") {
                    Some(at) if message.starts_with("error: line") => &message[at + 2..],
                    _ => message,
                }
                .to_string();
                return Err(vec![at(
                    line,
                    column,
                    None,
                    format!("YAML syntax error: {message}"),
                    "check indentation and quoting at that line (strings with `:` or `#` need quotes)".into(),
                )]);
            }
        },
        SourceFormat::Toml => match toml::from_str::<toml::Table>(text) {
            Ok(table) => serde_json::to_value(table).unwrap_or(Value::Null),
            Err(e) => {
                let (line, column) = e
                    .span()
                    .map(|s| {
                        let before = &text[..s.start.min(text.len())];
                        let line = before.matches('\n').count() + 1;
                        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                        (Some(line), Some(column))
                    })
                    .unwrap_or((None, None));
                return Err(vec![at(
                    line,
                    column,
                    None,
                    format!("TOML syntax error: {}", e.message()),
                    "check quoting and brackets at that line".into(),
                )]);
            }
        },
    };
    let Value::Object(map) = value else {
        return Err(vec![at(
            Some(first_line),
            Some(1),
            None,
            "the frontmatter is not a mapping of `key: value` lines".into(),
            MINIMAL_FRONTMATTER.into(),
        )]);
    };

    let mut problems = Vec::new();
    for (key, value) in &map {
        let line = key_line(text, None, key, first_line);
        match FIELDS.iter().find(|(k, _)| k == key) {
            None => problems.push(at(
                line,
                Some(1),
                Some(key),
                format!("unknown field `{key}`"),
                match did_you_mean(key, FIELDS.iter().map(|(k, _)| *k)) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!(
                        "remove it; known fields: {}",
                        FIELDS
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            )),
            Some((_, kind)) if !kind.accepts(value) => problems.push(at(
                line,
                Some(1),
                Some(key),
                format!("`{key}` must be {}", kind.describe()),
                match kind {
                    Kind::StringList => format!("write it as a list: {key}: [first, second]"),
                    _ => format!("give `{key}` {}", kind.describe()),
                },
            )),
            _ => {}
        }
    }
    for (parent, known) in NESTED {
        if let Some(Value::Object(inner)) = map.get(*parent) {
            for key in inner.keys().filter(|k| !known.contains(&k.as_str())) {
                problems.push(at(
                    key_line(text, Some(parent), key, first_line),
                    None,
                    Some(&format!("{parent}.{key}")),
                    format!("unknown field `{parent}.{key}`"),
                    match did_you_mean(key, known.iter().copied()) {
                        Some(k) => format!("did you mean `{parent}.{k}`?"),
                        None => format!("known fields of `{parent}`: {}", known.join(", ")),
                    },
                ));
            }
        }
    }
    for key in REQUIRED {
        if !map.contains_key(*key) {
            problems.push(at(
                None,
                None,
                Some(key),
                format!("missing required field `{key}`"),
                format!(
                    "add `{key}:` to the {}",
                    match format {
                        SourceFormat::Markdown => "frontmatter",
                        SourceFormat::Toml => "file",
                    }
                ),
            ));
        }
    }
    // Nested sections: serde checks their value types (unknown keys were
    // reported above with a suggestion, so those errors are not repeated).
    fn section<T: serde::de::DeserializeOwned>(
        map: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<T>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }
    let mut checked = |key: &str, result: Result<(), String>| {
        if let Err(e) = result
            && !e.contains("unknown field")
        {
            problems.push(at(
                key_line(text, None, key, first_line),
                None,
                Some(key),
                format!("`{key}` is not valid: {e}"),
                format!("see the `{key}` section in docs/CONFIG_AGENTS.md"),
            ));
        }
    };
    let llm = section::<LlmSettings>(&map, "llm");
    checked("llm", llm.as_ref().map(|_| ()).map_err(Clone::clone));
    let memory = section::<MemorySettings>(&map, "memory");
    checked("memory", memory.as_ref().map(|_| ()).map_err(Clone::clone));
    let conversation = section::<ConversationSettings>(&map, "conversation");
    checked(
        "conversation",
        conversation.as_ref().map(|_| ()).map_err(Clone::clone),
    );
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
    let def = AgentDefinition {
        id: id.to_string(),
        name: string("name").unwrap_or_default(),
        version: string("version").unwrap_or_default(),
        description: string("description"),
        capabilities: strings("capabilities"),
        tools: strings("tools"),
        parameters: map
            .get("parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        system_prompt: string("system_prompt").unwrap_or_default(),
        user_prompt_template: string("user_prompt_template"),
        llm: llm.ok().flatten(),
        memory: memory.ok().flatten().unwrap_or_default(),
        conversation: conversation.ok().flatten().unwrap_or_default(),
        max_tool_steps: map
            .get("max_tool_steps")
            .and_then(Value::as_u64)
            .map_or(8, |n| n.min(u64::from(u32::MAX)) as u32),
        documentation: match format {
            SourceFormat::Markdown => body,
            SourceFormat::Toml => string("documentation").unwrap_or_default(),
        },
        format,
    };
    Ok((def, problems))
}

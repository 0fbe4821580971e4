//! Meaning checks on a parsed definition, against the running server's
//! tools and agents: every problem at once, each with where and how to fix.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::definition::{self, AgentDefinition};

/// One thing wrong with a definition file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field concerned, dotted for nested ones (`llm.temperature`).
    pub field: Option<String>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{} — fix: {}", self.message, self.fix)
    }
}

/// An agent already running, for conflict checks.
#[derive(Debug, Clone)]
pub struct LoadedAgentInfo {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
}

pub struct ValidationContext<'a> {
    pub known_tools: &'a [String],
    /// Every loaded agent except the one being (re)loaded.
    pub loaded: &'a [LoadedAgentInfo],
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Semantic problems of `def` (read from `source`, for line numbers).
pub fn validate(
    def: &AgentDefinition,
    file: &str,
    source: &str,
    ctx: &ValidationContext<'_>,
) -> Vec<Problem> {
    let first_line = match def.format {
        definition::SourceFormat::Markdown => 2,
        definition::SourceFormat::Toml => 1,
    };
    let text = match def.format {
        definition::SourceFormat::Markdown => source.strip_prefix("---\n").unwrap_or(source),
        definition::SourceFormat::Toml => source,
    };
    let mut problems = Vec::new();
    let mut report = |field: &str, message: String, fix: String| {
        let (parent, key) = match field.split_once('.') {
            Some((p, k)) => (Some(p), k),
            None => (None, field),
        };
        problems.push(Problem {
            file: file.to_string(),
            line: definition::key_line(text, parent, key, first_line),
            column: None,
            field: Some(field.to_string()),
            message,
            fix,
        });
    };

    for (field, value) in [("name", &def.name), ("system_prompt", &def.system_prompt)] {
        if value.trim().is_empty() {
            report(
                field,
                format!("`{field}` is empty"),
                format!("give the agent a {field}"),
            );
        }
    }
    if !is_semver(&def.version) {
        report(
            "version",
            format!("version `{}` is not MAJOR.MINOR.PATCH", def.version),
            "write it like \"1.0.0\" (quoted)".into(),
        );
    }
    if def.capabilities.is_empty() {
        report(
            "capabilities",
            "the agent declares no capabilities, so nothing can be routed to it by capability"
                .into(),
            "list at least one, e.g. capabilities: [data_analysis]".into(),
        );
    }
    for capability in &def.capabilities {
        if capability.trim().is_empty() || capability.contains(char::is_whitespace) {
            report(
                "capabilities",
                format!("capability `{capability}` is empty or contains spaces"),
                "use snake_case names like data_analysis".into(),
            );
        }
    }
    for tool in &def.tools {
        if !ctx.known_tools.iter().any(|t| t == tool) {
            report(
                "tools",
                format!("unknown tool `{tool}`"),
                format!(
                    "run `caxton tools list` to see available tools (this server has: {})",
                    ctx.known_tools.join(", ")
                ),
            );
        }
    }
    if let Some(other) = ctx
        .loaded
        .iter()
        .find(|a| a.id != def.id && (a.name == def.name || a.id == def.name))
    {
        report(
            "name",
            format!(
                "another loaded agent is already named `{}` (id {})",
                def.name, other.id
            ),
            "choose a different name, or remove the other agent".into(),
        );
    }
    if let Some(llm) = &def.llm {
        if let Some(t) = llm.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            report(
                "llm.temperature",
                format!("temperature {t} is outside 0.0–2.0"),
                "use a value between 0.0 and 2.0".into(),
            );
        }
        if let Some(n) = llm.max_tokens.filter(|n| !(1..=32_768).contains(n)) {
            report(
                "llm.max_tokens",
                format!("max_tokens {n} is outside 1–32768"),
                "use a value between 1 and 32768".into(),
            );
        }
    }
    if !matches!(def.memory.scope.as_str(), "agent" | "workspace" | "global") {
        report(
            "memory.scope",
            format!("unknown memory scope `{}`", def.memory.scope),
            "use agent, workspace or global".into(),
        );
    }
    if !(1..=100).contains(&def.conversation.max_turns) {
        report(
            "conversation.max_turns",
            format!("max_turns {} is outside 1–100", def.conversation.max_turns),
            "use a value between 1 and 100".into(),
        );
    }
    if !(1..=50).contains(&def.max_tool_steps) {
        report(
            "max_tool_steps",
            format!("max_tool_steps {} is outside 1–50", def.max_tool_steps),
            "use a value between 1 and 50".into(),
        );
    }
    for (field, template) in [
        ("system_prompt", Some(&def.system_prompt)),
        ("user_prompt_template", def.user_prompt_template.as_ref()),
    ] {
        let Some(template) = template else { continue };
        let mut rest = template.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                report(
                    field,
                    "a `{{` is never closed".into(),
                    "close it with `}}`".into(),
                );
                break;
            };
            let key = after[..end].trim();
            let known = match key.strip_prefix("parameters.") {
                Some(p) => def.parameters.contains_key(p),
                None => matches!(key, "request" | "memory_context" | "conversation_history"),
            };
            if !known {
                report(
                    field,
                    format!("unknown placeholder `{{{{{key}}}}}`"),
                    match key.strip_prefix("parameters.") {
                        Some(p) => format!("declare `{p}` under `parameters:`, or fix the name"),
                        None => "use {{request}}, {{parameters.NAME}}, {{memory_context}} or {{conversation_history}}".into(),
                    },
                );
            }
            rest = &after[end + 2..];
        }
    }
    problems
}

/// Reads, parses and validates a file; any problem means `Err`.
pub fn load_file(
    path: &Path,
    ctx: &ValidationContext<'_>,
) -> Result<AgentDefinition, Vec<Problem>> {
    let file = path.display().to_string();
    let problem = |message: String, fix: &str| Problem {
        file: file.clone(),
        line: None,
        column: None,
        field: None,
        message,
        fix: fix.to_string(),
    };
    let format = definition::format_for_path(path).ok_or_else(|| {
        vec![problem(
            "not an agent definition file".into(),
            "name it <id>.md (YAML frontmatter + markdown) or <id>.toml",
        )]
    })?;
    let id = definition::agent_id_from_path(path).map_err(|p| vec![*p])?;
    let source = std::fs::read_to_string(path).map_err(|e| {
        vec![if e.kind() == std::io::ErrorKind::NotFound {
            problem(
                "file not found".into(),
                "check the path (agents live in the agents directory, e.g. agents/my-agent.md)",
            )
        } else {
            problem(
                format!("cannot read the file: {e}"),
                "check its permissions and encoding (UTF-8)",
            )
        }]
    })?;
    let (def, problems) = check(&id, &file, &source, format, ctx)?;
    if problems.is_empty() {
        Ok(def)
    } else {
        Err(problems)
    }
}

/// Shape and meaning problems together. A field with a shape problem is
/// not reported again by the meaning checks. `Err` only for syntax errors.
pub fn check(
    id: &str,
    file: &str,
    source: &str,
    format: definition::SourceFormat,
    ctx: &ValidationContext<'_>,
) -> Result<(AgentDefinition, Vec<Problem>), Vec<Problem>> {
    let (def, mut problems) = definition::parse_lenient(id, file, source, format)?;
    let reported: Vec<Option<String>> = problems.iter().map(|p| p.field.clone()).collect();
    problems.extend(
        validate(&def, file, source, ctx)
            .into_iter()
            .filter(|p| !reported.contains(&p.field)),
    );
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    Ok((def, problems))
}

//! Meaning checks on a parsed definition, against the running server's
//! tools and agents: every problem at once, each with where and how to fix,
//! so an author fixes a file in one pass instead of one error per reload.

use std::fmt;
use std::path::Path;

use super::definition::{self, AgentDefinition, SourceFormat};
use super::positions::Positions;
use crate::agents::deploy::{MAX_CAPABILITIES, MAX_TOOLS};

pub use super::problem::Problem;

/// An agent already running, for conflict checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedAgentInfo {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
}

/// What a definition is checked against.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    /// Tool names the server can run (`caxton tools list`); `SERVER/*`
    /// stands for every tool of an MCP server that cannot be asked now.
    pub known_tools: &'a [String],
    /// Loaded agents; the one being reloaded (same id) may be among them.
    pub loaded: &'a [LoadedAgentInfo],
}

/// Placeholders a template may use besides `{{parameters.NAME}}`.
const PLACEHOLDERS: &[&str] = &["request", "memory_context", "conversation_history"];

/// `MAJOR.MINOR.PATCH`, optionally with `-pre` and `+build`.
fn is_semver(v: &str) -> bool {
    let (rest, build) = v.split_once('+').unwrap_or((v, "x"));
    let (core, pre) = rest.split_once('-').unwrap_or((rest, "x"));
    let ident = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && ident(pre)
        && ident(build)
}

/// Semantic problems of `def`; `source` is the file's text, read again to
/// point at lines. One small function per check, each reporting through
/// the same [`Checker`].
pub fn validate(
    def: &AgentDefinition,
    file: &str,
    source: &str,
    ctx: &ValidationContext<'_>,
) -> Vec<Problem> {
    let mut checker = Checker {
        def,
        file,
        at: Positions::for_source(source, def.format),
        problems: Vec::new(),
        unplaced: Vec::new(),
    };
    checker.identity();
    checker.readable_names();
    checker.capabilities();
    checker.subscriptions();
    checker.tools(ctx.known_tools);
    checker.unique_among(ctx.loaded);
    checker.llm();
    checker.memory_scope();
    checker.bounds();
    checker.templates();
    let Checker {
        mut problems,
        unplaced,
        ..
    } = checker;
    problems.extend(unplaced);
    problems
}

/// The definition under check and what was found wrong with it.
struct Checker<'a> {
    def: &'a AgentDefinition,
    file: &'a str,
    at: Positions<'a>,
    problems: Vec<Problem>,
    /// Problems of no field; listed after the others.
    unplaced: Vec<Problem>,
}

impl Checker<'_> {
    fn report(
        &mut self,
        field: &str,
        (line, column): (Option<usize>, Option<usize>),
        message: String,
        fix: String,
    ) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            column,
            field: Some(field.to_string()),
            message,
            fix,
        });
    }

    /// A value outside `range` of the numeric field `field`; `(low, high)`
    /// are the bounds as the message shows them.
    fn out_of_range<T: PartialOrd + fmt::Display>(
        &mut self,
        field: &str,
        name: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        (low, high): (&str, &str),
    ) {
        if range.contains(&value) {
            return;
        }
        let at = self.at.key_at(field);
        self.report(
            field,
            at,
            format!("{name} {value} is outside {low}–{high}"),
            format!("use a value between {low} and {high}"),
        );
    }

    /// A name, a system prompt and a semantic version.
    fn identity(&mut self) {
        let def = self.def;
        for (field, value) in [("name", &def.name), ("system_prompt", &def.system_prompt)] {
            if value.trim().is_empty() {
                let at = self.at.key_at(field);
                self.report(
                    field,
                    at,
                    format!("`{field}` is empty"),
                    format!("give the agent a {}", field.replace('_', " ")),
                );
            }
        }
        if !is_semver(&def.version) {
            let at = self.at.key_at("version");
            self.report(
                "version",
                at,
                if def.version.is_empty() {
                    "`version` is empty".into()
                } else {
                    format!("version `{}` is not MAJOR.MINOR.PATCH", def.version)
                },
                "write it like \"1.0.0\" (quoted)".into(),
            );
        }
    }

    /// The display name and description are shown in lists, logs and
    /// metrics labels: one line of printable text each, of bounded length.
    /// Neither the name nor the id (the file name) may be a reserved
    /// sender name such as `user`, which agents take for the operator.
    fn readable_names(&mut self) {
        use crate::messaging::names;
        let def = self.def;
        let texts = [
            (
                "name",
                Some(def.name.as_str()),
                names::MAX_DISPLAY_NAME_CHARS,
            ),
            (
                "description",
                // A YAML block scalar ends in a newline; that one is harmless.
                def.description.as_deref().map(str::trim_end),
                names::MAX_DESCRIPTION_CHARS,
            ),
        ];
        for (field, text, max) in texts {
            let Some(Err(why)) = text.map(|t| names::check_one_line(&format!("`{field}`"), t, max))
            else {
                continue;
            };
            let at = self.at.key_at(field);
            self.report(
                field,
                at,
                why,
                format!("write it on one line without control or bidirectional-text characters, at most {max} characters"),
            );
        }
        if let Some(reason) = names::reserved_reason(&def.name) {
            let at = self.at.key_at("name");
            self.report("name", at, reason, "rename the agent".into());
        }
        if let Some(reason) = names::reserved_reason(&def.id) {
            self.unplaced.push(Problem {
                file: self.file.to_string(),
                line: None,
                column: None,
                field: None,
                message: format!("the agent id (the file name): {reason}"),
                fix: "rename the file".into(),
            });
        }
    }

    /// Whether the list `field` has more than `max` items, reported if so.
    /// Its items are then not checked one by one: a list that long is a
    /// mistake or an attack, and one problem per item would make the
    /// answer (and the work) as large as the list.
    fn too_long(&mut self, field: &str, len: usize, max: usize) -> bool {
        if len <= max {
            return false;
        }
        let at = self.at.key_at(field);
        self.report(
            field,
            at,
            format!("`{field}` lists {len} items; an agent may list at most {max}"),
            format!("keep the {max} the agent needs and remove the rest"),
        );
        true
    }

    /// At least one capability, each a single word, and not too many.
    fn capabilities(&mut self) {
        let def = self.def;
        if self.too_long("capabilities", def.capabilities.len(), MAX_CAPABILITIES) {
            return;
        }
        if def.capabilities.is_empty() {
            let at = self.at.key_at("capabilities");
            self.report(
                "capabilities",
                at,
                "the agent declares no capabilities, so nothing can be routed to it by capability"
                    .into(),
                "list at least one, e.g. capabilities: [data-analysis]".into(),
            );
        }
        for capability in &def.capabilities {
            if capability.trim().is_empty() || capability.contains(char::is_whitespace) {
                let at = self.at.value("capabilities", capability.trim());
                self.report(
                    "capabilities",
                    at,
                    format!("capability `{capability}` is empty or contains spaces"),
                    "use names like data-analysis or data_analysis".into(),
                );
            }
        }
    }

    /// Each topic a valid topic name, no more than an agent may subscribe to.
    fn subscriptions(&mut self) {
        let def = self.def;
        let max = crate::agents::topics::MAX_PER_AGENT;
        if self.too_long("subscriptions", def.subscriptions.len(), max) {
            return;
        }
        for topic in &def.subscriptions {
            if let Err(why) = crate::agents::topics::check_topic(topic) {
                let at = self.at.value("subscriptions", topic);
                self.report(
                    "subscriptions",
                    at,
                    why,
                    "use topic names like orders.created or news:weather".into(),
                );
            }
        }
    }

    /// Every listed tool exists on this server; as many as a WASM agent
    /// may be granted at most.
    fn tools(&mut self, known_tools: &[String]) {
        if self.too_long("tools", self.def.tools.len(), MAX_TOOLS) {
            return;
        }
        for tool in &self.def.tools {
            let unchecked = tool
                .split_once('/')
                .is_some_and(|(server, _)| known_tools.contains(&format!("{server}/*")));
            if known_tools.contains(tool) || unchecked {
                continue;
            }
            let hint = match definition::did_you_mean(tool, known_tools.iter().map(String::as_str))
            {
                Some(near) => format!("did you mean `{near}`? "),
                None => String::new(),
            };
            let at = self.at.value("tools", tool);
            self.report(
                "tools",
                at,
                format!("unknown tool `{tool}`"),
                format!("{hint}run `caxton tools list` to see available tools"),
            );
        }
    }

    /// Messages and lookups address agents by id or display name, so each
    /// must name one agent only. Shared capabilities are fine: routing
    /// picks one of the agents that declare it.
    fn unique_among(&mut self, loaded: &[LoadedAgentInfo]) {
        let def = self.def;
        for other in loaded.iter().filter(|a| a.id != def.id) {
            if other.name == def.name || other.id == def.name {
                let at = self.at.key_at("name");
                self.report(
                    "name",
                    at,
                    format!(
                        "another loaded agent is already named `{}` (id `{}`)",
                        def.name, other.id
                    ),
                    "choose a unique name, or remove the other agent".into(),
                );
            } else if other.name == def.id {
                self.unplaced.push(Problem {
                    file: self.file.to_string(),
                    line: None,
                    column: None,
                    field: None,
                    message: format!(
                        "the agent id `{}` (the file name) is the display name of the loaded agent `{}`",
                        def.id, other.id
                    ),
                    fix: "rename the file, or rename the other agent".into(),
                });
            }
        }
    }

    /// Model settings within what every provider accepts.
    fn llm(&mut self) {
        let Some(llm) = &self.def.llm else { return };
        if let Some(t) = llm.temperature {
            self.out_of_range(
                "llm.temperature",
                "temperature",
                t,
                0.0..=2.0,
                ("0.0", "2.0"),
            );
        }
        if let Some(n) = llm.max_tokens {
            self.out_of_range(
                "llm.max_tokens",
                "max_tokens",
                n,
                1..=32_768,
                ("1", "32768"),
            );
        }
    }

    fn memory_scope(&mut self) {
        let scope = &self.def.memory.scope;
        if !matches!(scope.as_str(), "agent" | "workspace" | "global") {
            let at = self.at.key_at("memory.scope");
            self.report(
                "memory.scope",
                at,
                format!("unknown memory scope `{scope}`"),
                "use agent (private), workspace or global".into(),
            );
        }
    }

    /// History and tool rounds bounded, so one message has a bounded cost.
    fn bounds(&mut self) {
        let def = self.def;
        self.out_of_range(
            "conversation.max_turns",
            "max_turns",
            def.conversation.max_turns,
            1..=100,
            ("1", "100"),
        );
        self.out_of_range(
            "max_tool_steps",
            "max_tool_steps",
            def.max_tool_steps,
            1..=50,
            ("1", "50"),
        );
    }

    /// Every `{{placeholder}}` of the prompts is one the interpreter fills.
    fn templates(&mut self) {
        let def = self.def;
        for (field, template) in [
            ("system_prompt", Some(&def.system_prompt)),
            ("user_prompt_template", def.user_prompt_template.as_ref()),
        ] {
            let Some(template) = template else { continue };
            let mut seen = std::collections::HashSet::new();
            for placeholder in placeholders(template) {
                if seen.insert(placeholder) {
                    self.placeholder(field, placeholder);
                }
            }
        }
    }

    fn placeholder(&mut self, field: &str, placeholder: Placeholder<'_>) {
        let Placeholder::Named(raw) = placeholder else {
            let at = self.at.key_at(field);
            self.report(
                field,
                at,
                "a `{{` is never closed".into(),
                "close it with `}}`".into(),
            );
            return;
        };
        let name = raw.trim();
        let known = match name.strip_prefix("parameters.") {
            Some(p) => self.def.parameters.contains_key(p),
            None => PLACEHOLDERS.contains(&name),
        };
        if known {
            return;
        }
        let fix = match name.strip_prefix("parameters.") {
            Some(p) => format!("declare `{p}` under `parameters`, or fix the name"),
            None => match definition::did_you_mean(name, PLACEHOLDERS.iter().copied()) {
                Some(near) => format!("did you mean `{{{{{near}}}}}`?"),
                None => "use {{request}}, {{parameters.NAME}}, {{memory_context}} or {{conversation_history}}".into(),
            },
        };
        let at = self.at.value(field, &format!("{{{{{raw}}}}}"));
        self.report(
            field,
            at,
            format!("unknown placeholder `{{{{{name}}}}}`"),
            fix,
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Placeholder<'a> {
    /// The text between `{{` and `}}`, as written.
    Named(&'a str),
    Unclosed,
}

/// The `{{…}}` of a template, as the interpreter reads them.
fn placeholders(template: &str) -> Vec<Placeholder<'_>> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            found.push(Placeholder::Unclosed);
            break;
        };
        found.push(Placeholder::Named(&after[..end]));
        rest = &after[end + 2..];
    }
    found
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
        vec![match e.kind() {
            std::io::ErrorKind::NotFound => problem(
                "file not found".into(),
                "check the path: agents live in the agents directory, e.g. agents/data-analyzer.md",
            ),
            std::io::ErrorKind::InvalidData => {
                problem("the file is not UTF-8 text".into(), "save it as UTF-8")
            }
            _ => problem(
                format!("cannot read the file: {e}"),
                "check that it is a readable file",
            ),
        }]
    })?;
    let (def, problems) = check(&id, &file, &source, format, ctx)?;
    if problems.is_empty() {
        Ok(def)
    } else {
        Err(problems)
    }
}

/// Shape and meaning problems together, in file order. A field with a
/// shape problem is not reported again by the meaning checks (a missing
/// `version` is not also "not MAJOR.MINOR.PATCH"). `Err` only when the
/// file cannot be read as YAML or TOML at all.
pub fn check(
    id: &str,
    file: &str,
    source: &str,
    format: SourceFormat,
    ctx: &ValidationContext<'_>,
) -> Result<(AgentDefinition, Vec<Problem>), Vec<Problem>> {
    let (def, mut problems) = definition::parse_lenient(id, file, source, format)?;
    let reported: std::collections::HashSet<Option<String>> =
        problems.iter().map(|p| p.field.clone()).collect();
    problems.extend(
        validate(&def, file, source, ctx)
            .into_iter()
            .filter(|p| p.field.is_none() || !reported.contains(&p.field)),
    );
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    Ok((def, problems))
}

#[cfg(test)]
mod tests {
    use super::super::definition::RUNBOOK_EXAMPLE;
    use super::*;

    fn tools() -> Vec<String> {
        ["http_client", "csv_parser", "json_processor", "memory/*"]
            .map(String::from)
            .to_vec()
    }

    fn loaded() -> Vec<LoadedAgentInfo> {
        vec![LoadedAgentInfo {
            id: "data-analyzer".into(),
            name: "DataAnalyzer".into(),
            capabilities: vec!["data-analysis".into()],
        }]
    }

    /// Every problem of `source` as `agents/<id>.md`, with the runbook's
    /// agent loaded.
    fn problems_of(id: &str, source: &str) -> Vec<Problem> {
        let (tools, loaded) = (tools(), loaded());
        let ctx = ValidationContext {
            known_tools: &tools,
            loaded: &loaded,
        };
        let file = format!("agents/{id}.md");
        match check(id, &file, source, SourceFormat::Markdown, &ctx) {
            Ok((_, problems)) | Err(problems) => problems,
        }
    }

    fn valid(extra: &str) -> String {
        format!(
            "---\nname: A\nversion: \"1.0.0\"\ncapabilities: [x]\nsystem_prompt: Hi.\n{extra}---\n"
        )
    }

    fn only(problems: Vec<Problem>) -> Problem {
        assert_eq!(problems.len(), 1, "{problems:#?}");
        problems.into_iter().next().expect("one")
    }

    #[test]
    fn lists_over_the_cap_are_one_problem_not_one_per_item() {
        let capabilities = vec!["has space"; MAX_CAPABILITIES + 1].join(", ");
        let tools: Vec<String> = (0..=MAX_TOOLS).map(|i| format!("nope{i}")).collect();
        let source = format!(
            "---\nname: A\nversion: \"1.0.0\"\ncapabilities: [{capabilities}]\ntools: [{}]\nsystem_prompt: Hi.\n---\n",
            tools.join(", ")
        );
        let problems = problems_of("lists", &source);
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.field.as_deref(), p.line))
            .collect();
        assert_eq!(
            found,
            [(Some("capabilities"), Some(4)), (Some("tools"), Some(5))],
            "{problems:#?}"
        );
        assert!(
            problems[0]
                .message
                .contains("lists 257 items; an agent may list at most 256"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].message.contains("at most 64"),
            "{}",
            problems[1]
        );
        // At the cap, each item is checked again.
        let tools: Vec<String> = (0..MAX_TOOLS).map(|i| format!("nope{i}")).collect();
        let problems = problems_of("lists", &valid(&format!("tools: [{}]\n", tools.join(", "))));
        assert_eq!(problems.len(), MAX_TOOLS, "{problems:#?}");
    }

    #[test]
    fn subscriptions_are_topic_names() {
        assert_eq!(
            problems_of("subs", &valid("subscriptions: [news, orders.created]\n")),
            []
        );
        let problem = only(problems_of(
            "subs",
            &valid("subscriptions: [news, \"a b\"]\n"),
        ));
        assert_eq!(problem.field.as_deref(), Some("subscriptions"), "{problem}");
        assert_eq!(problem.line, Some(6), "{problem}");
        assert!(problem.message.contains("a b"), "{problem}");
    }

    #[test]
    fn the_runbook_example_is_valid_and_may_be_reloaded() {
        // Same id as the loaded agent: a reload, not a conflict.
        assert_eq!(problems_of("data-analyzer", RUNBOOK_EXAMPLE), []);
    }

    #[test]
    fn display_is_file_line_column_field_message_fix() {
        let p = Problem {
            file: "agents/x.md".into(),
            line: Some(3),
            column: Some(1),
            field: Some("tools".into()),
            message: "unknown tool `foo`".into(),
            fix: "run `caxton tools list` to see available tools".into(),
        };
        assert_eq!(
            p.to_string(),
            "agents/x.md:3:1: field `tools`: unknown tool `foo` — fix: run `caxton tools list` to see available tools"
        );
        let bare = Problem {
            line: None,
            column: None,
            field: None,
            ..p
        };
        assert!(bare.to_string().starts_with("agents/x.md: unknown tool"));
    }

    #[test]
    fn every_problem_of_a_file_is_reported_at_once_in_file_order() {
        let source = "---\nname: DataAnalyzer\nversoin: \"1\"\ncapabilities: analysis\ntools: [csv_parser, magic_wand]\nsystem_prompt: \"Hi {{parameters.nope}}\"\n---\n";
        let problems = problems_of("copycat", source);
        let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 6, "{rendered:#?}");
        for expected in [
            "agents/copycat.md:2:1: field `name`: another loaded agent is already named `DataAnalyzer`",
            "agents/copycat.md:3:1: field `versoin`: unknown field `versoin` — fix: did you mean `version`?",
            "agents/copycat.md:4:1: field `capabilities`: `capabilities` must be a list of strings",
            "agents/copycat.md:5:21: field `tools`: unknown tool `magic_wand` — fix: run `caxton tools list`",
            "agents/copycat.md:6:20: field `system_prompt`: unknown placeholder `{{parameters.nope}}`",
            "agents/copycat.md:7:1: field `version`: missing required field `version`",
        ] {
            assert!(
                rendered.iter().any(|r| r.starts_with(expected)),
                "missing `{expected}` in {rendered:#?}"
            );
        }
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert!(lines.is_sorted(), "{lines:?}");
    }

    #[test]
    fn unknown_tools_point_at_the_item_and_suggest_near_names() {
        let p = only(problems_of(
            "a",
            &valid("tools:\n  - http_client\n  - csv_parse\n"),
        ));
        assert_eq!((p.line, p.column), (Some(8), Some(5)));
        assert_eq!(
            p.fix,
            "did you mean `csv_parser`? run `caxton tools list` to see available tools"
        );
    }

    #[test]
    fn tools_of_an_unreachable_mcp_server_are_not_refused() {
        let p = only(problems_of(
            "a",
            &valid("tools:\n  - memory/read_graph\n  - github/create_issue\n"),
        ));
        assert_eq!(p.message, "unknown tool `github/create_issue`");
    }

    #[test]
    fn names_must_be_unique_but_capabilities_may_be_shared() {
        let shared = valid("").replace("capabilities: [x]", "capabilities: [data-analysis]");
        assert_eq!(problems_of("other", &shared), []);

        let p = only(problems_of(
            "other",
            &valid("").replace("name: A", "name: DataAnalyzer"),
        ));
        assert_eq!(p.field.as_deref(), Some("name"));
        assert_eq!(p.line, Some(2));
        assert!(p.message.contains("id `data-analyzer`"), "{p}");

        // A name that is another agent's id is ambiguous too.
        let p = only(problems_of(
            "other",
            &valid("").replace("name: A", "name: data-analyzer"),
        ));
        assert_eq!(p.field.as_deref(), Some("name"));

        // And so is an id that is another agent's display name.
        let p = only(problems_of("DataAnalyzer", &valid("")));
        assert_eq!(p.field, None);
        assert!(p.fix.contains("rename the file"), "{p}");
    }

    #[test]
    fn required_fields_must_not_be_empty() {
        let source =
            "---\nname: \" \"\nversion: \"1.0.0\"\ncapabilities: []\nsystem_prompt: \"\"\n---\n";
        let problems = problems_of("a", source);
        let fields: Vec<_> = problems.iter().filter_map(|p| p.field.as_deref()).collect();
        assert_eq!(
            fields,
            ["name", "capabilities", "system_prompt"],
            "{problems:#?}"
        );
        assert_eq!(problems[2].line, Some(5));
    }

    #[test]
    fn versions_must_be_semver() {
        for ok in [
            "1.0.0",
            "0.12.3",
            "1.0.0-beta.1",
            "1.0.0+build.5",
            "1.0.0-rc-1+x",
        ] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "1", "1.0", "1.0.0.0", "v1.0.0", "1.0.x", "1.0.0-", "1.0.0+", "1..0", "",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
        let p = only(problems_of("a", &valid("").replace("\"1.0.0\"", "\"1.0\"")));
        assert_eq!((p.field.as_deref(), p.line), (Some("version"), Some(3)));
    }

    #[test]
    fn settings_must_be_in_range() {
        let source = valid(
            "llm:\n  temperature: 2.5\n  max_tokens: 0\nmemory:\n  scope: planet\nconversation:\n  max_turns: 101\nmax_tool_steps: 0\n",
        );
        let problems = problems_of("a", &source);
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.field.as_deref().unwrap_or(""), p.line.unwrap_or(0)))
            .collect();
        assert_eq!(
            found,
            [
                ("llm.temperature", 7),
                ("llm.max_tokens", 8),
                ("memory.scope", 10),
                ("conversation.max_turns", 12),
                ("max_tool_steps", 13),
            ]
        );
        let edges = valid(
            "llm:\n  temperature: 0\n  max_tokens: 32768\nmemory:\n  scope: global\nconversation:\n  max_turns: 100\nmax_tool_steps: 50\n",
        );
        assert_eq!(problems_of("a", &edges), []);
    }

    #[test]
    fn placeholders_must_be_known() {
        let source = valid(
            "parameters:\n  tone: calm\nuser_prompt_template: |\n  {{request}} in a {{ parameters.tone }} way\n  {{memory_context}} {{conversation_history}}\n  {{parameters.mood}} {{requests}} {{requests}}\n",
        );
        let problems = problems_of("a", &source);
        let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{rendered:#?}");
        assert!(rendered[0].starts_with(
            "agents/a.md:11:3: field `user_prompt_template`: unknown placeholder `{{parameters.mood}}` — fix: declare `mood` under `parameters`"
        ), "{rendered:#?}");
        assert!(
            rendered[1].starts_with("agents/a.md:11:23:"),
            "{rendered:#?}"
        );
        assert!(
            rendered[1].ends_with("did you mean `{{request}}`?"),
            "{rendered:#?}"
        );

        let p = only(problems_of(
            "a",
            &valid("user_prompt_template: \"{{request\"\n"),
        ));
        assert!(p.message.contains("never closed"), "{p}");
    }

    #[test]
    fn load_file_reads_parses_and_validates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tools, loaded) = (tools(), loaded());
        let ctx = ValidationContext {
            known_tools: &tools,
            loaded: &loaded,
        };
        let path = dir.path().join("data-analyzer.md");
        std::fs::write(&path, RUNBOOK_EXAMPLE).expect("write");
        let def = load_file(&path, &ctx).expect("valid");
        assert_eq!(
            (def.id.as_str(), def.name.as_str()),
            ("data-analyzer", "DataAnalyzer")
        );

        let missing = dir.path().join("nowhere.md");
        let problems = load_file(&missing, &ctx).expect_err("missing");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "file not found");
        assert!(problems[0].fix.contains("agents/"), "{}", problems[0]);

        let bad = dir.path().join("bad.md");
        std::fs::write(&bad, valid("tools: [magic_wand]\n")).expect("write");
        let problems = load_file(&bad, &ctx).expect_err("unknown tool");
        assert!(
            problems[0].fix.contains("caxton tools list"),
            "{}",
            problems[0]
        );

        let toml = dir.path().join("tomly.toml");
        std::fs::write(
            &toml,
            "name = \"Tomly\"\nversion = \"0.1.0\"\ncapabilities = [\"toml\"]\nsystem_prompt = \"TOML works too.\"\ndocumentation = \"Written in TOML.\"\n",
        )
        .expect("write");
        let def = load_file(&toml, &ctx).expect("valid toml");
        assert_eq!(def.documentation, "Written in TOML.");

        let problems = load_file(&dir.path().join("notes.txt"), &ctx).expect_err("not an agent");
        assert!(problems[0].message.contains("not an agent definition"));
        let problems = load_file(&dir.path().join("Bad Name.md"), &ctx).expect_err("bad id");
        assert!(problems[0].fix.contains("bad-name.md"), "{}", problems[0]);
    }

    #[test]
    fn validate_alone_checks_a_parsed_definition() {
        let def = definition::parse_source(
            "data-analyzer",
            "agents/data-analyzer.md",
            RUNBOOK_EXAMPLE,
            SourceFormat::Markdown,
        )
        .expect("parses");
        let ctx = ValidationContext {
            known_tools: &[],
            loaded: &[],
        };
        let problems = validate(&def, "agents/data-analyzer.md", RUNBOOK_EXAMPLE, &ctx);
        let found: Vec<_> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(
            found,
            [(Some(8), Some(5)), (Some(9), Some(5))],
            "{problems:#?}"
        );
    }

    #[test]
    fn toml_problems_use_toml_syntax_in_fixes() {
        let (tools, loaded) = (tools(), loaded());
        let ctx = ValidationContext {
            known_tools: &tools,
            loaded: &loaded,
        };
        let source = "name = \"T\"\ncapabilities = [\"x\"]\nsystem_prompt = \"Hi\"\ntool = [\"csv_parser\"]\n";
        let problems = match check("t", "agents/t.toml", source, SourceFormat::Toml, &ctx) {
            Ok((_, problems)) | Err(problems) => problems,
        };
        let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "agents/t.toml:1:1: field `version`: missing required field `version` — fix: add `version = \"1.0.0\"` before any [table]",
                "agents/t.toml:4:1: field `tool`: unknown field `tool` — fix: did you mean `tools`?",
            ]
        );
    }

    #[test]
    fn problems_serialize_for_the_api() {
        let p = only(problems_of("a", &valid("tools: [nope]\n")));
        let json = serde_json::to_value(&p).expect("encode");
        assert_eq!(json["field"], "tools");
        assert_eq!(json["line"], 6);
        let back: Problem = serde_json::from_value(json).expect("decode");
        assert_eq!(back, p);
    }
}

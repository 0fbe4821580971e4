//! The model's own chat template: the Jinja text a GGUF carries in
//! `tokenizer.chat_template`, rendered the way Hugging Face's
//! `apply_chat_template` renders it, so that Llama-3, Phi, SmolLM or Qwen
//! files each get the prompt they were trained on.
//!
//! What Hugging Face gives a template, and so what this module gives it:
//! `messages` (`role`, `content`, and `tool_calls` as
//! `{type: "function", function: {name, arguments}}` on assistant turns),
//! `tools` (OpenAI-style function declarations), `add_generation_prompt`,
//! `bos_token` and `eos_token`; the `raise_exception` and `strftime_now`
//! functions; a `tojson` filter that writes JSON as Python's `json.dumps`
//! does (`", "` and `": "` separators, non-ASCII kept, keys in their order);
//! `trim_blocks` and `lstrip_blocks` on; Python's string and dict methods.
//!
//! The template comes from a file, so it is input like any other: its work
//! is bounded by fuel and its output by [`MAX_PROMPT_BYTES`], and whatever
//! it raises is an error naming the template, never a panic.

use std::borrow::Cow;
use std::io;

use minijinja::value::{Kwargs, Serde};
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;
use serde_json::ser::Formatter;

use crate::llm::chatml::{Speaker, ToolDecl, Turn};

/// Instructions a template may execute for one prompt: published chat
/// templates need a few thousand; a template that loops for ever stops
/// here.
const FUEL: u64 = 2_000_000;

/// Longest prompt a template may produce (far above any model's context).
pub const MAX_PROMPT_BYTES: usize = 4 * 1024 * 1024;

/// Longest template accepted (published ones are under 20 KiB).
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;

/// The name the template is registered under (seen in error messages).
const NAME: &str = "tokenizer.chat_template";

/// Why a template cannot be used or could not render a conversation.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the model's chat template does not parse: {0}")]
    Syntax(String),
    #[error("the model's chat template is {0} bytes, more than the {MAX_TEMPLATE_BYTES} accepted")]
    TooBig(usize),
    #[error("the model's chat template refused the conversation: {0}")]
    Render(String),
    #[error(
        "the model's chat template produced {0} bytes, more than the {MAX_PROMPT_BYTES} allowed"
    )]
    TooLong(usize),
}

/// A compiled chat template with the special tokens it may print.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts of the
    /// model's BOS and EOS tokens (empty when it has none).
    pub fn new(
        source: String,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, TemplateError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooBig(source.len()));
        }
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| TemplateError::Syntax(describe(&e)))?,
        );
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, source.clone())
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            source,
            bos_token,
            eos_token,
        })
    }

    /// The template's Jinja text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The texts of the BOS and EOS tokens handed to the template.
    pub fn special_tokens(&self) -> (&str, &str) {
        (&self.bos_token, &self.eos_token)
    }

    /// The prompt for `turns` offering `tools`, ending with the opened
    /// assistant turn the model completes.
    pub fn render(&self, turns: &[Turn], tools: &[ToolDecl]) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let tools: Vec<ToolJson<'_>> = tools.iter().map(ToolJson::declaration).collect();
        let context = minijinja::context! {
            messages => Value::from(Serde(messages(turns))),
            // Hugging Face passes `tools=None` when there are none, and
            // templates test `if tools`.
            tools => if tools.is_empty() { Value::from(()) } else { Value::from(Serde(tools)) },
            add_generation_prompt => true,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        let prompt = template
            .render(context)
            .map_err(|e| TemplateError::Render(describe(&e)))?;
        if prompt.len() > MAX_PROMPT_BYTES {
            return Err(TemplateError::TooLong(prompt.len()));
        }
        Ok(prompt)
    }
}

/// One message as Hugging Face's chat format writes it.
#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Cow<'a, str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolJson<'a>>,
}

/// A function declaration or a function call: `{type, function: {…}}`.
#[derive(Serialize)]
struct ToolJson<'a> {
    r#type: &'static str,
    function: FunctionJson<'a>,
}

#[derive(Serialize)]
struct FunctionJson<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a serde_json::Value>,
}

impl<'a> ToolJson<'a> {
    fn declaration(tool: &'a ToolDecl) -> Self {
        ToolJson {
            r#type: "function",
            function: FunctionJson {
                name: &tool.name,
                description: Some(&tool.description),
                parameters: Some(&tool.parameters),
                arguments: None,
            },
        }
    }

    fn call(name: &'a str, arguments: &'a serde_json::Value) -> Self {
        ToolJson {
            r#type: "function",
            function: FunctionJson {
                name,
                description: None,
                parameters: None,
                arguments: Some(arguments),
            },
        }
    }
}

/// The turns as messages: the system turns joined into one leading system
/// message (templates read `messages[0]` for it), the rest in order.
fn messages(turns: &[Turn]) -> Vec<Message<'_>> {
    let system: Vec<&str> = turns
        .iter()
        .filter(|t| t.speaker == Speaker::System)
        .map(|t| t.content.as_str())
        .collect();
    let mut out = Vec::with_capacity(turns.len());
    match system.as_slice() {
        [] => {}
        [one] => out.push(Message {
            role: "system",
            content: Cow::Borrowed(one),
            tool_calls: Vec::new(),
        }),
        several => out.push(Message {
            role: "system",
            content: Cow::Owned(several.join("\n\n")),
            tool_calls: Vec::new(),
        }),
    }
    for turn in turns {
        let role = match turn.speaker {
            Speaker::System => continue,
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
            Speaker::Tool => "tool",
        };
        out.push(Message {
            role,
            content: Cow::Borrowed(&turn.content),
            tool_calls: turn
                .tool_calls
                .iter()
                .map(|(name, arguments)| ToolJson::call(name, arguments))
                .collect(),
        });
    }
    out
}

/// `value | tojson` (or `tojson(indent=2)`) as Python's `json.dumps` with
/// `ensure_ascii=False` writes it, which is what Hugging Face registers.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let written = match indent {
        None => value.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PythonCompact,
        )),
        Some(n) => {
            let indent = vec![b' '; n.min(16)];
            value.serialize(&mut serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(&indent),
            ))
        }
    };
    written.map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    let text = String::from_utf8(out)
        .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    Ok(Value::from_safe_string(text))
}

/// `json.dumps`' default separators: `", "` between items, `": "` after keys.
struct PythonCompact;

impl Formatter for PythonCompact {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `raise_exception(message)`: a template's way to refuse a conversation
/// (roles that do not alternate, a missing user turn, …).
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: today's date, for templates that print it
/// (Llama 3.x). Knows `%d %m %Y %y %b %B %H %M %S %%`, in UTC.
fn strftime_now(format: String) -> Result<Value, Error> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Value::from(strftime(&format, seconds)))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn strftime(format: &str, unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    let second_of_day = unix_seconds % 86_400;
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('H') => out.push_str(&format!("{:02}", second_of_day / 3600)),
            Some('M') => out.push_str(&format!("{:02}", second_of_day / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", second_of_day % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Year, month (1–12) and day of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An engine error as one line, with the template line it happened on.
fn describe(error: &Error) -> String {
    let mut text = match error.detail() {
        Some(detail) if error.kind() == ErrorKind::InvalidOperation => detail.to_string(),
        _ => error.to_string(),
    };
    if let Some(line) = error.line()
        && !text.contains("line")
    {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(speaker: Speaker, content: &str) -> Turn {
        Turn::text(speaker, content)
    }

    fn template(source: &str) -> ChatTemplate {
        ChatTemplate::new(source.into(), "<s>".into(), "</s>".into()).expect("compiles")
    }

    /// A Llama-3-style template, written for this test: header tokens,
    /// `bos_token`, `| trim`, the generation prompt.
    const HEADERS: &str = "{{- bos_token }}\n\
        {%- for message in messages %}\n\
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n\
        {%- endfor %}\n\
        {%- if add_generation_prompt %}\n\
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n\
        {%- endif %}\n";

    #[test]
    fn renders_a_header_style_template_with_its_special_tokens() {
        let prompt = template(HEADERS)
            .render(
                &[
                    turn(Speaker::System, "Be brief. "),
                    turn(Speaker::User, " Hi"),
                ],
                &[],
            )
            .expect("renders");
        assert_eq!(
            prompt,
            "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn block_tags_on_their_own_lines_leave_no_whitespace() {
        // trim_blocks and lstrip_blocks, as Hugging Face sets them.
        let source = "{% for message in messages %}\n    {% if message.role == 'user' %}\n[{{ message.content }}]\n    {% endif %}\n{% endfor %}";
        let prompt = template(source)
            .render(&[turn(Speaker::User, "a"), turn(Speaker::User, "b")], &[])
            .expect("renders");
        assert_eq!(prompt, "[a]\n[b]\n");
    }

    #[test]
    fn tools_and_calls_reach_the_template_in_the_hugging_face_shape() {
        let source = "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}\
            {% for message in messages %}{% for call in message.tool_calls %}\
            {{ call.type }} {{ call.function.name }} {{ call.function.arguments | tojson }}\n\
            {% endfor %}{% if message.role == 'tool' %}tool: {{ message.content }}{% endif %}{% endfor %}";
        let tools = [ToolDecl {
            name: "get_weather".into(),
            description: "Weather, à la carte".into(),
            parameters: json!({"type": "object"}),
        }];
        let turns = [
            turn(Speaker::User, "Weather in Paris?"),
            Turn {
                speaker: Speaker::Assistant,
                content: String::new(),
                tool_calls: vec![(
                    "get_weather".into(),
                    json!({"city": "Paris", "days": [1, 2]}),
                )],
            },
            turn(Speaker::Tool, "{\"temp\": 21}"),
        ];
        let prompt = template(source).render(&turns, &tools).expect("renders");
        // Python's json.dumps: ", " and ": ", non-ASCII kept, keys in order.
        assert_eq!(
            prompt,
            "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \
             \"description\": \"Weather, à la carte\", \"parameters\": {\"type\": \"object\"}}}\n\
             function get_weather {\"city\": \"Paris\", \"days\": [1, 2]}\n\
             tool: {\"temp\": 21}"
        );
    }

    #[test]
    fn no_tools_is_falsy_and_tojson_takes_an_indent() {
        let source =
            "{% if tools %}tools{% else %}none{% endif %} {{ {'a': [1]} | tojson(indent=2) }}";
        let prompt = template(source)
            .render(&[turn(Speaker::User, "x")], &[])
            .expect("renders");
        assert_eq!(prompt, "none {\n  \"a\": [\n    1\n  ]\n}");
    }

    #[test]
    fn several_system_turns_become_one_leading_message() {
        let source = "{{ messages | length }}:{{ messages[0].content }}";
        let prompt = template(source)
            .render(
                &[
                    turn(Speaker::System, "one"),
                    turn(Speaker::User, "hi"),
                    turn(Speaker::System, "two"),
                ],
                &[],
            )
            .expect("renders");
        assert_eq!(prompt, "2:one\n\ntwo");
    }

    #[test]
    fn python_string_methods_work() {
        let source = "{{ messages[0].content.strip().upper() }}{% if messages[0].content.startswith(' h') %}!{% endif %}";
        let prompt = template(source)
            .render(&[turn(Speaker::User, " hi ")], &[])
            .expect("renders");
        assert_eq!(prompt, "HI!");
    }

    #[test]
    fn a_raised_exception_is_an_error_with_its_message() {
        let source = "{% if messages[0].role != 'system' %}{{ raise_exception('Conversation must start with a system turn') }}{% endif %}";
        let error = template(source)
            .render(&[turn(Speaker::User, "hi")], &[])
            .expect_err("refused");
        assert!(matches!(error, TemplateError::Render(_)), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("Conversation must start with a system turn"),
            "{error}"
        );
    }

    #[test]
    fn hostile_templates_fail_without_hanging_or_growing() {
        assert!(matches!(
            ChatTemplate::new("{% for x in %}".into(), String::new(), String::new()),
            Err(TemplateError::Syntax(_))
        ));
        let endless =
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let error = template(endless)
            .render(&[turn(Speaker::User, "hi")], &[])
            .expect_err("out of fuel");
        assert!(error.to_string().contains("fuel"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let huge = "{% for a in range(100000) %}{{ messages[0].content }}{% endfor %}";
        let long = "x".repeat(100);
        let error = template(huge)
            .render(&[turn(Speaker::User, &long)], &[])
            .expect_err("too long");
        assert!(matches!(error, TemplateError::TooLong(_)), "{error:?}");
    }

    #[test]
    fn dates_for_templates_that_print_today() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(strftime("%d %b %Y", 1_796_189_324), "02 Dec 2026");
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %B %y 100%%", 951_868_799),
            "2000-02-29 23:59:59 February 00 100%"
        );
        let source = "{{ strftime_now('%Y') }}";
        let year: i64 = template(source)
            .render(&[], &[])
            .expect("renders")
            .parse()
            .expect("a year");
        assert!(year >= 2026);
    }
}

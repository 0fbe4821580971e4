//! Prompt assembly: `{{placeholders}}` filled from the request, the
//! agent's parameters, memory and the conversation so far.

use std::collections::BTreeMap;

/// Values a template may name.
pub struct Context<'a> {
    pub request: &'a str,
    pub parameters: &'a BTreeMap<String, serde_json::Value>,
    pub memory_context: &'a str,
    pub conversation_history: &'a str,
}

/// Replaces `{{request}}`, `{{parameters.NAME}}`, `{{memory_context}}` and
/// `{{conversation_history}}`. Unknown placeholders are left as written
/// (the host's validation reports them before an agent ever runs).
pub fn render(template: &str, ctx: &Context<'_>) -> String {
    let mut out = String::with_capacity(template.len() + ctx.request.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        match value(key, ctx) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn value(key: &str, ctx: &Context<'_>) -> Option<String> {
    match key {
        "request" => Some(ctx.request.to_string()),
        "memory_context" => Some(ctx.memory_context.to_string()),
        "conversation_history" => Some(ctx.conversation_history.to_string()),
        other => {
            let name = other.strip_prefix("parameters.")?;
            Some(match ctx.parameters.get(name)? {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_placeholders_and_keeps_unknown_ones() {
        let mut parameters = BTreeMap::new();
        parameters.insert("tone".to_string(), serde_json::json!("friendly"));
        parameters.insert("max_rows".to_string(), serde_json::json!(100));
        let ctx = Context {
            request: "hi",
            parameters: &parameters,
            memory_context: "- Alice: likes tea",
            conversation_history: "",
        };
        assert_eq!(
            render(
                "Be {{parameters.tone}} ({{ parameters.max_rows }}): {{request}} {{nope}} {{memory_context}}",
                &ctx
            ),
            "Be friendly (100): hi {{nope}} - Alice: likes tea"
        );
        assert_eq!(render("open {{ never closed", &ctx), "open {{ never closed");
    }
}

//! `caxton trace`: a conversation as a tree of message hops, LLM calls and
//! tool calls with their timings, or an agent's recent conversations.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;

use super::client::Client;
use crate::trace::{Span, SpanKind, TraceAnswer};

#[derive(Args)]
pub struct TraceArgs {
    /// Only conversations this agent took part in.
    #[arg(long)]
    pub agent: Option<String>,
    /// The conversation to print; without it, recent conversations are listed.
    #[arg(long)]
    pub conversation_id: Option<String>,
    /// Conversations listed without --conversation-id.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub async fn run(client: &Client, args: TraceArgs) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(agent) = &args.agent {
        query.push(format!("agent={}", crate::server::percent_encode(agent)));
    }
    if let Some(id) = &args.conversation_id {
        query.push(format!(
            "conversation_id={}",
            crate::server::percent_encode(id)
        ));
    }
    let answer: TraceAnswer = client
        .get_as(&format!("/api/v1/traces?{}", query.join("&")))
        .await?;
    if super::output::emit_json(&answer) {
        return Ok(ExitCode::SUCCESS);
    }
    match answer {
        TraceAnswer::Conversation {
            conversation_id,
            spans,
        } => print!("{}", render_tree(&conversation_id, &spans)),
        TraceAnswer::Conversations {
            conversations,
            kept_spans,
        } => {
            if conversations.is_empty() {
                println!("No conversations traced yet ({kept_spans} spans kept).");
                return Ok(ExitCode::SUCCESS);
            }
            let mut table =
                super::output::Table::new(&["CONVERSATION", "SPANS", "ERRORS", "STARTED"])
                    .right(&[1, 2]);
            for c in conversations {
                table.row(vec![
                    c.conversation_id,
                    c.spans.to_string(),
                    c.errors.to_string(),
                    crate::clock::rfc3339_from_millis(c.start_ms),
                ]);
            }
            table.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The conversation as a tree: each span under the one that caused it,
/// children in the order they started, with offsets from the first span.
pub fn render_tree(conversation_id: &str, spans: &[Span]) -> String {
    let ids: std::collections::HashSet<u64> = spans.iter().map(|s| s.id).collect();
    let mut children: BTreeMap<Option<u64>, Vec<&Span>> = BTreeMap::new();
    for span in spans {
        // A parent dropped from the store (or in another conversation)
        // makes its children roots.
        let parent = span.parent.filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| (s.start_ms, s.id));
    }
    let start = spans.iter().map(|s| s.start_ms).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.start_ms as f64 + s.duration_ms)
        .fold(start as f64, f64::max);
    let agents: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.agent.as_str()).collect();
    let errors = spans.iter().filter(|s| s.error.is_some()).count();
    let mut out = format!(
        "Conversation {conversation_id}: {} span(s), {} agent(s), {:.1} ms{}\n",
        spans.len(),
        agents.len(),
        end - start as f64,
        if errors > 0 {
            format!(", {errors} error(s)")
        } else {
            String::new()
        }
    );
    render_children(&children, None, "", start, &mut out);
    out
}

fn render_children(
    children: &BTreeMap<Option<u64>, Vec<&Span>>,
    parent: Option<u64>,
    prefix: &str,
    start: u64,
    out: &mut String,
) {
    let Some(list) = children.get(&parent) else {
        return;
    };
    for (i, span) in list.iter().enumerate() {
        let last = i + 1 == list.len();
        let (branch, next) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        out.push_str(&format!(
            "{prefix}{branch}[+{} ms] {}\n",
            span.start_ms.saturating_sub(start),
            describe(span)
        ));
        render_children(
            children,
            Some(span.id),
            &format!("{prefix}{next}"),
            start,
            out,
        );
    }
}

fn describe(span: &Span) -> String {
    let what = match &span.kind {
        SpanKind::Message {
            sender,
            performative,
            queued_ms,
        } => format!(
            "{sender} → {}  {performative}  {:.1} ms (queued {queued_ms:.1} ms)",
            span.agent, span.duration_ms
        ),
        SpanKind::Llm {
            provider,
            model,
            prompt_tokens,
            completion_tokens,
        } => format!(
            "llm {provider}/{model} by {}  {:.1} ms  {prompt_tokens}+{completion_tokens} tokens",
            span.agent, span.duration_ms
        ),
        SpanKind::Tool { tool } => {
            format!("tool {tool} by {}  {:.1} ms", span.agent, span.duration_ms)
        }
        SpanKind::Import {
            interface,
            function,
        } => format!(
            "{interface}.{function} by {}  {:.1} ms",
            span.agent, span.duration_ms
        ),
        SpanKind::Request {
            method,
            route,
            status,
            request_id,
        } => format!(
            "{method} {route} → {status}  {:.1} ms  (request {request_id})",
            span.duration_ms
        ),
    };
    match &span.error {
        Some(error) => format!("{what}  ERROR: {error}"),
        None => what,
    }
}

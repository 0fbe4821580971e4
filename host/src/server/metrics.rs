//! `GET /metrics`: Prometheus text exposition, with the metric names the
//! operator runbook greps for (`caxton_server_*`, `caxton_memory_*`,
//! `caxton_agent_*`). Served on the API port, and on
//! `monitoring.metrics_port` when that is set.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::agents::record::AgentKind;

/// One metric: name, help text, type, and samples as `(labels, value)`.
struct Metric<'a> {
    name: &'a str,
    help: &'a str,
    kind: &'a str,
    samples: Vec<(String, f64)>,
}

fn render(metrics: &[Metric<'_>]) -> String {
    let mut out = String::new();
    for m in metrics {
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind);
        for (labels, value) in &m.samples {
            let _ = writeln!(out, "{}{labels} {value}", m.name);
        }
    }
    out
}

/// A metric with one unlabelled sample.
fn single<'a>(kind: &'a str, name: &'a str, help: &'a str, value: f64) -> Metric<'a> {
    Metric {
        name,
        help,
        kind,
        samples: vec![(String::new(), value)],
    }
}

/// A histogram in the text format: cumulative `_bucket`s, `_sum`, `_count`.
fn render_histogram(
    out: &mut String,
    name: &str,
    help: &str,
    h: &crate::observe::HistogramSnapshot,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (bound, count) in crate::observe::BUCKETS.iter().zip(&h.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// The latency histograms `observe` keeps, with their exposition names.
fn histograms() -> String {
    use crate::observe as o;
    let mut out = String::new();
    for (name, help, histogram) in [
        (
            "caxton_message_duration_seconds",
            "Time agents took to handle a message, from the mailbox to the reply.",
            &o::MESSAGE_SECONDS,
        ),
        (
            "caxton_llm_call_duration_seconds",
            "Time of LLM calls, retries included, any provider.",
            &o::LLM_CALL_SECONDS,
        ),
        (
            "caxton_tool_call_duration_seconds",
            "Time of tool calls (built-in, component and MCP tools).",
            &o::TOOL_CALL_SECONDS,
        ),
        (
            "caxton_memory_search_duration_seconds",
            "Time of memory searches, the query's embedding included.",
            &o::MEMORY_SEARCH_SECONDS,
        ),
        (
            "caxton_http_request_duration_seconds",
            "Time from a request's arrival to its response's head.",
            &o::HTTP_REQUEST_SECONDS,
        ),
    ] {
        render_histogram(&mut out, name, help, &histogram.snapshot());
    }
    out
}

/// The standard `process_*` metrics (Prometheus client conventions), when
/// `/proc` tells them.
fn process_metrics() -> Vec<Metric<'static>> {
    let Some(p) = crate::observe::process_facts() else {
        return Vec::new();
    };
    let mut metrics = vec![
        counter(
            "process_cpu_seconds_total",
            "User and system CPU time spent, seconds.",
            p.cpu_seconds,
        ),
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size, bytes.",
            p.resident_bytes as f64,
        ),
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size, bytes.",
            p.virtual_bytes as f64,
        ),
        gauge(
            "process_open_fds",
            "Open file descriptors.",
            p.open_fds as f64,
        ),
        gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, seconds.",
            p.start_time_seconds,
        ),
    ];
    if let Some(max) = p.max_fds {
        metrics.push(gauge(
            "process_max_fds",
            "Most open file descriptors allowed.",
            max as f64,
        ));
    }
    metrics
}

/// Requests served, by route (the API's path pattern), method and status class.
fn http_requests() -> Metric<'static> {
    Metric {
        name: "caxton_http_requests_total",
        help: "HTTP requests answered, by route pattern, method and status class.",
        kind: "counter",
        samples: crate::observe::requests()
            .into_iter()
            .map(|(route, method, class, count)| {
                (
                    format!(
                        "{{route=\"{}\",method=\"{method}\",code=\"{class}\"}}",
                        escape_label(&route)
                    ),
                    count as f64,
                )
            })
            .collect(),
    }
}

fn gauge<'a>(name: &'a str, help: &'a str, value: f64) -> Metric<'a> {
    single("gauge", name, help, value)
}

fn counter<'a>(name: &'a str, help: &'a str, value: f64) -> Metric<'a> {
    single("counter", name, help, value)
}

/// Prometheus metrics.
///
/// `caxton_server_*`, `caxton_memory_*`, `caxton_agent_*` and the rest, in
/// the text exposition format 0.0.4; also at `/api/v1/metrics` and on
/// `monitoring.metrics_port`.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Text exposition format 0.0.4", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    exposition(&state).await
}

/// Prometheus metrics, under the API prefix (the same text as `/metrics`).
#[utoipa::path(get, path = "/api/v1/metrics", tag = "operations", operation_id = "metrics_under_api",
    responses((status = 200, description = "Text exposition format 0.0.4", content_type = "text/plain", body = String)))]
pub async fn metrics_under_api(State(state): State<AppState>) -> impl IntoResponse {
    exposition(&state).await
}

async fn exposition(state: &AppState) -> impl IntoResponse + use<> {
    let agents = state.manager.registry().all();
    let of_kind = |kind: AgentKind| agents.iter().filter(|a| a.record().kind == kind).count();
    let (config_count, wasm_count, a2a_count) = (
        of_kind(AgentKind::Config),
        of_kind(AgentKind::Wasm),
        of_kind(AgentKind::A2a),
    );
    let mut handled = 0u64;
    let mut failed = 0u64;
    let mut slowest_avg_ms = 0f64;
    let mut per_agent = Vec::new();
    let mut recent_us: Vec<u64> = Vec::new();
    for agent in &agents {
        let stats = agent.stats();
        recent_us.extend(stats.recent_us.iter().copied());
        handled += stats.messages_handled;
        failed += stats.messages_failed;
        slowest_avg_ms = slowest_avg_ms.max(stats.avg_execution_ms);
        per_agent.push((
            format!("{{agent=\"{}\"}}", escape_label(&agent.name)),
            stats.messages_handled as f64,
        ));
    }
    let (reload_ok, reload_failed) = state.config_agents.reload_counts();
    let memory = state.memory.clone();
    let memory_stats = tokio::task::spawn_blocking(move || memory.stats())
        .await
        .ok()
        .and_then(Result::ok);
    let search_p99_s = memory_stats
        .as_ref()
        .and_then(|s| s.latency.get("semantic_search"))
        .map_or(0.0, |l| l.p99_ms / 1000.0);
    let traverse_p99_s = memory_stats
        .as_ref()
        .and_then(|s| s.latency.get("graph_traversal"))
        .map_or(0.0, |l| l.p99_ms / 1000.0);
    let counts = memory_stats.as_ref().map(|s| s.counts);

    recent_us.sort_unstable();
    let response_p99_s = match recent_us.len() {
        0 => 0.0,
        n => recent_us[((n - 1) as f64 * 0.99).round() as usize] as f64 / 1e6,
    };
    let mut metrics = vec![
        counter(
            "caxton_server_restarts_total",
            "Times a server started on this data directory after the first.",
            state.starts.saturating_sub(1) as f64,
        ),
        gauge(
            "caxton_agent_response_latency_p99",
            "p99 of agents' recent message handling times, seconds (the last 256 per agent).",
            response_p99_s,
        ),
        gauge(
            "caxton_server_uptime_seconds",
            "Seconds since this server process started.",
            state.started.elapsed().as_secs_f64(),
        ),
        gauge(
            "caxton_server_memory_usage_bytes",
            "Resident memory of the server process.",
            crate::memory::resident_memory_bytes().unwrap_or(0) as f64,
        ),
        gauge(
            "caxton_memory_entities",
            "Entities in embedded memory, all scopes.",
            counts.as_ref().map_or(0.0, |c| c.entities as f64),
        ),
        gauge(
            "caxton_memory_relations",
            "Relations in embedded memory, all scopes.",
            counts.as_ref().map_or(0.0, |c| c.relations as f64),
        ),
        gauge(
            "caxton_memory_observations",
            "Observations in embedded memory, all scopes.",
            counts.as_ref().map_or(0.0, |c| c.observations as f64),
        ),
        // The runbook greps these names; they are gauges (entities can be
        // deleted), kept beside the properly named ones above.
        gauge(
            "caxton_memory_entities_total",
            "The runbook's name for caxton_memory_entities (a gauge despite the suffix).",
            counts.as_ref().map_or(0.0, |c| c.entities as f64),
        ),
        gauge(
            "caxton_memory_relations_total",
            "The runbook's name for caxton_memory_relations (a gauge despite the suffix).",
            counts.as_ref().map_or(0.0, |c| c.relations as f64),
        ),
        gauge(
            "caxton_memory_search_latency_p99",
            "p99 of recent memory searches, seconds (query embedding included).",
            search_p99_s,
        ),
        gauge(
            "caxton_memory_traverse_latency_p99",
            "p99 of recent graph traversals, seconds.",
            traverse_p99_s,
        ),
        gauge(
            "caxton_memory_db_size_bytes",
            "Size of the database file (redb; agents and memory).",
            state.storage.file_bytes() as f64,
        ),
        gauge(
            "caxton_memory_sqlite_size_bytes",
            "The runbook's name for caxton_memory_db_size_bytes (the store is redb, not SQLite).",
            state.storage.file_bytes() as f64,
        ),
        gauge(
            "caxton_agent_config_count",
            "Config agents (markdown/TOML definitions) running.",
            config_count as f64,
        ),
        gauge(
            "caxton_agent_wasm_count",
            "WASM component agents running.",
            wasm_count as f64,
        ),
        gauge(
            "caxton_agent_a2a_count",
            "Agents on other servers, spoken to over A2A (`a2a_agents:`).",
            a2a_count as f64,
        ),
        counter(
            "caxton_agent_reload_success_total",
            "Config agent loads and reloads that went live.",
            reload_ok as f64,
        ),
        counter(
            "caxton_agent_reload_failure_total",
            "Config agent loads and reloads rejected (the last good version kept serving).",
            reload_failed as f64,
        ),
        counter(
            "caxton_agent_messages_total",
            "Messages agents handled, all agents.",
            handled as f64,
        ),
        counter(
            "caxton_agent_failures_total",
            "Messages that ended in a trap, limit hit or failed instance.",
            failed as f64,
        ),
        counter(
            "caxton_component_compiles_total",
            "WebAssembly components compiled (not loaded from the compiled cache or a recent compile).",
            state.manager.component_compiles() as f64,
        ),
        counter(
            "caxton_trace_export_dropped_total",
            "Spans not exported over OTLP: the exporter's queue was full, or the collector did not take them.",
            state.trace.export_dropped() as f64,
        ),
        Metric {
            name: "caxton_agent_messages_handled_total",
            help: "Messages handled, per agent.",
            kind: "counter",
            samples: per_agent,
        },
    ];
    let conversations =
        crate::messaging::MessageBus::conversations(state.manager.registry().as_ref()).clone();
    let tally: Vec<(String, f64)> = conversations
        .tally()
        .into_iter()
        .map(|((protocol, state), n)| {
            (
                format!(
                    "{{protocol=\"{}\",state=\"{}\"}}",
                    protocol.as_str(),
                    state.as_str()
                ),
                n as f64,
            )
        })
        .collect();
    metrics.push(Metric {
        name: "caxton_conversations",
        help: "Conversations kept (`caxton conversations list`), by protocol and state.",
        kind: "gauge",
        samples: tally,
    });
    metrics.push(gauge(
        "caxton_conversation_history_bytes",
        "Bytes of conversation history kept (capped by conversations.max_bytes).",
        conversations.usage().1 as f64,
    ));
    if let Some(budgets) = state.manager.budgets() {
        let mut tokens = Vec::new();
        let mut cost = Vec::new();
        for ((agent, model), spend) in budgets.counters() {
            let labels = format!(
                "agent=\"{}\",model=\"{}\"",
                escape_label(&agent),
                escape_label(&model)
            );
            tokens.push((
                format!("{{{labels},direction=\"in\"}}"),
                spend.tokens_in as f64,
            ));
            tokens.push((
                format!("{{{labels},direction=\"out\"}}"),
                spend.tokens_out as f64,
            ));
            cost.push((format!("{{{labels}}}"), spend.cost_micros as f64 / 1e6));
        }
        metrics.push(Metric {
            name: "caxton_llm_tokens_total",
            help: "Model tokens spent since start, by agent, model and direction (in: prompt, out: completion).",
            kind: "counter",
            samples: tokens,
        });
        metrics.push(Metric {
            name: "caxton_llm_cost_total",
            help: "Model cost since start (budgets.prices currency), by agent and model.",
            kind: "counter",
            samples: cost,
        });
        metrics.push(Metric {
            name: "caxton_budget_refusals_total",
            help: "Model calls refused by a budget since start, by budget.",
            kind: "counter",
            samples: budgets
                .refusals()
                .into_iter()
                .map(|(subject, n)| {
                    (
                        format!("{{budget=\"{}\"}}", escape_label(&subject)),
                        n as f64,
                    )
                })
                .collect(),
        });
    }
    if let Some(recorder) = state.manager.recorder() {
        let stats = recorder.stats();
        metrics.push(gauge(
            "caxton_recordings_bytes",
            "Bytes of recorded conversations on disk (capped by recordings.max_bytes).",
            stats.bytes as f64,
        ));
        metrics.push(gauge(
            "caxton_recorded_conversations",
            "Recorded conversations kept (`caxton conversations export ID`).",
            stats.conversations as f64,
        ));
        metrics.push(counter(
            "caxton_recording_events_dropped_total",
            "Events left unrecorded since start because the recorder was behind.",
            stats.dropped as f64,
        ));
    }
    if let Some(outbox) = state.manager.registry().outbox().cloned() {
        let counts = tokio::task::spawn_blocking(move || outbox.counts()).await;
        if let Ok(Ok((waiting, dead))) = counts {
            metrics.push(gauge(
                "caxton_outbox_waiting",
                "Fire-and-forget messages queued for delivery (on disk).",
                waiting as f64,
            ));
            metrics.push(gauge(
                "caxton_outbox_dead_letters",
                "Fire-and-forget messages that failed every try, kept for `caxton dead-letters`.",
                dead as f64,
            ));
        }
    }
    if let Some(cluster) = state.cluster.get() {
        let status = cluster.status();
        let newest = status
            .nodes
            .iter()
            .map(|n| n.memory_applied)
            .max()
            .unwrap_or(0);
        let applied = cluster.memory_applied();
        metrics.push(gauge(
            "caxton_cluster_nodes",
            "Live nodes of the cluster as this node sees it.",
            status.nodes.len() as f64,
        ));
        metrics.push(gauge(
            "caxton_cluster_nats_connected",
            "1 while this node is connected to NATS.",
            f64::from(u8::from(status.nats == "connected")),
        ));
        metrics.push(gauge(
            "caxton_memory_replication_applied",
            "The last position of the cluster's memory stream this node applied.",
            applied as f64,
        ));
        metrics.push(gauge(
            "caxton_memory_replication_behind",
            "Memory writes the most advanced node applied that this node has not yet.",
            newest.saturating_sub(applied) as f64,
        ));
    }
    let mut text = render(&metrics);
    text.push_str(&render(&[http_requests()]));
    text.push_str(&histograms());
    text.push_str(&render(&process_metrics()));
    if let Some(cluster) = state.cluster.get() {
        text = with_label(&text, "node", cluster.node());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Every sample of `text` with `name="value"` as its first label: in a
/// cluster each node's series say which node they are from.
fn with_label(text: &str, name: &str, value: &str) -> String {
    let value = escape_label(value);
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else if let Some(brace) = line.find('{').filter(|b| !line[..*b].contains(' ')) {
            let (series, rest) = line.split_at(brace + 1);
            let comma = if rest.starts_with('}') { "" } else { "," };
            out.push_str(&format!("{series}{name}=\"{value}\"{comma}{rest}"));
        } else if let Some((series, sample)) = line.split_once(' ') {
            out.push_str(&format!("{series}{{{name}=\"{value}\"}} {sample}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod node_label_tests {
    #[test]
    fn every_sample_gets_the_label_and_comments_stay() {
        let text = "# HELP a x\n# TYPE a gauge\na 1\nb{le=\"0.5\"} 2\nc{} 3\n";
        assert_eq!(
            super::with_label(text, "node", "n-1"),
            "# HELP a x\n# TYPE a gauge\na{node=\"n-1\"} 1\nb{node=\"n-1\",le=\"0.5\"} 2\nc{node=\"n-1\"} 3\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let text = render(&[
            gauge("caxton_x", "An x.", 1.5),
            Metric {
                name: "caxton_y",
                help: "Per agent.",
                kind: "counter",
                samples: vec![("{agent=\"a\"}".into(), 2.0)],
            },
        ]);
        assert_eq!(
            text,
            "# HELP caxton_x An x.\n# TYPE caxton_x gauge\ncaxton_x 1.5\n\
             # HELP caxton_y Per agent.\n# TYPE caxton_y counter\ncaxton_y{agent=\"a\"} 2\n"
        );
    }
}

/// A label value as the Prometheus text format wants it: backslash, double
/// quote and line feed escaped, so no name can end the label or forge a line.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            // The format has no other escapes; other control characters
            // would only confuse a reader.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod label_tests {
    use super::escape_label;

    #[test]
    fn label_values_cannot_forge_lines() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert!(!escape_label("x\ncaxton_forged 1").contains('\n'));
    }
}

//! Seeing inside: spans exported over OTLP/HTTP to a collector-side decoder
//! (the protocol's own protobuf types), W3C `traceparent` carried from the
//! caller through the agent's model and tool calls, request ids on
//! responses and log lines, JSON logs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

use crate::harness::{Server, temp_data_dir};

/// An OTLP/HTTP receiver: decodes each export request as a collector does
/// and keeps the spans.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let services: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kept, named) = (spans.clone(), services.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    assert_eq!(
                        headers.get("content-type").and_then(|v| v.to_str().ok()),
                        Some("application/x-protobuf")
                    );
                    let request =
                        ExportTraceServiceRequest::decode(body).expect("a valid OTLP export");
                    for resource in request.resource_spans {
                        for attribute in resource.resource.map(|r| r.attributes).unwrap_or_default()
                        {
                            if attribute.key == "service.name"
                                && let Some(Any::StringValue(name)) =
                                    attribute.value.and_then(|v| v.value)
                            {
                                named.lock().expect("lock").push(name);
                            }
                        }
                        for scope in resource.scope_spans {
                            kept.lock().expect("lock").extend(scope.spans);
                        }
                    }
                    axum::http::StatusCode::OK
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector {
            url,
            spans,
            services,
        }
    }

    /// The spans of `trace_id` once at least `count` arrived (30 s at most).
    async fn trace(&self, trace_id: &[u8], count: usize) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .expect("lock")
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if spans.len() >= count || started.elapsed() > Duration::from_secs(30) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn attribute(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone())
        .and_then(|v| v.value)
}

fn text(span: &Span, key: &str) -> String {
    match attribute(span, key) {
        Some(Any::StringValue(s)) => s,
        other => panic!("{} has no text {key}: {other:?}", span.name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_agent_turn_is_one_span_tree_in_the_callers_trace() {
    let collector = Collector::start().await;
    let (guard, data) = temp_data_dir();
    let root = guard.path();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(
        agents.join("analyst.md"),
        "---\nname: Analyst\nversion: \"1.0.0\"\ncapabilities: [counting]\ntools: [csv_parser]\nsystem_prompt: Count rows.\n---\n",
    )
    .expect("write agent");
    std::fs::write(
        root.join("script.yaml"),
        "- when: \"row_count\"\n  content: \"One row.\"\n\
         - when: \"count\"\n  tool_calls: [{name: csv_parser, arguments: {csv: \"a,b\\n1,2\"}}]\n",
    )
    .expect("write script");
    let log_file = root.join("caxton.log");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {agents}\nllm:\n  scripted:\n    script: {script}\n\
             observability:\n  otlp_endpoint: {otlp}\n  service_name: caxton-under-test\n\
             logging:\n  format: json\n  file: {log}\n",
            agents = agents.display(),
            script = root.join("script.yaml").display(),
            otlp = collector.url,
            log = log_file.display(),
        ),
    )
    .expect("write config");
    let server = Server::start_with_config(&data, Some(&config));

    // The caller's trace and span, as an instrumented client sends them.
    let trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let http = reqwest::Client::new();
    let response = http
        .post(server.url("/api/v1/agents/analyst/message"))
        .header("traceparent", format!("00-{trace_hex}-{caller_span}-01"))
        .header("x-request-id", "turn-1")
        .json(&json!({"message": "count the rows"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(
        header(&response, "x-request-id"),
        "turn-1",
        "the caller's request id comes back"
    );
    let answered = header(&response, "traceparent");
    assert!(
        answered.starts_with(&format!("00-{trace_hex}-")) && !answered.contains(caller_span),
        "the response names our own span in the caller's trace: {answered}"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["reply"]["content"], "One row.", "{body}");

    let trace_id = hex::decode(trace_hex).expect("hex");
    let spans = collector.trace(&trace_id, 5).await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let find = |prefix: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    };
    let requests = find("POST /api/v1/agents/{agent}/message");
    assert_eq!(requests.len(), 1, "{names:?}");
    let request = requests[0];
    assert_eq!(
        request.parent_span_id,
        hex::decode(caller_span).expect("hex"),
        "the request hangs under the caller's span"
    );
    assert_eq!(text(request, "caxton.request_id"), "turn-1");
    assert_eq!(
        attribute(request, "http.response.status_code"),
        Some(Any::IntValue(200))
    );
    let messages = find("process Analyst");
    assert_eq!(messages.len(), 1, "{names:?}");
    let message = messages[0];
    assert_eq!(message.parent_span_id, request.span_id, "{names:?}");
    let llm = find("chat ");
    assert_eq!(llm.len(), 2, "two model calls around the tool: {names:?}");
    let tools = find("execute_tool csv_parser");
    assert_eq!(tools.len(), 1, "{names:?}");
    for child in llm.iter().chain(&tools) {
        assert_eq!(
            child.parent_span_id, message.span_id,
            "{} is under the message",
            child.name
        );
        assert!(
            child.start_time_unix_nano >= message.start_time_unix_nano
                && child.end_time_unix_nano <= message.end_time_unix_nano,
            "{} lies within the message's time",
            child.name
        );
    }
    assert_eq!(text(llm[0], "gen_ai.provider.name"), "scripted");
    assert!(
        matches!(attribute(llm[0], "gen_ai.usage.input_tokens"), Some(Any::IntValue(n)) if n > 0),
        "token counts are on the model spans"
    );
    // The tool ran between the two model calls.
    let mut calls: Vec<&Span> = llm.iter().chain(&tools).copied().collect();
    calls.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(calls[1].name, "execute_tool csv_parser");
    assert!(
        collector
            .services
            .lock()
            .expect("lock")
            .iter()
            .all(|s| s == "caxton-under-test")
    );

    // Without a traceparent a request starts its own trace and gets an id.
    let response = http
        .post(server.url("/api/v1/agents/analyst/message"))
        .json(&json!({"message": "count again"}))
        .send()
        .await
        .expect("send");
    let id = header(&response, "x-request-id");
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
    // A request id that would need escaping in a log is replaced.
    let response = http
        .get(server.url("/api/v1/agents"))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .expect("send");
    let id = header(&response, "x-request-id");
    assert!(!id.contains(' ') && id.len() == 36, "{id}");

    // JSON logs carry the request's id on lines written while handling it.
    let response = http
        .post(server.url("/api/v1/safe-mode"))
        .header("x-request-id", "safe-mode-1")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let logs = std::fs::read_to_string(&log_file).expect("log file");
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["span"]["id"] == "safe-mode-1")
        .unwrap_or_else(|| panic!("no log line with the request id: {logs}"));
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["message"].as_str().unwrap_or("").contains("safe mode"),
        "{line}"
    );
    assert_eq!(line["span"]["route"], "/api/v1/safe-mode", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_url_that_cannot_work_is_refused_at_load() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, "observability:\n  otlp_endpoint: localhost:4318\n")
        .expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
        .args(["start", "--port", "0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run caxton");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("observability.otlp_endpoint") && err.contains("http://localhost:4318"),
        "{err}"
    );
}

/// Credentials written into URLs and command lines (an MCP server's
/// `?api_key=` and `user:pass@`, an LLM `base_url`, the collector's
/// password, a `--api-key` argument) are shown nowhere: not by the
/// unauthenticated health, the debug state, the traces, an agent's error
/// reply, nor the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_urls_and_command_lines_are_never_shown() {
    const SECRETS: [&str; 3] = ["SECRET123", "SECRET456", "SECRET789"];
    // A port nothing listens on, so every call below fails and its error
    // (which quotes the URL) is shown somewhere.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (guard, data) = temp_data_dir();
    let root = guard.path();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(
        agents.join("leaky.md"),
        "---\nname: Leaky\nversion: \"1.0.0\"\ncapabilities: [leaking]\nllm:\n  provider: openai\nsystem_prompt: Say hi.\n---\n",
    )
    .expect("write agent");
    let log_file = root.join("caxton.log");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {agents}\n\
             llm:\n  provider: openai\n  max_retries: 0\n  openai:\n    \
               base_url: \"http://llm:SECRET456@127.0.0.1:{closed}/v1?api_key=SECRET123\"\n    model: m\n\
             mcp_servers:\n  \
               remote:\n    url: \"http://mcp:SECRET456@127.0.0.1:{closed}/mcp?api_key=SECRET123\"\n  \
               local:\n    command: /nonexistent/caxton-test-mcp\n    \
                 args: [\"--api-key\", \"SECRET789\", \"--url=http://u:SECRET456@h/?token=SECRET123\"]\n\
             observability:\n  otlp_endpoint: \"http://otel:SECRET456@127.0.0.1:{closed}\"\n\
             logging:\n  file: {log}\n",
            agents = agents.display(),
            log = log_file.display(),
        ),
    )
    .expect("write config");
    let server = Server::start_with_env(&data, Some(&config), &[("CAXTON_LOG", "info")]);
    let mut shown: Vec<(String, String)> = Vec::new();

    let (_, health) = server.get("/api/v1/health").await;
    assert_eq!(
        health["mcp_servers"]["remote"]["state"], "down",
        "the MCP server behind a closed port is reported down: {health}"
    );
    assert!(
        health["mcp_servers"]["remote"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("api_key=[redacted]")),
        "the reason names the URL, without the key: {health}"
    );
    shown.push(("health".into(), health.to_string()));

    let (status, reply) = server.message("leaky", "hello").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["reply"]["performative"], "failure",
        "the model is unreachable: {reply}"
    );
    let reply = reply.to_string();
    assert!(
        reply.contains("api_key=[redacted]"),
        "the error reply names the URL it failed on, without the key: {reply}"
    );
    shown.push(("error reply".into(), reply));

    let (_, agent) = server.get("/api/v1/agents/leaky").await;
    shown.push(("agent".into(), agent.to_string()));
    let (_, listed) = server.get("/api/v1/traces?agent=leaky").await;
    shown.push(("traces".into(), listed.to_string()));
    let conversations = listed["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!conversations.is_empty(), "{listed}");
    for conversation in conversations {
        let id = conversation["conversation_id"].as_str().unwrap_or("");
        let (_, spans) = server
            .get(&format!("/api/v1/traces?conversation_id={id}"))
            .await;
        shown.push((format!("trace {id}"), spans.to_string()));
    }

    let (status, state) = server.get("/api/v1/debug/state").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        state["config"]["mcp_servers"]["local"]["args"],
        json!([
            "--api-key",
            "[redacted]",
            "--url=http://[redacted]@h/?token=[redacted]"
        ]),
        "{state}"
    );
    shown.push(("debug state".into(), state.to_string()));

    let logged = std::fs::read_to_string(&log_file).expect("log file");
    assert!(
        logged.contains("exporting spans over OTLP") && logged.contains("MCP server is down"),
        "the log says where spans go and which MCP server is down:\n{logged}"
    );
    shown.push(("log".into(), logged));

    for (place, text) in &shown {
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{secret} leaked into the {place}:\n{text}"
            );
        }
    }
}

/// Issue 25.11: a caller's unsampled trace is kept for `caxton trace` but
/// not exported; `/metrics` has latency histograms (messages, LLM and tool
/// calls, memory searches, HTTP), HTTP requests by route, the standard
/// `process_*` metrics, and `_total` only on counters; spans a collector
/// does not take count as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_histograms_and_dropped_spans() {
    let collector = Collector::start().await;
    let (guard, data) = temp_data_dir();
    let root = guard.path();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(
        agents.join("analyst.md"),
        "---\nname: Analyst\nversion: \"1.0.0\"\ncapabilities: [counting]\ntools: [csv_parser]\nsystem_prompt: Count rows.\n---\n",
    )
    .expect("write agent");
    std::fs::write(
        root.join("script.yaml"),
        "- when: \"row_count\"\n  content: \"One row.\"\n\
         - when: \"count\"\n  tool_calls: [{name: csv_parser, arguments: {csv: \"a,b\\n1,2\"}}]\n",
    )
    .expect("write script");
    let config = root.join("caxton.yaml");
    let yaml = |otlp: &str| {
        format!(
            "agents:\n  dir: {agents}\nllm:\n  scripted:\n    script: {script}\n\
             observability:\n  otlp_endpoint: {otlp}\n",
            agents = agents.display(),
            script = root.join("script.yaml").display(),
        )
    };
    std::fs::write(&config, yaml(&collector.url)).expect("write config");
    let server = Server::start_with_config(&data, Some(&config));
    let http = reqwest::Client::new();
    let send = |flags: &'static str, trace: &'static str| {
        let request = http
            .post(server.url("/api/v1/agents/analyst/message"))
            .header(
                "traceparent",
                format!("00-{trace}-00f067aa0ba902b7-{flags}"),
            )
            .json(&json!({"message": "count the rows"}));
        async move {
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 200);
            header(&response, "traceparent")
        }
    };
    let unsampled = "11111111111111111111111111111111";
    let sampled = "22222222222222222222222222222222";
    let answered = send("00", unsampled).await;
    assert!(
        answered.ends_with("-00"),
        "the flag is passed on: {answered}"
    );
    send("01", sampled).await;
    // Spans are exported in the order they finish: once the sampled
    // trace's are in, the unsampled one's (finished before) would be too.
    let spans = collector
        .trace(&hex::decode(sampled).expect("hex"), 5)
        .await;
    assert!(spans.len() >= 5, "{}", spans.len());
    let unsampled_id = hex::decode(unsampled).expect("hex");
    let leaked = collector
        .spans
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.trace_id == unsampled_id)
        .count();
    assert_eq!(leaked, 0, "an unsampled trace was exported");

    let (status, _) = server
        .post("/api/v1/memory/search", &json!({"query": "rows"}))
        .await;
    assert_eq!(status, 200);
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |line_start: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{line_start}` in:\n{metrics}"))
    };
    assert!(value("caxton_message_duration_seconds_count ") >= 2.0);
    assert!(value("caxton_llm_call_duration_seconds_count ") >= 4.0);
    assert!(value("caxton_tool_call_duration_seconds_count ") >= 2.0);
    assert!(value("caxton_memory_search_duration_seconds_count ") >= 1.0);
    assert!(value("caxton_http_request_duration_seconds_count ") >= 3.0);
    assert!(value("caxton_message_duration_seconds_bucket{le=\"+Inf\"} ") >= 2.0);
    assert!(
        value(
            "caxton_http_requests_total{route=\"/api/v1/agents/{agent}/message\",method=\"POST\",code=\"2xx\"} "
        ) >= 2.0
    );
    assert!(value("process_cpu_seconds_total ") > 0.0);
    assert!(value("process_resident_memory_bytes ") > 1e6);
    assert!(value("process_open_fds ") > 0.0);
    // Prometheus naming: `_total` only on counters (the runbook's two
    // memory gauges excepted, beside their proper names), every counter
    // ends in `_total`.
    for line in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').expect("name and type");
        let runbook_alias = matches!(
            name,
            "caxton_memory_entities_total" | "caxton_memory_relations_total"
        );
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter without _total: {name}");
        } else {
            assert!(
                !name.ends_with("_total") || runbook_alias,
                "{kind} named like a counter: {name}"
            );
        }
    }
    drop(server);

    // A collector that is not there: the spans count as dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    std::fs::write(&config, yaml(&format!("http://127.0.0.1:{closed}"))).expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let (status, _) = server.message("analyst", "count the rows").await;
    assert_eq!(status, 200);
    let started = Instant::now();
    loop {
        let text = http
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let dropped: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("caxton_trace_export_dropped_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        if dropped >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "spans the collector never took are not counted as dropped:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

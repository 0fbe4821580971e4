//! Sends finished spans to an OpenTelemetry collector: OTLP over HTTP with
//! protobuf bodies (`POST {endpoint}/v1/traces`), the one transport every
//! collector, Jaeger and Tempo accept.
//!
//! Spans arrive on a bounded channel from [`super::TraceStore::finish`]
//! and leave in batches of at most [`BATCH`], at least once a second while
//! there are any. A collector that is down costs the batches sent while it
//! is down (logged once per outage), never memory or request latency: the
//! channel drops what does not fit and counts it.
//!
//! Attribute names follow the OpenTelemetry semantic conventions where one
//! exists (`http.*`, `gen_ai.*`), `caxton.*` otherwise.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as Any,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtlpKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
use prost::Message as _;
use tokio::sync::mpsc;

use super::{Span, SpanKind, TraceStore};

/// Most spans in one export request.
pub const BATCH: usize = 512;
/// Spans waiting for the exporter at most; more are dropped and counted.
pub const QUEUE: usize = 8192;
/// Longest wait before a partial batch is sent.
const LINGER: Duration = Duration::from_secs(1);
/// Longest one export request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `observability:` in `caxton.yaml`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://localhost:4318`.
    /// Unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL), else no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans. Unset: `OTEL_SERVICE_NAME`, else `caxton`.
    pub service_name: Option<String>,
}

impl ObservabilityConfig {
    /// A URL that cannot be a collector is refused at load.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(endpoint) = &self.otlp_endpoint {
            check_url(endpoint).map_err(|e| format!("observability.otlp_endpoint: {e}"))?;
        }
        Ok(())
    }

    /// The exporter the configuration (or the standard environment
    /// variables) asks for; `None` when spans stay in this process.
    pub fn exporter(&self) -> Option<Exporter> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let service = self
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "caxton".to_string());
        let exporter = if let Some(endpoint) = &self.otlp_endpoint {
            Exporter::new(endpoint, &service)
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Exporter {
                url,
                service_name: service,
            }
        } else {
            Exporter::new(&env("OTEL_EXPORTER_OTLP_ENDPOINT")?, &service)
        };
        match check_url(&exporter.url) {
            Ok(()) => Some(exporter),
            Err(e) => {
                tracing::warn!(url = %exporter.shown_url(), "spans are not exported: {e}");
                None
            }
        }
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let shown = crate::redact::url(url);
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("`{shown}` is not an http(s) URL; write e.g. http://localhost:4318")
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{shown}` names no host"));
    }
    Ok(())
}

/// Where spans go and who sends them.
#[derive(Debug, Clone)]
pub struct Exporter {
    /// The full URL of the traces endpoint, `…/v1/traces`.
    pub url: String,
    /// `service.name` of the resource.
    pub service_name: String,
}

impl Exporter {
    /// `endpoint` as the configuration and `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// give it: the collector's base URL, to which `/v1/traces` is added
    /// (unless it is already there).
    pub fn new(endpoint: &str, service_name: &str) -> Exporter {
        let base = endpoint.trim().trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        };
        Exporter {
            url,
            service_name: service_name.to_string(),
        }
    }

    /// [`Exporter::url`] as logs show it: a collector's password stays out.
    pub fn shown_url(&self) -> std::borrow::Cow<'_, str> {
        crate::redact::url(&self.url)
    }

    /// Starts exporting `store`'s spans; the task ends after
    /// [`TraceStore::close_export`] once it has sent what it holds.
    pub fn spawn(self, store: &TraceStore) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::channel(QUEUE);
        store.export_to(tx);
        tokio::spawn(self.run(rx, store.export_dropped_counter()))
    }

    /// Sends batches until the store closes the channel; the spans of a
    /// batch the collector did not take are counted in `dropped`.
    async fn run(
        self,
        mut rx: mpsc::Receiver<Span>,
        dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) {
        let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!("cannot create the OTLP client, spans are not exported: {e}");
                return;
            }
        };
        let mut failing = false;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let Some(first) = rx.recv().await else { break };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(span)) => batch.push(span),
                    Ok(None) | Err(_) => break,
                }
            }
            let body = encode(&self.service_name, &batch).encode_to_vec();
            let sent = batch.len();
            batch.clear();
            let result = self.post(&client, body).await;
            if result.is_err() {
                dropped.fetch_add(sent as u64, std::sync::atomic::Ordering::Relaxed);
            }
            match result {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(url = %self.shown_url(), "OTLP collector reachable again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(url = %self.shown_url(), "cannot export {sent} spans: {e}; spans are dropped until the collector answers");
                }
                Err(_) => {}
            }
        }
    }

    async fn post(&self, client: &reqwest::Client, body: Vec<u8>) -> Result<(), String> {
        let response = client
            .post(&self.url)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| crate::redact::text(&e.to_string()).into_owned())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered HTTP {}", response.status()))
        }
    }
}

/// One export request holding `spans`.
pub fn encode(service_name: &str, spans: &[Span]) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            text("service.name", service_name),
            text("service.version", env!("CARGO_PKG_VERSION")),
        ],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "caxton".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans: spans.iter().map(otlp_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn otlp_span(span: &Span) -> opentelemetry_proto::tonic::trace::v1::Span {
    let (name, kind, mut attributes) = describe(span);
    attributes.push(text("caxton.agent", &span.agent));
    if !span.conversation_id.is_empty() {
        attributes.push(text("caxton.conversation_id", &span.conversation_id));
    }
    let duration_ns = (span.duration_ms * 1_000_000.0) as u64;
    let status = match &span.error {
        Some(error) => Status {
            code: StatusCode::Error as i32,
            message: error.clone(),
        },
        None => Status::default(),
    };
    opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: span.trace_id.to_be_bytes().to_vec(),
        span_id: span.id.to_be_bytes().to_vec(),
        parent_span_id: span
            .parent
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        name,
        kind: kind as i32,
        start_time_unix_nano: span.start_unix_ns,
        end_time_unix_nano: span.start_unix_ns.saturating_add(duration_ns),
        attributes,
        status: Some(status),
        ..Default::default()
    }
}

/// The span's name, kind and own attributes.
fn describe(span: &Span) -> (String, OtlpKind, Vec<KeyValue>) {
    match &span.kind {
        SpanKind::Request {
            method,
            route,
            status,
            request_id,
        } => (
            format!("{method} {route}"),
            OtlpKind::Server,
            vec![
                text("http.request.method", method),
                text("http.route", route),
                int("http.response.status_code", i64::from(*status)),
                text("caxton.request_id", request_id),
            ],
        ),
        SpanKind::Message {
            sender,
            performative,
            queued_ms,
        } => (
            format!("process {}", span.agent),
            OtlpKind::Consumer,
            vec![
                text("messaging.operation.type", "process"),
                text("caxton.sender", sender),
                text("caxton.performative", performative),
                float("caxton.queued_ms", *queued_ms),
            ],
        ),
        SpanKind::Llm {
            provider,
            model,
            prompt_tokens,
            completion_tokens,
        } => (
            format!("chat {model}"),
            OtlpKind::Client,
            vec![
                text("gen_ai.operation.name", "chat"),
                text("gen_ai.provider.name", provider),
                text("gen_ai.request.model", model),
                int("gen_ai.usage.input_tokens", i64::from(*prompt_tokens)),
                int("gen_ai.usage.output_tokens", i64::from(*completion_tokens)),
            ],
        ),
        SpanKind::Tool { tool } => (
            format!("execute_tool {tool}"),
            OtlpKind::Internal,
            vec![
                text("gen_ai.operation.name", "execute_tool"),
                text("gen_ai.tool.name", tool),
            ],
        ),
        SpanKind::Import {
            interface,
            function,
        } => (
            format!("{interface}.{function}"),
            OtlpKind::Internal,
            vec![
                text("caxton.import.interface", interface),
                text("caxton.import.function", function),
            ],
        ),
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    attribute(key, Any::StringValue(value.to_string()))
}

fn int(key: &str, value: i64) -> KeyValue {
    attribute(key, Any::IntValue(value))
}

fn float(key: &str, value: f64) -> KeyValue {
    attribute(key, Any::DoubleValue(value))
}

fn attribute(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceParent;

    #[test]
    fn endpoint_gets_the_traces_path_once() {
        assert_eq!(
            Exporter::new("http://c:4318/", "s").url,
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            Exporter::new("http://c:4318/v1/traces", "s").url,
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn a_child_names_its_parent_and_trace_in_bytes() {
        let store = TraceStore::new(10);
        let parent = TraceParent {
            trace_id: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            span_id: 7,
            sampled: true,
        };
        let started = store.start("a", "c", Some(parent));
        store.finish(started, SpanKind::Tool { tool: "t".into() }, Some("bad"));
        let spans = store.conversation("c");
        let request = encode("caxton", &spans);
        let decoded = ExportTraceServiceRequest::decode(request.encode_to_vec().as_slice())
            .expect("round trip");
        let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id, (1u8..=16).collect::<Vec<u8>>());
        assert_eq!(span.parent_span_id, 7u64.to_be_bytes().to_vec());
        assert_eq!(span.name, "execute_tool t");
        assert_eq!(
            span.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
}

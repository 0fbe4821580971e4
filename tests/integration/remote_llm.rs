//! Remote providers over their real wire protocols: a stand-in OpenAI
//! chat-completions server and a stand-in Anthropic Messages server (both
//! in this process, speaking HTTP and server-sent events with pauses
//! between chunks), driven by config agents through the real binary.
//! Checks that streamed replies reach the HTTP client piece by piece, that
//! tool calls split across chunks are put back together and dispatched,
//! and that the non-streaming path still works.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::{Server, temp_data_dir};

/// What the stand-in servers received: (path, headers of interest, body).
type Received = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

const PAUSE: Duration = Duration::from_millis(40);
const ANSWER: [&str; 4] = ["Two rows", ": north", " and", " south."];

/// A response whose body arrives as `events`, one every [`PAUSE`].
fn event_stream(events: Vec<String>) -> Response {
    let stream = futures_util::stream::unfold(events.into_iter(), |mut rest| async move {
        let next = rest.next()?;
        tokio::time::sleep(PAUSE).await;
        Some((Ok::<_, std::convert::Infallible>(next), rest))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}

fn answered_by_tool(body: &Value) -> bool {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "tool" || m["content"][0]["type"] == "tool_result")
}

async fn openai(State(received): State<Received>, body: axum::Json<Value>) -> Response {
    let body = body.0;
    received
        .lock()
        .expect("lock")
        .push(("openai".into(), None, body.clone()));
    let after_tool = answered_by_tool(&body);
    let asked = body["messages"].to_string();
    if let Some(response) = flaky(&received, &body, &asked) {
        return response;
    }
    if asked.contains("cut short") {
        // Pieces of text, then the connection ends without `[DONE]`.
        let events = ANSWER
            .iter()
            .map(|piece| {
                format!(
                    "data: {}\n\n",
                    json!({"choices": [{"index": 0, "delta": {"content": piece}}]})
                )
            })
            .collect();
        return event_stream(events);
    }
    if body["stream"] != true || asked.contains("plain please") {
        let message = if after_tool {
            json!({"role": "assistant", "content": ANSWER.concat()})
        } else {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "csv_parser", "arguments": "{\"csv\": \"region\\nnorth\\nsouth\"}"}}]})
        };
        let answer = json!({"choices": [{"message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(answer.to_string()))
            .expect("response");
    }
    let chunks: Vec<Value> = if after_tool {
        ANSWER
            .iter()
            .map(|piece| json!({"choices": [{"index": 0, "delta": {"content": piece}}]}))
            .chain([json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})])
            .collect()
    } else {
        vec![
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1",
                "type": "function", "function": {"name": "csv_parser", "arguments": "{\"csv\": "}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": "\"region\\nnorth\\nsouth\"}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ]
    };
    let mut events: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    events.push("data: [DONE]\n\n".into());
    event_stream(events)
}

/// Failures that pass: `flaky` is refused with 429 twice (with
/// `Retry-After: 0`), then answered; `drop early` gets a stream that ends
/// before any text once, then a whole one.
fn flaky(received: &Received, body: &Value, asked: &str) -> Option<Response> {
    let (marker, failures) = if asked.contains("flaky") {
        ("flaky", 2)
    } else if asked.contains("drop early") {
        ("drop early", 1)
    } else {
        return None;
    };
    let seen = received
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, _, b)| b["messages"].to_string().contains(marker))
        .count();
    if seen <= failures {
        if marker == "flaky" {
            return Some(
                Response::builder()
                    .status(429)
                    .header("retry-after", "0")
                    .header("content-type", "application/json")
                    .body(Body::from(r#"{"error": {"message": "slow down"}}"#))
                    .expect("response"),
            );
        }
        let role = json!({"choices": [{"index": 0, "delta": {"role": "assistant"}}]});
        return Some(event_stream(vec![format!("data: {role}\n\n")]));
    }
    if body["stream"] != true {
        let answer = json!({"choices": [{"message": {"role": "assistant", "content": "Steady now."},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}});
        return Some(
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(answer.to_string()))
                .expect("response"),
        );
    }
    let mut events: Vec<String> = ["Steady", " now."]
        .iter()
        .map(|piece| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": piece}}]})
            )
        })
        .collect();
    events.push(format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    events.push("data: [DONE]\n\n".into());
    Some(event_stream(events))
}

async fn anthropic(
    State(received): State<Received>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    received
        .lock()
        .expect("lock")
        .push(("anthropic".into(), key, body.clone()));
    if body["stream"] != true {
        let content = if answered_by_tool(&body) {
            json!([{"type": "text", "text": ANSWER.concat()}])
        } else {
            json!([{"type": "tool_use", "id": "toolu_1", "name": "csv_parser",
                "input": {"csv": "region\nnorth\nsouth"}}])
        };
        let answer = json!({"content": content, "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": 6}});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(answer.to_string()))
            .expect("response");
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 12}}}),
    )];
    if answered_by_tool(&body) {
        events.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        for piece in ANSWER {
            events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})));
        }
        events.push(event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}}),
        ));
    } else {
        events.push(event("content_block_start", json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "csv_parser", "input": {}}})));
        events.push(": keep-alive comment\n\n".into());
        for part in ["{\"csv\": \"region\\n", "north\\nsouth\"}"] {
            events.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        events.push(event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ));
    }
    events.push(event("message_stop", json!({"type": "message_stop"})));
    event_stream(events)
}

/// Starts both stand-ins on one ephemeral port.
async fn stand_in() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the stand-in");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), received)
}

fn agent(name: &str, provider: &str) -> String {
    format!(
        "---\nname: {name}\nversion: \"1.0.0\"\ncapabilities: [{provider}-tables]\ntools: [csv_parser]\nllm:\n  provider: {provider}\nsystem_prompt: You read tables with tools.\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_providers_stream_replies_and_assemble_tool_calls() {
    let (base, received) = stand_in().await;
    let (guard, data) = temp_data_dir();
    let root = guard.path();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(agents.join("open-tables.md"), agent("OpenTables", "openai")).expect("write");
    std::fs::write(
        agents.join("claude-tables.md"),
        agent("ClaudeTables", "anthropic"),
    )
    .expect("write");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {agents}\nllm:\n  provider: openai\n  openai:\n    base_url: {base}/v1\n    model: stand-in-gpt\n  anthropic:\n    base_url: {base}\n    model: stand-in-claude\n    api_key_env: CAXTON_TEST_ANTHROPIC_KEY\n",
            agents = agents.display(),
        ),
    )
    .expect("write config");
    let server = Server::start_with_env(
        &data,
        Some(&config),
        &[("CAXTON_TEST_ANTHROPIC_KEY", "test-key-123")],
    );

    for (agent, provider) in [("open-tables", "openai"), ("claude-tables", "anthropic")] {
        let before = received.lock().expect("lock").len();
        let (tokens, reply, first_token_before_reply) = server
            .stream_message(agent, "What regions are in the table?")
            .await;
        assert_eq!(
            reply["reply"]["performative"], "inform",
            "{provider}: {reply}"
        );
        assert_eq!(
            reply["reply"]["content"],
            ANSWER.concat(),
            "{provider}: {reply}"
        );
        assert_eq!(
            tokens,
            ANSWER.to_vec(),
            "{provider}: each streamed piece is its own token event"
        );
        assert!(
            first_token_before_reply,
            "{provider}: tokens must reach the client before the reply is complete"
        );
        let calls: Vec<(String, Option<String>, Value)> =
            received.lock().expect("lock")[before..].to_vec();
        assert_eq!(calls.len(), 2, "{provider}: model, tool, model");
        assert!(
            calls
                .iter()
                .all(|(p, _, body)| p == provider && body["stream"] == true)
        );
        // The tool call arrived in pieces; the host assembled and ran it, and
        // its result went back to the model.
        let second = &calls[1].2;
        let last = second["messages"]
            .as_array()
            .and_then(|m| m.last())
            .expect("messages");
        let result = match provider {
            "openai" => last["content"].as_str().unwrap_or("").to_string(),
            _ => last["content"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        };
        assert!(result.contains("\"row_count\":2"), "{provider}: {last}");
        if provider == "anthropic" {
            assert_eq!(calls[0].1.as_deref(), Some("test-key-123"));
        }
    }

    // A server that ignores `stream: true` and answers plain JSON still
    // works; the answer arrives as one piece.
    let (tokens, reply, _) = server.stream_message("open-tables", "plain please").await;
    assert_eq!(reply["reply"]["content"], ANSWER.concat(), "{reply}");
    assert_eq!(tokens, vec![ANSWER.concat()]);
    // A stream cut off before `[DONE]` is a failure, not a short answer.
    let (_, reply, _) = server.stream_message("open-tables", "cut short").await;
    assert_eq!(reply["reply"]["performative"], "failure", "{reply}");
    assert!(
        reply["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("ended before"),
        "{reply}"
    );

    // Without a stream the same agents answer in one piece.
    let (status, body) = server.message("open-tables", "What regions?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["content"], ANSWER.concat(), "{body}");
    let last = received
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("request");
    assert_ne!(
        last.2["stream"], true,
        "a plain request does not ask for a stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_broken_streams_are_retried() {
    let (base, received) = stand_in().await;
    let (guard, data) = temp_data_dir();
    let root = guard.path();
    let agents = root.join("agents");
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::write(agents.join("open-tables.md"), agent("OpenTables", "openai")).expect("write");
    let config = root.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  dir: {agents}\nllm:\n  provider: openai\n  initial_backoff_ms: 50\n  openai:\n    base_url: {base}/v1\n    model: stand-in-gpt\n",
            agents = agents.display(),
        ),
    )
    .expect("write config");
    let server = Server::start_with_config(&data, Some(&config));
    let count = |marker: &str| {
        received
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, _, b)| b["messages"].to_string().contains(marker))
            .count()
    };

    // 429, 429 (each with Retry-After: 0), then an answer.
    let (status, body) = server.message("open-tables", "flaky question").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "inform", "{body}");
    assert_eq!(body["reply"]["content"], "Steady now.");
    assert_eq!(count("flaky"), 3, "two refusals, then the answer");

    // A stream that broke off before any text is tried again; the client
    // sees only the whole answer, once.
    let (tokens, reply, _) = server.stream_message("open-tables", "drop early").await;
    assert_eq!(reply["reply"]["content"], "Steady now.", "{reply}");
    assert_eq!(tokens, vec!["Steady".to_string(), " now.".to_string()]);
    assert_eq!(count("drop early"), 2);
}

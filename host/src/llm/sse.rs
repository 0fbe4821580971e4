//! Server-sent events from a streaming provider answer (OpenAI's and
//! Anthropic's `stream: true`): split the body into events as bytes
//! arrive, whatever the network's chunking.

use std::collections::BTreeMap;

use super::{ChatResponse, LlmError, TextSink, ToolCall, http, send_whole};

/// One event: its `event:` name (Anthropic names them; OpenAI does not)
/// and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Turns arbitrary byte chunks into whole events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    /// Bytes of `pending` already searched for an event's end (less the
    /// three a separator could straddle), so a long event is not rescanned
    /// from its start at every chunk.
    scanned: usize,
}

impl SseDecoder {
    /// Adds a chunk; answers the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, separator)) = find_blank_line(&self.pending, self.scanned) {
            let raw: Vec<u8> = self.pending.drain(..end + separator).collect();
            self.scanned = 0;
            if let Some(event) = parse_event(&String::from_utf8_lossy(&raw[..end])) {
                events.push(event);
            }
        }
        self.scanned = self.pending.len().saturating_sub(3);
        events
    }
}

/// Where the first blank line (the end of an event) at or after `from`
/// starts, and its length.
fn find_blank_line(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    (from..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else if rest.starts_with(b"\n\n") {
            Some((i, 2))
        } else {
            None
        }
    })
}

fn parse_event(text: &str) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            // Comments (`: keep-alive`), `id`, `retry`: nothing to do.
            _ => {}
        }
    }
    (event.is_some() || !data.is_empty()).then(|| SseEvent {
        event,
        data: data.join("\n"),
    })
}

/// How a streaming request was answered.
pub enum Streamed {
    /// Events were read until `on_event` said the answer was complete.
    Complete,
    /// The server ignored `stream: true` and sent one JSON answer.
    Whole(serde_json::Value),
}

/// Reads a streaming answer event by event, handing each to `on_event`
/// until it answers `false` (the provider's closing event). A body that
/// ends before that is an error, not a short answer; a non-success status
/// is the usual provider error; a plain JSON body is handed back whole.
pub async fn read_events(
    provider: &str,
    mut response: reqwest::Response,
    mut on_event: impl FnMut(SseEvent) -> Result<bool, LlmError>,
) -> Result<Streamed, LlmError> {
    let is_stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !response.status().is_success() || !is_stream {
        return http::check(provider, response).await.map(Streamed::Whole);
    }
    let mut decoder = SseDecoder::default();
    loop {
        let chunk = response.chunk().await.map_err(|e| LlmError::Transient {
            provider: provider.into(),
            detail: format!("the stream broke off: {}", http::shown(&e)),
            retry_after: None,
        })?;
        let Some(chunk) = chunk else {
            return Err(LlmError::Transient {
                provider: provider.into(),
                detail: "the stream ended before the provider said the answer was complete".into(),
                retry_after: None,
            });
        };
        if decoder.pending.len() + chunk.len() > MAX_PENDING_BYTES {
            return Err(LlmError::Provider {
                provider: provider.into(),
                detail: format!("a streamed event is larger than {MAX_PENDING_BYTES} bytes"),
            });
        }
        for event in decoder.push(&chunk) {
            if !on_event(event)? {
                return Ok(Streamed::Complete);
            }
        }
    }
}

/// A provider's streamed answer being put back together, event by event.
pub trait Accumulator: Default {
    /// Takes one event, passing text to `sink` as it comes; `false` once
    /// the provider says the answer is complete.
    fn apply(&mut self, event: &SseEvent, sink: &TextSink) -> Result<bool, LlmError>;
    fn finish(self) -> ChatResponse;
}

/// Sends a `stream: true` request and reads its answer with `A`; a server
/// that answers one JSON body instead is read with `parse`.
pub async fn stream_chat<A: Accumulator>(
    provider: &str,
    request: reqwest::RequestBuilder,
    sink: TextSink,
    parse: fn(&serde_json::Value) -> Result<ChatResponse, LlmError>,
) -> Result<ChatResponse, LlmError> {
    let response = request
        .send()
        .await
        .map_err(|e| http::unreachable(provider, e))?;
    let mut answer = A::default();
    match read_events(provider, response, |event| answer.apply(&event, &sink)).await? {
        Streamed::Complete => Ok(answer.finish()),
        Streamed::Whole(body) => Ok(send_whole(parse(&body)?, &sink)),
    }
}

/// Tool calls arriving in pieces, by the provider's index: an id and a
/// name first, then the arguments' JSON a fragment at a time.
#[derive(Debug, Default)]
pub struct PartialCalls(BTreeMap<u64, (String, String, String)>);

impl PartialCalls {
    /// Adds what one event says about call `index`, opening it if new.
    pub fn add(
        &mut self,
        index: u64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
    ) {
        let call = self.0.entry(index).or_default();
        if let Some(id) = id {
            call.0 = id.to_string();
        }
        call.1.push_str(name.unwrap_or_default());
        call.2.push_str(arguments.unwrap_or_default());
    }

    /// Appends an argument fragment to a call already opened.
    pub fn extend_arguments(&mut self, index: u64, fragment: &str) {
        if let Some(call) = self.0.get_mut(&index) {
            call.2.push_str(fragment);
        }
    }

    /// The whole calls, in index order; no id becomes `call_INDEX`, no
    /// arguments `{}`.
    pub fn finish(self) -> Vec<ToolCall> {
        self.0
            .into_iter()
            .map(|(index, (id, name, arguments))| ToolCall {
                id: if id.is_empty() {
                    format!("call_{index}")
                } else {
                    id
                },
                name,
                arguments_json: if arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    arguments
                },
            })
            .collect()
    }
}

/// Longest event the decoder holds while waiting for its end.
const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let body = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\r\ndata: 2}\r\n\r\ndata: [DONE]\n\n";
        let expected = vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":1}".into(),
            },
            SseEvent {
                event: None,
                data: "{\"b\":\n2}".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for size in [1, 2, 3, 7, body.len()] {
            let mut decoder = SseDecoder::default();
            let events: Vec<SseEvent> = body
                .as_bytes()
                .chunks(size)
                .flat_map(|c| decoder.push(c))
                .collect();
            assert_eq!(events, expected, "chunks of {size}");
        }
    }
}

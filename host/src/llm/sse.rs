//! Server-sent events from a streaming provider answer (OpenAI's and
//! Anthropic's `stream: true`): split the body into events as bytes
//! arrive, whatever the network's chunking.

use super::{LlmError, http};

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
}

impl SseDecoder {
    /// Adds a chunk; answers the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, separator)) = find_blank_line(&self.pending) {
            let raw: Vec<u8> = self.pending.drain(..end + separator).collect();
            if let Some(event) = parse_event(&String::from_utf8_lossy(&raw[..end])) {
                events.push(event);
            }
        }
        events
    }
}

/// Where the first blank line (the end of an event) starts, and its length.
fn find_blank_line(bytes: &[u8]) -> Option<(usize, usize)> {
    (0..bytes.len()).find_map(|i| {
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

/// Reads a streaming answer event by event, handing each to `on_event`
/// until it answers `false` or the body ends. A non-success status is
/// turned into the usual provider error first.
pub async fn read_events(
    provider: &str,
    mut response: reqwest::Response,
    mut on_event: impl FnMut(SseEvent) -> Result<bool, LlmError>,
) -> Result<(), LlmError> {
    if !response.status().is_success() {
        http::check(provider, response).await?;
        return Ok(());
    }
    let mut decoder = SseDecoder::default();
    loop {
        let chunk = response.chunk().await.map_err(|e| LlmError::Provider {
            provider: provider.into(),
            detail: format!("the stream broke off: {e}"),
        })?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        for event in decoder.push(&chunk) {
            if !on_event(event)? {
                return Ok(());
            }
        }
    }
}

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

//! Retrying a model call that failed for a while: rate limits (429),
//! server errors and `overloaded` (5xx, 529), connections that could not
//! be made and streams that broke off.
//!
//! Exponential backoff with full jitter (a random wait up to the doubled
//! ceiling, so many agents retrying together spread out), honouring the
//! provider's `Retry-After` when it sends one. A streamed call is retried
//! only while none of its text has reached the caller: text already shown
//! cannot be taken back.

use std::time::Duration;

use super::{ChatResponse, LlmError, TextSink};
use crate::llm::settings::LlmConfig;

/// The longest `Retry-After` honoured; a provider asking for more is
/// treated as down for now.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
        }
    }
}

impl LlmError {
    /// `Some(wait asked for)` when the failure may pass and the call may
    /// be tried again.
    fn retryable(&self) -> Option<Option<Duration>> {
        match self {
            LlmError::RateLimited { retry_after, .. } | LlmError::Transient { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// A uniformly random duration in `[0, ceiling]`.
fn jitter(ceiling: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return ceiling / 2;
    }
    let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(fraction)
}

impl RetryPolicy {
    pub fn from_config(config: &LlmConfig) -> Self {
        RetryPolicy {
            max_retries: config.max_retries.min(10),
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
            max_backoff: Duration::from_millis(
                config.max_backoff_ms.max(config.initial_backoff_ms),
            ),
        }
    }

    /// How long to wait before retry number `retry` (0-based).
    fn backoff(&self, retry: u32, asked: Option<Duration>) -> Option<Duration> {
        match asked {
            Some(asked) if asked > MAX_RETRY_AFTER => None,
            Some(asked) => Some(asked),
            None => {
                let ceiling = self
                    .initial_backoff
                    .saturating_mul(1u32 << retry.min(16))
                    .min(self.max_backoff);
                Some(jitter(ceiling))
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries
    /// are spent. `attempt` gets the sink its text goes to.
    pub async fn run<F, Fut>(
        &self,
        provider: &str,
        sink: Option<TextSink>,
        attempt: F,
    ) -> Result<ChatResponse, LlmError>
    where
        F: Fn(Option<TextSink>) -> Fut,
        Fut: std::future::Future<Output = Result<ChatResponse, LlmError>>,
    {
        // Each attempt's text is relayed here, so we know whether any of
        // it reached the caller before the attempt failed.
        let mut shown = false;
        let mut retry = 0;
        loop {
            let outcome = match &sink {
                None => attempt(None).await,
                Some(outer) => {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                    super::relay(attempt(Some(tx)), &mut rx, |text| {
                        shown = true;
                        let _ = outer.send(text);
                    })
                    .await
                }
            };
            let error = match outcome {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let Some(asked) = error.retryable() else {
                return Err(error);
            };
            if retry >= self.max_retries || shown {
                return Err(error);
            }
            let Some(wait) = self.backoff(retry, asked) else {
                return Err(error);
            };
            tracing::warn!(
                provider,
                retry = retry + 1,
                of = self.max_retries,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "LLM call failed for now; retrying"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::llm::FinishReason;

    fn answer() -> ChatResponse {
        ChatResponse {
            content: Some("ok".into()),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }

    fn limited(after: Option<Duration>) -> LlmError {
        LlmError::RateLimited {
            provider: "p".into(),
            detail: "429".into(),
            retry_after: after,
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a past date: now"
        );
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "soon".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_grows_within_its_ceiling_and_honours_the_provider() {
        let policy = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
        };
        for retry in 0..6 {
            let wait = policy.backoff(retry, None).expect("a wait");
            assert!(wait <= Duration::from_millis(250), "{wait:?}");
        }
        assert_eq!(
            policy.backoff(0, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(policy.backoff(0, Some(Duration::from_secs(3600))), None);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_others_are_not() {
        let policy = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let result = policy
            .run("p", None, |_| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(limited(Some(Duration::from_millis(1)))),
                    _ => Ok(answer()),
                }
            })
            .await;
        assert!(result.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let result = policy
            .run("p", None, |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<ChatResponse, _>(LlmError::Invalid("bad".into()))
            })
            .await;
        assert!(matches!(result, Err(LlmError::Invalid(_))));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a refused request is not retried"
        );

        calls.store(0, Ordering::SeqCst);
        let result = policy
            .run("p", None, |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<ChatResponse, _>(limited(None))
            })
            .await;
        assert!(matches!(result, Err(LlmError::RateLimited { .. })));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "the first try and three retries"
        );
    }

    #[tokio::test]
    async fn a_stream_that_already_showed_text_is_not_retried() {
        let policy = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let (outer, mut shown) = tokio::sync::mpsc::unbounded_channel();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let result = policy
            .run("p", Some(outer), |sink| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if let Some(sink) = sink {
                        let _ = sink.send("Hel".to_string());
                    }
                    Err::<ChatResponse, _>(LlmError::Transient {
                        provider: "p".into(),
                        detail: "the stream broke off".into(),
                        retry_after: None,
                    })
                }
            })
            .await;
        assert!(matches!(result, Err(LlmError::Transient { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(shown.recv().await.as_deref(), Some("Hel"));
    }
}

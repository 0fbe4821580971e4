//! The CLI's HTTP client: JSON in, JSON out, API errors turned into the
//! server's own message. Every request has a deadline, so a stuck server
//! makes a command fail with a sentence, never hang.

use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::body::Bytes;
use reqwest::Method;
use serde_json::Value;

/// How long a request may take unless `--request-timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the connection itself: a server that is up accepts at
/// once, so waiting longer only delays the error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for an agent's reply when a message does not
/// say (`timeout_ms`; the server's default of 60 s).
const SERVER_REPLY_WAIT: Duration = Duration::from_secs(60);
/// Added to the server's own wait, so the server's answer (a reply, or its
/// own timeout error) arrives before the CLI gives up.
const MARGIN: Duration = Duration::from_secs(10);
/// For work the server does before it answers that grows with the data:
/// deploying and compiling components, imports and exports, storage checks
/// and compaction, loading a model, running a tool.
const SLOW_WORK: Duration = Duration::from_secs(600);
/// Paths (prefixes) whose answer comes after such work, whatever the method.
const SLOW_PATHS: &[&str] = &[
    "/api/v1/storage/",
    "/api/v1/backup",
    "/api/v1/memory/import",
    "/api/v1/memory/export",
    "/api/v1/memory/optimize",
    "/api/v1/memory/cleanup",
    "/api/v1/memory/model/",
];
/// Paths that are slow to POST to: deploying an agent, a tool or a
/// definition (each starts and tries the agent).
/// (A broadcast waits for its deadline, a contract net for bids and results.)
const SLOW_POSTS: &[&str] = &[
    "/api/v1/agents",
    "/api/v1/tools",
    "/api/v1/config-agents",
    "/api/v1/broadcast",
    "/api/v1/contract-net",
];
/// Path endings of slow POSTs to one agent or tool.
const SLOW_POST_SUFFIXES: &[&str] = &["/invoke", "/reload", "/award"];

pub struct Client {
    base: String,
    http: reqwest::Client,
    /// `--request-timeout`: the deadline of every request when given;
    /// otherwise each request gets the one its kind needs ([`Client::budget`]).
    timeout: Option<Duration>,
}

impl Client {
    /// A client for `server`, sending `token` as a bearer token when given,
    /// giving up on any request after `timeout` (`None`: the defaults).
    pub fn new(
        server: &str,
        token: Option<&str>,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let base = server.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(anyhow!("--server must be an http:// URL, got `{server}`"));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token contains characters a header cannot carry")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let connect = timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(connect)
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            base,
            http,
            timeout,
        })
    }

    /// How long a request may take: `--request-timeout` when given; else
    /// the server's own wait plus a margin for a message (its `timeout_ms`,
    /// or the server's default), [`SLOW_WORK`] for slow work, and
    /// [`DEFAULT_TIMEOUT`] for the rest.
    fn budget(&self, method: &Method, path: &str, body: Option<&Value>) -> Duration {
        if let Some(timeout) = self.timeout {
            return timeout;
        }
        let path = path.split('?').next().unwrap_or(path);
        if path.ends_with("/message") || path == "/api/v1/messages" {
            let asked = body
                .and_then(|b| b.get("timeout_ms"))
                .and_then(Value::as_u64);
            return asked.map_or(SERVER_REPLY_WAIT, Duration::from_millis) + MARGIN;
        }
        let post = *method == Method::POST;
        let slow = SLOW_PATHS.iter().any(|p| path.starts_with(p))
            || (post && SLOW_POSTS.contains(&path))
            || (post && SLOW_POST_SUFFIXES.iter().any(|s| path.ends_with(s)));
        if slow { SLOW_WORK } else { DEFAULT_TIMEOUT }
    }

    /// A request with its deadline; `body`, when given, is only read for
    /// the server's wait (the caller attaches the body itself).
    fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Pending {
        let budget = self.budget(&method, path, body);
        Pending {
            builder: self
                .http
                .request(method.clone(), self.url(path))
                .timeout(budget),
            what: format!("{method} {path}"),
            budget,
        }
    }

    /// Sends, turning a deadline passed or a connection refused into a
    /// sentence that says what to do.
    async fn send(&self, pending: Pending) -> anyhow::Result<reqwest::Response> {
        let Pending {
            builder,
            what,
            budget,
        } = pending;
        builder
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &what, budget))
    }

    /// Why a request got no answer, as a sentence that says what to do.
    fn transport_error(&self, e: &reqwest::Error, what: &str, budget: Duration) -> anyhow::Error {
        if e.is_timeout() {
            let (waited, at) = if e.is_connect() {
                (budget.min(CONNECT_TIMEOUT), "could not connect")
            } else {
                (budget, "did not answer")
            };
            return anyhow!(
                "timed out: the caxton server at {} {at} within {} s ({what})\n  \
                 it may be stuck or overloaded; to wait longer, pass --request-timeout 2m \
                 (or set CAXTON_REQUEST_TIMEOUT)",
                self.base,
                waited.as_secs_f64()
            );
        }
        anyhow!(
            "cannot reach the caxton server at {}: {e}\n  is it running? start it with `caxton start`, or point --server / CAXTON_SERVER at it",
            self.base
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.send(self.request(Method::GET, path, None)).await;
        self.finish(response).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.send(self.request(Method::DELETE, path, None)).await;
        self.finish(response).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .send(self.request(Method::POST, path, Some(body)).json(body))
            .await;
        self.finish(response).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .send(self.request(Method::PUT, path, Some(body)).json(body))
            .await;
        self.finish(response).await
    }

    /// GET, decoded into the type the server serialises.
    pub async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        decode(path, self.get(path).await?)
    }

    /// POST JSON, the answer decoded into the type the server serialises.
    pub async fn post_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        decode(path, self.post_json(path, body).await?)
    }

    /// The server's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// POST answering (success, body) — for commands that print the
    /// server's structured error details themselves.
    pub async fn post_json_raw(&self, path: &str, body: &Value) -> anyhow::Result<(bool, Value)> {
        let response = self
            .send(self.request(Method::POST, path, Some(body)).json(body))
            .await?;
        let ok = response.status().is_success();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok((ok, body))
    }

    /// GET answering text (exports), with API errors decoded.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self.send(self.request(Method::GET, path, None)).await?;
        if response.status().is_success() {
            return response.text().await.context("reading the server's answer");
        }
        self.finish(Ok(response)).await.map(|_| String::new())
    }

    /// GET streamed into `path` (through `path.partial`); answers the
    /// bytes written. API errors are decoded as usual. With `progress`,
    /// the bytes so far and the rate are redrawn on stderr (for a
    /// terminal: a log file would fill with redraws). A large download
    /// may take long, so the deadline is on the answer's start and then on
    /// each pause between pieces, not on the whole.
    pub async fn download(
        &self,
        path: &str,
        to: &std::path::Path,
        progress: bool,
    ) -> anyhow::Result<u64> {
        use std::io::Write;
        let started = std::time::Instant::now();
        let mut drawn = 0u64;
        let budget = self.budget(&Method::GET, path, None);
        let what = format!("GET {path}");
        let pending = Pending {
            builder: self.http.get(self.url(path)),
            what: what.clone(),
            budget,
        };
        let response = tokio::time::timeout(budget, self.send(pending))
            .await
            .map_err(|_| self.stalled(&what, budget))?;
        let mut response = match response {
            Ok(r) if r.status().is_success() => r,
            other => return self.finish(other).await.map(|_| 0),
        };
        let idle = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let partial = to.with_extension("partial");
        let mut file = crate::storage::open_private(&partial, false)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = tokio::time::timeout(idle, response.chunk())
            .await
            .map_err(|_| self.stalled(&what, idle))?
            .context("the server stopped sending the download")?
        {
            file.write_all(&chunk)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            written += chunk.len() as u64;
            if progress && written - drawn >= 256 * 1024 {
                drawn = written;
                let secs = started.elapsed().as_secs_f64().max(0.001);
                eprint!(
                    "\r{:.1} MB received ({:.1} MB/s)   ",
                    written as f64 / 1e6,
                    written as f64 / 1e6 / secs
                );
            }
        }
        if progress && drawn > 0 {
            eprintln!();
        }
        file.sync_all()?;
        std::fs::rename(&partial, to).with_context(|| format!("cannot write {}", to.display()))?;
        Ok(written)
    }

    /// A download that sent nothing for `waited`.
    fn stalled(&self, what: &str, waited: Duration) -> anyhow::Error {
        anyhow!(
            "timed out: the caxton server at {} sent nothing for {} s ({what})\n  \
             it may be stuck or overloaded; to wait longer, pass --request-timeout 2m \
             (or set CAXTON_REQUEST_TIMEOUT)",
            self.base,
            waited.as_secs_f64()
        )
    }

    /// Whether `error` means no server answered at all.
    pub fn unreachable(&self, error: &anyhow::Error) -> bool {
        error
            .to_string()
            .starts_with("cannot reach the caxton server")
    }

    /// POST of a text body (imports).
    pub async fn post_text(&self, path: &str, body: String) -> anyhow::Result<Value> {
        self.post_body(path, "application/x-ndjson", body.into_bytes())
            .await
    }

    /// POST of raw bytes with their content type (component uploads).
    pub async fn post_body(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let request = self
            .request(Method::POST, path, None)
            .map(|b| b.header("content-type", content_type).body(body));
        let response = self.send(request).await;
        self.finish(response).await
    }

    /// A request answered with the body as the server wrote it; API
    /// errors are decoded as usual. A POST or PUT without a body sends `{}`.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Bytes> {
        let empty = Value::Object(Default::default());
        let body = match body {
            Some(body) => Some(body),
            None if method != Method::GET && method != Method::DELETE => Some(&empty),
            None => None,
        };
        let mut request = self.request(method, path, body);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish_raw(self.send(request).await).await
    }

    async fn finish(&self, response: anyhow::Result<reqwest::Response>) -> anyhow::Result<Value> {
        let bytes = self.finish_raw(response).await?;
        Ok(serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }

    async fn finish_raw(
        &self,
        response: anyhow::Result<reqwest::Response>,
    ) -> anyhow::Result<Bytes> {
        let response = response?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                anyhow!(
                    "timed out reading the answer of the caxton server at {}\n  \
                     to wait longer, pass --request-timeout 2m (or set CAXTON_REQUEST_TIMEOUT)",
                    self.base
                )
            } else {
                anyhow!("reading the server's answer: {e}")
            }
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        match body["error"]["message"].as_str() {
            Some(message) => Err(anyhow!(
                "{message} ({} {})",
                status.as_u16(),
                body["error"]["code"].as_str().unwrap_or("error")
            )),
            None => Err(anyhow!("the server answered {status}: {body}")),
        }
    }
}

/// A request about to be sent, with its deadline and a short description
/// (`GET /api/v1/health`) for the error if the deadline passes.
struct Pending {
    builder: reqwest::RequestBuilder,
    what: String,
    budget: Duration,
}

impl Pending {
    fn map(self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        Pending {
            builder: f(self.builder),
            ..self
        }
    }

    fn json(self, body: &Value) -> Self {
        self.map(|b| b.json(body))
    }
}

/// An answer in the server's own type; a mismatch means the CLI and the
/// server are different versions.
fn decode<T: serde::de::DeserializeOwned>(path: &str, value: Value) -> anyhow::Result<T> {
    serde_json::from_value(value).map_err(|e| {
        anyhow::anyhow!(
            "the server's answer to {path} does not have the shape this CLI expects ({e}); \
             are `caxton` and the server the same version?"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_request_gets_the_deadline_it_needs() -> anyhow::Result<()> {
        let client = Client::new("http://127.0.0.1:1", None, None)?;
        let budget =
            |method: Method, path: &str, body: Option<&Value>| client.budget(&method, path, body);
        assert_eq!(budget(Method::GET, "/api/v1/health", None), DEFAULT_TIMEOUT);
        assert_eq!(budget(Method::GET, "/api/v1/agents", None), DEFAULT_TIMEOUT);
        // A message: the server's wait for the reply, plus a margin.
        let message = serde_json::json!({"message": "hi"});
        assert_eq!(
            budget(Method::POST, "/api/v1/agents/a/message", Some(&message)),
            Duration::from_secs(70)
        );
        let patient = serde_json::json!({"message": "hi", "timeout_ms": 300_000});
        assert_eq!(
            budget(Method::POST, "/api/v1/messages", Some(&patient)),
            Duration::from_secs(310)
        );
        assert_eq!(budget(Method::POST, "/api/v1/agents", None), SLOW_WORK);
        assert_eq!(
            budget(Method::GET, "/api/v1/storage/verify?level=deep", None),
            SLOW_WORK
        );
        assert_eq!(
            budget(Method::POST, "/api/v1/tools/t/invoke", None),
            SLOW_WORK
        );
        // `--request-timeout` is the deadline of every request.
        let strict = Client::new("http://127.0.0.1:1", None, Some(Duration::from_secs(2)))?;
        assert_eq!(
            strict.budget(&Method::POST, "/api/v1/messages", Some(&patient)),
            Duration::from_secs(2)
        );
        Ok(())
    }
}

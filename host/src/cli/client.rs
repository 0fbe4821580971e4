//! The CLI's HTTP client: JSON in, JSON out, API errors turned into the
//! server's own message.

use anyhow::{Context, anyhow};
use axum::body::Bytes;
use serde_json::Value;

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `server`, sending `token` as a bearer token when given.
    pub fn new(server: &str, token: Option<&str>) -> anyhow::Result<Self> {
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
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .context("building the HTTP client")?;
        Ok(Client { base, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(self.url(path)).send().await;
        self.finish(response).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.http.delete(self.url(path)).send().await;
        self.finish(response).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self.http.post(self.url(path)).json(body).send().await;
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
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the caxton server at {}: {e}", self.base))?;
        let ok = response.status().is_success();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok((ok, body))
    }

    /// GET answering text (exports), with API errors decoded.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the caxton server at {}: {e}", self.base))?;
        if response.status().is_success() {
            return response.text().await.context("reading the server's answer");
        }
        self.finish(Ok(response)).await.map(|_| String::new())
    }

    /// GET streamed into `path` (through `path.partial`); answers the
    /// bytes written. API errors are decoded as usual. With `progress`,
    /// the bytes so far and the rate are redrawn on stderr (for a
    /// terminal: a log file would fill with redraws).
    pub async fn download(
        &self,
        path: &str,
        to: &std::path::Path,
        progress: bool,
    ) -> anyhow::Result<u64> {
        use std::io::Write;
        let started = std::time::Instant::now();
        let mut drawn = 0u64;
        let response = self.http.get(self.url(path)).send().await;
        let mut response = match response {
            Ok(r) if r.status().is_success() => r,
            other => return self.finish(other).await.map(|_| 0),
        };
        let partial = to.with_extension("partial");
        let mut file = crate::storage::open_private(&partial, false)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
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
        let response = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await;
        self.finish(response).await
    }

    /// A request answered with the body as the server wrote it; API
    /// errors are decoded as usual. A POST or PUT without a body sends `{}`.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Bytes> {
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        } else if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            request = request.json(&Value::Object(Default::default()));
        }
        self.finish_raw(request.send().await).await
    }

    async fn finish(&self, response: reqwest::Result<reqwest::Response>) -> anyhow::Result<Value> {
        let bytes = self.finish_raw(response).await?;
        Ok(serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }

    async fn finish_raw(
        &self,
        response: reqwest::Result<reqwest::Response>,
    ) -> anyhow::Result<Bytes> {
        let response = response.map_err(|e| {
            anyhow!(
                "cannot reach the caxton server at {}: {e}\n  is it running? start it with `caxton start`, or point --server / CAXTON_SERVER at it",
                self.base
            )
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("reading the server's answer")?;
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

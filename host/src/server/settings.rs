//! `server:` and `monitoring:` in `caxton.yaml`: where the API listens and
//! how much one request may carry.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted, in bytes. Uploads are base64 JSON, so
    /// this bounds the component size at about three quarters of it.
    pub max_body_bytes: usize,
    /// Largest body of any other request (messages, memory writes, queries);
    /// only uploads and imports may use `max_body_bytes`.
    pub max_request_bytes: usize,
    /// Requests handled at once; more are answered 503 at once rather than
    /// queued without bound.
    pub max_concurrent_requests: usize,
    /// Connections open at once. When all are taken an idle one is closed
    /// to make room; the last sixteenth is kept for the operator's own
    /// loopback connections.
    pub max_connections: usize,
    /// Connections one peer (a remote address, or one other local account)
    /// may hold at once; the operator's own are not counted.
    pub max_connections_per_peer: usize,
    /// Seconds a client may take to send a request's headers (and an idle
    /// keep-alive connection may stay open).
    pub header_read_timeout_secs: u64,
    /// Seconds a client may take to send a request's body.
    pub body_read_timeout_secs: u64,
    /// HTTPS on the API port: `{cert: PEM file, key: PEM file}`.
    pub tls: Option<super::tls::TlsSettings>,
    /// The URL clients reach the server at (`https://caxton.example.com`,
    /// maybe behind a proxy); A2A agent cards name their endpoints under
    /// it. Unset: cards are served only to loopback clients, from the
    /// `Host` they asked.
    pub public_url: Option<String>,
    /// The runbook writes these under `server:`; they mean the top-level
    /// `data_dir` and `agents.dir`.
    pub data_dir: Option<PathBuf>,
    pub agents_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 64 * 1024 * 1024,
            max_request_bytes: 4 * 1024 * 1024,
            max_concurrent_requests: 512,
            max_connections: 1024,
            max_connections_per_peer: 128,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 60,
            tls: None,
            public_url: None,
            data_dir: None,
            agents_dir: None,
        }
    }
}

impl ServerConfig {
    /// How long connections may live and how many there may be.
    pub fn connection_limits(&self) -> super::listen::ConnectionLimits {
        super::listen::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(
                self.header_read_timeout_secs.max(1),
            ),
            max_connections: self.max_connections,
            max_connections_per_peer: self.max_connections_per_peer,
        }
    }

    /// Limits of zero would refuse every request or connection.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("server.max_body_bytes", self.max_body_bytes as u64),
            ("server.max_request_bytes", self.max_request_bytes as u64),
            (
                "server.max_concurrent_requests",
                self.max_concurrent_requests as u64,
            ),
            ("server.max_connections", self.max_connections as u64),
            (
                "server.max_connections_per_peer",
                self.max_connections_per_peer as u64,
            ),
            (
                "server.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("server.body_read_timeout_secs", self.body_read_timeout_secs),
        ] {
            if value == 0 {
                return Err(format!("{name} is 0; it must be at least 1"));
            }
        }
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        Ok(())
    }
}

/// `server.public_url`: an absolute http(s) URL with a host, no userinfo,
/// query or fragment (a path prefix, for a proxy, is allowed).
fn check_public_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or(""));
    if host.is_none_or(|h| h.is_empty() || h.contains('@')) || url.contains(['?', '#', ' ']) {
        return Err(format!(
            "server.public_url is `{url}`; it must be an http:// or https:// URL with a host and no query, e.g. https://caxton.example.com"
        ));
    }
    Ok(())
}

/// The port `/metrics` gets on its own when `monitoring.metrics_port` is not
/// set (taken only when free): the runbook's `curl localhost:9090/metrics`.
pub const DEFAULT_METRICS_PORT: u16 = 9090;

/// `monitoring:` — `metrics_port` serves `GET /metrics` on its own port
/// (it is always on the API port too).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Unset: 9090 when it is free; 0: none.
    pub metrics_port: Option<u16>,
    pub health_check_interval: Option<String>,
    /// Spans (message hops, LLM and tool calls) kept for `caxton trace`;
    /// the oldest go first. 0 turns tracing off.
    pub trace_spans: usize,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            metrics_port: None,
            health_check_interval: None,
            trace_spans: crate::trace::DEFAULT_SPANS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_must_be_an_absolute_http_url() {
        for good in ["https://caxton.example.com", "http://10.0.0.5:8080/caxton/"] {
            assert!(check_public_url(good).is_ok(), "{good}");
        }
        for bad in [
            "caxton.example.com",
            "ftp://x",
            "https://",
            "https://x/?a",
            "https://u@x",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
        let config = ServerConfig {
            public_url: Some("nope".into()),
            ..ServerConfig::default()
        };
        assert!(config.validate().is_err());
    }
}

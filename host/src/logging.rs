//! Where the server's log lines go: always to stderr (the journal under
//! systemd), and also to `logging.file` when it is set, so the runbook's
//! `tail -f /var/log/caxton/caxton.log` works. The level is `CAXTON_LOG`
//! if set (and not empty), else `logging.level`, else `RUST_LOG`, else
//! `info`. A start-up failure after this point is logged too (`cli`).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use tracing_subscriber::fmt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use serde::{Deserialize, Serialize};

/// `logging:` — from the runbook's production file. Logs always go to
/// stderr (the journal under systemd) and, with `file`, are appended there
/// too; `level` is a level name or a filter, overridden by `CAXTON_LOG`
/// (see [`crate::logging`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    pub level: Option<String>,
    pub file: Option<PathBuf>,
    /// `text` (the default) or `json`: one JSON object per line, for log
    /// shippers (Loki, Elasticsearch, the journal's JSON export).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LoggingConfig {
    /// A level that names nothing is refused at load, not at first log.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(level) = &self.level {
            level_filter(level)?;
        }
        Ok(())
    }
}

/// Crates whose `info` lines are chatter, not server events: the compiler's,
/// rmcp's, which writes three lines (one with the whole client
/// description) for every MCP request over HTTP, and async-nats's, which
/// writes a line per reconnect attempt while NATS is away (the health
/// reason and the cluster's own warnings say it once).
const QUIET: &str = "wasmtime=warn,cranelift=warn,rmcp=warn,async_nats=warn";

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// One output in the configured format. Each line carries the spans it
/// was written in: a request's id (`request{id=…}`) and its route.
fn output<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let writer = Redacting(writer);
    match format {
        LogFormat::Text => Box::new(fmt::layer().with_ansi(ansi).with_writer(writer)),
        LogFormat::Json => Box::new(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer),
        ),
    }
}

/// A log output whose every line passes through [`crate::redact::text`]:
/// our own lines are redacted where they are written, but a library's are
/// not ours to word (rmcp logs the URL it failed on, `?api_key=` and all).
struct Redacting<M>(M);

impl<'a, M: fmt::MakeWriter<'a>> fmt::MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter(self.0.make_writer_for(meta))
    }
}

/// The formatter hands over each line in one `write`, so each line is
/// redacted whole and still reaches the output in one `write`.
struct RedactingWriter<W>(W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(line) => {
                self.0.write_all(crate::redact::text(line).as_bytes())?;
                Ok(buf.len())
            }
            Err(_) => self.0.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Installs the global logger for `caxton start`.
pub fn init(config: &LoggingConfig) -> anyhow::Result<()> {
    let filter = filter(config)?;
    let mut outputs = vec![output(config.format, std::io::stderr, colour_on_stderr())];
    // One `write` per line on an O_APPEND file: lines from concurrent
    // threads do not interleave, and `logrotate` with `copytruncate` works.
    if let Some(path) = &config.file {
        outputs.push(output(config.format, Arc::new(open(path)?), false));
    }
    let installed = tracing_subscriber::registry()
        .with(outputs)
        .with(filter)
        .try_init();
    installed.context("cannot install the logger")
}

fn filter(config: &LoggingConfig) -> anyhow::Result<EnvFilter> {
    // An empty CAXTON_LOG counts as unset; one that does not parse is
    // reported (on stderr: the logger is not there yet) and skipped.
    if let Some(spec) = std::env::var("CAXTON_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        match EnvFilter::try_new(&spec) {
            Ok(filter) => return Ok(filter),
            Err(e) => eprintln!("CAXTON_LOG `{spec}` is not a log filter ({e}); ignoring it"),
        }
    }
    if let Some(level) = &config.level {
        return level_filter(level);
    }
    Ok(EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}"))))
}

/// `logging.level`: a level name (`info`), which keeps the compiler quiet,
/// or a full filter (`info,caxton::memory=debug`) taken as written.
pub fn level_filter(level: &str) -> anyhow::Result<EnvFilter> {
    let level = level.trim();
    let lower = level.to_ascii_lowercase();
    if LEVELS.contains(&lower.as_str()) {
        // Quieting only lowers: `error` or `off` must not let the
        // compiler's warnings through.
        let spec = if matches!(lower.as_str(), "off" | "error" | "warn") {
            lower
        } else {
            format!("{lower},{QUIET}")
        };
        return Ok(EnvFilter::new(spec));
    }
    if !level.contains('=') {
        bail!(
            "logging.level `{level}` is not a level: use one of {} or a filter such as \
             `info,caxton::memory=debug`",
            LEVELS.join(", ")
        );
    }
    EnvFilter::try_new(level).map_err(|e| {
        anyhow::anyhow!(
            "logging.level `{level}` is not a valid filter ({e}); use a level such as `info` \
             or a filter such as `info,caxton::memory=debug`"
        )
    })
}

fn open(path: &Path) -> anyhow::Result<fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create {} for logging.file; create it (and let this user write \
                 there) or point logging.file elsewhere",
                dir.display()
            )
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| {
            format!(
                "cannot open logging.file {} for appending; check its permissions or point \
                 logging.file elsewhere",
                path.display()
            )
        })
}

/// Colour only for a person at a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>): the journal, a pipe or a file gets plain text.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_filters_are_accepted_and_nonsense_is_explained() {
        for ok in [
            "info",
            "DEBUG",
            " warn ",
            "off",
            "info,caxton::memory=debug",
        ] {
            assert!(level_filter(ok).is_ok(), "{ok} refused");
        }
        // A strict level stays strict for every crate.
        let strict = level_filter("error").expect("error").to_string();
        assert!(!strict.contains("warn"), "{strict}");
        let normal = level_filter("info").expect("info").to_string();
        assert!(normal.contains("wasmtime=warn"), "{normal}");
        let err = level_filter("loud").expect_err("not a level").to_string();
        assert!(err.contains("`loud`") && err.contains("debug"), "{err}");
        let err = level_filter("info,caxton=shouty")
            .expect_err("bad directive")
            .to_string();
        assert!(err.contains("not a valid filter"), "{err}");
    }
}

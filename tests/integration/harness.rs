//! Test harness: builds the example components once, starts the real
//! `caxton` binary on an ephemeral port with a temporary data directory,
//! and talks HTTP to it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds `examples/rust` for wasm32-wasip2 once per test run and returns
/// the path of the named component. Panics loudly when it cannot.
pub fn rust_example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| {
            let examples = repo_root().join("examples").join("rust");
            let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&examples)
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .output()
                .map_err(|e| format!("cannot run cargo to build examples/rust: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "building examples/rust failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Ok(examples.join("target/wasm32-wasip2/release"))
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "example component {} was not built",
        path.display()
    );
    path
}

/// Builds a Python example (`examples/python/NAME`) with componentize-py
/// (once per run and example; reused while its sources are older than the
/// output). Fails loudly when the tool is missing: `.ci/run` installs it.
pub fn python_example(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, Result<PathBuf, String>>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    built
        .entry(name.to_string())
        .or_insert_with(|| build_python(name))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_python(name: &str) -> Result<PathBuf, String> {
    let root = repo_root();
    let source = root.join("examples/python").join(name);
    let out_dir = source.join("build");
    let out = out_dir.join(format!("{name}.wasm"));
    let newest_input = [source.join("app.py"), root.join("wit/caxton.wit")]
        .iter()
        .filter_map(|p| p.metadata().and_then(|m| m.modified()).ok())
        .max();
    let fresh = match (out.metadata().and_then(|m| m.modified()), newest_input) {
        (Ok(built), Some(input)) => built > input,
        _ => false,
    };
    if fresh {
        return Ok(out);
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let output = Command::new("componentize-py")
        .current_dir(&root)
        .args(["-d", "wit", "-w", "agent", "componentize", "-p"])
        .arg(source.strip_prefix(&root).unwrap_or(&source))
        .args(["app", "-o"])
        .arg(&out)
        .output()
        .map_err(|e| {
            format!(
                "cannot run componentize-py ({e}); install it with `pip install componentize-py==0.25.1` (.ci/run does)"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "componentize-py failed for {name}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(out)
}

/// Builds the JavaScript example with componentize-js, pinned in
/// `examples/js/package.json` (installed there by `scripts/test`), once per
/// run and variant. `wasi_http: true` leaves out the `--disable` flags of
/// the README's recipe: the component then imports `wasi:http`, as a
/// default jco build does. Fails loudly when the tool is missing.
pub fn js_example(wasi_http: bool) -> PathBuf {
    static BUILT: [OnceLock<Result<PathBuf, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[usize::from(wasi_http)]
        .get_or_init(|| {
            let root = repo_root();
            let js = root.join("examples/js");
            let name = if wasi_http { "js-echo-http.wasm" } else { "js-echo.wasm" };
            let out_dir = js.join("js-echo/build");
            let out = out_dir.join(name);
            std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
            let mut command = Command::new(js.join("node_modules/.bin/componentize-js"));
            command
                .current_dir(&js)
                // Built against the frozen 0.1.0 contract, as before 0.2.0
                // existed: what a component built then must keep doing.
                .args([
                    "js-echo/app.js",
                    "--wit",
                    "../../wit/deps/caxton-agent-0.1.0/caxton.wit",
                    "--world-name",
                    "agent",
                ]);
            if !wasi_http {
                command.args(["--disable", "http", "--disable", "fetch-event"]);
            }
            let output = command.arg("-o").arg(&out).output().map_err(|e| {
                format!(
                    "cannot run componentize-js ({e}); install it with `npm install --prefix examples/js` (scripts/test does)"
                )
            })?;
            if !output.status.success() {
                return Err(format!(
                    "componentize-js failed:\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Ok(out)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Makes sure the embedding model is in the shared cache before any server
/// starts (a server without it would download it in the background and
/// answer keyword-only meanwhile). Runs `caxton memory pull` once per test
/// run; fails loudly when the model cannot be had.
pub fn ensure_embedding_model() {
    static PULLED: OnceLock<Result<(), String>> = OnceLock::new();
    // No server listens on port 9: the pull must still succeed.
    pull_once(
        &PULLED,
        &["--server", "http://127.0.0.1:9", "memory", "pull"],
        "the tests need the real embedding model",
    );
}

/// Runs a `caxton … pull` command once per test run (`cell` remembers the
/// outcome); panics with its stderr when it fails, so a test that needs a
/// model never passes without it.
pub fn pull_once(cell: &'static OnceLock<Result<(), String>>, args: &[&str], why: &str) {
    cell.get_or_init(|| {
        let command = format!("caxton {}", args.join(" "));
        let output = Command::new(env!("CARGO_BIN_EXE_caxton"))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `{command}`: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{command}` failed; {why}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A running `caxton start` process. Killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    config: Option<PathBuf>,
    http: reqwest::Client,
}

/// The sample of `name` (no labels) in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

impl Server {
    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Starts the server on a free port with `data_dir`, waiting until it
    /// prints the address it listens on.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with_config(data_dir, None)
    }

    /// Starts a server whose memory runs without the embedding model
    /// (keyword search only, health `degraded`).
    pub fn start_keyword_only(data_dir: &Path) -> Server {
        let config = data_dir.with_extension("keyword-only.yaml");
        std::fs::write(&config, "memory:\n  semantic_search: false\n").expect("write config");
        Self::start_with_config(data_dir, Some(&config))
    }

    pub fn start_with_config(data_dir: &Path, config: Option<&Path>) -> Server {
        Server::start_with_env(data_dir, config, &[])
    }

    /// Starts with extra environment variables (API keys for providers).
    pub fn start_with_env(data_dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Server {
        Server::start_on("127.0.0.1", data_dir, config, env)
    }

    /// Starts listening on `host` (`0.0.0.0` for a non-loopback bind).
    pub fn start_on(
        host: &str,
        data_dir: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_caxton"));
        command.env("CAXTON_LOG", "warn").stderr(Stdio::inherit());
        Server::launch(
            command,
            host,
            data_dir,
            config,
            env,
            Duration::from_secs(120),
        )
    }

    /// Starts the binary under `runner` (an emulator and its arguments),
    /// logging at `info` into `log`.
    pub fn start_under(
        runner: &[&str],
        data_dir: &Path,
        config: Option<&Path>,
        log: &Path,
    ) -> Server {
        let (program, args) = runner.split_first().expect("a runner command");
        let mut command = Command::new(program);
        command
            .args(args)
            .arg(env!("CARGO_BIN_EXE_caxton"))
            .env("CAXTON_LOG", "info")
            .stderr(std::fs::File::create(log).expect("create the log file"));
        // An emulator runs the code 10-100x slower than the CPU would.
        let limit = Duration::from_secs(900);
        Server::launch(command, "127.0.0.1", data_dir, config, &[], limit)
    }

    /// Runs `command` (the binary, or a runner in front of it) with
    /// `start` and waits for the address it prints.
    fn launch(
        mut command: Command,
        host: &str,
        data_dir: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
        startup_limit: Duration,
    ) -> Server {
        ensure_embedding_model();
        command
            .arg("start")
            .args(["--port", "0", "--host", host])
            .arg("--data-dir")
            .arg(data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        } else {
            // Never pick up a caxton.yaml from the working directory.
            command.current_dir(data_dir.parent().unwrap_or(data_dir));
        }
        let mut child = command.spawn().expect("spawn the caxton binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (listening, _) = watch_for_line(stdout, "caxton listening on ");
        let base = match listening.recv_timeout(startup_limit) {
            Ok(address) => address.trim().to_string(),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "caxton did not report its address within {} s (see its stderr)",
                    startup_limit.as_secs()
                );
            }
        };
        // A wildcard bind is reached, as an operator would, through loopback.
        let base = base.replace("://0.0.0.0:", "://127.0.0.1:");
        Server {
            child: Some(child),
            base,
            data_dir: data_dir.to_path_buf(),
            config: config.map(Path::to_path_buf),
            http: reqwest::Client::new(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Whether the process exits by itself within `limit`.
    pub fn exits_within(&mut self, limit: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops gracefully (SIGTERM) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            // Generous: on a loaded machine saving the index takes a while,
            // and a test that relies on a graceful stop must not silently
            // get a SIGKILL instead.
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("caxton (pid {pid}) did not stop within 60 s of SIGTERM; it was killed");
        }
    }

    /// Stops and starts again on the same data directory.
    pub fn restart(mut self) -> Server {
        self.stop();
        Server::start_with_config(&self.data_dir.clone(), self.config.as_deref())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        decode(response).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE");
        decode(response).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .expect("PUT");
        decode(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        decode(response).await
    }

    /// Calls MCP tool `name` over `/mcp` (one JSON-RPC POST, with `token`
    /// when given); answers the JSON-RPC answer, after checking the 200.
    pub async fn mcp_tool(&self, token: Option<&str>, name: &str, arguments: Value) -> Value {
        let mut request = self
            .http
            .post(self.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(
                &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": name, "arguments": arguments}}),
            );
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("MCP request");
        assert_eq!(response.status().as_u16(), 200);
        response.json::<Value>().await.expect("JSON-RPC answer")
    }

    /// Asserts that an MCP tool answer from [`Server::mcp_tool`] is a
    /// refusal whose text contains `reason`.
    pub fn assert_tool_refused(answer: &Value, reason: &str) {
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        assert!(
            answer["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains(reason),
            "{answer}"
        );
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        decode(response).await
    }

    /// Creates an API token; answers its secret.
    pub async fn token(&self, name: &str, scope: &str) -> String {
        let (status, created) = self
            .post(
                "/api/v1/tokens",
                &serde_json::json!({ "name": name, "scope": scope }),
            )
            .await;
        assert_eq!(status, 201, "creating token {name}: {created}");
        created["token"].as_str().expect("token").to_string()
    }

    /// POSTs `body` with a bearer token; answers the status and the
    /// response as JSON.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST");
        decode(response).await
    }

    /// Deploys a component file as `name` with optional limits; asserts 201.
    pub async fn deploy(&self, name: &str, wasm: &Path, limits: Value) -> Value {
        let (status, body) = self
            .post("/api/v1/agents", &deploy_body(name, wasm, limits))
            .await;
        assert_eq!(status, 201, "deploying {name}: {body}");
        body
    }

    /// Sends `{"message": text}` to an agent.
    pub async fn message(&self, agent: &str, text: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/agents/{agent}/message"),
            &serde_json::json!({ "message": text }),
        )
        .await
    }

    /// Sends a message and returns the reply's content, asserting success.
    pub async fn ask(&self, agent: &str, text: &str) -> String {
        let (status, body) = self.message(agent, text).await;
        assert_eq!(status, 200, "message to {agent}: {body}");
        body["reply"]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("reply has no content: {body}"))
            .to_string()
    }

    /// Sends `text` to `agent` asking for server-sent events; returns the token
    /// texts, the final `reply` event's JSON, and whether the first token
    /// arrived in an earlier network read than the reply.
    pub async fn stream_message(&self, agent: &str, text: &str) -> (Vec<String>, Value, bool) {
        let mut response = reqwest::Client::new()
            .post(self.url(&format!("/api/v1/agents/{agent}/message")))
            .header("Accept", "text/event-stream")
            .json(&serde_json::json!({ "message": text }))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream")),
            "{:?}",
            response.headers()
        );
        let mut buffer = String::new();
        let mut tokens = Vec::new();
        let mut reply = None;
        let mut read = 0usize;
        let mut first_token_read = None;
        let mut reply_read = None;
        while let Some(chunk) = response.chunk().await.expect("read the stream") {
            read += 1;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let kind = event
                    .lines()
                    .find_map(|l| l.strip_prefix("event:"))
                    .map(str::trim)
                    .unwrap_or("");
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect::<Vec<_>>()
                    .join("\n");
                match kind {
                    "token" => {
                        first_token_read.get_or_insert(read);
                        let value: Value = serde_json::from_str(&data).expect("token JSON");
                        tokens.push(value["text"].as_str().unwrap_or("").to_string());
                    }
                    "reply" => {
                        reply_read = Some(read);
                        reply = Some(serde_json::from_str(&data).expect("reply JSON"));
                    }
                    "error" => panic!("the stream ended with an error: {data}"),
                    _ => {}
                }
            }
            if reply.is_some() {
                break;
            }
        }
        let reply = reply.expect("a reply event ends the stream");
        let earlier = matches!((first_token_read, reply_read), (Some(t), Some(r)) if t < r);
        (tokens, reply, earlier)
    }

    /// Runs the CLI against this server; returns (exit ok, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_with_env(args, &[])
    }

    /// Runs the CLI with extra environment (`CAXTON_DATA_DIR`, `CAXTON_TOKEN`).
    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_caxton"))
            .arg("--server")
            .arg(&self.base)
            .args(args)
            .env_remove("CAXTON_TOKEN")
            .env_remove("CAXTON_DATA_DIR")
            .envs(env.iter().copied())
            .output()
            .expect("run the caxton CLI");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Reads a child's `pipe` line by line on a thread, so a test can wait for
/// what the child says instead of guessing how long it takes: the first
/// line starting with `prefix` is sent, without the prefix, as soon as it
/// is read; the thread returns every line once the pipe closes.
pub fn watch_for_line(
    pipe: impl std::io::Read + Send + 'static,
    prefix: &'static str,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_string());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    (rx, reader)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response is not JSON ({status}): {text}"));
    (status, body)
}

pub fn deploy_body(name: &str, wasm: &Path, limits: Value) -> Value {
    use base64::Engine as _;
    let bytes = std::fs::read(wasm).expect("read component");
    serde_json::json!({
        "name": name,
        "wasm_module": base64::engine::general_purpose::STANDARD.encode(bytes),
        "resource_limits": limits,
    })
}

/// A fresh temporary data directory (kept alive by the returned guard).
pub fn temp_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    (dir, data)
}

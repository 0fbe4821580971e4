//! Security, tried as an attacker would, against the real binary: tokens
//! and scopes, browsers and DNS rebinding on loopback, identities in
//! messages, `http_client` redirects, the compiled-component cache, names,
//! metrics, and instances freed when agents go.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, deploy_body, rust_example, temp_data_dir};

/// One request with full control of method, headers and body.
async fn call(
    server: &Server,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(crate) async fn get_with(server: &Server, path: &str, token: &str) -> (u16, Value) {
    call(
        server,
        Method::GET,
        path,
        &[("authorization", &bearer(token))],
        None,
    )
    .await
}

pub(crate) async fn post_with(
    server: &Server,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    call(
        server,
        Method::POST,
        path,
        &[("authorization", &bearer(token))],
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

async fn alive(server: &Server) {
    let (status, body) = server.get("/api/v1/health").await;
    assert_eq!(status, 200, "the server must still answer: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_every_route_but_health_needs_a_token() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start_on("0.0.0.0", &data, None, &[]);
    alive(&server).await;

    // Loopback included: a non-loopback bind trusts nobody without a token.
    for (method, path) in [
        (Method::GET, "/api/v1/agents"),
        (Method::GET, "/api/v1/memory/export"),
        (Method::POST, "/api/v1/shutdown"),
        (Method::DELETE, "/api/v1/agents/x"),
        // Methods no route serves are refused before routing too, so a
        // route added with one is never open.
        (Method::PUT, "/api/v1/topics/news/subscribers/x"),
        (Method::PATCH, "/api/v1/agents/x"),
    ] {
        let (status, body) = call(&server, method.clone(), path, &[], None).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("admin.token"),
            "the refusal says where the admin token is: {body}"
        );
    }
    let (status, _) = call(&server, Method::GET, "/metrics", &[], None).await;
    assert_eq!(status, 200, "metrics stay open to this machine");
    alive(&server).await;

    let token_file = data.join("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("admin token file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "only the owner may read the admin token"
        );
    }
    let admin = std::fs::read_to_string(&token_file).expect("read admin token");
    let admin = admin.trim();
    let (status, body) = get_with(&server, "/api/v1/agents", admin).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_with(&server, "/api/v1/agents", "cxt_not-a-real-token").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_token");

    // The CLI finds the admin token in the data directory by itself.
    let data_env = [("CAXTON_DATA_DIR", data.to_str().expect("utf-8 path"))];
    let (ok, out, err) = server.cli_with_env(&["agents", "list"], &data_env);
    assert!(ok, "CLI with the discovered token: {out}{err}");
    let (ok, _, err) = server.cli_with_env(&["agents", "list"], &[]);
    assert!(!ok, "and without it, it is refused");
    assert!(err.contains("401"), "{err}");

    let (ok, out, err) = server.cli_with_env(
        &[
            "tokens", "create", "--scope", "read", "--name", "ci", "--json",
        ],
        &data_env,
    );
    assert!(ok, "{out}{err}");
    let created: Value = serde_json::from_str(&out).expect("token JSON");
    let reader = created["token"].as_str().expect("token text").to_string();
    let (ok, out, _) = server.cli_with_env(&["tokens", "list"], &data_env);
    assert!(ok && out.contains("ci") && out.contains("read"), "{out}");
    assert!(!out.contains(&reader), "list never shows a secret: {out}");

    // A read token reads, and cannot change anything.
    let (status, _) = get_with(&server, "/api/v1/agents", &reader).await;
    assert_eq!(status, 200);
    let echo = rust_example("echo");
    let (status, body) = post_with(
        &server,
        "/api/v1/agents",
        &reader,
        &deploy_body("echo", &echo, json!({})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_scope");
    let (status, _) = post_with(&server, "/api/v1/shutdown", &reader, &json!({})).await;
    assert_eq!(status, 403);
    let (status, _) = post_with(
        &server,
        "/api/v1/tokens",
        &reader,
        &json!({"name": "x", "scope": "admin"}),
    )
    .await;
    assert_eq!(status, 403, "a read token cannot mint an admin token");
    alive(&server).await;

    // Revoked: refused from the next request on.
    let (ok, out, err) = server.cli_with_env(&["tokens", "revoke", "ci"], &data_env);
    assert!(ok, "{out}{err}");
    let (status, _) = get_with(&server, "/api/v1/agents", &reader).await;
    assert_eq!(status, 401);
    // And --token / CAXTON_TOKEN take precedence over the file.
    let (ok, _, err) = server.cli_with_env(
        &["agents", "list"],
        &[
            ("CAXTON_DATA_DIR", data.to_str().expect("utf-8")),
            ("CAXTON_TOKEN", &reader),
        ],
    );
    assert!(!ok && err.contains("401"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_web_pages_and_rebinding_get_nothing() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let port = server.base.rsplit(':').next().expect("port").to_string();
    let echo = rust_example("echo");
    let deploy = deploy_body("echo", &echo, json!({}))
        .to_string()
        .into_bytes();

    // A page elsewhere POSTs a "simple" text/plain request (no preflight).
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/agents",
        &[("origin", "https://evil.example")],
        Some(("text/plain", deploy.clone())),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("another origin"),
        "{body}"
    );
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/shutdown",
        &[("sec-fetch-site", "cross-site")],
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // DNS rebinding: the page's own name now points at 127.0.0.1.
    let (status, body) = call(
        &server,
        Method::GET,
        "/api/v1/memory/export",
        &[("host", &format!("evil.example:{port}"))],
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // A form post without an Origin is still not a JSON request.
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/agents",
        &[],
        Some(("application/x-www-form-urlencoded", deploy.clone())),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("application/json"),
        "{body}"
    );
    let (status, body) = server.get("/api/v1/agents").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["agents"].as_array().map(Vec::len),
        Some(0),
        "nothing was deployed: {body}"
    );

    // The operator's own curl, and a page of this very origin, get in.
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/agents",
        &[("origin", &format!("http://127.0.0.1:{port}"))],
        Some(("application/json", deploy)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    alive(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_required_asks_for_tokens_on_loopback_too() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, "auth:\n  required: true\n").expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let (status, _) = server.get("/api/v1/agents").await;
    assert_eq!(status, 401);
    let admin = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let (status, _) = get_with(&server, "/api/v1/agents", admin.trim()).await;
    assert_eq!(status, 200);
    let (status, _) = server.get("/api/v1/health").await;
    assert_eq!(status, 200, "health stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_is_who_the_token_says() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let (status, created) = server
        .post(
            "/api/v1/tokens",
            &json!({"name": "alice", "scope": "message"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let alice = created["token"].as_str().expect("token").to_string();

    let (status, body) = post_with(
        &server,
        "/api/v1/agents/echo/message",
        &alice,
        &json!({"message": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reply"]["receiver"], "alice",
        "the reply goes to the token's name: {body}"
    );
    let (status, body) = post_with(
        &server,
        "/api/v1/agents/echo/message",
        &alice,
        &json!({"message": "hi", "sender": "bob"}),
    )
    .await;
    assert_eq!(status, 403, "nobody speaks as someone else: {body}");
    assert_eq!(body["error"]["code"], "sender_mismatch");
    let (status, body) = server.message("echo", "hi").await;
    assert_eq!(status, 200);
    assert_eq!(body["reply"]["receiver"], "user");
    // A message token talks and reads; it does not deploy or remove.
    let (status, _) = get_with(&server, "/api/v1/agents", &alice).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/api/v1/agents/echo",
        &[("authorization", &bearer(&alice))],
        None,
    )
    .await;
    assert_eq!(status, 403);
}

/// A server with the scripted LLM, agents from `files`, and `extra` YAML.
struct Scripted {
    guard: tempfile::TempDir,
    agents: PathBuf,
    server: Server,
}

impl Scripted {
    fn start(script: &str, files: &[(&str, &str)], extra: &str) -> Scripted {
        Scripted::start_with_agents(script, files, "", extra)
    }

    /// [`Scripted::start`] with `agents_extra` (indented lines) under
    /// `agents:` in the configuration.
    fn start_with_agents(
        script: &str,
        files: &[(&str, &str)],
        agents_extra: &str,
        extra: &str,
    ) -> Scripted {
        let (guard, data) = temp_data_dir();
        let root = guard.path().to_path_buf();
        let agents = root.join("agents");
        std::fs::create_dir_all(&agents).expect("agents dir");
        for (name, text) in files {
            std::fs::write(agents.join(name), text).expect("definition");
        }
        std::fs::write(root.join("script.yaml"), script).expect("script");
        let config = root.join("caxton.yaml");
        std::fs::write(
            &config,
            format!(
                "agents:\n  dir: {}\n{agents_extra}llm:\n  scripted:\n    script: {}\n    record: {}\n{extra}",
                agents.display(),
                root.join("script.yaml").display(),
                root.join("requests.jsonl").display(),
            ),
        )
        .expect("config");
        let server = Server::start_with_config(&data, Some(&config));
        Scripted {
            guard,
            agents,
            server,
        }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(self.guard.path().join("requests.jsonl")).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_never_reads_anothers_conversation() {
    let script = "- when: \"secret\"\n  content: \"noted\"\n- content: \"hello\"\n";
    let agent = "---\nname: Chat\nversion: \"1.0.0\"\ncapabilities: [chat]\nsystem_prompt: You chat.\n---\n";
    let setup = Scripted::start(script, &[("chat.md", agent)], "");
    let server = &setup.server;
    let mut tokens = Vec::new();
    for name in ["alice", "mallory"] {
        let (status, body) = server
            .post("/api/v1/tokens", &json!({"name": name, "scope": "message"}))
            .await;
        assert_eq!(status, 201, "{body}");
        tokens.push(body["token"].as_str().expect("token").to_string());
    }
    let said = |text: &str| json!({"message": text, "conversation_id": "shared-id"});
    let (status, body) = post_with(
        server,
        "/api/v1/agents/chat/message",
        &tokens[0],
        &said("my secret is 4711"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_with(
        server,
        "/api/v1/agents/chat/message",
        &tokens[1],
        &said("what did I say?"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let requests = setup.requests();
    let last = requests.lines().last().expect("two model calls recorded");
    assert!(last.contains("what did I say?"), "{last}");
    assert!(
        !last.contains("4711"),
        "mallory's turn must not carry alice's history: {last}"
    );
    // Alice's own next turn does carry it.
    let (status, _) = post_with(
        server,
        "/api/v1/agents/chat/message",
        &tokens[0],
        &said("and now?"),
    )
    .await;
    assert_eq!(status, 200);
    let requests = setup.requests();
    let last = requests.lines().last().expect("recorded");
    assert!(
        last.contains("4711"),
        "alice keeps her conversation: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_cannot_forge_metrics_lines() {
    // A line break in a name is refused outright (see
    // `display_names_are_one_line_of_bounded_text`); what a label still
    // escapes is its quotes and backslashes.
    let agent = "---\nname: 'Evil\\\" caxton_forged_metric{x=\"1'\nversion: \"1.0.0\"\ncapabilities: [evil]\nsystem_prompt: You are evil.\n---\n";
    let setup = Scripted::start("- content: ok\n", &[("evil.md", agent)], "");
    let (status, body) = setup.server.message("evil", "hi").await;
    assert_eq!(status, 200, "the agent runs (and is counted): {body}");
    let text = reqwest::get(setup.server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(r#"{agent="Evil\\\" caxton_forged_metric{x=\"1"}"#),
        "the name is in the label, its quotes and backslash escaped: {text}"
    );
    assert!(
        !text.contains(r#"caxton_forged_metric{x="1"#),
        "and never closes the label early: {text}"
    );
}

/// A web server that answers every request with a 307 to `location`.
async fn redirector(location: String) -> u16 {
    redirector_to(std::sync::Arc::new(std::sync::Mutex::new(location))).await
}

/// [`redirector`] to wherever `location` says at the time of the request.
async fn redirector_to(location: std::sync::Arc<std::sync::Mutex<String>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let location = location.lock().expect("location").clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_client_checks_every_redirect_hop() {
    // The agent's allowed domain redirects to the server's own shutdown.
    let agent = "---\nname: Fetcher\nversion: \"1.0.0\"\ncapabilities: [fetch]\ntools: [http_client]\nsystem_prompt: You fetch.\n---\n";
    let placeholder = "- content: unused\n";
    let setup = Scripted::start(
        placeholder,
        &[("fetcher.md", agent)],
        "tools:\n  http_allowed_domains: [localhost]\n  http_allow_private_addresses: true\n",
    );
    let port = setup
        .server
        .base
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let trap = redirector(format!("http://127.0.0.1:{port}/api/v1/shutdown")).await;
    let script = format!(
        "- when: \"fetch\"\n  tool_calls: [{{name: http_client, arguments: {{url: \"http://localhost:{trap}/data\", method: POST}}}}]\n- content: done\n"
    );
    std::fs::write(setup.guard.path().join("script.yaml"), script).expect("script");
    // The scripted provider reads its script at start: restart onto it.
    let Scripted {
        guard,
        agents,
        server,
    } = setup;
    let setup = Scripted {
        server: server.restart(),
        guard,
        agents,
    };
    let (status, body) = setup.server.message("fetcher", "fetch it").await;
    assert_eq!(status, 200, "{body}");
    alive(&setup.server).await;
    let requests = setup.requests();
    assert!(
        requests.contains("`127.0.0.1` is not an allowed domain"),
        "the redirect hop was checked and refused: {requests}"
    );
    assert!(setup.agents.is_dir());
}

fn cache_file(data: &Path, wasm: &Path) -> PathBuf {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(wasm).expect("wasm")));
    let dir = data.join("cache").join("components");
    std::fs::read_dir(&dir)
        .expect("cache dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&sha) && n.ends_with(".cwasm"))
        })
        .unwrap_or_else(|| panic!("no cache file for {} in {}", wasm.display(), dir.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_compile_cache_is_recompiled_never_run() {
    let (_guard, data) = temp_data_dir();
    let mut server = Server::start(&data);
    let echo = rust_example("echo");
    let counter = rust_example("counter");
    server.deploy("echo", &echo, json!({})).await;
    server.deploy("counter", &counter, json!({})).await;
    server.stop();

    // Another agent's native code where echo's should be.
    std::fs::copy(cache_file(&data, &counter), cache_file(&data, &echo)).expect("swap");
    let mut server = Server::start(&data);
    let (status, body) = server.message("echo", "still me").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reply"]["content"], "still me",
        "echo runs echo's code: {body}"
    );
    server.stop();

    // Garbage where a compiled component should be: no crash, a recompile.
    std::fs::write(cache_file(&data, &echo), b"\x7fELF not really").expect("damage");
    let server = Server::start(&data);
    let (status, body) = server.message("echo", "again").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["content"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_ids_are_unique_across_wasm_and_config_agents() {
    let helper = "---\nname: Helper\nversion: \"1.0.0\"\ncapabilities: [help]\nsystem_prompt: You help.\n---\n";
    let setup = Scripted::start(
        "- content: \"the real helper\"\n",
        &[("helper.md", helper)],
        "",
    );
    let echo = rust_example("echo");
    for name in ["helper", "Helper"] {
        let (status, body) = setup
            .server
            .post("/api/v1/agents", &deploy_body(name, &echo, json!({})))
            .await;
        assert_eq!(status, 409, "`{name}` is taken by the config agent: {body}");
    }
    let (status, body) = setup.server.message("helper", "who are you?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["content"], "the real helper");

    // A later file claiming the same name never displaces it, at a restart
    // either, even though its file name sorts first.
    std::thread::sleep(Duration::from_millis(1100));
    let impostor = helper.replace("You help.", "You impersonate.");
    std::fs::write(setup.agents.join("a-impostor.md"), impostor).expect("impostor");
    let Scripted {
        guard,
        agents,
        server,
    } = setup;
    let server = server.restart();
    let (status, body) = server.get("/api/v1/agents/Helper").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["id"], "helper",
        "the first file keeps the name: {body}"
    );
    drop((guard, agents));
}

/// Resident memory of a process, from /proc (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_and_removals_free_their_instances() {
    let agent = "---\nname: Steady\nversion: \"1.0.0\"\ncapabilities: [steady]\nsystem_prompt: You are steady.\n---\n";
    let setup = Scripted::start("- content: steady\n", &[("steady.md", agent)], "");
    let server = &setup.server;
    let pid = server.pid();
    let echo = rust_example("echo");
    let body = deploy_body("echo", &echo, json!({}));
    let warmup = 100;
    let rounds = 2000;
    let mut baseline = 0;
    let started = Instant::now();
    for round in 0..rounds {
        if round == warmup {
            baseline = rss_kib(pid);
        }
        let (status, reply) = server
            .post("/api/v1/agents/steady/reload", &json!({}))
            .await;
        assert_eq!(status, 200, "reload {round}: {reply}");
        let (status, reply) = server.post("/api/v1/agents", &body).await;
        assert_eq!(status, 201, "deploy {round}: {reply}");
        let (status, reply) = server.delete("/api/v1/agents/echo").await;
        assert_eq!(status, 200, "remove {round}: {reply}");
    }
    let after = rss_kib(pid);
    eprintln!(
        "{rounds} reloads + deploy/remove pairs in {:.1} s; RSS {baseline} KiB after {warmup}, {after} KiB after {rounds}",
        started.elapsed().as_secs_f64()
    );
    // Leaking one instance per round would be >= 64 KiB x 1,900 = 120 MB.
    assert!(
        after < baseline + 48 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB over {rounds} rounds"
    );
    // And the pool still has room: deploys and messages work.
    server.deploy("echo", &echo, json!({})).await;
    let (status, reply) = server.message("steady", "still there?").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["reply"]["content"], "steady");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_round_trip_with_a_generated_certificate() {
    let (guard, data) = temp_data_dir();
    let dir = guard.path();
    let (cert, key, ca) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("extensions");
    // A throw-away CA, and a leaf for localhost signed by it.
    let p256 = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for step in [
        format!("req -x509 {p256} -days 1 -subj /CN=caxton-test-ca -keyout ca.key -out ca.pem"),
        format!("req {p256} -subj /CN=localhost -keyout key.pem -out leaf.csr"),
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
         -extfile leaf.ext -out cert.pem"
            .to_string(),
    ] {
        let made = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(step.split_whitespace())
            .output()
            .expect("openssl is needed to make a test certificate (scripts/test installs it)");
        assert!(
            made.status.success(),
            "openssl {step}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let config = dir.join("caxton.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  tls:\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let pem = std::fs::read(&ca).expect("CA certificate");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("certificate"))
        .build()
        .expect("client");
    let health = client
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(health.status().as_u16(), 200);
    let agents = client
        .get(server.url("/api/v1/agents"))
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(
        agents.status().as_u16(),
        200,
        "the loopback operator over TLS"
    );
    // Plain HTTP on the TLS port gets no answer from the API.
    let plain = server.base.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .get(format!("{plain}/api/v1/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        answer.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP must not be served on the TLS port"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_keep_pool_slots_free_and_health_says_when_one_is_reached() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, "runtime:\n  max_agents: 2\n  max_tools: 0\n").expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let echo = rust_example("echo");
    server.deploy("one", &echo, json!({})).await;
    let (_, health) = server.get("/api/v1/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
    server.deploy("two", &echo, json!({})).await;
    let (_, health) = server.get("/api/v1/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap_or("")
            .contains("max_agents"),
        "{health}"
    );
    let (status, body) = server
        .post("/api/v1/agents", &deploy_body("three", &echo, json!({})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "agent_quota_reached");
    let (status, body) = server.delete("/api/v1/agents/one").await;
    assert_eq!(status, 200, "{body}");
    server.deploy("three", &echo, json!({})).await;
    let tool = std::fs::read(rust_example("word_stats")).expect("tool");
    let (status, body) = server
        .post_raw("/api/v1/tools", "application/wasm", tool)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "tool_quota_reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_with_thousands_of_stray_keys_is_refused_quickly() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let mut source = String::from(
        "---\nname: Stray\nversion: \"1.0.0\"\ncapabilities: [x]\nsystem_prompt: You.\n",
    );
    for i in 0..20_000 {
        source.push_str(&format!("k{i}: v\n"));
    }
    source.push_str("---\n");
    let started = Instant::now();
    let (status, body) = server
        .post(
            "/api/v1/config-agents/validate",
            &json!({"file": "stray.md", "source": source}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false);
    let problems = body["problems"].as_array().expect("problems");
    assert!(
        problems.len() <= 25,
        "listed one by one only up to the cap: {}",
        problems.len()
    );
    assert!(
        problems.iter().any(|p| p["message"]
            .as_str()
            .unwrap_or("")
            .contains("20000 unknown fields")),
        "{body}"
    );
    // It took 85 s before the cap; anything near that means the cap is gone.
    assert!(took < Duration::from_secs(10), "validation took {took:?}");
    alive(&server).await;
    // Over the size cap: refused before parsing.
    let huge = format!("{source}{}", "x".repeat(300 * 1024));
    let (status, body) = server
        .post(
            "/api/v1/config-agents/validate",
            &json!({"file": "huge.md", "source": huge}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["problems"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("the limit is"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_start_holds_no_lock_over_other_agents() {
    let (_guard, data) = temp_data_dir();
    let server = std::sync::Arc::new(Server::start(&data));
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let mut slow = deploy_body(
        "slow",
        &rust_example("misbehave"),
        json!({"max_execution_time_ms": 10000, "max_fuel": 100_000_000_000u64}),
    );
    slow["config"] = json!({"spin_in_init": true});
    let deploying = {
        let server = server.clone();
        tokio::spawn(async move { server.post("/api/v1/agents", &slow).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While the guest's init spins, another agent is suspended and resumed.
    let started = Instant::now();
    let (status, body) = server.post("/api/v1/agents/echo/suspend", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.post("/api/v1/agents/echo/resume", &json!({})).await;
    assert_eq!(status, 200);
    let waited = started.elapsed();
    // The init spins for 10 s: suspend and resume came back while it was
    // still spinning, so they did not wait for it.
    assert!(
        !deploying.is_finished(),
        "suspend and resume waited {waited:?}, until another agent's init had ended"
    );
    let (status, body) = deploying.await.expect("deploy task");
    assert_eq!(
        status, 422,
        "the slow start fails on its own time limit: {body}"
    );
    let (status, _) = server.message("echo", "still here").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_agent_spends_the_llm_only_when_granted() {
    let setup = Scripted::start("- content: \"from the model\"\n", &[], "");
    let server = &setup.server;
    let wasm = rust_example("ask_llm");
    server.deploy("ungranted", &wasm, json!({})).await;
    let (status, body) = server.message("ungranted", "hello?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "failure", "{body}");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("may not use the LLM"),
        "{body}"
    );
    assert!(setup.requests().is_empty(), "the model was never called");

    let mut granted = deploy_body("granted", &wasm, json!({}));
    granted["llm"] = json!(true);
    let (status, body) = server.post("/api/v1/agents", &granted).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["llm"], true, "{body}");
    let (status, body) = server.message("granted", "hello?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["content"], "from the model", "{body}");
}

/// Reads from `stream` until the server closes it; `None` if it is still
/// open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_connection_floods_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(
        &config,
        "server:\n  header_read_timeout_secs: 8\n  body_read_timeout_secs: 2\n  max_connections: 6\n",
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let address = server.url("").trim_start_matches("http://").to_string();
    let address = address.trim_end_matches('/').to_string();

    // Headers that never end: the connection is closed after the timeout.
    let started = Instant::now();
    let mut head = TcpStream::connect(&address).await.expect("connect");
    head.write_all(b"GET /api/v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        .await
        .expect("write");
    assert!(
        closed_within(&mut head, Duration::from_secs(30))
            .await
            .is_some(),
        "a connection whose headers never end is still open after 30 s"
    );
    assert!(started.elapsed() >= Duration::from_millis(7500));

    // A body that never arrives: 408 after the body timeout.
    let mut body = TcpStream::connect(&address).await.expect("connect");
    body.write_all(
        b"POST /api/v1/memory/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":",
    )
    .await
    .expect("write");
    let answer = closed_within(&mut body, Duration::from_secs(10))
        .await
        .expect("a body that never ends is still awaited after 10 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout_secs"), "{answer}");

    // Idle connections holding every slot do not lock anyone out: the
    // oldest idle one is closed to make room for a newcomer.
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(TcpStream::connect(&address).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::new();
    let response = tokio::time::timeout(
        Duration::from_secs(6),
        fresh.get(server.url("/api/v1/health")).send(),
    )
    .await
    .expect("a request beyond max_connections is answered while the others idle")
    .expect("served");
    assert_eq!(response.status(), 200);
    let mut shed = 0;
    for stream in &mut idle {
        if closed_within(stream, Duration::from_millis(200))
            .await
            .is_some()
        {
            shed += 1;
        }
    }
    assert!(shed >= 1, "no idle connection was closed to make room");
}

/// Issue 25.6: another local account holding its share of busy
/// connections is refused more, while the operator is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_another_account_leaves_the_operator_served() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(
        &config,
        "server:\n  body_read_timeout_secs: 40\n  max_connections: 6\n  max_connections_per_peer: 3\n",
    )
    .expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let port = server.base.rsplit(':').next().expect("port").to_string();
    let token = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    // As `nobody`: three requests whose bodies never finish (busy, with a
    // token, so the server waits for the bodies), held for 30 s.
    let script = format!(
        "for fd in 3 4 5; do eval \"exec $fd<>/dev/tcp/127.0.0.1/{port}\"; \
         printf 'POST /api/v1/memory/search HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nAuthorization: Bearer {token}\\r\\nContent-Type: application/json\\r\\nContent-Length: 100\\r\\n\\r\\n{{' >&$fd; done; echo held; sleep 30",
        token = token.trim()
    );
    let _ = curl_as_nobody(&[&server.url("/api/v1/health")]); // fails loudly unless root
    let mut flood = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-c",
            &script,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv bash");
    // Probe only once the three requests are sent, and give the server a
    // moment to read their headers: a probe that arrives while one of them
    // is still an idle connection makes the server close that one to make
    // room (as it should), and the flood is then one connection short.
    let mut held = String::new();
    let stdout = flood.stdout.take().expect("the flood's stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut held)
        .expect("the flood says when its requests are sent");
    assert_eq!(held.trim(), "held", "the flood script failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Once the three are held, a fourth connection of nobody's is refused.
    let started = Instant::now();
    loop {
        let code = curl_as_nobody(&["--max-time", "5", &server.url("/api/v1/health")]);
        if code == "000" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nobody's fourth connection is still served ({code})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The operator: idle connections of its own and a request, all served.
    let mut own = Vec::new();
    for _ in 0..3 {
        own.push(
            tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
                .await
                .expect("connect"),
        );
    }
    let (status, _) = server.get("/api/v1/agents").await;
    assert_eq!(
        status, 200,
        "the operator is served while another account floods"
    );
    let _ = flood.kill();
    let _ = flood.wait();
}

/// `curl` run as the unprivileged `nobody` account (65534), answering the
/// status code. The suite runs as root (CI does); anything else cannot
/// switch accounts, and says so rather than passing.
fn curl_as_nobody(args: &[&str]) -> String {
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "this test acts as another local account with setpriv, which needs root; run the suite as root (CI does)"
    );
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .expect("setpriv and curl are installed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Issue 25.1: a tokenless loopback request is the operator only when its
/// connection belongs to the server's own user; another account gets 401
/// (and can read nothing in `data/`), while the owner's tokenless calls
/// and anyone's token keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_account_is_not_the_operator() {
    use std::os::unix::fs::PermissionsExt;
    let (guard, data) = temp_data_dir();
    // Only data/'s own modes may stand between `nobody` and its files.
    std::fs::set_permissions(guard.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = Server::start_with_config(&data, None);
    let (status, _) = server.get("/api/v1/agents").await;
    assert_eq!(status, 200, "the owner's tokenless call still works");

    for path in ["/api/v1/agents", "/api/v1/backup", "/api/v1/debug/state"] {
        assert_eq!(
            curl_as_nobody(&[&server.url(path)]),
            "401",
            "GET {path} as nobody"
        );
    }
    assert_eq!(
        curl_as_nobody(&["-X", "POST", &server.url("/api/v1/shutdown")]),
        "401"
    );
    assert_eq!(curl_as_nobody(&[&server.url("/api/v1/health")]), "200");
    let token = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let auth = format!("Authorization: Bearer {}", token.trim());
    assert_eq!(
        curl_as_nobody(&["-H", &auth, &server.url("/api/v1/agents")]),
        "200",
        "a token is a token, whoever sends it"
    );
    alive(&server).await;

    // Nothing in data/ is readable by anyone but the server's user.
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data/ itself");
    let mut stack = vec![data.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            assert_eq!(
                mode(&path) & 0o077,
                0,
                "{} is open to others",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    let read = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(data.join("admin.token"))
        .output()
        .expect("setpriv");
    assert!(!read.status.success(), "nobody read the admin token");
}

/// Issue 25.4: with private addresses allowed, an agent's `http_client`
/// still cannot reach the server's own API (here through a redirect that
/// would shut it down), and a request it makes is never the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_cannot_be_reached_through_its_own_tools() {
    let agent = "---\nname: Fetcher\nversion: \"1.0.0\"\ncapabilities: [fetch]\ntools: [http_client]\nsystem_prompt: You fetch.\n---\n";
    let setup = Scripted::start(
        "- content: unused\n",
        &[("fetcher.md", agent)],
        "tools:\n  http_allowed_domains: [localhost, 127.0.0.1]\n  http_allow_private_addresses: true\n",
    );
    let location = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let trap = redirector_to(location.clone()).await;
    let script = format!(
        "- when: \"fetch\"\n  tool_calls: [{{name: http_client, arguments: {{url: \"http://localhost:{trap}/data\", method: POST}}}}]\n- content: done\n"
    );
    std::fs::write(setup.guard.path().join("script.yaml"), script).expect("script");
    let Scripted {
        guard,
        agents,
        server,
    } = setup;
    let setup = Scripted {
        server: server.restart(),
        guard,
        agents,
    };
    *location.lock().expect("location") = setup.server.url("/api/v1/shutdown");
    let (status, body) = setup.server.message("fetcher", "fetch it").await;
    assert_eq!(status, 200, "{body}");
    alive(&setup.server).await;
    let requests = setup.requests();
    assert!(
        requests.contains("where this Caxton server itself listens"),
        "the hop to the server's own address was refused: {requests}"
    );

    // The mark alone keeps a request from being the operator.
    let (status, body) = call(
        &setup.server,
        Method::GET,
        "/api/v1/agents",
        &[("caxton-agent-request", "1")],
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("agent's tool"), "{body}");
}

/// The smallest config agent, `chat`, for the conversation tests.
const CHAT_AGENT: &str =
    "---\nname: Chat\nversion: \"1.0.0\"\ncapabilities: [chat]\nsystem_prompt: You chat.\n---\n";

/// Says `text` to the `chat` agent in conversation `id`, as the operator.
async fn say(server: &Server, id: &str, text: &str) {
    let (status, body) = server
        .post(
            "/api/v1/agents/chat/message",
            &json!({"message": text, "conversation_id": id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The last request the scripted model received.
fn last_request(setup: &Scripted) -> String {
    setup
        .requests()
        .lines()
        .last()
        .expect("a model call recorded")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_agent_can_take_the_operators_name() {
    let setup = Scripted::start("- content: noted\n", &[("chat.md", CHAT_AGENT)], "");
    let server = &setup.server;
    say(server, "shared-id", "my secret is 4711").await;
    // Agents know the operator as the sender `user`: a token of that name
    // (or of the server's other sender names) would be the operator to them.
    for name in ["user", "User", "operator", "system", "metrics"] {
        let (status, body) = server
            .post("/api/v1/tokens", &json!({"name": name, "scope": "message"}))
            .await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token_name", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("reserved") && m.contains("choose another name")),
            "{body}"
        );
    }
    // Nor may a token take an agent's name (or id), or an agent a token's.
    for name in ["chat", "Chat"] {
        let (status, body) = server
            .post("/api/v1/tokens", &json!({"name": name, "scope": "message"}))
            .await;
        assert_eq!(status, 409, "{name}: {body}");
        assert_eq!(body["error"]["code"], "token_name_conflict", "{body}");
    }
    let (status, created) = server
        .post(
            "/api/v1/tokens",
            &json!({"name": "alice", "scope": "message"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let alice = created["token"].as_str().expect("token").to_string();
    for (name, code) in [("user", 400), ("alice", 409)] {
        let (status, body) = server
            .post(
                "/api/v1/agents",
                &deploy_body(name, &rust_example("echo"), json!({})),
            )
            .await;
        assert_eq!(status, code, "{name}: {body}");
    }
    // A config agent is not `user` either, by file name or by name.
    for (file, name) in [("user.md", "Helper"), ("helper.md", "USER")] {
        let source = CHAT_AGENT.replace("name: Chat", &format!("name: {name}"));
        let (status, body) = server
            .post(
                "/api/v1/config-agents",
                &json!({"file": file, "source": source}),
            )
            .await;
        assert_eq!(status, 400, "{file}: {body}");
        assert!(body.to_string().contains("reserved"), "{body}");
    }
    // So whoever holds a message token, the operator's conversation stays
    // the operator's.
    let (status, body) = post_with(
        server,
        "/api/v1/agents/chat/message",
        &alice,
        &json!({"message": "what did I say?", "conversation_id": "shared-id"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let last = last_request(&setup);
    assert!(!last.contains("4711"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_names_are_one_line_of_bounded_text() {
    let setup = Scripted::start("- content: ok\n", &[], "");
    let server = &setup.server;
    let long = "N".repeat(129);
    // YAML escapes, so each character arrives as itself.
    for (name, says) in [
        (
            r#""Evil\ncaxton_forged_metric 1""#,
            "a line break (U+000A) at character 5",
        ),
        (r#""Evil\rX""#, "a line break (U+000D)"),
        (r#""Evil\u0085X""#, "a line break (U+0085)"),
        (r#""Evil\u2028X""#, "a line break (U+2028)"),
        (r#""Evil\tX""#, "a tab (U+0009)"),
        (r#""Evil\u001B[2KX""#, "a control character (U+001B)"),
        (
            r#""Admin\u202Enimda""#,
            "a bidirectional-text control (U+202E)",
        ),
        (long.as_str(), "129 characters long; the limit is 128"),
    ] {
        let source = CHAT_AGENT.replace("name: Chat", &format!("name: {name}"));
        let (status, body) = server
            .post(
                "/api/v1/config-agents",
                &json!({"file": "evil.md", "source": source}),
            )
            .await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["code"], "invalid_agent_definition");
        let problems = body["error"]["details"]["problems"].to_string();
        assert!(
            problems.contains(says) && problems.contains(r#""field":"name""#),
            "{name}: {problems}"
        );
        assert!(
            problems.contains("one line"),
            "it says how to fix it: {problems}"
        );
    }
    let forged = CHAT_AGENT.replace(
        "capabilities",
        "description: \"Helps.\\nERROR forged log line\"\ncapabilities",
    );
    let (status, body) = server
        .post(
            "/api/v1/config-agents",
            &json!({"file": "evil.md", "source": forged}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["details"]["problems"]
            .to_string()
            .contains(r#""field":"description""#),
        "{body}"
    );
    // A folded description ends in a newline; that one is fine.
    let folded = CHAT_AGENT.replace(
        "capabilities",
        "description: >\n  Helps with\n  many things.\ncapabilities",
    );
    let (status, body) = server
        .post(
            "/api/v1/config-agents",
            &json!({"file": "chat.md", "source": folded}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A web server on loopback that records the head of each request it gets
/// and answers `{"agents": []}`.
fn recording_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let body = r#"{"agents":[],"total":0}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_the_found_admin_token_only_to_its_own_server() {
    let (guard, data) = temp_data_dir();
    let config = guard.path().join("caxton.yaml");
    std::fs::write(&config, "auth:\n  required: true\n").expect("config");
    let server = Server::start_with_config(&data, Some(&config));
    let data_env = [("CAXTON_DATA_DIR", data.to_str().expect("utf-8 path"))];
    // Its own server gets the token found in the data directory.
    let (ok, out, err) = server.cli_with_env(&["agents", "list"], &data_env);
    assert!(ok, "{out}{err}");

    let (port, heads) = recording_server();
    let elsewhere = format!("http://127.0.0.1:{port}");
    let cli = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caxton"))
            .args(["--server", &elsewhere])
            .args(extra)
            .args(["agents", "list"])
            .env_remove("CAXTON_TOKEN")
            .env("CAXTON_DATA_DIR", &data)
            .output()
            .expect("run the caxton CLI")
    };
    // A `--server` elsewhere does not.
    let output = cli(&[]);
    let head = heads
        .recv_timeout(Duration::from_secs(30))
        .expect("the CLI asked the other server");
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "the admin token went to another server: {head}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not sending the admin token") && stderr.contains(&server.base),
        "the CLI says why, and whose token it is: {stderr}"
    );
    // A token given explicitly goes where it is told.
    let _ = cli(&["--token", "cxt_given"]);
    let head = heads
        .recv_timeout(Duration::from_secs(30))
        .expect("the CLI asked the other server");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer cxt_given"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_capped_per_agent_and_in_bytes() {
    let setup = Scripted::start_with_agents(
        "- content: noted\n",
        &[("chat.md", CHAT_AGENT)],
        "  conversations:\n    max_per_agent: 2\n    max_bytes: 2000\n",
        "",
    );
    let server = &setup.server;
    // Three conversations where two are kept: the least recently used
    // one is forgotten.
    say(server, "c1", "my secret is 4711").await;
    say(server, "c2", "note two").await;
    say(server, "c3", "note three").await;
    say(server, "c1", "what did I say?").await;
    let last = last_request(&setup);
    assert!(last.contains("what did I say?"), "{last}");
    assert!(!last.contains("4711"), "c1 was evicted: {last}");
    say(server, "c3", "and here?").await;
    let last = last_request(&setup);
    assert!(last.contains("note three"), "c3 was kept: {last}");

    // A turn larger than a conversation may hold is not kept; the next
    // ones are.
    say(server, "c4", &format!("secret 5150 {}", "x".repeat(3000))).await;
    say(server, "c4", "short").await;
    let last = last_request(&setup);
    assert!(!last.contains("5150"), "{last}");
    say(server, "c4", "again").await;
    let last = last_request(&setup);
    assert!(last.contains("short"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_unused_past_their_time_to_live_are_forgotten() {
    let setup = Scripted::start_with_agents(
        "- content: noted\n",
        &[("chat.md", CHAT_AGENT)],
        "  conversations:\n    ttl_secs: 2\n",
        "",
    );
    let server = &setup.server;
    say(server, "fresh", "remember 1234").await;
    say(server, "fresh", "what was it?").await;
    let last = last_request(&setup);
    assert!(last.contains("1234"), "kept while in use: {last}");
    say(server, "stale", "my secret is 4711").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    say(server, "stale", "what did I say?").await;
    let last = last_request(&setup);
    assert!(last.contains("what did I say?"), "{last}");
    assert!(!last.contains("4711"), "expired: {last}");
}

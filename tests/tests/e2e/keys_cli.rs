//! The `agentflow-api keys` CLI against a real api process: a key minted on the command line
//! works, a reader's key cannot write, a revoked key is refused within the reload interval,
//! bad input is refused naming the problem; and the api's logs, at trace level, carry no key,
//! token, token secret or session cookie.

use agentflow_api::auth::keys::{read_file, sha256_hex};
use agentflow_shared::config::DEFAULT_CONFIG;
use agentflow_shared::security::Scope;
use agentflow_tests::binaries::workspace_binary;
use agentflow_tests::files::Scratch;
use agentflow_tests::harness::test_config;
use agentflow_tests::requests::{TASKS, keyed};
use agentflow_tests::server::temporal_address;
use agentflow_tests::{TestApp, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory for one test's keys file, config and logs (removed when dropped).
fn temp_dir() -> Scratch {
    Scratch::dir("keys-cli")
}

/// `agentflow-api <args>` in `dir`, with no `AGENTFLOW_…` variable of the test's environment.
async fn cli(dir: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(workspace_binary("agentflow-api"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTFLOW_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running agentflow-api")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `keys mint --file keys.toml` in `dir`; returns the key (checked to be stdout's only line).
async fn mint(dir: &Path, identity: &str, tenant: &str, scopes: &[&str]) -> String {
    let mut args = vec![
        "keys",
        "mint",
        "--file",
        "keys.toml",
        "--identity",
        identity,
        "--tenant",
        tenant,
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let output = cli(dir, &args).await;
    assert!(output.status.success(), "mint failed: {}", stderr(&output));
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is exactly the key: {out:?}");
    assert!(out.ends_with('\n'), "{out:?}");
    let key = lines[0].to_owned();
    assert!(key.starts_with("af_"), "{key}");
    assert!(
        !stderr(&output).contains(&key),
        "the key is printed on stdout only"
    );
    key
}

/// The id part of a key `af_<id>_<secret>`.
fn key_id(key: &str) -> &str {
    key.strip_prefix("af_").unwrap().split('_').next().unwrap()
}

/// The secret part of a key `af_<id>_<secret>`.
fn key_secret(key: &str) -> &str {
    key.strip_prefix("af_").unwrap().split_once('_').unwrap().1
}

/// `keys list --file keys.toml`: (stdout, its lines split at tabs).
async fn list(dir: &Path) -> (String, Vec<Vec<String>>) {
    let output = cli(dir, &["keys", "list", "--file", "keys.toml"]).await;
    assert!(output.status.success(), "list failed: {}", stderr(&output));
    let out = stdout(&output);
    let rows = out
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect();
    (out, rows)
}

/// The `keys list` row of key `id`.
fn row<'r>(rows: &'r [Vec<String>], id: &str) -> &'r [String] {
    rows.iter()
        .find(|row| row[0] == id)
        .unwrap_or_else(|| panic!("no row for key {id}: {rows:?}"))
}

/// The api binary as a process with auth on, the keys file of `dir`, the task queue and bus of
/// `app`, its stdout and stderr in `dir/api.out` and `dir/api.err`.
struct ApiProcess {
    child: tokio::process::Child,
    base_url: String,
    http: reqwest::Client,
    out: PathBuf,
    err: PathBuf,
}

impl ApiProcess {
    async fn start(dir: &Path, app: &TestApp, token_secret: &str, rust_log: &str) -> Self {
        let config = dir.join("agentflow.toml");
        std::fs::write(&config, DEFAULT_CONFIG).unwrap();
        let out = dir.join("api.out");
        let err = dir.join("api.err");
        let mut command = tokio::process::Command::new(workspace_binary("agentflow-api"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AGENTFLOW_") {
                command.env_remove(name);
            }
        }
        command
            .arg(&config)
            .current_dir(dir)
            .env("TEMPORAL_ADDRESS", temporal_address())
            .env("TEMPORAL_NAMESPACE", "default")
            .env("AGENTFLOW_API__LISTEN", "127.0.0.1:0")
            .env("AGENTFLOW_AUTH__ENABLED", "true")
            .env("AGENTFLOW_AUTH__KEYS_FILE", dir.join("keys.toml"))
            .env("AGENTFLOW_AUTH__KEYS_RELOAD_MS", "50")
            .env(
                "AGENTFLOW_AUTH__TOKEN_SECRETS",
                format!("[\"{token_secret}\"]"),
            )
            .env(
                "AGENTFLOW_WORKER__TASK_QUEUE",
                &app.config.worker.task_queue,
            )
            .env("AGENTFLOW_BUS__URL", &app.config.bus.url)
            .env(
                "AGENTFLOW_BUS__HEARTBEAT_MS",
                app.config.bus.heartbeat_ms.to_string(),
            )
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .kill_on_drop(true);
        let mut api = Self {
            child: command.spawn().expect("starting agentflow-api"),
            base_url: String::new(),
            http: reqwest::Client::new(),
            out,
            err,
        };
        // It prints `agentflow api on http://127.0.0.1:<port>` once it serves.
        let deadline = Instant::now() + Duration::from_secs(60);
        api.base_url = loop {
            let logs = api.logs();
            if let Some(at) = logs.find("agentflow api on http://") {
                let rest = &logs[at + "agentflow api on ".len()..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '\u{1b}')
                    .unwrap_or(rest.len());
                break rest[..end].to_owned();
            }
            if let Ok(Some(status)) = api.child.try_wait() {
                panic!("the api exited ({status}) before serving:\n{logs}");
            }
            assert!(
                Instant::now() < deadline,
                "the api did not serve within 60 s:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (status, _) = api.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(status, 200);
        api
    }

    /// Everything the process wrote (stdout, then stderr), without terminal escapes.
    fn logs(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        strip_escapes(&format!("{}{}", read(&self.out), read(&self.err)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request with (or without) a bearer key and a JSON body → (status, JSON body or null).
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, _, body) = keyed(&self.http, method, self.url(path), key, body).await;
        (status, body)
    }

    /// `GET path` as `key` until it answers `status` (the keys file is re-read every 50 ms);
    /// panics after 10 s.
    async fn until_status(&self, path: &str, key: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (got, body) = self.call(Method::GET, path, Some(key), None).await;
            if got == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} still {got} (not {status}) after 10 s: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a task of the assistant as `key` (running `query`, if any); returns its id.
    async fn create(&self, key: &str, query: Option<&str>) -> String {
        let body = json!({"description": "keys cli", "query": query});
        let (status, task) = self.call(Method::POST, TASKS, Some(key), Some(&body)).await;
        assert_eq!(status, 201, "{task}");
        task["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the task's GET says `status` (as `key`).
    async fn wait_status(&self, key: &str, task: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = self
                .call(Method::GET, &format!("{TASKS}/{task}"), Some(key), None)
                .await;
            assert_eq!(code, 200, "{body}");
            if body["status"] == status {
                return;
            }
            assert!(Instant::now() < deadline, "task never {status}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for the process to exit (it must, within 30 s).
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("the api is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM {pid}");
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the api exits within 30 s of SIGTERM")
            .expect("waiting for the api");
        let logs = self.logs();
        assert!(exit.success(), "the api exited with {exit}:\n{logs}");
        logs
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A token secret of this test only (so finding it in a log cannot be a coincidence).
fn token_secret() -> String {
    format!("token-secret-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_keys_cli_mints_lists_and_revokes_and_a_running_api_follows() {
    let dir = temp_dir();
    let keys_file = dir.join("keys.toml");

    // Mint: the key once on stdout; the file holds its hash, never the key.
    let key = mint(
        &dir,
        "ops",
        "acme",
        &[Scope::TasksRead.as_str(), Scope::TasksWrite.as_str()],
    )
    .await;
    let id = key_id(&key).to_owned();
    let text = std::fs::read_to_string(&keys_file).unwrap();
    assert!(text.contains(&sha256_hex(&key)), "{text}");
    assert!(!text.contains(&key), "the key is in the keys file");
    assert!(
        !text.contains(key_secret(&key)),
        "the key's secret is in the keys file"
    );
    let stored = read_file(&keys_file).unwrap();
    assert_eq!(stored.keys.len(), 1);
    let record = &stored.keys[0];
    assert_eq!(
        (
            record.id.0.as_str(),
            record.identity.as_str(),
            record.tenant.as_str()
        ),
        (id.as_str(), "ops", "acme")
    );
    assert_eq!(record.scopes, vec![Scope::TasksRead, Scope::TasksWrite]);
    assert_eq!(record.sha256, sha256_hex(&key));
    assert!(record.revoked_at.is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the keys file is owner-only: {mode:o}");
    }

    // List: id, identity, tenant, scopes, state; never the key.
    let (out, rows) = list(&dir).await;
    assert!(
        !out.contains(&key) && !out.contains(key_secret(&key)),
        "{out}"
    );
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(
        row(&rows, &id),
        [&id, "ops", "acme", "tasks:read,tasks:write", "active"]
    );

    // A real api process with auth on and this keys file; a worker on its task queue.
    let mut app = spawn_app_with(test_config(), true).await;
    let api = ApiProcess::start(&dir, &app, &token_secret(), "info").await;
    let (status, agents) = api
        .call(Method::GET, "/api/v1/agents", Some(&key), None)
        .await;
    assert_eq!(status, 200, "{agents}");
    assert!(agents.to_string().contains("assistant"), "{agents}");
    let task = api.create(&key, Some("Hello")).await;
    api.wait_status(&key, &task, "completed").await;
    let (status, _) = api.call(Method::GET, "/api/v1/agents", None, None).await;
    assert_eq!(status, 401, "no key");

    // A second key, read-only: it reads (once the api has re-read the file) but cannot create.
    let reader = mint(&dir, "viewer", "acme", &["tasks:read"]).await;
    assert_ne!(reader, key);
    api.until_status("/api/v1/agents", &reader, 200).await;
    let (status, problem) = api
        .call(
            Method::POST,
            TASKS,
            Some(&reader),
            Some(&json!({"description": "reader"})),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("tasks:write"),
        "{problem}"
    );
    let (status, _) = api
        .call(Method::GET, &format!("{TASKS}/{task}"), Some(&reader), None)
        .await;
    assert_eq!(status, 200, "same tenant: the reader sees the task");

    // Revoke the first key: refused within a bounded wait; the other key is untouched.
    let output = cli(&dir, &["keys", "revoke", &id, "--file", "keys.toml"]).await;
    assert!(
        output.status.success(),
        "revoke failed: {}",
        stderr(&output)
    );
    assert!(stderr(&output).contains(&id), "{}", stderr(&output));
    api.until_status("/api/v1/agents", &key, 401).await;
    let (status, _) = api
        .call(
            Method::POST,
            TASKS,
            Some(&key),
            Some(&json!({"description": "revoked"})),
        )
        .await;
    assert_eq!(status, 401, "a revoked key cannot create either");
    let (status, _) = api
        .call(Method::GET, "/api/v1/agents", Some(&reader), None)
        .await;
    assert_eq!(status, 200, "the other key still works");
    let (out, rows) = list(&dir).await;
    assert_eq!(rows.len(), 2, "{out}");
    let revoked = row(&rows, &id);
    assert!(revoked[4].starts_with("revoked "), "{out}");
    assert_eq!(
        row(&rows, key_id(&reader)),
        [key_id(&reader), "viewer", "acme", "tasks:read", "active"]
    );
    assert!(!out.contains(&key) && !out.contains(&reader), "{out}");

    // A key may also be revoked by the key itself (`af_<id>_…`).
    let output = cli(&dir, &["keys", "revoke", &reader, "--file", "keys.toml"]).await;
    assert!(
        output.status.success(),
        "revoke failed: {}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains(&reader)
            && !String::from_utf8_lossy(&output.stdout).contains(&reader),
        "revoking by the key must not print the key: {}",
        stderr(&output)
    );
    api.until_status("/api/v1/agents", &reader, 401).await;
    let (out, rows) = list(&dir).await;
    assert!(
        row(&rows, key_id(&reader))[4].starts_with("revoked "),
        "{out}"
    );
    assert_eq!(row(&rows, &id), revoked, "the first key's row is unchanged");

    // Bad input: refused, naming the problem, and the file is left as it was.
    let before = std::fs::read_to_string(&keys_file).unwrap();
    let refusals: [(&[&str], &[&str]); 6] = [
        (
            &[
                "--identity",
                "x",
                "--tenant",
                "acme",
                "--scope",
                "tasks:delete",
            ],
            &["tasks:delete", "not a scope"],
        ),
        (
            &[
                "--identity",
                "x",
                "--tenant",
                "Acme!",
                "--scope",
                "tasks:read",
            ],
            &["Acme!", "tenant"],
        ),
        (
            &[
                "--identity",
                "no spaces",
                "--tenant",
                "acme",
                "--scope",
                "admin",
            ],
            &["identity must be"],
        ),
        (&["--identity", "x", "--tenant", "acme"], &["--scope"]),
        (
            &["--tenant", "acme", "--scope", "tasks:read"],
            &["--identity"],
        ),
        (
            &["--identity", "x", "--tenant", "", "--scope", "admin"],
            &["tenant"],
        ),
    ];
    for (args, named) in refusals {
        let mut full = vec!["keys", "mint", "--file", "keys.toml"];
        full.extend_from_slice(args);
        let output = cli(&dir, &full).await;
        let message = stderr(&output);
        assert!(!output.status.success(), "{full:?} succeeded");
        assert!(stdout(&output).is_empty(), "{full:?} printed a key");
        for word in named {
            assert!(message.contains(word), "{full:?}: {message}");
        }
    }
    let output = cli(&dir, &["keys", "revoke", "nope", "--file", "keys.toml"]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no key with id `nope`"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&keys_file).unwrap(), before);
    let output = cli(&dir, &["keys", "list", "--file", "missing/keys.toml"]).await;
    assert!(output.status.success(), "a missing file has no keys");
    assert!(stdout(&output).is_empty());

    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_tokens_never_reach_the_logs() {
    let dir = temp_dir();
    let key = mint(&dir, "ops", "acme", &["tasks:read", "tasks:write"]).await;
    let reader = mint(&dir, "viewer", "acme", &["tasks:read"]).await;
    let secret = token_secret();
    let mut app = spawn_app_with(test_config(), true).await;
    let api = ApiProcess::start(&dir, &app, &secret, "trace").await;
    // Secrets that must not reach the logs, by name.
    let mut secrets: Vec<(&str, String)> = vec![
        ("the key", key.clone()),
        ("the key's secret", key_secret(&key).to_owned()),
        ("the reader's key", reader.clone()),
        ("the token secret", secret.clone()),
    ];

    // Bearer keys: good, forged (a known id, another secret), unknown, not Bearer.
    let (status, _) = api
        .call(Method::GET, "/api/v1/agents", Some(&key), None)
        .await;
    assert_eq!(status, 200);
    let forged_key = format!("af_{}_{}", key_id(&key), "F".repeat(43));
    let unknown_key = format!("af_0123456789_{}", uuid::Uuid::new_v4().simple());
    for bad in [&forged_key, &unknown_key] {
        let (status, _) = api
            .call(Method::GET, "/api/v1/agents", Some(bad), None)
            .await;
        assert_eq!(status, 401, "{bad}");
    }
    let response = api
        .http
        .get(api.url("/api/v1/agents"))
        .header("authorization", format!("Token {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    secrets.push(("a forged key", forged_key.clone()));
    secrets.push(("an unknown key", unknown_key.clone()));

    // The page's session: a good key (the cookie), a bad one, a body with more than the key.
    let response = api
        .http
        .post(api.url("/api/v1/session"))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let session = cookie
        .strip_prefix("agentflow_session=")
        .expect("the session cookie")
        .to_owned();
    assert!(session.len() > 20, "{set_cookie}");
    secrets.push(("the session cookie", session.clone()));
    for (body, expected) in [
        (json!({"key": forged_key}), 401),
        (json!({"key": unknown_key}), 401),
        (json!({"key": key, "remember": true}), 422),
    ] {
        let (status, problem) = api
            .call(Method::POST, "/api/v1/session", None, Some(&body))
            .await;
        assert_eq!(status, expected, "{body}: {problem}");
    }
    let response = api
        .http
        .get(api.url("/api/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the cookie admits");
    let forged_session = format!("{session}x");
    let response = api
        .http
        .get(api.url("/api/v1/session"))
        .header("cookie", format!("agentflow_session={forged_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "a forged cookie does not");
    secrets.push(("a forged session cookie", forged_session));

    // A task, a stream token, and the token on both events routes (and where it is refused).
    let task = api.create(&key, Some("Hello")).await;
    api.wait_status(&key, &task, "completed").await;
    let (status, minted) = api
        .call(
            Method::POST,
            &format!("{TASKS}/{task}/stream-token"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let signature = token.split_once('.').unwrap().1.to_owned();
    secrets.push(("the stream token", token.clone()));
    secrets.push(("the stream token's signature", signature.clone()));
    let stream_url = api.url(&format!(
        "{TASKS}/{task}/events/stream?after=0&access_token={token}"
    ));
    let received = agentflow_tests::sse::read(&api.http, &stream_url, None, usize::MAX).await;
    assert_eq!(received.status, 200);
    assert!(received.ended, "the stream of a completed task ends");
    assert_eq!(
        received.events.last().map(|e| e.type_name()),
        Some("WorkflowCompleted")
    );
    let page_url = api.url(&format!("{TASKS}/{task}/events?access_token={token}"));
    let response = api.http.get(&page_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let forged_token = format!("{}.{}", token.split_once('.').unwrap().0, "A".repeat(43));
    secrets.push(("a forged token", forged_token.clone()));
    let refused = [
        format!("{TASKS}/{task}/events/stream?access_token={forged_token}"),
        format!("{TASKS}/{task}/events?access_token={forged_token}"),
        // A token is accepted on the events routes only.
        format!("{TASKS}/{task}?access_token={token}"),
    ];
    for path in &refused {
        let response = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }

    // Failures: 401 (no credential), 403 (no scope), 404 (no such task), 422 (bad body).
    let (status, _) = api.call(Method::GET, TASKS, None, None).await;
    assert_eq!(status, 401);
    let (status, _) = api
        .call(
            Method::POST,
            TASKS,
            Some(&reader),
            Some(&json!({"description": "no"})),
        )
        .await;
    assert_eq!(status, 403);
    let missing = uuid::Uuid::new_v4();
    let (status, _) = api
        .call(Method::GET, &format!("{TASKS}/{missing}"), Some(&key), None)
        .await;
    assert_eq!(status, 404);
    let (status, problem) = api
        .call(
            Method::POST,
            &format!("{TASKS}/{task}/execute"),
            Some(&key),
            Some(&json!({"query": " "})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");

    let logs = api.stop().await;
    app.stop_worker().await;

    // Not vacuous: the requests were logged, with their paths and outcomes.
    let evidence = [
        "path=/api/v1/agents".to_owned(),
        "path=/api/v1/session".to_owned(),
        format!("path={TASKS}/{task}/stream-token"),
        format!("path={TASKS}/{task}/events/stream"),
        format!("path={TASKS}/{task}/events"),
        format!("path={TASKS}/{missing}"),
        format!("path={TASKS}/{task}/execute"),
        "page session opened".to_owned(),
        "status=200".to_owned(),
        "status=401".to_owned(),
        "status=403".to_owned(),
        "status=404".to_owned(),
        "status=422".to_owned(),
    ];
    for needle in &evidence {
        assert!(
            logs.contains(needle.as_str()),
            "the logs do not show `{needle}` ({} bytes; see {})",
            logs.len(),
            dir.display()
        );
    }
    // No secret, anywhere.
    let mut leaks = Vec::new();
    for (name, value) in &secrets {
        for (number, line) in logs.lines().enumerate() {
            if line.contains(value.as_str()) {
                leaks.push(format!("{name} on line {}: {line}", number + 1));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the api's logs ({}):\n{}",
        dir.display(),
        leaks.join("\n")
    );
    // The access_token parameter itself never shows either (the query is not logged).
    assert!(
        !logs.contains("access_token="),
        "a query with a token was logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_mints_and_revokes_of_one_keys_file_lose_nothing() {
    let dir = temp_dir();
    let first = mint(&dir, "first", "acme", &[Scope::TasksRead.as_str()]).await;
    // Twelve operators mint at once while the first key is revoked: each one's read, change
    // and write of the file is whole (a lock), so every key and the revocation are kept.
    let identities: Vec<String> = (0..12).map(|i| format!("ops-{i}")).collect();
    let read = [Scope::TasksRead.as_str()];
    let mints = futures::future::join_all(
        identities
            .iter()
            .map(|identity| mint(&dir, identity, "acme", &read)),
    );
    let first_id = key_id(&first).to_owned();
    let revoke_args = ["keys", "revoke", &first_id, "--file", "keys.toml"];
    let revoke = cli(&dir, &revoke_args);
    let (minted, revoked) = tokio::join!(mints, revoke);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let stored = read_file(&dir.join("keys.toml")).unwrap();
    assert_eq!(stored.keys.len(), 13, "{:?}", stored.keys);
    for key in &minted {
        let record = stored
            .keys
            .iter()
            .find(|record| record.id.0 == key_id(key))
            .expect("every minted key is stored");
        assert_eq!(record.sha256, sha256_hex(key));
        assert!(record.revoked_at.is_none());
    }
    let first = stored.keys.iter().find(|r| r.id.0 == first_id).unwrap();
    assert!(first.revoked_at.is_some(), "the revocation is kept");
}

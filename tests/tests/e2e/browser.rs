//! The timeline page in headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `tests/browser/`; `scripts/test` installs both): a streaming task renders row for row as its
//! log, the page recovers from an api restart mid-run without duplicates, an old task replays,
//! the approval prompt approves a tool call with edited arguments, the pause / resume / cancel
//! buttons work, a team's discussion shows each speaker in its colour with the routing reason and
//! the conversation, a pipeline's checkpoint prompt approves an edited text, and screenshots are
//! kept in `target/browser-artifacts/`.

use agentflow_tests::api::spawn_api_at;
use agentflow_tests::harness::test_config;
use agentflow_tests::spawn_app_with;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_page_renders_the_log_survives_an_api_restart_and_controls_the_task() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let driver = root.join("browser/timeline.mjs");
    assert!(
        root.join("browser/node_modules/playwright-core").exists(),
        "playwright-core is not installed: run scripts/test (or npm ci in tests/browser)"
    );
    let artifacts = root.join("../target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("timeline.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut config = test_config();
    config.models.get_mut("scripted").unwrap().token_delay_ms = 10;
    let mut app = spawn_app_with(config.clone(), true).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut api = spawn_api_at(&config, &listen).await;

    let mut node = tokio::process::Command::new("node")
        .arg(&driver)
        .arg(&api.base_url)
        .arg(&screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running node (is Node.js installed?)");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut transcript = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        transcript.push(line.clone());
        if line.starts_with("KILL ") {
            api.stop().await;
            api = spawn_api_at(&config, &listen).await;
            stdin.write_all(b"RESTARTED\n").await.unwrap();
        }
    }
    let status = node.wait().await.unwrap();
    assert!(
        status.success() && transcript.last().map(String::as_str) == Some("OK"),
        "the browser test failed: {transcript:?}"
    );
    assert!(screenshot.exists(), "the screenshot was kept");
    api.stop().await;
    app.stop_worker().await;
}

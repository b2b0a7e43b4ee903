//! The timeline page in headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `tests/browser/`; `scripts/test` installs both): a streaming task renders row for row as its
//! log, the page recovers from an api restart mid-run without duplicates, an old task replays,
//! the approval prompt approves a tool call with edited arguments, the pause / resume / cancel
//! buttons work, a team's discussion shows each speaker in its colour with the routing reason and
//! the conversation, a pipeline's checkpoint prompt approves an edited text, and screenshots are
//! kept in `target/browser-artifacts/`. With auth on, the page logs in without keeping the key
//! and reopens a stream whose token expired with a fresh one, without duplicate or gap.

use agentflow_tests::api::spawn_api_at;
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::final_log;
use agentflow_tests::server::free_port;
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
    let listen = format!("127.0.0.1:{}", free_port());
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

/// A secret long enough to sign stream tokens and sessions.
const AUTH_SECRET: &str = "a browser test secret that is at least thirty-two bytes long";

/// Drives the page with auth on, for
/// [`with_auth_on_the_page_logs_in_keeps_no_key_and_reopens_a_stream_whose_token_expired`]:
/// run as `node --input-type=module -e` in `tests/browser/` (where playwright-core resolves),
/// with `AGENTFLOW_PAGE_BASE`, `AGENTFLOW_PAGE_SCREENSHOT` and `AGENTFLOW_PAGE_KEY` set.
/// Protocol on stdio as `timeline.mjs`: `KILL <task id>` (the test restarts the api, answers
/// `RESTARTED`), then `TIMELINE <json>` (the page's rows, for the test to compare with the
/// task's final log), `DIAG …` lines on failure, and `OK` or `FAIL <reason>` last.
const AUTH_DRIVER: &str = r##"
import { chromium } from "playwright-core";
import readline from "node:readline";

const base = process.env.AGENTFLOW_PAGE_BASE;
const screenshot = process.env.AGENTFLOW_PAGE_SCREENSHOT;
const key = process.env.AGENTFLOW_PAGE_KEY;
const input = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => input.once("line", resolve));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let code = 0;
let page;
const pageErrors = [];
// Every request the page made (the key must be in none), its streams with their statuses, and
// the stream tokens it minted.
const urls = [];
const streams = [];
const mints = [];
try {
  page = await browser.newPage({ viewport: { width: 375, height: 812 } });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("request", (request) => {
    urls.push(request.url());
    if (request.url().includes("/events/stream")) {
      streams.push({ url: new URL(request.url()), request, status: null, failed: null });
    }
  });
  page.on("response", async (response) => {
    const stream = streams.find((s) => s.request === response.request());
    if (stream) stream.status = response.status();
    if (response.url().endsWith("/stream-token") && response.request().method() === "POST") {
      const body = await response.json().catch(() => ({}));
      mints.push({ status: response.status(), ...body });
    }
  });
  page.on("requestfailed", (request) => {
    const stream = streams.find((s) => s.request === request);
    if (stream) stream.failed = request.failure()?.errorText ?? "failed";
  });
  await page.addInitScript(() => {
    window.__states = [];
    new MutationObserver(() => {
      const badge = document.getElementById("connection");
      if (badge && window.__states.at(-1) !== badge.dataset.state) window.__states.push(badge.dataset.state);
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
  });
  const lastSeq = () => page.evaluate(() => Number(document.getElementById("timeline").dataset.lastSeq || 0));
  const state = () => page.getAttribute("#connection", "data-state");
  // A task's whole log, read by the page with its session cookie.
  const log = (taskId) => page.evaluate(async (id) => {
    const events = [];
    for (;;) {
      const response = await fetch(`/api/v1/agents/assistant/tasks/${id}/events?after=${events.length}&limit=200`);
      if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
      const batch = await response.json();
      events.push(...batch.events);
      if (!batch.has_more) return events;
    }
  }, taskId);
  // The key is nowhere a script or a later visitor could read it.
  const noKeyKept = async (when) => {
    const kept = await page.evaluate(() => {
      const dump = (storage) => Object.keys(storage).map((k) => `${k}=${storage.getItem(k)}`).join("; ");
      return { localStorage: dump(localStorage), sessionStorage: dump(sessionStorage), cookie: document.cookie };
    });
    for (const [where, value] of Object.entries(kept)) {
      check(!value.includes(key), `${when}: the key is in ${where}`);
    }
    check(!kept.cookie.includes("agentflow_session"), `${when}: scripts can read the session cookie: ${kept.cookie}`);
    check(await page.inputValue("#api-key") === "", `${when}: the key stays in its field`);
    check(!(await page.content()).includes(key), `${when}: the key is in the document`);
    check(!urls.some((url) => url.includes(key)), `${when}: the key went into a URL`);
  };

  // No session: the login form, and nothing of the app.
  await page.goto(base);
  await page.waitForSelector("#login-panel", { state: "visible" });
  check(await page.isHidden("#run-form"), "the run form waits for a login");
  check(await page.isHidden("#who"), "nobody is logged in");

  // A wrong key: the problem's detail, and no session.
  await page.fill("#api-key", "af_wrong_wrongwrongwrong");
  await page.click("#login");
  await page.waitForSelector("#login-error", { state: "visible" });
  const refused = await page.textContent("#login-error");
  check(refused.includes("not valid"), `the refusal says why: ${refused}`);
  check(await page.isVisible("#login-panel"), "still the login");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-login.png"), fullPage: true });

  // The right key, keyboard only: who is logged in shows; the cookie is HttpOnly and Strict.
  await page.fill("#api-key", key);
  await page.focus("#api-key");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#who", { state: "visible" });
  check(await page.textContent("#identity") === "alice", `identity: ${await page.textContent("#identity")}`);
  check((await page.textContent("#tenant")).includes("acme"), `tenant: ${await page.textContent("#tenant")}`);
  check(await page.isHidden("#login-panel"), "the login goes");
  const cookie = (await page.context().cookies()).find((c) => c.name === "agentflow_session");
  check(cookie && cookie.httpOnly && cookie.sameSite === "Strict", `the session cookie: ${JSON.stringify(cookie)}`);
  check(cookie.value !== key, "the cookie is not the key");
  await noKeyKept("after the login");

  // A long streamed answer.
  await page.waitForSelector("#agent option[value=assistant]", { state: "attached" });
  await page.selectOption("#agent", "assistant");
  await page.fill("#query", "Count to 500");
  await page.check("#streaming");
  await page.click("#run");
  await page.waitForFunction(() => (document.querySelector(".llm-text")?.textContent.length ?? 0) > 30);
  const taskId = await page.getAttribute("#timeline", "data-task-id");
  // (The mint's body is read asynchronously by the response handler.)
  for (let i = 0; i < 50 && mints.length === 0; i++) await sleep(100);
  check(mints.length === 1 && mints[0].status === 200, `one stream token minted: ${JSON.stringify(mints)}`);
  const first = mints[0];
  check(streams.length === 1, `one stream so far: ${streams.map((s) => s.url.search)}`);
  check(streams[0].url.searchParams.get("access_token") === first.token, "the stream carries the token");
  check(streams[0].url.searchParams.get("after") === "0", `from the start: ${streams[0].url.search}`);

  // The token expires; the open stream goes on delivering.
  const expiry = Date.parse(first.expires_at);
  while (Date.now() < expiry + 500) await sleep(100);
  const atExpiry = await lastSeq();
  await sleep(1_000);
  const later = await lastSeq();
  check(later > atExpiry, `the stream keeps delivering after its token expired: seq ${atExpiry} then ${later}`);
  check(await state() === "connected", `still connected: ${await state()}`);
  check(streams.length === 1, "no reconnect yet");
  check(await page.$('#timeline li[data-type="WorkflowCompleted"]') === null, "the answer is still streaming");

  // The api restarts: the browser reconnects with its expired token, gets 401 and closes; the
  // page mints a fresh token and reopens after its last seq.
  const beforeKill = await lastSeq();
  console.log(`KILL ${taskId}`);
  check((await nextLine()) === "RESTARTED", "expected RESTARTED");
  await page.waitForSelector('#connection[data-state="done"]', { timeout: 120_000 });

  const refusedReconnect = streams.find((s) => s.status === 401);
  check(refusedReconnect, `a reconnect was refused: ${streams.map((s) => `${s.status ?? s.failed} ${s.url.search}`)}`);
  check(refusedReconnect.url.searchParams.get("access_token") === first.token, "with the expired token");
  const reopened = streams.filter((s) => s.status === 200 && s.url.searchParams.get("access_token") !== first.token);
  check(reopened.length >= 1, `the page reopened with a fresh token: ${streams.map((s) => `${s.status} ${s.url.search}`)}`);
  const resumedAfter = Number(reopened[0].url.searchParams.get("after"));
  check(resumedAfter >= beforeKill, `reopened after the last seq seen (${resumedAfter} < ${beforeKill})`);
  check(streams.indexOf(reopened[0]) > streams.indexOf(refusedReconnect), "reopened after the refusal");
  check(mints.length >= 2 && mints.every((m) => m.status === 200), `fresh tokens: ${mints.map((m) => m.status)}`);
  check(new Set(mints.map((m) => m.token)).size === mints.length, "every mint is a new token");
  for (const s of streams) {
    check(s.url.searchParams.has("access_token") && s.url.searchParams.has("after"),
      `every stream carries a token and a cursor: ${s.url.search}`);
  }

  // The page's timeline is the log: no duplicate, no gap.
  const events = await log(taskId);
  const rows = await page.$$eval("#timeline li", (items) => items.map((li) => [Number(li.dataset.seq), li.dataset.type]));
  const timeline = await page.evaluate(() => ({ ...document.getElementById("timeline").dataset }));
  console.log(`TIMELINE ${JSON.stringify({ task: taskId, rows, last_seq: Number(timeline.lastSeq), duplicates: Number(timeline.duplicates), gaps: Number(timeline.gaps) })}`);
  const expected = events.filter((e) => e.type !== "WorkflowLLMCallDelta").map((e) => [e.seq, e.type]);
  check(JSON.stringify(rows) === JSON.stringify(expected),
    `rows ${JSON.stringify(rows)} differ from the log ${JSON.stringify(expected)}`);
  check(timeline.duplicates === "0", `the page received ${timeline.duplicates} duplicates`);
  check(timeline.gaps === "0", `the page missed events (${timeline.gaps} gaps)`);
  check(Number(timeline.lastSeq) === events.at(-1).seq, `the page saw up to ${timeline.lastSeq} of ${events.at(-1).seq}`);
  const completed = events.find((e) => e.type === "WorkflowLLMCallCompleted");
  check(await page.textContent(".llm-text") === completed.data.content, "the LLM text is the final content");
  check(await page.textContent("#final-text") === events.at(-1).data.final_response, "the final answer is shown");
  const states = await page.evaluate(() => window.__states);
  check(states.includes("reconnecting"), `the connection was cut and resumed: ${states}`);
  check(states.at(-1) === "done", `the page ends done: ${states}`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page overflows 375 px by ${overflow} px`);
  await noKeyKept("after the stream");
  await page.screenshot({ path: screenshot, fullPage: true });

  // Controls with auth on: the bodies name nobody; the api stamps the key's identity.
  await page.check("#approve-tools");
  await page.fill("#query", "What is 6*7?");
  await page.click("#run");
  await page.waitForSelector(".approval textarea");
  await page.fill(".approval textarea", JSON.stringify({ expression: "6*8" }));
  await page.click(".approval button:has-text('Approve')");
  await page.waitForSelector('#connection[data-state="done"]');
  check(await page.$(".approval") === null, "the prompt goes once decided");
  check((await page.textContent("#final-text")).includes("48"), "the edited arguments were used");
  const approved = (await log(await page.getAttribute("#timeline", "data-task-id")))
    .find((e) => e.type === "WorkflowApprovalReceived");
  check(approved?.data.requested_by === "alice", `the decision is alice's: ${JSON.stringify(approved?.data)}`);
  await page.uncheck("#approve-tools");

  // Pause (at the end of a short answer), then cancel while paused.
  await page.fill("#query", "Count to 60");
  await page.click("#run");
  await page.waitForFunction(() => (document.querySelector(".llm-text")?.textContent.length ?? 0) > 10);
  await page.click("#pause");
  await page.waitForSelector('#timeline li[data-type="WorkflowPaused"]', { timeout: 60_000 });
  await page.click("#cancel");
  await page.waitForSelector('#connection[data-state="done"]');
  check(await page.isHidden("#control-error"), `a control was refused: ${await page.textContent("#control-error")}`);
  const cancelled = await log(await page.getAttribute("#timeline", "data-task-id"));
  const paused = cancelled.find((e) => e.type === "WorkflowPaused");
  check(paused?.data.requested_by === "alice", `the pause is alice's: ${JSON.stringify(paused?.data)}`);
  check(cancelled.at(-1).type === "WorkflowCancelled" && cancelled.at(-1).data.requested_by === "alice",
    `the cancel is alice's: ${JSON.stringify(cancelled.at(-1))}`);
  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);

  // Log out: the login again, the cookie gone, the api refuses the page.
  await page.click("#logout");
  await page.waitForSelector("#login-panel", { state: "visible" });
  check(await page.isHidden("#who") && await page.isHidden("#task-panel"), "nothing of the tenant shows");
  check(await page.$$eval("#timeline li", (items) => items.length) === 0, "the timeline is cleared");
  const after = await page.evaluate(async () => (await fetch("/api/v1/session")).status);
  check(after === 401, `the session is over: ${after}`);
  check(!(await page.context().cookies()).some((c) => c.name === "agentflow_session"), "the cookie is cleared");
  await noKeyKept("after the logout");
  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
  console.log("OK");
} catch (error) {
  code = 1;
  try {
    const seen = await page.evaluate(() => ({
      states: window.__states,
      timeline: { ...document.getElementById("timeline").dataset },
      last: [...document.querySelectorAll("#timeline li")].slice(-5).map((li) => li.dataset.type),
      errors: ["#login-error", "#form-error", "#control-error"].map((id) => document.querySelector(id)?.textContent),
    }));
    console.log(`DIAG page ${JSON.stringify(seen)}`);
    console.log(`DIAG streams ${JSON.stringify(streams.map((s) => `${s.status ?? s.failed} ${s.url.pathname}${s.url.search}`))}`);
    console.log(`DIAG mints ${JSON.stringify(mints.map((m) => [m.status, m.expires_at ?? m.detail]))}`);
    console.log(`DIAG page errors ${JSON.stringify(pageErrors)}`);
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-failure.png"), fullPage: true });
  } catch (diag) {
    console.log(`DIAG unavailable: ${diag.message}`);
  }
  console.log(`FAIL ${error.message}`);
} finally {
  await browser.close();
  input.close();
}
process.exit(code);
"##;

/// The page with auth on: the login form (a wrong key's problem shown), a session cookie the
/// page's scripts cannot read and no key kept anywhere; a stream whose 2 s token expires
/// mid-answer keeps delivering, and after an api restart its reconnect is refused (401, the
/// EventSource closes) so the page mints a fresh token and reopens with `after=`: the timeline
/// is the task's final log, without duplicate or gap. Controls stamp the key's identity; log
/// out ends the session.
#[tokio::test(flavor = "multi_thread")]
async fn with_auth_on_the_page_logs_in_keeps_no_key_and_reopens_a_stream_whose_token_expired() {
    use agentflow_api::auth::keys::{mint, write_file};
    use agentflow_shared::ids::KeyId;
    use agentflow_shared::security::{KeyRecord, KeysFile, Scope};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("browser/node_modules/playwright-core").exists(),
        "playwright-core is not installed: run scripts/test (or npm ci in tests/browser)"
    );
    let artifacts = root.join("../target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("timeline-auth.png");
    let _ = std::fs::remove_file(&screenshot);

    // One key, with the scopes the page needs (not admin).
    let minted = mint(KeyRecord {
        id: KeyId(String::new()),
        identity: "alice".into(),
        tenant: "acme".parse().unwrap(),
        scopes: vec![Scope::TasksRead, Scope::TasksWrite, Scope::TasksControl],
        sha256: String::new(),
        created_at: Some(chrono::Utc::now()),
        revoked_at: None,
    });
    let dir = std::env::temp_dir().join(format!("agentflow-page-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys_file = dir.join("keys.toml");
    write_file(
        &keys_file,
        &KeysFile {
            keys: vec![minted.record.clone()],
        },
    )
    .unwrap();

    let mut config = test_config();
    config.auth.enabled = true;
    config.auth.keys_file = Some(keys_file);
    config.auth.token_secrets = vec![AUTH_SECRET.into()];
    config.auth.stream_token_ttl_secs = 2;
    // "Count to 500" streams for ~15 s: the token expires mid-answer, the api restarts in it.
    config.models.get_mut("scripted").unwrap().token_delay_ms = 30;
    let mut app = spawn_app_with(config.clone(), true).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut api = spawn_api_at(&config, &listen).await;

    let mut node = tokio::process::Command::new("node")
        .args(["--input-type=module", "-e", AUTH_DRIVER])
        .current_dir(root.join("browser"))
        .env("AGENTFLOW_PAGE_BASE", &api.base_url)
        .env("AGENTFLOW_PAGE_SCREENSHOT", &screenshot)
        .env("AGENTFLOW_PAGE_KEY", &minted.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running node (is Node.js installed?)");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut transcript = Vec::new();
    let mut timeline = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        transcript.push(line.clone());
        if line.starts_with("KILL ") {
            api.stop().await;
            api = spawn_api_at(&config, &listen).await;
            stdin.write_all(b"RESTARTED\n").await.unwrap();
        } else if let Some(json) = line.strip_prefix("TIMELINE ") {
            timeline = Some(serde_json::from_str::<serde_json::Value>(json).unwrap());
        }
    }
    let status = node.wait().await.unwrap();
    assert!(
        status.success() && transcript.last().map(String::as_str) == Some("OK"),
        "the browser test failed: {transcript:#?}"
    );
    assert!(screenshot.exists(), "the screenshot was kept");

    // The page's rows are the task's final log (its workflow result), seq for seq.
    let timeline = timeline.expect("the driver reported the timeline");
    let log = final_log(&app, timeline["task"].as_str().unwrap()).await;
    let expected: Vec<(u64, &str)> = log
        .iter()
        .filter(|e| e.type_name() != "WorkflowLLMCallDelta")
        .map(|e| (e.seq.0, e.type_name()))
        .collect();
    let rows: Vec<(u64, String)> = serde_json::from_value(timeline["rows"].clone()).unwrap();
    let rows: Vec<(u64, &str)> = rows.iter().map(|(s, t)| (*s, t.as_str())).collect();
    assert_eq!(rows, expected, "the page's rows are the final log's");
    assert_eq!(timeline["last_seq"], log.last().unwrap().seq.0);
    assert_eq!(timeline["duplicates"], 0);
    assert_eq!(timeline["gaps"], 0);
    api.stop().await;
    app.stop_worker().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// Drives the timeline page in headless Chromium for tests/tests/e2e/browser.rs.
// Usage: node timeline.mjs <api base URL> <screenshot path>
// Protocol on stdio: prints `KILL <task id>` once the LLM text is streaming and waits for a
// `RESTARTED` line (the test restarts the api meanwhile); then drives the approval prompt and
// the pause / resume / cancel buttons; ends with `OK` or `FAIL <reason>`.
import { chromium } from "playwright-core";
import readline from "node:readline";

const [base, screenshot] = process.argv.slice(2);
const input = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => input.once("line", resolve));

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
try {
  const page = await browser.newPage({ viewport: { width: 375, height: 812 } });
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  await page.addInitScript(() => {
    window.__states = [];
    new MutationObserver(() => {
      const badge = document.getElementById("connection");
      if (badge && window.__states.at(-1) !== badge.dataset.state) window.__states.push(badge.dataset.state);
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
  });
  await page.goto(base);
  await page.waitForSelector("#agent option[value=assistant]", { state: "attached" });
  await page.selectOption("#agent", "assistant");
  await page.fill("#query", "Count to 400");
  await page.check("#streaming");
  // Keyboard only: focus the button and press Enter.
  await page.focus("#run");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => (document.querySelector(".llm-text")?.textContent.length ?? 0) > 30);
  const taskId = await page.getAttribute("#timeline", "data-task-id");
  console.log(`KILL ${taskId}`);
  check((await nextLine()) === "RESTARTED", "expected RESTARTED");
  await page.waitForSelector('#connection[data-state="done"]', { timeout: 120_000 });

  const response = await fetch(`${base}/api/v1/agents/assistant/tasks/${taskId}/events?limit=1000`);
  const log = (await response.json()).events;
  const rows = await page.$$eval("#timeline li", (items) => items.map((li) => [Number(li.dataset.seq), li.dataset.type]));
  const expected = log.filter((e) => e.type !== "WorkflowLLMCallDelta").map((e) => [e.seq, e.type]);
  check(JSON.stringify(rows) === JSON.stringify(expected),
    `rows ${JSON.stringify(rows)} differ from the log ${JSON.stringify(expected)}`);
  check(await page.getAttribute("#timeline", "data-duplicates") === "0", "the page received a duplicate");
  const completed = log.find((e) => e.type === "WorkflowLLMCallCompleted");
  check(await page.textContent(".llm-text") === completed.data.content, "the LLM text is the final content");
  const done = log.at(-1);
  check(done.type === "WorkflowCompleted", `the log ends with ${done.type}`);
  check(await page.textContent("#final-text") === done.data.final_response, "the final answer is shown");
  const states = await page.evaluate(() => window.__states);
  check(states.includes("reconnecting"), `the connection was cut and resumed: ${states}`);
  check(states.at(-1) === "done", `the page ends done: ${states}`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page overflows 375 px by ${overflow} px`);
  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);

  // An old task replays its log when opened from the list.
  await page.click("#refresh");
  await page.waitForSelector(`button[aria-label="Open task ${taskId}"]`);
  await page.click(`button[aria-label="Open task ${taskId}"]`);
  await page.waitForSelector('#connection[data-state="done"]');
  const replayed = await page.$$eval("#timeline li", (items) => items.map((li) => [Number(li.dataset.seq), li.dataset.type]));
  check(JSON.stringify(replayed) === JSON.stringify(expected), "the replay shows the same rows");

  await page.screenshot({ path: screenshot, fullPage: true });

  // Approval prompt: edit the arguments, approve; the tool runs with the edited ones.
  await page.check("#approve-tools");
  await page.fill("#query", "What is 6*7?");
  await page.click("#run");
  await page.waitForSelector(".approval textarea");
  check(await page.isEnabled("#pause"), "pause is offered while an approval is awaited");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-approval.png"), fullPage: true });
  await page.fill(".approval textarea", JSON.stringify({ expression: "6*8" }));
  await page.click(".approval button:has-text('Approve')");
  await page.waitForSelector('#connection[data-state="done"]');
  check(await page.$(".approval") === null, "the prompt goes once decided");
  check(await page.$('#timeline li[data-type="WorkflowApprovalReceived"]') !== null, "the decision is a row");
  check((await page.textContent("#final-text")).includes("48"), "the edited arguments were used");
  await page.uncheck("#approve-tools");

  // Pause during the streamed answer, then resume: the run completes.
  // A long answer (≈ 20 s), so the click lands while it streams even under a loaded machine.
  await page.fill("#query", "Count to 2000");
  await page.click("#run");
  await page.waitForFunction(() => (document.querySelector(".llm-text")?.textContent.length ?? 0) > 10);
  await page.click("#pause");
  await page.waitForSelector('#timeline li[data-type="WorkflowPaused"]', { timeout: 60_000 }).catch(async (error) => {
    // Say what the page saw instead: a refused pause, or the last rows.
    const refused = await page.textContent("#control-error");
    const rows = await page.$$eval("#timeline li", (items) => items.slice(-5).map((li) => li.dataset.type));
    throw new Error(`${error.message.split("\n")[0]} (control error: ${refused}; last rows: ${rows})`);
  });
  check(await page.isEnabled("#resume"), "resume is offered while paused");
  check(await page.isDisabled("#pause"), "pause is not offered while paused");
  await page.click("#resume");
  await page.waitForSelector('#connection[data-state="done"]');
  check(await page.$('#timeline li[data-type="WorkflowResumed"]') !== null, "the resume is a row");
  check(await page.$('#timeline li[data-type="WorkflowCompleted"]') !== null, "the run completed");

  // Cancel during the streamed answer: the run ends cancelled, the buttons go off.
  await page.click("#run");
  await page.waitForFunction(() => (document.querySelector(".llm-text")?.textContent.length ?? 0) > 10);
  await page.click("#cancel");
  await page.waitForSelector('#connection[data-state="done"]');
  check(await page.$('#timeline li[data-type="WorkflowCancelled"]') !== null, "the run was cancelled");
  check(await page.isDisabled("#cancel"), "cancel is off once the run ended");
  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);

  // A team: both members named, so they discuss; every row of a member names it in its
  // colour, the routing reason shows, and the discussion reads as a conversation.
  await page.selectOption("#agent", "scribe");
  await page.fill("#query", "Plume and Mimir, tell me about the old lighthouse");
  await page.click("#run");
  await page.waitForSelector('#timeline li[data-type="WorkflowCompleted"]', { timeout: 60_000 });
  const routed = await page.textContent('#timeline li[data-type="WorkflowRouted"]');
  check(routed.includes("both_agents_mentioned"), `the routing reason shows: ${routed}`);
  const speakers = await page.$$eval('#timeline li[data-type="WorkflowMemberMessage"]', (items) => items.map((li) => li.dataset.speaker));
  check(JSON.stringify(speakers) === JSON.stringify(["Plume", "Mimir", "Plume"]), `speakers in turn: ${speakers}`);
  const colours = await page.$$eval("#timeline .speaker", (badges) => [...new Set(badges.map((b) => `${b.textContent}=${b.style.background}`))]);
  check(colours.length === 2, `one colour per member: ${colours}`);
  const said = await page.$$eval("#discussion-log li", (items) => items.map((li) => li.querySelector(".speaker").textContent));
  check(JSON.stringify(said) === JSON.stringify(["Plume", "Mimir", "Plume"]), `the discussion panel: ${said}`);
  check((await page.textContent("#final-text")).includes("Here is our answer"), "the discussion's answer");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-team.png"), fullPage: true });

  // A pipeline's checkpoint: the prompt shows the work so far; an edit is approved.
  await page.selectOption("#agent", "newsroom");
  await page.fill("#query", "A paragraph on the lighthouse");
  await page.click("#run");
  await page.waitForSelector(".approval textarea", { timeout: 60_000 });
  const prompt = await page.textContent(".approval p");
  check(prompt.includes("Checkpoint before Writer"), `the checkpoint prompt: ${prompt}`);
  check((await page.inputValue(".approval textarea")).startsWith("Facts:"), "the work so far is shown");
  await page.fill(".approval textarea", "Facts (checked): lit in 1823.");
  await page.click(".approval button:has-text('Approve')");
  await page.waitForSelector('#timeline li[data-type="WorkflowCompleted"]', { timeout: 60_000 });
  const received = await page.textContent('#timeline li[data-type="WorkflowApprovalReceived"]');
  check(received.includes("edited"), `the edit is recorded: ${received}`);
  check((await page.textContent("#final-text")).startsWith("Revised draft"), "the pipeline's answer");
  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
  console.log("OK");
} catch (error) {
  console.log(`FAIL ${error.message}`);
  code = 1;
} finally {
  await browser.close();
  input.close();
}
process.exit(code);

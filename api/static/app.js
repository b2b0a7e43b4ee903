// agentflow's live timeline: the reference EventSource consumer.
// It opens the stream *before* calling execute, listens to every named event type, renders one
// row per event (deltas grow the text of their LLM call), ignores any seq it has already
// rendered, and closes the EventSource on the terminal event. Pause / resume / cancel buttons and
// approval prompts post to the control endpoints; what they cause arrives as events like the rest.
// A team's events name their speaker (`data.speaker`): each row shows it in the member's
// colour, and the members' messages also build the discussion as a conversation.
//
// Auth: on load the page asks who it is (`GET /api/v1/session`). With auth on and no session
// (401) it shows a login form: the key is posted once to `POST /api/v1/session`, which answers
// with an HttpOnly cookie; the page keeps no key (no storage, no variable). Every EventSource URL
// then carries a stream token minted for its task (`access_token=`) and `after=` the last seq
// rendered. A token admits a connection only: a reconnect after its expiry gets 401, on which an
// EventSource closes for good, so the page mints a fresh token and reopens after its last seq
// (rows already rendered are skipped by seq). With auth off the page needs none of this.

const EVENT_TYPES = [
  "WorkflowStarted", "WorkflowStepStarted", "WorkflowStepCompleted", "WorkflowLLMCallStarted",
  "WorkflowLLMCallDelta", "WorkflowLLMCallRetrying", "WorkflowLLMCallCompleted",
  "WorkflowToolCallStarted", "WorkflowToolCallCompleted", "WorkflowBudgetWarning",
  "WorkflowBudgetExceeded", "WorkflowBudgetRaised", "WorkflowApprovalRequested",
  "WorkflowApprovalReceived", "WorkflowPaused", "WorkflowResumed", "WorkflowConversationTrimmed",
  "WorkflowTurnCompleted",
  "WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled",
  "WorkflowRouted", "WorkflowMemberTurnStarted", "WorkflowMemberMessage",
  "WorkflowMemberBudgetExhausted", "WorkflowDiscussionEnded",
];
const TERMINAL = new Set(["WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled"]);

const $ = (id) => document.getElementById(id);
const api = (path) => `/api/v1${path}`;

let source = null;
let view = null;
// Who the page is (`GET /api/v1/session`): `auth_enabled`, `identity`, `tenant`, `scopes`.
let session = null;

const authOn = () => Boolean(session && session.auth_enabled);

function setConnection(state) {
  const badge = $("connection");
  badge.dataset.state = state;
  badge.textContent = state;
}

function money(usd) {
  return `$${Number(usd).toFixed(6)}`;
}

function text(tag, content, className) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

/** Enables the buttons that make sense in this state: running, approval, paused or ended. */
function setControls(state) {
  $("pause").disabled = state !== "running" && state !== "approval";
  $("resume").disabled = state !== "paused";
  $("cancel").disabled = state === "ended";
}

async function control(action) {
  const error = $("control-error");
  error.hidden = true;
  try {
    await postJson(`/agents/${view.agent}/tasks/${view.taskId}/${action}`, requester({}));
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
}

/** A control's body: with auth off it names the page; with auth on the api stamps the key's
 * identity (and refuses a body that names anyone). */
function requester(body) {
  return authOn() ? body : { ...body, requested_by: "timeline" };
}

/** A prompt for one tool call waiting for a decision: approve (arguments editable) or reject. */
function approvalPrompt(d) {
  const box = document.createElement("div");
  box.className = "approval";
  box.dataset.approvalId = d.approval_id;
  // A team's checkpoint: the work so far, editable as text, before a member goes on.
  const checkpoint = d.approval_id.startsWith("checkpoint-");
  box.append(text("p", checkpoint
    ? `Checkpoint before ${d.arguments.before}: approve the work so far (edit it if you like), or reject it back with a comment.`
    : `The agent wants to call ${d.tool_name}. Allow it?`));
  const label = text("label", checkpoint ? "Work so far" : "Arguments");
  const args = document.createElement("textarea");
  args.id = `args-${d.approval_id}`;
  label.htmlFor = args.id;
  args.rows = checkpoint ? 5 : 3;
  args.value = checkpoint ? d.arguments.text : JSON.stringify(d.arguments, null, 2);
  const comment = document.createElement("input");
  comment.type = "text";
  comment.placeholder = "Comment (optional)";
  comment.setAttribute("aria-label", "Comment");
  const approve = text("button", "Approve");
  const reject = text("button", "Reject", "danger");
  for (const b of [approve, reject]) b.type = "button";
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(approve, reject);
  const problem = text("p", "", "error");
  problem.hidden = true;
  box.append(label, args, comment, actions, problem);
  const decide = async (decision) => {
    const body = requester({ decision });
    if (comment.value.trim()) body.comment = comment.value.trim();
    if (decision === "approve" && checkpoint) {
      if (args.value !== d.arguments.text) body.arguments = { text: args.value };
    } else if (decision === "approve") {
      try {
        const edited = JSON.parse(args.value);
        if (JSON.stringify(edited) !== JSON.stringify(d.arguments)) body.arguments = edited;
      } catch {
        problem.textContent = "The arguments are not valid JSON.";
        problem.hidden = false;
        return;
      }
    }
    try {
      await postJson(`/agents/${view.agent}/tasks/${view.taskId}/approvals/${d.approval_id}`, body);
      approve.disabled = true;
      reject.disabled = true;
    } catch (e) {
      problem.textContent = e.message;
      problem.hidden = false;
    }
  };
  approve.addEventListener("click", () => decide("approve"));
  reject.addEventListener("click", () => decide("reject"));
  $("approvals").append(box);
}

// Where a tool runs, as the row shows it: " (http)", " (activity)"; nothing for a built-in.
function kindLabel(kind, server) {
  if (kind === "mcp" && server) return ` (mcp: ${server})`;
  return kind && kind !== "builtin" ? ` (${kind})` : "";
}

/** Adds a member's message to the discussion panel, as a conversation. */
function discussionMessage(speaker, to, content) {
  $("discussion").hidden = false;
  const li = document.createElement("li");
  li.style.borderLeftColor = speakerColour(speaker);
  li.append(speakerBadge(speaker), text("span", ` to ${to.join(", ")}`, "muted"), text("p", content));
  $("discussion-log").append(li);
}

function resetView(agent, taskId) {
  stopFollowing();
  view = { agent, taskId, lastSeq: 0, duplicates: 0, gaps: 0, llm: null, limit: 0, ended: false, reopens: 0, timer: null };
  $("approvals").replaceChildren();
  $("discussion-log").replaceChildren();
  $("discussion").hidden = true;
  $("control-error").hidden = true;
  setControls("running");
  const timeline = $("timeline");
  timeline.replaceChildren();
  timeline.dataset.taskId = taskId;
  timeline.dataset.duplicates = "0";
  timeline.dataset.gaps = "0";
  timeline.dataset.lastSeq = "0";
  $("task-id").textContent = taskId;
  $("final").hidden = true;
  $("failure").hidden = true;
  $("budget").value = 0;
  $("budget-text").textContent = "—";
}

function setBudget(cost) {
  if (!view.limit) return;
  $("budget").max = view.limit;
  $("budget").value = Math.min(cost, view.limit);
  $("budget-text").textContent = `${money(cost)} of ${money(view.limit)}`;
}

// A member's colour: the same for the same name, in every task.
const SPEAKER_COLOURS = ["#0b5cad", "#8a2b87", "#176b2c", "#a4461a", "#4b5b00", "#005f73"];
function speakerColour(name) {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  return SPEAKER_COLOURS[hash % SPEAKER_COLOURS.length];
}

function speakerBadge(name) {
  const badge = text("span", name, "speaker");
  badge.style.background = speakerColour(name);
  return badge;
}

function row(event, summary) {
  const li = document.createElement("li");
  li.dataset.seq = event.seq;
  li.dataset.type = event.type;
  li.append(text("span", `#${event.seq}`, "seq"));
  const speaker = event.data && event.data.speaker;
  if (speaker) {
    li.dataset.speaker = speaker;
    li.style.borderLeftColor = speakerColour(speaker);
    li.append(speakerBadge(speaker));
  }
  li.append(text("span", summary));
  $("timeline").append(li);
  return li;
}

function render(event) {
  if (event.seq <= view.lastSeq) {
    view.duplicates += 1;
    $("timeline").dataset.duplicates = String(view.duplicates);
    return;
  }
  if (event.seq !== view.lastSeq + 1) {
    view.gaps += 1;
    $("timeline").dataset.gaps = String(view.gaps);
  }
  view.lastSeq = event.seq;
  $("timeline").dataset.lastSeq = String(event.seq);
  const d = event.data;
  switch (event.type) {
    case "WorkflowStarted":
      view.limit = d.budget_limit_usd;
      setBudget(0);
      setControls("running");
      row(event, `Started${d.turn ? ` turn ${d.turn}` : ""} (${d.mode}, ${d.model}, at most ${d.max_steps} steps): ${d.query}`);
      break;
    case "WorkflowStepStarted":
      row(event, `Step ${d.step}`);
      break;
    case "WorkflowStepCompleted":
      row(event, `Step ${d.step} done — ${money(d.cost_so_far_usd)}, ${d.tokens_so_far} tokens`);
      setBudget(d.cost_so_far_usd);
      break;
    case "WorkflowLLMCallStarted": {
      const li = row(event, `LLM call to ${d.model} with ${d.message_count} messages`);
      const thinking = text("pre", "", "llm-thinking");
      const pre = text("pre", "", "llm-text");
      li.append(thinking, pre);
      view.llm = pre;
      view.thinking = thinking;
      break;
    }
    case "WorkflowLLMCallDelta":
      // Thinking streams apart from the answer (Anthropic extended thinking).
      if (d.kind === "thinking") {
        if (view.thinking) view.thinking.textContent += d.text;
      } else if (view.llm) {
        view.llm.textContent += d.text;
      }
      break;
    case "WorkflowLLMCallRetrying":
      row(event, `LLM call retried (attempt ${d.attempt}); the text restarts`);
      if (view.llm) view.llm.textContent = "";
      if (view.thinking) view.thinking.textContent = "";
      break;
    case "WorkflowLLMCallCompleted": {
      if (view.llm) view.llm.textContent = d.content;
      const tools = d.tool_calls.map((c) => c.name).join(", ");
      const cut = d.finish_reason === "length" ? " (truncated at the length limit)" : "";
      const li = row(event, `LLM answered in ${d.duration_ms} ms — ${d.usage.total_tokens} tokens, ${money(d.cost_usd)}${tools ? `; calls ${tools}` : ""}${cut}`);
      li.append(text("pre", d.content, "llm-final"));
      setBudget(d.total_cost_usd);
      break;
    }
    case "WorkflowToolCallStarted": {
      const li = row(event, `Tool ${d.tool_name}${kindLabel(d.kind, d.server)} called`);
      li.append(text("pre", JSON.stringify(d.arguments)));
      break;
    }
    case "WorkflowToolCallCompleted": {
      const li = row(event, `Tool ${d.tool_name}${kindLabel(d.kind, d.server)} ${d.success ? "returned" : "failed"} in ${d.duration_ms} ms`);
      li.append(text("pre", d.success ? JSON.stringify(d.result) : d.error));
      break;
    }
    case "WorkflowBudgetWarning":
      row(event, `Budget warning: ${d.usage_pct.toFixed(1)}% used (${money(d.cost_usd)} of ${money(d.limit_usd)})`);
      setBudget(d.cost_usd);
      break;
    case "WorkflowBudgetExceeded":
      row(event, `Budget exceeded: ${money(d.cost_usd)} of ${money(d.limit_usd)}`);
      setBudget(d.cost_usd);
      break;
    case "WorkflowBudgetRaised":
      row(event, `Budget raised from ${money(d.previous_limit_usd)} to ${money(d.limit_usd)}`);
      view.limit = d.limit_usd;
      break;
    case "WorkflowApprovalRequested": {
      const li = row(event, `Approval needed for ${d.tool_name} (${d.approval_id})`);
      li.append(text("pre", JSON.stringify(d.arguments)));
      approvalPrompt(d);
      setControls("approval");
      break;
    }
    case "WorkflowApprovalReceived": {
      row(event, `${d.decision === "approve" ? "Approved" : "Rejected"} ${d.approval_id}${d.edited ? " with edited arguments" : ""}${d.comment ? `: ${d.comment}` : ""}`);
      const box = $("approvals").querySelector(`[data-approval-id="${d.approval_id}"]`);
      if (box) box.remove();
      if (!$("approvals").children.length) setControls("running");
      break;
    }
    case "WorkflowPaused":
      row(event, `Paused: ${d.reason}${d.requested_by ? ` (by ${d.requested_by})` : ""}`);
      setControls("paused");
      break;
    case "WorkflowResumed":
      row(event, `Resumed: ${d.reason}${d.requested_by ? ` (by ${d.requested_by})` : ""}`);
      setControls("running");
      break;
    case "WorkflowConversationTrimmed":
      row(event, `Conversation trimmed: ${d.dropped_messages} oldest messages dropped, ${d.kept_messages} kept (${d.bytes} of ${d.limit_bytes} bytes)`);
      break;
    case "WorkflowTurnCompleted":
      row(event, `Turn ${d.turn} answered — ${money(d.total_cost_usd)}`);
      $("final-text").textContent = d.final_response;
      $("final").hidden = false;
      setControls("waiting");
      break;
    case "WorkflowCompleted":
      row(event, `Completed in ${d.steps} steps — ${money(d.total_cost_usd)}`);
      $("final-text").textContent = d.final_response;
      $("final").hidden = false;
      setBudget(d.total_cost_usd);
      break;
    case "WorkflowFailed":
      row(event, `Failed (${d.error.kind}): ${d.error.message}`);
      $("failure").textContent = `The task failed: ${d.error.message}`;
      $("failure").hidden = false;
      break;
    case "WorkflowCancelled":
      row(event, `Cancelled: ${d.reason}`);
      break;
    case "WorkflowRouted":
      row(event, `Routed to ${d.speakers.join(", ")} (${d.routing_reason})`);
      break;
    case "WorkflowMemberTurnStarted":
      row(event, `Turn ${d.round}`);
      break;
    case "WorkflowMemberMessage": {
      const li = row(event, `To ${d.to.join(", ")} — ${money(d.cost_usd)} (${money(d.member_cost_usd)} in all)`);
      li.append(text("pre", d.content));
      discussionMessage(d.speaker, d.to, d.content);
      break;
    }
    case "WorkflowMemberBudgetExhausted":
      row(event, `Share of the budget spent (${money(d.member_cost_usd)} of ${money(d.share_usd)}): stops speaking`);
      break;
    case "WorkflowDiscussionEnded":
      row(event, `Discussion ended after ${d.rounds} turns (${d.reason.replace("_", " ")}) — ${money(d.cost_usd)}`);
      break;
    default:
      row(event, event.type);
  }
}

/** Closes the stream being followed (and any reopening planned). */
function stopFollowing() {
  if (source) source.close();
  source = null;
  if (view && view.timer) {
    clearTimeout(view.timer);
    view.timer = null;
  }
}

/** The URL of a task's stream from `after` on. With auth on it carries a stream token minted
 * for this task (`access_token=`) and the cursor (`after=`): an EventSource cannot send
 * headers, and a new one has no Last-Event-ID to resume with. */
async function streamUrl(agent, taskId, after) {
  const path = api(`/agents/${agent}/tasks/${taskId}/events/stream`);
  if (!authOn()) return after > 0 ? `${path}?after=${after}` : path;
  const { token } = await postJson(`/agents/${agent}/tasks/${taskId}/stream-token`);
  const query = new URLSearchParams({ after: String(after), access_token: token });
  return `${path}?${query}`;
}

/** Opens the task's stream; resolves once connected. The browser resumes with Last-Event-ID. */
function follow(agent, taskId) {
  resetView(agent, taskId);
  setConnection("connecting");
  return connect(view);
}

/** Connects `v`'s stream after its last seq; resolves once connected, rejects if it cannot. */
function connect(v) {
  return new Promise((resolve, reject) => {
    const settle = { resolve, reject };
    open(v, settle).catch((e) => failed(v, settle, e));
  });
}

/** A stream that could not be (re)opened: a lost session shows the login; a refusal (the task
 * is gone, or not this tenant's) ends following; anything else (the api is away) tries again. */
function failed(v, settle, error) {
  if (view !== v || v.ended) return;
  if (error.status === 401) {
    sessionLost(error.message);
    settle.reject(error);
  } else if (error.status && error.status < 500 && error.status !== 429) {
    setConnection("closed");
    $("control-error").textContent = `The stream cannot be opened: ${error.message}`;
    $("control-error").hidden = false;
    settle.reject(error);
  } else {
    reopen(v, settle);
  }
}

/** How many times in a row the page reopens a stream that will not open (about a minute). */
const MAX_REOPENS = 10;

/** Opens again after the last seq rendered, soon the first time, then backing off. */
function reopen(v, settle) {
  if (view !== v || v.ended || v.timer) return;
  if (v.reopens >= MAX_REOPENS) {
    setConnection("closed");
    settle.reject(new Error("the stream could not be reopened"));
    return;
  }
  setConnection("reconnecting");
  const delay = v.reopens === 0 ? 0 : Math.min(250 * 2 ** v.reopens, 10_000);
  v.reopens += 1;
  v.timer = setTimeout(() => {
    v.timer = null;
    open(v, settle).catch((e) => failed(v, settle, e));
  }, delay);
}

async function open(v, settle) {
  const url = await streamUrl(v.agent, v.taskId, v.lastSeq);
  if (view !== v || v.ended || source) return;
  const es = new EventSource(url);
  source = es;
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (message) => {
      if (source !== es) return;
      const event = JSON.parse(message.data);
      render(event);
      if (TERMINAL.has(event.type)) {
        v.ended = true;
        setControls("ended");
        $("approvals").replaceChildren();
        es.close();
        source = null;
        setConnection("done");
        loadTasks();
      }
    });
  }
  es.addEventListener("error", () => {
    if (source !== es) return;
    if (es.readyState !== EventSource.CLOSED) {
      setConnection("reconnecting");
      return;
    }
    // Closed for good: a refused reconnect (with auth on, a 401 once the stream token has
    // expired) or an error status. With auth on, mint a new token and go on after the last seq.
    source = null;
    if (authOn() && !v.ended) {
      reopen(v, settle);
    } else if ($("connection").dataset.state !== "done") {
      setConnection("closed");
    }
  });
  es.addEventListener("open", () => {
    if (source !== es) return;
    v.reopens = 0;
    setConnection("connected");
    settle.resolve();
  });
}

/** An api error: its problem's detail, with the status kept for callers that care. */
function apiError(response, payload) {
  const error = new Error(payload.detail || `HTTP ${response.status}`);
  error.status = response.status;
  return error;
}

/** POSTs a JSON body, or none (no Content-Type then); the session cookie goes along. */
async function postJson(path, body) {
  const init = { method: "POST" };
  if (body !== undefined) {
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const response = await fetch(api(path), init);
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401 && authOn()) sessionLost(payload.detail);
    throw apiError(response, payload);
  }
  return payload;
}

async function run(event) {
  event.preventDefault();
  const error = $("form-error");
  error.hidden = true;
  const agent = $("agent").value;
  const taskId = crypto.randomUUID();
  try {
    $("run").disabled = true;
    const task_parameters = $("approve-tools").checked ? { require_approval: ["*"] } : {};
    await postJson(`/agents/${agent}/tasks`, { id: taskId, description: "from the timeline page", task_parameters });
    await follow(agent, taskId);
    await postJson(`/agents/${agent}/tasks/${taskId}/execute`, {
      query: $("query").value,
      enable_streaming: $("streaming").checked,
    });
    loadTasks();
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  } finally {
    $("run").disabled = false;
  }
}

async function loadAgents() {
  const response = await fetch(api("/agents"));
  const agents = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401 && authOn()) sessionLost(agents.detail);
    throw apiError(response, agents);
  }
  $("agent").replaceChildren(
    ...agents.map((a) => {
      const what = a.kind === "team" ? `team: ${a.members.map((m) => m.name).join(", ")}` : a.model;
      const option = text("option", `${a.name} (${a.id}, ${what})`);
      option.value = a.id;
      return option;
    }),
  );
}

async function loadTasks() {
  const agent = $("agent").value;
  if (!agent) return;
  let tasks;
  try {
    const response = await fetch(api(`/agents/${agent}/tasks?page_size=20`));
    if (response.status === 401 && authOn()) sessionLost();
    if (!response.ok) return;
    ({ tasks } = await response.json());
  } catch {
    // The api is away (restarting): keep the list as it is; the next refresh reads it again.
    return;
  }
  $("tasks").replaceChildren(
    ...tasks.map((task) => {
      const tr = document.createElement("tr");
      const cost = text("td", "…");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "small";
      open.textContent = "Open";
      open.setAttribute("aria-label", `Open task ${task.id}`);
      // A stream that cannot open says so in the badge and the controls' error.
      open.addEventListener("click", () => follow(agent, task.id).catch(() => {}));
      const cell = document.createElement("td");
      cell.append(open);
      tr.append(text("td", task.id.slice(0, 8)), text("td", task.status), cost, cell);
      fetch(api(`/agents/${agent}/tasks/${task.id}`))
        .then((r) => (r.ok ? r.json() : null))
        .then((full) => { cost.textContent = full?.state ? money(full.state.cost_usd) : "—"; })
        .catch(() => { cost.textContent = "—"; });
      return tr;
    }),
  );
}

function showApp() {
  $("login-panel").hidden = true;
  for (const panel of document.querySelectorAll(".app-panel")) panel.hidden = false;
  $("who").hidden = !authOn();
  if (authOn()) {
    $("identity").textContent = session.identity || "";
    $("tenant").textContent = `(tenant ${session.tenant})`;
  }
}

function showLogin(message) {
  for (const panel of document.querySelectorAll(".app-panel")) panel.hidden = true;
  $("who").hidden = true;
  $("login-panel").hidden = false;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("api-key").focus();
}

/** The session is gone (expired, or its key revoked): stop following and ask for a key. The
 * timeline stays, so that logging in again with a key of the same tenant picks it up. */
function sessionLost(detail) {
  if (!session) return;
  session = null;
  if (source) source.close();
  source = null;
  if (view && view.timer) clearTimeout(view.timer);
  if (view) view.timer = null;
  setConnection(view && !view.ended ? "closed" : $("connection").dataset.state);
  showLogin(`Your session has ended${detail ? `: ${detail}` : ""}. Log in again.`);
}

/** Shows the page for this session: the agents, the tasks, and the task being followed. */
async function enter(who) {
  session = who;
  showApp();
  try {
    await loadAgents();
  } catch (e) {
    $("form-error").textContent = `The agents cannot be listed: ${e.message}`;
    $("form-error").hidden = false;
    return;
  }
  $("form-error").hidden = true;
  loadTasks();
  // Logged in again while a task was being followed: go on from its last seq.
  if (view && !view.ended && !source) {
    view.reopens = 0;
    connect(view).catch(() => {});
  }
}

/** Posts the key once for a session cookie; the key is read from the field, sent and cleared,
 * and kept nowhere. */
async function logIn(event) {
  event.preventDefault();
  const field = $("api-key");
  const error = $("login-error");
  error.hidden = true;
  $("login").disabled = true;
  try {
    const response = await fetch(api("/session"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: field.value.trim() }),
    });
    field.value = "";
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) throw apiError(response, payload);
    await enter(payload);
  } catch (e) {
    field.value = "";
    error.textContent = e.message;
    error.hidden = false;
    field.focus();
  } finally {
    $("login").disabled = false;
  }
}

/** Ends the session (the api clears the cookie) and shows the login; nothing of the tenant's
 * stays on the page. */
async function logOut() {
  stopFollowing();
  view = null;
  session = null;
  try {
    await fetch(api("/session"), { method: "DELETE" });
  } catch {
    // The api is away: the cookie expires on its own; the page forgets it anyway.
  }
  $("timeline").replaceChildren();
  $("timeline").removeAttribute("data-task-id");
  $("task-id").textContent = "";
  $("approvals").replaceChildren();
  $("discussion-log").replaceChildren();
  $("discussion").hidden = true;
  $("final").hidden = true;
  $("failure").hidden = true;
  $("tasks").replaceChildren();
  $("agent").replaceChildren();
  setControls("ended");
  setConnection("idle");
  showLogin();
}

/** Who is the page? 401: the login; otherwise the page (with auth off, as it always was). */
async function start(attempt = 0) {
  let response;
  try {
    response = await fetch(api("/session"));
  } catch {
    response = null;
  }
  if (response && response.status === 401) {
    showLogin();
    return;
  }
  if (!response || !response.ok) {
    // The api is away (restarting) or failing: try again, backing off.
    setTimeout(() => start(attempt + 1), Math.min(500 * 2 ** attempt, 10_000));
    return;
  }
  await enter(await response.json());
}

$("login-form").addEventListener("submit", logIn);
$("logout").addEventListener("click", logOut);
$("run-form").addEventListener("submit", run);
for (const action of ["pause", "resume", "cancel"]) {
  $(action).addEventListener("click", () => control(action));
}
$("refresh").addEventListener("click", loadTasks);
$("agent").addEventListener("change", loadTasks);
start();

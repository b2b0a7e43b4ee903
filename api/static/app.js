// agentflow's live timeline: the reference EventSource consumer.
// It opens the stream *before* calling execute, listens to every named event type, renders one
// row per event (deltas grow the text of their LLM call), ignores any seq it has already
// rendered, and closes the EventSource on the terminal event. Pause / resume / cancel buttons and
// approval prompts post to the control endpoints; what they cause arrives as events like the rest.
// A team's events name their speaker (`data.speaker`): each row shows it in the member's
// colour, and the members' messages also build the discussion as a conversation.

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
    await postJson(`/agents/${view.agent}/tasks/${view.taskId}/${action}`, { requested_by: "timeline" });
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
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
    const body = { decision, requested_by: "timeline" };
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
  if (source) source.close();
  view = { agent, taskId, lastSeq: 0, duplicates: 0, llm: null, limit: 0 };
  $("approvals").replaceChildren();
  $("discussion-log").replaceChildren();
  $("discussion").hidden = true;
  $("control-error").hidden = true;
  setControls("running");
  const timeline = $("timeline");
  timeline.replaceChildren();
  timeline.dataset.taskId = taskId;
  timeline.dataset.duplicates = "0";
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
  view.lastSeq = event.seq;
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

/** Opens the task's stream; resolves once connected. The browser resumes with Last-Event-ID. */
function follow(agent, taskId) {
  resetView(agent, taskId);
  setConnection("connecting");
  const es = new EventSource(api(`/agents/${agent}/tasks/${taskId}/events/stream`));
  source = es;
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      render(event);
      if (TERMINAL.has(event.type)) {
        setControls("ended");
        $("approvals").replaceChildren();
        es.close();
        setConnection("done");
        loadTasks();
      }
    });
  }
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) {
      if ($("connection").dataset.state !== "done") setConnection("closed");
    } else {
      setConnection("reconnecting");
    }
  });
  return new Promise((resolve) => {
    es.addEventListener("open", () => {
      setConnection("connected");
      resolve();
    });
  });
}

async function postJson(path, body) {
  const response = await fetch(api(path), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(payload.detail || `HTTP ${response.status}`);
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
  const agents = await (await fetch(api("/agents"))).json();
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
      open.addEventListener("click", () => follow(agent, task.id));
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

$("run-form").addEventListener("submit", run);
for (const action of ["pause", "resume", "cancel"]) {
  $(action).addEventListener("click", () => control(action));
}
$("refresh").addEventListener("click", loadTasks);
$("agent").addEventListener("change", loadTasks);
loadAgents().then(loadTasks);

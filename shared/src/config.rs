//! `agentflow.toml`: agents, models, prices, tools and worker settings, with `AGENTFLOW_…`
//! environment overrides (nested keys split by `__`, e.g. `AGENTFLOW_WORKER__TASK_QUEUE`).

use crate::mcp::McpServerConfig;
use crate::security::{AuthSettings, LimitsSettings};
use crate::team::TeamConfig;
use crate::tools::ToolConfig;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration shipped with agentflow.
pub const DEFAULT_CONFIG: &str = include_str!("../../agentflow.toml");

/// Errors loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an override could not be read or parsed.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// An explicitly named file does not exist.
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    /// The values are inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentflowConfig {
    /// Worker and run settings.
    #[serde(default)]
    pub worker: WorkerSettings,
    /// REST/SSE api and relay settings.
    #[serde(default)]
    pub api: ApiSettings,
    /// The live event bus (NATS JetStream).
    #[serde(default)]
    pub bus: BusSettings,
    /// Models by name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// Agents by id.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
    /// Declared tools by name (the built-ins need no declaration).
    #[serde(default)]
    pub tools: BTreeMap<String, ToolConfig>,
    /// MCP servers by name; an agent that lists a server's name may call its tools.
    #[serde(default)]
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    /// Teams of agents by id, checked at start-up (running them is issue #15's work in
    /// progress; see ARCHITECTURE.md).
    #[serde(default)]
    pub teams: BTreeMap<String, TeamConfig>,
    /// API keys, tenants and stream tokens.
    #[serde(default)]
    pub auth: AuthSettings,
    /// What requests may ask for and use.
    #[serde(default)]
    pub limits: LimitsSettings,
}

/// How long a prompt-cache entry lives (Anthropic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CacheTtl {
    /// Five minutes (writes cost 1.25 × input on Anthropic's list prices).
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour (writes cost 2 × input).
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    /// The vendor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FiveMinutes => "5m",
            Self::OneHour => "1h",
        }
    }
}

/// Which provider serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Deterministic and offline.
    Scripted,
    /// Any OpenAI-compatible Chat Completions server.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

/// A model: its provider, endpoint and prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The provider.
    pub provider: ProviderKind,
    /// The vendor's model name; defaults to the config key.
    #[serde(default)]
    pub model: Option<String>,
    /// Base URL of an OpenAI-compatible server (e.g. `https://api.openai.com/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// USD per million input tokens.
    #[serde(default)]
    pub input_price_per_mtok: f64,
    /// USD per million output tokens.
    #[serde(default)]
    pub output_price_per_mtok: f64,
    /// USD per million input tokens written to the prompt cache (default: the input price).
    #[serde(default)]
    pub cache_write_price_per_mtok: Option<f64>,
    /// USD per million input tokens read from the prompt cache (default: the input price).
    #[serde(default)]
    pub cache_read_price_per_mtok: Option<f64>,
    /// `anthropic`: the most tokens an answer may have (the API requires it).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// `anthropic`: extended thinking with this many tokens of budget (less than
    /// `max_tokens`); the thinking streams as `WorkflowLLMCallDelta {kind: "thinking"}`.
    #[serde(default)]
    pub thinking_budget_tokens: Option<u32>,
    /// `anthropic`: mark the system prompt and the tool definitions as a cacheable prefix
    /// (`cache_control`), so repeated calls read them from the vendor's cache.
    #[serde(default)]
    pub prompt_caching: bool,
    /// `anthropic`: how long a cache entry lives (`5m` or `1h`); set
    /// `cache_write_price_per_mtok` to that TTL's write price.
    #[serde(default)]
    pub prompt_cache_ttl: CacheTtl,
    /// Scripted model only: delay between streamed tokens.
    #[serde(default)]
    pub token_delay_ms: u64,
    /// HTTP timeout: of the whole request in batch mode; while streaming, of the wait for the
    /// response and of every silence in the stream (the call as a whole is bounded by
    /// `worker.llm_timeout_secs`).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Scripted model only: replies chosen by rule instead of the built-in behaviour (the first
    /// rule that matches answers; none matching → the built-in behaviour). At most
    /// [`MAX_SCRIPT_RULES`] rules, each `say` non-empty and at most [`MAX_SCRIPT_SAY_BYTES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub script: Vec<ScriptRule>,
}

fn default_request_timeout() -> u64 {
    120
}

/// The most rules a model's `script` may have.
pub const MAX_SCRIPT_RULES: usize = 32;

/// The longest a script rule's `say` may be, in bytes.
pub const MAX_SCRIPT_SAY_BYTES: usize = 1024;

/// One rule of a scripted model's `script`: what it answers, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptRule {
    /// Matches when the last user message contains this text (case-insensitive); absent: always.
    #[serde(default)]
    pub when: Option<String>,
    /// Matches only the model's n-th answer in the conversation, from 1 (n = 1 + the assistant
    /// messages with text so far; tool-call-only ones do not count); absent: any.
    #[serde(default)]
    pub turn: Option<u32>,
    /// The answer's text.
    pub say: String,
}

impl ModelConfig {
    /// Cost in USD of the given usage at this model's prices.
    /// Cache writes and reads are priced at their own prices when the model sets them.
    pub fn cost_usd(&self, usage: crate::llm::Usage) -> f64 {
        let write = self
            .cache_write_price_per_mtok
            .unwrap_or(self.input_price_per_mtok);
        let read = self
            .cache_read_price_per_mtok
            .unwrap_or(self.input_price_per_mtok);
        (usage.uncached_input_tokens() as f64 * self.input_price_per_mtok
            + usage.cache_creation_input_tokens as f64 * write
            + usage.cache_read_input_tokens as f64 * read
            + usage.output_tokens as f64 * self.output_price_per_mtok)
            / 1_000_000.0
    }

    /// Checks the model named `name`: the thinking budget against `max_tokens`, and the script
    /// (only on the scripted provider, within its bounds).
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if let Some(budget) = self.thinking_budget_tokens
            && budget >= self.max_tokens.unwrap_or(4096)
        {
            return Err(format!(
                "model `{name}`: thinking_budget_tokens ({budget}) must be less than \
                 max_tokens (default 4096)"
            ));
        }
        if self.script.is_empty() {
            return Ok(());
        }
        if self.provider != ProviderKind::Scripted {
            return Err(format!(
                "model `{name}`: script is only for provider = \"scripted\""
            ));
        }
        if self.script.len() > MAX_SCRIPT_RULES {
            return Err(format!(
                "model `{name}`: script has {} rules, at most {MAX_SCRIPT_RULES} are allowed",
                self.script.len()
            ));
        }
        for (i, rule) in self.script.iter().enumerate() {
            let n = i + 1;
            if rule.say.is_empty() {
                return Err(format!(
                    "model `{name}`: script rule {n} has an empty `say`"
                ));
            }
            if rule.say.len() > MAX_SCRIPT_SAY_BYTES {
                return Err(format!(
                    "model `{name}`: script rule {n}'s `say` is {} bytes, at most \
                     {MAX_SCRIPT_SAY_BYTES} are allowed",
                    rule.say.len()
                ));
            }
            if rule.turn == Some(0) {
                return Err(format!(
                    "model `{name}`: script rule {n} has turn = 0; turns count from 1"
                ));
            }
        }
        Ok(())
    }
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Display name.
    pub name: String,
    /// What the agent does.
    #[serde(default)]
    pub description: String,
    /// Model name from `[models]`.
    pub model: String,
    /// System instructions.
    #[serde(default)]
    pub instructions: String,
    /// Tool names the agent may call.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Step limit.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Budget in USD per task.
    #[serde(default = "default_budget")]
    pub budget_usd: f64,
    /// Stream by default.
    #[serde(default = "default_true")]
    pub enable_streaming: bool,
    /// Tools whose calls wait for a human decision (`*` for all).
    #[serde(default)]
    pub require_approval: Vec<String>,
}

fn default_max_steps() -> u32 {
    8
}
fn default_budget() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

/// Worker settings and the run settings copied into each task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Task queue of workflows and activities.
    pub task_queue: String,
    /// Longest heartbeat throttle interval (streaming latency depends on it).
    pub max_heartbeat_throttle_ms: u64,
    /// Streaming: emit a delta after this many ms…
    pub coalesce_ms: u64,
    /// …or this many characters, whichever comes first.
    pub coalesce_chars: usize,
    /// Workflows kept in the worker's cache.
    pub max_cached_workflows: usize,
    /// Most concurrent workflow task polls (workflow tasks and queries wait for one; at least
    /// 2); unset: the SDK's default (5, or autoscaling where the server offers it).
    pub workflow_task_pollers: Option<usize>,
    /// Most concurrent activity task polls; unset: the SDK's default.
    pub activity_task_pollers: Option<usize>,
    /// Move a workflow task off a dead worker's sticky queue after this many seconds.
    pub sticky_timeout_secs: u64,
    /// See [`RunSettings::idle_timeout_secs`].
    pub idle_timeout_secs: u64,
    /// See [`RunSettings::budget_warning_pct`].
    pub budget_warning_pct: f64,
    /// See [`RunSettings::llm_timeout_secs`].
    pub llm_timeout_secs: u64,
    /// See [`RunSettings::llm_heartbeat_timeout_secs`].
    pub llm_heartbeat_timeout_secs: u64,
    /// See [`RunSettings::llm_max_attempts`].
    pub llm_max_attempts: u32,
    /// See [`RunSettings::llm_retry_initial_ms`].
    pub llm_retry_initial_ms: u64,
    /// See [`RunSettings::tool_timeout_secs`].
    pub tool_timeout_secs: u64,
    /// See [`RunSettings::tool_max_attempts`].
    pub tool_max_attempts: u32,
    /// See [`RunSettings::max_events_per_run`].
    pub max_events_per_run: u32,
    /// Process shutdown: in-flight activities are failed (retryably, with their events) at
    /// once, and the process exits after at most this long.
    pub shutdown_timeout_secs: u64,
    /// Size bounds of what the worker hands Temporal (`[worker.limits]`).
    pub limits: SizeLimits,
}

/// Size bounds that keep every Temporal payload (heartbeat details, activity inputs and
/// results, query results, the workflow result, the input a run continues as new with) below
/// the server's payload limit by design (ARCHITECTURE.md, "Sizes"). Copied into each task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SizeLimits {
    /// Temporal's payload (blob) size error limit, `limit.blobSize.error`: 2 MiB by default.
    pub payload_limit_bytes: usize,
    /// One LLM call's events (all attempts), JSON-encoded, at most: past it the answer is
    /// truncated (`finish_reason: "length"`). They reach the workflow in checkpoints of
    /// `checkpoint_bytes`, so this is not bounded by one payload.
    pub max_call_event_bytes: usize,
    /// One answer's text (and tool calls), JSON-encoded, at most: past it the answer is
    /// truncated. It travels whole in `WorkflowLLMCallCompleted`, so it must fit a payload.
    pub max_answer_bytes: usize,
    /// An LLM call hands its events to the workflow (a `checkpoint_call` update) whenever this
    /// many are not durable yet; its heartbeats, failure details and result carry only the
    /// events since the last checkpoint.
    pub checkpoint_bytes: usize,
    /// One run's log, JSON-encoded: a conversation continues as new between turns past half of
    /// it (or once another call would not fit); a turn that would outgrow it ends with
    /// `WorkflowFailed {kind: "log_limit"}`. It bounds a run's history, not a payload.
    pub max_run_log_bytes: usize,
    /// The conversation handed to the model and carried across runs: the oldest turns are
    /// dropped past it (`WorkflowConversationTrimmed`).
    pub max_conversation_bytes: usize,
    /// A tool result the model reads: longer ones are cut, with a truncation marker.
    pub max_tool_result_bytes: usize,
    /// The workflow's own events handed to the next LLM call to publish on the bus first (the
    /// live path for them): at most this many JSON bytes; the rest reach clients from Temporal.
    pub max_handed_event_bytes: usize,
}

impl Default for SizeLimits {
    fn default() -> Self {
        Self {
            payload_limit_bytes: 2 * 1024 * 1024,
            max_call_event_bytes: 8 * 1024 * 1024,
            max_answer_bytes: 1536 * 1024,
            checkpoint_bytes: 256 * 1024,
            max_run_log_bytes: 16 * 1024 * 1024,
            max_conversation_bytes: 256 * 1024,
            max_tool_result_bytes: 16 * 1024,
            max_handed_event_bytes: 32 * 1024,
        }
    }
}

impl SizeLimits {
    /// Room kept in every payload for what is not counted (state, headers, encoding).
    pub const MARGIN_BYTES: usize = 16 * 1024;

    /// Checks that the bounds fit in the payload limit: an LLM call's result, heartbeat and
    /// failure details and each checkpoint (the events since the last checkpoint, and the
    /// answer), its input (the conversation, the earlier attempts' events since the last
    /// checkpoint and the workflow's events for the bus), and what a run continues as new with
    /// besides its log (the conversation and the last answer). A run's log is carried only when
    /// it fits; it must hold at least one whole call.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fits = |what: &str, bytes: usize| {
            if bytes + Self::MARGIN_BYTES <= self.payload_limit_bytes {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "[worker.limits]: {what} ({bytes} bytes) plus a {} byte margin exceeds \
                     payload_limit_bytes ({})",
                    Self::MARGIN_BYTES,
                    self.payload_limit_bytes
                )))
            }
        };
        fits(
            "an LLM call's result, checkpoint_bytes + max_answer_bytes",
            self.checkpoint_bytes + self.max_answer_bytes,
        )?;
        fits(
            "an LLM call's input, max_conversation_bytes + checkpoint_bytes + \
             max_handed_event_bytes",
            self.max_conversation_bytes + self.checkpoint_bytes + self.max_handed_event_bytes,
        )?;
        fits(
            "a run's carried state, max_conversation_bytes + max_answer_bytes",
            self.max_conversation_bytes + self.max_answer_bytes,
        )?;
        if self.max_answer_bytes > self.max_call_event_bytes
            || self.checkpoint_bytes > self.max_call_event_bytes
        {
            return Err(ConfigError::Invalid(
                "[worker.limits]: max_call_event_bytes must hold max_answer_bytes and \
                 checkpoint_bytes"
                    .into(),
            ));
        }
        if self.max_call_event_bytes + self.max_tool_result_bytes > self.max_run_log_bytes {
            return Err(ConfigError::Invalid(
                "[worker.limits]: max_run_log_bytes must hold at least one LLM call and one tool \
                 result"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            task_queue: "agentflow".into(),
            max_heartbeat_throttle_ms: 30,
            coalesce_ms: 50,
            coalesce_chars: 64,
            max_cached_workflows: 1000,
            workflow_task_pollers: None,
            activity_task_pollers: None,
            sticky_timeout_secs: 5,
            idle_timeout_secs: 3600,
            budget_warning_pct: 80.0,
            llm_timeout_secs: 300,
            llm_heartbeat_timeout_secs: 10,
            llm_max_attempts: 3,
            llm_retry_initial_ms: 500,
            tool_timeout_secs: 30,
            tool_max_attempts: 3,
            max_events_per_run: 2000,
            shutdown_timeout_secs: 10,
            limits: SizeLimits::default(),
        }
    }
}

/// Settings of the api process and its per-task relays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Address to listen on.
    pub listen: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Interval of SSE keep-alive comments; a departed client is noticed by the second write
    /// after it left, so within two intervals even while its task is silent.
    pub keep_alive_secs: u64,
    /// Reconnect delay sent to clients in the first frame (`retry:`).
    pub sse_retry_ms: u64,
    /// A relay with no subscriber stops after this long.
    pub relay_linger_ms: u64,
    /// Interval of `Describe` polls while an LLM call streams and its heartbeats change.
    pub describe_interval_ms: u64,
    /// Longest interval: each poll that finds nothing new stretches the interval by half,
    /// up to this; a change snaps it back to `describe_interval_ms`.
    pub max_describe_interval_ms: u64,
    /// Timeout of one workflow query (queries wait for a worker).
    pub query_timeout_ms: u64,
    /// Timeout of every other Temporal RPC a request makes (updates such as execute, pause or
    /// cancel wait for the task's worker; describe, start, list, result reads); past it → 503.
    pub rpc_timeout_ms: u64,
    /// On SIGTERM, requests still waiting get 503 after half of this, and connections still
    /// open after all of it are closed: the api always stops within it.
    pub shutdown_timeout_secs: u64,
    /// Page size limit of task lists.
    pub max_page_size: usize,
    /// Most HTTP connections open at once; one more gets 503 (problem+json) and is closed.
    pub max_connections: usize,
    /// Most SSE streams open at once, over all tasks; one more gets 429 with `Retry-After`.
    pub max_streams: usize,
    /// Most SSE streams of one task at once; one more gets 429 with `Retry-After`.
    pub max_streams_per_task: usize,
    /// Most relays at once (tasks followed, lingering ones included); a stream that needs one
    /// more gets 503 with `Retry-After`.
    pub max_relays: usize,
    /// A request's headers and body must arrive within this long: a late body gets 408, late
    /// headers get the connection closed.
    pub request_read_timeout_secs: u64,
    /// Origins allowed to call the api from a browser (CORS), e.g. `https://app.example`;
    /// none by default. A state-changing request from any other origin is refused.
    pub cors_origins: Vec<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            keep_alive_secs: 5,
            sse_retry_ms: 1000,
            relay_linger_ms: 5000,
            describe_interval_ms: 25,
            max_describe_interval_ms: 100,
            query_timeout_ms: 3000,
            rpc_timeout_ms: 10_000,
            shutdown_timeout_secs: 10,
            max_page_size: 200,
            max_connections: 16_384,
            max_streams: 16_000,
            max_streams_per_task: 10_000,
            max_relays: 4096,
            request_read_timeout_secs: 30,
            cors_origins: Vec::new(),
        }
    }
}

impl ApiSettings {
    /// [`ApiSettings::query_timeout_ms`] as a duration.
    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms.max(1))
    }

    /// [`ApiSettings::rpc_timeout_ms`] as a duration.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms.max(1))
    }

    /// [`ApiSettings::request_read_timeout_secs`] as a duration.
    pub fn request_read_timeout(&self) -> Duration {
        Duration::from_secs(self.request_read_timeout_secs.max(1))
    }

    /// [`ApiSettings::shutdown_timeout_secs`] as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// The live event bus: NATS with JetStream. Without a `url`, every LLM call streams over its
/// heartbeats (the degraded path; docs/CONTRACT.md, Invariant 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// NATS server URL(s), comma-separated; empty: no bus.
    pub url: String,
    /// The JetStream stream holding the calls' events.
    pub stream: String,
    /// Subject prefix: a call's events go to `<prefix>.<task>.<seq_base>`.
    pub subject_prefix: String,
    /// How long a call's messages are kept; must cover the longest a call can live.
    pub max_age_secs: u64,
    /// Most bytes the stream holds; past it publishes are refused (calls fall back to
    /// heartbeats), never is anything dropped.
    pub max_bytes: i64,
    /// Window in which a repeated message id is stored once.
    pub duplicate_window_secs: u64,
    /// Largest message the stream accepts (an event's JSON).
    pub max_message_bytes: i32,
    /// Liveness heartbeat interval of an LLM call on the bus.
    pub heartbeat_ms: u64,
    /// Connecting gives up after this long (the process starts without the bus and keeps trying).
    pub connect_timeout_ms: u64,
    /// A publish not acknowledged within this long moves its call to the heartbeat path.
    pub ack_timeout_ms: u64,
    /// Most publishes of one process awaiting their acknowledgement.
    pub max_pending_acks: usize,
    /// How often a relay reads the pending LLM call's heartbeat marker (to notice a call that
    /// left the bus).
    pub marker_interval_ms: u64,
    /// Workers send a progress hint after each workflow activation, and relays read the log
    /// on hints instead of long-polling history. Every worker of the task queue must agree.
    pub progress_hints: bool,
    /// NATS user to connect as, with `password`; none: no credentials. Each process connects
    /// as its own user: the worker's may publish events, the api's may only read them
    /// (docker/nats.conf).
    pub user: Option<String>,
    /// The user's password. Best given in the environment (`AGENTFLOW_BUS__PASSWORD`; quoted,
    /// `'"123456"'`, if it reads as a number) rather than in the file; never shown (its `Debug`
    /// is redacted) nor logged.
    pub password: Option<Password>,
    /// PEM file of the certificate authorities that sign the server's TLS certificate, trusted
    /// instead of the system's roots (which are trusted without it).
    pub tls_ca_file: Option<PathBuf>,
    /// Refuse a connection without TLS (a `tls://` URL requires it too).
    pub tls_required: bool,
    /// The subject prefix of the replies this process receives (JetStream answers, consumer
    /// deliveries); none: `_INBOX_<user>` with a `user` (docker/nats.conf lets `worker`
    /// subscribe to `_INBOX_worker.>` only, `api` to `_INBOX_api.>`: no user reads another's
    /// replies), NATS's own `_INBOX` without. See [`BusSettings::inbox_prefix`].
    pub inbox_prefix: Option<String>,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            stream: "AGENTFLOW_CALLS".into(),
            subject_prefix: "agentflow.calls".into(),
            max_age_secs: 3600,
            max_bytes: 1 << 30,
            duplicate_window_secs: 120,
            max_message_bytes: 1 << 20,
            heartbeat_ms: 1000,
            connect_timeout_ms: 2000,
            ack_timeout_ms: 5000,
            max_pending_acks: 4096,
            marker_interval_ms: 1000,
            progress_hints: true,
            user: None,
            password: None,
            tls_ca_file: None,
            tls_required: false,
            inbox_prefix: None,
        }
    }
}

impl BusSettings {
    /// The inbox prefix this process uses: `inbox_prefix`, else `_INBOX_<user>`, else
    /// `_INBOX`.
    pub fn inbox_prefix(&self) -> String {
        match (&self.inbox_prefix, &self.user) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some(user)) => format!("_INBOX_{user}"),
            (None, None) => "_INBOX".into(),
        }
    }

    /// Whether a bus is configured.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Checks retention against the longest a call can live, and the duplicate window.
    pub fn validate(&self, worker: &WorkerSettings) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let longest = worker.longest_llm_call();
        if Duration::from_secs(self.max_age_secs) < longest {
            return Err(ConfigError::Invalid(format!(
                "[bus] max_age_secs ({}) is shorter than the longest an LLM call can live \
                 ({} s: llm_timeout_secs × llm_max_attempts plus the backoffs); a retry could \
                 find its call's events gone",
                self.max_age_secs,
                longest.as_secs()
            )));
        }
        if self.duplicate_window_secs == 0 || self.duplicate_window_secs > self.max_age_secs {
            return Err(ConfigError::Invalid(
                "[bus] duplicate_window_secs must be between 1 and max_age_secs".into(),
            ));
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= worker.llm_heartbeat_timeout_secs * 1000 {
            return Err(ConfigError::Invalid(
                "[bus] heartbeat_ms must be above 0 and below llm_heartbeat_timeout_secs".into(),
            ));
        }
        if self.max_message_bytes < 1024 || self.max_bytes < i64::from(self.max_message_bytes) {
            return Err(ConfigError::Invalid(
                "[bus] max_message_bytes must be at least 1024 and at most max_bytes".into(),
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(ConfigError::Invalid(
                "[bus] user and password go together".into(),
            ));
        }
        let token = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        let inbox = self.inbox_prefix();
        if inbox.len() > 64 || !inbox.split('.').all(token) {
            return Err(ConfigError::Invalid(format!(
                "[bus] inbox_prefix `{inbox}` (set, or `_INBOX_<user>`): use dot-separated \
                 tokens of A-Z, a-z, 0-9, `_` and `-`, at most 64 characters"
            )));
        }
        Ok(())
    }
}

/// A password: a string in the config, redacted by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl WorkerSettings {
    /// The longest an LLM call can live: every attempt to its timeout, plus the backoffs
    /// between them (doubling from `llm_retry_initial_ms`, at most 100 × it).
    pub fn longest_llm_call(&self) -> Duration {
        let attempts = self.llm_max_attempts.max(1);
        let initial = Duration::from_millis(self.llm_retry_initial_ms);
        let backoffs: Duration = (0..attempts - 1)
            .map(|i| (initial * 2u32.saturating_pow(i)).min(initial * 100))
            .sum();
        Duration::from_secs(self.llm_timeout_secs) * attempts + backoffs
    }
}

impl AgentflowConfig {
    /// Loads the configuration: `path` if given (it must exist), else `AGENTFLOW_CONFIG`, else
    /// `./agentflow.toml` if present, else the shipped default; then `AGENTFLOW_…` overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("AGENTFLOW_CONFIG").map(PathBuf::from));
        let figment = match explicit {
            Some(path) if !path.exists() => return Err(ConfigError::Missing(path)),
            Some(path) => Figment::from(Toml::file_exact(path)),
            None if Path::new("agentflow.toml").exists() => {
                Figment::from(Toml::file_exact("agentflow.toml"))
            }
            None => Figment::from(Toml::string(DEFAULT_CONFIG)),
        };
        let config: Self = figment
            .merge(Env::prefixed("AGENTFLOW_").split("__").ignore(&["config"]))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// The shipped default configuration, without file or environment overrides.
    pub fn default_config() -> Self {
        let config: Self = Figment::from(Toml::string(DEFAULT_CONFIG))
            .extract()
            .expect("the shipped default configuration parses");
        config
    }

    /// Checks that every model and declared tool is valid and every agent's model exists. (An agent may
    /// list a tool that is neither built in nor declared: one a worker registers in code.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, tool) in &self.tools {
            tool.validate(name).map_err(ConfigError::Invalid)?;
        }
        for (name, server) in &self.mcp_servers {
            server.validate(name).map_err(ConfigError::Invalid)?;
            if self.tools.contains_key(name) {
                return Err(ConfigError::Invalid(format!(
                    "`{name}` names both a tool and an MCP server; rename one"
                )));
            }
        }
        for (name, model) in &self.models {
            model.validate(name).map_err(ConfigError::Invalid)?;
        }
        for (id, agent) in &self.agents {
            if !self.models.contains_key(&agent.model) {
                return Err(ConfigError::Invalid(format!(
                    "agent `{id}` uses model `{}`, which is not under [models]",
                    agent.model
                )));
            }
        }
        let agents = self.agents.keys().map(String::as_str).collect();
        let models = self.models.keys().map(String::as_str).collect();
        for (id, team) in &self.teams {
            team.validate(id, &agents, &models)
                .map_err(ConfigError::Invalid)?;
        }
        self.auth.validate().map_err(ConfigError::Invalid)?;
        self.limits.validate().map_err(ConfigError::Invalid)?;
        for (id, limits) in &self.limits.agents {
            if !self.agents.contains_key(id) && !self.teams.contains_key(id) {
                return Err(ConfigError::Invalid(format!(
                    "[limits.agents.{id}]: no agent or team `{id}`"
                )));
            }
            if let Some(model) = limits
                .models
                .iter()
                .find(|m| *m != "*" && !self.models.contains_key(*m))
            {
                return Err(ConfigError::Invalid(format!(
                    "[limits.agents.{id}]: model `{model}` is not under [models]"
                )));
            }
        }
        self.worker.limits.validate()?;
        self.bus.validate(&self.worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_config_declares_every_kind_of_tool_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agentflow.toml");
        let config = AgentflowConfig::load(Some(&path)).expect("examples/agentflow.toml loads");
        let kinds: Vec<_> = config.tools.values().map(|t| t.kind).collect();
        assert!(kinds.contains(&crate::tools::ToolKind::Http));
        assert!(kinds.contains(&crate::tools::ToolKind::Activity));
        assert!(config.mcp_servers["time"].command.is_some(), "stdio");
        assert!(config.mcp_servers["notes"].url.is_some(), "streamable HTTP");
        let toolsmith = &config.agents["toolsmith"].tools;
        for name in ["forecast", "weather", "time", "notes"] {
            assert!(toolsmith.iter().any(|t| t == name), "{name}");
        }
    }

    #[test]
    fn the_shipped_default_has_the_assistant_on_scripted() {
        let config = AgentflowConfig::default_config();
        config.validate().unwrap();
        let assistant = &config.agents["assistant"];
        assert_eq!(assistant.model, "scripted");
        assert_eq!(config.models["scripted"].provider, ProviderKind::Scripted);
        assert!(assistant.tools.contains(&"calculator".to_string()));
    }

    #[test]
    fn bus_retention_must_cover_the_longest_call() {
        let mut config = AgentflowConfig::default_config();
        config.bus.url = "nats://127.0.0.1:4222".into();
        config.validate().unwrap();
        assert_eq!(
            config.worker.longest_llm_call(),
            Duration::from_millis(3 * 300_000 + 500 + 1000)
        );
        config.bus.max_age_secs = 900;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_age_secs"), "{err}");
        config.bus.max_age_secs = 3600;
        config.bus.duplicate_window_secs = 7200;
        assert!(config.validate().is_err());
        config.bus.url.clear();
        config.validate().unwrap();
    }

    #[test]
    fn a_bus_user_needs_its_password_which_is_never_shown() {
        let mut config = AgentflowConfig::default_config();
        config.bus.user = Some("worker".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("user and password"), "{err}");
        config.bus.password = Some(Password("s3cret-pw".into()));
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("s3cret-pw"));
    }

    #[test]
    fn an_inbox_prefix_is_subject_tokens_without_wildcards() {
        let mut config = AgentflowConfig::default_config();
        assert_eq!(config.bus.inbox_prefix(), "_INBOX");
        config.bus.user = Some("api".into());
        config.bus.password = Some(Password("pw".into()));
        assert_eq!(config.bus.inbox_prefix(), "_INBOX_api", "the user's own");
        for good in ["_INBOX", "_INBOX_api", "replies.worker-1"] {
            config.bus.inbox_prefix = Some(good.into());
            config.validate().unwrap();
            assert_eq!(config.bus.inbox_prefix(), good);
        }
        for bad in ["", "_INBOX.>", "a..b", "in box", "*", ".x"] {
            config.bus.inbox_prefix = Some(bad.into());
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("inbox_prefix"), "{bad}: {err}");
        }
        config.bus.inbox_prefix = None;
        config.bus.user = Some("a user".into());
        assert!(
            config.validate().is_err(),
            "a user name that makes no prefix"
        );
    }

    #[test]
    fn cost_uses_prices_per_million_tokens() {
        let mut model = AgentflowConfig::default_config().models["scripted"].clone();
        model.input_price_per_mtok = 2.0;
        model.output_price_per_mtok = 10.0;
        let cost = model.cost_usd(crate::llm::Usage::new(500_000, 100_000));
        assert!((cost - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_team_is_checked_at_start_up() {
        let mut config = AgentflowConfig::default_config();
        let team: crate::team::TeamConfig = serde_json::from_value(serde_json::json!({
            "name": "Duo",
            "members": [{"agent": "assistant", "name": "Ada"}],
            "routing": {"mode": "mention", "default_member": "Ada"},
            "budget_usd": 1.0
        }))
        .unwrap();
        config.teams.insert("duo".into(), team.clone());
        config.validate().unwrap();
        let mut ghost = team;
        ghost.members[0].agent = "ghost".into();
        config.teams.insert("duo".into(), ghost);
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("team `duo`") && error.contains("ghost"),
            "{error}"
        );
    }

    #[test]
    fn a_thinking_budget_must_leave_room_for_the_answer() {
        let mut config = AgentflowConfig::default_config();
        let model = config.models.get_mut("claude-sonnet").unwrap();
        model.thinking_budget_tokens = Some(2048);
        config.validate().unwrap();
        let model = config.models.get_mut("claude-sonnet").unwrap();
        model.thinking_budget_tokens = Some(4096);
        assert!(config.validate().is_err(), "not less than max_tokens");
    }

    #[test]
    fn a_script_parses_on_a_scripted_model_and_is_refused_elsewhere() {
        let config: AgentflowConfig = Figment::from(Toml::string(
            "[models.plume]\nprovider = \"scripted\"\n\
             script = [{ when = \"poem\", say = \"Plume\" }, { say = \"Mimir\" }]\n",
        ))
        .extract()
        .unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.models["plume"].script,
            [
                ScriptRule {
                    when: Some("poem".into()),
                    turn: None,
                    say: "Plume".into()
                },
                ScriptRule {
                    when: None,
                    turn: None,
                    say: "Mimir".into()
                },
            ]
        );

        let mut config = AgentflowConfig::default_config();
        let rule = ScriptRule {
            when: None,
            turn: None,
            say: "hi".into(),
        };
        let model = config.models.get_mut("scripted").unwrap();
        model.script = vec![rule.clone(); MAX_SCRIPT_RULES];
        config.validate().unwrap();
        let openai = ModelConfig {
            provider: ProviderKind::Openai,
            ..config.models["scripted"].clone()
        };
        config.models.insert("gpt".into(), openai);
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("model `gpt`")
                && err.contains("script is only for provider = \"scripted\""),
            "{err}"
        );
        config.models.remove("gpt");

        let model = config.models.get_mut("scripted").unwrap();
        model.script.push(rule.clone());
        assert!(config.validate().is_err(), "too many rules");
        let empty = ScriptRule {
            say: String::new(),
            ..rule.clone()
        };
        let long = ScriptRule {
            say: "a".repeat(MAX_SCRIPT_SAY_BYTES + 1),
            ..rule.clone()
        };
        let turn_zero = ScriptRule {
            turn: Some(0),
            ..rule
        };
        for bad in [empty, long, turn_zero] {
            let model = config.models.get_mut("scripted").unwrap();
            model.script = vec![bad.clone()];
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.contains("model `scripted`: script rule 1"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn cache_writes_and_reads_are_priced_apart_from_other_input() {
        let mut model = AgentflowConfig::default_config().models["scripted"].clone();
        model.input_price_per_mtok = 3.0;
        model.output_price_per_mtok = 15.0;
        model.cache_write_price_per_mtok = Some(3.75);
        model.cache_read_price_per_mtok = Some(0.3);
        // 1M input of which 200k written to and 500k read from the cache, 100k output.
        let usage = crate::llm::Usage::new(1_000_000, 100_000).with_cache(200_000, 500_000);
        let cost = model.cost_usd(usage);
        let expected = 0.3 * 3.0 + 0.2 * 3.75 + 0.5 * 0.3 + 0.1 * 15.0;
        assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail dictates the closure type
    fn env_overrides_nested_keys_and_unknown_models_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                "[models.m]\nprovider = \"scripted\"\n[agents.a]\nname = \"A\"\nmodel = \"m\"\n",
            )?;
            jail.set_env("AGENTFLOW_WORKER__TASK_QUEUE", "q2");
            jail.set_env("AGENTFLOW_WORKER__WORKFLOW_TASK_POLLERS", "8");
            jail.set_env("AGENTFLOW_MODELS__M__TOKEN_DELAY_MS", "5");
            let config = AgentflowConfig::load(Some(Path::new("custom.toml"))).unwrap();
            assert_eq!(config.models["m"].token_delay_ms, 5);
            assert_eq!(config.worker.task_queue, "q2");
            assert_eq!(config.worker.workflow_task_pollers, Some(8));
            assert_eq!(config.worker.activity_task_pollers, None);
            assert_eq!(config.agents["a"].max_steps, 8);
            jail.clear_env();
            jail.create_file("bad.toml", "[agents.a]\nname = \"A\"\nmodel = \"nope\"\n")?;
            let err = AgentflowConfig::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(err.to_string().contains("nope"), "{err}");
            assert!(matches!(
                AgentflowConfig::load(Some(Path::new("missing.toml"))),
                Err(ConfigError::Missing(_))
            ));
            Ok(())
        });
    }
}

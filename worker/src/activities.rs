//! Activities: the LLM call (the only event-emitting activity) and tool calls.
//!
//! The LLM activity numbers its events from the `seq_base` the workflow hands it and heartbeats
//! **all** events of the call so far (cumulative details). A retry starts from the previous
//! attempt's heartbeat details, keeps those events, records `WorkflowLLMCallRetrying` and numbers
//! on after them. A failure or cancellation attaches the events as details, so the workflow can
//! append everything a client may have seen (DESIGN.md, Invariant 1).

use crate::coalesce::Coalescer;
use crate::llm::{LlmChunk, LlmError, LlmRequest, LlmResponse, provider_for};
use crate::tools::{ToolError, ToolRegistry};
use agentflow_shared::config::ModelConfig;
use agentflow_shared::event::{
    Event, EventKind, LlmCallCompleted, LlmCallDelta, LlmCallRetrying, LlmCallStarted, Mode,
};
use agentflow_shared::ids::{AgentId, Seq, TaskId};
use agentflow_shared::llm::ChatMessage;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Application failure type of a retryable LLM error.
pub const LLM_ERROR: &str = "LlmError";

/// Input of [`AgentActivities::llm_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCallInput {
    /// The task.
    pub task_id: TaskId,
    /// Its agent.
    pub agent_id: AgentId,
    /// The agent-loop step.
    pub step: u32,
    /// Seq of the first event this call emits.
    pub seq_base: Seq,
    /// Batch or streaming.
    pub mode: Mode,
    /// Model name (as configured).
    pub model_name: String,
    /// The model's config and prices.
    pub model: ModelConfig,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Names of the tools the model may call.
    pub tool_names: Vec<String>,
    /// Cost of the run before this call.
    pub cost_before_usd: f64,
    /// Events of the call's earlier attempts, when the workflow retries the call itself (an
    /// attempt retried by Temporal finds them in its heartbeat details instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_events: Vec<Event>,
    /// The attempt, when the workflow retries the call itself (else Temporal's count).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

/// Output of [`AgentActivities::llm_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCallOutput {
    /// Every event of the call, all attempts, numbered from `seq_base`.
    pub events: Vec<Event>,
    /// The model's answer.
    pub response: LlmResponse,
    /// Cost of this call.
    pub cost_usd: f64,
}

/// Input of [`AgentActivities::tool_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallInput {
    /// Tool name.
    pub tool_name: String,
    /// Id of the call.
    pub tool_call_id: String,
    /// Arguments from the model.
    pub arguments: Value,
}

/// Output of [`AgentActivities::tool_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallOutput {
    /// Whether the tool succeeded.
    pub success: bool,
    /// The result when it succeeded.
    pub result: Option<Value>,
    /// The error when it failed.
    pub error: Option<String>,
    /// Wall time of the call.
    pub duration_ms: u64,
}

/// How streamed text is coalesced into `WorkflowLLMCallDelta` events.
#[derive(Debug, Clone, Copy)]
pub struct CoalesceSettings {
    /// Emit after this long…
    pub interval: Duration,
    /// …or this many characters.
    pub max_chars: usize,
}

/// The activities of the agent loop, with what they need at run time.
pub struct AgentActivities {
    http: reqwest::Client,
    tools: ToolRegistry,
    coalesce: CoalesceSettings,
}

impl AgentActivities {
    /// Activities using these tools and coalescing settings.
    pub fn new(tools: ToolRegistry, coalesce: CoalesceSettings) -> Self {
        Self {
            http: reqwest::Client::new(),
            tools,
            coalesce,
        }
    }
}

/// The events of one LLM call across attempts.
struct CallLog {
    input_task: TaskId,
    agent_id: AgentId,
    step: u32,
    next_seq: Seq,
    events: Vec<Event>,
}

impl CallLog {
    fn resume(input: &LlmCallInput, previous: Vec<Event>) -> Self {
        let next_seq = Seq(input.seq_base.0 + previous.len() as u64);
        Self {
            input_task: input.task_id,
            agent_id: input.agent_id.clone(),
            step: input.step,
            next_seq,
            events: previous,
        }
    }

    fn push(&mut self, kind: EventKind) {
        self.events.push(Event {
            seq: self.next_seq,
            kind,
            task_id: self.input_task,
            agent_id: self.agent_id.clone(),
            timestamp: chrono::Utc::now(),
            step: self.step,
        });
        self.next_seq = self.next_seq.next();
    }
}

fn failure(error: &LlmError, events: Vec<Event>) -> ActivityError {
    ApplicationFailure::builder(error.message.clone())
        .type_name(LLM_ERROR.to_owned())
        .non_retryable(!error.retryable)
        .details(events)
        .build()
        .into()
}

#[activities]
impl AgentActivities {
    /// Calls the model once (batch or streaming), emitting the call's events.
    #[activity]
    #[tracing::instrument(skip_all, fields(task_id = %input.task_id, step = input.step, attempt))]
    pub async fn llm_call(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: LlmCallInput,
    ) -> Result<LlmCallOutput, ActivityError> {
        let attempt = ctx.info().attempt.max(input.attempt);
        tracing::Span::current().record("attempt", attempt);
        let heartbeated: Vec<Event> = ctx.heartbeat_details().deserialize()?.unwrap_or_default();
        let previous = if heartbeated.len() >= input.previous_events.len() {
            heartbeated
        } else {
            input.previous_events.clone()
        };
        let mut log = CallLog::resume(&input, previous);
        if log.events.is_empty() {
            log.push(EventKind::LlmCallStarted(LlmCallStarted {
                step: input.step,
                model: input.model_name.clone(),
                message_count: input.messages.len(),
            }));
        } else {
            log.push(EventKind::LlmCallRetrying(LlmCallRetrying {
                step: input.step,
                attempt,
            }));
        }
        ctx.record_heartbeat(log.events.clone()).await?;

        let started = Instant::now();
        let provider = match provider_for(&input.model, &self.http) {
            Ok(provider) => provider,
            Err(error) => return Err(failure(&error, log.events)),
        };
        let request = LlmRequest {
            model: input
                .model
                .model
                .clone()
                .unwrap_or_else(|| input.model_name.clone()),
            messages: input.messages.clone(),
            tools: self.tools.specs(&input.tool_names),
            stream: input.mode == Mode::Streaming,
        };
        let mut chunks = provider.call(request);
        let mut coalescer = Coalescer::new(self.coalesce.interval, self.coalesce.max_chars);
        let mut keep_alive = tokio::time::interval(Duration::from_secs(1));
        let response = loop {
            tokio::select! {
                _ = ctx.cancelled() => {
                    if let Some(text) = coalescer.flush() {
                        push_delta(&mut log, input.step, &mut coalescer, text);
                    }
                    return Err(ActivityError::cancelled_with_details(log.events));
                }
                _ = keep_alive.tick() => {
                    ctx.record_heartbeat(log.events.clone()).await?;
                }
                chunk = chunks.next() => match chunk {
                    Some(Ok(LlmChunk::Text(text))) => {
                        if let Some(text) = coalescer.push(&text, Instant::now()) {
                            push_delta(&mut log, input.step, &mut coalescer, text);
                            ctx.record_heartbeat(log.events.clone()).await?;
                        }
                    }
                    Some(Ok(LlmChunk::Done(response))) => break response,
                    Some(Err(error)) => {
                        tracing::warn!(error = %error.message, retryable = error.retryable, "LLM call failed");
                        if let Some(text) = coalescer.flush() {
                            push_delta(&mut log, input.step, &mut coalescer, text);
                        }
                        return Err(failure(&error, log.events));
                    }
                    None => {
                        let error = LlmError::retryable("the provider stream ended without an answer");
                        return Err(failure(&error, log.events));
                    }
                }
            }
        };
        if let Some(text) = coalescer.flush() {
            push_delta(&mut log, input.step, &mut coalescer, text);
        }
        let cost_usd = input.model.cost_usd(response.usage);
        log.push(EventKind::LlmCallCompleted(LlmCallCompleted {
            step: input.step,
            model: input.model_name.clone(),
            content: response.content.clone(),
            tool_calls: response.tool_calls.clone(),
            usage: response.usage,
            cost_usd,
            total_cost_usd: input.cost_before_usd + cost_usd,
            duration_ms: started.elapsed().as_millis() as u64,
        }));
        Ok(LlmCallOutput {
            events: log.events,
            response,
            cost_usd,
        })
    }

    /// Runs one tool. Unknown tools and bad arguments are a failed result, not an error.
    #[activity]
    #[tracing::instrument(skip_all, fields(tool = %input.tool_name, call = %input.tool_call_id))]
    pub async fn tool_call(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ToolCallInput,
    ) -> Result<ToolCallOutput, ActivityError> {
        let started = Instant::now();
        let outcome = match self.tools.get(&input.tool_name) {
            None => Err(format!("unknown tool `{}`", input.tool_name)),
            Some(tool) => match tool.call(input.arguments).await {
                Ok(value) => Ok(value),
                Err(ToolError::Transient(message)) => {
                    return Err(ApplicationFailure::new(message).into());
                }
                Err(error) => Err(error.to_string()),
            },
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        Ok(match outcome {
            Ok(value) => ToolCallOutput {
                success: true,
                result: Some(value),
                error: None,
                duration_ms,
            },
            Err(error) => ToolCallOutput {
                success: false,
                result: None,
                error: Some(error),
                duration_ms,
            },
        })
    }
}

fn push_delta(log: &mut CallLog, step: u32, coalescer: &mut Coalescer, text: String) {
    let chunk_index = coalescer.take_index();
    log.push(EventKind::LlmCallDelta(LlmCallDelta {
        step,
        text,
        chunk_index,
    }));
}

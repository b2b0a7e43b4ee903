//! The event log entry and every event type of the contract (docs/CONTRACT.md, "Event types").
//!
//! On the wire an event is
//! `{"seq":7,"type":"WorkflowToolCallCompleted","data":{…},"task_id":"…","agent_id":"…","timestamp":"…","step":2}`;
//! in a team task `data` also holds the speaking member as `"speaker"`, after its own fields.

use crate::ids::{AgentId, Seq, TaskId};
use crate::llm::{FinishReason, ToolCall, Usage};
use crate::team::events::{
    DiscussionEnded, MemberBudgetExhausted, MemberMessage, MemberTurnStarted, Routed,
};
use crate::tools::ToolKind;
use chrono::{DateTime, Utc};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// One entry of a task's event log.
///
/// In a team task, `data` also has `speaker`: the team member speaking when the event was made.
// Serialize and Deserialize are written by hand (below) so that `speaker` travels inside `data`;
// without a speaker the JSON is what the derived `#[serde(flatten)] kind` form gave.
#[derive(Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct Event {
    /// Dense position in the log, from 1.
    pub seq: Seq,
    /// Type and data of the event (`type` and `data` on the wire; in a team task `data` also
    /// has `speaker`, the member speaking).
    // Read by utoipa only (the serde impls are hand-written): the schema inlines `type`/`data`.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The task this event belongs to.
    pub task_id: TaskId,
    /// The agent running the task.
    pub agent_id: AgentId,
    /// When the event was created (activity wall clock or workflow time).
    pub timestamp: DateTime<Utc>,
    /// The agent-loop step, 0 before the first step.
    pub step: u32,
    /// The team member speaking when the event was made (team tasks only); on the wire it is
    /// `data.speaker`, absent for single-agent tasks.
    #[schema(ignore)]
    pub speaker: Option<String>,
}

impl Event {
    /// The event's type name, e.g. `WorkflowStarted`.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// Whether this event ends the log.
    pub fn is_terminal(&self) -> bool {
        self.kind.is_terminal()
    }
}

/// Whether the task runs the LLM in batch or streaming mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Non-streaming LLM calls; events appear when the call returns.
    Batch,
    /// Streaming LLM calls with `WorkflowLLMCallDelta` events.
    Streaming,
}

impl Mode {
    /// `Streaming` when `enable_streaming` is true.
    pub fn from_streaming(enable_streaming: bool) -> Self {
        if enable_streaming {
            Self::Streaming
        } else {
            Self::Batch
        }
    }
}

/// An error as reported in `WorkflowFailed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// Machine-readable kind: one of [`FailureKind`]'s names, e.g. `llm_error`, `max_steps`.
    pub kind: String,
    /// Human-readable message.
    pub message: String,
}

impl ErrorInfo {
    /// An error of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind: kind.as_str().to_owned(),
            message: message.into(),
        }
    }
}

/// Why a task failed: the `error.kind` of `WorkflowFailed` (a string on the wire, so a client
/// built against an older list still reads a newer kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The LLM call failed for good (`retryable` says whether running it again may help).
    LlmError,
    /// The cost exceeded the budget, with `on_budget_exceeded = "fail"`.
    BudgetExceeded,
    /// No final answer within `max_steps`.
    MaxSteps,
    /// The current turn's messages alone exceed `worker.limits.max_conversation_bytes`.
    ContextLimit,
    /// The run's log has no room for the next call within `worker.limits.max_run_log_bytes`.
    LogLimit,
    /// The workflow met a state it cannot go on from (a bug; logged by the worker).
    Internal,
    /// The workflow was closed from outside (terminated, timed out) without its own terminal
    /// event; the api ends the log with this.
    WorkflowClosed,
}

impl FailureKind {
    /// The kind's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LlmError => "llm_error",
            Self::BudgetExceeded => "budget_exceeded",
            Self::MaxSteps => "max_steps",
            Self::ContextLimit => "context_limit",
            Self::LogLimit => "log_limit",
            Self::Internal => "internal",
            Self::WorkflowClosed => "workflow_closed",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident($data:ident) = $constant:ident: $name:literal ),+ $(,)?) => {
        /// The type of an event with its data; serialized as `"type"` and `"data"` (in a team
        /// task `data` also has `speaker`, the member speaking).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(tag = "type", content = "data")]
        pub enum EventKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($data), )+
        }

        impl EventKind {
            $(
                #[doc = concat!("The type name `", $name, "`.")]
                pub const $constant: &'static str = $name;
            )+

            /// Every event type name of the contract, in declaration order.
            pub const TYPE_NAMES: &'static [&'static str] = &[$($name),+];

            /// The type name used in JSON and as the SSE `event:` field.
            pub fn type_name(&self) -> &'static str {
                match self { $( Self::$variant(_) => $name, )+ }
            }

            /// Writes the `data` entry of an event of this kind, with `speaker` when given.
            fn serialize_data<M: SerializeMap>(
                &self,
                map: &mut M,
                speaker: Option<&str>,
            ) -> Result<(), M::Error> {
                match self { $( Self::$variant(data) => data_entry(map, data, speaker), )+ }
            }

            /// Reads the `data` of an event of type `type_name`, taking `speaker` out of it.
            fn deserialize_data<'de, D: Deserializer<'de>>(
                type_name: &str,
                deserializer: D,
            ) -> Result<(Self, Option<String>), D::Error> {
                let mut speaker = None;
                let tap = SpeakerTap { inner: deserializer, speaker: &mut speaker };
                let kind = match type_name {
                    $( $name => Self::$variant(<$data>::deserialize(tap)?), )+
                    other => return Err(de::Error::unknown_variant(other, Self::TYPE_NAMES)),
                };
                Ok((kind, speaker))
            }
        }
    };
}

event_kinds! {
    /// The run began.
    Started(Started) = STARTED: "WorkflowStarted",
    /// A step of the agent loop began.
    StepStarted(StepStarted) = STEP_STARTED: "WorkflowStepStarted",
    /// A step of the agent loop ended.
    StepCompleted(StepCompleted) = STEP_COMPLETED: "WorkflowStepCompleted",
    /// An LLM call began.
    LlmCallStarted(LlmCallStarted) = LLM_CALL_STARTED: "WorkflowLLMCallStarted",
    /// A coalesced chunk of streamed text.
    LlmCallDelta(LlmCallDelta) = LLM_CALL_DELTA: "WorkflowLLMCallDelta",
    /// An LLM call attempt failed and is being retried.
    LlmCallRetrying(LlmCallRetrying) = LLM_CALL_RETRYING: "WorkflowLLMCallRetrying",
    /// An LLM call returned.
    LlmCallCompleted(LlmCallCompleted) = LLM_CALL_COMPLETED: "WorkflowLLMCallCompleted",
    /// A tool call began.
    ToolCallStarted(ToolCallStarted) = TOOL_CALL_STARTED: "WorkflowToolCallStarted",
    /// A tool call ended, successfully or not.
    ToolCallCompleted(ToolCallCompleted) = TOOL_CALL_COMPLETED: "WorkflowToolCallCompleted",
    /// The cost crossed the warning threshold.
    BudgetWarning(BudgetWarning) = BUDGET_WARNING: "WorkflowBudgetWarning",
    /// The cost passed the budget limit.
    BudgetExceeded(BudgetExceeded) = BUDGET_EXCEEDED: "WorkflowBudgetExceeded",
    /// The budget limit was raised.
    BudgetRaised(BudgetRaised) = BUDGET_RAISED: "WorkflowBudgetRaised",
    /// A tool call waits for a human decision.
    ApprovalRequested(ApprovalRequested) = APPROVAL_REQUESTED: "WorkflowApprovalRequested",
    /// A human decided on a tool call.
    ApprovalReceived(ApprovalReceived) = APPROVAL_RECEIVED: "WorkflowApprovalReceived",
    /// The run was paused.
    Paused(Reason) = PAUSED: "WorkflowPaused",
    /// The run was resumed.
    Resumed(Reason) = RESUMED: "WorkflowResumed",
    /// The oldest turns of the conversation were dropped to keep it within its size bound.
    ConversationTrimmed(ConversationTrimmed) = CONVERSATION_TRIMMED: "WorkflowConversationTrimmed",
    /// A turn of a conversation ended with an answer; the task waits for the next query.
    TurnCompleted(TurnCompleted) = TURN_COMPLETED: "WorkflowTurnCompleted",
    /// The run finished with a final answer (terminal).
    Completed(Completed) = COMPLETED: "WorkflowCompleted",
    /// The run failed (terminal).
    Failed(Failed) = FAILED: "WorkflowFailed",
    /// The run was cancelled (terminal).
    Cancelled(Reason) = CANCELLED: "WorkflowCancelled",
    /// A team routed the message to its speakers.
    Routed(Routed) = ROUTED: "WorkflowRouted",
    /// A team member's turn began.
    MemberTurnStarted(MemberTurnStarted) = MEMBER_TURN_STARTED: "WorkflowMemberTurnStarted",
    /// A team member said something.
    MemberMessage(MemberMessage) = MEMBER_MESSAGE: "WorkflowMemberMessage",
    /// A team member spent its share of the budget and stops speaking.
    MemberBudgetExhausted(MemberBudgetExhausted) = MEMBER_BUDGET_EXHAUSTED: "WorkflowMemberBudgetExhausted",
    /// A team's discussion ended.
    DiscussionEnded(DiscussionEnded) = DISCUSSION_ENDED: "WorkflowDiscussionEnded",
}

impl EventKind {
    /// Whether this kind ends the log.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed(_) | Self::Failed(_) | Self::Cancelled(_)
        )
    }
}

// The wire form of `Event`. Serde's derive cannot put a field of the outer struct inside the
// adjacently tagged `data`, so both directions are written here: serializing writes the entries
// in the derived order; deserializing streams `data` straight into its struct (when `type` came
// first, as this serializer writes it), through `SpeakerTap`, which takes `speaker` out.

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The derived form was a map too; its tag was a unit variant, which is a string in JSON.
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("type", self.type_name())?;
        self.kind
            .serialize_data(&mut map, self.speaker.as_deref())?;
        map.serialize_entry("task_id", &self.task_id)?;
        map.serialize_entry("agent_id", &self.agent_id)?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.serialize_entry("step", &self.step)?;
        map.end()
    }
}

/// Writes the `data` entry: `data` itself, or with `speaker` after its own fields.
fn data_entry<M: SerializeMap, T: Serialize>(
    map: &mut M,
    data: &T,
    speaker: Option<&str>,
) -> Result<(), M::Error> {
    match speaker {
        // Exactly the derived form's path (and no flattening cost on the common case).
        None => map.serialize_entry("data", data),
        Some(speaker) => map.serialize_entry("data", &WithSpeaker { data, speaker }),
    }
}

/// An event's data with the speaker added after its own fields.
#[derive(Serialize)]
struct WithSpeaker<'a, T> {
    /// The event's data.
    #[serde(flatten)]
    data: &'a T,
    /// The team member speaking.
    speaker: &'a str,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

/// The top-level keys of an event.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EventField {
    /// `seq`.
    Seq,
    /// `type`.
    Type,
    /// `data`.
    Data,
    /// `task_id`.
    TaskId,
    /// `agent_id`.
    AgentId,
    /// `timestamp`.
    Timestamp,
    /// `step`.
    Step,
    /// Any other key (ignored, as the derived form did).
    #[serde(other)]
    Other,
}

/// Reads an event from a map.
struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        /// Fails on a key seen twice (as the derived form did).
        fn once<T, E: de::Error>(slot: &Option<T>, name: &'static str) -> Result<(), E> {
            match slot {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        /// The value of a required key.
        fn required<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
            slot.ok_or_else(|| E::missing_field(name))
        }

        let (mut seq, mut type_name, mut task_id, mut agent_id, mut timestamp, mut step) =
            (None, None, None, None, None, None);
        // The data read (with its speaker), or kept as a value while `type` is still to come.
        let mut data: Option<(EventKind, Option<String>)> = None;
        let mut early_data: Option<Value> = None;
        while let Some(field) = map.next_key()? {
            match field {
                EventField::Seq => {
                    once(&seq, "seq")?;
                    seq = Some(map.next_value()?);
                }
                EventField::Type => {
                    once(&type_name, "type")?;
                    type_name = Some(map.next_value::<TypeName>()?.0);
                }
                EventField::Data => {
                    if data.is_some() || early_data.is_some() {
                        return Err(de::Error::duplicate_field("data"));
                    }
                    match type_name {
                        Some(type_name) => data = Some(map.next_value_seed(DataSeed(type_name))?),
                        None => early_data = Some(map.next_value()?),
                    }
                }
                EventField::TaskId => {
                    once(&task_id, "task_id")?;
                    task_id = Some(map.next_value()?);
                }
                EventField::AgentId => {
                    once(&agent_id, "agent_id")?;
                    agent_id = Some(map.next_value()?);
                }
                EventField::Timestamp => {
                    once(&timestamp, "timestamp")?;
                    timestamp = Some(map.next_value()?);
                }
                EventField::Step => {
                    once(&step, "step")?;
                    step = Some(map.next_value()?);
                }
                EventField::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let type_name = required(type_name, "type")?;
        let (kind, speaker) = match (data, early_data) {
            (Some(data), _) => data,
            // `data` came before `type` (e.g. from a `serde_json::Value`, whose keys are sorted).
            (None, Some(value)) => {
                EventKind::deserialize_data(type_name, value).map_err(de::Error::custom)?
            }
            (None, None) => return Err(de::Error::missing_field("data")),
        };
        Ok(Event {
            seq: required(seq, "seq")?,
            kind,
            task_id: required(task_id, "task_id")?,
            agent_id: required(agent_id, "agent_id")?,
            timestamp: required(timestamp, "timestamp")?,
            step: required(step, "step")?,
            speaker,
        })
    }
}

/// An event type name of the contract, checked when read.
struct TypeName(&'static str);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Matches a string against [`EventKind::TYPE_NAMES`].
        struct TypeNameVisitor;

        impl Visitor<'_> for TypeNameVisitor {
            type Value = TypeName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event type name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeName, E> {
                EventKind::TYPE_NAMES
                    .iter()
                    .find(|name| **name == v)
                    .map(|name| TypeName(name))
                    .ok_or_else(|| E::unknown_variant(v, EventKind::TYPE_NAMES))
            }
        }

        deserializer.deserialize_str(TypeNameVisitor)
    }
}

/// Reads the `data` of an event of the given type, with its speaker.
struct DataSeed(&'static str);

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = (EventKind, Option<String>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        EventKind::deserialize_data(self.0, deserializer)
    }
}

/// A deserializer for a data struct that hands it every key but `speaker`, whose value (when a
/// string) it keeps in `speaker`.
struct SpeakerTap<'s, D> {
    /// The deserializer of `data`.
    inner: D,
    /// Where the speaker goes.
    speaker: &'s mut Option<String>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for SpeakerTap<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = TapVisitor {
            inner: visitor,
            speaker: self.speaker,
        };
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = TapVisitor {
            inner: visitor,
            speaker: self.speaker,
        };
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = TapVisitor {
            inner: visitor,
            speaker: self.speaker,
        };
        self.inner.deserialize_map(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

/// Passes a data struct's visitor a map without `speaker` (a struct written as an array has no
/// speaker and is passed as it is).
struct TapVisitor<'s, V> {
    /// The data struct's visitor.
    inner: V,
    /// Where the speaker goes.
    speaker: &'s mut Option<String>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TapVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(TapMap {
            inner: map,
            speaker: self.speaker,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(seq)
    }
}

/// A map access that skips the `speaker` entry, keeping its value.
struct TapMap<'s, A> {
    /// The map of `data`.
    inner: A,
    /// Where the speaker goes.
    speaker: &'s mut Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TapMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.inner.next_key::<Key<'de>>()? {
            match key {
                Key::Borrowed("speaker") => {}
                Key::Owned(ref owned) if owned == "speaker" => {}
                Key::Borrowed(key) => {
                    return seed
                        .deserialize(de::value::BorrowedStrDeserializer::new(key))
                        .map(Some);
                }
                Key::Owned(key) => return seed.deserialize(key.into_deserializer()).map(Some),
            }
            // Only a string is a speaker; another value is dropped, as an unknown field would be.
            if let Value::String(speaker) = self.inner.next_value()? {
                *self.speaker = Some(speaker);
            }
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A map key, borrowed from the input when it can be.
enum Key<'de> {
    /// Borrowed from the input.
    Borrowed(&'de str),
    /// Copied (escaped in the input, or read from an owned value).
    Owned(String),
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads a string key.
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Data of `WorkflowStarted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Started {
    /// The query being answered.
    pub query: String,
    /// Batch or streaming.
    pub mode: Mode,
    /// Step limit.
    pub max_steps: u32,
    /// Budget in USD.
    pub budget_limit_usd: f64,
    /// Model name.
    pub model: String,
    /// The turn, in a conversation (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
}

/// Data of `WorkflowStepStarted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepStarted {
    /// The step number, from 1.
    pub step: u32,
}

/// Data of `WorkflowStepCompleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepCompleted {
    /// The step number.
    pub step: u32,
    /// Total cost so far.
    pub cost_so_far_usd: f64,
    /// Total tokens so far.
    pub tokens_so_far: u64,
}

/// Data of `WorkflowLLMCallStarted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmCallStarted {
    /// The step number.
    pub step: u32,
    /// Model name.
    pub model: String,
    /// Messages sent to the model.
    pub message_count: usize,
}

/// Data of `WorkflowLLMCallDelta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmCallDelta {
    /// The step number.
    pub step: u32,
    /// The coalesced text chunk.
    pub text: String,
    /// Index of this chunk within the attempt, from 0.
    pub chunk_index: u32,
    /// What the text is: the answer (absent) or the model's thinking, never part of the
    /// answer.
    #[serde(default, skip_serializing_if = "DeltaKind::is_answer")]
    pub kind: DeltaKind,
}

/// What a `WorkflowLLMCallDelta`'s text is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeltaKind {
    /// Part of the answer.
    #[default]
    Answer,
    /// Part of the model's thinking (Anthropic extended thinking).
    Thinking,
}

impl DeltaKind {
    /// Whether this is the answer (the field is then left out).
    pub fn is_answer(&self) -> bool {
        *self == Self::Answer
    }
}

/// Data of `WorkflowLLMCallRetrying`: the text streamed so far is discarded by the next attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmCallRetrying {
    /// The step number.
    pub step: u32,
    /// The attempt that now starts, from 2.
    pub attempt: u32,
}

/// Data of `WorkflowLLMCallCompleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmCallCompleted {
    /// The step number.
    pub step: u32,
    /// Model name.
    pub model: String,
    /// The text answer (may be empty when only tools are called).
    pub content: String,
    /// Tool calls requested by the model.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub tool_calls: Vec<ToolCall>,
    /// Token usage of this call.
    pub usage: Usage,
    /// Cost of this call.
    pub cost_usd: f64,
    /// Cost of the run so far, this call included.
    pub total_cost_usd: f64,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// Why the model stopped; `length` when the answer was cut (it is still the answer).
    #[serde(default)]
    pub finish_reason: FinishReason,
}

/// Data of `WorkflowConversationTrimmed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationTrimmed {
    /// Messages dropped (whole turns, oldest first; the instructions are kept).
    pub dropped_messages: usize,
    /// Messages kept.
    pub kept_messages: usize,
    /// JSON size of the kept conversation.
    pub bytes: usize,
    /// The bound, `worker.limits.max_conversation_bytes`.
    pub limit_bytes: usize,
}

/// Data of `WorkflowToolCallStarted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolCallStarted {
    /// The step number.
    pub step: u32,
    /// Tool name.
    pub tool_name: String,
    /// Id of the call.
    pub tool_call_id: String,
    /// Arguments passed to the tool.
    pub arguments: Value,
    /// Where the tool runs (absent for a tool the task does not know, and in logs from before
    /// tools had kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolKind>,
    /// For an `mcp` tool: its server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// Data of `WorkflowToolCallCompleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolCallCompleted {
    /// The step number.
    pub step: u32,
    /// Tool name.
    pub tool_name: String,
    /// Id of the call.
    pub tool_call_id: String,
    /// Whether the tool succeeded.
    pub success: bool,
    /// The result when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// Where the tool runs (as in `WorkflowToolCallStarted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolKind>,
    /// For an `mcp` tool: its server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// Data of `WorkflowBudgetWarning`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetWarning {
    /// Cost so far.
    pub cost_usd: f64,
    /// Budget limit.
    pub limit_usd: f64,
    /// Cost as a percentage of the limit.
    pub usage_pct: f64,
}

/// Data of `WorkflowBudgetExceeded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetExceeded {
    /// Cost so far.
    pub cost_usd: f64,
    /// Budget limit.
    pub limit_usd: f64,
}

/// Data of `WorkflowBudgetRaised`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetRaised {
    /// The limit before.
    pub previous_limit_usd: f64,
    /// The new limit.
    pub limit_usd: f64,
    /// Who raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Data of `WorkflowApprovalRequested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalRequested {
    /// Id to decide on (`POST …/approvals/{approval_id}`).
    pub approval_id: String,
    /// The tool the model wants to call.
    pub tool_name: String,
    /// Id of the call.
    pub tool_call_id: String,
    /// The arguments the model chose.
    pub arguments: Value,
}

/// A human's decision on a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Run the tool (with the arguments as given or edited).
    Approve,
    /// Do not run it; the model is told it was rejected.
    Reject,
}

/// Data of `WorkflowApprovalReceived`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalReceived {
    /// The approval decided on.
    pub approval_id: String,
    /// Approve or reject.
    pub decision: Decision,
    /// The reviewer's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The arguments the tool runs with (edited ones when given).
    pub arguments: Value,
    /// Whether the reviewer edited the arguments.
    pub edited: bool,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Data of `WorkflowTurnCompleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnCompleted {
    /// The turn, from 1.
    pub turn: u32,
    /// The answer of this turn.
    pub final_response: String,
    /// Total cost of the conversation so far.
    pub total_cost_usd: f64,
}

/// Data of events that carry a reason (`WorkflowPaused`, `WorkflowResumed`,
/// `WorkflowCancelled`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// Why it happened (`budget` when the budget paused the run).
    pub reason: String,
    /// Who asked for it, when a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

impl Reason {
    /// A reason nobody in particular asked for.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            requested_by: None,
        }
    }
}

/// Data of `WorkflowCompleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Completed {
    /// The agent's answer.
    pub final_response: String,
    /// Steps taken.
    pub steps: u32,
    /// Total cost.
    pub total_cost_usd: f64,
    /// Total token usage.
    pub usage: Usage,
}

/// Data of `WorkflowFailed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failed {
    /// What went wrong.
    pub error: ErrorInfo,
    /// Whether running the task again may succeed.
    pub retryable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(kind: EventKind) -> Event {
        Event {
            seq: Seq(7),
            kind,
            task_id: "6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11".parse().unwrap(),
            agent_id: AgentId::from("assistant"),
            timestamp: "2026-11-22T10:00:00Z".parse().unwrap(),
            step: 2,
            speaker: None,
        }
    }

    fn delta() -> EventKind {
        EventKind::LlmCallDelta(LlmCallDelta {
            step: 2,
            text: "he said \"hi\"\n".into(),
            chunk_index: 4,
            kind: DeltaKind::Thinking,
        })
    }

    fn tool_call_completed() -> EventKind {
        EventKind::ToolCallCompleted(ToolCallCompleted {
            step: 2,
            tool_name: "calculator".into(),
            tool_call_id: "call_1".into(),
            success: true,
            result: Some(json!(42)),
            error: None,
            duration_ms: 3,
            kind: Some(ToolKind::Builtin),
            server: None,
        })
    }

    #[test]
    fn without_a_speaker_the_bytes_are_those_of_the_derived_form() {
        // Written by the derived `#[serde(flatten)] kind` serialization before `speaker` existed.
        let expected = [
            r#"{"seq":7,"type":"WorkflowToolCallCompleted","data":{"step":2,"tool_name":"calculator","tool_call_id":"call_1","success":true,"result":42,"duration_ms":3,"kind":"builtin"},"task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"assistant","timestamp":"2026-11-22T10:00:00.123456Z","step":2}"#,
            r#"{"seq":7,"type":"WorkflowLLMCallDelta","data":{"step":2,"text":"he said \"hi\"\n","chunk_index":4,"kind":"thinking"},"task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"assistant","timestamp":"2026-11-22T10:00:00.123456Z","step":2}"#,
        ];
        for (kind, expected) in [tool_call_completed(), delta()].into_iter().zip(expected) {
            let event = Event {
                timestamp: "2026-11-22T10:00:00.123456Z".parse().unwrap(),
                ..sample(kind)
            };
            assert_eq!(serde_json::to_string(&event).unwrap(), expected);
        }
    }

    #[test]
    fn the_speaker_is_written_inside_data_after_its_fields() {
        let event = Event {
            speaker: Some("Plume".into()),
            ..sample(delta())
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.contains(r#""kind":"thinking","speaker":"Plume"},"task_id""#),
            "{json}"
        );
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["data"]["speaker"], "Plume");
        assert!(value.get("speaker").is_none());
    }

    #[test]
    fn round_trips_with_and_without_a_speaker() {
        for speaker in [None, Some("Plume".to_owned()), Some("Zoë \"Z\"".to_owned())] {
            for kind in [
                tool_call_completed(),
                delta(),
                EventKind::Cancelled(Reason::new("r")),
            ] {
                let event = Event {
                    speaker: speaker.clone(),
                    ..sample(kind)
                };
                let json = serde_json::to_string(&event).unwrap();
                assert_eq!(
                    serde_json::from_str::<Event>(&json).unwrap(),
                    event,
                    "{json}"
                );
                // Through a `Value`, whose keys are sorted: `data` comes before `type`.
                let value = serde_json::to_value(&event).unwrap();
                assert_eq!(serde_json::from_value::<Event>(value).unwrap(), event);
                // From a reader, where no key is borrowed.
                let read = serde_json::from_reader::<_, Event>(json.as_bytes()).unwrap();
                assert_eq!(read, event);
            }
        }
    }

    #[test]
    fn an_event_from_before_speakers_reads_without_one() {
        let json = r#"{"seq":3,"type":"WorkflowStepStarted","data":{"step":1},"task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"a","timestamp":"2026-11-22T10:00:00Z","step":1}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert_eq!(event.speaker, None);
        assert_eq!(event.kind, EventKind::StepStarted(StepStarted { step: 1 }));
        assert_eq!(serde_json::to_string(&event).unwrap(), json);
    }

    #[test]
    fn a_delta_with_a_speaker_round_trips() {
        // `data` first and an escaped `speaker` key: the buffered and the owned-key paths.
        let json = r#"{"data":{"step":2,"text":"he","chunk_index":0,"spe\u0061ker":"Plume"},"seq":7,"type":"WorkflowLLMCallDelta","task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"assistant","timestamp":"2026-11-22T10:00:00Z","step":2,"extra":[1]}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        let expected = Event {
            speaker: Some("Plume".into()),
            ..sample(EventKind::LlmCallDelta(LlmCallDelta {
                step: 2,
                text: "he".into(),
                chunk_index: 0,
                kind: DeltaKind::Answer,
            }))
        };
        assert_eq!(event, expected);
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.contains(r#""data":{"step":2,"text":"he","chunk_index":0,"speaker":"Plume"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), expected);
    }

    #[test]
    fn a_speaker_that_is_not_a_string_is_ignored() {
        let json = r#"{"seq":7,"type":"WorkflowStepStarted","data":{"speaker":5,"step":1},"task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"a","timestamp":"2026-11-22T10:00:00Z","step":1}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert_eq!(event.speaker, None);
        assert_eq!(event.kind, EventKind::StepStarted(StepStarted { step: 1 }));
    }

    #[test]
    fn bad_events_are_still_errors() {
        let head = r#""seq":1,"task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"a","timestamp":"2026-11-22T10:00:00Z","step":0"#;
        for (body, error) in [
            (r#""type":"Nope","data":{}"#, "unknown variant `Nope`"),
            (r#""data":{},"type":"Nope""#, "unknown variant `Nope`"),
            (r#""type":"WorkflowStepStarted""#, "missing field `data`"),
            (r#""data":{"step":1}"#, "missing field `type`"),
            (
                r#""type":"WorkflowStepStarted","data":{}"#,
                "missing field `step`",
            ),
            (
                r#""type":"WorkflowStepStarted","data":{"speaker":"P"}"#,
                "missing field `step`",
            ),
            (
                r#""type":"WorkflowStepStarted","data":5"#,
                "expected struct StepStarted",
            ),
            (
                r#""type":"WorkflowStepStarted","data":{"step":"x"}"#,
                "invalid type",
            ),
        ] {
            let json = format!("{{{head},{body}}}");
            let message = serde_json::from_str::<Event>(&json)
                .unwrap_err()
                .to_string();
            assert!(message.contains(error), "{json}: {message}");
        }
        let json = r#"{"type":"WorkflowStepStarted","data":{"step":1},"step":0}"#;
        assert!(serde_json::from_str::<Event>(json).is_err());
    }

    #[test]
    fn serializes_to_the_contract_shape() {
        let event = sample(EventKind::ToolCallCompleted(ToolCallCompleted {
            step: 2,
            tool_name: "calculator".into(),
            tool_call_id: "call_1".into(),
            success: true,
            result: Some(json!(42)),
            error: None,
            duration_ms: 3,
            kind: Some(ToolKind::Builtin),
            server: None,
        }));
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            json!({
                "seq": 7,
                "type": "WorkflowToolCallCompleted",
                "task_id": "6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11",
                "agent_id": "assistant",
                "timestamp": "2026-11-22T10:00:00Z",
                "step": 2,
                "data": {
                    "step": 2, "tool_name": "calculator", "tool_call_id": "call_1",
                    "success": true, "result": 42, "duration_ms": 3, "kind": "builtin"
                }
            })
        );
    }

    #[test]
    fn round_trips_every_kind() {
        let kinds = vec![
            EventKind::Started(Started {
                query: "q".into(),
                mode: Mode::Streaming,
                max_steps: 5,
                budget_limit_usd: 1.0,
                model: "scripted".into(),
                turn: None,
            }),
            EventKind::StepStarted(StepStarted { step: 1 }),
            EventKind::StepCompleted(StepCompleted {
                step: 1,
                cost_so_far_usd: 0.5,
                tokens_so_far: 10,
            }),
            EventKind::LlmCallStarted(LlmCallStarted {
                step: 1,
                model: "m".into(),
                message_count: 2,
            }),
            EventKind::LlmCallDelta(LlmCallDelta {
                step: 1,
                text: "he".into(),
                chunk_index: 0,
                kind: Default::default(),
            }),
            EventKind::LlmCallRetrying(LlmCallRetrying {
                step: 1,
                attempt: 2,
            }),
            EventKind::LlmCallCompleted(LlmCallCompleted {
                step: 1,
                model: "m".into(),
                content: "hello".into(),
                tool_calls: vec![ToolCall {
                    id: "c".into(),
                    name: "calculator".into(),
                    arguments: json!({"expression": "1+1"}),
                }],
                usage: Usage::new(3, 4),
                cost_usd: 0.25,
                total_cost_usd: 0.75,
                duration_ms: 12,
                finish_reason: FinishReason::ToolCalls,
            }),
            EventKind::ToolCallStarted(ToolCallStarted {
                step: 1,
                tool_name: "calculator".into(),
                tool_call_id: "c".into(),
                arguments: json!({}),
                kind: None,
                server: None,
            }),
            EventKind::BudgetWarning(BudgetWarning {
                cost_usd: 0.8,
                limit_usd: 1.0,
                usage_pct: 80.0,
            }),
            EventKind::BudgetExceeded(BudgetExceeded {
                cost_usd: 1.5,
                limit_usd: 1.0,
            }),
            EventKind::Paused(Reason {
                reason: "r".into(),
                requested_by: Some("ann".into()),
            }),
            EventKind::BudgetRaised(BudgetRaised {
                previous_limit_usd: 1.0,
                limit_usd: 2.0,
                requested_by: None,
            }),
            EventKind::ApprovalRequested(ApprovalRequested {
                approval_id: "a1".into(),
                tool_name: "calculator".into(),
                tool_call_id: "c".into(),
                arguments: json!({"expression": "1+1"}),
            }),
            EventKind::ApprovalReceived(ApprovalReceived {
                approval_id: "a1".into(),
                decision: Decision::Reject,
                comment: Some("no".into()),
                arguments: json!({}),
                edited: true,
                requested_by: None,
            }),
            EventKind::ConversationTrimmed(ConversationTrimmed {
                dropped_messages: 4,
                kept_messages: 3,
                bytes: 900,
                limit_bytes: 1000,
            }),
            EventKind::TurnCompleted(TurnCompleted {
                turn: 2,
                final_response: "hi".into(),
                total_cost_usd: 0.1,
            }),
            EventKind::Resumed(Reason::new("r")),
            EventKind::Completed(Completed {
                final_response: "done".into(),
                steps: 2,
                total_cost_usd: 1.0,
                usage: Usage::new(1, 2),
            }),
            EventKind::Failed(Failed {
                error: ErrorInfo::new(FailureKind::LlmError, "boom"),
                retryable: false,
            }),
            EventKind::Cancelled(Reason::new("r")),
        ];
        for kind in kinds {
            let event = sample(kind);
            let json = serde_json::to_string(&event).unwrap();
            assert!(json.contains(&format!("\"type\":\"{}\"", event.type_name())));
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn only_the_three_end_events_are_terminal() {
        assert!(EventKind::Cancelled(Reason::new("x")).is_terminal());
        assert!(
            !EventKind::TurnCompleted(TurnCompleted {
                turn: 1,
                final_response: "a".into(),
                total_cost_usd: 0.0
            })
            .is_terminal()
        );
        assert!(!EventKind::StepStarted(StepStarted { step: 1 }).is_terminal());
        assert_eq!(EventKind::TYPE_NAMES.len(), 26);
        assert!(
            EventKind::TYPE_NAMES
                .iter()
                .all(|n| n.starts_with("Workflow"))
        );
    }

    #[test]
    fn a_null_tool_call_list_reads_as_empty() {
        let json = r#"{"seq":1,"type":"WorkflowLLMCallCompleted","task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"a","timestamp":"2026-11-22T10:00:00Z","step":1,"data":{"step":1,"model":"m","content":"hi","tool_calls":null,"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2},"cost_usd":0.0,"total_cost_usd":0.0,"duration_ms":1}}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        let EventKind::LlmCallCompleted(call) = event.kind else {
            panic!("wrong kind")
        };
        assert!(call.tool_calls.is_empty());
    }

    #[test]
    fn rejects_an_unknown_type() {
        let json = r#"{"seq":1,"type":"Nope","task_id":"6f1c2a7e-8a53-4a3a-9a53-1f0c5b2d9e11","agent_id":"a","timestamp":"2026-11-22T10:00:00Z","step":0,"data":{}}"#;
        assert!(serde_json::from_str::<Event>(json).is_err());
    }
}

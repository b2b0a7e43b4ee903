//! The agentflow worker: the durable agent workflow and the activities it runs.
//!
//! - [`workflow`]: `AgentTaskWorkflow`, its `execute` update and its queries.
//! - [`activities`]: the LLM call (the one event-emitting activity) and tool calls.
//! - [`llm`]: providers behind one trait: `scripted` and `openai`.
//! - [`tools`]: the tool trait, registry and built-ins (`calculator`, `current_time`).
//! - [`checkpoint`]: a long LLM call's events handed to the workflow in batches.
//! - [`coalesce`]: coalescing streamed text into delta events.
//! - [`hints`]: progress hints to the task's relays after each workflow activation.
//! - [`progress`]: what an LLM call heartbeats (its events, or a marker while on the bus).
//! - [`queries`]: the `get_events` argument that may be absent.
//! - [`tasks`]: building a task's input from the config and starting its workflow.
//! - [`connect`]: connecting to Temporal with the SDK's standard env config.
//! - [`worker`]: wiring and running a worker until shutdown.

// The SDK macros generate undocumented marker constants, one per handler.
#[allow(missing_docs)]
pub mod activities;
pub mod checkpoint;
pub mod coalesce;
pub mod connect;
pub mod hints;
pub mod llm;
pub mod progress;
pub mod queries;
pub mod tasks;
pub mod tools;
pub mod worker;
#[allow(missing_docs)]
pub mod workflow;

pub use workflow::AgentTaskWorkflow;

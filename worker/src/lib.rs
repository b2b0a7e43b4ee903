//! The agentflow worker: the durable agent workflow and the activities it runs. It implements
//! the contract `agentflow-client` declares (and its tests pin the names to it).
//!
//! - [`workflow`]: `AgentTaskWorkflow`: its state, updates, queries and the agent loop.
//! - [`activities`]: the LLM call (the one event-emitting activity) and tool calls.
//! - [`llm`]: providers behind one trait: `scripted` and `openai`.
//! - [`tools`]: the tool trait, registry and built-ins (`calculator`, `current_time`).
//! - [`checkpoint`]: a long LLM call's events handed to the workflow in batches.
//! - [`coalesce`]: coalescing streamed text into delta events.
//! - [`hints`]: progress hints to the task's relays after each workflow activation.
//! - [`worker`]: wiring and running a worker until shutdown.

// The SDK macros generate undocumented marker constants, one per handler.
#[allow(missing_docs)]
pub mod activities;
pub mod checkpoint;
pub mod coalesce;
pub mod hints;
pub mod llm;
pub mod tools;
pub mod worker;
#[allow(missing_docs)]
pub mod workflow;

pub use workflow::AgentTaskWorkflow;

//! Types shared by every agentflow crate: the wire contract, nothing that talks to a network.
//!
//! - [`ids`]: the `TaskId`, `AgentId` and `Seq` newtypes.
//! - [`event`]: the event log entry and every event type of the contract.
//! - [`log`]: the dense, checked event log (append, pages, the prefix check).
//! - [`llm`]: chat messages, tool calls and token usage as the workflow and providers see them.
//! - [`task`]: task parameters, status, the workflow's input and the state its queries return.
//! - [`config`]: `agentflow.toml` (agents, models, prices, tools, worker settings) with
//!   `AGENTFLOW_…` environment overrides.
//! - [`tools`]: tools declared under `[tools.<name>]` (kind, schema, per-tool settings).
//! - [`mcp`]: MCP servers under `[mcp_servers.<name>]` and the tool catalog a task fixes.
//! - [`team`]: teams of agents under `[teams.<id>]` (members, routing by mention or in
//!   sequence, discussions), and the routing rules.
//! - [`security`]: `[auth]` (API keys, scopes, tenants, token secrets) and `[limits]` (what a
//!   request may ask for, what a tenant may use).
//! - [`nullable`]: decoding `null` lists as empty.
//! - [`sse`]: Server-Sent Events framing of events.

pub mod config;
pub mod event;
pub mod ids;
pub mod llm;
pub mod log;
pub mod mcp;
pub mod nullable;
pub mod security;
pub mod sse;
pub mod task;
pub mod team;
pub mod tools;

pub use config::{AgentConfig, AgentflowConfig, ConfigError, ModelConfig, ProviderKind};
pub use event::{Event, EventKind};
pub use ids::{AgentId, KeyId, Seq, TaskId, TenantId};
pub use log::EventLog;

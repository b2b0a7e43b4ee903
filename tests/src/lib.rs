//! End-to-end test harness: a real Temporal dev server, real workers, fake LLM vendors
//! (OpenAI-compatible and Anthropic HTTP servers). The tests themselves are one binary, `tests/tests/e2e/`,
//! a module per area.
//!
//! - [`server`]: the dev server every test of the process shares (started on first use, or
//!   `AGENTFLOW_TEST_TEMPORAL_ADDRESS`), with the search attributes registered; [`DevServer`]
//!   for a test that needs one of its own with other settings; NATS likewise.
//! - [`harness`]: `spawn_app()`: a worker on a fresh task queue plus request helpers.
//! - [`api`]: the api on port 0 with request helpers.
//! - [`binaries`]: the workspace's built binaries (`workspace_binary`), to run as processes.
//! - [`requests`]: task paths, creating and executing tasks over HTTP, problem+json checks.
//! - [`logs`]: checks of a task's event log.
//! - [`sse`]: an SSE client that reconnects with `Last-Event-ID`.
//! - [`fake_openai`]: the local Chat Completions server of the bench crate, re-exported.
//! - [`fake_anthropic`]: a local Anthropic Messages server.
//! - [`files`]: files the example tools record what they saw in, and waiting for a line.

pub mod api;
pub mod binaries;
pub mod fake_anthropic;
pub mod fake_openai;
pub mod files;
pub mod harness;
pub mod logs;
pub mod requests;
pub mod server;
pub mod sse;

pub use harness::{TestApp, WorkerProcess, spawn_app, spawn_app_on, spawn_app_with};
pub use server::DevServer;

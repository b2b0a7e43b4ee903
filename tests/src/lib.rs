//! End-to-end test harness: a real Temporal dev server, real workers, a fake
//! OpenAI-compatible HTTP server.
//!
//! - [`server`]: starts one `temporal server start-dev` per test process (or uses
//!   `AGENTFLOW_TEST_TEMPORAL_ADDRESS`), with the search attributes registered.
//! - [`harness`]: `spawn_app()`: a worker on a fresh task queue plus request helpers.
//! - [`api`]: the api on port 0 with request helpers.
//! - [`sse`]: an SSE client that reconnects with `Last-Event-ID`.
//! - [`fake_openai`]: the local Chat Completions server of the bench crate, re-exported.

pub mod api;
pub mod fake_openai;
pub mod harness;
pub mod server;
pub mod sse;

pub use harness::{TestApp, WorkerProcess, spawn_app, spawn_app_with};

//! The agentflow api: REST for agents and tasks, and each task's live event stream (SSE).
//!
//! - [`startup`]: `Application::build / port / run_until_stopped`, and `run(listener, …)`.
//! - [`auth`]: API keys, stream tokens and sessions, the scope of each route, CSRF refusal,
//!   per-tenant rates and streams.
//! - [`routes`]: `app(state) -> Router` and the handlers (agents, tasks, events, health).
//! - [`relay`]: one relay per task per process, shared by all its subscribers.
//! - [`temporal`]: the Temporal RPCs the api makes, counted.
//! - [`metrics`]: `/metrics` as JSON or Prometheus text, through `metrics-exporter-prometheus`.
//! - [`task_log`]: a task's log across its runs, joined for the page handler and the relay.
//! - [`task_path`]: `TaskPath`, the task a route names, checked once for every handler.
//! - [`update`]: calling the workflow's updates, with one timeout and one error mapping.
//! - [`state`]: the `AppState` every handler shares.
//! - [`error`]: `ApiError`, answered as `application/problem+json`.
//! - [`extract`]: JSON body and query extractors with problem+json rejections.
//! - [`openapi`]: the generated OpenAPI document.

pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod relay;
pub mod routes;
pub mod startup;
pub mod state;
pub mod task_log;
pub mod task_path;
pub mod temporal;
pub mod update;

pub use startup::Application;

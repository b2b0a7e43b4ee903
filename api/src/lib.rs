//! The agentflow api: REST for agents and tasks, and each task's live event stream (SSE).
//!
//! - [`startup`]: `Application::build / port / run_until_stopped`, and `run(listener, …)`.
//! - [`routes`]: `app(state) -> Router` and the handlers (agents, tasks, events, health).
//! - [`relay`]: one relay per task per process, shared by all its subscribers.
//! - [`temporal`]: the Temporal RPCs the api makes, counted.
//! - [`state`]: the `AppState` every handler shares.
//! - [`error`]: `ApiError`, answered as `application/problem+json`.
//! - [`extract`]: JSON body and query extractors with problem+json rejections.
//! - [`openapi`]: the generated OpenAPI document.

pub mod error;
pub mod extract;
pub mod openapi;
pub mod relay;
pub mod routes;
pub mod startup;
pub mod state;
pub mod temporal;

pub use startup::Application;

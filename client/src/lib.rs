//! The agentflow workflow's contract, for its clients: the api, the tests, and anyone who
//! starts or controls tasks from Rust. It holds no workflow logic, no LLM provider and no
//! tool; the worker implements this contract and pins it with tests.
//!
//! - [`workflow`]: the workflow type, its updates, queries and activities, as typed definitions.
//! - [`search`]: the search attributes every task carries.
//! - [`events_query`]: the `get_events` argument that may be absent.
//! - [`progress`]: what an LLM call's heartbeats carry, decoded from `Describe`.
//! - [`tasks`]: building a task's input from the config and starting its workflow.
//! - [`connect`]: connecting to Temporal with the SDK's standard env config.

pub mod connect;
pub mod events_query;
pub mod progress;
pub mod search;
pub mod tasks;
pub mod workflow;

pub use events_query::EventsQuery;
pub use workflow::AgentTask;

//! A load generator for a running agentflow stack, over HTTP and real SSE clients only (plus a
//! Temporal client for the bare-Temporal baseline of the throughput scenario).
//!
//! - [`target`]: the stack under test: create, execute, subscribe, read logs and `/metrics`.
//! - [`stats`]: percentiles and the report every scenario returns.
//! - [`scenarios`]: latency, fan-out, idle streams, throughput, streaming cost, neighbours.
//! - [`chaos`]: seeded rounds of faults (worker SIGKILL, api and Temporal restarts, model and
//!   tool failures, reconnecting, leaving and slow clients) on a private stack it starts.
//! - [`live`]: the live path under issue #11's workload (tokens → tool → tokens), with the bus
//!   and on the heartbeat path, on a private stack it starts.
//! - [`auth_cost`]: what keys, sessions and the open-tasks check cost a request (two
//!   in-process apis, auth off and on).
//! - [`fake_llm`]: a local OpenAI-compatible server whose answers (and faults) a script picks.
//! - [`cli`]: the command line of the `agentflow-bench` binary.
//! - [`baseline`]: a trivial one-activity workflow and its worker, the Temporal ceiling.
//!
//! Every scenario also checks what it measures: each subscriber must receive exactly the final
//! log (no gap, no duplicate) — in the chaos scenario a prefix of it for a subscriber that left
//! early; violations are listed in the report and fail the run.

// The SDK macros generate undocumented marker constants, one per handler.
pub mod auth_cost;
#[allow(missing_docs)]
pub mod baseline;
pub mod chaos;
pub mod cli;
pub mod fake_llm;
pub mod live;
pub mod scenarios;
pub mod stats;
pub mod target;

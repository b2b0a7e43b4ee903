//! The end-to-end tests, one binary with a module per area. They run in parallel in one
//! process against one Temporal dev server and one NATS server, started on first use (see
//! `agentflow_tests::server`); the helpers live in the `agentflow-tests` library. A test that
//! needs a server of its own starts it (`DevServer`, `NatsServer`) and stops it when done.
//!
//! `cargo test -p agentflow-tests --test e2e [name]`; `scripts/test` runs them with everything
//! else, `scripts/test --fast` leaves them out.

mod anthropic;
mod api;
mod bench;
mod blob_limit;
mod browser;
mod bus;
mod chaos;
mod cli;
mod control;
mod crash;
mod deploy;
mod keys_cli;
mod long_generation;
mod mcp;
mod openai;
mod reliability;
mod security;
mod teams;
mod tools;
mod workflow;

/// The `e2e-worker` binary: a worker in its own process, for tests that kill or stop it.
const WORKER: &str = env!("CARGO_BIN_EXE_e2e-worker");

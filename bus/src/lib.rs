//! The live event bus: an LLM call's events on NATS JetStream, in a few milliseconds, with the
//! exactly-once promise of Invariant 1 (docs/CONTRACT.md) kept by fencing rather than by hope.
//!
//! - [`subject`]: where a call's messages go (`<prefix>.<tenant>.<task>.<seq_base>`: every
//!   subject of a task names its tenant right after the prefix).
//! - [`message`]: a message on a call's subject: an attempt's fence or one of its events.
//! - [`fold`]: the one rule every reader applies, in stream order, to turn a call's messages
//!   into its events (a superseded attempt's later messages are dropped).
//! - [`connection`]: the [`Bus`]: connecting in the background (as its user, over TLS if asked),
//!   the stream checked at start.
//! - [`publisher`]: a call's publisher, acknowledgements pipelined.
//! - [`durable`]: the workflow's own events (already durable), handed to an LLM call to publish
//!   first (`<prefix>.<tenant>.<task>.w`).
//! - [`reader`]: reading a call's subject and fencing it for a new attempt.
//! - [`follower`]: a relay's view of one task's calls, as they are stored.
//! - [`control`]: hints to a running call (heartbeat now: a cancel was accepted).
//! - [`progress`]: hints to a task's relays (its workflow appended events, or closed).
//! - [`counters`]: what the bus did, for `/metrics`.
//! - [`tool_reports`]: the MCP tools workers listed, for the api's tool catalog.

pub mod connection;
pub mod control;
pub mod counters;
pub mod durable;
pub mod fold;
pub mod follower;
pub mod message;
pub mod progress;
pub mod publisher;
pub mod reader;
pub mod subject;
pub mod tool_reports;

pub use connection::{Bus, BusError, BusState};
pub use fold::{CallFold, Folded};
pub use message::{Body, BusMessage};
pub use progress::{Progress, ProgressHints};
pub use publisher::CallPublisher;
pub use subject::CallSubject;

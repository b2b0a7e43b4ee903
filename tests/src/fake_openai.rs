//! The fake OpenAI-compatible server, which lives in the bench crate so that the chaos scenario
//! can use it too ([`agentflow_bench::fake_llm`]).

pub use agentflow_bench::fake_llm::{FakeLlm as FakeOpenAi, Turn};

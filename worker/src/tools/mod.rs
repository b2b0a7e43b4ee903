//! Tools the agent can call: a trait, a registry, and the built-ins.

mod calculator;
mod current_time;

pub use calculator::{Calculator, evaluate};
pub use current_time::CurrentTime;

use agentflow_shared::llm::ToolSpec;
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a tool call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the tool; fed back to the model.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed; fed back to the model.
    #[error("{0}")]
    Failed(String),
    /// A transient failure (network, …): the activity is retried.
    #[error("transient failure: {0}")]
    Transient(String),
}

/// A tool the agent can call. Implement it to plug in your own.
pub trait Tool: Send + Sync {
    /// Name, description and argument schema, as offered to the model.
    fn spec(&self) -> ToolSpec;
    /// Runs the tool.
    fn call(&self, arguments: Value) -> BoxFuture<'static, Result<Value, ToolError>>;
}

/// The tools a worker serves, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl ToolRegistry {
    /// A registry with the built-in `calculator` and `current_time`.
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        registry.register(Calculator);
        registry.register(CurrentTime);
        registry
    }

    /// Adds (or replaces) a tool under its spec's name.
    pub fn register(&mut self, tool: impl Tool + 'static) -> &mut Self {
        self.tools.insert(tool.spec().name, Arc::new(tool));
        self
    }

    /// The tool with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    /// Specs of the named tools that exist, in the given order.
    pub fn specs(&self, names: &[String]) -> Vec<ToolSpec> {
        names
            .iter()
            .filter_map(|name| self.tools.get(name))
            .map(|tool| tool.spec())
            .collect()
    }
}

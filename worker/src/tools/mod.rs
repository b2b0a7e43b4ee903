//! Tools the agent can call: a trait, a registry built from the config, and the kinds of tool
//! the worker runs itself — the built-ins, `http` tools declared under `[tools.<name>]`, and
//! the tools of the MCP servers under `[mcp_servers.<name>]`.

mod calculator;
mod current_time;
mod http;
mod mcp;

pub use calculator::{Calculator, evaluate};
pub use current_time::CurrentTime;
pub use http::HttpTool;
pub use mcp::{McpServers, McpSetupError};

use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::ids::TaskId;
use agentflow_shared::llm::ToolSpec;
use agentflow_shared::tools::ToolKind;
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

/// Why the worker's tools could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum ToolSetupError {
    /// A declared tool is invalid (its schema, its URL, a header).
    #[error("tool `{tool}`: {problem}")]
    Invalid {
        /// The tool.
        tool: String,
        /// What is wrong.
        problem: String,
    },
    /// A header names an environment variable that is not set (its value is never shown).
    #[error("tool `{tool}`: header `{header}` reads ${variable}, which is not set")]
    MissingSecret {
        /// The tool.
        tool: String,
        /// The header.
        header: String,
        /// The environment variable.
        variable: String,
    },
    /// An MCP server's declaration cannot be used.
    #[error(transparent)]
    Mcp(#[from] McpSetupError),
}

/// What a call knows about itself besides its arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The task making the call (absent in calls recorded before it was passed).
    pub task_id: Option<TaskId>,
    /// The model's id of the call, the same on every attempt.
    pub tool_call_id: String,
}

impl CallContext {
    /// The key every attempt of this call carries, so a tool can do its work once:
    /// `{task_id}:{tool_call_id}`.
    pub fn idempotency_key(&self) -> String {
        match self.task_id {
            Some(task) => format!("{task}:{}", self.tool_call_id),
            None => self.tool_call_id.clone(),
        }
    }
}

/// A tool the agent can call. Implement it to plug in your own.
pub trait Tool: Send + Sync {
    /// Name, description and argument schema, as offered to the model.
    fn spec(&self) -> ToolSpec;
    /// Runs the tool (its arguments already checked against its schema).
    fn call(
        &self,
        context: &CallContext,
        arguments: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>>;
}

/// An `activity` tool: the workflow schedules it on its own task queue; the worker only
/// offers it to the model.
struct ForeignActivity(ToolSpec);

impl Tool for ForeignActivity {
    fn spec(&self) -> ToolSpec {
        self.0.clone()
    }

    fn call(&self, _: &CallContext, _: Value) -> BoxFuture<'static, Result<Value, ToolError>> {
        let name = self.0.name.clone();
        Box::pin(async move {
            Err(ToolError::Failed(format!(
                "`{name}` runs on its own task queue, scheduled by the workflow"
            )))
        })
    }
}

/// A registered tool and its compiled argument schema.
#[derive(Clone)]
struct Registered {
    tool: Arc<dyn Tool>,
    schema: Arc<jsonschema::Validator>,
}

/// The tools a worker serves, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Registered>,
    mcp: McpServers,
}

impl ToolRegistry {
    /// A registry with the built-in `calculator` and `current_time`.
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        registry
            .register(Calculator)
            .expect("the built-in schemas compile");
        registry
            .register(CurrentTime)
            .expect("the built-in schemas compile");
        registry
    }

    /// The built-ins and every tool declared in `config` that the worker runs itself, their
    /// secrets read with `env` (`std::env::var` in the worker binary).
    pub fn from_config(
        config: &AgentflowConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ToolSetupError> {
        let mut registry = Self::with_builtins();
        registry.mcp = McpServers::from_config(&config.mcp_servers, &env)?;
        for (name, declared) in &config.tools {
            match declared.kind {
                ToolKind::Http => {
                    let tool = HttpTool::new(name, declared, &env)?;
                    registry.register(tool)?;
                }
                ToolKind::Activity => {
                    registry.register(ForeignActivity(ToolSpec {
                        name: name.clone(),
                        description: declared.description.clone(),
                        parameters: declared.parameters.clone(),
                    }))?;
                }
                ToolKind::Builtin | ToolKind::Mcp => {}
            }
        }
        Ok(registry)
    }

    /// Adds (or replaces) a tool under its spec's name; its schema must compile.
    pub fn register(&mut self, tool: impl Tool + 'static) -> Result<&mut Self, ToolSetupError> {
        let spec = tool.spec();
        let schema =
            jsonschema::validator_for(&spec.parameters).map_err(|e| ToolSetupError::Invalid {
                tool: spec.name.clone(),
                problem: format!("its parameters are not a valid JSON Schema: {e}"),
            })?;
        self.tools.insert(
            spec.name,
            Registered {
                tool: Arc::new(tool),
                schema: Arc::new(schema),
            },
        );
        Ok(self)
    }

    /// The MCP servers' sessions.
    pub fn mcp(&self) -> &McpServers {
        &self.mcp
    }

    /// The tool with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).map(|r| r.tool.clone())
    }

    /// Checks a call's arguments against the tool's schema (absent arguments are `{}`); the
    /// error names the first field that does not fit.
    pub fn check(&self, name: &str, arguments: &Value) -> Result<(), ToolError> {
        let Some(registered) = self.tools.get(name) else {
            return Ok(());
        };
        match registered.schema.iter_errors(arguments).next() {
            None => Ok(()),
            Some(error) => {
                let path = error.instance_path().to_string();
                let at = if path.is_empty() {
                    "the arguments"
                } else {
                    &path
                };
                Err(ToolError::InvalidArguments(format!("{at}: {error}")))
            }
        }
    }

    /// Specs of the named tools that exist, in the given order.
    pub fn specs(&self, names: &[String]) -> Vec<ToolSpec> {
        names
            .iter()
            .filter_map(|name| self.tools.get(name))
            .map(|r| r.tool.spec())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_checked_against_the_schema_naming_the_field() {
        let registry = ToolRegistry::with_builtins();
        registry
            .check("calculator", &json!({"expression": "1+1"}))
            .unwrap();
        let Err(ToolError::InvalidArguments(message)) =
            registry.check("calculator", &json!({"expression": 5}))
        else {
            panic!("a number is not an expression");
        };
        assert!(message.starts_with("/expression: "), "{message}");
        let Err(ToolError::InvalidArguments(message)) = registry.check("calculator", &json!({}))
        else {
            panic!("the expression is required");
        };
        assert!(message.contains("expression"), "{message}");
    }

    #[test]
    fn the_idempotency_key_is_the_same_on_every_attempt_of_a_call() {
        let task = TaskId::new();
        let call = |id: &str| CallContext {
            task_id: Some(task),
            tool_call_id: id.into(),
        };
        assert_eq!(call("c1").idempotency_key(), call("c1").idempotency_key());
        assert_ne!(call("c1").idempotency_key(), call("c2").idempotency_key());
        assert!(call("c1").idempotency_key().starts_with(&task.to_string()));
    }
}

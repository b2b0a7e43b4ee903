//! Tools declared in `agentflow.toml` under `[tools.<name>]`: what the model reads about them
//! (description, JSON Schema of the arguments), where they run, and their per-tool settings.
//! Any agent that lists a tool's name may call it; the built-ins (`calculator`,
//! `current_time`) need no declaration.

use crate::llm::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The names of the tools compiled into the worker.
pub const BUILTIN_TOOLS: &[&str] = &["calculator", "current_time"];

/// What the model reads about a built-in tool (the worker implements it).
pub fn builtin_spec(name: &str) -> Option<ToolSpec> {
    let (description, parameters) = match name {
        "calculator" => (
            "Evaluate an arithmetic expression. Supports + - * / % ^, parentheses, \
             pi, e and sqrt, abs, ln, log10, exp, sin, cos, tan, round, floor, ceil.",
            serde_json::json!({
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "e.g. (2+3)*4"}},
                "required": ["expression"]
            }),
        ),
        "current_time" => (
            "The current date and time in UTC.",
            serde_json::json!({"type": "object", "properties": {}}),
        ),
        _ => return None,
    };
    Some(ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters,
    })
}

/// The longest tool name every LLM vendor accepts.
pub const MAX_TOOL_NAME_CHARS: usize = 64;

/// Where a declared tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Compiled into the worker.
    Builtin,
    /// An HTTP endpoint: the arguments are POSTed as JSON.
    Http,
    /// A Temporal activity served by any worker, in any language, on its own task queue: the
    /// workflow schedules it by name with the argument object as its one JSON argument.
    Activity,
    /// A tool of an MCP server declared under `[mcp_servers.<name>]`, called with
    /// `tools/call` by the worker.
    Mcp,
}

/// A tool declared under `[tools.<name>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// Where it runs.
    pub kind: ToolKind,
    /// What the model reads about the tool.
    pub description: String,
    /// JSON Schema of the argument object; arguments are checked against it before a call.
    #[serde(default = "object_schema")]
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Every call waits for a person's decision (whatever the agent or the task say).
    #[serde(default)]
    pub require_approval: bool,
    /// Start-to-close timeout of one attempt (default `worker.tool_timeout_secs`).
    pub timeout_secs: Option<u64>,
    /// Attempts of a call that fails transiently (default `worker.tool_max_attempts`).
    pub max_attempts: Option<u32>,
    /// `http`: the endpoint the arguments are POSTed to.
    pub url: Option<String>,
    /// `http`: request headers, each naming the environment variable that holds its value
    /// (on the worker), so a secret never appears in the config, the workflow or its history.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `activity`: the activity type to schedule.
    pub activity_type: Option<String>,
    /// `activity`: the task queue its workers poll.
    pub task_queue: Option<String>,
    /// `activity`: how long a call may wait for a worker to take it before it fails (naming
    /// the queue); default [`DEFAULT_SCHEDULE_TO_START_SECS`].
    pub schedule_to_start_timeout_secs: Option<u64>,
    /// `activity`: the heartbeat timeout. Only an activity that heartbeats learns of a cancel;
    /// without one a cancelled call is abandoned and its late result ignored.
    pub heartbeat_timeout_secs: Option<u64>,
}

/// How long an `activity` tool's call waits for a worker by default.
pub const DEFAULT_SCHEDULE_TO_START_SECS: u64 = 60;

/// Where the workflow schedules an `activity` tool, copied into a task at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivityTarget {
    /// The activity type.
    pub activity_type: String,
    /// The task queue.
    pub task_queue: String,
    /// How long a call may wait for a worker.
    pub schedule_to_start_timeout_secs: u64,
    /// The heartbeat timeout, if the activity heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_secs: Option<u64>,
}

/// An argument object with any properties.
fn object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

/// What the workflow needs of a tool, copied into a task at creation (like the agent), so
/// every worker replays the same decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolSettings {
    /// Where the tool runs (absent in tasks from before tools had kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolKind>,
    /// Every call waits for a person's decision.
    #[serde(default)]
    pub require_approval: bool,
    /// Start-to-close timeout of one attempt, if not the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Attempts, if not the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// For an `activity` tool: where the workflow schedules it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<ActivityTarget>,
    /// The argument object's JSON Schema: the workflow checks an approver's edited arguments
    /// (and an `activity` tool's arguments) against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

impl ToolConfig {
    /// The settings a task copies.
    pub fn settings(&self) -> ToolSettings {
        ToolSettings {
            kind: Some(self.kind),
            require_approval: self.require_approval,
            timeout_secs: self.timeout_secs,
            max_attempts: self.max_attempts,
            activity: match (self.kind, &self.activity_type, &self.task_queue) {
                (ToolKind::Activity, Some(activity_type), Some(task_queue)) => {
                    Some(ActivityTarget {
                        activity_type: activity_type.clone(),
                        task_queue: task_queue.clone(),
                        schedule_to_start_timeout_secs: self
                            .schedule_to_start_timeout_secs
                            .unwrap_or(DEFAULT_SCHEDULE_TO_START_SECS),
                        heartbeat_timeout_secs: self.heartbeat_timeout_secs,
                    })
                }
                _ => None,
            },
            parameters: Some(self.parameters.clone()),
        }
    }

    /// Checks the declaration of tool `name`: a name every vendor accepts, an object schema,
    /// and the fields its kind needs.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!(
                "tool `{name}`: names are 1 to {MAX_TOOL_NAME_CHARS} of `a-z A-Z 0-9 _ -`"
            ));
        }
        if name.contains("__") {
            return Err(format!(
                "tool `{name}`: `__` separates an MCP server from its tools; pick another name"
            ));
        }
        if BUILTIN_TOOLS.contains(&name) {
            return Err(format!("tool `{name}` is built in; pick another name"));
        }
        if self.parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(format!(
                "tool `{name}`: parameters must be a JSON Schema with \"type\": \"object\""
            ));
        }
        if self.max_attempts == Some(0) || self.timeout_secs == Some(0) {
            return Err(format!(
                "tool `{name}`: timeout_secs and max_attempts must be at least 1"
            ));
        }
        match self.kind {
            ToolKind::Builtin => Err(format!(
                "tool `{name}`: `builtin` tools are compiled into the worker, not declared"
            )),
            ToolKind::Mcp => Err(format!(
                "tool `{name}`: MCP servers are declared under [mcp_servers.<name>]"
            )),
            ToolKind::Http => {
                let url = self.url.as_deref().unwrap_or_default();
                if url.starts_with("http://") || url.starts_with("https://") {
                    Ok(())
                } else {
                    Err(format!(
                        "tool `{name}`: an http tool needs an http(s) `url`"
                    ))
                }
            }
            ToolKind::Activity => {
                let given =
                    |field: &Option<String>| field.as_deref().is_some_and(|f| !f.trim().is_empty());
                if !given(&self.activity_type) || !given(&self.task_queue) {
                    return Err(format!(
                        "tool `{name}`: an activity tool needs `activity_type` and `task_queue`"
                    ));
                }
                if self.schedule_to_start_timeout_secs == Some(0)
                    || self.heartbeat_timeout_secs == Some(0)
                {
                    return Err(format!("tool `{name}`: timeouts must be at least 1 second"));
                }
                Ok(())
            }
        }
    }

    /// Where the tool runs, as the catalog shows it: an `http` tool's host, an `activity`
    /// tool's task queue.
    pub fn runs_at(&self) -> Option<String> {
        match self.kind {
            ToolKind::Activity => self.task_queue.as_ref().map(|q| format!("task queue {q}")),
            _ => {
                let rest = self.url.as_deref()?.split_once("://")?.1;
                Some(rest.split(['/', '?']).next().unwrap_or(rest).to_owned())
            }
        }
    }
}

/// Whether every LLM vendor accepts `name` as a tool name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> ToolConfig {
        ToolConfig {
            kind: ToolKind::Http,
            description: "d".into(),
            parameters: object_schema(),
            require_approval: false,
            timeout_secs: None,
            max_attempts: None,
            url: Some(url.into()),
            headers: BTreeMap::new(),
            activity_type: None,
            task_queue: None,
            schedule_to_start_timeout_secs: None,
            heartbeat_timeout_secs: None,
        }
    }

    #[test]
    fn a_declaration_is_checked_before_any_task_uses_it() {
        http("http://127.0.0.1:9/lookup")
            .validate("lookup")
            .unwrap();
        assert!(http("ftp://x").validate("lookup").is_err());
        assert!(http("http://x").validate("calculator").is_err(), "built in");
        assert!(http("http://x").validate("bad name").is_err());
        assert!(
            http("http://x").validate("time__now").is_err(),
            "`__` is MCP's"
        );
        assert!(http("http://x").validate(&"x".repeat(65)).is_err());
        let mut not_object = http("http://x");
        not_object.parameters = serde_json::json!({"type": "string"});
        assert!(not_object.validate("lookup").is_err());
        let mut zero = http("http://x");
        zero.max_attempts = Some(0);
        assert!(zero.validate("lookup").is_err());
    }

    #[test]
    fn every_builtin_has_a_spec_with_an_object_schema() {
        for name in BUILTIN_TOOLS {
            let spec = builtin_spec(name).expect("a spec");
            assert_eq!(spec.parameters["type"], "object");
        }
        assert!(builtin_spec("lookup").is_none());
    }

    #[test]
    fn the_catalog_shows_where_a_tool_runs_and_an_activity_tool_is_checked() {
        assert_eq!(
            http("https://tools.example.com:8443/v1/q?x=1")
                .runs_at()
                .as_deref(),
            Some("tools.example.com:8443")
        );
        let mut activity = http("http://unused");
        activity.kind = ToolKind::Activity;
        assert!(
            activity.validate("weather").is_err(),
            "needs a type and a queue"
        );
        activity.activity_type = Some("weather".into());
        activity.task_queue = Some("python-tools".into());
        activity.validate("weather").unwrap();
        assert_eq!(
            activity.runs_at().as_deref(),
            Some("task queue python-tools")
        );
        let target = activity.settings().activity.expect("a target");
        assert_eq!(
            target.schedule_to_start_timeout_secs,
            DEFAULT_SCHEDULE_TO_START_SECS
        );
    }
}

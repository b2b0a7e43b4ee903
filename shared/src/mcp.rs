//! MCP servers declared in `agentflow.toml` under `[mcp_servers.<name>]`, and the catalog of
//! their tools a task fixes when it starts.
//!
//! An agent lists a server by its name to get every tool the server offers (after `include` /
//! `exclude`). The model sees each tool as `{server}__{tool}`, sanitised to a name every LLM
//! vendor accepts; a name that collides or is too long gets a short hash suffix.

use crate::llm::ToolSpec;
use crate::tools::{MAX_TOOL_NAME_CHARS, ToolKind, ToolSettings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The MCP protocol revision agentflow asks for unless a server's config says otherwise: the
/// newest with an `initialize` handshake (the server may answer with an older one).
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-11-25";

/// The MCP protocol revisions agentflow speaks.
pub const PROTOCOL_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The most JSON bytes of MCP tools a task's catalog holds (it is an activity result in the
/// task's history); a server whose tools would pass it is unavailable to the task.
pub const MAX_CATALOG_BYTES: usize = 128 * 1024;

/// Separates the server's name from the tool's in the name the model sees.
pub const SEPARATOR: &str = "__";

/// An MCP server declared under `[mcp_servers.<name>]`: over stdio (`command`) or
/// streamable HTTP (`url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// stdio: the program the worker starts (one process per server per worker).
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: environment variables set for it, by value (not for secrets).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio: environment variables set for it, each naming the worker's environment variable
    /// that holds its value (for secrets: the value appears nowhere else).
    #[serde(default)]
    pub env_from: BTreeMap<String, String>,
    /// Streamable HTTP: the server's endpoint.
    pub url: Option<String>,
    /// Streamable HTTP: request headers, each naming the worker's environment variable that
    /// holds its value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Only these of the server's tools (all when empty).
    #[serde(default)]
    pub include: Vec<String>,
    /// Never these of the server's tools.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Every call of the server's tools waits for a person's decision.
    #[serde(default)]
    pub require_approval: bool,
    /// Start-to-close timeout of one call attempt (default `worker.tool_timeout_secs`).
    pub timeout_secs: Option<u64>,
    /// Attempts of a call that fails before it reached the server, or of a tool that declares
    /// itself idempotent (default `worker.tool_max_attempts`).
    pub max_attempts: Option<u32>,
    /// The protocol revision to ask for (default [`DEFAULT_PROTOCOL_VERSION`]).
    pub protocol_version: Option<String>,
}

impl McpServerConfig {
    /// The settings a task copies for the server's tools.
    pub fn settings(&self) -> ToolSettings {
        ToolSettings {
            kind: Some(ToolKind::Mcp),
            require_approval: self.require_approval,
            timeout_secs: self.timeout_secs,
            max_attempts: self.max_attempts,
            activity: None,
            parameters: None,
        }
    }

    /// Checks the declaration of server `name`: one transport, a name that leaves room for
    /// tool names, a known protocol revision.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let name_ok = !name.is_empty()
            && name.len() <= 24
            && !name.contains(SEPARATOR)
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if crate::tools::BUILTIN_TOOLS.contains(&name) {
            return Err(format!("mcp server `{name}`: the name of a built-in tool"));
        }
        if !name_ok {
            return Err(format!(
                "mcp server `{name}`: names are 1 to 24 of `a-z A-Z 0-9 _ -`, without `__`"
            ));
        }
        match (&self.command, &self.url) {
            (Some(command), None) if !command.trim().is_empty() => {
                if !self.headers.is_empty() {
                    return Err(format!(
                        "mcp server `{name}`: `headers` are for an http server; use `env_from`"
                    ));
                }
            }
            (None, Some(url)) if url.contains('@') => {
                return Err(format!(
                    "mcp server `{name}`: put credentials in `headers` (read from the worker's \
                     environment), not in the url"
                ));
            }
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                if !self.args.is_empty() || !self.env.is_empty() || !self.env_from.is_empty() {
                    return Err(format!(
                        "mcp server `{name}`: `args`, `env` and `env_from` are for a stdio server"
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "mcp server `{name}`: give either a `command` (stdio) or an http(s) `url`"
                ));
            }
        }
        if self.max_attempts == Some(0) || self.timeout_secs == Some(0) {
            return Err(format!(
                "mcp server `{name}`: timeout_secs and max_attempts must be at least 1"
            ));
        }
        if let Some(version) = &self.protocol_version
            && !PROTOCOL_VERSIONS.contains(&version.as_str())
        {
            return Err(format!(
                "mcp server `{name}`: protocol_version `{version}` is not one of {}",
                PROTOCOL_VERSIONS.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether the server offers its tool `tool` to agents (`include`, then `exclude`).
    pub fn offers(&self, tool: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|t| t == tool))
            && !self.exclude.iter().any(|t| t == tool)
    }

    /// Where the server runs, as the catalog shows it: its program, or its URL's host.
    pub fn runs_at(&self) -> String {
        match (&self.command, &self.url) {
            (Some(command), _) => format!("stdio: {command}"),
            (None, Some(url)) => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
            }
            (None, None) => String::new(),
        }
    }
}

/// One tool of an MCP server as a task's catalog holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpTool {
    /// The name the model sees (`{server}__{tool}`, sanitised, unique).
    pub name: String,
    /// The server.
    pub server: String,
    /// The tool's own name on the server.
    pub tool: String,
    /// What the model reads about it.
    pub description: String,
    /// JSON Schema of its arguments.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The tool declares itself idempotent (`idempotentHint`): a call cut off mid-way may be
    /// sent again.
    #[serde(default)]
    pub idempotent: bool,
}

impl McpTool {
    /// What the model reads about the tool.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.parameters.clone(),
        }
    }
}

/// A server whose tools could not be listed when the task started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unavailable {
    /// The server.
    pub server: String,
    /// Why.
    pub error: String,
}

/// The MCP tools a task may call, fixed when it starts (the result of one activity, in its
/// history), so replays and retries never see another catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpCatalog {
    /// Every offered tool of every server that answered.
    #[serde(default)]
    pub tools: Vec<McpTool>,
    /// Servers that did not answer (their tools are absent).
    #[serde(default)]
    pub unavailable: Vec<Unavailable>,
}

impl McpCatalog {
    /// The tool the model knows as `name`.
    pub fn get(&self, name: &str) -> Option<&McpTool> {
        self.tools.iter().find(|t| t.name == name)
    }
}

/// The names the model sees for `server`'s tools `tools` (in order): `{server}__{tool}` with
/// every character outside `[a-zA-Z0-9_-]` made `_`; a name longer than 64 characters, or
/// one that another tool's name also became, ends in `_` and 6 hex digits of a hash of the
/// original name instead.
pub fn exposed_names(server: &str, tools: &[String]) -> Vec<String> {
    let plain: Vec<String> = tools
        .iter()
        .map(|tool| {
            format!("{server}{SEPARATOR}{tool}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let mut seen = BTreeMap::<&str, usize>::new();
    for name in &plain {
        *seen.entry(name.as_str()).or_default() += 1;
    }
    plain
        .iter()
        .zip(tools)
        .map(|(name, tool)| {
            if name.len() > MAX_TOOL_NAME_CHARS || seen[name.as_str()] > 1 {
                let suffix = format!("_{:06x}", fnv1a(&format!("{server}/{tool}")) & 0xff_ffff);
                let keep = name.len().min(MAX_TOOL_NAME_CHARS - suffix.len());
                format!("{}{suffix}", &name[..keep])
            } else {
                name.clone()
            }
        })
        .collect()
}

/// 32-bit FNV-1a: a stable, dependency-free hash for name suffixes.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::valid_name;

    fn stdio() -> McpServerConfig {
        McpServerConfig {
            command: Some("python3".into()),
            args: vec!["-m".into(), "mcp_server_time".into()],
            env: BTreeMap::new(),
            env_from: BTreeMap::new(),
            url: None,
            headers: BTreeMap::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            require_approval: false,
            timeout_secs: None,
            max_attempts: None,
            protocol_version: None,
        }
    }

    #[test]
    fn names_are_valid_for_every_vendor_and_unique() {
        let tools = vec![
            "get time".to_string(),
            "get_time".to_string(),
            "x".repeat(80),
            "ok-tool".to_string(),
        ];
        let names = exposed_names("clock", &tools);
        assert_eq!(names[3], "clock__ok-tool");
        assert!(names[0].starts_with("clock__get_time_"), "{names:?}");
        assert!(names[1].starts_with("clock__get_time_"), "{names:?}");
        assert_ne!(names[0], names[1]);
        assert_eq!(names[2].len(), MAX_TOOL_NAME_CHARS);
        assert!(names.iter().all(|n| valid_name(n)), "{names:?}");
        assert_eq!(names, exposed_names("clock", &tools), "stable");
    }

    #[test]
    fn a_server_has_exactly_one_transport_and_a_known_revision() {
        stdio().validate("time").unwrap();
        assert!(stdio().validate("a__b").is_err());
        let mut both = stdio();
        both.url = Some("http://x/mcp".into());
        assert!(both.validate("time").is_err());
        let mut http = stdio();
        http.command = None;
        http.args.clear();
        http.url = Some("http://127.0.0.1:8765/mcp".into());
        http.validate("notes").unwrap();
        assert_eq!(http.runs_at(), "127.0.0.1:8765");
        let mut old = stdio();
        old.protocol_version = Some("1999-01-01".into());
        assert!(old.validate("time").is_err());
        assert!(stdio().validate("calculator").is_err(), "a built-in's name");
        let mut userinfo = http.clone();
        userinfo.url = Some("http://user:token@127.0.0.1:8765/mcp".into());
        let problem = userinfo.validate("notes").unwrap_err();
        assert!(
            !problem.contains("token@"),
            "the credential is not repeated: {problem}"
        );
    }

    #[test]
    fn include_then_exclude_pick_the_offered_tools() {
        let mut server = stdio();
        assert!(server.offers("anything"));
        server.include = vec!["a".into(), "b".into()];
        server.exclude = vec!["b".into()];
        assert!(server.offers("a"));
        assert!(!server.offers("b"));
        assert!(!server.offers("c"));
    }
}

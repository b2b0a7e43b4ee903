//! `mcp` tools: the worker's sessions with the MCP servers under `[mcp_servers.<name>]`,
//! through the official Rust SDK (`rmcp`).
//!
//! One session per server per worker, opened on first use and opened again after the server
//! went away. A stdio server is the worker's child: it gets only the environment it is given
//! (`env`, `env_from`, and `PATH`, `HOME`, `LANG`), it leads its own process group (a closed
//! session kills the group, launchers' children included), it is started under `setpriv
//! --pdeathsig KILL` where that exists, so it dies with the worker even on a SIGKILL (and a
//! well-behaved server also exits when its stdin closes), and its stderr is logged at debug
//! with every secret it was given replaced.

use super::ToolError;
use agentflow_shared::mcp::{
    DEFAULT_PROTOCOL_VERSION, MAX_CATALOG_BYTES, McpCatalog, McpServerConfig, McpTool, Unavailable,
    exposed_names,
};
use process_wrap::tokio::{CommandWrap, ProcessGroup};
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
    Implementation, PaginatedRequestParams, ProtocolVersion,
};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::{
    StreamableHttpClientTransport, TokioChildProcess,
    streamable_http_client::StreamableHttpClientTransportConfig,
};
use rmcp::{ServiceExt, model::Tool};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;

/// Where `setpriv` (util-linux) is, to tie a stdio server's life to the worker's.
const SETPRIV: &str = "/usr/bin/setpriv";

/// The longest a session may take to open (start, handshake); calls to the server wait for
/// it, so it is bounded.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The most `tools/list` pages read from one server.
const MAX_LIST_PAGES: usize = 32;

/// The longest stderr line logged (longer ones are cut).
const MAX_STDERR_LINE: usize = 4096;

/// The worker's environment variables a stdio server inherits.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG"];

/// A session with one server.
type Session = RunningService<RoleClient, ClientConfig>;

/// One declared server, its secrets resolved, and its session when open.
struct Server {
    name: String,
    config: McpServerConfig,
    /// `env_from` resolved: the child's variables and their values.
    env_from: BTreeMap<String, String>,
    /// `headers` resolved.
    headers: HashMap<HeaderName, HeaderValue>,
    /// Every secret value, to keep out of logs.
    secrets: Vec<String>,
    session: Mutex<Option<Arc<Session>>>,
}

/// Why a server could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum McpSetupError {
    /// A header or variable names an environment variable that is not set.
    #[error("mcp server `{server}`: `{field}` reads ${variable}, which is not set")]
    MissingSecret {
        /// The server.
        server: String,
        /// The header or variable.
        field: String,
        /// The environment variable.
        variable: String,
    },
    /// A header's name or value is not valid HTTP.
    #[error("mcp server `{server}`: header `{header}` is not a valid HTTP header")]
    InvalidHeader {
        /// The server.
        server: String,
        /// The header.
        header: String,
    },
}

/// The worker's MCP servers, by name.
#[derive(Clone, Default)]
pub struct McpServers {
    servers: Arc<BTreeMap<String, Arc<Server>>>,
}

impl McpServers {
    /// The servers of `[mcp_servers]`, their secrets read with `env`. Nothing is started yet.
    pub fn from_config(
        servers: &BTreeMap<String, McpServerConfig>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, McpSetupError> {
        let mut built = BTreeMap::new();
        for (name, config) in servers {
            let read = |field: &str, variable: &str| {
                env(variable).ok_or_else(|| McpSetupError::MissingSecret {
                    server: name.clone(),
                    field: field.to_owned(),
                    variable: variable.to_owned(),
                })
            };
            let mut secrets = Vec::new();
            let mut env_from = BTreeMap::new();
            for (variable, source) in &config.env_from {
                let value = read(variable, source)?;
                secrets.push(value.clone());
                env_from.insert(variable.clone(), value);
            }
            let mut headers = HashMap::new();
            for (header, source) in &config.headers {
                let value = read(header, source)?;
                let invalid = || McpSetupError::InvalidHeader {
                    server: name.clone(),
                    header: header.clone(),
                };
                let header_name =
                    HeaderName::from_bytes(header.as_bytes()).map_err(|_| invalid())?;
                let mut header_value = HeaderValue::from_str(&value).map_err(|_| invalid())?;
                header_value.set_sensitive(true);
                secrets.push(value);
                headers.insert(header_name, header_value);
            }
            secrets.retain(|s| !s.is_empty());
            built.insert(
                name.clone(),
                Arc::new(Server {
                    name: name.clone(),
                    config: config.clone(),
                    env_from,
                    headers,
                    secrets,
                    session: Mutex::new(None),
                }),
            );
        }
        Ok(Self {
            servers: Arc::new(built),
        })
    }

    /// Lists the offered tools of `servers` at once, each within `each` (a server that does
    /// not answer, or is not declared here, is unavailable): the catalog a task fixes when it
    /// starts.
    pub async fn catalog(&self, servers: &[String], each: Duration) -> McpCatalog {
        let listings = futures::future::join_all(servers.iter().map(|name| async move {
            match self.servers.get(name) {
                Some(server) => tokio::time::timeout(each, server.list())
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "MCP server `{name}` did not list its tools within {} s",
                            each.as_secs()
                        ))
                    }),
                None => Err(format!(
                    "`{name}` is not under [mcp_servers] on this worker"
                )),
            }
        }))
        .await;
        let mut catalog = McpCatalog::default();
        for (name, listed) in servers.iter().zip(listings) {
            let listed = listed.and_then(|tools| {
                let bytes = serde_json::to_vec(&catalog.tools).map_or(0, |j| j.len())
                    + serde_json::to_vec(&tools).map_or(0, |j| j.len());
                if bytes > MAX_CATALOG_BYTES {
                    Err(format!(
                        "its tools would take the task's catalog past {MAX_CATALOG_BYTES} bytes \
                         (narrow it with `include`)"
                    ))
                } else {
                    Ok(tools)
                }
            });
            match listed {
                Ok(tools) => catalog.tools.extend(tools),
                Err(error) => {
                    tracing::warn!(server = %name, %error, "listing an MCP server's tools failed");
                    catalog.unavailable.push(Unavailable {
                        server: name.clone(),
                        error,
                    });
                }
            }
        }
        catalog
    }

    /// Calls `tool` of `server` with `arguments`. A call that never reached the server (no
    /// session, or sending failed) is transient; one cut off after it was sent is transient
    /// only for a tool that declared itself idempotent. Dropping the future sends
    /// `notifications/cancelled`.
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: Value,
        idempotent: bool,
    ) -> Result<Value, ToolError> {
        let Some(server) = self.servers.get(server) else {
            return Err(ToolError::Failed(format!(
                "MCP server `{server}` is not configured on this worker"
            )));
        };
        // No session means nothing was sent: that is worth another attempt for any tool.
        let session = match server.session().await {
            Ok(session) => session,
            Err(_) => server.session().await.map_err(ToolError::Transient)?,
        };
        let Value::Object(arguments) = arguments else {
            return Err(ToolError::InvalidArguments(
                "an MCP tool takes an object".into(),
            ));
        };
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        match session.call_tool(params).await {
            Ok(result) => answer(result),
            Err(ServiceError::McpError(error)) => Err(ToolError::Failed(error.message.to_string())),
            // The request may have reached the server (an HTTP POST can fail after it was
            // read): only an idempotent tool is sent again.
            Err(error @ (ServiceError::TransportSend(_) | ServiceError::TransportClosed)) => {
                server.forget(&session).await;
                let message = format!(
                    "MCP server `{}` went away during the call ({error})",
                    server.name
                );
                if idempotent {
                    Err(ToolError::Transient(message))
                } else {
                    Err(ToolError::Failed(format!(
                        "{message}; not sent again: the tool does not declare itself idempotent"
                    )))
                }
            }
            Err(error) => Err(ToolError::Failed(format!(
                "MCP server `{}` answered the call with something agentflow does not take: {error}",
                server.name
            ))),
        }
    }

    /// Closes every open session (stopping stdio servers).
    pub async fn close(&self) {
        for server in self.servers.values() {
            let open = server.session.lock().await.take();
            if let Some(session) = open
                && let Ok(session) = Arc::try_unwrap(session)
            {
                let _ = session.cancel().await;
            }
        }
    }
}

/// A tool's result as the model reads it: `isError` → a failed result with its text; else
/// the structured content when there is some, the text when it is one text block, or the
/// content blocks as MCP gives them.
fn answer(result: CallToolResult) -> Result<Value, ToolError> {
    let text = || {
        result
            .content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text(text) => Some(text.text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if result.is_error == Some(true) {
        let message = text();
        return Err(ToolError::Failed(if message.is_empty() {
            "the tool reported an error".to_owned()
        } else {
            message
        }));
    }
    if let Some(structured) = result.structured_content.clone() {
        return Ok(structured);
    }
    match result.content.as_slice() {
        [ContentBlock::Text(text)] => Ok(Value::String(text.text.clone())),
        blocks => Ok(serde_json::to_value(blocks).unwrap_or(Value::Null)),
    }
}

impl Server {
    /// The open session, or a new one.
    async fn session(&self) -> Result<Arc<Session>, String> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref()
            && !session.is_transport_closed()
        {
            return Ok(session.clone());
        }
        let session = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| {
                format!(
                    "MCP server `{}` did not finish its handshake within {} s",
                    self.name,
                    CONNECT_TIMEOUT.as_secs()
                )
            })??;
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Drops `session` if it is still the open one (the next call opens another).
    async fn forget(&self, session: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|open| Arc::ptr_eq(open, session)) {
            *slot = None;
        }
    }

    /// Opens a session, negotiating the configured protocol revision.
    async fn connect(&self) -> Result<Session, String> {
        let version = self
            .config
            .protocol_version
            .clone()
            .unwrap_or_else(|| DEFAULT_PROTOCOL_VERSION.to_owned());
        let version = serde_json::from_value::<ProtocolVersion>(Value::String(version))
            .map_err(|e| e.to_string())?;
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("agentflow", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(version);
        let fail = |e: &dyn std::fmt::Display| {
            format!(
                "could not open a session with MCP server `{}`: {e}",
                self.name
            )
        };
        match (&self.config.command, &self.config.url) {
            (Some(command), _) => {
                let mut wrapped = CommandWrap::from(self.command(command));
                wrapped.wrap(ProcessGroup::leader());
                let (transport, stderr) = TokioChildProcess::builder(wrapped)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| fail(&e))?;
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(self.name.clone(), stderr, self.secrets.clone()));
                }
                info.serve(transport).await.map_err(|e| fail(&e))
            }
            (None, Some(url)) => {
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(self.headers.clone());
                let transport = StreamableHttpClientTransport::from_config(config);
                info.serve(transport).await.map_err(|e| fail(&e))
            }
            (None, None) => Err(fail(&"it has neither a command nor a url")),
        }
    }

    /// The stdio server's command: its own environment only, tied to the worker's life.
    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = if std::path::Path::new(SETPRIV).exists() {
            let mut command = tokio::process::Command::new(SETPRIV);
            command.args(["--pdeathsig", "KILL", "--", program]);
            command
        } else {
            tokio::process::Command::new(program)
        };
        command.args(&self.config.args).env_clear();
        for variable in INHERITED_ENV {
            if let Ok(value) = std::env::var(variable) {
                command.env(variable, value);
            }
        }
        command
            .envs(&self.config.env)
            .envs(&self.env_from)
            .kill_on_drop(true);
        command
    }

    /// The offered tools, named for the model.
    async fn list(&self) -> Result<Vec<McpTool>, String> {
        let session = self.session().await?;
        let mut tools: Vec<Tool> = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = PaginatedRequestParams::default().with_cursor(cursor);
            let page = match session.list_tools(Some(params)).await {
                Ok(page) => page,
                Err(error) => {
                    if matches!(
                        error,
                        ServiceError::TransportSend(_) | ServiceError::TransportClosed
                    ) {
                        self.forget(&session).await;
                    }
                    return Err(format!(
                        "MCP server `{}` did not list its tools: {error}",
                        self.name
                    ));
                }
            };
            tools.extend(page.tools);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        if cursor.is_some() {
            return Err(format!(
                "MCP server `{}` lists more than {MAX_LIST_PAGES} pages of tools",
                self.name
            ));
        }
        let offered: Vec<Tool> = tools
            .into_iter()
            .filter(|tool| self.config.offers(&tool.name))
            .collect();
        let originals: Vec<String> = offered.iter().map(|t| t.name.to_string()).collect();
        let names = exposed_names(&self.name, &originals);
        Ok(offered
            .into_iter()
            .zip(names)
            .map(|(tool, name)| McpTool {
                name,
                server: self.name.clone(),
                tool: tool.name.to_string(),
                description: tool.description.as_deref().unwrap_or_default().to_owned(),
                parameters: Value::Object((*tool.input_schema).clone()),
                idempotent: tool
                    .annotations
                    .as_ref()
                    .and_then(|a| a.idempotent_hint)
                    .unwrap_or(false),
            })
            .collect())
    }
}

/// Logs a stdio server's stderr at debug, line by line, every secret it was given replaced;
/// it reads to the end (the server never writes into a closed pipe), any bytes, each line cut
/// at [`MAX_STDERR_LINE`].
async fn log_stderr(server: String, stderr: tokio::process::ChildStderr, secrets: Vec<String>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(read) = reader.read_until(b'\n', &mut line).await {
        if read == 0 {
            break;
        }
        line.truncate(MAX_STDERR_LINE);
        let text = String::from_utf8_lossy(&line);
        tracing::debug!(%server, line = %redact(text.trim_end(), &secrets), "mcp server stderr");
        line.clear();
    }
}

/// `line` with every secret replaced by `[redacted]`.
fn redact(line: &str, secrets: &[String]) -> String {
    secrets.iter().fold(line.to_owned(), |line, secret| {
        line.replace(secret.as_str(), "[redacted]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_in_stderr_lines() {
        let secrets = vec!["s3cret".to_owned()];
        assert_eq!(
            redact("token=s3cret; again s3cret", &secrets),
            "token=[redacted]; again [redacted]"
        );
    }

    #[test]
    fn an_error_result_is_a_failed_call_and_content_is_mapped() {
        let error = CallToolResult::error(vec![ContentBlock::text("no such city")]);
        let Err(ToolError::Failed(message)) = answer(error) else {
            panic!("isError is a failed result");
        };
        assert_eq!(message, "no such city");
        let text = CallToolResult::success(vec![ContentBlock::text("HELLO")]);
        assert_eq!(answer(text).unwrap(), Value::String("HELLO".into()));
        let structured = CallToolResult::structured(serde_json::json!({"words": 2}));
        assert_eq!(answer(structured).unwrap(), serde_json::json!({"words": 2}));
    }

    #[test]
    fn a_missing_secret_is_named_without_its_value() {
        let mut servers = BTreeMap::new();
        let mut config: McpServerConfig = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:1/mcp",
            "headers": {"Authorization": "NOTES_TOKEN"}
        }))
        .unwrap();
        servers.insert("notes".to_owned(), config.clone());
        let Err(error) = McpServers::from_config(&servers, &|_| None) else {
            panic!("the variable is not set");
        };
        assert!(error.to_string().contains("NOTES_TOKEN"), "{error}");
        config.headers.clear();
        servers.insert("notes".to_owned(), config);
        McpServers::from_config(&servers, &|_| None).unwrap();
    }
}

//! `http` tools: the arguments are POSTed as JSON to the tool's URL, every attempt of a call
//! with the same `Idempotency-Key` (`{task_id}:{tool_call_id}`).
//!
//! - 2xx with a JSON body: the result. Another body: a failed result naming it.
//! - 4xx: a failed result with the body's message (`detail`, `message` or `error` of a JSON
//!   body, else its text), which the model reads.
//! - 5xx, 408, 429, a network error or a timeout: transient — the activity is retried (up to
//!   the tool's `max_attempts`), with the same key.
//!
//! Header values come from environment variables on the worker, read once at start-up; they
//! are marked sensitive and never logged, and never travel through the workflow.

use super::{CallContext, Tool, ToolError, ToolSetupError};
use agentflow_shared::llm::ToolSpec;
use agentflow_shared::tools::ToolConfig;
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::time::Duration;

/// The most bytes of a response body read (a longer one is a failed result).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How long one request may take when the tool sets no `timeout_secs`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP endpoint as a tool.
pub struct HttpTool {
    spec: ToolSpec,
    url: String,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl HttpTool {
    /// The tool `name` as declared, its header values read with `env`.
    pub fn new(
        name: &str,
        declared: &ToolConfig,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ToolSetupError> {
        let invalid = |problem: String| ToolSetupError::Invalid {
            tool: name.to_owned(),
            problem,
        };
        let mut headers = HeaderMap::new();
        for (header, variable) in &declared.headers {
            let value = env(variable).ok_or_else(|| ToolSetupError::MissingSecret {
                tool: name.to_owned(),
                header: header.clone(),
                variable: variable.clone(),
            })?;
            let header_name = HeaderName::try_from(header.as_str())
                .map_err(|_| invalid(format!("`{header}` is not a header name")))?;
            let mut value = HeaderValue::try_from(value).map_err(|_| {
                invalid(format!(
                    "the value of ${variable} is not a valid header value"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(header_name, value);
        }
        let timeout = declared
            .timeout_secs
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| invalid(format!("building its HTTP client: {e}")))?;
        Ok(Self {
            spec: ToolSpec {
                name: name.to_owned(),
                description: declared.description.clone(),
                parameters: declared.parameters.clone(),
            },
            url: declared.url.clone().unwrap_or_default(),
            headers,
            client,
        })
    }
}

impl Tool for HttpTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn call(
        &self,
        context: &CallContext,
        arguments: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>> {
        let request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header("Idempotency-Key", context.idempotency_key())
            .json(&arguments);
        Box::pin(async move {
            let response = request.send().await.map_err(|e| {
                ToolError::Transient(format!("the tool's server: {}", e.without_url()))
            })?;
            let status = response.status();
            let body = read_bounded(response).await?;
            if status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            {
                return Err(ToolError::Transient(format!("the tool answered {status}")));
            }
            if !status.is_success() {
                return Err(ToolError::Failed(format!(
                    "the tool answered {status}: {}",
                    message_of(&body)
                )));
            }
            serde_json::from_slice(&body).map_err(|_| {
                ToolError::Failed(format!(
                    "the tool answered {status} with a body that is not JSON"
                ))
            })
        })
    }
}

/// The response body, at most [`MAX_RESPONSE_BYTES`].
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, ToolError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        ToolError::Transient(format!("reading the tool's answer: {}", e.without_url()))
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ToolError::Failed(format!(
                "the tool's answer is over {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a refusal says: `detail`, `message` or `error` of a JSON body, else its text (cut).
fn message_of(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        for key in ["detail", "message", "error"] {
            if let Some(text) = json.get(key).and_then(Value::as_str) {
                return text.to_owned();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_as_its_message() {
        assert_eq!(message_of(br#"{"detail": "no such city"}"#), "no such city");
        assert_eq!(message_of(br#"{"error": "bad"}"#), "bad");
        assert_eq!(message_of(b"plain text"), "plain text");
        assert_eq!(message_of(&[b'x'; 2000]).len(), 500);
    }

    #[test]
    fn a_missing_secret_names_its_variable_not_a_value() {
        let declared: ToolConfig = toml_tool(
            r#"kind = "http"
               description = "d"
               url = "http://127.0.0.1:9/"
               headers = { Authorization = "LOOKUP_TOKEN" }"#,
        );
        let Err(error) = HttpTool::new("lookup", &declared, &|_| None) else {
            panic!("the secret is missing");
        };
        assert!(error.to_string().contains("$LOOKUP_TOKEN"), "{error}");
        HttpTool::new("lookup", &declared, &|_| Some("Bearer s3cret".into())).unwrap();
    }

    fn toml_tool(text: &str) -> ToolConfig {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text))
            .extract()
            .expect("a tool declaration")
    }
}

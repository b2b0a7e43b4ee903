//! The built-in `current_time` tool.

use super::{CallContext, Tool, ToolError};
use agentflow_shared::llm::ToolSpec;
use agentflow_shared::tools::builtin_spec;
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// Returns the current UTC time.
pub struct CurrentTime;

impl Tool for CurrentTime {
    fn spec(&self) -> ToolSpec {
        builtin_spec("current_time").expect("a built-in")
    }

    fn call(
        &self,
        _context: &CallContext,
        arguments: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>> {
        let valid = arguments.is_null() || arguments.as_object().is_some_and(|o| o.is_empty());
        Box::pin(async move {
            if !valid {
                return Err(ToolError::InvalidArguments(
                    "current_time takes no arguments".into(),
                ));
            }
            let now = chrono::Utc::now();
            Ok(
                json!({"utc": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "unix": now.timestamp()}),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_a_parseable_utc_time() {
        let value = CurrentTime
            .call(&CallContext::default(), json!({}))
            .await
            .unwrap();
        let utc = value["utc"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(utc).unwrap();
        assert_eq!(parsed.timestamp(), value["unix"].as_i64().unwrap());
        assert!(
            CurrentTime
                .call(&CallContext::default(), json!({"tz": "x"}))
                .await
                .is_err()
        );
    }
}

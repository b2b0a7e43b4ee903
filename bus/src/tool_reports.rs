//! What workers report of their MCP servers' tools, in a JetStream key-value bucket
//! (`<prefix>-mcp-tools`, a key per server, the latest listing wins), so `GET /api/v1/tools`
//! shows them without an MCP client in the api. A report is informative only: a task's tools
//! are the catalog in its own history. Workers create the bucket; the api only reads it (so it
//! needs no right to change it).

use crate::connection::{Bus, BusError};
use agentflow_shared::mcp::McpTool;
use async_nats::jetstream::kv;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest a report or a read of the reports may take.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most bytes one server's report may hold (a larger listing is not reported).
const MAX_REPORT_BYTES: i32 = 256 * 1024;

impl Bus {
    /// The bucket's name: the subject prefix with `.` made `-`, then `-mcp-tools`.
    fn reports_bucket(&self) -> String {
        format!(
            "{}-mcp-tools",
            self.settings.subject_prefix.replace('.', "-")
        )
    }

    /// The bucket, created or updated to hold reports.
    async fn writable_reports(&self) -> Result<kv::Store, BusError> {
        let config = kv::Config {
            bucket: self.reports_bucket(),
            description: "agentflow: MCP tools as workers last listed them".into(),
            max_value_size: MAX_REPORT_BYTES,
            history: 1,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        };
        self.jetstream
            .create_or_update_key_value(config)
            .await
            .map_err(BusError::request)
    }

    /// Records `server`'s tools as a worker just listed them; whether it was recorded.
    pub async fn report_mcp_tools(&self, server: &str, tools: &[McpTool]) -> bool {
        let Ok(json) = serde_json::to_vec(tools) else {
            return false;
        };
        let put = async {
            self.writable_reports()
                .await?
                .put(server, json.into())
                .await
                .map_err(BusError::request)
        };
        match tokio::time::timeout(REPORT_TIMEOUT, put).await {
            Ok(Ok(_)) => true,
            Ok(Err(error)) => {
                tracing::warn!(%server, %error, "reporting an MCP server's tools failed");
                false
            }
            Err(_) => false,
        }
    }

    /// The MCP tools workers last reported, by server (empty when the bus cannot say, or no
    /// worker made the bucket yet).
    pub async fn reported_mcp_tools(&self) -> BTreeMap<String, Vec<McpTool>> {
        let read = async {
            let store = self
                .jetstream
                .get_key_value(self.reports_bucket())
                .await
                .map_err(BusError::request)?;
            let mut keys = store.keys().await.map_err(BusError::request)?;
            let mut reported = BTreeMap::new();
            while let Some(key) = keys.next().await {
                let Ok(key) = key else { continue };
                if let Ok(Some(value)) = store.get(key.as_str()).await
                    && let Ok(tools) = serde_json::from_slice::<Vec<McpTool>>(&value)
                {
                    reported.insert(key, tools);
                }
            }
            Ok::<_, BusError>(reported)
        };
        match tokio::time::timeout(REPORT_TIMEOUT, read).await {
            Ok(Ok(reported)) => reported,
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading the reported MCP tools failed");
                BTreeMap::new()
            }
            Err(_) => BTreeMap::new(),
        }
    }
}

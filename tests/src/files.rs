//! Files the example tools write what they saw to (`RECORD_FILE`, `--record`), and waiting
//! for a line in them.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh file name in the temporary folder, unique to the caller (`prefix` names the test
/// area; the file itself is a marker other processes' command lines can be found by).
pub fn record_file(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("agentflow-{prefix}-{}.log", uuid::Uuid::new_v4()))
}

/// Waits (at most `within`) until `file` has the line `line`; panics naming both otherwise.
pub async fn until_line(file: &Path, line: &str, within: Duration) {
    let wait = async {
        loop {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if text.lines().any(|l| l == line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or_else(|_| panic!("`{line}` in {}", file.display()));
}

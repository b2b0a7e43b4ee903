//! Scratch files and folders of a test (removed when it ends); files the example tools write
//! what they saw to (`RECORD_FILE`, `--record`), and waiting for a line in them.

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A path in the temporary folder, unique to its test, removed (file or folder and all in
/// it) when dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh folder `agentflow-<prefix>-<uuid>`, created.
    pub fn dir(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agentflow-{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("creating a scratch folder");
        Self(dir)
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for Scratch {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0).or_else(|_| std::fs::remove_file(&self.0));
    }
}

/// A fresh file name in the temporary folder, unique to the caller (`prefix` names the test
/// area; the file itself is a marker other processes' command lines can be found by); the
/// file is removed when the returned value is dropped.
pub fn record_file(prefix: &str) -> Scratch {
    Scratch(std::env::temp_dir().join(format!("agentflow-{prefix}-{}.log", uuid::Uuid::new_v4())))
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

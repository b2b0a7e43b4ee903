//! The workspace's binaries, for tests that run them as processes.

use std::path::PathBuf;

/// A binary of the workspace, built next to this test's directory (`target/debug`) by
/// `cargo build --workspace --bins` (`scripts/test` runs it before the tests).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo build --workspace --bins` builds it (scripts/test does)",
        path.display()
    );
    path
}

//! The deployment files agree with the code: every search attribute the workflow sets is
//! registered wherever a Temporal server is started or set up, and the compose file builds
//! targets the Dockerfile has. (No Docker engine runs on the reference machine, so the images
//! themselves are not built by the tests.)

use agentflow_client::search;
use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn every_search_attribute_is_registered_wherever_temporal_is_set_up() {
    let names: Vec<&str> = search::ALL.iter().map(|key| key.name()).collect();
    assert!(names.contains(&"TenantId"), "{names:?}");
    // bench/src/chaos/stack.rs registers `search::ALL` itself.
    for file in ["scripts/dev", "scripts/bench", "tests/src/server.rs"] {
        let text = read(file);
        for name in &names {
            assert!(
                text.contains(&format!("--search-attribute {name}=Keyword")),
                "{file} does not register {name}"
            );
        }
    }
    let compose = read("docker/compose.yaml");
    let registered = compose
        .lines()
        .find_map(|line| line.trim().strip_prefix("for name in "))
        .and_then(|rest| rest.strip_suffix("; do"))
        .expect("docker/compose.yaml registers search attributes in a `for name in …; do` loop");
    let mut registered: Vec<&str> = registered.split_whitespace().collect();
    registered.sort_unstable();
    let mut expected = names.clone();
    expected.sort_unstable();
    assert_eq!(registered, expected, "docker/compose.yaml");
}

#[test]
fn the_compose_file_builds_targets_the_dockerfile_has() {
    let dockerfile = read("docker/Dockerfile");
    let compose = read("docker/compose.yaml");
    let targets: Vec<&str> = compose
        .lines()
        .filter_map(|line| line.trim().strip_prefix("target: "))
        .collect();
    assert_eq!(targets, ["worker", "api"]);
    for target in targets {
        assert!(
            dockerfile.contains(&format!(" AS {target}\n")),
            "docker/Dockerfile has no stage `{target}`"
        );
        assert!(
            dockerfile.contains(&format!("CMD [\"agentflow-{target}\"]")),
            "the `{target}` image does not run agentflow-{target}"
        );
    }
}

//! A short chaos run (3 seeded rounds) on its own stack of the debug binaries: every fault kind
//! may be drawn, and every subscriber must hold a prefix of its task's final log (the whole log
//! if it stayed). The seed is printed; `AGENTFLOW_CHAOS_SEED` replays a run. No timing is
//! asserted.

use agentflow_bench::chaos::{Binaries, ChaosOptions, chaos};
use agentflow_tests::binaries::workspace_binary;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn chaos_rounds_keep_every_subscriber_on_a_prefix_of_the_final_log() {
    let seed = std::env::var("AGENTFLOW_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let options = ChaosOptions {
        rounds: 3,
        seed,
        first_round: 0,
        binaries: Binaries {
            temporal: "temporal".into(),
            worker: workspace_binary("agentflow-chaos-worker"),
            api: workspace_binary("agentflow-api"),
            nats: "nats-server".into(),
        },
        round_timeout: Duration::from_secs(90),
    };
    let report = chaos(&options).await.expect("the chaos run");
    let metrics = &report.metrics;
    assert!(
        report.violations.is_empty(),
        "seed {seed}:\n{}",
        report.table()
    );
    assert_eq!(metrics["rounds"], 3);
    assert_eq!(
        (
            &metrics["lost"],
            &metrics["duplicated"],
            &metrics["diverged"]
        ),
        (&0.into(), &0.into(), &0.into())
    );
    assert!(metrics["events_checked"].as_u64().unwrap() > 0, "{metrics}");
    assert!(
        metrics["subscribers_stayed_to_end"].as_u64().unwrap() >= 3,
        "{metrics}"
    );
    let process_faults: u64 = [
        "worker_sigkill",
        "api_restart",
        "temporal_restart",
        "nats_sigkill",
        "worker_zombie_sigstop",
        "nats_and_worker_sigkill",
    ]
    .iter()
    .map(|kind| metrics["faults"][kind].as_u64().unwrap())
    .sum();
    assert!(process_faults > 0, "no process fault fired: {metrics}");
    assert_eq!(
        metrics["tasks_by_terminal_event"]["WorkflowCompleted"], 3,
        "{metrics}"
    );
}

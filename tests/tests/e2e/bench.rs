//! A smoke run of every benchmark scenario at tiny sizes against the real stack, and of the
//! command line writing its JSON report: the correctness checks must hold and the output must
//! parse; no timing is asserted.

use agentflow_bench::cli::{Cli, run};
use agentflow_bench::scenarios;
use agentflow_bench::stats::Report;
use agentflow_bench::target::Target;
use agentflow_tests::harness::test_config;
use agentflow_tests::server::temporal_address;
use agentflow_tests::spawn_app_with;
use clap::Parser;
use std::time::Duration;

fn assert_clean(report: &Report, keys: &[&str]) {
    assert!(report.violations.is_empty(), "{}", report.table());
    for key in keys {
        assert!(
            report.metrics.get(*key).is_some(),
            "{} lacks {key}: {}",
            report.scenario,
            report.metrics
        );
    }
    let json = serde_json::to_string(report).unwrap();
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back["scenario"], report.scenario);
    assert!(report.table().contains(&report.scenario));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_runs_small_and_checks_correctness() {
    let mut config = test_config();
    // The idle scenario waits for its departed streams to be noticed, at their next keep-alive.
    config.api.keep_alive_secs = 1;
    let mut app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let target = Target::new(&api.base_url, "assistant");

    let latency = scenarios::latency(&target, 2, 4).await.unwrap();
    assert_clean(
        &latency,
        &[
            "event_latency_ms",
            "delta_latency_ms",
            "workflow_event_latency_ms",
            "time_to_first_event_ms",
            "events_per_second",
            "relay_rpcs_per_task",
        ],
    );
    assert!(
        latency.metrics["event_latency_ms"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );

    let fanout = scenarios::fanout(&target, &[1, 3]).await.unwrap();
    assert_clean(
        &fanout,
        &["subscribers_1", "subscribers_3", "rpc_ratio_3_over_1"],
    );

    let idle = scenarios::idle(&target, 2, 6, Duration::from_secs(1))
        .await
        .unwrap();
    assert_clean(
        &idle,
        &[
            "rss_kib_per_stream",
            "cpu_percent_while_idle",
            "stream_errors",
        ],
    );
    assert_eq!(idle.metrics["stream_errors"], 0);

    let throughput = scenarios::throughput(&target, temporal_address(), 4, 2)
        .await
        .unwrap();
    assert_clean(
        &throughput,
        &[
            "tasks_per_second",
            "baseline_workflows_per_second",
            "ratio_to_baseline",
        ],
    );

    let cost = scenarios::streaming_cost(&target, 2, 1).await.unwrap();
    assert_clean(
        &cost,
        &["batch", "streaming", "wall_ratio_streaming_over_batch"],
    );

    let neighbours = scenarios::neighbours(&target, 1, Some(std::process::id()))
        .await
        .unwrap();
    assert_clean(
        &neighbours,
        &[
            "solo_latency_ms",
            "loaded_latency_ms",
            "p99_ratio_loaded_over_solo",
            "worker_peak_rss_bytes",
        ],
    );
    // `Count to 100000` (≈ 590 KB) fits the answer cap whole.
    assert_eq!(neighbours.metrics["long_task_finish_reason"], "stop");
    assert!(neighbours.metrics["long_tasks_run"].as_u64().unwrap() >= 1);

    let auth = agentflow_bench::auth_cost::auth_cost(temporal_address(), 3, 2)
        .await
        .unwrap();
    assert_clean(
        &auth,
        &["get_agents_ms", "create_task_ms", "visibility_count_ms"],
    );
    assert_eq!(auth.metrics["get_agents_ms"]["session_cookie"]["count"], 3);

    let json = std::env::temp_dir().join(format!("bench-{}.json", uuid::Uuid::new_v4()));
    let cli = Cli::try_parse_from([
        "agentflow-bench",
        "--api",
        api.base_url.as_str(),
        "--json",
        json.to_str().unwrap(),
        "fanout",
        "--counts",
        "1,2",
    ])
    .unwrap();
    let reports = run(cli).await.unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    assert_eq!(written[0]["scenario"], "fanout");
    assert_eq!(written[0]["violations"], serde_json::json!([]));
    assert_eq!(
        written[0]["metrics"]["subscribers_2"]["latency_ms"]["count"],
        reports[0].metrics["subscribers_2"]["latency_ms"]["count"]
    );

    api.stop().await;
    app.stop_worker().await;
}

//! Following a task with the `temporal` CLI, exactly as the README documents it.

use agentflow_shared::event::Event;
use agentflow_shared::task::{EventsPage, TaskState, TaskStatus};
use agentflow_tests::server::temporal_address;
use agentflow_tests::spawn_app;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::process::Command;

async fn temporal(args: &[&str]) -> Value {
    let output = Command::new("temporal")
        .args(args)
        .args(["--address", temporal_address(), "--output", "json"])
        .output()
        .await
        .expect("running the temporal CLI");
    assert!(
        output.status.success(),
        "temporal {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "temporal {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Events as JSON with every number as a float: the CLI re-encodes `4.0` as `4`.
fn normalized(events: &[Event]) -> Value {
    fn walk(value: Value) -> Value {
        match value {
            Value::Number(n) => serde_json::json!(n.as_f64()),
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, walk(v))).collect())
            }
            other => other,
        }
    }
    walk(serde_json::to_value(events).unwrap())
}

/// The query result as the CLI prints it: `{"queryType": …, "queryResult": [value]}`.
fn query_result(output: &Value) -> Value {
    let result = output["queryResult"][0].clone();
    assert!(!result.is_null(), "unexpected CLI output: {output}");
    result
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_work_from_the_cli_with_and_without_input() {
    let mut app = spawn_app().await;
    let task = app.run_query("What is 2+2?", false).await;
    let result = app.result(task).await;
    let workflow_id = task.workflow_id();

    let page: EventsPage = serde_json::from_value(query_result(
        &temporal(&[
            "workflow",
            "query",
            "--workflow-id",
            &workflow_id,
            "--type",
            "get_events",
        ])
        .await,
    ))
    .unwrap();
    assert_eq!(
        normalized(&page.events),
        normalized(&result.events),
        "no --input: the first page"
    );
    assert!(page.finished);

    let page: EventsPage = serde_json::from_value(query_result(
        &temporal(&[
            "workflow",
            "query",
            "--workflow-id",
            &workflow_id,
            "--type",
            "get_events",
            "--input",
            r#"{"after": 2, "limit": 3}"#,
        ])
        .await,
    ))
    .unwrap();
    assert_eq!(normalized(&page.events), normalized(&result.events[2..5]));
    assert!(page.has_more);

    let state: TaskState = serde_json::from_value(query_result(
        &temporal(&[
            "workflow",
            "query",
            "--workflow-id",
            &workflow_id,
            "--type",
            "get_current_state",
        ])
        .await,
    ))
    .unwrap();
    assert_eq!(state.status, TaskStatus::Completed);
    assert_eq!(state.final_response, result.state.final_response);

    let answer = query_result(
        &temporal(&[
            "workflow",
            "query",
            "--workflow-id",
            &workflow_id,
            "--type",
            "get_final_response",
        ])
        .await,
    );
    assert_eq!(answer.as_str(), result.state.final_response.as_deref());
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_are_listed_by_search_attributes() {
    let mut app = spawn_app().await;
    let task = app.run_query("Hello", false).await;
    app.result(task).await;
    let query = format!(
        "AgentId='assistant' AND TaskStatus='completed' AND WorkflowId='{}'",
        task.workflow_id()
    );
    // Visibility is eventually consistent: poll until the upserted status is indexed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = temporal(&["workflow", "list", "--query", &query]).await;
        let rows = listed.as_array().cloned().unwrap_or_default();
        if rows.len() == 1 {
            assert_eq!(rows[0]["execution"]["workflowId"], task.workflow_id());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the task was never listed: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop_worker().await;
}

//! The agent workflow end to end on a real dev server with a real worker.

use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::Seq;
use agentflow_shared::task::TaskStatus;
use agentflow_tests::spawn_app;

fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::type_name).collect()
}

fn assert_dense(events: &[Event]) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, Seq(i as u64 + 1), "seq of event {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_mode_runs_to_completion_with_the_expected_events() {
    let mut app = spawn_app().await;
    let task = app.run_query("Tell me about durable agents", false).await;
    let result = app.result(task).await;

    assert_eq!(
        types(&result.events),
        [
            "WorkflowStarted",
            "WorkflowStepStarted",
            "WorkflowLLMCallStarted",
            "WorkflowLLMCallCompleted",
            "WorkflowStepCompleted",
            "WorkflowCompleted",
        ]
    );
    assert_dense(&result.events);
    assert_eq!(result.state.status, TaskStatus::Completed);
    let EventKind::Completed(done) = &result.events[5].kind else {
        unreachable!()
    };
    assert!(done.final_response.contains("durable agents"));
    assert_eq!(result.state.final_response.as_deref(), Some(&*done.final_response));
    assert!(done.total_cost_usd > 0.0);
    assert_eq!(app.events(task, 2).await, result.events, "paged query = result log");
    app.stop_worker().await;
}

//! The LLM activity under the SDK's `ActivityEnvironment`: cumulative heartbeats, numbering
//! from `seq_base`, resuming after a retry, and events attached to failures and cancellations.

use agentflow_shared::config::{AgentflowConfig, ModelConfig, ProviderKind};
use agentflow_shared::event::{Event, EventKind, Mode};
use agentflow_shared::ids::{AgentId, Seq, TaskId};
use agentflow_shared::llm::{ChatMessage, Role};
use agentflow_worker::activities::{AgentActivities, CoalesceSettings, LlmCallInput};
use agentflow_worker::tools::ToolRegistry;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use temporalio_common::data_converters::{
    ActivitySerializationContext, DataConverter, SerializationContextData,
};
use temporalio_common::error::{OutgoingActivityError, OutgoingError};
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_sdk::activities::ActivityError;
use temporalio_sdk::testing::{
    ActivityEnvironment, ActivityEnvironmentError, TestActivityInfoOptions,
};

fn activities() -> AgentActivities {
    AgentActivities::new(
        ToolRegistry::with_builtins(),
        CoalesceSettings {
            interval: Duration::from_millis(1),
            max_chars: 1,
        },
    )
}

fn input(query: &str, mode: Mode, model: ModelConfig) -> LlmCallInput {
    LlmCallInput {
        task_id: TaskId::new(),
        agent_id: AgentId::from("assistant"),
        step: 1,
        seq_base: Seq(5),
        mode,
        model_name: "scripted".into(),
        model,
        messages: vec![ChatMessage::text(Role::User, query)],
        tool_names: vec!["calculator".into()],
        cost_before_usd: 0.5,
        previous_events: Vec::new(),
        attempt: 1,
    }
}

fn scripted(delay_ms: u64) -> ModelConfig {
    let mut model = AgentflowConfig::default_config().models["scripted"].clone();
    model.token_delay_ms = delay_ms;
    model
}

/// Encodes an activity failure as the worker sends it and decodes the attached events.
fn encoded_details(error: OutgoingActivityError) -> Vec<Event> {
    let failure = DataConverter::default().to_failure(
        &SerializationContextData::Activity(ActivitySerializationContext::new()),
        OutgoingError::Activity(error),
    );
    let payloads = match failure.failure_info.expect("failure info") {
        FailureInfo::ApplicationFailureInfo(info) => info.details,
        FailureInfo::CanceledFailureInfo(info) => info.details,
        other => panic!("unexpected failure info {other:?}"),
    }
    .expect("details attached")
    .payloads;
    assert_eq!(payloads.len(), 1);
    serde_json::from_slice(&payloads[0].data).expect("details are the event list")
}

fn assert_dense_from(events: &[Event], first: u64) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, Seq(first + i as u64), "event {i} of {events:?}");
    }
}

#[tokio::test]
async fn streaming_heartbeats_are_cumulative_prefixes_of_the_result() {
    let beats: Arc<Mutex<Vec<Vec<Event>>>> = Arc::default();
    let sink = beats.clone();
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .on_heartbeat(move |details| {
            let events = details
                .downcast::<Vec<Event>>()
                .expect("heartbeats carry events");
            sink.lock().unwrap().push(*events);
        })
        .build();
    let output = env
        .run(
            AgentActivities::llm_call,
            input("Count to 20", Mode::Streaming, scripted(1)),
        )
        .await
        .unwrap();

    assert_dense_from(&output.events, 5);
    assert!(matches!(
        output.events[0].kind,
        EventKind::LlmCallStarted(_)
    ));
    assert!(matches!(
        output.events.last().unwrap().kind,
        EventKind::LlmCallCompleted(_)
    ));
    let deltas: String = output
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) => Some(d.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, output.response.content);
    let beats = beats.lock().unwrap();
    assert!(
        beats.len() >= 3,
        "expected several heartbeats, got {}",
        beats.len()
    );
    for pair in beats.windows(2) {
        assert!(
            pair[1].starts_with(&pair[0]),
            "each heartbeat extends the previous one"
        );
    }
    assert!(output.events.starts_with(beats.last().unwrap()));
    let EventKind::LlmCallCompleted(done) = &output.events.last().unwrap().kind else {
        unreachable!()
    };
    assert!((done.total_cost_usd - (0.5 + output.cost_usd)).abs() < 1e-12);
}

#[tokio::test]
async fn batch_mode_emits_no_deltas() {
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .build();
    let output = env
        .run(
            AgentActivities::llm_call,
            input("Count to 20", Mode::Batch, scripted(0)),
        )
        .await
        .unwrap();
    let types: Vec<&str> = output.events.iter().map(Event::type_name).collect();
    assert_eq!(
        types,
        ["WorkflowLLMCallStarted", "WorkflowLLMCallCompleted"]
    );
}

#[tokio::test]
async fn a_retry_keeps_the_previous_attempts_events_and_numbers_on() {
    let first = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .build();
    let call = input("Count to 10", Mode::Streaming, scripted(0));
    let previous: Vec<Event> = first
        .run(AgentActivities::llm_call, call.clone())
        .await
        .unwrap()
        .events
        .into_iter()
        .take(3)
        .collect();

    let retry = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .heartbeat_details(previous.clone())
        .unwrap()
        .info(TestActivityInfoOptions::builder().attempt(2).build())
        .build();
    let output = retry.run(AgentActivities::llm_call, call).await.unwrap();

    assert!(output.events.starts_with(&previous));
    assert_dense_from(&output.events, 5);
    match &output.events[3].kind {
        EventKind::LlmCallRetrying(r) => assert_eq!(r.attempt, 2),
        other => panic!("expected the retry event, got {other:?}"),
    }
    assert!(matches!(
        output.events.last().unwrap().kind,
        EventKind::LlmCallCompleted(_)
    ));
}

#[tokio::test]
async fn a_provider_failure_attaches_every_event_so_far() {
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .build();
    let unreachable = ModelConfig {
        provider: ProviderKind::Openai,
        model: Some("gpt-test".into()),
        base_url: Some("http://127.0.0.1:9".into()),
        api_key_env: None,
        input_price_per_mtok: 0.0,
        output_price_per_mtok: 0.0,
        token_delay_ms: 0,
        request_timeout_secs: 5,
    };
    let err = env
        .run(
            AgentActivities::llm_call,
            input("hi", Mode::Streaming, unreachable),
        )
        .await
        .unwrap_err();
    let ActivityEnvironmentError::Activity(ActivityError::Application(failure)) = err else {
        panic!("expected an application failure, got {err:?}");
    };
    assert!(
        !failure.is_non_retryable(),
        "a refused connection is worth retrying"
    );
    let events = encoded_details(OutgoingActivityError::Application(failure));
    assert_eq!(events.len(), 1);
    assert!(matches!(events[0].kind, EventKind::LlmCallStarted(_)));
}

#[tokio::test]
async fn cancellation_returns_the_streamed_events() {
    let streaming = Arc::new(tokio::sync::Notify::new());
    let beats = streaming.clone();
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .on_heartbeat(move |details| {
            let events = details
                .downcast::<Vec<Event>>()
                .expect("heartbeats carry events");
            if events.len() >= 3 {
                beats.notify_one();
            }
        })
        .build();
    let run = env.run(
        AgentActivities::llm_call,
        input("Count to 1000", Mode::Streaming, scripted(2)),
    );
    let cancel = async {
        streaming.notified().await;
        env.cancel();
    };
    let (result, ()) = tokio::join!(run, cancel);
    let Err(ActivityEnvironmentError::Activity(ActivityError::Cancelled { details })) = result
    else {
        panic!("expected a cancellation, got {result:?}");
    };
    let events = encoded_details(OutgoingActivityError::Cancelled { details });
    assert!(
        events.len() >= 2,
        "the started event and some deltas: {events:?}"
    );
    assert_dense_from(&events, 5);
}

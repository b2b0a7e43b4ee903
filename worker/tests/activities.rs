//! The LLM activity under the SDK's `ActivityEnvironment`: cumulative heartbeats, numbering
//! from `seq_base`, resuming after a retry, and events attached to failures and cancellations.

use agentflow_client::progress::CallProgress;
use agentflow_shared::config::{AgentflowConfig, ModelConfig, ProviderKind};
use agentflow_shared::event::{Event, EventKind, Mode};
use agentflow_shared::ids::{AgentId, Seq, TaskId};
use agentflow_shared::llm::FinishReason;
use agentflow_shared::llm::{ChatMessage, Role};
use agentflow_shared::log::{EventLog, encoded_len};
use agentflow_worker::activities::{
    AgentActivities, CoalesceSettings, LlmCallInput, ToolCallInput,
};
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
        tenant: None,
        agent_id: AgentId::from("assistant"),
        step: 1,
        seq_base: Seq(5),
        mode,
        model_name: "scripted".into(),
        model,
        messages: vec![ChatMessage::text(Role::User, query)],
        tool_names: vec!["calculator".into()],
        extra_tools: Vec::new(),
        cost_before_usd: 0.5,
        previous_events: Vec::new(),
        attempt: 1,
        max_event_bytes: 256 * 1024,
        recover_from_bus: false,
        workflow_events: Vec::new(),
        durable_through: None,
        durable_bytes: 0,
        max_answer_bytes: 256 * 1024,
        checkpoint_bytes: 256 * 1024,
        speaker: None,
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
    let progress: CallProgress =
        serde_json::from_slice(&payloads[0].data).expect("details are the call's progress");
    progress.events().to_vec()
}

/// An environment running `activities`, and a signal raised once a heartbeat carries three
/// events (the call is streaming).
fn streaming_env(activities: AgentActivities) -> (ActivityEnvironment, Arc<tokio::sync::Notify>) {
    let streaming = Arc::new(tokio::sync::Notify::new());
    let beats = streaming.clone();
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities)
        .on_heartbeat(move |details| {
            let events = details
                .downcast::<CallProgress>()
                .expect("heartbeats carry the call's progress");
            let events = events.events();
            if events.len() >= 3 {
                beats.notify_one();
            }
        })
        .build();
    (env, streaming)
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
                .downcast::<CallProgress>()
                .expect("heartbeats carry the call's progress");
            let events = events.events();
            sink.lock().unwrap().push(events.to_vec());
        })
        .build();
    let output = env
        .run(
            AgentActivities::llm_call,
            // 5 ms per token: the call outlasts several 30 ms heartbeat intervals.
            input("Count to 20", Mode::Streaming, scripted(5)),
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
    assert_eq!(deltas, completed(&output.events).content);
    assert!(
        output.response.content.is_empty(),
        "the text travels once, in WorkflowLLMCallCompleted"
    );
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
        cache_write_price_per_mtok: None,
        cache_read_price_per_mtok: None,
        max_tokens: None,
        prompt_caching: false,
        thinking_budget_tokens: None,
        prompt_cache_ttl: Default::default(),
        script: Vec::new(),
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
    let (env, streaming) = streaming_env(activities());
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

fn completed(events: &[Event]) -> &agentflow_shared::event::LlmCallCompleted {
    match &events.last().expect("events").kind {
        EventKind::LlmCallCompleted(done) => done,
        other => panic!("expected the completed event last, got {other:?}"),
    }
}

fn delta_text(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_streamed_answer_past_the_cap_is_truncated_cleanly() {
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .build();
    let call = LlmCallInput {
        max_event_bytes: 8 * 1024,
        ..input("Count to 5000", Mode::Streaming, scripted(0))
    };
    let output = env.run(AgentActivities::llm_call, call).await.unwrap();
    let log = EventLog::from_events(Seq(5), output.events.clone()).expect("a dense log");
    assert!(
        log.encoded_bytes() <= 8 * 1024,
        "{} bytes of events",
        log.encoded_bytes()
    );
    let done = completed(&output.events);
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert_eq!(done.content, delta_text(&output.events));
    assert!(output.response.content.is_empty());
    assert!(!done.content.is_empty());
    assert!(
        log.encoded_bytes() > 4 * 1024,
        "most of the room is used: {} bytes",
        log.encoded_bytes()
    );
    let full: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
    assert!(full.join(" ").starts_with(&done.content));
    assert_eq!(
        output.response.usage.output_tokens, 5000,
        "the whole call is billed"
    );
}

#[tokio::test]
async fn a_batch_answer_past_the_cap_is_truncated_cleanly() {
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .build();
    let call = LlmCallInput {
        max_event_bytes: 8 * 1024,
        ..input("Count to 5000", Mode::Batch, scripted(0))
    };
    let output = env.run(AgentActivities::llm_call, call).await.unwrap();
    let bytes: usize = output.events.iter().map(encoded_len).sum();
    assert!(bytes <= 8 * 1024, "{bytes} bytes of events");
    let done = completed(&output.events);
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert!(done.content.len() > 4000);
    assert!("1 2 3 4 5 6 7 8 9 10".starts_with(&done.content[..20]));
}

#[tokio::test]
async fn heartbeat_bytes_stay_linear_in_a_long_streams_output() {
    let beats: Arc<Mutex<(usize, usize)>> = Arc::default();
    let sink = beats.clone();
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .on_heartbeat(move |details| {
            let events = details
                .downcast::<CallProgress>()
                .expect("heartbeats carry the call's progress");
            let events = events.events();
            let mut beats = sink.lock().unwrap();
            beats.0 += 1;
            beats.1 += events.len();
        })
        .build();
    let output = env
        .run(
            AgentActivities::llm_call,
            input("Count to 20000", Mode::Streaming, scripted(0)),
        )
        .await
        .unwrap();
    let (count, events_sent) = *beats.lock().unwrap();
    let events = output.events.len();
    assert!(events > 1000, "a long stream: {events} events");
    assert!(
        events_sent <= 20 * events,
        "{count} heartbeats re-sent {events_sent} events for a call of {events}"
    );
}

#[tokio::test]
async fn a_worker_shutdown_fails_the_call_retryably_with_its_events() {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (env, streaming) = streaming_env(activities().with_shutdown(stopping));
    let run = env.run(
        AgentActivities::llm_call,
        input("Count to 1000", Mode::Streaming, scripted(2)),
    );
    let shutdown = async {
        streaming.notified().await;
        stop.send_replace(true);
    };
    let (result, ()) = tokio::join!(run, shutdown);
    let Err(ActivityEnvironmentError::Activity(ActivityError::Application(failure))) = result
    else {
        panic!("expected an application failure, got {result:?}");
    };
    assert!(
        !failure.is_non_retryable(),
        "another worker resumes the call"
    );
    let events = encoded_details(OutgoingActivityError::Application(failure));
    assert!(events.len() >= 3, "the streamed events: {events:?}");
    assert_dense_from(&events, 5);
}

#[tokio::test]
async fn a_long_tool_result_is_cut_with_a_marker() {
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities())
        .build();
    let output = env
        .run(
            AgentActivities::tool_call,
            ToolCallInput {
                task_id: None,
                tool_name: "no_such_tool_".repeat(100),
                tool_call_id: "c1".into(),
                arguments: serde_json::json!({}),
                max_result_bytes: 200,
                mcp: None,
            },
        )
        .await
        .unwrap();
    let error = output.error.expect("a failed result");
    assert!(!output.success);
    assert!(error.len() <= 200, "{} bytes", error.len());
    assert!(error.contains("[truncated:"), "{error}");
}

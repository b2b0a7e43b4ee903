//! A test SSE client: reads a task's stream, and reconnects with `Last-Event-ID` as a browser
//! would.

use agentflow_shared::event::Event;
use eventsource_stream::Eventsource;
use futures::StreamExt;

/// What one connection received.
#[derive(Debug, Default)]
pub struct Received {
    /// HTTP status of the response.
    pub status: u16,
    /// The parsed events, with their SSE `id` and `event` fields checked.
    pub events: Vec<Event>,
    /// The `retry` value of the first frame.
    pub retry: Option<u64>,
    /// Whether the server ended the stream (rather than the client stopping early).
    pub ended: bool,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

/// Reads `url` from `last_event_id` on, stopping after `max` events (or when the server ends
/// the stream). Each event's SSE `id` must be its seq and `event` its type.
pub async fn read(
    http: &reqwest::Client,
    url: &str,
    last_event_id: Option<u64>,
    max: usize,
) -> Received {
    let mut request = http.get(url).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.expect("opening the stream");
    let mut received = Received {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        ..Default::default()
    };
    if received.status != 200 {
        return received;
    }
    let mut stream = response.bytes_stream().eventsource();
    while received.events.len() < max {
        match stream.next().await {
            None => {
                received.ended = true;
                break;
            }
            Some(Err(error)) => panic!("SSE stream broke: {error}"),
            Some(Ok(message)) => {
                if received.retry.is_none() {
                    received.retry = message.retry.map(|d| d.as_millis() as u64);
                }
                if message.data.is_empty() {
                    continue;
                }
                let event: Event = serde_json::from_str(&message.data).expect("event JSON");
                assert_eq!(message.id, event.seq.to_string(), "SSE id = seq");
                assert_eq!(message.event, event.type_name(), "SSE event = type");
                received.events.push(event);
            }
        }
    }
    received
}

/// Reads the whole stream, reconnecting with `Last-Event-ID` after every `chunks[i]` events
/// (then to the end); returns every event received over all connections.
pub async fn read_with_reconnects(
    http: &reqwest::Client,
    url: &str,
    chunks: &[usize],
) -> Vec<Event> {
    let mut all: Vec<Event> = Vec::new();
    for &chunk in chunks.iter().chain(std::iter::once(&usize::MAX)) {
        let last = all.last().map(|e| e.seq.0);
        let received = read(http, url, last, chunk).await;
        if received.status == 204 {
            break;
        }
        assert_eq!(received.status, 200);
        let ended = received.ended;
        all.extend(received.events);
        if ended {
            break;
        }
    }
    all
}

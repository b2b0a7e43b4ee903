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

/// A stream read event by event, so a test can act when a given event arrives.
pub struct Live {
    stream: std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = Result<
                        eventsource_stream::Event,
                        eventsource_stream::EventStreamError<reqwest::Error>,
                    >,
                > + Send,
        >,
    >,
    /// Every event received so far.
    pub events: Vec<Event>,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Live {
    /// Opens `GET url` (from the start); panics unless 200.
    pub async fn open(http: &reqwest::Client, url: &str) -> Self {
        let response = http
            .get(url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("opening the stream");
        Self::from_response(response)
    }

    /// Reads an already answered request (e.g. `POST …/tasks/stream`); panics unless 200.
    pub fn from_response(response: reqwest::Response) -> Self {
        assert_eq!(response.status().as_u16(), 200, "stream status");
        let headers = response.headers().clone();
        Self {
            stream: Box::pin(response.bytes_stream().eventsource()),
            events: Vec::new(),
            headers,
        }
    }

    /// The next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(error) => panic!("SSE stream broke: {error}"),
            };
            if message.data.is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(&message.data).expect("event JSON");
            assert_eq!(message.id, event.seq.to_string(), "SSE id = seq");
            assert_eq!(message.event, event.type_name(), "SSE event = type");
            self.events.push(event.clone());
            return Some(event);
        }
    }

    /// Reads until an event of type `name` arrives, and returns it; panics if the stream ends.
    pub async fn until(&mut self, name: &str) -> Event {
        loop {
            match self.next().await {
                Some(event) if event.type_name() == name => return event,
                Some(_) => {}
                None => {
                    let types = self.types();
                    let tail = &types[types.len().saturating_sub(8)..];
                    panic!("the stream ended before {name}; it ended with {tail:?}")
                }
            }
        }
    }

    /// Reads to the end of the stream; returns everything received.
    pub async fn rest(&mut self) -> &[Event] {
        while self.next().await.is_some() {}
        &self.events
    }

    /// The types received so far.
    pub fn types(&self) -> Vec<&'static str> {
        self.events.iter().map(Event::type_name).collect()
    }
}

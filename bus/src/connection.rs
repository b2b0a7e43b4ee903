//! The [`Bus`]: one NATS connection per process, made in the background (a process starts
//! without the bus and its calls use heartbeats until it is there) as the configured user, over
//! TLS when asked, and the JetStream stream checked against [`BusSettings`] at each connection
//! (created, or updated, only when it differs).

use crate::counters::BusCounters;
use agentflow_shared::config::BusSettings;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, stream};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus is not connected, or its stream is not ready.
    #[error("the bus is not ready ({0:?})")]
    NotReady(BusState),
    /// A NATS or JetStream request failed.
    #[error("bus request failed: {0}")]
    Request(String),
    /// The stream's settings contradict what agentflow needs.
    #[error("the bus stream is misconfigured: {0}")]
    Misconfigured(String),
}

impl BusError {
    pub(crate) fn request(error: impl std::fmt::Display) -> Self {
        Self::Request(error.to_string())
    }
}

/// Where the bus stands, as `/readyz` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusState {
    /// Not connected yet, or reconnecting.
    Connecting,
    /// Connected, with the stream checked.
    Ready,
    /// Connected, but the stream could not be created or contradicts the settings.
    Misconfigured,
}

/// The live event bus of one process.
#[derive(Clone)]
pub struct Bus {
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) settings: Arc<BusSettings>,
    pub(crate) counters: Arc<BusCounters>,
    state: watch::Receiver<BusState>,
}

impl Bus {
    /// Starts connecting to the bus of `settings` (in the background: this returns at once) and
    /// keeps the stream checked at every (re)connection. `None` when no bus is configured.
    pub async fn start(settings: &BusSettings) -> Result<Option<Self>, BusError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let (state_tx, state) = watch::channel(BusState::Connecting);
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let client = connect_options(settings)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100 * attempts.min(10) as u64)
            })
            .event_callback(move |event| {
                let events_tx = events_tx.clone();
                async move {
                    let _ = events_tx.send(event);
                }
            })
            .connect(settings.url.as_str())
            .await
            .map_err(BusError::request)?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(settings.ack_timeout_ms))
            .max_ack_inflight(settings.max_pending_acks)
            .backpressure_on_inflight(false)
            .build(client.clone());
        let bus = Self {
            client,
            jetstream,
            settings: Arc::new(settings.clone()),
            counters: Arc::default(),
            state,
        };
        tokio::spawn(keep_ready(bus.clone(), events, state_tx));
        Ok(Some(bus))
    }

    /// Where the bus stands now.
    pub fn state(&self) -> BusState {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => *self.state.borrow(),
            _ => BusState::Connecting,
        }
    }

    /// Whether core NATS is connected (hints need no more; calls need [`Bus::is_ready`]).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The bus's state as it changes (to `Connecting` on a disconnect, `Ready` once back).
    pub fn watch_state(&self) -> watch::Receiver<BusState> {
        self.state.clone()
    }

    /// Whether calls may use the bus now.
    pub fn is_ready(&self) -> bool {
        self.state() == BusState::Ready
    }

    /// Waits until the bus is ready, at most `timeout`; whether it is.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut state = self.state.clone();
        let ready = tokio::time::timeout(timeout, async {
            loop {
                if self.is_ready() {
                    return;
                }
                tokio::select! {
                    changed = state.changed() => if changed.is_err() {
                        std::future::pending::<()>().await;
                    },
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        ready.await.is_ok()
    }

    /// The settings the bus runs with.
    pub fn settings(&self) -> &BusSettings {
        &self.settings
    }

    /// What this process did on the bus.
    pub fn counters(&self) -> &BusCounters {
        &self.counters
    }

    /// The NATS client underneath, for what the bus does not wrap (a test's raw subscription).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The stream's config as agentflow needs it.
    fn stream_config(&self) -> stream::Config {
        let settings = &self.settings;
        stream::Config {
            name: settings.stream.clone(),
            subjects: vec![format!("{}.>", settings.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            max_age: Duration::from_secs(settings.max_age_secs),
            max_bytes: settings.max_bytes,
            max_message_size: settings.max_message_bytes,
            duplicate_window: Duration::from_secs(settings.duplicate_window_secs),
            ..Default::default()
        }
    }

    /// Creates the stream, or updates it where it differs from the settings, then checks what
    /// the server holds. A stream that is as configured is only read: a process allowed to
    /// read the stream's info but not to change it (the api, under docker/nats.conf) runs
    /// against the stream its workers made.
    async fn ensure_stream(&self) -> Result<(), BusError> {
        let wanted = self.stream_config();
        let misconfigured =
            |error: &dyn std::fmt::Display| BusError::Misconfigured(error.to_string());
        let held = match self.jetstream.get_stream(&wanted.name).await {
            Ok(stream) if !differs(&stream.cached_info().config, &wanted) => {
                stream.cached_info().config.clone()
            }
            Ok(_) => {
                let info = self.jetstream.update_stream(&wanted).await;
                info.map_err(|e| misconfigured(&e))?.config
            }
            Err(error)
                if matches!(error.kind(), GetStreamErrorKind::JetStream(e)
                    if e.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                let stream = self.jetstream.create_stream(wanted.clone()).await;
                stream
                    .map_err(|e| misconfigured(&e))?
                    .cached_info()
                    .config
                    .clone()
            }
            Err(error) => return Err(misconfigured(&error)),
        };
        let problems: Vec<&str> = [
            (
                held.discard != stream::DiscardPolicy::New,
                "discard is not `new`",
            ),
            (
                held.storage != stream::StorageType::File,
                "storage is not file",
            ),
            (
                held.max_age < wanted.max_age,
                "max_age is shorter than configured",
            ),
            (
                held.duplicate_window > held.max_age && held.max_age != Duration::ZERO,
                "the duplicate window outlives max_age",
            ),
            (
                !held.subjects.contains(&wanted.subjects[0]),
                "the subjects do not cover the prefix",
            ),
        ]
        .into_iter()
        .filter_map(|(wrong, what)| wrong.then_some(what))
        .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BusError::Misconfigured(problems.join(", ")))
        }
    }
}

/// Whether the stream `held` lacks any setting of `wanted` (those agentflow sets).
fn differs(held: &stream::Config, wanted: &stream::Config) -> bool {
    held.subjects != wanted.subjects
        || held.storage != wanted.storage
        || held.retention != wanted.retention
        || held.discard != wanted.discard
        || held.max_age != wanted.max_age
        || held.max_bytes != wanted.max_bytes
        || held.max_message_size != wanted.max_message_size
        || held.duplicate_window != wanted.duplicate_window
}

/// How to connect to the bus of `settings`: as its user, with its inbox prefix, trusting its
/// TLS roots, requiring TLS if asked.
fn connect_options(settings: &BusSettings) -> async_nats::ConnectOptions {
    // rustls wants one crypto provider per process; a worker links two (ring, here, and
    // aws-lc-rs, through its HTTP clients), so neither is the default and a TLS connection
    // would fail: ring becomes the default, unless the process chose one.
    let _ = async_nats::rustls::crypto::ring::default_provider().install_default();
    let mut options = async_nats::ConnectOptions::new()
        .require_tls(settings.tls_required)
        .custom_inbox_prefix(settings.inbox_prefix());
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.0.clone());
    }
    if let Some(roots) = &settings.tls_ca_file {
        options = options.add_root_certificates(roots.clone());
    }
    options
}

/// Checks the stream at every connection; tracks the state.
async fn keep_ready(
    bus: Bus,
    mut events: tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>,
    state: watch::Sender<BusState>,
) {
    loop {
        if bus.client.connection_state() == async_nats::connection::State::Connected {
            match bus.ensure_stream().await {
                Ok(()) => {
                    state.send_replace(BusState::Ready);
                    tracing::info!(url = %bus.settings.url, stream = %bus.settings.stream, "bus ready");
                }
                Err(error) => {
                    state.send_replace(BusState::Misconfigured);
                    tracing::error!(%error, "bus stream not ready; calls use heartbeats");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            }
        }
        loop {
            match events.recv().await {
                None => return,
                Some(async_nats::Event::Connected) => break,
                Some(async_nats::Event::Disconnected) => {
                    state.send_replace(BusState::Connecting);
                    tracing::warn!("bus disconnected; calls use heartbeats until it is back");
                }
                Some(other) => tracing::debug!(event = %other, "bus event"),
            }
        }
    }
}

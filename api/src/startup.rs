//! `Application`: build (bind, connect), port, run until stopped.

use crate::auth::AuthState;
use crate::error::ApiError;
use crate::relay::{Registry, RelaySettings};
use crate::routes::app;
use crate::state::AppState;
use agentflow_bus::Bus;
use agentflow_shared::config::AgentflowConfig;
use axum::response::IntoResponse;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use temporalio_client::Client;
use tokio::net::TcpListener;

/// Counts a served connection in [`AppState::connections`] while it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A bound, ready-to-run api.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutting_down: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Binds `config.api.listen` (port 0 picks a free port), starts connecting to the bus (in
    /// the background) and prepares the state.
    pub async fn build(config: AgentflowConfig, client: Client) -> std::io::Result<Self> {
        refuse_open_network(&config)?;
        let listener = TcpListener::bind(&config.api.listen).await?;
        let bus = Bus::start(&config.bus)
            .await
            .map_err(std::io::Error::other)?;
        Self::with_listener(listener, config, client, bus)
    }

    /// Uses an already bound listener and this bus.
    pub fn with_listener(
        listener: TcpListener,
        config: AgentflowConfig,
        client: Client,
        bus: Option<Bus>,
    ) -> std::io::Result<Self> {
        let auth = AuthState::start(&config.auth, &config.limits).map_err(std::io::Error::other)?;
        let settings = RelaySettings {
            describe_interval: Duration::from_millis(config.api.describe_interval_ms.max(1)),
            max_describe_interval: Duration::from_millis(
                config
                    .api
                    .max_describe_interval_ms
                    .max(config.api.describe_interval_ms.max(1)),
            ),
            query_timeout: config.api.query_timeout(),
            rpc_timeout: config.api.rpc_timeout(),
            linger: Duration::from_millis(config.api.relay_linger_ms),
            max_relays: config.api.max_relays,
            max_streams: config.api.max_streams,
            max_streams_per_task: config.api.max_streams_per_task,
            marker_interval: Duration::from_millis(config.bus.marker_interval_ms.max(1)),
            progress_hints: config.bus.progress_hints,
        };
        let (shutting_down, shutdown_seen) = tokio::sync::watch::channel(false);
        let state = AppState {
            relays: Registry::new(client.clone(), settings, bus),
            client,
            config: Arc::new(config),
            handler_rpcs: Arc::default(),
            shutting_down: shutdown_seen,
            connections: Arc::default(),
            auth,
        };
        Ok(Self {
            listener,
            state,
            shutting_down,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` resolves, then stops accepting and ends open streams.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let signal = self.shutting_down;
        run(self.listener, self.state, async move {
            shutdown.await;
            signal.send_replace(true);
        })
        .await
    }
}

/// With auth off, refuses to listen on a non-loopback address (anyone who reaches it could do
/// anything) unless `auth.allow_unauthenticated_network` says so.
fn refuse_open_network(config: &AgentflowConfig) -> std::io::Result<()> {
    if config.auth.enabled || config.auth.allow_unauthenticated_network {
        return Ok(());
    }
    let host = config
        .api
        .listen
        .rsplit_once(':')
        .map_or(config.api.listen.as_str(), |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "refusing to listen on {} with auth off: anyone who can reach it could read and \
             control every task. Turn auth on ([auth] enabled = true, with keys), listen on \
             127.0.0.1, or set auth.allow_unauthenticated_network = true",
            config.api.listen
        ),
    ))
}

/// Serves the api on `listener` until `shutdown` resolves. The state's `shutting_down` must
/// turn `true` by then, so that open streams end and the graceful shutdown completes; requests
/// still waiting after half of `api.shutdown_timeout_secs` get 503, and connections still open
/// after all of it are closed, so this returns within that deadline.
///
/// A plain hyper HTTP/1 loop rather than `axum::serve`, for one setting: `half_close`, which
/// stops hyper from reading a connection while its response streams. Without it hyper's
/// end-of-stream probe grows every SSE connection's read buffer to 16 KiB; with it a client
/// that leaves is noticed at the next write (an event or the keep-alive comment).
///
/// At most `api.max_connections` connections are served at once; one more is answered 503
/// (problem+json, `Retry-After`) and closed. Headers must arrive within
/// `api.request_read_timeout_secs` (the connection is closed otherwise).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = ?listener.local_addr().ok(), "api listening");
    let deadline = state.config.api.shutdown_timeout();
    let max_connections = state.config.api.max_connections;
    let read_timeout = state.config.api.request_read_timeout();
    let open = state.connections.clone();
    let app = app(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.half_close(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_timeout);
    let mut refusing = http.clone();
    refusing.keep_alive(false);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause, then go on accepting.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        if open.load(Ordering::Relaxed) >= max_connections {
            let refusal = refusing.serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                hyper::service::service_fn(move |_| async move {
                    let problem = ApiError::Overloaded {
                        detail: format!(
                            "the api has {max_connections} connections open, the most allowed \
                             (api.max_connections)"
                        ),
                        retry_after_secs: 1,
                    };
                    Ok::<_, std::convert::Infallible>(problem.into_response())
                }),
            );
            connections.spawn(async move {
                let _ = tokio::time::timeout(read_timeout, refusal).await;
            });
            continue;
        }
        let counted = OpenConnection::new(&open);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(counted);
        });
    }
    drop(listener);
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "shutdown deadline passed; closing the connections still open"
        );
    }
    connections.shutdown().await;
    Ok(())
}

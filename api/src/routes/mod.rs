//! HTTP routes: `app(state) -> Router`.

pub mod agents;
pub mod control;
pub mod credentials;
pub mod events;
pub mod health;
pub mod page;
pub mod tasks;
pub mod tools;

use crate::auth::guard::{authenticate, refuse_cross_site};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The whole api.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.api.max_body_bytes;
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .route(
            "/api/v1/session",
            post(credentials::log_in)
                .get(credentials::who_am_i)
                .delete(credentials::log_out),
        )
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/{agent_id}", get(agents::show))
        .route("/api/v1/tools", get(tools::list))
        .route(
            "/api/v1/agents/{agent_id}/tasks",
            post(tasks::create).get(tasks::list),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/stream",
            post(events::create_and_stream),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}",
            get(tasks::show).delete(control::delete),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/pause",
            post(control::pause),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/resume",
            post(control::resume),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/cancel",
            post(control::cancel),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/close",
            post(control::close),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/budget",
            post(control::budget),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/approvals/{approval_id}",
            post(control::decide),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/stream-token",
            post(credentials::stream_token),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/execute",
            post(tasks::execute),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/events",
            get(events::page),
        )
        .route(
            "/api/v1/agents/{agent_id}/tasks/{task_id}/events/stream",
            get(events::stream),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this method is not allowed on this route".into())
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body_in_time,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_cross_site,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            answer_before_shutdown,
        ))
        .layer(cors(&state.config.api.cors_origins))
        .layer(
            // The path only: a query may carry a stream token, which is never logged.
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
            }),
        )
        .with_state(state)
}

/// CORS for `api.cors_origins` (none by default: browsers then allow same-origin calls only).
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-task-id")])
}

/// Reads the request body before the handler runs, within `api.request_read_timeout_secs`
/// (late → 408) and `api.max_body_bytes` (larger → 413), so a client that stalls mid-body
/// holds no handler.
async fn read_body_in_time(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let read = Bytes::from_request(Request::from_parts(parts.clone(), body), &state);
    let bytes = tokio::time::timeout(state.config.api.request_read_timeout(), read)
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s",
                state.config.api.request_read_timeout().as_secs()
            ))
        })?
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("the request body is too large".into())
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
    Ok(next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await)
}

/// Once the server shuts down, a request still waiting (for a worker, for Temporal) after half
/// of `api.shutdown_timeout_secs` is answered 503 with `Retry-After`, so the graceful shutdown
/// completes in time and the client learns to retry elsewhere.
async fn answer_before_shutdown(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut shutting_down = state.shutting_down.clone();
    let grace = state.config.api.shutdown_timeout() / 2;
    let cut_off = async move {
        if shutting_down.wait_for(|down| *down).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        response = next.run(request) => response,
        () = cut_off => ApiError::Overloaded {
            detail: "the api is shutting down; retry".into(),
            retry_after_secs: 1,
        }
        .into_response(),
    }
}

//! `ApiError`: every failure of a handler, answered as RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem detail (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong, for this request.
    pub detail: String,
}

/// What a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (syntax, bad cursor, bad token …) → 400.
    #[error("{0}")]
    BadRequest(String),
    /// No credential, or one that is not valid (unknown, revoked, forged or expired) → 401
    /// with `WWW-Authenticate`.
    #[error("{0}")]
    Unauthorized(String),
    /// The credential lacks the scope, or the request is cross-site → 403.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown agent, task, or a task of another agent → 404.
    #[error("{0}")]
    NotFound(String),
    /// The method is not allowed on the route → 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the task's state → 409.
    #[error("{0}")]
    Conflict(String),
    /// The request body did not arrive in time → 408.
    #[error("{0}")]
    RequestTimeout(String),
    /// The body is larger than allowed → 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not JSON → 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but invalid fields → 422.
    #[error("{0}")]
    Unprocessable(String),
    /// Too many streams → 429 with `Retry-After`.
    #[error("{detail}")]
    TooManyRequests {
        /// Which limit was reached.
        detail: String,
        /// Seconds after which a retry may succeed.
        retry_after_secs: u64,
    },
    /// Temporal is unreachable or a query timed out → 503 (retry later).
    #[error("{0}")]
    Unavailable(String),
    /// The api is at a limit or shutting down → 503 with `Retry-After`.
    #[error("{detail}")]
    Overloaded {
        /// What is exhausted.
        detail: String,
        /// Seconds after which a retry may succeed.
        retry_after_secs: u64,
    },
    /// Anything else: logged with context, answered without details → 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request-timeout"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-request"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests"),
            Self::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Seconds after which the client may retry, sent as `Retry-After`.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Overloaded {
                retry_after_secs, ..
            }
            | Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// An internal error from anything displayable; the cause is logged, not sent.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.parts();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                cause.clone()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("https://agentflow.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Self::Unauthorized(_) = &self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agentflow\""),
            );
        }
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

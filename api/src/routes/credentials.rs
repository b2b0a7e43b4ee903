//! Credentials for browsers: the page's session (a key exchanged once for an HttpOnly,
//! SameSite=Strict cookie, so no key stays in the page) and stream tokens (`?access_token=`,
//! since an `EventSource` cannot send headers).

use crate::auth::Caller;
use crate::auth::access::Credential;
use crate::auth::guard::{SESSION_COOKIE, caller_of};
use crate::auth::token::{Claims, Grant};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::task_path::TaskPath;
use agentflow_shared::ids::TenantId;
use agentflow_shared::security::Scope;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Body of `POST /api/v1/session`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogIn {
    /// An API key; it is exchanged for the session cookie and not kept.
    pub key: String,
}

impl std::fmt::Debug for LogIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogIn { key: <redacted> }")
    }
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Whether the api requires credentials; when not, everyone is `tenant` with every scope.
    pub auth_enabled: bool,
    /// The key's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The tenant whose tasks the caller sees.
    pub tenant: TenantId,
    /// What the caller may do.
    pub scopes: Vec<Scope>,
    /// When the session ends (a session cookie only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Session {
    fn of(state: &AppState, caller: &Caller, expires_at: Option<DateTime<Utc>>) -> Self {
        Self {
            auth_enabled: state.config.auth.enabled,
            identity: caller.identity.clone(),
            tenant: caller.tenant.clone(),
            scopes: caller.scopes.clone(),
            expires_at,
        }
    }
}

/// A stream token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StreamToken {
    /// Pass as `?access_token=` on this task's `events` and `events/stream` routes.
    pub token: String,
    /// After this it admits no new connection (an open stream keeps running).
    pub expires_at: DateTime<Utc>,
}

/// `seconds` from now, in whole seconds (what a token's `exp` holds, so the two agree).
fn expiry(seconds: u64) -> DateTime<Utc> {
    let exp = Utc::now()
        .timestamp()
        .saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
    DateTime::from_timestamp(exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Exchanges an API key for the page's session cookie (HttpOnly, SameSite=Strict, for
/// `auth.session_ttl_secs`); the key's scopes and tenant apply. 401 for a bad key, 409 when
/// auth is off.
#[utoipa::path(post, path = "/api/v1/session", tag = "auth", request_body = LogIn,
    responses((status = 200, body = Session), (status = 401, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn log_in(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<LogIn>,
) -> Result<Response, ApiError> {
    if !state.config.auth.enabled {
        return Err(ApiError::Conflict(
            "auth is off: the api needs no session".into(),
        ));
    }
    let record = state.auth.keys.verify(body.key.trim()).ok_or_else(|| {
        ApiError::Unauthorized("the key is not valid (unknown or revoked)".into())
    })?;
    let ttl = state.config.auth.session_ttl_secs;
    let expires_at = expiry(ttl);
    let token = state
        .auth
        .signer
        .sign(&Claims {
            grant: Grant::Session,
            key: record.id.clone(),
            exp: expires_at.timestamp(),
        })
        .ok_or_else(|| ApiError::internal("signing a session", "no token secret"))?;
    let caller = caller_of(record);
    tracing::info!(identity = ?caller.identity, tenant = %caller.tenant, "page session opened");
    let secure = if state.config.auth.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={ttl}{secure}"
    );
    let mut response = Json(Session::of(&state, &caller, Some(expires_at))).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal("session cookie", e))?,
    );
    Ok(response)
}

/// Who the caller is (any valid credential; with auth off, everyone).
#[utoipa::path(get, path = "/api/v1/session", tag = "auth",
    responses((status = 200, body = Session), (status = 401, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller))]
pub async fn who_am_i(State(state): State<AppState>, caller: Caller) -> Json<Session> {
    let expires_at = match caller.credential {
        Credential::Session { expires_at } => DateTime::from_timestamp(expires_at, 0),
        _ => None,
    };
    Json(Session::of(&state, &caller, expires_at))
}

/// Ends the page's session (clears the cookie). Sessions are stateless: a copy of the cookie
/// stays valid until it expires or its key is revoked.
#[utoipa::path(delete, path = "/api/v1/session", tag = "auth",
    responses((status = 204, description = "The cookie is cleared")))]
#[tracing::instrument]
pub async fn log_out() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "agentflow_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    response
}

/// Mints a token that admits connections to this task's `events` and `events/stream` routes
/// (`?access_token=`) for `auth.stream_token_ttl_secs`. It ends with its key: once the key is
/// revoked the token is refused and its streams end. 409 when auth is off.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/stream-token", tag = "auth",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    responses((status = 200, body = StreamToken), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller))]
pub async fn stream_token(
    State(state): State<AppState>,
    caller: Caller,
    path: TaskPath,
) -> Result<Json<StreamToken>, ApiError> {
    let Some(key) = caller.key.clone() else {
        return Err(ApiError::Conflict(
            "auth is off: streams need no token".into(),
        ));
    };
    path.describe(&state).await?;
    let expires_at = expiry(state.config.auth.stream_token_ttl_secs);
    let token = state
        .auth
        .signer
        .sign(&Claims {
            grant: Grant::Stream { task: path.task },
            key,
            exp: expires_at.timestamp(),
        })
        .ok_or_else(|| ApiError::internal("signing a stream token", "no token secret"))?;
    Ok(Json(StreamToken { token, expires_at }))
}

//! The middlewares in front of every route: [`refuse_cross_site`] (CSRF has no entry, auth on
//! or off) and [`authenticate`] (who calls, with which scope, within the tenant's rate).

use crate::auth::access::{self, Access, Caller, Credential, TOKEN_ROUTES};
use crate::auth::token::Grant;
use crate::error::ApiError;
use crate::state::AppState;
use agentflow_shared::ids::TaskId;
use agentflow_shared::security::{KeyRecord, Scope};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::middleware::Next;
use axum::response::Response;

/// The page session's cookie.
pub const SESSION_COOKIE: &str = "agentflow_session";

/// The query parameter a stream token travels in.
pub const ACCESS_TOKEN: &str = "access_token";

/// Refuses a state-changing request (not `GET`, `HEAD` or `OPTIONS`) marked cross-site
/// (`Sec-Fetch-Site: cross-site`, or an `Origin` that is neither the api's own nor one of
/// `api.cors_origins`) with 403, and one whose body is not declared JSON with 415 — a
/// body-less request with no `Content-Type` (`curl -X POST …/resume`) passes.
pub async fn refuse_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe {
        return Ok(next.run(request).await);
    }
    let headers = request.headers();
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site == Some("cross-site") {
        return Err(ApiError::Forbidden(
            "a cross-site request may not change anything (Sec-Fetch-Site: cross-site)".into(),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| {
                origin
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
            });
        let allowed = state.config.api.cors_origins.iter().any(|o| o == origin);
        if !own && !allowed {
            return Err(ApiError::Forbidden(format!(
                "origin `{origin}` may not change anything here (api.cors_origins)"
            )));
        }
    }
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        let json = kind.to_str().is_ok_and(|kind| {
            let essence = kind.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        });
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "a request that changes something takes a JSON body \
                 (Content-Type: application/json) or none"
                    .into(),
            ));
        }
    }
    Ok(next.run(request).await)
}

/// Establishes the [`Caller`] of every request: with auth off, the default tenant with every
/// scope; with auth on, from a stream token (`?access_token=`, on the events routes only), an
/// `Authorization: Bearer` key or the page's session cookie. No or a bad credential → 401
/// with `WWW-Authenticate`; a missing scope → 403. Then, with auth on, the tenant's request
/// rate (429 with `Retry-After`). A stream token is taken out of the URI before the handler (and its trace)
/// sees it.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let access = access::required(request.method(), route.as_deref());
    let route = route.unwrap_or_default();
    let auth = &state.config.auth;
    let caller = if !auth.enabled {
        check_local_host(&state, request.headers())?;
        Caller::open(auth.default_tenant.clone())
    } else if access == Access::Public {
        // No caller: a public route reads no task.
        return Ok(next.run(request).await);
    } else {
        let (caller, uri) = identify(&state, &route, request.uri(), request.headers())?;
        if let Some(uri) = uri {
            *request.uri_mut() = uri;
        }
        caller
    };
    if let Access::Needs(scope) = access
        && !caller.has(scope)
    {
        return Err(ApiError::Forbidden(format!(
            "this needs the `{}` scope, which your key does not have",
            scope.as_str()
        )));
    }
    if auth.enabled
        && access != Access::Public
        && let Err(wait) = state.auth.usage.admit_request(&caller.tenant)
    {
        let limits = state.config.limits.of_tenant(&caller.tenant);
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "tenant `{}` is above {} requests a second on this api process \
                 (limits.tenant.requests_per_sec)",
                caller.tenant, limits.requests_per_sec
            ),
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        });
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// With auth off (and `auth.allow_unauthenticated_network` unset), refuses a `Host` that is not
/// the loopback (`localhost`, `127.0.0.1`, `[::1]`, any port) with 403: a web page whose name
/// is re-bound to 127.0.0.1 (DNS rebinding) must not reach an open api.
fn check_local_host(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config.auth.allow_unauthenticated_network {
        return Ok(());
    }
    let Some(host) = headers.get(header::HOST) else {
        return Ok(());
    };
    let host = host.to_str().unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let local = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "with auth off this api answers loopback names only, not `{host}` (turn auth on, or \
             set auth.allow_unauthenticated_network)"
        )))
    }
}

/// The caller of an authenticated route, and the URI without its stream token.
fn identify(
    state: &AppState,
    route: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(Caller, Option<Uri>), ApiError> {
    let unauthorized = |detail: &str| ApiError::Unauthorized(detail.to_owned());
    if let Some((token, stripped)) = take_access_token(uri) {
        if !TOKEN_ROUTES.contains(&route) {
            return Err(unauthorized(
                "access_token is accepted on a task's events and events/stream routes only",
            ));
        }
        let claims = state
            .auth
            .signer
            .verify(&token, chrono::Utc::now())
            .map_err(|e| unauthorized(&format!("{e}; mint a new one")))?;
        let Grant::Stream { task } = claims.grant else {
            return Err(unauthorized("this token is not a stream token"));
        };
        if path_task(uri) != Some(task) {
            return Err(unauthorized("this token is for another task"));
        }
        let record = in_force(state, &claims.key)?;
        if !caller_of(record.clone()).has(Scope::TasksRead) {
            return Err(unauthorized(
                "the key behind this token may no longer read tasks",
            ));
        }
        let caller = Caller {
            scopes: vec![Scope::TasksRead],
            credential: Credential::StreamToken(task),
            ..caller_of(record)
        };
        return Ok((caller, Some(stripped)));
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("Authorization must be `Bearer <key>`"))?;
        let record = state
            .auth
            .keys
            .verify(key.trim())
            .ok_or_else(|| unauthorized("the key is not valid (unknown or revoked)"))?;
        return Ok((
            Caller {
                credential: Credential::Key,
                ..caller_of(record)
            },
            None,
        ));
    }
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        let claims = state
            .auth
            .signer
            .verify(session, chrono::Utc::now())
            .map_err(|e| unauthorized(&format!("session: {e}; log in again")))?;
        if claims.grant != Grant::Session {
            return Err(unauthorized("the session cookie is not a session"));
        }
        let record = in_force(state, &claims.key)?;
        return Ok((
            Caller {
                credential: Credential::Session {
                    expires_at: claims.exp,
                },
                ..caller_of(record)
            },
            None,
        ));
    }
    Err(unauthorized(
        "this route needs an API key (Authorization: Bearer <key>)",
    ))
}

fn in_force(state: &AppState, key: &agentflow_shared::ids::KeyId) -> Result<KeyRecord, ApiError> {
    state
        .auth
        .keys
        .in_force(key)
        .ok_or_else(|| ApiError::Unauthorized("the key behind this token has been revoked".into()))
}

/// The caller a key record makes.
pub fn caller_of(record: KeyRecord) -> Caller {
    Caller {
        tenant: record.tenant,
        identity: Some(record.identity),
        key: Some(record.id),
        scopes: record.scopes,
        credential: Credential::Key,
    }
}

/// The value of cookie `name`.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The stream token in a URI's query, and the URI without it.
fn take_access_token(uri: &Uri) -> Option<(String, Uri)> {
    let query = uri.query()?;
    let mut token = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((ACCESS_TOKEN, value)) => {
                token = Some(value.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let token = token?;
    let path = uri.path();
    let stripped = if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    Some((token, stripped.parse().ok()?))
}

/// The task a `/api/v1/agents/{agent_id}/tasks/{task_id}/…` path names.
fn path_task(uri: &Uri) -> Option<TaskId> {
    let mut parts = uri.path().split('/');
    // "", "api", "v1", "agents", agent, "tasks", task
    let task = parts.nth(6)?;
    task.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_leaves_the_uri_and_the_rest_stays() {
        let task = TaskId::new();
        let uri: Uri =
            format!("/api/v1/agents/a/tasks/{task}/events/stream?after=3&access_token=t.s")
                .parse()
                .unwrap();
        let (token, stripped) = take_access_token(&uri).unwrap();
        assert_eq!(token, "t.s");
        assert_eq!(
            stripped.to_string(),
            format!("/api/v1/agents/a/tasks/{task}/events/stream?after=3")
        );
        assert_eq!(path_task(&uri), Some(task));
        assert!(take_access_token(&"/x?after=1".parse().unwrap()).is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; agentflow_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}

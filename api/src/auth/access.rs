//! The scope each route needs — one table, pinned by a test — and the [`Caller`] a request
//! authenticates as.

use crate::error::ApiError;
use agentflow_shared::ids::{KeyId, TaskId, TenantId};
use agentflow_shared::security::Scope;
use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the page, health, the OpenAPI document, logging in and out.
    Public,
    /// Any valid credential, whatever its scopes (who am I).
    Authenticated,
    /// A credential with this scope (or `admin`).
    Needs(Scope),
}

/// The routes whose events a stream token may read (`?access_token=`).
pub const TOKEN_ROUTES: [&str; 2] = [
    "/api/v1/agents/{agent_id}/tasks/{task_id}/events",
    "/api/v1/agents/{agent_id}/tasks/{task_id}/events/stream",
];

/// The access `method` on route `path` (as matched, e.g. `/api/v1/agents/{agent_id}`) needs.
/// `HEAD` is `GET` (axum answers it with the `GET` handler). Fails closed: a matched route and
/// method not in the table needs a credential; only a request that matched no route (404) is
/// public besides the listed ones.
pub fn required(method: &Method, path: Option<&str>) -> Access {
    use Scope::{Admin, TasksControl, TasksRead, TasksWrite};
    let Some(path) = path else {
        return Access::Public;
    };
    let needs = Access::Needs;
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let task_route = path.strip_prefix("/api/v1/agents/{agent_id}/tasks/{task_id}");
    match (method, path, task_route) {
        ("GET", "/" | "/app.js" | "/style.css" | "/healthz" | "/readyz" | "/openapi.json", _) => {
            Access::Public
        }
        ("POST" | "DELETE", "/api/v1/session", _) => Access::Public,
        ("GET", "/metrics", _) => needs(Admin),
        ("GET", "/api/v1/session", _) => Access::Authenticated,
        ("GET", "/api/v1/agents" | "/api/v1/agents/{agent_id}" | "/api/v1/tools", _) => {
            needs(TasksRead)
        }
        ("GET", "/api/v1/agents/{agent_id}/tasks", _) => needs(TasksRead),
        (
            "POST",
            "/api/v1/agents/{agent_id}/tasks" | "/api/v1/agents/{agent_id}/tasks/stream",
            _,
        ) => needs(TasksWrite),
        ("GET", _, Some("" | "/events" | "/events/stream")) => needs(TasksRead),
        ("POST", _, Some("/stream-token")) => needs(TasksRead),
        ("POST", _, Some("/execute")) => needs(TasksWrite),
        ("DELETE", _, Some("")) => needs(TasksControl),
        ("POST", _, Some(rest))
            if matches!(
                rest,
                "/pause" | "/resume" | "/cancel" | "/close" | "/budget"
            ) || rest.starts_with("/approvals/") =>
        {
            needs(TasksControl)
        }
        _ => Access::Authenticated,
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Auth is off: everyone is the default tenant, with every scope.
    Open,
    /// `Authorization: Bearer <key>`.
    Key,
    /// The page's session cookie, minted from a key; it ends at these Unix seconds.
    Session {
        /// When the session ends.
        expires_at: i64,
    },
    /// A stream token for one task.
    StreamToken(TaskId),
}

/// Who is calling: set by the auth middleware on every request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant whose tasks it sees.
    pub tenant: TenantId,
    /// The key's identity (`None` while auth is off).
    pub identity: Option<String>,
    /// The key it authenticated with, directly or through a token.
    pub key: Option<KeyId>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// How it authenticated.
    pub credential: Credential,
}

impl Caller {
    /// The caller while auth is off.
    pub fn open(tenant: TenantId) -> Self {
        Self {
            tenant,
            identity: None,
            key: None,
            scopes: vec![Scope::Admin],
            credential: Credential::Open,
        }
    }

    /// Whether it may do what `scope` allows.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == scope || *s == Scope::Admin)
    }

    /// Fills a body's `requested_by` (or `user_id`) with the key's identity. With auth on a
    /// body may not name anyone (422: it comes from the key); with auth off it is kept.
    pub fn stamp(&self, field: &str, value: &mut Option<String>) -> Result<(), ApiError> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        if value.is_some() {
            return Err(ApiError::Unprocessable(format!(
                "{field}: leave it out; with auth on it is your key's identity"
            )));
        }
        *value = Some(identity.clone());
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("authentication", "the auth middleware did not run"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned table: which scope each route of the OpenAPI document needs.
    #[test]
    fn every_route_needs_its_pinned_scope() {
        let task = "/api/v1/agents/{agent_id}/tasks/{task_id}";
        let cases = [
            ("GET", "/".to_owned(), Access::Public),
            ("GET", "/healthz".into(), Access::Public),
            ("GET", "/readyz".into(), Access::Public),
            ("GET", "/openapi.json".into(), Access::Public),
            ("POST", "/api/v1/session".into(), Access::Public),
            ("DELETE", "/api/v1/session".into(), Access::Public),
            ("GET", "/api/v1/session".into(), Access::Authenticated),
            ("GET", "/metrics".into(), Access::Needs(Scope::Admin)),
            (
                "GET",
                "/api/v1/agents".into(),
                Access::Needs(Scope::TasksRead),
            ),
            (
                "GET",
                "/api/v1/agents/{agent_id}".into(),
                Access::Needs(Scope::TasksRead),
            ),
            (
                "GET",
                "/api/v1/tools".into(),
                Access::Needs(Scope::TasksRead),
            ),
            (
                "GET",
                "/api/v1/agents/{agent_id}/tasks".into(),
                Access::Needs(Scope::TasksRead),
            ),
            (
                "POST",
                "/api/v1/agents/{agent_id}/tasks".into(),
                Access::Needs(Scope::TasksWrite),
            ),
            (
                "POST",
                "/api/v1/agents/{agent_id}/tasks/stream".into(),
                Access::Needs(Scope::TasksWrite),
            ),
            ("GET", task.into(), Access::Needs(Scope::TasksRead)),
            (
                "GET",
                format!("{task}/events"),
                Access::Needs(Scope::TasksRead),
            ),
            (
                "GET",
                format!("{task}/events/stream"),
                Access::Needs(Scope::TasksRead),
            ),
            (
                "POST",
                format!("{task}/stream-token"),
                Access::Needs(Scope::TasksRead),
            ),
            (
                "POST",
                format!("{task}/execute"),
                Access::Needs(Scope::TasksWrite),
            ),
            ("DELETE", task.into(), Access::Needs(Scope::TasksControl)),
            (
                "POST",
                format!("{task}/pause"),
                Access::Needs(Scope::TasksControl),
            ),
            (
                "POST",
                format!("{task}/resume"),
                Access::Needs(Scope::TasksControl),
            ),
            (
                "POST",
                format!("{task}/cancel"),
                Access::Needs(Scope::TasksControl),
            ),
            (
                "POST",
                format!("{task}/close"),
                Access::Needs(Scope::TasksControl),
            ),
            (
                "POST",
                format!("{task}/budget"),
                Access::Needs(Scope::TasksControl),
            ),
            (
                "POST",
                format!("{task}/approvals/{{approval_id}}"),
                Access::Needs(Scope::TasksControl),
            ),
        ];
        for (method, path, access) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(required(&method, Some(&path)), access, "{method} {path}");
            if method == Method::GET {
                assert_eq!(required(&Method::HEAD, Some(&path)), access, "HEAD {path}");
            }
        }
        // Fails closed: a method or route the table does not list needs a credential.
        for (method, path) in [
            ("PUT", task.to_owned()),
            ("OPTIONS", "/api/v1/agents".into()),
        ] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                required(&method, Some(&path)),
                Access::Authenticated,
                "{method} {path}"
            );
        }
        assert_eq!(
            required(&Method::GET, None),
            Access::Public,
            "no route: 404"
        );
    }

    #[test]
    fn admin_has_every_scope_and_others_only_theirs() {
        let mut caller = Caller::open("t".parse().unwrap());
        assert!(Scope::ALL.iter().all(|s| caller.has(*s)));
        caller.scopes = vec![Scope::TasksRead];
        assert!(caller.has(Scope::TasksRead));
        assert!(!caller.has(Scope::TasksControl));
        assert!(!caller.has(Scope::Admin));
    }
}

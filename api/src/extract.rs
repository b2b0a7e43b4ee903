//! Extractors whose rejections are problem+json: `JsonBody`, `OptionalJsonBody`,
//! `QueryParams` and `PathParams`.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body: syntax errors → 400, wrong or unknown fields → 422 naming the field,
/// too large → 413, not JSON → 415.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::Unprocessable(e.body_text()),
                JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                    "the body must be JSON with `Content-Type: application/json`".into(),
                ),
                JsonRejection::BytesRejection(e) if e.status() == 413 => {
                    ApiError::PayloadTooLarge("the request body is too large".into())
                }
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// A JSON body that may be left out (no body at all reads as `T::default()`); when present, it
/// is checked like [`JsonBody`].
pub struct OptionalJsonBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(|e| {
                    if e.status() == 413 {
                        ApiError::PayloadTooLarge("the request body is too large".into())
                    } else {
                        ApiError::BadRequest(e.body_text())
                    }
                })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        JsonBody::<T>::from_request(request, state)
            .await
            .map(|JsonBody(value)| Self(value))
    }
}

/// Query-string parameters: unknown or malformed ones → 400 naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// Path parameters: undecodable ones (`%FF`, not UTF-8) → 400 naming the problem.
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| {
                if e.status().is_server_error() {
                    ApiError::internal("extracting path parameters", e.body_text())
                } else {
                    ApiError::BadRequest(e.body_text())
                }
            })
    }
}

#[cfg(test)]
mod tests {
    //! The extractors on a small router of their own, called with `oneshot` (no server, no
    //! Temporal): every rejection is a problem+json with the documented status and a detail
    //! that names what is wrong.

    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{Request as HttpRequest, StatusCode, header};
    use axum::routing::{get, post};
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt;

    /// The body limit of the test router.
    const LIMIT: usize = 64;

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Input {
        name: String,
        #[serde(default)]
        count: u32,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Page {
        #[serde(default)]
        after: u64,
        limit: Option<u32>,
    }

    async fn json_body(JsonBody(input): JsonBody<Input>) -> String {
        format!("{} {}", input.name, input.count)
    }

    async fn optional_body(OptionalJsonBody(input): OptionalJsonBody<Input>) -> String {
        format!("[{}] {}", input.name, input.count)
    }

    async fn query(QueryParams(page): QueryParams<Page>) -> String {
        format!("{} {:?}", page.after, page.limit)
    }

    async fn path(PathParams((agent, n)): PathParams<(String, u32)>) -> String {
        format!("{agent} {n}")
    }

    /// A route whose extractor wants more parameters than the route has: a bug, not bad input.
    async fn miswired(PathParams(_): PathParams<(String, String)>) -> &'static str {
        "unreachable"
    }

    fn router() -> Router {
        Router::new()
            .route("/json", post(json_body))
            .route("/optional", post(optional_body))
            .route("/query", get(query))
            .route("/items/{agent}/{n}", get(path))
            .route("/miswired/{one}", get(miswired))
            .layer(DefaultBodyLimit::max(LIMIT))
    }

    /// What the router answers: status, content type, body.
    struct Answer {
        status: StatusCode,
        content_type: String,
        body: Vec<u8>,
    }

    impl Answer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// Asserts a problem+json with this status (and its `status`, `type` and `title`
        /// fields), whose detail mentions `mention`; returns the detail.
        #[track_caller]
        fn problem(&self, status: StatusCode, mention: &str) -> String {
            assert_eq!(self.status, status, "{}", self.text());
            assert_eq!(self.content_type, "application/problem+json");
            let problem: Value = serde_json::from_slice(&self.body).expect("a JSON problem");
            assert_eq!(problem["status"], status.as_u16(), "{problem}");
            assert!(problem["type"].is_string() && problem["title"].is_string());
            let detail = problem["detail"].as_str().expect("a detail").to_owned();
            assert!(
                detail.contains(mention),
                "`{detail}` should mention `{mention}`"
            );
            detail
        }

        #[track_caller]
        fn ok(&self, text: &str) {
            assert_eq!(self.status, StatusCode::OK, "{}", self.text());
            assert_eq!(self.text(), text);
        }
    }

    async fn call(request: Request) -> Answer {
        let response = router().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body")
            .to_vec();
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn post_body(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Answer {
        let mut request = HttpRequest::post(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        call(request.body(body.into()).unwrap()).await
    }

    async fn post_json(uri: &str, body: &str) -> Answer {
        post_body(uri, Some("application/json"), body.to_owned()).await
    }

    async fn get_uri(uri: &str) -> Answer {
        call(HttpRequest::get(uri).body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn a_json_body_is_taken_and_each_kind_of_bad_body_gets_its_status() {
        post_json("/json", r#"{"name": "ann", "count": 2}"#)
            .await
            .ok("ann 2");
        post_json("/json", "{not json")
            .await
            .problem(StatusCode::BAD_REQUEST, "parse the request body as JSON");
        post_json("/json", r#"{"name": 5}"#)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "name");
        post_json("/json", r#"{"name": "ann", "bogus": 1}"#)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "bogus");
        post_json("/json", "{}")
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "name");
        post_json("/json", r#"{"name": "ann", "count": -1}"#)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "count");
        let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(LIMIT));
        post_json("/json", &huge)
            .await
            .problem(StatusCode::PAYLOAD_TOO_LARGE, "too large");
        post_body("/json", Some("text/plain"), r#"{"name": "ann"}"#)
            .await
            .problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type: application/json",
            );
        post_body("/json", None, r#"{"name": "ann"}"#)
            .await
            .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON");
    }

    #[tokio::test]
    async fn an_optional_body_may_be_left_out_and_is_checked_when_present() {
        post_body("/optional", None, "").await.ok("[] 0");
        post_body("/optional", None, " \n\t").await.ok("[] 0");
        post_body("/optional", Some("application/json"), "")
            .await
            .ok("[] 0");
        post_json("/optional", r#"{"name": "bo", "count": 3}"#)
            .await
            .ok("[bo] 3");
        post_json("/optional", "{")
            .await
            .problem(StatusCode::BAD_REQUEST, "JSON");
        post_json("/optional", r#"{"why": "x"}"#)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "why");
        post_body("/optional", Some("text/plain"), r#"{"name": "bo"}"#)
            .await
            .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON");
        post_json("/optional", &" ".repeat(LIMIT + 1))
            .await
            .problem(StatusCode::PAYLOAD_TOO_LARGE, "too large");
    }

    #[tokio::test]
    async fn query_parameters_that_are_unknown_or_malformed_are_a_400_naming_them() {
        get_uri("/query?after=5&limit=2").await.ok("5 Some(2)");
        get_uri("/query").await.ok("0 None");
        get_uri("/query?after=x")
            .await
            .problem(StatusCode::BAD_REQUEST, "after");
        get_uri("/query?limit=-1")
            .await
            .problem(StatusCode::BAD_REQUEST, "limit");
        get_uri("/query?color=red")
            .await
            .problem(StatusCode::BAD_REQUEST, "color");
    }

    #[tokio::test]
    async fn path_parameters_that_do_not_decode_are_a_400_and_a_miswired_route_a_500() {
        get_uri("/items/caf%C3%A9/7").await.ok("café 7");
        get_uri("/items/%FF/7")
            .await
            .problem(StatusCode::BAD_REQUEST, "UTF-8");
        get_uri("/items/ann/seven")
            .await
            .problem(StatusCode::BAD_REQUEST, "seven");
        let detail = get_uri("/miswired/x")
            .await
            .problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        assert!(
            !detail.contains("parameters"),
            "the cause is not sent: {detail}"
        );
    }
}

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

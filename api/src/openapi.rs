//! The OpenAPI document, generated from the handlers and types.

use axum::Json;
use utoipa::OpenApi;

/// The api's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentflow",
        description = "Durable AI agent tasks on Temporal, streamed live over SSE."
    ),
    paths(
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
        crate::routes::agents::list,
        crate::routes::agents::show,
        crate::routes::tools::list,
        crate::routes::tasks::create,
        crate::routes::tasks::list,
        crate::routes::tasks::show,
        crate::routes::tasks::execute,
        crate::routes::control::pause,
        crate::routes::control::resume,
        crate::routes::control::cancel,
        crate::routes::control::delete,
        crate::routes::control::close,
        crate::routes::control::decide,
        crate::routes::control::budget,
        crate::routes::events::create_and_stream,
        crate::routes::events::page,
        crate::routes::events::stream,
    ),
    components(schemas(agentflow_shared::event::Event, agentflow_shared::task::TaskResult))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

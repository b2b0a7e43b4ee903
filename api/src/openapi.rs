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
        crate::routes::credentials::log_in,
        crate::routes::credentials::who_am_i,
        crate::routes::credentials::log_out,
        crate::routes::credentials::stream_token,
    ),
    modifiers(&BearerKeys),
    components(schemas(agentflow_shared::event::Event, agentflow_shared::task::TaskResult))
)]
pub struct ApiDoc;

/// Declares the API key (`Authorization: Bearer <key>`) as the document's security scheme.
struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key when `[auth] enabled` (docs/SECURITY.md); the scope each \
                         route needs is listed there.",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "api_key",
            Vec::<String>::new(),
        )]);
    }
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types;
//! `docs/openapi.json` is this document, checked by a test that fails when it is stale.

use std::sync::LazyLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::wire;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sandpit control plane",
        version = "1",
        description = "The team control plane of sandpit. Every route under /api/v1 but openapi.json \
            needs `Authorization: Bearer <token>`; every failure is `{\"error\": {\"code\", \"message\", \"hint\"}}`, \
            and every response carries `x-request-id`."
    ),
    paths(
        routes::service::healthz,
        routes::service::metrics,
        routes::service::openapi,
        routes::whoami::whoami,
        routes::tokens::create,
        routes::tokens::list,
        routes::tokens::revoke,
        routes::projects::add,
        routes::projects::list,
        routes::projects::show,
        routes::projects::remove,
        routes::pipelines::run,
        routes::pipelines::list,
        routes::pipelines::show,
        routes::pipelines::log,
        routes::pipelines::retry,
        routes::decisions::approve,
        routes::decisions::reject,
        routes::biomes::list,
        routes::biomes::up,
        routes::biomes::down,
        routes::biomes::restart,
        routes::biomes::sleep,
        routes::biomes::wake,
        routes::biomes::extend,
        routes::environments::deploy,
        routes::environments::promote,
        routes::environments::rollback,
        routes::config::change,
        routes::status::show,
        routes::history::list,
        routes::trace::trace,
        routes::artifacts::list,
        routes::logs::page,
        routes::config::list,
        routes::hooks::gitlab,
        routes::hooks::github,
        routes::hooks::ci,
        routes::hooks::list,
    ),
    components(schemas(wire::ErrorBody, wire::ErrorDetail)),
    modifiers(&BearerToken),
)]
struct ApiDoc;

/// The `bearer` security scheme the paths refer to.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `sandpit tokens create` (`spt_…`)"))
                    .build(),
            ),
        );
    }
}

/// The document as served and checked in: pretty JSON with a final newline.
pub fn document() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let mut document = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises");
        document.push('\n');
        document
    });
    &DOCUMENT
}

//! The API's OpenAPI 3 document, generated from the shared API types and the
//! handlers' descriptions (only with the `openapi` feature, so the generator never
//! enters the binary). The daemon serves the committed `docs/openapi.json`; a test
//! fails when the two differ.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, logs, metrics, runs, streams};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cutover",
        description = "The cutover daemon's API: the app, its runs, their events, \
                       measurements and receipts, and the requests that steer them. \
                       Requests that change something need `Authorization: Bearer <token>` \
                       with the token in `<state_dir>/token`; with `api.read_auth` every \
                       request does. Errors are `{\"error\", \"code\"}` (and `field` when a \
                       body's field is at fault)."
    ),
    paths(
        api::status,
        api::deploy,
        api::promote,
        api::abort,
        api::rollback,
        api::approve,
        api::reject,
        api::config_check,
        api::openapi_json,
        runs::apps,
        runs::runs,
        runs::run,
        runs::measurements,
        runs::receipts,
        runs::receipt,
        streams::run_events,
        streams::all_events,
        logs::logs,
        metrics::metrics,
    ),
    modifiers(&BearerToken),
)]
struct ApiDoc;

/// The `token` security scheme the paths that change something name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the daemon's token, from `<state_dir>/token`"))
                    .build(),
            ),
        );
    }
}

/// The document, as pretty JSON with a final newline (as committed).
pub fn document() -> String {
    let mut openapi = ApiDoc::openapi();
    // The crate's version would change the document at every release for nothing.
    openapi.info.version = "v1".to_owned();
    let mut json = openapi
        .to_pretty_json()
        .expect("an OpenAPI document is plain data and always encodes");
    json.push('\n');
    json
}

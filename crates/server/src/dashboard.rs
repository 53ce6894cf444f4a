//! The web dashboard, served by the daemon on its API listener at `/`.
//!
//! Plain HTML, CSS and JavaScript embedded in the binary (no build step, no CDN):
//! the page is a client of the same `/api/v1` the CLI uses, so it can show nothing
//! the API does not say. Every answer carries a Content-Security-Policy that allows
//! scripts, styles and connections from this origin only, and no inline script.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Only this origin, no inline script or style, no frames, no forms posting elsewhere.
/// Images may also be `blob:` URLs: the chart receipts, fetched with the token and
/// shown through `<img>`, where an SVG runs no script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file, where it is served and as what.
struct Asset {
    path: &'static str,
    body: &'static str,
    content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            body: include_str!(concat!("dashboard/", $file)),
            content_type: $type,
        }
    };
}

/// The page and its files: the script is split into ES modules by concern.
const ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("/dashboard/style.css", "style.css", CSS),
    asset!("/dashboard/icon.svg", "icon.svg", SVG),
    asset!("/dashboard/app.js", "app.js", JS),
    asset!("/dashboard/api.js", "api.js", JS),
    asset!("/dashboard/chart.js", "chart.js", JS),
    asset!("/dashboard/dom.js", "dom.js", JS),
    asset!("/dashboard/format.js", "format.js", JS),
    asset!("/dashboard/markdown.js", "markdown.js", JS),
];

/// The dashboard's routes: the page at `/` and its files under `/dashboard/`. They
/// need no state, so they merge into any router.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { serve(asset) }))
    })
}

fn serve(asset: &Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // The files change only with the binary; a browser asks again each time, so
        // an upgraded daemon never serves a stale page.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

//! The web console's assets, embedded in the binary at build time (`web/dist`, built by
//! `scripts/setup.sh`) and served at `/admin`, with every unknown path under it answered by
//! the single-page app's `index.html`. Nothing is fetched at run time.
//!
//! Must not: need a key (the app itself asks for one and sends it only to the APIs), or
//! answer an API path with the app (`/admin/api/...` that matched nothing is a 404).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::error::{ApiError, NativeError, NativeErrorBody};

#[derive(rust_embed::Embed)]
#[folder = "web/dist/"]
#[allow_missing = true]
struct Assets;

/// Shown when the binary was built without the console's assets.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>ccgw console</title>\
<body style=\"font:16px system-ui;max-width:40em;margin:3em auto\"><h1>The console is not built</h1>\
<p>This binary was compiled without the web console's assets (<code>web/dist</code> was missing).</p>\
<p>Build them and the binary again, from the repository root:</p>\
<pre>scripts/setup.sh --console\ncargo build</pre>\
<p>(<code>scripts/setup.sh --console</code> runs <code>npm ci</code> and <code>npm run build</code> in <code>web/</code>.)</p>";

/// The app's pages may only talk to this origin and load nothing from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Whether the binary carries the console.
pub fn is_built() -> bool {
    Assets::get("index.html").is_some()
}

fn serve(path: &str) -> Option<Response> {
    let file = Assets::get(path)?;
    let mime = file.metadata.mimetype().to_string();
    let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    // Vite names built assets by their content hash: they never change under one name.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(resp)
}

fn index() -> Response {
    page("index.html")
}

/// A page of the built assets (the console's `index.html`, the API reference's `docs.html`),
/// or the page saying they were not built.
pub fn page(name: &str) -> Response {
    serve(name).unwrap_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response()
    })
}

/// `GET /admin`.
#[utoipa::path(
    get, path = "/admin", tag = "console", operation_id = "app",
    responses((status = 200, description = "The console's page (it asks for a key itself)", content_type = "text/html")),
    security(())
)]
pub async fn app() -> Response {
    index()
}

/// `GET /admin/{*path}`: an asset, else the app (it routes on the client).
#[utoipa::path(
    get, path = "/admin/{path}", tag = "console", operation_id = "asset",
    params(("path" = String, Path, description = "An asset of the console, or a page it routes on the client")),
    responses((status = 200, description = "The asset, or the console's page"), (status = 404, description = "`/admin/api/...` or `/admin/ws` that matched no route", body = NativeErrorBody)),
    security(())
)]
pub async fn asset(Path(path): Path<String>) -> Response {
    if path == "api" || path.starts_with("api/") || path == "ws" {
        return NativeError(ApiError::NotFound(format!("No route for /admin/{path}")))
            .into_response();
    }
    serve(&path).unwrap_or_else(index)
}

//! CORS: which browser origins may call the gateway (`cors_origins`; `*` allows any). The list
//! is live: a reload of the config replaces it for the next request. Must not: decide anything
//! but the CORS headers (authentication still applies to every cross-origin request).

use std::sync::{Arc, RwLock};

use axum::http::HeaderValue;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

#[derive(Default)]
pub struct CorsOrigins(RwLock<Vec<String>>);

impl CorsOrigins {
    pub fn new(origins: &[String]) -> Arc<CorsOrigins> {
        Arc::new(CorsOrigins(RwLock::new(origins.to_vec())))
    }

    pub fn set(&self, origins: &[String]) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = origins.to_vec();
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        let list = self.0.read().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .any(|o| o == "*" || origin.to_str().is_ok_and(|v| v == o))
    }
}

/// The CORS layer, asking `origins` on every request.
pub fn layer(origins: Arc<CorsOrigins>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.allows(origin)
        }))
        .allow_methods(Any)
        .allow_headers(Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_matched_exactly_and_the_list_is_live() {
        let o = CorsOrigins::new(&["https://app.example".into()]);
        assert!(o.allows(&HeaderValue::from_static("https://app.example")));
        assert!(!o.allows(&HeaderValue::from_static("https://app.example.evil")));
        o.set(&[]);
        assert!(!o.allows(&HeaderValue::from_static("https://app.example")));
        o.set(&["*".into()]);
        assert!(o.allows(&HeaderValue::from_static("https://anything")));
    }
}

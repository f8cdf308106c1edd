//! The router: path → handler lines only.

use axum::routing::{get, post};
use axum::{middleware, Router};

use super::{auth, health, idempotency, metrics, AppState};
use crate::api::{anthropic, models, native, openai, responses};

pub fn router(state: AppState) -> Router {
    metrics::install();
    let api = Router::new()
        .route(
            "/v1/chat/completions",
            post(openai::handlers::chat_completions),
        )
        .route("/v1/responses", post(responses::handlers::create))
        .route(
            "/v1/responses/{id}",
            get(responses::handlers::get).delete(responses::handlers::delete),
        )
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .route(
            "/api/sessions",
            post(native::handlers::create_session).get(native::handlers::list_sessions),
        )
        .route(
            "/api/sessions/{id}",
            get(native::handlers::get_session).delete(native::handlers::delete_session),
        )
        .route(
            "/api/sessions/{id}/messages",
            post(native::handlers::send_message),
        )
        .route(
            "/api/sessions/{id}/interrupt",
            post(native::handlers::interrupt),
        )
        .route("/api/sessions/{id}/history", get(native::handlers::history))
        .route("/api/sessions/{id}/fork", post(native::handlers::fork))
        .route("/api/sessions/{id}/events", get(native::handlers::events))
        .route("/api/sessions/{id}/ws", get(native::handlers::websocket))
        .route(
            "/api/sessions/{id}/export",
            post(native::handlers::export).get(native::handlers::export),
        )
        .route(
            "/api/sessions/{id}/permissions/{request_id}",
            post(native::handlers::answer_permission),
        )
        .route("/v1/messages", post(anthropic::handlers::messages))
        .route(
            "/v1/messages/count_tokens",
            post(anthropic::handlers::count_tokens),
        )
        // Layers run bottom-up: the key is checked before a retry is replayed.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::replay,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    Router::new()
        .route("/", get(health::root))
        .route("/health", get(health::health))
        .route("/v1/health", get(health::health))
        .route("/metrics", get(metrics::render))
        .merge(api)
        .fallback(health::not_found)
        .layer(middleware::from_fn(metrics::count_requests))
        .with_state(state)
}

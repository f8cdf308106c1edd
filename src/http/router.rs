//! The router: path → handler lines only.

use axum::routing::{delete, get, post, put};
use axum::{middleware, Router};

use super::{
    auth, console, health, idempotency, limits, metrics, openapi, ownership, stats, ws_auth,
    AppState,
};
use crate::api::{admin, anthropic, models, native, openai, responses};

pub fn router(state: AppState) -> Router {
    metrics::install();
    // Every route of one session: a user key reaches only its own (see `ownership`).
    let sessions = Router::new()
        .route(
            "/api/sessions/{id}",
            get(native::handlers::get_session)
                .delete(native::handlers::delete_session)
                .patch(native::settings::patch_session),
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
            "/api/sessions/{id}/stream",
            get(native::handlers::websocket),
        )
        .route("/api/sessions/{id}/tool-calls", get(native::tools::calls))
        .route(
            "/api/sessions/{id}/tools/stream",
            get(native::tools::stream),
        )
        .route("/api/sessions/{id}/tools/{name}", post(native::tools::call))
        .route(
            "/api/sessions/{id}/tool-permissions",
            get(native::tools::permissions).put(native::tools::put_permissions),
        )
        .route(
            "/api/sessions/{id}/project/init",
            post(native::project::init),
        )
        .route(
            "/api/sessions/{id}/project/workspace",
            put(native::project::move_workspace),
        )
        .route("/api/sessions/{id}/files", get(native::files::list))
        .route(
            "/api/sessions/{id}/files/upload",
            post(native::files::upload),
        )
        .route(
            "/api/sessions/{id}/files/{*path}",
            get(native::files::download).delete(native::files::delete),
        )
        .route("/api/sessions/{id}/changes", get(native::files::changes))
        .route("/api/sessions/{id}/rewind", post(native::files::rewind))
        .route(
            "/api/sessions/{id}/memory",
            get(native::files::memory)
                .put(native::files::put_memory)
                .post(native::files::append_memory),
        )
        .route(
            "/api/sessions/{id}/export",
            post(native::handlers::export).get(native::handlers::export),
        )
        .route(
            "/api/sessions/{id}/permissions/{request_id}",
            post(native::handlers::answer_permission),
        )
        .route(
            "/api/sessions/{id}/hooks",
            get(native::hooks::list).post(native::hooks::subscribe),
        )
        .route(
            "/api/sessions/{id}/hooks/{hook_id}",
            delete(native::hooks::remove),
        )
        .route(
            "/api/sessions/{id}/hooks/requests/{request_id}",
            post(native::hooks::answer),
        )
        .route(
            "/api/sessions/{id}/commands",
            get(native::commands::session_list),
        )
        .route(
            "/api/sessions/{id}/commands/{name}",
            post(native::commands::run),
        )
        .route(
            "/api/sessions/{id}/context",
            put(native::settings::put_context),
        )
        .route(
            "/api/sessions/{id}/thinking",
            post(native::settings::post_thinking),
        )
        .route(
            "/api/sessions/{id}/context-usage",
            get(native::settings::context_usage),
        )
        .route("/api/sessions/{id}/cost", get(native::settings::cost))
        .route("/api/sessions/{id}/mcp", get(native::settings::mcp))
        .route(
            "/api/sessions/{id}/mcp/{name}/reconnect",
            post(native::mcp::reconnect),
        )
        .route(
            "/api/sessions/{id}/mcp/{name}/toggle",
            post(native::mcp::toggle),
        )
        .route("/api/sessions/{id}/resume", post(native::settings::resume))
        .route(
            "/api/sessions/{id}/tasks/{task_id}/stop",
            post(native::settings::stop_task),
        )
        .route(
            "/api/sessions/{id}/agent",
            put(native::agents::set_session_agent),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            ownership::sessions,
        ));
    // The console's view of everything: admin keys only.
    let console_api = Router::new()
        .route("/api/claude-sessions", get(native::claude_sessions::list))
        .route(
            "/api/claude-sessions/{id}",
            get(native::claude_sessions::get),
        )
        .route(
            "/api/claude-sessions/{id}/continue",
            post(native::claude_sessions::resume),
        )
        .route("/admin/api/audit", get(admin::audit::list))
        .route("/admin/api/events", get(admin::handlers::events))
        .route("/admin/ws", get(admin::handlers::websocket))
        .route("/admin/api/stats", get(stats::stats))
        .route(
            "/admin/api/conversations",
            get(admin::handlers::conversations),
        )
        .route(
            "/admin/api/conversations/{id}",
            get(admin::handlers::conversation),
        )
        .route(
            "/admin/api/conversations/{id}/events",
            get(admin::handlers::conversation_events),
        )
        .route_layer(middleware::from_fn(ownership::admin_only));
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
        .route("/api/tools", get(native::tools::list))
        .route(
            "/api/agents",
            get(native::agents::list).post(native::agents::create),
        )
        .route(
            "/api/agents/{name}/config",
            get(native::agents::config).put(native::agents::update),
        )
        .route("/api/agents/{name}", delete(native::agents::delete))
        .route("/api/commands", get(native::commands::list))
        .route("/api/mcp-servers", get(native::mcp::list))
        .route("/api/ws-tickets", post(ws_auth::create_ticket))
        .route(
            "/admin/api/keys",
            get(admin::keys::list).post(admin::keys::create),
        )
        .route(
            "/admin/api/keys/{id}",
            get(admin::keys::get).delete(admin::keys::revoke),
        )
        .route("/admin/api/keys/{id}/rotate", post(admin::keys::rotate))
        .route("/v1/messages", post(anthropic::handlers::messages))
        .route(
            "/v1/messages/count_tokens",
            post(anthropic::handlers::count_tokens),
        )
        .route(
            "/api/projects",
            post(native::projects::create).get(native::projects::list),
        )
        .route(
            "/api/projects/{id}",
            get(native::projects::get)
                .patch(native::projects::update)
                .delete(native::projects::delete),
        )
        // --- limits ---
        .route("/admin/api/usage", get(admin::usage::report))
        .route("/api/usage", get(native::usage::own))
        .merge(sessions)
        .merge(console_api)
        // Layers run bottom-up: the key is checked before a retry is replayed, and a replayed
        // retry is not counted against the key's limits.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
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
        .route("/health/ready", get(health::ready))
        .route("/v1/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::json))
        .route("/docs", get(openapi::docs))
        .route("/admin", get(console::app))
        .route("/admin/", get(console::app))
        .route("/admin/{*path}", get(console::asset))
        .merge(api)
        .fallback(health::not_found)
        .layer(middleware::from_fn(metrics::count_requests))
        .with_state(state)
}

/// The Prometheus address (`metrics_listen`): `/metrics` alone, without a key.
pub fn metrics_router(state: AppState) -> Router {
    metrics::install();
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

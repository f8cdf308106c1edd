//! `ccgw-mcp-test-server`: a tiny stdio MCP server for the end-to-end tests and for trying
//! `[mcp_servers.*]` by hand. It speaks newline-delimited JSON-RPC on stdin/stdout and offers:
//!
//! - `echo {text}`: answers `ECHO:<text>`, and the value of `MCP_TEST_TAG` when it is set
//!   (`ECHO:<text> TAG:<tag>`), so a test sees both the call and the environment it was given;
//! - `env_names {}`: the names (never the values) of every variable in its environment, one
//!   per line, so a test can check that no gateway secret reached it.
//!
//! With `--http`, it serves the same over MCP's Streamable HTTP instead, on a loopback port it
//! prints as its first line (`listening on 127.0.0.1:PORT`): `POST /mcp` answers JSON, and
//! `echo` adds the request's `Authorization` header (` AUTH:<value>`), so a test sees the
//! header the gateway configured.
//!
//! It must not: read files, or print anything on stdout but JSON-RPC (stdio) or its address.

use std::io::{BufRead, Write};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

fn tools() -> Value {
    json!([
        {
            "name": "echo",
            "description": "Echo the text back, prefixed with ECHO:",
            "inputSchema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"]
            }
        },
        {
            "name": "env_names",
            "description": "List the names of this server's environment variables",
            "inputSchema": {"type": "object", "properties": {}}
        }
    ])
}

fn call(params: &Value, auth: Option<&str>) -> Value {
    let text = match params["name"].as_str() {
        Some("echo") => {
            let said = params["arguments"]["text"].as_str().unwrap_or_default();
            let mut out = format!("ECHO:{said}");
            if let Ok(tag) = std::env::var("MCP_TEST_TAG") {
                out.push_str(&format!(" TAG:{tag}"));
            }
            if let Some(auth) = auth {
                out.push_str(&format!(" AUTH:{auth}"));
            }
            out
        }
        Some("env_names") => {
            let mut names: Vec<String> = std::env::vars_os()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect();
            names.sort();
            names.join("\n")
        }
        other => {
            return json!({
                "content": [{"type": "text", "text": format!("no tool {other:?}")}],
                "isError": true
            })
        }
    };
    json!({"content": [{"type": "text", "text": text}]})
}

fn answer(msg: &Value, auth: Option<&str>) -> Option<Value> {
    // Notifications (no id) get no answer.
    let id = msg.get("id")?.clone();
    let result = match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "ccgw-mcp-test-server", "version": env!("CARGO_PKG_VERSION")}
        }),
        "tools/list" => json!({"tools": tools()}),
        "tools/call" => call(&msg["params"], auth),
        "ping" => json!({}),
        other => {
            return Some(json!({
                "jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("method not found: {other}")}
            }))
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// One Streamable HTTP request: a JSON-RPC message in, its answer out as plain JSON (a
/// notification gets `202`).
async fn http_message(headers: HeaderMap, Json(msg): Json<Value>) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match answer(&msg, auth) {
        Some(reply) => Json(reply).into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    }
}

async fn serve_http() -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(http_message).get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, app).await
}

fn main() {
    if std::env::args().any(|a| a == "--http") {
        let served = tokio::runtime::Runtime::new().and_then(|rt| rt.block_on(serve_http()));
        if let Err(e) = served {
            eprintln!("ccgw-mcp-test-server: {e}");
            std::process::exit(1);
        }
        return;
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(msg) => answer(&msg, None),
            Err(e) => Some(json!({
                "jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": format!("parse error: {e}")}
            })),
        };
        if let Some(r) = reply {
            if writeln!(out, "{r}").and_then(|_| out.flush()).is_err() {
                break;
            }
        }
    }
}

//! `ccgw-mcp-test-server`: a tiny stdio MCP server for the end-to-end tests and for trying
//! `[mcp_servers.*]` by hand. It speaks newline-delimited JSON-RPC on stdin/stdout and offers:
//!
//! - `echo {text}`: answers `ECHO:<text>`, and the value of `MCP_TEST_TAG` when it is set
//!   (`ECHO:<text> TAG:<tag>`), so a test sees both the call and the environment it was given;
//! - `env_names {}`: the names (never the values) of every variable in its environment, one
//!   per line, so a test can check that no gateway secret reached it.
//!
//! It must not: read files, open sockets, or print anything but JSON-RPC on stdout.

use std::io::{BufRead, Write};

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

fn call(params: &Value) -> Value {
    let text = match params["name"].as_str() {
        Some("echo") => {
            let said = params["arguments"]["text"].as_str().unwrap_or_default();
            match std::env::var("MCP_TEST_TAG") {
                Ok(tag) => format!("ECHO:{said} TAG:{tag}"),
                Err(_) => format!("ECHO:{said}"),
            }
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

fn answer(msg: &Value) -> Option<Value> {
    // Notifications (no id) get no answer.
    let id = msg.get("id")?.clone();
    let result = match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "ccgw-mcp-test-server", "version": env!("CARGO_PKG_VERSION")}
        }),
        "tools/list" => json!({"tools": tools()}),
        "tools/call" => call(&msg["params"]),
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

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(msg) => answer(&msg),
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

//! The client-tool bridge: a client's function tools served to the CLI as an in-process MCP
//! server (reached through `mcp_message`), and the pending calls waiting for their results.
//!
//! The model sees each client tool `NAME` as `mcp__client__NAME`. A `tools/call` from the CLI
//! waits until the client's result arrives (in a later HTTP request) or is given up on. A
//! result may also arrive before the call does (the CLI can ask for parallel calls one after
//! the other), so results are kept until their call comes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::control::SdkMcpServer;

/// The MCP server name client tools are served under.
pub const SERVER_NAME: &str = "client";
/// What the model sees in front of a client tool's name.
pub const PREFIX: &str = "mcp__client__";

/// The name the model sees for a client tool.
pub fn model_name(client_name: &str) -> String {
    format!("{PREFIX}{client_name}")
}

/// The client's name for a tool the model called, if it is a client tool.
pub fn client_name(model_name: &str) -> Option<&str> {
    model_name.strip_prefix(PREFIX)
}

/// One function tool a client declared.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTool {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments, passed through unchanged.
    pub parameters: Value,
}

/// The outcome of a tool call as the client reported it.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    pub content: String,
    pub is_error: bool,
}

enum Slot {
    /// The CLI asked; the answer goes here.
    Waiting {
        tx: oneshot::Sender<ToolOutcome>,
        name: String,
        since: Instant,
    },
    /// The client answered first.
    Ready(ToolOutcome),
}

/// The MCP server for one conversation's client tools.
pub struct ClientToolServer {
    label: String,
    tools: Vec<ClientTool>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl ClientToolServer {
    pub fn new(label: impl Into<String>, tools: Vec<ClientTool>) -> Arc<Self> {
        Arc::new(ClientToolServer {
            label: label.into(),
            tools,
            slots: Mutex::default(),
        })
    }

    pub fn tools(&self) -> &[ClientTool] {
        &self.tools
    }

    /// Deliver the client's result for a call (before or after the CLI asks for it).
    pub fn resolve(&self, tool_use_id: &str, outcome: ToolOutcome) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.remove(tool_use_id) {
            Some(Slot::Waiting { tx, name, since }) => {
                tracing::info!(
                    target: "ccgw::tools",
                    conversation = %self.label,
                    tool = %name,
                    tool_use_id,
                    kind = "client",
                    result_bytes = outcome.content.len(),
                    outcome = if outcome.is_error { "error" } else { "ok" },
                    duration_ms = since.elapsed().as_millis() as u64,
                    "tool call finished"
                );
                let _ = tx.send(outcome);
            }
            _ => {
                slots.insert(tool_use_id.to_string(), Slot::Ready(outcome));
            }
        }
    }

    /// Give up on every call still waiting: each gets an error result.
    pub fn cancel_all(&self) {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn list(&self) -> Value {
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "inputSchema": t.parameters}))
            .collect();
        json!({ "tools": tools })
    }

    async fn call(self: Arc<Self>, params: &Value) -> Value {
        let name = params["name"].as_str().unwrap_or_default().to_string();
        let id = params
            .pointer("/_meta/claudecode~1toolUseId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let rx = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.remove(&id) {
                Some(Slot::Ready(o)) => return tool_result(o),
                _ => {
                    let (tx, rx) = oneshot::channel();
                    tracing::info!(
                        target: "ccgw::tools",
                        conversation = %self.label,
                        tool = %name,
                        tool_use_id = %id,
                        kind = "client",
                        argument_bytes = params.get("arguments").map(|a| a.to_string().len()).unwrap_or(0),
                        "tool call pending on the client"
                    );
                    slots.insert(
                        id,
                        Slot::Waiting {
                            tx,
                            name,
                            since: Instant::now(),
                        },
                    );
                    rx
                }
            }
        };
        match rx.await {
            Ok(o) => tool_result(o),
            // The conversation was dropped (expired, interrupted): the CLI gets an error result.
            Err(_) => tool_result(ToolOutcome {
                content: "The client did not provide a result for this tool call.".into(),
                is_error: true,
            }),
        }
    }
}

fn tool_result(o: ToolOutcome) -> Value {
    json!({"content": [{"type": "text", "text": o.content}], "isError": o.is_error})
}

impl SdkMcpServer for ClientToolServer {
    fn handle(self: Arc<Self>, message: Value) -> BoxFuture<'static, Value> {
        Box::pin(async move {
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            let method = message["method"].as_str().unwrap_or_default();
            let result = match method {
                "initialize" => json!({
                    "protocolVersion": message.pointer("/params/protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "ccgw", "version": env!("CARGO_PKG_VERSION")},
                }),
                "tools/list" => self.list(),
                "tools/call" => {
                    let params = message.get("params").cloned().unwrap_or(Value::Null);
                    self.clone().call(&params).await
                }
                m if m.starts_with("notifications/") => json!({}),
                other => {
                    return json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("method not found: {other}")}})
                }
            };
            json!({"jsonrpc": "2.0", "id": id, "result": result})
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Arc<ClientToolServer> {
        ClientToolServer::new(
            "c",
            vec![ClientTool {
                name: "get_weather".into(),
                description: "Weather".into(),
                parameters: json!({"type":"object","properties":{"city":{"type":"string"}}}),
            }],
        )
    }

    fn call_msg(id: &str) -> Value {
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris"},"_meta":{"claudecode/toolUseId":id}}})
    }

    #[test]
    fn names_map_both_ways() {
        assert_eq!(model_name("f"), "mcp__client__f");
        assert_eq!(client_name("mcp__client__f"), Some("f"));
        assert_eq!(client_name("Bash"), None);
    }

    #[tokio::test]
    async fn lists_tools_with_their_schema() {
        let s = server();
        let out = s
            .handle(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
            .await;
        assert_eq!(out["result"]["tools"][0]["name"], "get_weather");
        assert_eq!(
            out["result"]["tools"][0]["inputSchema"]["properties"]["city"]["type"],
            "string"
        );
    }

    #[tokio::test]
    async fn a_call_waits_for_its_result() {
        let s = server();
        let pending = tokio::spawn(s.clone().handle(call_msg("toolu_1")));
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!pending.is_finished());
        s.resolve(
            "toolu_1",
            ToolOutcome {
                content: "sunny".into(),
                is_error: false,
            },
        );
        let out = pending.await.unwrap();
        assert_eq!(out["id"], 7);
        assert_eq!(out["result"]["content"][0]["text"], "sunny");
        assert_eq!(out["result"]["isError"], false);
    }

    #[tokio::test]
    async fn a_result_may_come_before_its_call() {
        let s = server();
        s.resolve(
            "toolu_2",
            ToolOutcome {
                content: "boom".into(),
                is_error: true,
            },
        );
        let out = s.handle(call_msg("toolu_2")).await;
        assert_eq!(out["result"]["isError"], true);
    }

    #[tokio::test]
    async fn a_dropped_server_answers_with_an_error() {
        let s = server();
        let fut = s.clone().handle(call_msg("toolu_3"));
        let task = tokio::spawn(fut);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        s.slots.lock().unwrap().clear();
        let out = task.await.unwrap();
        assert_eq!(out["result"]["isError"], true);
    }
}

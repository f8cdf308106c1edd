//! What MCP servers report at run time: a session's servers and their state (the CLI's
//! `mcp_status`, without secrets), `mcp_reconnect` and `mcp_toggle` on a session's process, and
//! the list of configured servers with their tools (as the last process using them reported
//! them; a short-lived probe process asks when none has yet).
//!
//! Must not: know HTTP, or show a server's configuration beyond its public view (the CLI's
//! `mcp_status` echoes its `--mcp-config` entry: our `env` wrapper, and headers with secrets).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::conversations::{base_spec, Conversations, TurnError};
use super::mcp::{self, McpRef, McpRegistry};
use crate::claude::args::SessionMode;
use crate::claude::control::{ControlHandler, ToolPolicy};
use crate::claude::wire::Initialize;
use crate::claude::ClaudeError;

/// How long a server may stay `pending` (still connecting) before its state is reported as is.
const CONNECT_WAIT: Duration = Duration::from_secs(15);

/// How long a control request to a process may take (a reconnect restarts a server).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// The label of the probe process (logs, and waiting for it to stop).
const PROBE_LABEL: &str = "mcp-probe";

/// Configured servers' tools and state as a process last reported them.
#[derive(Default)]
pub struct Seen {
    servers: Mutex<HashMap<String, Value>>,
    /// One probe at a time.
    probing: tokio::sync::Mutex<()>,
}

impl Seen {
    /// Keep what a process reported. A session's disabled or failed server says nothing of
    /// its tools, so only connected ones count, but for the probe, which also tells which
    /// servers could not connect.
    fn record(&self, reg: &McpRegistry, status: &Value, probe: bool) {
        let Ok(mut seen) = self.servers.lock() else {
            return;
        };
        for s in entries(status) {
            let name = s["name"].as_str().unwrap_or_default();
            if reg.public_view(name).is_none() {
                continue;
            }
            if s["status"] == "connected" || (probe && !seen.contains_key(name)) {
                seen.insert(name.to_string(), s.clone());
            }
        }
    }

    fn get(&self, name: &str) -> Option<Value> {
        self.servers.lock().ok()?.get(name).cloned()
    }
}

fn entries(status: &Value) -> impl Iterator<Item = &Value> {
    status["mcpServers"].as_array().into_iter().flatten()
}

/// One server of `mcp_status` as a client may see it: its configuration replaced by the public
/// view (or dropped for one we do not know), its tools also under the names the model uses.
fn public_entry(reg: &McpRegistry, refs: &[McpRef], s: &Value) -> Value {
    let name = s["name"].as_str().unwrap_or_default();
    let mut out = s.clone();
    if let Some(obj) = out.as_object_mut() {
        let kind = s["config"]["type"].clone();
        obj.remove("config");
        match reg
            .public_view(name)
            .or_else(|| McpRegistry::client_view(refs, name))
        {
            Some(view) => {
                obj.insert("config".into(), view);
            }
            // The gateway's own in-process server: its kind says all.
            None if kind == "sdk" => {
                obj.insert("config".into(), json!({"type": "sdk"}));
            }
            None => {}
        }
        if let Some(tools) = obj.get_mut("tools").and_then(Value::as_array_mut) {
            for t in tools {
                let model_name = format!("mcp__{name}__{}", t["name"].as_str().unwrap_or(""));
                t["model_name"] = json!(model_name);
            }
        }
    }
    out
}

impl Conversations {
    /// Every server a request or session enables must be known (or an allowed URL).
    pub(crate) fn check_mcp(&self, refs: &[McpRef], param: &str) -> Result<(), TurnError> {
        self.mcp
            .check(refs, param)
            .map_err(|f| TurnError::invalid(f.param, f.message))
    }

    /// The `--mcp-config` file for a process with these servers; `None` without any.
    pub(crate) fn mcp_config_file(&self, refs: &[McpRef]) -> Result<Option<PathBuf>, ClaudeError> {
        let Some(doc) = self.mcp.launch_config(refs) else {
            return Ok(None);
        };
        mcp::write_config(&self.cfg.claude_config_dir(), &doc)
            .map(Some)
            .map_err(|e| ClaudeError::Spawn {
                program: self.claude_bin.display().to_string(),
                message: format!("writing the MCP config: {e:#}"),
            })
    }

    /// The MCP servers a session enabled.
    async fn session_refs(self: &Arc<Self>, id: &str) -> Result<Vec<McpRef>, TurnError> {
        let info = self
            .session(id)
            .await
            .ok_or_else(|| TurnError::NotFound(format!("No session with the id '{id}'")))?;
        Ok(info.settings.mcp_servers)
    }

    /// `GET /api/sessions/{id}/mcp`: the session's servers and their state, once none is still
    /// connecting (or after [`CONNECT_WAIT`]).
    pub async fn session_mcp(self: &Arc<Self>, id: &str) -> Result<Value, TurnError> {
        let refs = self.session_refs(id).await?;
        let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
        let status = loop {
            let status = self.mcp_status(id).await?;
            let pending = entries(&status).any(|s| s["status"] == "pending");
            if !pending || tokio::time::Instant::now() >= deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.mcp_seen.record(&self.mcp, &status, false);
        let servers: Vec<Value> = entries(&status)
            .map(|s| public_entry(&self.mcp, &refs, s))
            .collect();
        Ok(json!({ "session_id": id, "mcpServers": servers }))
    }

    /// One of the session's servers, as [`session_mcp`](Self::session_mcp) shows it.
    async fn session_server(self: &Arc<Self>, id: &str, name: &str) -> Result<Value, TurnError> {
        let all = self.session_mcp(id).await?;
        let found = entries(&all).find(|s| s["name"] == name).cloned();
        found.ok_or_else(|| no_server(id, name))
    }

    /// A name the session enabled; 404 naming it otherwise.
    async fn check_session_server(self: &Arc<Self>, id: &str, name: &str) -> Result<(), TurnError> {
        if self
            .session_refs(id)
            .await?
            .iter()
            .any(|r| r.name() == name)
        {
            Ok(())
        } else {
            Err(no_server(id, name))
        }
    }

    /// `mcp_reconnect`: the CLI restarts (stdio) or reconnects to the server.
    pub async fn mcp_reconnect(self: &Arc<Self>, id: &str, name: &str) -> Result<Value, TurnError> {
        self.check_session_server(id, name).await?;
        self.session_control(id, json!({"subtype": "mcp_reconnect", "serverName": name}))
            .await?;
        tracing::info!(session = %id, server = %name, "MCP server reconnected");
        self.session_server(id, name).await
    }

    /// `mcp_toggle`: turn a server off (its tools leave the model's list) or on again. With
    /// `enabled` unset, a disabled server is enabled and any other disabled. The CLI keeps the
    /// choice for the workspace, so it holds for the session's later processes too.
    pub async fn mcp_toggle(
        self: &Arc<Self>,
        id: &str,
        name: &str,
        enabled: Option<bool>,
    ) -> Result<Value, TurnError> {
        self.check_session_server(id, name).await?;
        let enabled = match enabled {
            Some(e) => e,
            None => self.session_server(id, name).await?["status"] == "disabled",
        };
        self.session_control(
            id,
            json!({"subtype": "mcp_toggle", "serverName": name, "enabled": enabled}),
        )
        .await?;
        tracing::info!(session = %id, server = %name, enabled, "MCP server toggled");
        self.session_server(id, name).await
    }

    /// `GET /api/mcp-servers`: every configured server, with its tools and state as a process
    /// using it last reported them. When some server has not been seen yet, a probe process
    /// with every configured server is started once (it takes a slot of the process budget
    /// for a few seconds) and asked.
    pub async fn mcp_servers(self: &Arc<Self>) -> Result<Value, TurnError> {
        let names = self.mcp.names();
        if names.iter().any(|n| self.mcp_seen.get(n).is_none()) {
            let _one = self.mcp_seen.probing.lock().await;
            // Another request's probe may have answered meanwhile.
            if names.iter().any(|n| self.mcp_seen.get(n).is_none()) {
                self.probe_mcp().await?;
            }
        }
        let data: Vec<Value> = names
            .iter()
            .filter_map(|n| {
                let mut v = self.mcp.public_view(n)?;
                match self.mcp_seen.get(n) {
                    Some(s) => {
                        let seen = public_entry(&self.mcp, &[], &s);
                        v["status"] = seen["status"].clone();
                        v["tools"] = seen.get("tools").cloned().unwrap_or(json!([]));
                        if let Some(info) = seen.get("serverInfo") {
                            v["server_info"] = info.clone();
                        }
                        if let Some(e) = seen.get("error") {
                            v["error"] = e.clone();
                        }
                    }
                    None => {
                        v["status"] = json!("unknown");
                        v["tools"] = json!([]);
                    }
                }
                Some(v)
            })
            .collect();
        Ok(json!({
            "data": data,
            "client_mcp_urls": self.cfg.client_mcp_urls,
        }))
    }

    /// Start a process with every configured server, wait until they have connected, record
    /// what it reports, and stop it.
    async fn probe_mcp(self: &Arc<Self>) -> Result<(), TurnError> {
        let refs: Vec<McpRef> = self.mcp.names().into_iter().map(McpRef::Name).collect();
        let dir = self
            .cfg
            .workspaces_dir()
            .join(format!("{PROBE_LABEL}-{}", uuid::Uuid::new_v4()));
        let mut spec = base_spec(
            &self.cfg,
            &self.claude_bin,
            dir.clone(),
            SessionMode::New(uuid::Uuid::new_v4().to_string()),
        );
        spec.mcp_config = self.mcp_config_file(&refs)?;
        let handler = Arc::new(ControlHandler::new(PROBE_LABEL, ToolPolicy::default()));
        let started = std::time::Instant::now();
        let lease = self.pool.spawn(&spec, handler).await?;
        let result = async {
            lease.initialize(&Initialize::default()).await?;
            let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
            loop {
                let status = lease
                    .control(json!({"subtype": "mcp_status"}), CONTROL_TIMEOUT)
                    .await?;
                let pending = entries(&status).any(|s| s["status"] == "pending");
                if !pending || tokio::time::Instant::now() >= deadline {
                    return Ok::<Value, ClaudeError>(status);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        .await;
        lease.retire();
        self.pool
            .wait_stopped(
                PROBE_LABEL,
                Duration::from_secs(self.cfg.shutdown_grace_secs + 1),
            )
            .await;
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::debug!(dir = %dir.display(), error = %e, "could not remove the MCP probe's workspace");
        }
        let status = result?;
        self.mcp_seen.record(&self.mcp, &status, true);
        tracing::info!(
            servers = refs.len(),
            ms = started.elapsed().as_millis() as u64,
            "asked a probe process for the MCP servers' tools"
        );
        Ok(())
    }
}

fn no_server(id: &str, name: &str) -> TurnError {
    TurnError::NotFound(format!("Session {id} has no MCP server '{name}'"))
}

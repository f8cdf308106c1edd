//! Setting up a process for a conversation's next turn: its live one, a warm one, or a new
//! one; `initialize` with the conversation's system prompt and client tools; and the settings a
//! running CLI can change between turns. What only a new process can change is the launch
//! fingerprint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::conversation::{Conversation, Runtime};
use super::conversations::{base_spec, Conversations, Stage};
use crate::claude::args::SessionMode;
use crate::claude::control::{self, ControlHandler, ToolPolicy};
use crate::claude::pool::Lease;
use crate::claude::tools::{self, ClientToolServer};
use crate::claude::transcript::{self, Resume};
use crate::claude::wire::Initialize;
use crate::claude::ClaudeError;
use crate::domain::cli_wait::waiting_on_cli;
use crate::domain::confine::{ConfineError, Confinement, WorkspaceGuard};
use crate::domain::turn::TurnRequest;

impl Conversations {
    /// A process for this conversation's next turn: its live one, a warm one, or a new one.
    /// Cancel-safe: dropped at any await, the lease retires the process it holds.
    pub(crate) async fn acquire_process(
        &self,
        conv: &mut Conversation,
        req: &TurnRequest,
    ) -> Result<Lease, ClaudeError> {
        let launch = launch_fingerprint(req);
        let runtime = Runtime::of(req, self.exact_system_prompt);
        let policy = tool_policy(req);
        if let Some(p) = conv.process.take() {
            if let Some(lease) = self.pool.claim(&p) {
                // Flags and `initialize` are fixed at start: a change needs a new process.
                if conv.process_launch == launch {
                    // Other sessions' workspaces may have come and gone since the last turn.
                    self.guard_process(&lease, &conv.workspace);
                    // Which tools run unasked (or never) is ours to decide per call.
                    lease.handler().set_policy(policy);
                    return self.apply_runtime(conv, lease, runtime).await;
                }
                lease.retire();
            }
        }
        let offered = req.offered_tools();
        let server = (!offered.is_empty()).then(|| ClientToolServer::new(conv.id.clone(), offered));

        // A warm process has its own workspace: only a conversation that has none yet (nothing
        // of it is on disk) can move into it.
        let warm = if !conv.started
            && conv.workspace_is_temp
            && !conv.workspace.exists()
            && launch_is_default(req)
        {
            self.pool.take_warm(&req.cli_model)
        } else {
            None
        };
        if warm.is_none() && conv.started && !self.ready_to_resume(conv).await {
            return Err(ClaudeError::protocol(
                "the conversation's transcript is missing",
            ));
        }
        let (p, current) = match warm {
            Some(p) => {
                // The warm process's own workspace and session become the conversation's.
                conv.workspace = p.cwd.clone();
                if let SessionMode::New(id) = &p.session {
                    conv.cli_session_id = id.clone();
                }
                p.handler().set_label(&conv.id);
                p.handler().set_policy(policy);
                (p, Runtime::default())
            }
            None => {
                let mut spec = base_spec(
                    &self.cfg,
                    &self.claude_bin,
                    conv.workspace.clone(),
                    if conv.started {
                        SessionMode::Resume {
                            id: conv.cli_session_id.clone(),
                            fork: false,
                        }
                    } else {
                        SessionMode::New(conv.cli_session_id.clone())
                    },
                );
                spec.set_model(&req.cli_model);
                spec.builtin_tools = req.builtin_tools.clone();
                spec.permission_mode = req.options.permission_mode.clone();
                spec.effort = req.options.effort.clone();
                spec.agent = req.options.agent.clone();
                spec.max_turns = req.options.max_turns;
                spec.mcp_config = self.mcp_config_file(&req.mcp_servers)?;
                runtime.apply_to(&mut spec);
                let handler = Arc::new(ControlHandler::new(conv.id.clone(), policy));
                let spawned = self.pool.spawn(&spec, handler).await;
                (self.judge_cli(spawned)?, runtime.clone())
            }
        };
        if let Some(s) = &server {
            p.handler()
                .register_mcp_server(tools::SERVER_NAME, s.clone());
        }
        self.guard_process(&p, &conv.workspace);
        self.hook_process(&p, &conv.id);
        // The system prompt's parts and the custom agents (see `agents`).
        let init = Initialize {
            sdk_mcp_servers: server
                .iter()
                .map(|_| tools::SERVER_NAME.to_string())
                .collect(),
            json_schema: req.json_schema.clone(),
            // Every tool call, whatever the permission rules, is checked before it runs.
            hooks: Some(control::gateway_hooks(&self.cfg.hook_events)),
            ..self.agent_initialize(conv.system.clone(), req).await
        };
        self.stage(Stage::Initialize).await;
        // On an error the lease retires the process.
        let offer = self.judge_cli(waiting_on_cli(p.initialize(&init)).await)?;
        self.catalog
            .observe(&offer, &super::agents::passed_agents(&init));
        if let Some(old) = std::mem::replace(&mut conv.tool_server, server) {
            old.cancel_all();
        }
        conv.process_launch = launch;
        conv.process_runtime = current;
        self.apply_runtime(conv, p, runtime).await
    }

    /// The confinement of a session working in `workspace`: inside it, and never in the data
    /// dir, the CLI's config dir, the temporary workspaces' dir, the machine's Claude Code
    /// sessions dir or another native session's workspace (those that contain `workspace`
    /// do not count). The one check for the model's tools and the native API's direct calls.
    pub(crate) fn workspace_confinement(
        &self,
        workspace: &Path,
    ) -> Result<Confinement, ConfineError> {
        let mut forbidden: Vec<PathBuf> = vec![
            self.cfg.data_dir.clone(),
            self.cfg.claude_config_dir(),
            self.cfg.workspaces_dir(),
        ];
        forbidden.extend(self.cfg.claude_sessions_dir.clone());
        forbidden.extend(
            self.sessions
                .lock()
                .values()
                .map(|slot| PathBuf::from(&slot.info.workspace))
                .filter(|w| w != workspace),
        );
        forbidden.retain(|d| d.is_absolute());
        let home = crate::claude::args::cli_home(&self.cfg.claude_config_dir());
        Confinement::new(workspace, &forbidden).map(|c| c.with_home(Some(home)))
    }

    /// Give a process the PreToolUse guard of the workspace it works in.
    fn guard_process(&self, p: &crate::claude::process::CliProcess, workspace: &Path) {
        let confinement = self.workspace_confinement(workspace);
        if let Err(e) = &confinement {
            tracing::warn!(workspace = %workspace.display(), error = %e, "no confinement for a workspace: its tools may name no path");
        }
        p.handler()
            .set_guard(Arc::new(WorkspaceGuard::new(confinement)));
    }

    /// Whether a new process can resume this conversation's transcript: it holds the last
    /// clean turn, and a turn that never ended is cut off (the conversation then continues
    /// under the copy's session id). The CLI writes a turn's lines shortly after its result,
    /// and a process being stopped may still be writing: give it a moment.
    /// What a process's start says about the CLI (see `cli_health`): one that answers proves it
    /// works; one that fails to start makes it suspect, and a check decides. (How a dying CLI
    /// shows depends on which is seen first, its exit or its closed pipe, so every failure but
    /// the upstream's and a full budget counts.)
    fn judge_cli<T>(&self, r: Result<T, ClaudeError>) -> Result<T, ClaudeError> {
        match &r {
            Ok(_) => self.cli_health.works(),
            Err(ClaudeError::Upstream { .. } | ClaudeError::AtCapacity { .. }) => {}
            Err(_) => self.cli_health.suspect(),
        }
        r
    }

    pub(crate) async fn ready_to_resume(&self, conv: &mut Conversation) -> bool {
        let config = self.cfg.claude_config_dir();
        // A process of this conversation that was just retired (its turn failed or was cut)
        // may still be writing the transcript: reading it before then gives the next process
        // a transcript that changes under it.
        self.pool
            .wait_stopped(
                &conv.id,
                Duration::from_secs(self.cfg.shutdown_grace_secs + 1),
            )
            .await;
        for _ in 0..20 {
            match transcript::make_resumable(
                &config,
                &conv.workspace,
                &conv.cli_session_id,
                conv.leaf.as_deref(),
                Some(&conv.turn_mark),
            ) {
                Ok(Resume::AsIs) => return true,
                Ok(Resume::Cut(id)) => {
                    tracing::info!(
                        conversation = %conv.id,
                        from = %conv.cli_session_id,
                        to = %id,
                        "a turn that never ended was cut off the transcript"
                    );
                    conv.cli_session_id = id;
                    return true;
                }
                Ok(Resume::Missing) => {}
                Err(e) => {
                    tracing::warn!(conversation = %conv.id, error = %e, "could not read a transcript");
                    return false;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Bring a process's changeable settings to what this request asks for.
    pub(crate) async fn apply_runtime(
        &self,
        conv: &mut Conversation,
        p: Lease,
        want: Runtime,
    ) -> Result<Lease, ClaudeError> {
        self.stage(Stage::Configure).await;
        let have = &conv.process_runtime;
        let mut result = Ok(());
        if have.max_output_tokens != want.max_output_tokens || have.extra_body != want.extra_body {
            let max = want
                .max_output_tokens
                .map(|n| n.to_string())
                .unwrap_or_default();
            let body = want
                .extra_body
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".into());
            result = waiting_on_cli(p.set_env(&[
                ("CLAUDE_CODE_MAX_OUTPUT_TOKENS", max),
                ("CLAUDE_CODE_EXTRA_BODY", body),
            ]))
            .await;
        }
        if result.is_ok() && have.thinking != want.thinking {
            result = waiting_on_cli(p.set_max_thinking_tokens(want.thinking)).await;
        }
        // On an error the lease retires the process.
        result?;
        conv.process_runtime = want;
        Ok(p)
    }
}

/// The Bash sandbox of a process working in `cwd`, where the sandbox runs: Bash may not read
/// the gateway's data (but its own workspace), the CLI's config, or the machine's Claude Code
/// sessions, reaches only the configured hosts, and does not see the relay token.
pub(crate) fn sandbox_policy(
    cfg: &crate::config::Config,
    cwd: &Path,
) -> Option<crate::claude::sandbox::SandboxPolicy> {
    cfg.bash_sandbox.as_ref()?;
    let extra: Vec<PathBuf> = cfg.claude_sessions_dir.iter().cloned().collect();
    Some(crate::claude::sandbox::SandboxPolicy {
        deny_read: crate::claude::sandbox::SandboxPolicy::for_workspace(
            &cfg.data_dir,
            &cfg.workspaces_dir(),
            &extra,
            cwd,
        ),
        allowed_hosts: cfg.sandbox_allowed_hosts.clone(),
        hidden_env: crate::relay::CREDENTIAL_ENV
            .iter()
            .map(|v| v.to_string())
            .collect(),
    })
}

/// What a request's tools may do without asking: its approved tools (every requested built-in
/// one on the compatible APIs) and the client tools; its denied tools never.
pub(crate) fn tool_policy(req: &TurnRequest) -> ToolPolicy {
    let mut allowed = req
        .approved_tools
        .clone()
        .unwrap_or_else(|| req.builtin_tools.clone());
    allowed.push(format!("mcp__{}", tools::SERVER_NAME));
    if req.approved_tools.is_none() {
        // On the compatible APIs nobody could be asked: enabling a server allows its tools,
        // as asking for a built-in tool does. A native session lists them in `allowed_tools`.
        allowed.extend(req.mcp_servers.iter().map(|r| format!("mcp__{}", r.name())));
    }
    ToolPolicy {
        allowed,
        denied: req.denied_tools.clone(),
    }
}

/// Everything about a request that only a new process can change.
pub(crate) fn launch_fingerprint(req: &TurnRequest) -> String {
    let tools: Vec<Value> = req
        .offered_tools()
        .iter()
        .map(|t| json!([t.name, t.description, t.parameters]))
        .collect();
    let o = &req.options;
    // The model belongs here, not in `Runtime`: `set_model` makes the CLI insert a `/model`
    // command transcript into the next user message (see docs/cli-notes.md).
    let doc = json!([
        tools,
        req.tool_instructions(),
        req.builtin_tools,
        req.cli_model,
        [&o.effort, &o.permission_mode, &o.agent, o.max_turns],
        // `initialize.jsonSchema` holds for the process's life.
        req.json_schema,
        // `--mcp-config`: a process with other MCP servers is another process.
        req.mcp_servers,
    ]);
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

/// Whether a warm process (started with the default launch spec) can serve this request.
pub(crate) fn launch_is_default(req: &TurnRequest) -> bool {
    let o = &req.options;
    req.builtin_tools.is_empty()
        && o.effort.is_none()
        && o.permission_mode.is_none()
        && o.agent.is_none()
        && o.max_turns.is_none()
        // Warm processes have no external MCP servers.
        && req.mcp_servers.is_empty()
}

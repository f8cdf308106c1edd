//! Settings: defaults, then a TOML file, then `CCGW_*` environment variables, then command-line
//! flags; validated once at start-up. Every key is documented in `docs/configuration.md`.
//!
//! Secrets (API keys) never appear in `Debug` output or logs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::domain::models;

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// The CLI to run; found automatically when unset.
    pub claude_bin: Option<PathBuf>,
    /// Static API keys clients must present; empty turns authentication off.
    pub api_keys: Vec<String>,
    /// Origins allowed by CORS; empty allows none (`*` allows any).
    pub cors_origins: Vec<String>,
    pub max_live_processes: usize,
    /// Processes started ahead of time for new conversations (0 turns the warm pool off).
    pub warm_pool_size: usize,
    /// The most warm processes per warm model when new conversations arrive quickly (never
    /// fewer than `warm_pool_size`).
    pub warm_pool_max: usize,
    /// Models (public ids) warm processes are started for, `warm_pool_size` each.
    pub warm_models: Vec<String>,
    /// A warm process unused this long is replaced.
    pub warm_ttl_secs: u64,
    pub queue_timeout_secs: u64,
    pub turn_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    /// How long a client may stop reading a turn's stream before the turn is ended.
    pub stream_lag_timeout_secs: u64,
    pub process_idle_ttl_secs: u64,
    pub conversation_ttl_secs: u64,
    pub cli_max_retries: u32,
    /// Built-in Claude Code tools requests may opt in to (none by default).
    pub builtin_tools: Vec<String>,
    /// How long a client tool call may stay unanswered before its turn is ended.
    pub tool_call_timeout_secs: u64,
    /// How long a native session's permission request waits for an answer before it is denied.
    pub permission_timeout_secs: u64,
    pub max_body_bytes: usize,
    /// Largest file one native API upload may write (the body limit applies too).
    pub max_upload_bytes: usize,
    /// Longest a client may take to send a request's head, from its first byte.
    pub header_read_timeout_secs: u64,
    /// An idle keep-alive connection (no request in flight) is closed after this long.
    pub keep_alive_timeout_secs: u64,
    /// Most client connections at once (lowered to what the open-file limit allows).
    pub max_connections: usize,
    pub shutdown_grace_secs: u64,
    /// On SIGTERM: how long running turns may go on before they are interrupted.
    pub drain_timeout_secs: u64,
    /// How long a session's lease lasts without a heartbeat: after a holder dies, another
    /// instance may take the session over this long after its last heartbeat.
    pub lease_ttl_secs: u64,
    /// How long a request waits for a session another instance is running a turn in, before
    /// a `409` with `retry-after`.
    pub lease_wait_secs: u64,
    /// `auto` (text on a terminal, JSON otherwise), `json` or `text`.
    pub log_format: String,
    /// SQLite's `synchronous` level under WAL: `normal` (a commit survives a crash of the
    /// gateway; the last ones may be lost on power loss) or `full` (they survive that too).
    pub store_durability: String,
    /// Which store: empty (`sqlite://<data_dir>/ccgw.db`), `sqlite://PATH` or `postgres://…`
    /// (see `store::DatabaseUrl`). Shown only with its password replaced.
    pub database_url: String,
    /// Public model id → CLI `--model` value (empty: the CLI's default).
    pub models: BTreeMap<String, String>,
    /// Other Anthropic-compatible upstreams and the models each serves (`[providers.NAME]`,
    /// see docs/providers.md).
    pub providers: BTreeMap<String, crate::domain::providers::ProviderConfig>,
    /// Directories a session's workspace must lie in; empty: the data dir's `workspaces/`.
    pub workspace_roots: Vec<PathBuf>,
    /// A Claude Code config dir (e.g. `~/.claude`) whose sessions the console and
    /// `/api/claude-sessions` show; unset: none are shown.
    pub claude_sessions_dir: Option<PathBuf>,
    /// A client's system prompt reaches the model exactly, without the CLI's identity line in
    /// front (kept anyway with subscription credentials, which require it).
    pub exact_system_prompt: bool,
    /// How long stored Responses API responses and Anthropic thread messages are kept.
    pub reply_ttl_secs: u64,
    /// How long a response stays replayable to a retry with the same `Idempotency-Key`.
    pub idempotency_window_secs: u64,
    /// Further variables of the gateway's environment the CLI may inherit, by name (beyond the
    /// allowlist: PATH, locale, the CLI's non-secret settings).
    pub cli_extra_env: Vec<String>,
    /// A second address serving only `/metrics`, without a key (for Prometheus when keys are
    /// configured); unset: none.
    pub metrics_listen: Option<String>,
    /// Let Bash run where the sandbox cannot (no bubblewrap): off, Bash is then refused.
    pub unsandboxed_bash: bool,
    /// Hosts sandboxed Bash commands may reach; empty: no network.
    pub sandbox_allowed_hosts: Vec<String>,
    /// External MCP servers sessions and requests may enable by name (`[mcp_servers.NAME]`).
    pub mcp_servers: BTreeMap<String, crate::domain::mcp::McpServerConfig>,
    /// Let clients name remote MCP servers by URL (only on `client_mcp_hosts`).
    pub client_mcp_urls: bool,
    /// Hosts client-named MCP servers may be on: `host`, `host:port` or `*.domain`.
    pub client_mcp_hosts: Vec<String>,
    /// Hooks every session has (`[[hooks]]`: event, matcher, mode, url, timeout_secs,
    /// default; see docs/hooks.md).
    pub hooks: Vec<crate::domain::hooks::HookSpec>,
    /// The hook events every process registers, and so the ones sessions may subscribe to
    /// (each costs a callback whenever it fires; PreToolUse is always registered).
    pub hook_events: Vec<String>,
    /// Hosts (`host` or `host:port`) hook webhooks may be sent to; empty: no webhooks.
    pub hook_webhook_hosts: Vec<String>,
    /// The environment variable holding the key webhook bodies are signed with.
    pub hook_secret_env: String,
    /// How long a decide hook waits for its answer unless its subscription says otherwise.
    pub hook_timeout_secs: u64,
    /// What a decide hook nobody answered in time amounts to: `deny` or `continue`.
    pub hook_default_outcome: String,
    /// Further attempts after a webhook delivery failed (within the hook's timeout).
    pub hook_webhook_retries: u32,
    /// The signing key itself, when embedding the gateway (else read from `hook_secret_env`).
    #[serde(skip)]
    pub hook_secret: Option<String>,
    /// How Bash is confined here (set at start: `bubblewrap`, or why not).
    #[serde(skip)]
    pub bash_sandbox: Option<String>,
    #[serde(skip)]
    pub bash_sandbox_status: String,
    /// Environment for the CLI on top of the gateway's own (set by `--demo`).
    #[serde(skip)]
    pub cli_env: Vec<(String, String)>,
    /// The credential relay the CLI processes use (started with the server).
    #[serde(skip)]
    pub relay: Option<std::sync::Arc<crate::relay::Relay>>,
    #[serde(skip)]
    pub demo: bool,
    // --- limits ---
    /// Prices in USD per million tokens by model (`[prices."MODEL"]`: input, output,
    /// cache_read, cache_write), for turns the upstream reported no cost for; on top of the
    /// built-in Claude prices (see docs/limits.md).
    pub prices: BTreeMap<String, crate::domain::limits::Price>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 8080,
            data_dir: PathBuf::from("data"),
            claude_bin: None,
            api_keys: vec![],
            cors_origins: vec![],
            // Half the machine's (or the cgroup's) memory in 256 MB units, within 2..=64.
            max_live_processes: crate::claude::budget::for_this_machine(8),
            warm_pool_size: 2,
            warm_pool_max: 4,
            warm_models: vec!["sonnet".into()],
            warm_ttl_secs: 600,
            queue_timeout_secs: 30,
            turn_timeout_secs: 600,
            idle_timeout_secs: 180,
            stream_lag_timeout_secs: 60,
            process_idle_ttl_secs: 600,
            conversation_ttl_secs: 86_400,
            cli_max_retries: 2,
            builtin_tools: vec![],
            tool_call_timeout_secs: 600,
            permission_timeout_secs: 120,
            max_body_bytes: 32 * 1024 * 1024,
            max_upload_bytes: 16 * 1024 * 1024,
            header_read_timeout_secs: 30,
            keep_alive_timeout_secs: 60,
            max_connections: 10_000,
            shutdown_grace_secs: 5,
            drain_timeout_secs: 20,
            lease_ttl_secs: 15,
            lease_wait_secs: 20,
            log_format: "auto".into(),
            store_durability: "normal".into(),
            database_url: String::new(),
            models: models::default_table(),
            providers: BTreeMap::new(),
            workspace_roots: vec![],
            claude_sessions_dir: None,
            exact_system_prompt: true,
            reply_ttl_secs: 30 * 86_400,
            idempotency_window_secs: 3600,
            cli_extra_env: vec![],
            metrics_listen: None,
            unsandboxed_bash: false,
            sandbox_allowed_hosts: vec![],
            mcp_servers: BTreeMap::new(),
            client_mcp_urls: false,
            client_mcp_hosts: vec![],
            hooks: vec![],
            hook_events: crate::claude::control::HOOK_EVENTS
                .iter()
                .map(|e| e.to_string())
                .collect(),
            hook_webhook_hosts: vec![],
            hook_secret_env: "CCGW_HOOK_SECRET".into(),
            hook_timeout_secs: 30,
            hook_default_outcome: "deny".into(),
            hook_webhook_retries: 2,
            hook_secret: None,
            bash_sandbox: None,
            bash_sandbox_status: String::new(),
            cli_env: vec![],
            relay: None,
            demo: false,
            prices: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Config");
        for (name, value) in self.settings() {
            d.field(name, &format_args!("{value}"));
        }
        d.finish()
    }
}

/// Secrets as a count and a short digest: a change shows, the values never do.
pub(crate) fn redacted(secrets: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in secrets {
        h.update(s.as_bytes());
        h.update([0]);
    }
    format!(
        "[{} redacted, {}]",
        secrets.len(),
        hex::encode(&h.finalize()[..4])
    )
}

impl Config {
    /// The store `database_url` names (the data dir's SQLite file when it is empty).
    pub fn database(&self) -> Result<crate::store::DatabaseUrl, String> {
        crate::store::DatabaseUrl::parse(&self.database_url, &self.data_dir)
    }

    /// Whether several instances may share this store and data dir (Postgres), so that
    /// session leases must keep them from running one session at once. On SQLite one instance
    /// owns the data dir (its lock file) and leases are kept in memory.
    pub fn shared_store(&self) -> bool {
        matches!(self.database(), Ok(crate::store::DatabaseUrl::Postgres(_)))
    }

    /// Every setting read from the file or the environment, by name, as shown in logs (secrets
    /// redacted): what `Debug` prints and what a reload compares.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("host", format!("{:?}", self.host)),
            ("port", format!("{:?}", self.port)),
            ("data_dir", format!("{:?}", self.data_dir)),
            ("claude_bin", format!("{:?}", self.claude_bin)),
            ("api_keys", redacted(&self.api_keys)),
            ("cors_origins", format!("{:?}", self.cors_origins)),
            (
                "max_live_processes",
                format!("{:?}", self.max_live_processes),
            ),
            ("warm_pool_size", format!("{:?}", self.warm_pool_size)),
            ("warm_pool_max", format!("{:?}", self.warm_pool_max)),
            ("warm_models", format!("{:?}", self.warm_models)),
            ("warm_ttl_secs", format!("{:?}", self.warm_ttl_secs)),
            (
                "queue_timeout_secs",
                format!("{:?}", self.queue_timeout_secs),
            ),
            ("turn_timeout_secs", format!("{:?}", self.turn_timeout_secs)),
            ("idle_timeout_secs", format!("{:?}", self.idle_timeout_secs)),
            (
                "stream_lag_timeout_secs",
                format!("{:?}", self.stream_lag_timeout_secs),
            ),
            (
                "process_idle_ttl_secs",
                format!("{:?}", self.process_idle_ttl_secs),
            ),
            (
                "conversation_ttl_secs",
                format!("{:?}", self.conversation_ttl_secs),
            ),
            ("cli_max_retries", format!("{:?}", self.cli_max_retries)),
            ("builtin_tools", format!("{:?}", self.builtin_tools)),
            (
                "tool_call_timeout_secs",
                format!("{:?}", self.tool_call_timeout_secs),
            ),
            (
                "permission_timeout_secs",
                format!("{:?}", self.permission_timeout_secs),
            ),
            ("max_body_bytes", format!("{:?}", self.max_body_bytes)),
            ("max_upload_bytes", format!("{:?}", self.max_upload_bytes)),
            (
                "header_read_timeout_secs",
                format!("{:?}", self.header_read_timeout_secs),
            ),
            (
                "keep_alive_timeout_secs",
                format!("{:?}", self.keep_alive_timeout_secs),
            ),
            ("max_connections", format!("{:?}", self.max_connections)),
            (
                "shutdown_grace_secs",
                format!("{:?}", self.shutdown_grace_secs),
            ),
            (
                "drain_timeout_secs",
                format!("{:?}", self.drain_timeout_secs),
            ),
            ("lease_ttl_secs", format!("{:?}", self.lease_ttl_secs)),
            ("lease_wait_secs", format!("{:?}", self.lease_wait_secs)),
            ("models", format!("{:?}", self.models)),
            ("providers", format!("{:?}", self.providers)),
            ("workspace_roots", format!("{:?}", self.workspace_roots)),
            (
                "claude_sessions_dir",
                format!("{:?}", self.claude_sessions_dir),
            ),
            (
                "exact_system_prompt",
                format!("{:?}", self.exact_system_prompt),
            ),
            ("reply_ttl_secs", format!("{:?}", self.reply_ttl_secs)),
            (
                "idempotency_window_secs",
                format!("{:?}", self.idempotency_window_secs),
            ),
            ("cli_extra_env", format!("{:?}", self.cli_extra_env)),
            ("metrics_listen", format!("{:?}", self.metrics_listen)),
            ("unsandboxed_bash", format!("{:?}", self.unsandboxed_bash)),
            (
                "sandbox_allowed_hosts",
                format!("{:?}", self.sandbox_allowed_hosts),
            ),
            ("mcp_servers", format!("{:?}", self.mcp_servers)),
            ("client_mcp_urls", format!("{:?}", self.client_mcp_urls)),
            ("client_mcp_hosts", format!("{:?}", self.client_mcp_hosts)),
            ("hooks", format!("{:?}", self.hooks)),
            ("hook_events", format!("{:?}", self.hook_events)),
            (
                "hook_webhook_hosts",
                format!("{:?}", self.hook_webhook_hosts),
            ),
            ("hook_secret_env", format!("{:?}", self.hook_secret_env)),
            ("hook_timeout_secs", format!("{:?}", self.hook_timeout_secs)),
            (
                "hook_default_outcome",
                format!("{:?}", self.hook_default_outcome),
            ),
            (
                "hook_webhook_retries",
                format!("{:?}", self.hook_webhook_retries),
            ),
            ("demo", format!("{:?}", self.demo)),
            ("log_format", format!("{:?}", self.log_format)),
            ("store_durability", format!("{:?}", self.store_durability)),
            (
                "database_url",
                format!("{:?}", crate::store::redact_url(&self.database_url)),
            ),
            ("prices", format!("{:?}", self.prices)),
        ]
    }

    /// Defaults ← file (when given) ← environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                Config::from_toml(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        let mut cfg: Config = toml::from_str(text)?;
        // A `[models]` table adds to the built-in one rather than replacing it.
        let mut table = models::default_table();
        table.append(&mut cfg.models);
        cfg.models = table;
        Ok(cfg)
    }

    /// Apply `CCGW_<KEY>` variables; `get` is injectable for tests.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn parse<T: std::str::FromStr>(key: &str, v: &str) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            v.trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{key}={v:?} is not valid: {e}"))
        }
        fn parse_bool(key: &str, v: &str) -> anyhow::Result<bool> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => bail!("{key}={v:?} is not valid: expected true or false"),
            }
        }
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        macro_rules! num {
            ($($field:ident => $key:literal),* $(,)?) => {$(
                if let Some(v) = get($key) { self.$field = parse($key, &v)?; }
            )*};
        }
        if let Some(v) = get("CCGW_HOST") {
            self.host = v;
        }
        if let Some(v) = get("CCGW_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("CCGW_CLAUDE_BIN").filter(|v| !v.is_empty()) {
            self.claude_bin = Some(v.into());
        }
        if let Some(v) = get("CCGW_API_KEYS") {
            self.api_keys = list(&v);
        }
        if let Some(v) = get("CCGW_CORS_ORIGINS") {
            self.cors_origins = list(&v);
        }
        if let Some(v) = get("CCGW_WARM_MODELS") {
            self.warm_models = list(&v);
        }
        if let Some(v) = get("CCGW_BUILTIN_TOOLS") {
            self.builtin_tools = list(&v);
        }
        if let Some(v) = get("CCGW_CLI_EXTRA_ENV") {
            self.cli_extra_env = list(&v);
        }
        if let Some(v) = get("CCGW_METRICS_LISTEN") {
            self.metrics_listen = (!v.trim().is_empty()).then(|| v.trim().to_string());
        }
        if let Some(v) = get("CCGW_UNSANDBOXED_BASH") {
            self.unsandboxed_bash = parse_bool("CCGW_UNSANDBOXED_BASH", &v)?;
        }
        if let Some(v) = get("CCGW_SANDBOX_ALLOWED_HOSTS") {
            self.sandbox_allowed_hosts = list(&v);
        }
        if let Some(v) = get("CCGW_MCP_SERVERS").filter(|v| !v.trim().is_empty()) {
            // The same tables as in the file, as one JSON object: {"NAME": {"type": ...}}.
            self.mcp_servers = serde_json::from_str(&v)
                .map_err(|e| anyhow::anyhow!("CCGW_MCP_SERVERS is not valid: {e}"))?;
        }
        if let Some(v) = get("CCGW_PROVIDERS").filter(|v| !v.trim().is_empty()) {
            // The same tables as in the file, as one JSON object: {"NAME": {"base_url": ...}}.
            self.providers = serde_json::from_str(&v)
                .map_err(|e| anyhow::anyhow!("CCGW_PROVIDERS is not valid: {e}"))?;
        }
        // --- limits ---
        if let Some(v) = get("CCGW_PRICES").filter(|v| !v.trim().is_empty()) {
            // The same tables as in the file, as one JSON object: {"MODEL": {"input": ...}}.
            self.prices = serde_json::from_str(&v)
                .map_err(|e| anyhow::anyhow!("CCGW_PRICES is not valid: {e}"))?;
        }
        if let Some(v) = get("CCGW_CLIENT_MCP_URLS") {
            self.client_mcp_urls = parse_bool("CCGW_CLIENT_MCP_URLS", &v)?;
        }
        if let Some(v) = get("CCGW_CLIENT_MCP_HOSTS") {
            self.client_mcp_hosts = list(&v);
        }
        if let Some(v) = get("CCGW_HOOK_EVENTS") {
            self.hook_events = list(&v);
        }
        if let Some(v) = get("CCGW_HOOK_WEBHOOK_HOSTS") {
            self.hook_webhook_hosts = list(&v);
        }
        if let Some(v) = get("CCGW_HOOK_SECRET_ENV") {
            self.hook_secret_env = v.trim().to_string();
        }
        if let Some(v) = get("CCGW_HOOK_DEFAULT_OUTCOME") {
            self.hook_default_outcome = v.trim().to_lowercase();
        }
        if let Some(v) = get("CCGW_WORKSPACE_ROOTS") {
            self.workspace_roots = list(&v).into_iter().map(PathBuf::from).collect();
        }
        if let Some(v) = get("CCGW_CLAUDE_SESSIONS_DIR") {
            self.claude_sessions_dir = (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()));
        }
        if let Some(v) = get("CCGW_EXACT_SYSTEM_PROMPT") {
            self.exact_system_prompt = parse_bool("CCGW_EXACT_SYSTEM_PROMPT", &v)?;
        }
        if let Some(v) = get("CCGW_LOG_FORMAT") {
            self.log_format = v;
        }
        if let Some(v) = get("CCGW_STORE_DURABILITY") {
            self.store_durability = v.trim().to_lowercase();
        }
        if let Some(v) = get("CCGW_DATABASE_URL") {
            self.database_url = v.trim().to_string();
        }
        if let Some(v) = get("CCGW_MODELS") {
            let mut extra =
                models::parse_pairs(&v).map_err(|e| anyhow::anyhow!("CCGW_MODELS: {e}"))?;
            self.models.append(&mut extra);
        }
        num!(
            port => "CCGW_PORT",
            max_live_processes => "CCGW_MAX_LIVE_PROCESSES",
            warm_pool_size => "CCGW_WARM_POOL_SIZE",
            warm_pool_max => "CCGW_WARM_POOL_MAX",
            warm_ttl_secs => "CCGW_WARM_TTL_SECS",
            queue_timeout_secs => "CCGW_QUEUE_TIMEOUT_SECS",
            turn_timeout_secs => "CCGW_TURN_TIMEOUT_SECS",
            idle_timeout_secs => "CCGW_IDLE_TIMEOUT_SECS",
            stream_lag_timeout_secs => "CCGW_STREAM_LAG_TIMEOUT_SECS",
            process_idle_ttl_secs => "CCGW_PROCESS_IDLE_TTL_SECS",
            conversation_ttl_secs => "CCGW_CONVERSATION_TTL_SECS",
            cli_max_retries => "CCGW_CLI_MAX_RETRIES",
            tool_call_timeout_secs => "CCGW_TOOL_CALL_TIMEOUT_SECS",
            permission_timeout_secs => "CCGW_PERMISSION_TIMEOUT_SECS",
            max_body_bytes => "CCGW_MAX_BODY_BYTES",
            max_upload_bytes => "CCGW_MAX_UPLOAD_BYTES",
            header_read_timeout_secs => "CCGW_HEADER_READ_TIMEOUT_SECS",
            keep_alive_timeout_secs => "CCGW_KEEP_ALIVE_TIMEOUT_SECS",
            max_connections => "CCGW_MAX_CONNECTIONS",
            shutdown_grace_secs => "CCGW_SHUTDOWN_GRACE_SECS",
            drain_timeout_secs => "CCGW_DRAIN_TIMEOUT_SECS",
            lease_ttl_secs => "CCGW_LEASE_TTL_SECS",
            lease_wait_secs => "CCGW_LEASE_WAIT_SECS",
            reply_ttl_secs => "CCGW_REPLY_TTL_SECS",
            idempotency_window_secs => "CCGW_IDEMPOTENCY_WINDOW_SECS",
            hook_timeout_secs => "CCGW_HOOK_TIMEOUT_SECS",
            hook_webhook_retries => "CCGW_HOOK_WEBHOOK_RETRIES",
        );
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_live_processes == 0 {
            bail!("max_live_processes must be at least 1");
        }
        if self.turn_timeout_secs == 0
            || self.idle_timeout_secs == 0
            || self.stream_lag_timeout_secs == 0
        {
            bail!("turn_timeout_secs, idle_timeout_secs and stream_lag_timeout_secs must be at least 1");
        }
        if self.header_read_timeout_secs == 0
            || self.keep_alive_timeout_secs == 0
            || self.max_connections == 0
        {
            bail!("header_read_timeout_secs, keep_alive_timeout_secs and max_connections must be at least 1");
        }
        if self.lease_ttl_secs == 0 {
            bail!("lease_ttl_secs must be at least 1");
        }
        if !matches!(self.log_format.as_str(), "auto" | "json" | "text") {
            bail!(
                "log_format must be auto, json or text (got {:?})",
                self.log_format
            );
        }
        if !matches!(self.store_durability.as_str(), "normal" | "full") {
            bail!(
                "store_durability must be normal or full (got {:?})",
                self.store_durability
            );
        }
        self.database().map_err(|e| anyhow::anyhow!(e))?;
        crate::domain::providers::check_config(&self.providers, &self.models, &self.cli_extra_env)
            .map_err(anyhow::Error::msg)?;
        let known = |m: &String| {
            self.models.contains_key(m) || self.providers.values().any(|p| p.models.contains_key(m))
        };
        if let Some(m) = self.warm_models.iter().find(|m| !known(m)) {
            bail!("warm_models names '{m}', which is not in the model table nor a provider's");
        }
        if self.api_keys.iter().any(|k| k.len() < 8) {
            bail!("every API key must be at least 8 characters long");
        }
        crate::domain::mcp::check_config(&self.mcp_servers, &self.client_mcp_hosts, |k| {
            std::env::var(k).ok()
        })?;
        crate::domain::hooks::check_config(self).map_err(anyhow::Error::msg)?;
        // --- limits ---
        for (model, p) in &self.prices {
            let all = [Some(p.input), Some(p.output), p.cache_read, p.cache_write];
            if all.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
                bail!("prices.\"{model}\": every price must be a number of USD, 0 or more");
            }
        }
        Ok(())
    }

    /// Resolve a relative `data_dir` against the current directory, once, at start-up: the CLI
    /// runs in other directories and must be given absolute paths.
    pub fn make_paths_absolute(&mut self) {
        if self.data_dir.is_relative() {
            if let Ok(cwd) = std::env::current_dir() {
                self.data_dir = cwd.join(&self.data_dir);
            }
        }
    }

    pub fn claude_config_dir(&self) -> PathBuf {
        self.data_dir.join("claude")
    }

    pub fn workspaces_dir(&self) -> PathBuf {
        self.data_dir.join("workspaces")
    }

    /// The allowed workspace roots: the configured ones, else the data dir's `workspaces/`.
    pub fn workspace_roots(&self) -> Vec<PathBuf> {
        if self.workspace_roots.is_empty() {
            vec![self.workspaces_dir()]
        } else {
            self.workspace_roots.clone()
        }
    }

    /// The CLI to run: the configured one, else the copy the setup script installed, else
    /// `claude` on PATH.
    pub fn resolve_claude_bin(&self) -> PathBuf {
        if let Some(p) = &self.claude_bin {
            return p.clone();
        }
        const INSTALLED: &str = ".tools/cli/node_modules/.bin/claude";
        let mut candidates = vec![PathBuf::from(INSTALLED)];
        // The repo root as seen from target/{debug,release}/ccgw.
        if let Ok(exe) = std::env::current_exe() {
            if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
                candidates.push(root.join(INSTALLED));
            }
        }
        candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(INSTALLED));
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .and_then(|p| p.canonicalize().ok())
            .unwrap_or_else(|| PathBuf::from("claude"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_durability_is_normal_by_default_and_checked() {
        let mut cfg = Config::default();
        assert_eq!(cfg.store_durability, "normal");
        cfg.validate().unwrap();
        cfg.apply_env(|k| (k == "CCGW_STORE_DURABILITY").then(|| "FULL".to_string()))
            .unwrap();
        assert_eq!(cfg.store_durability, "full");
        cfg.validate().unwrap();
        let cfg = Config::from_toml("store_durability = \"sometimes\"").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("store_durability"));
    }

    #[test]
    fn database_url_defaults_to_sqlite_and_is_checked_and_redacted() {
        let mut cfg = Config::default();
        assert!(matches!(
            cfg.database(),
            Ok(crate::store::DatabaseUrl::Sqlite(p)) if p.ends_with("ccgw.db")
        ));
        cfg.apply_env(|k| {
            (k == "CCGW_DATABASE_URL").then(|| "postgres://ccgw:hunter2@db/ccgw".to_string())
        })
        .unwrap();
        cfg.validate().unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let cfg = Config::from_toml("database_url = \"redis://x:hunter2@h\"").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("database_url") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn prices_come_from_the_file_or_the_environment_and_must_be_sane() {
        let cfg = Config::from_toml(
            "[prices.\"my-model\"]\ninput = 2.0\noutput = 8.0\ncache_read = 0.2\n",
        )
        .unwrap();
        assert_eq!(cfg.prices["my-model"].output, 8.0);
        assert!(cfg.validate().is_ok());
        let mut env = Config::default();
        env.apply_env(|k| {
            (k == "CCGW_PRICES").then(|| r#"{"m": {"input": 1, "output": 2}}"#.into())
        })
        .unwrap();
        assert_eq!(env.prices["m"].input, 1.0);
        let bad = Config::from_toml("[prices.m]\ninput = -1.0\noutput = 1.0\n").unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("prices.\"m\""));
        assert!(Config::from_toml("[prices.m]\ninput = 1.0\n").is_err());
    }

    #[test]
    fn deployment_hooks_come_from_the_file_and_bad_ones_stop_the_start() {
        let cfg = Config::from_toml(
            "hook_webhook_hosts = [\"audit.example.com\"]\n\
             [[hooks]]\nevent = \"PostToolUse\"\nmode = \"watch\"\n\
             url = \"https://audit.example.com/claude\"\n",
        )
        .unwrap();
        assert_eq!(cfg.hooks.len(), 1);
        assert_eq!(cfg.hooks[0].event.as_deref(), Some("PostToolUse"));
        assert_eq!(cfg.hook_default_outcome, "deny");
        let with_secret = Config {
            hook_secret: Some("s3cret-key".into()),
            ..cfg.clone()
        };
        with_secret.validate().unwrap();
        // A webhook needs the signing key.
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hooks[0].url"));
        let bad =
            Config::from_toml("[[hooks]]\nevent = \"Sometimes\"\nmode = \"watch\"\n").unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hooks[0].event"));
        assert!(Config::from_toml("[[hooks]]\nevent = \"Stop\"\ncolour = \"red\"\n").is_err());
        // A hook may not wait as long as an idle turn lives: a short idle timeout lowers the
        // default wait (and bounds each subscription's) instead of stopping the start.
        let short = Config {
            idle_timeout_secs: 2,
            ..Config::default()
        };
        short.validate().unwrap();
        let s = crate::domain::hooks::HookSettings::from_config(&short).unwrap();
        assert_eq!((s.default_timeout_secs, s.max_timeout_secs), (1, 1));
        let zero = Config {
            hook_timeout_secs: 0,
            ..Config::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hook_timeout_secs"));
    }

    #[test]
    fn env_overrides_file_and_file_overrides_defaults() {
        let mut cfg =
            Config::from_toml("port = 9000\nmax_live_processes = 3\n[models]\nfast = \"haiku\"\n")
                .unwrap();
        assert_eq!(cfg.port, 9000);
        assert_eq!(cfg.models["fast"], "haiku");
        assert_eq!(cfg.models["sonnet"], "sonnet", "built-in table kept");
        let env: BTreeMap<&str, &str> = [
            ("CCGW_PORT", "9100"),
            ("CCGW_API_KEYS", "key-one-123, key-two-456"),
            ("CCGW_MODELS", "mine=my-model"),
            ("CCGW_EXACT_SYSTEM_PROMPT", "false"),
        ]
        .into();
        cfg.apply_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(cfg.port, 9100);
        assert_eq!(cfg.max_live_processes, 3);
        assert_eq!(cfg.api_keys, vec!["key-one-123", "key-two-456"]);
        assert_eq!(cfg.models["mine"], "my-model");
        assert!(!cfg.exact_system_prompt);
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let mut cfg = Config::default();
        let err = cfg
            .apply_env(|k| (k == "CCGW_PORT").then(|| "eighty".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("CCGW_PORT"));
        assert!(Config::from_toml("no_such_key = 1").is_err());
        let cfg = Config {
            api_keys: vec!["short".into()],
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn relative_data_dir_becomes_absolute_once() {
        let mut cfg = Config::default();
        cfg.make_paths_absolute();
        assert!(cfg.data_dir.is_absolute());
        assert!(cfg.claude_config_dir().is_absolute());
        let mut abs = Config {
            data_dir: "/srv/ccgw".into(),
            ..Config::default()
        };
        abs.make_paths_absolute();
        assert_eq!(abs.data_dir, PathBuf::from("/srv/ccgw"));
    }

    #[test]
    fn mcp_servers_come_from_the_file_or_the_environment() {
        let cfg = Config::from_toml(
            "client_mcp_urls = true\nclient_mcp_hosts = [\"*.example.com\"]\n\
             [mcp_servers.gh]\ntype = \"stdio\"\ncommand = \"/bin/gh-mcp\"\nenv = { TOKEN = \"PATH\" }\n",
        )
        .unwrap();
        assert!(cfg.client_mcp_urls);
        assert_eq!(cfg.mcp_servers["gh"].env["TOKEN"], "PATH");
        cfg.validate().unwrap();
        let mut cfg = Config::default();
        cfg.apply_env(|k| {
            (k == "CCGW_MCP_SERVERS").then(|| {
                r#"{"docs": {"type": "http", "url": "https://docs.example.com/mcp"}}"#.into()
            })
        })
        .unwrap();
        assert!(cfg.mcp_servers.contains_key("docs"));
        let bad = Config::from_toml("[mcp_servers.x]\ntype = \"stdio\"\ncommand = \"c\"\nenv = { T = \"CCGW_NO_SUCH_VAR_SET\" }\n")
            .unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("CCGW_NO_SUCH_VAR_SET"), "{err}");
        assert!(Config::from_toml("[mcp_servers.x]\ntype = \"ftp\"\n").is_err());
    }

    #[test]
    fn debug_hides_keys() {
        let cfg = Config {
            api_keys: vec!["super-secret-key".into()],
            ..Config::default()
        };
        assert!(!format!("{cfg:?}").contains("super-secret-key"));
    }
}

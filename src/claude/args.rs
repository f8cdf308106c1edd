//! Launch spec → argv and environment for one CLI process. Pure, no I/O.
//!
//! Launch hygiene lives here: built-in tools off unless asked for, no settings files, only our
//! MCP servers, every permission decision routed to us over stdio, no non-essential traffic,
//! few retries, and the gateway's own config dir so its sessions never mix with a user's.
//! The environment is an allowlist (see [`inherited_env`]): a secret of the gateway's never
//! reaches the CLI, and the upstream's credentials stay with the relay.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::sandbox::SandboxPolicy;
use crate::relay::{Relay, CREDENTIAL_ENV};

/// How the process relates to a CLI session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMode {
    /// A new session with this id.
    New(String),
    /// Continue an existing session; with `fork`, into a new session id.
    Resume { id: String, fork: bool },
}

/// What a process runs as: the upstream provider that serves it (`None`: the gateway's own
/// upstream) and the CLI's `--model` (`None`: the CLI's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CliModel {
    pub provider: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub program: PathBuf,
    pub cwd: PathBuf,
    pub config_dir: PathBuf,
    /// `--model`; `None` leaves the CLI's default.
    pub model: Option<String>,
    /// The `[providers.NAME]` whose upstream and credentials the relay uses for this
    /// process; `None`: the gateway's own.
    pub provider: Option<String>,
    pub session: SessionMode,
    /// Built-in tools the model may see (`--tools`); empty means none.
    pub builtin_tools: Vec<String>,
    /// Tools pre-approved without a permission request (`--allowedTools`).
    pub allowed_tools: Vec<String>,
    pub permission_mode: Option<String>,
    /// `CLAUDE_CODE_MAX_RETRIES`.
    pub max_retries: u32,
    /// `CLAUDE_CODE_MAX_OUTPUT_TOKENS`, the only way to cap `max_tokens`.
    pub max_output_tokens: Option<u32>,
    /// `MAX_THINKING_TOKENS`: 0 turns thinking off; a budget applies to non-adaptive models.
    pub max_thinking_tokens: Option<u32>,
    /// `--effort`: low, medium, high, xhigh or max.
    pub effort: Option<String>,
    /// `--agent`: run the main thread as this agent.
    pub agent: Option<String>,
    /// `--max-turns`.
    pub max_turns: Option<u32>,
    /// `CLAUDE_CODE_EXTRA_BODY`: fields merged into every Messages API request (sampling).
    pub extra_body: Option<serde_json::Value>,
    /// Extra environment (e.g. the demo upstream's address), applied last. With a relay, its
    /// upstream settings ([`CREDENTIAL_ENV`]) are the relay's and are left out.
    pub env: Vec<(String, String)>,
    /// The credential relay the process talks to the upstream through (its own token).
    pub relay: Option<Arc<Relay>>,
    /// Names of further gateway environment variables the operator lets through
    /// (`cli_extra_env`).
    pub pass_env: Vec<String>,
    /// The Bash sandbox, turned on when Bash is among the tools; `None` where it cannot run.
    pub sandbox: Option<SandboxPolicy>,
    /// `--mcp-config`: a file with the external MCP servers (it may hold their secrets, so it
    /// is never inline on the command line).
    pub mcp_config: Option<PathBuf>,
}

/// Variables of the gateway's environment every CLI process gets: the system's basics.
const BASE_ENV: &[&str] = &[
    "PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL", "USER", "LOGNAME",
];

/// The CLI's own settings that carry no secret, passed on when the gateway's environment sets
/// them (model aliases, betas, timeouts, switches). Credentials are never among them.
const CLI_SETTINGS: &[&str] = &[
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_DEFAULT_FABLE_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_BETAS",
    "API_TIMEOUT_MS",
    "BASH_DEFAULT_TIMEOUT_MS",
    "BASH_MAX_TIMEOUT_MS",
    "BASH_MAX_OUTPUT_LENGTH",
    "MCP_TIMEOUT",
    "MCP_TOOL_TIMEOUT",
    "MAX_MCP_OUTPUT_TOKENS",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "DISABLE_PROMPT_CACHING",
    "ENABLE_TOOL_SEARCH",
];

/// A name that looks like it holds a secret is never passed on by a prefix rule.
fn looks_secret(name: &str) -> bool {
    ["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH"]
        .iter()
        .any(|w| name.contains(w))
}

/// The part of the gateway's environment a CLI process inherits: the system basics, the
/// locale (`LC_*`), the CLI's non-secret settings (those above and `CLAUDE_CODE_*` switches
/// whose names hold no secret), and exactly the names the operator listed in `extra`.
/// Everything else (`CCGW_*`, cloud credentials, the upstream's key) stays behind.
pub fn inherited_env(
    gateway_env: impl IntoIterator<Item = (String, String)>,
    extra: &[String],
) -> Vec<(String, String)> {
    gateway_env
        .into_iter()
        .filter(|(k, _)| {
            BASE_ENV.contains(&k.as_str())
                || k.starts_with("LC_")
                || CLI_SETTINGS.contains(&k.as_str())
                || (k.starts_with("CLAUDE_CODE_") && !looks_secret(k))
                || extra.iter().any(|e| e == k)
        })
        .filter(|(k, _)| !CREDENTIAL_ENV.contains(&k.as_str()) || extra.iter().any(|e| e == k))
        .collect()
}

/// The CLI's `HOME`: inside the gateway's CLI config dir, never a person's home.
pub fn cli_home(config_dir: &Path) -> PathBuf {
    config_dir.join("home")
}

impl LaunchSpec {
    /// A process of `program` in `cwd` with nothing turned on: no model, tools, settings,
    /// environment or relay. Callers set what they need.
    pub fn bare(
        program: PathBuf,
        cwd: PathBuf,
        config_dir: PathBuf,
        session: SessionMode,
    ) -> LaunchSpec {
        LaunchSpec {
            program,
            cwd,
            config_dir,
            model: None,
            provider: None,
            session,
            builtin_tools: vec![],
            allowed_tools: vec![],
            permission_mode: None,
            max_retries: 0,
            max_output_tokens: None,
            max_thinking_tokens: None,
            effort: None,
            agent: None,
            max_turns: None,
            extra_body: None,
            env: vec![],
            relay: None,
            pass_env: vec![],
            sandbox: None,
            mcp_config: None,
        }
    }

    /// Run as `m`: its `--model` and its provider.
    pub fn set_model(&mut self, m: &CliModel) {
        self.model = m.model.clone();
        self.provider = m.provider.clone();
    }

    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<String> = vec![
            "--input-format".into(),
            "stream-json".into(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
            "--include-partial-messages".into(),
            "--permission-prompt-tool".into(),
            "stdio".into(),
            "--setting-sources".into(),
            String::new(),
            "--strict-mcp-config".into(),
        ];
        // Variadic flags swallow what follows, so every list goes in `--flag=value` form.
        a.push(format!("--tools={}", self.builtin_tools.join(",")));
        if !self.allowed_tools.is_empty() {
            a.push(format!("--allowedTools={}", self.allowed_tools.join(",")));
        }
        if let Some(path) = &self.mcp_config {
            a.push(format!("--mcp-config={}", path.display()));
        }
        if let Some(policy) = self.sandbox.as_ref().filter(|_| self.runs_bash()) {
            a.push(format!("--settings={}", policy.settings()));
        }
        if let Some(mode) = &self.permission_mode {
            a.push(format!("--permission-mode={mode}"));
        }
        if let Some(model) = &self.model {
            a.push(format!("--model={model}"));
        }
        if let Some(e) = &self.effort {
            a.push(format!("--effort={e}"));
        }
        if let Some(agent) = &self.agent {
            a.push(format!("--agent={agent}"));
        }
        if let Some(n) = self.max_turns {
            a.push(format!("--max-turns={n}"));
        }
        match &self.session {
            SessionMode::New(id) => a.push(format!("--session-id={id}")),
            SessionMode::Resume { id, fork } => {
                a.push(format!("--resume={id}"));
                if *fork {
                    a.push("--fork-session".into());
                }
            }
        }
        a.into_iter().map(OsString::from).collect()
    }

    /// Whether the model may run Bash in this process.
    pub fn runs_bash(&self) -> bool {
        self.builtin_tools.iter().any(|t| t == "Bash")
    }

    /// Variables set on top of the inherited allowlist ([`inherited_env`]); the relay's own
    /// (its address and the process's token) come after these.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut e = vec![
            (
                "CLAUDE_CONFIG_DIR".to_string(),
                self.config_dir.display().to_string(),
            ),
            (
                "HOME".to_string(),
                cli_home(&self.config_dir).display().to_string(),
            ),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                "1".into(),
            ),
            ("DISABLE_AUTOUPDATER".into(), "1".into()),
            // The per-prompt billing header in system[0] defeats upstream prefix caching.
            ("CLAUDE_CODE_ATTRIBUTION_HEADER".into(), "0".into()),
            (
                "CLAUDE_CODE_MAX_RETRIES".into(),
                self.max_retries.to_string(),
            ),
        ];
        if let Some(n) = self.max_output_tokens {
            e.push(("CLAUDE_CODE_MAX_OUTPUT_TOKENS".into(), n.to_string()));
        }
        if let Some(n) = self.max_thinking_tokens {
            e.push(("MAX_THINKING_TOKENS".into(), n.to_string()));
        }
        if let Some(b) = &self.extra_body {
            e.push(("CLAUDE_CODE_EXTRA_BODY".into(), b.to_string()));
        }
        e.extend(
            self.env
                .iter()
                .filter(|(k, _)| self.relay.is_none() || !CREDENTIAL_ENV.contains(&k.as_str()))
                .cloned(),
        );
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            max_retries: 2,
            ..LaunchSpec::bare(
                "claude".into(),
                "/w".into(),
                "/d/claude".into(),
                SessionMode::New("11111111-1111-1111-1111-111111111111".into()),
            )
        }
    }

    fn strs(s: &LaunchSpec) -> Vec<String> {
        s.args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn defaults_turn_everything_off() {
        let a = strs(&spec());
        assert!(a.contains(&"--tools=".to_string()));
        assert!(a.contains(&"--strict-mcp-config".to_string()));
        let i = a.iter().position(|x| x == "--setting-sources").unwrap();
        assert_eq!(a[i + 1], "");
        let i = a
            .iter()
            .position(|x| x == "--permission-prompt-tool")
            .unwrap();
        assert_eq!(a[i + 1], "stdio");
        assert!(a.contains(&"--session-id=11111111-1111-1111-1111-111111111111".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--model")));
        assert!(!a.iter().any(|x| x.starts_with("--allowedTools")));
        assert!(!a.iter().any(|x| x.starts_with("--mcp-config")));
        let mut s = spec();
        s.mcp_config = Some("/d/claude/mcp/x.json".into());
        assert!(strs(&s).contains(&"--mcp-config=/d/claude/mcp/x.json".to_string()));
    }

    #[test]
    fn lists_use_equals_form_and_resume_forks() {
        let mut s = spec();
        s.builtin_tools = vec!["Bash".into(), "Read".into()];
        s.allowed_tools = vec!["Read".into()];
        s.model = Some("sonnet".into());
        s.session = SessionMode::Resume {
            id: "abc".into(),
            fork: true,
        };
        let a = strs(&s);
        assert!(a.contains(&"--tools=Bash,Read".to_string()));
        assert!(a.contains(&"--allowedTools=Read".to_string()));
        assert!(a.contains(&"--model=sonnet".to_string()));
        assert!(a.contains(&"--resume=abc".to_string()));
        assert!(a.contains(&"--fork-session".to_string()));
    }

    #[test]
    fn claude_options_become_flags_and_env() {
        let mut s = spec();
        s.effort = Some("low".into());
        s.agent = Some("reviewer".into());
        s.max_turns = Some(3);
        s.max_thinking_tokens = Some(0);
        s.extra_body = Some(serde_json::json!({"temperature": 0.2}));
        let a = strs(&s);
        assert!(a.contains(&"--effort=low".to_string()));
        assert!(a.contains(&"--agent=reviewer".to_string()));
        assert!(a.contains(&"--max-turns=3".to_string()));
        let e = s.env();
        assert!(e.contains(&("MAX_THINKING_TOKENS".into(), "0".into())));
        assert!(e.contains(&(
            "CLAUDE_CODE_EXTRA_BODY".into(),
            r#"{"temperature":0.2}"#.into()
        )));
    }

    #[test]
    fn env_sets_hygiene_and_extra_last() {
        let mut s = spec();
        s.max_output_tokens = Some(100);
        s.env = vec![("CLAUDE_CODE_MAX_RETRIES".into(), "7".into())];
        let e = s.env();
        let get = |k: &str| e.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("CLAUDE_CONFIG_DIR").unwrap(), "/d/claude");
        assert_eq!(
            get("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC").unwrap(),
            "1"
        );
        assert_eq!(get("CLAUDE_CODE_MAX_OUTPUT_TOKENS").unwrap(), "100");
        // Later entries win when applied in order.
        assert_eq!(get("CLAUDE_CODE_MAX_RETRIES").unwrap(), "7");
        assert_eq!(get("HOME").unwrap(), "/d/claude/home");
    }

    #[test]
    fn bash_gets_the_sandbox_settings() {
        let mut s = spec();
        s.sandbox = Some(SandboxPolicy::default());
        assert!(!strs(&s).iter().any(|a| a.starts_with("--settings=")));
        s.builtin_tools = vec!["Bash".into()];
        let a = strs(&s);
        let settings = a
            .iter()
            .find_map(|a| a.strip_prefix("--settings="))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(settings).unwrap();
        assert_eq!(v["sandbox"]["enabled"], true);
    }

    #[test]
    fn only_the_allowlist_is_inherited() {
        let gateway: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("LC_ALL", "C.UTF-8"),
            ("HOME", "/root"),
            ("CCGW_API_KEYS", "k"),
            ("ANTHROPIC_API_KEY", "sk-real"),
            ("ANTHROPIC_MODEL", "m"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "o"),
            ("CLAUDE_CODE_USE_BEDROCK", "1"),
            ("AWS_SECRET_ACCESS_KEY", "a"),
            ("HTTPS_PROXY", "http://p"),
            ("DATABASE_URL", "postgres://x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let names = |extra: &[String]| -> Vec<String> {
            inherited_env(gateway.clone(), extra)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            names(&[]),
            [
                "PATH",
                "LC_ALL",
                "ANTHROPIC_MODEL",
                "CLAUDE_CODE_USE_BEDROCK"
            ]
        );
        assert!(names(&["HTTPS_PROXY".into()]).contains(&"HTTPS_PROXY".to_string()));
    }

    #[tokio::test]
    async fn with_a_relay_the_upstream_settings_stay_out() {
        let mut s = spec();
        s.env = vec![
            ("ANTHROPIC_BASE_URL".into(), "http://upstream".into()),
            ("ANTHROPIC_API_KEY".into(), "sk-real".into()),
            ("ANTHROPIC_SMALL_FAST_MODEL".into(), "h".into()),
        ];
        assert!(s.env().iter().any(|(_, v)| v == "sk-real"));
        s.relay = Some(
            Relay::start(crate::relay::Credentials::default())
                .await
                .unwrap(),
        );
        let e = s.env();
        assert!(!e
            .iter()
            .any(|(k, v)| v == "sk-real" || k == "ANTHROPIC_BASE_URL"));
        assert!(e.iter().any(|(k, _)| k == "ANTHROPIC_SMALL_FAST_MODEL"));
    }
}

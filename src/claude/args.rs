//! Launch spec → argv and environment for one CLI process. Pure, no I/O.
//!
//! Launch hygiene lives here: built-in tools off unless asked for, no settings files, only our
//! MCP servers, every permission decision routed to us over stdio, no non-essential traffic,
//! few retries, and the gateway's own config dir so its sessions never mix with a user's.

use std::ffi::OsString;
use std::path::PathBuf;

/// How the process relates to a CLI session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMode {
    /// A new session with this id.
    New(String),
    /// Continue an existing session; with `fork`, into a new session id.
    Resume { id: String, fork: bool },
}

#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub program: PathBuf,
    pub cwd: PathBuf,
    pub config_dir: PathBuf,
    /// `--model`; `None` leaves the CLI's default.
    pub model: Option<String>,
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
    /// Extra environment (e.g. the demo upstream's address), applied last.
    pub env: Vec<(String, String)>,
}

/// Environment variables of the gateway's own that must never reach the CLI (and so the model).
pub const SCRUBBED_ENV_PREFIXES: &[&str] = &["CCGW_"];

impl LaunchSpec {
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

    /// Variables set on top of the inherited environment (scrubbed of `CCGW_*`).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut e = vec![
            (
                "CLAUDE_CONFIG_DIR".to_string(),
                self.config_dir.display().to_string(),
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
        e.extend(self.env.iter().cloned());
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            program: "claude".into(),
            cwd: "/w".into(),
            config_dir: "/d/claude".into(),
            model: None,
            session: SessionMode::New("11111111-1111-1111-1111-111111111111".into()),
            builtin_tools: vec![],
            allowed_tools: vec![],
            permission_mode: None,
            max_retries: 2,
            max_output_tokens: None,
            max_thinking_tokens: None,
            effort: None,
            agent: None,
            max_turns: None,
            extra_body: None,
            env: vec![],
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
    }
}

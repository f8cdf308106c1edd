//! The Bash sandbox: Claude Code's own `sandbox` settings (bubblewrap and socat on Linux),
//! turned on for every process that may run Bash. Which paths its commands may not read, which
//! hosts they may reach, and whether this machine can run it at all. Builds settings and
//! probes the machine; it starts no CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// What one process's Bash commands are kept from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Paths Bash may not read (the gateway's data, the CLI's config, other workspaces).
    pub deny_read: Vec<PathBuf>,
    /// Hosts Bash may reach; empty: none.
    pub allowed_hosts: Vec<String>,
    /// Variables unset for Bash commands (the relay token: the model has no use for it).
    pub hidden_env: Vec<String>,
}

impl SandboxPolicy {
    /// The gateway's own files, as seen from a process working in `workspace`: everything in
    /// the data dir but the workspaces, and every workspace but this one (those that exist now).
    pub fn for_workspace(
        data_dir: &Path,
        workspaces_dir: &Path,
        extra: &[PathBuf],
        workspace: &Path,
    ) -> Vec<PathBuf> {
        let mut deny = Vec::new();
        let holds = |dir: &Path| workspace.starts_with(dir);
        for entry in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p == workspaces_dir {
                for ws in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                    if !holds(&ws.path()) {
                        deny.push(ws.path());
                    }
                }
            } else if !holds(&p) {
                deny.push(p);
            }
        }
        deny.extend(extra.iter().filter(|p| !holds(p)).cloned());
        deny
    }

    /// The `--settings` document that turns the sandbox on: no way out of it
    /// (`allowUnsandboxedCommands: false`), a hard failure when it cannot start, and every Bash
    /// call still through the gateway's permission flow (`autoAllowBashIfSandboxed: false`).
    /// Writes stay in the working directory (the sandbox's default).
    pub fn settings(&self) -> Value {
        json!({
            "sandbox": {
                "enabled": true,
                "failIfUnavailable": true,
                "allowUnsandboxedCommands": false,
                "autoAllowBashIfSandboxed": false,
                "filesystem": {
                    "denyRead": self.deny_read.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                },
                "network": {"allowedDomains": self.allowed_hosts},
                "credentials": {
                    "envVars": self.hidden_env.iter().map(|n| json!({"name": n, "mode": "deny"})).collect::<Vec<_>>(),
                },
            }
        })
    }
}

/// Whether the sandbox can run here: `Ok(how)` or `Err(why not)`.
pub fn probe() -> Result<String, String> {
    if !cfg!(target_os = "linux") {
        return Err("the Bash sandbox is supported on Linux only here".into());
    }
    for tool in ["bwrap", "socat"] {
        if which(tool).is_none() {
            return Err(format!(
                "{tool} is not installed (Debian: apt-get install bubblewrap socat)"
            ));
        }
    }
    let out = Command::new("bwrap")
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--unshare-net",
            "true",
        ])
        .output()
        .map_err(|e| format!("bwrap could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bwrap cannot create a sandbox on this machine: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok("bubblewrap".into())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_turn_the_sandbox_on_without_a_way_out() {
        let p = SandboxPolicy {
            deny_read: vec!["/data/ccgw.db".into()],
            allowed_hosts: vec![],
            hidden_env: vec!["ANTHROPIC_API_KEY".into()],
        };
        let s = p.settings();
        assert_eq!(s["sandbox"]["enabled"], true);
        assert_eq!(s["sandbox"]["failIfUnavailable"], true);
        assert_eq!(s["sandbox"]["allowUnsandboxedCommands"], false);
        assert_eq!(s["sandbox"]["filesystem"]["denyRead"][0], "/data/ccgw.db");
        assert_eq!(s["sandbox"]["network"]["allowedDomains"], json!([]));
        assert_eq!(s["sandbox"]["credentials"]["envVars"][0]["mode"], "deny");
    }

    #[test]
    fn deny_read_is_the_data_dir_but_this_workspace() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path();
        let wss = data.join("workspaces");
        for p in [wss.join("mine"), wss.join("other"), data.join("claude")] {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(data.join("ccgw.db"), "").unwrap();
        let mut deny = SandboxPolicy::for_workspace(data, &wss, &[], &wss.join("mine"));
        deny.sort();
        assert_eq!(
            deny,
            vec![data.join("ccgw.db"), data.join("claude"), wss.join("other")]
        );
    }
}

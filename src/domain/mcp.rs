//! External MCP servers: the deployment's `[mcp_servers.NAME]`, the names (or, when allowed,
//! URLs) a session or request enables, and the `--mcp-config` file a CLI process gets for them.
//!
//! Owns: checking the configuration at start-up, resolving the secrets it names from the
//! gateway's environment, checking what a request enables (unknown names, client URLs against
//! the host allowlist), the launch config (a stdio server starts without the relay's token), and
//! the public view of a server (names of variables and headers, never their values).
//! Must not: start processes or know HTTP; the status endpoints are in `mcp_status`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::turn::InvalidField;

/// The name of the gateway's own in-process server (client tools): never a configured one.
const RESERVED: &str = crate::claude::tools::SERVER_NAME;

/// The wrapper a stdio server is started through, so that it does not inherit the CLI's relay
/// token and address (the CLI hands its whole environment to the servers it starts).
const ENV_PROGRAM: &str = "/usr/bin/env";

/// How the CLI reaches a server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum McpKind {
    Stdio,
    Http,
    Sse,
}

/// One `[mcp_servers.NAME]` table. Secrets are never written here: `env` and `headers_env`
/// name variables of the gateway's environment that hold them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    #[serde(rename = "type")]
    pub kind: McpKind,
    /// stdio: the program to start.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: variable the server gets → variable of the gateway's environment holding it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// http/sse: the server's address.
    #[serde(default)]
    pub url: Option<String>,
    /// http/sse: headers sent as they are written (no secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http/sse: header → variable of the gateway's environment holding its value.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
}

/// What a session or request enables: a configured server by name, or (with
/// `client_mcp_urls`) a remote server by URL.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(untagged)]
pub enum McpRef {
    Name(String),
    Url {
        name: String,
        url: String,
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        kind: Option<McpKind>,
    },
}

impl McpRef {
    pub fn name(&self) -> &str {
        match self {
            McpRef::Name(n) | McpRef::Url { name: n, .. } => n,
        }
    }
}

/// A server name the CLI can carry in `mcp__NAME__tool`: letters, digits, `-` and `_`, no
/// `__` (the separator), at most 48 characters (tool names are at most 64 in all).
pub fn check_name(name: &str) -> Result<(), String> {
    if crate::domain::turn::is_plain_name(name, 48) && !name.contains("__") {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid MCP server name: use 1 to 48 letters, digits, '-' or '_' (no '__')"
        ))
    }
}

/// `mcp_servers` of a request or session body: names, or `{name, url, type?}` objects. Only
/// the shape is checked here; which ones exist is the domain's ([`McpRegistry::check`]).
pub fn parse_refs(v: Option<&Value>, param: &str) -> Result<Vec<McpRef>, InvalidField> {
    let list = match v {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(InvalidField::new(
                param,
                format!("{param} must be an array of MCP server names"),
            ))
        }
    };
    let mut out: Vec<McpRef> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = format!("{param}[{i}]");
        let r: McpRef = serde_json::from_value(item.clone()).map_err(|_| {
            InvalidField::new(
                &at,
                format!("{at} must be a server name or {{\"name\", \"url\", \"type\"}}"),
            )
        })?;
        check_name(r.name()).map_err(|m| InvalidField::new(&at, m))?;
        if out.iter().any(|o| o.name() == r.name()) {
            return Err(InvalidField::new(
                &at,
                format!("the MCP server '{}' is named twice", r.name()),
            ));
        }
        if let McpRef::Url {
            kind: Some(McpKind::Stdio),
            ..
        } = &r
        {
            return Err(InvalidField::new(
                format!("{at}.type"),
                "a client-named MCP server is reached over http or sse, never started here",
            ));
        }
        out.push(r);
    }
    // One order, so the same set is the same launch (and pool key) however it was written.
    out.sort();
    Ok(out)
}

/// Check every `[mcp_servers.*]` at start-up, and that the variables they name are set.
pub fn check_config(
    servers: &BTreeMap<String, McpServerConfig>,
    hosts: &[String],
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    for (name, s) in servers {
        let at = format!("mcp_servers.{name}");
        check_name(name).map_err(|m| anyhow::anyhow!("{at}: {m}"))?;
        if name == RESERVED {
            bail!("{at}: the name '{RESERVED}' is the gateway's own (client tools)");
        }
        match s.kind {
            McpKind::Stdio => {
                if s.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    bail!("{at}: a stdio server needs a command");
                }
                if s.url.is_some() || !s.headers.is_empty() || !s.headers_env.is_empty() {
                    bail!("{at}: url and headers are for http and sse servers");
                }
            }
            McpKind::Http | McpKind::Sse => {
                let url = s.url.as_deref().unwrap_or_default();
                parse_url(url).map_err(|m| anyhow::anyhow!("{at}.url: {m}"))?;
                if s.command.is_some() || !s.args.is_empty() || !s.env.is_empty() {
                    bail!("{at}: command, args and env are for stdio servers");
                }
            }
        }
        for (key, var) in s.env.iter().chain(&s.headers_env) {
            if get(var).is_none() {
                bail!(
                    "{at}: '{key}' is taken from the environment variable {var}, which is not set"
                );
            }
        }
    }
    if servers.values().any(|s| s.kind == McpKind::Stdio) && !Path::new(ENV_PROGRAM).is_file() {
        bail!("mcp_servers: stdio servers are started through {ENV_PROGRAM}, which is missing");
    }
    if let Some(h) = hosts
        .iter()
        .find(|h| h.trim().is_empty() || h.contains('/'))
    {
        bail!("client_mcp_hosts: '{h}' is not a host name (write host, host:port or *.domain)");
    }
    Ok(())
}

fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("'{url}' must be an http or https URL"));
    }
    if u.host_str().is_none() {
        return Err(format!("'{url}' names no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "'{url}' carries credentials; they would be logged and shown"
        ));
    }
    Ok(u)
}

/// An allowlist entry as host and optional port: `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_entry(entry: &str) -> (&str, Option<u16>) {
    if let Some((h, p)) = entry.rsplit_once(':') {
        let bracketed = h.starts_with('[') && h.ends_with(']');
        if let (Ok(port), true) = (p.parse::<u16>(), !h.contains(':') || bracketed) {
            return (h, Some(port));
        }
    }
    (entry, None)
}

/// Whether the URL's host (and port) is on the allowlist: `host`, `host:port` or `*.domain`
/// (its subdomains, not the domain itself).
fn host_allowed(u: &reqwest::Url, hosts: &[String]) -> bool {
    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = u.port_or_known_default().unwrap_or(0);
    hosts.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        let (h, p) = split_entry(&entry);
        let host_ok = match h.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => h == host,
        };
        host_ok && p.is_none_or(|p| p == port)
    })
}

/// A configured server, its secrets resolved.
#[derive(Clone)]
struct Resolved {
    config: McpServerConfig,
    /// What goes into `--mcp-config` (holds the secrets).
    launch: Value,
}

/// The deployment's MCP servers and its rules for client-named ones.
#[derive(Clone, Default)]
pub struct McpRegistry {
    servers: BTreeMap<String, Resolved>,
    client_urls: bool,
    client_hosts: Vec<String>,
}

impl std::fmt::Debug for McpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRegistry")
            .field("servers", &self.servers.keys().collect::<Vec<_>>())
            .field("client_urls", &self.client_urls)
            .finish()
    }
}

impl McpRegistry {
    /// Resolve the configuration (checked by [`check_config`]) against the environment.
    pub fn new(
        servers: &BTreeMap<String, McpServerConfig>,
        client_urls: bool,
        client_hosts: &[String],
        get: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let servers = servers
            .iter()
            .map(|(name, c)| {
                let launch = launch_entry(c, &get);
                (
                    name.clone(),
                    Resolved {
                        config: c.clone(),
                        launch,
                    },
                )
            })
            .collect();
        McpRegistry {
            servers,
            client_urls,
            client_hosts: client_hosts.to_vec(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.servers.keys().cloned().collect()
    }

    /// Every server a request enables must be configured, or a client URL this deployment
    /// allows. `param` names the field in the API that asked.
    ///
    /// Key policies plug in here: once an API key carries a policy, a name outside it is
    /// refused (403) at this point, for every API alike.
    pub fn check(&self, refs: &[McpRef], param: &str) -> Result<(), InvalidField> {
        for (i, r) in refs.iter().enumerate() {
            let at = format!("{param}[{i}]");
            match r {
                McpRef::Name(n) if self.servers.contains_key(n) => {}
                McpRef::Name(n) => {
                    let known = if self.servers.is_empty() {
                        "none".to_string()
                    } else {
                        self.names().join(", ")
                    };
                    return Err(InvalidField::new(
                        at,
                        format!("Unknown MCP server '{n}' (configured: {known})"),
                    ));
                }
                McpRef::Url { name, url, .. } => {
                    if !self.client_urls {
                        return Err(InvalidField::new(
                            format!("{at}.url"),
                            format!("MCP servers named by URL are not allowed by this gateway ('{name}')"),
                        ));
                    }
                    if self.servers.contains_key(name) || name == RESERVED {
                        return Err(InvalidField::new(
                            format!("{at}.name"),
                            format!("'{name}' is the name of a configured server; name yours differently"),
                        ));
                    }
                    let u =
                        parse_url(url).map_err(|m| InvalidField::new(format!("{at}.url"), m))?;
                    if !host_allowed(&u, &self.client_hosts) {
                        return Err(InvalidField::new(
                            format!("{at}.url"),
                            format!(
                                "the host '{}' of MCP server '{name}' is not on this gateway's allowlist",
                                u.host_str().unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The `--mcp-config` document for a checked set; `None` for an empty one.
    pub fn launch_config(&self, refs: &[McpRef]) -> Option<Value> {
        if refs.is_empty() {
            return None;
        }
        let mut servers = Map::new();
        for r in refs {
            let entry = match r {
                McpRef::Name(n) => match self.servers.get(n) {
                    Some(s) => s.launch.clone(),
                    None => continue,
                },
                McpRef::Url { url, kind, .. } => {
                    json!({"type": kind.unwrap_or(McpKind::Http), "url": url})
                }
            };
            servers.insert(r.name().to_string(), entry);
        }
        Some(json!({ "mcpServers": servers }))
    }

    /// What a client may see of a server: its kind, command or URL, and the *names* of the
    /// variables and headers it is given.
    pub fn public_view(&self, name: &str) -> Option<Value> {
        let c = &self.servers.get(name)?.config;
        let mut v = json!({"name": name, "type": c.kind});
        match c.kind {
            McpKind::Stdio => {
                v["command"] = json!(c.command);
                v["args"] = json!(c.args);
                v["env"] = json!(c.env.keys().collect::<Vec<_>>());
            }
            McpKind::Http | McpKind::Sse => {
                v["url"] = json!(c.url);
                let mut headers: Vec<&String> =
                    c.headers.keys().chain(c.headers_env.keys()).collect();
                headers.sort();
                v["headers"] = json!(headers);
            }
        }
        Some(v)
    }

    /// The public view of a client-named server of `refs` (its name, kind and URL).
    pub fn client_view(refs: &[McpRef], name: &str) -> Option<Value> {
        refs.iter().find_map(|r| match r {
            McpRef::Url { name: n, url, kind } if n == name => Some(json!({
                "name": n, "type": kind.unwrap_or(McpKind::Http), "url": url, "client": true
            })),
            _ => None,
        })
    }
}

/// The `--mcp-config` entry of one configured server, its secrets filled in from `get`.
fn launch_entry(c: &McpServerConfig, get: &impl Fn(&str) -> Option<String>) -> Value {
    let resolve = |m: &BTreeMap<String, String>| -> Map<String, Value> {
        m.iter()
            .map(|(k, var)| (k.clone(), json!(get(var).unwrap_or_default())))
            .collect()
    };
    match c.kind {
        McpKind::Stdio => {
            // `env -u` drops the relay's variables the CLI would pass on; the rest of the
            // CLI's environment is already an allowlist without secrets.
            let mut args: Vec<String> = Vec::new();
            for var in crate::relay::CREDENTIAL_ENV {
                args.push("-u".into());
                args.push((*var).to_string());
            }
            args.push("--".into());
            args.push(c.command.clone().unwrap_or_default());
            args.extend(c.args.iter().cloned());
            json!({"type": "stdio", "command": ENV_PROGRAM, "args": args, "env": resolve(&c.env)})
        }
        McpKind::Http | McpKind::Sse => {
            let mut headers = c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<Map<String, Value>>();
            headers.extend(resolve(&c.headers_env));
            json!({"type": c.kind, "url": c.url, "headers": headers})
        }
    }
}

/// Write a launch config where only the gateway can read it (owner-only, in the CLI's config
/// dir, which the model's tools never reach): on the command line its secrets would be visible
/// to every process on the machine. Named by its content, so equal sets share one file.
pub fn write_config(config_dir: &Path, doc: &Value) -> anyhow::Result<PathBuf> {
    let dir = config_dir.join("mcp");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    let text = doc.to_string();
    let path = dir.join(format!(
        "{}.json",
        hex::encode(Sha256::digest(text.as_bytes()))
    ));
    if path.is_file() {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    set_mode(&tmp, 0o600)?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("placing {}", path.display()))?;
    Ok(path)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio() -> McpServerConfig {
        McpServerConfig {
            kind: McpKind::Stdio,
            command: Some("/bin/srv".into()),
            args: vec!["-v".into()],
            env: [("TOKEN".to_string(), "GW_TOKEN".to_string())].into(),
            url: None,
            headers: BTreeMap::new(),
            headers_env: BTreeMap::new(),
        }
    }

    fn env(k: &str) -> Option<String> {
        (k == "GW_TOKEN" || k == "GW_AUTH").then(|| format!("value-of-{k}"))
    }

    #[test]
    fn config_is_checked_and_names_what_is_wrong() {
        let ok: BTreeMap<_, _> = [("gh".to_string(), stdio())].into();
        check_config(&ok, &[], env).unwrap();
        let err = check_config(&ok, &[], |_| None).unwrap_err().to_string();
        assert!(
            err.contains("GW_TOKEN") && err.contains("mcp_servers.gh"),
            "{err}"
        );
        let mut bad = stdio();
        bad.command = None;
        let err = check_config(&[("gh".to_string(), bad)].into(), &[], env).unwrap_err();
        assert!(err.to_string().contains("needs a command"));
        let http = McpServerConfig {
            kind: McpKind::Http,
            command: None,
            args: vec![],
            env: BTreeMap::new(),
            url: Some("ftp://x".into()),
            headers: BTreeMap::new(),
            headers_env: BTreeMap::new(),
        };
        let err = check_config(&[("docs".to_string(), http)].into(), &[], env).unwrap_err();
        assert!(err.to_string().contains("mcp_servers.docs.url"), "{err}");
        let err = check_config(&[("client".to_string(), stdio())].into(), &[], env).unwrap_err();
        assert!(err.to_string().contains("gateway's own"));
        assert!(check_config(&[("a__b".to_string(), stdio())].into(), &[], env).is_err());
    }

    #[test]
    fn launch_config_resolves_secrets_and_strips_the_relay_variables() {
        let mut http = stdio();
        http.kind = McpKind::Http;
        http.command = None;
        http.args = vec![];
        http.env = BTreeMap::new();
        http.url = Some("https://mcp.example.com/mcp".into());
        http.headers = [("X-Team".to_string(), "platform".to_string())].into();
        http.headers_env = [("Authorization".to_string(), "GW_AUTH".to_string())].into();
        let reg = McpRegistry::new(
            &[("gh".to_string(), stdio()), ("docs".to_string(), http)].into(),
            false,
            &[],
            env,
        );
        let doc = reg
            .launch_config(&[McpRef::Name("docs".into()), McpRef::Name("gh".into())])
            .unwrap();
        let gh = &doc["mcpServers"]["gh"];
        assert_eq!(gh["command"], ENV_PROGRAM);
        assert_eq!(gh["env"]["TOKEN"], "value-of-GW_TOKEN");
        let args: Vec<&str> = gh["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.windows(2).any(|w| w == ["-u", "ANTHROPIC_API_KEY"]));
        assert_eq!(&args[args.len() - 3..], ["--", "/bin/srv", "-v"]);
        let docs = &doc["mcpServers"]["docs"];
        assert_eq!(docs["headers"]["Authorization"], "value-of-GW_AUTH");
        assert_eq!(docs["headers"]["X-Team"], "platform");
        // The public view names, never values.
        let view = reg.public_view("gh").unwrap().to_string();
        assert!(
            view.contains("TOKEN") && !view.contains("value-of"),
            "{view}"
        );
        let view = reg.public_view("docs").unwrap().to_string();
        assert!(
            view.contains("Authorization") && !view.contains("value-of"),
            "{view}"
        );
        assert!(reg.launch_config(&[]).is_none());
    }

    #[test]
    fn refs_parse_sorted_and_unknown_or_unallowed_ones_are_refused() {
        let refs = parse_refs(Some(&json!(["gh", "docs"])), "mcp_servers").unwrap();
        assert_eq!(refs[0].name(), "docs");
        assert_eq!(
            parse_refs(Some(&json!("gh")), "mcp_servers")
                .unwrap_err()
                .param,
            "mcp_servers"
        );
        assert_eq!(
            parse_refs(Some(&json!(["gh", "gh"])), "mcp_servers")
                .unwrap_err()
                .param,
            "mcp_servers[1]"
        );
        assert_eq!(
            parse_refs(Some(&json!([3])), "mcp_servers")
                .unwrap_err()
                .param,
            "mcp_servers[0]"
        );
        let reg = McpRegistry::new(&[("gh".to_string(), stdio())].into(), false, &[], env);
        let err = reg
            .check(&[McpRef::Name("nope".into())], "mcp_servers")
            .unwrap_err();
        assert_eq!(err.param, "mcp_servers[0]");
        assert!(err.message.contains("'nope'"), "{}", err.message);
        let url = parse_refs(
            Some(&json!([{"name": "remote", "url": "https://tools.example.com/mcp"}])),
            "mcp_servers",
        )
        .unwrap();
        let err = reg.check(&url, "mcp_servers").unwrap_err();
        assert_eq!(err.param, "mcp_servers[0].url");
        let allowing = McpRegistry::new(
            &BTreeMap::new(),
            true,
            &["*.example.com".to_string(), "10.0.0.5:8443".to_string()],
            env,
        );
        allowing.check(&url, "mcp_servers").unwrap();
        for bad in [
            "http://169.254.169.254/latest",
            "https://example.com.evil.net/mcp",
            "https://10.0.0.5/mcp",
        ] {
            let r = vec![McpRef::Url {
                name: "r".into(),
                url: bad.into(),
                kind: None,
            }];
            assert!(allowing.check(&r, "mcp_servers").is_err(), "{bad}");
        }
        let r = vec![McpRef::Url {
            name: "r".into(),
            url: "https://10.0.0.5:8443/mcp".into(),
            kind: Some(McpKind::Sse),
        }];
        allowing.check(&r, "mcp_servers").unwrap();
        assert_eq!(split_entry("[::1]:8080"), ("[::1]", Some(8080)));
        assert_eq!(split_entry("[::1]"), ("[::1]", None));
        assert_eq!(split_entry("h.example"), ("h.example", None));
        assert_eq!(
            allowing.launch_config(&r).unwrap()["mcpServers"]["r"],
            json!({"type": "sse", "url": "https://10.0.0.5:8443/mcp"})
        );
    }

    #[test]
    fn the_config_file_is_private_and_named_by_its_content() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let doc = json!({"mcpServers": {}});
        let a = write_config(dir.path(), &doc).unwrap();
        let b = write_config(dir.path(), &doc).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), doc.to_string());
    }
}

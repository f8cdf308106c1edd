//! `ccgw doctor`: find the CLI, print its version, check each upstream provider, send one real
//! turn through the configured upstream, and explain in plain words what is wrong when
//! something is.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::claude::{ClaudeError, Event};
use crate::config::Config;
use crate::domain::conversations::{Conversations, TurnError};
use crate::domain::turn::TurnRequest;
use crate::mock_upstream::MockUpstream;
use crate::server::cli_version;

/// The CLI version this gateway is built and tested against.
pub const PINNED_CLI_VERSION: &str = "2.1.197";

/// Returns whether everything works; prints a report on stdout.
pub async fn run(mut cfg: Config) -> bool {
    let bin = cfg.resolve_claude_bin();
    println!("CLI:       {}", bin.display());
    let version = match cli_version(&bin).await {
        Ok(v) => v,
        Err(e) => {
            println!("FAIL       {e:#}");
            println!("           Install the pinned CLI with scripts/setup.sh --cli, or point CCGW_CLAUDE_BIN at a `claude` executable.");
            return false;
        }
    };
    println!("version:   {version}");
    if version != PINNED_CLI_VERSION {
        println!("WARN       ccgw is tested with {PINNED_CLI_VERSION}; {version} may speak a different protocol.");
    }

    let _mock = if cfg.demo {
        match MockUpstream::start(([127, 0, 0, 1], 0).into()).await {
            Ok(m) => {
                println!("upstream:  built-in mock at {} (--demo)", m.base_url());
                cfg.cli_env
                    .push(("ANTHROPIC_BASE_URL".into(), m.base_url()));
                cfg.cli_env
                    .push(("ANTHROPIC_API_KEY".into(), "sk-ccgw-demo".into()));
                Some(m)
            }
            Err(e) => {
                println!("FAIL       could not start the mock upstream: {e:#}");
                return false;
            }
        }
    } else {
        let base = std::env::var("ANTHROPIC_BASE_URL")
            .unwrap_or_else(|_| "(the CLI's default: Anthropic's API)".into());
        println!("upstream:  {base}");
        let creds: Vec<&str> = [
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
        ]
        .into_iter()
        .filter(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
        .collect();
        if creds.is_empty() {
            println!("WARN       no credentials set (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN or CLAUDE_CODE_OAUTH_TOKEN).");
            println!("           The gateway gives the CLI its own config dir, so a `claude login` of your own does not carry over.");
            println!("           Try `ccgw doctor --demo` to check everything but the upstream.");
        } else {
            println!("credentials: {} (values not shown)", creds.join(", "));
        }
        None
    };

    if !check_store(&cfg).await {
        return false;
    }

    let providers_ok = check_providers(&cfg).await;

    let data = match tempfile_dir(&cfg) {
        Ok(d) => d,
        Err(e) => {
            println!("FAIL       data dir {}: {e}", cfg.data_dir.display());
            return false;
        }
    };
    cfg.data_dir = data.clone();
    cfg.make_paths_absolute();
    cfg.warm_pool_size = 0;
    if let Err(e) = crate::server::confine(&mut cfg).await {
        println!("FAIL       {e:#}");
        return false;
    }
    println!("bash:      {}", cfg.bash_sandbox_status);
    let store = match crate::store::SqliteStore::open_in_memory().await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            println!("FAIL       could not open a store: {e}");
            return false;
        }
    };
    let conv = Arc::new(Conversations::new(Arc::new(cfg), bin, version, store));
    let started = Instant::now();
    let req = TurnRequest {
        model_id: "default".into(),
        prompt: vec![json!({"type": "text", "text": "Reply with the single word: pong"})],
        ..Default::default()
    };
    let outcome = match conv.start_turn(req).await {
        Ok(mut handle) => {
            let mut text = String::new();
            let mut result = Err(ClaudeError::protocol("no result"));
            while let Some(ev) = handle.events.recv().await {
                match ev {
                    Event::TextDelta { text: t } => text.push_str(&t),
                    Event::Retry {
                        attempt,
                        error,
                        error_status,
                        ..
                    } => {
                        println!(
                            "retry      attempt {attempt}: {error} ({})",
                            error_status
                                .map(|s| s.to_string())
                                .unwrap_or_else(|| "no status".into())
                        );
                    }
                    Event::Done(s) => {
                        result = Ok((text.clone(), s));
                        break;
                    }
                    Event::Error(e) => {
                        result = Err(e);
                        break;
                    }
                    _ => {}
                }
            }
            result
        }
        Err(TurnError::Claude(e)) => Err(e),
        Err(other) => Err(ClaudeError::protocol(other.to_string())),
    };
    conv.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
    match outcome {
        Ok((text, s)) => {
            println!(
                "turn:      OK in {} ms, {} in / {} out tokens",
                started.elapsed().as_millis(),
                s.usage.prompt_tokens(),
                s.usage.output_tokens
            );
            println!("reply:     {}", text.trim());
            providers_ok
        }
        Err(e) => {
            println!("FAIL       {e}");
            println!("           {}", explain(&e));
            false
        }
    }
}

/// Print each provider's check (credential variables set, base URL answering); whether all
/// passed.
async fn check_providers(cfg: &Config) -> bool {
    let checks =
        crate::domain::providers::check_all(&cfg.providers, crate::domain::providers::process_env)
            .await;
    for c in &checks {
        println!(
            "provider:  {} at {} (models: {})",
            c.name,
            c.base_url,
            c.models.join(", ")
        );
        for line in provider_problems(c) {
            println!("{line}");
        }
    }
    checks.iter().all(|c| c.ok())
}

/// What is wrong with one provider, as report lines (none when it is fine).
fn provider_problems(c: &crate::domain::providers::ProviderCheck) -> Vec<String> {
    let mut lines = Vec::new();
    let missing: Vec<&str> = c
        .credentials
        .iter()
        .filter(|(_, set)| !**set)
        .map(|(v, _)| v.as_str())
        .collect();
    if !missing.is_empty() {
        lines.push(format!(
            "FAIL       {}: not set in the gateway's environment: {}",
            c.name,
            missing.join(", ")
        ));
    } else if c.credentials.is_empty() {
        lines.push(format!(
            "WARN       {}: no credential configured (api_key_env or auth_token_env)",
            c.name
        ));
    }
    match (&c.status, &c.error) {
        (Some(s), _) => lines.push(format!(
            "OK         {}: reachable (HTTP {s} in {} ms)",
            c.name, c.probe_ms
        )),
        (None, e) => lines.push(format!(
            "FAIL       {}: {} is unreachable: {}",
            c.name,
            c.base_url,
            e.as_deref().unwrap_or("no answer")
        )),
    }
    lines
}

fn tempfile_dir(cfg: &Config) -> std::io::Result<std::path::PathBuf> {
    let d = cfg
        .data_dir
        .join(format!("doctor-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// What to do about an error, in plain words.
pub fn explain(e: &ClaudeError) -> &'static str {
    match e {
        ClaudeError::Upstream {
            status: Some(401), ..
        } => {
            "The upstream rejected the credentials: check ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN."
        }
        ClaudeError::Upstream {
            status: Some(403), ..
        } => "The credentials are valid but not allowed to use this model or API.",
        ClaudeError::Upstream {
            status: Some(404), ..
        } => "The upstream does not know the model: check the model table and ANTHROPIC_MODEL.",
        ClaudeError::Upstream {
            status: Some(429), ..
        } => "The upstream is rate limiting these credentials; wait and retry.",
        ClaudeError::Upstream {
            status: Some(529) | Some(503),
            ..
        } => "The upstream is overloaded; retry later.",
        ClaudeError::Upstream { status: None, .. } => {
            "The CLI could not reach the upstream: check ANTHROPIC_BASE_URL and the network."
        }
        ClaudeError::Upstream { .. } => {
            "The upstream answered with an error; see the message above."
        }
        ClaudeError::Spawn { .. } => {
            "The CLI could not be started: run scripts/setup.sh --cli or set CCGW_CLAUDE_BIN."
        }
        ClaudeError::Timeout { .. } => {
            "The CLI produced no answer in time: check the upstream's reachability."
        }
        ClaudeError::AtCapacity { .. } => "No process slot was free.",
        ClaudeError::ClientLagged { .. } => "The answer was not read in time.",
        ClaudeError::PromptTooLong { .. } => "The prompt does not fit the model's context window.",
        ClaudeError::Cli { .. }
        | ClaudeError::NoStructuredOutput
        | ClaudeError::Exited { .. }
        | ClaudeError::Protocol { .. } => {
            "The CLI failed; run with CCGW_LOG=debug to see its stderr."
        }
    }
}

/// The store `database_url` names: a Postgres server must take a connection and the
/// migrations now; a SQLite file is made by the gateway when it starts, so it is only named.
async fn check_store(cfg: &Config) -> bool {
    let url = match cfg.database() {
        Ok(u) => u,
        Err(e) => {
            println!("FAIL       {e}");
            return false;
        }
    };
    println!("store:     {}", url.shown());
    if let crate::store::DatabaseUrl::Postgres(u) = &url {
        match crate::store::PgStore::open(u).await {
            Ok(store) => store.close().await,
            Err(e) => {
                println!("FAIL       {e}");
                println!(
                    "           Check database_url (CCGW_DATABASE_URL) and that the server is up."
                );
                return false;
            }
        }
    }
    true
}

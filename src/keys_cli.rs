//! `ccgw keys create|list|revoke|rotate`: API keys managed from the command line, on the
//! store of the configured data dir. It may run beside a gateway on the same data dir (the
//! gateway picks the change up within `tenants::REFRESH_EVERY`). Must not: print a secret
//! except the one just made.

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::domain::audit::{key_event, kind, AuditLog};
use crate::domain::tenants::{IssuedKey, KeyInfo, KeyLimits, KeyPolicy, KeyRing, NewKey, Role};
use crate::store::now_millis;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key and print its secret (shown once).
    Create(Box<CreateArgs>),
    /// List the keys (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: its next request is refused.
    Revoke { id: String },
    /// Give a key a new secret (printed once); the old one stops working.
    Rotate { id: String },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "user", value_parser = ["admin", "user"])]
    role: String,
    /// Models it may use, comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Built-in tools it may enable, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tools: Option<Vec<String>>,
    /// The most permissive permission mode it may ask for.
    #[arg(long)]
    permission_mode: Option<String>,
    /// Agents it may run, comma-separated.
    #[arg(long, value_delimiter = ',')]
    agents: Option<Vec<String>>,
    /// Workspace roots its sessions may use, comma-separated.
    #[arg(long, value_delimiter = ',')]
    workspace_roots: Option<Vec<String>>,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u32>,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u64>,
    /// Turns running at once.
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Budget in USD per --budget-period.
    #[arg(long)]
    budget_usd: Option<f64>,
    #[arg(long, value_parser = ["day", "month"])]
    budget_period: Option<String>,
    /// When it stops working: an RFC 3339 time, a date (YYYY-MM-DD, UTC), or a duration from
    /// now (30d, 12h, 90m).
    #[arg(long)]
    expires: Option<String>,
}

pub async fn run(cfg: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
    let store = crate::server::open_store(&cfg).await?;
    let ring = KeyRing::load(store.clone(), &[]).await?;
    // Changes made here are audited like the admin API's, by `cli`.
    let audit = AuditLog::start(store);
    match cmd {
        KeysCommand::Create(a) => {
            let a = *a;
            let expires_at = a.expires.as_deref().map(parse_expiry).transpose()?;
            let new = NewKey {
                name: a.name,
                role: Role::parse(&a.role),
                policy: KeyPolicy {
                    models: a.models,
                    tools: a.tools,
                    permission_mode: a.permission_mode,
                    agents: a.agents,
                    workspace_roots: a.workspace_roots,
                },
                limits: KeyLimits {
                    rpm: a.rpm,
                    tpm: a.tpm,
                    max_concurrency: a.max_concurrency,
                    budget_usd: a.budget_usd,
                    budget_period: a.budget_period,
                },
                expires_at,
            };
            let issued = ring.create(new).await?;
            key_event(&audit, kind::KEY_CREATED, None, &issued.key);
            print_issued(&issued);
        }
        KeysCommand::List { json } => {
            let keys = ring.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_table(&keys);
            }
        }
        KeysCommand::Revoke { id } => {
            let k = ring.revoke(&id).await?;
            key_event(&audit, kind::KEY_REVOKED, None, &k);
            println!("revoked {} ({})", k.id, k.name);
        }
        KeysCommand::Rotate { id } => {
            let issued = ring.rotate(&id).await?;
            key_event(&audit, kind::KEY_ROTATED, None, &issued.key);
            print_issued(&issued);
        }
    }
    // The process ends next: the entries are written first.
    audit.flush().await;
    Ok(())
}

fn print_issued(k: &IssuedKey) {
    println!("{}", k.secret);
    eprintln!(
        "key {} ({}, {}): the secret above is shown only now; keep it safe",
        k.key.id,
        k.key.name,
        k.key.role.as_str()
    );
}

fn print_table(keys: &[KeyInfo]) {
    println!(
        "{:<22} {:<24} {:<6} {:<14} STATUS",
        "ID", "NAME", "ROLE", "PREFIX"
    );
    for k in keys {
        println!(
            "{:<22} {:<24} {:<6} {:<14} {}",
            k.id,
            k.name,
            k.role.as_str(),
            k.prefix,
            k.status
        );
    }
}

/// An expiry as unix milliseconds: RFC 3339, a UTC date, or a duration from now.
fn parse_expiry(s: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Some((n, unit)) = s
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .map(|i| s.split_at(i))
    {
        let n: i64 = n.parse()?;
        let per = match unit {
            "d" => Some(86_400_000),
            "h" => Some(3_600_000),
            "m" => Some(60_000),
            _ => None,
        };
        if let Some(per) = per {
            return Ok(now_millis() + n * per);
        }
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .with_context(|| {
            format!("--expires: '{s}' is not an RFC 3339 time, a date or a duration")
        })?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_parse_in_each_form() {
        let now = now_millis();
        let d = parse_expiry("30d").unwrap();
        assert!((d - now - 30 * 86_400_000).abs() < 5_000);
        assert_eq!(parse_expiry("2027-01-02").unwrap(), 1_798_848_000_000);
        assert_eq!(
            parse_expiry("2027-01-02T00:00:01Z").unwrap(),
            1_798_848_001_000
        );
        assert!(parse_expiry("next tuesday").is_err());
    }
}

//! Reloading the configuration without a restart: on `SIGHUP`, and when the config file
//! changes (its content is compared every [`POLL_EVERY`], which also catches a Kubernetes
//! ConfigMap's symlink swap).
//!
//! Owns what a reload applies ([`RELOADABLE`]) and what it reports: every setting that changed,
//! and of those the ones that need a restart, which keep their running values. Stored keys'
//! policies and limits need no reload: they live in the store and take effect at once.
//!
//! Must not: touch connections or running turns (a reload changes what the next request sees;
//! a connection, a stream or a turn under way goes on as it was), or log a secret.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::http::AppState;

/// How often the config file is compared.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// The settings a reload applies to the running gateway.
pub const RELOADABLE: &[&str] = &[
    "api_keys",
    "models",
    "providers",
    "cors_origins",
    "warm_pool_size",
    "warm_pool_max",
    "warm_models",
    "max_live_processes",
];

/// Where the configuration comes from: the file (if any), the environment, then what the
/// command line overrides, applied again on every reload.
pub struct Source {
    pub file: Option<PathBuf>,
    pub overrides: Box<dyn Fn(&mut Config) + Send + Sync>,
}

/// What one reload did.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    /// Changed and applied.
    pub applied: Vec<&'static str>,
    /// Changed, but in force only after a restart.
    pub needs_restart: Vec<&'static str>,
}

pub struct Reloader {
    source: Source,
    app: AppState,
    /// The configuration as last loaded (before start-up adjusted it).
    loaded: Mutex<Config>,
    /// The config file's digest when last read.
    file_digest: Mutex<Option<[u8; 32]>>,
    /// One reload at a time: SIGHUP and the file watcher never interleave.
    running: Mutex<()>,
}

impl Reloader {
    pub fn new(source: Source, app: AppState, loaded: Config) -> Arc<Reloader> {
        let digest = source.file.as_ref().and_then(|f| file_digest(f));
        Arc::new(Reloader {
            source,
            app,
            loaded: Mutex::new(loaded),
            file_digest: Mutex::new(digest),
            running: Mutex::new(()),
        })
    }

    /// Load the configuration again and apply what changed. A configuration that does not load
    /// or validate changes nothing.
    pub fn reload(&self) -> anyhow::Result<Report> {
        // What this reload reads is what the file watcher compares with next.
        if let Some(d) = self.source.file.as_ref().and_then(|f| file_digest(f)) {
            *self.file_digest.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
        }
        let mut new = Config::load(self.source.file.as_deref())?;
        (self.source.overrides)(&mut new);
        new.validate()?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let changed = diff(&loaded, &new);
        let report = Report {
            applied: changed
                .iter()
                .copied()
                .filter(|n| RELOADABLE.contains(n))
                .collect(),
            needs_restart: changed
                .iter()
                .copied()
                .filter(|n| !RELOADABLE.contains(n))
                .collect(),
        };
        apply(&self.app, &new, &report.applied);
        // What needs a restart keeps its running value, and shows as changed on every reload
        // until then.
        for name in &report.applied {
            copy_setting(&mut loaded, &new, name);
        }
        Ok(report)
    }

    /// Reload on `SIGHUP` and when the file changes, logging each outcome.
    pub fn spawn(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            let this = self.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let mut hup = match signal(SignalKind::hangup()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by editing the config file");
                        return;
                    }
                };
                while hup.recv().await.is_some() {
                    let _one = this.running.lock().unwrap_or_else(|e| e.into_inner());
                    this.log(this.reload(), "SIGHUP");
                }
            });
        }
        if self.source.file.is_some() {
            let this = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(POLL_EVERY).await;
                    let Some(this) = this.upgrade() else { return };
                    let Some(file) = this.source.file.as_ref() else {
                        return;
                    };
                    let _one = this.running.lock().unwrap_or_else(|e| e.into_inner());
                    let now = file_digest(file);
                    let last = *this.file_digest.lock().unwrap_or_else(|e| e.into_inner());
                    // A file that cannot be read right now (mid-replacement) is not a change.
                    if now.is_some() && now != last {
                        this.log(this.reload(), "the config file changed");
                    }
                }
            });
        }
    }

    fn log(&self, outcome: anyhow::Result<Report>, why: &str) {
        match outcome {
            Ok(r) => {
                tracing::info!(
                    trigger = why,
                    applied = %r.applied.join(", "),
                    needs_restart = %r.needs_restart.join(", "),
                    "configuration reloaded"
                );
                if !r.needs_restart.is_empty() {
                    tracing::warn!(
                        settings = %r.needs_restart.join(", "),
                        "these changed settings take effect only after a restart"
                    );
                }
            }
            Err(e) => tracing::error!(
                trigger = why,
                error = %format!("{e:#}"),
                "configuration not reloaded: the running one stays"
            ),
        }
    }
}

/// The settings whose values differ, by name.
pub fn diff(old: &Config, new: &Config) -> Vec<&'static str> {
    old.settings()
        .into_iter()
        .zip(new.settings())
        .filter(|((_, a), (_, b))| a != b)
        .map(|((name, _), _)| name)
        .collect()
}

/// Put the reloadable settings that changed into force.
fn apply(app: &AppState, new: &Config, changed: &[&str]) {
    let has = |n: &str| changed.contains(&n);
    if has("api_keys") {
        app.keys.set_statics(&new.api_keys);
    }
    if has("models") || has("providers") {
        app.models.replace(&new.models, &new.providers);
    }
    if has("providers") {
        // New processes get the new upstreams and credentials; running ones keep theirs.
        if let Some(relay) = &app.cfg.relay {
            relay.set_providers(crate::domain::providers::credentials_table(
                &new.providers,
                crate::domain::providers::process_env,
            ));
        }
    }
    if has("cors_origins") {
        app.cors.set(&new.cors_origins);
    }
    let pool = &app.conversations.pool;
    if has("max_live_processes") {
        pool.set_max_live(new.max_live_processes);
    }
    if has("warm_pool_size")
        || has("warm_pool_max")
        || has("warm_models")
        || has("models")
        || has("providers")
    {
        let keys = crate::domain::conversations::warm_keys(&app.models.current(), &new.warm_models);
        pool.set_warm((new.warm_pool_size, new.warm_pool_max), keys);
    }
}

fn copy_setting(into: &mut Config, from: &Config, name: &str) {
    match name {
        "api_keys" => into.api_keys = from.api_keys.clone(),
        "models" => into.models = from.models.clone(),
        "providers" => into.providers = from.providers.clone(),
        "cors_origins" => into.cors_origins = from.cors_origins.clone(),
        "warm_pool_size" => into.warm_pool_size = from.warm_pool_size,
        "warm_pool_max" => into.warm_pool_max = from.warm_pool_max,
        "warm_models" => into.warm_models = from.warm_models.clone(),
        "max_live_processes" => into.max_live_processes = from.max_live_processes,
        _ => {}
    }
}

fn file_digest(path: &std::path::Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(&b).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_names_what_changed_and_never_shows_a_secret() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(diff(&old, &new).is_empty());
        new.api_keys = vec!["a-secret-key-1".into()];
        new.port = 9999;
        new.models.insert("fast".into(), "haiku".into());
        assert_eq!(diff(&old, &new), vec!["port", "api_keys", "models"]);
        // Same count, other keys: still a change.
        let mut other = new.clone();
        other.api_keys = vec!["a-secret-key-2".into()];
        assert_eq!(diff(&new, &other), vec!["api_keys"]);
        let shown = format!("{other:?}");
        assert!(!shown.contains("a-secret-key"), "{shown}");
    }

    #[test]
    fn every_reloadable_setting_is_a_setting_and_is_copied() {
        let names: Vec<&str> = Config::default()
            .settings()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut changed = Config {
            api_keys: vec!["another-key-123".into()],
            cors_origins: vec!["*".into()],
            warm_pool_size: 7,
            warm_models: vec!["haiku".into()],
            max_live_processes: 3,
            ..Config::default()
        };
        changed.models.insert("x".into(), "y".into());
        changed.providers.insert(
            "p".into(),
            crate::domain::providers::ProviderConfig {
                base_url: "http://p".into(),
                ..Default::default()
            },
        );
        let mut into = Config::default();
        for n in RELOADABLE {
            assert!(names.contains(n), "{n} is not a setting");
            copy_setting(&mut into, &changed, n);
        }
        assert!(diff(&into, &changed).is_empty());
    }
}

//! The public model table: ids clients may ask for → what the CLI runs them as (a provider and
//! its `--model` value).
//!
//! Pure data and lookups; configured in `[models]` of the config file or `CCGW_MODELS` (the
//! gateway's own upstream) and in each `[providers.NAME].models`. [`Models`] holds the table
//! in force, with the providers it was built from, which a reload replaces whole.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

pub use crate::claude::args::CliModel;
use crate::domain::providers::ProviderConfig;

/// Providers by name.
pub type Providers = BTreeMap<String, ProviderConfig>;

/// One model a client may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub id: String,
    /// Its provider (`None`: the gateway's own upstream) and `--model` (`None`: the CLI's
    /// own default).
    pub cli_model: CliModel,
}

impl ModelEntry {
    /// Who serves it, as model listings name it: the provider, or `anthropic`.
    pub fn owned_by(&self) -> &str {
        self.cli_model.provider.as_deref().unwrap_or("anthropic")
    }
}

/// The built-in table: full Claude ids, the CLI's aliases, and `default`.
pub fn default_table() -> BTreeMap<String, String> {
    [
        ("default", ""),
        ("claude-code", ""),
        ("opus", "opus"),
        ("sonnet", "sonnet"),
        ("haiku", "haiku"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-sonnet-5", "claude-sonnet-5"),
        ("claude-haiku-4-5", "claude-haiku-4-5-20251001"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

#[derive(Debug, Clone)]
pub struct ModelTable {
    entries: BTreeMap<String, ModelEntry>,
    /// The providers the table was built from (what `/health` checks).
    providers: Arc<Providers>,
    /// Each adapter's rendering of the whole list, by adapter name (see [`Self::rendered`]).
    rendered: Arc<Mutex<Vec<(&'static str, Bytes)>>>,
}

impl ModelTable {
    pub fn new(table: &BTreeMap<String, String>) -> Self {
        Self::with_providers(table, &Providers::new())
    }

    /// `table` (the gateway's own upstream) and every provider's models. The config's checks
    /// make the ids distinct.
    pub fn with_providers(table: &BTreeMap<String, String>, providers: &Providers) -> Self {
        let own = table.iter().map(|(id, cli)| (id, None, cli));
        let theirs = providers
            .iter()
            .flat_map(|(name, p)| p.models.iter().map(move |(id, cli)| (id, Some(name), cli)));
        let entries = own
            .chain(theirs)
            .map(|(id, provider, cli)| {
                let cli = cli.trim();
                let cli_model = CliModel {
                    provider: provider.cloned(),
                    model: (!cli.is_empty()).then(|| cli.to_string()),
                };
                let entry = ModelEntry {
                    id: id.clone(),
                    cli_model,
                };
                (id.clone(), entry)
            })
            .collect();
        ModelTable {
            entries,
            providers: Arc::new(providers.clone()),
            rendered: Arc::default(),
        }
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The provider serving `id`, when one does.
    pub fn provider_of(&self, id: &str) -> Option<&ProviderConfig> {
        let name = self.resolve(id)?.cli_model.provider.as_deref()?;
        self.providers.get(name)
    }

    /// The list as the adapter `key` renders it, rendered on first use and kept: a table never
    /// changes (a reload makes a new one), so `render` must depend on nothing else that does. Serializing the list was the largest cost of `GET /v1/models` (bench/RESULTS.md).
    pub fn rendered(&self, key: &'static str, render: impl FnOnce(&ModelTable) -> Bytes) -> Bytes {
        let cached = |v: &Vec<(&'static str, Bytes)>| {
            v.iter().find(|(k, _)| *k == key).map(|(_, b)| b.clone())
        };
        let lock = || self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cached(&lock()) {
            return b;
        }
        let fresh = render(self);
        let mut v = lock();
        if let Some(b) = cached(&v) {
            return b;
        }
        v.push((key, fresh.clone()));
        fresh
    }

    pub fn resolve(&self, id: &str) -> Option<&ModelEntry> {
        self.entries.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries.values()
    }
}

/// The model table in force. Readers take the current table ([`Models::current`]) and use it
/// for the whole request; a reload swaps in a new one for the requests after it.
pub struct Models(RwLock<Arc<ModelTable>>);

impl Models {
    pub fn new(table: &BTreeMap<String, String>, providers: &Providers) -> Models {
        Models(RwLock::new(Arc::new(ModelTable::with_providers(
            table, providers,
        ))))
    }

    pub fn current(&self) -> Arc<ModelTable> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The entry for `id` in the current table.
    pub fn resolve(&self, id: &str) -> Option<ModelEntry> {
        self.current().resolve(id).cloned()
    }

    /// Replace the table (its rendered lists go with it).
    pub fn replace(&self, table: &BTreeMap<String, String>, providers: &Providers) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(ModelTable::with_providers(table, providers));
    }
}

/// The model id the upstream API knows for a CLI `--model` value: the CLI's aliases resolved
/// the way CLI 2.1.197 resolves them (docs/cli-notes.md §5), anything else unchanged. Used
/// where the gateway calls the upstream itself (token counts).
pub fn upstream_model_id(cli_model: Option<&str>) -> String {
    let m = cli_model.unwrap_or("default");
    let m = m.strip_suffix("[1m]").unwrap_or(m);
    match m {
        "default" | "opus" => "claude-opus-4-8",
        "sonnet" | "opusplan" => "claude-sonnet-5",
        "haiku" => "claude-haiku-4-5-20251001",
        other => other,
    }
    .to_string()
}

/// Parse `id=cli_model,id2=cli_model2` (the `CCGW_MODELS` form). An empty right side means the
/// CLI's default model.
pub fn parse_pairs(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((id, cli)) if !id.trim().is_empty() => {
                Ok((id.trim().to_string(), cli.trim().to_string()))
            }
            _ => Err(format!("expected id=cli_model, got {p:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_aliases_full_ids_and_default() {
        let t = ModelTable::new(&default_table());
        assert_eq!(t.resolve("default").unwrap().cli_model, CliModel::default());
        assert_eq!(
            t.resolve("sonnet").unwrap().cli_model.model.as_deref(),
            Some("sonnet")
        );
        assert_eq!(
            t.resolve("claude-haiku-4-5")
                .unwrap()
                .cli_model
                .model
                .as_deref(),
            Some("claude-haiku-4-5-20251001")
        );
        assert!(t.resolve("gpt-4o").is_none());
        assert_eq!(t.resolve("sonnet").unwrap().owned_by(), "anthropic");
    }

    #[test]
    fn a_provider_model_resolves_to_its_pair() {
        let p = ProviderConfig {
            base_url: "http://kimi".into(),
            models: [("kimi".to_string(), " kimi-k2 ".to_string())].into(),
            ..Default::default()
        };
        let t = ModelTable::with_providers(&default_table(), &[("moonshot".to_string(), p)].into());
        let e = t.resolve("kimi").unwrap();
        assert_eq!(
            e.cli_model,
            CliModel {
                provider: Some("moonshot".into()),
                model: Some("kimi-k2".into())
            }
        );
        assert_eq!(e.owned_by(), "moonshot");
        assert_eq!(t.resolve("sonnet").unwrap().cli_model.provider, None);
        assert_eq!(t.providers().len(), 1);
    }

    #[test]
    fn renders_once_per_key() {
        let t = ModelTable::new(&default_table());
        let calls = std::cell::Cell::new(0);
        let render = |_: &ModelTable| {
            calls.set(calls.get() + 1);
            Bytes::from_static(b"list")
        };
        assert_eq!(t.rendered("a", render), "list");
        assert_eq!(
            t.clone().rendered("a", render),
            "list",
            "clones share the cache"
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(t.rendered("b", |_| Bytes::from_static(b"other")), "other");
    }

    #[test]
    fn cli_aliases_become_upstream_ids() {
        assert_eq!(upstream_model_id(None), "claude-opus-4-8");
        assert_eq!(upstream_model_id(Some("sonnet")), "claude-sonnet-5");
        assert_eq!(upstream_model_id(Some("sonnet[1m]")), "claude-sonnet-5");
        assert_eq!(
            upstream_model_id(Some("haiku")),
            "claude-haiku-4-5-20251001"
        );
        assert_eq!(upstream_model_id(Some("my-model")), "my-model");
    }

    #[test]
    fn parses_pairs() {
        let m = parse_pairs("fast=haiku, mine = my-model ,dflt=").unwrap();
        assert_eq!(m["fast"], "haiku");
        assert_eq!(m["mine"], "my-model");
        assert_eq!(m["dflt"], "");
        assert!(parse_pairs("nope").is_err());
        assert!(parse_pairs("=x").is_err());
    }
}

//! Tenants: who a request is, and the API keys that say so.
//!
//! Owns the [`KeyRing`]: the deployment's keys held in memory, so checking a key costs a hash and
//! a map lookup, never a database round trip. Static keys from the config are admin keys (a
//! deployment bootstraps with them); stored keys (`ccgw keys`, `/admin/api/keys`) carry a role,
//! a policy and limits. A change through the ring (create, revoke, rotate) takes effect at
//! once; a change another process makes in the store (`ccgw keys` beside a running gateway) is
//! picked up within [`REFRESH_EVERY`].
//!
//! Must not: know HTTP (the auth middleware reads the headers and asks here), enforce limits or
//! policy (they read [`Caller::policy`] and [`Caller::limits`]), or keep a secret: only its
//! SHA-256 is stored, and the secret is shown once, when it is made.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{now_millis, ApiKeyRecord, Store, StoreError};

/// How often a running gateway looks for key changes made by another process.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What every secret starts with, so a leaked one is recognizable (and scanners can find it).
pub const SECRET_PREFIX: &str = "ccgw_";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and manages everything. Static keys, and everyone when the gateway has no keys.
    #[default]
    Admin,
    /// Sees and touches only what it made.
    User,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// What a key may use. `None` is "whatever the deployment allows".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct KeyPolicy {
    /// Public model ids (or aliases) it may ask for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Built-in tools it may enable, intersected with the deployment's `builtin_tools`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// The most permissive permission mode it may ask for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    /// Agents it may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
    /// Workspace roots its sessions may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_roots: Option<Vec<String>>,
}

/// A key's limits. `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct KeyLimits {
    /// Requests per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens per minute (input plus output, as the CLI reports them after each turn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Turns running at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Spending limit in USD per `budget_period`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// `day` or `month` (UTC); `month` when a budget has no period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_period: Option<String>,
}

/// A stored key as the domain uses it (no secret, no hash).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The secret's first characters.
    pub prefix: String,
    pub policy: KeyPolicy,
    pub limits: KeyLimits,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
}

impl KeyInfo {
    fn of(r: &ApiKeyRecord) -> KeyInfo {
        let mut k = KeyInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            role: Role::parse(&r.role).unwrap_or(Role::User),
            prefix: r.prefix.clone(),
            // A value the domain cannot read limits nothing less: an unreadable policy would be
            // a bug of ours, and the key then keeps the deployment's own policy.
            policy: serde_json::from_value(r.policy.clone()).unwrap_or_default(),
            limits: serde_json::from_value(r.limits.clone()).unwrap_or_default(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            status: "active",
        };
        k.status = k.status_at(now_millis());
        k
    }

    fn status_at(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// Who made a request. It travels with the request into the domain's records: what a user key
/// stores only that key reads back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caller {
    /// What the caller's records name as their owner: a stored key's id, a static key's
    /// fingerprint, `""` when the gateway has no keys.
    pub owner: String,
    pub role: Role,
    /// The stored key, with its policy and limits; `None` for static keys and without keys.
    pub key: Option<Arc<KeyInfo>>,
}

static NO_POLICY: KeyPolicy = KeyPolicy {
    models: None,
    tools: None,
    permission_mode: None,
    agents: None,
    workspace_roots: None,
};

static NO_LIMITS: KeyLimits = KeyLimits {
    rpm: None,
    tpm: None,
    max_concurrency: None,
    budget_usd: None,
    budget_period: None,
};

impl Caller {
    /// A static (config) key: an admin, owning its records by a fingerprint of the key.
    pub fn of_static_key(secret: &str) -> Caller {
        Caller {
            owner: hex::encode(&Sha256::digest(secret.as_bytes())[..12]),
            role: Role::Admin,
            key: None,
        }
    }

    fn of_stored(key: Arc<KeyInfo>) -> Caller {
        Caller {
            owner: key.id.clone(),
            role: key.role,
            key: Some(key),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may see a record `owner` owns.
    pub fn may_see(&self, owner: &str) -> bool {
        self.is_admin() || self.owner == owner
    }

    /// A short name to show for the caller: a stored key's name, `key-` and 8 hex digits for a
    /// static key, `None` without keys.
    pub fn label(&self) -> Option<String> {
        match &self.key {
            Some(k) => Some(k.name.clone()),
            None => self.owner.get(..8).map(|h| format!("key-{h}")),
        }
    }

    pub fn policy(&self) -> &KeyPolicy {
        self.key.as_ref().map_or(&NO_POLICY, |k| &k.policy)
    }

    pub fn limits(&self) -> &KeyLimits {
        self.key.as_ref().map_or(&NO_LIMITS, |k| &k.limits)
    }
}

/// Why a presented secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    Unknown,
    Revoked,
    Expired,
}

/// The tenants layer's one error type.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("No API key with the id '{0}'")]
    NotFound(String),
    /// A field of a new key is wrong: (field, why).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a new key is.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct NewKey {
    pub name: String,
    pub role: Option<Role>,
    #[serde(flatten)]
    pub policy: KeyPolicy,
    #[serde(flatten)]
    pub limits: KeyLimits,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
}

/// A key just made or rotated, with its secret: the only time the secret is seen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: KeyInfo,
    pub secret: String,
}

pub struct KeyRing {
    store: Arc<dyn Store>,
    /// Static keys by the SHA-256 of their secret (replaced by a reload of the config).
    statics: RwLock<HashMap<[u8; 32], Caller>>,
    /// Stored keys by the hex SHA-256 of their secret.
    stored: RwLock<HashMap<String, Arc<KeyInfo>>>,
    /// The store's key version last loaded (see [`Store::api_keys_version`]).
    version: RwLock<(i64, i64)>,
}

impl KeyRing {
    /// The ring of a deployment: its static keys and what the store holds.
    pub async fn load(store: Arc<dyn Store>, static_keys: &[String]) -> Result<KeyRing, KeyError> {
        let ring = KeyRing {
            store,
            statics: RwLock::new(statics_of(static_keys)),
            stored: RwLock::default(),
            version: RwLock::new((-1, -1)),
        };
        ring.refresh().await?;
        Ok(ring)
    }

    /// Whether requests need a key: the config has one, or the store has ever held one (a
    /// revoked key does not turn authentication back off).
    pub fn enabled(&self) -> bool {
        !read(&self.statics).is_empty() || !read(&self.stored).is_empty()
    }

    /// The static keys of a reloaded config: the next request sees them.
    pub fn set_statics(&self, static_keys: &[String]) {
        *write(&self.statics) = statics_of(static_keys);
    }

    /// Who a presented secret is.
    pub fn authenticate(&self, secret: &str) -> Result<Caller, Refusal> {
        let d = digest(secret);
        if let Some(c) = read(&self.statics).get(&d) {
            return Ok(c.clone());
        }
        let Some(key) = read(&self.stored).get(&hex::encode(d)).cloned() else {
            return Err(Refusal::Unknown);
        };
        match key.status_at(now_millis()) {
            "revoked" => Err(Refusal::Revoked),
            "expired" => Err(Refusal::Expired),
            _ => Ok(Caller::of_stored(key)),
        }
    }

    /// Reload the stored keys if the store's version moved.
    pub async fn refresh(&self) -> Result<(), KeyError> {
        let v = self.store.api_keys_version().await?;
        if v == *read(&self.version) {
            return Ok(());
        }
        let all = self.store.list_api_keys().await?;
        let map = all
            .iter()
            .map(|r| (r.secret_hash.clone(), Arc::new(KeyInfo::of(r))))
            .collect();
        *write(&self.stored) = map;
        *write(&self.version) = v;
        Ok(())
    }

    /// Keep the ring in step with the store while the gateway runs.
    pub fn spawn_refresh(self: &Arc<Self>) {
        let ring = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(ring) = ring.upgrade() else { return };
                if let Err(e) = ring.refresh().await {
                    tracing::warn!(error = %e, "reloading the API keys failed");
                }
            }
        });
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        Ok(self
            .store
            .list_api_keys()
            .await?
            .iter()
            .map(KeyInfo::of)
            .collect())
    }

    pub async fn get(&self, id: &str) -> Result<KeyInfo, KeyError> {
        Ok(KeyInfo::of(&self.record(id).await?))
    }

    pub async fn create(&self, new: NewKey) -> Result<IssuedKey, KeyError> {
        let name = new.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(KeyError::Invalid(
                "name",
                "must be 1 to 100 characters".into(),
            ));
        }
        check_limits(&new.limits)?;
        let now = now_millis();
        let secret = new_secret();
        let record = ApiKeyRecord {
            id: format!("key_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            name: name.to_string(),
            role: new.role.unwrap_or(Role::User).as_str().into(),
            prefix: secret[..SECRET_PREFIX.len() + 6].to_string(),
            secret_hash: hex::encode(digest(&secret)),
            policy: to_value(&new.policy),
            limits: to_value(&new.limits),
            created_at: now,
            updated_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        self.store.put_api_key(&record).await?;
        self.refresh().await?;
        Ok(IssuedKey {
            key: KeyInfo::of(&record),
            secret,
        })
    }

    /// Revoke a key: its next request is refused. Revoking twice keeps the first time.
    pub async fn revoke(&self, id: &str) -> Result<KeyInfo, KeyError> {
        let mut r = self.record(id).await?;
        if r.revoked_at.is_none() {
            r.revoked_at = Some(now_millis());
            r.updated_at = bump(r.updated_at);
            self.store.put_api_key(&r).await?;
            self.refresh().await?;
        }
        Ok(KeyInfo::of(&r))
    }

    /// A new secret for a key, which keeps its id, and so what it owns. The old secret stops
    /// working at once.
    pub async fn rotate(&self, id: &str) -> Result<IssuedKey, KeyError> {
        let mut r = self.record(id).await?;
        if r.revoked_at.is_some() {
            return Err(KeyError::Invalid(
                "id",
                format!("the key '{id}' is revoked"),
            ));
        }
        let secret = new_secret();
        r.prefix = secret[..SECRET_PREFIX.len() + 6].to_string();
        r.secret_hash = hex::encode(digest(&secret));
        r.updated_at = bump(r.updated_at);
        self.store.put_api_key(&r).await?;
        self.refresh().await?;
        Ok(IssuedKey {
            key: KeyInfo::of(&r),
            secret,
        })
    }

    async fn record(&self, id: &str) -> Result<ApiKeyRecord, KeyError> {
        self.store
            .get_api_key(id)
            .await?
            .ok_or_else(|| KeyError::NotFound(id.to_string()))
    }
}

fn statics_of(keys: &[String]) -> HashMap<[u8; 32], Caller> {
    keys.iter()
        .map(|k| (digest(k), Caller::of_static_key(k)))
        .collect()
}

fn check_limits(l: &KeyLimits) -> Result<(), KeyError> {
    if let Some(p) = &l.budget_period {
        if p != "day" && p != "month" {
            return Err(KeyError::Invalid(
                "budget_period",
                format!("must be 'day' or 'month', not '{p}'"),
            ));
        }
    }
    if l.budget_usd.is_some_and(|b| !b.is_finite() || b < 0.0) {
        return Err(KeyError::Invalid(
            "budget_usd",
            "must be a number of dollars, 0 or more".into(),
        ));
    }
    if l.rpm == Some(0) || l.max_concurrency == Some(0) || l.tpm == Some(0) {
        return Err(KeyError::Invalid(
            "limits",
            "rpm, tpm and max_concurrency must be at least 1 (leave one out for no limit)".into(),
        ));
    }
    Ok(())
}

/// `updated_at` for a change: now, and always later than before, so the version moves even
/// within one millisecond.
fn bump(previous: i64) -> i64 {
    now_millis().max(previous + 1)
}

fn new_secret() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{SECRET_PREFIX}{}{}", &a[..24], &b[..24])
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_else(|_| serde_json::json!({}))
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_fingerprints_hide_the_key_and_tell_keys_apart() {
        let k = Caller::of_static_key("super-secret-key");
        assert_eq!(k, Caller::of_static_key("super-secret-key"));
        assert_ne!(k, Caller::of_static_key("another-secret-key"));
        assert!(!k.owner.contains("secret"));
        assert!(k.is_admin());
        let label = k.label().unwrap();
        assert!(label.starts_with("key-") && label.len() == 12, "{label}");
        assert_eq!(Caller::default().label(), None);
        assert!(Caller::default().is_admin());
    }

    #[test]
    fn secrets_are_recognizable_and_distinct() {
        let a = new_secret();
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 48);
        assert_ne!(a, new_secret());
    }

    #[test]
    fn a_user_sees_only_its_own_and_an_admin_everything() {
        let user = Caller {
            owner: "key_a".into(),
            role: Role::User,
            key: None,
        };
        assert!(user.may_see("key_a"));
        assert!(!user.may_see("key_b"));
        assert!(!user.may_see(""));
        assert!(Caller::default().may_see("key_b"));
    }

    #[test]
    fn limits_are_checked() {
        let bad = KeyLimits {
            budget_period: Some("week".into()),
            ..KeyLimits::default()
        };
        assert!(matches!(
            check_limits(&bad),
            Err(KeyError::Invalid("budget_period", _))
        ));
        let zero = KeyLimits {
            rpm: Some(0),
            ..KeyLimits::default()
        };
        assert!(check_limits(&zero).is_err());
        assert!(check_limits(&KeyLimits::default()).is_ok());
    }

    #[tokio::test]
    async fn the_ring_issues_checks_revokes_and_rotates_keys() {
        let store: Arc<dyn Store> =
            Arc::new(crate::store::SqliteStore::open_in_memory().await.unwrap());
        let ring = KeyRing::load(store.clone(), &["static-admin-key".into()])
            .await
            .unwrap();
        assert!(ring.enabled());
        assert!(ring.authenticate("static-admin-key").unwrap().is_admin());
        let issued = ring
            .create(NewKey {
                name: "app one".into(),
                limits: KeyLimits {
                    rpm: Some(5),
                    ..KeyLimits::default()
                },
                ..NewKey::default()
            })
            .await
            .unwrap();
        // Only the hash is stored.
        let rec = store.get_api_key(&issued.key.id).await.unwrap().unwrap();
        assert_ne!(rec.secret_hash, issued.secret);
        assert!(!serde_json::to_string(&rec)
            .unwrap()
            .contains(&issued.secret));
        assert!(issued.secret.starts_with(&rec.prefix));

        let caller = ring.authenticate(&issued.secret).unwrap();
        assert_eq!(caller.owner, issued.key.id);
        assert_eq!(caller.role, Role::User);
        assert_eq!(caller.limits().rpm, Some(5));
        assert_eq!(ring.authenticate("nope"), Err(Refusal::Unknown));

        let rotated = ring.rotate(&issued.key.id).await.unwrap();
        assert_eq!(ring.authenticate(&issued.secret), Err(Refusal::Unknown));
        assert_eq!(
            ring.authenticate(&rotated.secret).unwrap().owner,
            issued.key.id
        );
        ring.revoke(&issued.key.id).await.unwrap();
        assert_eq!(ring.authenticate(&rotated.secret), Err(Refusal::Revoked));
        assert!(ring.rotate(&issued.key.id).await.is_err());
        assert_eq!(ring.list().await.unwrap()[0].status, "revoked");

        // Another ring on the same store (another process) sees the change on refresh.
        let other = KeyRing::load(store.clone(), &[]).await.unwrap();
        let late = ring
            .create(NewKey {
                name: "late".into(),
                expires_at: Some(now_millis() - 1),
                ..NewKey::default()
            })
            .await
            .unwrap();
        assert_eq!(other.authenticate(&late.secret), Err(Refusal::Unknown));
        other.refresh().await.unwrap();
        assert_eq!(other.authenticate(&late.secret), Err(Refusal::Expired));
    }
}

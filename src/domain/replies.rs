//! Replies the compatible APIs keep for later requests to refer to: Responses API responses
//! (`previous_response_id`, `GET /v1/responses/{id}`, `item_reference`s) and Anthropic thread
//! messages (`thread.previous_message_id`).
//!
//! Each reply holds only what its turn added, and names the reply it continues, so a
//! conversation is a chain walked back to its start. Replies are records in the store (kept
//! `reply_ttl_secs`), with the newest in memory: a follow-up usually comes right after its
//! reply, before the store write has run. A reply belongs to its owner (the key that made it):
//! anyone else is told it does not exist. Knows nothing of the bodies' shapes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::conversation::TurnError;
use crate::domain::conversations::Conversations;
use crate::store::{self, StoredReply};

/// How many replies stay in memory.
const RECENT: usize = 4096;
/// The longest chain walked back (a guard against a cycle in damaged records).
const MAX_CHAIN: usize = 10_000;
/// How often expired replies are deleted from the store.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The newest replies, by id, oldest first out.
#[derive(Default)]
pub(crate) struct RecentReplies {
    inner: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    by_id: HashMap<String, Arc<StoredReply>>,
    order: VecDeque<String>,
    last_prune: Option<Instant>,
}

impl RecentReplies {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // Single-step map operations only, so a poisoned lock still holds a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Conversations {
    /// Keep a reply: in memory at once (a follow-up may come next), in the store behind every
    /// earlier write. The future it returns ends once the store holds it: awaited before the
    /// client hears the reply, a `previous_response_id` right after finds it on any instance,
    /// and after a restart.
    pub fn put_reply(
        &self,
        reply: StoredReply,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let reply = Arc::new(reply);
        let prune = {
            let mut r = self.replies.lock();
            if r.by_id.insert(reply.id.clone(), reply.clone()).is_none() {
                r.order.push_back(reply.id.clone());
            }
            while r.order.len() > RECENT {
                if let Some(old) = r.order.pop_front() {
                    r.by_id.remove(&old);
                }
            }
            let due = r.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
            if due {
                r.last_prune = Some(Instant::now());
            }
            due
        };
        let store = self.store.clone();
        let ttl_ms = (self.cfg.reply_ttl_secs as i64).saturating_mul(1000);
        let (stored, done) = tokio::sync::oneshot::channel::<()>();
        self.write(async move {
            if let Err(e) = store.put_reply(&reply).await {
                tracing::warn!(reply = %reply.id, error = %e, "could not store a reply");
            }
            let _ = stored.send(());
            if prune {
                match store
                    .delete_replies_before(store::now_millis() - ttl_ms)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "expired replies deleted"),
                    Err(e) => tracing::warn!(error = %e, "could not delete expired replies"),
                }
            }
        });
        async move {
            let _ = done.await;
        }
    }

    /// The reply `id` of this kind and owner, if it exists and has not expired.
    pub async fn reply(
        &self,
        id: &str,
        kind: &str,
        owner: &str,
    ) -> Result<Option<Arc<StoredReply>>, TurnError> {
        let recent = self.replies.lock().by_id.get(id).cloned();
        let found = match recent {
            Some(r) => Some(r),
            None => self
                .store
                .get_reply(id)
                .await
                .map_err(|e| {
                    TurnError::Claude(crate::claude::ClaudeError::protocol(format!(
                        "reading a stored reply: {e}"
                    )))
                })?
                .map(Arc::new),
        };
        let ttl_ms = (self.cfg.reply_ttl_secs as i64).saturating_mul(1000);
        Ok(found.filter(|r| {
            r.kind == kind && r.owner == owner && r.created_at >= store::now_millis() - ttl_ms
        }))
    }

    /// The conversation that ends at reply `id`: every reply from its start to `id`, oldest
    /// first. `None` when `id` (or a reply it continues) is unknown.
    pub async fn reply_chain(
        &self,
        id: &str,
        kind: &str,
        owner: &str,
    ) -> Result<Option<Vec<Arc<StoredReply>>>, TurnError> {
        let mut chain = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(id) = next {
            if chain.len() >= MAX_CHAIN {
                return Ok(None);
            }
            let Some(r) = self.reply(&id, kind, owner).await? else {
                return Ok(None);
            };
            next = r.previous_id.clone();
            chain.push(r);
        }
        chain.reverse();
        Ok(Some(chain))
    }

    /// Delete a reply (only its owner can); whether it existed.
    pub async fn delete_reply(&self, id: &str, kind: &str, owner: &str) -> Result<bool, TurnError> {
        if self.reply(id, kind, owner).await?.is_none() {
            return Ok(false);
        }
        {
            let mut r = self.replies.lock();
            r.by_id.remove(id);
            r.order.retain(|o| o != id);
        }
        let (store, id) = (self.store.clone(), id.to_string());
        self.write(async move {
            if let Err(e) = store.delete_reply(&id).await {
                tracing::warn!(reply = %id, error = %e, "could not delete a reply");
            }
        });
        Ok(true)
    }
}

//! What an instance does with a session another instance may have moved on (several
//! instances on one store, docs/instances.md): a compatible conversation found through the
//! shared store's history keys, one kept here that is stale, a native session read again from
//! its record when its lease's epoch says someone else ran a turn since. The lease itself is
//! `leases`; the turns are `conversations`, `sessions` and `drive`.
//!
//! Must not: touch a stale conversation's record or workspace (they are the other instance's),
//! or decide who holds a lease.

use std::path::PathBuf;
use std::sync::Arc;

use super::conversation::{Conversation, TurnError};
use super::conversations::Conversations;
use super::session_table::info_from;
use super::sessions::{not_found, session_request, store_error, TurnOverrides};
use crate::domain::turn::TurnRequest;
use crate::store;

impl Conversations {
    /// A conversation this gateway kept before it restarted: its record and the CLI's
    /// transcript are on disk, so it continues with `--resume`.
    /// Only `owner`'s: history keys are per tenant.
    ///
    /// Also how a conversation another instance continued comes here (the store is shared):
    /// its record is read again under its lease, and taken only if it still ends at `key`.
    pub(crate) async fn restore(
        &self,
        key: &str,
        owner: &str,
    ) -> Result<Option<Conversation>, TurnError> {
        let rec = match self.store.find_session_by_history_key(key).await {
            Ok(Some(rec)) if rec.source != store::source::NATIVE && rec.owner == owner => rec,
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "store lookup failed; the history is replayed instead");
                return Ok(None);
            }
        };
        if self.is_known(&rec.id) {
            // One this instance held. Kept here under another history: another instance has
            // continued it since, and what is kept here is stale. Kept nowhere: a turn runs in
            // it here, and this request starts afresh (as a concurrent one always did).
            let stale = {
                let mut reg = self.registry();
                let held = reg
                    .iter()
                    .find(|(_, c)| c.id == rec.id)
                    .map(|(k, _)| k.clone());
                held.and_then(|k| reg.remove(&k))
            };
            match stale {
                Some(c) => self.drop_stale(c),
                None => return Ok(None),
            }
        }
        let lease = self.leases.acquire(&rec.id).await?;
        // Under the lease the record is stable; it may have moved on while the lease was
        // waited for (then this history is a branch of it, and starts afresh).
        let rec = match self.store.get_session(&rec.id).await {
            Ok(Some(r)) if r.history_key.as_deref() == Some(key) => r,
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "store lookup failed; the history is replayed instead");
                return Ok(None);
            }
        };
        // Take the key, so a concurrent request with the same history does not resume the
        // same CLI session a second time.
        if let Err(e) = self.store.set_history_key(&rec.id, None).await {
            tracing::warn!(error = %e, "could not take a stored conversation");
            return Ok(None);
        }
        tracing::info!(conversation = %rec.id, "continuing a stored conversation");
        self.remember(&rec.id);
        let mut conv = Conversation::blank(
            rec.id,
            rec.cli_session_id,
            PathBuf::from(rec.workspace),
            rec.system_prompt,
        );
        conv.started = true;
        conv.leaf = rec.transcript_leaf;
        if let Some(mark) = rec.turn_mark {
            conv.turn_mark = mark;
        }
        conv.persisted = true;
        conv.source = rec.source;
        conv.model_id = rec.model;
        conv.owner = rec.owner;
        conv.hold_lease(lease);
        Ok(Some(conv))
    }

    /// Let go of a conversation another instance has taken over: its process here stops, and
    /// nothing of it in the store or on the shared volume is touched (they are the other
    /// instance's now). A later request may restore it from the store.
    pub(crate) fn drop_stale(&self, mut conv: Conversation) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conv.id);
        if let Some(s) = conv.tool_server.take() {
            s.cancel_all();
        }
        if let Some(p) = conv.process.take() {
            self.pool.retire(&p);
        }
    }

    /// A conversation unused past its lifetime: forgotten (its record closed, its workspace
    /// removed) only while this instance is still its last holder; one another instance took
    /// over is only let go here.
    pub(crate) async fn retire_expired(&self, mut conv: Conversation) {
        let current = match self.leases.try_acquire(&conv.id).await {
            Some(lease) => conv.hold_lease(lease),
            None => false,
        };
        if current {
            self.forget(conv);
        } else {
            self.drop_stale(conv);
        }
    }

    /// A conversation that never started its turn, back in its slot as it was: nothing is
    /// saved (its record may be another instance's newer one). A deleted session's is dropped.
    pub(crate) fn put_back_unchanged(&self, mut conv: Conversation, status: &str) {
        conv.lease = None;
        if let Err(conv) = self.sessions.put_back(conv, status) {
            // Deleted here meanwhile: its process and temporary workspace go.
            self.forget(*conv);
        }
    }

    /// Bring a session up to its record in the store, which another instance may have moved
    /// on: its idle process (if any) is stopped, and its next process resumes the transcript
    /// where the record says it ends. The request is rebuilt from the record's settings.
    pub(crate) async fn refresh_session(
        self: &Arc<Self>,
        id: &str,
        conv: &mut Conversation,
        req: &mut TurnRequest,
        over: TurnOverrides,
    ) -> Result<(), TurnError> {
        let rec = match self.store.get_session(id).await.map_err(store_error)? {
            Some(rec) => rec,
            None => return Err(not_found(id)),
        };
        if rec.status == store::status::AWAITING_TOOLS {
            return Err(TurnError::Busy(format!(
                "Session {id} waits for client tool results on another instance"
            )));
        }
        let settings = match self.store.get_session_settings(id).await {
            Ok(Some(v)) => serde_json::from_value(v).unwrap_or_default(),
            Ok(None) => Default::default(),
            Err(e) => return Err(store_error(e)),
        };
        if let Some(p) = conv.process.take() {
            tracing::info!(session = %id, pid = p.pid(), "another instance ran this session since; its idle process here is stopped");
            self.pool.retire(&p);
        }
        let mut info = info_from(&rec);
        info.settings = settings;
        let workspace = PathBuf::from(&info.workspace);
        conv.cli_session_id = info.cli_session_id.clone();
        conv.workspace = workspace.clone();
        conv.workspace_is_temp = info.workspace_is_temp;
        conv.system = info.system_prompt.clone();
        conv.owner = info.owner.clone();
        let cli_model = self.follow_record(conv, &info);
        let mut slots = self.sessions.lock();
        let slot = slots.get_mut(id).ok_or_else(|| not_found(id))?;
        info.project_id = slot.info.project_id.clone();
        info.status = store::status::RUNNING.into();
        slot.info = info;
        slot.cli_model = cli_model;
        let (prompt, key) = (std::mem::take(&mut req.prompt), req.key.take());
        *req = session_request(slot, prompt, key, over);
        Ok(())
    }
}

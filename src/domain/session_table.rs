//! The native sessions an instance holds: each one's client-facing record, its conversation
//! between turns, the process running its turn, its event bus and its permission broker; and
//! the conversion between the record and the store's row. Below both `conversations` (which
//! hands a conversation back here after a turn) and `sessions` (the operations on sessions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;

use super::conversation::Conversation;
use crate::claude::control::PermissionBroker;
use crate::claude::process::CliProcess;
use crate::store;

/// A session as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub cli_session_id: String,
    pub workspace: String,
    pub workspace_is_temp: bool,
    pub model: String,
    pub agent: Option<String>,
    pub permission_mode: Option<String>,
    pub system_prompt: Option<String>,
    pub tools: Vec<String>,
    pub allowed_tools: Vec<String>,
    pub title: Option<String>,
    /// idle, running, awaiting_tools or error.
    pub status: String,
    pub forked_from: Option<String>,
    /// The key that made it (`Caller::owner`; `""` without keys).
    pub owner: String,
    /// The project it was made in (`/api/projects`).
    pub project_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Whether a live process holds it right now.
    pub live: bool,
    /// Thinking, effort, max_turns and what is added to the system prompt.
    #[serde(flatten)]
    pub settings: super::settings::SessionSettings,
    /// Where its transcript ends and where its next turn starts (see `Conversation`).
    #[serde(skip)]
    pub(crate) transcript_leaf: Option<String>,
    #[serde(skip)]
    pub(crate) turn_mark: Option<String>,
}

pub(crate) struct SessionSlot {
    pub(crate) info: SessionInfo,
    pub(crate) cli_model: crate::domain::models::CliModel,
    /// `None` while a turn runs in it.
    pub(crate) conv: Option<Conversation>,
    pub(crate) running: Option<Arc<CliProcess>>,
    pub(crate) bus: broadcast::Sender<crate::domain::stamp::Stamped>,
    pub(crate) broker: Arc<PermissionBroker>,
}

/// Every native session this instance holds, by id.
#[derive(Default)]
pub(crate) struct SessionTable {
    slots: Mutex<HashMap<String, SessionSlot>>,
    /// Sessions deleted lately: a read of the store that began before a delete must not bring
    /// the session back. Kept for a while, then forgotten.
    deleted: Mutex<HashMap<String, Instant>>,
    /// Told whenever a conversation is put back in its slot: a message that found its session
    /// held by something other than a turn (a settings change, a control request) waits here.
    returned: tokio::sync::Notify,
}

/// How long a deleted session's id is remembered.
const TOMBSTONE_TTL: Duration = Duration::from_secs(300);

impl SessionTable {
    /// Call with the slots locked, so that a check made under the same lock sees it.
    pub(crate) fn mark_deleted(&self, id: &str) {
        let mut deleted = self.deleted.lock().unwrap_or_else(|e| e.into_inner());
        deleted.retain(|_, at| at.elapsed() < TOMBSTONE_TTL);
        deleted.insert(id.to_string(), Instant::now());
    }

    pub(crate) fn is_deleted(&self, id: &str) -> bool {
        self.deleted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, SessionSlot>> {
        // Single-step map operations only, so a poisoned lock still holds a consistent map.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Put a native conversation back in its slot after a turn, with the session's new status;
    /// returns the record to save. `Err` gives the conversation back when its session was
    /// deleted meanwhile (or it is not a native one).
    pub(crate) fn put_back(
        &self,
        conv: Conversation,
        status: &str,
    ) -> Result<store::Session, Box<Conversation>> {
        let Some(id) = conv.native.clone() else {
            return Err(Box::new(conv));
        };
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(&id) else {
            return Err(Box::new(conv));
        };
        // A warm process brought its own workspace and session id: they are the session's.
        slot.info.cli_session_id = conv.cli_session_id.clone();
        slot.info.workspace = conv.workspace.display().to_string();
        slot.info.transcript_leaf = conv.leaf.clone();
        slot.info.turn_mark = Some(conv.turn_mark.clone());
        slot.info.status = status.to_string();
        slot.info.updated_at = now();
        slot.running = None;
        slot.conv = Some(conv);
        let rec = session_record(&slot.info);
        drop(slots);
        self.returned.notify_waiters();
        Ok(rec)
    }

    /// Take a session's conversation for a turn. A session held by a turn is refused at once
    /// (`Busy`); one held by something quicker (a settings change, a control request such as
    /// context usage, which may start a process) is waited for, up to `wait`.
    pub(crate) async fn take_for_turn<T>(
        &self,
        id: &str,
        wait: Duration,
        mut take: impl FnMut(&mut SessionSlot) -> T,
    ) -> Result<T, Held> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.returned.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut slots = self.lock();
                let Some(slot) = slots.get_mut(id) else {
                    return Err(Held::Gone);
                };
                if slot.conv.is_some() {
                    return Ok(take(slot));
                }
                if slot.running.is_some() || slot.info.status == "running" {
                    return Err(Held::ByTurn);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Held::TooLong);
            }
        }
    }
}

/// Why [`SessionTable::take_for_turn`] got no conversation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// No such session (any more).
    Gone,
    /// A turn runs in it.
    ByTurn,
    /// Something else held it for longer than the wait.
    TooLong,
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn view(slot: &SessionSlot) -> SessionInfo {
    let mut info = slot.info.clone();
    info.live = slot.running.is_some()
        || slot
            .conv
            .as_ref()
            .and_then(|c| c.process.as_ref())
            .is_some_and(|p| p.is_alive());
    info
}

/// RFC 3339 in UTC with exactly three fraction digits (`2026-12-03T06:40:40.120Z`): an
/// event's `ts`, which sorts as text.
pub fn millis_to_ts(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        })
        .unwrap_or_default()
}

pub(crate) fn millis_to_rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(crate) fn rfc3339_to_millis(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or_else(|_| store::now_millis())
}

/// The store's record of a session.
pub(crate) fn session_record(info: &SessionInfo) -> store::Session {
    store::Session {
        id: info.id.clone(),
        cli_session_id: info.cli_session_id.clone(),
        workspace: info.workspace.clone(),
        workspace_is_temp: info.workspace_is_temp,
        model: info.model.clone(),
        agent: info.agent.clone(),
        permission_mode: info.permission_mode.clone(),
        system_prompt: info.system_prompt.clone(),
        allowed_tools: info.allowed_tools.clone(),
        tools: info.tools.clone(),
        forked_from: info.forked_from.clone(),
        title: info.title.clone(),
        status: info.status.clone(),
        history_key: None,
        source: store::source::NATIVE.into(),
        transcript_leaf: info.transcript_leaf.clone(),
        turn_mark: info.turn_mark.clone(),
        owner: info.owner.clone(),
        created_at: rfc3339_to_millis(&info.created_at),
        updated_at: rfc3339_to_millis(&info.updated_at),
    }
}

pub(crate) fn info_from(rec: &store::Session) -> SessionInfo {
    SessionInfo {
        id: rec.id.clone(),
        cli_session_id: rec.cli_session_id.clone(),
        workspace: rec.workspace.clone(),
        workspace_is_temp: rec.workspace_is_temp,
        model: rec.model.clone(),
        agent: rec.agent.clone(),
        permission_mode: rec.permission_mode.clone(),
        system_prompt: rec.system_prompt.clone(),
        tools: rec.tools.clone(),
        allowed_tools: rec.allowed_tools.clone(),
        title: rec.title.clone(),
        // A turn that was running when the gateway stopped is over.
        status: if rec.status == store::status::RUNNING {
            store::status::IDLE.into()
        } else {
            rec.status.clone()
        },
        forked_from: rec.forked_from.clone(),
        owner: rec.owner.clone(),
        // Kept beside the record (`Store::session_projects`); the caller fills it in.
        project_id: None,
        created_at: millis_to_rfc3339(rec.created_at),
        updated_at: millis_to_rfc3339(rec.updated_at),
        live: false,
        settings: Default::default(),
        transcript_leaf: rec.transcript_leaf.clone(),
        turn_mark: rec.turn_mark.clone(),
    }
}

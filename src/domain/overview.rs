//! Every conversation of every source in one list (the console's home), and any
//! conversation's recorded history: what is live (from `activity`) merged with what is stored.
//!
//! Must not: reach a process, or expose a key (only its fingerprint is known here).

use std::collections::HashMap;

use serde::Serialize;

use super::activity::ConversationActivity;
use super::conversation::TurnError;
use super::conversations::Conversations;
use super::sessions::HistoryEntry;
use crate::store;

/// One conversation as the console's home lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    #[serde(flatten)]
    pub activity: ConversationActivity,
    /// Whether a turn is under way (running, or waiting on a permission or client tools).
    pub live: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub source: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
}

fn view(activity: ConversationActivity) -> ConversationView {
    let live = matches!(
        activity.status.as_str(),
        "running" | "awaiting_permission" | "awaiting_tools"
    );
    ConversationView { activity, live }
}

impl Conversations {
    /// Live and recent conversations, the most recently active first.
    pub async fn list_conversations(
        &self,
        f: &ConversationFilter,
    ) -> Result<Vec<ConversationView>, TurnError> {
        let limit = f.limit.clamp(1, store::MAX_PAGE_SIZE as usize);
        let mut all: HashMap<String, ConversationActivity> = self
            .activity
            .recent(usize::MAX)
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let page = self
            .store
            .list_sessions(&store::SessionFilter {
                source: f.source.clone(),
                limit: limit as u32,
                ..Default::default()
            })
            .await
            .map_err(|e| TurnError::invalid("", e.to_string()))?;
        for rec in page.items {
            if let Some(a) = all.get_mut(&rec.id) {
                a.title = rec.title.clone().or(a.title.take());
                a.started_at = a.started_at.min(rec.created_at);
                continue;
            }
            let usage = self
                .store
                .usage_for_session(&rec.id)
                .await
                .unwrap_or_default();
            all.insert(
                rec.id.clone(),
                ConversationActivity {
                    id: rec.id.clone(),
                    source: rec.source.clone(),
                    model: rec.model.clone(),
                    status: rec.status.clone(),
                    title: rec.title.clone(),
                    started_at: rec.created_at,
                    updated_at: rec.updated_at,
                    turns: usage.requests as u64,
                    input_tokens: (usage.input_tokens
                        + usage.cache_read_input_tokens
                        + usage.cache_creation_input_tokens)
                        as u64,
                    output_tokens: usage.output_tokens as u64,
                    cost_usd: usage.cost_usd.unwrap_or(0.0),
                    duration_ms: usage.duration_ms as u64,
                    ..Default::default()
                },
            );
        }
        let mut out: Vec<ConversationView> = all
            .into_values()
            .filter(|a| f.source.as_ref().is_none_or(|s| &a.source == s))
            .filter(|a| f.status.as_ref().is_none_or(|s| &a.status == s))
            .map(view)
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.activity.updated_at));
        out.truncate(limit);
        Ok(out)
    }

    /// One conversation's summary, live or stored.
    pub async fn conversation_overview(&self, id: &str) -> Option<ConversationView> {
        if let Some(a) = self.activity.get(id) {
            return Some(view(a));
        }
        let rec = self.store.get_session(id).await.ok().flatten()?;
        Some(view(ConversationActivity {
            id: rec.id,
            source: rec.source,
            model: rec.model,
            status: rec.status,
            title: rec.title,
            started_at: rec.created_at,
            updated_at: rec.updated_at,
            ..Default::default()
        }))
    }

    /// Any conversation's recorded history (native sessions and compatible-API ones alike),
    /// after `after_seq`.
    pub async fn conversation_history(
        &self,
        id: &str,
        after_seq: u64,
    ) -> Result<Vec<HistoryEntry>, TurnError> {
        let known = self.activity.get(id).is_some()
            || matches!(self.store.get_session(id).await, Ok(Some(_)));
        if !known {
            return Err(TurnError::NotFound(format!(
                "No conversation with the id '{id}'"
            )));
        }
        let events = self
            .store
            .list_events(id, after_seq as i64, store::MAX_EVENTS_PER_CALL)
            .await
            .map_err(|e| TurnError::invalid("", e.to_string()))?;
        Ok(events.into_iter().map(HistoryEntry::from).collect())
    }
}

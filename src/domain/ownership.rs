//! Who owns a session: the one question the HTTP layer's ownership check asks for every route
//! under `/api/sessions/{id}`, answered from the session table (the sessions this instance
//! holds) and, for the others, from the store. Also the projects of sessions, kept beside
//! their records.
//!
//! Must not: decide what a caller may do (the check compares owners with `Caller::may_see`),
//! or bring a session into the table (the route's own handler does that, so a lookup here
//! never starts anything).

use std::collections::HashMap;

use super::conversation::TurnError;
use super::conversations::Conversations;

impl Conversations {
    /// The owner of a session or a compatible-API conversation; `None` when there is no such
    /// id (the route's handler then answers its own 404).
    pub async fn session_owner(&self, id: &str) -> Result<Option<String>, TurnError> {
        if let Some(slot) = self.sessions.lock().get(id) {
            return Ok(Some(slot.info.owner.clone()));
        }
        if self.sessions.is_deleted(id) {
            return Ok(None);
        }
        match self.store.get_session(id).await {
            Ok(rec) => Ok(rec.map(|r| r.owner)),
            Err(e) => Err(TurnError::Claude(crate::claude::ClaudeError::protocol(
                format!("store: {e}"),
            ))),
        }
    }

    /// The project of each of these sessions that has one. A store failure leaves them
    /// without (a listing still answers; the project is shown again on the next read).
    pub(crate) async fn projects_of(&self, ids: &[String]) -> HashMap<String, String> {
        if ids.is_empty() {
            return HashMap::new();
        }
        match self.store.session_projects(ids).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the projects of sessions");
                HashMap::new()
            }
        }
    }
}

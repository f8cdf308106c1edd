//! The subagent tasks each native session's running turn has under way, known from the CLI's
//! task events, so that stopping a task the turn never started is a clear 404 (the CLI answers
//! a `stop_task` for an unknown task with success).
//!
//! Must not: talk to the CLI (the session functions do) or outlive a turn's tasks (a turn's
//! end forgets them).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::claude::Event;

#[derive(Default)]
pub(crate) struct RunningTasks {
    by_session: Mutex<HashMap<String, HashSet<String>>>,
}

impl RunningTasks {
    /// Follow one of a session's events: a task starts with `task_started` and ends with its
    /// `task_notification` or an update to a final status.
    pub(crate) fn observe(&self, session: &str, ev: &Event) {
        let Event::Task {
            subtype,
            task_id,
            detail,
            ..
        } = ev
        else {
            return;
        };
        let mut map = self.by_session.lock().unwrap_or_else(|p| p.into_inner());
        let ended = subtype == "task_notification"
            || (subtype == "task_updated"
                && matches!(
                    detail["patch"]["status"].as_str(),
                    Some("completed" | "failed" | "killed" | "stopped")
                ));
        if subtype == "task_started" {
            map.entry(session.to_string())
                .or_default()
                .insert(task_id.clone());
        } else if ended {
            if let Some(set) = map.get_mut(session) {
                set.remove(task_id);
            }
        }
    }

    pub(crate) fn is_running(&self, session: &str, task_id: &str) -> bool {
        let map = self.by_session.lock().unwrap_or_else(|p| p.into_inner());
        map.get(session).is_some_and(|s| s.contains(task_id))
    }

    /// The turn ended: none of its tasks runs any more.
    pub(crate) fn forget(&self, session: &str) {
        let mut map = self.by_session.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(subtype: &str, detail: serde_json::Value) -> Event {
        Event::Task {
            subtype: subtype.into(),
            task_id: "a1".into(),
            parent_tool_use_id: None,
            detail,
        }
    }

    #[test]
    fn a_task_runs_from_its_start_to_its_end() {
        let t = RunningTasks::default();
        assert!(!t.is_running("s", "a1"));
        t.observe("s", &task("task_started", json!({})));
        assert!(t.is_running("s", "a1"));
        assert!(!t.is_running("other", "a1"));
        t.observe("s", &task("task_progress", json!({})));
        t.observe(
            "s",
            &task("task_updated", json!({"patch": {"status": "running"}})),
        );
        assert!(t.is_running("s", "a1"));
        t.observe(
            "s",
            &task("task_updated", json!({"patch": {"status": "completed"}})),
        );
        assert!(!t.is_running("s", "a1"));
        t.observe("s", &task("task_started", json!({})));
        t.observe(
            "s",
            &task("task_notification", json!({"status": "stopped"})),
        );
        assert!(!t.is_running("s", "a1"));
        t.observe("s", &task("task_started", json!({})));
        t.forget("s");
        assert!(!t.is_running("s", "a1"));
    }
}

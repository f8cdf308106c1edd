//! The tool events of one model step: client calls are renamed to the client's names and
//! collected for the response; with `parallel_tool_calls: false` every client call after the
//! first is answered with an error at once and hidden; built-in calls are logged and recorded.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::Value;

use crate::claude::tools::{self, ClientToolServer, ToolOutcome};
use crate::claude::Event;
use crate::domain::turn::TurnRequest;
use crate::store::{self, ToolCallRecord};

/// Tool events of the current model step: client calls are renamed to the client's names and
/// collected; with `parallel_tool_calls: false` every client call after the first is answered
/// with an error at once and hidden from the client.
pub(crate) struct ToolStep {
    session_id: String,
    turn_id: String,
    records: Vec<ToolCallRecord>,
    offered: HashSet<String>,
    parallel: bool,
    calls: Vec<(String, String, Value)>,
    shown: HashSet<String>,
    suppressed: HashSet<String>,
    builtin_started: HashMap<String, (String, Instant, usize)>,
}

impl ToolStep {
    pub(crate) fn new(req: &TurnRequest, session_id: &str, turn_id: &str) -> Self {
        ToolStep {
            session_id: session_id.to_string(),
            turn_id: turn_id.to_string(),
            records: vec![],
            offered: req.offered_tools().into_iter().map(|t| t.name).collect(),
            parallel: req.parallel_tool_calls,
            calls: vec![],
            shown: HashSet::new(),
            suppressed: HashSet::new(),
            builtin_started: HashMap::new(),
        }
    }

    pub(crate) fn take_records(&mut self) -> Vec<ToolCallRecord> {
        std::mem::take(&mut self.records)
    }

    /// Every call of a turn that ended early: the finished ones, and those still running
    /// recorded with `outcome` (a call is recorded whatever ends its turn).
    pub(crate) fn take_records_ending(&mut self, outcome: &str) -> Vec<ToolCallRecord> {
        let unfinished: Vec<(String, (String, Instant, usize))> =
            self.builtin_started.drain().collect();
        for (id, (name, since, argument_bytes)) in unfinished {
            self.record(
                &id,
                &name,
                "builtin",
                argument_bytes,
                Some(outcome),
                Some(since.elapsed().as_millis()),
            );
        }
        self.take_records()
    }

    pub(crate) fn record(
        &mut self,
        id: &str,
        tool: &str,
        kind: &str,
        argument_bytes: usize,
        outcome: Option<&str>,
        duration_ms: Option<u128>,
    ) {
        self.records.push(ToolCallRecord {
            id: id.to_string(),
            session_id: self.session_id.clone(),
            turn_id: self.turn_id.clone(),
            tool: tool.to_string(),
            kind: kind.to_string(),
            argument_bytes: argument_bytes as i64,
            outcome: outcome.map(String::from),
            duration_ms: duration_ms.map(|d| d as i64),
            created_at: store::now_millis(),
        });
    }

    pub(crate) fn take_calls(&mut self) -> Vec<(String, String, Value)> {
        self.shown.clear();
        std::mem::take(&mut self.calls)
    }

    pub(crate) fn client_name<'a>(&self, model_name: &'a str) -> Option<&'a str> {
        tools::client_name(model_name).filter(|n| self.offered.contains(*n))
    }

    /// Decide on a new client call: shown to the client, or suppressed.
    pub(crate) fn admit(&mut self, id: &str) -> bool {
        if self.suppressed.contains(id) {
            return false;
        }
        if self.shown.contains(id) {
            return true;
        }
        if !self.parallel && !self.shown.is_empty() {
            self.suppressed.insert(id.to_string());
            return false;
        }
        self.shown.insert(id.to_string());
        true
    }

    pub(crate) fn route(
        &mut self,
        ev: Event,
        server: Option<&ClientToolServer>,
        conversation: &str,
    ) -> Vec<Event> {
        match ev {
            Event::ToolCallStart { id, name, .. } => {
                match self.client_name(&name).map(String::from) {
                    Some(n) if self.admit(&id) => vec![Event::ToolCallStart {
                        id,
                        name: n,
                        client: true,
                    }],
                    Some(_) => vec![],
                    None => vec![Event::ToolCallStart {
                        id,
                        name,
                        client: false,
                    }],
                }
            }
            Event::ToolCallDelta {
                id, partial_json, ..
            } => {
                if self.suppressed.contains(&id) {
                    vec![]
                } else {
                    let client = self.shown.contains(&id);
                    vec![Event::ToolCallDelta {
                        id,
                        partial_json,
                        client,
                    }]
                }
            }
            Event::ToolCall {
                id, name, input, ..
            } => {
                match self.client_name(&name).map(String::from) {
                    Some(n) => {
                        if self.admit(&id) {
                            self.calls.push((id.clone(), n.clone(), input.clone()));
                            vec![Event::ToolCall {
                                id,
                                name: n,
                                input,
                                client: true,
                            }]
                        } else {
                            if let Some(s) = server {
                                s.resolve(
                                &id,
                                ToolOutcome {
                                    content: "Parallel tool calls are disabled: call one tool at a time.".into(),
                                    is_error: true,
                                },
                            );
                            }
                            vec![]
                        }
                    }
                    None => {
                        tracing::info!(
                            target: "ccgw::tools",
                            conversation,
                            tool = %name,
                            tool_use_id = %id,
                            kind = "builtin",
                            argument_bytes = input.to_string().len(),
                            "tool call started"
                        );
                        self.builtin_started.insert(
                            id.clone(),
                            (name.clone(), Instant::now(), input.to_string().len()),
                        );
                        vec![Event::ToolCall {
                            id,
                            name,
                            input,
                            client: false,
                        }]
                    }
                }
            }
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                if let Some((name, since, argument_bytes)) =
                    self.builtin_started.remove(&tool_use_id)
                {
                    let outcome = if is_error { "error" } else { "ok" };
                    self.record(
                        &tool_use_id,
                        &name,
                        "builtin",
                        argument_bytes,
                        Some(outcome),
                        Some(since.elapsed().as_millis()),
                    );
                    tracing::info!(
                        target: "ccgw::tools",
                        conversation,
                        tool = %name,
                        tool_use_id = %tool_use_id,
                        kind = "builtin",
                        result_bytes = content.to_string().len(),
                        outcome = if is_error { "error" } else { "ok" },
                        duration_ms = since.elapsed().as_millis() as u64,
                        "tool call finished"
                    );
                }
                vec![Event::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                }]
            }
            other => vec![other],
        }
    }
}

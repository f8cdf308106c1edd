//! Stream-json lines of one turn → internal [`Event`]s. Pure and stateful per turn.
//!
//! The main thread is translated in full; a subagent's lines (they carry a
//! `parent_tool_use_id`) become whole-message `Subagent` events and its task lines `Task`
//! events, never mixed into the main answer. Text
//! arrives as `stream_event` deltas; an `assistant` line whose message never streamed (slash
//! command output, some synthetic messages) is emitted whole instead, so nothing is lost and
//! nothing is doubled. Synthetic messages are held back until the `result` says whether the
//! turn failed: the CLI's synthetic API-error text belongs in the error, not in the answer.

use std::collections::HashSet;

use serde_json::Value;

use super::event::{Event, StopReason, TurnSummary, Usage};
use super::wire::{CliLine, MessageLine, ResultLine};
use super::ClaudeError;

#[derive(Debug, Default)]
pub struct Translator {
    streamed_messages: HashSet<String>,
    held_synthetic: Vec<Event>,
    interrupted: bool,
    last_stop_reason: Option<String>,
    last_retry_delay_ms: Option<u64>,
    /// Content-block index → tool_use id, for routing `input_json_delta`s of the current message.
    tool_blocks: std::collections::HashMap<u64, String>,
    step_usage: Usage,
    /// The uuid of the last main-thread message line (see `TurnSummary::leaf`).
    leaf: Option<String>,
    /// The CLI's `total_cost_usd` is its process's running total: what it was before this
    /// turn, so that the turn reports its own cost.
    cost_before: f64,
    /// That running total as of this turn's result.
    process_cost: Option<f64>,
    /// Task id → the Agent/Task call that runs it: `task_updated` lines do not name the call.
    task_calls: std::collections::HashMap<String, String>,
}

impl Translator {
    pub fn new() -> Self {
        Self::default()
    }

    /// A turn's translator in a process whose earlier turns cost `cost_before` in all (the
    /// CLI's running total as of its last result).
    pub fn after_cost(cost_before: f64) -> Self {
        Self {
            cost_before,
            ..Self::default()
        }
    }

    /// The process's running total cost as of this turn's result, once it came.
    pub fn process_cost(&self) -> Option<f64> {
        self.process_cost
    }

    /// The gateway interrupted this turn: its `error_during_execution` result is not a failure.
    pub fn mark_interrupted(&mut self) {
        self.interrupted = true;
    }

    pub fn on_line(&mut self, line: &CliLine) -> Vec<Event> {
        match line {
            CliLine::System(s) => match s.subtype.as_str() {
                "init" => vec![Event::Init {
                    session_id: s.session_id.clone().unwrap_or_default(),
                    model: str_field(&s.extra, "model"),
                    tools: s
                        .extra
                        .get("tools")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                }],
                "api_retry" => {
                    let delay = s.extra.get("retry_delay_ms").and_then(Value::as_u64);
                    self.last_retry_delay_ms = delay;
                    vec![Event::Retry {
                        attempt: u32_field(&s.extra, "attempt"),
                        max_retries: u32_field(&s.extra, "max_retries"),
                        delay_ms: delay.unwrap_or(0),
                        error_status: s
                            .extra
                            .get("error_status")
                            .and_then(Value::as_u64)
                            .and_then(|v| u16::try_from(v).ok()),
                        error: str_field(&s.extra, "error"),
                    }]
                }
                sub if sub.starts_with("task_") => {
                    let mut detail = s_extra_without(&s.extra, &["task_id", "tool_use_id", "uuid"]);
                    if let Some(obj) = detail.as_object_mut() {
                        obj.remove("session_id");
                    }
                    let task_id = str_field(&s.extra, "task_id");
                    let parent = match s.extra.get("tool_use_id").and_then(Value::as_str) {
                        Some(call) => {
                            self.task_calls.insert(task_id.clone(), call.to_string());
                            Some(call.to_string())
                        }
                        None => self.task_calls.get(&task_id).cloned(),
                    };
                    vec![Event::Task {
                        subtype: sub.to_string(),
                        task_id,
                        parent_tool_use_id: parent,
                        detail,
                    }]
                }
                "status" => {
                    let status = s.extra.get("status").and_then(Value::as_str);
                    if status == Some("requesting") {
                        return vec![];
                    }
                    vec![Event::Status {
                        status: status.map(String::from),
                        compact_result: s
                            .extra
                            .get("compact_result")
                            .and_then(Value::as_str)
                            .map(String::from),
                    }]
                }
                "compact_boundary" => {
                    let meta = s
                        .extra
                        .get("compact_metadata")
                        .cloned()
                        .unwrap_or(Value::Null);
                    vec![Event::Compacted {
                        trigger: meta["trigger"].as_str().unwrap_or("manual").to_string(),
                        pre_tokens: meta["pre_tokens"].as_u64(),
                        post_tokens: meta["post_tokens"].as_u64(),
                    }]
                }
                _ => vec![],
            },
            CliLine::Assistant(m) | CliLine::User(m) if m.parent_tool_use_id.is_some() => {
                vec![Event::Subagent {
                    parent_tool_use_id: m.parent_tool_use_id.clone().unwrap_or_default(),
                    role: if matches!(line, CliLine::Assistant(_)) {
                        "assistant".into()
                    } else {
                        "user".into()
                    },
                    content: m.content_blocks(),
                }]
            }
            CliLine::StreamEvent(se) if se.parent_tool_use_id.is_none() => {
                self.on_stream_event(&se.event)
            }
            CliLine::Assistant(m) if m.parent_tool_use_id.is_none() => self.on_assistant(m),
            CliLine::User(m) if m.parent_tool_use_id.is_none() => on_user(m),
            CliLine::Result(r) => self.on_result(r),
            CliLine::Other(v)
                if v.get("type").and_then(Value::as_str) == Some("rate_limit_event") =>
            {
                vec![Event::RateLimit {
                    info: v.get("rate_limit_info").cloned().unwrap_or(Value::Null),
                }]
            }
            _ => vec![],
        }
    }

    fn on_stream_event(&mut self, ev: &Value) -> Vec<Event> {
        match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(id) = ev.pointer("/message/id").and_then(Value::as_str) {
                    self.streamed_messages.insert(id.to_string());
                }
                self.tool_blocks.clear();
                self.last_stop_reason = None;
                self.step_usage = ev
                    .pointer("/message/usage")
                    .map(Usage::from_json)
                    .unwrap_or_default();
                vec![Event::StepStart {
                    usage: self.step_usage,
                }]
            }
            Some("content_block_start") => {
                let block = &ev["content_block"];
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return vec![];
                }
                let id = block["id"].as_str().unwrap_or_default().to_string();
                if let Some(i) = ev.get("index").and_then(Value::as_u64) {
                    self.tool_blocks.insert(i, id.clone());
                }
                vec![Event::ToolCallStart {
                    id,
                    name: block["name"].as_str().unwrap_or_default().to_string(),
                    client: false,
                }]
            }
            Some("content_block_delta") => {
                let delta = &ev["delta"];
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => text_event(delta, "text", false),
                    Some("thinking_delta") => text_event(delta, "thinking", true),
                    Some("signature_delta") => signature_event(delta),
                    Some("input_json_delta") => {
                        let id = ev
                            .get("index")
                            .and_then(Value::as_u64)
                            .and_then(|i| self.tool_blocks.get(&i));
                        match (id, delta.get("partial_json").and_then(Value::as_str)) {
                            (Some(id), Some(p)) if !p.is_empty() => vec![Event::ToolCallDelta {
                                id: id.clone(),
                                partial_json: p.to_string(),
                                client: false,
                            }],
                            _ => vec![],
                        }
                    }
                    _ => vec![],
                }
            }
            Some("message_delta") => {
                if let Some(r) = ev.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.last_stop_reason = Some(r.to_string());
                }
                if let Some(n) = ev.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.step_usage.output_tokens = n;
                }
                if let Some(n) = ev.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                    self.step_usage.input_tokens = n;
                }
                vec![]
            }
            Some("message_stop") => vec![Event::StepEnd {
                stop_reason: self.last_stop_reason.clone(),
                usage: self.step_usage,
            }],
            _ => vec![],
        }
    }

    fn on_assistant(&mut self, m: &MessageLine) -> Vec<Event> {
        if let Some(uuid) = m.extra.get("uuid").and_then(Value::as_str) {
            self.leaf = Some(uuid.to_string());
        }
        let streamed = m
            .message_id()
            .is_some_and(|id| self.streamed_messages.contains(id));
        let synthetic = m.model() == Some("<synthetic>");
        let mut out = Vec::new();
        for block in m.content_blocks() {
            match block.get("type").and_then(Value::as_str) {
                Some("tool_use") => out.push(Event::ToolCall {
                    id: block["id"].as_str().unwrap_or_default().to_string(),
                    name: block["name"].as_str().unwrap_or_default().to_string(),
                    input: block.get("input").cloned().unwrap_or(Value::Null),
                    client: false,
                }),
                Some("text") if !streamed => {
                    let ev = text_event(&block, "text", false);
                    if synthetic {
                        self.held_synthetic.extend(ev);
                    } else {
                        out.extend(ev);
                    }
                }
                Some("thinking") if !streamed => {
                    out.extend(text_event(&block, "thinking", true));
                    out.extend(signature_event(&block));
                }
                _ => {}
            }
        }
        out
    }

    fn on_result(&mut self, r: &ResultLine) -> Vec<Event> {
        let text = r.result.clone().unwrap_or_default();
        self.process_cost = r.total_cost_usd;
        let cost_before = self.cost_before;
        let summary = |stop_reason| TurnSummary {
            stop_reason,
            usage: Usage::from_json(&r.usage),
            // This turn's own cost, not the process's running total.
            cost_usd: r.total_cost_usd.map(|t| (t - cost_before).max(0.0)),
            duration_ms: r.duration_ms,
            num_turns: r.num_turns,
            session_id: r.session_id.clone(),
            result_text: text.clone(),
            leaf: self.leaf.clone(),
        };
        match r.subtype.as_str() {
            "error_during_execution" if self.interrupted => {
                vec![Event::Done(summary(StopReason::Interrupted))]
            }
            "error_max_turns" => vec![Event::Done(summary(StopReason::MaxTurns))],
            s if s.starts_with("error") => {
                let message = if r.errors.is_empty() {
                    if text.is_empty() {
                        s.to_string()
                    } else {
                        text
                    }
                } else {
                    r.errors.join("; ")
                };
                vec![Event::Error(ClaudeError::Cli { message })]
            }
            // The CLI's own wording for the API's 400 "prompt is too long".
            _ if r.is_error && text.to_lowercase().starts_with("prompt is too long") => {
                vec![Event::Error(ClaudeError::PromptTooLong { message: text })]
            }
            _ if r.is_error => vec![Event::Error(ClaudeError::Upstream {
                status: r.api_error_status,
                message: text,
                retry_after: self.last_retry_delay_ms.map(|ms| ms.div_ceil(1000).max(1)),
            })],
            _ => {
                let mut out = std::mem::take(&mut self.held_synthetic);
                if let Some(v) = r.extra.get("structured_output").filter(|v| !v.is_null()) {
                    out.push(Event::StructuredOutput { value: v.clone() });
                }
                let reason = r
                    .stop_reason
                    .as_deref()
                    .or(self.last_stop_reason.as_deref());
                out.push(Event::Done(summary(StopReason::from_cli(reason))));
                out
            }
        }
    }
}

fn on_user(m: &MessageLine) -> Vec<Event> {
    m.content_blocks()
        .into_iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| Event::ToolResult {
            tool_use_id: b["tool_use_id"].as_str().unwrap_or_default().to_string(),
            content: b.get("content").cloned().unwrap_or(Value::Null),
            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        })
        .collect()
}

fn text_event(v: &Value, key: &str, thinking: bool) -> Vec<Event> {
    match v.get(key).and_then(Value::as_str) {
        Some(t) if !t.is_empty() => {
            let text = t.to_string();
            vec![if thinking {
                Event::ThinkingDelta { text }
            } else {
                Event::TextDelta { text }
            }]
        }
        _ => vec![],
    }
}

fn signature_event(v: &Value) -> Vec<Event> {
    match v.get("signature").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => vec![Event::ThinkingSignature {
            signature: s.to_string(),
        }],
        _ => vec![],
    }
}

/// A line's fields but `skip`, as an object.
fn s_extra_without(m: &serde_json::Map<String, Value>, skip: &[&str]) -> Value {
    Value::Object(
        m.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn str_field(m: &serde_json::Map<String, Value>, k: &str) -> String {
    m.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn u32_field(m: &serde_json::Map<String, Value>, k: &str) -> u32 {
    m.get(k)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::wire::parse_line;

    fn run(lines: &[&str]) -> Vec<Event> {
        let mut t = Translator::new();
        lines
            .iter()
            .flat_map(|l| t.on_line(&parse_line(l).unwrap()))
            .collect()
    }

    fn texts(events: &[Event]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                Event::TextDelta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    const START: &str = r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m1"}},"parent_tool_use_id":null}"#;
    const DELTA: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hel"}},"parent_tool_use_id":null}"#;
    const DELTA2: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}},"parent_tool_use_id":null}"#;
    const ASSISTANT: &str = r#"{"type":"assistant","message":{"id":"m1","model":"x","content":[{"type":"text","text":"hello"}]},"parent_tool_use_id":null}"#;
    const OK: &str = r#"{"type":"result","subtype":"success","is_error":false,"result":"hello","stop_reason":"end_turn","session_id":"s","usage":{"input_tokens":5,"output_tokens":2}}"#;

    #[test]
    fn streamed_text_is_not_doubled_by_the_assistant_line() {
        let ev = run(&[START, DELTA, DELTA2, ASSISTANT, OK]);
        assert_eq!(texts(&ev), "hello");
        match ev.last().unwrap() {
            Event::Done(s) => {
                assert_eq!(s.stop_reason, StopReason::EndTurn);
                assert_eq!(s.usage.input_tokens, 5);
                assert_eq!(s.usage.output_tokens, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_last_assistant_line_is_where_the_transcript_ends() {
        let with_uuid = r#"{"type":"assistant","uuid":"u-9","message":{"id":"m1","model":"x","content":[{"type":"text","text":"hello"}]},"parent_tool_use_id":null}"#;
        match run(&[START, DELTA, with_uuid, OK]).last().unwrap() {
            Event::Done(s) => assert_eq!(s.leaf.as_deref(), Some("u-9")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unstreamed_assistant_text_is_emitted_whole() {
        let ev = run(&[ASSISTANT, OK]);
        assert_eq!(texts(&ev), "hello");
    }

    #[test]
    fn synthetic_error_text_goes_into_the_error_not_the_answer() {
        let synthetic = r#"{"type":"assistant","message":{"id":"x","model":"<synthetic>","content":[{"type":"text","text":"API Error: 529 Overloaded"}]},"parent_tool_use_id":null}"#;
        let failed = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":529,"result":"API Error: 529 Overloaded","session_id":"s","usage":{}}"#;
        let ev = run(&[synthetic, failed]);
        assert_eq!(texts(&ev), "");
        assert!(matches!(
            ev.last().unwrap(),
            Event::Error(ClaudeError::Upstream {
                status: Some(529),
                ..
            })
        ));
        // ...but synthetic text of a successful turn (slash commands) is the answer.
        let ev = run(&[synthetic, OK]);
        assert_eq!(texts(&ev), "API Error: 529 Overloaded");
    }

    #[test]
    fn a_turn_reports_its_own_cost_not_the_process_total() {
        let result = |total: f64| {
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"result":"ok","total_cost_usd":{total},"usage":{{"input_tokens":3,"output_tokens":2}},"session_id":"s"}}"#
            )
        };
        let cost = |t: &mut Translator, total| {
            let line = parse_line(&result(total)).unwrap();
            match t.on_line(&line).pop() {
                Some(Event::Done(s)) => (s.cost_usd.unwrap(), t.process_cost().unwrap()),
                other => panic!("{other:?}"),
            }
        };
        let (first, total) = cost(&mut Translator::new(), 0.000669);
        assert_eq!((first, total), (0.000669, 0.000669));
        let (second, total) = cost(&mut Translator::after_cost(total), 0.002061);
        assert!((second - 0.001392).abs() < 1e-9, "{second}");
        assert_eq!(total, 0.002061);
    }

    #[test]
    fn a_prompt_over_the_context_window_is_its_own_error() {
        let failed = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":400,"result":"Prompt is too long · the request is ~250076 tokens (limit 200000)","session_id":"s"}"#;
        assert!(matches!(
            run(&[failed]).last().unwrap(),
            Event::Error(ClaudeError::PromptTooLong { .. })
        ));
    }

    #[test]
    fn subagent_lines_are_ignored() {
        let sub = r#"{"type":"assistant","message":{"id":"m9","content":[{"type":"text","text":"sub"}]},"parent_tool_use_id":"toolu_1"}"#;
        assert_eq!(texts(&run(&[sub, OK])), "");
    }

    #[test]
    fn subagent_work_and_tasks_are_nested_events() {
        let started = r#"{"type":"system","subtype":"task_started","task_id":"a4","tool_use_id":"toolu_P","description":"review","session_id":"s"}"#;
        let sub = r#"{"type":"assistant","message":{"id":"m9","content":[{"type":"tool_use","id":"t2","name":"Bash","input":{}}]},"parent_tool_use_id":"toolu_P"}"#;
        let res = r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":"x"}]},"parent_tool_use_id":"toolu_P"}"#;
        let note = r#"{"type":"system","subtype":"task_notification","task_id":"a4","tool_use_id":"toolu_P","status":"completed","summary":"done"}"#;
        let compact = r#"{"type":"system","subtype":"compact_boundary","compact_metadata":{"trigger":"manual","pre_tokens":900,"post_tokens":120}}"#;
        let updated = r#"{"type":"system","subtype":"task_updated","task_id":"a4","patch":{"status":"completed"}}"#;
        let ev = run(&[started, sub, res, note, compact, updated]);
        assert!(
            matches!(&ev[5], Event::Task { parent_tool_use_id: Some(p), .. } if p == "toolu_P"),
            "a task_updated names the call its task_started named: {:?}",
            ev[5]
        );
        match &ev[0] {
            Event::Task {
                subtype,
                task_id,
                parent_tool_use_id,
                detail,
            } => {
                assert_eq!(subtype, "task_started");
                assert_eq!(task_id, "a4");
                assert_eq!(parent_tool_use_id.as_deref(), Some("toolu_P"));
                assert_eq!(detail["description"], "review");
                assert!(detail.get("session_id").is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&ev[1], Event::Subagent { role, parent_tool_use_id, content }
            if role == "assistant" && parent_tool_use_id == "toolu_P" && content[0]["name"] == "Bash")
        );
        assert!(matches!(&ev[2], Event::Subagent { role, .. } if role == "user"));
        assert!(matches!(&ev[3], Event::Task { detail, .. } if detail["status"] == "completed"));
        assert!(matches!(
            &ev[4],
            Event::Compacted {
                pre_tokens: Some(900),
                post_tokens: Some(120),
                ..
            }
        ));
        assert_eq!(ev.len(), 6, "nothing reaches the main thread: {ev:?}");
    }

    #[test]
    fn tool_calls_results_thinking_and_retries() {
        let think = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}},"parent_tool_use_id":null}"#;
        let tool = r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}]},"parent_tool_use_id":null}"#;
        let result = r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"out","is_error":false}]},"parent_tool_use_id":null}"#;
        let retry = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":1500,"error_status":429,"error":"rate_limit"}"#;
        let failed = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"rate limited","session_id":"s"}"#;
        let ev = run(&[START, think, tool, result, retry, failed]);
        assert!(matches!(&ev[0], Event::StepStart { .. }));
        let ev = &ev[1..];
        assert!(matches!(&ev[0], Event::ThinkingDelta { text } if text == "hmm"));
        assert_eq!(ev.len(), 5);
        assert!(matches!(&ev[1], Event::ToolCall { name, .. } if name == "Bash"));
        assert!(matches!(&ev[2], Event::ToolResult { content, .. } if content == "out"));
        assert!(matches!(
            &ev[3],
            Event::Retry {
                error_status: Some(429),
                ..
            }
        ));
        assert!(matches!(
            &ev[4],
            Event::Error(ClaudeError::Upstream {
                status: Some(429),
                retry_after: Some(2),
                ..
            })
        ));
    }

    #[test]
    fn interruption_is_a_stop_not_an_error() {
        let aborted = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"s","terminal_reason":"aborted_streaming"}"#;
        let mut t = Translator::new();
        t.mark_interrupted();
        let ev = t.on_line(&parse_line(aborted).unwrap());
        assert!(matches!(&ev[0], Event::Done(s) if s.stop_reason == StopReason::Interrupted));
        // Without our interrupt the same line is a CLI failure.
        assert!(matches!(
            &run(&[aborted])[0],
            Event::Error(ClaudeError::Cli { .. })
        ));
    }

    #[test]
    fn streamed_tool_calls_and_step_ends() {
        let start = r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m2","usage":{"input_tokens":9,"output_tokens":1}}},"parent_tool_use_id":null}"#;
        let block = r#"{"type":"stream_event","event":{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t9","name":"mcp__client__f","input":{}}},"parent_tool_use_id":null}"#;
        let d1 = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}},"parent_tool_use_id":null}"#;
        let d2 = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":":1}"}},"parent_tool_use_id":null}"#;
        let md = r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":4}},"parent_tool_use_id":null}"#;
        let stop =
            r#"{"type":"stream_event","event":{"type":"message_stop"},"parent_tool_use_id":null}"#;
        let ev = run(&[start, block, d1, d2, md, stop]);
        assert!(
            matches!(&ev[0], Event::StepStart { usage } if usage.input_tokens == 9),
            "message_start reports the step's input tokens: {ev:?}"
        );
        let ev = &ev[1..];
        assert!(
            matches!(&ev[0], Event::ToolCallStart { id, name, .. } if id == "t9" && name == "mcp__client__f")
        );
        let args: String = ev
            .iter()
            .filter_map(|e| match e {
                Event::ToolCallDelta {
                    id, partial_json, ..
                } if id == "t9" => Some(partial_json.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, r#"{"a":1}"#);
        match ev.last().unwrap() {
            Event::StepEnd { stop_reason, usage } => {
                assert_eq!(stop_reason.as_deref(), Some("tool_use"));
                assert_eq!((usage.input_tokens, usage.output_tokens), (9, 4));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn thinking_signatures_pass_through_streamed_or_whole() {
        let sig = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqAbc="}},"parent_tool_use_id":null}"#;
        let ev = run(&[START, sig]);
        assert!(
            matches!(&ev[1], Event::ThinkingSignature { signature } if signature == "EqAbc="),
            "{ev:?}"
        );
        // A thinking block that never streamed brings its signature along.
        let whole = r#"{"type":"assistant","message":{"id":"m7","content":[{"type":"thinking","thinking":"t","signature":"EqXyz="}]},"parent_tool_use_id":null}"#;
        let ev = run(&[whole]);
        assert!(matches!(&ev[0], Event::ThinkingDelta { text } if text == "t"));
        assert!(matches!(&ev[1], Event::ThinkingSignature { signature } if signature == "EqXyz="));
        // An empty signature (a redacted or unsigned block) is no event.
        let empty = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":""}},"parent_tool_use_id":null}"#;
        assert_eq!(run(&[empty]).len(), 0);
    }

    #[test]
    fn structured_output_comes_just_before_done() {
        let res = r#"{"type":"result","subtype":"success","is_error":false,"result":"{\"a\":1}","stop_reason":"tool_use","structured_output":{"a":1},"session_id":"s"}"#;
        let ev = run(&[res]);
        assert!(matches!(&ev[0], Event::StructuredOutput { value } if value["a"] == 1));
        assert!(matches!(&ev[1], Event::Done(_)));
        assert_eq!(run(&[OK]).len(), 1, "no structured output, no event");
    }

    #[test]
    fn stop_reason_falls_back_to_message_delta() {
        let md = r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"max_tokens"}},"parent_tool_use_id":null}"#;
        let res = r#"{"type":"result","subtype":"success","is_error":false,"session_id":"s"}"#;
        let ev = run(&[md, res]);
        assert!(matches!(&ev[0], Event::Done(s) if s.stop_reason == StopReason::MaxTokens));
    }

    #[test]
    fn status_and_rate_limit_lines_become_events_but_requesting_does_not() {
        let requesting =
            r#"{"type":"system","subtype":"status","status":"requesting","session_id":"s"}"#;
        let compacting =
            r#"{"type":"system","subtype":"status","status":"compacting","session_id":"s"}"#;
        let over = r#"{"type":"system","subtype":"status","status":null,"compact_result":"success","session_id":"s"}"#;
        let limit = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","rateLimitType":"five_hour","utilization":0.9},"uuid":"u","session_id":"s"}"#;
        let ev = run(&[requesting, compacting, over, limit]);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(
            matches!(&ev[0], Event::Status { status: Some(s), compact_result: None } if s == "compacting")
        );
        assert!(
            matches!(&ev[1], Event::Status { status: None, compact_result: Some(r) } if r == "success")
        );
        assert!(matches!(&ev[2], Event::RateLimit { info } if info["status"] == "allowed_warning"));
    }
}

//! `ccgw-fake-claude`: a tiny stand-in for the Claude Code CLI, for benchmarks only.
//!
//! It speaks exactly the part of the CLI's stream-json and control protocol that the gateway
//! uses, with canned answers and configurable delays, so that the gateway's own cost can be
//! measured apart from the CLI's and the model's. It never replaces the real CLI in
//! correctness tests.
//!
//! Like the real CLI in `--input-format stream-json` mode it prints nothing until its first
//! input. It answers every `control_request` (`initialize`, `set_model`, `interrupt`, anything
//! else) with a successful `control_response`; it turns every `user` line into one turn
//! (`system/init`, the `stream_event`s of one streamed text message, the `assistant` line and a
//! `result`); it adds `"shouldQuery": false` user lines to the history with an empty result;
//! it reads `assistant` lines silently; and it exits 0 when stdin closes. Every command-line
//! flag is accepted and ignored, except that `--version` prints the pinned CLI version and
//! `--session-id`/`--resume`/`--model` are echoed back where the real CLI would.
//!
//! Environment:
//! - `FAKE_CLAUDE_CHUNKS`: text deltas per turn (default 10)
//! - `FAKE_CLAUDE_CHUNK_DELAY_MS`: pause between two deltas (default 0)
//! - `FAKE_CLAUDE_FIRST_DELAY_MS`: pause before the first output of a turn (default 0)
//! - `FAKE_CLAUDE_STARTUP_MS`: pause before reading stdin, a simulated cold start (default 0)

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const VERSION_LINE: &str = "2.1.197 (Claude Code)";
const DEFAULT_MODEL: &str = "claude-opus-4-8";

/// Delays and sizes, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FakeConfig {
    chunks: u32,
    chunk_delay: Duration,
    first_delay: Duration,
    startup: Duration,
}

impl FakeConfig {
    fn from_env(get: impl Fn(&str) -> Option<String>) -> FakeConfig {
        let num = |k: &str, default: u64| {
            get(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        FakeConfig {
            chunks: u32::try_from(num("FAKE_CLAUDE_CHUNKS", 10)).unwrap_or(u32::MAX),
            chunk_delay: Duration::from_millis(num("FAKE_CLAUDE_CHUNK_DELAY_MS", 0)),
            first_delay: Duration::from_millis(num("FAKE_CLAUDE_FIRST_DELAY_MS", 0)),
            startup: Duration::from_millis(num("FAKE_CLAUDE_STARTUP_MS", 0)),
        }
    }
}

/// What the command line sets that shows up in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    id: String,
    model: String,
    cwd: String,
}

impl Session {
    /// Reads `--session-id`, `--resume` and `--model`, in `--flag=value` or `--flag value` form.
    fn from_args(args: &[String]) -> Session {
        let value = |flag: &str| -> Option<String> {
            let eq = format!("{flag}=");
            args.iter().enumerate().find_map(|(i, a)| {
                if let Some(v) = a.strip_prefix(&eq) {
                    Some(v.to_string())
                } else if a == flag {
                    args.get(i + 1).cloned()
                } else {
                    None
                }
            })
        };
        let id = value("--session-id")
            .or_else(|| value("--resume"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let model = value("--model")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_MODEL.to_string());
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        Session { id, model, cwd }
    }
}

/// Builders for every line the fake prints. Pure, so they can be checked against the gateway's
/// own parser.
mod lines {
    use super::*;

    fn uid() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub fn control_success(request_id: &str, response: Value) -> Value {
        json!({
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request_id, "response": response},
        })
    }

    /// The `initialize` answer: an empty command list, as with `--setting-sources ""`.
    pub fn initialize_response() -> Value {
        json!({
            "commands": [],
            "agents": [],
            "output_style": "default",
            "available_output_styles": ["default"],
            "models": [],
            "account": {"apiKeySource": "none"},
            "pid": std::process::id(),
        })
    }

    pub fn init(s: &Session) -> Value {
        json!({
            "type": "system", "subtype": "init", "cwd": s.cwd, "session_id": s.id,
            "tools": [], "mcp_servers": [], "model": s.model, "permissionMode": "default",
            "slash_commands": [], "apiKeySource": "none", "claude_code_version": "2.1.197",
            "output_style": "default", "agents": [], "skills": [], "plugins": [], "uuid": uid(),
        })
    }

    fn stream_event(s: &Session, event: Value) -> Value {
        json!({
            "type": "stream_event", "event": event, "session_id": s.id,
            "parent_tool_use_id": null, "uuid": uid(),
        })
    }

    pub fn usage(input: u64, output: u64) -> Value {
        json!({
            "input_tokens": input, "output_tokens": output,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        })
    }

    pub fn message_start(s: &Session, msg_id: &str, input_tokens: u64) -> Value {
        stream_event(
            s,
            json!({"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": s.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage(input_tokens, 1),
            }}),
        )
    }

    pub fn block_start(s: &Session) -> Value {
        stream_event(
            s,
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )
    }

    pub fn text_delta(s: &Session, text: &str) -> Value {
        stream_event(
            s,
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        )
    }

    pub fn block_stop(s: &Session) -> Value {
        stream_event(s, json!({"type": "content_block_stop", "index": 0}))
    }

    pub fn message_delta(s: &Session, output_tokens: u64) -> Value {
        stream_event(
            s,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": output_tokens}}),
        )
    }

    pub fn message_stop(s: &Session) -> Value {
        stream_event(s, json!({"type": "message_stop"}))
    }

    pub fn assistant(s: &Session, msg_id: &str, text: &str, usage: Value) -> Value {
        json!({
            "type": "assistant",
            "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": s.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": null, "stop_sequence": null, "usage": usage,
            },
            "parent_tool_use_id": null, "session_id": s.id, "uuid": uid(),
        })
    }

    /// The user line the real CLI prints after an interrupt.
    pub fn interrupted_user(s: &Session) -> Value {
        json!({
            "type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}]},
            "parent_tool_use_id": null, "session_id": s.id, "uuid": uid(),
        })
    }

    pub fn result_success(
        s: &Session,
        text: &str,
        num_turns: u64,
        usage: Value,
        duration: Duration,
    ) -> Value {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        json!({
            "type": "result", "subtype": "success", "is_error": false, "api_error_status": null,
            "duration_ms": ms, "duration_api_ms": if num_turns == 0 { 0 } else { ms },
            "num_turns": num_turns, "result": text,
            "stop_reason": if num_turns == 0 { Value::Null } else { json!("end_turn") },
            "session_id": s.id, "total_cost_usd": 0.0, "usage": usage, "modelUsage": {},
            "permission_denials": [], "terminal_reason": "completed", "uuid": uid(),
        })
    }

    pub fn result_interrupted(s: &Session, duration: Duration) -> Value {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        json!({
            "type": "result", "subtype": "error_during_execution", "is_error": true,
            "api_error_status": null, "duration_ms": ms, "duration_api_ms": ms, "num_turns": 1,
            "result": null, "stop_reason": null, "session_id": s.id, "total_cost_usd": 0.0,
            "usage": usage(0, 0), "modelUsage": {}, "permission_denials": [],
            "terminal_reason": "aborted_streaming", "uuid": uid(),
            "errors": ["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"],
        })
    }

    /// The text of the `i`-th delta.
    pub fn chunk_text(i: u32) -> String {
        format!("w{i} ")
    }
}

/// What the stdin reader thread hands over.
enum Input {
    Line(String),
    Eof,
}

/// Lines waiting to be written; written in one `write` whenever the fake is about to wait.
struct Out {
    buf: String,
    sink: Box<dyn Write>,
}

impl Out {
    fn push(&mut self, v: &Value) {
        self.buf.push_str(&v.to_string());
        self.buf.push('\n');
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // A closed stdout means the gateway is gone; the next stdin read ends the fake.
        let _ = self.sink.write_all(self.buf.as_bytes());
        let _ = self.sink.flush();
        self.buf.clear();
    }
}

struct Fake {
    cfg: FakeConfig,
    session: Session,
    out: Out,
    input: Receiver<Input>,
    /// Lines that arrived during a turn and wait for the next one.
    queued: VecDeque<Input>,
    turns: u64,
}

/// How waiting inside a turn ended.
enum Waited {
    Elapsed,
    Interrupted,
}

impl Fake {
    fn next_input(&mut self) -> Input {
        if let Some(i) = self.queued.pop_front() {
            return i;
        }
        self.out.flush();
        self.input.recv().unwrap_or(Input::Eof)
    }

    fn run(&mut self) {
        loop {
            match self.next_input() {
                Input::Eof => break,
                Input::Line(l) => self.handle_line(&l),
            }
        }
        self.out.flush();
    }

    fn handle_line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        match v["type"].as_str() {
            Some("control_request") => {
                self.answer_control(&v);
            }
            Some("user") if v["shouldQuery"] == json!(false) => {
                let started = Instant::now();
                self.out.push(&lines::init(&self.session));
                self.out.push(&lines::result_success(
                    &self.session,
                    "",
                    0,
                    lines::usage(0, 0),
                    started.elapsed(),
                ));
            }
            Some("user") => self.turn(&v),
            // Replayed assistant messages join the history silently; answers to control
            // requests (the fake sends none) are ignored.
            _ => {}
        }
    }

    /// Answer a control request; true when it was an interrupt.
    fn answer_control(&mut self, v: &Value) -> bool {
        let id = v["request_id"].as_str().unwrap_or_default();
        let request = &v["request"];
        let response = match request["subtype"].as_str() {
            Some("initialize") => lines::initialize_response(),
            Some("set_model") => {
                if let Some(m) = request["model"].as_str() {
                    self.session.model = if m == "default" {
                        DEFAULT_MODEL.to_string()
                    } else {
                        m.to_string()
                    };
                }
                json!({})
            }
            _ => json!({}),
        };
        self.out.push(&lines::control_success(id, response));
        request["subtype"] == "interrupt"
    }

    /// Wait `d` while serving control requests; user lines and EOF wait for later.
    fn pause(&mut self, d: Duration) -> Waited {
        if d.is_zero() {
            return Waited::Elapsed;
        }
        self.out.flush();
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Elapsed;
            }
            match self.input.recv_timeout(left) {
                Ok(Input::Line(l)) => {
                    let v: Value = serde_json::from_str(&l).unwrap_or(Value::Null);
                    if v["type"] == "control_request" {
                        let interrupted = self.answer_control(&v);
                        self.out.flush();
                        if interrupted {
                            return Waited::Interrupted;
                        }
                    } else {
                        self.queued.push_back(Input::Line(l));
                    }
                }
                Ok(Input::Eof) | Err(RecvTimeoutError::Disconnected) => {
                    // Like the real CLI: finish the turn, then exit.
                    self.queued.push_back(Input::Eof);
                    std::thread::sleep(left);
                    return Waited::Elapsed;
                }
                Err(RecvTimeoutError::Timeout) => return Waited::Elapsed,
            }
        }
    }

    fn turn(&mut self, user: &Value) {
        let started = Instant::now();
        self.turns += 1;
        let s = self.session.clone();
        let msg_id = format!("msg_fake_{}_{}", std::process::id(), self.turns);
        let input_tokens = (user["message"]["content"].to_string().len() / 4).max(1) as u64;
        let output_tokens = u64::from(self.cfg.chunks);
        if let Waited::Interrupted = self.pause(self.cfg.first_delay) {
            return self.interrupted(&s, &msg_id, "", started);
        }
        self.out.push(&lines::init(&s));
        self.out
            .push(&lines::message_start(&s, &msg_id, input_tokens));
        self.out.push(&lines::block_start(&s));
        let mut text = String::new();
        for i in 0..self.cfg.chunks {
            if i > 0 {
                if let Waited::Interrupted = self.pause(self.cfg.chunk_delay) {
                    return self.interrupted(&s, &msg_id, &text, started);
                }
            }
            let piece = lines::chunk_text(i);
            self.out.push(&lines::text_delta(&s, &piece));
            text.push_str(&piece);
        }
        let usage = lines::usage(input_tokens, output_tokens);
        self.out.push(&lines::block_stop(&s));
        self.out.push(&lines::message_delta(&s, output_tokens));
        self.out.push(&lines::message_stop(&s));
        self.out
            .push(&lines::assistant(&s, &msg_id, &text, usage.clone()));
        self.out.push(&lines::result_success(
            &s,
            &text,
            1,
            usage,
            started.elapsed(),
        ));
        self.out.flush();
    }

    fn interrupted(&mut self, s: &Session, msg_id: &str, text: &str, started: Instant) {
        if !text.is_empty() {
            self.out
                .push(&lines::assistant(s, msg_id, text, lines::usage(0, 0)));
        }
        self.out.push(&lines::interrupted_user(s));
        self.out
            .push(&lines::result_interrupted(s, started.elapsed()));
        self.out.flush();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-v") {
        println!("{VERSION_LINE}");
        return;
    }
    let cfg = FakeConfig::from_env(|k| std::env::var(k).ok());
    let session = Session::from_args(&args);
    std::thread::sleep(cfg.startup);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if !line.trim().is_empty() && tx.send(Input::Line(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(Input::Eof);
    });
    let mut fake = Fake {
        cfg,
        session,
        out: Out {
            buf: String::new(),
            // Stdout's line buffering writes a batch of whole lines in one `write`.
            sink: Box::new(std::io::stdout()),
        },
        input: rx,
        queued: VecDeque::new(),
        turns: 0,
    };
    fake.run();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use ccgw::claude::translate::Translator;
    use ccgw::claude::wire::{parse_line, CliLine};
    use ccgw::claude::{Event, StopReason};

    /// Collects what the fake writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn session() -> Session {
        Session {
            id: "sess-1".into(),
            model: "m".into(),
            cwd: "/w".into(),
        }
    }

    /// A fake fed `input` (then EOF); returns it with what it prints.
    fn fake(chunks: u32, input: &[&str]) -> (Fake, Captured) {
        let (tx, rx) = mpsc::channel();
        for l in input {
            tx.send(Input::Line(l.to_string())).unwrap();
        }
        tx.send(Input::Eof).unwrap();
        let captured = Captured::default();
        let f = Fake {
            cfg: FakeConfig {
                chunks,
                chunk_delay: Duration::ZERO,
                first_delay: Duration::ZERO,
                startup: Duration::ZERO,
            },
            session: session(),
            out: Out {
                buf: String::new(),
                sink: Box::new(captured.clone()),
            },
            input: rx,
            queued: VecDeque::new(),
            turns: 0,
        };
        (f, captured)
    }

    /// Feed the fake's output through the gateway's own parser and translator.
    fn translate(t: &mut Translator, out: &str) -> Vec<Event> {
        out.lines()
            .flat_map(|l| t.on_line(&parse_line(l).expect("valid JSON line")))
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

    const USER: &str =
        r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"hi"}]}}"#;

    #[test]
    fn reads_config_and_flags() {
        let cfg = FakeConfig::from_env(|k| match k {
            "FAKE_CLAUDE_CHUNKS" => Some("3".into()),
            "FAKE_CLAUDE_CHUNK_DELAY_MS" => Some("25".into()),
            "FAKE_CLAUDE_STARTUP_MS" => Some("nonsense".into()),
            _ => None,
        });
        assert_eq!(cfg.chunks, 3);
        assert_eq!(cfg.chunk_delay, Duration::from_millis(25));
        assert_eq!(cfg.first_delay, Duration::ZERO);
        assert_eq!(cfg.startup, Duration::ZERO);
        let args: Vec<String> = ["--tools=", "--model=haiku", "--resume", "abc", "--verbose"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = Session::from_args(&args);
        assert_eq!((s.id.as_str(), s.model.as_str()), ("abc", "haiku"));
        let s = Session::from_args(&["--session-id=xyz".to_string()]);
        assert_eq!((s.id.as_str(), s.model.as_str()), ("xyz", DEFAULT_MODEL));
    }

    #[test]
    fn a_turn_translates_into_deltas_and_a_clean_end() {
        let (mut f, out) = fake(4, &[USER]);
        f.run();
        let events = translate(&mut Translator::new(), &out.text());
        assert_eq!(texts(&events), "w0 w1 w2 w3 ", "streamed once, not doubled");
        assert!(matches!(&events[0], Event::Init { session_id, .. } if session_id == "sess-1"));
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::StepEnd { stop_reason: Some(r), .. } if r == "end_turn")));
        match events.last().unwrap() {
            Event::Done(s) => {
                assert_eq!(s.stop_reason, StopReason::EndTurn);
                assert_eq!(s.usage.output_tokens, 4);
                assert!(s.usage.input_tokens > 0);
                assert_eq!(s.session_id, "sess-1");
                assert_eq!(s.result_text, "w0 w1 w2 w3 ");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn history_lines_get_an_empty_result_and_controls_succeed() {
        let (mut f, out) = fake(
            2,
            &[
                r#"{"type":"control_request","request_id":"r1","request":{"subtype":"initialize","systemPrompt":"S"}}"#,
                r#"{"type":"control_request","request_id":"r2","request":{"subtype":"set_model","model":"sonnet"}}"#,
                r#"{"type":"user","message":{"role":"user","content":"old"},"shouldQuery":false}"#,
                r#"{"type":"assistant","message":{"id":"x","model":"r","content":[]}}"#,
            ],
        );
        f.run();
        let text = out.text();
        let lines: Vec<CliLine> = text.lines().map(|l| parse_line(l).unwrap()).collect();
        assert_eq!(lines.len(), 4, "{text}");
        match &lines[0] {
            CliLine::ControlResponse(r) => {
                assert_eq!(
                    (r.subtype.as_str(), r.request_id.as_str()),
                    ("success", "r1")
                );
                assert_eq!(r.response.as_ref().unwrap()["commands"], json!([]));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&lines[1], CliLine::ControlResponse(r) if r.request_id == "r2"));
        assert_eq!(f.session.model, "sonnet");
        match &lines[3] {
            CliLine::Result(r) => {
                assert_eq!(r.num_turns, Some(0));
                assert_eq!(r.result.as_deref(), Some(""));
                assert!(!r.is_error);
            }
            other => panic!("{other:?}"),
        }
        let events = translate(&mut Translator::new(), &text);
        assert!(matches!(events.last().unwrap(), Event::Done(_)));
    }

    #[test]
    fn an_interrupt_mid_stream_ends_the_turn_as_interrupted() {
        let interrupt =
            r#"{"type":"control_request","request_id":"i1","request":{"subtype":"interrupt"}}"#;
        let (mut f, out) = fake(50, &[USER, interrupt]);
        f.cfg.chunk_delay = Duration::from_millis(20);
        f.run();
        let text = out.text();
        assert!(text.contains(r#""request_id":"i1""#));
        let mut t = Translator::new();
        t.mark_interrupted();
        let events = translate(&mut t, &text);
        // The interrupt was read during the first pause: one delta, then the end.
        assert_eq!(texts(&events), "w0 ");
        assert!(
            matches!(events.last().unwrap(), Event::Done(s) if s.stop_reason == StopReason::Interrupted)
        );
    }
}

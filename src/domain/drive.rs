//! The life of one turn, from the user line to a clean end: forward events, enforce stop
//! sequences and deadlines, notice a client that went away, pause on client tool calls, record
//! usage and tool calls, and leave the conversation continuable only after a clean end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::conversation::{
    assistant_message, escape_slash, Awaiting, Conversation, TurnError, TurnHandle,
};
use super::conversations::Conversations;
use super::tool_step::ToolStep;
use crate::claude::process::CliProcess;
use crate::claude::{ClaudeError, Event, StopReason, TurnSummary, Usage};
use crate::domain::turn::{history_key, Message, StopMatcher, TurnRequest};
use crate::store::{self, ToolCallRecord, UsageRecord};

impl Conversations {
    /// Send the new user message and start driving the turn.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        continued: bool,
    ) -> Result<TurnHandle, TurnError> {
        let prompt = if req.slash_commands {
            req.prompt.clone()
        } else {
            escape_slash(req.prompt.clone())
        };
        match process.start_turn(&Value::Array(prompt)).await {
            Ok(cli) => {
                conv.started = true;
                Ok(self.launch(conv, process, req, cli, Usage::default(), continued))
            }
            Err(e) => {
                self.end_failed(conv, &process);
                Err(e.into())
            }
        }
    }

    pub(crate) fn launch(
        self: &Arc<Self>,
        conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        cli: mpsc::UnboundedReceiver<Event>,
        reported: Usage,
        continued: bool,
    ) -> TurnHandle {
        tracing::info!(
            conversation = %conv.id,
            model = %req.model_id,
            continued,
            pid = process.pid(),
            client_tools = req.tools.len(),
            user = req.client_user.as_deref().unwrap_or(""),
            "turn started"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let conversation_id = conv.id.clone();
        let this = self.clone();
        let cli_wait = crate::domain::cli_wait::current_cli_wait();
        tokio::spawn(crate::domain::cli_wait::with_cli_wait(
            cli_wait.clone(),
            async move { this.drive(conv, process, req, cli, reported, tx).await },
        ));
        TurnHandle {
            conversation_id,
            events: rx,
            cli_wait,
        }
    }

    /// Run one turn to its end (or to a pause on client tools): forward events, enforce stop
    /// sequences and deadlines, notice a client that went away, and leave the conversation
    /// continuable only after a clean end.
    pub(crate) async fn drive(
        self: Arc<Self>,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        mut cli: mpsc::UnboundedReceiver<Event>,
        reported: Usage,
        out: mpsc::UnboundedSender<Event>,
    ) {
        let started = Instant::now();
        let pid = process.pid();
        // Native sessions' watchers see every event the requester sees.
        let bus = conv.bus.clone();
        let turn_id = uuid::Uuid::new_v4().to_string();
        let feed = self
            .feed
            .turn(super::feed::turn_meta(&conv, &req, &turn_id));
        feed.user_message(&req.prompt);
        let emit = |ev: Event| {
            feed.publish(&ev);
            if let Some(b) = &bus {
                let _ = b.send(ev.clone());
            }
            let _ = out.send(ev);
        };
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.cfg.turn_timeout_secs);
        let idle = Duration::from_secs(self.cfg.idle_timeout_secs);
        let mut stops = StopMatcher::new(req.stop.clone());
        let mut reply = String::new();
        let mut step = ToolStep::new(&req, &conv.id, &turn_id);
        let mut step_usage = Usage::default();

        enum End {
            Clean(TurnSummary),
            /// A model step ended calling client tools; the CLI turn waits for results.
            Pause(Vec<(String, String, Value)>),
            /// The CLI turn already ended with this error.
            CliError(ClaudeError),
            /// We end the turn early: send this (or nothing, when the client is gone).
            Abort(Option<ClaudeError>),
            Stop(String),
        }

        let end = loop {
            let next = tokio::select! {
                r = tokio::time::timeout(idle, cli.recv()) => r,
                _ = tokio::time::sleep_until(deadline) => break End::Abort(Some(ClaudeError::Timeout {
                    what: format!("the turn took longer than {} s", self.cfg.turn_timeout_secs),
                })),
                _ = out.closed() => break End::Abort(None),
            };
            let ev = match next {
                Err(_) => {
                    break End::Abort(Some(ClaudeError::Timeout {
                        what: format!("no output from the CLI for {} s", idle.as_secs()),
                    }))
                }
                Ok(None) => {
                    break End::CliError(ClaudeError::protocol("the CLI's event stream ended"))
                }
                Ok(Some(ev)) => ev,
            };
            match ev {
                // A 401 is retried for minutes by the CLI and never heals by itself.
                Event::Retry {
                    error_status: Some(401),
                    ..
                } => {
                    break End::Abort(Some(ClaudeError::Upstream {
                        status: Some(401),
                        message: "the upstream API rejected the credentials (401)".into(),
                        retry_after: None,
                    }))
                }
                Event::TextDelta { text } => {
                    let shown = stops.push(&text);
                    if !shown.is_empty() {
                        reply.push_str(&shown);
                        emit(Event::TextDelta { text: shown });
                    }
                    if let Some(s) = stops.matched() {
                        break End::Stop(s.to_string());
                    }
                }
                Event::StepEnd { stop_reason, usage } => {
                    feed.publish(&Event::StepEnd {
                        stop_reason: stop_reason.clone(),
                        usage,
                    });
                    step_usage.input_tokens += usage.input_tokens;
                    step_usage.output_tokens += usage.output_tokens;
                    let calls = step.take_calls();
                    if stop_reason.as_deref() == Some("tool_use") && !calls.is_empty() {
                        let rest = stops.finish();
                        if !rest.is_empty() {
                            reply.push_str(&rest);
                            emit(Event::TextDelta { text: rest });
                        }
                        break End::Pause(calls);
                    }
                }
                Event::Done(mut summary) => {
                    let rest = stops.finish();
                    if !rest.is_empty() {
                        reply.push_str(&rest);
                        emit(Event::TextDelta { text: rest });
                    }
                    summary.usage = minus(summary.usage, reported);
                    break End::Clean(summary);
                }
                Event::Error(e) => break End::CliError(e),
                other => {
                    for ev in step.route(other, conv.tool_server.as_deref(), &conv.id) {
                        emit(ev);
                    }
                }
            }
        };
        // Until here the turn was the CLI's; counted before `Done` goes out (see `metrics`).
        crate::domain::cli_wait::add_cli_wait(started.elapsed());

        let outcome = match end {
            // The conversation is registered under its new history before the client hears the
            // turn is done, so an immediate follow-up finds its live process.
            End::Clean(summary) => {
                if !summary.session_id.is_empty() {
                    conv.cli_session_id = summary.session_id.clone();
                }
                let usage = usage_record(
                    &conv,
                    &req,
                    &turn_id,
                    summary.usage,
                    summary.cost_usd,
                    started,
                );
                let calls = step.take_records();
                self.keep(
                    conv,
                    process,
                    &req,
                    assistant_message(&reply, &[]),
                    None,
                    usage,
                    calls,
                );
                emit(Event::Done(summary));
                "completed"
            }
            End::Pause(calls) => {
                let usage = step_usage;
                let done = Event::Done(TurnSummary {
                    stop_reason: StopReason::ToolUse,
                    usage,
                    ..empty_summary(&conv)
                });
                let awaiting = Awaiting {
                    cli,
                    pending: calls.iter().map(|(id, _, _)| id.clone()).collect(),
                    calls: calls
                        .iter()
                        .map(|(id, name, input)| {
                            (id.clone(), (name.clone(), input.to_string().len()))
                        })
                        .collect(),
                    since: Instant::now(),
                    reported: plus(reported, usage),
                };
                let usage = usage_record(&conv, &req, &turn_id, usage, None, started);
                let records = step.take_records();
                self.keep(
                    conv,
                    process,
                    &req,
                    assistant_message(&reply, &calls),
                    Some(awaiting),
                    usage,
                    records,
                );
                emit(done);
                "tool_calls"
            }
            End::CliError(e) => {
                let label = error_label(&e);
                emit(Event::Error(e));
                self.end_failed(conv, &process);
                label
            }
            End::Stop(seq) => {
                let summary = interrupt_and_wait(&process, &mut cli).await;
                emit(Event::Done(TurnSummary {
                    stop_reason: StopReason::StopSequence(seq),
                    ..summary.unwrap_or_else(|| empty_summary(&conv))
                }));
                self.end_failed(conv, &process);
                "stop_sequence"
            }
            End::Abort(err) => {
                let label = match &err {
                    Some(e) => error_label(e),
                    None => "client_disconnected",
                };
                if let Some(s) = &conv.tool_server {
                    s.cancel_all();
                }
                let _ = interrupt_and_wait(&process, &mut cli).await;
                if let Some(e) = err {
                    emit(Event::Error(e));
                }
                self.end_failed(conv, &process);
                label
            }
        };
        tracing::info!(
            pid,
            outcome,
            duration_ms = started.elapsed().as_millis() as u64,
            "turn ended"
        );
    }

    /// The conversation continues from its new history (possibly paused on tool calls).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn keep(
        &self,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: &TurnRequest,
        reply: Message,
        awaiting: Option<Awaiting>,
        usage: UsageRecord,
        tool_calls: Vec<ToolCallRecord>,
    ) {
        let prompt = Message::user(req.prompt.clone());
        let key = history_key(
            conv.system.as_deref(),
            req.history.iter().chain([&prompt, &reply]),
        );
        self.pool.release(&process);
        conv.process = Some(process);
        conv.awaiting = awaiting;
        conv.last_used = Instant::now();
        self.persist_turn(
            &conv,
            (conv.native.is_none() && conv.resumable && conv.awaiting.is_none())
                .then_some(key.clone()),
            usage,
            tool_calls,
        );
        conv.persisted = true;
        if conv.native.is_some() {
            let status = if conv.awaiting.is_some() {
                "awaiting_tools"
            } else {
                "idle"
            };
            self.return_session(conv, status);
            return;
        }
        self.registry().insert(key, conv);
    }

    /// Record a finished turn: the conversation (created on its first turn), the history key
    /// it now ends at (when a restart could continue it), its usage and its tool calls. In the
    /// background and in this order, since the records refer to the conversation.
    pub(crate) fn persist_turn(
        &self,
        conv: &Conversation,
        key: Option<String>,
        usage: UsageRecord,
        tool_calls: Vec<ToolCallRecord>,
    ) {
        let store = self.store.clone();
        let rec = (!conv.persisted && conv.native.is_none()).then(|| store::Session {
            id: conv.id.clone(),
            cli_session_id: conv.cli_session_id.clone(),
            workspace: conv.workspace.display().to_string(),
            workspace_is_temp: conv.workspace_is_temp,
            model: conv.model_id.clone(),
            system_prompt: conv.system.clone(),
            source: conv.source.clone(),
            ..store::Session::new("", "", "")
        });
        let (id, native) = (conv.id.clone(), conv.native.is_some());
        let status = if conv.awaiting.is_some() {
            store::status::AWAITING_TOOLS
        } else {
            store::status::IDLE
        };
        self.write(async move {
            let result = async {
                if let Some(rec) = rec {
                    store.create_session(&rec).await?;
                } else if !native {
                    if let Some(mut s) = store.get_session(&id).await? {
                        s.status = status.to_string();
                        store.update_session(&s).await?;
                    }
                }
                if !native {
                    store.set_history_key(&id, key.as_deref()).await?;
                }
                store.record_usage(&usage).await?;
                for c in &tool_calls {
                    store.record_tool_call(c).await?;
                }
                Ok::<(), store::StoreError>(())
            };
            if let Err(e) = result.await {
                tracing::warn!(conversation = %id, error = %e, "could not record a turn");
            }
        });
    }

    /// A turn that did not end cleanly: a compatible-API conversation is dropped (its CLI
    /// history no longer matches the client's); a native session keeps its session and loses
    /// only its process.
    pub(crate) fn end_failed(&self, mut conv: Conversation, process: &Arc<CliProcess>) {
        self.pool.retire(process);
        if conv.native.is_some() {
            conv.process = None;
            conv.awaiting = None;
            self.return_session(conv, "error");
        } else {
            self.forget(conv);
        }
    }
}

fn usage_record(
    conv: &Conversation,
    req: &TurnRequest,
    turn_id: &str,
    usage: Usage,
    cost_usd: Option<f64>,
    started: Instant,
) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::new_v4().to_string(),
        session_id: conv.id.clone(),
        turn_id: turn_id.to_string(),
        model: req.model_id.clone(),
        input_tokens: usage.input_tokens as i64,
        output_tokens: usage.output_tokens as i64,
        cache_creation_input_tokens: usage.cache_creation_input_tokens as i64,
        cache_read_input_tokens: usage.cache_read_input_tokens as i64,
        cost_usd,
        duration_ms: started.elapsed().as_millis() as i64,
        created_at: store::now_millis(),
    }
}

fn minus(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_sub(b.input_tokens),
        output_tokens: a.output_tokens.saturating_sub(b.output_tokens),
        cache_creation_input_tokens: a
            .cache_creation_input_tokens
            .saturating_sub(b.cache_creation_input_tokens),
        cache_read_input_tokens: a
            .cache_read_input_tokens
            .saturating_sub(b.cache_read_input_tokens),
    }
}

fn plus(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    }
}

/// Interrupt the CLI's turn and wait briefly for it to end; returns its summary if it came.
async fn interrupt_and_wait(
    process: &CliProcess,
    cli: &mut mpsc::UnboundedReceiver<Event>,
) -> Option<TurnSummary> {
    if let Err(e) = process.interrupt().await {
        tracing::debug!(pid = process.pid(), error = %e, "interrupt failed");
        return None;
    }
    let wait = async {
        while let Some(ev) = cli.recv().await {
            match ev {
                Event::Done(s) => return Some(s),
                Event::Error(_) => return None,
                _ => {}
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .ok()
        .flatten()
}

fn empty_summary(conv: &Conversation) -> TurnSummary {
    TurnSummary {
        stop_reason: StopReason::Interrupted,
        usage: Default::default(),
        cost_usd: None,
        duration_ms: None,
        num_turns: None,
        session_id: conv.cli_session_id.clone(),
        result_text: String::new(),
    }
}

fn error_label(e: &ClaudeError) -> &'static str {
    match e {
        ClaudeError::Spawn { .. } => "spawn_failed",
        ClaudeError::Upstream { .. } => "upstream_error",
        ClaudeError::Cli { .. } => "cli_error",
        ClaudeError::Exited { .. } => "cli_exited",
        ClaudeError::Timeout { .. } => "timeout",
        ClaudeError::Protocol { .. } => "protocol_error",
        ClaudeError::AtCapacity { .. } => "at_capacity",
    }
}

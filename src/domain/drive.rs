//! The life of one turn, from the user line to a clean end: forward events, enforce stop
//! sequences and deadlines, notice a client that went away, pause on client tool calls, record
//! usage and tool calls, and leave the conversation continuable only after a clean end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scopeguard::ScopeGuard;
use serde_json::Value;
use tokio::sync::mpsc;

use super::conversation::{escape_slash, Awaiting, Conversation, TurnError, TurnHandle};
use super::conversations::{Conversations, Held, Stage};
use super::drain::Phase;
use super::outlet::{outlet, Gone, History, Outlet};
use super::tool_step::ToolStep;
use crate::claude::pool::Lease;
use crate::claude::process::CliProcess;
use crate::claude::{ClaudeError, Event, StopReason, TurnSummary, Usage};
use crate::domain::history_key::{history_key, KeyWriter};
use crate::domain::turn::{Message, StopMatcher, TurnRequest};
use crate::store::{self, ToolCallRecord, TurnRecord, TurnRow, UsageRecord};
use tracing::Instrument as _;

impl Conversations {
    /// Send the new user message and start driving the turn. Until the line is written the
    /// request can still be dropped: the guard and the lease then give everything back.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        conv: Held,
        process: Lease,
        req: TurnRequest,
        continued: bool,
    ) -> Result<TurnHandle, TurnError> {
        let prompt = if req.slash_commands {
            req.prompt.clone()
        } else {
            escape_slash(req.prompt.clone())
        };
        self.stage(Stage::Begin).await;
        let started = process
            .start_turn(&Value::Array(prompt), &conv.turn_mark)
            .await;
        let conv = ScopeGuard::into_inner(conv);
        let process = process.hand_on();
        match started {
            Ok(cli) => Ok(self.launch(conv, process, req, cli, Usage::default(), continued)),
            Err(e) => {
                self.end_failed(conv, &process, &req);
                Err(e.into())
            }
        }
    }

    pub(crate) fn launch(
        self: &Arc<Self>,
        conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        cli: mpsc::Receiver<Event>,
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
        let turn_id = uuid::Uuid::new_v4().to_string();
        let lag = Duration::from_secs(self.cfg.stream_lag_timeout_secs);
        let (store, writes) = (self.store.clone(), self.writes.clone());
        let history = match conv.native.clone() {
            Some(session) => History::native(store, writes, session, turn_id.clone()),
            None => History::compatible(
                store,
                writes,
                conv.id.clone(),
                turn_id.clone(),
                conv.source.clone(),
                req.model_id.clone(),
                conv.owner.clone(),
            ),
        };
        let feed = self
            .feed
            .turn(super::feed::turn_meta(&conv, &req, &turn_id));
        let (tx, rx) = outlet(conv.bus.clone(), Some(history), lag);
        let mut tx = tx.with_feed(feed);
        tx.user_message(&req.prompt);
        let conversation_id = conv.id.clone();
        let this = self.clone();
        let cli_wait = crate::domain::cli_wait::current_cli_wait();
        // The turn's log lines (its tool calls, its end) carry the request's span, and so its
        // request id, although the turn outlives the handler that started it.
        tokio::spawn(
            crate::domain::cli_wait::with_cli_wait(cli_wait.clone(), async move {
                if conv.native.is_some() {
                    // Watchers and the history see what was asked, before anything the CLI
                    // answers.
                    tx.announce(Event::UserMessage {
                        content: Value::Array(req.prompt.clone()),
                    })
                    .await;
                }
                this.drive(conv, process, req, cli, reported, tx, turn_id)
                    .await
            })
            .instrument(tracing::Span::current()),
        );
        TurnHandle {
            conversation_id,
            events: rx,
            cli_wait,
        }
    }

    /// Run one turn to its end (or to a pause on client tools): forward events, enforce stop
    /// sequences and deadlines, notice a client that went away, and leave the conversation
    /// continuable only after a clean end.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn drive(
        self: Arc<Self>,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        mut cli: mpsc::Receiver<Event>,
        reported: Usage,
        mut out: Outlet,
        turn_id: String,
    ) {
        let started = Instant::now();
        let pid = process.pid();
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.cfg.turn_timeout_secs);
        let idle = Duration::from_secs(self.cfg.idle_timeout_secs);
        let mut stops = StopMatcher::new(req.stop.clone());
        // The history key the conversation will have after this turn, hashed as the reply
        // streams: a long answer is never held here.
        let mut reply = {
            let mut k = KeyWriter::new(conv.system.as_deref());
            for m in req
                .history
                .iter()
                .chain([&Message::user(req.prompt.clone())])
            {
                k.message(m);
            }
            k.reply()
        };
        let mut step = ToolStep::new(&req, &conv.id, &turn_id);
        let mut step_usage = Usage::default();
        // A stopping gateway lets this turn finish within its drain, then interrupts it: the
        // CLI ends the turn, and it is recorded like any other, its session resumable.
        let _running = self.drain.turn();
        let mut phase = self.drain.subscribe();
        let mut shutdown = false;
        // Held until the turn's records are written (its drop releases it behind them). A
        // turn that loses it stops: another instance may be starting the session's CLI.
        let mut lease = conv.lease.take();
        // Without a lease (a paused turn resumed), a token that is never cancelled.
        let lost = lease.as_ref().map(|l| l.lost_token()).unwrap_or_default();

        let end = loop {
            let next = tokio::select! {
                _ = super::drain::reached(&mut phase, Phase::Interrupting), if !shutdown => {
                    shutdown = true;
                    tracing::info!(pid, "the gateway is shutting down: interrupting the turn");
                    if let Err(e) = process.interrupt().await {
                        break End::CliError(e);
                    }
                    continue;
                }
                r = tokio::time::timeout(idle, cli.recv()) => r,
                _ = tokio::time::sleep_until(deadline) => break End::Abort(Some(ClaudeError::Timeout {
                    what: format!("the turn took longer than {} s", self.cfg.turn_timeout_secs),
                })),
                _ = out.closed() => break End::Abort(None),
                _ = lost.cancelled() => break End::Abort(Some(ClaudeError::Timeout {
                    // Its renewal deadline passed, or another instance took it after a stall.
                    what: "this instance could not keep the session's lease (the store was \
                           unreachable, or another instance took the session over); the turn \
                           was stopped".into(),
                })),
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
                        reply.push(&shown);
                        if let Err(g) = out.send(Event::TextDelta { text: shown }).await {
                            break gone(&out, g);
                        }
                    }
                    if let Some(s) = stops.matched() {
                        break End::Stop(s.to_string());
                    }
                }
                Event::StepEnd { stop_reason, usage } => {
                    out.publish(&Event::StepEnd {
                        stop_reason: stop_reason.clone(),
                        usage,
                    });
                    step_usage.input_tokens += usage.input_tokens;
                    step_usage.output_tokens += usage.output_tokens;
                    let calls = step.take_calls();
                    if stop_reason.as_deref() == Some("tool_use") && !calls.is_empty() {
                        let rest = stops.finish();
                        if !rest.is_empty() {
                            reply.push(&rest);
                            if let Err(g) = out.send(Event::TextDelta { text: rest }).await {
                                break gone(&out, g);
                            }
                        }
                        break End::Pause(calls);
                    }
                }
                Event::Done(mut summary) => {
                    let rest = stops.finish();
                    if !rest.is_empty() {
                        reply.push(&rest);
                        if let Err(g) = out.send(Event::TextDelta { text: rest }).await {
                            break gone(&out, g);
                        }
                    }
                    summary.usage = minus(summary.usage, reported);
                    if shutdown {
                        summary.stop_reason = StopReason::Shutdown;
                    }
                    break End::Clean(summary);
                }
                Event::Error(e) => break End::CliError(e),
                other => {
                    if let Some(session) = &conv.native {
                        self.tasks.observe(session, &other);
                    }
                    let mut failed = None;
                    for ev in step.route(other, conv.tool_server.as_deref(), &conv.id) {
                        if let Err(g) = out.send(ev).await {
                            failed = Some(g);
                            break;
                        }
                    }
                    if let Some(g) = failed {
                        break gone(&out, g);
                    }
                }
            }
        };
        if let Some(session) = &conv.native {
            self.tasks.forget(session);
        }
        // Until here the turn was the CLI's; counted before `Done` goes out (see `metrics`).
        crate::domain::cli_wait::add_cli_wait(started.elapsed());

        let outcome = match end {
            // The conversation is registered under its new history before the client hears the
            // turn is done, so an immediate follow-up finds its live process.
            End::Clean(summary) => {
                if !summary.session_id.is_empty() {
                    conv.cli_session_id = summary.session_id.clone();
                }
                // The transcript now ends with this turn; the next one gets a new mark.
                conv.started = true;
                if summary.leaf.is_some() {
                    conv.leaf = summary.leaf.clone();
                }
                conv.turn_mark = uuid::Uuid::new_v4().to_string();
                let usage = self.meter(
                    &conv,
                    &req,
                    &turn_id,
                    (summary.usage, summary.cost_usd, true),
                    started,
                    "completed",
                );
                let calls = step.take_records();
                // What the client is told is durable before it is told: the history entries,
                // the conversation's record and its history key are committed first.
                let done = Event::Done(summary);
                out.record(&done).await;
                let record = self.keep(conv, process, reply.finish(&[]), None, (usage, calls));
                self.commit_turn(&mut out, &done, record).await;
                // Released behind the records, before the client hears: its next request may
                // reach another instance.
                drop(lease.take());
                out.deliver(done).await;
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
                // Unpriced: the turn's cost comes when it ends, after the client's results.
                let usage = self.meter(
                    &conv,
                    &req,
                    &turn_id,
                    (usage, None, false),
                    started,
                    "tool_calls",
                );
                let records = step.take_records();
                out.record(&done).await;
                let record = self.keep(
                    conv,
                    process,
                    reply.finish(&calls),
                    Some(awaiting),
                    (usage, records),
                );
                self.commit_turn(&mut out, &done, record).await;
                // Released behind the records, before the client hears: its next request may
                // reach another instance.
                drop(lease.take());
                out.deliver(done).await;
                "tool_calls"
            }
            End::CliError(e) => {
                let label = error_label(&e);
                let usage = self.meter(
                    &conv,
                    &req,
                    &turn_id,
                    (Usage::default(), None, false),
                    started,
                    label,
                );
                self.finish_failed(&mut out, &conv, Some(Event::Error(e)), usage)
                    .await;
                self.record_calls(&conv, step.take_records_ending("error"));
                self.end_failed(conv, &process, &req);
                label
            }
            End::Stop(seq) => {
                let summary = interrupt_and_wait(&process, &mut cli).await;
                let usage = self.meter(
                    &conv,
                    &req,
                    &turn_id,
                    spent(summary.as_ref(), reported),
                    started,
                    "stop_sequence",
                );
                let done = Event::Done(TurnSummary {
                    stop_reason: StopReason::StopSequence(seq),
                    ..summary.unwrap_or_else(|| empty_summary(&conv))
                });
                self.finish_failed(&mut out, &conv, Some(done), usage).await;
                self.record_calls(&conv, step.take_records_ending("interrupted"));
                self.end_failed(conv, &process, &req);
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
                let summary = interrupt_and_wait(&process, &mut cli).await;
                // An interrupted turn still cost what the upstream did before it ended.
                let usage = self.meter(
                    &conv,
                    &req,
                    &turn_id,
                    spent(summary.as_ref(), reported),
                    started,
                    label,
                );
                self.finish_failed(&mut out, &conv, err.map(Event::Error), usage)
                    .await;
                self.record_calls(&conv, step.take_records_ending("interrupted"));
                if lost.is_cancelled() {
                    self.end_fenced(conv, &process);
                } else {
                    self.end_failed(conv, &process, &req);
                }
                label
            }
        };
        // A turn that did not end cleanly: released behind every record it queued.
        drop(lease);
        tracing::info!(
            pid,
            outcome,
            duration_ms = started.elapsed().as_millis() as u64,
            "turn ended"
        );
    }

    /// Record the tool calls of a turn that did not end cleanly, behind its history's writes
    /// (which create a conversation's record when its first turn failed). A conversation
    /// that has no record has nothing to hang them on.
    fn record_calls(&self, conv: &Conversation, calls: Vec<ToolCallRecord>) {
        if calls.is_empty() {
            return;
        }
        let (store, id) = (self.store.clone(), conv.id.clone());
        self.write(async move {
            if !matches!(store.get_session(&id).await, Ok(Some(_))) {
                tracing::debug!(conversation = %id, calls = calls.len(), "tool calls of a turn with no record kept");
                return;
            }
            for c in &calls {
                if let Err(e) = store.record_tool_call(c).await {
                    tracing::warn!(conversation = %id, error = %e, "could not record a tool call");
                }
            }
        });
    }

    /// The conversation continues from its new history (possibly paused on tool calls). What
    /// the turn leaves to record is returned, for the turn to commit before its client hears
    /// (see [`Outlet::commit_turn`]).
    pub(crate) fn keep(
        &self,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        key: String,
        awaiting: Option<Awaiting>,
        spent: (UsageRecord, Vec<ToolCallRecord>),
    ) -> TurnRecord {
        self.pool.release(&process);
        conv.process = Some(process);
        conv.awaiting = awaiting;
        conv.last_used = Instant::now();
        let record = turn_record(
            &conv,
            (conv.native.is_none() && conv.resumable && conv.awaiting.is_none())
                .then_some(key.clone()),
            spent,
        );
        conv.persisted = true;
        if conv.native.is_some() {
            let status = if conv.awaiting.is_some() {
                "awaiting_tools"
            } else {
                "idle"
            };
            self.return_session(conv, status);
        } else {
            self.park(key, conv);
        }
        record
    }
}

impl Conversations {
    /// Write a cleanly ended turn's records with its history entries, in one transaction, and
    /// wait until they (and every write before them) are in the store: what the client is
    /// about to be told survives a crash right after.
    async fn commit_turn(&self, out: &mut Outlet, last: &Event, mut record: TurnRecord) {
        out.add_history(last, &mut record);
        let store = self.store.clone();
        self.write(async move {
            if let Err(e) = store.record_turn(&record).await {
                tracing::warn!(conversation = %record.session_id, error = %e, "could not record a turn");
            }
        });
        self.flush_writes().await;
    }
}

/// A finished turn's records: the conversation (created on its first turn, else where its
/// transcript now ends), the history key it now ends at (when a restart could continue it),
/// its usage and its tool calls. A native session's row is its own (kept by its turn's
/// start and end); only the usage and the tool calls are the turn's.
fn turn_record(
    conv: &Conversation,
    key: Option<String>,
    (usage, tool_calls): (UsageRecord, Vec<ToolCallRecord>),
) -> TurnRecord {
    let native = conv.native.is_some();
    let row = if native {
        TurnRow::Unchanged
    } else if !conv.persisted {
        TurnRow::Create(store::Session {
            id: conv.id.clone(),
            cli_session_id: conv.cli_session_id.clone(),
            workspace: conv.workspace.display().to_string(),
            workspace_is_temp: conv.workspace_is_temp,
            model: conv.model_id.clone(),
            system_prompt: conv.system.clone(),
            source: conv.source.clone(),
            owner: conv.owner.clone(),
            transcript_leaf: conv.leaf.clone(),
            turn_mark: Some(conv.turn_mark.clone()),
            ..store::Session::new("", "", "")
        })
    } else {
        let status = if conv.awaiting.is_some() {
            store::status::AWAITING_TOOLS
        } else {
            store::status::IDLE
        };
        TurnRow::End(store::TurnEnd {
            status: status.to_string(),
            cli_session_id: conv.cli_session_id.clone(),
            workspace: conv.workspace.display().to_string(),
            transcript_leaf: conv.leaf.clone(),
            turn_mark: Some(conv.turn_mark.clone()),
        })
    };
    TurnRecord {
        session_id: conv.id.clone(),
        row,
        history_key: (!native).then_some(key),
        usage: Some(usage),
        tool_calls,
        ..TurnRecord::default()
    }
}

impl Conversations {
    /// A turn that did not end cleanly. Its process is retired: the CLI's history now holds
    /// a turn the client never got. The conversation stays, as of its last clean turn: its
    /// next process resumes the transcript without the failed turn (cut at its mark). A
    /// compatible-API conversation goes back under the history it had before the turn (when
    /// it can resume at all); a native session keeps its session.
    pub(crate) fn end_failed(
        &self,
        mut conv: Conversation,
        process: &Arc<CliProcess>,
        req: &TurnRequest,
    ) {
        conv.awaiting = None;
        if let Some(s) = conv.tool_server.take() {
            s.cancel_all();
        }
        if !conv.started {
            // Nothing to resume; whatever the CLI wrote under this id is not the session's.
            conv.cli_session_id = uuid::Uuid::new_v4().to_string();
        }
        if conv.native.is_none() && !(conv.started && conv.resumable) {
            // Forgotten with its process, so its workspace goes once the process is gone.
            conv.process = Some(process.clone());
            self.forget(conv);
            return;
        }
        self.pool.retire(process);
        conv.process = None;
        if conv.native.is_some() {
            self.return_session(conv, "error");
        } else {
            let key = history_key(conv.system.as_deref(), &req.history);
            self.park(key, conv);
        }
    }
}

impl Conversations {
    /// A turn stopped because its lease was lost: another instance may hold the session now,
    /// so nothing of it is saved here (the record is the new holder's). Its process is retired,
    /// and its next turn here reads the session again from the store.
    fn end_fenced(&self, mut conv: Conversation, process: &Arc<CliProcess>) {
        tracing::warn!(conversation = %conv.id, "turn stopped: its session's lease was lost");
        self.pool.retire(process);
        conv.process = None;
        conv.awaiting = None;
        conv.lease_epoch = None;
        if conv.native.is_some() {
            self.put_back_unchanged(conv, store::status::IDLE);
        } else {
            self.drop_stale(conv);
        }
    }
}

/// How a turn's loop ended.
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

/// The end of a turn whose requester cannot take events.
fn gone(out: &Outlet, g: Gone) -> End {
    End::Abort(match g {
        Gone::Left => None,
        Gone::Lagged => Some(out.lag_error()),
    })
}

impl Conversations {
    /// A turn's usage row, counted at once against its key's tokens per minute and budget
    /// (before the client hears the turn ended, so its next request sees them). `spent` is
    /// the usage, the upstream's cost, and whether the price table fills in a missing cost.
    fn meter(
        &self,
        conv: &Conversation,
        req: &TurnRequest,
        turn_id: &str,
        spent: (Usage, Option<f64>, bool),
        started: Instant,
        outcome: &str,
    ) -> UsageRecord {
        let (usage, cost_usd, priced) = spent;
        let cost_usd = cost_usd.or_else(|| {
            priced
                .then(|| {
                    self.limits.price(
                        &req.model_id,
                        usage.input_tokens,
                        usage.output_tokens,
                        usage.cache_read_input_tokens,
                        usage.cache_creation_input_tokens,
                    )
                })
                .flatten()
        });
        // The conversation's owner (a native session's is set from its record).
        let owner = conv.owner.clone();
        let rec = UsageRecord {
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
            owner,
            end_user: req.client_user.clone(),
            outcome: outcome.to_string(),
        };
        self.limits.record(
            &rec.owner,
            usage.input_tokens + usage.output_tokens,
            rec.cost_usd.unwrap_or(0.0),
            rec.created_at,
        );
        rec
    }

    /// The last event of a turn that did not end cleanly (`None`: nobody to tell), with its
    /// usage row stored before the client is told, so a report asked for next counts it.
    async fn finish_failed(
        &self,
        out: &mut Outlet,
        conv: &Conversation,
        last: Option<Event>,
        usage: UsageRecord,
    ) {
        self.record_failed_usage(conv, usage);
        self.flush_writes().await;
        if let Some(ev) = last {
            out.finish(ev).await;
        }
    }

    /// The usage row of a turn that did not end cleanly, behind its history's writes; a
    /// conversation with no record (its first turn failed) has nothing to hang it on, and
    /// what it spent is counted in memory only.
    fn record_failed_usage(&self, conv: &Conversation, usage: UsageRecord) {
        let (store, id) = (self.store.clone(), conv.id.clone());
        self.write(async move {
            if !matches!(store.get_session(&id).await, Ok(Some(_))) {
                return;
            }
            if let Err(e) = store.record_usage(&usage).await {
                tracing::warn!(conversation = %id, error = %e, "could not record a turn's usage");
            }
        });
    }
}

/// What an ended turn's summary says it spent (usage net of what earlier steps reported, and
/// the upstream's cost), priced when the upstream gave no cost.
fn spent(summary: Option<&TurnSummary>, reported: Usage) -> (Usage, Option<f64>, bool) {
    match summary {
        Some(s) => (minus(s.usage, reported), s.cost_usd, true),
        None => (Usage::default(), None, false),
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
/// The turn's events are drained meanwhile: a reader blocked on a full channel would
/// otherwise never read the interrupt's answer.
async fn interrupt_and_wait(
    process: &CliProcess,
    cli: &mut mpsc::Receiver<Event>,
) -> Option<TurnSummary> {
    let interrupt = process.interrupt();
    tokio::pin!(interrupt);
    let mut asked = false;
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = &mut interrupt, if !asked => {
                asked = true;
                if let Err(e) = r {
                    tracing::debug!(pid = process.pid(), error = %e, "interrupt failed");
                    return None;
                }
            }
            ev = cli.recv() => match ev {
                Some(Event::Done(s)) => return Some(s),
                Some(Event::Error(_)) | None => return None,
                Some(_) => {}
            },
            _ = &mut deadline => return None,
        }
    }
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
        leaf: None,
    }
}

fn error_label(e: &ClaudeError) -> &'static str {
    match e {
        ClaudeError::Spawn { .. } => "spawn_failed",
        ClaudeError::Upstream { .. } => "upstream_error",
        ClaudeError::Cli { .. } | ClaudeError::NoStructuredOutput => "cli_error",
        ClaudeError::Exited { .. } => "cli_exited",
        ClaudeError::Timeout { .. } => "timeout",
        ClaudeError::Protocol { .. } => "protocol_error",
        ClaudeError::AtCapacity { .. } => "at_capacity",
        ClaudeError::ClientLagged { .. } => "client_lagged",
        ClaudeError::PromptTooLong { .. } => "prompt_too_long",
    }
}

//! Start-up and shutdown: find the CLI, prepare the data dir, start the demo upstream when
//! asked, bind, serve, and on the way out stop every CLI process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::domain::conversations::Conversations;
use crate::domain::drain::Phase;
use crate::http::{self, AppState};
use crate::mock_upstream::MockUpstream;
use crate::upstream::Upstream;

/// A running gateway. Stop it with [`RunningServer::stop`] so no CLI process is left behind.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    /// The built-in upstream of `--demo` mode.
    pub demo_upstream: Option<MockUpstream>,
    /// Where `/metrics` is served without a key (`metrics_listen`), when configured.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: Option<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
    /// Held while the gateway runs on SQLite: a second instance on this data dir refuses to
    /// start (none on Postgres, where session leases let instances share the data dir).
    _data_dir_lock: Option<std::fs::File>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting requests, then stop every CLI process. Running turns end at once (see
    /// [`RunningServer::drain`] for the gentle way).
    pub async fn stop(mut self) {
        // Live-feed watchers (the console) and session watchers would otherwise hold the
        // server open.
        self.state.conversations.feed.close();
        self.state.conversations.drain.advance(Phase::Closed);
        if let Some(tx) = self.shutdown.take() {
            tx.send_replace(true);
        }
        // In-flight requests may still be finishing; don't wait on them forever.
        let _ = tokio::time::timeout(IN_FLIGHT_LIMIT, &mut self.task).await;
        self.state.conversations.shutdown().await;
    }

    /// Drain, then stop: readiness turns false and no new turn starts; running turns get
    /// `drain_timeout_secs` to finish, then are interrupted (each ends with
    /// `stop_reason: "shutdown"`, recorded, its session resumable); watchers' streams end with
    /// a `shutdown` event; then every CLI process is stopped.
    pub async fn drain(self) {
        let drain = &self.state.conversations.drain;
        drain.advance(Phase::Draining);
        let limit = Duration::from_secs(self.state.cfg.drain_timeout_secs);
        tracing::info!(
            running_turns = drain.running(),
            drain_timeout_secs = limit.as_secs(),
            "draining: no new turns; running ones may finish"
        );
        if !drain.until_idle(limit).await {
            tracing::info!(
                running_turns = drain.running(),
                "drain timeout: interrupting the turns still running"
            );
            drain.advance(Phase::Interrupting);
            if !drain.until_idle(INTERRUPT_LIMIT).await {
                tracing::warn!(
                    running_turns = drain.running(),
                    "turns did not end after their interrupt; their processes are stopped"
                );
            }
        }
        self.stop().await;
    }

    /// Serve until ctrl-c or SIGTERM, then drain and stop.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.drain().await;
    }
}

/// How long a stopping gateway waits for requests still in flight once turns have ended and
/// watchers were told.
const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(10);
/// How long an interrupted turn may take to end before its process is stopped under it.
const INTERRUPT_LIMIT: Duration = Duration::from_secs(10);

/// The CLI's version, from `claude --version` ("2.1.197 (Claude Code)").
pub async fn cli_version(bin: &Path) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(bin)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("`claude --version` did not answer within 30 s")?
    .with_context(|| {
        format!(
            "could not run the Claude Code CLI at {} (run scripts/setup.sh, or set CCGW_CLAUDE_BIN)",
            bin.display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "`{} --version` failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .to_string())
}

/// Large buffers (a long CLI line, a big request body) go back to the OS when freed. glibc
/// otherwise raises its mmap threshold after the first such free and keeps later ones in the
/// heap, so a gateway that once carried a long answer would stay that size.
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Confinement set up before any CLI starts: the credential relay every process reaches the
/// upstream through, and the Bash sandbox (Bash is refused where it cannot run, unless
/// `unsandboxed_bash`).
pub async fn confine(cfg: &mut Config) -> anyhow::Result<()> {
    let creds = crate::relay::Credentials::from_lookup(|k| {
        crate::upstream::lookup(&cfg.cli_env, k, |k| std::env::var(k).ok())
    });
    let relay = crate::relay::Relay::start(creds)
        .await
        .context("starting the credential relay")?;
    // Each provider's secrets, read by the names the config gives, stay with the relay.
    relay.set_providers(crate::domain::providers::credentials_table(
        &cfg.providers,
        crate::domain::providers::process_env,
    ));
    for (name, p) in &cfg.providers {
        for var in p.credential_vars() {
            if crate::domain::providers::process_env(var).is_none_or(|v| v.trim().is_empty()) {
                tracing::warn!(provider = %name, variable = %var, "a provider's credential variable is not set: its models' requests go without it");
            }
        }
    }
    cfg.relay = Some(relay);
    let wants_bash = cfg.builtin_tools.iter().any(|t| t == "Bash");
    match crate::claude::sandbox::probe() {
        Ok(how) => {
            cfg.bash_sandbox_status = format!("{how}: Bash runs sandboxed");
            cfg.bash_sandbox = Some(how);
        }
        Err(why) if cfg.unsandboxed_bash => {
            if wants_bash {
                tracing::warn!(reason = %why, "the Bash sandbox cannot run; Bash runs unsandboxed (unsandboxed_bash = true)");
            }
            cfg.bash_sandbox_status =
                format!("unavailable ({why}): Bash runs unsandboxed (unsandboxed_bash = true)");
        }
        Err(why) => {
            if wants_bash {
                tracing::warn!(reason = %why, "the Bash sandbox cannot run; Bash is refused (set unsandboxed_bash = true to allow it anyway)");
                cfg.builtin_tools.retain(|t| t != "Bash");
            }
            cfg.bash_sandbox_status = format!("unavailable ({why}): Bash is refused");
        }
    }
    Ok(())
}

pub async fn start(mut cfg: Config) -> anyhow::Result<RunningServer> {
    cfg.validate()?;
    return_large_buffers();
    cfg.make_paths_absolute();
    let demo_upstream = if cfg.demo {
        let mock = MockUpstream::start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("starting the demo upstream")?;
        tracing::warn!(
            upstream = %mock.base_url(),
            "DEMO MODE: answers come from the built-in scripted mock model, not from Claude. \
             Set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) and drop --demo for real answers."
        );
        cfg.cli_env
            .push(("ANTHROPIC_BASE_URL".into(), mock.base_url()));
        cfg.cli_env
            .push(("ANTHROPIC_API_KEY".into(), "sk-ccgw-demo".into()));
        cfg.cli_env
            .push(("ANTHROPIC_AUTH_TOKEN".into(), String::new()));
        Some(mock)
    } else {
        None
    };
    // On SQLite one instance owns the data dir; on Postgres several may share it, and the
    // session leases keep them from running one session at once (docs/instances.md).
    let data_dir_lock = if cfg.shared_store() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
        None
    } else {
        Some(lock_data_dir(&cfg.data_dir)?)
    };
    confine(&mut cfg).await?;
    let bin = cfg.resolve_claude_bin();
    let version = cli_version(&bin).await?;
    tracing::info!(cli = %bin.display(), cli_version = %version, "found the Claude Code CLI");
    std::fs::create_dir_all(cfg.workspaces_dir())
        .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
    std::fs::create_dir_all(cfg.claude_config_dir())?;

    let cfg = Arc::new(cfg);
    let store = open_store(&cfg).await?;
    // Before any process starts: what a killed gateway left behind.
    crate::domain::conversations::sweep_workspaces(&cfg, store.as_ref()).await;
    let keys = Arc::new(
        crate::domain::tenants::KeyRing::load(store.clone(), &cfg.api_keys)
            .await
            .context("loading the API keys")?,
    );
    keys.spawn_refresh();
    let audit = crate::domain::audit::AuditLog::start(store.clone());
    let conversations = Arc::new(Conversations::new(cfg.clone(), bin, version, store));
    conversations.hooks.set_audit(audit.clone());
    conversations.spawn_reaper();
    // --- limits ---
    // Budgets start from what the store knows was spent this month and the last.
    let (month_start, _) =
        crate::domain::limits::period_bounds("month", crate::store::now_millis());
    let spend = conversations
        .store
        .usage_spend_since(month_start - 31 * 86_400_000)
        .await
        .context("loading the keys' spend")?;
    conversations.limits.load_spend(spend);
    let state = AppState {
        ws_tickets: Arc::default(),
        stats: Arc::default(),
        models: conversations.models.clone(),
        cors: http::cors::CorsOrigins::new(&cfg.cors_origins),
        keys,
        audit,
        upstream: Arc::new(Upstream::from_config(&cfg)),
        conversations,
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        started: Instant::now(),
        cfg: cfg.clone(),
    };

    tracing::info!(
        max_live_processes = cfg.max_live_processes,
        usable_memory_mb = crate::claude::budget::usable_memory().map(|b| b >> 20),
        "live-process budget (when not configured: half the usable memory in 256 MB units, 2 to 64)"
    );
    let open_files = http::listener::raise_open_file_limit();
    let max_connections =
        http::listener::fitting_cap(cfg.max_connections, open_files, cfg.max_live_processes);
    if max_connections < cfg.max_connections {
        tracing::warn!(
            max_connections,
            configured = cfg.max_connections,
            "connection cap lowered to fit the open-file limit"
        );
    }
    let limits = http::listener::Limits {
        header_read: Duration::from_secs(cfg.header_read_timeout_secs),
        idle: Duration::from_secs(cfg.keep_alive_timeout_secs),
        max_connections,
    };
    http::stats::spawn_sampler(state.stats.clone(), Arc::downgrade(&state.conversations));
    if !http::console::is_built() {
        tracing::warn!(
            "the web console is not built into this binary: /admin explains how to build it"
        );
    }

    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.host, cfg.port))?;
    let addr = listener.local_addr()?;
    let router = with_layers(http::router(state.clone()), &cfg, state.cors.clone());
    let (tx, rx) = watch::channel(false);
    let metrics_addr = match &cfg.metrics_listen {
        Some(at) => {
            let l = tokio::net::TcpListener::bind(at.as_str())
                .await
                .with_context(|| format!("binding metrics_listen {at}"))?;
            let metrics_addr = l.local_addr()?;
            let mut stop = rx.clone();
            let app = http::router::metrics_router(state.clone());
            tokio::spawn(async move {
                let until = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(l, app).with_graceful_shutdown(until).await {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            });
            tracing::info!(addr = %metrics_addr, "metrics listening");
            Some(metrics_addr)
        }
        None => None,
    };
    let task = tokio::spawn(http::listener::serve(listener, router, limits, rx));
    tracing::info!(%addr, "ccgw listening");
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        demo_upstream,
        shutdown: Some(tx),
        task,
        _data_dir_lock: data_dir_lock,
    })
}

/// Take the data dir for this instance alone. Two instances on one data dir would run the
/// same CLI sessions at once and interleave their histories, so the second refuses to start
/// (the lock is the OS's: it goes with the process, however that ends).
/// Opens the store `database_url` names (the data dir's SQLite file by default), logging
/// which one without its password. `ccgw keys` opens it the same way.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn crate::store::Store>> {
    let url = cfg.database().map_err(|e| anyhow::anyhow!(e))?;
    let durability = crate::store::Durability::from_setting(&cfg.store_durability);
    let store = crate::store::open(&url, durability)
        .await
        .with_context(|| format!("opening the store {}", url.shown()))?;
    tracing::info!(store = %url.shown(), "store open");
    Ok(store)
}

/// How long a start waits for another holder of the data dir's lock to let go.
const LOCK_WAIT: Duration = Duration::from_secs(2);

fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))?;
    let path = dir.join("ccgw.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A previous instance that is still exiting (a restart), or a process being spawned at
    // that moment with a copy of this process's files, holds the lock for a moment: wait a
    // little before refusing.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut locked = file.try_lock();
    while matches!(locked, Err(std::fs::TryLockError::WouldBlock))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        locked = file.try_lock();
    }
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another ccgw instance (pid {}) is using the data dir {}: two instances on one \
                 data dir with a SQLite store would run the same sessions at once and corrupt \
                 them. Give each instance its own data_dir, stop the other one first, or use \
                 Postgres (database_url = \"postgres://...\"), whose session leases let \
                 several instances share one data dir (docs/instances.md).",
                holder.trim(),
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

fn with_layers(
    router: axum::Router,
    cfg: &Config,
    cors: Arc<http::cors::CorsOrigins>,
) -> axum::Router {
    let request_id = HeaderName::from_static("x-request-id");
    let limit = cfg.max_body_bytes;
    let router = router
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            http::error::shape_errors(limit, req, next)
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            })
            // Every request's status line at the default level: a refused one (401, 429)
            // leaves a trace an operator can follow by its request id.
            .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    // Always there, asking the live list: a reload may allow origins where none were.
    router.layer(http::cors::layer(cors))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

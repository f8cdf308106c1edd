//! A throwaway Postgres server for the test suites and the store benchmark: Debian's
//! `postgresql` binaries (`/usr/lib/postgresql/*/bin`), a fresh cluster in a temporary dir, on a
//! free loopback port, with one new database per caller.
//!
//! Owns: finding the binaries, `initdb` (as the `postgres` user when run as root, since initdb
//! refuses root), starting the server under a watcher that stops it and removes its dir as soon
//! as the process that started it is gone (a test binary never runs its statics' destructors),
//! and creating databases. `CCGW_TEST_POSTGRES_URL` names an existing server instead.
//!
//! Must not: be used by the gateway itself, or listen anywhere but 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

/// How to get Postgres, for every message that says it is missing.
pub const INSTALL_HINT: &str = "install Debian's package with `scripts/setup.sh --postgres` \
     (apt-get install postgresql), or set CCGW_TEST_POSTGRES_URL to a server's admin URL";

/// A running server (or the one `CCGW_TEST_POSTGRES_URL` names).
#[derive(Debug, Clone)]
pub struct ScratchPostgres {
    /// A superuser URL of its `postgres` database.
    pub admin_url: String,
}

impl ScratchPostgres {
    /// Starts a server (blocking, up to 60 s), or uses `CCGW_TEST_POSTGRES_URL`. `fast`
    /// turns off fsync (tests); a benchmark keeps the server's durable defaults.
    pub fn start(fast: bool) -> Result<ScratchPostgres, String> {
        if let Ok(url) = std::env::var("CCGW_TEST_POSTGRES_URL") {
            if !url.trim().is_empty() {
                return Ok(ScratchPostgres {
                    admin_url: url.trim().to_string(),
                });
            }
        }
        let bin = find_bin().ok_or_else(|| {
            format!("no Postgres binaries under /usr/lib/postgresql/*/bin: {INSTALL_HINT}")
        })?;
        let dir = std::env::temp_dir().join(format!("ccgw-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir {}: {e}", dir.display()))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_root = unsafe { libc::geteuid() } == 0;
        if as_root {
            // initdb and postgres refuse root: the cluster belongs to the `postgres` user.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?
                .success();
            if !ok {
                return Err(format!(
                    "could not give {} to the postgres user: {INSTALL_HINT}",
                    dir.display()
                ));
            }
        }
        let data = dir.join("data");
        let mut initdb = as_user(as_root, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null());
        let out = initdb.output().map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {} ({INSTALL_HINT})",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let port = free_port()?;
        spawn_watched(as_root, &bin, &dir, port, fast)?;
        wait_for_port(port, &dir)?;
        Ok(ScratchPostgres {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        })
    }

    /// A new, empty database; its URL.
    pub async fn create_database(&self) -> Result<String, String> {
        let name = format!("ccgw_{}", uuid::Uuid::new_v4().simple());
        let deadline = Instant::now() + Duration::from_secs(30);
        // The server may take connections before it takes queries ("starting up").
        let mut conn = loop {
            match PgConnection::connect(&self.admin_url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "connecting to the test server: {e} ({INSTALL_HINT})"
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map_err(|e| format!("CREATE DATABASE: {e}"))?;
        let _ = conn.close().await;
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }
}

/// The newest `/usr/lib/postgresql/N/bin` with `postgres` and `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn as_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

/// Starts the server under a shell that waits for this process to end, then stops the server
/// (fast shutdown) and removes its dir: no server outlives the tests that needed it.
fn spawn_watched(
    as_root: bool,
    bin: &Path,
    dir: &Path,
    port: u16,
    fast: bool,
) -> Result<(), String> {
    let run_as = if as_root {
        "setpriv --reuid=postgres --regid=postgres --init-groups --reset-env "
    } else {
        ""
    };
    let tuning = if fast {
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    } else {
        ""
    };
    let script = format!(
        "{run_as}\"$PGBIN/postgres\" -D \"$PGDIR/data\" -p {port} -k \"$PGDIR\" \
         -c listen_addresses=127.0.0.1 -c max_connections=200 {tuning} \
         >\"$PGDIR/server.log\" 2>&1 & pg=$!; \
         while kill -0 {owner} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.2; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf \"$PGDIR\"",
        owner = std::process::id(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PGBIN", bin)
        .env("PGDIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    Ok(())
}

fn wait_for_port(port: u16, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    Err(format!(
        "postgres did not start on port {port}: {} ({INSTALL_HINT})",
        log.trim()
    ))
}

//! The HTTP listener: accepts connections up to a cap and serves each with hyper (HTTP/1.1,
//! with upgrades for WebSockets). A connection that holds a slot without using it is closed:
//! a request head that does not arrive in time (a client trickling header lines), and a
//! keep-alive connection idle for too long. At the cap, the longest-idle connection makes
//! room for the new one, so idle clients can never lock out `/health` or a chat request.
//!
//! Knows nothing of the routes: it serves whatever router it is given.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tower::ServiceExt;

/// What a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the first byte of a request head to its end.
    pub header_read: Duration,
    /// With no request in flight, between responses (or after connecting).
    pub idle: Duration,
    pub max_connections: usize,
}

/// One connection's activity, shared by its reader, its requests and its watchdog.
struct Conn {
    base: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `base` at which the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since `base` (plus one) at which a request head began while idle; 0: none.
    head_since: AtomicU64,
    close: Notify,
}

impl Conn {
    fn new() -> Self {
        Conn {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            close: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since.store(self.now_ms() + 1, Ordering::Release);
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        InFlight(self.clone())
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When the connection is to be closed if nothing happens first (ms since `base`);
    /// `None` while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<u64> {
        if !self.is_idle() {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Some(match self.head_since.load(Ordering::Acquire) {
            0 => self
                .idle_since
                .load(Ordering::Acquire)
                .saturating_add(ms(limits.idle)),
            started => (started - 1).saturating_add(ms(limits.header_read)),
        })
    }
}

/// A request in flight on a connection, until its response body is done or dropped.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noticing when a request head begins.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

type Registry = Mutex<HashMap<u64, Arc<Conn>>>;

/// Serve `router` on `listener` until `shutdown` fires, then finish in-flight requests
/// (connections close as soon as they are idle) and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let conns: Arc<Registry> = Arc::default();
    let mut next_id = 0u64;
    let mut errors = AcceptErrors::default();
    let stopping = |rx: &mut watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                evict_idlest(&conns);
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = stopping(&mut shutdown) => break,
                }
            }
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    errors.note(&e);
                    // Out of descriptors, most likely: let some close before trying again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let conn = Arc::new(Conn::new());
        lock(&conns).insert(id, conn.clone());
        let (router, conns, shutdown) = (router.clone(), conns.clone(), shutdown.clone());
        tokio::spawn(async move {
            serve_connection(stream, conn, router, limits, shutdown).await;
            lock(&conns).remove(&id);
            drop(permit);
        });
    }
    // Wait for every connection to finish (each closes once it is idle).
    let n = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(n).await;
}

async fn serve_connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let on_request = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = on_request.request_started();
        let router = router.clone();
        async move {
            let resp = match router.oneshot(req.map(Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(resp.map(|inner| Tracked {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(served);
    let mut closing = false;
    loop {
        let wake = match conn.deadline(&limits) {
            Some(at) => conn.base + Duration::from_millis(at),
            // A request is in flight: look again later.
            None => Instant::now() + limits.idle,
        };
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if conn.deadline(&limits).is_some_and(|at| at <= conn.now_ms()) {
                    tracing::debug!("closing a connection that was idle or slow to send a request");
                    return;
                }
            }
            _ = conn.close.notified() => {
                if conn.is_idle() {
                    tracing::debug!("closing an idle connection to make room for a new one");
                    return;
                }
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// At the cap: ask the connection idle the longest to close.
fn evict_idlest(conns: &Registry) {
    let conns = lock(conns);
    let idlest = conns
        .values()
        .filter(|c| c.is_idle())
        .min_by_key(|c| c.base + Duration::from_millis(c.idle_since.load(Ordering::Acquire)));
    if let Some(c) = idlest {
        c.close.notify_one();
    }
}

fn lock(conns: &Registry) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
    // Single-step map operations only: a poisoned lock still holds a consistent map.
    conns.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accept errors, logged at most once a second with how many there were.
#[derive(Default)]
struct AcceptErrors {
    since: Option<Instant>,
    count: u64,
}

impl AcceptErrors {
    fn note(&mut self, e: &io::Error) {
        self.count += 1;
        if self
            .since
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(error = %e, count = self.count, "could not accept connections");
            self.since = Some(Instant::now());
            self.count = 0;
        }
    }
}

/// Raise the soft limit on open files to the hard limit (each connection and each CLI's pipes
/// take descriptors), and say what they are. Returns the soft limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        let before = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        tracing::info!(
            soft_before = before,
            soft = lim.rlim_cur,
            hard = lim.rlim_max,
            "open file limit"
        );
        Some(lim.rlim_cur)
    }
}

/// The connection cap that fits in `open_files`, leaving room for the CLI processes' pipes
/// and the store.
pub fn fitting_cap(wanted: usize, open_files: Option<u64>, max_live_processes: usize) -> usize {
    let Some(limit) = open_files.and_then(|l| usize::try_from(l).ok()) else {
        return wanted;
    };
    let reserve = 64 + 16 * max_live_processes;
    wanted.min(limit.saturating_sub(reserve).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_connections_state() {
        let limits = Limits {
            header_read: Duration::from_secs(2),
            idle: Duration::from_secs(10),
            max_connections: 1,
        };
        let c = Arc::new(Conn::new());
        assert_eq!(c.deadline(&limits), Some(10_000), "idle since it connected");
        c.head_since.store(501, Ordering::Release);
        assert_eq!(c.deadline(&limits), Some(2_500), "a head began at 500 ms");
        let r = c.request_started();
        assert_eq!(
            c.deadline(&limits),
            None,
            "nothing while a request is in flight"
        );
        drop(r);
        let d = c.deadline(&limits).unwrap();
        assert!(
            (10_000..11_000).contains(&d),
            "idle again from the response's end: {d}"
        );
    }

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(fitting_cap(4096, Some(1024), 8), 1024 - 64 - 128);
        assert_eq!(fitting_cap(100, Some(1_000_000), 8), 100);
        assert_eq!(fitting_cap(100, None, 8), 100);
        assert_eq!(fitting_cap(100, Some(10), 8), 1);
    }
}

//! Connections: idle and trickling ones are closed, a full house makes room for new ones,
//! and the open-file limit is raised at start.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the server closes the connection (or `within` passes); when it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn idle_and_trickling_connections_are_closed() {
    let app = spawn_app_with(|c| {
        c.header_read_timeout_secs = 2;
        c.keep_alive_timeout_secs = 1;
    })
    .await;
    // Idle after a response: closed after the keep-alive timeout.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(900)),
        "{closed:?}"
    );
    // Connected and silent: closed the same way.
    let mut silent = connect(&app).await;
    assert!(closed_within(&mut silent, Duration::from_secs(5))
        .await
        .is_some());
    // A header line every half second never finishes a head: closed at the header timeout,
    // although it is never idle for long.
    let mut trickle = connect(&app).await;
    trickle
        .write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut open_for = None;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if trickle
            .write_all(format!("x-line-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            open_for = Some(start.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut probe)).await
        {
            open_for = Some(start.elapsed());
            break;
        }
    }
    let open_for = open_for.expect("the trickling connection was closed");
    assert!(
        open_for >= Duration::from_millis(1500) && open_for < Duration::from_secs(4),
        "{open_for:?}"
    );
    // A slow but steady client is still served.
    let (status, _) = app
        .chat(serde_json::json!({"model": "sonnet", "messages": [user("hi")]}))
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn idle_connections_never_lock_out_new_ones() {
    let app = spawn_app_with(|c| {
        c.max_connections = 20;
        c.keep_alive_timeout_secs = 600;
    })
    .await;
    // Far more idle connections than the cap.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(connect(&app).await);
    }
    let start = Instant::now();
    let health = app
        .client
        .get(format!("{}/health", app.url))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("health answers while idle connections fill the cap");
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let (status, _) = app
        .chat(serde_json::json!({"model": "sonnet", "messages": [user("hi")]}))
        .await;
    assert_eq!(status, 200);
    // The oldest idle ones made room: at most the cap stays open.
    let mut open = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(20), s.read(&mut b))
            .await
            .is_err()
        {
            open += 1;
        }
    }
    assert!(open <= 20, "{open} idle connections still open");
    app.stop().await;
}

#[tokio::test]
async fn the_open_file_limit_is_raised_at_start() {
    // A lower soft limit, as service managers often set.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: test code; reading and writing this process's own limit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_max > 4096 {
            lim.rlim_cur = 4096;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    let app = spawn_app().await;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        nums[0], nums[1],
        "soft limit raised to the hard one: {line}"
    );
    app.stop().await;
}

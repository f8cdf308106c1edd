//! Slow readers: a client that stops reading a long stream must not grow the gateway, and
//! once it is gone its memory and its process come back. Measured on a gateway in a process
//! of its own, so nothing else of the test counts.

use std::time::Duration;

use ccgw::mock_upstream::MockUpstream;
use serde_json::json;

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn clients_that_stop_reading_do_not_grow_the_gateway() {
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let gw = External::start(data.path(), &mock, &[("CCGW_STREAM_LAG_TIMEOUT_SECS", "6")]);
    gw.wait_warm(2).await;
    let client = reqwest::Client::new();
    let base = rss_mib(gw.pid());
    // Three streams of 60 MB each (1,500 deltas of 40 kB), never read.
    let mut held = Vec::new();
    for i in 0..3 {
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "sonnet", "stream": true,
                "messages": [user(&format!("reader {i} [[words:1500:40000]]"))]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        held.push(resp);
    }
    let mut peak = base;
    for _ in 0..50 {
        peak = peak.max(rss_mib(gw.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        peak - base < 80.0,
        "three stalled readers grew the gateway from {base:.0} to {peak:.0} MiB"
    );
    // The stalled streams end with an error once they lag past the limit; the processes go.
    let mut ended = 0;
    for mut resp in held {
        let mut tail = Vec::new();
        while let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(30), resp.chunk()).await
        {
            tail.extend_from_slice(&chunk[chunk.len().saturating_sub(4096)..]);
            if tail.len() > 8192 {
                tail.drain(..tail.len() - 8192);
            }
        }
        let tail = String::from_utf8_lossy(&tail);
        if tail.contains("stream_lagged") {
            ended += 1;
        }
    }
    assert_eq!(ended, 3, "every stalled stream ends with a clear error");
    let settled = async {
        for _ in 0..100 {
            let h = gw.health().await;
            if h["live_processes"] == 2 && h["warm_processes"] == 2 && h["queue_depth"] == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(settled.await, "{}", gw.health().await);
    let after = rss_mib(gw.pid());
    assert!(
        after - base < 40.0,
        "memory came back: {base:.0} MiB before, {after:.0} MiB after"
    );
}

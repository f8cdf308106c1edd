//! `baseline`: the smallest server on the gateway's own HTTP stack (axum + tokio, same
//! versions, same runtime), answering `GET /v1/models` with fixed bytes. The throughput
//! benchmark runs it beside the gateway, so the gateway's figure can be read against what the
//! stack and this machine allow at all. A cargo example; never part of the gateway.
//!
//! usage: baseline PORT BODY_FILE

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: baseline PORT BODY_FILE");
    let body: &'static [u8] = std::fs::read(args.next().expect("usage: baseline PORT BODY_FILE"))
        .expect("readable body file")
        .leak();
    let app = Router::new().route(
        "/v1/models",
        get(move || async move { ([(CONTENT_TYPE, "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}

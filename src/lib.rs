//! ccgw: the Claude Code CLI as an OpenAI- and Anthropic-compatible API, a native session API
//! and (soon) a web console.
//!
//! Layers, top to bottom (each uses only the ones below it):
//! - `server` (start-up, shutdown) and `http/` (router, auth, body parsing, errors, health,
//!   metrics);
//! - `api/`: thin protocol adapters (`openai`, `anthropic`, `native`);
//! - `domain/`: conversations, turns, sessions, the model table; knows no HTTP;
//! - `claude/`: the CLI driver (processes, pool, stream-json and control protocol); knows no
//!   HTTP and no conversations;
//! - `store/`: the records that outlive processes; `upstream`: a direct Messages API client
//!   for what the CLI cannot do (token counts); `relay`: the loopback endpoint every CLI
//!   reaches the upstream through, holding the credentials the CLI never sees; `config`.
//!
//! `mock_upstream` is the scripted Anthropic-compatible model behind the tests, the benches and
//! `--demo`.

pub mod api;
pub mod claude;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod http;
pub mod keys_cli;
pub mod mock_upstream;
pub mod relay;
pub mod reload;
pub mod server;
pub mod store;
pub mod upstream;

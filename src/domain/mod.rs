//! The domain: conversations and the life of a turn, native sessions, the request model every
//! adapter builds, and the model table. Knows no HTTP; drives the CLI through `claude`.

pub mod cli_wait;
pub mod conversations;
pub mod models;
pub mod sessions;
pub mod turn;

//! Thin protocol adapters. Each turns its wire format into a domain request and the domain's
//! events back into its wire format; none of them touches a CLI process.

pub mod anthropic;
pub mod models;
pub mod native;
pub mod openai;
pub mod responses;

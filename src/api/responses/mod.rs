//! The OpenAI Responses API: `POST /v1/responses` (JSON or typed SSE events),
//! `GET /v1/responses/{id}` and `DELETE /v1/responses/{id}`.
//!
//! A thin adapter like the others: it parses a request into a domain
//! [`crate::domain::turn::TurnRequest`] and renders [`crate::claude::Event`]s as a Response
//! object or its stream events. `previous_response_id` and `item_reference` inputs are read
//! from the replies the domain keeps (see `crate::domain::replies`); the conversation they
//! lead to continues in its live CLI process like any follow-up. It never touches processes.

pub mod convert;
pub mod handlers;
pub mod openapi;
pub mod render;
pub mod types;

//! Who made a request, as the domain knows it (see `domain::tenants`): the owner its records
//! carry, its role, and a stored key's policy and limits, never the secret. It travels with the
//! request (an extension set by `auth`) into the domain's records and the live feed.

pub use crate::domain::tenants::Caller;

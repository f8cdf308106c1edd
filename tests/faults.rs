//! The fault suite: disconnects, kills, races, slow clients and bad input, end to end with
//! the real CLI and the mock upstream, under the defaults (the warm pool on). Each case ends
//! with the process and slot counts back where they started.

mod common;

#[path = "faults/capacity.rs"]
mod capacity;
#[path = "faults/conn.rs"]
mod conn;
#[path = "faults/drain.rs"]
mod drain;
#[path = "faults/input.rs"]
mod input;
#[path = "faults/kill.rs"]
mod kill;
#[path = "faults/memory.rs"]
mod memory;
#[path = "faults/races.rs"]
mod races;
#[path = "faults/ready.rs"]
mod ready;
#[path = "faults/reload.rs"]
mod reload;
#[path = "faults/small.rs"]
mod small;
#[path = "faults/support.rs"]
mod support;

//! The VNET layer-2 overlay: the pure cores (names and rules, the forwarding table, the link
//! protocol, the topology language) and, at the edges, the daemon's I/O.

pub mod cli;
pub mod control;
pub mod daemon;
pub mod forward;
pub mod io;
pub mod lang;
pub mod model;
pub mod offload;
pub mod online;
pub mod peer;
pub mod wire;

//! Benchmarks: `bench fidelity` (the testbed against its scenario), `bench linkemu` (the link
//! emulator alone), `bench setup` (how fast the overlay configures itself) and `bench
//! dataplane` (the overlay's data path against no overlay, VXLAN and tinc). Every benchmark
//! prints readable tables, then as its last stdout line one JSON object of its headline figures.

pub mod adapt;
mod common;
pub mod dataplane;
pub mod fidelity;
pub mod links;
pub mod setup;
pub mod solvers;
pub mod vttif;
pub mod wren;

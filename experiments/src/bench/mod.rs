//! Benchmarks: `bench fidelity` (the testbed against its scenario), `bench linkemu` (the link
//! emulator alone) and `bench setup` (how fast the overlay configures itself). Every benchmark prints readable tables, then as its last stdout line one JSON
//! object of its headline figures.

pub mod fidelity;
pub mod model;
pub mod setup;

//! Benchmarks: `bench fidelity` (the testbed against its scenario) and `bench linkemu` (the link
//! emulator alone). Every benchmark prints readable tables, then as its last stdout line one JSON
//! object of its headline figures.

pub mod fidelity;
pub mod model;

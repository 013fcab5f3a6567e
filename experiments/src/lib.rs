//! Experiments: the multi-site testbed, link emulation and the `patterns` BSP benchmark.
//!
//! - [`scenario`]: the scenario file (TOML) and its validation.
//! - [`testbed`]: builds a scenario out of network namespaces, cgroups and emulated links.
//! - [`linkemu`]: the user-space link emulator (rate, queue, delay, jitter, loss) between two TAP devices.
//! - [`patterns`]: the papers' synthetic BSP benchmark.
//! - [`bench`]: benchmark subcommands (`bench fidelity`, `bench linkemu`).

pub mod bench;
pub mod linkemu;
pub mod patterns;
pub mod scenario;
pub mod testbed;

//! VTTIF (seed 002 §2.2, seed 004 §4): the application's communication topology and traffic
//! matrix, inferred from the frames the overlay carries between guests' MACs.
//!
//! - [`update`]: what each daemon ships to the Proxy at the update rate (its local matrix's
//!   delta), and its wire format.
//! - [`infer`]: the pure core — sliding window, normalisation, pruning, change detection.
//! - [`classify`]: the names (ring, torus:4x2, hypercube:3, ...) an inferred graph fits.
//! - [`service`]: the Proxy's service around the core: updates in, reports out.
//! - [`offline`]: the tuning tool's library: packet traces replayed through the service,
//!   parameter sweeps, metrics against a known truth, and synthetic traces.
//! - [`plot`]: the tuning tool's figures, as SVG.

pub mod classify;
pub mod infer;
mod mac;
pub mod offline;
pub mod pcap_writer;
pub mod plot;
mod rng;
pub mod service;
pub mod update;

pub use infer::{Change, Inference, Pair, Params, ParamsError, Topology};
pub use mac::{BadMac, Mac};
pub use service::{Report, Service};

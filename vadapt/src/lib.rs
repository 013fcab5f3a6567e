//! VADAPT: given the application's traffic demands (VTTIF), the network between the hosts
//! (Wren, or the scenario's rates as a prior) and the hosts' capacities, choose where each VM
//! runs and which overlay links and forwarding rules carry its traffic (seed 004 §7-9, App. B).
//!
//! The pure core (no I/O):
//! - [`model`]: the problem ([`Problem`]: hosts, the host graph's path estimates, VMs,
//!   demands, pinned VMs, the current configuration), a [`Configuration`] (mapping, links,
//!   routes), [`evaluate`] (every constraint of GAPVEE, the residuals) and the diagnosis type
//!   [`Infeasible`];
//! - [`objective`]: [`Objective`] and the paper's [`ResidualBottleneck`], [`TightFit`] and
//!   [`SingleHop`];
//! - [`solve`]: [`Solver`] and [`Greedy`] (the papers' `MapVM` + `AdaptTopology`),
//!   [`LpRounding`] (LP relaxation with `good_lp`, rounding, repair) and [`Exact`] (branch and
//!   bound for small instances);
//! - [`diagnose()`]: cheap proofs of infeasibility, run by every solver first;
//! - [`generate()`]: a seeded random instance generator.
//!
//! Between the model and the running overlay (pure too):
//! - [`overlay`]: a vnetd topology read as a [`Configuration`], and the overlay that realises
//!   one;
//! - [`inputs`]: the environment file (machines, path priors, guests) and VTTIF's report made
//!   into a [`Problem`];
//! - [`decide`]: whether a plan is worth applying (gain against cost, hysteresis);
//! - [`metrics`]: the controller's Prometheus metrics.
//!
//! The controller (`vadapt`, `src/bin/vadapt`) is the I/O around them.

pub mod decide;
pub mod diagnose;
mod engine;
pub mod generate;
pub mod inputs;
pub mod metrics;
pub mod model;
pub mod objective;
pub mod overlay;
pub mod solve;

pub use diagnose::diagnose;
pub use generate::{generate, GenParams};
pub use model::{
    evaluate, link, Configuration, Demand, DemandOutcome, Evaluation, Host, Infeasible,
    PathEstimate, Problem, ProblemError, Resource, Source, Vm,
};
pub use objective::{Direction, Objective, ResidualBottleneck, SingleHop, TightFit};
pub use solve::{Exact, Greedy, LpBackend, LpRounding, Relaxation, Solver};

/// A count as `f64` (exact below 2^53).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn usize_f64(n: usize) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests;

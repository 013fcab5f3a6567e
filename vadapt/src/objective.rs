//! Objectives (seed 004 §7.1.1): what makes one feasible configuration better than another.
//!
//! Every objective here is a function of the demands' [`DemandOutcome`]s (their residual
//! bottleneck bandwidths and hop counts) computed by [`evaluate`]; [`Objective::combine`] is
//! that function and [`Objective::score`] evaluates a configuration and combines. The solvers
//! bound the objective from per-demand bounds on the outcomes (the exact search prunes with
//! them), so `combine` must be non-decreasing in every `bottleneck`, non-increasing in every
//! `hops`, and independent of `latency` (latency is a constraint, not a goal, in GAPVEE).
//!
//! - [`ResidualBottleneck`] — the paper's (§8.1): maximise `Σ_i min_{e ∈ R(A_i)} rc_e`, leaving
//!   the most room for the application to grow within the configuration.
//! - [`TightFit`] — the same sum, minimised: a "tight fit" that packs the application onto
//!   the least spare capacity, leaving room for others (§7.1.1 "additional metrics").
//! - [`SingleHop`] — every communicating pair at most one overlay hop apart (§7.1.1): the
//!   score is the number of demands whose route has at most one hop, plus a tie-break in
//!   `[0, 1)`: the residual-bottleneck sum divided by `m · C + 1` (`m` demands, `C` the
//!   largest capacity of the problem, bit/s), so a configuration with more single-hop demands
//!   always wins and among equals the one with more residual bandwidth wins. Maximised.

use serde::{Deserialize, Serialize};

use crate::model::{evaluate, Configuration, DemandOutcome, Infeasible, Problem, TOLERANCE};

/// Whether an objective is maximised or minimised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

impl Direction {
    /// Whether `a` is strictly better than `b` (by more than a relative [`TOLERANCE`]).
    #[must_use]
    pub fn better(self, a: f64, b: f64) -> bool {
        let slack = TOLERANCE * a.abs().max(b.abs()).max(1.0);
        match self {
            Self::Maximize => a > b + slack,
            Self::Minimize => a < b - slack,
        }
    }

    /// The worst possible score (`-∞` when maximising, `+∞` when minimising).
    #[must_use]
    pub fn worst(self) -> f64 {
        match self {
            Self::Maximize => f64::NEG_INFINITY,
            Self::Minimize => f64::INFINITY,
        }
    }
}

/// An objective function over feasible configurations.
pub trait Objective {
    /// Short name, e.g. `residual-bottleneck`.
    fn name(&self) -> &str;

    /// Whether it is maximised or minimised.
    fn direction(&self) -> Direction;

    /// The objective of a feasible configuration from its demands' outcomes (`outcomes[i]`
    /// is demand `i`'s). Must be non-decreasing in every `bottleneck`, non-increasing in every
    /// `hops` and independent of `latency` (the solvers' bounds rely on it).
    fn combine(&self, problem: &Problem, outcomes: &[DemandOutcome]) -> f64;

    /// Evaluates `config` ([`evaluate`]) and combines its outcomes.
    ///
    /// # Errors
    /// The configuration's first violated constraint.
    fn score(&self, problem: &Problem, config: &Configuration) -> Result<f64, Infeasible> {
        let ev = evaluate(problem, config)?;
        Ok(self.combine(problem, &ev.outcomes))
    }
}

/// The paper's objective: maximise the sum over demands of their residual bottleneck
/// bandwidth (bit/s).
#[derive(Debug, Clone, Copy, Default)]
pub struct ResidualBottleneck;

impl Objective for ResidualBottleneck {
    fn name(&self) -> &str {
        "residual-bottleneck"
    }
    fn direction(&self) -> Direction {
        Direction::Maximize
    }
    fn combine(&self, _: &Problem, outcomes: &[DemandOutcome]) -> f64 {
        outcomes.iter().map(|o| o.bottleneck).sum()
    }
}

/// Tight fit: minimise the sum over demands of their residual bottleneck bandwidth (bit/s).
#[derive(Debug, Clone, Copy, Default)]
pub struct TightFit;

impl Objective for TightFit {
    fn name(&self) -> &str {
        "tight-fit"
    }
    fn direction(&self) -> Direction {
        Direction::Minimize
    }
    fn combine(&self, _: &Problem, outcomes: &[DemandOutcome]) -> f64 {
        outcomes.iter().map(|o| o.bottleneck).sum()
    }
}

/// Single-hop: maximise the number of demands routed over at most one overlay hop, then the
/// residual bottleneck sum as a tie-break in `[0, 1)` (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleHop;

impl Objective for SingleHop {
    fn name(&self) -> &str {
        "single-hop"
    }
    fn direction(&self) -> Direction {
        Direction::Maximize
    }
    fn combine(&self, problem: &Problem, outcomes: &[DemandOutcome]) -> f64 {
        let single = outcomes.iter().filter(|o| o.hops <= 1).count();
        let sum: f64 = outcomes.iter().map(|o| o.bottleneck.max(0.0)).sum();
        let scale = crate::usize_f64(outcomes.len()) * problem.max_capacity() + 1.0;
        crate::usize_f64(single) + sum / scale
    }
}

/// The objective called `name` (`residual-bottleneck`, `tight-fit` or `single-hop`).
#[must_use]
pub fn by_name(name: &str) -> Option<Box<dyn Objective>> {
    match name {
        "residual-bottleneck" => Some(Box::new(ResidualBottleneck)),
        "tight-fit" => Some(Box::new(TightFit)),
        "single-hop" => Some(Box::new(SingleHop)),
        _ => None,
    }
}

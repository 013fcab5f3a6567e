//! The solvers: [`Greedy`] (the papers' heuristic), [`LpRounding`] (LP relaxation and
//! rounding) and [`Exact`] (branch and bound, for small instances). Every solver first checks
//! [`crate::diagnose()`] and returns only configurations that [`crate::evaluate`] accepts.
//!
//! All of them route over the direct edge and the two-hop paths between two hosts (through
//! any host, the Proxy included); routes of three or more hops are never produced.

mod exact;
mod greedy;
mod lp;

pub use exact::Exact;
pub use greedy::Greedy;
pub use lp::{LpBackend, LpRounding, Relaxation};

use crate::model::{Configuration, Infeasible, Problem};
use crate::objective::Objective;

/// A solver of the adaptation problem.
pub trait Solver {
    /// Short name, e.g. `greedy`.
    fn name(&self) -> &'static str;

    /// A feasible configuration for `problem`, as good for `objective` as the solver finds.
    ///
    /// # Errors
    /// Why none was found: a diagnosis of the problem ([`crate::diagnose()`]), a proof of
    /// infeasibility ([`Infeasible::NoFeasibleConfiguration`]) or the solver's own failure or
    /// limit ([`Infeasible::NotFound`], [`Infeasible::TooLarge`], [`Infeasible::SearchLimit`],
    /// [`Infeasible::Lp`]).
    fn solve(
        &self,
        problem: &Problem,
        objective: &dyn Objective,
    ) -> Result<Configuration, Infeasible>;
}

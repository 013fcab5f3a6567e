//! Whether a plan is worth applying: the expected gain against the plan's cost, with hysteresis
//! so that the controller never oscillates. Pure.
//!
//! # The estimate of gain
//!
//! A bulk-synchronous application's communication phase lasts as long as its most loaded
//! bottleneck needs to carry its demands: the *congestion* of a configuration, the largest
//! load over capacity of an overlay edge or of a host's access ([`congestion`]; seconds per
//! second of demand). Routed over the star, every demand crosses the Proxy's access, so its
//! congestion is high; over fast paths, each host carries only its own guests' traffic. The expected *speedup of communication* of a
//! candidate is `congestion(current) / congestion(candidate)`.
//!
//! Not all of a run is communication: the busiest resource of the current configuration is
//! busy for `congestion(current)` of each second (the demands are VTTIF's average rates), so
//! that much of the run, at least, is spent communicating: the *share* (at most 1). Over the
//! `remaining` time the application is expected to run on, a speedup `s` then saves about
//! `(remaining − copy) × share × (1 − 1/s)` seconds, where `copy` is how long the plan's
//! migrations copy memory: the gain starts once they are done.
//!
//! The remaining time comes from the application's progress: the controller counts from when
//! it first saw the application's traffic. Given the run's expected length (`horizon`, a
//! setting: a user usually knows how long a job takes), what is left of it; without one, as
//! long again as it has run so far (a run that has lasted `t` is, with no other knowledge,
//! as likely as not to last another `t`), so that a short job is not charged a long copy.
//!
//! # The cost of a plan
//!
//! - A migration copies the VM's memory over the path between its hosts (`memory × 8 / bw`
//!   seconds; the plan's copies run at the same time, those from one host one after the
//!   other, and `copy` is the longest) while the VM runs on; the copy competes with the
//!   application on that path, which [`CONTENTION`] of the copy time charges. Then the switch:
//!   [`SWITCH_S`] of downtime per VM (the testbed measures 40-60 ms).
//! - Each primitive (a link or rule change) costs a control call: [`PRIMITIVE_S`].
//!
//! # The rule
//!
//! A plan is applied when all hold:
//! 1. the objective improves (the solver's objective is the judge of what is better; its
//!    relative change is logged);
//! 2. the expected speedup of communication is at least `1 + min_gain`, so that a candidate
//!    only noise-better is left (the residual-bandwidth objective moves little even when a
//!    plan removes a bottleneck: it sums capacity left over, most of which both keep);
//! 3. the time saved over the remaining run is at least `cost_factor` times the plan's cost;
//! 4. at least `dwell` has passed since the last applied plan, so that measurements reflect it
//!    before the next decision;
//! 5. the candidate is not a configuration applied and then left within the last
//!    `memory` decisions, unless its expected speedup is `1 + 2 × min_gain` (no ping-pong
//!    between two configurations whose scores differ by noise).

use std::collections::VecDeque;

use serde::Serialize;

use crate::model::{Configuration, Problem};

/// The congestion of `config` (see the module's documentation): the largest load over
/// capacity of what its routes cross, 0 when no demand leaves its host. What they cross:
///
/// - each directed overlay edge, at its bandwidth;
/// - each host's egress and ingress, at the largest bandwidth of its edges out (in): every
///   overlay link of a host shares its access link, which is no faster than its fastest path
///   (the model's edges are independent, so this is what makes the star's hub a bottleneck).
///
/// An edge the network has no estimate for counts as infinitely congested.
pub fn congestion(problem: &Problem, config: &Configuration) -> f64 {
    let n = problem.hosts.len();
    let mut load = std::collections::BTreeMap::<(usize, usize), f64>::new();
    let (mut egress, mut ingress) = (vec![0.0; n], vec![0.0; n]);
    for (demand, route) in problem.demands.iter().zip(&config.routes) {
        for hop in route.windows(2) {
            *load.entry((hop[0], hop[1])).or_default() += demand.bw;
            if let (Some(e), Some(i)) = (egress.get_mut(hop[0]), ingress.get_mut(hop[1])) {
                *e += demand.bw;
                *i += demand.bw;
            }
        }
    }
    let fastest = |h: usize, out: bool| {
        (0..n)
            .filter_map(|o| {
                if out {
                    problem.edge(h, o)
                } else {
                    problem.edge(o, h)
                }
            })
            .map(|p| p.bw)
            .fold(0.0, f64::max)
    };
    let ratio = |l: f64, bw: f64| if bw > 0.0 { l / bw } else { f64::INFINITY };
    let edges = load
        .iter()
        .map(|(&(a, b), &l)| ratio(l, problem.edge(a, b).map_or(0.0, |p| p.bw)));
    let hosts = (0..n).flat_map(|h| {
        [
            (egress[h], fastest(h, true)),
            (ingress[h], fastest(h, false)),
        ]
        .into_iter()
        .filter(|(l, _)| *l > 0.0)
        .map(|(l, bw)| ratio(l, bw))
    });
    edges.chain(hosts).fold(0.0, f64::max)
}

/// The cost of one control primitive (seconds): a control call on the testbed's links takes
/// about a millisecond; 10 ms covers a slow WAN round trip.
pub const PRIMITIVE_S: f64 = 0.01;

/// The share of a migration's copy time charged as cost: the copy and the application share
/// the path, so the application loses about half of it while they compete.
pub const CONTENTION: f64 = 0.5;

/// The cost of a migration's switch (seconds): the guest's downtime, measured at 40-60 ms in
/// the testbed, rounded up.
pub const SWITCH_S: f64 = 0.1;

/// The settings of the rule (see the module's documentation).
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// Least relative speedup of communication worth acting on.
    pub min_gain: f64,
    /// How long the application is expected to run in all, in seconds from when its traffic
    /// was first seen; `None`: as long again as it has run so far.
    pub horizon_s: Option<f64>,
    /// How many times its cost a plan must save.
    pub cost_factor: f64,
    /// Seconds between two applied plans at least.
    pub dwell_s: f64,
    /// How many applied configurations are remembered against oscillation.
    pub memory: usize,
}

impl Default for Policy {
    /// 10 % gain, no horizon (the run's progress tells), a plan must save twice its cost, 5 s
    /// dwell, the last 4 configurations remembered.
    fn default() -> Self {
        Policy {
            min_gain: 0.1,
            horizon_s: None,
            cost_factor: 2.0,
            dwell_s: 5.0,
            memory: 4,
        }
    }
}

impl Policy {
    /// Seconds the application is expected to run on, `elapsed_s` after its traffic was first
    /// seen (see the module's documentation).
    pub fn remaining_s(&self, elapsed_s: f64) -> f64 {
        match self.horizon_s {
            Some(total) => (total - elapsed_s).max(0.0),
            None => elapsed_s.max(0.0),
        }
    }
}

/// What a candidate brings and costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The objective of the current configuration.
    pub objective_now: f64,
    /// The objective of the candidate.
    pub objective_new: f64,
    /// Whether the objective is maximised.
    pub maximise: bool,
    /// The congestion of the current configuration.
    pub congestion_now: f64,
    /// The congestion of the candidate.
    pub congestion_new: f64,
    /// Seconds of copying its migrations need (they run at the same time).
    pub migration_s: f64,
    /// How many VMs it migrates.
    pub migrations: usize,
    /// How many link and rule primitives it takes.
    pub primitives: usize,
    /// A fingerprint of the candidate configuration (for the memory against oscillation).
    pub fingerprint: u64,
    /// Seconds the application is expected to run on ([`Policy::remaining_s`]).
    pub remaining_s: f64,
}

impl Candidate {
    /// The objective's relative improvement (positive is better, whichever the direction);
    /// measured against 1 when the current objective is about zero.
    pub fn objective_gain(&self) -> f64 {
        let delta = if self.maximise {
            self.objective_new - self.objective_now
        } else {
            self.objective_now - self.objective_new
        };
        delta / self.objective_now.abs().max(1.0)
    }

    /// The expected speedup of communication (1 when both congestions are zero).
    pub fn speedup(&self) -> f64 {
        if self.congestion_new <= 0.0 {
            if self.congestion_now <= 0.0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            self.congestion_now / self.congestion_new
        }
    }

    /// Seconds the plan costs.
    pub fn cost_s(&self) -> f64 {
        CONTENTION * self.migration_s
            + self.migrations as f64 * SWITCH_S
            + self.primitives as f64 * PRIMITIVE_S
    }

    /// The share of the run spent communicating, at least: the current configuration's
    /// congestion, at most 1.
    pub fn communication_share(&self) -> f64 {
        self.congestion_now.clamp(0.0, 1.0)
    }

    /// Seconds of the remaining run saved (see the module's documentation).
    pub fn saved_s(&self) -> f64 {
        let left = (self.remaining_s - self.migration_s).max(0.0) * self.communication_share();
        let s = self.speedup();
        if s.is_finite() {
            left * (1.0 - 1.0 / s)
        } else {
            left
        }
    }
}

/// The decision and its reason, for the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Whether to apply the plan.
    pub apply: bool,
    /// Why, in words.
    pub reason: String,
}

/// The rule's state: when the last plan was applied and what was applied lately.
#[derive(Debug, Clone, Default)]
pub struct Damper {
    last_applied_s: Option<f64>,
    recent: VecDeque<u64>,
}

impl Damper {
    /// Judges `candidate` at time `now_s` (seconds on any monotonic clock) under `policy`.
    /// Does not change the state: call [`Damper::applied`] once the plan is applied.
    pub fn judge(&self, policy: &Policy, candidate: &Candidate, now_s: f64) -> Verdict {
        let skip = |reason: String| Verdict {
            apply: false,
            reason,
        };
        if candidate.migrations == 0 && candidate.primitives == 0 {
            return skip("the configuration is already the best found".into());
        }
        let gain = candidate.objective_gain();
        let speedup = candidate.speedup();
        let needed = if self.recent.contains(&candidate.fingerprint) {
            2.0 * policy.min_gain
        } else {
            policy.min_gain
        };
        if gain <= 0.0 {
            return skip(format!(
                "objective {:.4} -> {:.4} ({:+.1} %) is no better",
                candidate.objective_now,
                candidate.objective_new,
                100.0 * gain,
            ));
        }
        if speedup < 1.0 + needed {
            return skip(format!(
                "expected speedup of communication {speedup:.2}x, under {:.2}x",
                1.0 + needed
            ));
        }
        let (saved, cost) = (candidate.saved_s(), candidate.cost_s());
        if saved < policy.cost_factor * cost {
            return skip(format!(
                "saves {saved:.1} s of the {:.0} s left but costs {cost:.1} s (needs {:.0}x)",
                candidate.remaining_s, policy.cost_factor
            ));
        }
        if let Some(last) = self.last_applied_s {
            let since = now_s - last;
            if since < policy.dwell_s {
                return skip(format!(
                    "the last plan landed {since:.1} s ago, under the {:.1} s dwell",
                    policy.dwell_s
                ));
            }
        }
        Verdict {
            apply: true,
            reason: format!(
                "objective {:.4} -> {:.4} ({:+.1} %), expected speedup of communication \
                 {speedup:.2}x saves {saved:.1} s of the {:.0} s left (communication {:.0} % of \
                 it) for a cost of {cost:.2} s",
                candidate.objective_now,
                candidate.objective_new,
                100.0 * gain,
                candidate.remaining_s,
                100.0 * candidate.communication_share()
            ),
        }
    }

    /// Records that the plan of `fingerprint` was applied at `now_s`.
    pub fn applied(&mut self, policy: &Policy, fingerprint: u64, now_s: f64) {
        self.last_applied_s = Some(now_s);
        self.recent.push_back(fingerprint);
        while self.recent.len() > policy.memory {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate() -> Candidate {
        Candidate {
            objective_now: 10.0,
            objective_new: 20.0,
            maximise: true,
            congestion_now: 0.8,
            congestion_new: 0.2,
            migration_s: 0.0,
            migrations: 0,
            primitives: 30,
            fingerprint: 7,
            remaining_s: 60.0,
        }
    }

    #[test]
    fn a_clear_gain_at_little_cost_is_applied() {
        let v = Damper::default().judge(&Policy::default(), &candidate(), 0.0);
        assert!(v.apply, "{}", v.reason);
        assert!(v.reason.contains("4.00x"), "{}", v.reason);
    }

    #[test]
    fn noise_small_gains_are_left() {
        let c = Candidate {
            objective_new: 9.5,
            ..candidate()
        };
        let v = Damper::default().judge(&Policy::default(), &c, 0.0);
        assert!(!v.apply);
        assert!(v.reason.contains("-5.0 %"), "{}", v.reason);
        let c = Candidate {
            congestion_new: 0.75,
            ..candidate()
        };
        let v = Damper::default().judge(&Policy::default(), &c, 0.0);
        assert!(!v.apply && v.reason.contains("speedup"), "{}", v.reason);
    }

    #[test]
    fn a_migration_that_costs_more_than_it_saves_is_left() {
        // 4x faster communication, 80 % of the run, after a 30 s copy saves 18 s of the 60 s
        // left; the plan costs half the copy, the switch and its primitives, 15.4 s, and must
        // save twice that.
        let c = Candidate {
            migration_s: 30.0,
            migrations: 1,
            ..candidate()
        };
        let v = Damper::default().judge(&Policy::default(), &c, 0.0);
        assert!(
            !v.apply && v.reason.contains("costs 15.4 s"),
            "{}",
            v.reason
        );
        let long = Candidate {
            remaining_s: 600.0,
            ..c
        };
        assert!(
            Damper::default()
                .judge(&Policy::default(), &long, 0.0)
                .apply
        );
    }

    #[test]
    fn the_remaining_run_comes_from_progress() {
        let expected = Policy {
            horizon_s: Some(100.0),
            ..Policy::default()
        };
        assert_eq!(expected.remaining_s(30.0), 70.0);
        assert_eq!(expected.remaining_s(130.0), 0.0);
        assert_eq!(Policy::default().remaining_s(30.0), 30.0);
        // A job about to end is not worth a copy, however large the speedup.
        let short = Candidate {
            migration_s: 30.0,
            migrations: 1,
            remaining_s: 25.0,
            ..candidate()
        };
        assert_eq!(short.saved_s(), 0.0);
        let v = Damper::default().judge(&Policy::default(), &short, 0.0);
        assert!(
            !v.apply && v.reason.contains("of the 25 s left"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn only_the_communicating_share_of_a_run_is_saved() {
        // Busy 20 % of the time: a 4x faster network saves 15 % of the run, not 75 %.
        let c = Candidate {
            congestion_now: 0.2,
            congestion_new: 0.05,
            ..candidate()
        };
        assert!((c.saved_s() - 60.0 * 0.2 * 0.75).abs() < 1e-9);
    }

    #[test]
    fn dwell_and_memory_damp_oscillation() {
        let policy = Policy::default();
        let mut damper = Damper::default();
        damper.applied(&policy, 7, 100.0);
        let v = damper.judge(&policy, &candidate(), 102.0);
        assert!(!v.apply && v.reason.contains("dwell"), "{}", v.reason);
        // After the dwell, going back to a configuration applied lately needs twice the gain.
        let back = Candidate {
            congestion_new: 0.8 / 1.15,
            ..candidate()
        };
        assert!(!damper.judge(&policy, &back, 110.0).apply);
        let other = Candidate {
            fingerprint: 8,
            ..back.clone()
        };
        assert!(damper.judge(&policy, &other, 110.0).apply);
        // The memory is bounded.
        for f in 0..policy.memory as u64 {
            damper.applied(&policy, 100 + f, 120.0);
        }
        assert!(damper.judge(&policy, &back, 200.0).apply);
    }

    #[test]
    fn nothing_to_do_is_said() {
        let c = Candidate {
            primitives: 0,
            ..candidate()
        };
        let v = Damper::default().judge(&Policy::default(), &c, 0.0);
        assert!(!v.apply && v.reason.contains("already"), "{}", v.reason);
    }

    /// Three hosts at 10 Mbit/s to each other and to a Proxy (index 3); one VM each; every
    /// VM sends 1 Mbit/s to every other.
    fn three_hosts() -> Problem {
        use crate::model::{Demand, Host, PathEstimate, Source, Vm};
        let host = |name: &str, can_host| Host {
            name: name.into(),
            compute: 1.0,
            size: 1 << 30,
            intra_bw: 1e9,
            can_host,
        };
        let path = PathEstimate {
            bw: 10e6,
            lat: 1e-3,
            bw_ci: None,
            source: Source::Prior,
        };
        let net = (0..4)
            .map(|a| (0..4).map(|b| (a != b).then(|| path.clone())).collect())
            .collect();
        let vm = |name: &str| Vm {
            name: name.into(),
            compute: 0.5,
            size: 1 << 20,
            memory: 1 << 20,
        };
        let demands = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
            .map(|(src, dst)| Demand {
                src,
                dst,
                bw: 1e6,
                lat: None,
            })
            .to_vec();
        Problem {
            hosts: vec![
                host("h1", true),
                host("h2", true),
                host("h3", true),
                host("proxy", false),
            ],
            net,
            vms: vec![vm("a"), vm("b"), vm("c")],
            demands,
            pinned: Default::default(),
            current: Configuration::default(),
            max_links: None,
        }
    }

    #[test]
    fn the_star_s_hub_is_its_bottleneck() {
        let p = three_hosts();
        let star = Configuration::star(&p, vec![0, 1, 2], 3);
        // All six demands cross the Proxy's access: 6 Mbit/s of its 10.
        assert!((congestion(&p, &star) - 0.6).abs() < 1e-12);
        let mesh = Configuration {
            mapping: vec![0, 1, 2],
            links: crate::model::Configuration::links_of(
                &p.demands
                    .iter()
                    .map(|d| vec![d.src, d.dst])
                    .collect::<Vec<_>>(),
            ),
            routes: p.demands.iter().map(|d| vec![d.src, d.dst]).collect(),
        };
        // Each host sends and receives 2 Mbit/s of its 10.
        assert!((congestion(&p, &mesh) - 0.2).abs() < 1e-12);
        // Two VMs on one host talk inside it: only the third's traffic leaves.
        let packed = Configuration {
            mapping: vec![0, 0, 2],
            links: [(0, 2)].into(),
            routes: p
                .demands
                .iter()
                .map(|d| {
                    let (a, b) = ([0, 0, 2][d.src], [0, 0, 2][d.dst]);
                    if a == b {
                        vec![a]
                    } else {
                        vec![a, b]
                    }
                })
                .collect(),
        };
        assert!((congestion(&p, &packed) - 0.2).abs() < 1e-12);
        let idle = Configuration {
            routes: vec![vec![0]; 6],
            ..packed
        };
        assert_eq!(congestion(&p, &idle), 0.0);
    }

    #[test]
    fn speedup_handles_zero_congestion() {
        let c = Candidate {
            congestion_now: 0.0,
            congestion_new: 0.0,
            ..candidate()
        };
        assert_eq!(c.speedup(), 1.0);
        let c = Candidate {
            congestion_new: 0.0,
            ..candidate()
        };
        assert!(c.speedup().is_infinite());
        assert!((c.saved_s() - 60.0 * 0.8).abs() < 1e-9);
    }
}

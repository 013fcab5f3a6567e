//! The controller's Prometheus metrics (text exposition format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::decide::Candidate;

/// What the controller has done so far.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Decisions taken, by verdict (`applied`, `left`).
    pub plans: BTreeMap<&'static str, u64>,
    /// Actions applied, by kind (`migrate`, `primitive`).
    pub actions: BTreeMap<&'static str, u64>,
    /// Decisions that found no plan (an infeasible problem, a daemon that did not answer).
    pub failures: u64,
    /// The objective of the configuration in place at the last decision, and of its candidate.
    pub objective: Option<(f64, f64)>,
    /// The expected speedup of communication of the last candidate.
    pub expected_speedup: Option<f64>,
    /// The measured gain of the last landed plan (traffic after over before).
    pub measured_gain: Option<f64>,
    /// Seconds the solver took, summed, and how many solves.
    pub solve_seconds: f64,
    /// Solves.
    pub solves: u64,
    /// Seconds spent migrating, summed.
    pub migration_seconds: f64,
}

impl Metrics {
    /// Counts a decision on `candidate`.
    pub fn decided(&mut self, candidate: &Candidate, applied: bool, solve_s: f64) {
        *self
            .plans
            .entry(if applied { "applied" } else { "left" })
            .or_default() += 1;
        self.objective = Some((candidate.objective_now, candidate.objective_new));
        self.expected_speedup = Some(candidate.speedup());
        self.solve_seconds += solve_s;
        self.solves += 1;
    }

    /// Counts `n` actions of `kind`.
    pub fn actions(&mut self, kind: &'static str, n: usize) {
        *self.actions.entry(kind).or_default() += n as u64;
    }

    /// The exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let by = |label: &str, keys: &[&'static str], map: &BTreeMap<&'static str, u64>| {
            keys.iter()
                .map(|k| {
                    let v = map.get(k).copied().unwrap_or(0) as f64;
                    (format!("{{{label}=\"{k}\"}}"), v)
                })
                .collect::<Vec<_>>()
        };
        family(
            "vadapt_plans_total",
            "counter",
            "Decisions taken, by verdict.",
            &by("verdict", &["applied", "left"], &self.plans),
        );
        family(
            "vadapt_actions_total",
            "counter",
            "Actions applied, by kind.",
            &by("kind", &["migrate", "primitive"], &self.actions),
        );
        family(
            "vadapt_failures_total",
            "counter",
            "Decisions that found no plan; the overlay was left as it was.",
            &[(String::new(), self.failures as f64)],
        );
        let some = |v: Option<f64>| v.map(|v| vec![(String::new(), v)]).unwrap_or_default();
        let (now, new) = self.objective.unzip();
        let mut objective = Vec::new();
        objective.extend(now.map(|v| ("{config=\"current\"}".to_string(), v)));
        objective.extend(new.map(|v| ("{config=\"candidate\"}".to_string(), v)));
        family(
            "vadapt_objective",
            "gauge",
            "The objective at the last decision, of the configuration in place and of the candidate.",
            &objective,
        );
        family(
            "vadapt_expected_speedup",
            "gauge",
            "The expected speedup of communication of the last candidate.",
            &some(self.expected_speedup),
        );
        family(
            "vadapt_measured_gain",
            "gauge",
            "The application's traffic after the last landed plan over before it.",
            &some(self.measured_gain),
        );
        family(
            "vadapt_solve_seconds_total",
            "counter",
            "Seconds the solver took, summed over decisions.",
            &[(String::new(), self.solve_seconds)],
        );
        family(
            "vadapt_solves_total",
            "counter",
            "Solves.",
            &[(String::new(), self.solves as f64)],
        );
        family(
            "vadapt_migration_seconds_total",
            "counter",
            "Seconds spent migrating VMs, summed.",
            &[(String::new(), self.migration_seconds)],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_samples() {
        let mut m = Metrics::default();
        let text = m.render();
        assert!(text.contains("vadapt_plans_total{verdict=\"applied\"} 0"));
        assert!(
            !text.contains("vadapt_objective{"),
            "no objective before a decision"
        );
        let c = Candidate {
            objective_now: 1.0,
            objective_new: 3.0,
            maximise: true,
            congestion_now: 0.8,
            congestion_new: 0.4,
            migration_s: 0.0,
            migrations: 0,
            primitives: 4,
            fingerprint: 1,
            remaining_s: 60.0,
        };
        m.decided(&c, true, 0.002);
        m.actions("primitive", 4);
        let text = m.render();
        for want in [
            "vadapt_plans_total{verdict=\"applied\"} 1",
            "vadapt_actions_total{kind=\"primitive\"} 4",
            "vadapt_objective{config=\"candidate\"} 3",
            "vadapt_expected_speedup 2",
            "vadapt_solves_total 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!((helps, types), (9, 9));
    }
}

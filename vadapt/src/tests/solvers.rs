//! The solvers: feasibility on random instances, exact against the others, diagnoses.

use super::tiny;
use crate::generate::{generate, GenParams};
use crate::model::{evaluate, Infeasible};
use crate::objective::{Direction, Objective, ResidualBottleneck, SingleHop, TightFit};
use crate::solve::{Exact, Greedy, LpBackend, LpRounding, Solver};

pub(crate) fn all_solvers() -> Vec<Box<dyn Solver>> {
    vec![
        Box::new(Greedy),
        Box::new(LpRounding::default()),
        Box::new(Exact::default()),
    ]
}

#[test]
fn greedy_maps_the_pair_onto_the_fast_hosts() {
    let p = tiny();
    let c = Greedy.solve(&p, &ResidualBottleneck).unwrap();
    assert_eq!(c.mapping.len(), 2);
    assert_ne!(c.mapping[0], c.mapping[1]);
    assert_eq!(c.links.iter().copied().collect::<Vec<_>>(), vec![(0, 1)]);
    let s = ResidualBottleneck.score(&p, &c).unwrap();
    assert!((s - 194e6).abs() < 1.0);
    // Exact agrees: nothing beats the direct link.
    let e = Exact::default().solve(&p, &ResidualBottleneck).unwrap();
    assert!((ResidualBottleneck.score(&p, &e).unwrap() - 194e6).abs() < 1.0);
}

#[test]
fn greedy_honours_pins_and_capacities() {
    for seed in 0..40 {
        let mut params = GenParams::scaled(32, seed);
        params.pinned_fraction = 0.3;
        let p = generate(&params);
        match Greedy.solve(&p, &ResidualBottleneck) {
            Ok(c) => {
                evaluate(&p, &c).unwrap();
                for (&v, &h) in &p.pinned {
                    assert_eq!(c.mapping[v], h);
                }
            }
            Err(e) => assert!(
                !matches!(e, Infeasible::Invalid(_)),
                "seed {seed}: unexpected {e}"
            ),
        }
    }
}

#[test]
fn tight_fit_prefers_the_slow_paths() {
    let p = tiny();
    let e = Exact::default().solve(&p, &TightFit).unwrap();
    // The star through the Proxy leaves 6 + 8 Mbit/s; the direct link 96 + 98.
    let s = TightFit.score(&p, &e).unwrap();
    assert!((s - 14e6).abs() < 1.0, "{s}");
    let l = LpRounding::default().solve(&p, &TightFit).unwrap();
    assert!((TightFit.score(&p, &l).unwrap() - 14e6).abs() < 1.0);
}

#[test]
fn link_budget_is_kept_or_diagnosed() {
    let mut p = tiny();
    p.max_links = Some(0);
    // The VMs cannot share a host (1 core each), so with no link nothing is feasible.
    assert!(matches!(
        Greedy.solve(&p, &ResidualBottleneck),
        Err(Infeasible::NotFound { .. })
    ));
    assert!(matches!(
        Exact::default().solve(&p, &ResidualBottleneck),
        Err(Infeasible::NoFeasibleConfiguration)
    ));
    assert!(LpRounding::default()
        .solve(&p, &ResidualBottleneck)
        .is_err());
    p.max_links = Some(1);
    for s in all_solvers() {
        let c = s.solve(&p, &ResidualBottleneck).unwrap();
        assert!(c.links.len() <= 1, "{}", s.name());
    }
}

#[test]
fn no_placement_satisfies_the_demands() {
    // Latency bound below every path's, and the VMs cannot share a host: no diagnosis can see
    // it cheaply (the VMs are not pinned), the exhaustive search proves it.
    let mut p = tiny();
    p.demands[0].lat = Some(0.0005);
    assert!(crate::diagnose(&p).is_ok());
    assert!(matches!(
        Exact::default().solve(&p, &ResidualBottleneck),
        Err(Infeasible::NoFeasibleConfiguration)
    ));
    assert!(matches!(
        Greedy.solve(&p, &ResidualBottleneck),
        Err(Infeasible::NotFound { .. })
    ));
    // The relaxation is feasible (half of each VM on each host "co-locates" them): the
    // roundings all fail.
    assert!(matches!(
        LpRounding::default().solve(&p, &ResidualBottleneck),
        Err(Infeasible::NotFound { .. } | Infeasible::NoFeasibleConfiguration)
    ));
    // Give a host room for both: co-location meets the bound, every solver finds it.
    p.hosts[1].compute = 2.0;
    for s in all_solvers() {
        let c = s.solve(&p, &ResidualBottleneck).unwrap();
        assert_eq!(c.mapping, vec![1, 1], "{}", s.name());
    }
}

#[test]
fn pinned_over_capacity_is_diagnosed_by_every_solver() {
    let mut p = tiny();
    p.pinned.insert(0, 1);
    p.pinned.insert(1, 1);
    for s in all_solvers() {
        assert!(
            matches!(
                s.solve(&p, &ResidualBottleneck),
                Err(Infeasible::PinnedOverCapacity { host: 1, .. })
            ),
            "{}",
            s.name()
        );
    }
}

fn small_instances(n: u64) -> Vec<crate::Problem> {
    (0..n)
        .map(|seed| {
            generate(&GenParams::small(
                4 + usize::try_from(seed % 4).unwrap_or(0),
                seed,
            ))
        })
        .collect()
}

fn check_exact_bounds_others(obj: &dyn Objective, n: u64) {
    let dir = obj.direction();
    let mut solved = 0;
    for (seed, p) in small_instances(n).iter().enumerate() {
        let exact = Exact::default().solve(p, obj);
        let opt = match &exact {
            Ok(c) => obj.score(p, c).unwrap(),
            Err(Infeasible::NoFeasibleConfiguration) => {
                for s in [&Greedy as &dyn Solver, &LpRounding::default()] {
                    assert!(
                        s.solve(p, obj).is_err(),
                        "seed {seed}: {} beat exact",
                        s.name()
                    );
                }
                continue;
            }
            Err(e) => {
                // A diagnosis: the others must fail too.
                assert!(Greedy.solve(p, obj).is_err(), "seed {seed}: {e}");
                continue;
            }
        };
        solved += 1;
        for s in [&Greedy as &dyn Solver, &LpRounding::default()] {
            if let Ok(c) = s.solve(p, obj) {
                evaluate(p, &c).unwrap();
                let x = obj.score(p, &c).unwrap();
                assert!(
                    !dir.better(x, opt),
                    "seed {seed}: {} scored {x}, better than exact {opt}",
                    s.name()
                );
            }
        }
    }
    assert!(solved >= n / 2, "only {solved} of {n} solved");
}

#[test]
fn exact_is_at_least_as_good_residual() {
    check_exact_bounds_others(&ResidualBottleneck, 24);
}

#[test]
fn exact_is_at_least_as_good_tight_fit() {
    check_exact_bounds_others(&TightFit, 10);
}

#[test]
fn exact_is_at_least_as_good_single_hop() {
    check_exact_bounds_others(&SingleHop, 10);
}

#[test]
fn lp_rounding_is_feasible_with_both_backends() {
    for backend in [LpBackend::Microlp, LpBackend::Clarabel] {
        let lp = LpRounding {
            backend,
            ..LpRounding::default()
        };
        for (seed, p) in small_instances(8).iter().enumerate() {
            if let Ok(c) = lp.solve(p, &ResidualBottleneck) {
                evaluate(p, &c).unwrap();
            } else {
                assert!(
                    Exact::default().solve(p, &ResidualBottleneck).is_err(),
                    "seed {seed}"
                );
            }
        }
        // The relaxation bounds the optimum from above.
        let p = tiny();
        let r = lp.relax(&p, &ResidualBottleneck).unwrap();
        assert!(r.value >= 194e6 * (1.0 - 1e-6), "{backend:?}: {}", r.value);
    }
}

#[test]
fn lp_without_polish_is_feasible() {
    let lp = LpRounding {
        polish: false,
        ..LpRounding::default()
    };
    for p in small_instances(8) {
        if let Ok(c) = lp.solve(&p, &ResidualBottleneck) {
            evaluate(&p, &c).unwrap();
        }
    }
}

#[test]
fn solvers_are_feasible_on_larger_instances() {
    for seed in 0..3 {
        let p = generate(&GenParams::scaled(32, seed));
        for s in [&Greedy as &dyn Solver, &LpRounding::default()] {
            match s.solve(&p, &ResidualBottleneck) {
                Ok(c) => {
                    evaluate(&p, &c).unwrap();
                }
                Err(e) => panic!("seed {seed}: {} failed: {e}", s.name()),
            }
        }
    }
    let p = generate(&GenParams::scaled(128, 7));
    let c = Greedy.solve(&p, &ResidualBottleneck).unwrap();
    evaluate(&p, &c).unwrap();
    assert!(matches!(
        Exact::default().solve(&p, &ResidualBottleneck),
        Err(Infeasible::TooLarge { .. })
    ));
}

#[test]
fn topology_only_keeps_the_mapping() {
    let p = generate(&GenParams::scaled(16, 3));
    let c = Greedy::adapt_topology(&p, &p.current.mapping);
    if let Ok(c) = c {
        assert_eq!(c.mapping, p.current.mapping);
        evaluate(&p, &c).unwrap();
    }
}

#[test]
fn deterministic() {
    let a = generate(&GenParams::small(6, 42));
    let b = generate(&GenParams::small(6, 42));
    assert_eq!(a, b);
    for s in all_solvers() {
        assert_eq!(
            s.solve(&a, &ResidualBottleneck).ok(),
            s.solve(&b, &ResidualBottleneck).ok(),
            "{}",
            s.name()
        );
    }
    assert_eq!(Direction::Maximize.worst(), f64::NEG_INFINITY);
}

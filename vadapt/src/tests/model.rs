//! `validate`, `evaluate`, the objectives and `diagnose` on hand-computed cases.

use super::{direct, path, tiny, vm};
use crate::model::{evaluate, Configuration, Infeasible, ProblemError, Resource};
use crate::objective::{Objective, ResidualBottleneck, SingleHop, TightFit};
use crate::{diagnose, Demand};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn star_is_feasible_and_scores_by_hand() {
    let p = tiny();
    let star = Configuration::star(&p, vec![0, 1], 2);
    assert_eq!(
        star.links.iter().copied().collect::<Vec<_>>(),
        vec![(0, 2), (1, 2)]
    );
    assert_eq!(star.routes, vec![vec![0, 2, 1], vec![1, 2, 0]]);
    let ev = evaluate(&p, &star).expect("the star is feasible");
    // 0->2 and 2->1 carry 4 Mbit/s of 10, 1->2 and 2->0 carry 2.
    assert!(close(ev.residual[&(0, 2)], 6e6));
    assert!(close(ev.residual[&(2, 1)], 6e6));
    assert!(close(ev.residual[&(1, 2)], 8e6));
    assert!(close(ev.residual[&(2, 0)], 8e6));
    assert!(close(ev.outcomes[0].bottleneck, 6e6));
    assert!(close(ev.outcomes[1].bottleneck, 8e6));
    assert_eq!(ev.outcomes[0].hops, 2);
    assert!(close(ev.outcomes[0].latency, 0.020));
    assert!(close(ResidualBottleneck.score(&p, &star).unwrap(), 14e6));
    assert!(close(TightFit.score(&p, &star).unwrap(), 14e6));
    // No demand on one hop; tie-break 14e6 / (2 demands · 1 Gbit/s + 1).
    assert!(close(
        SingleHop.score(&p, &star).unwrap(),
        14e6 / (2e9 + 1.0)
    ));
}

#[test]
fn direct_link_scores_by_hand() {
    let p = tiny();
    let c = direct(&p);
    assert!(close(
        ResidualBottleneck.score(&p, &c).unwrap(),
        96e6 + 98e6
    ));
    assert!(close(
        SingleHop.score(&p, &c).unwrap(),
        2.0 + 194e6 / (2e9 + 1.0)
    ));
    // The tight fit prefers the star (14e6 < 194e6).
    let star = Configuration::star(&p, vec![0, 1], 2);
    assert!(TightFit.direction().better(
        TightFit.score(&p, &star).unwrap(),
        TightFit.score(&p, &c).unwrap()
    ));
}

#[test]
fn one_host_traffic_uses_intra_bandwidth() {
    let mut p = tiny();
    p.hosts[0].compute = 2.0;
    let c = Configuration {
        mapping: vec![0, 0],
        links: Default::default(),
        routes: vec![vec![0], vec![0]],
    };
    let ev = evaluate(&p, &c).unwrap();
    assert!(close(ev.intra_residual[0], 1e9 - 6e6));
    assert_eq!(ev.outcomes[0].hops, 0);
    assert!(close(
        ResidualBottleneck.score(&p, &c).unwrap(),
        2.0 * (1e9 - 6e6)
    ));
    // A one-host demand must have the one-host route.
    let mut bad = c.clone();
    bad.routes[0] = vec![0, 1, 0];
    assert!(matches!(
        evaluate(&p, &bad),
        Err(Infeasible::BadRoute { demand: 0, .. })
    ));
    // Over the host's own bandwidth.
    p.hosts[0].intra_bw = 5e6;
    assert!(matches!(
        evaluate(&p, &c),
        Err(Infeasible::Overloaded { from: 0, to: 0, .. })
    ));
}

#[test]
fn evaluate_checks_every_constraint() {
    let p = tiny();
    let good = direct(&p);
    assert!(evaluate(&p, &good).is_ok());

    let mut c = good.clone();
    c.mapping = vec![0, 0];
    c.routes = vec![vec![0], vec![0]];
    assert!(matches!(
        evaluate(&p, &c),
        Err(Infeasible::OverCapacity {
            host: 0,
            resource: Resource::Compute,
            ..
        })
    ));

    let mut q = p.clone();
    q.hosts[1].size = 1;
    assert!(matches!(
        evaluate(&q, &good),
        Err(Infeasible::OverCapacity {
            host: 1,
            resource: Resource::Size,
            ..
        })
    ));

    let mut c = good.clone();
    c.mapping = vec![2, 1];
    assert!(matches!(
        evaluate(&p, &c),
        Err(Infeasible::NotAHost { vm: 0, host: 2 })
    ));

    let mut q = p.clone();
    q.pinned.insert(0, 1);
    q.pinned.insert(1, 0);
    assert!(matches!(
        evaluate(&q, &good),
        Err(Infeasible::PinViolated {
            vm: 0,
            host: 0,
            pinned: 1
        })
    ));

    let mut c = good.clone();
    c.mapping.pop();
    assert!(matches!(evaluate(&p, &c), Err(Infeasible::Shape { .. })));

    let mut c = good.clone();
    c.links.clear();
    assert!(matches!(
        evaluate(&p, &c),
        Err(Infeasible::BadRoute { demand: 0, .. })
    ));

    let mut c = good.clone();
    c.routes[0] = vec![1, 0];
    assert!(matches!(
        evaluate(&p, &c),
        Err(Infeasible::BadRoute { demand: 0, .. })
    ));

    let mut q = p.clone();
    q.max_links = Some(1);
    let star = Configuration::star(&q, vec![0, 1], 2);
    assert!(matches!(
        evaluate(&q, &star),
        Err(Infeasible::TooManyLinks { links: 2, max: 1 })
    ));

    let mut q = p.clone();
    q.net[0][1] = None;
    q.net[1][0] = None;
    assert!(matches!(
        evaluate(&q, &good),
        Err(Infeasible::BadLink { a: 0, b: 1 })
    ));

    // 0 -> 1 exists but not 1 -> 0: the link is possible, the hop 1 -> 0 is not.
    let mut q = p.clone();
    q.net[1][0] = None;
    assert!(matches!(
        evaluate(&q, &good),
        Err(Infeasible::BadRoute { demand: 1, .. })
    ));

    let mut q = p.clone();
    q.demands[0].bw = 50e6;
    let star = Configuration::star(&q, vec![0, 1], 2);
    assert!(matches!(
        evaluate(&q, &star),
        Err(Infeasible::Overloaded { from: 0, to: 2, .. })
    ));
    assert!(evaluate(&q, &good).is_ok());

    let mut q = p.clone();
    q.demands[0].lat = Some(0.015);
    let star = Configuration::star(&q, vec![0, 1], 2);
    assert!(matches!(
        evaluate(&q, &star),
        Err(Infeasible::LatencyExceeded { demand: 0, .. })
    ));
    assert!(evaluate(&q, &good).is_ok());
}

#[test]
fn validate_refuses_bad_data() {
    let mut p = tiny();
    p.net[0][1] = path(f64::NAN, 0.001);
    assert!(matches!(p.validate(), Err(ProblemError::NonFinite { .. })));
    let mut p = tiny();
    p.vms[0].compute = -1.0;
    assert!(matches!(p.validate(), Err(ProblemError::Negative { .. })));
    let mut p = tiny();
    p.net.pop();
    assert!(matches!(
        p.validate(),
        Err(ProblemError::NetRows { rows: 2, hosts: 3 })
    ));
    let mut p = tiny();
    p.net[0][0] = path(1.0, 0.0);
    assert!(matches!(
        p.validate(),
        Err(ProblemError::SelfPath { host: 0 })
    ));
    let mut p = tiny();
    p.demands[0].dst = 7;
    assert!(matches!(
        p.validate(),
        Err(ProblemError::DemandVm { vm: 7, .. })
    ));
    let mut p = tiny();
    p.demands[0].dst = 0;
    assert!(matches!(p.validate(), Err(ProblemError::SelfDemand { .. })));
    let mut p = tiny();
    p.pinned.insert(0, 9);
    assert!(matches!(
        p.validate(),
        Err(ProblemError::PinnedHost { host: 9, .. })
    ));
    let mut p = tiny();
    p.current.mapping = vec![0];
    assert!(matches!(
        p.validate(),
        Err(ProblemError::CurrentMappingLen { .. })
    ));
    let mut p = tiny();
    p.hosts.clear();
    p.net.clear();
    assert!(matches!(p.validate(), Err(ProblemError::NoHosts)));
    // evaluate reports it too, as a diagnosis.
    let mut p = tiny();
    p.demands[0].bw = f64::INFINITY;
    assert!(matches!(
        evaluate(&p, &direct(&p)),
        Err(Infeasible::Invalid(_))
    ));
}

#[test]
fn diagnose_names_what_fails() {
    assert!(diagnose(&tiny()).is_ok());

    let mut p = tiny();
    p.pinned.insert(0, 0);
    p.pinned.insert(1, 0);
    assert!(matches!(
        diagnose(&p),
        Err(Infeasible::PinnedOverCapacity {
            host: 0,
            resource: Resource::Compute,
            ..
        })
    ));

    let mut p = tiny();
    p.pinned.insert(0, 2);
    assert!(matches!(
        diagnose(&p),
        Err(Infeasible::PinnedToNonHost { vm: 0, host: 2 })
    ));

    let mut p = tiny();
    p.vms.push(vm("big", 5.0));
    p.current.mapping.push(0);
    let d = diagnose(&p);
    assert!(
        matches!(d, Err(Infeasible::VmFitsNowhere { vm: 2, .. })),
        "{d:?}"
    );

    let mut p = tiny();
    p.vms.push(vm("third", 1.0));
    p.current.mapping.push(0);
    assert!(matches!(
        diagnose(&p),
        Err(Infeasible::TotalOverCapacity {
            resource: Resource::Compute,
            ..
        })
    ));

    let mut p = tiny();
    p.demands[0].bw = 2e9;
    assert!(matches!(
        diagnose(&p),
        Err(Infeasible::BandwidthUnmeetable { demand: 0, .. })
    ));

    // Pinned on hosts 0 and 1 with only the slow way round through the Proxy.
    let mut p = tiny();
    p.pinned.insert(0, 0);
    p.pinned.insert(1, 1);
    p.net[0][1] = None;
    p.net[1][0] = None;
    p.demands[0].bw = 20e6;
    assert!(matches!(
        diagnose(&p),
        Err(Infeasible::BandwidthUnmeetable { demand: 0, need, best }) if close(need, 20e6) && close(best, 10e6)
    ));
    p.demands[0].bw = 1e6;
    p.demands[0].lat = Some(0.005);
    assert!(matches!(
        diagnose(&p),
        Err(Infeasible::LatencyUnmeetable { demand: 0, .. })
    ));
}

#[test]
fn disconnected_host_graph_is_diagnosed() {
    let mut p = tiny();
    // Cut every path from host 0.
    for h in 0..3 {
        p.net[0][h] = None;
        p.net[h][0] = None;
    }
    p.pinned.insert(0, 0);
    p.pinned.insert(1, 1);
    assert!(matches!(
        diagnose(&p),
        Err(Infeasible::Disconnected {
            demand: 0,
            from: 0,
            to: 1
        })
    ));
    // Also through the solvers.
    for s in crate::tests::solvers::all_solvers() {
        assert!(matches!(
            s.solve(&p, &ResidualBottleneck),
            Err(Infeasible::Disconnected { .. })
        ));
    }
}

#[test]
fn problem_round_trips_through_json() {
    let mut p = tiny();
    p.demands.push(Demand {
        src: 0,
        dst: 1,
        bw: 1.0,
        lat: Some(0.1),
    });
    p.pinned.insert(1, 1);
    let s = serde_json::to_string(&p).unwrap();
    let q: crate::Problem = serde_json::from_str(&s).unwrap();
    assert_eq!(p, q);
}

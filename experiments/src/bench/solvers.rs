//! `bench solvers`: VADAPT's three solvers side by side on seeded random instances
//! (`vadapt::generate`) — solve time at 8, 32, 128 and 512 VMs, and the gap to the exact
//! optimum on small instances (≤ 8 VMs), for the paper's residual-bottleneck objective and the
//! other two. Pure computation: no testbed.
//!
//! The gap of a solution scoring `x` against the optimum `opt` is `(opt − x) / max(|opt|, ε)`
//! for a maximised objective and `(x − opt) / max(|opt|, ε)` for a minimised one (`ε` = 1
//! bit/s); a solver that finds nothing where the exact solver found an optimum counts as not
//! within any gap.

use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};
use vadapt::{
    generate, Exact, GenParams, Greedy, Infeasible, LpBackend, LpRounding, Objective, Problem,
    ResidualBottleneck, SingleHop, Solver, TightFit,
};

use crate::patterns::report::{median, percentile};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timed solves of each instance (greedy and exact; the LP is solved once per instance).
    pub repeat: usize,
    /// Instances per size in the timing table.
    pub instances: usize,
    /// Small instances for the gap to the optimum.
    pub small: usize,
    /// Largest size at which the LP is attempted (route variables permitting).
    pub lp_max_vms: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            repeat: 10,
            instances: 5,
            small: 100,
            lp_max_vms: 32,
        }
    }
}

const SIZES: [usize; 4] = [8, 32, 128, 512];

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// `median [min-max] p99` of a sample.
fn spread(xs: &[f64]) -> (f64, f64, f64, f64) {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(xs), percentile(xs, 99), min, max)
}

#[allow(clippy::cast_precision_loss)]
fn share(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

/// One timing row: every solve's milliseconds and how many were feasible.
struct Timing {
    ms: Vec<f64>,
    feasible: usize,
    solves: usize,
    note: String,
}

fn time_solver(solver: &dyn Solver, problems: &[Problem], repeat: usize) -> Timing {
    let mut t = Timing {
        ms: Vec::new(),
        feasible: 0,
        solves: 0,
        note: String::new(),
    };
    for p in problems {
        for _ in 0..repeat {
            let t0 = Instant::now();
            let r = solver.solve(p, &ResidualBottleneck);
            t.ms.push(ms(t0));
            t.solves += 1;
            if r.is_ok() {
                t.feasible += 1;
            } else if t.note.is_empty() {
                if let Err(e) = r {
                    t.note = format!("first failure: {e}");
                }
            }
        }
    }
    t
}

fn gap(obj: &dyn Objective, opt: f64, x: f64) -> f64 {
    let d = match obj.direction() {
        vadapt::Direction::Maximize => opt - x,
        vadapt::Direction::Minimize => x - opt,
    };
    d / opt.abs().max(1.0)
}

/// Gaps of one solver over the small instances (`None` where it found nothing).
struct Gaps {
    name: String,
    gaps: Vec<Option<f64>>,
    ms: Vec<f64>,
}

impl Gaps {
    fn within(&self, g: f64) -> usize {
        self.gaps.iter().flatten().filter(|&&x| x <= g).count()
    }
    fn found(&self) -> Vec<f64> {
        self.gaps.iter().flatten().copied().collect()
    }
}

/// Runs the benchmark, printing its tables; returns its headline figures.
///
/// # Errors
/// None in practice (the signature matches the other benches').
#[allow(clippy::too_many_lines)]
pub fn run(opts: &Options) -> Result<Value> {
    let lp = LpRounding::default();
    let mut figures = serde_json::Map::new();

    // ---- Solve time by size -------------------------------------------------------------
    println!(
        "\nSolve time, residual-bottleneck objective (GenParams::scaled: VMs/4 hosts in sites of 8 \
         and the Proxy, ~3 demands per VM; {} instances per size (the LP at most 3 above 8 VMs); \
         greedy and exact {} solves each, the LP one; ms)\n",
        opts.instances, opts.repeat
    );
    println!(
        "{:>5} {:>6} {:>8} {:>14} {:>10} {:>10} {:>21} {:>9}  note",
        "VMs", "hosts", "demands", "solver", "median", "p99", "[min-max]", "feasible"
    );
    for &n in &SIZES {
        let problems: Vec<Problem> = (0..opts.instances)
            .map(|k| generate(&GenParams::scaled(n, 1000 + k as u64)))
            .collect();
        let demands =
            problems.iter().map(|p| p.demands.len()).sum::<usize>() / problems.len().max(1);
        let hosts = problems.first().map_or(0, |p| p.hosts.len());
        let mut rows: Vec<(&str, Option<Timing>, String)> = Vec::new();
        eprintln!("bench solvers: timing greedy at {n} VMs");
        rows.push((
            "greedy",
            Some(time_solver(&Greedy, &problems, opts.repeat)),
            String::new(),
        ));
        let (vars, two_hop) = problems.first().map_or((0, true), |p| lp.route_vars(p));
        if n <= opts.lp_max_vms && vars <= lp.max_route_vars {
            eprintln!("bench solvers: timing lp-rounding at {n} VMs ({vars} route variables)");
            // The LP takes seconds at 32 VMs: at most 3 instances there.
            let lp_set = if n > 8 {
                &problems[..problems.len().min(3)]
            } else {
                &problems[..]
            };
            let mut t = time_solver(&lp, lp_set, 1);
            t.note = format!(
                "{vars} route vars{}{}{}",
                if two_hop { "" } else { ", direct only" },
                if t.note.is_empty() { "" } else { "; " },
                t.note
            );
            rows.push(("lp-rounding", Some(t), String::new()));
        } else {
            rows.push((
                "lp-rounding",
                None,
                format!(
                    "skipped: {vars} route variables{} (clarabel's time grows much faster than \
                     linearly: see 32 VMs)",
                    if two_hop {
                        ""
                    } else {
                        " even with direct routes only"
                    }
                ),
            ));
        }
        if problems.first().is_some_and(|p| {
            p.vms.len() <= Exact::default().max_vms && p.hosts.len() <= Exact::default().max_hosts
        }) {
            eprintln!("bench solvers: timing exact at {n} VMs");
            rows.push((
                "exact",
                Some(time_solver(&Exact::default(), &problems, opts.repeat)),
                String::new(),
            ));
        } else {
            rows.push((
                "exact",
                None,
                format!(
                    "skipped: exhaustive search takes at most {} VMs on {} hosts",
                    Exact::default().max_vms,
                    Exact::default().max_hosts
                ),
            ));
        }
        for (name, t, skip) in rows {
            match t {
                Some(t) => {
                    let (med, p99, min, max) = spread(&t.ms);
                    println!(
                        "{n:>5} {hosts:>6} {demands:>8} {name:>14} {med:>10.3} {p99:>10.3} {:>21} {:>9}  {}",
                        format!("[{min:.3}-{max:.3}]"),
                        format!("{}/{}", t.feasible, t.solves),
                        t.note
                    );
                    let key = name.replace('-', "_");
                    figures.insert(format!("{key}_{n}_ms"), json!(med));
                    figures.insert(format!("{key}_{n}_p99_ms"), json!(p99));
                }
                None => println!("{n:>5} {hosts:>6} {demands:>8} {name:>14}  {skip}"),
            }
        }
    }

    // ---- Gap to the optimum on small instances --------------------------------------------
    let small: Vec<Problem> = (0..opts.small)
        .map(|k| generate(&GenParams::small(4 + k % 5, k as u64)))
        .collect();
    let lp_raw = LpRounding {
        polish: false,
        ..LpRounding::default()
    };
    let lp_micro = LpRounding {
        backend: LpBackend::Microlp,
        ..LpRounding::default()
    };
    let objectives: [&dyn Objective; 3] = [&ResidualBottleneck, &TightFit, &SingleHop];
    for (oi, obj) in objectives.iter().enumerate() {
        let solvers: Vec<(&str, &dyn Solver)> = if oi == 0 {
            vec![
                ("greedy", &Greedy),
                ("lp-rounding", &lp),
                ("lp-rounding (no polish)", &lp_raw),
                ("lp-rounding (microlp)", &lp_micro),
            ]
        } else {
            vec![("greedy", &Greedy), ("lp-rounding", &lp)]
        };
        let mut gaps: Vec<Gaps> = solvers
            .iter()
            .map(|(n, _)| Gaps {
                name: (*n).to_string(),
                gaps: Vec::new(),
                ms: Vec::new(),
            })
            .collect();
        let mut exact_ms = Vec::new();
        let (mut infeasible, mut limit) = (0, 0);
        for (k, p) in small.iter().enumerate() {
            if k % 20 == 0 {
                eprintln!(
                    "bench solvers: {} small instance {k}/{}",
                    obj.name(),
                    small.len()
                );
            }
            let t0 = Instant::now();
            let e = Exact::default().solve(p, *obj);
            exact_ms.push(ms(t0));
            let opt = match e {
                Ok(c) => obj.score(p, &c)?,
                Err(Infeasible::SearchLimit { .. } | Infeasible::TooLarge { .. }) => {
                    limit += 1;
                    continue;
                }
                Err(_) => {
                    infeasible += 1;
                    continue;
                }
            };
            for ((_, s), g) in solvers.iter().zip(gaps.iter_mut()) {
                let t0 = Instant::now();
                let r = s.solve(p, *obj);
                g.ms.push(ms(t0));
                g.gaps.push(
                    r.ok()
                        .and_then(|c| obj.score(p, &c).ok())
                        .map(|x| gap(*obj, opt, x)),
                );
            }
        }
        let solved = gaps.first().map_or(0, |g| g.gaps.len());
        println!(
            "\nGap to the exact optimum, {} objective ({} small instances: 4-8 VMs on 4 hosts at 2 \
             sites and the Proxy; {solved} with an optimum, {infeasible} infeasible, {limit} over \
             the search limit; exact solve median {:.2} ms, p99 {:.2} ms)\n",
            obj.name(),
            small.len(),
            median(&exact_ms),
            percentile(&exact_ms, 99)
        );
        println!(
            "{:>24} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>10}",
            "solver", "optimal", "<=1%", "<=5%", "found", "median gap", "max gap", "median ms"
        );
        for g in &gaps {
            let found = g.found();
            let pct = |n: usize| format!("{:.0}%", 100.0 * share(n, solved));
            println!(
                "{:>24} {:>9} {:>9} {:>9} {:>9} {:>9.2}% {:>8.2}% {:>10.2}",
                g.name,
                pct(g.within(1e-6)),
                pct(g.within(0.01)),
                pct(g.within(0.05)),
                pct(found.len()),
                100.0 * median(&found),
                100.0 * found.iter().copied().fold(0.0, f64::max),
                median(&g.ms)
            );
        }
        let key = obj.name().replace('-', "_");
        let find = |name: &str| gaps.iter().find(|g| g.name == name);
        if let Some(g) = find("greedy") {
            let optimal = share(g.within(1e-6), solved);
            let w5 = share(g.within(0.05), solved);
            if oi == 0 {
                figures.insert("greedy_optimal_share".into(), json!(optimal));
                figures.insert("greedy_within_5pct_share".into(), json!(w5));
            } else {
                figures.insert(format!("greedy_within_5pct_share_{key}"), json!(w5));
            }
        }
        if let Some(g) = find("lp-rounding") {
            let w5 = share(g.within(0.05), solved);
            if oi == 0 {
                figures.insert("lp_within_5pct_share".into(), json!(w5));
                figures.insert(
                    "lp_optimal_share".into(),
                    json!(share(g.within(1e-6), solved)),
                );
                figures.insert("lp_small_median_ms".into(), json!(median(&g.ms)));
                figures.insert("exact_small_median_ms".into(), json!(median(&exact_ms)));
                figures.insert(
                    "exact_small_p99_ms".into(),
                    json!(percentile(&exact_ms, 99)),
                );
                figures.insert("small_with_optimum".into(), json!(solved));
            } else {
                figures.insert(format!("lp_within_5pct_share_{key}"), json!(w5));
            }
        }
        if oi == 0 {
            if let Some(g) = find("lp-rounding (no polish)") {
                figures.insert(
                    "lp_raw_within_5pct_share".into(),
                    json!(share(g.within(0.05), solved)),
                );
            }
            if let Some(g) = find("lp-rounding (microlp)") {
                figures.insert("lp_microlp_small_median_ms".into(), json!(median(&g.ms)));
            }
        }
    }

    // ---- The LP backends on the relaxation alone ------------------------------------------
    println!("\nLP backends, relaxation only (residual-bottleneck; ms)\n");
    println!(
        "{:>22} {:>12} {:>12} {:>12}",
        "instances", "backend", "median", "max"
    );
    let mid = [generate(&GenParams::scaled(32, 1000))];
    for (label, set) in [
        ("small (first 20)", &small[..small.len().min(20)]),
        ("32 VMs (1)", &mid[..]),
    ] {
        for backend in [LpBackend::Clarabel, LpBackend::Microlp] {
            let solver = LpRounding {
                backend,
                time_limit_s: 30.0,
                ..LpRounding::default()
            };
            eprintln!("bench solvers: relaxation with {backend:?} on {label}");
            let mut t = Vec::new();
            let mut fails = Vec::new();
            for p in set {
                let t0 = Instant::now();
                // Diagnoses of infeasible instances are not the backend's failures.
                if let Err(e @ Infeasible::Lp(_)) = solver.relax(p, &ResidualBottleneck) {
                    fails.push(e.to_string());
                }
                t.push(ms(t0));
            }
            let max = t.iter().copied().fold(0.0, f64::max);
            println!(
                "{label:>22} {:>12} {:>12.1} {:>12.1}  {}",
                format!("{backend:?}"),
                median(&t),
                max,
                fails.first().map_or(String::new(), |f| format!(
                    "{} failed, e.g. {f}",
                    fails.len()
                ))
            );
            let key = format!("{backend:?}").to_lowercase();
            let size = if label.starts_with("small") {
                "small"
            } else {
                "32"
            };
            figures.insert(format!("relax_{key}_{size}_ms"), json!(median(&t)));
        }
    }

    let greedy_128 = figures
        .get("greedy_128_ms")
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN);
    let lp5 = figures
        .get("lp_within_5pct_share")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    println!(
        "\nTargets: greedy < 10 ms at 128 VMs: {greedy_128:.2} ms ({}); LP+rounding within 5 % of \
         the optimum on >= 90 % of small instances: {:.0} % ({})",
        if greedy_128 < 10.0 { "met" } else { "NOT met" },
        100.0 * lp5,
        if lp5 >= 0.9 { "met" } else { "NOT met" }
    );
    Ok(Value::Object(figures))
}

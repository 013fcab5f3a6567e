//! `bench vttif`: how fast and how steadily VTTIF at the Proxy follows a live application,
//! and what counting frames costs the data path. Everything runs with VTTIF's defaults
//! (`::vttif::Params::DEFAULT`) on the `vttif` scenario in vnet mode, patterns on its first 8
//! guests (one per host) over the star, 16 KiB messages, exchange.
//!
//! 1. **Detection.** One patterns run whose schedule switches between ring and hypercube
//!    every few seconds. A poller in the Proxy's namespace asks the Proxy for its report
//!    every 20 ms. A switch is seen at the first report whose matrix has traffic (at least
//!    VTTIF's idle floor, so not the connections' set-up) on a pair of the new topology that
//!    the old one lacks; it happened at most one update interval
//!    before the report before that one. Detection time is from there to the declaration of
//!    exactly the new topology (`last_change.at_s`, the daemon's clock): an upper bound,
//!    within one poll and one update interval of the truth.
//! 2. **Alternation.** patterns alternating ring and tree (same message count, few shared
//!    edges) every K iterations, for K from 64 down to 1. A run is *followed* when at least
//!    80 % of its switches were declared as the right topology; the knee is the fastest
//!    alternation (full cycles per second, from the run's wall time) followed.
//!    Faster runs should settle on the union (reported) rather than flap.
//! 3. **Steady load.** patterns ring for `--steady-s` seconds: every change declared after
//!    the ring's own declaration is spurious.
//! 4. **Overhead.** `bench dataplane --only vnetd-udp,vnetd-udp-novttif`: one CPU-bound TCP
//!    flow over a UDP fast path on an unshaped LAN, with VTTIF on and (a run of its own,
//!    `vnetd --no-vttif`) off, interleaved.
//!
//! JSON: `detect_s` (median upper bound over the switches), `damping_knee_hz`,
//! `spurious_changes`, `overhead_pct` (the larger of the throughput lost and the CPU per GB
//! added, in %), with their parts.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vnetd::model::Mac;

use super::common::{spread, Poller, Runs};
use super::dataplane;
use crate::patterns::{Graph, Topology};
use crate::scenario::guest_mac;
use crate::testbed::{self, Mode};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario of parts 1-3 (8 hosts over one LAN; default scenarios/vttif.toml).
    pub scenario: PathBuf,
    /// The scenario of part 4 (bench dataplane's).
    pub dataplane_scenario: PathBuf,
    /// Switches of part 1.
    pub switches: usize,
    /// Seconds of steady load in part 3.
    pub steady_s: f64,
    /// Repeats of part 4 (each measures VTTIF on and off).
    pub overhead_repeat: usize,
    /// Counted seconds of each iperf3 flow of part 4.
    pub overhead_seconds: u32,
}

/// Ranks of every patterns run.
const RANKS: usize = 8;
/// How often the poller asks the Proxy.
const POLL: Duration = Duration::from_millis(20);
/// A run is followed when this share of its switches was declared right.
const FOLLOWED: f64 = 0.8;

type Pair = (Mac, Mac);

fn pair(a: Mac, b: Mac) -> Pair {
    (a.min(b), a.max(b))
}

/// The true edges of `topology` on the first [`RANKS`] guests (rank r is vm(r+1)).
fn truth(topology: &str) -> Result<BTreeSet<Pair>> {
    let graph = Graph::new(&topology.parse::<Topology>()?, RANKS)?;
    let mac = |r: usize| -> Result<Mac> { Ok(guest_mac(r + 1).parse()?) };
    let mut edges = BTreeSet::new();
    for r in 0..RANKS {
        for &p in graph.neighbours(r) {
            edges.insert(pair(mac(r)?, mac(p)?));
        }
    }
    Ok(edges)
}

/// One report, as the poller saw it.
#[derive(Debug, Clone)]
struct Snap {
    now_s: f64,
    changes: u64,
    last_change_s: Option<f64>,
    declared: BTreeSet<Pair>,
    /// Pairs with traffic in the window, at VTTIF's idle floor or above (a connection's
    /// handshake is not yet its application's traffic).
    active: BTreeSet<Pair>,
}

impl Snap {
    fn of(r: &::vttif::Report) -> Snap {
        Snap {
            now_s: r.now_s,
            changes: r.changes,
            last_change_s: r.last_change.as_ref().map(|c| c.at_s),
            declared: r.edges.iter().map(|e| pair(e.a, e.b)).collect(),
            active: r
                .matrix
                .iter()
                .filter(|f| f.bytes_per_s >= ::vttif::Inference::IDLE_BYTES_PER_S)
                .map(|f| pair(f.src, f.dst))
                .collect(),
        }
    }
}

/// Runs patterns with `args` on [`RANKS`] guests while polling; the summary and the reports.
fn polled_patterns(run: &str, args: &[String]) -> Result<(Value, Vec<Snap>)> {
    let poller = Poller::start(run, POLL, |r| Snap::of(&r))?;
    let summary = testbed::run_patterns(run, Some(RANKS), args, Duration::from_secs(1800));
    let snaps = poller.finish()?;
    Ok((summary?, snaps))
}

fn patterns_args(schedule: &str, iterations: usize) -> Vec<String> {
    [
        "--schedule",
        schedule,
        "--op",
        "exchange",
        "--size",
        "16KiB",
        "--iterations",
        &iterations.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// The declarations seen: (daemon time of the change, edges), in order.
fn declarations(snaps: &[Snap]) -> Vec<(f64, BTreeSet<Pair>)> {
    let mut out = Vec::new();
    let mut seen = snaps.first().map_or(0, |s| s.changes);
    for s in snaps {
        if s.changes > seen {
            seen = s.changes;
            out.push((s.last_change_s.unwrap_or(s.now_s), s.declared.clone()));
        }
    }
    out
}

/// Part 1's figures for one switch to `new` from `old`, searching `snaps` from `from`:
/// (upper bound, lower bound) of the detection time and the index to go on from.
fn detection(
    snaps: &[Snap],
    from: usize,
    old: &BTreeSet<Pair>,
    new: &BTreeSet<Pair>,
    update_s: f64,
) -> Option<(f64, f64, usize)> {
    let fresh: BTreeSet<Pair> = new.difference(old).copied().collect();
    // The old topology declared first, then the first sign of the new one.
    let declared_old = from + snaps[from..].iter().position(|s| s.declared == *old)?;
    let seen = declared_old
        + snaps[declared_old..]
            .iter()
            .position(|s| !s.active.is_disjoint(&fresh))?;
    let before = snaps[seen.saturating_sub(1)].now_s - update_s;
    let found = seen + snaps[seen..].iter().position(|s| s.declared == *new)?;
    let at = snaps[found].last_change_s?;
    Some((at - before, at - snaps[seen].now_s, found))
}

/// Iterations of `iteration_s` each that fill `seconds` (at least one, at most a million).
fn iterations_for(seconds: f64, iteration_s: f64) -> usize {
    let n = (seconds / iteration_s).ceil();
    let n = if n.is_nan() { 1.0 } else { n.clamp(1.0, 1e6) };
    // Clamped to 1..=1e6 just above, so the cast neither truncates nor wraps.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = n as usize;
    n
}

/// A patterns run's wall time (s), from its summary.
fn wall_s(summary: &Value) -> Result<f64> {
    summary["total_s"]
        .as_f64()
        .context("patterns summary without total_s")
}

/// Runs the benchmark; prints tables and returns the JSON object.
///
/// # Errors
/// A run that cannot be brought up, a patterns run that fails, a Proxy that does not answer.
pub fn run(opts: &Options) -> Result<Value> {
    let params = ::vttif::Params::DEFAULT;
    let update_s = params.update_interval().as_secs_f64();
    let ring = truth("ring")?;
    let hypercube = truth("hypercube")?;
    let tree = truth("tree")?;
    let run = "vttif-bench";
    let guard = Runs(vec![run.to_string()]);
    eprintln!("bench vttif: testbed up {run} (vnet mode)");
    testbed::up_with(
        &opts.scenario,
        Some(run),
        Mode::Vnet,
        testbed::Options::default(),
    )?;

    // 1. Detection after a switch.
    let (ring_its, cube_its) = (80, 30);
    let mut schedule = Vec::new();
    let mut at = 0;
    for k in 0..=opts.switches {
        let (name, its) = if k % 2 == 0 {
            ("ring", ring_its)
        } else {
            ("hypercube", cube_its)
        };
        schedule.push(format!("{at}:{name}"));
        at += its;
    }
    eprintln!(
        "bench vttif: 1/4 detection: {} switches ring <-> hypercube",
        opts.switches
    );
    let (summary, snaps) = polled_patterns(run, &patterns_args(&schedule.join(","), at))?;
    let mut detect = Vec::new();
    let mut from = 0;
    for k in 1..=opts.switches {
        let (old, new) = if k % 2 == 1 {
            (&ring, &hypercube)
        } else {
            (&hypercube, &ring)
        };
        match detection(&snaps, from, old, new, update_s) {
            Some((upper, lower, next)) => {
                eprintln!("bench vttif: switch {k}: declared within {lower:.2}-{upper:.2} s");
                detect.push((upper, lower));
                from = next;
            }
            None => bail!("switch {k} of the detection run was never declared"),
        }
    }
    drop(summary);
    // The ring's iteration time, for the runs below: patterns' iteration times overlap
    // between ranks, so only a run's wall time over its iterations tells.
    let calibration = testbed::run_patterns(
        run,
        Some(RANKS),
        &patterns_args("ring", 200),
        Duration::from_secs(600),
    )?;
    let ring_iter_s = wall_s(&calibration)? / 200.0;

    // 2. Alternation.
    eprintln!("bench vttif: 2/4 alternation ring <-> tree");
    let union: BTreeSet<Pair> = ring.union(&tree).copied().collect();
    let mut knee_rows = Vec::new();
    for k in [64usize, 48, 32, 24, 16, 8, 4, 2, 1] {
        let iterations = (8 * k).max(iterations_for(8.0, ring_iter_s));
        let iterations = iterations.div_ceil(k) * k;
        let (summary, snaps) = polled_patterns(
            run,
            &patterns_args(&format!("alternate:ring,tree:{k}"), iterations),
        )?;
        let phases = iterations / k;
        let switches = phases.saturating_sub(1);
        let mean_phase = wall_s(&summary)? / phases as f64;
        let hz = 1.0 / (2.0 * mean_phase);
        let decl = declarations(&snaps);
        // Switches declared: ring or tree, declared after the first phase (which may find
        // either already declared by the run before).
        let first_switch = snaps.first().map_or(0.0, |s| s.now_s) + mean_phase;
        let right = decl
            .iter()
            .filter(|(at, e)| *at > first_switch && (*e == ring || *e == tree))
            .count()
            .min(switches);
        let unioned = snaps.iter().any(|s| s.declared == union);
        let other = decl
            .iter()
            .filter(|(_, e)| *e != ring && *e != tree && *e != union)
            .count();
        let followed = right as f64 / switches.max(1) as f64;
        eprintln!(
            "bench vttif: every {k} iterations ({mean_phase:.2} s a phase, {hz:.2} Hz): \
             {right}/{switches} switches declared, union {unioned}, {other} other"
        );
        knee_rows.push((k, mean_phase, hz, switches, right, followed, unioned, other));
    }
    let knee = knee_rows
        .iter()
        .filter(|r| r.5 >= FOLLOWED)
        .map(|r| r.2)
        .fold(f64::NAN, f64::max);

    // 3. Steady load.
    let steady_its = iterations_for(opts.steady_s, ring_iter_s).max(10);
    eprintln!(
        "bench vttif: 3/4 steady: ring for {:.0} s ({steady_its} iterations)",
        opts.steady_s
    );
    let (summary, snaps) = polled_patterns(run, &patterns_args("ring", steady_its))?;
    let decl = declarations(&snaps);
    // Every change after the ring's own declaration (or all, if the run before left the
    // ring declared).
    let already = snaps.first().is_some_and(|s| s.declared == ring);
    let spurious = match decl.iter().position(|(_, e)| *e == ring) {
        _ if already => decl.len(),
        Some(i) => decl.len() - i - 1,
        None => bail!("the steady ring was never declared"),
    };
    let steady_s = wall_s(&summary)?;
    drop(guard);

    // 4. Overhead.
    eprintln!("bench vttif: 4/4 overhead: bench dataplane --only vnetd-udp,vnetd-udp-novttif");
    let dp = dataplane::run(&dataplane::Options {
        scenario: opts.dataplane_scenario.clone(),
        repeat: opts.overhead_repeat,
        seconds: opts.overhead_seconds,
        omit: 1,
        pings: 20,
        ping_interval_ms: 10.0,
        only: vec![
            dataplane::Config::VnetUdp,
            dataplane::Config::VnetUdpNoVttif,
        ],
    })?;
    let num = |k: &str| dp[k].as_f64().unwrap_or(f64::NAN);
    let (mbit_on, mbit_off) = (num("vnetd_udp_mbit_s"), num("vnetd_udp_novttif_mbit_s"));
    let (cpu_on, cpu_off) = (
        num("vnetd_udp_cpu_s_per_gb"),
        num("vnetd_udp_novttif_cpu_s_per_gb"),
    );
    let throughput_cost_pct = (1.0 - mbit_on / mbit_off) * 100.0;
    let cpu_cost_pct = (cpu_on / cpu_off - 1.0) * 100.0;
    let overhead_pct = throughput_cost_pct.max(cpu_cost_pct);

    let uppers: Vec<f64> = detect.iter().map(|d| d.0).collect();
    let lowers: Vec<f64> = detect.iter().map(|d| d.1).collect();
    let (d_med, d_min, d_max) = spread(&uppers);
    let (l_med, _, _) = spread(&lowers);
    println!(
        "\nVTTIF with its defaults (update {} Hz, window {:.2} s, threshold {}), scenario {}: patterns \
         exchange of 16 KiB on {RANKS} guests over the star.\n",
        params.update_hz,
        params.window.as_secs_f64(),
        params.threshold,
        opts.scenario.display()
    );
    println!(
        "1. Detection after a switch ring <-> hypercube ({} switches): at most {d_med:.2} s median \
         [{d_min:.2}-{d_max:.2}] (at least {l_med:.2} s median; target <= 1 s)",
        detect.len()
    );
    println!("\n2. Alternation ring <-> tree every K iterations:");
    println!(
        "{:>4} {:>9} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6}",
        "K", "phase s", "Hz", "switches", "declared", "followed", "union", "other"
    );
    for (k, phase, hz, switches, right, followed, unioned, other) in &knee_rows {
        println!(
            "{k:>4} {phase:>9.2} {hz:>8.2} {switches:>9} {right:>9} {:>8.0}% {:>6} {other:>6}",
            followed * 100.0,
            if *unioned { "yes" } else { "no" }
        );
    }
    println!(
        "fastest alternation followed (>= {:.0} % of its switches): {knee:.2} Hz",
        FOLLOWED * 100.0
    );
    println!("\n3. Steady ring for {steady_s:.0} s: {spurious} spurious changes (target 0)");
    println!(
        "\n4. Counting on the frame path (one CPU-bound flow, UDP fast path): {mbit_on:.0} Mbit/s and \
         {cpu_on:.2} CPU s/GB with VTTIF, {mbit_off:.0} and {cpu_off:.2} without: throughput \
         {throughput_cost_pct:+.1} %, CPU per GB {cpu_cost_pct:+.1} % (target <= 1 % either way; \
         medians of {} repeats, see the table above for their spread)",
        opts.overhead_repeat
    );
    Ok(json!({
        "detect_s": d_med,
        "detect_s_min": d_min,
        "detect_s_max": d_max,
        "detect_lower_s": l_med,
        "damping_knee_hz": knee,
        "spurious_changes": spurious,
        "steady_s": steady_s,
        "overhead_pct": overhead_pct,
        "throughput_cost_pct": throughput_cost_pct,
        "cpu_cost_pct": cpu_cost_pct,
        "vttif_on_mbit_s": mbit_on,
        "vttif_off_mbit_s": mbit_off,
        "vttif_on_cpu_s_per_gb": cpu_on,
        "vttif_off_cpu_s_per_gb": cpu_off,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(now_s: f64, changes: u64, declared: &BTreeSet<Pair>, active: &BTreeSet<Pair>) -> Snap {
        Snap {
            now_s,
            changes,
            last_change_s: Some(now_s),
            declared: declared.clone(),
            active: active.clone(),
        }
    }

    #[test]
    fn a_switch_is_timed_from_before_its_first_sign_to_its_declaration() {
        let (ring, cube) = (truth("ring").unwrap(), truth("hypercube").unwrap());
        let mut snaps = vec![snap(1.0, 1, &ring, &ring), snap(1.02, 1, &ring, &ring)];
        // The switch shows at 1.04; the hypercube is declared at 1.70.
        snaps.push(snap(1.04, 1, &ring, &ring.union(&cube).copied().collect()));
        snaps.push(snap(1.70, 2, &cube, &cube));
        let (upper, lower, next) = detection(&snaps, 0, &ring, &cube, 0.05).unwrap();
        assert!((upper - (1.70 - (1.02 - 0.05))).abs() < 1e-9);
        assert!((lower - (1.70 - 1.04)).abs() < 1e-9);
        assert_eq!(next, 3);
        assert!(detection(&snaps, 0, &cube, &ring, 0.05).is_none());
        let d = declarations(&snaps);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1, cube);
    }

    #[test]
    fn truths_are_the_patterns_topologies() {
        assert_eq!(truth("ring").unwrap().len(), 8);
        let vm = |i: usize| -> Mac { guest_mac(i).parse().unwrap() };
        assert!(truth("ring").unwrap().contains(&pair(vm(8), vm(1))));
        assert!(!truth("ring").unwrap().contains(&pair(vm(1), vm(5))));
        assert!(truth("hypercube").unwrap().contains(&pair(vm(1), vm(5))));
        assert_eq!(truth("hypercube").unwrap().len(), 12);
        assert_eq!(truth("tree").unwrap().len(), 7);
        assert!((wall_s(&json!({"total_s": 2.5})).unwrap() - 2.5).abs() < 1e-12);
        assert!(wall_s(&json!({})).is_err());
        assert_eq!(iterations_for(8.0, 0.035), 229);
        assert_eq!(iterations_for(8.0, 0.0), 1_000_000);
        assert_eq!(iterations_for(f64::NAN, 0.1), 1);
    }
}

//! `bench wren`: Wren's estimates against known truth, what it adds to the links, and what it
//! costs in CPU.
//!
//! **Cases.** Every combination of a link rate (10, 50 and 100 Mbit/s before the scenario's
//! `rate_scale`: 1, 5 and 10 Mbit/s at 0.1), a one-way delay (1 and 30 ms) and cross traffic
//! (none, or half the link's rate) on the `wren` scenario (`experiments/scenarios/wren.toml`:
//! host1 and the Proxy on site a, host2 on site b, one emulated link between them). Each case
//! is a run of its own (`wren-bench`), its scenario the template with the case's link and, for
//! cross traffic, a `[[cross_traffic]]` host1 → host2 (iperf3 UDP, 1400-byte payloads, from
//! the end of `up`). Wren (`testbed wren start`) runs on every host and the Proxy.
//!
//! **Truth.** In bit/s of Ethernet frames, as Wren reports: the link's rate `C` where the
//! direction carries no cross traffic, `C - X` where it does, `X` being iperf3's rate times
//! 1442/1400 (its UDP payload plus UDP, IP and Ethernet headers).
//!
//! **Traffic** (the only traffic besides cross traffic and Wren's own): `patterns` exchange on
//! vm1 and vm2, BSP with compute phases — each iteration a message of a quarter second at the
//! link's rate each way, then [`COMPUTE_UNITS`] of compute (about 0.2 s on this machine) — so
//! the link sees bursts and pauses. Two phases per case, each at least `--traffic-s` long
//! (patterns runs again until it is over):
//! 1. *star* (the run as `up` leaves it, every frame through the Proxy): rows host2 → proxy
//!    (truth C) and proxy → host2 (C - X): the host↔Proxy paths, measured from the start;
//! 2. *mesh* (`vnetctl mesh` applied: a fast path host1–host2): rows host1 → host2 (C - X)
//!    and host2 → host1 (C).
//!
//! A poller in the Proxy's namespace reads the collector's matrix every 250 ms. Per row:
//! the estimate at the end of the phase (after at least `--traffic-s` ≥ 5 s of traffic) with
//! its interval and error; the time from the phase's start to the first known estimate (the
//! matrix's own time; the collector estimates once a second); and over every poll from 5 s
//! on, the median estimate, the worst error and the share of polls with a known estimate.
//!
//! **Probe bytes and CPU.** One more run at the top rate (10 Mbit/s scaled, 1 ms, no cross
//! traffic, mesh applied): `patterns` exchange without compute (the link saturated both ways)
//! for a fixed number of iterations, with Wren off and on, interleaved, `--overhead-repeat`
//! times. `probe_bytes` is the median of the site link's byte counters (both directions, the
//! emulator's TAPs' transmit counters: the bytes offered to the link) with Wren on less the
//! median with it off; next to it, the bytes the collector counted from the agents (exact,
//! every reporter, headers included) and, to judge the noise, the spread of the off runs. CPU:
//! each Wren process's CPU time (`/proc/PID/stat`) over the on runs, per second of wall time,
//! in % of one core; and the machine's busy cores meanwhile (headroom).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use wren_passive::{Matrix, Measure};

use super::common::{machine_ticks, output, spread, Runs};
use crate::scenario::Scenario;
use crate::testbed::{self, vnet, wren, Mode};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The template scenario (default: scenarios/wren.toml).
    pub scenario: PathBuf,
    /// Link rates before scaling, Mbit/s.
    pub rates_mbit: Vec<f64>,
    /// One-way delays, ms.
    pub delays_ms: Vec<f64>,
    /// Cross traffic as a fraction of the link's rate.
    pub cross: Vec<f64>,
    /// Seconds of application traffic per phase (at least 5).
    pub traffic_s: f64,
    /// Wren off/on pairs of the overhead runs.
    pub overhead_repeat: usize,
    /// Iterations of each overhead run.
    pub overhead_iterations: u64,
}

/// The run every case uses.
const RUN: &str = "wren-bench";
/// Compute per iteration, patterns work units (1 unit is about 18 ms here).
const COMPUTE_UNITS: f64 = 10.0;
/// Estimates from this much traffic on count (the 5 s).
const WARMUP_S: f64 = 5.0;
/// The target error.
const TARGET_PCT: f64 = 15.0;
/// iperf3's UDP payload in the scenario's cross traffic, and its frame on the wire.
const CROSS_PAYLOAD: f64 = 1400.0;
const CROSS_FRAME: f64 = 1400.0 + 8.0 + 20.0 + 14.0;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// One case.
#[derive(Debug, Clone, Copy)]
struct Case {
    rate_mbit: f64,
    delay_ms: f64,
    cross: f64,
}

impl Case {
    fn label(&self) -> String {
        format!(
            "{}M {}ms {:.0}%",
            self.rate_mbit,
            self.delay_ms,
            self.cross * 100.0
        )
    }
}

/// The template's text with the case's link rate and delay and its cross traffic.
fn case_text(template: &str, c: &Case) -> Result<String> {
    let mut out = String::new();
    let mut in_link = false;
    let (mut rate_done, mut delay_done) = (false, false);
    for line in template.lines() {
        let t = line.trim_start();
        if t.starts_with("[[") {
            in_link = t.starts_with("[[link]]");
        }
        if in_link && t.starts_with("rate ") {
            out.push_str(&format!("rate = \"{}kbit\"\n", (c.rate_mbit * 1e3).round()));
            rate_done = true;
        } else if in_link && t.starts_with("delay ") {
            out.push_str(&format!("delay = \"{}ms\"\n", c.delay_ms));
            delay_done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !(rate_done && delay_done) {
        bail!("the template scenario needs a [[link]] with `rate` and `delay` lines");
    }
    if c.cross > 0.0 {
        // iperf3's rate is of UDP payload: scale it so that its frames take `cross` of the
        // link. Unscaled in the file, like every rate.
        let payload_bps = c.cross * c.rate_mbit * 1e6 * CROSS_PAYLOAD / CROSS_FRAME;
        out.push_str(&format!(
            "\n[[cross_traffic]]\nfrom = \"host1\"\nto = \"host2\"\nrate = \"{}kbit\"\n",
            (payload_bps / 1e3).round()
        ));
    }
    Ok(out)
}

/// Polls the collector from the Proxy's namespace every 250 ms until stopped.
struct Poller {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Matrix>>,
}

impl Poller {
    fn start() -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(m) = wren::matrix(RUN) {
                    if out.last().is_none_or(|l: &Matrix| l.at_ns != m.at_ns) {
                        out.push(m);
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            out
        });
        Poller { stop, handle }
    }

    fn finish(self) -> Vec<Matrix> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// A phase's traffic and what the poller saw.
struct Phase {
    start_ns: i64,
    end_ns: i64,
    snaps: Vec<Matrix>,
}

fn patterns_args(size: u64, compute: Option<f64>, iterations: u64) -> Vec<String> {
    let mut a: Vec<String> = [
        "--topology",
        "ring",
        "--op",
        "exchange",
        "--size",
        &size.to_string(),
        "--iterations",
        &iterations.to_string(),
    ]
    .map(String::from)
    .to_vec();
    if let Some(c) = compute {
        a.push("--compute".into());
        a.push(c.to_string());
    }
    a
}

/// Runs `patterns` with `args` again and again until `traffic_s` have passed, while polling.
fn phase(args: &[String], traffic_s: f64) -> Result<Phase> {
    let poller = Poller::start();
    let start_ns = now_ns();
    let t = Instant::now();
    let mut r = Ok(());
    while t.elapsed().as_secs_f64() < traffic_s {
        if let Err(e) = testbed::run_patterns(RUN, Some(2), args, Duration::from_secs(300)) {
            r = Err(e);
            break;
        }
    }
    let end_ns = now_ns();
    // One more report after the end, so the last estimate covers the whole phase.
    std::thread::sleep(Duration::from_millis(1300));
    let snaps = poller.finish();
    r.context("patterns")?;
    Ok(Phase {
        start_ns,
        end_ns,
        snaps,
    })
}

/// One row of the table.
#[derive(Debug, Clone)]
struct Row {
    case: String,
    phase: &'static str,
    from: &'static str,
    to: &'static str,
    truth_bps: f64,
    traffic_s: f64,
    /// The last estimate of the phase: value, low, high; or the unknown's text.
    last: std::result::Result<(f64, f64, f64, String), String>,
    first_s: Option<f64>,
    median_after: Option<f64>,
    worst_after_pct: Option<f64>,
    known_after: f64,
}

impl Row {
    fn error_pct(&self) -> Option<f64> {
        self.last
            .as_ref()
            .ok()
            .map(|(v, ..)| (v - self.truth_bps) / self.truth_bps * 100.0)
    }
}

fn row(
    case: &Case,
    p: &Phase,
    phase: &'static str,
    from: &'static str,
    to: &'static str,
    truth_bps: f64,
) -> Row {
    let avail = |m: &Matrix| m.pair(from, to).map(|x| x.estimate.available_bps);
    let since = |m: &Matrix| (m.at_ns - p.start_ns) as f64 * 1e-9;
    let during: Vec<&Matrix> = p.snaps.iter().filter(|m| m.at_ns >= p.start_ns).collect();
    let first_s = during
        .iter()
        .find(|m| avail(m).is_some_and(|a| a.known().is_some()))
        .map(|m| since(m));
    // The last report that includes the end of the traffic.
    let last = during
        .iter()
        .find(|m| m.at_ns >= p.end_ns)
        .or(during.last())
        .and_then(|m| avail(m));
    let last = match last {
        Some(Measure::Known(e)) => Ok((e.value, e.low, e.high, format!("{:?}", e.method))),
        Some(Measure::Unknown { why }) => Err(why.to_string()),
        None => Err("no report from the collector".into()),
    };
    let after: Vec<Option<f64>> = during
        .iter()
        .filter(|m| since(m) >= WARMUP_S && m.at_ns <= p.end_ns + 1_500_000_000)
        .map(|m| avail(m).and_then(|a| a.known().map(|e| e.value)))
        .collect();
    let known: Vec<f64> = after.iter().flatten().copied().collect();
    let worst = known
        .iter()
        .map(|v| ((v - truth_bps) / truth_bps * 100.0).abs())
        .fold(None, |w: Option<f64>, e| Some(w.map_or(e, |w| w.max(e))));
    Row {
        case: case.label(),
        phase,
        from,
        to,
        truth_bps,
        traffic_s: (p.end_ns - p.start_ns) as f64 * 1e-9,
        last,
        first_s,
        median_after: (!known.is_empty()).then(|| spread(&known).0),
        worst_after_pct: worst,
        known_after: if after.is_empty() {
            0.0
        } else {
            known.len() as f64 / after.len() as f64
        },
    }
}

fn apply_mesh(run: &str) -> Result<()> {
    let star = vnet::star_file(run);
    let mesh = vnet::dir(run).join("mesh.vnet");
    let mut c = vnet::vnetctl_command(run)?;
    c.args(["mesh", &star.display().to_string()]);
    std::fs::write(&mesh, output(c, "vnetctl mesh")?)?;
    vnet::apply(run, &mesh)
}

/// Bytes offered to the run's site link, both directions: the transmit counters of its two
/// ends (for an emulated link, the kernel's transmit on a TAP is a frame handed to the
/// emulator).
fn link_bytes(run: &str) -> Result<u64> {
    let state = testbed::RunState::load(run)?;
    let w = state
        .plan
        .wires
        .iter()
        .find(|w| w.shape.is_some() && w.a.netns.contains(".sw-") && w.b.netns.contains(".sw-"))
        .context("the run has no shaped site link")?;
    let mut total = 0;
    for e in [&w.a, &w.b] {
        let o = std::process::Command::new("ip")
            .args(["-n", &e.netns, "-s", "-j", "link", "show", "dev", &e.ifname])
            .output()?;
        let v: Value = serde_json::from_slice(&o.stdout)
            .with_context(|| format!("ip -s -j link show {} in {}", e.ifname, e.netns))?;
        total += v[0]["stats64"]["tx"]["bytes"]
            .as_u64()
            .context("no tx byte counter")?;
    }
    Ok(total)
}

/// Bytes the collector counted from every reporter so far.
fn shipped_bytes(run: &str) -> Result<u64> {
    Ok(wren::matrix(run)?.reporters.iter().map(|r| r.bytes).sum())
}

/// One overhead measurement.
#[derive(Debug, Clone)]
struct Overhead {
    on: bool,
    link_bytes: u64,
    shipped_bytes: u64,
    wall_s: f64,
    /// Per Wren daemon: (node, % of one core).
    cpu: Vec<(String, f64)>,
    machine_busy_cores: f64,
    iter_median_s: f64,
}

fn overhead_run(on: bool, args: &[String]) -> Result<Overhead> {
    if on {
        wren::start(RUN, &[])?;
    } else {
        wren::stop(RUN)?;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let daemons = wren::daemons(RUN)?.daemons;
    let cpu0: Vec<Option<f64>> = daemons.iter().map(|d| wren::cpu_seconds(d.1)).collect();
    let shipped0 = if on { shipped_bytes(RUN)? } else { 0 };
    let bytes0 = link_bytes(RUN)?;
    let (busy0, total0) = machine_ticks()?;
    let t = Instant::now();
    let summary = testbed::run_patterns(RUN, Some(2), args, Duration::from_secs(300))?;
    let wall_s = t.elapsed().as_secs_f64();
    let bytes1 = link_bytes(RUN)?;
    let (busy1, total1) = machine_ticks()?;
    let cpu = daemons
        .iter()
        .zip(&cpu0)
        .map(|((node, pid), c0)| {
            let c1 = wren::cpu_seconds(*pid);
            let pct = match (c0, c1) {
                (Some(a), Some(b)) => (b - a) / wall_s * 100.0,
                _ => f64::NAN,
            };
            (node.clone(), pct)
        })
        .collect();
    // Let the last batch reach the collector before reading its counters.
    let shipped = if on {
        std::thread::sleep(Duration::from_millis(1200));
        shipped_bytes(RUN)? - shipped0
    } else {
        0
    };
    let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
    Ok(Overhead {
        on,
        link_bytes: bytes1 - bytes0,
        shipped_bytes: shipped,
        wall_s,
        cpu,
        machine_busy_cores: (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * ncpu,
        iter_median_s: summary["iter_median_s"].as_f64().unwrap_or(f64::NAN),
    })
}

/// A non-negative count from a float (message sizes, iterations: far inside u64).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(x: f64) -> u64 {
    x.round().max(0.0) as u64
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// Runs the benchmark; the JSON figures.
///
/// # Errors
/// A run that does not come up, Wren that does not start, patterns that fail.
pub fn run(opts: &Options) -> Result<Value> {
    let template = std::fs::read_to_string(&opts.scenario)
        .with_context(|| format!("read {}", opts.scenario.display()))?;
    let base = Scenario::load(&opts.scenario)?;
    let traffic_s = opts.traffic_s.max(WARMUP_S);
    let dir = std::env::temp_dir().join("wren-bench");
    std::fs::create_dir_all(&dir)?;
    let _runs = Runs(vec![RUN.to_string()]);
    let mut cases = Vec::new();
    for &rate_mbit in &opts.rates_mbit {
        for &delay_ms in &opts.delays_ms {
            for &cross in &opts.cross {
                cases.push(Case {
                    rate_mbit,
                    delay_ms,
                    cross,
                });
            }
        }
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        eprintln!(
            "bench wren: case {}/{} {} ({:.0} s so far)",
            k + 1,
            cases.len(),
            c.label(),
            started.elapsed().as_secs_f64()
        );
        let file = dir.join(format!("case{k}.toml"));
        std::fs::write(&file, case_text(&template, c)?)?;
        let state = testbed::up(&file, Some(RUN), Mode::Vnet)?;
        let scenario = state.scenario()?;
        let cap = scenario
            .links
            .first()
            .context("no site link")?
            .shape
            .rate_bps as f64;
        let x = scenario
            .cross_traffic
            .first()
            .map_or(0.0, |x| x.rate_bps as f64 * CROSS_FRAME / CROSS_PAYLOAD);
        wren::start(RUN, &[])?;
        // A quarter second of the link per message; iterations for the phase's length (a
        // guess: `phase` runs patterns again while the phase is not over).
        let size = whole(cap * 0.25 / 8.0);
        let per_iter =
            0.25 / (1.0 - c.cross).max(0.1) + COMPUTE_UNITS * 0.018 + 4.0 * c.delay_ms / 1e3;
        let iterations = whole((traffic_s / per_iter).ceil()).max(3);
        let args = patterns_args(size, Some(COMPUTE_UNITS), iterations);
        std::thread::sleep(Duration::from_millis(1000));
        let star = phase(&args, traffic_s)?;
        rows.push(row(c, &star, "star", "host2", "proxy", cap));
        rows.push(row(c, &star, "star", "proxy", "host2", cap - x));
        apply_mesh(RUN)?;
        let mesh = phase(&args, traffic_s)?;
        rows.push(row(c, &mesh, "mesh", "host1", "host2", cap - x));
        rows.push(row(c, &mesh, "mesh", "host2", "host1", cap));
        for r in &rows[rows.len() - 4..] {
            eprintln!(
                "bench wren:   {} {}->{}: truth {:.2} Mbit/s, last {}, first {}",
                r.phase,
                r.from,
                r.to,
                r.truth_bps / 1e6,
                match &r.last {
                    Ok((v, ..)) => format!("{:.2} Mbit/s", v / 1e6),
                    Err(w) => format!("unknown ({w})"),
                },
                fmt_opt(r.first_s, |v| format!("{v:.1} s"))
            );
        }
        testbed::down(RUN)?;
    }

    // Probe bytes and CPU at the top rate.
    let top = opts.rates_mbit.iter().copied().fold(0.0, f64::max);
    let c = Case {
        rate_mbit: top,
        delay_ms: opts.delays_ms.iter().copied().fold(f64::INFINITY, f64::min),
        cross: 0.0,
    };
    eprintln!(
        "bench wren: overhead runs at {} ({:.0} s so far)",
        c.label(),
        started.elapsed().as_secs_f64()
    );
    let file = dir.join("overhead.toml");
    std::fs::write(&file, case_text(&template, &c)?)?;
    let state = testbed::up(&file, Some(RUN), Mode::Vnet)?;
    let cap = state.scenario()?.links[0].shape.rate_bps as f64;
    apply_mesh(RUN)?;
    let size = whole(cap * 0.25 / 8.0);
    let args = patterns_args(size, None, opts.overhead_iterations.max(1));
    let mut runs = Vec::new();
    for rep in 0..opts.overhead_repeat.max(1) {
        let order = if rep % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for on in order {
            let o = overhead_run(on, &args)?;
            eprintln!(
                "bench wren:   wren {}: link {} B, shipped {} B, {:.1} s, cpu {:?}, machine {:.2} cores",
                if on { "on" } else { "off" },
                o.link_bytes,
                o.shipped_bytes,
                o.wall_s,
                o.cpu,
                o.machine_busy_cores
            );
            runs.push(o);
        }
    }
    wren::stop(RUN)?;
    testbed::down(RUN)?;
    drop(_runs);

    // Tables.
    println!(
        "Wren's available bandwidth against the truth (Mbit/s of Ethernet frames; rate_scale {}):",
        base.rate_scale
    );
    println!(
        "{:<14} {:<5} {:<14} {:>7} {:>26} {:>8} {:>7} {:>7} {:>9} {:>9} {:>7}",
        "case",
        "phase",
        "path",
        "truth",
        "estimate [interval]",
        "error",
        "first",
        "traffic",
        "median≥5s",
        "worst≥5s",
        "known"
    );
    for r in &rows {
        let est = match &r.last {
            Ok((v, lo, hi, _)) => format!("{:.3} [{:.3}-{:.3}]", v / 1e6, lo / 1e6, hi / 1e6),
            Err(w) => format!("unknown: {w}"),
        };
        println!(
            "{:<14} {:<5} {:<14} {:>7.3} {:>26} {:>8} {:>7} {:>6.1}s {:>9} {:>9} {:>6.0}%",
            r.case,
            r.phase,
            format!("{}->{}", r.from, r.to),
            r.truth_bps / 1e6,
            est,
            fmt_opt(r.error_pct(), |e| format!("{e:+.1}%")),
            fmt_opt(r.first_s, |v| format!("{v:.1}s")),
            r.traffic_s,
            fmt_opt(r.median_after, |v| format!("{:.3}", v / 1e6)),
            fmt_opt(r.worst_after_pct, |v| format!("{v:.1}%")),
            r.known_after * 100.0
        );
    }
    let errors: Vec<Option<f64>> = rows.iter().map(Row::error_pct).collect();
    let unknown_rows = errors.iter().filter(|e| e.is_none()).count();
    let max_err = errors.iter().flatten().map(|e| e.abs()).fold(0.0, f64::max);
    let within = errors
        .iter()
        .flatten()
        .filter(|e| e.abs() <= TARGET_PCT)
        .count();
    let firsts: Vec<Option<f64>> = rows.iter().map(|r| r.first_s).collect();
    let first_max = if firsts.iter().all(Option::is_some) {
        Some(firsts.iter().flatten().copied().fold(0.0, f64::max))
    } else {
        None
    };
    println!(
        "\n{within} of {} rows within ±{TARGET_PCT}% ({unknown_rows} unknown at the end of traffic); largest error {max_err:.1}%",
        rows.len()
    );

    let sel = |on: bool, f: fn(&Overhead) -> f64| -> Vec<f64> {
        runs.iter().filter(|o| o.on == on).map(f).collect()
    };
    let (off_med, off_min, off_max) = spread(&sel(false, |o| o.link_bytes as f64));
    let (on_med, on_min, on_max) = spread(&sel(true, |o| o.link_bytes as f64));
    let (ship_med, ..) = spread(&sel(true, |o| o.shipped_bytes as f64));
    let probe_bytes = on_med - off_med;
    println!("\nWhat Wren adds to the site link ({} with the mesh; patterns exchange without compute, {} iterations of {} B; median [min-max] of {} runs each):",
        c.label(), opts.overhead_iterations, size, opts.overhead_repeat.max(1));
    println!(
        "  link bytes, wren off: {off_med:.0} [{off_min:.0}-{off_max:.0}]\n  link bytes, wren on:  {on_med:.0} [{on_min:.0}-{on_max:.0}]\n  probe_bytes (on - off): {probe_bytes:.0} ({:+.3}% of the off runs' bytes)\n  bytes the collector received from all agents (exact, headers included): {ship_med:.0} per run",
        probe_bytes / off_med.max(1.0) * 100.0
    );
    let mut nodes: Vec<String> = runs
        .iter()
        .flat_map(|o| o.cpu.iter().map(|c| c.0.clone()))
        .collect();
    nodes.sort();
    nodes.dedup();
    println!("\nCPU of Wren's processes while the link is saturated (% of one core, median [min-max] over the on runs):");
    let mut cpu_max: f64 = 0.0;
    let mut cpu_rows = serde_json::Map::new();
    for n in &nodes {
        let v: Vec<f64> = runs
            .iter()
            .filter(|o| o.on)
            .filter_map(|o| o.cpu.iter().find(|c| &c.0 == n).map(|c| c.1))
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            continue;
        }
        let (m, lo, hi) = spread(&v);
        cpu_max = cpu_max.max(m);
        cpu_rows.insert(n.clone(), json!(m));
        println!(
            "  {n:<8} {m:.2}% [{lo:.2}-{hi:.2}] ({})",
            if n == "proxy" {
                "collector: capture, receiving, estimation"
            } else {
                "agent: capture and shipping"
            }
        );
    }
    let (busy_off, ..) = spread(&sel(false, |o| o.machine_busy_cores));
    let (busy_on, ..) = spread(&sel(true, |o| o.machine_busy_cores));
    let (it_off, ..) = spread(&sel(false, |o| o.iter_median_s));
    let (it_on, ..) = spread(&sel(true, |o| o.iter_median_s));
    let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let verdict = if busy_on.max(busy_off) < 0.8 * ncpu as f64 {
        "headroom left: the cores are not the bottleneck at these rates"
    } else {
        "near saturation: other work on the machine, or CPU-bound; the figures above may suffer"
    };
    println!(
        "  machine busy: {busy_off:.2} cores with wren off, {busy_on:.2} on (of {ncpu}): {verdict}\n  patterns iteration median: {it_off:.3} s off, {it_on:.3} s on"
    );
    let rows_json: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "case": r.case, "phase": r.phase, "from": r.from, "to": r.to,
                "truth_bps": r.truth_bps,
                "estimate_bps": r.last.as_ref().ok().map(|x| x.0),
                "low_bps": r.last.as_ref().ok().map(|x| x.1),
                "high_bps": r.last.as_ref().ok().map(|x| x.2),
                "unknown": r.last.as_ref().err(),
                "error_pct": r.error_pct(),
                "first_estimate_s": r.first_s,
                "traffic_s": r.traffic_s,
                "worst_after_5s_pct": r.worst_after_pct,
                "known_after_5s": r.known_after,
            })
        })
        .collect();
    Ok(json!({
        "max_abs_error_pct": if unknown_rows == 0 { Some(max_err) } else { None },
        "max_abs_error_known_pct": max_err,
        "rows": rows.len(),
        "rows_within_target": within,
        "rows_unknown": unknown_rows,
        "first_estimate_s_max": first_max,
        "probe_bytes": probe_bytes,
        "probe_bytes_shipped": ship_med,
        "link_bytes_off": off_med,
        "cpu_pct_max": cpu_max,
        "cpu_pct": cpu_rows,
        "machine_busy_cores_on": busy_on,
        "machine_busy_cores_off": busy_off,
        "cases": rows_json,
    }))
}

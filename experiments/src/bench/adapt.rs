//! `bench adapt`: what VADAPT buys an unmodified BSP program. For each scenario and patterns
//! topology, three fresh runs of the same patterns job:
//!
//! 1. **star**: `vnet` mode, the overlay's star alone (every frame through the Proxy);
//! 2. **VADAPT**: `vnet` mode with the controller (`testbed adapt`) started just before the
//!    job: it starts on the star, VTTIF infers the topology, the controller applies its plans
//!    while the job runs;
//! 3. **direct**: no overlay (the reference).
//!
//! # Parameters, fixed here and chosen before looking at results
//!
//! - patterns: `--op exchange`, [`SIZE`] messages, [`ITERATIONS`] iterations, [`COMPUTE`] work
//!   units of compute per iteration (a real compute phase: under the scenarios' 0.2-core hosts
//!   it takes tens of milliseconds);
//! - VTTIF's smoothing window [`VTTIF_WINDOW_S`] (`--vttif-window`): its newest half must span
//!   an iteration on the star (about 1.3 s in `single-cluster`), or VTTIF never sees a steady
//!   topology (VTTIF's own default, 0.5 s, is for the 100 Mbit/s `vttif` scenario);
//! - the controller's defaults (LP relaxation and rounding, residual-bottleneck objective,
//!   10 % least speedup, 5 s dwell), told how long the job runs (`--horizon`) as its user
//!   would: the star run's time (it weighs a plan against what is left of the run);
//! - guests' memory [`GUEST_MEMORY`] (scaled by the scenario's `rate_scale` for a migration,
//!   as `testbed migrate` does);
//! - the scenarios as shipped: in `wan`, a guest needs half a host (`guest_cpu`), so VADAPT
//!   may put two on one host; in `single-cluster`, one guest per host.
//!
//! # Figures
//!
//! - **speedup**: star run time over VADAPT run time (whole runs, adaptation included);
//! - **gap to direct**: the median iteration time once the overlay settled (iterations that
//!   start after the last plan landed) against direct's median, in percent;
//! - **settle**: from the job's start until the last plan landed, apart for plans with
//!   migrations; a migration's is also given against its bound, 1.5 × (memory over the path's
//!   rate) + 10 s;
//! - the actions the controller took (a run in which it took none does not count in the
//!   figures: it is printed, and named in the JSON's `cases_without_action`).
//!
//! With `--repeat N` every case runs N times (all cases, then all again, so that a slow spell
//! of the shared machine does not fall on one case); a case's figure is the median over its
//! runs in which the controller acted, printed with its spread, and the JSON gives the worst
//! case's median. `bench adapt --links` (seed 002 Fig. 11) is in [`super::links`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::common::{spread, write_out, Runs};
use crate::patterns::report::median;
use crate::testbed::{self, plan::Mode};

/// Payload bytes of each message.
pub const SIZE: &str = "16KiB";
/// Iterations of each job.
pub const ITERATIONS: u64 = 80;
/// Work units of compute per iteration: about 0.1 s on a 0.2-core host (20 units took
/// 0.35-0.4 s per iteration in `direct` mode), a tenth of an iteration on the star.
pub const COMPUTE: f64 = 5.0;
/// The guests' memory for the controller's costs and its migrations (`testbed adapt
/// --guest-memory`), before the scenario's rate scaling: a small guest, so that a migration
/// over `wan`'s slowest path (1 Mbit/s scaled: 3.4 MB in 27 s) fits within a job.
pub const GUEST_MEMORY: u64 = 32 << 20;
/// VTTIF's smoothing window in the vnet-mode runs, seconds.
pub const VTTIF_WINDOW_S: f64 = 4.0;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scenario files.
    pub scenarios: Vec<PathBuf>,
    /// patterns topologies (`all-to-all`, `ring`, `mesh:4x2`, ...).
    pub topologies: Vec<String>,
    /// Runs of each case (star, VADAPT, direct); its figures are the medians over them.
    pub repeat: usize,
}

/// One job's result.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// Seconds from the start barrier to the end of the last iteration.
    pub(super) total_s: f64,
    /// Each iteration's time (BSP: the slowest rank's).
    pub(super) iter_times_s: Vec<f64>,
    /// When each iteration started, seconds after iteration 0 did, on rank 0's clock (the
    /// BSP times overlap between ranks: their sum exceeds the run's wall time).
    starts_s: Vec<f64>,
    /// Wall-clock time at which iteration 0 started.
    start_unix_s: f64,
}

impl Job {
    /// The median iteration time of the iterations that start at `from_unix_s` or later.
    fn median_from(&self, from_unix_s: f64) -> Option<f64> {
        let after: Vec<f64> = self
            .starts_s
            .iter()
            .zip(&self.iter_times_s)
            .filter(|(&at, _)| self.start_unix_s + at >= from_unix_s)
            .map(|(_, &t)| t)
            .collect();
        (!after.is_empty()).then(|| median(&after))
    }
}

/// What the controller did in a run, from its log.
#[derive(Debug, Clone, Default)]
struct Adaptation {
    /// Per landed plan: wall-clock time it landed, migrations, primitives, and the bound of
    /// its migrations (1.5 × copy time at the path's rate + 10 s).
    landed: Vec<Landed>,
    /// Every decision's reason, in order.
    reasons: Vec<String>,
}

#[derive(Debug, Clone)]
struct Landed {
    unix_s: f64,
    migrations: Vec<String>,
    primitives: usize,
    migration_bound_s: f64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn patterns_args(topology: &str, iterations: u64) -> Vec<String> {
    [
        "--topology",
        topology,
        "--op",
        "exchange",
        "--size",
        SIZE,
        "--iterations",
        &iterations.to_string(),
        "--compute",
        &COMPUTE.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Runs the job (`iterations` of it) on run `run`, rank 0's progress lines to `progress` (or
/// stderr).
pub(super) fn job(
    run: &str,
    topology: &str,
    iterations: u64,
    progress: Option<testbed::PatternsProgress>,
) -> Result<Job> {
    let summary = testbed::run_patterns_with(
        run,
        None,
        &patterns_args(topology, iterations),
        Duration::from_secs(1800),
        progress,
    )?;
    let end = unix_now();
    let total_s = summary["total_s"]
        .as_f64()
        .context("patterns summary without total_s")?;
    let times = |v: &Value| -> Result<Vec<f64>> {
        Ok(v.as_array()
            .context("patterns summary without iteration times")?
            .iter()
            .filter_map(Value::as_f64)
            .collect())
    };
    let iter_times_s = times(&summary["iter_times_s"])?;
    let starts_s = times(&summary["ranks"][0]["iter_times_s"])?
        .iter()
        .scan(0.0, |at, t| {
            let start = *at;
            *at += t;
            Some(start)
        })
        .collect();
    Ok(Job {
        total_s,
        iter_times_s,
        starts_s,
        start_unix_s: end - total_s,
    })
}

pub(super) fn up(scenario: &Path, run: &str, mode: Mode) -> Result<()> {
    let options = testbed::Options {
        vnetd_args: vec![format!("--vttif-window={VTTIF_WINDOW_S}")],
        ..testbed::Options::default()
    };
    testbed::up_with(scenario, Some(run), mode, options)?;
    Ok(())
}

/// [`up`] as a `testbed up` of its own, its step-by-step output kept out of the demo's
/// progress bar (shown only if it fails).
fn up_quietly(scenario: &Path, run: &str, mode: Mode) -> Result<()> {
    let out = Command::new(testbed::sibling_binary("testbed")?)
        .arg("up")
        .arg(scenario)
        .args(["--run", run, "--network", &mode.to_string()])
        .arg(format!("--vnetd-arg=--vttif-window={VTTIF_WINDOW_S}"))
        .stdin(Stdio::null())
        .output()
        .context("running testbed up")?;
    if !out.status.success() {
        bail!(
            "testbed up {} failed: {}",
            scenario.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The controller of run `run`, logging to `log`, killed (with its process group) on drop.
struct Controller(Child);

/// `testbed adapt`'s arguments: the guests' memory, and the controller's horizon (the job's
/// expected length, seconds) and log.
fn controller_args(horizon_s: f64, log: &Path) -> [String; 7] {
    [
        "--guest-memory".to_string(),
        GUEST_MEMORY.to_string(),
        "--".to_string(),
        "--horizon".to_string(),
        format!("{horizon_s:.1}"),
        "--log".to_string(),
        log.display().to_string(),
    ]
}

impl Controller {
    fn start(run: &str, horizon_s: f64, log: &Path, stderr: &Path) -> Result<Controller> {
        let err = std::fs::File::create(stderr)
            .with_context(|| format!("creating {}", stderr.display()))?;
        let child = Command::new(testbed::sibling_binary("testbed")?)
            .args(["adapt", run])
            .args(controller_args(horizon_s, log))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("starting testbed adapt")?;
        Ok(Controller(child))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_log(log: &Path) -> Result<Adaptation> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut out = Adaptation::default();
    let mut last: Option<(Vec<String>, usize, f64)> = None;
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("{}: {line}", log.display()))?;
        if let Some(reason) = v["reason"].as_str() {
            out.reasons.push(reason.to_string());
        }
        if v["apply"].as_bool() == Some(true) {
            let migrations: Vec<String> = v["migrate"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let primitives = v["actions"].as_array().map_or(0, Vec::len);
            let bound = 1.5 * v["migration_s"].as_f64().unwrap_or(0.0) + 10.0;
            last = Some((migrations, primitives, bound));
        }
        if v["landed"].as_bool() == Some(true) {
            if let (Some((migrations, primitives, bound)), Some(unix_s)) =
                (last.take(), v["unix_s"].as_f64())
            {
                out.landed.push(Landed {
                    unix_s,
                    migrations,
                    primitives,
                    migration_bound_s: bound,
                });
            }
        }
    }
    Ok(out)
}

/// One scenario × topology, one of its repeats.
struct Case {
    scenario: String,
    topology: String,
    /// Which repeat, from 1.
    repeat: usize,
    star: Job,
    adapted: Job,
    direct: Job,
    adaptation: Adaptation,
}

impl Case {
    fn speedup(&self) -> f64 {
        self.star.total_s / self.adapted.total_s
    }

    /// Seconds from the job's start until the last plan without (`migrations == false`) or
    /// with migrations landed.
    fn settle_s(&self, migrations: bool) -> Option<f64> {
        self.adaptation
            .landed
            .iter()
            .filter(|l| l.migrations.is_empty() != migrations)
            .map(|l| l.unix_s - self.adapted.start_unix_s)
            .reduce(f64::max)
    }

    /// The largest migration settle time over its bound.
    fn migration_ratio(&self) -> Option<f64> {
        self.adaptation
            .landed
            .iter()
            .filter(|l| !l.migrations.is_empty())
            .map(|l| (l.unix_s - self.adapted.start_unix_s) / l.migration_bound_s)
            .reduce(f64::max)
    }

    /// The adapted iteration median against direct's, percent.
    fn gap_to_direct_pct(&self) -> Option<f64> {
        let settled = self.adaptation.landed.last()?.unix_s;
        let adapted = self.adapted.median_from(settled)?;
        let direct = median(&self.direct.iter_times_s);
        Some(100.0 * (adapted / direct - 1.0))
    }
}

pub(super) fn scenario_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Runs the benchmark; prints tables and returns the JSON object.
///
/// # Errors
/// A run that cannot be brought up, a patterns job that fails.
pub fn run(opts: &Options) -> Result<Value> {
    let run = "adapt-bench";
    let guard = Runs(vec![run.to_string()]);
    let dir = std::env::temp_dir().join(format!("bench-adapt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut cases = Vec::new();
    let repeat = opts.repeat.max(1);
    let total = opts.scenarios.len() * opts.topologies.len() * repeat;
    for r in 1..=repeat {
        for scenario in &opts.scenarios {
            for topology in &opts.topologies {
                let case = run_case(scenario, topology, r, cases.len() + 1, total, run, &dir)?;
                cases.push(case);
            }
        }
    }
    drop(guard);
    print_tables(&cases);
    Ok(figures(&cases, repeat))
}

/// Runs one case: the job on the star, with VADAPT, and direct, each on a fresh run `run`
/// (`k` of `total` in the progress lines, the controller's log in `dir`).
fn run_case(
    scenario: &Path,
    topology: &str,
    repeat: usize,
    k: usize,
    total: usize,
    run: &str,
    dir: &Path,
) -> Result<Case> {
    let name = scenario_name(scenario);
    let say = |what: &str| eprintln!("bench adapt: [{k}/{total}] {name} {topology}: {what}");
    say("star");
    up(scenario, run, Mode::Vnet)?;
    let star = job(run, topology, ITERATIONS, None)?;
    say(&format!("star {:.1} s; VADAPT", star.total_s));
    up(scenario, run, Mode::Vnet)?;
    let log = dir.join(format!(
        "{name}-{}-{repeat}.jsonl",
        topology.replace(':', "_")
    ));
    let stderr = log.with_extension("log");
    let _ = std::fs::remove_file(&log);
    let adapted = {
        let _controller = Controller::start(run, star.total_s, &log, &stderr)?;
        std::thread::sleep(Duration::from_millis(300));
        job(run, topology, ITERATIONS, None)?
    };
    let adaptation = read_log(&log)?;
    if adaptation.landed.is_empty() {
        say(&format!(
            "the controller took no action, so this run does not count (its log: {}; its last reason: {})",
            log.display(),
            adaptation.reasons.last().map_or("none", String::as_str)
        ));
    }
    say(&format!("VADAPT {:.1} s; direct", adapted.total_s));
    up(scenario, run, Mode::Direct)?;
    let direct = job(run, topology, ITERATIONS, None)?;
    testbed::down(run)?;
    say(&format!("direct {:.1} s", direct.total_s));
    Ok(Case {
        scenario: name,
        topology: topology.to_string(),
        repeat,
        star,
        adapted,
        direct,
        adaptation,
    })
}

/// The cases' scenario × topology pairs, each once, sorted.
fn groups(cases: &[Case]) -> Vec<(&str, &str)> {
    let mut groups: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| (c.scenario.as_str(), c.topology.as_str()))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// `f` of the runs of `scenario` × `topology` in which the controller acted, where it has a
/// value.
fn counted(
    cases: &[Case],
    (scenario, topology): (&str, &str),
    f: &dyn Fn(&Case) -> Option<f64>,
) -> Vec<f64> {
    cases
        .iter()
        .filter(|c| c.scenario == scenario && c.topology == topology)
        .filter(|c| !c.adaptation.landed.is_empty())
        .filter_map(f)
        .collect()
}

/// The JSON figures: per scenario × topology, the median over its repeats in which the
/// controller acted; then the worst of those medians.
fn figures(cases: &[Case], repeat: usize) -> Value {
    // A run in which the controller took no action does not count.
    let idle: Vec<&Case> = cases
        .iter()
        .filter(|c| c.adaptation.landed.is_empty())
        .collect();
    let groups = groups(cases);
    // Per group, the median of `f` over its counted runs (None when none has a value).
    let per_group = |f: &dyn Fn(&Case) -> Option<f64>, only: Option<&str>| -> Vec<f64> {
        groups
            .iter()
            .filter(|(_, t)| only.is_none_or(|o| o == *t))
            .filter_map(|&g| {
                let xs = counted(cases, g, f);
                (!xs.is_empty()).then(|| median(&xs))
            })
            .collect()
    };
    let max = |xs: Vec<f64>| xs.into_iter().reduce(f64::max);
    json!({
        "repeat": repeat,
        "cases_without_action": idle.iter().map(|c| format!("{} {} #{}", c.scenario, c.topology, c.repeat)).collect::<Vec<_>>(),
        "speedup_all_to_all_min": per_group(&|c| Some(c.speedup()), Some("all-to-all")).into_iter().reduce(f64::min),
        "gap_to_direct_pct_max": max(per_group(&Case::gap_to_direct_pct, None)),
        "settle_topology_s_max": max(per_group(&|c| c.settle_s(false), None)),
        "settle_migration_ratio_max": max(per_group(&Case::migration_ratio, None)),
    })
}

fn print_tables(cases: &[Case]) {
    println!(
        "\nbench adapt: patterns --op exchange --size {SIZE} --iterations {ITERATIONS} --compute {COMPUTE}, 8 guests; VTTIF window {VTTIF_WINDOW_S} s\n"
    );
    println!(
        "{:<15} {:<11} {:>2} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8} {:>9} {:>10} {:>8}",
        "scenario",
        "topology",
        "#",
        "star s",
        "VADAPT s",
        "direct s",
        "speedup",
        "adapted it",
        "direct it",
        "gap %",
        "settle s",
        "migrations",
        "rules"
    );
    for c in cases {
        let opt = |x: Option<f64>, p: usize| x.map_or("-".into(), |x| format!("{x:.p$}"));
        let settled = c.adaptation.landed.last().map(|l| l.unix_s);
        println!(
            "{:<15} {:<11} {:>2} {:>8.1} {:>8.1} {:>8.1} {:>7.2}x {:>10} {:>10.3} {:>8} {:>9} {:>10} {:>8}",
            c.scenario,
            c.topology,
            c.repeat,
            c.star.total_s,
            c.adapted.total_s,
            c.direct.total_s,
            c.speedup(),
            opt(settled.and_then(|s| c.adapted.median_from(s)), 3),
            median(&c.direct.iter_times_s),
            opt(c.gap_to_direct_pct(), 1),
            opt(c.settle_s(false).or(c.settle_s(true)), 1),
            c.adaptation.landed.iter().map(|l| l.migrations.len()).sum::<usize>(),
            c.adaptation.landed.iter().map(|l| l.primitives).sum::<usize>(),
        );
    }
    println!("\nactions (each landed plan: when, after the job's start):");
    for c in cases {
        for l in &c.adaptation.landed {
            println!(
                "  {} {} #{}: +{:.1} s: {} primitives{}",
                c.scenario,
                c.topology,
                c.repeat,
                l.unix_s - c.adapted.start_unix_s,
                l.primitives,
                if l.migrations.is_empty() {
                    String::new()
                } else {
                    format!(", migrate {}", l.migrations.join(", "))
                }
            );
        }
    }
    if cases.iter().all(|c| c.repeat == 1) {
        return;
    }
    println!("\nover the repeats in which the controller acted: median (min-max)");
    println!(
        "{:<15} {:<11} {:>7} {:>8} {:>8} {:>8} {:>20} {:>22} {:>20}",
        "scenario",
        "topology",
        "counted",
        "star s",
        "VADAPT s",
        "direct s",
        "speedup",
        "gap %",
        "settle s"
    );
    for g in groups(cases) {
        let median_of = |f: &dyn Fn(&Case) -> Option<f64>| median(&counted(cases, g, f));
        let show = |f: &dyn Fn(&Case) -> Option<f64>, p: usize| {
            let xs = counted(cases, g, f);
            if xs.is_empty() {
                return "-".to_string();
            }
            let (m, lo, hi) = spread(&xs);
            format!("{m:.p$} ({lo:.p$}-{hi:.p$})")
        };
        let speedup = |c: &Case| Some(c.speedup());
        println!(
            "{:<15} {:<11} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>20} {:>22} {:>20}",
            g.0,
            g.1,
            counted(cases, g, &speedup).len(),
            median_of(&|c| Some(c.star.total_s)),
            median_of(&|c| Some(c.adapted.total_s)),
            median_of(&|c| Some(c.direct.total_s)),
            show(&speedup, 2),
            show(&Case::gap_to_direct_pct, 1),
            show(&|c| c.settle_s(false).or(c.settle_s(true)), 1),
        );
    }
}

/// What `bench adapt --demo` (the README's `cargo xtask demo`) shows.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The scenario (the demo's is `wan`).
    pub scenario: PathBuf,
    /// The patterns topology.
    pub topology: String,
    /// Where to write the SVG report.
    pub report: PathBuf,
}

/// A progress callback that moves `bar` by patterns' `iteration D/N` lines, `offset`
/// iterations in, and prints any other line above it.
fn bar_progress(bar: &indicatif::ProgressBar, offset: u64) -> testbed::PatternsProgress {
    let bar = bar.clone();
    std::sync::Arc::new(move |line: &str| {
        let done = line
            .strip_prefix("patterns: iteration ")
            .and_then(|rest| rest.split('/').next())
            .and_then(|d| d.parse::<u64>().ok());
        match done {
            Some(d) => bar.set_position(offset + d),
            None => bar.println(line),
        }
    })
}

/// The adaptive demo: the scenario in `vnet` mode, the patterns job on the star alone, then
/// again with VADAPT on; prints the inferred topology, each plan and why, iteration times
/// before and after and the speedup, and writes an SVG of iteration time over time with each
/// landed plan marked. Returns the JSON of its figures.
///
/// # Errors
/// A run that cannot be brought up, a patterns job that fails, a report that cannot be written.
pub fn demo(opts: &DemoOptions) -> Result<Value> {
    let run = "demo";
    let guard = Runs(vec![run.to_string()]);
    let name = scenario_name(&opts.scenario);
    let topology = opts.topology.as_str();
    let bar = indicatif::ProgressBar::new(2 * ITERATIONS);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40.cyan/blue}] {pos}/{len} iterations  {msg}",
        )
        .map_err(|e| anyhow::anyhow!("progress bar: {e}"))?
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(format!("{name}: bringing up the overlay's star"));
    up_quietly(&opts.scenario, run, Mode::Vnet)?;
    bar.set_message(format!("{name}: patterns {topology} on the star alone"));
    let star = job(run, topology, ITERATIONS, Some(bar_progress(&bar, 0)))?;
    bar.println(format!(
        "star alone: {:.1} s, median iteration {:.3} s",
        star.total_s,
        median(&star.iter_times_s)
    ));
    bar.set_message(format!("{name}: a fresh star, and the controller"));
    up_quietly(&opts.scenario, run, Mode::Vnet)?;
    let dir = testbed::vnet::dir(run);
    let (log, stderr) = (dir.join("vadapt.jsonl"), dir.join("vadapt.log"));
    let topology_text = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let adapted = {
        let _controller = Controller::start(run, star.total_s, &log, &stderr)?;
        // The inferred topology, as VTTIF reports it when the controller first decides.
        let watcher = {
            let (log, text) = (log.clone(), std::sync::Arc::clone(&topology_text));
            std::thread::spawn(move || {
                for _ in 0..600 {
                    std::thread::sleep(Duration::from_millis(250));
                    let decided =
                        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"reason\""));
                    if decided {
                        let got = Command::new(testbed::sibling_binary("testbed").ok()?)
                            .args(["vnetctl", run, "--", "app-topology", "proxy"])
                            .output()
                            .ok()?;
                        *text.lock().ok()? =
                            Some(String::from_utf8_lossy(&got.stdout).into_owned());
                        return Some(());
                    }
                }
                None
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        bar.set_message(format!("{name}: patterns {topology} with VADAPT"));
        let job = job(
            run,
            topology,
            ITERATIONS,
            Some(bar_progress(&bar, ITERATIONS)),
        );
        let _ = watcher.join();
        job?
    };
    bar.finish_and_clear();
    let adaptation = read_log(&log)?;
    drop(guard);

    println!("\nVADAPT demo: scenario {name}, patterns {topology} on 8 guests ({SIZE} messages, {ITERATIONS} iterations, compute {COMPUTE} units each)\n");
    match topology_text.lock().ok().and_then(|t| t.clone()) {
        Some(text) => {
            let head: Vec<&str> = text.lines().take(4).collect();
            println!(
                "The inferred topology (VTTIF at the Proxy):\n  {}\n",
                head.join("\n  ")
            );
        }
        None => println!("VTTIF declared no topology while the job ran.\n"),
    }
    println!("The controller's decisions:");
    for reason in &adaptation.reasons {
        println!("  - {reason}");
    }
    println!("\nWhat landed (after the job's start):");
    if adaptation.landed.is_empty() {
        println!("  nothing: no plan was worth applying (reasons above)");
    }
    for l in &adaptation.landed {
        println!(
            "  +{:.1} s: {} link and rule primitives{}",
            l.unix_s - adapted.start_unix_s,
            l.primitives,
            if l.migrations.is_empty() {
                String::new()
            } else {
                format!(", migrated {}", l.migrations.join(", "))
            }
        );
    }
    let star_median = median(&star.iter_times_s);
    let settled = adaptation.landed.last().map(|l| l.unix_s);
    let after = settled.and_then(|s| adapted.median_from(s));
    let speedup = star.total_s / adapted.total_s;
    println!("\n{:<26} {:>10} {:>18}", "", "run s", "median iteration s");
    println!(
        "{:<26} {:>10.1} {:>18.3}",
        "star alone", star.total_s, star_median
    );
    println!(
        "{:<26} {:>10.1} {:>18}",
        "with VADAPT (after it settled)",
        adapted.total_s,
        after.map_or("-".into(), |a| format!("{a:.3}"))
    );
    println!(
        "\nspeedup: {speedup:.2}x over the whole run (adaptation included){}",
        after.map_or(String::new(), |a| format!(
            ", {:.2}x per iteration once adapted",
            star_median / a
        ))
    );
    write_report(opts, &name, &star, &adapted, &adaptation)?;
    println!("report: {}", opts.report.display());
    Ok(json!({
        "speedup": speedup,
        "iteration_speedup": after.map(|a| star_median / a),
        "settle_s": settled.map(|s| s - adapted.start_unix_s),
        "plans": adaptation.landed.len(),
        "migrations": adaptation.landed.iter().map(|l| l.migrations.len()).sum::<usize>(),
    }))
}

/// The SVG: iteration time against time since the job's start, star and VADAPT, with a
/// vertical line where each plan landed.
fn write_report(
    opts: &DemoOptions,
    name: &str,
    star: &Job,
    adapted: &Job,
    adaptation: &Adaptation,
) -> Result<()> {
    let over_time = |job: &Job| {
        job.starts_s
            .iter()
            .zip(&job.iter_times_s)
            .map(|(&at, &t)| (at, Some(t)))
            .collect::<Vec<_>>()
    };
    let top = star
        .iter_times_s
        .iter()
        .chain(&adapted.iter_times_s)
        .copied()
        .fold(0.0, f64::max);
    let mut series = vec![
        ::vttif::plot::Series {
            name: "star alone".into(),
            points: over_time(star),
        },
        ::vttif::plot::Series {
            name: "with VADAPT".into(),
            points: over_time(adapted),
        },
    ];
    for l in &adaptation.landed {
        let x = l.unix_s - adapted.start_unix_s;
        let what = if l.migrations.is_empty() {
            format!("{} primitives", l.primitives)
        } else {
            format!("{} migrations", l.migrations.len())
        };
        series.push(::vttif::plot::Series {
            name: format!("+{x:.0} s: {what}"),
            points: vec![(x, Some(0.0)), (x, Some(top))],
        });
    }
    let svg = ::vttif::plot::figure(
        &format!("VADAPT on {name}: patterns {}", opts.topology),
        &[::vttif::plot::Panel {
            title: "iteration time over the run".into(),
            x_label: "seconds since the job started".into(),
            y_label: "iteration time (s)".into(),
            series,
        }],
    );
    write_out(&opts.report, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(total_s: f64) -> Job {
        Job {
            total_s,
            iter_times_s: vec![1.0],
            starts_s: vec![0.0],
            start_unix_s: 100.0,
        }
    }

    /// A case whose VADAPT run took `star_s / speedup`; it acted (a plan landed 5 s in) or not.
    fn case(topology: &str, repeat: usize, speedup: f64, acted: bool) -> Case {
        let landed = acted.then(|| Landed {
            unix_s: 105.0,
            migrations: Vec::new(),
            primitives: 4,
            migration_bound_s: 10.0,
        });
        Case {
            scenario: "s".into(),
            topology: topology.into(),
            repeat,
            star: job(60.0),
            adapted: job(60.0 / speedup),
            direct: job(10.0),
            adaptation: Adaptation {
                landed: landed.into_iter().collect(),
                reasons: Vec::new(),
            },
        }
    }

    #[test]
    fn figures_are_medians_over_the_runs_that_acted_and_the_worst_case_counts() {
        let cases = [
            case("all-to-all", 1, 2.0, true),
            case("all-to-all", 2, 4.0, true),
            // Would raise the median to 4 if it counted.
            case("all-to-all", 3, 10.0, false),
            case("ring", 1, 1.5, true),
        ];
        let v = figures(&cases, 3);
        assert_eq!(v["speedup_all_to_all_min"], json!(3.0));
        assert_eq!(v["cases_without_action"], json!(["s all-to-all #3"]));
        assert_eq!(v["settle_topology_s_max"], json!(5.0));
        assert_eq!(v["settle_migration_ratio_max"], Value::Null);
        assert_eq!(v["repeat"], json!(3));
    }
}

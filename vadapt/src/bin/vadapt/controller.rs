//! The control loop: the I/O around VADAPT's pure parts.
//!
//! 1. Follow VTTIF's change stream at the Proxy (`WatchTopology`, a long poll).
//! 2. On each declared change, and every `--reconsider` seconds while a topology stands, read
//!    the live overlay (every daemon's links and rules), build the problem (the environment's
//!    machines and priors, VTTIF's demands, the live configuration), with `--wren` merge Wren's
//!    matrix into its paths ([`Environment::merge_wren`]; a collector that does not answer
//!    within [`WREN_TIMEOUT`] leaves the priors, with a warning), solve it, and build the
//!    overlay the solution needs and the plan that gets there.
//! 3. Judge the plan ([`Damper::judge`]: gain against cost, dwell, memory against
//!    oscillation), log the decision and its reason, and apply it unless `--dry-run`:
//!    migrations first (the migration command re-homes each VM, keeping it reachable), then
//!    the links and rules (`online::apply`: add before delete; the star stays).
//! 4. Two VTTIF windows after a plan lands, log the measured gain (the application's traffic
//!    rate over the demands, after against before) beside the expected one.
//!
//! An infeasible problem or a plan that cannot be realised is logged with its diagnosis and
//! the overlay is left as it was.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;
use tracing::{info, warn};
use vnetd::control::{self, Request, Response};
use vnetd::model::{Name, Topology};
use vnetd::online::{self, Hosts, Session};

use vadapt::decide::{self, Candidate, Damper, Policy};
use vadapt::inputs::{self, Environment};
use vadapt::metrics::Metrics;
use vadapt::model::{Configuration, Problem, Source};
use vadapt::overlay::Layout;
use vadapt::{objective, solve};

use crate::{Cli, ObjectiveKind, SolverKind};

/// One decision, as logged (a JSON line with `--log`).
#[derive(Debug, Serialize)]
struct Decision {
    /// Seconds since the controller started.
    at_s: f64,
    /// VTTIF's change count the decision was made on.
    changes: u64,
    /// The topology's shapes, as VTTIF classified it.
    shapes: Vec<String>,
    /// Number of demands.
    demands: usize,
    /// The application's traffic over the demands, bit/s.
    traffic_bps: f64,
    solver: String,
    objective: String,
    /// Seconds the solver took.
    solve_s: f64,
    #[serde(flatten)]
    candidate: Candidate,
    /// Each migration, `vm: from -> to`.
    migrate: Vec<String>,
    /// The link and rule primitives, in the language, in order.
    actions: Vec<String>,
    apply: bool,
    reason: String,
    dry_run: bool,
    /// Directed paths whose bandwidth is Wren's measurement.
    paths_measured: usize,
    /// Directed paths whose bandwidth is the environment's prior (clipped to Wren's bounds or
    /// not).
    paths_prior: usize,
    /// Why Wren's matrix could not be read (with `--wren`); the priors were used.
    #[serde(skip_serializing_if = "Option::is_none")]
    wren_error: Option<String>,
}

/// How long a decision waits for Wren's collector (connecting, and each read).
const WREN_TIMEOUT: Duration = Duration::from_secs(1);

/// A landed plan whose gain is still to be measured.
struct Pending {
    due: Instant,
    expected_speedup: f64,
    traffic_before_bps: f64,
    demands: Vec<(vnetd::model::Mac, vnetd::model::Mac)>,
}

pub fn run(cli: &Cli) -> anyhow::Result<()> {
    let key = control::read_key_file(&cli.key_file).map_err(anyhow::Error::msg)?;
    let hosts = match &cli.hosts_file {
        Some(path) => Hosts::load(path)?,
        None => Hosts::default(),
    };
    let timeout = Duration::try_from_secs_f64(cli.timeout)
        .map_err(|_| anyhow::anyhow!("--timeout {}: not a number of seconds", cli.timeout))?;
    let mut session = Session::new(key, hosts, timeout);
    let declared = load_topology(&cli.topology)?;
    let proxy_port = declared
        .hosts
        .get(&cli.proxy)
        .map(|h| h.port)
        .with_context(|| {
            format!(
                "{} declares no machine `{}`",
                cli.topology.display(),
                cli.proxy
            )
        })?;
    let environment: Environment = serde_json::from_str(
        &std::fs::read_to_string(&cli.environment)
            .with_context(|| format!("reading {}", cli.environment.display()))?,
    )
    .with_context(|| format!("{}: not an environment file", cli.environment.display()))?;
    let policy = Policy {
        min_gain: cli.min_gain,
        horizon_s: cli.horizon,
        dwell_s: cli.dwell,
        ..Policy::default()
    };
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    if let Some(addr) = cli.metrics {
        let listener = TcpListener::bind(addr).with_context(|| format!("metrics on {addr}"))?;
        let shared = Arc::clone(&metrics);
        vnetd::daemon::server::spawn_text_metrics(listener, move || {
            shared
                .lock()
                .map(|m| m.render())
                .map_err(|_| "metrics poisoned".to_string())
        });
    }
    let mut log = match &cli.log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => None,
    };
    let started = Instant::now();
    let mut damper = Damper::default();
    let mut seen: Option<u64> = None;
    let mut last_decision: Option<Instant> = None;
    let mut pending: Option<Pending> = None;
    // When the application's traffic was first seen: its progress, for the remaining run.
    let mut first_traffic: Option<Instant> = None;
    let wait_ms = u64::try_from(timeout.as_millis().saturating_sub(1000).max(100))
        .unwrap_or(control::MAX_WATCH_MS);
    info!(
        "vadapt: following VTTIF at {} ({} solver, {} objective{})",
        cli.proxy,
        solver_name(cli.solver),
        objective_name(cli.objective),
        if cli.dry_run { ", dry run" } else { "" }
    );
    loop {
        let request = match seen {
            None => Request::AppTopology,
            Some(after) => Request::WatchTopology {
                after,
                timeout_ms: wait_ms.min(1000),
            },
        };
        let report = match session.call(&cli.proxy, proxy_port, &request)? {
            Response::AppTopology(report) => report,
            Response::Error { message } => bail!("{}: {message}", cli.proxy),
            other => bail!("{}: unexpected answer {other:?}", cli.proxy),
        };
        if let Some(p) = pending.take_if(|p| Instant::now() >= p.due) {
            let after = traffic_bps(&report, &p.demands);
            let measured = after / p.traffic_before_bps.max(1.0);
            info!(
                "vadapt: measured gain {measured:.2}x (traffic {:.2} -> {:.2} Mbit/s), expected speedup {:.2}x",
                p.traffic_before_bps / 1e6,
                after / 1e6,
                p.expected_speedup
            );
            metrics.lock().expect("metrics lock").measured_gain = Some(measured);
            write_log(
                &mut log,
                &serde_json::json!({
                    "at_s": started.elapsed().as_secs_f64(),
                    "measured_gain": measured,
                    "expected_speedup": p.expected_speedup,
                    "traffic_before_bps": p.traffic_before_bps,
                    "traffic_after_bps": after,
                }),
            )?;
        }
        let changed = seen != Some(report.changes);
        seen = Some(report.changes);
        let due = last_decision.is_none_or(|t| t.elapsed().as_secs_f64() >= cli.reconsider);
        if report.edges.is_empty() || !(changed || due) {
            if cli.once && report.edges.is_empty() {
                bail!("VTTIF has declared no topology yet: nothing to decide on");
            }
            continue;
        }
        last_decision = Some(Instant::now());
        // VTTIF declares a topology once it has seen the traffic for about its window.
        let elapsed_s = first_traffic
            .get_or_insert_with(|| {
                let now = Instant::now();
                Duration::try_from_secs_f64(report.window_s)
                    .ok()
                    .and_then(|w| now.checked_sub(w))
                    .unwrap_or(now)
            })
            .elapsed()
            .as_secs_f64();
        let outcome = decide(
            cli,
            &mut session,
            &declared,
            &environment,
            &policy,
            &damper,
            &report,
            started,
            elapsed_s,
        );
        let decision = match outcome {
            Ok(d) => d,
            Err(e) => {
                warn!("vadapt: no plan, the overlay is left as it is: {e:#}");
                metrics.lock().expect("metrics lock").failures += 1;
                write_log(
                    &mut log,
                    &serde_json::json!({
                        "at_s": started.elapsed().as_secs_f64(),
                        "changes": report.changes,
                        "apply": false,
                        "reason": format!("{e:#}"),
                    }),
                )?;
                if cli.once {
                    return Err(e);
                }
                continue;
            }
        };
        let (decision, plan) = decision;
        info!(
            "vadapt: {} plan ({} migrations, {} primitives): {}",
            match (decision.apply, cli.dry_run) {
                (true, false) => "applying",
                (true, true) => "would apply (dry run)",
                (false, _) => "leaving",
            },
            decision.migrate.len(),
            decision.actions.len(),
            decision.reason
        );
        print_plan(&decision);
        {
            let mut m = metrics.lock().expect("metrics lock");
            m.decided(&decision.candidate, decision.apply, decision.solve_s);
        }
        write_log(&mut log, &decision)?;
        if decision.apply && !cli.dry_run {
            let landed = apply(cli, &mut session, &plan, &metrics)
                .context("applying the plan (the actions before the failing one were applied)");
            match landed {
                Ok(()) => {
                    let now = started.elapsed().as_secs_f64();
                    damper.applied(&policy, decision.candidate.fingerprint, now);
                    let settle = Duration::from_secs_f64((2.0 * report.window_s).max(1.0) + 1.0);
                    pending = Some(Pending {
                        due: Instant::now() + settle,
                        expected_speedup: decision.candidate.speedup(),
                        traffic_before_bps: decision.traffic_bps,
                        demands: plan.pairs.clone(),
                    });
                    info!("vadapt: plan landed at {now:.2} s");
                    write_log(&mut log, &serde_json::json!({"at_s": now, "landed": true}))?;
                }
                Err(e) => {
                    warn!("vadapt: {e:#}");
                    metrics.lock().expect("metrics lock").failures += 1;
                }
            }
        }
        if cli.once {
            return Ok(());
        }
    }
}

/// What a decision applies.
struct Plan {
    /// `(vm name, mac, destination machine)`.
    migrations: Vec<(String, vnetd::model::Mac, Name)>,
    /// The overlay to bring the daemons to afterwards.
    desired: Topology,
    /// The demands' guest pairs (for measuring the gain).
    pairs: Vec<(vnetd::model::Mac, vnetd::model::Mac)>,
}

/// What the controller knows at one decision.
struct Situation<'a> {
    live: Topology,
    layout: Layout,
    problem: Problem,
    current: Configuration,
    objective: Box<dyn objective::Objective>,
    policy: &'a Policy,
    damper: &'a Damper,
    now_s: f64,
    /// Seconds since the application's traffic was first seen.
    elapsed_s: f64,
}

/// A solution judged: what it changes, what it brings and costs, and the verdict.
struct Judged {
    kind: &'static str,
    solve_s: f64,
    candidate: Candidate,
    verdict: decide::Verdict,
    /// `(vm, from, to)` of every VM it moves.
    moves: Vec<(usize, usize, usize)>,
    actions: Vec<vnetd::lang::Action>,
    desired: Topology,
}

/// How much of the objective [`Situation::fewer_moves`] gives up to spare a migration.
const MOVE_TOLERANCE: f64 = 0.01;

impl Situation<'_> {
    /// The objectives know nothing of what a migration costs, and a solution often moves VMs
    /// between equivalent hosts. So each VM that `chosen` moves is pinned back where it is, the
    /// dearest copies first, and the problem solved again; the pin stays if neither the
    /// objective nor the congestion ([`decide::congestion`]) gets worse than `chosen`'s by more
    /// than [`MOVE_TOLERANCE`].
    fn fewer_moves(
        &self,
        solver: &dyn solve::Solver,
        problem: &mut Problem,
        chosen: Configuration,
    ) -> anyhow::Result<Configuration> {
        let objective = self.objective.as_ref();
        let target = objective.score(problem, &chosen)?;
        let congestion = decide::congestion(problem, &chosen);
        let slack = MOVE_TOLERANCE * target.abs();
        let good_enough = |problem: &Problem, c: &Configuration| {
            let Ok(score) = objective.score(problem, c) else {
                return false;
            };
            let kept = match objective.direction() {
                vadapt::Direction::Maximize => score >= target - slack,
                vadapt::Direction::Minimize => score <= target + slack,
            };
            kept && decide::congestion(problem, c) <= congestion * (1.0 + MOVE_TOLERANCE)
        };
        let copy_s = |vm: usize, to: usize| {
            let from = self.current.mapping[vm];
            problem
                .edge(from, to)
                .filter(|p| p.bw > 0.0)
                .map_or(f64::INFINITY, |p| {
                    problem.vms[vm].memory as f64 * 8.0 / p.bw
                })
        };
        let mut moved: Vec<usize> = (0..chosen.mapping.len())
            .filter(|&vm| self.current.mapping.get(vm) != Some(&chosen.mapping[vm]))
            .collect();
        moved.sort_by(|&a, &b| {
            copy_s(b, chosen.mapping[b]).total_cmp(&copy_s(a, chosen.mapping[a]))
        });
        let mut best = chosen;
        for vm in moved {
            if best.mapping[vm] == self.current.mapping[vm] {
                continue;
            }
            problem.pinned.insert(vm, self.current.mapping[vm]);
            match solver.solve(problem, objective) {
                Ok(c) if good_enough(problem, &c) => best = c,
                _ => {
                    problem.pinned.remove(&vm);
                }
            }
        }
        Ok(best)
    }

    /// Solves with `solver` (VMs pinned where they are when `pinned`) and judges the solution.
    fn consider(&self, solver: &dyn solve::Solver, pinned: bool) -> anyhow::Result<Judged> {
        let mut problem = self.problem.clone();
        if pinned {
            problem.pinned = self.current.mapping.iter().copied().enumerate().collect();
        }
        let t0 = Instant::now();
        let mut chosen = solver.solve(&problem, self.objective.as_ref())?;
        if !pinned {
            chosen = self.fewer_moves(solver, &mut problem, chosen)?;
        }
        let solve_s = t0.elapsed().as_secs_f64();
        let desired = self.layout.topology(&chosen, &problem.demands)?;
        let moves: Vec<(usize, usize, usize)> = self
            .current
            .mapping
            .iter()
            .zip(&chosen.mapping)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(vm, (&from, &to))| (vm, from, to))
            .collect();
        // The copies run at the same time; those leaving one host share its access.
        let mut copy_from = std::collections::BTreeMap::<usize, f64>::new();
        for &(vm, from, to) in &moves {
            *copy_from.entry(from).or_default() += match problem.edge(from, to) {
                Some(path) if path.bw > 0.0 => problem.vms[vm].memory as f64 * 8.0 / path.bw,
                _ => f64::INFINITY,
            };
        }
        let migration_s = copy_from.into_values().fold(0.0, f64::max);
        let actions = vnetd::lang::plan(&self.live, &desired);
        let candidate = Candidate {
            objective_now: self.objective.score(&problem, &self.current)?,
            objective_new: self.objective.score(&problem, &chosen)?,
            maximise: self.objective.direction() == vadapt::Direction::Maximize,
            congestion_now: decide::congestion(&problem, &self.current),
            congestion_new: decide::congestion(&problem, &chosen),
            migration_s,
            migrations: moves.len(),
            primitives: actions.len(),
            fingerprint: fingerprint(&chosen),
            remaining_s: self.policy.remaining_s(self.elapsed_s),
        };
        let verdict = self.damper.judge(self.policy, &candidate, self.now_s);
        Ok(Judged {
            kind: if pinned {
                "links and rules"
            } else {
                "with migration"
            },
            solve_s,
            candidate,
            verdict,
            moves,
            actions,
            desired,
        })
    }
}

/// Decides on `report`: solves for the links and rules with every VM where it is and, when
/// migration is allowed, again with VMs free to move; the plan applied is the one that saves
/// the most time for its cost among those worth applying.
#[allow(clippy::too_many_arguments)]
fn decide(
    cli: &Cli,
    session: &mut Session,
    declared: &Topology,
    environment: &Environment,
    policy: &Policy,
    damper: &Damper,
    report: &vttif::Report,
    started: Instant,
    elapsed_s: f64,
) -> anyhow::Result<(Decision, Plan)> {
    let live = online::live(session, declared)?.topology;
    let layout = Layout::of(&live, &cli.proxy)?;
    let demands = inputs::demands(report, &layout);
    if demands.is_empty() {
        bail!("VTTIF's topology has no traffic between guests of the overlay");
    }
    let current = layout.configuration(&live, &demands)?;
    let mut problem = environment.problem(&layout, demands, current.clone())?;
    let wren_error = cli
        .wren
        .and_then(|addr| measure(addr, environment, &mut problem).err());
    let count = |source: Source| {
        problem
            .net
            .iter()
            .flatten()
            .flatten()
            .filter(|p| p.source == source)
            .count()
    };
    let (paths_measured, paths_prior) = (count(Source::Measured), count(Source::Prior));
    let situation = Situation {
        live,
        layout,
        problem,
        current,
        objective: objective_of(cli.objective),
        policy,
        damper,
        now_s: started.elapsed().as_secs_f64(),
        elapsed_s,
    };
    let solver = solver_of(cli.solver);
    let mut options = vec![situation.consider(solver.as_ref(), true)?];
    if !cli.no_migrate && !cli.migrate_command.is_empty() {
        match situation.consider(solver.as_ref(), false) {
            Ok(judged) => options.push(judged),
            Err(e) => warn!("vadapt: with migration: {e:#}"),
        }
    }
    let net = |j: &Judged| j.candidate.saved_s() - j.candidate.cost_s();
    let best = options
        .iter()
        .enumerate()
        .filter(|(_, j)| j.verdict.apply)
        .max_by(|(_, a), (_, b)| net(a).total_cmp(&net(b)))
        .map_or(0, |(i, _)| i);
    let others: Vec<String> = options
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, j)| format!("{}: {}", j.kind, j.verdict.reason))
        .collect();
    let judged = options.swap_remove(best);
    let (situation, layout) = (&situation, &situation.layout);
    let problem = &situation.problem;
    let mut reason = format!("{}: {}", judged.kind, judged.verdict.reason);
    for other in others {
        reason.push_str(&format!("; (not chosen) {other}"));
    }
    let decision = Decision {
        at_s: situation.now_s,
        changes: report.changes,
        shapes: report.shapes.clone(),
        demands: problem.demands.len(),
        traffic_bps: problem.demands.iter().map(|d| d.bw).sum(),
        solver: solver_name(cli.solver).into(),
        objective: objective_name(cli.objective).into(),
        solve_s: judged.solve_s,
        candidate: judged.candidate,
        migrate: judged
            .moves
            .iter()
            .map(|&(vm, from, to)| {
                let (vm, from, to) = (
                    &problem.vms[vm].name,
                    &layout.machines[from],
                    &layout.machines[to],
                );
                format!("{vm}: {from} -> {to}")
            })
            .collect(),
        actions: judged.actions.iter().map(ToString::to_string).collect(),
        apply: judged.verdict.apply,
        reason,
        dry_run: cli.dry_run,
        paths_measured,
        paths_prior,
        wren_error,
    };
    let plan = Plan {
        migrations: judged
            .moves
            .iter()
            .map(|&(vm, _, to)| {
                (
                    problem.vms[vm].name.clone(),
                    layout.guests[vm].mac,
                    layout.machines[to].clone(),
                )
            })
            .collect(),
        desired: judged.desired,
        pairs: problem
            .demands
            .iter()
            .map(|d| (layout.guests[d.src].mac, layout.guests[d.dst].mac))
            .collect(),
    };
    Ok((decision, plan))
}

/// Merges the matrix of Wren's collector at `addr` into `problem`'s paths, logging what it
/// did; on failure (no answer within [`WREN_TIMEOUT`], a bad answer) `problem` keeps its
/// priors and the error says why.
fn measure(
    addr: SocketAddr,
    environment: &Environment,
    problem: &mut Problem,
) -> Result<(), String> {
    let matrix = wren_passive::fetch_matrix(addr, WREN_TIMEOUT).map_err(|e| {
        warn!("vadapt: Wren: {e}; deciding on the priors");
        e.to_string()
    })?;
    let merge = environment.merge_wren(problem, &matrix);
    info!(
        "vadapt: Wren: {} paths measured, {} priors ({} clipped to Wren's bounds), {} latencies measured",
        merge.measured, merge.prior, merge.clipped, merge.latency_measured
    );
    if !merge.unknown_names.is_empty() {
        warn!(
            "vadapt: Wren names machines the environment does not have, ignored: {}",
            merge.unknown_names.join(", ")
        );
    }
    for refused in &merge.refused {
        warn!("vadapt: Wren's figure refused, the prior kept: {refused}");
    }
    Ok(())
}

fn apply(
    cli: &Cli,
    session: &mut Session,
    plan: &Plan,
    metrics: &Mutex<Metrics>,
) -> anyhow::Result<()> {
    // The migrations run at the same time (each copies over its own path; the testbed's
    // switches take turns). If one fails, the links and rules wait: the next decision plans
    // again from where the guests are.
    let t0 = Instant::now();
    let mut running = Vec::new();
    for (vm, mac, host) in &plan.migrations {
        let words: Vec<String> = cli
            .migrate_command
            .iter()
            .map(|w| {
                w.replace("{vm}", vm)
                    .replace("{mac}", &mac.to_string())
                    .replace("{host}", host.as_str())
            })
            .collect();
        info!("vadapt: migrating {vm} to {host}: {}", words.join(" "));
        let child = Command::new(&words[0])
            .args(&words[1..])
            .spawn()
            .with_context(|| format!("running {}", words[0]));
        running.push((vm, host, child));
    }
    let mut failed = Vec::new();
    for (vm, host, child) in running {
        match child.and_then(|mut c| Ok(c.wait()?)) {
            Ok(status) if status.success() => {
                metrics.lock().expect("metrics lock").actions("migrate", 1);
            }
            Ok(status) => failed.push(format!("{vm} to {host}: exited {status}")),
            Err(e) => failed.push(format!("{vm} to {host}: {e:#}")),
        }
    }
    if !plan.migrations.is_empty() {
        metrics.lock().expect("metrics lock").migration_seconds += t0.elapsed().as_secs_f64();
    }
    if !failed.is_empty() {
        bail!(
            "migrations failed ({}); the links and rules were left as they are",
            failed.join("; ")
        );
    }
    let report = online::apply(session, &plan.desired, &cli.proxy, |action| {
        info!("vadapt: {action}");
    })?;
    metrics
        .lock()
        .expect("metrics lock")
        .actions("primitive", report.actions.len());
    Ok(())
}

/// The application's traffic over `pairs` in `report`, bit/s.
fn traffic_bps(report: &vttif::Report, pairs: &[(vnetd::model::Mac, vnetd::model::Mac)]) -> f64 {
    report
        .matrix
        .iter()
        .filter(|f| pairs.contains(&(f.src, f.dst)))
        .map(|f| f.bytes_per_s * 8.0)
        .sum()
}

fn print_plan(decision: &Decision) {
    if decision.migrate.is_empty() && decision.actions.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "# plan at {:.2} s ({}): {}",
        decision.at_s,
        if decision.apply {
            "applied"
        } else {
            "not applied"
        },
        decision.reason
    );
    for m in &decision.migrate {
        let _ = writeln!(out, "MIGRATE {m}");
    }
    for a in &decision.actions {
        let _ = writeln!(out, "{a}");
    }
    let _ = out.flush();
}

/// Appends `value` to the log as one JSON line, with the wall-clock time (`unix_s`) beside
/// the controller's own clock (`at_s`), so that other programs can place it on theirs.
fn write_log(log: &mut Option<std::fs::File>, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(file) = log {
        let mut value = serde_json::to_value(value)?;
        if let Some(object) = value.as_object_mut() {
            let unix_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            object.insert("unix_s".into(), unix_s.into());
        }
        writeln!(file, "{}", serde_json::to_string(&value)?)?;
        file.flush()?;
    }
    Ok(())
}

fn fingerprint(config: &Configuration) -> u64 {
    let mut h = DefaultHasher::new();
    config.mapping.hash(&mut h);
    config.links.hash(&mut h);
    h.finish()
}

fn load_topology(path: &Path) -> anyhow::Result<Topology> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(vnetd::cli::load(&path.display().to_string(), &text)?)
}

fn solver_of(kind: SolverKind) -> Box<dyn solve::Solver> {
    match kind {
        SolverKind::Greedy => Box::new(solve::Greedy),
        // Fewer route variables and roundings than the library's default, so that a decision
        // over all-to-all demands on 8 hosts takes seconds, not minutes: two-hop routes only
        // where no direct edge exists (the Proxy's star is one), 8 roundings.
        SolverKind::Lp => Box::new(solve::LpRounding {
            two_hop_limit: 0,
            roundings: 8,
            time_limit_s: 20.0,
            ..solve::LpRounding::default()
        }),
        SolverKind::Exact => Box::new(solve::Exact::default()),
    }
}

fn objective_of(kind: ObjectiveKind) -> Box<dyn objective::Objective> {
    match kind {
        ObjectiveKind::Residual => Box::new(objective::ResidualBottleneck),
        ObjectiveKind::TightFit => Box::new(objective::TightFit),
        ObjectiveKind::SingleHop => Box::new(objective::SingleHop),
    }
}

fn solver_name(kind: SolverKind) -> &'static str {
    match kind {
        SolverKind::Greedy => "greedy",
        SolverKind::Lp => "lp",
        SolverKind::Exact => "exact",
    }
}

fn objective_name(kind: ObjectiveKind) -> &'static str {
    match kind {
        ObjectiveKind::Residual => "residual-bottleneck",
        ObjectiveKind::TightFit => "tight-fit",
        ObjectiveKind::SingleHop => "single-hop",
    }
}

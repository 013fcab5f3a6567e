//! `bench fidelity`: does the testbed behave as its scenario says?
//!
//! For each scenario it brings the testbed up in `direct` mode and measures, against the
//! predictions of [`crate::testbed::model`]:
//! 1. every link of the scenario (access links and site links), between the two underlay nodes
//!    whose path makes that link its bottleneck (nearest such pair): the ping RTT (on links whose
//!    configured RTT is at least 1 ms) and the TCP goodput of one iperf3 flow;
//! 2. `patterns` all-to-all and ring on every guest: the mean iteration time (`total_s` over the
//!    iterations: ranks drift apart, so the BSP program's pace is its total time, not a maximum
//!    over ranks per iteration), with messages sized for iterations of a few seconds;
//! 3. the machine's CPU use during each patterns run (from `/proc/stat`); the headline is the
//!    busiest of them.
//!
//! Each link measurement and each patterns run is repeated; the tables show the median and the
//! spread (min–max), and the ratios are of medians.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::common::{machine_ticks, on, output, ping_rtts_us, spread, Runs};
use crate::patterns::topology::{Graph, Topology};
use crate::scenario::Scenario;
use crate::testbed::model::Underlay;
use crate::testbed::{self, Mode, NodeKind};

/// What to measure, and how often.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scenario files.
    pub scenarios: Vec<PathBuf>,
    /// Repetitions of each link measurement and each patterns run.
    pub repeat: usize,
    /// Seconds of each iperf3 measurement (after one second of warm-up that is not counted).
    pub iperf_seconds: u32,
    /// Iterations of each patterns run.
    pub iterations: u64,
    /// Predicted seconds per patterns iteration the message size is chosen for.
    pub target_iteration_s: f64,
    /// Measure the links (RTT and rate); without it only patterns runs.
    pub links: bool,
}

/// Median and spread of some samples.
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(xs: &[f64]) -> Stat {
        let (median, min, max) = spread(xs);
        Stat { median, min, max }
    }
}

/// Ping RTT samples in ms from `from` to `ip`, the first (ARP) dropped.
fn ping(run: &str, from: &str, ip: &str) -> Result<Vec<f64>> {
    let text = output(
        on(
            run,
            from,
            &["ping", "-n", "-c", "21", "-i", "0.05", "-W", "2", ip],
        )?,
        "ping",
    )?;
    let samples: Vec<f64> = ping_rtts_us(&text)
        .into_iter()
        .map(|us| us / 1e3)
        .skip(1)
        .collect();
    if samples.len() < 10 {
        bail!("ping {from} -> {ip}: only {} replies", samples.len());
    }
    Ok(samples)
}

/// TCP goodput in bit/s of one iperf3 flow from `from` to `to` (`ip`).
fn iperf(run: &str, from: &str, to: &str, ip: &str, seconds: u32) -> Result<f64> {
    let mut server: Child = on(run, to, &["iperf3", "-s", "-p", "5299"])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start iperf3 server")?;
    let secs = seconds.to_string();
    let start = Instant::now();
    let attempt = || -> Result<f64> {
        let mut c = on(
            run,
            from,
            &[
                "iperf3", "-c", ip, "-p", "5299", "-t", &secs, "-O", "1", "-J",
            ],
        )?;
        let out = c.output().context("run iperf3 client")?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 JSON")?;
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .with_context(|| {
                format!(
                    "iperf3 {from} -> {to}: {}",
                    v["error"].as_str().unwrap_or("no result")
                )
            })
    };
    let result = loop {
        match attempt() {
            // The server may not be listening yet.
            Err(_) if start.elapsed() < Duration::from_secs(3) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            result => break result,
        }
    };
    // The server is not trusted to exit by itself (`iperf3 -s -1` was seen to hang).
    let _ = server.kill();
    let _ = server.wait();
    result
}

#[allow(clippy::cast_precision_loss)]
fn rate_f64(bps: u64) -> f64 {
    bps as f64
}

fn fmt_mbit(bps: f64) -> String {
    format!("{:.3}", bps / 1e6)
}

/// Runs the benchmark; prints tables and returns the headline figures.
///
/// # Errors
/// If a scenario cannot be brought up or a measurement fails.
pub fn run(opts: &Options) -> Result<serde_json::Value> {
    let mut rtt_ratios = Vec::new();
    let mut rate_ratios = Vec::new();
    let mut patterns_ratios: Vec<f64> = Vec::new();
    let mut cpu_busiest: f64 = 0.0;
    let mut per_scenario = Vec::new();
    for file in &opts.scenarios {
        let scenario = Scenario::load(file)?;
        let run = "fidelity";
        eprintln!("bench fidelity: bringing up {} ...", file.display());
        let state = testbed::up(file, Some(run), Mode::Direct)?;
        let _guard = Runs(vec![run.to_string()]);
        let u = Underlay::new(&scenario, &state.plan);
        let underlay: Vec<(String, String)> = state
            .plan
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Host | NodeKind::Proxy))
            .filter_map(|n| Some((n.name.clone(), n.ip?.to_string())))
            .collect();

        println!(
            "\n== {} (rate scale {}: rates below are scaled) ==",
            scenario.name, scenario.rate_scale
        );
        if opts.links {
            println!(
                "{:<24} {:<16} {:>9} {:>9} {:>19} {:>6} {:>10} {:>10} {:>21} {:>6}",
                "link",
                "measured between",
                "rate",
                "RTT cfg",
                "RTT ms p50 [min-max]",
                "ratio",
                "goodput",
                "predicted",
                "Mbit/s p50 [min-max]",
                "ratio"
            );
        }
        for (w, wire) in state
            .plan
            .wires
            .iter()
            .enumerate()
            .filter(|(_, w)| w.emulated)
        {
            let Some(shape) = wire.shape.filter(|_| opts.links) else {
                continue;
            };
            // The nearest pair of underlay nodes whose path has this wire as its bottleneck.
            let mut best: Option<((bool, usize), usize, usize)> = None;
            for (i, a) in underlay.iter().enumerate() {
                for (j, b) in underlay.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let path = u.path(&a.0, &b.0);
                    if !path.iter().any(|h| h.0 == w) {
                        continue;
                    }
                    let key = (u.bottleneck(&path) != shape.rate_bps, path.len());
                    if best.is_none_or(|(k, _, _)| key < k) {
                        best = Some((key, i, j));
                    }
                }
            }
            let Some((_, i, j)) = best else { continue };
            let (a, b) = (&underlay[i], &underlay[j]);
            let path = u.path(&a.0, &b.0);
            eprintln!("bench fidelity: {} ({} -> {})", wire.name, a.0, b.0);
            let rtt_cell = if 2 * shape.delay >= Duration::from_millis(1) {
                let predicted = u.rtt(&path, 98).as_secs_f64() * 1e3;
                let mut medians = Vec::new();
                for _ in 0..opts.repeat {
                    medians.push(Stat::of(&ping(run, &a.0, &b.1)?).median);
                }
                let s = Stat::of(&medians);
                let ratio = s.median / predicted;
                rtt_ratios.push(ratio);
                (
                    format!("{predicted:.3}"),
                    format!("{:.3} [{:.3}-{:.3}]", s.median, s.min, s.max),
                    format!("{ratio:.3}"),
                )
            } else {
                ("<1ms".into(), "-".into(), "-".into())
            };
            let predicted = u.goodput(&path);
            let mut rates = Vec::new();
            for _ in 0..opts.repeat {
                rates.push(iperf(run, &a.0, &b.0, &b.1, opts.iperf_seconds)?);
            }
            let s = Stat::of(&rates);
            let ratio = s.median / predicted;
            rate_ratios.push(ratio);
            println!(
                "{:<24} {:<16} {:>9} {:>9} {:>19} {:>6} {:>10} {:>10} {:>21} {:>6.3}",
                wire.name,
                format!("{}>{}", a.0, b.0),
                fmt_mbit(rate_f64(shape.rate_bps)),
                rtt_cell.0,
                rtt_cell.1,
                rtt_cell.2,
                fmt_mbit(s.median),
                fmt_mbit(predicted),
                format!(
                    "{} [{}-{}]",
                    fmt_mbit(s.median),
                    fmt_mbit(s.min),
                    fmt_mbit(s.max)
                ),
                ratio
            );
        }

        // Patterns in direct mode against the model.
        let guests: Vec<(String, String)> = scenario
            .guests
            .iter()
            .map(|g| (g.name.clone(), scenario.hosts[g.host].name.clone()))
            .collect();
        let n = guests.len();
        println!(
            "\n{:<12} {:>9} {:>6} {:>12} {:>26} {:>7} {:>10}",
            "patterns",
            "size KiB",
            "iters",
            "predicted s",
            "measured s p50 [min-max]",
            "ratio",
            "CPU busy %"
        );
        let mut rows = Vec::new();
        for topo in ["all-to-all", "ring"] {
            let t: Topology = topo.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let graph = Graph::new(&t, n).map_err(|e| anyhow::anyhow!("{e}"))?;
            let messages: Vec<(String, String)> = (0..n)
                .flat_map(|r| {
                    graph
                        .neighbours(r)
                        .iter()
                        .map(move |&p| (r, p))
                        .collect::<Vec<_>>()
                })
                .map(|(r, p)| (guests[r].1.clone(), guests[p].1.clone()))
                .collect();
            // Message size for a predicted iteration of about `target_iteration_s`.
            let per_kib = u.iteration(&messages, 1024).as_secs_f64();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let kib = ((opts.target_iteration_s / per_kib) as u64).clamp(8, 4096);
            let predicted = u.iteration(&messages, kib * 1024).as_secs_f64();
            let args: Vec<String> = [
                "--topology",
                topo,
                "--op",
                "exchange",
                "--size",
                &format!("{kib}KiB"),
                "--iterations",
                &opts.iterations.to_string(),
            ]
            .iter()
            .map(ToString::to_string)
            .collect();
            let mut measured = Vec::new();
            let mut busy_max = 0.0f64;
            for _ in 0..opts.repeat {
                let before = machine_ticks()?;
                let summary = testbed::run_patterns(run, None, &args, Duration::from_secs(900))?;
                let after = machine_ticks()?;
                #[allow(clippy::cast_precision_loss)]
                let busy = 100.0 * (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64;
                busy_max = busy_max.max(busy);
                #[allow(clippy::cast_precision_loss)]
                measured.push(
                    summary["total_s"].as_f64().context("summary total_s")?
                        / opts.iterations as f64,
                );
            }
            let s = Stat::of(&measured);
            let ratio = s.median / predicted;
            patterns_ratios.push(ratio);
            cpu_busiest = cpu_busiest.max(busy_max);
            println!(
                "{topo:<12} {kib:>9} {:>6} {predicted:>12.3} {:>26} {ratio:>7.3} {busy_max:>10.1}",
                opts.iterations,
                format!("{:.3} [{:.3}-{:.3}]", s.median, s.min, s.max)
            );
            rows.push(json!({"topology": topo, "size_kib": kib, "predicted_s": predicted, "measured_s": s.median, "measured_s_min": s.min, "measured_s_max": s.max, "ratio": ratio, "cpu_busy_pct": busy_max}));
        }
        per_scenario.push(json!({"scenario": scenario.name, "patterns": rows}));
    }
    let fold = |v: &[f64], f: fn(f64, f64) -> f64, init: f64| v.iter().copied().fold(init, f);
    // The patterns figure is the run farthest from its prediction.
    let patterns_ratio = patterns_ratios
        .iter()
        .copied()
        .max_by(|a, b| (a - 1.0).abs().total_cmp(&(b - 1.0).abs()));
    Ok(json!({
        "rtt_ratio_min": fold(&rtt_ratios, f64::min, f64::INFINITY),
        "rtt_ratio_max": fold(&rtt_ratios, f64::max, 0.0),
        "rate_ratio_min": fold(&rate_ratios, f64::min, f64::INFINITY),
        "rate_ratio_max": fold(&rate_ratios, f64::max, 0.0),
        "patterns_ratio": patterns_ratio,
        "cpu_busiest_pct": cpu_busiest,
        "scenarios": per_scenario,
    }))
}

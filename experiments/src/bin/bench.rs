//! `bench`: the project's benchmarks. Each prints readable tables, then as its last stdout line
//! one JSON object of its headline figures.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use experiments::bench::{dataplane, fidelity, setup, vttif};
use experiments::linkemu::accuracy::{self, Config, MeasureOptions};

/// Benchmarks of the testbed and the overlay.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure every emulated link (RTT, TCP rate) and patterns against the scenario's prediction.
    Fidelity {
        /// Scenario file; repeat to measure several (figures are then over all of them).
        #[arg(long = "scenario", required = true)]
        scenarios: Vec<PathBuf>,
        /// Repetitions of each link measurement and each patterns run.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Seconds of each iperf3 measurement (after one uncounted second).
        #[arg(long, default_value_t = 3)]
        iperf_seconds: u32,
        /// Iterations of each patterns run.
        #[arg(long, default_value_t = 4)]
        iterations: u64,
        /// Predicted seconds per patterns iteration, which sets the message size.
        #[arg(long, default_value_t = 4.0)]
        iteration_s: f64,
        /// Skip the link measurements: patterns only.
        #[arg(long)]
        no_links: bool,
    },
    /// VTTIF live at the Proxy, with its default parameters: detection time after a topology
    /// switch, the fastest alternation it follows before damping, spurious changes under
    /// steady load, and what counting costs the data path (VTTIF on against off).
    Vttif {
        /// Scenario of the topology parts (default: scenarios/vttif.toml).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Topology switches to time.
        #[arg(long, default_value_t = 6)]
        switches: usize,
        /// Seconds of steady load in which to count spurious changes.
        #[arg(long, default_value_t = 300.0)]
        steady_s: f64,
        /// Repeats of the overhead measurement (VTTIF on and off, interleaved).
        #[arg(long, default_value_t = 5)]
        overhead_repeat: usize,
        /// Counted seconds of each overhead flow.
        #[arg(long, default_value_t = 5)]
        overhead_seconds: u32,
    },
    /// Time the overlay's set-up in testbed runs of vnet mode: the star, all-to-all fast
    /// paths with their rules, and one primitive (against the papers' figures).
    Setup {
        /// Scenario files, one per size (default: single-cluster, 8 hosts, and cluster-28).
        #[arg(long = "scenario")]
        scenarios: Vec<PathBuf>,
        /// Repetitions of the star and fast-path measurements.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Primitives to time per size.
        #[arg(long, default_value_t = 1000)]
        primitives: usize,
    },
    /// The data path between two guests on different hosts over unshaped links: TCP throughput,
    /// ping RTT and CPU time per GB for direct, vxlan, tinc and vnetd (via the Proxy, UDP and
    /// TCP fast paths), all at the same underlay MTU.
    Dataplane {
        /// Scenario file (two hosts with a guest each; default: scenarios/dataplane.toml).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Measurements of each configuration (interleaved).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Counted seconds of each iperf3 flow.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Uncounted seconds at the start of each flow.
        #[arg(long, default_value_t = 1)]
        omit: u32,
        /// Pings per measurement.
        #[arg(long, default_value_t = 200)]
        pings: usize,
        /// Milliseconds between pings.
        #[arg(long, default_value_t = 10.0)]
        ping_interval_ms: f64,
        /// Measure only these configurations (comma-separated names from the table, e.g.
        /// `vxlan,vnetd-udp`); all by default.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Measure the link emulator alone between two namespaces: RTT against configured delay,
    /// single-flow TCP goodput against rate, its timing lateness and CPU cost.
    Linkemu {
        /// Repetitions of each configuration.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Configurations as RATE_MBIT:DELAY_MS[:JITTER_MS], comma-separated (default: 10, 50
        /// and 100 Mbit/s at 1 and 30 ms, and 50 Mbit/s at 30 ± 5 ms).
        #[arg(long, value_delimiter = ',')]
        configs: Vec<String>,
        /// Busy threads to run alongside, to see the emulator under CPU load.
        #[arg(long, default_value_t = 0)]
        hogs: usize,
    },
}

fn parse_config(s: &str) -> Result<Config> {
    let f: Vec<&str> = s.split(':').collect();
    let num = |i: usize| -> Result<f64> {
        f.get(i).map_or(Ok(0.0), |x| {
            x.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("`{s}`: `{x}` is not a number"))
        })
    };
    if f.len() < 2 || f.len() > 3 {
        anyhow::bail!("`{s}`: expected RATE_MBIT:DELAY_MS[:JITTER_MS]");
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rate = num(0)? as u64;
    let ms = |v: f64| std::time::Duration::from_secs_f64(v / 1e3);
    Ok(Config::new(rate, ms(num(1)?), ms(num(2)?)))
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let figures = match cli.cmd {
        Cmd::Fidelity {
            scenarios,
            repeat,
            iperf_seconds,
            iterations,
            iteration_s,
            no_links,
        } => fidelity::run(&fidelity::Options {
            scenarios,
            repeat: repeat.max(1),
            iperf_seconds: iperf_seconds.max(1),
            iterations: iterations.max(1),
            target_iteration_s: iteration_s,
            links: !no_links,
        })?,
        Cmd::Vttif {
            scenario,
            switches,
            steady_s,
            overhead_repeat,
            overhead_seconds,
        } => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
            vttif::run(&vttif::Options {
                scenario: scenario.unwrap_or_else(|| dir.join("vttif.toml")),
                dataplane_scenario: dir.join("dataplane.toml"),
                switches: switches.max(1),
                steady_s: steady_s.max(1.0),
                overhead_repeat: overhead_repeat.max(1),
                overhead_seconds: overhead_seconds.max(1),
            })?
        }
        Cmd::Setup {
            scenarios,
            repeat,
            primitives,
        } => {
            let scenarios = if scenarios.is_empty() {
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
                vec![dir.join("single-cluster.toml"), dir.join("cluster-28.toml")]
            } else {
                scenarios
            };
            setup::run(&setup::Options {
                scenarios,
                repeat: repeat.max(1),
                primitives: primitives.max(1),
            })?
        }
        Cmd::Dataplane {
            scenario,
            repeat,
            seconds,
            omit,
            pings,
            ping_interval_ms,
            only,
        } => dataplane::run(&dataplane::Options {
            scenario: scenario.unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/dataplane.toml")
            }),
            repeat: repeat.max(1),
            seconds: seconds.max(1),
            omit,
            pings: pings.max(1),
            ping_interval_ms: ping_interval_ms.max(1.0),
            only: only
                .iter()
                .map(|n| dataplane::Config::from_name(n))
                .collect::<Result<_>>()?,
        })?,
        Cmd::Linkemu {
            repeat,
            configs,
            hogs,
        } => {
            let mut opts = MeasureOptions {
                repeats: repeat.max(1),
                cpu_hogs: hogs,
                ..MeasureOptions::default()
            };
            if !configs.is_empty() {
                opts.configs = configs
                    .iter()
                    .map(|c| parse_config(c))
                    .collect::<Result<_>>()?;
            }
            let all = accuracy::measure(&opts)?;
            let rows = all["configs"].as_array().cloned().unwrap_or_default();
            let fold = |key: &str, f: fn(f64, f64) -> f64, init: f64| {
                rows.iter()
                    .filter_map(|r| r["summary"][key].as_f64())
                    .fold(init, f)
            };
            serde_json::json!({
                "rtt_error_ms_max": fold("rtt_error_ms", f64::max, f64::NEG_INFINITY),
                "goodput_ratio_min": fold("goodput_ratio", f64::min, f64::INFINITY),
                "lateness_p99_us_max": rows.iter().filter_map(|r| r["summary"]["lateness_p99_us"]["median"].as_f64()).fold(0.0, f64::max),
                "cpu_core_pct_max": rows.iter().filter_map(|r| r["summary"]["cpu_core_percent"]["median"].as_f64()).fold(0.0, f64::max),
            })
        }
    };
    println!("{figures}");
    Ok(())
}

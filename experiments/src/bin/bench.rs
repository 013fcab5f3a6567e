//! `bench`: the project's benchmarks. Each prints readable tables, then as its last stdout line
//! one JSON object of its headline figures.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use experiments::bench::wren;
use experiments::bench::{adapt, dataplane, fidelity, links, setup, solvers, vttif};
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
    /// VADAPT against the star and no overlay: patterns on 8 guests, per scenario and
    /// topology, on the star, with the controller, and in direct mode; speedup, gap to direct,
    /// settle times and the actions taken (parameters: experiments/src/bench/adapt.rs).
    Adapt {
        /// Scenario file; repeat for several (default: single-cluster and wan).
        #[arg(long = "scenario")]
        scenarios: Vec<PathBuf>,
        /// patterns topology; repeat for several (default: all-to-all, ring, mesh:4x2).
        #[arg(long = "topology")]
        topologies: Vec<String>,
        /// The demo (`cargo xtask demo`): one scenario (default wan) and topology (default
        /// all-to-all), on the star then with VADAPT, with a progress bar and an SVG report.
        #[arg(long)]
        demo: bool,
        /// Where the demo writes its SVG report.
        #[arg(long, default_value = "target/vadapt-demo.svg", requires = "demo")]
        report: PathBuf,
        /// Seed 002 Fig. 11 instead: run time as the k heaviest inferred fast-path links are
        /// added to the star, k = 0..all, on one scenario (default single-cluster) and
        /// topology (default all-to-all), as a table and a plot (`--plot`).
        #[arg(long, conflicts_with = "demo")]
        links: bool,
        /// Where `--links` writes its SVG plot.
        #[arg(long, default_value = "target/vadapt-links.svg", requires = "links")]
        plot: PathBuf,
        /// Runs of each case (with `--links`: sweeps); the figures are the medians over them.
        #[arg(long, default_value_t = 1, conflicts_with = "demo")]
        repeat: usize,
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
    /// Wren against known truth: links emulated at known rates and delays, with and without
    /// cross traffic of known rate, patterns in the guests; per case the estimate, its error
    /// and the time to the first estimate; then probe bytes (the link's counters with Wren on
    /// against off) and Wren's CPU (experiments/src/bench/wren.rs).
    Wren {
        /// Template scenario (default: scenarios/wren.toml).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Link rates before the scenario's rate_scale, Mbit/s.
        #[arg(long, value_delimiter = ',', default_values_t = [10.0, 50.0, 100.0])]
        rates: Vec<f64>,
        /// One-way delays, ms.
        #[arg(long, value_delimiter = ',', default_values_t = [1.0, 30.0])]
        delays: Vec<f64>,
        /// Cross traffic as fractions of the link's rate.
        #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.5])]
        cross: Vec<f64>,
        /// Seconds of application traffic per phase (at least 5).
        #[arg(long, default_value_t = 8.0)]
        traffic_s: f64,
        /// Wren off/on pairs of the probe-bytes and CPU runs.
        #[arg(long, default_value_t = 2)]
        overhead_repeat: usize,
        /// patterns iterations of each probe-bytes and CPU run.
        #[arg(long, default_value_t = 40)]
        overhead_iterations: u64,
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
    /// VADAPT's solvers (greedy, LP + rounding, exact) on seeded random instances: solve time
    /// at 8 to 512 VMs and the gap to the exact optimum on small instances.
    Solvers {
        /// Timed solves of each instance (greedy and exact).
        #[arg(long, default_value_t = 10)]
        repeat: usize,
        /// Instances per size in the timing table.
        #[arg(long, default_value_t = 5)]
        instances: usize,
        /// Small instances for the gap to the optimum.
        #[arg(long, default_value_t = 100)]
        small: usize,
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
        Cmd::Adapt {
            scenarios,
            topologies,
            demo,
            report,
            links,
            plot,
            repeat,
        } => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
            // The one scenario (default `default`) and topology (default all-to-all) of `what`.
            let one = |default: &str, what: &str| -> Result<(PathBuf, String)> {
                if scenarios.len() > 1 || topologies.len() > 1 {
                    anyhow::bail!("{what} runs one scenario and one topology");
                }
                Ok((
                    scenarios
                        .first()
                        .cloned()
                        .unwrap_or_else(|| dir.join(default)),
                    topologies
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "all-to-all".into()),
                ))
            };
            if links {
                let (scenario, topology) = one("single-cluster.toml", "--links")?;
                links::run(&links::Options {
                    scenario,
                    topology,
                    plot,
                    repeat,
                })?
            } else if demo {
                let (scenario, topology) = one("wan.toml", "the demo")?;
                adapt::demo(&adapt::DemoOptions {
                    scenario,
                    topology,
                    report,
                })?
            } else {
                adapt::run(&adapt::Options {
                    scenarios: if scenarios.is_empty() {
                        vec![dir.join("single-cluster.toml"), dir.join("wan.toml")]
                    } else {
                        scenarios
                    },
                    topologies: if topologies.is_empty() {
                        ["all-to-all", "ring", "mesh:4x2"]
                            .map(String::from)
                            .to_vec()
                    } else {
                        topologies
                    },
                    repeat,
                })?
            }
        }
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
        Cmd::Wren {
            scenario,
            rates,
            delays,
            cross,
            traffic_s,
            overhead_repeat,
            overhead_iterations,
        } => wren::run(&wren::Options {
            scenario: scenario.unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/wren.toml")
            }),
            rates_mbit: rates,
            delays_ms: delays,
            cross,
            traffic_s,
            overhead_repeat,
            overhead_iterations,
        })?,
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
        Cmd::Solvers {
            repeat,
            instances,
            small,
        } => solvers::run(&solvers::Options {
            repeat: repeat.max(1),
            instances: instances.max(1),
            small: small.max(1),
            ..solvers::Options::default()
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

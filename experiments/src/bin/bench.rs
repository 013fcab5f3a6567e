//! `bench`: the project's benchmarks. Each prints readable tables, then as its last stdout line
//! one JSON object of its headline figures.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use experiments::bench::fidelity;

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
        /// Repetitions of each link measurement.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Seconds of each iperf3 measurement (after one uncounted second).
        #[arg(long, default_value_t = 3)]
        iperf_seconds: u32,
        /// Iterations of each patterns run.
        #[arg(long, default_value_t = 6)]
        iterations: u64,
        /// Predicted seconds per patterns iteration, which sets the message size.
        #[arg(long, default_value_t = 1.0)]
        iteration_s: f64,
    },
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
        } => fidelity::run(&fidelity::Options {
            scenarios,
            repeat: repeat.max(1),
            iperf_seconds: iperf_seconds.max(1),
            iterations: iterations.max(1),
            target_iteration_s: iteration_s,
        })?,
    };
    println!("{figures}");
    Ok(())
}

//! `patterns`: one rank of the synthetic BSP benchmark (see `experiments::patterns`).
//!
//! Start one process per rank with the same `--peers` list and settings and a distinct
//! `--rank`. Each rank prints its JSON report as one line on stdout; rank 0 then prints the
//! summary of all ranks as its last line. Progress and errors go to stderr. Exit status: 0 on
//! success, 1 on a run-time error, 2 on bad arguments.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use experiments::patterns::{self, Config, Op, PeerAddr, Schedule, Topology, Work};

/// One rank of the patterns BSP benchmark: iterations of compute, then communication
/// (neighbour exchange, reduction to rank 0 or all-to-all) on an application topology.
#[derive(Debug, Parser)]
#[command(name = "patterns", version)]
struct Args {
    /// This process's rank, an index into --peers.
    #[arg(long)]
    rank: usize,

    /// Every rank's address (HOST or HOST:PORT, default port 7400), comma-separated, by rank;
    /// rank i listens on the i-th.
    #[arg(long, required = true, value_delimiter = ',')]
    peers: Vec<PeerAddr>,

    /// Listen on this address instead of this rank's --peers entry (e.g. 0.0.0.0:7400).
    #[arg(long, value_name = "ADDR")]
    listen: Option<PeerAddr>,

    /// Topology of every iteration: bus, ring, mesh:AxB.., torus:AxB.., hypercube, tree,
    /// all-to-all.
    #[arg(long, value_name = "T", default_value = "ring")]
    topology: Topology,

    /// Topology per iteration instead of --topology: phases "0:ring,50:all-to-all" or an
    /// alternation "alternate:ring,all-to-all:10" (switch every 10 iterations).
    #[arg(long, value_name = "SPEC", conflicts_with = "topology")]
    schedule: Option<Schedule>,

    /// Communication operation of every iteration.
    #[arg(long, value_enum, default_value_t = Op::Exchange)]
    op: Op,

    /// Message payload size: bytes, or with a unit (KiB/K, MiB/M, GiB/G; kB, MB, GB).
    #[arg(long, value_name = "BYTES", default_value = "64KiB")]
    #[arg(value_parser = patterns::parse_size)]
    size: usize,

    /// Number of iterations (at least 1).
    #[arg(long, value_name = "N", default_value_t = 100)]
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    iterations: u64,

    /// Compute work per iteration, in work units (1 unit = 1e6 rounds of an integer kernel;
    /// fractions allowed). Default: no compute.
    #[arg(long, value_name = "WORK", value_parser = non_negative)]
    compute: Option<f64>,

    /// Compute work per iteration as work units per KiB this rank sends in that iteration.
    #[arg(long, value_name = "R", value_parser = non_negative, conflicts_with = "compute")]
    ratio: Option<f64>,

    /// Also write the stdout JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Seconds to keep trying to bring all connections up.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    connect_timeout: Duration,
}

impl Args {
    fn into_config(self) -> Config {
        let work = match (self.compute, self.ratio) {
            (_, Some(ratio)) => Work::PerKib(ratio),
            (units, None) => Work::Fixed(units.unwrap_or(0.0)),
        };
        Config {
            rank: self.rank,
            peers: self.peers,
            listen: self.listen,
            schedule: self
                .schedule
                .unwrap_or_else(|| Schedule::constant(self.topology)),
            op: self.op,
            size: self.size,
            iterations: self.iterations,
            work,
            connect_timeout: self.connect_timeout,
        }
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a finite number >= 0")),
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    non_negative(s)
        .ok()
        .filter(|&x| x > 0.0)
        .and_then(|x| Duration::try_from_secs_f64(x).ok())
        .ok_or_else(|| format!("`{s}` is not a positive number of seconds"))
}

/// Runs the rank and prints its output lines.
fn run(args: Args) -> Result<()> {
    let report_file = args.report.clone();
    let outcome = patterns::run(&args.into_config())?;
    let mut lines = serde_json::to_string(&outcome.report).context("cannot encode the report")?;
    lines.push('\n');
    if let Some(summary) = &outcome.summary {
        lines += &serde_json::to_string(summary).context("cannot encode the summary")?;
        lines.push('\n');
    }
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    if let Some(path) = report_file {
        fs::write(&path, lines).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// clap's message as one line: its text up to the usage hint, whitespace collapsed.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let text = text.split("\n\nUsage:").next().unwrap_or_default();
    let text = text
        .split("\n\nFor more information")
        .next()
        .unwrap_or_default();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help or --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("patterns: error: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patterns: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let base = [
            "patterns",
            "--rank",
            "1",
            "--peers",
            "10.0.0.1,10.0.0.2:9000",
        ];
        Args::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap().into_config();
        assert_eq!(config.rank, 1);
        assert_eq!(
            config.peers,
            [
                "10.0.0.1:7400".parse().unwrap(),
                PeerAddr::new("10.0.0.2", 9000)
            ]
        );
        assert_eq!(config.schedule, Schedule::constant(Topology::Ring));
        assert_eq!(config.op, Op::Exchange);
        assert_eq!(config.size, 65536);
        assert_eq!(config.iterations, 100);
        assert_eq!(config.work, Work::Fixed(0.0));
        assert_eq!(config.connect_timeout, Duration::from_secs(30));
    }

    #[test]
    fn full_command_line() {
        let config = parse(&[
            "--schedule",
            "0:ring,50:all-to-all",
            "--op",
            "all-to-all",
            "--size",
            "1MiB",
            "--iterations",
            "80",
            "--ratio",
            "0.25",
            "--connect-timeout",
            "2.5",
        ])
        .unwrap()
        .into_config();
        assert_eq!(config.schedule.to_string(), "0:ring,50:all-to-all");
        assert_eq!(config.op, Op::AllToAll);
        assert_eq!(config.size, 1 << 20);
        assert_eq!(config.work, Work::PerKib(0.25));
        assert_eq!(config.connect_timeout, Duration::from_millis(2500));
        let config = parse(&["--topology", "torus:2x1", "--compute", "3"])
            .unwrap()
            .into_config();
        assert_eq!(
            config.schedule,
            Schedule::constant(Topology::Torus(vec![2, 1]))
        );
        assert_eq!(config.work, Work::Fixed(3.0));
    }

    #[test]
    fn bad_arguments_give_one_line() {
        for bad in [
            &["--topology", "star"][..],
            &["--size", "lots"],
            &["--iterations", "0"],
            &["--compute", "-1"],
            &["--compute", "1", "--ratio", "1"],
            &["--topology", "ring", "--schedule", "ring"],
            &["--connect-timeout", "0"],
            &["--op", "scatter"],
        ] {
            let e = parse(bad).unwrap_err();
            let line = one_line(&e);
            assert!(!line.is_empty() && !line.contains('\n'), "{bad:?}: {line}");
        }
        let e = Args::try_parse_from(["patterns"]).unwrap_err();
        let line = one_line(&e);
        assert!(
            line.contains("--rank") && line.contains("--peers"),
            "{line}"
        );
    }
}

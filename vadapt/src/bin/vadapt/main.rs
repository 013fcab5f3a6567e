//! `vadapt`: the adaptation controller. It runs beside the Proxy, follows VTTIF's change stream,
//! re-solves the adaptation problem, and applies the plans worth applying through vnetd's
//! control API (and a migration command). See `controller.rs` for the loop and the crate's
//! documentation for the parts.

mod controller;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use vnetd::model::Name;

use vadapt::decide::Policy;

/// The adaptation controller of the VNET overlay.
///
/// Follows VTTIF's inferred topology at the Proxy, solves for the VM placement, overlay links
/// and routes that best serve it, and applies a plan when its expected gain is worth its cost.
/// Every decision is logged with its reason (stderr, and JSON lines with --log).
#[derive(Debug, Parser)]
#[command(name = "vadapt", version)]
struct Cli {
    /// The overlay's key file (64 hexadecimal digits).
    #[arg(long, env = "VNET_KEY_FILE", value_name = "FILE")]
    key_file: PathBuf,
    /// Daemon addresses, in /etc/hosts format ("10.200.0.1 host1").
    #[arg(long = "hosts", env = "VNET_HOSTS", value_name = "FILE")]
    hosts_file: Option<PathBuf>,
    /// Seconds to wait for a daemon to answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// A topology file that declares the overlay's machines (e.g. the star `testbed up`
    /// writes); its links and rules are not used, the live ones are read.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// The machine that is the Proxy (where VTTIF runs).
    #[arg(long, value_name = "NAME", default_value = "proxy")]
    proxy: Name,
    /// The environment: machines, path priors and guests (JSON; `testbed adapt` writes it).
    #[arg(long, value_name = "FILE")]
    environment: PathBuf,
    /// The solver.
    #[arg(long, value_enum, default_value_t = SolverKind::Lp)]
    solver: SolverKind,
    /// The objective.
    #[arg(long, value_enum, default_value_t = ObjectiveKind::Residual)]
    objective: ObjectiveKind,
    /// Only print the plans; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Decide once on the current topology, then exit.
    #[arg(long)]
    once: bool,
    /// Never migrate: only links and rules.
    #[arg(long)]
    no_migrate: bool,
    /// The command that migrates a VM, as separate words after the flag's `--`-free value,
    /// with `{vm}` (its name), `{mac}` and `{host}` (the destination) replaced; it must exit 0
    /// once the VM runs at the destination. Without it, plans with migrations are not applied.
    #[arg(long, value_name = "WORD", num_args = 1.., allow_hyphen_values = true)]
    migrate_command: Vec<String>,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Append every decision as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Least relative gain worth acting on.
    #[arg(long, default_value_t = Policy::default().min_gain)]
    min_gain: f64,
    /// Seconds the application is expected to run in all, counted from when its traffic is
    /// first seen, for weighing a plan's cost against what is left of the run; without it, the
    /// controller expects the run to last as long again as it has so far.
    #[arg(long)]
    horizon: Option<f64>,
    /// Seconds between two applied plans at least.
    #[arg(long, default_value_t = Policy::default().dwell_s)]
    dwell: f64,
    /// Seconds between two decisions while the topology does not change (measurements may).
    #[arg(long, default_value_t = 10.0)]
    reconsider: f64,
    /// Wren's collector (HOST:PORT of its HTTP, e.g. 10.200.0.9:9550): at each decision its
    /// matrix replaces the environment's priors where Wren has measured; when it does not
    /// answer (within 1 s) the decision uses the priors.
    #[arg(long, value_name = "ADDR", value_parser = parse_collector)]
    wren: Option<SocketAddr>,
}

/// A collector's address, `HOST:PORT` (a name is resolved once, at the start).
fn parse_collector(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}`: {e} (expected HOST:PORT)"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// Which solver.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SolverKind {
    /// The papers' greedy heuristics (MapVM + AdaptTopology).
    Greedy,
    /// The LP relaxation with rounding.
    Lp,
    /// The exact solver (small instances only).
    Exact,
}

/// Which objective.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ObjectiveKind {
    /// The sum of residual bottleneck bandwidths, maximised (the papers').
    Residual,
    /// Its tight-fit variant, minimised.
    TightFit,
    /// Every communicating pair at most one overlay hop apart.
    SingleHop,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match controller::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vadapt: {e:#}");
            ExitCode::FAILURE
        }
    }
}

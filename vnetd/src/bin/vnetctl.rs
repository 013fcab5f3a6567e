//! `vnetctl`: the control tool of the VNET overlay. This first part works on topology-language
//! files only (check, print, diff, route, star); the daemon and its control API do not exist
//! yet. The logic lives in [`vnetd::cli`]; this file reads files, prints and exits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vnetd::cli::{self, Daemon};
use vnetd::lang::Guest;
use vnetd::model::{Mac, Name, Topology};

/// Control tool of the vnetd layer-2 overlay (offline subcommands: they work on
/// topology-language files; the daemon is not built yet).
#[derive(Debug, Parser)]
#[command(name = "vnetctl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and check a topology file, then check it as a whole overlay.
    ///
    /// Syntax and semantic errors are printed as FILE:LINE:COL: message. Then every frame
    /// between every pair of guests is followed, with every link up and with each fast path
    /// down in turn, and every broadcast; loops, dead ends, misdeliveries and broadcast
    /// problems are printed one a line. Exits 1 on any error or problem, 0 with a one-line
    /// summary otherwise.
    Check {
        /// The topology-language file.
        file: PathBuf,
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME", default_value = "proxy")]
        proxy: Name,
    },
    /// Print a topology file in canonical form.
    Print {
        /// The topology-language file.
        file: PathBuf,
    },
    /// Print the primitives that turn CURRENT into DESIRED, as a program of the language.
    ///
    /// Daemons to start, stop or restart come first, as comments. Applied to CURRENT, the
    /// program gives DESIRED. Exits 0 whether or not the two differ; when they do not, prints
    /// a single comment line.
    Diff {
        /// The topology as it is.
        current: PathBuf,
        /// The topology as it should be.
        desired: PathBuf,
    },
    /// Print the hops a unicast frame from SRC-MAC to DST-MAC takes.
    ///
    /// The output reads e.g. `host1 --udp--> proxy --udp--> host2 -> port vm2`.
    Route {
        /// The topology-language file.
        file: PathBuf,
        /// The sender's MAC, e.g. 02:56:4e:00:00:01.
        #[arg(value_name = "SRC-MAC")]
        src: Mac,
        /// The receiver's MAC.
        #[arg(value_name = "DST-MAC")]
        dst: Mac,
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME", default_value = "proxy")]
        proxy: Name,
        /// A link to consider down, as its two machines joined by `-` (e.g. host1-host2);
        /// may be given several times.
        #[arg(long, value_name = "A-B")]
        down: Vec<String>,
    },
    /// Generate the star configuration (every host linked to the Proxy) in the language.
    Star {
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME")]
        proxy: Name,
        /// A host machine; give it once per host.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<Name>,
        /// A guest: its machine, its port there and its MAC; give it once per guest.
        #[arg(long = "guest", value_name = "HOST:PORT:MAC", value_parser = parse_guest)]
        guests: Vec<Guest>,
        /// The Proxy's port to the user's LAN (where frames for no guest go).
        #[arg(long, value_name = "NAME", default_value = "lan0")]
        lan_port: Name,
        /// The user every daemon runs as.
        #[arg(long, default_value = "root")]
        user: String,
        /// The control API port of every daemon.
        #[arg(long, default_value_t = 5400, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// Every daemon's interface to the underlay.
        #[arg(long, value_name = "NAME", default_value = "eth0")]
        interface: Name,
    },
}

fn parse_guest(given: &str) -> Result<Guest, cli::BadGuest> {
    cli::parse_guest(given)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn load(path: &Path) -> anyhow::Result<Topology> {
    let text = read(path)?;
    Ok(cli::load(&path.display().to_string(), &text)?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { file, proxy } => {
            let topology = load(&file)?;
            let report = cli::check(&topology, &proxy)?;
            print!("{}", report.text(&file.display().to_string()));
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Print { file } => {
            print!("{}", vnetd::lang::print(&load(&file)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { current, desired } => {
            let current = load(&current)?;
            let desired = load(&desired)?;
            print!("{}", cli::diff(&current, &desired));
            Ok(ExitCode::SUCCESS)
        }
        Command::Route {
            file,
            src,
            dst,
            proxy,
            down,
        } => {
            let topology = load(&file)?;
            let route = cli::route(&topology, &proxy, src, dst, &down)?;
            println!("{route}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Star {
            proxy,
            hosts,
            guests,
            lan_port,
            user,
            port,
            interface,
        } => {
            let daemon = Daemon {
                user,
                port,
                interface,
            };
            print!(
                "{}",
                cli::star(&proxy, &hosts, &guests, &lan_port, &daemon)?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // Errors in a file already start with FILE:LINE:COL.
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

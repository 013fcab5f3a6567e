//! `testbed`: build, inspect, use and remove emulated multi-site testbeds.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use experiments::linkemu;
use experiments::testbed::{self, Mode};

/// Emulated multi-site testbeds: hosts, guests, the Proxy and the user's machine as network
/// namespaces, joined by emulated links, each host in its own CPU cgroup.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a scenario (removing leftovers of an earlier run of the same name first).
    Up {
        /// Scenario file (TOML), e.g. experiments/scenarios/single-cluster.toml.
        scenario: PathBuf,
        /// Run name (default: the scenario's name).
        #[arg(long)]
        run: Option<String>,
        /// How guests reach each other and the user's LAN.
        #[arg(long, value_enum, default_value_t = Mode::Direct)]
        network: Mode,
        /// Keep the scenario's underlay MTU in vxlan mode instead of raising it to 1550: the
        /// VTEPs keep MTU 1500 and the kernel fragments their outer packets (other modes never
        /// raise it). Linux's bridged VXLAN then answers don't-fragment guest packets over 1450
        /// bytes with ICMP "fragmentation needed".
        #[arg(long)]
        keep_underlay_mtu: bool,
        /// One more argument for every vnetd of a vnet-mode run (repeat it for more), e.g.
        /// `--vnetd-arg=--vttif-window=2` or `--vnetd-arg=--no-offloads`.
        #[arg(long = "vnetd-arg", value_name = "ARG", allow_hyphen_values = true)]
        vnetd_args: Vec<String>,
    },
    /// Show a run's nodes and links.
    Status {
        /// Run name; without it, list the runs on this machine.
        name: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run a command on a node (host, guest, proxy, user or a site switch `sw-SITE`).
    Exec {
        /// Run name.
        name: String,
        /// Node name, e.g. vm3.
        node: String,
        /// Command and arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Run `vnetctl` against the overlay of a vnet-mode run: on the Proxy, which reaches every
    /// daemon, with the run's key and hosts files in VNET_KEY_FILE and VNET_HOSTS.
    ///
    /// The star that `up` applied is /run/testbed/RUN/vnet/star.vnet, e.g.
    /// `testbed vnetctl RUN -- route /run/testbed/RUN/vnet/star.vnet SRC-MAC DST-MAC`.
    Vnetctl {
        /// Run name.
        name: String,
        /// vnetctl's subcommand and arguments.
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// Live-migrate a guest of a vnet-mode run to another host (an emulation of a VM's
    /// migration): its memory's worth of bytes over the emulated path between the two hosts,
    /// then its NIC to the new host's vnetd and its processes to the new host's cgroup, while
    /// they run. Prints the copy time and the downtime (see the README, "Migration").
    Migrate {
        /// Run name.
        name: String,
        /// The guest, e.g. vm1.
        vm: String,
        /// Its new host, e.g. host2.
        host: String,
        /// The guest's memory instead of the scenario's (e.g. 64MiB), scaled by the
        /// scenario's rate_scale like the scenario's.
        #[arg(long, value_name = "SIZE", value_parser = experiments::scenario::parse_bytes)]
        memory: Option<u64>,
        /// Print the report as one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the adaptation controller (`vadapt`) on the Proxy of a vnet-mode run: writes the
    /// run's environment file (the scenario's machines, path priors and guests), then runs
    /// `vadapt` with the run's key, hosts file and star, migrating through `testbed migrate`.
    Adapt {
        /// Run name.
        name: String,
        /// The guests' memory instead of the scenario's (e.g. 32MiB), for the controller's
        /// costs and the migrations (scaled by the scenario's rate_scale, as `migrate` does).
        #[arg(long, value_name = "SIZE", value_parser = experiments::scenario::parse_bytes)]
        guest_memory: Option<u64>,
        /// Have the controller read Wren's measurements (`vadapt --wren`), starting Wren on
        /// the run unless it already runs (it keeps running afterwards, like `testbed wren
        /// RUN start`).
        #[arg(long)]
        wren: bool,
        /// More vadapt arguments (e.g. --dry-run, --once, --solver greedy, --log FILE).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Wren on a vnet-mode run: `start` (an agent on every host, the collector on the
    /// Proxy), `stop`, `status`, or `query` (`wrend query` on the Proxy; ARGS: `FROM TO`,
    /// `--json`, `--metrics`). See the README, "Wren".
    Wren {
        /// Run name.
        name: String,
        /// What to do.
        #[arg(value_enum)]
        action: WrenAction,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        /// For `start`: more wrend arguments (e.g. --batch-ms=500); for `query`: its arguments.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run `patterns` with one rank per guest; prints rank 0's JSON summary.
    Patterns {
        /// Run name.
        name: String,
        /// Number of ranks (the first N guests; default all).
        #[arg(short = 'n', long)]
        ranks: Option<usize>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Arguments for patterns (topology, op, size, iterations, ...).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run an MPI program (Open MPI) with one rank on each of the first N guests.
    Mpirun {
        /// Run name.
        name: String,
        /// Number of ranks.
        #[arg(short = 'n', long)]
        ranks: usize,
        /// Program and arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// (internal) Remote-shell agent for mpirun: `rsh RUN HOST COMMAND...`.
    #[command(hide = true)]
    Rsh {
        /// Run name.
        name: String,
        /// Options ssh would take, then the host, then the command words.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        words: Vec<String>,
    },
    /// Remove a run (or every run), leaving nothing behind.
    Down {
        /// Run name.
        name: Option<String>,
        /// Remove every run on this machine.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// (internal) Run one link emulator; prints "ready" once its TAP devices exist.
    #[command(hide = true)]
    Linkemu {
        /// The run it belongs to: it joins the run's link-emulator cgroup before anything else,
        /// so that `down` always finds it.
        #[arg(long)]
        run: String,
        /// The link, as JSON.
        #[arg(long)]
        spec: String,
    },
    /// (internal) Burn all CPU this cgroup allows, from a given time on.
    #[command(hide = true)]
    Hog {
        /// Seconds to wait before starting.
        #[arg(long, default_value_t = 0.0)]
        after: f64,
    },
}

/// `testbed wren` actions.
#[derive(Clone, Copy, clap::ValueEnum)]
enum WrenAction {
    Start,
    Stop,
    Status,
    Query,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("testbed: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Up {
            scenario,
            run,
            network,
            keep_underlay_mtu,
            vnetd_args,
        } => {
            let options = testbed::Options {
                keep_underlay_mtu,
                vnetd_args,
            };
            let state = testbed::up_with(&scenario, run.as_deref(), network, options)?;
            let guests = state
                .plan
                .nodes
                .iter()
                .filter(|n| n.kind == testbed::NodeKind::Guest)
                .count();
            println!(
                "run `{}` is up in {:.2} s: {} nodes, {} guests, {} link emulators, network {}, underlay MTU {}{}",
                state.run,
                state.up_seconds.unwrap_or_default(),
                state.plan.nodes.len(),
                guests,
                state.emulators.len(),
                state.plan.mode,
                state.plan.underlay_mtu,
                if state.daemons.is_empty() {
                    String::new()
                } else {
                    format!(" ({} overlay daemons)", state.daemons.len())
                }
            );
            Ok(())
        }
        Cmd::Status { name: None, .. } => {
            for r in testbed::runs() {
                println!("{r}");
            }
            Ok(())
        }
        Cmd::Status {
            name: Some(name),
            json,
        } => {
            let s = testbed::status(&name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                match print_status(&mut io::stdout().lock(), &s) {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                    r => r.context("write the status")?,
                }
            }
            if s.healthy {
                Ok(())
            } else {
                bail!("run `{name}` is damaged: some namespace, link emulator or overlay daemon is gone")
            }
        }
        Cmd::Exec { name, node, cmd } => Err(testbed::exec(&name, &node, &cmd)),
        Cmd::Wren {
            name,
            action,
            json,
            args,
        } => wren(&name, action, json, &args),
        Cmd::Vnetctl { name, args } => Err(testbed::vnet::exec_vnetctl(&name, &args)),
        Cmd::Adapt {
            name,
            guest_memory,
            wren,
            args,
        } => Err(testbed::adapt::exec_vadapt(
            &name,
            guest_memory,
            wren,
            &args,
        )),
        Cmd::Migrate {
            name,
            vm,
            host,
            memory,
            json,
        } => {
            let opts = testbed::migrate::MigrateOptions {
                memory_bytes: memory,
                progress: !json,
                ..Default::default()
            };
            let r = testbed::migrate::migrate(&name, &vm, &host, &opts)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", testbed::migrate::report_text(&r));
            }
            Ok(())
        }
        Cmd::Patterns {
            name,
            ranks,
            timeout,
            args,
        } => {
            let summary = testbed::run_patterns(&name, ranks, &args, Duration::from_secs(timeout))?;
            println!("{summary}");
            Ok(())
        }
        Cmd::Mpirun { name, ranks, cmd } => {
            let status = testbed::mpirun(&name, ranks, &cmd)?;
            if status.success() {
                Ok(())
            } else {
                bail!("mpirun exited with {status}")
            }
        }
        Cmd::Rsh { name, words } => {
            // Skip any ssh-style options Open MPI may put before the host name.
            let mut words = words.into_iter().skip_while(|w| w.starts_with('-'));
            let host = words.next().context("rsh: no host given")?;
            let rest: Vec<String> = words.collect();
            Err(testbed::rsh(&name, &host, &rest))
        }
        Cmd::Down { all: true, .. } => {
            for r in testbed::runs() {
                let removed = testbed::down(&r)?;
                println!("run `{r}` removed: {removed}");
            }
            Ok(())
        }
        Cmd::Down {
            name: Some(name), ..
        } => {
            let removed = testbed::down(&name)?;
            if removed.anything() {
                println!("run `{name}` removed: {removed}");
            } else {
                println!("run `{name}`: nothing to remove");
            }
            Ok(())
        }
        Cmd::Down { .. } => bail!("say which run to take down, or --all"),
        Cmd::Linkemu { run, spec } => {
            testbed::sys::Cgroups::new(&run).add(testbed::plan::NET_CGROUP, std::process::id())?;
            let spec: linkemu::LinkSpec = serde_json::from_str(&spec).context("bad link spec")?;
            let stop = Arc::new(AtomicBool::new(false));
            signal_hook_stop(&stop)?;
            linkemu::run(&spec, || println!("ready"), &stop)
        }
        Cmd::Hog { after } => {
            std::thread::sleep(Duration::from_secs_f64(after.max(0.0)));
            // One busy thread per core; the cgroup's quota is what limits them.
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            for _ in 1..threads {
                std::thread::spawn(burn);
            }
            burn()
        }
    }
}

/// Busy-loops forever on integer work the compiler cannot remove.
fn burn() -> ! {
    let mut x = 1u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// Sets `stop` on SIGTERM or SIGINT.
fn signal_hook_stop(stop: &Arc<AtomicBool>) -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    extern "C" fn on_signal(_: libc::c_int) {
        if let Some(s) = STOP.get() {
            s.store(true, Ordering::SeqCst);
        }
    }
    let _ = STOP.set(stop.clone());
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.context("install signal handler")?;
    }
    Ok(())
}

/// Writes the status table; a reader that went away (`testbed status RUN | head`) is not an
/// error.
fn print_status(out: &mut impl Write, s: &testbed::Status) -> io::Result<()> {
    writeln!(
        out,
        "run {}  scenario {}  network {}  underlay MTU {}  rate scale {}  up in {}",
        s.run,
        s.scenario.display(),
        s.mode,
        s.underlay_mtu,
        s.rate_scale,
        s.up_seconds
            .map_or("(incomplete)".into(), |t| format!("{t:.2} s"))
    )?;
    writeln!(
        out,
        "\n{:<14} {:<7} {:<16} {:<9} {:>6} {:>6}  namespace",
        "node", "kind", "address", "cgroup", "cpu", "procs"
    )?;
    for n in &s.nodes {
        writeln!(
            out,
            "{:<14} {:<7} {:<16} {:<9} {:>6} {:>6}  {}{}",
            n.name,
            format!("{:?}", n.kind).to_lowercase(),
            n.ip.map(|i| i.to_string()).unwrap_or_default(),
            n.cgroup,
            n.cpu_quota.map_or("-".into(), |q| format!("{q:.2}")),
            n.processes,
            n.netns,
            if n.alive { "" } else { "  (MISSING)" }
        )?;
    }
    writeln!(
        out,
        "\n{:<28} {:<9} {:>12} {:>9} {:>9} {:>6} {:>9}  state",
        "link", "kind", "rate Mbit/s", "delay ms", "jitter ms", "loss", "queues a/b KB"
    )?;
    for w in &s.wires {
        #[allow(clippy::cast_precision_loss)]
        let rate = if w.rate_bps == 0 {
            "-".to_string()
        } else {
            format!("{:.3}", w.rate_bps as f64 / 1e6)
        };
        writeln!(
            out,
            "{:<28} {:<9} {:>12} {:>9.3} {:>9.3} {:>6} {:>9}  {}",
            w.name,
            w.kind,
            rate,
            w.delay_ms,
            w.jitter_ms,
            w.loss,
            format!("{}/{}", w.queue_a_bytes / 1000, w.queue_b_bytes / 1000),
            match (w.pid, w.alive) {
                (Some(p), true) => format!("pid {p}"),
                (Some(p), false) => format!("pid {p} DEAD"),
                _ => "kernel".into(),
            }
        )?;
    }
    if let Some(v) = &s.vnet {
        writeln!(
            out,
            "\n{:<14} {:>8} {:<22} {:<22}  log",
            "vnetd", "pid", "listen (udp, tcp)", "metrics"
        )?;
        for d in &v.daemons {
            writeln!(
                out,
                "{:<14} {:>8} {:<22} {:<22}  {}{}",
                d.node,
                d.pid.map_or("-".into(), |p| p.to_string()),
                d.listen,
                d.metrics,
                d.log.display(),
                if d.alive { "" } else { "  (DEAD)" }
            )?;
        }
        writeln!(
            out,
            "\nstar {}  key {}  hosts {}\nvnetctl: testbed vnetctl {} -- SUBCOMMAND ...",
            v.star_file.display(),
            v.key_file.display(),
            v.hosts_file.display(),
            s.run
        )?;
    }
    if let Some(t) = &s.tinc {
        writeln!(
            out,
            "\n{:<14} {:>8} {:<22} {:<36}  log",
            "tincd", "pid", "address (tcp, udp)", "config"
        )?;
        for d in &t.daemons {
            writeln!(
                out,
                "{:<14} {:>8} {:<22} {:<36}  {}{}",
                d.node,
                d.pid.map_or("-".into(), |p| p.to_string()),
                d.address,
                d.config.display(),
                d.log.display(),
                if d.alive { "" } else { "  (DEAD)" }
            )?;
        }
    }
    Ok(())
}

fn wren(run: &str, action: WrenAction, json: bool, args: &[String]) -> Result<()> {
    use testbed::wren;
    match action {
        WrenAction::Start => {
            let d = wren::start(run, args)?;
            println!(
                "wren is running on `{run}`: {} daemons, collector http://{} (in the Proxy's namespace)",
                d.daemons.len(),
                d.collector.map_or_else(String::new, |a| a.to_string())
            );
            Ok(())
        }
        WrenAction::Stop => {
            println!("stopped {} wren daemons", wren::stop(run)?);
            Ok(())
        }
        WrenAction::Status => {
            let s = wren::status(run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else if s.is_empty() {
                println!("wren is not running on `{run}`");
            } else {
                for d in &s {
                    println!(
                        "{:<8} pid {:<8} {:<7} cpu {:>7.2} s  log {}",
                        d.node,
                        d.pid,
                        if d.alive { "running" } else { "gone" },
                        d.cpu_s.unwrap_or(0.0),
                        d.log.display()
                    );
                }
            }
            Ok(())
        }
        WrenAction::Query => Err(wren::exec_query(run, args)),
    }
}

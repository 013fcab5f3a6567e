//! `vnetd`: the overlay daemon, one per host and one (the Proxy) on the user's network. This
//! file parses the command line, reads the key, binds the sockets and starts the threads;
//! everything else is in [`vnetd::daemon`].

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use vnetd::control::read_key_file;
use vnetd::daemon::server::{spawn_control, spawn_metrics, Handle};
use vnetd::daemon::{Config, Daemon};
use vnetd::forward::Role;
use vnetd::model::Name;

/// The VNET overlay daemon: carries its guests' Ethernet frames to the other daemons of the
/// overlay over authenticated UDP links, through the Proxy (the resilient star) or over
/// direct fast paths, as its forwarding rules say. Configure it with `vnetctl`.
#[derive(Debug, Parser)]
#[command(name = "vnetd", version)]
struct Cli {
    /// This machine's name, as the topology's HOST line declares it.
    #[arg(long)]
    name: Name,
    /// `host` (runs guests; its link to the Proxy is its part of the star) or `proxy`.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// A host's Proxy (its machine name).
    #[arg(long, required_if_eq("role", "host"))]
    proxy: Option<Name>,
    /// A file holding the overlay's pre-shared key: 64 hexadecimal digits (e.g. made with
    /// `head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n'`). Readable by the daemon only.
    #[arg(long, env = "VNET_KEY_FILE")]
    key_file: PathBuf,
    /// The UDP link socket, and on the same address the TCP control API.
    #[arg(long, default_value = "0.0.0.0:5400")]
    listen: SocketAddr,
    /// The Prometheus endpoint (HTTP, GET /metrics); `off` for none.
    #[arg(long, default_value = "0.0.0.0:9540")]
    metrics: String,
    /// Where links, rules and ports are persisted (a restarted daemon takes them back).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The underlay's MTU: larger frames are fragmented inside the overlay.
    #[arg(long, default_value_t = 1500)]
    underlay_mtu: usize,
    /// Turn offloads off: TAP ports move plain wire-sized frames (no virtio-net header, no
    /// 64 KiB TCP super-frames) and the link socket sends and receives every datagram on
    /// its own (no UDP segmentation or receive offload).
    #[arg(long)]
    no_offloads: bool,
    /// VTTIF's update rate: how often a host ships its local traffic matrix to the Proxy,
    /// and the Proxy re-evaluates the application's topology (Hz, at most 20).
    #[arg(long, default_value_t = vttif::Params::DEFAULT.update_hz)]
    vttif_update_hz: f64,
    /// VTTIF's smoothing window at the Proxy (seconds of past traffic the matrix covers).
    #[arg(long, default_value_t = vttif::Params::DEFAULT.window.as_secs_f64())]
    vttif_window: f64,
    /// VTTIF's detection threshold at the Proxy: the fraction of the heaviest pair's traffic
    /// a pair needs to be an edge of the topology.
    #[arg(long, default_value_t = vttif::Params::DEFAULT.threshold)]
    vttif_threshold: f64,
    /// Turn VTTIF off: no traffic counting, no updates, no inference at the Proxy (to
    /// measure what it costs).
    #[arg(long)]
    no_vttif: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    Host,
    Proxy,
}

/// The wake-up socket's descriptor, for the signal handler.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the descriptor lives as long as the process
        // (the handle holding it is never dropped before exit) and the buffer is one valid byte.
        unsafe {
            libc::write(fd, std::ptr::addr_of!(byte).cast(), 1);
        }
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VNETD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vnetd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let key = read_key_file(&cli.key_file).map_err(anyhow::Error::msg)?;
    let role = match (cli.role, cli.proxy) {
        (RoleArg::Host, Some(proxy)) if proxy == cli.name => {
            bail!("a host cannot be its own Proxy (--proxy {proxy})")
        }
        (RoleArg::Host, Some(proxy)) => Role::Host { proxy },
        (RoleArg::Host, None) => bail!("a host needs --proxy NAME"),
        (RoleArg::Proxy, Some(_)) => bail!("--proxy is for hosts; a Proxy has none"),
        (RoleArg::Proxy, None) => Role::Proxy,
    };
    let metrics: Option<SocketAddr> = match cli.metrics.as_str() {
        "off" => None,
        text => Some(
            text.parse()
                .with_context(|| format!("--metrics {text}: not IP:PORT or `off`"))?,
        ),
    };
    let state_dir = cli
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/vnetd").join(cli.name.as_str()));
    let control = TcpListener::bind(cli.listen)
        .with_context(|| format!("bind the control API to {} (TCP)", cli.listen))?;
    let metrics = metrics
        .map(|addr| {
            TcpListener::bind(addr).with_context(|| format!("bind the metrics endpoint to {addr}"))
        })
        .transpose()?;
    let vttif = vttif::Params {
        update_hz: cli.vttif_update_hz,
        window: Duration::try_from_secs_f64(cli.vttif_window).map_err(|_| {
            anyhow::anyhow!(
                "--vttif-window {}: not a duration in seconds",
                cli.vttif_window
            )
        })?,
        threshold: cli.vttif_threshold,
    };
    vttif
        .check()
        .map_err(|e| anyhow::anyhow!("VTTIF parameters: {e}"))?;
    let (mut daemon, wake) = Daemon::start(Config {
        name: cli.name,
        role,
        key: key.clone(),
        listen: cli.listen,
        state_dir,
        underlay_mtu: cli.underlay_mtu,
        offloads: !cli.no_offloads,
        vttif: (!cli.no_vttif).then_some(vttif),
    })?;
    {
        use std::os::fd::AsRawFd as _;
        WAKE_FD.store(wake.as_raw_fd(), Ordering::SeqCst);
    }
    let (commands_tx, commands) = mpsc::channel();
    let handle = Handle::new(commands_tx, wake);
    // SAFETY: the handler only stores to atomics and calls write(2), both async-signal-safe.
    unsafe {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
    spawn_control(control, key, handle.clone());
    if let Some(listener) = metrics {
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics at /metrics");
        spawn_metrics(listener, handle.clone());
    }
    daemon.run(&commands, &STOP);
    drop(handle);
    Ok(())
}

//! `wrend`: Wren's daemon. `wrend agent` on every host captures the host's overlay traffic
//! and ships its records to the collector; `wrend collector` on the Proxy captures its own,
//! takes the agents', estimates every directed host pair and serves the matrix (HTTP
//! `/metrics`, `/matrix`, `/pair?from=A&to=B`); `wrend query` reads it. See the crate's
//! documentation ("Serving") for the design.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use tracing::{info, warn};
use vnetd::daemon::server::{spawn_http, HttpReply};
use vnetd::online::Hosts;
use wren_passive::collector::Collector;
use wren_passive::matrix::{self, query_value, Matrix};
use wren_passive::ship::{self, Encoder};
use wren_passive::{Capture, CaptureConfig, Params};

/// Wren: available bandwidth and latency between the overlay's hosts, measured passively.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// What the agent and the collector share.
#[derive(clap::Args, Clone)]
struct Common {
    /// This daemon's name (as in the hosts file: host1, proxy).
    #[arg(long)]
    name: String,
    /// The interface to capture on (the host's underlay interface).
    #[arg(long, default_value = "eth0")]
    interface: String,
    /// The overlay's pre-shared key file (vnetd's format).
    #[arg(long, env = "VNET_KEY_FILE")]
    key_file: PathBuf,
    /// The hosts file naming every daemon's underlay address (/etc/hosts format).
    #[arg(long, env = "VNET_HOSTS")]
    hosts: PathBuf,
    /// vnetd's link port.
    #[arg(long, default_value_t = wren_passive::capture::DEFAULT_PORT)]
    vnet_port: u16,
    /// How often the capture is drained (and, on an agent, its records shipped), ms.
    #[arg(long, default_value_t = 200)]
    batch_ms: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// A host's agent: capture, ship to the collector.
    Agent {
        #[command(flatten)]
        common: Common,
        /// The collector: NAME (from the hosts file) or IP, with an optional :PORT.
        #[arg(long, default_value = "proxy")]
        collector: String,
    },
    /// The collector (on the Proxy): its own capture, the agents' records, the estimator,
    /// the HTTP endpoints.
    Collector {
        #[command(flatten)]
        common: Common,
        /// Where the agents' datagrams arrive.
        #[arg(long, default_value = "0.0.0.0:5410")]
        listen: SocketAddr,
        /// The HTTP endpoints (/metrics, /matrix, /pair).
        #[arg(long, default_value = "0.0.0.0:9550")]
        http: SocketAddr,
        /// How often the matrix is estimated, ms.
        #[arg(long, default_value_t = 1000)]
        report_ms: u64,
        /// The estimator's window, s.
        #[arg(long, default_value_t = 10.0)]
        window_s: f64,
        /// Do not capture locally (the collector runs on a machine without a daemon).
        #[arg(long)]
        no_capture: bool,
    },
    /// Ask a collector: every pair, or FROM TO.
    Query {
        /// The collector's HTTP address.
        #[arg(long, default_value = "127.0.0.1:9550")]
        collector: SocketAddr,
        /// Sending daemon.
        from: Option<String>,
        /// Receiving daemon.
        to: Option<String>,
        /// Print JSON (the matrix, or the pair) instead of text.
        #[arg(long)]
        json: bool,
        /// Print the Prometheus text.
        #[arg(long, conflicts_with = "json")]
        metrics: bool,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("wrend: error: {e:#}");
        std::process::exit(1);
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Agent { common, collector } => agent(&common, &collector),
        Cmd::Collector {
            common,
            listen,
            http,
            report_ms,
            window_s,
            no_capture,
        } => collector(&common, listen, http, report_ms, window_s, no_capture),
        Cmd::Query {
            collector,
            from,
            to,
            json,
            metrics,
        } => query(collector, from, to, json, metrics),
    }
}

fn key_and_hosts(c: &Common) -> Result<(vnetd::wire::OverlayKey, Hosts)> {
    let key = vnetd::control::read_key_file(&c.key_file).map_err(anyhow::Error::msg)?;
    let hosts = Hosts::load(&c.hosts)?;
    Ok((key, hosts))
}

fn start_capture(c: &Common) -> Result<Capture> {
    let mut config = CaptureConfig::new(&c.interface);
    config.ports = vec![c.vnet_port];
    Capture::start(&config).with_context(|| format!("capture on {}", c.interface))
}

fn agent(c: &Common, collector: &str) -> Result<()> {
    let (key, hosts) = key_and_hosts(c)?;
    let to: SocketAddr = match collector.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            let (name, port) = match collector.rsplit_once(':') {
                Some((n, p)) => (n, p.parse().context("collector port")?),
                None => (collector, ship::DEFAULT_PORT),
            };
            match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, port),
                Err(_) => hosts.resolve(name, port)?,
            }
        }
    };
    let mut enc = Encoder::new(key, &c.name, u64::try_from(now_ns()).unwrap_or(1))?;
    let cap = start_capture(c)?;
    let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .context("bind the shipping socket")?;
    info!(name = %c.name, interface = %c.interface, collector = %to, "agent started");
    let period = Duration::from_millis(c.batch_ms.max(10));
    let (mut records, mut datagrams, mut bytes, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut last_log = Instant::now();
    loop {
        std::thread::sleep(period);
        let batch = cap.drain();
        records += batch.len() as u64;
        for d in enc.encode(now_ns(), &batch) {
            match sock.send_to(&d, to) {
                Ok(_) => {
                    datagrams += 1;
                    bytes += d.len() as u64;
                }
                Err(e) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        warn!("shipping to {to}: {e} ({errors} errors so far)");
                    }
                }
            }
        }
        if let Some(f) = cap.stats().failed {
            bail!("the capture failed: {f}");
        }
        if last_log.elapsed() >= Duration::from_secs(60) {
            last_log = Instant::now();
            let s = cap.stats();
            info!(
                records,
                datagrams,
                bytes,
                errors,
                kernel_dropped = s.kernel_dropped,
                ring_dropped = s.ring_dropped,
                "shipped"
            );
        }
    }
}

fn collector(
    c: &Common,
    listen: SocketAddr,
    http: SocketAddr,
    report_ms: u64,
    window_s: f64,
    no_capture: bool,
) -> Result<()> {
    let (key, hosts) = key_and_hosts(c)?;
    let daemons = hosts
        .names()
        .map(|n| Ok((n.to_owned(), hosts.resolve(n, c.vnet_port)?)))
        .collect::<Result<Vec<_>>>()?;
    if !window_s.is_finite() || window_s <= 0.0 || window_s > 3600.0 {
        bail!("--window-s must be in 0..=3600");
    }
    // At most an hour: far inside i64's nanoseconds.
    #[allow(clippy::cast_possible_truncation)]
    let window_ns = (window_s * 1e9).round() as i64;
    let params = Params {
        window_ns,
        ..Params::default()
    };
    let state = Arc::new(Mutex::new(Collector::new(&c.name, key, params, &daemons)?));
    let latest: Arc<Mutex<Option<Arc<Matrix>>>> = Arc::new(Mutex::new(None));
    let cap = if no_capture {
        None
    } else {
        Some(start_capture(c)?)
    };
    let sock = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    let listener = TcpListener::bind(http).with_context(|| format!("bind {http}"))?;
    {
        let state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("wren-receive".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let mut s = state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Err(e) = s.accept(now_ns(), from, &buf[..n]) {
                        tracing::debug!(%from, "datagram refused: {e}");
                    }
                }
            })
            .context("start the receiving thread")?;
    }
    {
        let latest = Arc::clone(&latest);
        spawn_http(listener, move |path, query| {
            let m = latest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let Some(m) = m else {
                return HttpReply::error("503 Service Unavailable", "no estimate yet");
            };
            match path {
                "/metrics" => HttpReply::ok(
                    "text/plain; version=0.0.4; charset=utf-8",
                    matrix::render_prometheus(&m),
                ),
                "/matrix" => match serde_json::to_string(&*m) {
                    Ok(j) => HttpReply::ok("application/json", j),
                    Err(e) => HttpReply::error("500 Internal Server Error", e.to_string()),
                },
                "/pair" => {
                    let (Some(from), Some(to)) =
                        (query_value(query, "from"), query_value(query, "to"))
                    else {
                        return HttpReply::error("400 Bad Request", "use /pair?from=A&to=B");
                    };
                    match m.pair(&from, &to) {
                        Some(p) => match serde_json::to_string(p) {
                            Ok(j) => HttpReply::ok("application/json", j),
                            Err(e) => HttpReply::error("500 Internal Server Error", e.to_string()),
                        },
                        None => HttpReply::error(
                            "404 Not Found",
                            format!("no pair {from} -> {to} (names are the hosts file's)"),
                        ),
                    }
                }
                "/" | "/text" => HttpReply::ok("text/plain", matrix::render_text(&m)),
                _ => HttpReply::error("404 Not Found", "try /metrics, /matrix, /pair?from=A&to=B"),
            }
        });
    }
    info!(name = %c.name, %listen, %http, daemons = daemons.len(), "collector started");
    let period = Duration::from_millis(c.batch_ms.max(10));
    let report = Duration::from_millis(report_ms.max(50));
    let mut last_report = Instant::now() - report;
    loop {
        std::thread::sleep(period);
        if let Some(cap) = &cap {
            if let Some(f) = cap.stats().failed {
                bail!("the capture failed: {f}");
            }
            let records = cap.drain();
            let mut s = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.take_local(now_ns(), records);
        }
        if last_report.elapsed() >= report {
            last_report = Instant::now();
            // Under the lock: the receiving thread's datagrams wait in the socket's buffer
            // meanwhile (an estimate takes milliseconds).
            let m = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .matrix(now_ns());
            *latest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(m));
        }
    }
}

fn query(
    collector: SocketAddr,
    from: Option<String>,
    to: Option<String>,
    json: bool,
    metrics: bool,
) -> Result<()> {
    let timeout = Duration::from_secs(5);
    if metrics {
        print!("{}", matrix::fetch_text(collector, "/metrics", timeout)?);
        return Ok(());
    }
    match (from, to) {
        (Some(from), Some(to)) => {
            let p = matrix::fetch_pair(collector, &from, &to, timeout)?;
            if json {
                println!("{}", serde_json::to_string(&p)?);
            } else {
                let m = Matrix {
                    at_ns: 0,
                    collector: String::new(),
                    window_s: 0.0,
                    pairs: vec![p],
                    reporters: Vec::new(),
                    ingest: wren_passive::estimate::IngestStats::default(),
                };
                print!("{}", matrix::render_text(&m));
            }
        }
        (None, None) => {
            let m = matrix::fetch_matrix(collector, timeout)?;
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                print!("{}", matrix::render_text(&m));
            }
        }
        _ => bail!("give both FROM and TO, or neither"),
    }
    Ok(())
}

//! `bench dataplane`: what the overlay's data path costs between two guests on different hosts,
//! against no overlay (`direct`), the kernel's VXLAN and tinc 1.0, all over one unshaped LAN at
//! the same underlay MTU (the `dataplane` scenario: 1500, guests at 1500).
//!
//! Six configurations, from four testbed runs brought up side by side at the start (so that the
//! configurations can be interleaved: each repeat measures all six, in an order rotated by one
//! per repeat, and machine noise hits all alike):
//!
//! | row | run |
//! |---|---|
//! | `direct` | direct mode: bridges and veths only |
//! | `vxlan` | vxlan mode with `--keep-underlay-mtu` (VTEPs at 1500, outer packets fragmentable) |
//! | `tinc` | tinc mode: tinc 1.0, switch mode, `Cipher = none`, `Digest = none`, no PMTU discovery |
//! | `vnetd-proxy` | vnet mode, the star: every frame through the Proxy's daemon |
//! | `vnetd-udp` | the same run, a UDP link host1–host2 and a rule at each end for the other's guest |
//! | `vnetd-tcp` | the same with a TCP link |
//!
//! Before each vnetd row the bench applies that row's topology from inside the Proxy's namespace
//! with `vnetctl`'s own code ([`vnetd::online`]), waits until its links are up, and checks with
//! the live overlay (as `vnetctl route --live`) that the frames from vm1 to vm2 and back take the
//! row's path. On every row it counts the bytes of the Proxy's underlay NIC during the flow
//! (which only the via-Proxy row should move), and on the vnetd rows the Proxy daemon's
//! `relayed_unicast` frames, which must not grow on the fast-path rows (the bench fails if they
//! do).
//!
//! Each measurement: a few pings to warm the path (ARP, tinc's keys), half a second of the
//! machine's background CPU use, one iperf3 TCP flow vm1 → vm2 (the scenario's congestion
//! control, checked in iperf3's report) of `--seconds` after `--omit` uncounted seconds, then
//! `--pings` pings at `--ping-interval-ms`. **CPU time per GB**: the whole machine's busy CPU
//! time (`/proc/stat`, all CPUs, every state but idle and iowait) from the client's start to its
//! end, divided by every byte the client sent (omitted seconds included, as the CPU time is);
//! beside it the CPU time of the run's own cgroups (hosts with their guests and daemons, the
//! Proxy), which other work on the machine does not touch. The hosts have no CPU quota: the two
//! cores are the bottleneck of every row, so throughput says what the cores can push through
//! each path, and CPU time per GB is the fair figure.
//!
//! Each repeat also measures the machine's floor for a user-space forwarder's latency
//! ([`wakeup_pair_rtts`]): a UDP ping-pong between two threads on loopback at the pings'
//! interval, two thread wake-ups after idling per round trip. On this project's machine (a
//! VM whose idle vCPUs halt at once, `guest_halt_poll_ns` 0) a wake-up after 10 ms of idling
//! costs tens of µs, and a guest-to-guest ping over vnetd or tinc takes four of them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vnetd::model::{LinkKind, Mac, Name, Topology};
use vnetd::online::{self, Hosts, Session};

use super::common::{machine_ticks, on, output, ping_rtts_us, spread, Runs};
use crate::patterns::report::{median, percentile};
use crate::scenario::Scenario;
use crate::testbed::{self, plan::netns_name, sys, vnet, Mode, Options as UpOptions, RunState};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario (two hosts, one guest each).
    pub scenario: PathBuf,
    /// Measurements of each configuration.
    pub repeat: usize,
    /// Counted seconds of each iperf3 flow.
    pub seconds: u32,
    /// Uncounted seconds at the start of each flow.
    pub omit: u32,
    /// Pings per measurement.
    pub pings: usize,
    /// Interval between pings.
    pub ping_interval_ms: f64,
    /// The configurations to measure (all when empty); only their runs are brought up.
    pub only: Vec<Config>,
}

/// The iperf3 server's port in vm2.
const IPERF_PORT: u16 = 5299;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Config {
    /// No overlay.
    Direct,
    /// Kernel VXLAN, underlay MTU kept.
    Vxlan,
    /// tinc 1.0.
    Tinc,
    /// vnetd, the star: through the Proxy.
    VnetProxy,
    /// vnetd, a UDP fast path.
    VnetUdp,
    /// vnetd, a TCP fast path.
    VnetTcp,
    /// vnetd, a UDP fast path, with VTTIF off (`vnetd --no-vttif`, a run of its own): what
    /// counting traffic costs. Only measured when asked for (`--only`, `bench vttif`).
    VnetUdpNoVttif,
}

impl Config {
    /// Every configuration, in table order.
    pub const ALL: [Config; 7] = [
        Config::Direct,
        Config::Vxlan,
        Config::Tinc,
        Config::VnetProxy,
        Config::VnetUdp,
        Config::VnetTcp,
        Config::VnetUdpNoVttif,
    ];

    /// Whether a run without `--only` measures it.
    fn by_default(self) -> bool {
        self != Config::VnetUdpNoVttif
    }

    /// Its name in the table and the JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Config::Direct => "direct",
            Config::Vxlan => "vxlan",
            Config::Tinc => "tinc",
            Config::VnetProxy => "vnetd-proxy",
            Config::VnetUdp => "vnetd-udp",
            Config::VnetTcp => "vnetd-tcp",
            Config::VnetUdpNoVttif => "vnetd-udp-novttif",
        }
    }

    /// The configuration named `name` in the table.
    ///
    /// # Errors
    /// An unknown name, with the known ones.
    pub fn from_name(name: &str) -> Result<Config> {
        Config::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .with_context(|| {
                let known: Vec<&str> = Config::ALL.iter().map(|c| c.name()).collect();
                format!("no configuration {name:?}; known: {}", known.join(", "))
            })
    }

    /// The testbed mode of its run.
    #[must_use]
    pub fn mode(self) -> Mode {
        match self {
            Config::Direct => Mode::Direct,
            Config::Vxlan => Mode::Vxlan,
            Config::Tinc => Mode::Tinc,
            Config::VnetProxy | Config::VnetUdp | Config::VnetTcp | Config::VnetUdpNoVttif => {
                Mode::Vnet
            }
        }
    }

    /// The name of its run.
    #[must_use]
    pub fn run(self) -> String {
        match self {
            Config::VnetUdpNoVttif => format!("{}-novttif", run_name(self.mode())),
            _ => run_name(self.mode()),
        }
    }

    /// What its run's daemons are started with besides the testbed's arguments.
    fn vnetd_args(self) -> Vec<String> {
        match self {
            Config::VnetUdpNoVttif => vec!["--no-vttif".to_string()],
            _ => Vec::new(),
        }
    }

    /// The fast path's link kind, for the vnetd fast-path rows.
    fn fast_path(self) -> Option<LinkKind> {
        match self {
            Config::VnetUdp | Config::VnetUdpNoVttif => Some(LinkKind::Udp),
            Config::VnetTcp => Some(LinkKind::Tcp),
            _ => None,
        }
    }
}

/// The order of the configurations in repeat `r`: table order rotated by `r`.
#[must_use]
pub fn order(r: usize) -> Vec<Config> {
    let mut v = Config::ALL.to_vec();
    let n = v.len();
    v.rotate_left(r % n);
    v
}

/// `star` plus one fast path: a link of `kind` between hosts `a` and `b`, and at each of them a
/// rule sending the other's guests over it (`ANY <mac> -> link <other>`). Where the guests are
/// comes from the Proxy's rules of the star.
///
/// # Errors
/// If `a` or `b` is not a host of the star, or they are the same.
pub fn fast_path(
    star: &Topology,
    proxy: &Name,
    a: &Name,
    b: &Name,
    kind: LinkKind,
) -> Result<Topology> {
    for h in [a, b] {
        if !star.hosts.contains_key(h) || h == proxy {
            bail!("{h} is not a host of the star");
        }
    }
    if a == b {
        bail!("a fast path needs two hosts");
    }
    let mut t = star.clone();
    vnetd::lang::add_fast_path(&mut t, &vnetd::lang::guest_homes(star, proxy), a, b, kind);
    Ok(t)
}

/// What one iperf3 client report says.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Received bits per second over the counted seconds.
    pub bps: f64,
    /// Bytes the client sent, omitted seconds included.
    pub bytes_sent: u64,
    /// Retransmitted segments (counted seconds).
    pub retransmits: u64,
    /// The sender's congestion control.
    pub congestion: String,
}

/// Reads an iperf3 `--json` client report.
///
/// # Errors
/// iperf3's own error, or a report without the figures.
pub fn flow_of(report: &Value) -> Result<Flow> {
    if let Some(e) = report["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let end = &report["end"];
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 report has no end.sum_received.bits_per_second")?;
    let bytes_sent = report["intervals"]
        .as_array()
        .context("iperf3 report has no intervals")?
        .iter()
        .filter_map(|i| i["sum"]["bytes"].as_u64())
        .sum();
    Ok(Flow {
        bps,
        bytes_sent,
        retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        congestion: end["sender_tcp_congestion"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
    })
}

/// The path MTU in `ip route get` output (the interface's when no `mtu` is cached).
#[must_use]
pub fn route_mtu(text: &str, interface_mtu: u32) -> u32 {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(interface_mtu)
}

/// Bytes received plus sent by `ifname` in `/proc/net/dev` text.
#[must_use]
pub fn nic_bytes(dev: &str, ifname: &str) -> Option<u64> {
    dev.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        if name.trim() != ifname {
            return None;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes ...
        Some(f.first()? + f.get(8)?)
    })
}

/// One measurement of one configuration.
#[derive(Debug, Clone)]
struct Sample {
    flow: Flow,
    /// Whole machine, busy CPU seconds during the flow.
    cpu_s: f64,
    /// The run's cgroups, CPU seconds during the flow.
    run_cpu_s: f64,
    /// Machine busy cores in the half second before the flow.
    background_cores: f64,
    /// Bytes through the Proxy's underlay NIC during the flow.
    proxy_bytes: u64,
    /// Frames the Proxy's daemon relayed between links during the flow (vnetd rows).
    relayed: Option<u64>,
    /// vm1's path MTU to vm2 after the flow.
    pmtu: u32,
    rtts_us: Vec<f64>,
}

impl Sample {
    #[allow(clippy::cast_precision_loss)]
    fn cpu_s_per_gb(&self, cpu_s: f64) -> f64 {
        cpu_s / (self.flow.bytes_sent as f64 / 1e9)
    }
}

/// Round trips, in µs, of one UDP datagram between two threads on loopback, `pings` times at
/// `interval` like the guests' pings: each side sleeps in `recv` between them, so a round trip
/// costs two thread wake-ups after an idle `interval` and almost nothing else. A user-space
/// forwarder adds such wake-ups to every path it is on (vnetd and tinc: one per daemon and
/// direction, four per guest-to-guest ping), so this is the machine's floor for them.
///
/// # Errors
/// If loopback UDP sockets cannot be made or the echo stops answering.
pub fn wakeup_pair_rtts(pings: usize, interval: Duration) -> Result<Vec<f64>> {
    let echo = std::net::UdpSocket::bind("127.0.0.1:0").context("bind a loopback socket")?;
    let client = std::net::UdpSocket::bind("127.0.0.1:0").context("bind a loopback socket")?;
    client.set_read_timeout(Some(Duration::from_secs(1)))?;
    let to = echo.local_addr()?;
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            if n == 1 && buf[0] == 0 {
                break;
            }
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let mut rtts = Vec::with_capacity(pings);
    let mut buf = [0u8; 16];
    let result = (|| -> Result<()> {
        for _ in 0..pings {
            std::thread::sleep(interval);
            let start = Instant::now();
            client.send_to(&[1, 2, 3, 4], to)?;
            client
                .recv_from(&mut buf)
                .context("the loopback echo did not answer")?;
            rtts.push(start.elapsed().as_secs_f64() * 1e6);
        }
        Ok(())
    })();
    let _ = client.send_to(&[0], to);
    let _ = server.join();
    result.map(|()| rtts)
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[allow(clippy::cast_precision_loss)]
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[allow(clippy::cast_precision_loss)]
fn ticks_to_s(ticks: u64) -> f64 {
    ticks as f64 / clock_ticks_per_s()
}

/// CPU time of every cgroup of run `run`.
fn run_cpu(state: &RunState) -> Duration {
    let cg = sys::Cgroups::new(&state.run);
    state.plan.cgroups.keys().filter_map(|c| cg.usage(c)).sum()
}

fn proxy_nic_bytes(run: &str) -> Result<u64> {
    sys::in_netns(&netns_name(run, "proxy"), || {
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
        nic_bytes(&dev, "eth0").context("the Proxy has no eth0")
    })
}

/// The name of the bench's run in `mode`.
fn run_name(mode: Mode) -> String {
    format!("dp-{mode}")
}

/// One brought-up run: its state, and its iperf3 server in vm2.
struct Up {
    state: RunState,
    server: Child,
    vm2_ip: String,
}

/// Brings up the run of configuration `c` (which the other configurations of its run share).
fn bring_up(scenario: &std::path::Path, c: Config) -> Result<Up> {
    let (run, mode) = (c.run(), c.mode());
    eprintln!("bench dataplane: testbed up {run} ({mode} mode)");
    let state = testbed::up_with(
        scenario,
        Some(&run),
        mode,
        UpOptions {
            keep_underlay_mtu: true,
            vnetd_args: c.vnetd_args(),
        },
    )?;
    let guests = state.guests();
    if guests.len() != 2 || guests[0].cgroup == guests[1].cgroup {
        bail!(
            "{}: bench dataplane needs two guests on two different hosts",
            scenario.display()
        );
    }
    let vm2_ip = guests[1].ip.context("vm2 has no address")?.to_string();
    let mut server = on(
        &run,
        "vm2",
        &["iperf3", "-s", "-4", "-p", &IPERF_PORT.to_string()],
    )?
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .context("start iperf3 server in vm2")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    testbed::wait_listening(
        &run,
        "vm2",
        IPERF_PORT,
        deadline,
        "iperf3 -s",
        &mut server,
        None,
    )?;
    Ok(Up {
        state,
        server,
        vm2_ip,
    })
}

/// The overlay's files and names for the vnet run.
struct Overlay {
    key: vnetd::wire::OverlayKey,
    hosts: Hosts,
    star: Topology,
    proxy: Name,
    macs: (Mac, Mac),
    homes: (Name, Name),
}

impl Overlay {
    fn load(state: &RunState) -> Result<Overlay> {
        let run = &state.run;
        let key =
            vnetd::control::read_key_file(&vnet::key_file(run)).map_err(anyhow::Error::msg)?;
        let hosts = Hosts::load(&vnet::hosts_file(run))?;
        let star = vnetd::cli::load("star.vnet", &std::fs::read_to_string(vnet::star_file(run))?)?;
        let guests = state.guests();
        let v = vnet::of(state)?;
        // The MAC each guest's port takes, as the plan gave it.
        let mac = |i: usize| -> Result<Mac> {
            let name = &guests[i].name;
            let port = v.ports.iter().find(|p| p.name == *name);
            let mac = port.and_then(|p| p.mac.as_deref());
            Ok(mac
                .with_context(|| format!("no port for {name}"))?
                .parse()?)
        };
        Ok(Overlay {
            key,
            hosts,
            star,
            proxy: "proxy".parse()?,
            macs: (mac(0)?, mac(1)?),
            homes: (guests[0].cgroup.parse()?, guests[1].cgroup.parse()?),
        })
    }

    fn topology(&self, c: Config) -> Result<Topology> {
        match c.fast_path() {
            None => Ok(self.star.clone()),
            Some(kind) => fast_path(&self.star, &self.proxy, &self.homes.0, &self.homes.1, kind),
        }
    }

    /// The routes vm1 → vm2 and vm2 → vm1 must take in configuration `c`.
    fn expected_routes(&self, c: Config) -> [String; 2] {
        let (h1, h2) = (&self.homes.0, &self.homes.1);
        let route = |from: &Name, to: &Name, guest: &str| match c.fast_path() {
            None => format!(
                "{from} --udp--> {} --udp--> {to} -> port {guest}",
                self.proxy
            ),
            Some(LinkKind::Udp) => format!("{from} --udp--> {to} -> port {guest}"),
            Some(LinkKind::Tcp) => format!("{from} --tcp--> {to} -> port {guest}"),
        };
        [route(h1, h2, "vm2"), route(h2, h1, "vm1")]
    }

    fn in_proxy<T: Send>(
        &self,
        run: &str,
        f: impl FnOnce(&mut Session) -> Result<T> + Send,
    ) -> Result<T> {
        let (key, hosts) = (self.key.clone(), self.hosts.clone());
        sys::in_netns(&netns_name(run, "proxy"), move || {
            let mut session = Session::new(key, hosts, Duration::from_secs(10));
            f(&mut session)
        })
    }

    /// Applies configuration `c` (through the star, so a link never changes kind in place),
    /// waits until its links are up, and checks the live routes between the guests.
    fn configure(&self, run: &str, c: Config) -> Result<()> {
        let desired = self.topology(c)?;
        let expected = self.expected_routes(c);
        self.in_proxy(run, |s| {
            for t in [&self.star, &desired] {
                online::apply(s, t, &self.proxy, |_| {})?;
                online::wait_up(s, t, Duration::from_secs(30))?;
            }
            let live = online::live(s, &desired)?;
            let down: Vec<String> = live
                .down()
                .iter()
                .map(|l| format!("{}-{}", l.a, l.b))
                .collect();
            for ((src, dst), want) in [(self.macs.0, self.macs.1), (self.macs.1, self.macs.0)]
                .into_iter()
                .zip(&expected)
            {
                let got =
                    vnetd::cli::route(&live.topology, &self.proxy, src, dst, &down)?.to_string();
                if &got != want {
                    bail!(
                        "{}: the live route {src} -> {dst} is `{got}`, not `{want}`",
                        c.name()
                    );
                }
            }
            Ok(())
        })
    }

    fn relayed_unicast(&self, run: &str) -> Result<u64> {
        self.in_proxy(run, |s| {
            Ok(s.stats(&self.proxy, crate::testbed::plan::VNET_PORT)?
                .relayed_unicast
                .frames)
        })
    }
}

fn measure(
    up: &Up,
    overlay: Option<&Overlay>,
    c: Config,
    opts: &Options,
    congestion: &str,
) -> Result<Sample> {
    let run = up.state.run.as_str();
    let ip = up.vm2_ip.as_str();
    // `run` passes the overlay to the vnet-mode configurations only.
    if let Some(o) = overlay {
        o.configure(run, c)?;
    }
    // Warm the path: ARP, bridges' tables, tinc's keys.
    output(
        on(
            run,
            "vm1",
            &["ping", "-n", "-q", "-c", "3", "-i", "0.1", "-W", "2", ip],
        )?,
        "warm-up ping vm1 -> vm2",
    )?;
    let (b0, t0) = machine_ticks()?;
    std::thread::sleep(Duration::from_millis(500));
    let (b1, t1) = machine_ticks()?;
    #[allow(clippy::cast_precision_loss)]
    let background_cores = (b1 - b0) as f64 / ((t1 - t0) as f64).max(1.0)
        * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);

    let relayed0 = overlay.map(|o| o.relayed_unicast(run)).transpose()?;
    let proxy0 = proxy_nic_bytes(run)?;
    let run0 = run_cpu(&up.state);
    let (busy0, _) = machine_ticks()?;
    let secs = opts.seconds.to_string();
    let omit = opts.omit.to_string();
    let port = IPERF_PORT.to_string();
    let out = on(
        run,
        "vm1",
        &[
            "iperf3", "-c", ip, "-p", &port, "-t", &secs, "-O", &omit, "-J",
        ],
    )?
    .stdin(Stdio::null())
    .output()
    .context("run iperf3 client in vm1")?;
    let (busy1, _) = machine_ticks()?;
    let run1 = run_cpu(&up.state);
    let proxy1 = proxy_nic_bytes(run)?;
    let relayed1 = overlay.map(|o| o.relayed_unicast(run)).transpose()?;
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 in vm1 of {run} printed no JSON ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let flow = flow_of(&report).with_context(|| format!("{}: iperf3 vm1 -> vm2", c.name()))?;
    if flow.congestion != congestion {
        bail!(
            "{}: iperf3's flow ran {}, not the scenario's {congestion}",
            c.name(),
            flow.congestion
        );
    }
    let relayed = match (relayed0, relayed1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    if c.fast_path().is_some() && relayed.unwrap_or(0) > 0 {
        bail!(
            "{}: the Proxy relayed {} unicast frames during the flow: the fast path is not what \
             carries it",
            c.name(),
            relayed.unwrap_or(0)
        );
    }
    let route = output(
        on(run, "vm1", &["ip", "route", "get", ip])?,
        "ip route get in vm1",
    )?;
    let interval = format!("{:.3}", opts.ping_interval_ms / 1e3);
    let count = opts.pings.to_string();
    let text = output(
        on(
            run,
            "vm1",
            &["ping", "-n", "-c", &count, "-i", &interval, "-W", "2", ip],
        )?,
        "ping vm1 -> vm2",
    )?;
    let rtts_us = ping_rtts_us(&text);
    if rtts_us.len() < opts.pings / 2 {
        bail!(
            "{}: only {} of {} pings answered",
            c.name(),
            rtts_us.len(),
            opts.pings
        );
    }
    Ok(Sample {
        flow,
        cpu_s: ticks_to_s(busy1 - busy0),
        run_cpu_s: (run1 - run0).as_secs_f64(),
        background_cores,
        proxy_bytes: proxy1.saturating_sub(proxy0),
        relayed,
        pmtu: route_mtu(&route, crate::testbed::plan::GUEST_MTU),
        rtts_us,
    })
}

/// Runs the benchmark; prints tables; returns the headline figures.
///
/// # Errors
/// If a run cannot be brought up, a path is not what its row says, or a measurement fails.
pub fn run(opts: &Options) -> Result<Value> {
    let scenario = Scenario::load(&opts.scenario)?;
    let wanted = |c: &Config| {
        if opts.only.is_empty() {
            c.by_default()
        } else {
            opts.only.contains(c)
        }
    };
    let mut guard = Runs(Vec::new());
    let mut ups: BTreeMap<String, Up> = BTreeMap::new();
    let mut overlays: BTreeMap<String, Overlay> = BTreeMap::new();
    for c in Config::ALL.into_iter().filter(wanted) {
        if ups.contains_key(&c.run()) {
            continue;
        }
        guard.0.push(c.run());
        let up = bring_up(&opts.scenario, c)?;
        if c.mode() == Mode::Vnet {
            overlays.insert(c.run(), Overlay::load(&up.state)?);
        }
        ups.insert(c.run(), up);
    }
    let mut samples: BTreeMap<Config, Vec<Sample>> = BTreeMap::new();
    let mut wakeups: Vec<f64> = Vec::new();
    let result = (|| -> Result<()> {
        for r in 0..opts.repeat {
            let interval = Duration::from_secs_f64(opts.ping_interval_ms / 1000.0);
            let w = wakeup_pair_rtts(opts.pings, interval)?;
            eprintln!(
                "bench dataplane: repeat {}/{}: two-thread UDP ping-pong at {} ms: median {:.0} µs",
                r + 1,
                opts.repeat,
                opts.ping_interval_ms,
                median(&w)
            );
            wakeups.extend(w);
            for c in order(r).into_iter().filter(wanted) {
                let up = &ups[&c.run()];
                let o = overlays.get(&c.run());
                let s = measure(up, o, c, opts, &scenario.tcp_congestion)?;
                eprintln!(
                    "bench dataplane: repeat {}/{}: {:<17} {:>8.0} Mbit/s  {:>6.2} CPU s/GB  \
                     RTT median {:>5.0} µs  ({} retransmits, path MTU {}, background {:.2} cores)",
                    r + 1,
                    opts.repeat,
                    c.name(),
                    s.flow.bps / 1e6,
                    s.cpu_s_per_gb(s.cpu_s),
                    median(&s.rtts_us),
                    s.flow.retransmits,
                    s.pmtu,
                    s.background_cores
                );
                samples.entry(c).or_default().push(s);
            }
        }
        Ok(())
    })();
    for up in ups.values_mut() {
        let _ = up.server.kill();
        let _ = up.server.wait();
    }
    drop(guard);
    result?;
    Ok(report(opts, &scenario, &samples, &wakeups))
}

/// One row's figures.
struct Row {
    mbit: (f64, f64, f64),
    cpu_gb: (f64, f64, f64),
    run_cpu_gb: f64,
    rtt_median: f64,
    rtt_p99: f64,
    rtt_medians: (f64, f64, f64),
    retransmits: f64,
    pmtu: u32,
    proxy_mb: f64,
    relayed: Option<u64>,
}

fn row(samples: &[Sample]) -> Row {
    let mbit: Vec<f64> = samples.iter().map(|s| s.flow.bps / 1e6).collect();
    let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_s_per_gb(s.cpu_s)).collect();
    let run_cpu: Vec<f64> = samples
        .iter()
        .map(|s| s.cpu_s_per_gb(s.run_cpu_s))
        .collect();
    let rtts: Vec<f64> = samples.iter().flat_map(|s| s.rtts_us.clone()).collect();
    let medians: Vec<f64> = samples.iter().map(|s| median(&s.rtts_us)).collect();
    #[allow(clippy::cast_precision_loss)]
    let retransmits: Vec<f64> = samples.iter().map(|s| s.flow.retransmits as f64).collect();
    #[allow(clippy::cast_precision_loss)]
    let proxy: Vec<f64> = samples.iter().map(|s| s.proxy_bytes as f64 / 1e6).collect();
    Row {
        mbit: spread(&mbit),
        cpu_gb: spread(&cpu),
        run_cpu_gb: median(&run_cpu),
        rtt_median: median(&rtts),
        rtt_p99: percentile(&rtts, 99),
        rtt_medians: spread(&medians),
        retransmits: median(&retransmits),
        pmtu: samples.iter().map(|s| s.pmtu).min().unwrap_or(0),
        proxy_mb: median(&proxy),
        relayed: samples.iter().filter_map(|s| s.relayed).max(),
    }
}

fn report(
    opts: &Options,
    scenario: &Scenario,
    samples: &BTreeMap<Config, Vec<Sample>>,
    wakeups: &[f64],
) -> Value {
    let rows: BTreeMap<Config, Row> = samples.iter().map(|(c, s)| (*c, row(s))).collect();
    let background: Vec<f64> = samples
        .values()
        .flatten()
        .map(|s| s.background_cores)
        .collect();
    let (bg_med, _, bg_max) = spread(&background);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nData path between two guests on different hosts (scenario {}: unshaped veths, underlay \
         MTU {}, guests 1500, {}),\none iperf3 TCP flow vm1 -> vm2 of {} s after {} s omitted, {} \
         repeats interleaved; median [min-max]; {} pings at {} ms pooled over the repeats.\n\
         The hosts have no CPU quota and the flow is CPU-bound: the machine's {cores} cores are the \
         bottleneck of every row,\nso Mbit/s is what they push through each path and CPU s/GB is \
         the fair comparison. Machine background\nload before the flows: median {bg_med:.2} cores, \
         at most {bg_max:.2}.\n",
        scenario.name,
        scenario.underlay_mtu,
        scenario.tcp_congestion,
        opts.seconds,
        opts.omit,
        opts.repeat,
        opts.pings,
        opts.ping_interval_ms
    );
    println!(
        "{:<17} {:>24} {:>22} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6} {:>10}",
        "config",
        "Mbit/s",
        "CPU s/GB (machine)",
        "run s/GB",
        "RTT p50",
        "RTT p99",
        "retrans",
        "PMTU",
        "Proxy",
        "relayed"
    );
    println!(
        "{:<17} {:>24} {:>22} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6} {:>10}",
        "", "", "", "", "µs", "µs", "(median)", "", "MB", "frames"
    );
    for (c, r) in &rows {
        println!(
            "{:<17} {:>8.0} [{:>6.0}-{:>6.0}] {:>6.2} [{:>5.2}-{:>5.2}] {:>8.2} {:>9.0} {:>9.0} \
             {:>9.0} {:>6} {:>6.1} {:>10}",
            c.name(),
            r.mbit.0,
            r.mbit.1,
            r.mbit.2,
            r.cpu_gb.0,
            r.cpu_gb.1,
            r.cpu_gb.2,
            r.run_cpu_gb,
            r.rtt_median,
            r.rtt_p99,
            r.retransmits,
            r.pmtu,
            r.proxy_mb,
            r.relayed.map_or("-".to_string(), |n| n.to_string())
        );
    }
    println!(
        "\nRTT p50 of each repeat (min-max): {}",
        rows.iter()
            .map(|(c, r)| format!("{} {:.0}-{:.0}", c.name(), r.rtt_medians.1, r.rtt_medians.2))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "PMTU: vm1's path MTU to vm2 after the flow (vxlan: Linux's bridged VXLAN answers \
         don't-fragment packets over 1450 bytes\nwith ICMP \"fragmentation needed\", so guests' TCP \
         runs at 1450 there; the others carry 1500-byte frames, fragmented underneath).\n\
         Proxy MB: bytes through the Proxy's underlay NIC during the flow; relayed: unicast frames \
         the Proxy's vnetd relayed."
    );
    let get = |c: Config| rows.get(&c);
    let ratio = |a: Config, b: Config, f: fn(&Row) -> f64| match (get(a), get(b)) {
        (Some(x), Some(y)) => f(x) / f(y),
        _ => f64::NAN,
    };
    let udp_vs_vxlan = ratio(Config::VnetUdp, Config::Vxlan, |r| r.mbit.0);
    let udp_vs_tinc = ratio(Config::VnetUdp, Config::Tinc, |r| r.mbit.0);
    let cpu_udp_vs_vxlan = ratio(Config::VnetUdp, Config::Vxlan, |r| r.cpu_gb.0);
    let cpu_udp_vs_tinc = ratio(Config::VnetUdp, Config::Tinc, |r| r.cpu_gb.0);
    let added_rtt_us = match (get(Config::VnetUdp), get(Config::Direct)) {
        (Some(u), Some(d)) => u.rtt_median - d.rtt_median,
        _ => f64::NAN,
    };
    let wakeup_pair = median(wakeups);
    println!(
        "Machine floor for user-space forwarders: a UDP round trip between two threads on \
         loopback, {} times at {} ms like the pings,\ntakes {wakeup_pair:.0} µs median (p99 \
         {:.0} µs): two thread wake-ups after idling, nearly nothing else. vnetd and tinc \
         put four such\nwake-ups on every guest-to-guest ping (one per daemon and direction); \
         direct and vxlan none (the kernel forwards).",
        wakeups.len(),
        opts.ping_interval_ms,
        percentile(wakeups, 99)
    );
    // A target whose rows were not measured (`--only`) is not judged.
    let verdict = |figure: f64, ok: bool| match (figure.is_nan(), ok) {
        (true, _) => "not measured",
        (false, true) => "met",
        (false, false) => "MISSED",
    };
    println!(
        "\nvnetd-udp / vxlan throughput  {udp_vs_vxlan:>6.3}   (target >= 0.5: {})\n\
         vnetd-udp / tinc throughput   {udp_vs_tinc:>6.3}   (target >= 1.5: {})\n\
         vnetd-udp RTT - direct RTT    {added_rtt_us:>6.0} µs (target <= 50 µs: {})\n\
         vnetd-udp / vxlan CPU per GB  {cpu_udp_vs_vxlan:>6.3}\n\
         vnetd-udp / tinc CPU per GB   {cpu_udp_vs_tinc:>6.3}\n",
        verdict(udp_vs_vxlan, udp_vs_vxlan >= 0.5),
        verdict(udp_vs_tinc, udp_vs_tinc >= 1.5),
        verdict(added_rtt_us, added_rtt_us <= 50.0)
    );
    let mut figures = serde_json::Map::new();
    figures.insert("udp_vs_vxlan".into(), json!(udp_vs_vxlan));
    figures.insert("udp_vs_tinc".into(), json!(udp_vs_tinc));
    figures.insert("added_rtt_us".into(), json!(added_rtt_us));
    figures.insert("cpu_udp_vs_vxlan".into(), json!(cpu_udp_vs_vxlan));
    figures.insert("cpu_udp_vs_tinc".into(), json!(cpu_udp_vs_tinc));
    figures.insert("wakeup_pair_rtt_us".into(), json!(wakeup_pair));
    figures.insert(
        "targets_met".into(),
        json!(udp_vs_vxlan >= 0.5 && udp_vs_tinc >= 1.5 && added_rtt_us <= 50.0),
    );
    for (c, r) in &rows {
        let k = c.name().replace('-', "_");
        figures.insert(format!("{k}_mbit_s"), json!(r.mbit.0));
        figures.insert(format!("{k}_cpu_s_per_gb"), json!(r.cpu_gb.0));
        figures.insert(format!("{k}_rtt_us"), json!(r.rtt_median));
    }
    figures.insert("repeats".into(), json!(opts.repeat));
    Value::Object(figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::common::cpu_ticks;
    use vnetd::model::{DstMatch, Link, SrcMatch, Target};

    fn star() -> Topology {
        let text = vnetd::cli::star(
            &"proxy".parse().unwrap(),
            &[
                "host1".parse().unwrap(),
                "host2".parse().unwrap(),
                "host3".parse().unwrap(),
            ],
            &[
                vnetd::cli::parse_guest("host1:vm1:02:56:4e:00:00:01").unwrap(),
                vnetd::cli::parse_guest("host2:vm2:02:56:4e:00:00:02").unwrap(),
                vnetd::cli::parse_guest("host3:vm3:02:56:4e:00:00:03").unwrap(),
            ],
            &"lan0".parse().unwrap(),
            &vnetd::cli::Daemon {
                user: "root".into(),
                port: 5400,
                interface: "eth0".parse().unwrap(),
            },
        )
        .unwrap();
        vnetd::cli::load("star", &text).unwrap()
    }

    #[test]
    fn a_fast_path_is_one_link_and_a_rule_at_each_end() {
        let star = star();
        let proxy: Name = "proxy".parse().unwrap();
        let (h1, h2): (Name, Name) = ("host1".parse().unwrap(), "host2".parse().unwrap());
        for kind in [LinkKind::Udp, LinkKind::Tcp] {
            let t = fast_path(&star, &proxy, &h1, &h2, kind).unwrap();
            assert_eq!(t.links.len(), star.links.len() + 1);
            assert!(t
                .links
                .contains(&Link::new(h1.clone(), h2.clone(), kind).unwrap()));
            let rule = |at: &Name, mac: &str| {
                t.rules[at]
                    .get(&(SrcMatch::Any, DstMatch::Is(mac.parse().unwrap())))
                    .cloned()
            };
            assert_eq!(
                rule(&h1, "02:56:4e:00:00:02"),
                Some(Target::Link(h2.clone()))
            );
            assert_eq!(
                rule(&h2, "02:56:4e:00:00:01"),
                Some(Target::Link(h1.clone()))
            );
            // host3's guest still goes by the star, and host3 is untouched.
            assert_eq!(rule(&h1, "02:56:4e:00:00:03"), None);
            let host3: Name = "host3".parse().unwrap();
            assert_eq!(t.rules.get(&host3), star.rules.get(&host3));
            assert!(vnetd::forward::check(&t, &proxy).is_empty());
            let route = vnetd::cli::route(
                &t,
                &proxy,
                "02:56:4e:00:00:01".parse().unwrap(),
                "02:56:4e:00:00:02".parse().unwrap(),
                &[],
            )
            .unwrap();
            let k = if kind == LinkKind::Udp { "udp" } else { "tcp" };
            assert_eq!(
                route.to_string(),
                format!("host1 --{k}--> host2 -> port vm2")
            );
        }
        assert!(fast_path(&star, &proxy, &h1, &proxy, LinkKind::Udp).is_err());
        assert!(fast_path(&star, &proxy, &h1, &h1, LinkKind::Udp).is_err());
    }

    #[test]
    fn repeats_rotate_the_order_and_cover_every_configuration() {
        assert_eq!(order(0), Config::ALL);
        assert_eq!(order(1)[0], Config::Vxlan);
        assert_eq!(order(1)[6], Config::Direct);
        for r in 0..8 {
            let mut o = order(r);
            o.sort();
            assert_eq!(o, Config::ALL);
        }
        assert_eq!(Config::VnetTcp.run(), "dp-vnet");
        assert_eq!(Config::Tinc.run(), "dp-tinc");
        assert_eq!(Config::VnetUdpNoVttif.run(), "dp-vnet-novttif");
        assert_eq!(Config::VnetUdpNoVttif.vnetd_args(), ["--no-vttif"]);
    }

    #[test]
    fn reads_proc_stat_ping_iperf_route_and_nic_counters() {
        let stat = "cpu  100 5 50 1000 20 3 7 2 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(
            cpu_ticks(stat).unwrap(),
            (100 + 5 + 50 + 3 + 7 + 2, 167 + 1020)
        );
        assert!(cpu_ticks("intr 1 2\n").is_err());

        let ping = "PING 10.10.0.2 (10.10.0.2) 56(84) bytes of data.\n\
                    64 bytes from 10.10.0.2: icmp_seq=1 ttl=64 time=0.045 ms\n\
                    64 bytes from 10.10.0.2: icmp_seq=2 ttl=64 time=1.20 ms\n\n\
                    rtt min/avg/max/mdev = 0.045/0.622/1.200/0.577 ms\n";
        let rtts = ping_rtts_us(ping);
        assert_eq!(rtts.len(), 2);
        assert!((rtts[0] - 45.0).abs() < 1e-9 && (rtts[1] - 1200.0).abs() < 1e-9);

        let report = json!({
            "intervals": [
                {"sum": {"bytes": 1000, "omitted": true}},
                {"sum": {"bytes": 3000, "omitted": false}},
            ],
            "end": {
                "sum_sent": {"bytes": 3000, "retransmits": 4},
                "sum_received": {"bits_per_second": 24000.0},
                "sender_tcp_congestion": "cubic"
            }
        });
        assert_eq!(
            flow_of(&report).unwrap(),
            Flow {
                bps: 24000.0,
                bytes_sent: 4000,
                retransmits: 4,
                congestion: "cubic".into()
            }
        );
        let err = flow_of(&json!({"error": "unable to connect to server"})).unwrap_err();
        assert!(err.to_string().contains("unable to connect"));

        assert_eq!(
            route_mtu(
                "10.10.0.2 dev eth0 src 10.10.0.1 uid 0 \n    cache expires 599sec mtu 1450 \n",
                1500
            ),
            1450
        );
        assert_eq!(
            route_mtu(
                "10.10.0.2 dev eth0 src 10.10.0.1 uid 0 \n    cache \n",
                1500
            ),
            1500
        );

        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n    \
                   lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
                   eth0:  123456     100    0    0    0     0          0         0     6544      50    0    0    0     0       0          0\n";
        assert_eq!(nic_bytes(dev, "eth0"), Some(130_000));
        assert_eq!(nic_bytes(dev, "eth1"), None);
    }
}

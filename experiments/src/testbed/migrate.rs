//! `testbed migrate`: live migration of a guest from one host to another in a `vnet`-mode run.
//!
//! **This emulates a VM's migration**: a namespace guest has no memory image to move, so the
//! testbed moves what a VM's migration puts on the network and changes what it changes in the
//! overlay. Real VM migration (pre-copy with dirty-page logging, in the project's VMM) comes
//! later and will replace the copy below with the real one.
//!
//! # Steps
//!
//! 1. **Checks** before anything is touched: the run is in `vnet` mode, the guest and the host
//!    exist, the host is a host (not the Proxy, the user or a switch) and not the guest's home,
//!    and the daemons of the old home, the new home and the Proxy answer.
//! 2. **Pre-copy**, while the guest keeps running: the guest's memory worth of bytes goes as one
//!    TCP stream from the old home's namespace to the new home's, between their underlay
//!    addresses, so it crosses the run's real emulated path (access links, switches, site links,
//!    their shaping and the traffic already on them). The sending thread runs in the old home's
//!    cgroup and the receiving one in the new home's, where a VMM's migration threads would. The
//!    copy ends when the receiver acknowledges the last byte. Its size is the scenario's guest
//!    memory ([`crate::scenario::DEFAULT_GUEST_MEMORY`], 256 MiB, unless the scenario or
//!    [`MigrateOptions::memory_bytes`] says otherwise) multiplied by the scenario's `rate_scale`,
//!    like every rate, so that a copy takes as long as the unscaled memory would over the
//!    unscaled links (256 MiB at 0.1: 25.6 MiB, 21.5 s at the scaled 10 Mbit/s of a
//!    100 Mbit/s LAN).
//! 3. **Switch** (the downtime): first the overlay's rules move to the new home
//!    ([`vnetd::lang::rehome`] of the live overlay, applied with [`vnetd::online::apply`]: the
//!    fewest primitives, the new rules before the old ones go, links untouched, so the star
//!    always stays); then the old home's daemon detaches the guest's port and the new home's
//!    attaches it (the same port: a TAP named `eth0` in the guest's namespace, with the guest's
//!    MAC); then the guest's addresses, routes and MTU, read just before, are put back. The
//!    rules go first because most of `apply`'s time is reading and checking the live overlay,
//!    which then happens while the guest is still wholly up: the outage starts when the
//!    Proxy's rule sends the guest's frames to the new home, which drops them until the port
//!    is there.
//! 4. **Reachability**: the switch is done when the guest answers at its new home (the probe,
//!    below). If any step of the switch fails, or the guest does not answer within
//!    [`MigrateOptions::reply_timeout`], everything goes back: the port to the old home, the
//!    guest's configuration, the rules as they were; the error says so.
//! 5. **Processes**: the run's state now places the guest at the new home (its cgroup, its
//!    port's daemon, the run's `star.vnet`), so `testbed status`, `exec` and a later migration
//!    see it there; then every process in the guest's namespace moves to the new home's cgroup
//!    while it runs.
//!
//! # The NIC is recreated, and the guest does not notice but for the pause
//!
//! A TAP device takes one descriptor at a time (no multi-queue), so the new home's daemon
//! cannot open the guest's TAP while the old one holds it, and the old daemon's `DetachPort`
//! removes its (persistent) TAP. So the device is recreated with the same name, MAC and
//! MTU, and the tool restores the guest's IPv4 and IPv6 global addresses and its routes (those
//! the kernel does not derive from the addresses) as they were. The guest's sockets are not
//! tied to the device: Linux keeps a TCP connection whose address goes away and comes back, and
//! retransmits what was lost meanwhile, so connections survive (the end-to-end test checks
//! one). The guest's neighbour cache on `eth0` starts empty and is learnt again.
//!
//! # Downtime, measured
//!
//! From just before the switch until shortly after the guest has answered at its new home, a
//! thread in the user's machine's namespace sends the guest an ICMP echo request every
//! [`MigrateOptions::probe_interval`] (2 ms by default), on schedule whether or not the last
//! ones were answered (`ping` slows to one request per 10 ms while replies are missing, which
//! would blur an outage of tens of milliseconds), and records when each reply arrives. The
//! guest's kernel answers, so no program runs in the guest for it. The downtime is the largest
//! gap between two consecutive replies: the time during which nothing made the round trip
//! user → Proxy → home → guest and back. It is an upper bound on the outage within one probe
//! interval (with no outage, the gap is one interval). The report gives it with the probes
//! sent and answered, and the switch's own steps and their durations beside it.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::RngCore as _;
use serde::Serialize;
use vnetd::control::{PortSpec, Request, Response};
use vnetd::lang;
use vnetd::model::{Mac, Name, Topology};
use vnetd::online::{self, Hosts, Session};

use super::plan::{self, NodeKind, VNET_PORT};
use super::sys::{self, Cgroups};
use super::{state_dir, vnet, RunState};

/// The default interval between two probes of the downtime measurement.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(2);
/// The name of the Proxy's daemon (and node).
const PROXY: &str = "proxy";
/// The node that probes the guest during the switch.
const PROBER: &str = "user";
/// How long one control request may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the pre-copy may go without progress (connecting, a write, the acknowledgement).
const COPY_STALL: Duration = Duration::from_secs(60);

/// How to migrate.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The guest's memory in bytes instead of the scenario's (`--memory`); scaled by the
    /// scenario's `rate_scale` like the scenario's value.
    pub memory_bytes: Option<u64>,
    /// The interval between two probes of the downtime measurement.
    pub probe_interval: Duration,
    /// How long the guest may take to answer, before the switch at its old home and after it
    /// at its new one.
    pub reply_timeout: Duration,
    /// Print each step and its duration on stderr.
    pub progress: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            memory_bytes: None,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            reply_timeout: Duration::from_secs(10),
            progress: false,
        }
    }
}

/// What a migration did and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The run.
    pub run: String,
    /// The guest.
    pub vm: String,
    /// Its old home.
    pub from: String,
    /// Its new home.
    pub to: String,
    /// The guest's memory, as the scenario (or `--memory`) gives it.
    pub memory_bytes: u64,
    /// The scenario's rate scale, which the memory is multiplied by.
    pub rate_scale: f64,
    /// Bytes the pre-copy sent (and the new home received).
    pub bytes_copied: u64,
    /// How long the pre-copy took, from connecting until the last byte was acknowledged.
    pub copy_seconds: f64,
    /// `bytes_copied` over `copy_seconds`, in bit/s.
    pub copy_rate_bps: f64,
    /// The narrowest rate on the emulated path between the two hosts (scaled); `None` if the
    /// path is unshaped.
    pub path_rate_bps: Option<u64>,
    /// The downtime: the largest gap between two consecutive probe replies, in seconds.
    pub downtime_seconds: f64,
    /// How the downtime was measured.
    pub downtime_method: String,
    /// Probes sent while the switch was measured.
    pub probes_sent: u64,
    /// Probes answered.
    pub probes_answered: u64,
    /// The switch's own duration: from the start of applying the rules (which reads the live
    /// overlay first) until the guest's NIC configuration was back.
    pub switch_seconds: f64,
    /// The overlay primitives that moved the guest's routes, in the order applied.
    pub primitives: Vec<String>,
    /// The switch's steps and their seconds: the rules, detach, attach, the NIC's
    /// configuration.
    pub switch_steps: Vec<(String, f64)>,
    /// Processes of the guest moved to the new home's cgroup.
    pub processes_moved: usize,
    /// The whole migration, checks included.
    pub total_seconds: f64,
}

/// Migrates guest `vm` of run `run` to host `to_host` (see the module documentation).
///
/// # Errors
/// A run that is not in `vnet` mode, an unknown guest or host, a destination that is not a
/// host or is the guest's home already, a daemon that does not answer, another migration of
/// the same guest in progress (guests migrate at the same time, their switches take turns); a
/// failing pre-copy (nothing changed); a failing switch (everything put back: the guest runs
/// at its old home); a failure to record the new home after a switch that
/// succeeded (the error says the guest runs at its new home).
pub fn migrate(
    run: &str,
    vm: &str,
    to_host: &str,
    opts: &MigrateOptions,
) -> Result<MigrationReport> {
    let start = Instant::now();
    // Migrations of different guests copy at the same time; their switches take turns.
    let _guest_lock = lock(run, Some(vm))?;
    let state = RunState::load(run)?;
    let place = Placement::of(&state, vm, to_host)?;
    let scenario = state.scenario()?;
    let memory_bytes = match opts.memory_bytes {
        Some(m) => m,
        None => scenario
            .guests
            .iter()
            .find(|g| g.name == vm)
            .map(|g| g.memory_bytes)
            .with_context(|| format!("guest {vm} is not in the run's scenario"))?,
    };
    let bytes = scenario.migrated_bytes(memory_bytes);
    let say = |what: &str, since: Instant| {
        if opts.progress {
            eprintln!(
                "testbed: migrate {vm}: {what:<40} {:>9.1} ms",
                since.elapsed().as_secs_f64() * 1e3
            );
        }
    };

    let t = Instant::now();
    let mut overlay = Overlay::open(run, &place)?;
    overlay.check_daemons()?;
    let spec = overlay.port_spec()?;
    say("checks", t);

    let t = Instant::now();
    let copy = precopy(run, &state, &place, bytes).with_context(|| {
        format!(
            "pre-copy from {} to {} (nothing was changed)",
            place.from, place.to
        )
    })?;
    say(&format!("pre-copy of {bytes} bytes"), t);

    // Everything the switch needs, ready before it starts, under the run's switch lock (the
    // state read again: another guest's switch may have changed it during the copy).
    let _switch_lock = lock(run, None)?;
    let mut state = RunState::load(run)?;
    let t = Instant::now();
    let before = overlay
        .live()
        .context("read the live overlay before the switch (nothing was changed)")?;
    let after = lang::rehome(
        &before,
        place.mac,
        place.port.clone(),
        &place.from,
        &place.to,
        &overlay.proxy,
    )
    .map_err(|e| anyhow!("cannot move {vm}'s routes (nothing was changed): {e}"))?;
    let nic = Nic::read(&place.netns)?;
    let mut probe = Probe::start(run, place.ip, opts.probe_interval)?;
    probe
        .wait_reply_after(t, opts.reply_timeout)
        .with_context(|| {
            format!(
                "{vm} does not answer pings from {PROBER} before the switch (nothing was changed)"
            )
        })?;
    say("switch prepared (live rules, NIC, probe)", t);

    let t = Instant::now();
    let switched = overlay.switch(&spec, &nic, &after);
    let switch_seconds = t.elapsed().as_secs_f64();
    let switch_end = Instant::now();
    let reachable = switched.and_then(|switched| {
        probe
            .wait_reply_after(switch_end, opts.reply_timeout)
            .with_context(|| format!("{vm} does not answer at {} after the switch", place.to))?;
        Ok(switched)
    });
    let switched = match reachable {
        Ok(s) => s,
        Err(e) => {
            let _ = probe.stop();
            let undo = overlay.restore(&spec, &nic, &before, &after);
            let e = e.context(format!("migration of {vm} to {} failed", place.to));
            return Err(match undo {
                Ok(left) if left.is_empty() => e.context(format!(
                    "everything was put back: {vm} runs at {}",
                    place.from
                )),
                Ok(left) => e.context(format!(
                    "{vm} was put back and runs at {}; left at {}: {}",
                    place.from,
                    place.to,
                    left.join("; ")
                )),
                Err(u) => e.context(format!(
                    "and putting {vm} back at {} failed too: {u:#}",
                    place.from
                )),
            });
        }
    };
    say("switch", t);

    let t = Instant::now();
    let at_new_home = || format!("{vm} runs at its new home {}, but", place.to);
    place.record(&mut state).with_context(at_new_home)?;
    let processes_moved =
        move_processes(run, &place.netns, place.to.as_str()).with_context(at_new_home)?;
    say("state and processes", t);
    // A little more probing after the first reply, so that the gap is measured whole.
    let tail = opts.probe_interval * 20;
    std::thread::sleep(tail.saturating_sub(switch_end.elapsed()));
    let probed = probe.stop().with_context(at_new_home)?;

    #[allow(clippy::cast_precision_loss)]
    let copy_rate_bps = if copy.seconds > 0.0 {
        copy.bytes as f64 * 8.0 / copy.seconds
    } else {
        0.0
    };
    Ok(MigrationReport {
        run: run.to_string(),
        vm: vm.to_string(),
        from: place.from.to_string(),
        to: place.to.to_string(),
        memory_bytes,
        rate_scale: scenario.rate_scale,
        bytes_copied: copy.bytes,
        copy_seconds: copy.seconds,
        copy_rate_bps,
        path_rate_bps: path_rate(&scenario, place.from.as_str(), place.to.as_str()),
        downtime_seconds: probed.largest_gap,
        downtime_method: format!(
            "largest gap between consecutive replies to ICMP echo requests sent from {PROBER} to \
             {vm} every {:.0} ms through the switch (an upper bound within one interval)",
            opts.probe_interval.as_secs_f64() * 1e3
        ),
        probes_sent: probed.sent,
        probes_answered: probed.answered,
        switch_seconds,
        primitives: switched.primitives,
        switch_steps: switched.steps,
        processes_moved,
        total_seconds: start.elapsed().as_secs_f64(),
    })
}

/// A readable rendering of a report, one aspect a line.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn report_text(r: &MigrationReport) -> String {
    let mbit = |bps: f64| bps / 1e6;
    let path = r.path_rate_bps.map_or("unshaped".to_string(), |p| {
        format!("{:.2} Mbit/s", mbit(p as f64))
    });
    format!(
        "{vm} migrated from {from} to {to} in {total:.2} s (an emulated VM migration)\n\
         \x20 pre-copy   {bytes} bytes ({mem:.1} MiB x rate scale {scale}) in {copy:.2} s: \
         {rate:.2} Mbit/s over a path of {path}\n\
         \x20 downtime   {down:.1} ms ({probes_answered} of {probes_sent} probes answered; {method})\n\
         \x20 switch     {switch:.1} ms: {steps}\n\
         \x20 rules      {n} primitives: {prims}\n\
         \x20 processes  {moved} moved to cgroup {to}\n",
        vm = r.vm,
        from = r.from,
        to = r.to,
        total = r.total_seconds,
        bytes = r.bytes_copied,
        mem = r.memory_bytes as f64 / f64::from(1u32 << 20),
        scale = r.rate_scale,
        copy = r.copy_seconds,
        rate = mbit(r.copy_rate_bps),
        down = r.downtime_seconds * 1e3,
        probes_answered = r.probes_answered,
        probes_sent = r.probes_sent,
        method = r.downtime_method,
        switch = r.switch_seconds * 1e3,
        steps = r
            .switch_steps
            .iter()
            .map(|(what, secs)| format!("{what} {:.1} ms", secs * 1e3))
            .collect::<Vec<_>>()
            .join(", "),
        n = r.primitives.len(),
        prims = r.primitives.join("; "),
        moved = r.processes_moved,
    )
}

/// Holds a migration lock of run `run`: `guest`'s (one migration of a guest at a time,
/// refused if taken) or, with `None`, the run's switch lock (one switch at a time: the switch
/// reads and rewrites the live rules and the run's state; waited for).
fn lock(run: &str, guest: Option<&str>) -> Result<nix::fcntl::Flock<fs::File>> {
    let name = guest.map_or("migrate.lock".to_string(), |g| format!("migrate-{g}.lock"));
    let path = state_dir(run).join(name);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|_| anyhow!("no run named `{run}` (see `testbed status`)"))?;
    match guest {
        Some(g) => nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| anyhow!("another migration of {g} in run `{run}` is in progress")),
        None => nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow!("locking run `{run}` for the switch: {e}")),
    }
}

/// Who moves where: the guest, its old and new homes, as the run's state names them.
struct Placement {
    vm: String,
    /// The guest's namespace.
    netns: String,
    /// The guest's address.
    ip: Ipv4Addr,
    mac: Mac,
    /// The guest's port (named after it).
    port: Name,
    /// The old home.
    from: Name,
    /// The new home.
    to: Name,
}

impl Placement {
    /// Checks the migration of `vm` to `to_host` against the run's state.
    fn of(state: &RunState, vm: &str, to_host: &str) -> Result<Placement> {
        let v = vnet::of(state)?;
        let hosts = || {
            v.daemons
                .iter()
                .filter(|d| d.role == plan::Role::Host)
                .map(|d| d.node.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let guest = state.node(vm)?;
        if guest.kind != NodeKind::Guest {
            let guests: Vec<&str> = state.guests().iter().map(|g| g.name.as_str()).collect();
            bail!(
                "`{vm}` is not a guest of run `{}`; its guests: {}",
                state.run,
                guests.join(", ")
            );
        }
        let to = state.node(to_host)?;
        if to.kind != NodeKind::Host {
            bail!(
                "`{to_host}` is not a host ({}): guests migrate between hosts: {}",
                format!("{:?}", to.kind).to_lowercase(),
                hosts()
            );
        }
        let port = v
            .ports
            .iter()
            .find(|p| p.name == vm)
            .with_context(|| format!("run `{}` has no overlay port for {vm}", state.run))?;
        if port.daemon == to_host {
            bail!("{vm} is on {to_host} already");
        }
        let mac: Mac = port
            .mac
            .as_deref()
            .with_context(|| format!("{vm}'s port has no MAC"))?
            .parse()
            .map_err(|e| anyhow!("{vm}'s MAC: {e}"))?;
        let name = |n: &str| n.parse::<Name>().map_err(|e| anyhow!("{e}"));
        Ok(Placement {
            vm: vm.to_string(),
            netns: guest.netns.clone(),
            ip: guest.ip.with_context(|| format!("{vm} has no address"))?,
            mac,
            port: name(vm)?,
            from: name(&port.daemon)?,
            to: name(to_host)?,
        })
    }

    /// Records the new home in the run's state (the guest's cgroup, its port's daemon) and in
    /// its `star.vnet`, which `vnetctl apply` may bring the overlay back to.
    fn record(&self, state: &mut RunState) -> Result<()> {
        for node in state.plan.nodes.iter_mut().filter(|n| n.name == self.vm) {
            node.cgroup = self.to.to_string();
        }
        if let Some(v) = state.plan.vnet.as_mut() {
            for port in v.ports.iter_mut().filter(|p| p.name == self.vm) {
                port.daemon = self.to.to_string();
            }
        }
        state.save()?;
        let file = vnet::star_file(&state.run);
        let star = read_star(&state.run)?;
        let proxy = name_of(PROXY)?;
        let star = lang::rehome(
            &star,
            self.mac,
            self.port.clone(),
            &self.from,
            &self.to,
            &proxy,
        )
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let tmp = file.with_extension("vnet.tmp");
        fs::write(&tmp, lang::print(&star)).with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &file).with_context(|| format!("replace {}", file.display()))
    }
}

/// The run's `star.vnet`: every daemon, and the star with each guest at its home.
fn read_star(run: &str) -> Result<Topology> {
    let file = vnet::star_file(run);
    let text = fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    lang::parse_topology(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
}

/// `s` as a daemon's name.
fn name_of(s: &str) -> Result<Name> {
    s.parse().map_err(|e| anyhow!("{e}"))
}

/// The run's overlay, as seen from the Proxy's namespace (the only one that reaches every
/// daemon's control port).
struct Overlay<'a> {
    place: &'a Placement,
    proxy_netns: String,
    proxy: Name,
    /// Every daemon, as the run's star declares them.
    declared: Topology,
    session: Session,
}

impl<'a> Overlay<'a> {
    fn open(run: &str, place: &'a Placement) -> Result<Overlay<'a>> {
        let key = vnetd::control::read_key_file(&vnet::key_file(run)).map_err(|e| anyhow!(e))?;
        let hosts = Hosts::load(&vnet::hosts_file(run))?;
        Ok(Overlay {
            place,
            proxy_netns: plan::netns_name(run, PROXY),
            proxy: name_of(PROXY)?,
            declared: read_star(run)?,
            session: Session::new(key, hosts, CONTROL_TIMEOUT),
        })
    }

    /// Runs `f` with the session on a thread in the Proxy's namespace.
    fn on_proxy<T: Send>(&mut self, f: impl FnOnce(&mut Session) -> Result<T> + Send) -> Result<T> {
        let session = &mut self.session;
        sys::in_netns(&self.proxy_netns, move || f(session))
    }

    /// One request to daemon `daemon`.
    fn call(&mut self, daemon: &Name, request: &Request) -> Result<Response> {
        let port = self
            .declared
            .hosts
            .get(daemon)
            .map_or(VNET_PORT, |h| h.port);
        let (daemon, request) = (daemon.clone(), request.clone());
        self.on_proxy(move |s| Ok(s.call(&daemon, port, &request)?))
    }

    /// Checks that the daemons of both homes and the Proxy answer.
    fn check_daemons(&mut self) -> Result<()> {
        let names = [
            self.place.from.clone(),
            self.place.to.clone(),
            self.proxy.clone(),
        ];
        for name in names {
            self.call(&name, &Request::Info)
                .with_context(|| format!("the vnetd of {name} does not answer"))?;
        }
        Ok(())
    }

    /// The guest's port as the old home's daemon holds it.
    fn port_spec(&mut self) -> Result<PortSpec> {
        let from = self.place.from.clone();
        match self.call(&from, &Request::ListInterfaces)? {
            Response::Interfaces { ports } => ports
                .into_iter()
                .map(|p| p.spec)
                .find(|s| s.name == self.place.port)
                .with_context(|| {
                    format!(
                        "the vnetd of {from} has no port {}: the run's state is stale",
                        self.place.vm
                    )
                }),
            other => bail!("{from}: unexpected answer {other:?}"),
        }
    }

    /// The live overlay's links and rules.
    fn live(&mut self) -> Result<Topology> {
        let declared = self.declared.clone();
        self.on_proxy(move |s| Ok(online::live(s, &declared)?.topology))
    }

    /// Brings the overlay to `desired` (checked as a whole first); the primitives applied.
    fn apply(&mut self, desired: &Topology) -> Result<Vec<String>> {
        let (desired, proxy) = (desired.clone(), self.proxy.clone());
        self.on_proxy(move |s| Ok(online::apply(s, &desired, &proxy, |_| {})?.actions))
    }

    /// The switch: the rules to `rehomed`, then the port from the old home's daemon to the new
    /// home's and the guest's NIC configuration back. Returns the primitives applied.
    ///
    /// The rules move first: reading and checking the live overlay (most of `apply`'s time)
    /// then happens while the guest is still wholly up, and the outage starts only when the
    /// Proxy's rule sends the guest's frames to the new home, which drops them until the port
    /// is there.
    fn switch(&mut self, spec: &PortSpec, nic: &Nic, rehomed: &Topology) -> Result<Switched> {
        let (from, to) = (self.place.from.clone(), self.place.to.clone());
        let mut steps = Vec::new();
        let mut timed = |what: String, t: Instant| steps.push((what, t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let primitives = self
            .apply(rehomed)
            .with_context(|| format!("move {}'s routes to {to}", self.place.vm))?;
        timed("apply the rules".into(), t);
        let t = Instant::now();
        self.call(
            &from,
            &Request::DetachPort {
                name: spec.name.clone(),
            },
        )
        .with_context(|| format!("detach port {} at {from}", spec.name))?;
        timed(format!("detach at {from}"), t);
        let t = Instant::now();
        self.call(&to, &Request::AttachPort { port: spec.clone() })
            .with_context(|| format!("attach port {} at {to}", spec.name))?;
        timed(format!("attach at {to}"), t);
        let t = Instant::now();
        nic.restore(&self.place.netns)?;
        timed("restore the NIC configuration".into(), t);
        Ok(Switched { primitives, steps })
    }

    /// Puts the guest back at its old home after a failed [`Overlay::switch`], whichever step
    /// it got to: no port at the new home, the port at the old home, the guest's NIC
    /// configuration, and the rules of `before` (the primitives from `after` back to `before`;
    /// a rule already back or already gone is fine). The new home's daemon may be the one that
    /// failed: what only it holds (its port rule, a port it never attached) cannot keep the
    /// guest from its old home, so failing to clean it up is reported, not fatal. Returns those
    /// reports.
    fn restore(
        &mut self,
        spec: &PortSpec,
        nic: &Nic,
        before: &Topology,
        after: &Topology,
    ) -> Result<Vec<String>> {
        let (from, to) = (self.place.from.clone(), self.place.to.clone());
        let mut left = Vec::new();
        let has_port = |this: &mut Self, daemon: &Name| -> Result<bool> {
            match this.call(daemon, &Request::ListInterfaces)? {
                Response::Interfaces { ports } => {
                    Ok(ports.iter().any(|p| p.spec.name == spec.name))
                }
                other => bail!("{daemon}: unexpected answer {other:?}"),
            }
        };
        match has_port(self, &to) {
            Ok(true) => {
                // Its TAP holds the guest's NIC name: it must go for the old home's to come back.
                self.call(
                    &to,
                    &Request::DetachPort {
                        name: spec.name.clone(),
                    },
                )
                .with_context(|| format!("detach port {} at {to}", spec.name))?;
            }
            Ok(false) => {}
            Err(e) => left.push(format!("{to}: {e:#}")),
        }
        if !has_port(self, &from)? {
            self.call(&from, &Request::AttachPort { port: spec.clone() })
                .with_context(|| format!("attach port {} at {from}", spec.name))?;
        }
        nic.restore(&self.place.netns)?;
        for action in lang::plan(after, before) {
            let (lang::Action::Add(lang::Item::Rule { machine, rule })
            | lang::Action::Delete(lang::Item::Rule { machine, rule })) = &action
            else {
                bail!("`{action}`: a migration changes no link");
            };
            let request = match &action {
                lang::Action::Add(_) => Request::AddRule { rule: rule.clone() },
                lang::Action::Delete(_) => Request::DeleteRule {
                    src: rule.src,
                    dst: rule.dst,
                },
            };
            match self.call(machine, &request) {
                Ok(_) => {}
                Err(e) if *machine == to => left.push(format!("{to}: `{action}`: {e:#}")),
                // Never applied, or already undone.
                Err(e)
                    if matches!(action, lang::Action::Delete(_))
                        && format!("{e:#}").contains("has no rule") => {}
                Err(e) => return Err(e).context(format!("`{action}` at {machine}")),
            }
        }
        Ok(left)
    }
}

/// What the switch did: the primitives applied, and how long each step took.
struct Switched {
    primitives: Vec<String>,
    steps: Vec<(String, f64)>,
}

/// What the pre-copy did.
struct Copied {
    bytes: u64,
    seconds: f64,
}

/// Sends `bytes` bytes over TCP from the old home's namespace to the new home's, between their
/// underlay addresses, each end on a thread in its host's cgroup; timed from connecting until
/// the receiver acknowledges the last byte.
fn precopy(run: &str, state: &RunState, place: &Placement, bytes: u64) -> Result<Copied> {
    let from = state.node(place.from.as_str())?;
    let to = state.node(place.to.as_str())?;
    let to_ip = to
        .ip
        .with_context(|| format!("{} has no underlay address", place.to))?;
    let cg = Cgroups::new(run);
    let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
    let gave_up = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            sys::in_netns(&to.netns, || {
                cg.add_current_thread(&to.cgroup)?;
                let listener = TcpListener::bind((to_ip, 0))
                    .with_context(|| format!("listen on {to_ip} at {}", place.to))?;
                let _ = port_tx.send(listener.local_addr()?.port());
                receive(&listener, &gave_up)
            })
        });
        let port = port_rx
            .recv_timeout(COPY_STALL)
            .map_err(|_| anyhow!("the receiver at {} did not start", place.to));
        let sent = port.and_then(|port| {
            sys::in_netns(&from.netns, || {
                cg.add_current_thread(&from.cgroup)?;
                send(SocketAddr::from((to_ip, port)), bytes)
            })
        });
        if sent.is_err() {
            gave_up.store(true, Ordering::Relaxed);
        }
        let received = receiver
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the receiving thread panicked")));
        let seconds = sent?;
        let got = received?;
        if got != bytes {
            bail!("sent {bytes} bytes but {} received {got}", place.to);
        }
        Ok(Copied { bytes, seconds })
    })
}

/// Accepts one connection on `listener` (waiting at most [`COPY_STALL`], or until the sender
/// `gave_up`), reads it to its end and answers with the number of bytes read (8 bytes,
/// big-endian).
fn receive(listener: &TcpListener, gave_up: &AtomicBool) -> Result<u64> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + COPY_STALL;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && Instant::now() < deadline
                    && !gave_up.load(Ordering::Relaxed) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accept the pre-copy connection"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(COPY_STALL))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        match stream.read(&mut buf).context("read the pre-copy stream")? {
            0 => break,
            n => got += n as u64,
        }
    }
    stream
        .write_all(&got.to_be_bytes())
        .context("acknowledge the pre-copy")?;
    Ok(got)
}

/// Connects to `to`, writes `bytes` bytes (random, so nothing on the way could compress
/// them), closes its side and waits for the receiver's count; the seconds that took.
fn send(to: SocketAddr, bytes: u64) -> Result<f64> {
    let mut block = vec![0u8; 1 << 16];
    rand::thread_rng().fill_bytes(&mut block);
    let start = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&to, COPY_STALL).with_context(|| format!("connect to {to}"))?;
    stream.set_write_timeout(Some(COPY_STALL))?;
    stream.set_read_timeout(Some(COPY_STALL))?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(block.len(), |l| l.min(block.len()));
        stream
            .write_all(&block[..n])
            .context("send the pre-copy stream")?;
        left -= n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut ack = [0u8; 8];
    stream
        .read_exact(&mut ack)
        .context("wait for the pre-copy's acknowledgement")?;
    Ok(start.elapsed().as_secs_f64())
}

/// The narrowest rate (scaled, bit/s) on the emulated path between hosts `a` and `b`: their
/// access links and the site links between their sites; `None` if none is shaped.
fn path_rate(scenario: &crate::scenario::Scenario, a: &str, b: &str) -> Option<u64> {
    let site = |h: &str| scenario.host_index(h).map(|i| scenario.hosts[i].site);
    let (sa, sb) = (site(a)?, site(b)?);
    let access = [sa, sb].map(|s| scenario.sites[s].access.rate_bps);
    let links = scenario
        .site_path(sa, sb)
        .into_iter()
        .map(|l| scenario.links[l].shape.rate_bps);
    access.into_iter().chain(links).filter(|r| *r > 0).min()
}

/// Moves every process in the guest's namespace to cgroup `to` while it runs; a few rounds,
/// for processes started meanwhile. Returns how many moved.
fn move_processes(run: &str, netns: &str, to: &str) -> Result<usize> {
    let cg = Cgroups::new(run);
    let mut moved = BTreeSet::new();
    for _ in 0..5 {
        let there: BTreeSet<i32> = cg.pids_of(to).into_iter().collect();
        let left: Vec<i32> = sys::pids_in_netns(&[netns.to_string()])
            .into_iter()
            .filter(|p| !there.contains(p))
            .collect();
        if left.is_empty() {
            break;
        }
        for pid in left {
            let Ok(id) = u32::try_from(pid) else { continue };
            match cg.add(to, id) {
                Ok(()) => {
                    moved.insert(pid);
                }
                // It exited meanwhile.
                Err(_) if !Path::new(&format!("/proc/{pid}")).exists() => {}
                Err(e) => return Err(e).context(format!("move the guest's processes to {to}")),
            }
        }
    }
    Ok(moved.len())
}

/// A guest NIC's configuration, read before the switch and put back after it: its MTU, its
/// addresses (but IPv6 link-local ones, which the kernel makes) and its routes (but those the
/// kernel derives from the addresses), as `ip` commands.
struct Nic {
    commands: Vec<String>,
}

/// The guest's NIC, in every mode.
const GUEST_NIC: &str = "eth0";

impl Nic {
    fn read(netns: &str) -> Result<Nic> {
        let links = ip_json(netns, &["link", "show", "dev", GUEST_NIC])?;
        let mtu = links
            .first()
            .and_then(|l| l["mtu"].as_u64())
            .with_context(|| format!("no {GUEST_NIC} in {netns}"))?;
        let mut commands = vec![format!("link set {GUEST_NIC} mtu {mtu} up")];
        for link in ip_json(netns, &["addr", "show", "dev", GUEST_NIC])? {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64())
                else {
                    continue;
                };
                if a["family"] == "inet6" && a["scope"] == "link" {
                    continue;
                }
                let mut c = format!("addr replace {local}/{len} dev {GUEST_NIC}");
                if let Some(b) = a["broadcast"].as_str() {
                    c.push_str(&format!(" broadcast {b}"));
                }
                commands.push(c);
            }
        }
        for family in ["-4", "-6"] {
            for r in ip_json(netns, &[family, "route", "show", "dev", GUEST_NIC])? {
                if r["protocol"] == "kernel" {
                    continue;
                }
                let Some(dst) = r["dst"].as_str() else {
                    continue;
                };
                // The family follows from the destination or the gateway.
                let mut c = format!("route replace {dst}");
                if let Some(gw) = r["gateway"].as_str() {
                    c.push_str(&format!(" via {gw}"));
                }
                c.push_str(&format!(" dev {GUEST_NIC}"));
                for (key, word) in [
                    ("prefsrc", "src"),
                    ("protocol", "proto"),
                    ("scope", "scope"),
                ] {
                    if let Some(v) = r[key].as_str() {
                        c.push_str(&format!(" {word} {v}"));
                    }
                }
                if let Some(m) = r["metric"].as_u64() {
                    c.push_str(&format!(" metric {m}"));
                }
                commands.push(c);
            }
        }
        Ok(Nic { commands })
    }

    /// Puts the configuration back on the (new) NIC; every command replaces what is there, so
    /// putting it back twice is the same as once.
    fn restore(&self, netns: &str) -> Result<()> {
        sys::batch("ip", Some(netns), &self.commands)
            .context("restore the guest's NIC configuration")
    }
}

/// `ip -j -n NETNS ARGS`, parsed.
fn ip_json(netns: &str, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let out = Command::new("ip")
        .args(["-j", "-n", netns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (is iproute2 installed?)")?;
    if !out.status.success() {
        bail!(
            "ip -n {netns} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).with_context(|| format!("ip -j {}: {text}", args.join(" ")))
}

/// The downtime probe: ICMP echo requests from the user's machine to the guest on a fixed
/// schedule, one every interval whether answered or not (`ping` waits up to 10 ms between
/// probes while replies are missing, which would blur an outage of tens of milliseconds), on a
/// thread in the user's namespace that records when each reply arrives.
struct Probe {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ProbeLog>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

/// What the probe recorded.
#[derive(Default)]
struct ProbeLog {
    /// Requests sent.
    sent: u64,
    /// When each reply arrived, in order.
    replies: Vec<Instant>,
}

/// What the probe saw.
struct Probed {
    sent: u64,
    answered: u64,
    /// Seconds.
    largest_gap: f64,
}

impl Probe {
    fn start(run: &str, ip: Ipv4Addr, interval: Duration) -> Result<Probe> {
        let netns = plan::netns_name(run, PROBER);
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(ProbeLog::default()));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::Builder::new()
            .name("migrate-probe".into())
            .spawn(move || sys::in_netns(&netns, || probe(ip, interval, &stop2, &log2)))
            .context("start the probe thread")?;
        Ok(Probe {
            stop,
            log,
            thread: Some(thread),
        })
    }

    /// Waits for a reply that arrives after `after`.
    fn wait_reply_after(&mut self, after: Instant, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let answered = self
                .log
                .lock()
                .map_err(|_| anyhow!("the probe failed"))?
                .replies
                .last()
                .is_some_and(|t| *t > after);
            if answered {
                return Ok(());
            }
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                return self.finish().and_then(|()| bail!("the probe stopped"));
            }
            if Instant::now() > deadline {
                bail!(
                    "no reply to pings from {PROBER} within {:.0} s",
                    timeout.as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops the probe thread and returns its error, if it failed.
    fn finish(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the probe thread panicked")))
                .context("the downtime probe"),
            None => Ok(()),
        }
    }

    /// Stops the probe and says what it saw.
    fn stop(mut self) -> Result<Probed> {
        self.finish()?;
        let log = self.log.lock().map_err(|_| anyhow!("the probe failed"))?;
        let largest_gap = log
            .replies
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .fold(0.0_f64, f64::max);
        Ok(Probed {
            sent: log.sent,
            answered: log.replies.len() as u64,
            largest_gap,
        })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Bytes of an echo request: the ICMP header and 56 bytes of data, as `ping` sends.
const ECHO_LEN: usize = 64;

/// The probe's loop (on a thread in the prober's namespace): an echo request to `ip` every
/// `interval`, each reply's arrival logged, until `stop`.
fn probe(ip: Ipv4Addr, interval: Duration, stop: &AtomicBool, log: &Mutex<ProbeLog>) -> Result<()> {
    let socket = IcmpSocket::connect(ip).context("open a raw ICMP socket")?;
    // Tells our replies from those to anyone else's pings in the namespace.
    #[allow(clippy::cast_possible_truncation)]
    let id = (std::process::id() as u16) ^ 0x6d67;
    let mut next = Instant::now();
    let mut seq: u16 = 0;
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            socket
                .send(&echo_request(id, seq))
                .context("send an echo request")?;
            log.lock().map_err(|_| anyhow!("log poisoned"))?.sent += 1;
            seq = seq.wrapping_add(1);
            // On schedule, but never a burst to catch up after a stall.
            next = (next + interval).max(now);
            continue;
        }
        socket.wait(next - now)?;
        while let Some(n) = socket.recv(&mut buf)? {
            if is_reply(&buf[..n], id) {
                let at = Instant::now();
                log.lock()
                    .map_err(|_| anyhow!("log poisoned"))?
                    .replies
                    .push(at);
            }
        }
    }
    Ok(())
}

/// An ICMP echo request with identifier `id` and sequence number `seq`.
fn echo_request(id: u16, seq: u16) -> [u8; ECHO_LEN] {
    let mut p = [0u8; ECHO_LEN];
    p[0] = 8; // echo request, code 0
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[8..].iter_mut().enumerate() {
        #[allow(clippy::cast_possible_truncation)]
        let v = i as u8;
        *b = v;
    }
    let sum = internet_checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// RFC 1071's checksum of `data`.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[allow(clippy::cast_possible_truncation)]
    let folded = sum as u16;
    !folded
}

/// Whether `packet` (an IPv4 packet, as a raw socket reads it) is an echo reply with `id`.
fn is_reply(packet: &[u8], id: u16) -> bool {
    let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
    packet
        .get(header..header + 8)
        .is_some_and(|icmp| icmp[0] == 0 && icmp[4..6] == id.to_be_bytes())
}

/// A raw ICMP socket connected to one address (so it reads only that address's packets).
struct IcmpSocket {
    fd: OwnedFd,
}

impl IcmpSocket {
    fn connect(ip: Ipv4Addr) -> std::io::Result<IcmpSocket> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor just opened, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = libc::sockaddr_in {
            sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len =
            libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>()).unwrap_or_default();
        // SAFETY: `addr` is a valid `sockaddr_in` of `len` bytes that outlives the call.
        let r = unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(IcmpSocket { fd })
    }

    fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        // SAFETY: `packet` is valid for reads of its length for the duration of the call.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len(), 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            // No route or no neighbour (yet): the probe is lost, as on a wire.
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENOBUFS) => {
                    Ok(())
                }
                _ => Err(e),
            };
        }
        Ok(())
    }

    /// One packet into `buf`, or `None` if none is waiting.
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of its length for the duration of the call.
        let r = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match usize::try_from(r) {
            Ok(n) => Ok(Some(n)),
            Err(_) => {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => Ok(None),
                    // An ICMP error for an earlier request: not a reply.
                    Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ECONNREFUSED) => Ok(None),
                    _ => Err(e),
                }
            }
        }
    }

    /// Waits until a packet is waiting or `timeout` has passed.
    fn wait(&self, timeout: Duration) -> std::io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        // SAFETY: one valid `pollfd` and a valid `timespec`, both outliving the call; no
        // signal mask.
        let r = unsafe { libc::ppoll(&raw mut pfd, 1, &raw const ts, std::ptr::null()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn the_path_rate_is_the_narrowest_link_between_the_hosts() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/two-clusters.toml");
        let s = Scenario::load(&file).unwrap();
        // Access links 10 Mbit/s (scaled), the inter-cluster link 1 Mbit/s.
        assert_eq!(path_rate(&s, "host1", "host2"), Some(10_000_000));
        assert_eq!(path_rate(&s, "host1", "host5"), Some(1_000_000));
        assert_eq!(path_rate(&s, "host1", "nohost"), None);
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/dataplane.toml");
        let s = Scenario::load(&file).unwrap();
        assert_eq!(path_rate(&s, "host1", "host2"), None);
    }
}

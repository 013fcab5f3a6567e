//! The testbed: a scenario built out of network namespaces, cgroups and emulated links.
//!
//! [`up`] turns a [`Scenario`] into a [`Plan`] (pure, see [`plan`]) and carries it out step by step;
//! a failing step is named in the error and everything done so far is undone. [`down`] removes every
//! trace of a run — processes, namespaces (and with them every interface and qdisc), UTS namespace
//! mounts, cgroups, state — whether or not the run finished coming up; `up` of a run name first
//! does the same, so a crashed earlier run never gets in the way.

pub mod adapt;
pub mod migrate;
pub mod model;
pub mod plan;
pub mod sys;
pub mod tinc;
pub mod vnet;
pub mod wren;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use plan::{Mode, NodeKind, Options, Plan};
use sys::Cgroups;

use crate::linkemu::{self, LinkSpec};
use crate::scenario::Scenario;

/// What a run leaves in its state directory, `/run/testbed/RUN/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Run name.
    pub run: String,
    /// Scenario file it was built from.
    pub scenario_file: PathBuf,
    /// The scenario's text when it was built (the file may change afterwards).
    pub scenario_text: String,
    /// What was (or is being) built.
    pub plan: Plan,
    /// Pid of the link emulator of each emulated wire, by wire name.
    pub emulators: Vec<(String, u32)>,
    /// Pid of the overlay daemon of each node that runs one (`vnetd` in vnet mode, `tincd` in
    /// tinc mode), by node name.
    #[serde(default)]
    pub daemons: Vec<(String, u32)>,
    /// Seconds `up` took; `None` while it is still coming up.
    pub up_seconds: Option<f64>,
}

impl RunState {
    /// The scenario, parsed again from the text saved at `up`.
    ///
    /// # Errors
    /// Only if the saved state was tampered with.
    pub fn scenario(&self) -> Result<Scenario> {
        Ok(Scenario::parse(&self.scenario_file, &self.scenario_text)?)
    }

    /// Loads the state of run `run`.
    ///
    /// # Errors
    /// If there is no such run.
    pub fn load(run: &str) -> Result<Self> {
        let f = state_dir(run).join("state.json");
        let text = fs::read_to_string(&f)
            .map_err(|_| anyhow!("no run named `{run}` (see `testbed status --all`)"))?;
        serde_json::from_str(&text).with_context(|| format!("corrupt state file {}", f.display()))
    }

    /// Writes the state atomically (a new file renamed over the old), so that a process of the
    /// run reading it meanwhile (`testbed exec`) sees the old state or the new, never half.
    fn save(&self) -> Result<()> {
        let f = state_dir(&self.run).join("state.json");
        let tmp = f.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &f).with_context(|| format!("rename {} to {}", tmp.display(), f.display()))
    }

    /// The run's guests, `vm1` first.
    #[must_use]
    pub fn guests(&self) -> Vec<&plan::Node> {
        self.plan
            .nodes
            .iter()
            .filter(|x| x.kind == NodeKind::Guest)
            .collect()
    }

    /// The node named `name`.
    ///
    /// # Errors
    /// If the run has no such node; the message lists the nodes it has.
    pub fn node(&self, name: &str) -> Result<&plan::Node> {
        self.plan.node_named(name).ok_or_else(|| {
            let names: Vec<&str> = self.plan.nodes.iter().map(|n| n.name.as_str()).collect();
            anyhow!(
                "run `{}` has no node `{name}`; it has: {}",
                self.run,
                names.join(", ")
            )
        })
    }
}

/// Directory of a run's state.
#[must_use]
pub fn state_dir(run: &str) -> PathBuf {
    Path::new(sys::STATE_DIR).join(run)
}

fn uts_file(run: &str, node: &str) -> PathBuf {
    state_dir(run).join("uts").join(node)
}

/// Checks a run name: 1-24 characters of a-z, 0-9 and '-'.
///
/// # Errors
/// If the name is not valid.
pub fn check_run_name(run: &str) -> Result<()> {
    let ok = (1..=24).contains(&run.len())
        && run
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !run.starts_with('-');
    if ok {
        Ok(())
    } else {
        bail!("run name `{run}` must be 1-24 characters of a-z, 0-9 and '-'")
    }
}

/// Finds a binary of this package: the running one, or a sibling in the same target directory
/// (tests and benches run from `target/*/deps`).
///
/// # Errors
/// If it cannot be found.
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|f| f == name) {
        return Ok(exe);
    }
    let dir = exe.parent().context("executable has no directory")?;
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let package = match name {
        "vnetd" | "vnetctl" => "vnetd",
        _ => "experiments",
    };
    bail!(
        "cannot find the `{name}` binary next to {} (build it: `cargo build --release -p {package}`)",
        exe.display()
    )
}

/// Starts `program ARGS` on `node` of run `run` (`testbed exec`), in a process group of its
/// own, with no stdin and its stdout and stderr to the file `log`; `what` names it in errors.
pub(super) fn start_on_node(
    run: &str,
    node: &str,
    what: &str,
    program: &Path,
    args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>,
    log: &Path,
) -> Result<std::process::Child> {
    let testbed = sibling_binary("testbed")?;
    let file = fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    Command::new(&testbed)
        .args(["exec", run, node, "--"])
        .arg(program)
        .args(args)
        // A log file, not a terminal: no colour codes.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("start {what} on {node}"))
}

/// The last `lines` lines of a log file, for an error message.
pub(super) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n  ");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        format!("\n  {tail}")
    }
}

/// Waits, inside the namespace of `node` of run `run`, until something listens on TCP `port`;
/// fails at once if `child` (`what`, logging to `log`) exits first, and at `deadline`
/// otherwise, each time with the last lines of its log.
pub fn wait_listening(
    run: &str,
    node: &str,
    port: u16,
    deadline: Instant,
    what: &str,
    child: &mut std::process::Child,
    log: Option<&Path>,
) -> Result<()> {
    let start = Instant::now();
    let log_text = || {
        log.map_or(String::new(), |l| {
            format!("; log {}:{}", l.display(), log_tail(l, 10))
        })
    };
    sys::in_netns(&plan::netns_name(run, node), || loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} on {node} exited ({status}) before it listened on port {port}{}",
                log_text()
            );
        }
        if sys::tcp_listening(port)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{what} on {node} did not listen on port {port} within {:.0} s{}",
                start.elapsed().as_secs_f64(),
                log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    })
}

/// Brings scenario `file` up as run `run` (default: the scenario's name) in `mode`.
///
/// Progress goes to stderr. On failure, the error names the step, and the run is taken down.
///
/// # Errors
/// A bad scenario (nothing is created), or the failing step.
pub fn up(file: &Path, run: Option<&str>, mode: Mode) -> Result<RunState> {
    up_with(file, run, mode, Options::default())
}

/// Like [`up`], with [`Options`] (e.g. `--keep-underlay-mtu`).
///
/// # Errors
/// As [`up`].
pub fn up_with(file: &Path, run: Option<&str>, mode: Mode, options: Options) -> Result<RunState> {
    let scenario = Scenario::load(file)?;
    let run = run.unwrap_or(&scenario.name).to_string();
    check_run_name(&run)?;
    let start = Instant::now();
    let leftovers = down(&run)?;
    if leftovers.anything() {
        eprintln!("testbed: removed leftovers of an earlier run `{run}`: {leftovers}");
    }
    let plan = Plan::with_options(&scenario, &run, mode, options);
    let mut state = RunState {
        run: run.clone(),
        scenario_file: file.to_path_buf(),
        scenario_text: fs::read_to_string(file)?,
        plan,
        emulators: Vec::new(),
        daemons: Vec::new(),
        up_seconds: None,
    };
    match build(&scenario, &mut state) {
        Ok(()) => {
            state.up_seconds = Some(start.elapsed().as_secs_f64());
            state.save()?;
            Ok(state)
        }
        Err(e) => {
            let undo = down(&run);
            let e = e.context(format!(
                "testbed up {run} failed; everything it created was removed"
            ));
            match undo {
                Ok(_) => Err(e),
                Err(u) => Err(e.context(format!("and cleaning up failed too: {u:#}"))),
            }
        }
    }
}

fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    let r = f().with_context(|| format!("step `{name}`"))?;
    eprintln!(
        "testbed: {name:<28} {:>7.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(r)
}

fn build(scenario: &Scenario, state: &mut RunState) -> Result<()> {
    let run = state.run.clone();
    step("state directory", || {
        fs::create_dir_all(state_dir(&run).join("uts")).context("create /run/testbed")?;
        state.save()
    })?;
    let plan = state.plan.clone();
    let cg = Cgroups::new(&run);
    step("cgroups", || {
        plan.cgroups
            .iter()
            .try_for_each(|(n, q)| cg.create(n, *q))?;
        if let Err(e) = cg.grant_realtime(plan::NET_CGROUP) {
            eprintln!(
                "testbed: warning: link emulators will run without real-time priority: {e:#}"
            );
        }
        Ok(())
    })?;
    step("namespaces", || {
        let lines: Vec<String> = plan
            .nodes
            .iter()
            .map(|n| format!("netns add {}", n.netns))
            .collect();
        sys::batch("ip", None, &lines)
    })?;
    step("sysctls", || {
        sys::allow_congestion(&scenario.tcp_congestion)?;
        for n in &plan.nodes {
            sys::in_netns(&n.netns, || {
                if !scenario.ipv6 {
                    sys::sysctl("net/ipv6/conf/all/disable_ipv6", "1")?;
                    sys::sysctl("net/ipv6/conf/default/disable_ipv6", "1")?;
                }
                sys::sysctl("net/ipv4/tcp_congestion_control", &scenario.tcp_congestion)
            })?;
        }
        Ok(())
    })?;
    step("hostnames (UTS namespaces)", || {
        plan.nodes
            .iter()
            .filter(|n| n.kind != NodeKind::Switch)
            .try_for_each(|n| sys::create_uts(&uts_file(&run, &n.name), &n.name))
    })?;
    step("veth wires", || {
        let lines: Vec<String> = plan
            .wires
            .iter()
            .filter(|w| !w.needs_emulator())
            .map(|w| {
                format!(
                    "link add name {} netns {} type veth peer name {} netns {}",
                    w.a.ifname, w.a.netns, w.b.ifname, w.b.netns
                )
            })
            .collect();
        sys::batch("ip", None, &lines)
    })?;
    step("link emulators", || {
        let testbed = sibling_binary("testbed")?;
        for (k, w) in plan
            .wires
            .iter()
            .enumerate()
            .filter(|(_, w)| w.needs_emulator())
        {
            let pid = start_emulator(&testbed, &run, &plan, k)
                .with_context(|| format!("link emulator for {}", w.name))?;
            state.emulators.push((w.name.clone(), pid));
        }
        state.save()
    })?;
    step("interfaces and addresses", || {
        plan.ip
            .iter()
            .try_for_each(|(ns, l)| sys::batch("ip", Some(ns), l))
    })?;
    step("rate shaping (tc)", || {
        plan.tc
            .iter()
            .try_for_each(|(ns, l)| sys::batch("tc", Some(ns), l))
    })?;
    step("bridge tables", || {
        plan.bridge
            .iter()
            .try_for_each(|(ns, l)| sys::batch("bridge", Some(ns), l))
    })?;
    match plan.mode {
        Mode::Vnet => vnet::build(state)?,
        Mode::Tinc => tinc::build(state)?,
        Mode::Direct | Mode::Vxlan => {}
    }
    step("cross traffic and CPU hogs", || {
        start_background(scenario, state)
    })?;
    Ok(())
}

fn start_emulator(testbed: &Path, run: &str, plan: &Plan, k: usize) -> Result<u32> {
    let w = &plan.wires[k];
    let shape = w.shape.context("emulated wire without shape")?;
    let direction = |queue_bytes| linkemu::Shape {
        rate_bps: shape.rate_bps,
        delay: shape.delay,
        jitter: shape.jitter,
        loss: shape.loss,
        queue_bytes,
    };
    let end = |e: &plan::End| linkemu::Endpoint {
        netns: Path::new(sys::NETNS_DIR).join(&e.netns),
        ifname: e.ifname.clone(),
    };
    let spec = LinkSpec {
        name: w.name.clone(),
        a: end(&w.a),
        b: end(&w.b),
        a_to_b: direction(w.queue_a),
        b_to_a: direction(w.queue_b),
        max_frame: plan.max_frame(),
        seed: k as u64 + 1,
        stats_file: Some(state_dir(run).join(format!("link-{}.json", w.name))),
    };
    let log = fs::File::create(state_dir(run).join(format!("link-{}.log", w.name)))?;
    let mut child = Command::new(testbed)
        .args([
            "linkemu",
            "--run",
            run,
            "--spec",
            &serde_json::to_string(&spec)?,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("spawn {}", testbed.display()))?;
    let pid = child.id();
    let mut line = String::new();
    let stdout = child.stdout.take().context("emulator stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "ready" {
        let status = child.wait()?;
        let log = fs::read_to_string(state_dir(run).join(format!("link-{}.log", w.name)))
            .unwrap_or_default();
        bail!(
            "emulator exited ({status}) before it was ready: {}",
            log.trim()
        );
    }
    // The child keeps running; it is reaped by whoever kills it (`down`), or by init.
    std::mem::forget(child);
    Ok(pid)
}

/// Starts the scenario's cross traffic (constant-rate UDP with iperf3) and CPU hogs, detached,
/// in the right namespaces and cgroups.
fn start_background(scenario: &Scenario, state: &RunState) -> Result<()> {
    let testbed = sibling_binary("testbed")?;
    let spawn = |node: &str, script: String| -> Result<()> {
        Command::new(&testbed)
            .args(["exec", &state.run, node, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("start background job on {node}"))?;
        Ok(())
    };
    for (k, c) in scenario.cross_traffic.iter().enumerate() {
        let port = 5201 + k;
        let to_ip = state
            .node(&c.to)?
            .ip
            .context("cross traffic target has no address")?;
        spawn(&c.to, format!("exec iperf3 -s -p {port}"))?;
        spawn(
            &c.from,
            format!(
                "sleep {}; while ! iperf3 -c {to_ip} -p {port} -u -b {} -t 0 -l 1400 >/dev/null 2>&1; do sleep 0.2; done",
                c.start.as_secs_f64(),
                c.rate_bps
            ),
        )?;
    }
    for h in &scenario.cpu_hogs {
        let host = &scenario.hosts[h.host];
        spawn(
            &host.name,
            format!(
                "exec {} hog --after {}",
                testbed.display(),
                h.start.as_secs_f64()
            ),
        )?;
    }
    Ok(())
}

/// What `down` removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Removed {
    /// Processes killed.
    pub processes: usize,
    /// Network namespaces deleted.
    pub namespaces: usize,
    /// Whether the run's cgroups (in both controllers) were there and removed.
    pub cgroups: bool,
    /// State directory removed.
    pub state: bool,
}

impl Removed {
    /// Whether anything was there to remove.
    #[must_use]
    pub fn anything(&self) -> bool {
        self.processes > 0 || self.namespaces > 0 || self.cgroups || self.state
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} processes, {} namespaces{}{}",
            self.processes,
            self.namespaces,
            if self.cgroups { ", cgroups" } else { "" },
            if self.state { ", state" } else { "" }
        )
    }
}

/// Takes run `run` down: kills its processes, deletes its namespaces (and so its interfaces and
/// qdiscs), unmounts its UTS namespaces, removes its cgroups and state. Idempotent.
///
/// # Errors
/// If something of the run cannot be removed.
pub fn down(run: &str) -> Result<Removed> {
    check_run_name(run)?;
    let cg = Cgroups::new(run);
    let netns = sys::netns_with_prefix(&plan::netns_prefix(run));
    let mut removed = Removed::default();
    let mut pids = cg.pids();
    pids.extend(sys::pids_in_netns(&netns));
    pids.sort_unstable();
    pids.dedup();
    removed.processes = pids.len();
    sys::kill_everything(&cg, &netns)?;
    let dir = state_dir(run);
    sys::remove_uts_dir(&dir.join("uts"));
    if !netns.is_empty() {
        let lines: Vec<String> = netns.iter().map(|n| format!("netns del {n}")).collect();
        sys::batch("ip", None, &lines).context("delete namespaces")?;
        removed.namespaces = netns.len();
    }
    removed.cgroups = cg.run_dir("cpu").exists() || cg.run_dir("cpuacct").exists();
    cg.remove()?;
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
        removed.state = true;
    }
    if runs().is_empty() {
        sys::restore_allowed_congestion()?;
    }
    Ok(removed)
}

/// Names of every run that has anything on this machine (state, namespaces or cgroups).
#[must_use]
pub fn runs() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(sys::STATE_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.extend(sys::netns_with_prefix("tb-").iter().filter_map(|n| {
        n.strip_prefix("tb-")?
            .split_once('.')
            .map(|(r, _)| r.to_string())
    }));
    v.extend(Cgroups::runs());
    v.sort();
    v.dedup();
    v
}

/// Replaces the current process with `cmd` running on `node` of run `run`: in the node's network
/// and UTS namespaces, its cgroup (a guest's is its host's), with `/sys` showing the node's
/// interfaces. Returns only on error.
///
/// # Errors
/// Unknown run or node, or a failure to enter the node.
pub fn exec(run: &str, node: &str, cmd: &[String]) -> anyhow::Error {
    let Some((prog, args)) = cmd.split_first() else {
        return anyhow!("no command given");
    };
    let mut c = Command::new(prog);
    c.args(args);
    exec_command(run, node, c)
}

/// Like [`exec`], for a command already built (arguments, environment).
#[must_use]
pub fn exec_command(run: &str, node: &str, mut cmd: Command) -> anyhow::Error {
    match enter(run, node) {
        Ok(()) => {
            let e = cmd.exec();
            anyhow!(
                "cannot run `{}` on {node}: {e}",
                cmd.get_program().to_string_lossy()
            )
        }
        Err(e) => e,
    }
}

/// Moves the calling process into `node` of run `run` (see [`exec`]). Single-threaded callers only.
///
/// # Errors
/// Unknown run or node, or a failure to enter it.
pub fn enter(run: &str, node: &str) -> Result<()> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    use nix::sched::{setns, unshare, CloneFlags};
    let state = RunState::load(run)?;
    let n = state.node(node)?;
    Cgroups::new(run).add(&n.cgroup, std::process::id())?;
    let net = fs::File::open(Path::new(sys::NETNS_DIR).join(&n.netns))
        .with_context(|| format!("namespace {} is gone: is the run still up?", n.netns))?;
    unshare(CloneFlags::CLONE_NEWNS).context("unshare mount namespace")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("make / a slave mount")?;
    setns(&net, CloneFlags::CLONE_NEWNET).context("enter network namespace")?;
    if n.kind != NodeKind::Switch {
        let uts = fs::File::open(uts_file(run, node)).context("open UTS namespace")?;
        setns(&uts, CloneFlags::CLONE_NEWUTS).context("enter UTS namespace")?;
    }
    // Like `ip netns exec`: a /sys of this namespace, so tools see the node's own interfaces; but
    // keep the cgroup tree (in this private mount namespace only), so that commands run here can
    // start commands on other nodes (mpirun's agent does).
    let keep = state_dir(run).join("cgroup-mount");
    fs::create_dir_all(&keep)?;
    let none = None::<&str>;
    mount(
        Some("/sys/fs/cgroup"),
        &keep,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .context("keep cgroups")?;
    umount2("/sys", MntFlags::MNT_DETACH).context("unmount /sys")?;
    mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), none).context("mount /sys")?;
    mount(Some(&keep), "/sys/fs/cgroup", none, MsFlags::MS_MOVE, none)
        .context("move cgroups back")?;
    Ok(())
}

/// Status of one node.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its network namespace.
    pub netns: String,
    /// Whether the namespace exists.
    pub alive: bool,
    /// Its address.
    pub ip: Option<std::net::Ipv4Addr>,
    /// Its cgroup.
    pub cgroup: String,
    /// CPU quota of its cgroup in cores, if any.
    pub cpu_quota: Option<f64>,
    /// Processes running in its namespace.
    pub processes: usize,
}

/// Status of one wire.
#[derive(Debug, Serialize)]
pub struct WireStatus {
    /// Wire name.
    pub name: String,
    /// `emulator`, `tbf` or `veth`.
    pub kind: &'static str,
    /// The emulator's pid, for emulated wires.
    pub pid: Option<u32>,
    /// Whether the emulator (if any) is alive.
    pub alive: bool,
    /// Rate in bit/s (scaled), 0 = unshaped.
    pub rate_bps: u64,
    /// One-way delay in ms.
    pub delay_ms: f64,
    /// Jitter in ms.
    pub jitter_ms: f64,
    /// Loss probability.
    pub loss: f64,
    /// FIFO size in bytes at end `a` (a host's NIC, for access links).
    pub queue_a_bytes: u64,
    /// FIFO size in bytes at end `b` (the switch port, for access links).
    pub queue_b_bytes: u64,
}

/// Status of one overlay daemon (vnet mode).
#[derive(Debug, Serialize)]
pub struct DaemonStatus {
    /// The node it runs on.
    pub node: String,
    /// Its pid, if it was started.
    pub pid: Option<u32>,
    /// Whether it is alive (in its node's cgroup).
    pub alive: bool,
    /// Its UDP link socket and TCP control API.
    pub listen: String,
    /// Its Prometheus endpoint.
    pub metrics: String,
    /// Its log file.
    pub log: PathBuf,
}

/// Where a vnet-mode run's overlay files are, and how its daemons are.
#[derive(Debug, Serialize)]
pub struct VnetStatus {
    /// The daemons.
    pub daemons: Vec<DaemonStatus>,
    /// The pre-shared key file.
    pub key_file: PathBuf,
    /// The hosts file naming every daemon.
    pub hosts_file: PathBuf,
    /// The star configuration `up` applied.
    pub star_file: PathBuf,
}

/// Status of one `tincd` (tinc mode).
#[derive(Debug, Serialize)]
pub struct TincDaemonStatus {
    /// The node it runs on (its tinc name).
    pub node: String,
    /// Its pid, if it was started.
    pub pid: Option<u32>,
    /// Whether it is alive (in its node's cgroup).
    pub alive: bool,
    /// Its meta connections' (TCP) and packets' (UDP) address.
    pub address: String,
    /// Its configuration directory (`tinc.conf`, `hosts/`, keys, scripts).
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

/// How a tinc-mode run's daemons are.
#[derive(Debug, Serialize)]
pub struct TincStatus {
    /// The daemons.
    pub daemons: Vec<TincDaemonStatus>,
}

/// Status of a run.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Run name.
    pub run: String,
    /// Scenario file.
    pub scenario: PathBuf,
    /// Network mode.
    pub mode: Mode,
    /// Rate scale of the scenario.
    pub rate_scale: f64,
    /// How long `up` took, if it finished.
    pub up_seconds: Option<f64>,
    /// Nodes.
    pub nodes: Vec<NodeStatus>,
    /// Wires.
    pub wires: Vec<WireStatus>,
    /// The overlay, in vnet mode.
    pub vnet: Option<VnetStatus>,
    /// The tinc daemons, in tinc mode.
    pub tinc: Option<TincStatus>,
    /// The underlay's MTU (the scenario's, or raised for VXLAN).
    pub underlay_mtu: u32,
    /// Whether every namespace, emulator and overlay daemon is alive.
    pub healthy: bool,
}

/// The pid `up` recorded for the daemon on `node`, and whether it is still alive (in the
/// node's cgroup).
fn daemon_liveness(state: &RunState, cg: &Cgroups, node: &str) -> (Option<u32>, bool) {
    let pid = state
        .daemons
        .iter()
        .find(|(n, _)| n == node)
        .map(|(_, p)| *p);
    let cgroup = state.node(node).map_or("", |n| n.cgroup.as_str());
    let alive = pid.is_some_and(|p| cg.pids_of(cgroup).contains(&i32::try_from(p).unwrap_or(-1)));
    (pid, alive)
}

/// Reports the state of run `run`.
///
/// # Errors
/// If there is no such run.
pub fn status(run: &str) -> Result<Status> {
    let state = RunState::load(run)?;
    let scenario = state.scenario()?;
    let cg = Cgroups::new(run);
    let nodes: Vec<NodeStatus> = state
        .plan
        .nodes
        .iter()
        .map(|n| NodeStatus {
            name: n.name.clone(),
            kind: n.kind,
            netns: n.netns.clone(),
            alive: sys::netns_exists(&n.netns),
            ip: n.ip,
            cgroup: n.cgroup.clone(),
            cpu_quota: cg.quota(&n.cgroup),
            processes: sys::pids_in_netns(std::slice::from_ref(&n.netns)).len(),
        })
        .collect();
    let wires: Vec<WireStatus> = state
        .plan
        .wires
        .iter()
        .filter(|w| w.emulated)
        .map(|w| {
            let pid = state
                .emulators
                .iter()
                .find(|(n, _)| n == &w.name)
                .map(|(_, p)| *p);
            let s = w.shape.unwrap_or_default();
            let kind = if w.needs_emulator() {
                "emulator"
            } else if s.rate_bps > 0 {
                "tbf"
            } else {
                "veth"
            };
            WireStatus {
                name: w.name.clone(),
                kind,
                pid,
                alive: pid.is_none_or(|p| {
                    cg.pids_of(plan::NET_CGROUP)
                        .contains(&i32::try_from(p).unwrap_or(-1))
                }),
                rate_bps: s.rate_bps,
                delay_ms: s.delay.as_secs_f64() * 1e3,
                jitter_ms: s.jitter.as_secs_f64() * 1e3,
                loss: s.loss,
                queue_a_bytes: w.queue_a,
                queue_b_bytes: w.queue_b,
            }
        })
        .collect();
    let vnet = state.plan.vnet.as_ref().map(|v| VnetStatus {
        daemons: v
            .daemons
            .iter()
            .map(|d| {
                let (pid, alive) = daemon_liveness(&state, &cg, &d.node);
                DaemonStatus {
                    node: d.node.clone(),
                    pid,
                    alive,
                    listen: d.listen.to_string(),
                    metrics: d.metrics.to_string(),
                    log: vnet::log_file(run, &d.node),
                }
            })
            .collect(),
        key_file: vnet::key_file(run),
        hosts_file: vnet::hosts_file(run),
        star_file: vnet::star_file(run),
    });
    let tinc = state.plan.tinc.as_ref().map(|t| TincStatus {
        daemons: t
            .nodes
            .iter()
            .map(|d| {
                let (pid, alive) = daemon_liveness(&state, &cg, &d.node);
                TincDaemonStatus {
                    node: d.node.clone(),
                    pid,
                    alive,
                    address: format!("{}:{}", d.address, plan::TINC_PORT),
                    config: tinc::node_dir(run, &d.node),
                    log: tinc::log_file(run, &d.node),
                }
            })
            .collect(),
    });
    let healthy = nodes.iter().all(|n| n.alive)
        && wires.iter().all(|w| w.alive)
        && vnet
            .as_ref()
            .is_none_or(|v| v.daemons.iter().all(|d| d.alive))
        && tinc
            .as_ref()
            .is_none_or(|t| t.daemons.iter().all(|d| d.alive));
    Ok(Status {
        run: run.to_string(),
        scenario: state.scenario_file.clone(),
        mode: state.plan.mode,
        rate_scale: scenario.rate_scale,
        up_seconds: state.up_seconds,
        nodes,
        wires,
        vnet,
        tinc,
        underlay_mtu: state.plan.underlay_mtu,
        healthy,
    })
}

/// Runs `patterns` with one rank on each of the first `n` guests of run `run` (all guests when
/// `n` is `None`), passing `args` after the rank and peer list, and returns rank 0's summary.
///
/// # Errors
/// If a rank fails or the run does not finish within `timeout`.
pub fn run_patterns(
    run: &str,
    n: Option<usize>,
    args: &[String],
    timeout: Duration,
) -> Result<serde_json::Value> {
    run_patterns_with(run, n, args, timeout, None)
}

/// Rank 0's progress lines (its stderr), one at a time, for [`run_patterns_with`].
pub type PatternsProgress = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// [`run_patterns`], with rank 0's stderr lines given to `progress` instead of this process's
/// stderr (a progress bar reads `patterns: iteration D/N` from them).
///
/// # Errors
/// As [`run_patterns`].
pub fn run_patterns_with(
    run: &str,
    n: Option<usize>,
    args: &[String],
    timeout: Duration,
    progress: Option<PatternsProgress>,
) -> Result<serde_json::Value> {
    let state = RunState::load(run)?;
    let guests = state.guests();
    let n = n.unwrap_or(guests.len());
    if n < 2 || n > guests.len() {
        bail!(
            "patterns needs 2..={} ranks in run `{run}`, asked for {n}",
            guests.len()
        );
    }
    let peers: Vec<String> = guests[..n]
        .iter()
        .filter_map(|g| g.ip.map(|ip| ip.to_string()))
        .collect();
    let testbed = sibling_binary("testbed")?;
    let patterns = sibling_binary("patterns")?;
    let mut children = Vec::new();
    for (rank, g) in guests[..n].iter().enumerate() {
        let mut child = Command::new(&testbed)
            .args(["exec", run, &g.name, "--"])
            .arg(&patterns)
            .args(["--rank", &rank.to_string(), "--peers", &peers.join(",")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if rank == 0 && progress.is_none() {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .spawn()
            .with_context(|| format!("start patterns on {}", g.name))?;
        // Read the pipes while the ranks run: rank 0's summary of a long run outgrows a pipe's
        // buffer, and a rank blocked writing it would never exit.
        let stdout = drain(child.stdout.take());
        let stderr = match (&progress, rank) {
            (Some(progress), 0) => {
                let (pipe, progress) = (child.stderr.take(), std::sync::Arc::clone(progress));
                std::thread::spawn(move || {
                    if let Some(pipe) = pipe {
                        for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)) {
                            let Ok(line) = line else { break };
                            progress(&line);
                        }
                    }
                    Vec::new()
                })
            }
            _ => drain(child.stderr.take()),
        };
        children.push((g.name.clone(), child, stdout, stderr));
    }
    let deadline = Instant::now() + timeout;
    let mut summary = None;
    let mut failures = Vec::new();
    for (rank, (name, mut child, stdout, stderr)) in children.into_iter().enumerate() {
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = std::process::Output {
            status: child.wait()?,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        match status {
            Some(s) if s.success() => {
                if rank == 0 {
                    let text = String::from_utf8_lossy(&out.stdout);
                    let last = text.lines().last().unwrap_or_default();
                    summary = Some(
                        serde_json::from_str(last)
                            .with_context(|| format!("rank 0 summary: {last}"))?,
                    );
                }
            }
            Some(s) => failures.push(format!(
                "{name} ({s}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            None => failures.push(format!("{name}: timed out after {timeout:?}")),
        }
    }
    if !failures.is_empty() {
        bail!("patterns failed: {}", failures.join("; "));
    }
    summary.context("rank 0 printed no summary")
}

/// Reads `pipe` to its end on a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Runs an unmodified MPI program with one rank on each of the first `n` guests of run `run`.
///
/// `mpirun` (Open MPI) runs on the first guest; it starts the other ranks' daemons through
/// `testbed rsh RUN`, its remote-shell agent. Ranks talk over TCP on the guests' `eth0` only:
/// namespaces share `/dev/shm`, so shared-memory transports are excluded, and ranks yield the CPU
/// when idle (two cores are shared by every guest).
///
/// # Errors
/// Unknown run, bad `n`, or `mpirun` missing; the program's own failure is in the exit status.
pub fn mpirun(run: &str, n: usize, cmd: &[String]) -> Result<std::process::ExitStatus> {
    let state = RunState::load(run)?;
    let guests = state.guests();
    if n < 1 || n > guests.len() {
        bail!(
            "run `{run}` has {} guests, asked for {n} ranks",
            guests.len()
        );
    }
    if cmd.is_empty() {
        bail!("no MPI program given");
    }
    let hostfile = state_dir(run).join("mpi-hostfile");
    let lines: Vec<String> = guests[..n]
        .iter()
        .filter_map(|g| g.ip.map(|ip| format!("{ip} slots=1")))
        .collect();
    fs::write(&hostfile, lines.join("\n") + "\n")?;
    let testbed = sibling_binary("testbed")?;
    let mca = [
        ("plm_rsh_agent", format!("{} rsh {run}", testbed.display())),
        ("plm_rsh_no_tree_spawn", "1".into()),
        ("pml", "ob1".into()),
        ("btl", "tcp,self".into()),
        ("btl_tcp_if_include", "eth0".into()),
        ("oob_tcp_if_include", "eth0".into()),
        ("mpi_yield_when_idle", "1".into()),
    ];
    let mut c = Command::new(&testbed);
    c.args(["exec", run, &guests[0].name, "--", "mpirun", "--hostfile"])
        .arg(&hostfile)
        .args(["-np", &n.to_string(), "--bind-to", "none"]);
    for (k, v) in &mca {
        c.args(["--mca", k, v]);
    }
    c.args(cmd)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.status().context("run mpirun (is openmpi-bin installed?)")
}

/// The remote-shell agent of [`mpirun`]: runs `words` (joined, through `sh -c`, as ssh would) on
/// the guest whose address or name is `host`. Returns only on error.
#[must_use]
pub fn rsh(run: &str, host: &str, words: &[String]) -> anyhow::Error {
    let node = match RunState::load(run) {
        Ok(state) => state
            .plan
            .nodes
            .iter()
            .find(|n| n.name == host || n.ip.is_some_and(|ip| ip.to_string() == host))
            .map(|n| n.name.clone()),
        Err(e) => return e,
    };
    let Some(node) = node else {
        return anyhow!("rsh: run `{run}` has no node `{host}`");
    };
    exec(run, &node, &["sh".into(), "-c".into(), words.join(" ")])
}

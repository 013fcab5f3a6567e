//! Wren on a vnet-mode run (`testbed wren RUN start|stop|status|query`): `wrend agent` on
//! every host, `wrend collector` on the Proxy, each started with `testbed exec` in its node's
//! namespaces and cgroup (so `testbed down` kills them with the rest of the run, and their CPU
//! time is their host's).
//!
//! - Agents capture on the host's underlay `eth0` (vnetd's port 5400 only) and ship their
//!   records to the collector at the Proxy's underlay address, UDP port [`SHIP_PORT`],
//!   authenticated with the run's overlay key.
//! - The collector captures on the Proxy's `eth0`, names daemons by the run's hosts file, and
//!   serves HTTP on port [`HTTP_PORT`] in the Proxy's namespace: `/metrics`, `/matrix`,
//!   `/pair?from=A&to=B` (`wren_passive::matrix`).
//! - Files: `/run/testbed/RUN/wren/` — `daemons.json` (node, pid), `NODE.log`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::plan::{netns_name, Role};
use super::{sibling_binary, start_on_node, state_dir, sys, vnet, wait_listening, RunState};

/// The collector's UDP port for the agents' datagrams.
pub const SHIP_PORT: u16 = wren_passive::ship::DEFAULT_PORT;
/// The collector's HTTP port (in the Proxy's namespace).
pub const HTTP_PORT: u16 = 9550;
/// How long the collector may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The directory of a run's Wren files.
#[must_use]
pub fn dir(run: &str) -> PathBuf {
    state_dir(run).join("wren")
}

/// The log of the Wren daemon on `node`.
#[must_use]
pub fn log_file(run: &str, node: &str) -> PathBuf {
    dir(run).join(format!("{node}.log"))
}

fn daemons_file(run: &str) -> PathBuf {
    dir(run).join("daemons.json")
}

/// The Wren daemons of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WrenDaemons {
    /// (node, pid), hosts first, the collector last.
    pub daemons: Vec<(String, u32)>,
    /// The collector's HTTP address (in the Proxy's namespace).
    pub collector: Option<SocketAddr>,
}

/// One daemon's status.
#[derive(Debug, Clone, Serialize)]
pub struct WrenDaemonStatus {
    /// Its node.
    pub node: String,
    /// Its pid.
    pub pid: u32,
    /// Whether it runs.
    pub alive: bool,
    /// Its CPU time so far (user + system), s.
    pub cpu_s: Option<f64>,
    /// Its log.
    pub log: PathBuf,
}

/// The daemons recorded for `run` (none if Wren was never started).
///
/// # Errors
/// A corrupt file.
pub fn daemons(run: &str) -> Result<WrenDaemons> {
    let f = daemons_file(run);
    match fs::read_to_string(&f) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("corrupt {}", f.display())),
        Err(_) => Ok(WrenDaemons::default()),
    }
}

/// CPU time of process `pid` so far (all its threads), s: the sum of their
/// `/proc/PID/task/TID/schedstat` run times (nanoseconds, where `/proc/PID/stat`'s ticks are
/// 10 ms).
#[must_use]
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for t in tasks.flatten() {
        let text = fs::read_to_string(t.path().join("schedstat")).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|t| {
        t.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

/// Starts Wren on run `run`: the collector on the Proxy, then an agent on every host;
/// `extra` goes to every daemon (e.g. `--batch-ms=500`). Stops a Wren already running first.
///
/// # Errors
/// The run is not in vnet mode, or a daemon does not start (its log's end is in the error).
pub fn start(run: &str, extra: &[String]) -> Result<WrenDaemons> {
    let state = RunState::load(run)?;
    let v = vnet::of(&state)?.clone();
    stop(run)?;
    fs::create_dir_all(dir(run))?;
    let wrend = sibling_binary("wrend").context(
        "wrend is Wren's daemon (build it: `cargo build --release -p wren-passive --bins`)",
    )?;
    let (key, hosts) = (vnet::key_file(run), vnet::hosts_file(run));
    let proxy = v
        .daemons
        .iter()
        .find(|d| d.role == Role::Proxy)
        .context("the run has no Proxy daemon")?;
    let common = |node: &str| -> Vec<String> {
        let mut a = vec![
            "--name".to_string(),
            node.to_string(),
            "--interface".into(),
            "eth0".into(),
            "--key-file".into(),
            key.display().to_string(),
            "--hosts".into(),
            hosts.display().to_string(),
        ];
        a.extend(extra.iter().cloned());
        a
    };
    let mut out = WrenDaemons {
        daemons: Vec::new(),
        collector: Some(SocketAddr::V4(SocketAddrV4::new(
            *proxy.listen.ip(),
            HTTP_PORT,
        ))),
    };
    let save = |out: &WrenDaemons| -> Result<()> {
        fs::write(daemons_file(run), serde_json::to_string_pretty(out)?)
            .with_context(|| format!("write {}", daemons_file(run).display()))
    };
    let result = (|| -> Result<()> {
        let mut args = vec!["collector".to_string()];
        args.extend(common(&proxy.node));
        args.push("--listen".into());
        args.push(SocketAddrV4::new(*proxy.listen.ip(), SHIP_PORT).to_string());
        args.push("--http".into());
        args.push(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, HTTP_PORT).to_string());
        let log = log_file(run, &proxy.node);
        let mut child = start_on_node(run, &proxy.node, "wrend collector", &wrend, &args, &log)?;
        out.daemons.push((proxy.node.clone(), child.id()));
        save(&out)?;
        wait_listening(
            run,
            &proxy.node,
            HTTP_PORT,
            Instant::now() + START_TIMEOUT,
            "wrend collector",
            &mut child,
            Some(&log),
        )?;
        // The process keeps running: `stop` or `down` ends it.
        std::mem::forget(child);
        for d in v.daemons.iter().filter(|d| d.role == Role::Host) {
            let mut args = vec!["agent".to_string()];
            args.extend(common(&d.node));
            args.push("--collector".into());
            args.push(SocketAddrV4::new(*proxy.listen.ip(), SHIP_PORT).to_string());
            let log = log_file(run, &d.node);
            let child = start_on_node(run, &d.node, "wrend agent", &wrend, &args, &log)?;
            out.daemons.push((d.node.clone(), child.id()));
            std::mem::forget(child);
        }
        save(&out)?;
        // An agent that cannot capture exits at once: look before saying it started.
        std::thread::sleep(Duration::from_millis(300));
        for (node, pid) in &out.daemons {
            if !alive(*pid) {
                bail!(
                    "wrend on {node} exited; log {}:{}",
                    log_file(run, node).display(),
                    super::log_tail(&log_file(run, node), 5)
                );
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = stop(run);
        return Err(e);
    }
    Ok(out)
}

/// Stops run `run`'s Wren daemons (SIGTERM, then SIGKILL after a second); how many ran.
///
/// # Errors
/// A corrupt daemons file.
pub fn stop(run: &str) -> Result<usize> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let d = daemons(run)?;
    let running: Vec<u32> = d
        .daemons
        .iter()
        .map(|x| x.1)
        .filter(|p| alive(*p))
        .collect();
    let pid = |p: u32| Pid::from_raw(i32::try_from(p).unwrap_or(i32::MAX));
    for p in &running {
        let _ = kill(pid(*p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while running.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in running.iter().filter(|p| alive(**p)) {
        let _ = kill(pid(*p), Signal::SIGKILL);
    }
    if daemons_file(run).exists() {
        fs::write(
            daemons_file(run),
            serde_json::to_string_pretty(&WrenDaemons::default())?,
        )?;
    }
    Ok(running.len())
}

/// Every Wren daemon of `run` with its state and CPU time.
///
/// # Errors
/// No such run, or a corrupt daemons file.
pub fn status(run: &str) -> Result<Vec<WrenDaemonStatus>> {
    RunState::load(run)?;
    Ok(daemons(run)?
        .daemons
        .into_iter()
        .map(|(node, pid)| WrenDaemonStatus {
            log: log_file(run, &node),
            alive: alive(pid),
            cpu_s: cpu_seconds(pid),
            node,
            pid,
        })
        .collect())
}

/// The collector's matrix, asked from the Proxy's namespace.
///
/// # Errors
/// Wren is not running, or the collector does not answer.
pub fn matrix(run: &str) -> Result<wren_passive::Matrix> {
    let addr = daemons(run)?.collector.with_context(|| {
        format!("Wren is not running on run `{run}` (testbed wren {run} start)")
    })?;
    sys::in_netns(&netns_name(run, "proxy"), move || {
        Ok(wren_passive::fetch_matrix(addr, Duration::from_secs(5))?)
    })
}

/// Replaces the current process with `wrend query --collector ADDR ARGS` on the Proxy.
/// Returns only on error.
#[must_use]
pub fn exec_query(run: &str, args: &[String]) -> anyhow::Error {
    let prepare = || -> Result<std::process::Command> {
        let addr = daemons(run)?.collector.with_context(|| {
            format!("Wren is not running on run `{run}` (testbed wren {run} start)")
        })?;
        let mut c = std::process::Command::new(sibling_binary("wrend")?);
        c.args(["query", "--collector", &addr.to_string()])
            .args(args);
        Ok(c)
    };
    match prepare() {
        Ok(c) => super::exec_command(run, "proxy", c),
        Err(e) => e,
    }
}

//! `tinc` mode's part of `up`: a `tincd` (Debian's tinc 1.0) on every host and the Proxy,
//! carried out once the underlay works (the plan is [`plan::Tinc`]).
//!
//! Every file lives in `/run/testbed/RUN/tinc/`: per daemon a configuration directory `NODE/`
//! (`tinc.conf`, `hosts/` with every daemon's host file and public key, `rsa_key.priv`, the
//! `tinc-up` and `host-up` scripts, `reachable/`, `tincd.pid`) and its log `NODE.log`. Keys are
//! generated at `up` (RSA 2048, `tincd -K`, all at once). Daemons run with `testbed exec`, so each
//! is in its node's network and UTS namespaces and its node's cgroup, where `down` kills it with
//! the rest of the run; its TAP lives in its node's namespace and goes with it. The Proxy's
//! daemon starts first (the others connect to it); `up` then waits until every daemon has run
//! its `host-up` script for every other daemon (each marks the daemon it reached in its
//! `reachable/`), and checks that every TAP joined its node's bridge.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::plan::{self, Tinc, TincNode};
use super::{log_tail, start_on_node, state_dir, step, wait_listening, RunState};

/// How long a daemon may take from its start until it listens.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long every daemon may take to reach every other.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(30);
/// RSA key size of every daemon (tinc 1.0's default too).
pub const KEY_BITS: u32 = 2048;

/// The directory of a run's tinc files.
#[must_use]
pub fn dir(run: &str) -> PathBuf {
    state_dir(run).join("tinc")
}

/// The configuration directory of the daemon on `node` (`tincd --config`).
#[must_use]
pub fn node_dir(run: &str, node: &str) -> PathBuf {
    dir(run).join(node)
}

/// The log (stderr) of the daemon on `node`.
#[must_use]
pub fn log_file(run: &str, node: &str) -> PathBuf {
    dir(run).join(format!("{node}.log"))
}

/// Where the daemon on `node` marks each daemon it has reached (its `host-up` script).
fn reachable_dir(run: &str, node: &str) -> PathBuf {
    node_dir(run, node).join("reachable")
}

/// The tinc plan of a run, or an error saying the run is in another mode.
///
/// # Errors
/// If the run is not in tinc mode.
pub fn of(state: &RunState) -> Result<&Tinc> {
    state.plan.tinc.as_ref().ok_or_else(|| {
        anyhow!(
            "run `{}` is in {} mode; tinc runs only in runs brought up with `--network tinc`",
            state.run,
            state.plan.mode
        )
    })
}

/// The steps of `up` that start the tinc daemons of a tinc-mode run, after the underlay exists.
///
/// # Errors
/// The failing step; the caller takes the run down.
pub(super) fn build(state: &mut RunState) -> Result<()> {
    let run = state.run.clone();
    let t = of(state)?.clone();
    step("tinc configuration", || write_config(&run, &t))?;
    step("tinc keys (RSA 2048)", || generate_keys(&run, &t))?;
    step("tinc host files", || share_host_files(&run, &t))?;
    let (proxy, hosts): (Vec<&TincNode>, Vec<&TincNode>) =
        t.nodes.iter().partition(|n| n.connect_to.is_none());
    let mut children = Vec::new();
    for (what, group) in [
        ("tinc daemon on the Proxy", proxy),
        ("tinc daemons on the hosts", hosts),
    ] {
        step(what, || {
            let mut started = Vec::new();
            for n in &group {
                started.push((n.node.clone(), start(&run, n)?));
            }
            state
                .daemons
                .extend(started.iter().map(|(node, c)| (node.clone(), c.id())));
            state.save()?;
            for (node, child) in &mut started {
                let deadline = Instant::now() + LISTEN_TIMEOUT;
                let log = log_file(&run, node);
                wait_listening(
                    &run,
                    node,
                    plan::TINC_PORT,
                    deadline,
                    "tincd",
                    child,
                    Some(&log),
                )?;
            }
            children.extend(started);
            Ok(())
        })?;
    }
    step("tinc every daemon reached", || {
        wait_reachable(&run, &t, &mut children)
    })?;
    step("tinc TAPs on the bridges", || check_taps(&run, &t))?;
    // The daemons keep running; `down` kills them with the rest of the run's cgroups.
    drop(children);
    Ok(())
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Every daemon's directory with its `tinc.conf`, its own host file (no key yet) and scripts.
fn write_config(run: &str, t: &Tinc) -> Result<()> {
    for n in &t.nodes {
        let d = node_dir(run, &n.node);
        for sub in [d.join("hosts"), reachable_dir(run, &n.node)] {
            fs::create_dir_all(&sub).with_context(|| format!("create {}", sub.display()))?;
        }
        write_file(&d.join("tinc.conf"), &n.tinc_conf(), 0o644)?;
        write_file(&d.join("hosts").join(&n.node), &n.host_file(), 0o644)?;
        write_file(&d.join("tinc-up"), &plan::tinc_up_script(), 0o755)?;
        write_file(
            &d.join("host-up"),
            &plan::tinc_host_up_script(&reachable_dir(run, &n.node)),
            0o755,
        )?;
    }
    Ok(())
}

/// Runs `tincd -K` for every daemon at once: it writes `rsa_key.priv` and appends the public key
/// to the daemon's own host file.
fn generate_keys(run: &str, t: &Tinc) -> Result<()> {
    let children: Vec<(String, Child)> = t
        .nodes
        .iter()
        .map(|n| {
            let child = Command::new("tincd")
                .arg("--config")
                .arg(node_dir(run, &n.node))
                .arg(format!("--generate-keys={KEY_BITS}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context(
                    "cannot run `tincd`: install Debian's tinc 1.0 (`apt-get install tinc`, or \
                     `cargo xtask install`)",
                )?;
            Ok((n.node.clone(), child))
        })
        .collect::<Result<_>>()?;
    let mut failures = Vec::new();
    for (node, child) in children {
        let out = child.wait_with_output()?;
        let key = node_dir(run, &node).join("rsa_key.priv");
        if !out.status.success() || !key.is_file() {
            failures.push(format!(
                "{node} ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    if !failures.is_empty() {
        bail!("tincd --generate-keys failed: {}", failures.join("; "));
    }
    Ok(())
}

/// Copies every daemon's host file (address, options, public key) to every other daemon.
fn share_host_files(run: &str, t: &Tinc) -> Result<()> {
    for n in &t.nodes {
        let own = node_dir(run, &n.node).join("hosts").join(&n.node);
        let text = fs::read_to_string(&own).with_context(|| format!("read {}", own.display()))?;
        if !text.contains("-----BEGIN RSA PUBLIC KEY-----") {
            bail!("{} has no public key after tincd -K", own.display());
        }
        for other in t.nodes.iter().filter(|o| o.node != n.node) {
            let to = node_dir(run, &other.node).join("hosts").join(&n.node);
            write_file(&to, &text, 0o644)?;
        }
    }
    Ok(())
}

/// Starts the daemon of `n` on its node, its stdout and stderr to its log file.
fn start(run: &str, n: &TincNode) -> Result<Child> {
    let args = TincNode::args(&node_dir(run, &n.node));
    let log = log_file(run, &n.node);
    start_on_node(run, &n.node, "tincd", Path::new("tincd"), args, &log)
}

fn exited(run: &str, node: &str, status: std::process::ExitStatus, what: &str) -> anyhow::Error {
    let log = log_file(run, node);
    anyhow!(
        "tincd on {node} exited ({status}) {what}; log {}:{}",
        log.display(),
        log_tail(&log, 10)
    )
}

/// Waits until every daemon has reached every other (its `host-up` ran for each).
fn wait_reachable(run: &str, t: &Tinc, children: &mut [(String, Child)]) -> Result<()> {
    let start = Instant::now();
    loop {
        let mut missing = Vec::new();
        for n in &t.nodes {
            let reached: Vec<String> = fs::read_dir(reachable_dir(run, &n.node))
                .map(|d| {
                    d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            let lacking: Vec<&str> = t
                .nodes
                .iter()
                .filter(|o| o.node != n.node && !reached.contains(&o.node))
                .map(|o| o.node.as_str())
                .collect();
            if !lacking.is_empty() {
                missing.push(format!("{} lacks {}", n.node, lacking.join(" ")));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        for (node, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                return Err(exited(run, node, status, "before reaching the others"));
            }
        }
        if start.elapsed() > REACH_TIMEOUT {
            let logs: String = t
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "\nlog of tincd on {}:{}",
                        n.node,
                        log_tail(&log_file(run, &n.node), 5)
                    )
                })
                .collect();
            bail!(
                "tinc daemons did not all reach each other within {:.0} s: {}{logs}",
                start.elapsed().as_secs_f64(),
                missing.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that every daemon's TAP is up on its node's bridge (what `tinc-up` does).
fn check_taps(run: &str, t: &Tinc) -> Result<()> {
    for n in &t.nodes {
        let ns = plan::netns_name(run, &n.node);
        let out = Command::new("ip")
            .args(["-n", &ns, "-o", "link", "show", "master", "br0"])
            .output()
            .context("run ip")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let tap = text
            .lines()
            .find(|l| l.contains(&format!(" {}:", plan::TINC_INTERFACE)));
        match tap {
            Some(l) if l.contains(",UP") && l.contains(&format!("mtu {}", plan::GUEST_MTU)) => {}
            _ => bail!(
                "{} of tincd on {} is not up on br0 with MTU {} (tinc-up failed?): {}; log {}:{}",
                plan::TINC_INTERFACE,
                n.node,
                plan::GUEST_MTU,
                text.trim(),
                log_file(run, &n.node).display(),
                log_tail(&log_file(run, &n.node), 5)
            ),
        }
    }
    Ok(())
}

//! `vnet` mode's part of `up`: the overlay daemons and their configuration, carried out once the
//! underlay works (the plan is [`plan::Vnet`]).
//!
//! Every file of a run's overlay lives in `/run/testbed/RUN/vnet/`: the pre-shared `key` (0600),
//! the `hosts` file naming every daemon's underlay address, the initial `star.vnet`, each
//! daemon's log `NODE.log` and persisted state `state/NODE/`. Daemons run with `testbed exec`,
//! so each is in its node's network and UTS namespaces and its node's cgroup, where `down` kills
//! it with the rest of the run. `vnetctl` runs on the Proxy, which reaches every daemon's
//! underlay address; [`vnetctl_command`] is the one way the testbed (and `testbed vnetctl`) runs
//! it.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::RngCore as _;

use super::plan::{self, Vnet};
use super::{
    log_tail, sibling_binary, start_on_node, state_dir, step, sys, wait_listening, RunState,
};

/// How long a daemon may take from its start until its control port accepts connections.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long every link of the star may take to come up at both ends (`vnetctl wait-up`).
pub const LINKS_TIMEOUT_SECS: u64 = 30;

/// The directory of a run's overlay files.
#[must_use]
pub fn dir(run: &str) -> PathBuf {
    state_dir(run).join("vnet")
}

/// The run's pre-shared key file (`vnetd --key-file`, `VNET_KEY_FILE`).
#[must_use]
pub fn key_file(run: &str) -> PathBuf {
    dir(run).join("key")
}

/// The run's hosts file (`vnetctl --hosts`, `VNET_HOSTS`).
#[must_use]
pub fn hosts_file(run: &str) -> PathBuf {
    dir(run).join("hosts")
}

/// The run's initial star configuration, as applied by `up`.
#[must_use]
pub fn star_file(run: &str) -> PathBuf {
    dir(run).join("star.vnet")
}

/// The log (stderr) of the daemon on `node`.
#[must_use]
pub fn log_file(run: &str, node: &str) -> PathBuf {
    dir(run).join(format!("{node}.log"))
}

/// The state directory of the daemon on `node`.
#[must_use]
pub fn daemon_state_dir(run: &str, node: &str) -> PathBuf {
    dir(run).join("state").join(node)
}

/// The overlay plan of a run, or an error saying the run is in another mode.
///
/// # Errors
/// If the run is not in vnet mode.
pub fn of(state: &RunState) -> Result<&Vnet> {
    state.plan.vnet.as_ref().ok_or_else(|| {
        anyhow!(
            "run `{}` is in {} mode; the overlay exists only in runs brought up with `--network vnet`",
            state.run,
            state.plan.mode
        )
    })
}

/// `vnetctl` on the Proxy of run `run`, with the run's key and hosts files in its environment
/// (`VNET_KEY_FILE`, `VNET_HOSTS`); the caller adds the subcommand.
///
/// # Errors
/// If `testbed` or `vnetctl` cannot be found.
pub fn vnetctl_command(run: &str) -> Result<Command> {
    let testbed = sibling_binary("testbed")?;
    let vnetctl = sibling_binary("vnetctl")?;
    let mut c = Command::new(testbed);
    c.args(["exec", run, "proxy", "--"])
        .arg(vnetctl)
        .env("VNET_KEY_FILE", key_file(run))
        .env("VNET_HOSTS", hosts_file(run));
    Ok(c)
}

/// Brings run `run`'s overlay to the topology in `file` (`vnetctl apply`: the daemons get only
/// the difference) and waits until its links are up (`vnetctl wait-up`, at most
/// [`LINKS_TIMEOUT_SECS`]).
///
/// # Errors
/// If `vnetctl` cannot run, or either step fails (with its message).
pub fn apply(run: &str, file: &Path) -> Result<()> {
    let file = file.display().to_string();
    for args in [
        vec!["apply", &file],
        vec!["wait-up", &file, "--for", &LINKS_TIMEOUT_SECS.to_string()],
    ] {
        let out = vnetctl_command(run)?
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .context("run vnetctl")?;
        if !out.status.success() {
            bail!(
                "`vnetctl {}` on proxy failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Runs `vnetctl ARGS` on the Proxy of run `run` during `up`; returns its stdout. When it fails,
/// the error ends with the last lines of the logs of the daemons its arguments or its message
/// name, since a failed `up` removes the logs with the rest of the run.
fn vnetctl(run: &str, v: &Vnet, args: &[String]) -> Result<String> {
    let out = vnetctl_command(run)?
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run vnetctl")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let named = |d: &&plan::Daemon| {
            args.contains(&d.node)
                || err
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .any(|w| w == d.node)
        };
        let logs: String = v
            .daemons
            .iter()
            .filter(named)
            .map(|d| {
                let log = log_file(run, &d.node);
                format!(
                    "\nlog of vnetd on {} ({}):{}",
                    d.node,
                    log.display(),
                    log_tail(&log, 5)
                )
            })
            .collect();
        bail!(
            "`vnetctl {}` on proxy failed ({}): {}{logs}",
            args.join(" "),
            out.status,
            err.trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates a file readable and writable by its owner only, with `text`.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

/// A fresh pre-shared key: 32 random bytes from the operating system, as 64 hex digits.
fn random_key() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The steps of `up` that build the overlay of a vnet-mode run, after the underlay exists.
///
/// # Errors
/// The failing step; the caller takes the run down.
pub(super) fn build(state: &mut RunState) -> Result<()> {
    let run = state.run.clone();
    let v = of(state)?.clone();
    step("vnet key and hosts file", || write_files(&run, &v))?;
    let mut children = step("vnet daemons", || {
        let children = start_daemons(&run, &v)?;
        state.daemons = children
            .iter()
            .map(|(node, c)| (node.clone(), c.id()))
            .collect();
        state.save()?;
        Ok(children)
    })?;
    step("vnet control ports", || {
        wait_for_control(&run, &v, &mut children)
    })?;
    step("vnet ports (attach)", || {
        v.ports
            .iter()
            .try_for_each(|p| vnetctl(&run, &v, &p.attach_args()).map(|_| ()))
    })?;
    step("guest addresses, LAN port", || {
        v.after_attach
            .iter()
            .try_for_each(|(ns, l)| sys::batch("ip", Some(ns), l))
    })?;
    step("vnet star file", || write_star(&run, &v))?;
    let star = star_file(&run).display().to_string();
    step("vnet apply star", || {
        vnetctl(&run, &v, &["apply".into(), star.clone()]).map(|_| ())
    })?;
    step("vnet links up (wait-up)", || {
        vnetctl(
            &run,
            &v,
            &[
                "wait-up".into(),
                star.clone(),
                "--for".into(),
                LINKS_TIMEOUT_SECS.to_string(),
            ],
        )
        .map(|_| ())
    })?;
    // The daemons keep running; `down` kills them with the rest of the run's cgroups.
    drop(children);
    Ok(())
}

/// Creates the overlay's directories, writes the key and the hosts file.
fn write_files(run: &str, v: &Vnet) -> Result<()> {
    let d = dir(run);
    fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    for daemon in &v.daemons {
        let s = daemon_state_dir(run, &daemon.node);
        fs::create_dir_all(&s).with_context(|| format!("create {}", s.display()))?;
    }
    write_private(&key_file(run), &(random_key() + "\n"))?;
    fs::write(hosts_file(run), v.hosts_file())
        .with_context(|| format!("write {}", hosts_file(run).display()))
}

/// Writes the star configuration (`vnetctl star`, offline).
fn write_star(run: &str, v: &Vnet) -> Result<()> {
    let vnetctl = sibling_binary("vnetctl")?;
    let args = v.star_args();
    let out = Command::new(&vnetctl)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", vnetctl.display()))?;
    if !out.status.success() {
        bail!(
            "`vnetctl {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::write(star_file(run), &out.stdout)
        .with_context(|| format!("write {}", star_file(run).display()))
}

/// Starts every daemon on its node, its stdout and stderr to its log file.
fn start_daemons(run: &str, v: &Vnet) -> Result<Vec<(String, Child)>> {
    let vnetd = sibling_binary("vnetd")?;
    let key = key_file(run);
    v.daemons
        .iter()
        .map(|d| {
            let args = d.args(&key, &daemon_state_dir(run, &d.node));
            let log = log_file(run, &d.node);
            let child = start_on_node(run, &d.node, "vnetd", &vnetd, args, &log)?;
            Ok((d.node.clone(), child))
        })
        .collect()
}

/// Waits until every daemon's control port listens (so that it accepts connections), looking
/// inside the daemon's own namespace; fails at once if a daemon exits, and after
/// [`CONTROL_TIMEOUT`] otherwise.
fn wait_for_control(run: &str, v: &Vnet, children: &mut [(String, Child)]) -> Result<()> {
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    for (d, (node, child)) in v.daemons.iter().zip(children.iter_mut()) {
        debug_assert_eq!(&d.node, node);
        let log = log_file(run, node);
        wait_listening(
            run,
            node,
            d.listen.port(),
            deadline,
            "vnetd",
            child,
            Some(&log),
        )?;
    }
    Ok(())
}

/// Replaces the current process with `vnetctl ARGS` on the Proxy of run `run`, with the run's
/// key and hosts files in `VNET_KEY_FILE` and `VNET_HOSTS` (`testbed vnetctl`). Returns only on
/// error.
#[must_use]
pub fn exec_vnetctl(run: &str, args: &[String]) -> anyhow::Error {
    let prepare = || -> Result<Command> {
        let state = RunState::load(run)?;
        of(&state)?;
        let mut c = Command::new(sibling_binary("vnetctl")?);
        c.args(args)
            .env("VNET_KEY_FILE", key_file(run))
            .env("VNET_HOSTS", hosts_file(run));
        Ok(c)
    };
    match prepare() {
        Ok(c) => super::exec_command(run, "proxy", c),
        Err(e) => e,
    }
}

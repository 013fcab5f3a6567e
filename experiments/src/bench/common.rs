//! What the benches that bring up testbed runs share: a guard that takes the runs down,
//! commands on a run's nodes, the machine's CPU time, ping's RTTs and a median with its
//! spread.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vnetd::control::{Request, Response};
use vnetd::model::Name;
use vnetd::online::{Hosts, Session};

use crate::patterns::report::median;
use crate::testbed::{self, plan::netns_name, plan::VNET_PORT, sys, vnet};

/// Takes runs down when dropped.
pub(crate) struct Runs(pub Vec<String>);

impl Drop for Runs {
    fn drop(&mut self) {
        for r in &self.0 {
            if let Err(e) = testbed::down(r) {
                eprintln!("bench: taking down run {r}: {e:#}");
            }
        }
    }
}

/// `args` as a command on `node` of run `run` (`testbed exec`).
pub(crate) fn on(run: &str, node: &str, args: &[&str]) -> Result<Command> {
    let mut c = Command::new(testbed::sibling_binary("testbed")?);
    c.args(["exec", run, node, "--"]).args(args);
    Ok(c)
}

/// Runs `c` (`what` in errors) with no stdin; its stdout, or an error with its status and
/// output.
pub(crate) fn output(mut c: Command, what: &str) -> Result<String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Busy and total CPU time in clock ticks, summed over all CPUs, from `/proc/stat`'s text: busy
/// is every state but idle and iowait (user, nice, system, irq, softirq, steal; guest time is
/// inside user already).
///
/// # Errors
/// If the first line is not the `cpu` line.
pub(crate) fn cpu_ticks(stat: &str) -> Result<(u64, u64)> {
    let line = stat.lines().next().unwrap_or_default();
    let mut f = line.split_whitespace();
    if f.next() != Some("cpu") {
        bail!("/proc/stat does not start with the `cpu` line: {line}");
    }
    let v: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
    if v.len() < 8 {
        bail!("/proc/stat `cpu` line has {} fields: {line}", v.len());
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    let total = busy + v[3] + v[4];
    Ok((busy, total))
}

/// RTTs in µs of every reply in `ping`'s output.
#[must_use]
pub(crate) fn ping_rtts_us(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ms| ms * 1e3)
        .collect()
}

/// The whole machine's busy and total CPU ticks ([`cpu_ticks`] of `/proc/stat`).
pub(crate) fn machine_ticks() -> Result<(u64, u64)> {
    cpu_ticks(&std::fs::read_to_string("/proc/stat").context("read /proc/stat")?)
}

/// Writes `text` to `path`, creating its directory if need be (a report or a plot).
pub(crate) fn write_out(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Median, min and max.
pub(crate) fn spread(xs: &[f64]) -> (f64, f64, f64) {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(xs), min, max)
}

/// Asks the Proxy of a run for VTTIF's report every `every` until finished, from inside the
/// Proxy's namespace; keeps what `keep` makes of each report.
pub(crate) struct Poller<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Vec<T>>>,
}

impl<T: Send + 'static> Poller<T> {
    pub(crate) fn start(
        run: &str,
        every: Duration,
        keep: fn(Box<::vttif::Report>) -> T,
    ) -> Result<Poller<T>> {
        let key =
            vnetd::control::read_key_file(&vnet::key_file(run)).map_err(anyhow::Error::msg)?;
        let hosts = Hosts::load(&vnet::hosts_file(run))?;
        let netns = netns_name(run, "proxy");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            sys::in_netns(&netns, move || {
                let mut session = Session::new(key, hosts, Duration::from_secs(10));
                let proxy: Name = "proxy".parse()?;
                let mut kept = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    match session.call(&proxy, VNET_PORT, &Request::AppTopology)? {
                        Response::AppTopology(r) => kept.push(keep(r)),
                        other => bail!("the Proxy answered {other:?} to app-topology"),
                    }
                    std::thread::sleep(every);
                }
                Ok(kept)
            })
        });
        Ok(Poller { stop, handle })
    }

    /// Stops polling; what was kept, in order.
    pub(crate) fn finish(self) -> Result<Vec<T>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .unwrap_or_else(|_| bail!("the poller panicked"))
    }
}

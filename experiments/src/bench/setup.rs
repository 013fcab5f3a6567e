//! `bench setup`: how long the overlay takes to configure itself (seed 004 §9.4, Fig. 10): the
//! star, then all-to-all fast paths with their rules, for 8 and 28 hosts, and the latency of one
//! primitive.
//!
//! Each size is a testbed run in `vnet` mode (`single-cluster` for 8 hosts, `cluster-28` for
//! 28). The bench then works from a thread inside the Proxy's namespace, with `vnetctl`'s own
//! code ([`vnetd::online`]), so no process start is timed. Per repeat:
//!
//! 1. apply the empty topology (every daemon, no link, no rule): the overlay is torn down;
//! 2. **star**: apply the star and wait until every link is up at both ends;
//! 3. **fast paths**: apply the star plus a UDP link between every two hosts and, at each
//!    host, a rule sending each other host's guest over their link; wait until every link is
//!    up at both ends.
//!
//! Both times run from the first primitive to the last link reported up, as the papers'
//! figures do (their star: 0.94 s for 8 hosts, 2.9 s for 28; fast paths: 1.6 s and 20.5 s).
//! **Primitive latency**: one connection to a host's daemon from inside that host (so no
//! emulated link is in the way, as "on loopback"), then alternately adding and deleting a rule (each a real change: the table is updated, the cache emptied and the state
//! file rewritten and synced before the answer), timed one by one from the client.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vnetd::control::{Client, Request, Response};
use vnetd::model::{DstMatch, LinkKind, Mac, Rule, SrcMatch, Target, Topology};
use vnetd::online::{self, Hosts, Session};

use crate::testbed::{self, plan::netns_name, vnet, Mode};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scenario files, one per size.
    pub scenarios: Vec<PathBuf>,
    /// Repeats of the star and fast-path measurements.
    pub repeat: usize,
    /// Primitives to time per size.
    pub primitives: usize,
}

/// Median and spread of a sample.
fn summary(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

/// The `p`-th percentile (nearest rank) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One size's figures.
struct Size {
    hosts: usize,
    star: Vec<f64>,
    fastpath: Vec<f64>,
    /// At the Proxy (no CPU quota).
    primitive_ms: Vec<f64>,
    /// At a host (its cgroup's quota, shared with its guests).
    host_primitive_ms: Vec<f64>,
    links: usize,
    fast_primitives: usize,
}

fn measure(scenario: &std::path::Path, opts: &Options) -> Result<Size> {
    let run = format!(
        "setup{}",
        scenario.file_stem().map_or(String::new(), |s| s
            .to_string_lossy()
            .replace(['-', '.'], ""))
    );
    eprintln!(
        "bench setup: {}: testbed up (vnet mode)",
        scenario.display()
    );
    let state = testbed::up(scenario, Some(&run), Mode::Vnet)?;
    let result = measure_run(&state, &run, opts);
    if let Err(e) = testbed::down(&run) {
        eprintln!("bench setup: down {run}: {e:#}");
    }
    result
}

fn measure_run(state: &testbed::RunState, run: &str, opts: &Options) -> Result<Size> {
    let key = vnetd::control::read_key_file(&vnet::key_file(run)).map_err(anyhow::Error::msg)?;
    let hosts = Hosts::load(&vnet::hosts_file(run))?;
    let star_text = std::fs::read_to_string(vnet::star_file(run))?;
    let star = vnetd::cli::load("star.vnet", &star_text)?;
    let proxy: vnetd::model::Name = "proxy".parse()?;
    let fast = vnetd::lang::mesh(&star, &proxy, LinkKind::Udp);
    let empty = Topology {
        hosts: star.hosts.clone(),
        ..Topology::default()
    };
    let n_hosts = state
        .plan
        .nodes
        .iter()
        .filter(|n| n.kind == testbed::NodeKind::Host)
        .count();
    let first_host = star
        .hosts
        .values()
        .find(|h| h.machine != proxy)
        .cloned()
        .context("no host")?;
    let primitives = opts.primitives;
    let repeat = opts.repeat;
    let addr = hosts.resolve(first_host.machine.as_str(), first_host.port)?;
    let host_key = key.clone();
    let hosts_for_primitives = hosts.clone();
    let mut size = testbed::sys::in_netns(&netns_name(run, "proxy"), move || {
        let mut session = Session::new(key.clone(), hosts.clone(), Duration::from_secs(10));
        let mut size = Size {
            hosts: n_hosts,
            star: Vec::new(),
            fastpath: Vec::new(),
            primitive_ms: Vec::new(),
            host_primitive_ms: Vec::new(),
            links: fast.links.len(),
            fast_primitives: 0,
        };
        for r in 0..repeat {
            online::apply(&mut session, &empty, &proxy, |_| {})?;
            let t = Instant::now();
            online::apply(&mut session, &star, &proxy, |_| {})?;
            online::wait_up(&mut session, &star, Duration::from_secs(30))?;
            let star_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let report = online::apply(&mut session, &fast, &proxy, |_| {})?;
            online::wait_up(&mut session, &fast, Duration::from_secs(60))?;
            let fast_s = t.elapsed().as_secs_f64();
            size.fast_primitives = report.calls;
            eprintln!(
                "bench setup: {n_hosts} hosts, repeat {}: star {:.1} ms, fast paths {:.1} ms ({} control calls)",
                r + 1,
                star_s * 1e3,
                fast_s * 1e3,
                report.calls
            );
            size.star.push(star_s);
            size.fastpath.push(fast_s);
        }
        Ok(size)
    })?;
    // One primitive at a time on one connection, from the daemon's own namespace (the
    // issue's "on loopback": no emulated link in the way): the Proxy's, whose cgroup has no
    // quota, then a host's, which shares its guests' quota (`host_cpu`).
    let proxy_addr = hosts_for_primitives.resolve("proxy", first_host.port)?;
    size.primitive_ms =
        time_primitives(&netns_name(run, "proxy"), proxy_addr, &host_key, primitives)?;
    let host_ns = netns_name(run, first_host.machine.as_str());
    size.host_primitive_ms = time_primitives(&host_ns, addr, &host_key, primitives)?;
    Ok(size)
}

/// Times `n` primitives, alternately adding and deleting a rule, on one connection to the
/// daemon at `addr` from inside namespace `netns`; milliseconds each.
fn time_primitives(
    netns: &str,
    addr: std::net::SocketAddr,
    key: &vnetd::wire::OverlayKey,
    n: usize,
) -> Result<Vec<f64>> {
    testbed::sys::in_netns(netns, move || {
        let mut latencies = Vec::with_capacity(n);
        let mut client = Client::connect_addr(addr, key, Duration::from_secs(10))?;
        let rule = Rule {
            src: SrcMatch::Any,
            dst: DstMatch::Is(Mac([0x02, 0x56, 0x4e, 0xbe, 0x4c, 0x01])),
            target: Target::Port("bench".parse()?),
        };
        for i in 0..n {
            let request = if i % 2 == 0 {
                Request::AddRule { rule: rule.clone() }
            } else {
                Request::DeleteRule {
                    src: rule.src,
                    dst: rule.dst,
                }
            };
            let t = Instant::now();
            let response = client.call(&request)?;
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            if !matches!(response, Response::Ok { .. }) {
                bail!("primitive answered {response:?}");
            }
        }
        if n % 2 == 1 {
            client.call(&Request::DeleteRule {
                src: rule.src,
                dst: rule.dst,
            })?;
        }
        Ok(latencies)
    })
}

/// Runs the benchmark; prints tables; returns the headline figures.
///
/// # Errors
/// If a run cannot be brought up or a primitive fails.
pub fn run(opts: &Options) -> Result<Value> {
    let mut sizes = Vec::new();
    for scenario in &opts.scenarios {
        sizes.push(measure(scenario, opts)?);
    }
    println!(
        "\nOverlay set-up time ({} repeats; median [min-max]; papers: seed 004 Fig. 10)\n",
        opts.repeat
    );
    println!(
        "{:>6} {:>7} {:>26} {:>9} {:>26} {:>9}",
        "hosts", "links", "star (s)", "paper", "all-to-all fast paths (s)", "paper"
    );
    let mut figures = serde_json::Map::new();
    for s in &mut sizes {
        let (paper_star, paper_fast) = match s.hosts {
            8 => (Some(0.94), Some(1.6)),
            28 => (Some(2.9), Some(20.5)),
            _ => (None, None),
        };
        let star = summary(&mut s.star);
        let fast = summary(&mut s.fastpath);
        let paper = |p: Option<f64>| p.map_or("-".to_string(), |p| format!("{p:.2}"));
        println!(
            "{:>6} {:>7} {:>10.4} [{:.4}-{:.4}] {:>9} {:>10.4} [{:.4}-{:.4}] {:>9}",
            s.hosts,
            s.links,
            star.0,
            star.1,
            star.2,
            paper(paper_star),
            fast.0,
            fast.1,
            fast.2,
            paper(paper_fast)
        );
        figures.insert(format!("star_{}_s", s.hosts), json!(star.0));
        figures.insert(format!("fastpath_{}_s", s.hosts), json!(fast.0));
        if let Some(p) = paper_star {
            figures.insert(format!("star_{}_speedup", s.hosts), json!(p / star.0));
        }
        if let Some(p) = paper_fast {
            figures.insert(format!("fastpath_{}_speedup", s.hosts), json!(p / fast.0));
        }
    }
    println!(
        "\nOne primitive (add or delete a rule, applied and persisted), timed at the client in the\n\
         daemon's namespace: at the Proxy (no CPU quota) and at a host (its scenario quota)\n"
    );
    println!(
        "{:>6} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "hosts", "daemon", "calls", "min ms", "median ms", "p99 ms", "paper ms"
    );
    let mut p99_max = 0.0f64;
    let mut median_max = 0.0f64;
    for s in &mut sizes {
        for (daemon, sample) in [
            ("proxy", &mut s.primitive_ms),
            ("host", &mut s.host_primitive_ms),
        ] {
            sample.sort_by(f64::total_cmp);
            let (median, min, _) = summary(sample);
            let p99 = percentile(sample, 99.0);
            if daemon == "proxy" {
                p99_max = p99_max.max(p99);
                median_max = median_max.max(median);
            }
            println!(
                "{:>6} {:>7} {:>8} {:>10.3} {:>10.3} {:>10.3} {:>10}",
                s.hosts,
                daemon,
                sample.len(),
                min,
                median,
                p99,
                "~20"
            );
        }
    }
    figures.insert("primitive_median_ms".into(), json!(median_max));
    figures.insert("primitive_p99_ms".into(), json!(p99_max));
    Ok(Value::Object(figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}

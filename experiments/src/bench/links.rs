//! `bench adapt --links`: seed 002 Fig. 11 — the job's run time as the k heaviest inferred
//! fast-path links are added to the star, k = 0..all host pairs.
//!
//! One `vnet`-mode run of the scenario (default `single-cluster`: one guest per host, so every
//! guest pair is a host pair):
//!
//! 1. the job on the star while VTTIF at the Proxy is asked for its report every second; the
//!    host pairs are ranked by the traffic VTTIF inferred between their guests (both
//!    directions, summed over the reports; guests placed by the run's `star.vnet`; ties by
//!    name);
//! 2. for k = 0, 1, ..., all pairs: the star plus the fast-path links of the k heaviest pairs,
//!    with their forwarding rules (as `vnetctl mesh` gives them for all pairs), applied with
//!    `vnetctl apply` (the daemons get only the difference from the previous k), `wait-up`,
//!    then the job again.
//!
//! The job is `bench adapt`'s (same message size and compute) with [`ITERATIONS`] iterations,
//! so that the sweep's 29 runs fit in minutes. With `--repeat N` the sweep runs N times over
//! (k = 0..all, then again), and each k's figure is the median of its N runs, with their
//! spread.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vnetd::lang;
use vnetd::model::{LinkKind, Name, Topology};

use super::adapt;
use super::common::{machine_ticks, spread, write_out, Poller, Runs};
use crate::patterns::report::median;
use crate::testbed::{plan::Mode, vnet};

/// Iterations of each job in the sweep.
pub const ITERATIONS: u64 = 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The patterns topology.
    pub topology: String,
    /// Where to write the SVG plot.
    pub plot: PathBuf,
    /// Sweeps to run (each k's figure is the median over them).
    pub repeat: usize,
}

/// Host pairs, heaviest inferred traffic first, with that traffic (bytes/s summed over the
/// reports).
type Ranking = Vec<((Name, Name), f64)>;

/// The traffic of `flows` (VTTIF's reports' unicast matrices) between the hosts of `star`,
/// per unordered host pair: every pair of hosts other than `proxy` (0 where no flow went),
/// guests placed as the star's rules say. Heaviest first, ties by name.
fn rank<'a>(
    star: &Topology,
    proxy: &Name,
    flows: impl IntoIterator<Item = &'a vttif::infer::Flow>,
) -> Ranking {
    let homes: BTreeMap<_, _> = lang::guest_homes(star, proxy).into_iter().collect();
    let hosts: Vec<&Name> = star.hosts.keys().filter(|h| *h != proxy).collect();
    let mut traffic: BTreeMap<(&Name, &Name), f64> = BTreeMap::new();
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            traffic.insert((a, b), 0.0);
        }
    }
    for flow in flows {
        if let (Some(a), Some(b)) = (homes.get(&flow.src), homes.get(&flow.dst)) {
            if let Some(t) = traffic.get_mut(&(a.min(b), a.max(b))) {
                *t += flow.bytes_per_s;
            }
        }
    }
    let mut ranked: Ranking = traffic
        .into_iter()
        .map(|((a, b), t)| ((a.clone(), b.clone()), t))
        .collect();
    ranked.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    ranked
}

/// The star plus the fast paths of `pairs`, with their rules.
fn with_links(star: &Topology, proxy: &Name, pairs: &[(Name, Name)]) -> Topology {
    let mut t = star.clone();
    let homes = lang::guest_homes(star, proxy);
    for (a, b) in pairs {
        lang::add_fast_path(&mut t, &homes, a, b, LinkKind::Udp);
    }
    t
}

/// Runs the sweep; prints its table, writes the plot, returns the JSON object.
///
/// # Errors
/// A run that cannot be brought up, a job or a configuration that fails, VTTIF that saw no
/// traffic.
pub fn run(opts: &Options) -> Result<Value> {
    let run = "adapt-links";
    let guard = Runs(vec![run.to_string()]);
    let name = adapt::scenario_name(&opts.scenario);
    let topology = opts.topology.as_str();
    let say = |what: &str| eprintln!("bench adapt --links: {name} {topology}: {what}");
    say("bringing up the star");
    adapt::up(&opts.scenario, run, Mode::Vnet)?;
    let star_file = vnet::star_file(run);
    let star_text = std::fs::read_to_string(&star_file)
        .with_context(|| format!("reading {}", star_file.display()))?;
    let star = vnetd::cli::load(&star_file.display().to_string(), &star_text)?;
    let proxy: Name = "proxy".parse().map_err(anyhow::Error::msg)?;

    say("the job on the star, VTTIF watched");
    let poller = Poller::start(run, Duration::from_secs(1), |r| r.matrix)?;
    let first = adapt::job(run, topology, ITERATIONS, None);
    let matrices = poller.finish()?;
    let (first, ranked) = (first?, rank(&star, &proxy, matrices.iter().flatten()));
    if ranked.first().is_none_or(|(_, t)| *t <= 0.0) {
        anyhow::bail!("VTTIF inferred no traffic between hosts while the job ran on the star");
    }

    let dir = std::env::temp_dir().join(format!("bench-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pairs: Vec<(Name, Name)> = ranked.iter().map(|(p, _)| p.clone()).collect();
    let repeat = opts.repeat.max(1);
    // Per k, its jobs' run times, median iteration times and the machine's CPU use (%).
    let mut runs: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); pairs.len() + 1];
    for r in 1..=repeat {
        for (k, times) in runs.iter_mut().enumerate() {
            let file = dir.join(format!("links-{k}.vnet"));
            let topology_k = with_links(&star, &proxy, &pairs[..k]);
            std::fs::write(&file, lang::print(&topology_k))
                .with_context(|| format!("writing {}", file.display()))?;
            vnet::apply(run, &file)?;
            let (busy0, total0) = machine_ticks()?;
            let job = adapt::job(run, topology, ITERATIONS, None)?;
            let (busy1, total1) = machine_ticks()?;
            let cpu_pct = 100.0 * (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64;
            say(&format!(
                "sweep {r}/{repeat}, k = {k}/{}: {:.1} s{}",
                pairs.len(),
                job.total_s,
                k.checked_sub(1).map_or(String::new(), |i| format!(
                    " (+ {}-{})",
                    pairs[i].0, pairs[i].1
                ))
            ));
            times.push((job.total_s, median(&job.iter_times_s), cpu_pct));
        }
    }
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\nbench adapt --links: {name}, patterns {topology} on 8 guests ({} messages, {ITERATIONS} iterations, compute {}), fast-path links added heaviest first (VTTIF's ranking); {repeat} sweep(s), medians and spread\n",
        adapt::SIZE,
        adapt::COMPUTE
    );
    println!(
        "{:>3} {:<24} {:>11} {:>8} {:>15} {:>14} {:>6}",
        "k", "link added", "VTTIF kB/s", "run s", "spread s", "median iter s", "CPU %"
    );
    let mut times = Vec::new();
    let mut cpu_max: f64 = 0.0;
    for (k, jobs) in runs.iter().enumerate() {
        let (link, traffic) =
            k.checked_sub(1)
                .map_or(("(star alone)".into(), String::new()), |i| {
                    let ((a, b), t) = &ranked[i];
                    (format!("{a}-{b}"), format!("{:.0}", t / 1e3))
                });
        let (run_s, lo, hi) = spread(&jobs.iter().map(|j| j.0).collect::<Vec<_>>());
        let iter_s = median(&jobs.iter().map(|j| j.1).collect::<Vec<_>>());
        let cpu = jobs.iter().map(|j| j.2).fold(0.0, f64::max);
        cpu_max = cpu_max.max(cpu);
        println!(
            "{k:>3} {link:<24} {traffic:>11} {run_s:>8.1} {:>15} {iter_s:>14.3} {cpu:>6.0}",
            format!("{lo:.1}-{hi:.1}")
        );
        times.push(run_s);
    }
    println!(
        "(the job that VTTIF watched, on the star before the sweep: {:.1} s; CPU %: the whole machine's busy share during a job, the largest over the sweeps: at most {cpu_max:.0} %)",
        first.total_s
    );
    let star_s = times[0];
    let all_s = times[times.len() - 1];
    let half_s = times[pairs.len() / 2];
    println!(
        "\nstar {star_s:.1} s, half the links {half_s:.1} s, all {} links {all_s:.1} s: {:.2}x",
        pairs.len(),
        star_s / all_s
    );
    write_plot(opts, &name, &times)?;
    println!("plot: {}", opts.plot.display());
    Ok(json!({
        "links_star_s": star_s,
        "links_half_s": half_s,
        "links_all_s": all_s,
        "links_speedup_all": star_s / all_s,
        "links_k": (0..times.len()).collect::<Vec<_>>(),
        "links_run_s": times,
        "links_cpu_busiest_pct": cpu_max,
    }))
}

fn write_plot(opts: &Options, name: &str, times: &[f64]) -> Result<()> {
    let points = times
        .iter()
        .enumerate()
        .map(|(k, &t)| (k as f64, Some(t)))
        .collect();
    let svg = ::vttif::plot::figure(
        &format!(
            "{name}: patterns {} as fast-path links are added",
            opts.topology
        ),
        &[::vttif::plot::Panel {
            title: "run time against links added, heaviest first".into(),
            x_label: "fast-path links added (k)".into(),
            y_label: "run time (s)".into(),
            series: vec![::vttif::plot::Series {
                name: "run time".into(),
                points,
            }],
        }],
    );
    write_out(&opts.plot, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vnetd::lang::Guest;
    use vnetd::model::Host;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn mac(i: u8) -> vttif::Mac {
        format!("02:00:00:00:00:{i:02x}").parse().unwrap()
    }

    /// The Proxy and three hosts, guest i (MAC i) on host i.
    fn star() -> Topology {
        let host = |m: &str| Host {
            user: "root".into(),
            machine: name(m),
            port: 2222,
            interface: name("eth0"),
        };
        let guests: Vec<Guest> = (1..=3)
            .map(|i| Guest {
                host: name(&format!("h{i}")),
                port: name("tap0"),
                mac: mac(i),
            })
            .collect();
        lang::star(
            host("proxy"),
            vec![host("h1"), host("h2"), host("h3")],
            &guests,
            name("lan0"),
        )
        .unwrap()
    }

    fn flow(src: u8, dst: u8, bytes_per_s: f64) -> vttif::infer::Flow {
        vttif::infer::Flow {
            src: mac(src),
            dst: mac(dst),
            bytes_per_s,
            frames_per_s: 1.0,
        }
    }

    #[test]
    fn pairs_rank_by_both_directions_and_quiet_pairs_come_last_by_name() {
        let flows = [
            flow(1, 2, 10.0),
            flow(3, 2, 6.0),
            flow(2, 3, 6.0),
            // A guest the star does not know (the LAN's, say) is left out.
            flow(1, 9, 100.0),
        ];
        let ranked = rank(&star(), &name("proxy"), &flows);
        let got: Vec<(String, f64)> = ranked
            .iter()
            .map(|((a, b), t)| (format!("{a}-{b}"), *t))
            .collect();
        assert_eq!(
            got,
            [
                ("h2-h3".to_string(), 12.0),
                ("h1-h2".to_string(), 10.0),
                ("h1-h3".to_string(), 0.0)
            ]
        );
    }

    #[test]
    fn each_added_pair_brings_its_link_and_rules_to_the_star() {
        let star = star();
        let proxy = name("proxy");
        let one = with_links(&star, &proxy, &[(name("h1"), name("h2"))]);
        assert_eq!(one.links.len(), star.links.len() + 1);
        let all = with_links(
            &star,
            &proxy,
            &[
                (name("h1"), name("h2")),
                (name("h1"), name("h3")),
                (name("h2"), name("h3")),
            ],
        );
        assert_eq!(all, lang::mesh(&star, &proxy, LinkKind::Udp));
    }
}

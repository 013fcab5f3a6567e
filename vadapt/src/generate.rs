//! A seeded random instance generator for tests and benchmarks.
//!
//! The hosts are spread round-robin over `sites`; two hosts at one site are joined by a LAN
//! path, at different sites by a WAN path (bandwidth and latency drawn uniformly from the
//! ranges, independently per direction); each directed pair has a path with probability
//! `link_density` (always, between hosts of one site). With `proxy`, one more host, the
//! Proxy, cannot host VMs and has a WAN path to and from every host (the star's hub; it is the
//! last host). VMs need 0.5-2 cores, 1-8 GiB of space and 0.5-4 GiB of memory; every host gets
//! `compute_slack` times its share of the VMs' total compute and space (±20 %), at least the
//! largest VM's. Each ordered VM pair has a demand with probability `demand_density`, its
//! bandwidth uniform in `demand_bw`; a share `latency_bound_fraction` of the demands get a
//! latency bound uniform in `latency_bound`. The
//! current mapping is a random first fit; a share `pinned_fraction` of the VMs are pinned
//! where it puts them. The same parameters and seed give the same problem (ChaCha8).
//!
//! Problems generated are valid ([`Problem::validate`]) but not always feasible.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::{
    bytes_f64, fits, Configuration, Demand, Host, PathEstimate, Problem, Source, Vm,
};

const GIB: u64 = 1 << 30;

/// Parameters of [`generate`] (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    /// VMs.
    pub vms: usize,
    /// Hosts that can host VMs.
    pub hosts: usize,
    /// Sites the hosts are spread over.
    pub sites: usize,
    /// Whether to add the Proxy, a non-hosting hub host.
    pub proxy: bool,
    /// Probability that an ordered VM pair has a demand.
    pub demand_density: f64,
    /// Probability that an ordered pair of hosts at different sites has a path.
    pub link_density: f64,
    /// Bandwidth range of LAN paths, bit/s.
    pub lan_bw: (f64, f64),
    /// Bandwidth range of WAN paths, bit/s.
    pub wan_bw: (f64, f64),
    /// Latency range of LAN paths, seconds.
    pub lan_lat: (f64, f64),
    /// Latency range of WAN paths, seconds.
    pub wan_lat: (f64, f64),
    /// Range of the hosts' intra-host bandwidth, bit/s.
    pub intra_bw: (f64, f64),
    /// Range of the demands' bandwidth, bit/s.
    pub demand_bw: (f64, f64),
    /// Share of the demands with a latency bound.
    pub latency_bound_fraction: f64,
    /// Range of the latency bounds, seconds.
    pub latency_bound: (f64, f64),
    /// Share of the VMs pinned.
    pub pinned_fraction: f64,
    /// Hosts' capacity over the VMs' need.
    pub compute_slack: f64,
    /// The seed.
    pub seed: u64,
}

impl GenParams {
    /// A small instance for the exact solver: `vms` VMs on 4 hosts at 2 sites and the Proxy,
    /// 30 % demand density, LAN 100-1000 Mbit/s (0.1-1 ms), WAN 10-100 Mbit/s (5-50 ms), host
    /// 2-10 Gbit/s, demands 1-30 Mbit/s, 20 % of them bounded to 2-100 ms (the tight ones
    /// need one site), 10 % of the VMs pinned, capacity 1.6 times the need.
    #[must_use]
    pub fn small(vms: usize, seed: u64) -> Self {
        Self {
            vms,
            hosts: 4,
            sites: 2,
            proxy: true,
            demand_density: 0.3,
            link_density: 0.8,
            lan_bw: (100e6, 1000e6),
            wan_bw: (10e6, 100e6),
            lan_lat: (0.0001, 0.001),
            wan_lat: (0.005, 0.05),
            intra_bw: (2e9, 10e9),
            demand_bw: (1e6, 30e6),
            latency_bound_fraction: 0.2,
            latency_bound: (0.002, 0.1),
            pinned_fraction: 0.1,
            compute_slack: 1.6,
            seed,
        }
    }

    /// A larger instance: `vms` VMs on `max(2, vms / 4)` hosts in sites of 8 and the Proxy;
    /// each VM sends to about 3 others, 1-10 Mbit/s, latency bounds 50-150 ms (met by any
    /// direct path); otherwise as [`GenParams::small`].
    #[must_use]
    pub fn scaled(vms: usize, seed: u64) -> Self {
        let hosts = (vms / 4).max(2);
        Self {
            hosts,
            sites: hosts.div_ceil(8).max(1),
            demand_density: if vms > 1 {
                (3.0 / crate::usize_f64(vms - 1)).min(1.0)
            } else {
                0.0
            },
            demand_bw: (1e6, 10e6),
            latency_bound: (0.05, 0.15),
            ..Self::small(vms, seed)
        }
    }
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

/// Rounds a non-negative byte count to `u64` (saturating).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_bytes(x: f64) -> u64 {
    // Saturating float-to-int cast of a finite, non-negative value.
    x.max(0.0).round() as u64
}

/// A random problem with `params` (module docs).
#[must_use]
pub fn generate(params: &GenParams) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let nv = params.vms;
    let nh_real = params.hosts.max(1);
    let sites = params.sites.max(1);
    let vms: Vec<Vm> = (0..nv)
        .map(|i| Vm {
            name: format!("vm{}", i + 1),
            compute: f64::from(rng.gen_range(1u8..=4)) * 0.5,
            size: rng.gen_range(1..=8) * GIB,
            memory: rng.gen_range(1..=8) * GIB / 2,
        })
        .collect();
    let total_c: f64 = vms.iter().map(|v| v.compute).sum();
    let total_s: f64 = vms.iter().map(|v| bytes_f64(v.size)).sum();
    let max_c = vms.iter().map(|v| v.compute).fold(0.0, f64::max);
    let max_s = vms.iter().map(|v| bytes_f64(v.size)).fold(0.0, f64::max);
    let share = params.compute_slack / crate::usize_f64(nh_real);
    let mut hosts: Vec<Host> = (0..nh_real)
        .map(|i| Host {
            name: format!("host{}", i + 1),
            compute: (total_c * share * rng.gen_range(0.8..1.2)).max(max_c),
            size: to_bytes((total_s * share * rng.gen_range(0.8..1.2)).max(max_s)),
            intra_bw: uniform(&mut rng, params.intra_bw),
            can_host: true,
        })
        .collect();
    if params.proxy {
        hosts.push(Host {
            name: "proxy".into(),
            compute: 0.0,
            size: 0,
            intra_bw: uniform(&mut rng, params.intra_bw),
            can_host: false,
        });
    }
    let nh = hosts.len();
    let site = |h: usize| h % sites;
    let mut net = vec![vec![None; nh]; nh];
    for (a, row) in net.iter_mut().enumerate() {
        for (b, cell) in row.iter_mut().enumerate() {
            if a == b {
                continue;
            }
            let is_proxy = params.proxy && (a == nh - 1 || b == nh - 1);
            let lan = !is_proxy && site(a) == site(b);
            if !lan && !is_proxy && !rng.gen_bool(params.link_density.clamp(0.0, 1.0)) {
                continue;
            }
            let (bw, lat) = if lan {
                (params.lan_bw, params.lan_lat)
            } else {
                (params.wan_bw, params.wan_lat)
            };
            *cell = Some(PathEstimate {
                bw: uniform(&mut rng, bw),
                lat: uniform(&mut rng, lat),
                bw_ci: None,
                source: Source::Prior,
            });
        }
    }
    let mut demands = Vec::new();
    for s in 0..nv {
        for d in 0..nv {
            if s != d && rng.gen_bool(params.demand_density.clamp(0.0, 1.0)) {
                let lat = rng
                    .gen_bool(params.latency_bound_fraction.clamp(0.0, 1.0))
                    .then(|| uniform(&mut rng, params.latency_bound));
                demands.push(Demand {
                    src: s,
                    dst: d,
                    bw: uniform(&mut rng, params.demand_bw),
                    lat,
                });
            }
        }
    }
    // Current mapping: random first fit.
    let mut order: Vec<usize> = (0..nv).collect();
    for i in (1..nv).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let mut used_c = vec![0.0; nh];
    let mut used_s = vec![0u64; nh];
    let mut mapping = vec![0usize; nv];
    for v in order {
        let start = rng.gen_range(0..nh_real);
        let h = (0..nh_real)
            .map(|k| (start + k) % nh_real)
            .find(|&h| {
                fits(used_c[h] + vms[v].compute, hosts[h].compute)
                    && used_s[h] + vms[v].size <= hosts[h].size
            })
            .unwrap_or(start);
        mapping[v] = h;
        used_c[h] += vms[v].compute;
        used_s[h] += vms[v].size;
    }
    let pinned: BTreeMap<usize, usize> = (0..nv)
        .filter(|_| rng.gen_bool(params.pinned_fraction.clamp(0.0, 1.0)))
        .map(|v| (v, mapping[v]))
        .collect();
    Problem {
        hosts,
        net,
        vms,
        demands,
        pinned,
        current: Configuration {
            mapping,
            links: BTreeSet::new(),
            routes: Vec::new(),
        },
        max_links: None,
    }
}

//! Necessary conditions of feasibility, checked before any search: what the solvers report
//! when an input can be proved infeasible cheaply. Passing them does not prove feasibility (bin
//! packing and routing are NP-hard); the exact solver then proves it or not by exhaustion.

use crate::model::{bytes_f64, fits, over_capacity, Infeasible, Problem, Resource};

/// Checks, in order: the problem is valid; no VM is pinned to a host that cannot host; the VMs
/// pinned to a host fit in it; every other VM fits on some host next to the pinned ones; all VMs
/// fit in all hosts together; for every demand whose two VMs are pinned to different hosts, the
/// host graph has a directed path between them, its widest path carries the demand's bandwidth
/// and its fastest path meets the latency bound; for every other demand, some edge or host has
/// the bandwidth. These consider every path, not only the solvers' direct and two-hop routes.
///
/// # Errors
/// The first condition that fails, as a specific [`Infeasible`] variant.
pub fn diagnose(p: &Problem) -> Result<(), Infeasible> {
    p.validate()?;
    let nh = p.hosts.len();
    let mut pin_c = vec![0.0; nh];
    let mut pin_s = vec![0u64; nh];
    for (&vm, &h) in &p.pinned {
        if !p.hosts[h].can_host {
            return Err(Infeasible::PinnedToNonHost { vm, host: h });
        }
        pin_c[h] += p.vms[vm].compute;
        pin_s[h] = pin_s[h].saturating_add(p.vms[vm].size);
    }
    if let Some((host, resource, need, capacity)) = over_capacity(&p.hosts, &pin_c, &pin_s) {
        return Err(Infeasible::PinnedOverCapacity {
            host,
            resource,
            need,
            capacity,
        });
    }
    let hostable: Vec<usize> = (0..nh).filter(|&h| p.hosts[h].can_host).collect();
    for (v, vm) in p.vms.iter().enumerate() {
        if p.pinned.contains_key(&v) {
            continue;
        }
        if !hostable
            .iter()
            .any(|&h| fits(pin_c[h] + vm.compute, p.hosts[h].compute))
        {
            return Err(Infeasible::VmFitsNowhere {
                vm: v,
                resource: Resource::Compute,
                need: vm.compute,
            });
        }
        if !hostable
            .iter()
            .any(|&h| pin_s[h].saturating_add(vm.size) <= p.hosts[h].size)
        {
            return Err(Infeasible::VmFitsNowhere {
                vm: v,
                resource: Resource::Size,
                need: bytes_f64(vm.size),
            });
        }
    }
    let need_c: f64 = p.vms.iter().map(|v| v.compute).sum();
    let have_c: f64 = hostable.iter().map(|&h| p.hosts[h].compute).sum();
    if !fits(need_c, have_c) {
        return Err(Infeasible::TotalOverCapacity {
            resource: Resource::Compute,
            need: need_c,
            capacity: have_c,
        });
    }
    let need_s: u64 = p.vms.iter().map(|v| v.size).fold(0, u64::saturating_add);
    let have_s: u64 = hostable
        .iter()
        .map(|&h| p.hosts[h].size)
        .fold(0, u64::saturating_add);
    if need_s > have_s {
        return Err(Infeasible::TotalOverCapacity {
            resource: Resource::Size,
            need: bytes_f64(need_s),
            capacity: bytes_f64(have_s),
        });
    }
    if p.demands.is_empty() {
        return Ok(());
    }
    // Widest (max-min bandwidth) and fastest (min latency) paths between all host pairs.
    let mut wide = vec![0.0f64; nh * nh];
    let mut fast = vec![f64::INFINITY; nh * nh];
    for a in 0..nh {
        for b in 0..nh {
            if let Some(e) = p.edge(a, b) {
                wide[a * nh + b] = e.bw;
                fast[a * nh + b] = e.lat;
            }
        }
    }
    let mut reach: Vec<bool> = (0..nh * nh)
        .map(|i| p.edge(i / nh, i % nh).is_some())
        .collect();
    for k in 0..nh {
        for a in 0..nh {
            if !reach[a * nh + k] {
                continue;
            }
            for b in 0..nh {
                if reach[k * nh + b] {
                    reach[a * nh + b] = true;
                    wide[a * nh + b] = wide[a * nh + b].max(wide[a * nh + k].min(wide[k * nh + b]));
                    fast[a * nh + b] = fast[a * nh + b].min(fast[a * nh + k] + fast[k * nh + b]);
                }
            }
        }
    }
    let max_bw = p.max_capacity();
    for (i, d) in p.demands.iter().enumerate() {
        match (p.pinned.get(&d.src), p.pinned.get(&d.dst)) {
            (Some(&a), Some(&b)) if a == b => {
                if !fits(d.bw, p.hosts[a].intra_bw) {
                    return Err(Infeasible::BandwidthUnmeetable {
                        demand: i,
                        need: d.bw,
                        best: p.hosts[a].intra_bw,
                    });
                }
            }
            (Some(&a), Some(&b)) => {
                let j = a * nh + b;
                if !reach[j] {
                    return Err(Infeasible::Disconnected {
                        demand: i,
                        from: a,
                        to: b,
                    });
                }
                if !fits(d.bw, wide[j]) {
                    return Err(Infeasible::BandwidthUnmeetable {
                        demand: i,
                        need: d.bw,
                        best: wide[j],
                    });
                }
                if let Some(l) = d.lat {
                    if !fits(fast[j], l) {
                        return Err(Infeasible::LatencyUnmeetable {
                            demand: i,
                            limit: l,
                            best: fast[j],
                        });
                    }
                }
            }
            _ => {
                if !fits(d.bw, max_bw) {
                    return Err(Infeasible::BandwidthUnmeetable {
                        demand: i,
                        need: d.bw,
                        best: max_bw,
                    });
                }
            }
        }
    }
    Ok(())
}

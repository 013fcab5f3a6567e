//! The papers' greedy heuristic (seed 004 §9.3.2 and Appendix B): `MapVM`, then
//! `AdaptTopology`, then the routes.
//!
//! # `MapVM` (migration) as implemented
//! 1. *A*, the VM adjacency list: the demands summed per unordered VM pair into a traffic
//!    intensity (bit/s), oriented as the heavier direction, sorted by decreasing intensity.
//! 2. *B*, the VNET daemon adjacency list: every directed pair of hosts that can host VMs and
//!    have an estimate `net[a][b]`, sorted by decreasing bandwidth.
//! 3. Pinned VMs are placed first; they count as mapped VMs (*C*) and their hosts as hosts with
//!    VMs (*D*).
//! 4. First pass: for every pair of *A*, in order, neither of whose VMs is mapped, the first
//!    pair of *B* neither of whose hosts has a VM and which can take the two VMs (compute and
//!    size) gets them. When no such host pair is left, the VMs wait for the second pass.
//! 5. Second pass (the stragglers): for every pair of *A*, in order, each VM not yet mapped
//!    goes to the host, among those it fits on, with the largest throughput estimate to its
//!    counterpart's host (`intra_bw` for the counterpart's own host) in the pair's direction.
//! 6. VMs in no demand stay on their current host if they fit there, else go where most
//!    compute is left.
//!
//! Every placement above also respects the latency bounds of the VM's demands with VMs
//! already placed (some direct or two-hop route between the two hosts must meet the bound
//! and have the raw capacity for the demand), when some host allows it; the paper's heuristic ignores latency, and without this
//! a tightly bounded demand between two sites makes the routes infeasible.
//!
//! # `AdaptTopology` as implemented
//! The VM pairs of *A* become host pairs through the new mapping (pairs on one host dropped),
//! summed per unordered host pair, sorted by decreasing intensity, and a link is established
//! for each pair in order that the host graph allows (an estimate in either direction), while
//! fewer than [`Problem::max_links`] links exist (the paper's cost constraint `c`).
//!
//! # Routes (not in the paper, where the star carries what the fast paths do not)
//! Demands by decreasing bandwidth: one-host demands on `[h]`; the others direct if their link
//! exists and the edge has room and meets the latency bound, else over the two-hop path over
//! established links with the largest bottleneck after it, else (if the link budget allows)
//! over the direct or two-hop candidate needing the fewest new links, which are then
//! established. A demand with none of these makes the greedy fail with
//! [`Infeasible::NotFound`] (another solver may still find a configuration) — after up to 32
//! repairs (not in the paper): a demand that cannot be routed has one of its unpinned VMs
//! moved, to its counterpart's host if it fits there, else to the host with the largest
//! throughput towards it that fits and meets the VM's latency bounds (each VM-host move tried
//! once), and `AdaptTopology` runs again.
//!
//! # Where Appendix B's pseudo-code is wrong or ambiguous, and what is done here
//! - `MapVM` builds its list *E* as `E[k,0] ← G(A[k,0])`, i.e. through the *current* mapping
//!   *G*, which would make it a list of hosts, yet later treats `E[i,0]` as a VM (it is put in
//!   *C*, "the VM nodes", and mapped in *T*). The prose (step 4) maps *VM* pairs: *E* here is
//!   the VM adjacency list *A*, sorted; *G* is used only for VMs in no demand.
//! - `Quicksort(E)`, `Quicksort(B)` and `Quicksort(C)` do not say the key or the order: by
//!   intensity or bandwidth, decreasing, as the prose says; ties by index, for determinism.
//! - The first loops of both procedures never increment `count` (they never end); they are
//!   loops over the list.
//! - `m ← 0` and `n ← 0` inside the loops reset the ends of *C* and *D* on every iteration,
//!   overwriting earlier entries; `n ← n + 1` after writing two entries: *C* and *D* are sets
//!   here.
//! - `D[n] ← B[i,0]` and `D[n+1] ← B[i,1]` index *B* with the VM-pair index `i` instead of
//!   `j`: the host pair `B[j]` is what is marked.
//! - The inner loop over *B* never stops at a match and never increments `j`: as written it
//!   maps one VM pair to every free host pair. It stops at the first free pair here.
//! - Free host pairs are not checked for compute or size: here a pair must also fit the VMs
//!   (GAPVEE's capacity constraints), and pinned VMs are honoured (step 3).
//! - In the second pass `E[i,0] ≠ C` means "not in *C*"; the loop over *i* never increments
//!   `i` (only `count`); the inner loops never increment `j`; and they look the *straggler*
//!   up in *T* (`E[i,0] == T[j,0]`), which finds nothing (it is unmapped) or, comparing a VM
//!   with a host (`E[i,0] == T[j,1]`), a meaningless match, and then map it to that entry's
//!   host `temp` (stale from an earlier iteration when nothing matched). The prose (step 6)
//!   is implemented instead: the host with the largest throughput to the counterpart's host.
//! - When both VMs of a pair are stragglers (hosts ran out in the first pass), the first has
//!   no mapped counterpart: it goes to the host with the largest throughput to the host of its
//!   heaviest already-mapped neighbour in *A*, or, with none, where most compute is left; the
//!   second then follows it.
//! - `AdaptTopology` establishes `LINK A[i,0] A[i,1]` (VMs) instead of `C[i,0] C[i,1]` (the
//!   hosts just computed), advances with `i ← i + i` (stuck at 0), never uses its cost
//!   constraint `c` and emits one link per VM pair (duplicates, and links from a host to
//!   itself): here host pairs are summed, one-host pairs dropped, `i` steps by one and `c` is
//!   `max_links`.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::diagnose::diagnose;
use crate::engine::{by_bandwidth, configuration, intra_host_routes, vm_fits, Ctx, Route};
use crate::model::{evaluate, link, Configuration, Infeasible, Problem};
use crate::objective::Objective;

use super::Solver;

const NAME: &str = "greedy";

/// The papers' greedy heuristic, `MapVM` then `AdaptTopology` (module docs). It ignores the
/// objective, as in the paper: it maps communicating VMs onto high-bandwidth host pairs and
/// matches the overlay to the traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greedy;

fn not_found(reason: String) -> Infeasible {
    Infeasible::NotFound {
        solver: NAME,
        reason,
    }
}

/// The VM adjacency list *A*: `(u, v, intensity)` per unordered VM pair with traffic, `u → v`
/// the heavier direction, by decreasing intensity.
fn vm_pairs(p: &Problem) -> Vec<(usize, usize, f64)> {
    let mut dir: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for d in &p.demands {
        *dir.entry((d.src, d.dst)).or_default() += d.bw;
    }
    let mut pairs = Vec::new();
    for (&(s, t), &bw) in &dir {
        // Each unordered pair once, from its heavier direction (the lower source on ties).
        let back = dir.get(&(t, s)).copied();
        if back.is_none_or(|b| bw > b || (bw == b && s < t)) {
            pairs.push((s, t, bw + back.unwrap_or(0.0)));
        }
    }
    pairs.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
    pairs
}

impl Greedy {
    /// `MapVM`: the new VM → host mapping (module docs).
    ///
    /// # Errors
    /// [`Infeasible::NotFound`] if a VM fits on no host left; the problem's diagnosis if
    /// [`crate::diagnose()`] fails.
    pub fn map_vm(p: &Problem) -> Result<Vec<usize>, Infeasible> {
        diagnose(p)?;
        let ctx = Ctx::new(p);
        map_vm(&ctx, &LatCheck::new(&ctx))
    }

    /// `AdaptTopology` and the routes for `mapping` (module docs): the whole configuration.
    /// With the current mapping this is topology adaptation without migration.
    ///
    /// # Errors
    /// [`Infeasible::NotFound`] if a demand cannot be routed; the first violated constraint if
    /// the result is infeasible otherwise (e.g. a host over capacity in `mapping`).
    pub fn adapt_topology(p: &Problem, mapping: &[usize]) -> Result<Configuration, Infeasible> {
        p.validate()?;
        if mapping.len() != p.vms.len() || mapping.iter().any(|&h| h >= p.hosts.len()) {
            return Err(Infeasible::Shape {
                what: "mapping entries (or a host out of range)",
                len: mapping.len(),
                expected: p.vms.len(),
            });
        }
        let ctx = Ctx::new(p);
        let config = adapt_topology(&ctx, mapping).map_err(|u| u.error)?;
        evaluate(p, &config)?;
        Ok(config)
    }
}

impl Solver for Greedy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn solve(&self, p: &Problem, _: &dyn Objective) -> Result<Configuration, Infeasible> {
        diagnose(p)?;
        let ctx = Ctx::new(p);
        let lat = LatCheck::new(&ctx);
        let mut mapping = map_vm(&ctx, &lat)?;
        let mut tried = BTreeSet::new();
        let mut last = None;
        for _ in 0..=REPAIRS {
            match adapt_topology(&ctx, &mapping) {
                Ok(config) => {
                    evaluate(p, &config)
                        .map_err(|e| not_found(format!("its configuration is infeasible: {e}")))?;
                    return Ok(config);
                }
                Err(u) => {
                    let moved = repair(&ctx, &lat, &mut mapping, u.demand, &mut tried);
                    last = Some(u.error);
                    if !moved {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| not_found("no repair left".into())))
    }
}

/// Moves the greedy makes at most to repair a mapping whose demands cannot all be routed.
const REPAIRS: usize = 32;

/// A demand the routes could not carry.
struct Unroutable {
    demand: usize,
    error: Infeasible,
}

/// Moves one unpinned VM of demand `i` to a host not tried yet for it: its counterpart's host
/// if it fits, else the host with the largest throughput towards the counterpart's host that
/// fits and meets the latency bounds of its demands. Whether a VM was moved.
fn repair(
    ctx: &Ctx<'_>,
    lat: &LatCheck,
    mapping: &mut [usize],
    i: usize,
    tried: &mut BTreeSet<(usize, usize)>,
) -> bool {
    let p = ctx.p;
    let nh = ctx.nh;
    let d = &p.demands[i];
    for (x, y, x_src) in [(d.src, d.dst, true), (d.dst, d.src, false)] {
        if p.pinned.contains_key(&x) {
            continue;
        }
        let hy = mapping[y];
        let mut rest: Vec<usize> = mapping.to_vec();
        rest[x] = usize::MAX;
        let mut used = (vec![0.0; nh], vec![0u64; nh]);
        for (v, &h) in rest.iter().enumerate() {
            if h != usize::MAX {
                used.0[h] += p.vms[v].compute;
                used.1[h] = used.1[h].saturating_add(p.vms[v].size);
            }
        }
        let map: Vec<Option<usize>> = rest
            .iter()
            .map(|&h| (h != usize::MAX).then_some(h))
            .collect();
        let through = |h: usize| -> f64 {
            if h == hy {
                return f64::INFINITY;
            }
            let (a, b) = if x_src { (h, hy) } else { (hy, h) };
            if ctx.exists[ctx.idx(a, b)] {
                ctx.cap[ctx.idx(a, b)]
            } else {
                0.0
            }
        };
        let mut hosts: Vec<usize> = ctx
            .hostable
            .iter()
            .copied()
            .filter(|&h| h != mapping[x] && !tried.contains(&(x, h)))
            .filter(|&h| vm_fits(ctx, &used, x, h) && lat.ok(&map, x, h, None))
            .collect();
        hosts.sort_by(|&a, &b| through(b).total_cmp(&through(a)).then(a.cmp(&b)));
        if let Some(&h) = hosts.first() {
            tried.insert((x, h));
            mapping[x] = h;
            return true;
        }
    }
    false
}

/// Latency bounds as a placement filter: per host pair, the latency/bandwidth trade-off of its
/// direct and two-hop routes, and each VM's latency-bounded demands.
struct LatCheck<'c, 'a> {
    ctx: &'c Ctx<'a>,
    /// `frontier[a * nh + b]`, computed when first needed: `(latency, raw bottleneck)` of the
    /// routes from `a` to `b` that no faster route beats in bandwidth, by increasing latency.
    frontier: Vec<OnceCell<Vec<(f64, f64)>>>,
    /// Per VM: `(other VM, bound, bandwidth, whether this VM is the source)`.
    bounds: Vec<Vec<(usize, f64, f64, bool)>>,
}

impl<'c, 'a> LatCheck<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>) -> Self {
        let p = ctx.p;
        let mut bounds = vec![Vec::new(); p.vms.len()];
        for d in &p.demands {
            if let Some(l) = d.lat {
                bounds[d.src].push((d.dst, l, d.bw, true));
                bounds[d.dst].push((d.src, l, d.bw, false));
            }
        }
        let cells = if bounds.iter().all(Vec::is_empty) {
            0
        } else {
            ctx.nh * ctx.nh
        };
        Self {
            ctx,
            frontier: (0..cells).map(|_| OnceCell::new()).collect(),
            bounds,
        }
    }

    fn frontier(&self, a: usize, b: usize) -> &[(f64, f64)] {
        let ctx = self.ctx;
        self.frontier[a * ctx.nh + b].get_or_init(|| {
            let mut rs: Vec<(f64, f64)> = ctx
                .candidates(a, b, None)
                .into_iter()
                .map(|r| (ctx.route_lat(r), ctx.raw_bottleneck(r)))
                .collect();
            rs.sort_by(|x, y| x.0.total_cmp(&y.0));
            let mut best = f64::NEG_INFINITY;
            rs.retain(|&(_, bw)| {
                let keep = bw > best;
                best = best.max(bw);
                keep
            });
            rs
        })
    }

    /// Whether VM `x` on host `h` leaves every latency-bounded demand with a VM already mapped
    /// a route meeting the bound whose raw capacity carries the demand (`extra` is one more
    /// mapped VM, for a pair being placed).
    fn ok(&self, map: &[Option<usize>], x: usize, h: usize, extra: Option<(usize, usize)>) -> bool {
        self.bounds[x].iter().all(|&(y, bound, bw, x_src)| {
            let hy = match extra {
                Some((v, hv)) if v == y => Some(hv),
                _ => map[y],
            };
            hy.is_none_or(|hy| {
                if hy == h {
                    return true;
                }
                let (a, b) = if x_src { (h, hy) } else { (hy, h) };
                self.frontier(a, b)
                    .iter()
                    .take_while(|&&(l, _)| crate::model::fits(l, bound))
                    .any(|&(_, cap)| crate::model::fits(bw, cap))
            })
        })
    }
}

fn map_vm(ctx: &Ctx<'_>, lat: &LatCheck) -> Result<Vec<usize>, Infeasible> {
    let p = ctx.p;
    let nh = ctx.nh;
    let nv = p.vms.len();
    let mut map: Vec<Option<usize>> = vec![None; nv];
    let mut used = (vec![0.0; nh], vec![0u64; nh]);
    let mut has_vm = vec![false; nh];
    let place = |v: usize,
                 h: usize,
                 map: &mut Vec<Option<usize>>,
                 used: &mut (Vec<f64>, Vec<u64>),
                 has_vm: &mut Vec<bool>| {
        map[v] = Some(h);
        used.0[h] += p.vms[v].compute;
        used.1[h] = used.1[h].saturating_add(p.vms[v].size);
        has_vm[h] = true;
    };
    for (&v, &h) in &p.pinned {
        place(v, h, &mut map, &mut used, &mut has_vm);
    }
    let a_list = vm_pairs(p);
    let mut b_list: Vec<(usize, usize, f64)> = Vec::new();
    for &a in &ctx.hostable {
        for &b in &ctx.hostable {
            if a != b && ctx.exists[ctx.idx(a, b)] {
                b_list.push((a, b, ctx.cap[ctx.idx(a, b)]));
            }
        }
    }
    b_list.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));

    // First pass: pairs of unmapped VMs onto the first free host pair that fits them.
    let mut first_free = 0; // entries before it have a host with VMs: skip them for good
    for &(u, v, _) in &a_list {
        if map[u].is_some() || map[v].is_some() {
            continue;
        }
        while first_free < b_list.len()
            && (has_vm[b_list[first_free].0] || has_vm[b_list[first_free].1])
        {
            first_free += 1;
        }
        // a != b, so u on a does not change what is left on b.
        let found = b_list[first_free..].iter().find(|&&(a, b, _)| {
            !has_vm[a]
                && !has_vm[b]
                && vm_fits(ctx, &used, u, a)
                && vm_fits(ctx, &used, v, b)
                && lat.ok(&map, u, a, None)
                && lat.ok(&map, v, b, Some((u, a)))
        });
        if let Some(&(a, b, _)) = found {
            place(u, a, &mut map, &mut used, &mut has_vm);
            place(v, b, &mut map, &mut used, &mut has_vm);
        }
    }

    // Second pass: the stragglers, next to their counterpart.
    let mut neighbours: Vec<Vec<(usize, bool)>> = vec![Vec::new(); nv];
    for &(u, v, _) in &a_list {
        neighbours[u].push((v, true));
        neighbours[v].push((u, false));
    }
    let throughput = |h: usize, hc: usize, x_is_src: bool| -> f64 {
        let (from, to) = if x_is_src { (h, hc) } else { (hc, h) };
        if ctx.exists[ctx.idx(from, to)] {
            ctx.cap[ctx.idx(from, to)]
        } else if ctx.exists[ctx.idx(to, from)] {
            ctx.cap[ctx.idx(to, from)]
        } else {
            f64::NEG_INFINITY
        }
    };
    let most_room =
        |v: usize, used: &(Vec<f64>, Vec<u64>), map: &[Option<usize>]| -> Option<usize> {
            let room = |respect_lat: bool| {
                ctx.hostable
                    .iter()
                    .copied()
                    .filter(|&h| vm_fits(ctx, used, v, h))
                    .filter(|&h| !respect_lat || lat.ok(map, v, h, None))
                    .max_by(|&x, &y| {
                        let rx = p.hosts[x].compute - used.0[x];
                        let ry = p.hosts[y].compute - used.0[y];
                        rx.total_cmp(&ry).then(y.cmp(&x))
                    })
            };
            room(true).or_else(|| room(false))
        };
    for &(u, v, _) in &a_list {
        for (x, other, x_is_src) in [(u, v, true), (v, u, false)] {
            if map[x].is_some() {
                continue;
            }
            let counterpart = map[other].map(|h| (h, x_is_src)).or_else(|| {
                neighbours[x]
                    .iter()
                    .find_map(|&(n, src)| map[n].map(|h| (h, src)))
            });
            let best = counterpart.and_then(|(hc, src)| {
                let ranked = |respect_lat: bool| {
                    ctx.hostable
                        .iter()
                        .copied()
                        .filter(|&h| vm_fits(ctx, &used, x, h))
                        .filter(|&h| !respect_lat || lat.ok(&map, x, h, None))
                        .map(|h| (h, throughput(h, hc, src)))
                        .filter(|&(_, t)| t > f64::NEG_INFINITY)
                        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                        .map(|(h, _)| h)
                };
                ranked(true).or_else(|| ranked(false))
            });
            let Some(h) = best.or_else(|| most_room(x, &used, &map)) else {
                return Err(not_found(format!(
                    "vm {x} ({}) fits on no host left",
                    p.vms[x].name
                )));
            };
            place(x, h, &mut map, &mut used, &mut has_vm);
        }
    }

    // VMs in no demand: stay if they fit, else where most compute is left.
    for x in 0..nv {
        if map[x].is_some() {
            continue;
        }
        let cur = p.current.mapping.get(x).copied();
        let h = match cur {
            Some(h) if vm_fits(ctx, &used, x, h) => Some(h),
            _ => most_room(x, &used, &map),
        };
        let Some(h) = h else {
            return Err(not_found(format!(
                "vm {x} ({}) fits on no host left",
                p.vms[x].name
            )));
        };
        place(x, h, &mut map, &mut used, &mut has_vm);
    }
    Ok(map.into_iter().map(|h| h.unwrap_or(0)).collect())
}

fn adapt_topology(ctx: &Ctx<'_>, mapping: &[usize]) -> Result<Configuration, Unroutable> {
    let p = ctx.p;
    let budget = p.max_links.unwrap_or(usize::MAX);
    // The host-level list C.
    let mut host_pairs: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for d in &p.demands {
        let (a, b) = (mapping[d.src], mapping[d.dst]);
        if a != b {
            *host_pairs.entry(link(a, b)).or_default() += d.bw;
        }
    }
    let mut c_list: Vec<((usize, usize), f64)> = host_pairs.into_iter().collect();
    c_list.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    let mut links: BTreeSet<(usize, usize)> = BTreeSet::new();
    for &((a, b), _) in &c_list {
        if links.len() >= budget {
            break;
        }
        if ctx.exists[ctx.idx(a, b)] || ctx.exists[ctx.idx(b, a)] {
            links.insert((a, b));
        }
    }

    // Routes.
    // An overloaded host is for `evaluate` to report.
    let (mut routes, mut loads, _) = intra_host_routes(ctx, mapping);
    for i in by_bandwidth(p) {
        if routes[i].is_some() {
            continue;
        }
        let d = &p.demands[i];
        let (a, b) = (mapping[d.src], mapping[d.dst]);
        let cands: Vec<Route> = ctx
            .candidates(a, b, d.lat)
            .into_iter()
            .filter(|&r| loads.fits(ctx, r, d.bw))
            .collect();
        let new_links = |r: &Route| r.links().filter(|l| !links.contains(l)).count();
        let direct = cands
            .iter()
            .copied()
            .find(|r| r.via.is_none() && new_links(r) == 0);
        let chosen = direct.or_else(|| {
            cands
                .iter()
                .copied()
                .filter(|r| links.len() + new_links(r) <= budget)
                .max_by(|x, y| {
                    new_links(y)
                        .cmp(&new_links(x))
                        .then(
                            loads
                                .bottleneck_with(ctx, *x, d.bw)
                                .total_cmp(&loads.bottleneck_with(ctx, *y, d.bw)),
                        )
                        .then(y.via.cmp(&x.via))
                })
        });
        let Some(r) = chosen else {
            return Err(Unroutable {
                demand: i,
                error: not_found(format!(
                    "demand {i} (vm {} -> vm {}, {} bit/s) has no direct or two-hop route from host {a} to host {b} with room{}",
                    d.src,
                    d.dst,
                    d.bw,
                    if p.max_links.is_some() { " within the link budget" } else { "" }
                )),
            });
        };
        links.extend(r.links());
        loads.add(ctx, r, d.bw);
        routes[i] = Some(r);
    }
    let routes: Vec<Route> = routes.into_iter().flatten().collect();
    let mut config = configuration(mapping.to_vec(), &routes);
    config.links = links;
    Ok(config)
}

//! The exact solver: branch and bound over every mapping and, for each, every choice of
//! candidate routes (direct and two-hop), so the heuristics can be judged against the optimum.
//!
//! - **Incumbent**: the greedy's configuration improved by local search (when the greedy
//!   finds one), so pruning starts at once.
//! - **Mappings**: VMs in order of decreasing traffic, pinned ones fixed, each tried on every
//!   host it fits on (compute and size). When maximising, a partial mapping is pruned when
//!   even the widest candidate route of every demand, minus its own bandwidth, cannot beat the
//!   incumbent.
//! - **Routes** (at each complete mapping): one-host demands are fixed; the others are
//!   branched on by decreasing bandwidth over their candidates that still fit (capacities,
//!   latency, link budget). A node is pruned by the objective's value at per-demand bounds:
//!   residuals only fall as demands are added, so a routed demand's bottleneck is at most its
//!   current one and an unrouted demand's at most its best candidate's after adding it; from
//!   below, every edge's residual is at least its current one minus the bandwidth of every
//!   unrouted demand that could use it (and at least 0). Hop counts are bounded by the
//!   candidates'. This is valid because [`Objective::combine`] is monotone (its contract).
//!
//! Optimal over the candidate routes; routes of three or more hops are not considered (nor by
//! the other solvers). It stops with [`Infeasible::SearchLimit`] rather than return an
//! unproven answer.

use crate::diagnose::diagnose;
use crate::engine::{
    by_bandwidth, configuration, intra_host_routes, local_search, outcomes, score_mapping, vm_fits,
    Ctx, Loads, Route, Scored,
};
use crate::model::{evaluate, Configuration, DemandOutcome, Infeasible, Problem};
use crate::objective::{Direction, Objective};

use super::{Greedy, Solver};

const NAME: &str = "exact";

/// Exhaustive branch and bound (module docs) for small instances.
#[derive(Debug, Clone, Copy)]
pub struct Exact {
    /// Largest number of VMs it accepts.
    pub max_vms: usize,
    /// Largest number of hosts it accepts.
    pub max_hosts: usize,
    /// Search nodes (partial mappings and partial routings) after which it gives up.
    pub node_limit: u64,
}

impl Default for Exact {
    /// At most 10 VMs, 8 hosts, 50 million nodes.
    fn default() -> Self {
        Self {
            max_vms: 10,
            max_hosts: 8,
            node_limit: 50_000_000,
        }
    }
}

struct Search<'a, 'c> {
    ctx: &'c Ctx<'a>,
    obj: &'c dyn Objective,
    dir: Direction,
    order: Vec<usize>,
    /// Per demand: the largest bottleneck any placement could give it (bit/s).
    global_hi: Vec<f64>,
    /// Per host pair `a * nh + b`: candidate routes, latency unfiltered.
    cands: Vec<Vec<Route>>,
    best: Option<(Vec<usize>, Vec<Route>, f64)>,
    nodes: u64,
    limit: u64,
    hit_limit: bool,
}

impl Solver for Exact {
    fn name(&self) -> &'static str {
        NAME
    }

    fn solve(&self, p: &Problem, obj: &dyn Objective) -> Result<Configuration, Infeasible> {
        diagnose(p)?;
        if p.vms.len() > self.max_vms || p.hosts.len() > self.max_hosts {
            return Err(Infeasible::TooLarge {
                solver: NAME,
                size: format!("{} VMs on {} hosts", p.vms.len(), p.hosts.len()),
                limit: format!("{} VMs on {} hosts", self.max_vms, self.max_hosts),
            });
        }
        let ctx = Ctx::new(p);
        let order = by_bandwidth(p);
        let nh = ctx.nh;
        let mut cands = vec![Vec::new(); nh * nh];
        for a in 0..nh {
            for b in 0..nh {
                cands[a * nh + b] = ctx.candidates(a, b, None);
            }
        }
        let global_hi = p
            .demands
            .iter()
            .map(|d| {
                let mut hi = f64::NEG_INFINITY;
                for &a in &ctx.hostable {
                    for &b in &ctx.hostable {
                        for &r in &cands[a * nh + b] {
                            if d.lat
                                .is_none_or(|l| crate::model::fits(ctx.route_lat(r), l))
                            {
                                hi = hi.max(ctx.raw_bottleneck(r) - d.bw);
                            }
                        }
                    }
                }
                hi
            })
            .collect();
        let mut s = Search {
            ctx: &ctx,
            obj,
            dir: obj.direction(),
            order,
            global_hi,
            cands,
            best: None,
            nodes: 0,
            limit: self.node_limit,
            hit_limit: false,
        };
        // Incumbent: greedy + local search.
        if let Ok(g) = Greedy.solve(p, obj) {
            if let Some(start) = score_mapping(&ctx, obj, g.mapping, &s.order, 2) {
                let ls: Scored = local_search(&ctx, obj, start, &s.order, 20_000);
                s.best = Some((ls.mapping, ls.routes, ls.score));
            }
        }
        // VM order: pinned first (fixed), then by decreasing traffic.
        let mut traffic = vec![0.0; p.vms.len()];
        for d in &p.demands {
            traffic[d.src] += d.bw;
            traffic[d.dst] += d.bw;
        }
        let mut vm_order: Vec<usize> = (0..p.vms.len()).collect();
        vm_order.sort_by(|&x, &y| {
            let px = p.pinned.contains_key(&x);
            let py = p.pinned.contains_key(&y);
            py.cmp(&px)
                .then(traffic[y].total_cmp(&traffic[x]))
                .then(x.cmp(&y))
        });
        let mut mapping: Vec<Option<usize>> = vec![None; p.vms.len()];
        let mut used = (vec![0.0; nh], vec![0u64; nh]);
        s.map(&vm_order, 0, &mut mapping, &mut used);
        if s.hit_limit {
            return Err(Infeasible::SearchLimit {
                solver: NAME,
                nodes: s.nodes,
            });
        }
        let Some((m, routes, _)) = s.best else {
            return Err(Infeasible::NoFeasibleConfiguration);
        };
        let config = configuration(m, &routes);
        evaluate(p, &config)?;
        Ok(config)
    }
}

impl Search<'_, '_> {
    fn tick(&mut self) -> bool {
        self.nodes += 1;
        if self.nodes > self.limit {
            self.hit_limit = true;
        }
        self.hit_limit
    }

    fn incumbent(&self) -> f64 {
        self.best.as_ref().map_or(self.dir.worst(), |b| b.2)
    }

    /// Whether a node whose value is bounded by `bound` (from above when maximising, from
    /// below when minimising) cannot beat the incumbent.
    fn prune(&self, bound: f64) -> bool {
        self.best.is_some() && !self.dir.better(bound, self.incumbent())
    }

    fn map(
        &mut self,
        vm_order: &[usize],
        k: usize,
        mapping: &mut Vec<Option<usize>>,
        used: &mut (Vec<f64>, Vec<u64>),
    ) {
        if self.tick() {
            return;
        }
        let ctx = self.ctx;
        let p = ctx.p;
        if self.dir == Direction::Maximize {
            let nh = ctx.nh;
            let mut hi = Vec::with_capacity(p.demands.len());
            for (i, d) in p.demands.iter().enumerate() {
                let o = match (mapping[d.src], mapping[d.dst]) {
                    (Some(a), Some(b)) => {
                        let mut best: Option<(f64, usize)> = None;
                        for &r in &self.cands[a * nh + b] {
                            if d.lat
                                .is_none_or(|l| crate::model::fits(ctx.route_lat(r), l))
                            {
                                let bn = ctx.raw_bottleneck(r) - d.bw;
                                let hops = r.hops();
                                best = Some(
                                    best.map_or((bn, hops), |(b0, h0)| (b0.max(bn), h0.min(hops))),
                                );
                            }
                        }
                        let Some((bn, hops)) = best else { return };
                        if bn < -crate::model::TOLERANCE * d.bw.max(1.0) {
                            return;
                        }
                        DemandOutcome {
                            bottleneck: bn,
                            hops,
                            latency: 0.0,
                        }
                    }
                    _ => DemandOutcome {
                        bottleneck: self.global_hi[i],
                        hops: 0,
                        latency: 0.0,
                    },
                };
                hi.push(o);
            }
            if self.prune(self.obj.combine(p, &hi)) {
                return;
            }
        }
        if k == vm_order.len() {
            let m: Vec<usize> = mapping.iter().map(|h| h.unwrap_or(0)).collect();
            self.route_mapping(&m);
            return;
        }
        let v = vm_order[k];
        let hosts: Vec<usize> = match p.pinned.get(&v) {
            Some(&h) => vec![h],
            None => ctx.hostable.clone(),
        };
        for h in hosts {
            if !vm_fits(ctx, used, v, h) {
                continue;
            }
            mapping[v] = Some(h);
            used.0[h] += p.vms[v].compute;
            used.1[h] = used.1[h].saturating_add(p.vms[v].size);
            self.map(vm_order, k + 1, mapping, used);
            used.0[h] -= p.vms[v].compute;
            used.1[h] = used.1[h].saturating_sub(p.vms[v].size);
            mapping[v] = None;
            if self.hit_limit {
                return;
            }
        }
    }

    fn route_mapping(&mut self, m: &[usize]) {
        let ctx = self.ctx;
        let p = ctx.p;
        let nh = ctx.nh;
        let (mut routes, mut loads, fit) = intra_host_routes(ctx, m);
        if !fit {
            return;
        }
        // Inter-host demands in branching order, with their latency-feasible candidates.
        let todo: Vec<(usize, Vec<Route>)> = self
            .order
            .iter()
            .filter(|&&i| routes[i].is_none())
            .map(|&i| {
                let d = &p.demands[i];
                let c = self.cands[m[d.src] * nh + m[d.dst]]
                    .iter()
                    .copied()
                    .filter(|&r| {
                        d.lat
                            .is_none_or(|l| crate::model::fits(ctx.route_lat(r), l))
                    })
                    .collect();
                (i, c)
            })
            .collect();
        self.route(m, &todo, 0, &mut routes, &mut loads);
    }

    fn route(
        &mut self,
        m: &[usize],
        todo: &[(usize, Vec<Route>)],
        k: usize,
        routes: &mut Vec<Option<Route>>,
        loads: &mut Loads,
    ) {
        if self.tick() {
            return;
        }
        let ctx = self.ctx;
        let p = ctx.p;
        if k == todo.len() {
            let rs: Vec<Route> = routes
                .iter()
                .map(|r| {
                    r.unwrap_or(Route {
                        a: 0,
                        via: None,
                        b: 0,
                    })
                })
                .collect();
            let score = self.obj.combine(p, &outcomes(ctx, &rs, loads));
            if self.best.is_none() || self.dir.better(score, self.incumbent()) {
                self.best = Some((m.to_vec(), rs, score));
            }
            return;
        }
        let Some(bound) = self.bound(todo, k, routes, loads) else {
            return;
        };
        if self.prune(bound) {
            return;
        }
        let (i, cands) = &todo[k];
        let bw = p.demands[*i].bw;
        let mut opts: Vec<(Route, f64)> = cands
            .iter()
            .copied()
            .filter(|&r| loads.admits(ctx, r, bw))
            .map(|r| (r, loads.bottleneck_with(ctx, r, bw)))
            .collect();
        match self.dir {
            Direction::Maximize => opts.sort_by(|x, y| y.1.total_cmp(&x.1)),
            Direction::Minimize => opts.sort_by(|x, y| x.1.total_cmp(&y.1)),
        }
        for (r, _) in opts {
            loads.add(ctx, r, bw);
            routes[*i] = Some(r);
            self.route(m, todo, k + 1, routes, loads);
            routes[*i] = None;
            loads.remove(ctx, r, bw);
            if self.hit_limit {
                return;
            }
        }
    }

    /// The objective's bound at a routing node (above when maximising, below when
    /// minimising); `None` if an unrouted demand has no candidate left.
    fn bound(
        &self,
        todo: &[(usize, Vec<Route>)],
        k: usize,
        routes: &[Option<Route>],
        loads: &Loads,
    ) -> Option<f64> {
        let ctx = self.ctx;
        let p = ctx.p;
        let mut outs: Vec<DemandOutcome> = Vec::with_capacity(routes.len());
        match self.dir {
            Direction::Maximize => {
                let mut unrouted: Vec<Option<DemandOutcome>> = vec![None; routes.len()];
                for (i, cands) in &todo[k..] {
                    let bw = p.demands[*i].bw;
                    let mut best: Option<DemandOutcome> = None;
                    for &r in cands {
                        if !loads.admits(ctx, r, bw) {
                            continue;
                        }
                        let bn = loads.bottleneck_with(ctx, r, bw);
                        let o = best.get_or_insert(DemandOutcome {
                            bottleneck: bn,
                            hops: r.hops(),
                            latency: 0.0,
                        });
                        o.bottleneck = o.bottleneck.max(bn);
                        o.hops = o.hops.min(r.hops());
                    }
                    unrouted[*i] = Some(best?);
                }
                for (i, r) in routes.iter().enumerate() {
                    outs.push(match r {
                        Some(r) => DemandOutcome {
                            bottleneck: loads.bottleneck(ctx, *r),
                            hops: r.hops(),
                            latency: 0.0,
                        },
                        None => unrouted[i]?,
                    });
                }
            }
            Direction::Minimize => {
                let mut pending = vec![0.0; loads.load.len()];
                let mut admissible: Vec<Vec<Route>> = vec![Vec::new(); routes.len()];
                for (i, cands) in &todo[k..] {
                    let bw = p.demands[*i].bw;
                    admissible[*i] = cands
                        .iter()
                        .copied()
                        .filter(|&r| loads.admits(ctx, r, bw))
                        .collect();
                    if admissible[*i].is_empty() {
                        return None;
                    }
                    let mut touched: Vec<usize> = admissible[*i]
                        .iter()
                        .flat_map(|r| r.edges().map(|(a, b)| ctx.idx(a, b)))
                        .collect();
                    touched.sort_unstable();
                    touched.dedup();
                    for e in touched {
                        pending[e] += bw;
                    }
                }
                let lo = |r: Route| -> f64 {
                    r.edges()
                        .map(|(a, b)| {
                            let e = ctx.idx(a, b);
                            (ctx.cap[e] - loads.load[e] - pending[e]).max(0.0)
                        })
                        .fold(f64::INFINITY, f64::min)
                };
                for (i, r) in routes.iter().enumerate() {
                    outs.push(match r {
                        Some(r) => DemandOutcome {
                            bottleneck: lo(*r),
                            hops: r.hops(),
                            latency: 0.0,
                        },
                        None => DemandOutcome {
                            bottleneck: admissible[i]
                                .iter()
                                .map(|&r| lo(r))
                                .fold(f64::INFINITY, f64::min),
                            hops: admissible[i].iter().map(|r| r.hops()).max().unwrap_or(0),
                            latency: 0.0,
                        },
                    });
                }
            }
        }
        Some(self.obj.combine(p, &outs))
    }
}

//! What the solvers share: candidate routes (direct and two-hop), incremental loads, routing a
//! mapping, scoring, and a local search over mappings. Internal; everything public goes through
//! [`crate::model::evaluate`] in the end.

use crate::model::{fits, link, Configuration, DemandOutcome, Problem};
use crate::objective::{Direction, Objective};

/// A candidate route: `a → b` direct, `a → via → b`, or `a == b` on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub a: usize,
    pub via: Option<usize>,
    pub b: usize,
}

impl Route {
    /// Its directed edges: `(a, a)` for a one-host route.
    pub fn edges(self) -> impl Iterator<Item = (usize, usize)> {
        let (first, second) = match self.via {
            Some(w) => ((self.a, w), Some((w, self.b))),
            None => ((self.a, self.b), None),
        };
        std::iter::once(first).chain(second)
    }

    /// Its links (none for a one-host route).
    pub fn links(self) -> impl Iterator<Item = (usize, usize)> {
        self.edges()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| link(a, b))
    }

    /// Overlay hops.
    pub fn hops(self) -> usize {
        if self.a == self.b {
            0
        } else if self.via.is_some() {
            2
        } else {
            1
        }
    }

    /// As a host path.
    pub fn path(self) -> Vec<usize> {
        match self.via {
            _ if self.a == self.b => vec![self.a],
            Some(w) => vec![self.a, w, self.b],
            None => vec![self.a, self.b],
        }
    }
}

/// The problem in flat arrays.
pub(crate) struct Ctx<'a> {
    pub p: &'a Problem,
    pub nh: usize,
    /// Capacity of `a → b` at `a * nh + b` (`intra_bw` on the diagonal), 0 where none.
    pub cap: Vec<f64>,
    /// Whether `a → b` exists (always on the diagonal).
    pub exists: Vec<bool>,
    /// Latency of `a → b`.
    pub lat: Vec<f64>,
    /// Hosts that can host VMs.
    pub hostable: Vec<usize>,
}

impl<'a> Ctx<'a> {
    pub fn new(p: &'a Problem) -> Self {
        let nh = p.hosts.len();
        let mut cap = vec![0.0; nh * nh];
        let mut exists = vec![false; nh * nh];
        let mut lat = vec![0.0; nh * nh];
        for a in 0..nh {
            cap[a * nh + a] = p.hosts[a].intra_bw;
            exists[a * nh + a] = true;
            for b in 0..nh {
                if let Some(e) = p.edge(a, b) {
                    cap[a * nh + b] = e.bw;
                    exists[a * nh + b] = true;
                    lat[a * nh + b] = e.lat;
                }
            }
        }
        let hostable = (0..nh).filter(|&h| p.hosts[h].can_host).collect();
        Self {
            p,
            nh,
            cap,
            exists,
            lat,
            hostable,
        }
    }

    pub fn idx(&self, a: usize, b: usize) -> usize {
        a * self.nh + b
    }

    pub fn route_lat(&self, r: Route) -> f64 {
        r.edges()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| self.lat[self.idx(a, b)])
            .sum()
    }

    /// Smallest raw capacity of the route's edges.
    pub fn raw_bottleneck(&self, r: Route) -> f64 {
        r.edges()
            .map(|(a, b)| self.cap[self.idx(a, b)])
            .fold(f64::INFINITY, f64::min)
    }

    /// Candidate routes from host `a` to host `b` meeting `lat` (direct first, then two-hop in
    /// host order); `[a]` when `a == b`.
    pub fn candidates(&self, a: usize, b: usize, lat: Option<f64>) -> Vec<Route> {
        if a == b {
            return vec![Route { a, via: None, b }];
        }
        let mut out = Vec::new();
        let ok = |r: Route| lat.is_none_or(|l| fits(self.route_lat(r), l));
        if self.exists[self.idx(a, b)] {
            let r = Route { a, via: None, b };
            if ok(r) {
                out.push(r);
            }
        }
        for w in 0..self.nh {
            if w != a && w != b && self.exists[self.idx(a, w)] && self.exists[self.idx(w, b)] {
                let r = Route { a, via: Some(w), b };
                if ok(r) {
                    out.push(r);
                }
            }
        }
        out
    }
}

/// Loads on every directed edge (and intra-host) and how many routes use every link.
#[derive(Clone)]
pub(crate) struct Loads {
    pub load: Vec<f64>,
    link_use: Vec<u32>,
    pub links: usize,
}

impl Loads {
    pub fn new(ctx: &Ctx<'_>) -> Self {
        Self {
            load: vec![0.0; ctx.nh * ctx.nh],
            link_use: vec![0; ctx.nh * ctx.nh],
            links: 0,
        }
    }

    /// Whether `bw` more on `r` fits every edge's capacity.
    pub fn fits(&self, ctx: &Ctx<'_>, r: Route, bw: f64) -> bool {
        r.edges().all(|(a, b)| {
            let i = ctx.idx(a, b);
            fits(self.load[i] + bw, ctx.cap[i])
        })
    }

    /// Links `r` would add.
    pub fn new_links(&self, ctx: &Ctx<'_>, r: Route) -> usize {
        r.links()
            .filter(|&(a, b)| self.link_use[ctx.idx(a, b)] == 0)
            .count()
    }

    /// Whether `r` fits the capacities and the link budget.
    pub fn admits(&self, ctx: &Ctx<'_>, r: Route, bw: f64) -> bool {
        self.fits(ctx, r, bw)
            && ctx
                .p
                .max_links
                .is_none_or(|m| self.links + self.new_links(ctx, r) <= m)
    }

    /// The least residual over `r`'s edges if `bw` more were routed on it.
    pub fn bottleneck_with(&self, ctx: &Ctx<'_>, r: Route, bw: f64) -> f64 {
        r.edges()
            .map(|(a, b)| {
                let i = ctx.idx(a, b);
                ctx.cap[i] - self.load[i] - bw
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// The least residual over `r`'s edges.
    pub fn bottleneck(&self, ctx: &Ctx<'_>, r: Route) -> f64 {
        self.bottleneck_with(ctx, r, 0.0)
    }

    pub fn add(&mut self, ctx: &Ctx<'_>, r: Route, bw: f64) {
        for (a, b) in r.edges() {
            let i = ctx.idx(a, b);
            self.load[i] += bw;
        }
        for (a, b) in r.links() {
            let i = ctx.idx(a, b);
            if self.link_use[i] == 0 {
                self.links += 1;
            }
            self.link_use[i] += 1;
        }
    }

    pub fn remove(&mut self, ctx: &Ctx<'_>, r: Route, bw: f64) {
        for (a, b) in r.edges() {
            let i = ctx.idx(a, b);
            self.load[i] -= bw;
        }
        for (a, b) in r.links() {
            let i = ctx.idx(a, b);
            self.link_use[i] = self.link_use[i].saturating_sub(1);
            if self.link_use[i] == 0 {
                self.links -= 1;
            }
        }
    }
}

/// Every demand's outcome under `routes` and `loads`.
pub(crate) fn outcomes(ctx: &Ctx<'_>, routes: &[Route], loads: &Loads) -> Vec<DemandOutcome> {
    routes
        .iter()
        .map(|&r| DemandOutcome {
            bottleneck: loads.bottleneck(ctx, r),
            hops: r.hops(),
            latency: ctx.route_lat(r),
        })
        .collect()
}

/// A configuration from a mapping and routes: the links are those the routes use.
pub(crate) fn configuration(mapping: Vec<usize>, routes: &[Route]) -> Configuration {
    let routes: Vec<Vec<usize>> = routes.iter().map(|r| r.path()).collect();
    Configuration {
        links: Configuration::links_of(&routes),
        mapping,
        routes,
    }
}

/// Compute and size used per host by `mapping`.
pub(crate) fn usage(ctx: &Ctx<'_>, mapping: &[usize]) -> (Vec<f64>, Vec<u64>) {
    let mut c = vec![0.0; ctx.nh];
    let mut s = vec![0u64; ctx.nh];
    for (v, &h) in mapping.iter().enumerate() {
        c[h] += ctx.p.vms[v].compute;
        s[h] = s[h].saturating_add(ctx.p.vms[v].size);
    }
    (c, s)
}

/// Whether VM `v` fits on host `h` next to `used` (compute, size).
pub(crate) fn vm_fits(ctx: &Ctx<'_>, used: &(Vec<f64>, Vec<u64>), v: usize, h: usize) -> bool {
    let host = &ctx.p.hosts[h];
    let vm = &ctx.p.vms[v];
    host.can_host
        && fits(used.0[h] + vm.compute, host.compute)
        && used.1[h].saturating_add(vm.size) <= host.size
}

/// The routes of the demands whose two VMs share a host under `mapping` (the others `None`),
/// with the loads they put on the hosts, and whether every one fits.
pub(crate) fn intra_host_routes(
    ctx: &Ctx<'_>,
    mapping: &[usize],
) -> (Vec<Option<Route>>, Loads, bool) {
    let mut loads = Loads::new(ctx);
    let mut routes: Vec<Option<Route>> = vec![None; ctx.p.demands.len()];
    let mut fit = true;
    for (i, d) in ctx.p.demands.iter().enumerate() {
        let (a, b) = (mapping[d.src], mapping[d.dst]);
        if a == b {
            let r = Route { a, via: None, b };
            fit &= loads.fits(ctx, r, d.bw);
            loads.add(ctx, r, d.bw);
            routes[i] = Some(r);
        }
    }
    (routes, loads, fit)
}

/// Routes every demand for `mapping`: one-host demands first, then the others by decreasing
/// bandwidth, each on the admissible candidate whose bottleneck after it is the largest
/// (`Maximize`) or smallest (`Minimize`), fewer hops on ties. `None` if a demand has no
/// admissible candidate.
pub(crate) fn route_all(
    ctx: &Ctx<'_>,
    mapping: &[usize],
    dir: Direction,
    order: &[usize],
) -> Option<(Vec<Route>, Loads)> {
    let p = ctx.p;
    let (mut routes, mut loads, fit) = intra_host_routes(ctx, mapping);
    if !fit {
        return None;
    }
    for &i in order {
        if routes[i].is_some() {
            continue;
        }
        let d = &p.demands[i];
        let (a, b) = (mapping[d.src], mapping[d.dst]);
        let mut best: Option<(Route, f64)> = None;
        for r in ctx.candidates(a, b, d.lat) {
            if !loads.admits(ctx, r, d.bw) {
                continue;
            }
            let bn = loads.bottleneck_with(ctx, r, d.bw);
            let take = match best {
                None => true,
                Some((br, bb)) => {
                    dir.better(bn, bb) || (!dir.better(bb, bn) && r.hops() < br.hops())
                }
            };
            if take {
                best = Some((r, bn));
            }
        }
        let (r, _) = best?;
        loads.add(ctx, r, d.bw);
        routes[i] = Some(r);
    }
    routes
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(|r| (r, loads))
}

/// Demand indices by decreasing bandwidth (index order on ties).
pub(crate) fn by_bandwidth(p: &Problem) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.demands.len()).collect();
    order.sort_by(|&x, &y| p.demands[y].bw.total_cmp(&p.demands[x].bw).then(x.cmp(&y)));
    order
}

/// Moves single demands to other candidates while the objective improves (at most `passes`
/// sweeps). Returns the score.
pub(crate) fn improve_routes(
    ctx: &Ctx<'_>,
    obj: &dyn Objective,
    routes: &mut [Route],
    loads: &mut Loads,
    passes: usize,
) -> f64 {
    let p = ctx.p;
    let dir = obj.direction();
    let mut score = obj.combine(p, &outcomes(ctx, routes, loads));
    for _ in 0..passes {
        let mut improved = false;
        for i in 0..routes.len() {
            let d = &p.demands[i];
            let cur = routes[i];
            if cur.a == cur.b {
                continue;
            }
            for r in ctx.candidates(cur.a, cur.b, d.lat) {
                if r == routes[i] {
                    continue;
                }
                let old = routes[i];
                loads.remove(ctx, old, d.bw);
                if !loads.admits(ctx, r, d.bw) {
                    loads.add(ctx, old, d.bw);
                    continue;
                }
                loads.add(ctx, r, d.bw);
                routes[i] = r;
                let s = obj.combine(p, &outcomes(ctx, routes, loads));
                if dir.better(s, score) {
                    score = s;
                    improved = true;
                } else {
                    loads.remove(ctx, r, d.bw);
                    loads.add(ctx, old, d.bw);
                    routes[i] = old;
                }
            }
        }
        if !improved {
            break;
        }
    }
    score
}

/// A mapping routed and scored.
pub(crate) struct Scored {
    pub mapping: Vec<usize>,
    pub routes: Vec<Route>,
    pub score: f64,
}

/// Routes `mapping` ([`route_all`]) and improves its routes; `None` if it cannot be routed.
pub(crate) fn score_mapping(
    ctx: &Ctx<'_>,
    obj: &dyn Objective,
    mapping: Vec<usize>,
    order: &[usize],
    route_passes: usize,
) -> Option<Scored> {
    let (mut routes, mut loads) = route_all(ctx, &mapping, obj.direction(), order)?;
    let score = improve_routes(ctx, obj, &mut routes, &mut loads, route_passes);
    Some(Scored {
        mapping,
        routes,
        score,
    })
}

/// First-improvement local search from `start`: moves of one unpinned VM to another host and
/// swaps of two unpinned VMs on different hosts, each routed by [`route_all`] and scored;
/// stops when a sweep improves nothing or after `max_trials` routed trials, then improves the
/// routes of the best.
pub(crate) fn local_search(
    ctx: &Ctx<'_>,
    obj: &dyn Objective,
    start: Scored,
    order: &[usize],
    max_trials: usize,
) -> Scored {
    let p = ctx.p;
    let dir = obj.direction();
    let mut best = start;
    let free: Vec<usize> = (0..p.vms.len())
        .filter(|v| !p.pinned.contains_key(v))
        .collect();
    let mut trials = 0usize;
    let try_mapping = |m: Vec<usize>, trials: &mut usize| -> Option<Scored> {
        *trials += 1;
        score_mapping(ctx, obj, m, order, 0)
    };
    // Every improvement restarts the sweep; a sweep without one ends the search.
    'outer: loop {
        let used = usage(ctx, &best.mapping);
        // Moves.
        for &v in &free {
            for &h in &ctx.hostable {
                if h == best.mapping[v] || !vm_fits(ctx, &used, v, h) {
                    continue;
                }
                if trials >= max_trials {
                    break 'outer;
                }
                let mut m = best.mapping.clone();
                m[v] = h;
                if let Some(s) = try_mapping(m, &mut trials) {
                    if dir.better(s.score, best.score) {
                        best = s;
                        continue 'outer;
                    }
                }
            }
        }
        // Swaps.
        for (k, &u) in free.iter().enumerate() {
            for &v in &free[k + 1..] {
                let (hu, hv) = (best.mapping[u], best.mapping[v]);
                if hu == hv {
                    continue;
                }
                let mut m = best.mapping.clone();
                m[u] = hv;
                m[v] = hu;
                let (c, s) = usage(ctx, &m);
                let ok = [hu, hv]
                    .iter()
                    .all(|&h| fits(c[h], p.hosts[h].compute) && s[h] <= p.hosts[h].size);
                if !ok {
                    continue;
                }
                if trials >= max_trials {
                    break 'outer;
                }
                if let Some(s) = try_mapping(m, &mut trials) {
                    if dir.better(s.score, best.score) {
                        best = s;
                        continue 'outer;
                    }
                }
            }
        }
        break;
    }
    // Final route polish of the best mapping.
    let mut loads = Loads::new(ctx);
    for (i, &r) in best.routes.iter().enumerate() {
        loads.add(ctx, r, p.demands[i].bw);
    }
    best.score = improve_routes(ctx, obj, &mut best.routes, &mut loads, 4);
    best
}

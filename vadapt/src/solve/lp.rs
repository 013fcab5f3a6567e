//! LP relaxation with rounding (`good_lp`).
//!
//! # The relaxation
//! Bandwidths are divided by the problem's largest capacity `C` (numbers near 1 for the
//! solver). Variables, all continuous in `[0, 1]`:
//! - `x[v][h]`: VM `v` on host `h` (only hosts it fits on alone; pinned VMs are constants);
//! - `y[i][r]`: demand `i` on candidate route `r`, for every host pair `(a, b)` its VMs could
//!   be on: `[a]` when `a == b`, else the direct edge and the two-hop paths meeting its latency
//!   bound. On large instances (more than [`LpRounding::two_hop_limit`] route variables) only
//!   direct routes are offered, two-hop ones only for host pairs with no direct edge;
//! - `t[i]`: demand `i`'s residual bottleneck (when maximising);
//! - `r[e]`: residual of directed edge (or host) `e`;
//! - `z[l]`: link `l` is used (only with [`crate::Problem::max_links`]).
//!
//! Constraints: `Σ_h x[v][h] = 1`; compute and size per host (size in units of the host's);
//! `Σ_{r from a} y[i][r] = x[src_i][a]` and `Σ_{r to b} y[i][r] = x[dst_i][b]` (the standard
//! linearisation of `x[src][a] · x[dst][b]`); `r[e] = cap_e − Σ_i b_i Σ_{r ∋ e} y[i][r] ≥ 0`;
//! the max-min trick for the bottleneck, `t[i] ≤ r[e] + 1 − Σ_{r ∋ e} y[i][r]` for every edge
//! `e` demand `i` could use (big-M = 1 = `C`, the largest residual possible), tightened by
//! `t[i] ≤ Σ_r y[i][r] (bottleneck capacity of r − b_i)`; `Σ_{i, r ∋ l} y[i][r] ≤ m z[l]`,
//! `Σ z ≤ max_links`.
//!
//! Objective: when maximising (residual-bottleneck, single-hop) `max Σ t[i]`, the paper's
//! objective, linearised. When minimising (tight-fit), whose min-of-min is not convex, the
//! surrogate `min Σ_i Σ_r y[i][r] (bottleneck capacity of r − b_i)`: routes through the
//! least spare capacity.
//!
//! # Rounding
//! One deterministic rounding (VMs by decreasing confidence `max_h x[v][h]`, each to its
//! highest-`x` host it still fits on) and [`LpRounding::roundings`] randomised ones (seeded:
//! VMs in random order, each to a host drawn with probability ∝ `x[v][h]` among those it
//! still fits on, uniformly if all are 0). Every demand then takes, by decreasing bandwidth,
//! its highest-`y` candidate that still fits (capacities, latency, link budget) — the repair:
//! if none does, the best-fitting one, and a mapping none of whose candidates fit is dropped.
//! With [`LpRounding::polish`] (the default), each rounded configuration is then improved by
//! local search on the objective itself (moves and swaps of VMs, re-routing). The best is
//! returned, after [`crate::evaluate`] confirms it.
//!
//! # Backend
//! Pure-Rust backends only, so CI builds without C/C++ toolchains: `microlp` (simplex, with a
//! time limit) and `clarabel` (interior point). Measured on this machine (2 shared cores):
//! - build, release, from scratch, `good_lp` with only that feature: microlp 11.7 s, clarabel
//!   20.5 s (HiGHS and CBC need cmake or system libraries, not installed here, and minutes of
//!   C++ builds; not tried);
//! - the relaxation alone (`bench solvers`): on small instances (≤ 8 VMs, ~100 route
//!   variables) both take ~12 ms; at 32 VMs on 9 hosts (39 000 route variables) clarabel
//!   takes 4.1 s, microlp 31 s and then fails ("singular matrix", or its 30 s time limit).
//!
//! Hence [`LpBackend::Clarabel`] by default; microlp stays selectable (it is a few ms faster
//! on the smallest instances).

use good_lp::{
    variable, Expression, ProblemVariables, ResolutionError, Solution, SolverModel, Variable,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::diagnose::diagnose;
use crate::engine::{
    by_bandwidth, configuration, improve_routes, local_search, outcomes, route_all, usage, vm_fits,
    Ctx, Loads, Route, Scored,
};
use crate::model::{bytes_f64, evaluate, fits, Configuration, Infeasible, Problem};
use crate::objective::{Direction, Objective};

use super::Solver;

const NAME: &str = "lp-rounding";

/// Which LP solver `good_lp` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LpBackend {
    /// `microlp`: a pure-Rust simplex.
    Microlp,
    /// `clarabel`: a pure-Rust interior-point solver.
    Clarabel,
}

/// LP relaxation and rounding (module docs).
#[derive(Debug, Clone, Copy)]
pub struct LpRounding {
    /// The LP solver.
    pub backend: LpBackend,
    /// Route variables beyond which only direct routes are offered to the LP.
    pub two_hop_limit: usize,
    /// Route variables beyond which the solver refuses ([`Infeasible::TooLarge`]).
    pub max_route_vars: usize,
    /// Randomised roundings besides the deterministic one.
    pub roundings: usize,
    /// Seed of the randomised roundings.
    pub seed: u64,
    /// Whether to improve every rounded configuration by local search.
    pub polish: bool,
    /// Routed trials of each local search.
    pub polish_trials: usize,
    /// Seconds the LP solver may take (microlp only; clarabel has its own iteration limit).
    pub time_limit_s: f64,
}

impl Default for LpRounding {
    /// Clarabel; two-hop routes up to 60 000 route variables; at most 400 000; 32 randomised
    /// roundings with seed 1 (on the bench's 98 small instances with an optimum, 8 roundings
    /// put 90 within 5 % of it, 16 put 93, 32 put 96); polished with up to 5 000 trials each;
    /// 60 s.
    fn default() -> Self {
        Self {
            backend: LpBackend::Clarabel,
            two_hop_limit: 60_000,
            max_route_vars: 400_000,
            roundings: 32,
            seed: 1,
            polish: true,
            polish_trials: 5_000,
            time_limit_s: 60.0,
        }
    }
}

/// The LP's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relaxation {
    /// The LP's objective in the problem's units (bit/s): an upper bound of the
    /// residual-bottleneck optimum over the routes offered when maximising; the surrogate's
    /// value when minimising.
    pub value: f64,
    /// `x[v][h]`, the fractional mapping.
    pub x: Vec<Vec<f64>>,
    /// Whether two-hop routes were offered for every host pair.
    pub two_hop: bool,
    /// Route variables.
    pub route_vars: usize,
}

/// The LP's size and what each VM may be placed on.
struct Sizing {
    /// Compute of the pinned VMs per host.
    pinned_c: Vec<f64>,
    /// Size of the pinned VMs per host.
    pinned_s: Vec<u64>,
    /// Hosts each VM may go on.
    hosts_of: Vec<Vec<usize>>,
    two_hop: bool,
    route_vars: usize,
}

struct Model {
    relax: Relaxation,
    /// Per demand: its candidate routes and their `y`.
    y: Vec<Vec<(Route, f64)>>,
}

impl LpRounding {
    /// Solves the relaxation only.
    ///
    /// # Errors
    /// The problem's diagnosis; [`Infeasible::TooLarge`] past `max_route_vars`;
    /// [`Infeasible::NoFeasibleConfiguration`] if the relaxation with two-hop routes is
    /// infeasible (no integer configuration can exist then); [`Infeasible::Lp`] if the solver
    /// fails.
    pub fn relax(&self, p: &Problem, obj: &dyn Objective) -> Result<Relaxation, Infeasible> {
        diagnose(p)?;
        let ctx = Ctx::new(p);
        Ok(self.model(&ctx, obj.direction())?.relax)
    }

    /// Route variables the LP would have for `problem` and whether it would offer two-hop
    /// routes for every host pair (see [`LpRounding::two_hop_limit`]).
    #[must_use]
    pub fn route_vars(&self, problem: &Problem) -> (usize, bool) {
        let ctx = Ctx::new(problem);
        let s = self.sizing(&ctx);
        (s.route_vars, s.two_hop)
    }

    fn sizing(&self, ctx: &Ctx<'_>) -> Sizing {
        let p = ctx.p;
        let nh = ctx.nh;
        let nv = p.vms.len();
        // Hosts each VM may go on.
        let pinned_c: Vec<f64> = (0..nh)
            .map(|h| {
                p.pinned
                    .iter()
                    .filter(|&(_, &ph)| ph == h)
                    .map(|(&v, _)| p.vms[v].compute)
                    .sum()
            })
            .collect();
        let pinned_s: Vec<u64> = (0..nh)
            .map(|h| {
                p.pinned
                    .iter()
                    .filter(|&(_, &ph)| ph == h)
                    .map(|(&v, _)| p.vms[v].size)
                    .fold(0, u64::saturating_add)
            })
            .collect();
        let hosts_of: Vec<Vec<usize>> = (0..nv)
            .map(|v| match p.pinned.get(&v) {
                Some(&h) => vec![h],
                None => ctx
                    .hostable
                    .iter()
                    .copied()
                    .filter(|&h| {
                        fits(pinned_c[h] + p.vms[v].compute, p.hosts[h].compute)
                            && pinned_s[h].saturating_add(p.vms[v].size) <= p.hosts[h].size
                    })
                    .collect(),
            })
            .collect();
        // Candidate routes per demand, two-hop everywhere if small enough.
        let count = |two_hop: bool| -> usize {
            p.demands
                .iter()
                .map(|d| {
                    let mut n = 0;
                    for &a in &hosts_of[d.src] {
                        for &b in &hosts_of[d.dst] {
                            n += routes_for(ctx, a, b, d.lat, two_hop).len();
                        }
                    }
                    n
                })
                .sum()
        };
        let mut two_hop = true;
        let mut route_vars = count(true);
        if route_vars > self.two_hop_limit {
            two_hop = false;
            route_vars = count(false);
        }
        Sizing {
            pinned_c,
            pinned_s,
            hosts_of,
            two_hop,
            route_vars,
        }
    }

    #[allow(clippy::too_many_lines)]
    fn model(&self, ctx: &Ctx<'_>, dir: Direction) -> Result<Model, Infeasible> {
        let p = ctx.p;
        let nh = ctx.nh;
        let nv = p.vms.len();
        let scale = p.max_capacity().max(1.0);
        let Sizing {
            pinned_c,
            pinned_s,
            hosts_of,
            two_hop,
            route_vars,
        } = self.sizing(ctx);
        if route_vars > self.max_route_vars {
            return Err(Infeasible::TooLarge {
                solver: NAME,
                size: format!("{route_vars} route variables"),
                limit: format!("{} route variables", self.max_route_vars),
            });
        }

        let mut vars = ProblemVariables::new();
        let unit = || variable().min(0.0).max(1.0);
        // x[v][h] as an expression (a constant for pinned VMs).
        let mut x_var: Vec<Vec<Option<Variable>>> = vec![vec![None; nh]; nv];
        for v in 0..nv {
            if !p.pinned.contains_key(&v) {
                for &h in &hosts_of[v] {
                    x_var[v][h] = Some(vars.add(unit()));
                }
            }
        }
        let x_expr = |v: usize, h: usize| -> Expression {
            match (p.pinned.get(&v), x_var[v][h]) {
                (Some(&ph), _) => Expression::from(if ph == h { 1.0 } else { 0.0 }),
                (None, Some(var)) => Expression::from(var),
                (None, None) => Expression::from(0.0),
            }
        };
        let mut y: Vec<Vec<(Route, Variable)>> = Vec::with_capacity(p.demands.len());
        for d in &p.demands {
            let mut ys = Vec::new();
            for &a in &hosts_of[d.src] {
                for &b in &hosts_of[d.dst] {
                    for r in routes_for(ctx, a, b, d.lat, two_hop) {
                        ys.push((r, vars.add(unit())));
                    }
                }
            }
            y.push(ys);
        }
        let t: Vec<Variable> = match dir {
            Direction::Maximize => p.demands.iter().map(|_| vars.add(unit())).collect(),
            Direction::Minimize => Vec::new(),
        };
        // Edges any route may use, with their residual variables.
        let mut edge_users: Vec<Vec<(usize, Variable)>> = vec![Vec::new(); nh * nh];
        for (i, ys) in y.iter().enumerate() {
            for &(r, var) in ys {
                for (a, b) in r.edges() {
                    edge_users[a * nh + b].push((i, var));
                }
            }
        }
        let resid: Vec<Option<Variable>> = edge_users
            .iter()
            .map(|u| (!u.is_empty()).then(|| vars.add(variable().min(0.0))))
            .collect();
        let links: Vec<(usize, usize)> = if p.max_links.is_some() {
            let mut l: Vec<(usize, usize)> =
                y.iter().flatten().flat_map(|(r, _)| r.links()).collect();
            l.sort_unstable();
            l.dedup();
            l
        } else {
            Vec::new()
        };
        let z: Vec<Variable> = links.iter().map(|_| vars.add(unit())).collect();

        let mut objective = Expression::with_capacity(t.len().max(route_vars));
        match dir {
            Direction::Maximize => {
                for &ti in &t {
                    objective.add_mul(1.0, ti);
                }
            }
            Direction::Minimize => {
                for (i, ys) in y.iter().enumerate() {
                    let b = p.demands[i].bw / scale;
                    for &(r, var) in ys {
                        objective.add_mul(ctx.raw_bottleneck(r) / scale - b, var);
                    }
                }
            }
        }
        let mut cons = Vec::new();
        for (v, xs) in x_var.iter().enumerate() {
            if p.pinned.contains_key(&v) {
                continue;
            }
            let mut e = Expression::with_capacity(nh);
            for var in xs.iter().flatten() {
                e.add_mul(1.0, *var);
            }
            cons.push(e.eq(1.0));
        }
        for &h in &ctx.hostable {
            let host = &p.hosts[h];
            let mut ec = Expression::with_capacity(nv);
            let mut es = Expression::with_capacity(nv);
            let mut any = false;
            for (v, xs) in x_var.iter().enumerate() {
                if let Some(var) = xs[h] {
                    any = true;
                    ec.add_mul(p.vms[v].compute, var);
                    if host.size > 0 {
                        es.add_mul(bytes_f64(p.vms[v].size) / bytes_f64(host.size), var);
                    }
                }
            }
            if any {
                cons.push(ec.leq(host.compute - pinned_c[h]));
                if host.size > 0 {
                    cons.push(es.leq(1.0 - bytes_f64(pinned_s[h]) / bytes_f64(host.size)));
                }
            }
        }
        for (i, d) in p.demands.iter().enumerate() {
            for &a in &hosts_of[d.src] {
                let mut e = Expression::with_capacity(nh * 2);
                for &(r, var) in &y[i] {
                    if r.a == a {
                        e.add_mul(1.0, var);
                    }
                }
                cons.push(e.eq(x_expr(d.src, a)));
            }
            for &b in &hosts_of[d.dst] {
                let mut e = Expression::with_capacity(nh * 2);
                for &(r, var) in &y[i] {
                    if r.b == b {
                        e.add_mul(1.0, var);
                    }
                }
                cons.push(e.eq(x_expr(d.dst, b)));
            }
        }
        for (e, users) in edge_users.iter().enumerate() {
            let Some(rv) = resid[e] else { continue };
            // r[e] + Σ b y = cap
            let mut ex = Expression::with_capacity(users.len() + 1);
            ex.add_mul(1.0, rv);
            for &(i, var) in users {
                ex.add_mul(p.demands[i].bw / scale, var);
            }
            cons.push(ex.eq(ctx.cap[e] / scale));
        }
        if dir == Direction::Maximize {
            for (i, ys) in y.iter().enumerate() {
                let b = p.demands[i].bw / scale;
                let mut tight = Expression::with_capacity(ys.len() + 1);
                tight.add_mul(1.0, t[i]);
                for &(r, var) in ys {
                    tight.add_mul(-(ctx.raw_bottleneck(r) / scale - b), var);
                }
                cons.push(tight.leq(0.0));
                // t[i] - r[e] + Σ_{r ∋ e} y ≤ 1 per edge e demand i may use.
                let mut per_edge: std::collections::BTreeMap<usize, Vec<Variable>> =
                    std::collections::BTreeMap::new();
                for &(r, var) in ys {
                    for (a, b2) in r.edges() {
                        per_edge.entry(a * nh + b2).or_default().push(var);
                    }
                }
                for (e, vs) in per_edge {
                    let Some(rv) = resid[e] else { continue };
                    let mut ex = Expression::with_capacity(vs.len() + 2);
                    ex.add_mul(1.0, t[i]);
                    ex.add_mul(-1.0, rv);
                    for var in vs {
                        ex.add_mul(1.0, var);
                    }
                    cons.push(ex.leq(1.0));
                }
            }
        }
        if let Some(max) = p.max_links {
            let m = crate::usize_f64(p.demands.len().max(1));
            for (k, &l) in links.iter().enumerate() {
                let mut ex = Expression::with_capacity(16);
                for &(_, var) in y
                    .iter()
                    .flatten()
                    .filter(|(r, _)| r.links().any(|x| x == l))
                {
                    ex.add_mul(1.0, var);
                }
                ex.add_mul(-m, z[k]);
                cons.push(ex.leq(0.0));
            }
            let mut ex = Expression::with_capacity(z.len());
            for &zk in &z {
                ex.add_mul(1.0, zk);
            }
            cons.push(ex.leq(crate::usize_f64(max)));
        }

        let unsolved = match dir {
            Direction::Maximize => vars.maximise(objective.clone()),
            Direction::Minimize => vars.minimise(objective.clone()),
        };
        let solved: Result<Box<dyn Fn(Variable) -> f64>, ResolutionError> = match self.backend {
            LpBackend::Microlp => {
                use good_lp::WithTimeLimit;
                let m = unsolved
                    .using(good_lp::solvers::microlp::microlp)
                    .with_time_limit(self.time_limit_s)
                    .with_all(cons);
                m.solve()
                    .map(|s| Box::new(move |v| s.value(v)) as Box<dyn Fn(Variable) -> f64>)
            }
            LpBackend::Clarabel => {
                let m = unsolved
                    .using(good_lp::solvers::clarabel::clarabel)
                    .with_all(cons);
                m.solve()
                    .map(|s| Box::new(move |v| s.value(v)) as Box<dyn Fn(Variable) -> f64>)
            }
        };
        let val = match solved {
            Ok(f) => f,
            Err(ResolutionError::Infeasible) if two_hop => {
                return Err(Infeasible::NoFeasibleConfiguration)
            }
            Err(ResolutionError::Infeasible) => {
                return Err(Infeasible::NotFound {
                    solver: NAME,
                    reason: "the relaxation with direct routes only is infeasible".into(),
                })
            }
            Err(e) => return Err(Infeasible::Lp(e.to_string())),
        };
        let x: Vec<Vec<f64>> = (0..nv)
            .map(|v| {
                (0..nh)
                    .map(|h| match (p.pinned.get(&v), x_var[v][h]) {
                        (Some(&ph), _) => f64::from(u8::from(ph == h)),
                        (None, Some(var)) => val(var).clamp(0.0, 1.0),
                        (None, None) => 0.0,
                    })
                    .collect()
            })
            .collect();
        let value = match dir {
            Direction::Maximize => t.iter().map(|&ti| val(ti)).sum::<f64>() * scale,
            Direction::Minimize => {
                let mut s = 0.0;
                for (i, ys) in y.iter().enumerate() {
                    for &(r, var) in ys {
                        s += val(var) * (ctx.raw_bottleneck(r) - p.demands[i].bw);
                    }
                }
                s
            }
        };
        let y = y
            .iter()
            .map(|ys| ys.iter().map(|&(r, var)| (r, val(var))).collect())
            .collect();
        Ok(Model {
            relax: Relaxation {
                value,
                x,
                two_hop,
                route_vars,
            },
            y,
        })
    }
}

/// The routes the LP offers from `a` to `b`.
fn routes_for(ctx: &Ctx<'_>, a: usize, b: usize, lat: Option<f64>, two_hop: bool) -> Vec<Route> {
    let all = ctx.candidates(a, b, lat);
    if two_hop || a == b {
        return all;
    }
    let direct: Vec<Route> = all.iter().copied().filter(|r| r.via.is_none()).collect();
    if direct.is_empty() {
        all
    } else {
        direct
    }
}

impl Solver for LpRounding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn solve(&self, p: &Problem, obj: &dyn Objective) -> Result<Configuration, Infeasible> {
        diagnose(p)?;
        let ctx = Ctx::new(p);
        let dir = obj.direction();
        let model = self.model(&ctx, dir)?;
        let order = by_bandwidth(p);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut best: Option<Scored> = None;
        for k in 0..=self.roundings {
            let mapping = if k == 0 {
                round_deterministic(&ctx, &model.relax.x)
            } else {
                round_random(&ctx, &model.relax.x, &mut rng)
            };
            let Some(mapping) = mapping else { continue };
            let Some(mut s) = route_rounded(&ctx, obj, &model, mapping, &order, self.polish) else {
                continue;
            };
            if self.polish {
                s = local_search(&ctx, obj, s, &order, self.polish_trials);
            }
            if best.as_ref().is_none_or(|b| dir.better(s.score, b.score)) {
                best = Some(s);
            }
        }
        let Some(best) = best else {
            return Err(Infeasible::NotFound {
                solver: NAME,
                reason: format!(
                    "none of {} roundings could be placed and routed",
                    self.roundings + 1
                ),
            });
        };
        let config = configuration(best.mapping, &best.routes);
        evaluate(p, &config).map_err(|e| Infeasible::NotFound {
            solver: NAME,
            reason: format!("its configuration is infeasible: {e}"),
        })?;
        Ok(config)
    }
}

/// VMs by decreasing confidence, each to its highest-`x` host it still fits on.
fn round_deterministic(ctx: &Ctx<'_>, x: &[Vec<f64>]) -> Option<Vec<usize>> {
    let p = ctx.p;
    let nv = p.vms.len();
    let mut order: Vec<usize> = (0..nv).collect();
    let conf = |v: usize| x[v].iter().copied().fold(0.0, f64::max);
    order.sort_by(|&a, &b| {
        let pa = p.pinned.contains_key(&a);
        let pb = p.pinned.contains_key(&b);
        pb.cmp(&pa)
            .then(conf(b).total_cmp(&conf(a)))
            .then(a.cmp(&b))
    });
    let mut m = vec![usize::MAX; nv];
    let mut used = (vec![0.0; ctx.nh], vec![0u64; ctx.nh]);
    for v in order {
        let h = match p.pinned.get(&v) {
            Some(&h) => h,
            None => ctx
                .hostable
                .iter()
                .copied()
                .filter(|&h| vm_fits(ctx, &used, v, h))
                .max_by(|&a, &b| x[v][a].total_cmp(&x[v][b]).then(b.cmp(&a)))?,
        };
        m[v] = h;
        used.0[h] += p.vms[v].compute;
        used.1[h] = used.1[h].saturating_add(p.vms[v].size);
    }
    Some(m)
}

/// VMs in random order, each to a host drawn ∝ `x` among those it still fits on.
fn round_random(ctx: &Ctx<'_>, x: &[Vec<f64>], rng: &mut ChaCha8Rng) -> Option<Vec<usize>> {
    let p = ctx.p;
    let nv = p.vms.len();
    let mut order: Vec<usize> = (0..nv).collect();
    for i in (1..nv).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    // Pinned first.
    order.sort_by_key(|v| !p.pinned.contains_key(v));
    let mut m = vec![usize::MAX; nv];
    let mut used = (vec![0.0; ctx.nh], vec![0u64; ctx.nh]);
    for v in order {
        let h = match p.pinned.get(&v) {
            Some(&h) => h,
            None => {
                let ok: Vec<usize> = ctx
                    .hostable
                    .iter()
                    .copied()
                    .filter(|&h| vm_fits(ctx, &used, v, h))
                    .collect();
                if ok.is_empty() {
                    return None;
                }
                let total: f64 = ok.iter().map(|&h| x[v][h]).sum();
                if total <= 1e-12 {
                    ok[rng.gen_range(0..ok.len())]
                } else {
                    let mut u = rng.gen::<f64>() * total;
                    let mut pick = ok[ok.len() - 1];
                    for &h in &ok {
                        u -= x[v][h];
                        if u <= 0.0 {
                            pick = h;
                            break;
                        }
                    }
                    pick
                }
            }
        };
        m[v] = h;
        used.0[h] += p.vms[v].compute;
        used.1[h] = used.1[h].saturating_add(p.vms[v].size);
    }
    Some(m)
}

/// Routes a rounded mapping by the LP's `y` (highest first among the candidates that fit),
/// repairing with the best-fitting candidate, then with [`route_all`]; with `polish`, one
/// sweep of route improvement.
fn route_rounded(
    ctx: &Ctx<'_>,
    obj: &dyn Objective,
    model: &Model,
    mapping: Vec<usize>,
    order: &[usize],
    polish: bool,
) -> Option<Scored> {
    let p = ctx.p;
    let dir = obj.direction();
    let (c, s) = usage(ctx, &mapping);
    if (0..ctx.nh).any(|h| !fits(c[h], p.hosts[h].compute) || s[h] > p.hosts[h].size) {
        return None;
    }
    let mut loads = Loads::new(ctx);
    let mut routes: Vec<Option<Route>> = vec![None; p.demands.len()];
    let mut ok = true;
    for &i in order {
        let d = &p.demands[i];
        let (a, b) = (mapping[d.src], mapping[d.dst]);
        let mut cands: Vec<(Route, f64)> = ctx
            .candidates(a, b, d.lat)
            .into_iter()
            .map(|r| {
                let yv = model.y[i]
                    .iter()
                    .find(|(q, _)| *q == r)
                    .map_or(0.0, |&(_, v)| v);
                (r, yv)
            })
            .collect();
        cands.sort_by(|x, y| y.1.total_cmp(&x.1));
        let pick = cands
            .iter()
            .find(|(r, yv)| *yv > 1e-6 && loads.admits(ctx, *r, d.bw))
            .map(|&(r, _)| r)
            .or_else(|| {
                cands
                    .iter()
                    .filter(|(r, _)| loads.admits(ctx, *r, d.bw))
                    .max_by(|x, y| {
                        let bx = loads.bottleneck_with(ctx, x.0, d.bw);
                        let by = loads.bottleneck_with(ctx, y.0, d.bw);
                        match dir {
                            Direction::Maximize => bx.total_cmp(&by),
                            Direction::Minimize => by.total_cmp(&bx),
                        }
                    })
                    .map(|&(r, _)| r)
            });
        match pick {
            Some(r) => {
                loads.add(ctx, r, d.bw);
                routes[i] = Some(r);
            }
            None => {
                ok = false;
                break;
            }
        }
    }
    let (mut routes, mut loads) = if ok {
        (routes.into_iter().collect::<Option<Vec<_>>>()?, loads)
    } else {
        route_all(ctx, &mapping, dir, order)?
    };
    let score = if polish {
        improve_routes(ctx, obj, &mut routes, &mut loads, 1)
    } else {
        obj.combine(p, &outcomes(ctx, &routes, &loads))
    };
    Some(Scored {
        mapping,
        routes,
        score,
    })
}

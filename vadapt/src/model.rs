//! The adaptation problem (seed 004 §7-8, GAPVEE) as plain data, and [`evaluate`], which checks
//! a [`Configuration`] against every constraint of GAPVEE and computes the residuals.
//!
//! # Units
//! Bandwidth in bit/s (`f64`), latency in seconds (`f64`), compute in cores (`f64`), size and
//! memory in bytes (`u64`).
//!
//! # The host graph and the overlay
//! Hosts are the nodes of a directed graph whose possible edges are the `Some` entries of
//! [`Problem::net`] (`net[from][to]`); `None` means no overlay link can be made between them in
//! that direction (a site's policy, say). An overlay *link* is undirected (a TCP or UDP
//! connection carries both directions) and is written `(a, b)` with `a < b`; traffic from `a`
//! to `b` over it uses the estimate `net[a][b]`, which must then be `Some`. Bandwidth is
//! accounted per *directed* edge, as in the paper's `rc_e`.
//!
//! Traffic between two VMs on the same host never touches the network: its route is the
//! single-element path `[h]` and it is carried by the host's own bandwidth
//! [`Host::intra_bw`], accounted like an edge `(h, h)`.
//!
//! A host that cannot host VMs ([`Host::can_host`] `false`, e.g. the Proxy) still forwards
//! traffic: the resilient star is a configuration whose links join every host to the Proxy and
//! whose routes are `host → proxy → host` ([`Configuration::star`]).
//!
//! # Constraints checked by [`evaluate`] (GAPVEE, §8.2)
//! - every VM is on a host that can host, pinned VMs on their host;
//! - the compute and the size of the VMs on a host do not exceed the host's;
//! - every route joins its demand's hosts over links of the configuration, and each of its
//!   directed hops has an estimate in `net`;
//! - the residual bandwidth `rc_e = bw_e − Σ demands routed over e` is `≥ 0` on every directed
//!   edge and every host's intra-host bandwidth;
//! - the sum of the latencies of a route's edges does not exceed its demand's latency bound;
//! - at most [`Problem::max_links`] links, if set.
//!
//! Comparisons allow a relative slack of [`TOLERANCE`] for rounding.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Relative slack allowed when a load is compared with a capacity or a latency with its bound
/// (floating-point sums of the same numbers in another order differ in the last bits).
pub const TOLERANCE: f64 = 1e-9;

/// Whether `used` fits in `cap` up to [`TOLERANCE`].
#[must_use]
pub fn fits(used: f64, cap: f64) -> bool {
    used <= cap + TOLERANCE * cap.abs().max(1.0)
}

/// A host running a VNET daemon: a node of the host graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Its name, e.g. `host3` or `proxy` (for messages only).
    pub name: String,
    /// Compute it gives to VMs, in cores.
    pub compute: f64,
    /// Space it gives to VMs (their images), in bytes.
    pub size: u64,
    /// Bandwidth between two VMs on this host, in bit/s.
    pub intra_bw: f64,
    /// Whether VMs may run here; `false` for the Proxy, which only forwards.
    pub can_host: bool,
}

/// Where a path estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// Measured on the running overlay (Wren).
    Measured,
    /// The configured rate of the path (the scenario's), taken as a prior until measured.
    Prior,
}

/// What is known of the path from one host to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathEstimate {
    /// Available bandwidth, in bit/s.
    pub bw: f64,
    /// One-way latency, in seconds.
    pub lat: f64,
    /// A confidence interval `(low, high)` of `bw` in bit/s, if the estimator gives one. The
    /// solvers use `bw` only; the interval is validated and carried for the controller.
    pub bw_ci: Option<(f64, f64)>,
    /// Where the estimate comes from.
    pub source: Source,
}

/// A virtual machine of the application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    /// Its name, e.g. `vm3` (for messages only).
    pub name: String,
    /// Compute it needs, in cores.
    pub compute: f64,
    /// Space it needs on its host, in bytes.
    pub size: u64,
    /// Its memory, in bytes: not a constraint of GAPVEE (hosts have no memory capacity here)
    /// but what a migration has to copy, for the planner's cost of a move.
    pub memory: u64,
}

/// A traffic demand `(s, d, b, l)` of the application (VTTIF's), directed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// Index of the source VM in [`Problem::vms`].
    pub src: usize,
    /// Index of the destination VM.
    pub dst: usize,
    /// Bandwidth demanded, in bit/s.
    pub bw: f64,
    /// Latency bound of its route in seconds, if any.
    pub lat: Option<f64>,
}

/// A configuration: where each VM runs, the overlay links and the route of every demand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    /// `mapping[vm]` is the index of the host VM `vm` runs on.
    pub mapping: Vec<usize>,
    /// The overlay links `(a, b)`, `a < b` host indices: the fast paths and any star links.
    pub links: BTreeSet<(usize, usize)>,
    /// `routes[i]` is the host path of demand `i` from `mapping[src]` to `mapping[dst]`; a
    /// single-element path when both VMs are on one host.
    pub routes: Vec<Vec<usize>>,
}

/// The first host whose `compute` or `size` use exceeds its capacity: `(host, resource, use,
/// capacity)`.
pub(crate) fn over_capacity(
    hosts: &[Host],
    compute: &[f64],
    size: &[u64],
) -> Option<(usize, Resource, f64, f64)> {
    hosts.iter().enumerate().find_map(|(h, host)| {
        if !fits(compute[h], host.compute) {
            Some((h, Resource::Compute, compute[h], host.compute))
        } else if size[h] > host.size {
            Some((h, Resource::Size, bytes_f64(size[h]), bytes_f64(host.size)))
        } else {
            None
        }
    })
}

/// The link joining hosts `a` and `b`, in the `(low, high)` form of [`Configuration::links`].
#[must_use]
pub fn link(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Configuration {
    /// The links the routes use: every hop `(a, b)` of every route as [`link`]`(a, b)`.
    #[must_use]
    pub fn links_of(routes: &[Vec<usize>]) -> BTreeSet<(usize, usize)> {
        routes
            .iter()
            .flat_map(|r| r.windows(2).map(|w| link(w[0], w[1])))
            .collect()
    }

    /// The resilient star around `hub` (e.g. the Proxy) for `mapping`: a link from every other
    /// host to `hub`, and every demand routed `[a]` on one host, `[a, b]` when one end is the
    /// hub, else `[a, hub, b]`. Nothing is checked here: [`evaluate`] says whether it is
    /// feasible (a demand whose VM is missing from `mapping` gets an empty route).
    #[must_use]
    pub fn star(problem: &Problem, mapping: Vec<usize>, hub: usize) -> Self {
        let links = (0..problem.hosts.len())
            .filter(|&h| h != hub)
            .map(|h| link(h, hub))
            .collect();
        let routes = problem
            .demands
            .iter()
            .map(|d| match (mapping.get(d.src), mapping.get(d.dst)) {
                (Some(&a), Some(&b)) if a == b => vec![a],
                (Some(&a), Some(&b)) if a == hub || b == hub => vec![a, b],
                (Some(&a), Some(&b)) => vec![a, hub, b],
                _ => Vec::new(),
            })
            .collect();
        Self {
            mapping,
            links,
            routes,
        }
    }
}

/// An instance of the adaptation problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The hosts (nodes of the host graph), the Proxy among them with `can_host = false`.
    pub hosts: Vec<Host>,
    /// `net[from][to]`: the path estimate, or `None` where no overlay link is possible. Square,
    /// `hosts.len()` rows; the diagonal must be `None` (see [`Host::intra_bw`]).
    pub net: Vec<Vec<Option<PathEstimate>>>,
    /// The VMs.
    pub vms: Vec<Vm>,
    /// The traffic demands.
    pub demands: Vec<Demand>,
    /// VMs that must stay where they are: `vm → host`.
    pub pinned: BTreeMap<usize, usize>,
    /// The configuration in force (its mapping may be empty when nothing runs yet; its routes
    /// may belong to older demands and are not checked by [`Problem::validate`]).
    pub current: Configuration,
    /// At most this many overlay links (all of [`Configuration::links`]), if set: the
    /// paper's cost constraint `c` of `AdaptTopology`.
    pub max_links: Option<usize>,
}

/// A problem whose data is inconsistent (not merely infeasible).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemError {
    /// The problem has no host.
    #[error("the problem has no host")]
    NoHosts,
    /// `net` does not have one row per host.
    #[error("net has {rows} rows for {hosts} hosts")]
    NetRows {
        /// Rows of `net`.
        rows: usize,
        /// Hosts.
        hosts: usize,
    },
    /// A row of `net` does not have one entry per host.
    #[error("net row {row} has {len} entries for {hosts} hosts")]
    NetRow {
        /// The row.
        row: usize,
        /// Its length.
        len: usize,
        /// Hosts.
        hosts: usize,
    },
    /// `net[h][h]` is set: a host's own bandwidth is `intra_bw`.
    #[error("net[{host}][{host}] is set: a host's own bandwidth is its intra_bw")]
    SelfPath {
        /// The host.
        host: usize,
    },
    /// A number is NaN or infinite.
    #[error("{what} is not finite ({value})")]
    NonFinite {
        /// Which number.
        what: String,
        /// Its value.
        value: f64,
    },
    /// A number that must be `≥ 0` is negative.
    #[error("{what} is negative ({value})")]
    Negative {
        /// Which number.
        what: String,
        /// Its value.
        value: f64,
    },
    /// A confidence interval whose low end is above its high end.
    #[error("net[{from}][{to}].bw_ci has low {low} > high {high}")]
    BadInterval {
        /// Source host.
        from: usize,
        /// Destination host.
        to: usize,
        /// Low end.
        low: f64,
        /// High end.
        high: f64,
    },
    /// A demand names a VM that does not exist.
    #[error("demand {demand} names vm {vm}, but there are {vms} VMs")]
    DemandVm {
        /// The demand.
        demand: usize,
        /// The VM index.
        vm: usize,
        /// VMs.
        vms: usize,
    },
    /// A demand from a VM to itself.
    #[error("demand {demand} goes from vm {vm} to itself")]
    SelfDemand {
        /// The demand.
        demand: usize,
        /// The VM.
        vm: usize,
    },
    /// A pinned VM that does not exist.
    #[error("vm {vm} is pinned, but there are {vms} VMs")]
    PinnedVm {
        /// The VM index.
        vm: usize,
        /// VMs.
        vms: usize,
    },
    /// A VM pinned to a host that does not exist.
    #[error("vm {vm} is pinned to host {host}, but there are {hosts} hosts")]
    PinnedHost {
        /// The VM.
        vm: usize,
        /// The host index.
        host: usize,
        /// Hosts.
        hosts: usize,
    },
    /// The current mapping is neither empty nor one host per VM.
    #[error("the current mapping has {len} entries for {vms} VMs")]
    CurrentMappingLen {
        /// Its length.
        len: usize,
        /// VMs.
        vms: usize,
    },
    /// The current mapping names a host that does not exist.
    #[error("the current mapping puts vm {vm} on host {host}, but there are {hosts} hosts")]
    CurrentMappingHost {
        /// The VM.
        vm: usize,
        /// The host index.
        host: usize,
        /// Hosts.
        hosts: usize,
    },
    /// A current link that is not `(a, b)` with `a < b` of existing hosts.
    #[error("current link ({a}, {b}) is not (low, high) of existing hosts")]
    CurrentLink {
        /// Low end.
        a: usize,
        /// High end.
        b: usize,
    },
}

fn check_num(what: impl FnOnce() -> String, v: f64) -> Result<(), ProblemError> {
    if !v.is_finite() {
        return Err(ProblemError::NonFinite {
            what: what(),
            value: v,
        });
    }
    if v < 0.0 {
        return Err(ProblemError::Negative {
            what: what(),
            value: v,
        });
    }
    Ok(())
}

impl Problem {
    /// Checks that the data is consistent: sizes agree, indices are in range, every number is
    /// finite and non-negative, no demand from a VM to itself, `net`'s diagonal is `None`.
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn validate(&self) -> Result<(), ProblemError> {
        let nh = self.hosts.len();
        let nv = self.vms.len();
        if nh == 0 {
            return Err(ProblemError::NoHosts);
        }
        for (i, h) in self.hosts.iter().enumerate() {
            check_num(|| format!("host {i} ({}) compute", h.name), h.compute)?;
            check_num(|| format!("host {i} ({}) intra_bw", h.name), h.intra_bw)?;
        }
        if self.net.len() != nh {
            return Err(ProblemError::NetRows {
                rows: self.net.len(),
                hosts: nh,
            });
        }
        for (a, row) in self.net.iter().enumerate() {
            if row.len() != nh {
                return Err(ProblemError::NetRow {
                    row: a,
                    len: row.len(),
                    hosts: nh,
                });
            }
            for (b, e) in row.iter().enumerate() {
                let Some(e) = e else { continue };
                if a == b {
                    return Err(ProblemError::SelfPath { host: a });
                }
                check_num(|| format!("net[{a}][{b}].bw"), e.bw)?;
                check_num(|| format!("net[{a}][{b}].lat"), e.lat)?;
                if let Some((low, high)) = e.bw_ci {
                    check_num(|| format!("net[{a}][{b}].bw_ci low"), low)?;
                    check_num(|| format!("net[{a}][{b}].bw_ci high"), high)?;
                    if low > high {
                        return Err(ProblemError::BadInterval {
                            from: a,
                            to: b,
                            low,
                            high,
                        });
                    }
                }
            }
        }
        for (i, v) in self.vms.iter().enumerate() {
            check_num(|| format!("vm {i} ({}) compute", v.name), v.compute)?;
        }
        for (i, d) in self.demands.iter().enumerate() {
            for vm in [d.src, d.dst] {
                if vm >= nv {
                    return Err(ProblemError::DemandVm {
                        demand: i,
                        vm,
                        vms: nv,
                    });
                }
            }
            if d.src == d.dst {
                return Err(ProblemError::SelfDemand {
                    demand: i,
                    vm: d.src,
                });
            }
            check_num(|| format!("demand {i} bw"), d.bw)?;
            if let Some(l) = d.lat {
                check_num(|| format!("demand {i} lat"), l)?;
            }
        }
        for (&vm, &host) in &self.pinned {
            if vm >= nv {
                return Err(ProblemError::PinnedVm { vm, vms: nv });
            }
            if host >= nh {
                return Err(ProblemError::PinnedHost {
                    vm,
                    host,
                    hosts: nh,
                });
            }
        }
        let cur = &self.current;
        if !cur.mapping.is_empty() && cur.mapping.len() != nv {
            return Err(ProblemError::CurrentMappingLen {
                len: cur.mapping.len(),
                vms: nv,
            });
        }
        for (vm, &host) in cur.mapping.iter().enumerate() {
            if host >= nh {
                return Err(ProblemError::CurrentMappingHost {
                    vm,
                    host,
                    hosts: nh,
                });
            }
        }
        for &(a, b) in &cur.links {
            if a >= b || b >= nh {
                return Err(ProblemError::CurrentLink { a, b });
            }
        }
        Ok(())
    }

    /// The estimate of the directed edge `from → to`, if an overlay link can carry it.
    #[must_use]
    pub fn edge(&self, from: usize, to: usize) -> Option<&PathEstimate> {
        self.net.get(from)?.get(to)?.as_ref()
    }

    /// Capacity in bit/s of the directed edge `from → to`: `intra_bw` when `from == to`,
    /// `net[from][to].bw` otherwise, `None` where there is no such edge.
    #[must_use]
    pub fn capacity(&self, from: usize, to: usize) -> Option<f64> {
        if from == to {
            self.hosts.get(from).map(|h| h.intra_bw)
        } else {
            self.edge(from, to).map(|e| e.bw)
        }
    }

    /// The largest capacity of any directed edge or host in bit/s (0 with none).
    #[must_use]
    pub fn max_capacity(&self) -> f64 {
        let hosts = self.hosts.iter().map(|h| h.intra_bw);
        let edges = self.net.iter().flatten().flatten().map(|e| e.bw);
        hosts.chain(edges).fold(0.0, f64::max)
    }
}

/// A resource of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    /// Compute, in cores.
    Compute,
    /// Size, in bytes.
    Size,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Compute => "compute (cores)",
            Self::Size => "size (bytes)",
        })
    }
}

/// Why a configuration is infeasible, or why no feasible configuration was found: the
/// diagnosis of an input or a solver's answer. Variants up to [`Infeasible::LatencyUnmeetable`]
/// are proofs about the problem; [`Infeasible::NoFeasibleConfiguration`] is a proof by
/// exhaustive search; [`Infeasible::NotFound`], [`Infeasible::TooLarge`] and
/// [`Infeasible::SearchLimit`] are about a solver, not the problem; the rest are about one
/// configuration (from [`evaluate`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Infeasible {
    /// The problem's data is inconsistent.
    #[error("invalid problem: {0}")]
    Invalid(#[from] ProblemError),
    /// A VM is pinned to a host that cannot host VMs.
    #[error("vm {vm} is pinned to host {host}, which cannot host VMs")]
    PinnedToNonHost {
        /// The VM.
        vm: usize,
        /// The host.
        host: usize,
    },
    /// The VMs pinned to a host need more of a resource than it has.
    #[error("the VMs pinned to host {host} need {need} {resource}, it has {capacity}")]
    PinnedOverCapacity {
        /// The host.
        host: usize,
        /// Which resource.
        resource: Resource,
        /// What the pinned VMs need.
        need: f64,
        /// What the host has.
        capacity: f64,
    },
    /// A VM fits on no host (alone, next to the VMs pinned there).
    #[error("vm {vm} needs {need} {resource}, more than any host has left")]
    VmFitsNowhere {
        /// The VM.
        vm: usize,
        /// Which resource.
        resource: Resource,
        /// What it needs.
        need: f64,
    },
    /// The VMs together need more of a resource than all hosts have.
    #[error("the VMs need {need} {resource} in all, the hosts have {capacity}")]
    TotalOverCapacity {
        /// Which resource.
        resource: Resource,
        /// What the VMs need.
        need: f64,
        /// What the hosts have.
        capacity: f64,
    },
    /// A demand's VMs are pinned to hosts with no path between them in the host graph.
    #[error("demand {demand}: its VMs are pinned to hosts {from} and {to}, which the host graph does not connect")]
    Disconnected {
        /// The demand.
        demand: usize,
        /// Host of its source.
        from: usize,
        /// Host of its destination.
        to: usize,
    },
    /// A demand needs more bandwidth than any route it could take has.
    #[error("demand {demand} needs {need} bit/s, the best route it could take has {best} bit/s")]
    BandwidthUnmeetable {
        /// The demand.
        demand: usize,
        /// Its bandwidth.
        need: f64,
        /// The largest bottleneck capacity of its possible routes.
        best: f64,
    },
    /// A demand's latency bound is below every route it could take.
    #[error("demand {demand} allows {limit} s, the fastest route it could take has {best} s")]
    LatencyUnmeetable {
        /// The demand.
        demand: usize,
        /// Its bound.
        limit: f64,
        /// The lowest latency of its possible routes.
        best: f64,
    },
    /// Exhaustive search found no configuration meeting every constraint (over the candidate
    /// routes: direct and two-hop).
    #[error("no configuration meets every constraint (exhaustive search over direct and two-hop routes)")]
    NoFeasibleConfiguration,
    /// A heuristic solver found no feasible configuration; one may still exist.
    #[error("{solver} found no feasible configuration: {reason}")]
    NotFound {
        /// The solver.
        solver: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The instance is beyond what a solver takes.
    #[error("{solver} takes at most {limit}, the problem has {size}")]
    TooLarge {
        /// The solver.
        solver: &'static str,
        /// What the problem has.
        size: String,
        /// What the solver takes.
        limit: String,
    },
    /// A search stopped at its node limit before it could prove optimality.
    #[error("{solver} stopped after {nodes} search nodes")]
    SearchLimit {
        /// The solver.
        solver: &'static str,
        /// Nodes visited.
        nodes: u64,
    },
    /// The LP solver failed.
    #[error("LP solver: {0}")]
    Lp(String),
    /// The configuration's mapping or routes do not have one entry per VM or demand.
    #[error("the configuration has {len} {what} for {expected}")]
    Shape {
        /// `mapping` or `routes`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// How many it should have.
        expected: usize,
    },
    /// A VM is mapped to a host that does not exist or cannot host.
    #[error("vm {vm} is mapped to host {host}, which does not exist or cannot host VMs")]
    NotAHost {
        /// The VM.
        vm: usize,
        /// The host.
        host: usize,
    },
    /// A pinned VM is not on its host.
    #[error("vm {vm} is pinned to host {pinned} but mapped to host {host}")]
    PinViolated {
        /// The VM.
        vm: usize,
        /// Where it is mapped.
        host: usize,
        /// Where it is pinned.
        pinned: usize,
    },
    /// The VMs on a host need more of a resource than it has.
    #[error("host {host}: its VMs need {used} {resource}, it has {capacity}")]
    OverCapacity {
        /// The host.
        host: usize,
        /// Which resource.
        resource: Resource,
        /// What its VMs need.
        used: f64,
        /// What it has.
        capacity: f64,
    },
    /// A link of the configuration that cannot exist.
    #[error("link ({a}, {b}) is not (low, high) of two hosts with an estimate in net")]
    BadLink {
        /// Low end.
        a: usize,
        /// High end.
        b: usize,
    },
    /// More links than [`Problem::max_links`].
    #[error("{links} links, at most {max} allowed")]
    TooManyLinks {
        /// Links of the configuration.
        links: usize,
        /// The bound.
        max: usize,
    },
    /// A route that does not join its demand's hosts over the configuration's links.
    #[error("demand {demand}: route {route:?} {reason}")]
    BadRoute {
        /// The demand.
        demand: usize,
        /// Its route.
        route: Vec<usize>,
        /// What is wrong with it.
        reason: String,
    },
    /// A directed edge (or a host's intra-host bandwidth, `from == to`) carries more than its
    /// capacity.
    #[error("edge {from}->{to} carries {load} bit/s, its capacity is {capacity} bit/s")]
    Overloaded {
        /// Source host.
        from: usize,
        /// Destination host (`== from` for intra-host traffic).
        to: usize,
        /// Traffic routed over it.
        load: f64,
        /// Its capacity.
        capacity: f64,
    },
    /// A route slower than its demand's latency bound.
    #[error("demand {demand}: its route takes {latency} s, it allows {limit} s")]
    LatencyExceeded {
        /// The demand.
        demand: usize,
        /// The route's latency.
        latency: f64,
        /// The bound.
        limit: f64,
    },
}

/// What one demand gets from a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DemandOutcome {
    /// Residual bottleneck bandwidth of its route, bit/s: the least residual `rc_e` of its
    /// edges (the intra-host residual for a one-host route).
    pub bottleneck: f64,
    /// Overlay hops of its route (0 on one host).
    pub hops: usize,
    /// Latency of its route, seconds (0 on one host).
    pub latency: f64,
}

/// A feasible configuration's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Per demand, in order.
    pub outcomes: Vec<DemandOutcome>,
    /// Residual bandwidth `rc_e` in bit/s of every directed edge of the configuration's links
    /// that has an estimate, keyed `(from, to)`.
    pub residual: BTreeMap<(usize, usize), f64>,
    /// Residual intra-host bandwidth of every host, bit/s.
    pub intra_residual: Vec<f64>,
    /// Compute used on every host, cores.
    pub compute_used: Vec<f64>,
    /// Size used on every host, bytes.
    pub size_used: Vec<u64>,
}

/// Bytes as `f64` for messages and comparisons (exact below 2^53 bytes).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn bytes_f64(b: u64) -> f64 {
    b as f64
}

/// Checks `config` against every constraint of GAPVEE (see the module docs) and computes the
/// residual bandwidths and each demand's outcome.
///
/// # Errors
/// [`Infeasible::Invalid`] if the problem is inconsistent; otherwise the first violated
/// constraint, checked in this order: shapes, mapping (hosts, pins, compute, size), links,
/// routes, bandwidth, latency.
pub fn evaluate(problem: &Problem, config: &Configuration) -> Result<Evaluation, Infeasible> {
    problem.validate()?;
    let nh = problem.hosts.len();
    if config.mapping.len() != problem.vms.len() {
        return Err(Infeasible::Shape {
            what: "mapping entries",
            len: config.mapping.len(),
            expected: problem.vms.len(),
        });
    }
    if config.routes.len() != problem.demands.len() {
        return Err(Infeasible::Shape {
            what: "routes",
            len: config.routes.len(),
            expected: problem.demands.len(),
        });
    }
    let mut compute_used = vec![0.0; nh];
    let mut size_used = vec![0u64; nh];
    for (vm, &host) in config.mapping.iter().enumerate() {
        if host >= nh || !problem.hosts[host].can_host {
            return Err(Infeasible::NotAHost { vm, host });
        }
        if let Some(&pinned) = problem.pinned.get(&vm) {
            if pinned != host {
                return Err(Infeasible::PinViolated { vm, host, pinned });
            }
        }
        compute_used[host] += problem.vms[vm].compute;
        size_used[host] = size_used[host].saturating_add(problem.vms[vm].size);
    }
    if let Some((host, resource, used, capacity)) =
        over_capacity(&problem.hosts, &compute_used, &size_used)
    {
        return Err(Infeasible::OverCapacity {
            host,
            resource,
            used,
            capacity,
        });
    }
    for &(a, b) in &config.links {
        if a >= b || b >= nh || (problem.edge(a, b).is_none() && problem.edge(b, a).is_none()) {
            return Err(Infeasible::BadLink { a, b });
        }
    }
    if let Some(max) = problem.max_links {
        if config.links.len() > max {
            return Err(Infeasible::TooManyLinks {
                links: config.links.len(),
                max,
            });
        }
    }
    // Loads: directed edges at [a * nh + b], intra-host at [h * nh + h].
    let mut load = vec![0.0; nh * nh];
    for (i, (d, route)) in problem.demands.iter().zip(&config.routes).enumerate() {
        let bad = |reason: &str| Infeasible::BadRoute {
            demand: i,
            route: route.clone(),
            reason: reason.to_string(),
        };
        let (a, b) = (config.mapping[d.src], config.mapping[d.dst]);
        if route.first() != Some(&a) || route.last() != Some(&b) {
            return Err(bad(&format!("does not go from host {a} to host {b}")));
        }
        if a == b {
            if route.len() != 1 {
                return Err(bad("is not the one-host path of VMs on one host"));
            }
            load[a * nh + a] += d.bw;
            continue;
        }
        let mut seen = BTreeSet::new();
        if route.iter().any(|&h| h >= nh || !seen.insert(h)) {
            return Err(bad("names a host twice or one that does not exist"));
        }
        for w in route.windows(2) {
            if problem.edge(w[0], w[1]).is_none() {
                return Err(bad(&format!(
                    "uses {}->{} which has no estimate",
                    w[0], w[1]
                )));
            }
            if !config.links.contains(&link(w[0], w[1])) {
                return Err(bad(&format!(
                    "uses {}->{} which is not a link of the configuration",
                    w[0], w[1]
                )));
            }
            load[w[0] * nh + w[1]] += d.bw;
        }
    }
    let mut residual = BTreeMap::new();
    for from in 0..nh {
        for to in 0..nh {
            let used = load[from * nh + to];
            let cap = problem.capacity(from, to);
            let in_config = from == to || config.links.contains(&link(from, to));
            if let Some(cap) = cap {
                if !fits(used, cap) {
                    return Err(Infeasible::Overloaded {
                        from,
                        to,
                        load: used,
                        capacity: cap,
                    });
                }
                if from != to && in_config {
                    residual.insert((from, to), cap - used);
                }
            }
        }
    }
    let intra_residual: Vec<f64> = (0..nh)
        .map(|h| problem.hosts[h].intra_bw - load[h * nh + h])
        .collect();
    let mut outcomes = Vec::with_capacity(problem.demands.len());
    for (i, (d, route)) in problem.demands.iter().zip(&config.routes).enumerate() {
        let outcome = if route.len() == 1 {
            DemandOutcome {
                bottleneck: intra_residual[route[0]],
                hops: 0,
                latency: 0.0,
            }
        } else {
            let mut bottleneck = f64::INFINITY;
            let mut latency = 0.0;
            for w in route.windows(2) {
                bottleneck = bottleneck.min(residual.get(&(w[0], w[1])).copied().unwrap_or(0.0));
                latency += problem.edge(w[0], w[1]).map_or(0.0, |e| e.lat);
            }
            DemandOutcome {
                bottleneck,
                hops: route.len() - 1,
                latency,
            }
        };
        if let Some(limit) = d.lat {
            if !fits(outcome.latency, limit) {
                return Err(Infeasible::LatencyExceeded {
                    demand: i,
                    latency: outcome.latency,
                    limit,
                });
            }
        }
        outcomes.push(outcome);
    }
    Ok(Evaluation {
        outcomes,
        residual,
        intra_residual,
        compute_used,
        size_used,
    })
}

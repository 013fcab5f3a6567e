//! The controller's inputs turned into a [`Problem`]: what is known of the machines and the
//! network before anything is measured (an [`Environment`] file), the overlay's [`Layout`], and
//! VTTIF's report of the application's traffic. Pure.
//!
//! # Demands
//!
//! Every edge of VTTIF's declared topology gives two demands, one per direction, each the
//! traffic VTTIF measured from one guest to the other over its window, in bit/s. Flows between
//! pairs that are not edges (pruned as noise) are not demands. A pair on which only one
//! direction carries traffic gives one demand.
//!
//! # The network
//!
//! Until Wren measures a path, its bandwidth and latency are the environment's *prior*: for the
//! testbed, the scenario's configured bottleneck rate and one-way delay along the underlay path
//! (`testbed adapt` writes the file). A pair the environment does not list cannot have a link.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vnetd::model::Mac;

use crate::model::{Configuration, Demand, Host, PathEstimate, Problem, Source, Vm};
use crate::overlay::Layout;

/// Why the inputs do not make a problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// The overlay has a machine the environment does not describe.
    #[error("the environment does not describe machine `{0}` of the overlay")]
    UnknownMachine(String),
    /// The overlay has a guest the environment does not describe.
    #[error("the environment does not describe guest {0} of the overlay")]
    UnknownGuest(Mac),
    /// A path names a machine the environment does not list.
    #[error("path {from} -> {to}: `{name}` is not a host of the environment")]
    BadPath {
        /// Its start.
        from: String,
        /// Its end.
        to: String,
        /// The unknown name.
        name: String,
    },
}

/// A path's prior: its bottleneck rate and one-way delay, in both directions unless
/// `directed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathPrior {
    /// One end (a machine's name).
    pub from: String,
    /// The other.
    pub to: String,
    /// Bottleneck rate, bit/s.
    pub bw_bps: f64,
    /// One-way delay, seconds.
    pub lat_s: f64,
    /// Only from `from` to `to`.
    #[serde(default)]
    pub directed: bool,
}

/// A guest, as the environment describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guest {
    /// Its Ethernet address (how the overlay knows it).
    pub mac: Mac,
    /// Its name (for the log).
    pub name: String,
    /// Its compute demand, cores.
    pub compute: f64,
    /// Its space demand, bytes.
    pub size: u64,
    /// Its memory, bytes: what a migration copies.
    pub memory: u64,
}

/// What is known before measuring: the machines (the Proxy among them, which hosts no VM),
/// the paths between them, and the guests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Every machine of the overlay.
    pub hosts: Vec<Host>,
    /// The paths between them.
    pub paths: Vec<PathPrior>,
    /// Every guest.
    pub guests: Vec<Guest>,
}

impl Environment {
    /// The problem for `layout`'s machines and guests, with `demands` and the `current`
    /// configuration; host and VM indices are the layout's.
    ///
    /// # Errors
    ///
    /// The layout has a machine or guest the environment does not describe, or a path names
    /// an unknown machine.
    pub fn problem(
        &self,
        layout: &Layout,
        demands: Vec<Demand>,
        current: Configuration,
    ) -> Result<Problem, InputError> {
        let by_name: BTreeMap<&str, &Host> =
            self.hosts.iter().map(|h| (h.name.as_str(), h)).collect();
        let hosts = layout
            .machines
            .iter()
            .map(|m| {
                by_name
                    .get(m.as_str())
                    .map(|h| (*h).clone())
                    .ok_or_else(|| InputError::UnknownMachine(m.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = hosts.len();
        let mut net = vec![vec![None; n]; n];
        let index = |name: &str, p: &PathPrior| {
            layout
                .machines
                .iter()
                .position(|m| m.as_str() == name)
                .ok_or_else(|| InputError::BadPath {
                    from: p.from.clone(),
                    to: p.to.clone(),
                    name: name.to_string(),
                })
        };
        for p in &self.paths {
            if !by_name.contains_key(p.from.as_str()) || !by_name.contains_key(p.to.as_str()) {
                let name = if by_name.contains_key(p.from.as_str()) {
                    &p.to
                } else {
                    &p.from
                };
                return Err(InputError::BadPath {
                    from: p.from.clone(),
                    to: p.to.clone(),
                    name: name.clone(),
                });
            }
            // A machine of the environment that is not in this overlay has no index: skip.
            let (Ok(a), Ok(b)) = (index(&p.from, p), index(&p.to, p)) else {
                continue;
            };
            let estimate = PathEstimate {
                bw: p.bw_bps,
                lat: p.lat_s,
                bw_ci: None,
                source: Source::Prior,
            };
            net[a][b] = Some(estimate.clone());
            if !p.directed {
                net[b][a] = Some(estimate);
            }
        }
        let vms = layout
            .guests
            .iter()
            .map(|g| {
                self.guests
                    .iter()
                    .find(|e| e.mac == g.mac)
                    .map(|e| Vm {
                        name: e.name.clone(),
                        compute: e.compute,
                        size: e.size,
                        memory: e.memory,
                    })
                    .ok_or(InputError::UnknownGuest(g.mac))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Problem {
            hosts,
            net,
            vms,
            demands,
            pinned: BTreeMap::new(),
            current,
            max_links: None,
        })
    }
}

/// The demands VTTIF's `report` gives for `layout`'s guests (see the module's documentation).
/// Traffic of guests the layout does not know is left out.
pub fn demands(report: &vttif::Report, layout: &Layout) -> Vec<Demand> {
    let mut out = Vec::new();
    for edge in &report.edges {
        for (src, dst) in [(edge.a, edge.b), (edge.b, edge.a)] {
            let (Some(s), Some(d)) = (layout.guest_index(src), layout.guest_index(dst)) else {
                continue;
            };
            let bytes: f64 = report
                .matrix
                .iter()
                .filter(|f| f.src == src && f.dst == dst)
                .map(|f| f.bytes_per_s)
                .sum();
            if bytes > 0.0 {
                out.push(Demand {
                    src: s,
                    dst: d,
                    bw: bytes * 8.0,
                    lat: None,
                });
            }
        }
    }
    out
}

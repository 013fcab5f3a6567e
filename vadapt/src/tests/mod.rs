//! Unit tests of the pure core: the model's checks, the objectives on hand-computed cases, the
//! diagnosis of infeasible inputs and the solvers on random instances.

mod model;
mod solvers;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Configuration, Demand, Host, PathEstimate, Problem, Source, Vm};

const GIB: u64 = 1 << 30;

pub(crate) fn path(bw: f64, lat: f64) -> Option<PathEstimate> {
    Some(PathEstimate {
        bw,
        lat,
        bw_ci: None,
        source: Source::Prior,
    })
}

pub(crate) fn host(name: &str, compute: f64, can_host: bool) -> Host {
    Host {
        name: name.into(),
        compute,
        size: if can_host { 10 * GIB } else { 0 },
        intra_bw: 1e9,
        can_host,
    }
}

pub(crate) fn vm(name: &str, compute: f64) -> Vm {
    Vm {
        name: name.into(),
        compute,
        size: GIB,
        memory: GIB,
    }
}

/// Two hosts (1 core each) joined by 100 Mbit/s (1 ms), and the Proxy (index 2) at
/// 10 Mbit/s (10 ms) from each; two VMs of 1 core; vm0 → vm1 4 Mbit/s, vm1 → vm0 2 Mbit/s.
pub(crate) fn tiny() -> Problem {
    let fast = 100e6;
    let slow = 10e6;
    Problem {
        hosts: vec![
            host("host1", 1.0, true),
            host("host2", 1.0, true),
            host("proxy", 0.0, false),
        ],
        net: vec![
            vec![None, path(fast, 0.001), path(slow, 0.010)],
            vec![path(fast, 0.001), None, path(slow, 0.010)],
            vec![path(slow, 0.010), path(slow, 0.010), None],
        ],
        vms: vec![vm("vm1", 1.0), vm("vm2", 1.0)],
        demands: vec![
            Demand {
                src: 0,
                dst: 1,
                bw: 4e6,
                lat: None,
            },
            Demand {
                src: 1,
                dst: 0,
                bw: 2e6,
                lat: None,
            },
        ],
        pinned: BTreeMap::new(),
        current: Configuration {
            mapping: vec![0, 1],
            links: BTreeSet::new(),
            routes: Vec::new(),
        },
        max_links: None,
    }
}

/// `tiny`'s configuration with the direct link between the two hosts.
pub(crate) fn direct(p: &Problem) -> Configuration {
    let routes = vec![vec![0, 1], vec![1, 0]];
    let _ = p;
    Configuration {
        mapping: vec![0, 1],
        links: Configuration::links_of(&routes),
        routes,
    }
}

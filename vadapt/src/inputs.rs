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
//! Every pair the environment lists starts with its *prior*: for the testbed, the scenario's
//! configured bottleneck rate and one-way delay along the underlay path (`testbed adapt`
//! writes the file). A pair the environment does not list cannot have a link, whatever is
//! measured on it.
//!
//! Wren's matrix ([`Environment::merge_wren`]) then overrides the priors path by path:
//!
//! - **Bandwidth the application can use** = Wren's *available* bandwidth + the path's own
//!   *throughput* as Wren counted it. Wren's available bandwidth is what is left beside the
//!   traffic the path already carries, and on the overlay that traffic is the application's
//!   own (vnetd's datagrams between the two daemons): taking the residual as the capacity
//!   would penalise every path the application uses, and the more it uses it the more.
//!   Where both are known, the sum replaces the prior ([`Source::Measured`]), its interval
//!   the sum of the two intervals' ends.
//! - **Unknown** (no traffic, one end only, too few trains, ...): the prior stays, clipped to
//!   the bound the reason proves: every train flat gives a lower bound (its rate, plus the
//!   path's throughput when known), every train rising an upper bound (its rate plus the
//!   throughput; without a known throughput it bounds nothing the model uses). A known
//!   available bandwidth without a known throughput (observed too briefly) is a lower bound
//!   too: the prior is raised to its interval's low end if below it. A clipped prior is still
//!   a prior.
//! - **Latency**: half the round-trip time when Wren knows it (the loaded RTT while the
//!   application keeps a queue full), else the prior.
//! - Never zero or infinite: a measured figure that is not finite and positive is refused
//!   (reported, the prior kept); bounds that are not are not used.
//! - Names: Wren names daemons by the overlay's hosts file, which for the testbed are the node
//!   names (`host1`…, `proxy`), the environment's host names; pairs naming anything else are
//!   ignored and the names reported. Wren's pairs between machines the environment knows but
//!   this overlay does not have are skipped, as the environment's own paths are.
//!
//! Wren's estimates live as long as their evidence is in its window (10 s); they replace the
//! prior outright, not weighted by age.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vnetd::model::Mac;

use wren_passive::matrix::{Matrix, PairEstimate};
use wren_passive::{Measure, Unknown};

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

/// What [`Environment::merge_wren`] did to a problem's paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WrenMerge {
    /// Directed paths of the problem whose bandwidth is now Wren's measurement.
    pub measured: usize,
    /// Directed paths of the problem whose bandwidth is still a prior (clipped or not).
    pub prior: usize,
    /// Priors moved into a bound Wren proved.
    pub clipped: usize,
    /// Paths whose latency is now half Wren's round-trip time.
    pub latency_measured: usize,
    /// Names in Wren's matrix that are no machine of the environment, sorted: their pairs
    /// were ignored.
    pub unknown_names: Vec<String>,
    /// Figures Wren gave that could not be used (`from -> to: why`); the prior stayed.
    pub refused: Vec<String>,
}

/// The bandwidth the application can use on one path, as far as Wren's estimate tells.
#[derive(Debug, Clone, PartialEq)]
enum Usable {
    /// Measured: the value and its interval, bit/s.
    Measured { bw: f64, ci: (f64, f64) },
    /// Not measured; what Wren proves of it, if anything.
    Bounds {
        at_least: Option<f64>,
        at_most: Option<f64>,
    },
    /// A figure that is not a bandwidth (negative, not finite).
    Refused(String),
}

/// `x` if it is a finite, positive bandwidth.
fn positive(x: f64) -> Option<f64> {
    (x.is_finite() && x > 0.0).then_some(x)
}

/// What Wren's estimate `e` says of the bandwidth the application can use (see the module's
/// documentation): available + own throughput, or bounds on it.
fn usable(e: &wren_passive::PathEstimate) -> Usable {
    let throughput = match &e.throughput_bps {
        Measure::Known(t) if t.value.is_finite() && t.value >= 0.0 => Some(t),
        Measure::Known(t) => return Usable::Refused(format!("throughput {} bit/s", t.value)),
        Measure::Unknown { .. } => None,
    };
    match (&e.available_bps, throughput) {
        (Measure::Known(a), _) if !(a.value.is_finite() && a.value >= 0.0) => {
            Usable::Refused(format!("available bandwidth {} bit/s", a.value))
        }
        (Measure::Known(a), Some(t)) => {
            let bw = a.value + t.value;
            let (low, high) = (a.low + t.low, a.high + t.high);
            match positive(bw) {
                Some(bw) if low.is_finite() && high.is_finite() => Usable::Measured {
                    bw,
                    ci: (low.clamp(0.0, bw), high.max(bw)),
                },
                _ => Usable::Refused(format!(
                    "available {} [{low}, {high}] + throughput {} bit/s",
                    a.value, t.value
                )),
            }
        }
        (Measure::Known(a), None) => Usable::Bounds {
            at_least: positive(a.low),
            at_most: None,
        },
        (
            Measure::Unknown {
                why: Unknown::AllTrainsFlat { at_least_bps },
            },
            t,
        ) => Usable::Bounds {
            at_least: positive(at_least_bps + t.map_or(0.0, |t| t.value)),
            at_most: None,
        },
        (
            Measure::Unknown {
                why: Unknown::AllTrainsRising { at_most_bps },
            },
            Some(t),
        ) => Usable::Bounds {
            at_least: None,
            at_most: positive(at_most_bps + t.value),
        },
        (Measure::Unknown { .. }, _) => Usable::Bounds {
            at_least: None,
            at_most: None,
        },
    }
}

impl Environment {
    /// Merges Wren's `matrix` into `problem`'s path estimates (see the module's
    /// documentation): known figures replace the priors, unknown ones leave them, clipped to
    /// the bounds Wren proves. `problem`'s hosts are matched to Wren's daemons by name. Bad
    /// figures and foreign names are reported, never an error.
    pub fn merge_wren(&self, problem: &mut Problem, matrix: &Matrix) -> WrenMerge {
        let machines: BTreeSet<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        let index: BTreeMap<String, usize> = problem
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        let mut out = WrenMerge::default();
        let mut strangers = BTreeSet::new();
        for pair in &matrix.pairs {
            let foreign: Vec<&String> = [&pair.from, &pair.to]
                .into_iter()
                .filter(|n| !machines.contains(n.as_str()))
                .collect();
            if !foreign.is_empty() {
                strangers.extend(foreign.into_iter().cloned());
                continue;
            }
            // A machine of the environment that is not in this overlay: skip, as its paths.
            let (Some(&a), Some(&b)) = (index.get(&pair.from), index.get(&pair.to)) else {
                continue;
            };
            let Some(path) = problem
                .net
                .get_mut(a)
                .and_then(|row| row.get_mut(b))
                .and_then(Option::as_mut)
            else {
                continue;
            };
            merge_pair(pair, path, &mut out);
        }
        out.unknown_names = strangers.into_iter().collect();
        for path in problem.net.iter().flatten().flatten() {
            match path.source {
                Source::Measured => out.measured += 1,
                Source::Prior => out.prior += 1,
            }
        }
        out
    }
}

/// Merges one pair's estimate into its path (see [`Environment::merge_wren`]).
fn merge_pair(pair: &PairEstimate, path: &mut PathEstimate, out: &mut WrenMerge) {
    let refuse = |out: &mut WrenMerge, why: String| {
        out.refused
            .push(format!("{} -> {}: {why}", pair.from, pair.to));
    };
    match usable(&pair.estimate) {
        Usable::Measured { bw, ci } => {
            path.bw = bw;
            path.bw_ci = Some(ci);
            path.source = Source::Measured;
        }
        Usable::Bounds { at_least, at_most } => {
            let mut bw = path.bw;
            if let Some(low) = at_least {
                bw = bw.max(low);
            }
            if let Some(high) = at_most {
                bw = bw.min(high);
            }
            if bw != path.bw {
                path.bw = bw;
                out.clipped += 1;
            }
        }
        Usable::Refused(why) => refuse(out, why),
    }
    match pair.estimate.rtt_s.known() {
        Some(rtt) if rtt.value.is_finite() && rtt.value >= 0.0 => {
            path.lat = rtt.value / 2.0;
            out.latency_measured += 1;
        }
        Some(rtt) => refuse(out, format!("round-trip time {} s", rtt.value)),
        None => {}
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use wren_passive::estimate::{IngestStats, RecordCounts, TrainCounts};
    use wren_passive::{Estimate, Method};

    use super::*;

    fn host(name: &str) -> Host {
        Host {
            name: name.into(),
            compute: 1.0,
            size: 1 << 30,
            intra_bw: 10e9,
            can_host: name != "proxy",
        }
    }

    /// `host1`, `host2` and the Proxy, every pair at 10 Mbit/s and 1 ms (priors).
    fn environment() -> Environment {
        let names = ["host1", "host2", "proxy"];
        let mut paths = Vec::new();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                paths.push(PathPrior {
                    from: (*a).into(),
                    to: (*b).into(),
                    bw_bps: 10e6,
                    lat_s: 1e-3,
                    directed: false,
                });
            }
        }
        Environment {
            hosts: names.iter().map(|n| host(n)).collect(),
            paths,
            guests: Vec::new(),
        }
    }

    /// The environment's problem over `machines` (a subset of its hosts, in that order).
    fn problem(env: &Environment, machines: &[&str]) -> Problem {
        let hosts: Vec<Host> = machines.iter().map(|m| host(m)).collect();
        let n = hosts.len();
        let mut net = vec![vec![None; n]; n];
        for p in &env.paths {
            let at = |name: &str| machines.iter().position(|m| *m == name);
            if let (Some(a), Some(b)) = (at(&p.from), at(&p.to)) {
                let e = PathEstimate {
                    bw: p.bw_bps,
                    lat: p.lat_s,
                    bw_ci: None,
                    source: Source::Prior,
                };
                net[a][b] = Some(e.clone());
                net[b][a] = Some(e);
            }
        }
        Problem {
            hosts,
            net,
            vms: Vec::new(),
            demands: Vec::new(),
            pinned: BTreeMap::new(),
            current: Configuration::default(),
            max_links: None,
        }
    }

    fn known(value: f64, half: f64, method: Method) -> Measure {
        Measure::Known(Estimate {
            value,
            low: value - half,
            high: value + half,
            confidence: 0.95,
            samples: 10,
            age_s: 0.5,
            method,
        })
    }

    fn unknown(why: Unknown) -> Measure {
        Measure::Unknown { why }
    }

    fn pair(
        from: &str,
        to: &str,
        available: Measure,
        throughput: Measure,
        rtt: Measure,
    ) -> PairEstimate {
        let addr: SocketAddr = "10.200.0.1:5400".parse().unwrap();
        PairEstimate {
            from: from.into(),
            to: to.into(),
            estimate: wren_passive::PathEstimate {
                path: wren_passive::Path {
                    src: addr,
                    dst: addr,
                },
                available_bps: available,
                throughput_bps: throughput,
                rtt_s: rtt,
                at_least_bps: None,
                at_most_bps: None,
                capacity_bps: None,
                trains: TrainCounts::default(),
                records: RecordCounts::default(),
                drift: 0.0,
            },
        }
    }

    fn matrix(pairs: Vec<PairEstimate>) -> Matrix {
        Matrix {
            at_ns: 0,
            collector: "proxy".into(),
            window_s: 10.0,
            pairs,
            reporters: Vec::new(),
            ingest: IngestStats::default(),
        }
    }

    const MACHINES: [&str; 3] = ["host1", "host2", "proxy"];

    #[test]
    fn a_known_measurement_replaces_the_prior_with_the_application_s_throughput_added_back() {
        let env = environment();
        let mut p = problem(&env, &MACHINES);
        // 3 Mbit/s left beside the application's own 5 Mbit/s: it can use 8.
        let m = matrix(vec![pair(
            "host1",
            "proxy",
            known(3e6, 0.2e6, Method::CrossTraffic),
            known(5e6, 0.1e6, Method::Counted),
            known(4e-3, 0.5e-3, Method::OneWayDelays),
        )]);
        let merge = env.merge_wren(&mut p, &m);
        let e = p.edge(0, 2).unwrap();
        assert_eq!(e.source, Source::Measured);
        assert!((e.bw - 8e6).abs() < 1.0, "{e:?}");
        let (low, high) = e.bw_ci.unwrap();
        assert!(
            (low - 7.7e6).abs() < 1.0 && (high - 8.3e6).abs() < 1.0,
            "{e:?}"
        );
        assert!((e.lat - 2e-3).abs() < 1e-12, "half the round trip: {e:?}");
        // The reverse direction was not in the matrix: still the prior.
        let back = p.edge(2, 0).unwrap();
        assert_eq!(
            (back.source, back.bw, back.lat),
            (Source::Prior, 10e6, 1e-3)
        );
        assert_eq!((merge.measured, merge.prior), (1, 5));
        assert_eq!(merge.latency_measured, 1);
        assert!(merge.unknown_names.is_empty() && merge.refused.is_empty());
        p.validate().unwrap();
    }

    #[test]
    fn an_unknown_measurement_keeps_the_prior() {
        let env = environment();
        let mut p = problem(&env, &MACHINES);
        let before = p.clone();
        let m = matrix(vec![
            pair(
                "host1",
                "host2",
                unknown(Unknown::NoTraffic),
                unknown(Unknown::NoTraffic),
                unknown(Unknown::NoRttSamples),
            ),
            pair(
                "host2",
                "proxy",
                unknown(Unknown::TooFewTrains {
                    trains: 2,
                    needed: 5,
                }),
                known(1e6, 0.1e6, Method::Counted),
                unknown(Unknown::NoRttSamples),
            ),
        ]);
        let merge = env.merge_wren(&mut p, &m);
        assert_eq!(p, before);
        assert_eq!((merge.measured, merge.prior, merge.clipped), (0, 6, 0));
    }

    #[test]
    fn a_prior_is_clipped_to_the_bound_wren_proves() {
        let env = environment();
        let mut p = problem(&env, &MACHINES);
        let m = matrix(vec![
            // Every train flat at 12 Mbit/s beside 1 Mbit/s of the application's: at least 13.
            pair(
                "host1",
                "proxy",
                unknown(Unknown::AllTrainsFlat { at_least_bps: 12e6 }),
                known(1e6, 0.1e6, Method::Counted),
                unknown(Unknown::NoRttSamples),
            ),
            // Every train rising from 2 Mbit/s, 1 of the application's: at most 3.
            pair(
                "proxy",
                "host1",
                unknown(Unknown::AllTrainsRising { at_most_bps: 2e6 }),
                known(1e6, 0.1e6, Method::Counted),
                unknown(Unknown::NoRttSamples),
            ),
            // A bound that the prior already respects changes nothing.
            pair(
                "host2",
                "proxy",
                unknown(Unknown::AllTrainsFlat { at_least_bps: 4e6 }),
                unknown(Unknown::NoTraffic),
                unknown(Unknown::NoRttSamples),
            ),
            // Rising trains without the path's throughput bound nothing the model uses.
            pair(
                "proxy",
                "host2",
                unknown(Unknown::AllTrainsRising { at_most_bps: 2e6 }),
                unknown(Unknown::TooShort { observed_s: 0.5 }),
                unknown(Unknown::NoRttSamples),
            ),
            // Known available bandwidth, throughput not yet: a lower bound (its low end).
            pair(
                "host1",
                "host2",
                known(11e6, 1e6, Method::Bracket),
                unknown(Unknown::TooShort { observed_s: 0.5 }),
                unknown(Unknown::NoRttSamples),
            ),
        ]);
        let merge = env.merge_wren(&mut p, &m);
        let bw = |a: usize, b: usize| {
            let e = p.edge(a, b).unwrap();
            assert_eq!(e.source, Source::Prior, "{a} -> {b}");
            e.bw
        };
        assert!((bw(0, 2) - 13e6).abs() < 1.0);
        assert!((bw(2, 0) - 3e6).abs() < 1.0);
        assert_eq!(bw(1, 2), 10e6);
        assert_eq!(bw(2, 1), 10e6);
        assert!((bw(0, 1) - 10e6).abs() < 1.0, "11 - 1 = 10: already there");
        assert_eq!((merge.measured, merge.prior, merge.clipped), (0, 6, 2));
    }

    #[test]
    fn names_not_in_the_environment_are_ignored_and_reported() {
        let env = environment();
        // The overlay has host1 and the Proxy only: host2 is the environment's, not foreign.
        let mut p = problem(&env, &["host1", "proxy"]);
        let before = p.clone();
        let bw = || known(3e6, 0.1e6, Method::CrossTraffic);
        let thr = || known(1e6, 0.1e6, Method::Counted);
        let rtt = || known(2e-3, 0.1e-3, Method::OneWayDelays);
        let m = matrix(vec![
            pair("host9", "proxy", bw(), thr(), rtt()),
            pair("proxy", "10.200.0.7:5400", bw(), thr(), rtt()),
            pair("host2", "proxy", bw(), thr(), rtt()),
            pair("host9", "10.200.0.7:5400", bw(), thr(), rtt()),
        ]);
        let merge = env.merge_wren(&mut p, &m);
        assert_eq!(p, before);
        assert_eq!(merge.unknown_names, ["10.200.0.7:5400", "host9"]);
        assert_eq!((merge.measured, merge.prior), (0, 2));
    }

    #[test]
    fn figures_that_are_no_bandwidth_are_refused_and_the_prior_kept() {
        let env = environment();
        let mut p = problem(&env, &MACHINES);
        let before = p.clone();
        let m = matrix(vec![
            pair(
                "host1",
                "proxy",
                known(f64::NAN, 0.0, Method::CrossTraffic),
                known(1e6, 0.1e6, Method::Counted),
                unknown(Unknown::NoRttSamples),
            ),
            pair(
                "proxy",
                "host1",
                known(0.0, 0.0, Method::CrossTraffic),
                known(0.0, 0.0, Method::Counted),
                known(f64::INFINITY, 0.0, Method::Keepalives),
            ),
            pair(
                "host2",
                "proxy",
                known(1e6, f64::INFINITY, Method::Bracket),
                known(1e6, 0.0, Method::Counted),
                unknown(Unknown::NoRttSamples),
            ),
            pair(
                "proxy",
                "host2",
                unknown(Unknown::AllTrainsFlat {
                    at_least_bps: f64::INFINITY,
                }),
                known(-1.0, 0.0, Method::Counted),
                unknown(Unknown::NoRttSamples),
            ),
            pair(
                "host1",
                "host2",
                unknown(Unknown::AllTrainsFlat {
                    at_least_bps: f64::INFINITY,
                }),
                unknown(Unknown::NoTraffic),
                unknown(Unknown::NoRttSamples),
            ),
        ]);
        let merge = env.merge_wren(&mut p, &m);
        assert_eq!(p, before);
        assert_eq!(merge.refused.len(), 5, "{:?}", merge.refused);
        assert!(merge.refused[0].starts_with("host1 -> proxy: available"));
        assert_eq!((merge.measured, merge.prior, merge.clipped), (0, 6, 0));
    }
}

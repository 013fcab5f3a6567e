//! The collector's state, pure: the reporters' datagrams and its own capture's records in,
//! the [`Matrix`] out. `wrend collector` drives it (sockets, capture, timers, HTTP).
//!
//! It names daemons by the overlay's hosts file (`vnetd::online::Hosts`: name → underlay
//! address, and every daemon listens on vnetd's port) and watches every directed pair of
//! them, so that a pair with no traffic is reported as [`crate::Unknown::NoTraffic`] rather
//! than missing.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use vnetd::wire::OverlayKey;

use crate::estimate::{Estimator, Params, ParamsError, Path};
use crate::matrix::{Matrix, PairEstimate, ReporterStatus};
use crate::record::Record;
use crate::ship::{self, ReplayWindow, ShipError};

#[derive(Debug, Clone, Default)]
struct Reporter {
    status: ReporterStatus,
    window: ReplayWindow,
    last_ns: Option<i64>,
}

/// The collector's state.
#[derive(Debug, Clone)]
pub struct Collector {
    name: String,
    key: OverlayKey,
    estimator: Estimator,
    names: BTreeMap<SocketAddr, String>,
    reporters: BTreeMap<String, Reporter>,
}

impl Collector {
    /// A collector called `name` that authenticates with `key`, estimates with `params`, and
    /// watches every directed pair of `daemons` (name, vnetd address).
    ///
    /// # Errors
    /// [`ParamsError`] for parameters that cannot work.
    pub fn new(
        name: &str,
        key: OverlayKey,
        params: Params,
        daemons: &[(String, SocketAddr)],
    ) -> Result<Collector, ParamsError> {
        let mut estimator = Estimator::new(params)?;
        for (_, a) in daemons {
            for (_, b) in daemons {
                if a != b {
                    estimator.watch(Path { src: *a, dst: *b });
                }
            }
        }
        Ok(Collector {
            name: name.to_owned(),
            key,
            estimator,
            names: daemons.iter().map(|(n, a)| (*a, n.clone())).collect(),
            reporters: BTreeMap::new(),
        })
    }

    /// Takes one datagram that arrived from `from` at `now_ns`; the number of records taken.
    ///
    /// # Errors
    /// [`ShipError`] (counted against the reporter, or against `from` when the datagram does
    /// not authenticate).
    pub fn accept(
        &mut self,
        now_ns: i64,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<usize, ShipError> {
        let batch = match ship::decode(&self.key, datagram) {
            Ok(b) => b,
            Err(e) => {
                let r = self
                    .reporters
                    .entry(format!("unauthenticated:{}", from.ip()))
                    .or_default();
                r.status.name = format!("unauthenticated:{}", from.ip());
                *r.status.rejected.entry(e.reason().into()).or_default() += 1;
                return Err(e);
            }
        };
        let r = self.reporters.entry(batch.reporter.clone()).or_default();
        r.status.name.clone_from(&batch.reporter);
        if let Err(e) = r.window.check(batch.session, batch.seq) {
            *r.status.rejected.entry(e.reason().into()).or_default() += 1;
            return Err(e);
        }
        let n = batch.records.len();
        r.status.datagrams += 1;
        r.status.records += n as u64;
        let wire = datagram.len() + ship::WIRE_OVERHEAD_IPV4 + if from.is_ipv6() { 20 } else { 0 };
        r.status.bytes += wire as u64;
        r.last_ns = Some(now_ns);
        self.estimator.ingest(now_ns, batch.records);
        Ok(n)
    }

    /// Takes the collector's own capture's records (reporter `self`'s name, no bytes).
    pub fn take_local(&mut self, now_ns: i64, records: Vec<Record>) {
        let r = self.reporters.entry(self.name.clone()).or_default();
        r.status.name.clone_from(&self.name);
        r.status.records += records.len() as u64;
        r.last_ns = Some(now_ns);
        self.estimator.ingest(now_ns, records);
    }

    fn name_of(&self, a: SocketAddr) -> String {
        self.names.get(&a).cloned().unwrap_or_else(|| a.to_string())
    }

    /// Estimates every path at `now_ns`.
    pub fn matrix(&mut self, now_ns: i64) -> Matrix {
        let window_s = self.estimator.params().window_ns as f64 * 1e-9;
        let report = self.estimator.report(now_ns);
        let pairs = report
            .paths
            .into_iter()
            .map(|estimate| PairEstimate {
                from: self.name_of(estimate.path.src),
                to: self.name_of(estimate.path.dst),
                estimate,
            })
            .collect();
        let reporters = self
            .reporters
            .values()
            .map(|r| {
                let mut s = r.status.clone();
                s.last_age_s = r
                    .last_ns
                    .map(|t| (now_ns.saturating_sub(t)).max(0) as f64 * 1e-9);
                s
            })
            .collect();
        Matrix {
            at_ns: report.at_ns,
            collector: self.name.clone(),
            window_s,
            pairs,
            reporters,
            ingest: report.ingest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{Measure, Unknown};
    use crate::ship::Encoder;

    fn daemons() -> Vec<(String, SocketAddr)> {
        ["host1", "host2", "proxy"]
            .iter()
            .zip(["10.200.0.1:5400", "10.200.0.2:5400", "10.200.255.254:5400"])
            .map(|(n, a)| ((*n).to_owned(), a.parse().unwrap()))
            .collect()
    }

    #[test]
    fn idle_pairs_are_unknown_with_a_reason_and_the_json_round_trips() {
        let key = OverlayKey::from_bytes([9; 32]);
        let mut c = Collector::new("proxy", key.clone(), Params::default(), &daemons()).unwrap();
        let now = 1_700_000_000_000_000_000;
        // host1's agent saw a few datagrams it sent to the Proxy, the Proxy none: one end only.
        let records: Vec<Record> = (0..20)
            .map(|i| Record {
                t_ns: now - 1_000_000_000 + i * 1_000_000,
                dir: crate::Direction::Tx,
                src: "10.200.0.1:5400".parse().unwrap(),
                dst: "10.200.255.254:5400".parse().unwrap(),
                len: 1514,
                msg: crate::MsgType::Fragment,
                session: 77,
                seq: u64::try_from(i).unwrap(),
                batch: 0,
            })
            .collect();
        let mut e = Encoder::new(key, "host1", 1).unwrap();
        let from: SocketAddr = "10.200.0.1:40000".parse().unwrap();
        for d in e.encode(now, &records) {
            assert_eq!(c.accept(now, from, &d).unwrap(), 20);
            assert!(c.accept(now, from, &d).is_err(), "a replay is refused");
        }
        // A stranger's datagram is refused and counted.
        let mut stranger = Encoder::new(OverlayKey::from_bytes([1; 32]), "host2", 1).unwrap();
        for d in stranger.encode(now, &records) {
            assert_eq!(c.accept(now, from, &d), Err(ShipError::BadTag));
        }
        let m = c.matrix(now);
        assert_eq!(m.pairs.len(), 6, "every directed pair of three daemons");
        let idle = m.pair("host1", "host2").unwrap();
        assert_eq!(
            idle.estimate.available_bps,
            Measure::Unknown {
                why: Unknown::NoTraffic
            }
        );
        let one = m.pair("host1", "proxy").unwrap();
        assert!(
            matches!(
                one.estimate.available_bps,
                Measure::Unknown {
                    why: Unknown::OneEndOnly { sent: 20, .. }
                }
            ),
            "{:?}",
            one.estimate.available_bps
        );
        let h1 = m.reporters.iter().find(|r| r.name == "host1").unwrap();
        assert_eq!((h1.datagrams, h1.records), (1, 20));
        assert_eq!(h1.rejected.get("replayed"), Some(&1));
        assert!(m.reporters.iter().any(
            |r| r.name.starts_with("unauthenticated:") && r.rejected.get("bad_tag") == Some(&1)
        ));
        let json = serde_json::to_string(&m).unwrap();
        let back: Matrix = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert!(
            json.contains(r#""status":"unknown","reason":"no_traffic""#),
            "{json}"
        );
        let text = crate::matrix::render_prometheus(&m);
        assert!(text.contains(
            r#"wren_known{from="host1",to="host2",figure="available_bandwidth",reason="no_traffic"} 0"#
        ));
    }

    #[test]
    fn a_synthetic_path_round_trips_through_json() {
        // Known estimates (floats, methods) survive the JSON too.
        let key = OverlayKey::from_bytes([9; 32]);
        let s = crate::synth::Scenario::new(10e6, 0.01, 0.3);
        let records = crate::synth::generate(&s);
        let (a, b) = crate::synth::hosts();
        let daemons = vec![("a".to_owned(), a), ("b".to_owned(), b)];
        let mut c = Collector::new("b", key, Params::default(), &daemons).unwrap();
        let now = records.iter().map(|r| r.t_ns).max().unwrap() + 1;
        c.take_local(now, records);
        let m = c.matrix(now);
        let p = m.pair("a", "b").unwrap();
        assert!(
            p.available_bps().is_some(),
            "{:?}",
            p.estimate.available_bps
        );
        let back: Matrix = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}

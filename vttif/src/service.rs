//! The inference service as the Proxy runs it: the daemons' updates in, [`Report`]s and
//! [`Change`]s out. Pure, like [`Inference`]: the Proxy's daemon gives it the bytes of each
//! update with the time it arrived, and calls [`Service::evaluate`] at the update rate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::classify::{classify, Shape};
use crate::infer::{Change, Flow, Inference, Params, ParamsError};
use crate::update::{self, Entry, UpdateError};
use crate::Mac;

/// What the service knows of one reporting daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporter {
    /// Updates accepted.
    pub received: u64,
    /// Updates refused as malformed.
    pub rejected: u64,
    /// Updates that never arrived (gaps in the sequence numbers).
    pub lost: u64,
    /// The sequence number expected next.
    #[serde(skip)]
    next_seq: Option<u32>,
}

/// An edge of the inferred topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// One guest (the smaller MAC).
    pub a: Mac,
    /// The other.
    pub b: Mac,
    /// Its traffic over the heaviest edge's, in (0, 1].
    pub intensity: f64,
}

/// The last declared change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastChange {
    /// Seconds since the service started.
    pub at_s: f64,
    /// Seconds from the first sign of it to its declaration.
    pub settle_s: f64,
    /// Edges it added.
    pub added: Vec<(Mac, Mac)>,
    /// Edges it removed.
    pub removed: Vec<(Mac, Mac)>,
}

/// Everything the service knows, for `vnetctl app-topology`, the metrics and VADAPT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Seconds since the service started (the clock of `at_s` fields).
    pub now_s: f64,
    /// The update rate (Hz).
    pub update_hz: f64,
    /// The smoothing window (s).
    pub window_s: f64,
    /// The detection threshold.
    pub threshold: f64,
    /// The declared topology's edges.
    pub edges: Vec<Edge>,
    /// Every known shape the declared topology has (e.g. `ring`, `torus:4x2`).
    pub shapes: Vec<String>,
    /// Changes declared so far.
    pub changes: u64,
    /// The last one.
    pub last_change: Option<LastChange>,
    /// The unicast traffic matrix over the window.
    pub matrix: Vec<Flow>,
    /// Broadcast and multicast traffic over the window.
    pub broadcast: Vec<Flow>,
    /// Per reporting daemon.
    pub reporters: BTreeMap<String, Reporter>,
}

impl Report {
    /// For people: parameters, the topology's shapes and edges, the last change, the
    /// matrix and the updates per daemon.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "VTTIF: update {} Hz, window {:.2} s, threshold {}",
            self.update_hz, self.window_s, self.threshold
        );
        let shapes = if self.shapes.is_empty() {
            "no known shape".to_string()
        } else {
            self.shapes.join(", ")
        };
        let _ = writeln!(
            out,
            "topology: {} edges ({shapes}), {} changes declared",
            self.edges.len(),
            self.changes
        );
        if let Some(c) = &self.last_change {
            let _ = writeln!(
                out,
                "last change {:.1} s ago (settled in {:.2} s): +{} -{} edges",
                self.now_s - c.at_s,
                c.settle_s,
                c.added.len(),
                c.removed.len()
            );
        }
        for e in &self.edges {
            let _ = writeln!(out, "  {} -- {}  {:.3}", e.a, e.b, e.intensity);
        }
        let _ = writeln!(out, "traffic matrix (unicast, over the window):");
        for f in &self.matrix {
            let _ = writeln!(
                out,
                "  {} -> {}  {:>12.0} B/s {:>9.0} frames/s",
                f.src, f.dst, f.bytes_per_s, f.frames_per_s
            );
        }
        for f in &self.broadcast {
            let _ = writeln!(
                out,
                "  {} -> {} (group)  {:>12.0} B/s {:>9.0} frames/s",
                f.src, f.dst, f.bytes_per_s, f.frames_per_s
            );
        }
        let _ = writeln!(out, "updates: received / rejected / lost");
        for (name, r) in &self.reporters {
            let _ = writeln!(
                out,
                "  {name:<12} {} / {} / {}",
                r.received, r.rejected, r.lost
            );
        }
        out
    }

    /// Graphviz: the declared topology, edges labelled and weighted by intensity.
    pub fn dot(&self) -> String {
        let mut out = String::from("graph vttif {\n");
        let _ = writeln!(out, "  label=\"{}\";", self.shapes.join(", "));
        for e in &self.edges {
            let _ = writeln!(
                out,
                "  \"{}\" -- \"{}\" [label=\"{:.2}\", penwidth={:.1}];",
                e.a,
                e.b,
                e.intensity,
                1.0 + 4.0 * e.intensity
            );
        }
        out.push_str("}\n");
        out
    }
}

/// The Proxy's inference service.
#[derive(Debug, Clone)]
pub struct Service {
    inference: Inference,
    reporters: BTreeMap<String, Reporter>,
    last_change: Option<Change>,
}

impl Service {
    /// A service with these parameters.
    ///
    /// # Errors
    /// Parameters out of range.
    pub fn new(params: Params) -> Result<Service, ParamsError> {
        Ok(Service {
            inference: Inference::new(params)?,
            reporters: BTreeMap::new(),
            last_change: None,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        self.inference.params()
    }

    /// Takes traffic counted at the Proxy's own ports.
    pub fn record(&mut self, now: Duration, entries: &[Entry]) {
        for e in entries {
            self.inference.record(now, e.src, e.dst, e.bytes, e.frames);
        }
    }

    /// Takes the bytes of an update from daemon `reporter`, arrived at `now`.
    ///
    /// # Errors
    /// A malformed update (counted as rejected; nothing of it is used).
    pub fn receive(
        &mut self,
        reporter: &str,
        bytes: &[u8],
        now: Duration,
    ) -> Result<(), UpdateError> {
        let r = self.reporters.entry(reporter.to_string()).or_default();
        let update = match update::decode(bytes) {
            Ok(update) => update,
            Err(e) => {
                r.rejected += 1;
                return Err(e);
            }
        };
        r.received += 1;
        if let Some(expected) = r.next_seq {
            // A daemon that restarted counts from 0 again: not a loss.
            if update.seq > expected {
                r.lost += u64::from(update.seq - expected);
            }
        }
        r.next_seq = Some(update.seq.wrapping_add(1));
        self.record(now, &update.entries);
        Ok(())
    }

    /// Slides the window and declares a change if one has settled.
    pub fn evaluate(&mut self, now: Duration) -> Option<Change> {
        let change = self.inference.evaluate(now)?;
        self.last_change = Some(change.clone());
        Some(change)
    }

    /// The declared topology's shapes.
    pub fn shapes(&self) -> Vec<Shape> {
        let nodes: Vec<Mac> = self.inference.declared().nodes().into_iter().collect();
        let index = |m: &Mac| nodes.binary_search(m).unwrap_or(0);
        let edges: Vec<(usize, usize)> = self
            .inference
            .declared()
            .edges
            .keys()
            .map(|(a, b)| (index(a), index(b)))
            .collect();
        classify(nodes.len(), &edges)
    }

    /// Everything, as of `now`.
    pub fn report(&self, now: Duration) -> Report {
        let params = self.params();
        Report {
            now_s: now.as_secs_f64(),
            update_hz: params.update_hz,
            window_s: params.window.as_secs_f64(),
            threshold: params.threshold,
            edges: self
                .inference
                .declared()
                .edges
                .iter()
                .map(|(&(a, b), &intensity)| Edge { a, b, intensity })
                .collect(),
            shapes: self.shapes().iter().map(ToString::to_string).collect(),
            changes: self.inference.changes(),
            last_change: self.last_change.as_ref().map(|c| LastChange {
                at_s: c.at.as_secs_f64(),
                settle_s: c.settle.as_secs_f64(),
                added: c.added.clone(),
                removed: c.removed.clone(),
            }),
            matrix: self.inference.matrix(now),
            broadcast: self.inference.broadcast(now),
            reporters: self.reporters.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u8) -> Mac {
        Mac([2, 0x56, 0x4e, 0, 0, i])
    }

    fn update(seq: u32, pairs: &[(u8, u8)]) -> Vec<u8> {
        let entries: Vec<Entry> = pairs
            .iter()
            .map(|&(a, b)| Entry {
                src: mac(a),
                dst: mac(b),
                bytes: 10_000,
                frames: 10,
            })
            .collect();
        let mut out = Vec::new();
        update::encode(seq, &entries, &mut out);
        out
    }

    #[test]
    fn updates_from_daemons_make_a_ring() {
        let mut s = Service::new(Params::DEFAULT).unwrap();
        let step = Params::DEFAULT.update_interval();
        let mut now = Duration::ZERO;
        for seq in 0..40 {
            // host1 sees 1→2 and 1→4, host2 2→3 ..., each its own guests' sends.
            s.receive("host1", &update(seq, &[(1, 2), (1, 4)]), now)
                .unwrap();
            s.receive("host2", &update(seq, &[(2, 3), (2, 1)]), now)
                .unwrap();
            s.receive("host3", &update(seq, &[(3, 4), (3, 2)]), now)
                .unwrap();
            if seq != 20 {
                s.receive("host4", &update(seq, &[(4, 1), (4, 3)]), now)
                    .unwrap();
            }
            s.evaluate(now);
            now += step;
        }
        let r = s.report(now);
        assert_eq!(r.edges.len(), 4);
        assert!(r.shapes.contains(&"ring".to_string()), "{:?}", r.shapes);
        assert_eq!(r.changes, 1);
        assert_eq!(r.reporters["host4"].lost, 1);
        assert_eq!(r.reporters["host4"].received, 39);
        assert_eq!(r.matrix.len(), 8);
        assert!(s.receive("host1", b"junk", now).is_err());
        assert_eq!(s.report(now).reporters["host1"].rejected, 1);
        // A restarted daemon starts from 0 again: no loss.
        s.receive("host2", &update(0, &[(2, 3)]), now).unwrap();
        assert_eq!(s.report(now).reporters["host2"].lost, 0);
        assert!(r.text().contains("4 edges (ring"), "{}", r.text());
        assert_eq!(r.dot().matches(" -- ").count(), 4);
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.edges, r.edges);
    }
}

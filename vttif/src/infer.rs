//! The inference core: timestamped traffic samples in, the application's topology out.
//!
//! Pure code over plain data, so the Proxy's live service and the offline tool run exactly
//! this. Time is a [`Duration`] since any fixed origin (the daemon's start, a trace's first
//! packet); nothing here reads a clock.
//!
//! # The algorithm (seed 002 §2.2)
//!
//! 1. **Smoothing.** Every sample `(at, src, dst, bytes, frames)` enters a sliding window of
//!    [`Params::window`]; [`Inference::evaluate`] first drops what is older than that. The
//!    traffic matrix is the window's bytes per directed pair over the window's length
//!    ([`Inference::matrix`]).
//! 2. **Normalisation.** An undirected pair's weight is its bytes in both directions; its
//!    *intensity* is its weight over the heaviest pair's.
//! 3. **Pruning.** A pair is an edge of the *candidate* topology when its intensity reaches
//!    [`Params::threshold`]. An edge of the topology already declared stays while it keeps
//!    half the threshold (hysteresis: an edge that hovers at the threshold does not flicker).
//! 4. **Change detection.** A candidate is *steady* when the newest half of the window,
//!    pruned the same way, shows the same edges as the whole window: while one topology
//!    gives way to another the whole window still holds the old edges when the newest half
//!    no longer does, so the transitional union of the two is never steady for long. A
//!    steady candidate different from the declared topology becomes the new declared
//!    topology once it has stayed steady and the same for [`Params::settle`] (half the
//!    window) at every evaluation. A window without guest traffic (the compute phase of a
//!    BSP program, or an application that stopped) is not a topology: the declared one
//!    stays and any pending candidate is forgotten. "Without" means that no pair reaches
//!    [`Inference::IDLE_BYTES_PER_S`], so the last few segments of connections being torn
//!    down, ARP and other housekeeping do not become a topology of their own.
//!
//! When topologies alternate faster than half the window, both are in each half at once:
//! the candidate is their union, it is steady, and that union is what gets declared — it
//! damps instead of oscillating. Alternation slower than the window plus the settling time
//! is followed change by change.
//!
//! Broadcast and multicast frames (a group destination) are kept apart: counted in
//! [`Inference::broadcast`], never part of the topology.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Mac;

/// The three parameters users tune (seed 002 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Params {
    /// How often daemons ship their local matrices, and the Proxy evaluates (Hz, at most
    /// [`Params::MAX_UPDATE_HZ`]).
    pub update_hz: f64,
    /// The smoothing interval: how much past traffic the matrix covers.
    #[serde(with = "secs")]
    pub window: Duration,
    /// The detection threshold: the fraction of the heaviest pair's traffic a pair needs to
    /// be an edge.
    pub threshold: f64,
}

impl Params {
    /// The papers' ceiling on the update rate.
    pub const MAX_UPDATE_HZ: f64 = 20.0;

    /// The defaults every test and benchmark uses: 20 Hz, a 0.5 s window, threshold 0.2.
    ///
    /// With them a switch of topology is declared about 0.7 s after it happens (old edges
    /// fall below half the threshold once some 90 % of the window holds the new traffic,
    /// then 0.25 s of settling), and a steady application's edges can differ by a factor of
    /// five among themselves (ten, once declared) before any is pruned.
    pub const DEFAULT: Params = Params {
        update_hz: 20.0,
        window: Duration::from_millis(500),
        threshold: 0.2,
    };

    /// How long a candidate must stay the same before it is declared: half the window.
    pub fn settle(&self) -> Duration {
        self.window / 2
    }

    /// The time between two updates.
    pub fn update_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.update_hz)
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// A rate outside (0, 20] Hz, a window shorter than two updates, or a threshold outside
    /// (0, 1].
    pub fn check(&self) -> Result<(), ParamsError> {
        if !(self.update_hz > 0.0 && self.update_hz <= Self::MAX_UPDATE_HZ) {
            return Err(ParamsError::UpdateRate(self.update_hz));
        }
        if self.window.as_secs_f64() * self.update_hz < 2.0 {
            return Err(ParamsError::Window {
                window: self.window,
                update_hz: self.update_hz,
            });
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(ParamsError::Threshold(self.threshold));
        }
        Ok(())
    }
}

impl Default for Params {
    fn default() -> Self {
        Params::DEFAULT
    }
}

mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Why a parameter set is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// The update rate is not in (0, 20] Hz.
    #[error("update rate {0} Hz is out of range (more than 0, at most 20 Hz)")]
    UpdateRate(f64),
    /// The window holds fewer than two updates.
    #[error(
        "smoothing window {window:?} holds fewer than two updates at {update_hz} Hz (make it at \
         least two update intervals long)"
    )]
    Window {
        /// The window asked for.
        window: Duration,
        /// The update rate asked for.
        update_hz: f64,
    },
    /// The threshold is not in (0, 1].
    #[error("detection threshold {0} is out of range (a fraction of the heaviest pair: more than 0, at most 1)")]
    Threshold(f64),
}

/// An undirected pair of guests, the smaller MAC first.
pub type Pair = (Mac, Mac);

/// The undirected pair of `a` and `b`.
pub(crate) fn pair(a: Mac, b: Mac) -> Pair {
    (a.min(b), a.max(b))
}

/// A topology: its edges with their intensities (weight over the heaviest edge's, in (0, 1]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Topology {
    /// Every edge, the smaller MAC first.
    pub edges: BTreeMap<Pair, f64>,
}

impl Topology {
    /// The guests that have at least one edge.
    pub fn nodes(&self) -> BTreeSet<Mac> {
        self.edges.keys().flat_map(|&(a, b)| [a, b]).collect()
    }

    /// The edges without their intensities.
    pub fn edge_set(&self) -> BTreeSet<Pair> {
        self.edges.keys().copied().collect()
    }
}

/// A declared change of topology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// When it was declared.
    #[serde(with = "secs")]
    pub at: Duration,
    /// How many changes were declared before this one.
    pub number: u64,
    /// The new topology, with intensities as of its declaration.
    pub topology: Topology,
    /// Edges it has that the previous one had not.
    pub added: Vec<Pair>,
    /// Edges the previous one had that it has not.
    pub removed: Vec<Pair>,
    /// From the first evaluation whose candidate differed from the old topology to this
    /// declaration.
    #[serde(with = "secs")]
    pub settle: Duration,
}

/// One directed pair's traffic over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Sender.
    pub src: Mac,
    /// Receiver (for broadcast: the group address).
    pub dst: Mac,
    /// Bytes per second.
    pub bytes_per_s: f64,
    /// Frames per second.
    pub frames_per_s: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    bytes: u64,
    frames: u64,
}

impl Counts {
    fn add(&mut self, bytes: u64, frames: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.frames = self.frames.saturating_add(frames);
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    src: Mac,
    dst: Mac,
    bytes: u64,
    frames: u64,
}

/// The live state of inference: the window, the declared topology and any pending candidate.
#[derive(Debug, Clone)]
pub struct Inference {
    params: Params,
    samples: VecDeque<Sample>,
    first_sample: Option<Duration>,
    declared: Topology,
    changes: u64,
    /// The candidate waiting to settle, and since when it has been the candidate.
    pending: Option<(BTreeSet<Pair>, Duration)>,
    /// When the candidate first differed from the declared topology (for the settle time).
    differs_since: Option<Duration>,
}

impl Inference {
    /// Starts with an empty window and no topology.
    ///
    /// # Errors
    /// Parameters out of range ([`Params::check`]).
    pub fn new(params: Params) -> Result<Inference, ParamsError> {
        params.check()?;
        Ok(Inference {
            params,
            samples: VecDeque::new(),
            first_sample: None,
            declared: Topology::default(),
            changes: 0,
            pending: None,
            differs_since: None,
        })
    }

    /// The parameters in use.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Adds traffic seen at `at`: `bytes` in `frames` frames from `src` to `dst`. A sample
    /// older than the newest one already recorded is taken as happening at the newest time
    /// (reports from several daemons interleave; none is lost for arriving late).
    pub fn record(&mut self, at: Duration, src: Mac, dst: Mac, bytes: u64, frames: u64) {
        let at = self.samples.back().map_or(at, |last| at.max(last.at));
        self.first_sample.get_or_insert(at);
        self.samples.push_back(Sample {
            at,
            src,
            dst,
            bytes,
            frames,
        });
    }

    fn evict(&mut self, now: Duration) {
        // The window is (now - window, now]: a sample exactly one window old is out.
        let Some(horizon) = now.checked_sub(self.params.window) else {
            return;
        };
        while let Some(s) = self.samples.front().copied() {
            if s.at > horizon {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// The seconds the window's traffic spans: the window, or less while it is filling up.
    fn span(&self, now: Duration) -> f64 {
        let since_first = self
            .first_sample
            .map_or(Duration::ZERO, |first| now.saturating_sub(first));
        since_first
            .min(self.params.window)
            .max(self.params.update_interval())
            .as_secs_f64()
    }

    /// The unicast traffic matrix over the window, as of the last [`Inference::evaluate`].
    pub fn matrix(&self, now: Duration) -> Vec<Flow> {
        self.flows(now, false)
    }

    /// Broadcast and multicast traffic over the window, per sender and group address.
    pub fn broadcast(&self, now: Duration) -> Vec<Flow> {
        self.flows(now, true)
    }

    /// Bytes and frames per directed pair in the samples newer than `after`.
    fn sums(&self, after: Option<Duration>) -> BTreeMap<(Mac, Mac), Counts> {
        let mut sums: BTreeMap<(Mac, Mac), Counts> = BTreeMap::new();
        for s in self.samples.iter().rev() {
            if after.is_some_and(|after| s.at <= after) {
                break;
            }
            sums.entry((s.src, s.dst))
                .or_default()
                .add(s.bytes, s.frames);
        }
        sums
    }

    fn flows(&self, now: Duration, group: bool) -> Vec<Flow> {
        let span = self.span(now);
        self.sums(None)
            .iter()
            .filter(|((_, dst), _)| dst.is_group() == group)
            .map(|(&(src, dst), c)| Flow {
                src,
                dst,
                bytes_per_s: c.bytes as f64 / span,
                frames_per_s: c.frames as f64 / span,
            })
            .collect()
    }

    /// Every undirected pair's intensity in the samples newer than `after` (empty when they
    /// hold no unicast traffic), and the heaviest pair's bytes.
    fn intensities(&self, after: Option<Duration>) -> (BTreeMap<Pair, f64>, u64) {
        let mut weights: BTreeMap<Pair, u64> = BTreeMap::new();
        for (&(src, dst), c) in &self.sums(after) {
            if !dst.is_group() && src != dst && c.bytes > 0 {
                let w = weights.entry(pair(src, dst)).or_default();
                *w = w.saturating_add(c.bytes);
            }
        }
        let heaviest = weights.values().copied().max().unwrap_or(0);
        let intensities = weights
            .into_iter()
            .map(|(p, w)| (p, w as f64 / heaviest.max(1) as f64))
            .collect();
        (intensities, heaviest)
    }

    /// Below this, on its heaviest pair (both directions), a window is silence rather than
    /// a topology: 4 KiB/s, some 60 small frames a second.
    pub const IDLE_BYTES_PER_S: f64 = 4096.0;

    /// The topology the window shows at `now`, before settling: pruned with hysteresis
    /// against the declared one. `None` when the window holds no traffic to speak of (see
    /// [`Inference::IDLE_BYTES_PER_S`]).
    pub fn candidate(&self, now: Duration) -> Option<Topology> {
        self.prune(self.intensities(None), self.span(now))
    }

    /// Prunes `intensities` (with their heaviest weight), taken over `span` seconds.
    fn prune(
        &self,
        (intensities, heaviest): (BTreeMap<Pair, f64>, u64),
        span: f64,
    ) -> Option<Topology> {
        if heaviest as f64 / span < Self::IDLE_BYTES_PER_S {
            return None;
        }
        let threshold = self.params.threshold;
        let edges = intensities
            .into_iter()
            .filter(|(p, i)| {
                *i >= threshold || (self.declared.edges.contains_key(p) && *i >= threshold / 2.0)
            })
            .collect();
        Some(Topology { edges })
    }

    /// The topology declared last (empty before the first change).
    pub fn declared(&self) -> &Topology {
        &self.declared
    }

    /// How many changes have been declared.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Slides the window to `now`, prunes, and declares a change if a new candidate has
    /// settled. Call it at the update rate.
    pub fn evaluate(&mut self, now: Duration) -> Option<Change> {
        self.evict(now);
        let Some(candidate) = self.candidate(now) else {
            self.pending = None;
            self.differs_since = None;
            return None;
        };
        let edges = candidate.edge_set();
        if edges == self.declared.edge_set() {
            // Same edges: refresh the intensities, nothing to declare.
            self.declared = candidate;
            self.pending = None;
            self.differs_since = None;
            return None;
        }
        let differs_since = *self.differs_since.get_or_insert(now);
        let newest_half = now.checked_sub(self.params.window / 2);
        let half_span = (self.span(now) / 2.0).max(self.params.update_interval().as_secs_f64());
        let steady = self
            .prune(self.intensities(newest_half), half_span)
            .is_some_and(|recent| recent.edge_set() == edges);
        if !steady {
            self.pending = None;
            return None;
        }
        let since = match &self.pending {
            Some((pending, since)) if *pending == edges => *since,
            _ => {
                self.pending = Some((edges.clone(), now));
                now
            }
        };
        if now.saturating_sub(since) < self.params.settle() {
            return None;
        }
        let old = self.declared.edge_set();
        let change = Change {
            at: now,
            number: self.changes,
            added: edges.difference(&old).copied().collect(),
            removed: old.difference(&edges).copied().collect(),
            topology: candidate.clone(),
            settle: now.saturating_sub(differs_since),
        };
        self.declared = candidate;
        self.changes += 1;
        self.pending = None;
        self.differs_since = None;
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u8) -> Mac {
        Mac([2, 0x56, 0x4e, 0, 0, i])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `edges` (each way, `bytes` per update) from `from` to `to` at the update rate,
    /// evaluating after each update; returns the changes declared.
    fn drive(
        inf: &mut Inference,
        edges: &[(u8, u8)],
        bytes: u64,
        from: Duration,
        to: Duration,
    ) -> Vec<Change> {
        let step = inf.params().update_interval();
        let mut at = from;
        let mut changes = Vec::new();
        while at < to {
            for &(a, b) in edges {
                inf.record(at, mac(a), mac(b), bytes, bytes / 1000 + 1);
                inf.record(at, mac(b), mac(a), bytes, bytes / 1000 + 1);
            }
            changes.extend(inf.evaluate(at));
            at += step;
        }
        changes
    }

    fn ring(n: u8) -> Vec<(u8, u8)> {
        (0..n).map(|i| (i, (i + 1) % n)).collect()
    }

    fn set(edges: &[(u8, u8)]) -> BTreeSet<Pair> {
        edges.iter().map(|&(a, b)| pair(mac(a), mac(b))).collect()
    }

    #[test]
    fn parameters_are_checked() {
        assert!(Params::DEFAULT.check().is_ok());
        let p = |update_hz, window_ms, threshold| Params {
            update_hz,
            window: ms(window_ms),
            threshold,
        };
        assert!(matches!(
            p(25.0, 500, 0.2).check(),
            Err(ParamsError::UpdateRate(_))
        ));
        assert!(matches!(
            p(0.0, 500, 0.2).check(),
            Err(ParamsError::UpdateRate(_))
        ));
        assert!(matches!(
            p(f64::NAN, 500, 0.2).check(),
            Err(ParamsError::UpdateRate(_))
        ));
        assert!(matches!(
            p(10.0, 150, 0.2).check(),
            Err(ParamsError::Window { .. })
        ));
        assert!(matches!(
            p(10.0, 500, 0.0).check(),
            Err(ParamsError::Threshold(_))
        ));
        assert!(matches!(
            p(10.0, 500, 1.5).check(),
            Err(ParamsError::Threshold(_))
        ));
        assert!(Inference::new(p(10.0, 500, 1.5)).is_err());
    }

    #[test]
    fn a_steady_ring_is_declared_once_after_settling() {
        let mut inf = Inference::new(Params::DEFAULT).unwrap();
        let changes = drive(&mut inf, &ring(8), 100_000, ms(0), ms(10_000));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].topology.edge_set(), set(&ring(8)));
        assert!(changes[0].at <= ms(300), "declared at {:?}", changes[0].at);
        assert_eq!(changes[0].settle, Params::DEFAULT.settle());
        assert!(changes[0].removed.is_empty());
        assert_eq!(changes[0].added.len(), 8);
        for i in changes[0].topology.edges.values() {
            assert!((*i - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn light_noise_is_pruned_and_a_switch_is_found_within_a_second() {
        let mut inf = Inference::new(Params::DEFAULT).unwrap();
        // A ring with 5 % of its traffic spread over every other pair.
        let n = 8u8;
        let others: Vec<(u8, u8)> = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .filter(|&(a, b)| !set(&ring(n)).contains(&pair(mac(a), mac(b))))
            .collect();
        let step = Params::DEFAULT.update_interval();
        let mut at = ms(0);
        let mut changes = Vec::new();
        let noise = 100_000 * 8 * 5 / 95 / others.len() as u64;
        while at < ms(5_000) {
            for &(a, b) in &ring(n) {
                inf.record(at, mac(a), mac(b), 100_000, 70);
            }
            for &(a, b) in &others {
                inf.record(at, mac(a), mac(b), noise, 1);
            }
            changes.extend(inf.evaluate(at));
            at += step;
        }
        assert_eq!(changes.len(), 1);
        assert_eq!(inf.declared().edge_set(), set(&ring(n)));
        // Switch to a bus without the noise.
        let bus: Vec<(u8, u8)> = (0..n - 1).map(|i| (i, i + 1)).collect();
        let changes = drive(&mut inf, &bus, 100_000, ms(5_000), ms(8_000));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].topology.edge_set(), set(&bus));
        assert_eq!(changes[0].removed, vec![pair(mac(0), mac(7))]);
        assert!(
            changes[0].at - ms(5_000) <= ms(1_000),
            "{:?}",
            changes[0].at
        );
    }

    #[test]
    fn fast_alternation_settles_on_the_union() {
        let mut inf = Inference::new(Params::DEFAULT).unwrap();
        let a = ring(6);
        let b: Vec<(u8, u8)> = vec![(0, 3), (1, 4), (2, 5)];
        let mut changes = Vec::new();
        // Alternate every 100 ms for 10 s.
        for k in 0..100u64 {
            let edges = if k % 2 == 0 { &a } else { &b };
            changes.extend(drive(
                &mut inf,
                edges,
                50_000,
                ms(k * 100),
                ms(k * 100 + 100),
            ));
        }
        let union: BTreeSet<Pair> = set(&a).union(&set(&b)).copied().collect();
        assert_eq!(inf.declared().edge_set(), union);
        assert!(changes.len() <= 2, "oscillated: {} changes", changes.len());
    }

    #[test]
    fn slow_alternation_is_followed() {
        let mut inf = Inference::new(Params::DEFAULT).unwrap();
        let a = ring(6);
        let b: Vec<(u8, u8)> = vec![(0, 3), (1, 4), (2, 5)];
        let mut changes = Vec::new();
        for k in 0..6u64 {
            let edges = if k % 2 == 0 { &a } else { &b };
            changes.extend(drive(
                &mut inf,
                edges,
                50_000,
                ms(k * 2000),
                ms(k * 2000 + 2000),
            ));
        }
        let seen: Vec<BTreeSet<Pair>> = changes.iter().map(|c| c.topology.edge_set()).collect();
        assert_eq!(seen.len(), 6, "{seen:?}");
        for (k, s) in seen.iter().enumerate() {
            assert_eq!(*s, if k % 2 == 0 { set(&a) } else { set(&b) });
        }
    }

    #[test]
    fn silence_keeps_the_topology_and_group_traffic_stays_apart() {
        let mut inf = Inference::new(Params::DEFAULT).unwrap();
        drive(&mut inf, &ring(4), 10_000, ms(0), ms(2_000));
        assert_eq!(inf.declared().edge_set(), set(&ring(4)));
        // Only broadcast for a while: no unicast in the window.
        for k in 0..40u64 {
            inf.record(ms(2_000 + k * 50), mac(1), Mac::BROADCAST, 60, 1);
            assert_eq!(inf.evaluate(ms(2_000 + k * 50)), None);
        }
        let b = inf.broadcast(ms(3_950));
        assert_eq!(b.len(), 1);
        assert!((b[0].bytes_per_s - 1200.0).abs() < 1e-6, "{b:?}");
        assert!(inf.matrix(ms(3_950)).is_empty());
        // A connection's last segments after the application stopped: not a topology.
        for k in 0..40u64 {
            inf.record(ms(4_000 + k * 50), mac(1), mac(3), 66 * 2, 2);
            assert_eq!(inf.evaluate(ms(4_000 + k * 50)), None);
        }
        assert_eq!(inf.declared().edge_set(), set(&ring(4)));
    }

    #[test]
    fn the_matrix_is_bytes_per_second_over_the_window() {
        let mut inf = Inference::new(Params::DEFAULT).unwrap();
        drive(&mut inf, &[(1, 2)], 5_000, ms(0), ms(3_000));
        let m = inf.matrix(ms(2_950));
        assert_eq!(m.len(), 2);
        // 5000 bytes every 50 ms = 100 kB/s each way.
        for f in m {
            assert!(
                (f.bytes_per_s - 100_000.0).abs() / 100_000.0 < 0.11,
                "{f:?}"
            );
        }
    }

    #[test]
    fn late_samples_are_kept() {
        let mut inf = Inference::new(Params::DEFAULT).unwrap();
        inf.record(ms(1_000), mac(1), mac(2), 100, 1);
        inf.record(ms(900), mac(2), mac(1), 100, 1);
        inf.evaluate(ms(1_000));
        assert_eq!(inf.matrix(ms(1_000)).len(), 2);
    }
}

//! The estimator: records in, per directed host pair an available bandwidth, a throughput and
//! a round-trip time out, each an [`Estimate`] with a confidence interval and an age, or
//! [`Unknown`] with the reason. Pure code: the caller passes the time.
//!
//! **Available bandwidth** (see [`crate::train`] for trains and trends). Three readings of
//! the same trains:
//!
//! 1. *The bracket* (pathload's): the available bandwidth lies between the fastest train
//!    whose delays stayed flat and the slowest whose delays rose. With noise the two sets
//!    overlap; the cut is placed where it misjudges the fewest trains (ambiguous ones left
//!    out), and the bracket is `[fastest flat train below the cut, slowest rising train
//!    above it]`, reported as [`PathEstimate::at_least_bps`] / [`PathEstimate::at_most_bps`].
//! 2. *Cross traffic in busy periods* ([`Method::CrossTraffic`], the estimate whenever it
//!    exists): the capacity `C` from the dispersion of batches ([`crate::train::capacity`])
//!    less the cross traffic measured while the bottleneck was busy with the path's own
//!    datagrams ([`crate::train::busy_cross_traffic`]): `A = C - X`, with a Student's t
//!    interval over the trains (weighted by their busy time) widened by the capacity's.
//!    It uses every busy interval, flat trains' too, so it needs far less traffic than the
//!    bracket to be tight, and it does not need trains on both sides of `A`.
//! 3. *The hinge fit* (TOPP's fluid model), where the capacity is unknown (no batches): a
//!    train sent at `R` has delay slope `max(0, (R - A) / C)`; least squares over every
//!    train with a rate gives `A` and `C`, its interval the profile of the residual sum of
//!    squares (the F test at [`Params::confidence`]). Held within a two-sided bracket
//!    ([`Method::Bracket`]); without a flat train it may extrapolate below the slowest rising
//!    train when their rates spread by [`Params::min_rate_spread`]
//!    ([`Method::Extrapolated`]); otherwise only the upper bound is known
//!    ([`Unknown::AllTrainsRising`]).
//!
//! Without a rising train and without busy periods the application never sent faster than
//! the path carries: [`Unknown::AllTrainsFlat`] with its lower bound. Too many trains on the
//! wrong side of every cut (more than [`Params::max_misjudged`]) is
//! [`Unknown::Inconsistent`], unless the cross-traffic reading exists.
//!
//! **Throughput**: the bytes the path carried over the window (as received when the
//! receiver's records are there, as sent otherwise), per second, with a Student's t interval
//! over [`Params::throughput_bin_ns`] bins.
//!
//! **Round-trip time**, the latency figure, from two sources:
//! - *one-way delays both ways*: the filtered minimum of each direction's delays (drift
//!   removed, both taken at one instant) summed: the two clocks' offsets cancel;
//! - *keepalives*: a host's keepalive to its peer and the peer's echo, both in the host's own
//!   capture (one clock), paired only when unambiguous (one keepalive outstanding).
//!
//! The one-way delays win when both exist (they are many and carry no daemon turnaround).
//! "Filtered minimum": the sample at rank `n / 50` (the minimum below 50 samples), so that a
//! few broken records cannot pull it down; the interval reaches up to the 10th percentile.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::record::{Direction, MsgType, Record};
use crate::stats::{count, f_quantile, mean_interval, median, quantile};
use crate::train::{
    busy_cross_traffic, capacity, drift, match_records, trains, Sample, Train, TrainParams, Trend,
};

/// The estimator's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// How trains are found and judged.
    pub train: TrainParams,
    /// Records older than this are forgotten (ns).
    pub window_ns: i64,
    /// How far a capture's clock may be from the caller's (ns): records further in the future
    /// are refused, and the window keeps this much more in the past. Only windows and ages
    /// use it; delays are offset-free whatever the clocks do.
    pub clock_tolerance_ns: i64,
    /// Fewest trains with a sending rate for an available bandwidth.
    pub min_trains: usize,
    /// The largest fraction of trains a bracket may misjudge.
    pub max_misjudged: f64,
    /// Fastest over slowest rising train's rate needed to extrapolate without flat trains.
    pub min_rate_spread: f64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Bin of the throughput's interval (ns).
    pub throughput_bin_ns: i64,
    /// Most records kept per directed path (the oldest go first beyond it).
    pub max_records_per_path: usize,
    /// Fewest samples for a round-trip time from one-way delays, per direction.
    pub min_rtt_samples: usize,
    /// Least busy time (ns) over which cross traffic must be measured before it gives an
    /// available bandwidth.
    pub min_busy_ns: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            train: TrainParams::default(),
            window_ns: 10_000_000_000,
            clock_tolerance_ns: 2_000_000_000,
            min_trains: 5,
            max_misjudged: 0.25,
            min_rate_spread: 1.5,
            confidence: 0.95,
            throughput_bin_ns: 1_000_000_000,
            max_records_per_path: 1 << 19,
            min_rtt_samples: 10,
            min_busy_ns: 20_000_000,
        }
    }
}

/// A parameter that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad estimator parameter: {0}")]
pub struct ParamsError(&'static str);

impl Params {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ParamsError`] naming the first parameter out of range.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let t = &self.train;
        let checks: [(bool, &'static str); 12] = [
            (self.window_ns > 0, "window must be positive"),
            (
                self.clock_tolerance_ns >= 0,
                "clock tolerance must not be negative",
            ),
            (self.min_trains >= 2, "min_trains must be at least 2"),
            (
                (0.0..1.0).contains(&self.max_misjudged),
                "max_misjudged must be in 0..1",
            ),
            (
                self.min_rate_spread >= 1.0,
                "min_rate_spread must be at least 1",
            ),
            (
                (0.5..1.0).contains(&self.confidence),
                "confidence must be in 0.5..1",
            ),
            (
                self.throughput_bin_ns > 0,
                "throughput bin must be positive",
            ),
            (
                self.max_records_per_path > 0,
                "max_records_per_path must be positive",
            ),
            (
                t.min_packets >= 3 && t.max_packets >= t.min_packets,
                "train lengths",
            ),
            (
                t.max_gap_ns > 0 && t.min_duration_ns >= 0,
                "train gap and duration",
            ),
            (
                t.rising_slope.is_finite() && t.rising_slope > 0.0,
                "rising slope must be positive",
            ),
            (
                t.max_drift.is_finite()
                    && t.max_drift >= 0.0
                    && (0.5..1.0).contains(&t.confidence)
                    && t.drift_bin_ns > 0
                    && t.max_owd_spread_ns > 0,
                "drift, confidence, spread",
            ),
        ];
        match checks.iter().find(|c| !c.0) {
            Some((_, what)) => Err(ParamsError(what)),
            None => Ok(()),
        }
    }
}

/// A directed host pair: traffic from `src`'s daemon to `dst`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Path {
    /// The sending daemon (IP and port).
    pub src: SocketAddr,
    /// The receiving daemon.
    pub dst: SocketAddr,
}

impl Path {
    /// The other direction.
    pub fn reverse(self) -> Path {
        Path {
            src: self.dst,
            dst: self.src,
        }
    }
}

/// How an estimate was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The capacity (from batches' dispersion) less the cross traffic measured while the
    /// bottleneck was busy with the path's own datagrams.
    CrossTraffic,
    /// The fit, held within a two-sided bracket.
    Bracket,
    /// The fit of rising trains alone, extrapolated below the slowest.
    Extrapolated,
    /// Bytes counted over the window.
    Counted,
    /// One-way delays both ways.
    OneWayDelays,
    /// Keepalives and their echoes.
    Keepalives,
}

/// A number with its interval and age.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The value, in the unit of its field (bit/s for bandwidths, s for times).
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// The interval's confidence level (the bracket part of an available bandwidth is not a
    /// statistical bound, so read it as the level of the fit within it).
    pub confidence: f64,
    /// What it rests on: trains, bins or samples.
    pub samples: usize,
    /// Seconds between the newest evidence and the report.
    pub age_s: f64,
    /// How it was made.
    pub method: Method,
}

/// Why there is no number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unknown {
    /// No record of this path in the window.
    NoTraffic,
    /// Records from one end only (or records that did not match): the other host's capture
    /// is missing, or was not running.
    OneEndOnly {
        /// Datagrams the sender's capture saw.
        sent: usize,
        /// Datagrams the receiver's capture saw.
        received: usize,
    },
    /// Traffic, but too few trains (too sparse, too short, or all sent in one instant).
    TooFewTrains {
        /// Trains with a sending rate.
        trains: usize,
        /// Trains needed.
        needed: usize,
    },
    /// Every train's delays stayed flat: the application never sent faster than the path
    /// carries; the available bandwidth is at least this.
    AllTrainsFlat {
        /// The fastest flat train's rate (bit/s), a lower bound.
        at_least_bps: f64,
    },
    /// Every train's delays rose, at too similar rates to extrapolate; the available
    /// bandwidth is below this.
    AllTrainsRising {
        /// The slowest rising train's rate (bit/s), an upper bound.
        at_most_bps: f64,
    },
    /// The trains contradict each other (flat ones faster than rising ones, too many).
    Inconsistent {
        /// Trains on the wrong side of the best cut.
        misjudged: usize,
        /// Trains judged.
        trains: usize,
    },
    /// Observed for too short a time for an interval.
    TooShort {
        /// Seconds observed.
        observed_s: f64,
    },
    /// No round-trip sample: no two-way traffic seen at both ends and no keepalive pair.
    NoRttSamples,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unknown::NoTraffic => f.write_str("no traffic on this path"),
            Unknown::OneEndOnly { sent, received } => write!(
                f,
                "records from one end only ({sent} sent, {received} received, none matched)"
            ),
            Unknown::TooFewTrains { trains, needed } => {
                write!(f, "{trains} trains, {needed} needed")
            }
            Unknown::AllTrainsFlat { at_least_bps } => write!(
                f,
                "no train was sent faster than the path carries: at least {at_least_bps:.0} bit/s"
            ),
            Unknown::AllTrainsRising { at_most_bps } => write!(
                f,
                "every train was faster than the path carries: at most {at_most_bps:.0} bit/s"
            ),
            Unknown::Inconsistent { misjudged, trains } => {
                write!(f, "{misjudged} of {trains} trains contradict the others")
            }
            Unknown::TooShort { observed_s } => write!(f, "observed for {observed_s:.2} s only"),
            Unknown::NoRttSamples => f.write_str("no round-trip sample"),
        }
    }
}

/// A measurement: a number, or why there is none. Never a made-up number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Measure {
    /// Measured.
    Known(Estimate),
    /// Not measurable now.
    Unknown {
        /// Why.
        #[serde(flatten)]
        why: Unknown,
    },
}

impl Measure {
    fn unknown(why: Unknown) -> Measure {
        Measure::Unknown { why }
    }

    /// The estimate, if known.
    pub fn known(&self) -> Option<&Estimate> {
        match self {
            Measure::Known(e) => Some(e),
            Measure::Unknown { .. } => None,
        }
    }
}

/// Trains of a path by verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrainCounts {
    /// Flat.
    pub flat: usize,
    /// Rising.
    pub rising: usize,
    /// Ambiguous.
    pub ambiguous: usize,
    /// Bursts (no sending rate).
    pub bursts: usize,
}

/// What the path's records were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Distinct datagrams the sender's capture saw.
    pub sent: usize,
    /// Distinct datagrams the receiver's capture saw.
    pub received: usize,
    /// Matched (seen at both ends).
    pub matched: usize,
    /// Duplicate records dropped.
    pub duplicates: usize,
    /// Matched samples dropped as broken.
    pub outliers: usize,
}

/// Everything Wren knows about one directed path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathEstimate {
    /// The path.
    pub path: Path,
    /// Available bandwidth (bit/s of Ethernet frames).
    pub available_bps: Measure,
    /// Observed throughput (bit/s of Ethernet frames).
    pub throughput_bps: Measure,
    /// Round-trip time between the two daemons (s); the same on both directions.
    pub rtt_s: Measure,
    /// The bracket's ends (bit/s), where trains gave them.
    pub at_least_bps: Option<f64>,
    /// The bracket's upper end.
    pub at_most_bps: Option<f64>,
    /// The capacity the fit or the bursts suggest (bit/s), a rough figure without interval.
    pub capacity_bps: Option<f64>,
    /// Trains by verdict.
    pub trains: TrainCounts,
    /// Records.
    pub records: RecordCounts,
    /// The clock drift removed (dimensionless, e.g. 1e-4 = 100 ppm).
    pub drift: f64,
}

/// What ingestion refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IngestStats {
    /// Records kept.
    pub accepted: u64,
    /// Refused: timestamp beyond now plus the clock tolerance.
    pub future: u64,
    /// Refused: older than the window.
    pub stale: u64,
    /// Dropped: over the per-path bound.
    pub overflow: u64,
}

/// A report: every path the estimator knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When (the caller's clock, ns since the epoch).
    pub at_ns: i64,
    /// Per directed path.
    pub paths: Vec<PathEstimate>,
    /// Ingestion's counters.
    pub ingest: IngestStats,
}

/// Keeps a window of records per directed path and estimates from it.
#[derive(Debug, Clone)]
pub struct Estimator {
    params: Params,
    paths: BTreeMap<Path, Vec<Record>>,
    started_ns: Option<i64>,
    ingest: IngestStats,
}

impl Estimator {
    /// An empty estimator.
    ///
    /// # Errors
    /// [`ParamsError`] for parameters that cannot work.
    pub fn new(params: Params) -> Result<Self, ParamsError> {
        params.validate()?;
        Ok(Estimator {
            params,
            paths: BTreeMap::new(),
            started_ns: None,
            ingest: IngestStats::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Reports on `path` even while it carries nothing (as [`Unknown::NoTraffic`]): a path
    /// the overlay has, e.g. every host's star link to the Proxy.
    pub fn watch(&mut self, path: Path) {
        self.paths.entry(path).or_default();
    }

    /// Takes records (from any capture, in any order, duplicates and all) at `now_ns`.
    pub fn ingest(&mut self, now_ns: i64, records: impl IntoIterator<Item = Record>) {
        self.started_ns.get_or_insert(now_ns);
        let p = self.params;
        let newest = now_ns.saturating_add(p.clock_tolerance_ns);
        let oldest = now_ns
            .saturating_sub(p.window_ns)
            .saturating_sub(p.clock_tolerance_ns);
        for r in records {
            if r.t_ns > newest {
                self.ingest.future += 1;
                continue;
            }
            if r.t_ns < oldest {
                self.ingest.stale += 1;
                continue;
            }
            let v = self
                .paths
                .entry(Path {
                    src: r.src,
                    dst: r.dst,
                })
                .or_default();
            if v.len() >= p.max_records_per_path {
                // Drop the older half at once: amortised constant time per record.
                let half = v.len() / 2;
                v.drain(..half.max(1));
                self.ingest.overflow += u64::try_from(half.max(1)).unwrap_or(u64::MAX);
            }
            v.push(r);
            self.ingest.accepted += 1;
        }
    }

    /// Forgets records older than the window and reports on every path.
    pub fn report(&mut self, now_ns: i64) -> Report {
        let p = self.params;
        let oldest = now_ns
            .saturating_sub(p.window_ns)
            .saturating_sub(p.clock_tolerance_ns);
        for v in self.paths.values_mut() {
            v.retain(|r| r.t_ns >= oldest);
        }
        let started = self.started_ns.unwrap_or(now_ns);
        let empty = Vec::new();
        let paths = self
            .paths
            .iter()
            .map(|(path, records)| {
                let reverse = self.paths.get(&path.reverse()).unwrap_or(&empty);
                estimate_path(*path, records, reverse, now_ns, started, &p)
            })
            .collect();
        Report {
            at_ns: now_ns,
            paths,
            ingest: self.ingest,
        }
    }
}

fn age_s(now_ns: i64, t_ns: i64) -> f64 {
    (now_ns.saturating_sub(t_ns).max(0)) as f64 * 1e-9
}

/// Estimates one directed path from its records (`records`: src → dst, either capture) and
/// those of its reverse (for the round-trip time), at `now_ns`, having observed since
/// `started_ns`.
pub fn estimate_path(
    path: Path,
    records: &[Record],
    reverse: &[Record],
    now_ns: i64,
    started_ns: i64,
    params: &Params,
) -> PathEstimate {
    let tp = &params.train;
    let matched = match_records(records, tp.max_owd_spread_ns);
    let d = drift(&matched.samples, tp);
    let ts = trains(&matched.samples, &matched.lost_ns, d, tp);
    let pairs = capacity(&matched.samples);
    let mut counts = TrainCounts::default();
    for t in &ts {
        match t.trend {
            Trend::Flat => counts.flat += 1,
            Trend::Rising => counts.rising += 1,
            Trend::Ambiguous => counts.ambiguous += 1,
            Trend::Burst => counts.bursts += 1,
        }
    }
    let available = if records.is_empty() {
        Available::unknown(Unknown::NoTraffic)
    } else if matched.samples.is_empty() {
        Available::unknown(Unknown::OneEndOnly {
            sent: matched.tx,
            received: matched.rx,
        })
    } else {
        let busy = pairs
            .map(|(c, _, _)| busy_cross_traffic(&matched.samples, &ts, d, c))
            .unwrap_or_else(|| vec![None; ts.len()]);
        available(&ts, &busy, pairs.map(|p| (p.0, p.1)), now_ns, params)
    };
    let reverse_matched = match_records(reverse, tp.max_owd_spread_ns);
    let rtt = rtt(
        &matched.samples,
        d,
        &reverse_matched.samples,
        drift(&reverse_matched.samples, tp),
        records,
        reverse,
        now_ns,
        params,
    );
    let capacity_bps = pairs.map(|p| p.0).or(available.capacity).or_else(|| {
        let mut r: Vec<f64> = ts
            .iter()
            .filter(|t| t.trend == Trend::Burst)
            .filter_map(|t| t.out_rate_bps)
            .collect();
        median(&mut r)
    });
    PathEstimate {
        path,
        available_bps: available.measure,
        throughput_bps: throughput(records, now_ns, started_ns, params),
        rtt_s: rtt,
        at_least_bps: available.at_least,
        at_most_bps: available.at_most,
        capacity_bps,
        trains: counts,
        records: RecordCounts {
            sent: matched.tx,
            received: matched.rx,
            matched: matched.samples.len(),
            duplicates: matched.duplicates,
            outliers: matched.outliers,
        },
        drift: d,
    }
}

struct Available {
    measure: Measure,
    at_least: Option<f64>,
    at_most: Option<f64>,
    capacity: Option<f64>,
}

impl Available {
    fn unknown(why: Unknown) -> Self {
        Available {
            measure: Measure::unknown(why),
            at_least: None,
            at_most: None,
            capacity: None,
        }
    }
}

/// The hinge fit of slope against rate: `slope = b max(0, rate - a)`.
#[derive(Debug, Clone, Copy)]
struct Hinge {
    a: f64,
    b: f64,
    low: f64,
    high: f64,
}

fn hinge_sse(points: &[(f64, f64)], a: f64) -> (f64, f64) {
    let (mut sh, mut shh, mut ss) = (0.0, 0.0, 0.0);
    for &(r, s) in points {
        let h = (r - a).max(0.0);
        sh += s * h;
        shh += h * h;
        ss += s * s;
    }
    if shh <= 0.0 || sh <= 0.0 {
        return (0.0, ss);
    }
    let b = sh / shh;
    // Σ (s - b h)^2 = Σ s² - 2 b Σ s h + b² Σ h² = Σ s² - (Σ s h)² / Σ h².
    (b, (ss - sh * b).max(0.0))
}

fn hinge(points: &[(f64, f64)], confidence: f64) -> Option<Hinge> {
    let n = points.len();
    if n < 4 {
        return None;
    }
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0).fold(0.0, f64::max);
    if !(lo.is_finite() && lo > 0.0 && hi > lo) {
        return None;
    }
    // A log grid from a quarter of the slowest rate to the fastest (about 1 % steps).
    let start = lo / 4.0;
    let steps = 400u32;
    let ratio = (hi / start).powf(1.0 / f64::from(steps));
    let grid: Vec<(f64, f64, f64)> = (0..=steps)
        .map(|i| {
            let a = start * ratio.powi(i32::try_from(i).unwrap_or(0));
            let (b, sse) = hinge_sse(points, a);
            (a, b, sse)
        })
        .filter(|g| g.1 > 0.0 && g.2.is_finite())
        .collect();
    let best = grid.iter().copied().min_by(|x, y| x.2.total_cmp(&y.2))?;
    let dof = count(n) - 2.0;
    let f = f_quantile(1.0, dof, confidence)?;
    let bound = best.2 * (1.0 + f / dof);
    let within = grid.iter().filter(|g| g.2 <= bound);
    let low = within.clone().map(|g| g.0).fold(f64::INFINITY, f64::min);
    let high = within.map(|g| g.0).fold(0.0, f64::max);
    (best.0.is_finite() && low <= best.0 && best.0 <= high).then_some(Hinge {
        a: best.0,
        b: best.1,
        low,
        high,
    })
}

/// The available bandwidth from the cross traffic measured in busy periods
/// ([`busy_cross_traffic`]): `C` less the trains' busy-time-weighted mean cross traffic, and
/// a Student's t interval over the trains (weighted, with their effective number).
fn gap_model(
    busy: &[Option<(f64, f64)>],
    c: (f64, f64),
    min_busy_ns: f64,
    confidence: f64,
) -> Option<(f64, f64, f64)> {
    let v: Vec<(f64, f64)> = busy
        .iter()
        .flatten()
        .copied()
        .filter(|x| x.0.is_finite())
        .collect();
    let sw: f64 = v.iter().map(|x| x.1).sum();
    if v.is_empty() || sw < min_busy_ns {
        return None;
    }
    let sw2: f64 = v.iter().map(|x| x.1 * x.1).sum();
    let mean = v.iter().map(|x| x.0 * x.1).sum::<f64>() / sw;
    let a = c.0 - mean.max(0.0);
    // One train: no spread to judge by; the capacity's interval only.
    let half_x = if v.len() >= 2 {
        let var = v.iter().map(|x| x.1 * (x.0 - mean).powi(2)).sum::<f64>() / sw;
        let n_eff = sw * sw / sw2;
        crate::stats::t_quantile((n_eff - 1.0).max(1.0), confidence)? * (var / n_eff).sqrt()
    } else {
        0.0
    };
    let half = (half_x * half_x + c.1 * c.1).sqrt();
    (a.is_finite() && half.is_finite() && a > 0.0).then_some((a, (a - half).max(0.0), a + half))
}

fn available(
    trains: &[Train],
    busy: &[Option<(f64, f64)>],
    capacity: Option<(f64, f64)>,
    now_ns: i64,
    params: &Params,
) -> Available {
    let rated: Vec<(f64, &Train)> = trains
        .iter()
        .filter_map(|t| {
            t.rate_bps
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| (r, t))
        })
        .collect();
    if rated.len() < params.min_trains {
        return Available::unknown(Unknown::TooFewTrains {
            trains: rated.len(),
            needed: params.min_trains,
        });
    }
    let newest = rated.iter().map(|(_, t)| t.end_ns).max().unwrap_or(now_ns);
    let age = age_s(now_ns, newest);
    // The bracket: judged trains by rate, the cut that misjudges the fewest.
    let mut judged: Vec<(f64, bool, &Train)> = rated
        .iter()
        .filter_map(|(r, t)| match t.trend {
            Trend::Flat => Some((*r, false, *t)),
            Trend::Rising => Some((*r, true, *t)),
            _ => None,
        })
        .collect();
    judged.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rising_total = judged.iter().filter(|j| j.1).count();
    let flat_total = judged.len() - rising_total;
    let known = |value: f64, low: f64, high: f64, method| {
        Measure::Known(Estimate {
            value,
            low,
            high,
            confidence: params.confidence,
            samples: rated.len(),
            age_s: age,
            method,
        })
    };
    // The cross traffic seen in busy periods, where the capacity is known.
    let gap =
        capacity.and_then(|c| gap_model(busy, c, params.min_busy_ns as f64, params.confidence));
    if rising_total == 0 {
        let at_least = rated.iter().map(|(r, _)| *r).fold(0.0, f64::max);
        let mut a = Available::unknown(Unknown::AllTrainsFlat {
            at_least_bps: at_least,
        });
        if let Some((v, lo, hi)) = gap {
            a.measure = known(v, lo, hi, Method::CrossTraffic);
        }
        a.at_least = Some(at_least);
        return a;
    }
    // errors(k): rising trains among the first k plus flat ones among the rest.
    let mut errors = Vec::with_capacity(judged.len() + 1);
    let mut rising_before = 0;
    for k in 0..=judged.len() {
        let flat_before = k - rising_before;
        errors.push(rising_before + (flat_total - flat_before));
        if let Some(j) = judged.get(k) {
            rising_before += usize::from(j.1);
        }
    }
    let min_err = errors.iter().copied().min().unwrap_or(0);
    let best: Vec<usize> = (0..errors.len())
        .filter(|&k| errors[k] == min_err)
        .collect();
    let (k_lo, k_hi) = (best[0], best[best.len() - 1]);
    let inconsistent = count(min_err) > params.max_misjudged * count(judged.len());
    if inconsistent && gap.is_none() {
        return Available::unknown(Unknown::Inconsistent {
            misjudged: min_err,
            trains: judged.len(),
        });
    }
    // Below the lowest best cut: the fastest flat train; above the highest: the slowest
    // rising one.
    let at_least = judged[..k_lo]
        .iter()
        .filter(|j| !j.1)
        .map(|j| j.0)
        .reduce(f64::max);
    let at_most = judged[k_hi..]
        .iter()
        .filter(|j| j.1)
        .map(|j| j.0)
        .reduce(f64::min);
    let points: Vec<(f64, f64)> = rated
        .iter()
        .filter(|(_, t)| t.lost == 0)
        .map(|(r, t)| (*r, t.slope))
        .collect();
    let hinge_fit = hinge(&points, params.confidence);
    let fit_capacity = hinge_fit.and_then(|h| (h.b > 0.0).then(|| 1.0 / h.b));
    let fit = hinge_fit;
    let measure = match (at_least, at_most) {
        _ if gap.is_some() => {
            let (v, lo, hi) = gap.unwrap_or_default();
            known(v, lo, hi, Method::CrossTraffic)
        }
        (Some(lo), Some(hi)) if lo <= hi => {
            let (value, low, high) = match fit {
                Some(h) => {
                    let v = h.a.clamp(lo, hi);
                    let (l, u) = (h.low.max(lo), h.high.min(hi));
                    if l <= v && v <= u {
                        (v, l, u)
                    } else {
                        (v, lo, hi)
                    }
                }
                None => ((lo + hi) / 2.0, lo, hi),
            };
            known(value, low, high, Method::Bracket)
        }
        (_, Some(hi)) => {
            let rising: Vec<f64> = rated
                .iter()
                .filter(|(_, t)| t.trend == Trend::Rising)
                .map(|(r, _)| *r)
                .collect();
            let slowest = rising.iter().copied().fold(f64::INFINITY, f64::min);
            let fastest = rising.iter().copied().fold(0.0, f64::max);
            match fit {
                Some(h)
                    if rising.len() >= 3
                        && fastest >= params.min_rate_spread * slowest
                        && h.a > 0.0
                        && h.a <= hi =>
                {
                    known(h.a, h.low, h.high.min(hi), Method::Extrapolated)
                }
                _ => Measure::unknown(Unknown::AllTrainsRising { at_most_bps: hi }),
            }
        }
        (lo, _) => {
            let at_least = lo.unwrap_or(0.0);
            Measure::unknown(Unknown::AllTrainsFlat {
                at_least_bps: at_least,
            })
        }
    };
    Available {
        measure,
        at_least,
        at_most,
        capacity: fit_capacity,
    }
}

fn throughput(records: &[Record], now_ns: i64, started_ns: i64, params: &Params) -> Measure {
    if records.is_empty() {
        return Measure::unknown(Unknown::NoTraffic);
    }
    let received = records.iter().any(|r| r.dir == Direction::Rx);
    let dir = if received {
        Direction::Rx
    } else {
        Direction::Tx
    };
    let bin = params.throughput_bin_ns;
    let from = now_ns.saturating_sub(params.window_ns).max(started_ns);
    let observed = now_ns.saturating_sub(from).max(0);
    let bins = usize::try_from(observed / bin).unwrap_or(0);
    if bins < 2 {
        return Measure::unknown(Unknown::TooShort {
            observed_s: observed as f64 * 1e-9,
        });
    }
    // Records are deduplicated by datagram; bins count back from now.
    let mut seen: Vec<(u64, u64, i64, u32)> = records
        .iter()
        .filter(|r| r.dir == dir)
        .map(|r| (r.session, r.seq, r.t_ns, r.len))
        .collect();
    seen.sort_unstable();
    seen.dedup_by_key(|k| (k.0, k.1));
    let mut bytes = vec![0u64; bins];
    let mut newest = i64::MIN;
    for &(_, _, t, len) in &seen {
        let back = now_ns.saturating_sub(t);
        if back < 0 {
            continue;
        }
        if let Some(b) = usize::try_from(back / bin)
            .ok()
            .and_then(|i| bytes.get_mut(i))
        {
            *b += u64::from(len);
            newest = newest.max(t);
        }
    }
    let secs = bin as f64 * 1e-9;
    let rates: Vec<f64> = bytes.iter().map(|b| *b as f64 * 8.0 / secs).collect();
    let Some((mean, half)) = mean_interval(&rates, params.confidence) else {
        return Measure::unknown(Unknown::TooShort {
            observed_s: observed as f64 * 1e-9,
        });
    };
    Measure::Known(Estimate {
        value: mean,
        low: (mean - half).max(0.0),
        high: mean + half,
        confidence: params.confidence,
        samples: bins,
        age_s: if newest == i64::MIN {
            age_s(now_ns, from)
        } else {
            age_s(now_ns, newest)
        },
        method: Method::Counted,
    })
}

/// The filtered minimum and the 10th percentile of `values`.
fn filtered_min(values: &mut [f64]) -> Option<(f64, f64)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let q = count(n / 50) / count(n.saturating_sub(1).max(1));
    let min = quantile(values, q)?;
    let p10 = quantile(values, 0.1)?.max(min);
    Some((min, p10))
}

/// One direction's delays taken at `t_ref` with the drift removed (ns).
fn delays_at(samples: &[Sample], drift: f64, t_ref: i64) -> Vec<f64> {
    samples
        .iter()
        .map(|s| s.owd() as f64 - drift * (s.tx_ns.saturating_sub(t_ref)) as f64)
        .collect()
}

/// Keepalive round trips seen by one host: its keepalives to the peer (`out`, `Tx`
/// keepalives) and the peer's echoes (`back`, `Rx` echoes), paired when exactly one
/// keepalive was outstanding.
fn keepalive_rtts(out: &[Record], back: &[Record], into: &mut Vec<(f64, i64)>) {
    let mut sent: Vec<i64> = out
        .iter()
        .filter(|r| r.dir == Direction::Tx && r.msg == MsgType::Keepalive)
        .map(|r| r.t_ns)
        .collect();
    let mut echoes: Vec<i64> = back
        .iter()
        .filter(|r| r.dir == Direction::Rx && r.msg == MsgType::KeepaliveEcho)
        .map(|r| r.t_ns)
        .collect();
    sent.sort_unstable();
    sent.dedup();
    echoes.sort_unstable();
    echoes.dedup();
    let mut i = 0;
    let mut prev_echo = i64::MIN;
    for &e in &echoes {
        // Keepalives sent after the previous echo and before this one.
        while i < sent.len() && sent[i] <= prev_echo {
            i += 1;
        }
        let first = i;
        while i < sent.len() && sent[i] < e {
            i += 1;
        }
        if i - first == 1 {
            into.push(((e - sent[first]) as f64 * 1e-9, e));
        }
        prev_echo = e;
    }
}

#[allow(clippy::too_many_arguments)]
fn rtt(
    forward: &[Sample],
    forward_drift: f64,
    backward: &[Sample],
    backward_drift: f64,
    records: &[Record],
    reverse: &[Record],
    now_ns: i64,
    params: &Params,
) -> Measure {
    let n = params.min_rtt_samples;
    if forward.len() >= n && backward.len() >= n {
        let t_ref = now_ns.saturating_sub(params.window_ns / 2);
        let mut f = delays_at(forward, forward_drift, t_ref);
        let mut b = delays_at(backward, backward_drift, t_ref);
        if let (Some((fmin, fp10)), Some((bmin, bp10))) =
            (filtered_min(&mut f), filtered_min(&mut b))
        {
            let value = (fmin + bmin) * 1e-9;
            if value.is_finite() && value > 0.0 {
                let newest = forward
                    .iter()
                    .chain(backward)
                    .map(|s| s.tx_ns)
                    .max()
                    .unwrap_or(now_ns);
                return Measure::Known(Estimate {
                    value,
                    low: value,
                    high: (fp10 + bp10) * 1e-9,
                    confidence: params.confidence,
                    samples: forward.len().min(backward.len()),
                    age_s: age_s(now_ns, newest),
                    method: Method::OneWayDelays,
                });
            }
        }
    }
    // Keepalives from either end: src's to dst and dst's echoes (src's capture), and
    // dst's to src and src's echoes (dst's capture).
    let mut samples = Vec::new();
    keepalive_rtts(records, reverse, &mut samples);
    keepalive_rtts(reverse, records, &mut samples);
    samples.retain(|s| s.0.is_finite() && s.0 > 0.0);
    if samples.is_empty() {
        return Measure::unknown(Unknown::NoRttSamples);
    }
    let newest = samples.iter().map(|s| s.1).max().unwrap_or(now_ns);
    let mut v: Vec<f64> = samples.iter().map(|s| s.0).collect();
    match filtered_min(&mut v) {
        Some((min, p10)) => Measure::Known(Estimate {
            value: min,
            low: min,
            high: p10,
            confidence: params.confidence,
            samples: v.len(),
            age_s: age_s(now_ns, newest),
            method: Method::Keepalives,
        }),
        None => Measure::unknown(Unknown::NoRttSamples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_params_are_valid_and_bad_ones_refused() {
        assert!(Params::default().validate().is_ok());
        let bad = Params {
            confidence: 1.5,
            ..Params::default()
        };
        assert!(Estimator::new(bad).is_err());
        let bad = Params {
            train: TrainParams {
                rising_slope: f64::NAN,
                ..TrainParams::default()
            },
            ..Params::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_hinge_finds_the_knee() {
        // slope = max(0, (r - 5e6) / 10e6)
        let pts: Vec<(f64, f64)> = (1..20)
            .map(|i| {
                let r = f64::from(i) * 1e6;
                (r, ((r - 5e6) / 10e6).max(0.0))
            })
            .collect();
        let h = hinge(&pts, 0.95).unwrap();
        assert!((h.a - 5e6).abs() / 5e6 < 0.02, "{h:?}");
        assert!((1.0 / h.b - 10e6).abs() / 10e6 < 0.05);
        assert!(h.low <= h.a && h.a <= h.high);
    }

    #[test]
    fn keepalive_pairs_only_when_unambiguous() {
        let a: SocketAddr = "10.0.0.1:5400".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5400".parse().unwrap();
        let r = |dir, src, dst, msg, t_ns| Record {
            t_ns,
            dir,
            src,
            dst,
            len: 100,
            msg,
            session: 1,
            seq: 0,
            batch: 0,
        };
        let out = vec![
            r(Direction::Tx, a, b, MsgType::Keepalive, 0),
            r(Direction::Tx, a, b, MsgType::Keepalive, 1_000_000_000),
            r(Direction::Tx, a, b, MsgType::Keepalive, 1_100_000_000),
        ];
        let back = vec![
            r(Direction::Rx, b, a, MsgType::KeepaliveEcho, 60_000_000),
            // Two outstanding: ambiguous, no sample.
            r(Direction::Rx, b, a, MsgType::KeepaliveEcho, 1_150_000_000),
        ];
        let mut s = Vec::new();
        keepalive_rtts(&out, &back, &mut s);
        assert_eq!(s.len(), 1);
        assert!((s[0].0 - 0.06).abs() < 1e-9);
    }
}

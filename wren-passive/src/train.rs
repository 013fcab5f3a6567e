//! From records to trains: matching the two ends' records of one directed path, removing
//! clock drift, cutting the samples into trains, and per train its sending rate and the trend
//! of its one-way delays. Pure code.
//!
//! **Matching.** The sender's capture makes a [`Direction::Tx`] record of a datagram, the
//! receiver's a [`Direction::Rx`] one; both carry `(session, seq)`, which names the datagram
//! on its path. Duplicates (a datagram captured twice, or duplicated by the network) keep
//! their earliest time; records of one end without a partner (lost, outside the window, or
//! the other end not capturing) are left out. A [`Sample`] is a matched pair.
//!
//! **Clocks.** `owd = rx - tx` mixes the path's delay with the offset between the two clocks
//! and its drift (linear in time, some ppm). Nothing here needs the offset: trends are
//! differences within a train. The drift is estimated over the whole window as the
//! Theil–Sen slope of the per-bin minimum of `owd` against time (the minimum is where the
//! queue was empty, so it moves only with the clocks), bounded by
//! [`TrainParams::max_drift`], and removed. Samples whose `owd` is more than
//! [`TrainParams::max_owd_spread_ns`] from the median are dropped as broken (a clock step, a
//! forged or corrupt record).
//!
//! **Trains.** Samples sorted by send time are cut where the sender paused longer than
//! [`TrainParams::max_gap_ns`], and into pieces of at most [`TrainParams::max_packets`];
//! pieces of fewer than [`TrainParams::min_packets`] are not trains. A train's *sending
//! rate* is its bytes but those of its last send instant over its send duration (datagrams
//! of a batch share one instant, so a train sent as one batch has none: a
//! [`Trend::Burst`], which tells the path's capacity by its dispersion at the receiver, not
//! its available bandwidth). Its *trend* is the least-squares slope of one-way delay against
//! send time, with a confidence interval (Student's t): in the fluid model of a FIFO
//! bottleneck of capacity `C` carrying cross traffic `X`, a train sent at `R` leaves at
//! `C R / (R + X)` when `R > A = C - X`, so its delays rise with slope `(R - A) / C`, and not
//! at all when `R <= A`.

use crate::record::{Direction, Record};
use crate::stats::{median, ols, theil_sen};

/// One datagram seen at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was sent, in the sender's clock (ns).
    pub tx_ns: i64,
    /// When it arrived, in the receiver's clock (ns).
    pub rx_ns: i64,
    /// Bytes on the wire.
    pub len: u32,
    /// Its sequence number.
    pub seq: u64,
}

impl Sample {
    /// The one-way delay in the two clocks (offset included), ns.
    pub fn owd(&self) -> i64 {
        self.rx_ns.saturating_sub(self.tx_ns)
    }
}

/// The matched samples of one directed path, and what did not match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matched {
    /// Matched samples, by send time (then sequence number).
    pub samples: Vec<Sample>,
    /// Distinct sent datagrams.
    pub tx: usize,
    /// Distinct received datagrams.
    pub rx: usize,
    /// Duplicate records dropped (both ends).
    pub duplicates: usize,
    /// Matched samples dropped as broken (their delay far from the others').
    pub outliers: usize,
    /// Send times of datagrams sent while the receiver was capturing (between the first and
    /// the last matched send) that never arrived: lost, sorted.
    pub lost_ns: Vec<i64>,
}

fn dedupe(records: &[Record], dir: Direction) -> (Vec<(u64, u64, i64, u32)>, usize) {
    let mut keys: Vec<(u64, u64, i64, u32)> = records
        .iter()
        .filter(|r| r.dir == dir)
        .map(|r| (r.session, r.seq, r.t_ns, r.len))
        .collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup_by_key(|k| (k.0, k.1));
    let dups = before - keys.len();
    (keys, dups)
}

/// Matches a path's sent and received records (each slice may hold either direction; only
/// `Tx` records count as sent and `Rx` as received), dropping samples whose delay is more
/// than `max_owd_spread_ns` from the median.
pub fn match_records(records: &[Record], max_owd_spread_ns: i64) -> Matched {
    let (tx, dup_tx) = dedupe(records, Direction::Tx);
    let (rx, dup_rx) = dedupe(records, Direction::Rx);
    let mut samples = Vec::with_capacity(tx.len().min(rx.len()));
    let mut unmatched = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < tx.len() && j < rx.len() {
        let (a, b) = (&tx[i], &rx[j]);
        match (a.0, a.1).cmp(&(b.0, b.1)) {
            std::cmp::Ordering::Less => {
                unmatched.push(a.2);
                i += 1;
            }
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                samples.push(Sample {
                    tx_ns: a.2,
                    rx_ns: b.2,
                    len: a.3,
                    seq: a.1,
                });
                i += 1;
                j += 1;
            }
        }
    }
    let mut owds: Vec<f64> = samples.iter().map(|s| s.owd() as f64).collect();
    let mut outliers = 0;
    if let Some(mid) = median(&mut owds) {
        let before = samples.len();
        samples.retain(|s| (s.owd() as f64 - mid).abs() <= max_owd_spread_ns as f64);
        outliers = before - samples.len();
    }
    samples.sort_unstable_by_key(|s| (s.tx_ns, s.seq));
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (f.tx_ns, l.tx_ns),
        _ => (0, -1),
    };
    let mut lost_ns: Vec<i64> = unmatched
        .into_iter()
        .filter(|t| (first..=last).contains(t))
        .collect();
    lost_ns.sort_unstable();
    Matched {
        samples,
        tx: tx.len(),
        rx: rx.len(),
        duplicates: dup_tx + dup_rx,
        outliers,
        lost_ns,
    }
}

/// How trains are found and judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainParams {
    /// A pause of the sender longer than this ends a train (ns).
    pub max_gap_ns: i64,
    /// Fewest datagrams in a train.
    pub min_packets: usize,
    /// Most datagrams in a train (a longer run is cut into trains of this many).
    pub max_packets: usize,
    /// A train sent in less than this is a burst (ns).
    pub min_duration_ns: i64,
    /// A train whose delay slope is confidently above this is rising; confidently below,
    /// flat (a dimensionless slope: ns of delay per ns of sending).
    pub rising_slope: f64,
    /// Confidence level of the slope's interval.
    pub confidence: f64,
    /// Largest clock drift believed (a larger slope of the delay minima is a queue, not a
    /// clock).
    pub max_drift: f64,
    /// Bin of the drift estimate (ns).
    pub drift_bin_ns: i64,
    /// Samples further than this from the median delay are dropped (ns).
    pub max_owd_spread_ns: i64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            max_gap_ns: 100_000_000,
            min_packets: 10,
            max_packets: 100,
            min_duration_ns: 200_000,
            rising_slope: 0.05,
            confidence: 0.95,
            max_drift: 1e-3,
            drift_bin_ns: 500_000_000,
            max_owd_spread_ns: 5_000_000_000,
        }
    }
}

/// The trend of a train's one-way delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Rising: sent faster than the available bandwidth.
    Rising,
    /// Flat: sent no faster than the available bandwidth.
    Flat,
    /// Neither, at the confidence asked for.
    Ambiguous,
    /// Sent in one instant (a batch): no sending rate, only a dispersion.
    Burst,
}

/// A train and what it tells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Train {
    /// First send (sender's clock, ns).
    pub start_ns: i64,
    /// Last send (sender's clock, ns).
    pub end_ns: i64,
    /// Datagrams.
    pub packets: usize,
    /// Bytes on the wire.
    pub bytes: u64,
    /// Sending rate (bit/s); `None` for a burst.
    pub rate_bps: Option<f64>,
    /// Receiving rate (bit/s): bytes but the first arrival instant's over the arrival span;
    /// `None` if all arrived in one instant.
    pub out_rate_bps: Option<f64>,
    /// Slope of the one-way delay against send time, drift removed.
    pub slope: f64,
    /// The slope's confidence interval.
    pub slope_interval: (f64, f64),
    /// The verdict.
    pub trend: Trend,
    /// Datagrams sent within the train that never arrived (a full queue, or loss on the
    /// wire): its delays may have stopped rising at the queue's limit.
    pub lost: usize,
}

/// Estimates the clock drift of a path's samples (see the module's "Clocks").
pub fn drift(samples: &[Sample], params: &TrainParams) -> f64 {
    let (Some(first), Some(bin)) = (
        samples.first(),
        (params.drift_bin_ns > 0).then_some(params.drift_bin_ns),
    ) else {
        return 0.0;
    };
    let mut minima: Vec<(f64, f64)> = Vec::new();
    let mut current: Option<(i64, i64, i64)> = None; // (bin, tx at min, min owd)
    for s in samples {
        let b = s.tx_ns.saturating_sub(first.tx_ns) / bin;
        let owd = s.owd();
        current = match current {
            Some((cb, t, m)) if cb == b => Some(if owd < m {
                (b, s.tx_ns, owd)
            } else {
                (cb, t, m)
            }),
            other => {
                if let Some((_, t, m)) = other {
                    minima.push(((t - first.tx_ns) as f64, (m - first.owd()) as f64));
                }
                Some((b, s.tx_ns, owd))
            }
        };
    }
    if let Some((_, t, m)) = current {
        minima.push(((t - first.tx_ns) as f64, (m - first.owd()) as f64));
    }
    if minima.len() < 3 {
        return 0.0;
    }
    // Theil–Sen is quadratic: a window has a few dozen bins; keep at most 200, evenly.
    if minima.len() > 200 {
        let step = minima.len().div_ceil(200);
        minima = minima.into_iter().step_by(step).collect();
    }
    let max = params.max_drift.abs();
    theil_sen(&minima).map_or(0.0, |d| d.clamp(-max, max))
}

/// Cuts samples (sorted by send time, as [`match_records`] gives them) into trains and
/// judges each, with the drift `drift` removed.
///
/// `lost_ns` (sorted send times of datagrams that never arrived, [`Matched::lost_ns`]) marks
/// the trains that lost some.
pub fn trains(samples: &[Sample], lost_ns: &[i64], drift: f64, params: &TrainParams) -> Vec<Train> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=samples.len() {
        let cut = i == samples.len()
            || samples[i].tx_ns.saturating_sub(samples[i - 1].tx_ns) > params.max_gap_ns
            || i - start >= params.max_packets.max(2);
        if cut {
            let run = &samples[start..i];
            if run.len() >= params.min_packets.max(3) {
                let mut t = judge(run, drift, params);
                let from = lost_ns.partition_point(|&x| x < t.start_ns);
                let to = lost_ns.partition_point(|&x| x <= t.end_ns);
                t.lost = to.saturating_sub(from);
                out.push(t);
            }
            start = i;
        }
    }
    out
}

fn judge(run: &[Sample], drift: f64, params: &TrainParams) -> Train {
    let first = run[0];
    let last = run[run.len() - 1];
    let bytes: u64 = run.iter().map(|s| u64::from(s.len)).sum();
    let duration = last.tx_ns.saturating_sub(first.tx_ns);
    // Bytes sent before the last send instant.
    let before_last: u64 = run
        .iter()
        .filter(|s| s.tx_ns < last.tx_ns)
        .map(|s| u64::from(s.len))
        .sum();
    let rate_bps = (duration >= params.min_duration_ns && before_last > 0)
        .then(|| before_last as f64 * 8.0 / (duration as f64 * 1e-9));
    let rx_first = run.iter().map(|s| s.rx_ns).min().unwrap_or(first.rx_ns);
    let rx_last = run.iter().map(|s| s.rx_ns).max().unwrap_or(last.rx_ns);
    let after_first: u64 = run
        .iter()
        .filter(|s| s.rx_ns > rx_first)
        .map(|s| u64::from(s.len))
        .sum();
    let rx_span = rx_last.saturating_sub(rx_first);
    let out_rate_bps = (rx_span > 0 && after_first > 0)
        .then(|| after_first as f64 * 8.0 / (rx_span as f64 * 1e-9));
    let base = first.owd();
    let points: Vec<(f64, f64)> = run
        .iter()
        .map(|s| {
            let x = s.tx_ns.saturating_sub(first.tx_ns) as f64;
            (x, s.owd().saturating_sub(base) as f64 - drift * x)
        })
        .collect();
    let line = ols(&points);
    let (slope, slope_interval) = match line {
        Some(l) => (
            l.slope,
            l.slope_interval(params.confidence)
                .unwrap_or((l.slope, l.slope)),
        ),
        None => (0.0, (0.0, 0.0)),
    };
    let trend = if rate_bps.is_none() || line.is_none() {
        Trend::Burst
    } else if slope >= params.rising_slope && slope_interval.0 > 0.0 {
        Trend::Rising
    } else if slope_interval.1 < params.rising_slope {
        Trend::Flat
    } else {
        Trend::Ambiguous
    };
    Train {
        start_ns: first.tx_ns,
        end_ns: last.tx_ns,
        packets: run.len(),
        bytes,
        rate_bps,
        out_rate_bps,
        slope,
        slope_interval,
        trend,
        lost: 0,
    }
}

/// The bottleneck's capacity from batches (bit/s) and how many pairs it rests on: two
/// datagrams sent in one instant leave a FIFO bottleneck back to back, so the second arrives
/// `len / C` after the first (no other packet can come between them). The median over every
/// such pair, and the half-width of its confidence interval (1.4826 MAD over the root of the
/// pairs, times 1.96); `None` without one.
pub fn capacity(samples: &[Sample]) -> Option<(f64, f64, usize)> {
    let mut rates: Vec<f64> = samples
        .windows(2)
        .filter(|w| w[0].tx_ns == w[1].tx_ns && w[1].seq == w[0].seq.wrapping_add(1))
        .filter_map(|w| {
            let gap = w[1].rx_ns.saturating_sub(w[0].rx_ns);
            (gap > 0).then(|| f64::from(w[1].len) * 8.0 / (gap as f64 * 1e-9))
        })
        .collect();
    let n = rates.len();
    let c = median(&mut rates)?;
    let mut dev: Vec<f64> = rates.iter().map(|r| (r - c).abs()).collect();
    let mad = median(&mut dev)?;
    let half = 1.96 * 1.4826 * mad / crate::stats::count(n).sqrt();
    Some((c, half, n))
}

/// The cross traffic the bottleneck carried while it was busy with the path's own datagrams
/// (the probe-gap model of Spruce and IGI, on the application's datagrams): when datagram
/// `i + 1` reached the bottleneck before datagram `i` had left it, the server never idled
/// between their departures, so their arrival spacing is their own service plus the cross
/// traffic that arrived in between: `cross = C Δrx − len(i + 1)`. Datagram `i` was still
/// there if its send gap to `i + 1` is below its queueing delay (its delay above the path's
/// filtered minimum, drift removed) plus its own service time. Only datagrams whose sequence
/// numbers follow each other count (no datagram of the link can hide between them), and no
/// train that lost datagrams (a full queue drops cross traffic too, unseen).
///
/// Returns per train (in `trains`' order, `None` for a train with no busy interval) the
/// cross traffic's rate (bit/s) and the busy time it was measured over (ns).
pub fn busy_cross_traffic(
    samples: &[Sample],
    trains: &[Train],
    drift: f64,
    capacity_bps: f64,
) -> Vec<Option<(f64, f64)>> {
    let Some(first) = samples.first() else {
        return vec![None; trains.len()];
    };
    if !(capacity_bps.is_finite() && capacity_bps > 0.0) {
        return vec![None; trains.len()];
    }
    let delay = |s: &Sample| {
        s.owd().saturating_sub(first.owd()) as f64
            - drift * s.tx_ns.saturating_sub(first.tx_ns) as f64
    };
    let mut d: Vec<f64> = samples.iter().map(delay).collect();
    let n = d.len();
    let base = crate::stats::quantile(
        &mut d,
        crate::stats::count(n / 50) / crate::stats::count(n.saturating_sub(1).max(1)),
    );
    let Some(base) = base else {
        return vec![None; trains.len()];
    };
    let ns_per_bit = 1e9 / capacity_bps;
    trains
        .iter()
        .map(|t| {
            let from = samples.partition_point(|s| s.tx_ns < t.start_ns);
            let to = samples.partition_point(|s| s.tx_ns <= t.end_ns);
            let run = samples.get(from..to).unwrap_or_default();
            let (mut cross_bits, mut busy_ns) = (0.0, 0.0);
            if t.lost > 0 {
                // A full queue dropped some: the cross traffic it dropped too is not seen.
                return None;
            }
            for w in run.windows(2) {
                let (a, b) = (&w[0], &w[1]);
                // Only between consecutive datagrams of the link: a datagram missing from
                // the records (lost, or not captured) would count as cross traffic.
                if b.seq != a.seq.wrapping_add(1) {
                    continue;
                }
                let dtx = b.tx_ns.saturating_sub(a.tx_ns) as f64;
                let drx = b.rx_ns.saturating_sub(a.rx_ns) as f64;
                let queued = delay(a) - base + f64::from(a.len) * 8.0 * ns_per_bit;
                if drx <= 0.0 || dtx >= queued {
                    continue;
                }
                cross_bits += drx / ns_per_bit - f64::from(b.len) * 8.0;
                busy_ns += dtx;
            }
            (busy_ns > 0.0).then(|| (cross_bits / (busy_ns * 1e-9), busy_ns))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::record::MsgType;

    fn rec(dir: Direction, seq: u64, t_ns: i64) -> Record {
        let a: SocketAddr = "10.0.0.1:5400".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5400".parse().unwrap();
        Record {
            t_ns,
            dir,
            src: a,
            dst: b,
            len: 1000,
            msg: MsgType::Frame,
            session: 1,
            seq,
            batch: 0,
        }
    }

    #[test]
    fn matching_dedupes_and_sorts() {
        let mut r = vec![];
        for seq in (0..10).rev() {
            let t = i64::try_from(seq).unwrap() * 1_000_000;
            r.push(rec(Direction::Tx, seq, t));
            r.push(rec(Direction::Rx, seq, t + 5_000_000));
            r.push(rec(Direction::Rx, seq, t + 6_000_000)); // a duplicate, later
        }
        r.push(rec(Direction::Tx, 99, 0)); // never received
        let m = match_records(&r, 5_000_000_000);
        assert_eq!(m.samples.len(), 10);
        assert_eq!((m.tx, m.rx, m.duplicates), (11, 10, 10));
        assert!(m.samples.windows(2).all(|w| w[0].tx_ns <= w[1].tx_ns));
        assert!(m.samples.iter().all(|s| s.owd() == 5_000_000));
    }

    #[test]
    fn a_rising_train_and_a_flat_one() {
        let p = TrainParams::default();
        // 20 packets every 1 ms; delays rising by 0.3 ms each, then flat.
        let rising: Vec<Sample> = (0..20)
            .map(|i| Sample {
                tx_ns: i * 1_000_000,
                rx_ns: i * 1_300_000 + 7_000_000,
                len: 1000,
                seq: u64::try_from(i).unwrap(),
            })
            .collect();
        let t = trains(&rising, &[], 0.0, &p);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].trend, Trend::Rising);
        assert!((t[0].slope - 0.3).abs() < 1e-9);
        assert!((t[0].rate_bps.unwrap() - 8e6).abs() < 1.0);
        let flat: Vec<Sample> = rising
            .iter()
            .map(|s| Sample {
                rx_ns: s.tx_ns + 7_000_000 + (s.tx_ns / 1_000_000 % 3) * 10_000,
                ..*s
            })
            .collect();
        assert_eq!(trains(&flat, &[], 0.0, &p)[0].trend, Trend::Flat);
        // The same flat train seen through a clock drifting 500 ppm is flat once the drift
        // is removed.
        let drifted: Vec<Sample> = flat
            .iter()
            .map(|s| Sample {
                rx_ns: s.rx_ns + s.tx_ns / 2000,
                ..*s
            })
            .collect();
        assert_eq!(trains(&drifted, &[], 5e-4, &p)[0].trend, Trend::Flat);
        // Sent in one instant: a burst.
        let burst: Vec<Sample> = rising.iter().map(|s| Sample { tx_ns: 0, ..*s }).collect();
        let t = trains(&burst, &[], 0.0, &p);
        assert_eq!(t[0].trend, Trend::Burst);
        assert!(t[0].out_rate_bps.is_some());
    }

    #[test]
    fn gaps_and_lengths_cut_trains() {
        let p = TrainParams {
            max_packets: 15,
            ..TrainParams::default()
        };
        let mut s: Vec<Sample> = (0..40)
            .map(|i| Sample {
                tx_ns: i * 1_000_000 + if i >= 25 { 500_000_000 } else { 0 },
                rx_ns: i * 1_000_000 + 1,
                len: 100,
                seq: u64::try_from(i).unwrap(),
            })
            .collect();
        s.sort_by_key(|x| x.tx_ns);
        let t = trains(&s, &[], 0.0, &p);
        // 0..15, 15..25 (10), 25..40 (15).
        assert_eq!(
            t.iter().map(|t| t.packets).collect::<Vec<_>>(),
            vec![15, 10, 15]
        );
    }
}

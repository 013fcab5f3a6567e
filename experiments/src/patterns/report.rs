//! The JSON reports: one per rank, plus rank 0's summary of the whole run.

use serde::{Deserialize, Serialize};

use super::op::Op;

/// What one rank measured. Printed by every rank as one JSON line on stdout.
///
/// Byte and message counts cover data-message payloads only (not framing, handshakes or the
/// control connection). Times are wall-clock seconds; an iteration runs from the start of its
/// compute phase to the end of its communication phase (the last expected receive, or for a
/// rank that only sends, handing the last message to its send queue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankReport {
    /// This rank.
    pub rank: usize,
    /// Number of ranks.
    pub n: usize,
    /// Communication operation.
    pub op: Op,
    /// Topology schedule in canonical form (just the topology name when constant).
    pub schedule: String,
    /// Payload bytes per message.
    pub size: u64,
    /// Number of iterations.
    pub iterations: u64,
    /// Work units per iteration (`--compute`), if that mode was used.
    pub compute: Option<f64>,
    /// Work units per KiB sent (`--ratio`), if that mode was used.
    pub ratio: Option<f64>,
    /// Seconds from the release of the start barrier to the end of the last iteration,
    /// including handing every queued message to the kernel.
    pub total_s: f64,
    /// Median iteration time (mean of the two middle values for an even count).
    pub iter_median_s: f64,
    /// 95th percentile iteration time (nearest-rank).
    pub iter_p95_s: f64,
    /// Every iteration's time, in order.
    pub iter_times_s: Vec<f64>,
    /// Total seconds spent in compute phases.
    pub compute_s: f64,
    /// Total work units computed.
    pub compute_units: f64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
}

/// Rank 0's view of the whole run, printed as its last stdout line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Always `true`: tells summary lines from rank reports.
    pub summary: bool,
    /// Number of ranks.
    pub n: usize,
    /// Communication operation.
    pub op: Op,
    /// Topology schedule in canonical form.
    pub schedule: String,
    /// Payload bytes per message.
    pub size: u64,
    /// Number of iterations.
    pub iterations: u64,
    /// Maximum `total_s` over ranks.
    pub total_s: f64,
    /// Median of `iter_times_s`.
    pub iter_median_s: f64,
    /// 95th percentile (nearest-rank) of `iter_times_s`.
    pub iter_p95_s: f64,
    /// BSP view: iteration `i`'s time is the maximum over ranks of their iteration `i` times.
    pub iter_times_s: Vec<f64>,
    /// Maximum `compute_s` over ranks.
    pub compute_s_max: f64,
    /// Payload bytes sent by all ranks.
    pub bytes_sent: u64,
    /// Payload bytes received by all ranks (equals `bytes_sent` in a complete run).
    pub bytes_received: u64,
    /// Every rank's report, by rank.
    pub ranks: Vec<RankReport>,
}

impl Summary {
    /// Summarises `reports`, which must be the reports of ranks `0..n` of one run, in rank
    /// order (so they agree on everything but the measurements). `None` if there are none.
    pub fn new(reports: Vec<RankReport>) -> Option<Self> {
        let first = reports.first()?;
        let iter_times_s: Vec<f64> = (0..first.iter_times_s.len())
            .map(|i| {
                reports
                    .iter()
                    .map(|r| r.iter_times_s[i])
                    .fold(0.0, f64::max)
            })
            .collect();
        let max = |f: fn(&RankReport) -> f64| reports.iter().map(f).fold(0.0, f64::max);
        Some(Summary {
            summary: true,
            n: reports.len(),
            op: first.op,
            schedule: first.schedule.clone(),
            size: first.size,
            iterations: first.iterations,
            total_s: max(|r| r.total_s),
            iter_median_s: median(&iter_times_s),
            iter_p95_s: percentile(&iter_times_s, 95),
            compute_s_max: max(|r| r.compute_s),
            bytes_sent: reports.iter().map(|r| r.bytes_sent).sum(),
            bytes_received: reports.iter().map(|r| r.bytes_received).sum(),
            iter_times_s,
            ranks: reports,
        })
    }
}

/// Median of `xs` (mean of the two middle values for an even count); 0 when empty.
pub fn median(xs: &[f64]) -> f64 {
    let sorted = sorted(xs);
    let len = sorted.len();
    match len {
        0 => 0.0,
        _ if len % 2 == 1 => sorted[len / 2],
        _ => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}

/// The `percent`-th percentile (1..=100) of `xs` by the nearest-rank method: the smallest
/// value such that at least `percent`% of the values are less or equal to it. 0 when empty.
pub fn percentile(xs: &[f64], percent: usize) -> f64 {
    let sorted = sorted(xs);
    let len = sorted.len();
    if len == 0 {
        return 0.0;
    }
    let rank = (percent * len).div_ceil(100).clamp(1, len);
    sorted[rank - 1]
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rank: usize, times: &[f64], sent: u64) -> RankReport {
        RankReport {
            rank,
            n: 2,
            op: Op::Exchange,
            schedule: "ring".into(),
            size: 10,
            iterations: times.len() as u64,
            compute: Some(1.0),
            ratio: None,
            total_s: times.iter().sum(),
            iter_median_s: median(times),
            iter_p95_s: percentile(times, 95),
            iter_times_s: times.to_vec(),
            compute_s: 0.5 * rank as f64,
            compute_units: 3.0,
            bytes_sent: sent,
            bytes_received: sent,
            messages_sent: sent / 10,
            messages_received: sent / 10,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn percentiles() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 95), 95.0);
        assert_eq!(percentile(&xs, 100), 100.0);
        assert_eq!(percentile(&xs, 1), 1.0);
        assert_eq!(percentile(&xs[..10], 95), 10.0);
        assert_eq!(percentile(&xs[..20], 95), 19.0);
        assert_eq!(percentile(&[7.0], 95), 7.0);
        assert_eq!(percentile(&[], 95), 0.0);
        assert_eq!(percentile(&[2.0, 1.0], 50), 1.0);
    }

    #[test]
    fn summary_takes_bsp_maxima() {
        assert_eq!(Summary::new(Vec::new()), None);
        let s = Summary::new(vec![
            report(0, &[1.0, 5.0, 1.0], 30),
            report(1, &[2.0, 1.0, 1.0], 50),
        ])
        .unwrap();
        assert!(s.summary);
        assert_eq!(s.n, 2);
        assert_eq!(s.iter_times_s, [2.0, 5.0, 1.0]);
        assert_eq!(s.iter_median_s, 2.0);
        assert_eq!(s.iter_p95_s, 5.0);
        assert_eq!(s.total_s, 7.0);
        assert_eq!(s.compute_s_max, 0.5);
        assert_eq!(s.bytes_sent, 80);
        assert_eq!(s.ranks.len(), 2);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["summary"], true);
        assert_eq!(json["op"], "exchange");
        assert_eq!(json["ranks"][1]["rank"], 1);
        let back: RankReport = serde_json::from_value(json["ranks"][0].clone()).unwrap();
        assert_eq!(back, s.ranks[0]);
    }
}

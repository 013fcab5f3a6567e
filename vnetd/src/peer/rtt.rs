//! The round-trip time of a link: RFC 6298's smoothed estimate and variation, and the
//! smallest sample seen.

use std::time::Duration;

/// The clock granularity RFC 6298 adds to the variation in [`RttEstimator::rto`]; our clocks
/// are finer, and a millisecond keeps a retransmission-style timeout from collapsing to the
/// smoothed RTT on a quiet LAN.
pub const RTT_GRANULARITY: Duration = Duration::from_millis(1);

/// Round-trip time estimator fed with one sample per keepalive echo.
///
/// Follows RFC 6298 §2: the first sample `R` sets `SRTT = R` and `RTTVAR = R/2`; each later
/// one updates `RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|` (with the old `SRTT`), then
/// `SRTT = 7/8 SRTT + 1/8 R`. Keepalive echoes carry the keepalive's own send time, so every
/// sample is unambiguous and Karn's rule (no samples from retransmissions) has nothing to
/// exclude. All arithmetic is on [`Duration`] and saturates; nothing here panics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttEstimator {
    latest: Option<Duration>,
    smoothed: Option<Duration>,
    var: Duration,
    min: Option<Duration>,
    samples: u64,
}

impl RttEstimator {
    /// An estimator with no sample yet.
    pub const fn new() -> Self {
        RttEstimator {
            latest: None,
            smoothed: None,
            var: Duration::ZERO,
            min: None,
            samples: 0,
        }
    }

    /// Takes one round-trip sample.
    pub fn update(&mut self, sample: Duration) {
        match self.smoothed {
            None => {
                self.smoothed = Some(sample);
                self.var = sample / 2;
            }
            Some(srtt) => {
                let deviation = srtt.abs_diff(sample);
                self.var = self.var.saturating_mul(3).saturating_add(deviation) / 4;
                self.smoothed = Some(srtt.saturating_mul(7).saturating_add(sample) / 8);
            }
        }
        self.latest = Some(sample);
        self.min = Some(self.min.map_or(sample, |min| min.min(sample)));
        self.samples = self.samples.saturating_add(1);
    }

    /// The smoothed round-trip time (`SRTT`), once there is a sample.
    pub fn smoothed(&self) -> Option<Duration> {
        self.smoothed
    }

    /// The round-trip time variation (`RTTVAR`), once there is a sample.
    pub fn variation(&self) -> Option<Duration> {
        self.smoothed.map(|_| self.var)
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// The smallest sample since the estimator was created or [`RttEstimator::reset_min`]
    /// was last called: the path's propagation delay, as far as the samples show it.
    pub fn min(&self) -> Option<Duration> {
        self.min
    }

    /// Forgets the smallest sample (the path may have changed: a peer that restarted may sit
    /// elsewhere); the next sample sets it anew.
    pub fn reset_min(&mut self) {
        self.min = None;
    }

    /// How many samples were taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// RFC 6298's retransmission timeout without its one-second floor:
    /// `SRTT + max(G, 4 RTTVAR)` with `G` = [`RTT_GRANULARITY`]. The time within which an
    /// answer is expected with high probability; `None` before the first sample.
    pub fn rto(&self) -> Option<Duration> {
        self.smoothed
            .map(|srtt| srtt.saturating_add(RTT_GRANULARITY.max(self.var.saturating_mul(4))))
    }
}

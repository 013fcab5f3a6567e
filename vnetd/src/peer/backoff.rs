//! Exponential backoff with jitter from a seeded generator: the delays between connection
//! attempts.

use std::time::Duration;

/// Delays between consecutive attempts to reach a peer.
///
/// Attempt `n` (from 0) has the nominal delay `min(initial * 2^n, max)`. Jitter only ever
/// *shortens* it, by a uniformly drawn part of up to `jitter_percent` % of it ("equal
/// jitter" on one side): so `max` is a hard bound on the gap between two attempts, which is
/// what the 2 s re-formation budget needs, while daemons that lost the same peer at the same
/// moment (every host when the Proxy dies) still spread their attempts out.
///
/// The jitter comes from SplitMix64 seeded by the caller, so a run is reproducible: the
/// daemon seeds it from something that differs per link and per run (say its session id
/// mixed with the peer's name); tests seed it with constants.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter_percent: u8,
    state: u64,
}

impl Backoff {
    /// Delays from `initial` doubling up to `max`, shortened by up to `jitter_percent` %
    /// (taken as at most 99) with jitter drawn from a generator seeded with `seed`.
    pub fn new(initial: Duration, max: Duration, jitter_percent: u8, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            jitter_percent: jitter_percent.min(99),
            state: seed,
        }
    }

    /// The nominal (unjittered) delay after attempt `attempt`: `min(initial * 2^attempt,
    /// max)`.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay after attempt `attempt`: the nominal delay less a random part of up to
    /// `jitter_percent` % of it. Always within `(nominal * (1 - jitter), nominal]`, so never
    /// more than `max`, and positive whenever `initial` is.
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt);
        let nominal_ns = nominal.as_nanos();
        let spread = nominal_ns * u128::from(self.jitter_percent) / 100;
        let cut = if spread == 0 {
            0
        } else {
            u128::from(self.next_u64()) % (spread + 1)
        };
        let ns = nominal_ns - cut;
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// SplitMix64 (Steele, Lea and Flood): one 64-bit add and a mixing function per draw.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

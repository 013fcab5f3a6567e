//! The compute phase: a fixed integer kernel measured in abstract work units.
//!
//! One **work unit** is [`ROUNDS_PER_UNIT`] rounds of a xorshift64* step, a serial dependency
//! chain of shifts, xors and a 64-bit multiply that the compiler cannot shorten or vectorise.
//! The amount of work is therefore fixed independent of the machine: on a slower CPU, or under
//! a cgroup CPU quota, the same number of units takes longer. Wall time is what gets measured.

use std::hint::black_box;

/// Kernel rounds per work unit.
pub const ROUNDS_PER_UNIT: u64 = 1_000_000;

/// How much work a rank does in the compute phase of each iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Work {
    /// A fixed number of work units per iteration (`--compute`).
    Fixed(f64),
    /// Work units per KiB (1024 bytes) that this rank sends in the iteration (`--ratio`, the
    /// compute/communicate ratio). A rank that sends nothing in an iteration computes nothing.
    PerKib(f64),
}

impl Work {
    /// Work units for an iteration in which this rank sends `bytes_sent` payload bytes.
    pub fn units(self, bytes_sent: u64) -> f64 {
        match self {
            Work::Fixed(units) => units,
            Work::PerKib(ratio) => ratio * bytes_sent as f64 / 1024.0,
        }
    }
}

/// Kernel rounds for `units` work units, rounded to the nearest round. Negative, NaN and
/// absurdly large inputs saturate to `0` and `u64::MAX` respectively.
pub fn rounds(units: f64) -> u64 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "float-to-int `as` saturates and maps NaN to 0, which is the documented intent"
    )]
    let rounds = (units * ROUNDS_PER_UNIT as f64).round() as u64;
    rounds
}

/// Runs the kernel for `rounds` rounds and returns its final state (which callers may ignore:
/// the result is passed through [`black_box`] so the loop is never optimised away).
pub fn run(rounds: u64) -> u64 {
    let mut x = SEED;
    for _ in 0..black_box(rounds) {
        x = xorshift_star(x);
    }
    black_box(x)
}

/// Fills `buf` with a deterministic pseudo-random byte stream (so that message payloads are
/// incompressible by anything on the path).
pub fn fill_pseudo_random(buf: &mut [u8]) {
    let mut x = SEED;
    for chunk in buf.chunks_mut(8) {
        x = xorshift_star(x);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// Initial state of the generator (any non-zero value works).
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// One xorshift64* step; maps non-zero states to non-zero states.
fn xorshift_star(mut x: u64) -> u64 {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_units() {
        assert_eq!(Work::Fixed(2.5).units(1 << 20), 2.5);
        assert_eq!(Work::PerKib(0.5).units(64 * 1024), 32.0);
        assert_eq!(Work::PerKib(3.0).units(0), 0.0);
    }

    #[test]
    fn rounds_conversion() {
        assert_eq!(rounds(0.0), 0);
        assert_eq!(rounds(1.0), ROUNDS_PER_UNIT);
        assert_eq!(rounds(0.0000014), 1);
        assert_eq!(rounds(-3.0), 0);
        assert_eq!(rounds(f64::NAN), 0);
        assert_eq!(rounds(f64::INFINITY), u64::MAX);
    }

    #[test]
    fn kernel_is_deterministic_and_nontrivial() {
        assert_eq!(run(0), SEED);
        assert_eq!(run(1000), run(1000));
        assert_ne!(run(1000), run(1001));
    }

    #[test]
    fn pseudo_random_fill() {
        let mut a = vec![0u8; 21];
        fill_pseudo_random(&mut a);
        let mut b = vec![0u8; 16];
        fill_pseudo_random(&mut b);
        assert_eq!(a[..16], b[..]);
        assert!(a.iter().filter(|&&x| x == 0).count() < 4);
    }
}

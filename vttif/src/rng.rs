//! A small, fixed pseudo-random generator (SplitMix64): synthetic traces and tests that
//! reproduce from their seed, without a dependency.

/// SplitMix64 from a seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; modulo bias is negligible for the small `n` used here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A random permutation of `items` (Fisher-Yates).
    #[cfg(test)]
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}

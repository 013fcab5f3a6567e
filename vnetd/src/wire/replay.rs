//! The anti-replay window over one peer session's sequence numbers, after RFC 6479: a ring of
//! 64-bit blocks, so that sliding forward clears whole blocks instead of shifting bits.

/// Number of 64-bit blocks in the ring.
const BLOCKS: usize = 32;
/// Bits per block.
const BLOCK_BITS: u64 = 64;

/// How far behind the highest sequence number seen a datagram may be and still be accepted
/// (if not seen before): the ring's size less one block, which the ring needs as slack when
/// it slides.
pub const REPLAY_WINDOW: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

// UDP reorders bursts of up to a thousand datagrams and more on busy paths.
const _: () = assert!(REPLAY_WINDOW >= 1024);

/// Why a sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Seen before, within the window.
    #[error("sequence number {seq} was seen before")]
    Replayed {
        /// The refused sequence number.
        seq: u64,
    },
    /// Too far behind the highest seen to tell whether it was.
    #[error("sequence number {seq} is {behind} behind the highest seen, past the window of {REPLAY_WINDOW}")]
    TooOld {
        /// The refused sequence number.
        seq: u64,
        /// How far behind the highest seen it is.
        behind: u64,
    },
}

/// The sequence numbers seen from one peer session, and which recent ones were.
///
/// Use [`ReplayWindow::check`] before authenticating a datagram (cheap, rejects replays
/// without spending a tag computation) and [`ReplayWindow::commit`] after, so that a forged
/// datagram never moves the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The highest sequence number committed, if any.
    top: Option<u64>,
    /// Bit `seq % 64` of block `(seq / 64) % BLOCKS` says whether `seq` was committed.
    blocks: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

fn slot(seq: u64) -> (usize, u64) {
    // The remainder is below BLOCKS, so the conversion cannot fail.
    let block = usize::try_from((seq / BLOCK_BITS) % BLOCKS as u64).unwrap_or(0);
    (block, 1 << (seq % BLOCK_BITS))
}

impl ReplayWindow {
    /// A window that has seen nothing: any sequence number passes.
    pub const fn new() -> Self {
        ReplayWindow {
            top: None,
            blocks: [0; BLOCKS],
        }
    }

    /// The highest sequence number committed.
    pub fn top(&self) -> Option<u64> {
        self.top
    }

    /// Whether `seq` would be accepted: above the highest seen, or within the window and not
    /// seen. Changes nothing.
    ///
    /// # Errors
    /// [`ReplayError::TooOld`] or [`ReplayError::Replayed`].
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        let Some(top) = self.top else {
            return Ok(());
        };
        if seq > top {
            return Ok(());
        }
        let behind = top - seq;
        if behind >= REPLAY_WINDOW {
            return Err(ReplayError::TooOld { seq, behind });
        }
        let (block, bit) = slot(seq);
        if self.blocks[block] & bit != 0 {
            return Err(ReplayError::Replayed { seq });
        }
        Ok(())
    }

    /// Marks `seq` seen, sliding the window forward if it is the highest yet. Call it only
    /// after [`ReplayWindow::check`] passed and the datagram proved authentic; on a number
    /// that `check` refuses it changes nothing.
    pub fn commit(&mut self, seq: u64) {
        if self.check(seq).is_err() {
            return;
        }
        match self.top {
            Some(top) if seq <= top => {}
            Some(top) => {
                // Clear the blocks the window slides onto (all of them on a long jump).
                let from = top / BLOCK_BITS;
                let to = seq / BLOCK_BITS;
                let steps = (to - from).min(BLOCKS as u64);
                for step in 1..=steps {
                    let (block, _) = slot((from + step) * BLOCK_BITS);
                    self.blocks[block] = 0;
                }
                self.top = Some(seq);
            }
            None => self.top = Some(seq),
        }
        let (block, bit) = slot(seq);
        self.blocks[block] |= bit;
    }

    /// [`ReplayWindow::check`] then [`ReplayWindow::commit`].
    ///
    /// # Errors
    /// As [`ReplayWindow::check`]; the window is unchanged then.
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        self.commit(seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_then_duplicate() {
        let mut w = ReplayWindow::new();
        for seq in 0..5000 {
            assert_eq!(w.accept(seq), Ok(()));
        }
        assert_eq!(w.top(), Some(4999));
        assert_eq!(w.accept(4999), Err(ReplayError::Replayed { seq: 4999 }));
        assert_eq!(w.accept(4000), Err(ReplayError::Replayed { seq: 4000 }));
    }

    #[test]
    fn reordered_within_the_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        // A burst of 1024 arriving in reverse order, then every other one again.
        for seq in (0..1024).rev() {
            assert_eq!(w.accept(seq), Ok(()), "{seq}");
        }
        for seq in (0..1024).step_by(2) {
            assert_eq!(w.accept(seq), Err(ReplayError::Replayed { seq }));
        }
        // Jump ahead, then fill in a gap left behind.
        assert_eq!(w.accept(1500), Ok(()));
        assert_eq!(w.accept(1100), Ok(()));
        assert_eq!(w.accept(1100), Err(ReplayError::Replayed { seq: 1100 }));
        assert_eq!(w.accept(1101), Ok(()));
    }

    #[test]
    fn too_old_is_told_apart_from_replayed() {
        let mut w = ReplayWindow::new();
        w.accept(10_000).unwrap();
        let oldest = 10_000 - (REPLAY_WINDOW - 1);
        assert_eq!(w.check(oldest), Ok(()));
        assert_eq!(
            w.check(oldest - 1),
            Err(ReplayError::TooOld {
                seq: oldest - 1,
                behind: REPLAY_WINDOW
            })
        );
        assert_eq!(w.accept(oldest), Ok(()));
        assert_eq!(w.accept(oldest), Err(ReplayError::Replayed { seq: oldest }));
        assert!(matches!(w.accept(0), Err(ReplayError::TooOld { .. })));
    }

    #[test]
    fn window_jumps_clear_what_they_pass() {
        let mut w = ReplayWindow::new();
        for seq in 0..100 {
            w.accept(seq).unwrap();
        }
        // A jump of exactly one ring: bits from the old lap must not read as seen.
        let jump = 99 + BLOCKS as u64 * BLOCK_BITS;
        w.accept(jump).unwrap();
        for seq in jump - REPLAY_WINDOW + 1..jump {
            assert_eq!(w.check(seq), Ok(()), "{seq}");
        }
        // A jump far past the window.
        w.accept(1 << 40).unwrap();
        assert!(matches!(w.check(jump), Err(ReplayError::TooOld { .. })));
        for seq in (1 << 40) - REPLAY_WINDOW + 1..(1 << 40) {
            assert_eq!(w.check(seq), Ok(()));
        }
        // Small forward steps across block boundaries keep what is still inside.
        let base = 1u64 << 40;
        for step in 1..=200 {
            w.accept(base + step * 3).unwrap();
        }
        for step in 1..=200 {
            assert_eq!(
                w.check(base + step * 3),
                Err(ReplayError::Replayed {
                    seq: base + step * 3
                })
            );
            assert_eq!(w.check(base + step * 3 - 1), Ok(()));
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut w = ReplayWindow::new();
        w.accept(u64::MAX).unwrap();
        assert_eq!(
            w.accept(u64::MAX),
            Err(ReplayError::Replayed { seq: u64::MAX })
        );
        assert!(matches!(w.check(0), Err(ReplayError::TooOld { .. })));
        assert_eq!(w.accept(u64::MAX - 5), Ok(()));
        // Commit without check is a no-op on refused numbers.
        let before = w.clone();
        w.commit(u64::MAX - 5);
        w.commit(3);
        assert_eq!(w, before);
    }
}

//! Fragmentation of frames too large for a link's datagrams, and their reassembly with
//! bounded memory.

use std::time::Duration;

use super::message::{piece_range, Fragment, FRAGMENT_HEADER_LEN, MAX_FRAGMENTS};
use super::packet::OVERHEAD;

/// The largest frame guests send by default: 1500 bytes of MTU, 14 of Ethernet header and 4
/// of VLAN tag.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1518;

/// How a frame of some length travels over a link whose datagrams are at most
/// `max_datagram` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentPlan {
    /// The frame's length.
    pub frame_len: usize,
    /// How many datagrams carry it: 1 for a whole frame, 2 to [`MAX_FRAGMENTS`] for pieces.
    pub count: usize,
}

/// A frame that no split can carry over a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {frame_len}-byte frame cannot cross a link of {max_datagram}-byte datagrams in {MAX_FRAGMENTS} fragments or fewer")]
pub struct Unsplittable {
    /// The frame's length.
    pub frame_len: usize,
    /// The link's largest datagram.
    pub max_datagram: usize,
}

impl FragmentPlan {
    /// The plan for a `frame_len`-byte frame: whole if header, frame and tag fit in
    /// `max_datagram` bytes; else cut into the fewest pieces that fit, split evenly.
    ///
    /// # Errors
    /// [`Unsplittable`] if more than [`MAX_FRAGMENTS`] pieces would be needed, or the frame is
    /// longer than the 16-bit length field allows.
    pub fn new(frame_len: usize, max_datagram: usize) -> Result<Self, Unsplittable> {
        let unsplittable = Unsplittable {
            frame_len,
            max_datagram,
        };
        if frame_len > usize::from(u16::MAX) {
            return Err(unsplittable);
        }
        if frame_len + OVERHEAD <= max_datagram {
            return Ok(FragmentPlan {
                frame_len,
                count: 1,
            });
        }
        let max_piece = max_datagram.saturating_sub(OVERHEAD + FRAGMENT_HEADER_LEN);
        if max_piece == 0 {
            return Err(unsplittable);
        }
        let count = frame_len.div_ceil(max_piece);
        if count > usize::from(MAX_FRAGMENTS) {
            return Err(unsplittable);
        }
        Ok(FragmentPlan { frame_len, count })
    }

    /// Whether the frame is cut into pieces.
    pub fn is_fragmented(&self) -> bool {
        self.count > 1
    }

    /// The length of the first datagram (every datagram but the last has this length, so a
    /// batch can go out with UDP segmentation offload).
    pub fn stride(&self) -> usize {
        if self.is_fragmented() {
            piece_range(self.frame_len, self.count, 0).map_or(0, |r| r.len())
                + OVERHEAD
                + FRAGMENT_HEADER_LEN
        } else {
            self.frame_len + OVERHEAD
        }
    }

    /// The length of all datagrams together.
    pub fn total_len(&self) -> usize {
        if self.is_fragmented() {
            self.frame_len + self.count * (OVERHEAD + FRAGMENT_HEADER_LEN)
        } else {
            self.frame_len + OVERHEAD
        }
    }
}

/// Limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// How many frames may be in progress at once; a new frame beyond that evicts the oldest.
    pub slots: usize,
    /// How long a frame may stay incomplete.
    pub timeout: Duration,
    /// The longest frame accepted.
    pub max_frame_len: usize,
}

impl Default for ReassemblyConfig {
    /// 8 frames in progress, 1 s, frames up to [`DEFAULT_MAX_FRAME_LEN`].
    fn default() -> Self {
        ReassemblyConfig {
            slots: 8,
            timeout: Duration::from_secs(1),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }
}

/// What a [`Reassembler`] has done, for the daemon's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Frames completed.
    pub completed: u64,
    /// Incomplete frames evicted to make room for a newer one.
    pub evicted: u64,
    /// Incomplete frames dropped because their time ran out.
    pub expired: u64,
    /// Fragments dropped because their piece had already arrived.
    pub duplicates: u64,
    /// Incomplete frames dropped because a fragment disagreed with the others on the frame's
    /// length or number of pieces.
    pub inconsistent: u64,
    /// Fragments dropped because their frame is longer than the limit.
    pub too_long: u64,
}

/// Why a fragment was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// Its piece had already arrived; the fragment is dropped, the frame goes on.
    #[error("duplicate fragment {index} of frame {frame_id}")]
    Duplicate {
        /// The frame.
        frame_id: u32,
        /// The piece.
        index: u8,
    },
    /// It disagrees with earlier fragments of its frame; the whole frame is dropped.
    #[error("fragment of frame {frame_id} disagrees with earlier ones on the frame's length or piece count")]
    Inconsistent {
        /// The frame.
        frame_id: u32,
    },
    /// Its frame is longer than the limit.
    #[error("fragmented frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

#[derive(Debug)]
struct Slot {
    frame_id: u32,
    started: Duration,
    frame_len: usize,
    count: u8,
    /// Bit `i` says whether piece `i` arrived.
    arrived: u64,
    /// The smallest hop budget among the fragments.
    hops: u8,
    /// The fragments' offload flag (all must agree).
    offload: bool,
    /// The frame being rebuilt; its allocation is kept from frame to frame.
    buf: Vec<u8>,
    active: bool,
}

impl Slot {
    fn complete(&self) -> bool {
        self.arrived.count_ones() == u32::from(self.count)
    }
}

/// Rebuilds fragmented frames of one peer session, with at most
/// [`ReassemblyConfig::slots`] frames of at most [`ReassemblyConfig::max_frame_len`] bytes
/// in progress: its memory never exceeds their product (see [`Reassembler::memory`]).
///
/// Time is an argument: `now` is any monotonic clock's reading, from any origin, the same for
/// every call.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    slots: Vec<Slot>,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// An empty reassembler (slots allocate their buffers when first used).
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembler {
            config,
            slots: Vec::with_capacity(config.slots),
            stats: ReassemblyStats::default(),
        }
    }

    /// Its limits.
    pub fn config(&self) -> &ReassemblyConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Frames in progress.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.active).count()
    }

    /// Bytes held by frame buffers (at most `slots * max_frame_len`).
    pub fn memory(&self) -> usize {
        self.slots.iter().map(|s| s.buf.capacity()).sum()
    }

    /// Drops every frame in progress, without counting them (a new peer session makes them
    /// meaningless).
    pub fn reset(&mut self) {
        for slot in &mut self.slots {
            slot.active = false;
        }
    }

    /// When the oldest frame in progress runs out of time, if any is in progress: call
    /// [`Reassembler::handle_timeout`] then (or later; [`Reassembler::insert`] also expires).
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.slots
            .iter()
            .filter(|s| s.active)
            .map(|s| s.started.saturating_add(self.config.timeout))
            .min()
    }

    /// Drops the frames whose time ran out by `now`, counting them as expired.
    pub fn handle_timeout(&mut self, now: Duration) {
        let timeout = self.config.timeout;
        for slot in &mut self.slots {
            if slot.active && slot.started.saturating_add(timeout) <= now {
                slot.active = false;
                self.stats.expired += 1;
            }
        }
    }

    /// Takes a fragment (already authenticated and checked, as [`Message::parse`] leaves it)
    /// that arrived at `now` with hop budget `hops` and offload flag `offload` (which every
    /// fragment of a frame must share). Returns the frame and its hop budget (the smallest
    /// of its fragments') when this was its last missing piece; the frame is borrowed from
    /// the reassembler until the next call.
    ///
    /// [`Message::parse`]: super::message::Message::parse
    ///
    /// # Errors
    /// [`ReassemblyError`]; each is counted in [`Reassembler::stats`].
    pub fn insert(
        &mut self,
        fragment: &Fragment<'_>,
        hops: u8,
        offload: bool,
        now: Duration,
    ) -> Result<Option<(&[u8], u8)>, ReassemblyError> {
        self.handle_timeout(now);
        let frame_len = usize::from(fragment.frame_len);
        if frame_len > self.config.max_frame_len {
            self.stats.too_long += 1;
            return Err(ReassemblyError::TooLong {
                len: frame_len,
                max: self.config.max_frame_len,
            });
        }
        // `Fragment::check` (which `Message::parse` ran already) is the one judge of a
        // fragment's numbers; one that skipped it may contradict itself.
        let range = match fragment.check() {
            Ok(()) => piece_range(
                frame_len,
                usize::from(fragment.count),
                usize::from(fragment.index),
            ),
            Err(_) => None,
        };
        let Some(range) = range else {
            self.stats.inconsistent += 1;
            return Err(ReassemblyError::Inconsistent {
                frame_id: fragment.frame_id,
            });
        };
        // `check` bounds the index below the count, at most 64.
        let bit = 1u64 << fragment.index;
        let index = match self.find(fragment.frame_id) {
            Some(index) => {
                let slot = &mut self.slots[index];
                if slot.frame_len != frame_len
                    || slot.count != fragment.count
                    || slot.offload != offload
                {
                    slot.active = false;
                    self.stats.inconsistent += 1;
                    return Err(ReassemblyError::Inconsistent {
                        frame_id: fragment.frame_id,
                    });
                }
                if slot.arrived & bit != 0 {
                    self.stats.duplicates += 1;
                    return Err(ReassemblyError::Duplicate {
                        frame_id: fragment.frame_id,
                        index: fragment.index,
                    });
                }
                index
            }
            None => {
                let index = self.free_slot();
                let slot = &mut self.slots[index];
                slot.frame_id = fragment.frame_id;
                slot.started = now;
                slot.frame_len = frame_len;
                slot.count = fragment.count;
                slot.arrived = 0;
                slot.hops = hops;
                slot.offload = offload;
                slot.active = true;
                index
            }
        };
        let slot = &mut self.slots[index];
        slot.buf[range].copy_from_slice(fragment.piece);
        slot.arrived |= bit;
        slot.hops = slot.hops.min(hops);
        if !slot.complete() {
            return Ok(None);
        }
        slot.active = false;
        self.stats.completed += 1;
        Ok(Some((&slot.buf[..slot.frame_len], slot.hops)))
    }

    fn find(&self, frame_id: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.active && s.frame_id == frame_id)
    }

    /// An inactive slot, a new one while under the limit, or the oldest, evicted.
    fn free_slot(&mut self) -> usize {
        if let Some(index) = self.slots.iter().position(|s| !s.active) {
            return index;
        }
        if self.slots.len() < self.config.slots.max(1) {
            self.slots.push(Slot {
                frame_id: 0,
                started: Duration::ZERO,
                frame_len: 0,
                count: 0,
                arrived: 0,
                hops: 0,
                offload: false,
                // Zeroed once; every piece of a frame overwrites its part, and `insert`
                // refuses frames longer than this.
                buf: vec![0; self.config.max_frame_len],
                active: false,
            });
            return self.slots.len() - 1;
        }
        let oldest = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.started)
            .map_or(0, |(i, _)| i);
        self.slots[oldest].active = false;
        self.stats.evicted += 1;
        oldest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::{piece_len, ETH_HEADER_LEN};

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| {
                u8::try_from(i % 256)
                    .unwrap()
                    .wrapping_mul(31)
                    .wrapping_add(seed)
            })
            .collect()
    }

    /// Cuts `frame` as a sender would for `max_datagram`.
    fn cut(frame: &[u8], id: u32, max_datagram: usize) -> Vec<(u32, u16, u8, u8, Vec<u8>)> {
        let plan = FragmentPlan::new(frame.len(), max_datagram).unwrap();
        assert!(plan.is_fragmented());
        let count = u8::try_from(plan.count).unwrap();
        (0..count)
            .map(|i| {
                let r = piece_range(frame.len(), plan.count, usize::from(i)).unwrap();
                (
                    id,
                    u16::try_from(frame.len()).unwrap(),
                    i,
                    count,
                    frame[r].to_vec(),
                )
            })
            .collect()
    }

    fn as_fragment(f: &(u32, u16, u8, u8, Vec<u8>)) -> Fragment<'_> {
        Fragment {
            frame_id: f.0,
            frame_len: f.1,
            index: f.2,
            count: f.3,
            piece: &f.4,
        }
    }

    #[test]
    fn plans_whole_frames_and_even_splits() {
        // 1472 = 1500 - 20 (IPv4) - 8 (UDP).
        assert_eq!(FragmentPlan::new(1432, 1472).unwrap().count, 1);
        let plan = FragmentPlan::new(1433, 1472).unwrap();
        assert_eq!(plan.count, 2);
        assert_eq!(plan.stride(), 717 + OVERHEAD + FRAGMENT_HEADER_LEN);
        assert_eq!(
            plan.total_len(),
            1433 + 2 * (OVERHEAD + FRAGMENT_HEADER_LEN)
        );
        let plan = FragmentPlan::new(1518, 548).unwrap(); // IPv4 minimum MTU 576
        assert_eq!(plan.count, 4);
        assert!(plan.stride() <= 548);
        assert_eq!(FragmentPlan::new(60, 1472).unwrap().stride(), 60 + OVERHEAD);
        assert!(FragmentPlan::new(1518, OVERHEAD + FRAGMENT_HEADER_LEN).is_err());
        assert!(FragmentPlan::new(70_000, 1472).is_err());
        assert!(FragmentPlan::new(64 * 10 + 1, OVERHEAD + FRAGMENT_HEADER_LEN + 10).is_err());
        assert_eq!(
            FragmentPlan::new(640, OVERHEAD + FRAGMENT_HEADER_LEN + 10)
                .unwrap()
                .count,
            64
        );
        assert_eq!(piece_len(1518, 4), 380);
    }

    #[test]
    fn reassembles_in_any_order_and_counts() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let f = frame(1518, 1);
        let mut pieces = cut(&f, 9, 548);
        pieces.reverse();
        let last = pieces.pop().unwrap();
        for p in &pieces {
            assert_eq!(
                r.insert(&as_fragment(p), 5, false, Duration::ZERO),
                Ok(None)
            );
        }
        assert_eq!(r.in_progress(), 1);
        let (got, hops) = r
            .insert(&as_fragment(&last), 3, false, Duration::ZERO)
            .unwrap()
            .unwrap();
        assert_eq!(got, &f[..]);
        assert_eq!(hops, 3);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.stats().completed, 1);
    }

    #[test]
    fn duplicates_are_dropped_and_the_frame_completes() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let f = frame(1514, 2);
        let pieces = cut(&f, 1, 1472);
        assert_eq!(
            r.insert(&as_fragment(&pieces[0]), 8, false, Duration::ZERO),
            Ok(None)
        );
        assert_eq!(
            r.insert(&as_fragment(&pieces[0]), 8, false, Duration::ZERO),
            Err(ReassemblyError::Duplicate {
                frame_id: 1,
                index: 0
            })
        );
        let (got, _) = r
            .insert(&as_fragment(&pieces[1]), 8, false, Duration::ZERO)
            .unwrap()
            .unwrap();
        assert_eq!(got, &f[..]);
        assert_eq!(r.stats().duplicates, 1);
        // A late duplicate after completion starts a new frame, which later expires.
        assert_eq!(
            r.insert(&as_fragment(&pieces[1]), 8, false, Duration::ZERO),
            Ok(None)
        );
        r.handle_timeout(Duration::from_secs(1));
        assert_eq!(r.stats().expired, 1);
    }

    #[test]
    fn interleaved_frames_both_complete() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let (f1, f2) = (frame(1500, 3), frame(1300, 4));
        let (p1, p2) = (cut(&f1, 1, 576), cut(&f2, 2, 576));
        let mut done = Vec::new();
        for i in 0..p1.len().max(p2.len()) {
            for p in [p1.get(i), p2.get(i)].into_iter().flatten() {
                if let Some((got, _)) = r.insert(&as_fragment(p), 1, false, Duration::ZERO).unwrap()
                {
                    done.push(got.to_vec());
                }
            }
        }
        assert_eq!(done.len(), 2);
        assert!(done.contains(&f1) && done.contains(&f2));
    }

    #[test]
    fn lost_fragment_expires_and_time_is_told() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let pieces = cut(&frame(1514, 5), 7, 1472);
        let t0 = Duration::from_millis(100);
        r.insert(&as_fragment(&pieces[0]), 1, false, t0).unwrap();
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        r.handle_timeout(t0 + Duration::from_millis(999));
        assert_eq!(r.in_progress(), 1);
        r.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.stats().expired, 1);
        // The missing piece, arriving late, does not complete anything.
        assert_eq!(
            r.insert(
                &as_fragment(&pieces[1]),
                1,
                false,
                t0 + Duration::from_secs(2)
            ),
            Ok(None)
        );
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_is_evicted() {
        let config = ReassemblyConfig {
            slots: 4,
            ..ReassemblyConfig::default()
        };
        let mut r = Reassembler::new(config);
        for id in 0..1000u32 {
            let pieces = cut(&frame(1518, 6), id, 1472);
            let now = Duration::from_micros(u64::from(id));
            assert_eq!(r.insert(&as_fragment(&pieces[0]), 1, false, now), Ok(None));
            assert!(r.in_progress() <= 4);
            assert!(r.memory() <= 4 * DEFAULT_MAX_FRAME_LEN);
        }
        assert_eq!(r.stats().evicted, 996);
        // The four newest are still there: their second pieces complete them.
        for id in 996..1000u32 {
            let pieces = cut(&frame(1518, 6), id, 1472);
            let now = Duration::from_millis(1);
            assert!(r
                .insert(&as_fragment(&pieces[1]), 1, false, now)
                .unwrap()
                .is_some());
        }
        assert_eq!(r.stats().completed, 4);
    }

    #[test]
    fn inconsistent_and_oversized_fragments_are_refused() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let pieces = cut(&frame(1514, 7), 3, 1472);
        r.insert(&as_fragment(&pieces[0]), 1, false, Duration::ZERO)
            .unwrap();
        // Same frame id, another frame length (a stale frame id reused, or a liar).
        let other = cut(&frame(1500, 7), 3, 1472);
        assert_eq!(
            r.insert(&as_fragment(&other[1]), 1, false, Duration::ZERO),
            Err(ReassemblyError::Inconsistent { frame_id: 3 })
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.stats().inconsistent, 1);
        let big = cut(&frame(1519, 7), 4, 1472);
        assert_eq!(
            r.insert(&as_fragment(&big[0]), 1, false, Duration::ZERO),
            Err(ReassemblyError::TooLong {
                len: 1519,
                max: 1518
            })
        );
        // Numbers that contradict themselves (no `check` was run).
        let bogus = Fragment {
            frame_id: 5,
            frame_len: u16::try_from(ETH_HEADER_LEN).unwrap(),
            index: 70,
            count: 80,
            piece: &[0; 1],
        };
        assert!(matches!(
            r.insert(&bogus, 1, false, Duration::ZERO),
            Err(ReassemblyError::Inconsistent { .. })
        ));
    }
}

//! The pure, I/O-free model of one direction of an emulated link.
//!
//! Nothing in here reads a clock, touches a socket or sleeps: the caller passes
//! the current time ("now", a [`Duration`] since an arbitrary epoch that must be
//! non-decreasing across calls) into [`Direction::offer`] and gets back a
//! [`Verdict`] saying when the frame is to be handed to the far end, or why it
//! was dropped. This makes the model exactly testable with a simulated clock.
//!
//! # What a direction models
//!
//! A frame offered at `now` goes through, in this order:
//!
//! 1. **The bottleneck FIFO** (tail-drop). The FIFO holds every accepted frame
//!    that has not been fully serialised yet, including the one currently on
//!    the wire. A frame is dropped ([`Reason::QueueFull`]) if its bytes plus
//!    the bytes already waiting would exceed [`Shape::queue_bytes`]. An empty
//!    FIFO always accepts one frame, whatever its size, so a queue smaller than
//!    a frame behaves like a one-frame transmit slot rather than a black hole.
//! 2. **Serialisation at the link rate.** A frame starts serialising at
//!    `max(now, end of the previous frame)` and takes `len * 8 / rate_bps`
//!    seconds. Serialisation times are tracked with an exact remainder, so
//!    back-to-back frames are spaced at exactly the rate over any span (no
//!    accumulated rounding). `rate_bps == 0` means unlimited: zero
//!    serialisation time, no queueing, `queue_bytes` is ignored.
//! 3. **Random loss on the wire.** A frame that made it through the queue is
//!    lost with probability [`Shape::loss`] (independent, Bernoulli, drawn from
//!    a seeded RNG). The lost frame still occupied the link for its
//!    serialisation time, as a frame corrupted on a real wire would; loss does
//!    therefore *not* free queue capacity early, and a lossy link does not
//!    deliver more than `rate` worth of frames.
//! 4. **Propagation delay and jitter**, added *after* the queue: the frame is
//!    due at `end_of_serialisation + delay + J`, where `J` is drawn uniformly
//!    from `[-jitter, +jitter]` (integer nanoseconds), and the extra delay is
//!    clamped so that `delay + J >= 0`.
//! 5. **No reordering.** The due time is clamped to be at least the due time
//!    of the previously delivered frame, so frames leave in the order they
//!    arrived. With jitter this biases the delay upwards when frames are
//!    closer together than the jitter span (back-to-back frames under load
//!    tend towards `delay + jitter`); widely spaced frames (e.g. pings) see the
//!    full uniform distribution.
//!
//! Due times are therefore non-decreasing per direction, so the I/O layer can
//! keep frames awaiting delivery in a plain FIFO.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Ethernet frame size of a full-MTU (1500 byte) packet, without FCS: what a
/// TAP device reads and writes.
pub const FULL_FRAME_BYTES: u64 = 1514;

/// TCP payload carried by one full frame at MTU 1500 (MSS with the timestamp option).
pub const TCP_PAYLOAD_BYTES: u64 = 1448;

/// Goodput of one TCP flow that fills a link of `rate_bps` with full frames.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn tcp_goodput_bps(rate_bps: u64) -> f64 {
    rate_bps as f64 * TCP_PAYLOAD_BYTES as f64 / FULL_FRAME_BYTES as f64
}

/// Time to put `len` bytes on a link of `rate_bps` (zero when unlimited).
#[must_use]
pub fn serialisation_time(len: u64, rate_bps: u64) -> Duration {
    if rate_bps == 0 {
        return Duration::ZERO;
    }
    let ns = u128::from(len) * 8 * 1_000_000_000 / u128::from(rate_bps);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Minimum queue size returned by [`bdp_queue_bytes`]: 16 full-size frames
/// (24 224 bytes). Low-delay links have a tiny bandwidth-delay product (100
/// Mbit/s × 0.2 ms ≈ 2.5 kB, less than two frames), which would make TCP
/// (and the emulator's own scheduling noise of a few tens of µs) lose frames
/// constantly; real switch ports buffer at least this much.
pub const QUEUE_FLOOR_BYTES: u64 = 16 * FULL_FRAME_BYTES;

/// Queue size for a bottleneck of `rate_bps` on a path with round-trip time
/// `rtt`: one bandwidth-delay product (`rate × rtt / 8` bytes), but at least
/// [`QUEUE_FLOOR_BYTES`]. One BDP of buffering lets a single loss-based TCP
/// flow keep the link busy. For `rate_bps == 0` (unlimited) the floor is
/// returned (the queue is unused then anyway).
pub fn bdp_queue_bytes(rate_bps: u64, rtt: Duration) -> u64 {
    let bdp = u128::from(rate_bps)
        .checked_mul(rtt.as_nanos())
        .map_or(u128::MAX, |bits_ns| bits_ns / 8 / 1_000_000_000);
    u64::try_from(bdp)
        .unwrap_or(u64::MAX)
        .max(QUEUE_FLOOR_BYTES)
}

/// The shape of one direction of a link.
///
/// Serialised with durations as integer nanoseconds (`delay_ns`, `jitter_ns`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct Shape {
    /// Link rate in bits per second (counting Ethernet frame bytes as read from
    /// the TAP, i.e. header + payload, no preamble/FCS/inter-frame gap).
    /// `0` means unlimited.
    pub rate_bps: u64,
    /// One-way propagation delay, added after the queue.
    #[serde(rename = "delay_ns", with = "duration_ns")]
    pub delay: Duration,
    /// Jitter amplitude: each frame gets an extra delay uniform in
    /// `[-jitter, +jitter]` (never making the total delay negative, never
    /// reordering).
    #[serde(rename = "jitter_ns", with = "duration_ns")]
    pub jitter: Duration,
    /// Probability in `[0, 1]` that a frame is lost on the wire (after the queue).
    pub loss: f64,
    /// Capacity of the bottleneck FIFO in bytes (frames waiting plus the one
    /// being serialised). Ignored when `rate_bps == 0`.
    pub queue_bytes: u64,
}

/// An invalid [`Shape`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    /// `loss` is not a probability.
    #[error("loss must be within [0, 1], got {0}")]
    Loss(f64),
}

impl Shape {
    /// An unlimited, lossless, zero-delay shape (a wire).
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Checks that the parameters make sense.
    pub fn validate(&self) -> Result<(), ShapeError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(ShapeError::Loss(self.loss));
        }
        Ok(())
    }

    /// Serialisation time of a frame of `len` bytes (zero if unlimited).
    pub fn serialisation_time(&self, len: u64) -> Duration {
        serialisation_time(len, self.rate_bps)
    }
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Tail drop: the bottleneck FIFO was full.
    QueueFull,
    /// Random loss on the wire.
    Loss,
}

/// What happens to an offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the frame to the far end at `at` (same epoch as `now`).
    Deliver {
        /// Due time.
        at: Duration,
    },
    /// The frame is dropped.
    Drop(Reason),
}

/// Per-direction counters kept by the model.
///
/// "Delivered" means *scheduled for delivery* by the model; whether the I/O
/// layer then managed to write the frame is counted there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Frames offered.
    pub frames_in: u64,
    /// Bytes offered.
    pub bytes_in: u64,
    /// Frames scheduled for delivery.
    pub frames_delivered: u64,
    /// Bytes scheduled for delivery.
    pub bytes_delivered: u64,
    /// Frames tail-dropped at the queue.
    pub frames_dropped_queue: u64,
    /// Bytes tail-dropped at the queue.
    pub bytes_dropped_queue: u64,
    /// Frames lost on the wire.
    pub frames_dropped_loss: u64,
    /// Bytes lost on the wire.
    pub bytes_dropped_loss: u64,
    /// Largest FIFO occupancy seen (bytes, including the accepted frame).
    pub max_backlog_bytes: u64,
}

impl Counters {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: Reason) -> u64 {
        match reason {
            Reason::QueueFull => self.frames_dropped_queue,
            Reason::Loss => self.frames_dropped_loss,
        }
    }
}

/// The model of one direction of a link. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Direction {
    shape: Shape,
    rng: SmallRng,
    /// Accepted frames not yet fully serialised: (end of serialisation in ns, length).
    fifo: VecDeque<(u64, u64)>,
    /// Sum of the lengths in `fifo`.
    backlog: u64,
    /// End of serialisation of the last accepted frame (ns).
    busy_until: u64,
    /// Fractional nanoseconds of `busy_until`, in units of 1/rate_bps ns.
    busy_rem: u64,
    /// Due time of the last frame scheduled for delivery (ns).
    last_due: u64,
    counters: Counters,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Direction {
    /// A direction with the given shape; `seed` seeds the loss/jitter RNG, so a
    /// given sequence of offers always yields the same verdicts.
    pub fn new(shape: Shape, seed: u64) -> Result<Self, ShapeError> {
        shape.validate()?;
        Ok(Self {
            shape,
            rng: SmallRng::seed_from_u64(seed),
            fifo: VecDeque::new(),
            backlog: 0,
            busy_until: 0,
            busy_rem: 0,
            last_due: 0,
            counters: Counters::default(),
        })
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Bytes in the FIFO (accepted, not fully serialised) at `now`.
    pub fn backlog_bytes(&mut self, now: Duration) -> u64 {
        self.retire(nanos(now));
        self.backlog
    }

    /// Removes the frames whose serialisation ended at or before `now`.
    fn retire(&mut self, now: u64) {
        while let Some(&(end, len)) = self.fifo.front() {
            if end > now {
                break;
            }
            self.fifo.pop_front();
            self.backlog -= len;
        }
    }

    /// Offers a frame of `len` bytes arriving at `now` (non-decreasing across
    /// calls) and decides its fate.
    pub fn offer(&mut self, now: Duration, len: usize) -> Verdict {
        let now = nanos(now);
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        self.counters.frames_in += 1;
        self.counters.bytes_in = self.counters.bytes_in.saturating_add(len);

        // 1 + 2: the FIFO and serialisation.
        let end = if self.shape.rate_bps == 0 {
            now
        } else {
            self.retire(now);
            if self.backlog > 0 && self.backlog.saturating_add(len) > self.shape.queue_bytes {
                self.counters.frames_dropped_queue += 1;
                self.counters.bytes_dropped_queue =
                    self.counters.bytes_dropped_queue.saturating_add(len);
                return Verdict::Drop(Reason::QueueFull);
            }
            let start = if now >= self.busy_until && self.fifo.is_empty() {
                // Idle link: start now, forget any fractional remainder.
                self.busy_rem = 0;
                now
            } else {
                self.busy_until
            };
            let rate = u128::from(self.shape.rate_bps);
            let bit_ns = u128::from(len) * 8 * 1_000_000_000;
            let mut whole = bit_ns / rate;
            // `rem < rate` and `busy_rem < rate`, so this neither overflows nor
            // needs more than one carry.
            let rem = u64::try_from(bit_ns % rate).unwrap_or(0) + self.busy_rem;
            if rem >= self.shape.rate_bps {
                whole += 1;
                self.busy_rem = rem - self.shape.rate_bps;
            } else {
                self.busy_rem = rem;
            }
            let end = start.saturating_add(u64::try_from(whole).unwrap_or(u64::MAX));
            self.busy_until = end;
            self.fifo.push_back((end, len));
            self.backlog += len;
            self.counters.max_backlog_bytes = self.counters.max_backlog_bytes.max(self.backlog);
            end
        };

        // 3: loss on the wire.
        if self.shape.loss > 0.0 && self.rng.gen::<f64>() < self.shape.loss {
            self.counters.frames_dropped_loss += 1;
            self.counters.bytes_dropped_loss = self.counters.bytes_dropped_loss.saturating_add(len);
            return Verdict::Drop(Reason::Loss);
        }

        // 4: propagation delay and jitter.
        let delay = nanos(self.shape.delay);
        let mut due = end.saturating_add(delay);
        let jitter = i64::try_from(nanos(self.shape.jitter)).unwrap_or(i64::MAX);
        if jitter > 0 {
            let offset = self.rng.gen_range(-jitter..=jitter);
            due = if offset >= 0 {
                due.saturating_add(offset.unsigned_abs())
            } else {
                // Never below the end of serialisation (total delay >= 0).
                due.saturating_sub(offset.unsigned_abs()).max(end)
            };
        }

        // 5: no reordering.
        due = due.max(self.last_due);
        self.last_due = due;
        self.counters.frames_delivered += 1;
        self.counters.bytes_delivered = self.counters.bytes_delivered.saturating_add(len);
        Verdict::Deliver {
            at: Duration::from_nanos(due),
        }
    }
}

/// Serde adapter: a [`Duration`] as an integer number of nanoseconds.
pub mod duration_ns {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises `d` as integer nanoseconds (saturating at `u64::MAX`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Deserialises integer nanoseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn due(v: Verdict) -> Duration {
        match v {
            Verdict::Deliver { at } => at,
            Verdict::Drop(r) => panic!("expected delivery, got drop {r:?}"),
        }
    }

    /// 12 Mbit/s: a 1500-byte frame takes exactly 1 ms.
    fn shape_12m(queue_bytes: u64) -> Shape {
        Shape {
            rate_bps: 12_000_000,
            queue_bytes,
            ..Shape::default()
        }
    }

    #[test]
    fn back_to_back_frames_are_spaced_at_the_rate() {
        let mut d = Direction::new(shape_12m(1_000_000), 1).unwrap();
        for i in 1..=10u32 {
            assert_eq!(due(d.offer(Duration::ZERO, 1500)), MS * i);
        }
        assert_eq!(d.counters().frames_delivered, 10);
        assert_eq!(d.counters().max_backlog_bytes, 15_000);
        // Frames arriving later than the link is busy start at their arrival.
        assert_eq!(due(d.offer(ms(100), 1500)), ms(101));
    }

    #[test]
    fn odd_rates_do_not_accumulate_rounding_error() {
        // 7 Mbit/s: 1514 bytes take 1730.2857.. µs, not an integer ns count.
        let shape = Shape {
            rate_bps: 7_000_000,
            queue_bytes: u64::MAX,
            ..Shape::default()
        };
        let mut d = Direction::new(shape, 1).unwrap();
        let mut last = Duration::ZERO;
        for _ in 0..7000 {
            last = due(d.offer(Duration::ZERO, 1514));
        }
        // 7000 frames * 1514 B * 8 / 7e6 = exactly 12.112 s.
        assert_eq!(last, Duration::from_millis(12_112));
    }

    #[test]
    fn queue_overflow_tail_drops() {
        // Room for 4 frames of 1500 bytes.
        let mut d = Direction::new(shape_12m(6000), 1).unwrap();
        for i in 1..=4u32 {
            assert_eq!(due(d.offer(Duration::ZERO, 1500)), MS * i);
        }
        assert_eq!(
            d.offer(Duration::ZERO, 1500),
            Verdict::Drop(Reason::QueueFull)
        );
        // A smaller frame that still fits is accepted behind the others.
        let mut small = Direction::new(shape_12m(6100), 1).unwrap();
        for _ in 0..4 {
            due(small.offer(Duration::ZERO, 1500));
        }
        assert_eq!(
            small.offer(Duration::ZERO, 1500),
            Verdict::Drop(Reason::QueueFull)
        );
        assert_eq!(
            due(small.offer(Duration::ZERO, 100)),
            Duration::from_nanos(4_066_666)
        );
        // After one frame is fully serialised there is room again.
        assert_eq!(d.backlog_bytes(ms(1)), 4500);
        assert_eq!(due(d.offer(ms(1), 1500)), ms(5));
        assert_eq!(d.offer(ms(1), 1500), Verdict::Drop(Reason::QueueFull));
        let c = d.counters();
        assert_eq!(
            (c.frames_in, c.frames_delivered, c.frames_dropped_queue),
            (7, 5, 2)
        );
        assert_eq!(c.bytes_dropped_queue, 3000);
        assert_eq!(c.dropped(Reason::QueueFull), 2);
    }

    #[test]
    fn frame_being_serialised_counts_until_fully_sent() {
        let mut d = Direction::new(shape_12m(3000), 1).unwrap();
        due(d.offer(Duration::ZERO, 1500));
        due(d.offer(Duration::ZERO, 1500));
        // Half-way through the first frame: it still occupies the queue.
        assert_eq!(
            d.offer(Duration::from_micros(500), 1500),
            Verdict::Drop(Reason::QueueFull)
        );
        assert_eq!(due(d.offer(ms(1), 1500)), ms(3));
    }

    #[test]
    fn empty_queue_accepts_one_oversized_frame() {
        let mut d = Direction::new(shape_12m(100), 1).unwrap();
        assert_eq!(due(d.offer(Duration::ZERO, 1500)), ms(1));
        assert_eq!(
            d.offer(Duration::ZERO, 60),
            Verdict::Drop(Reason::QueueFull)
        );
        assert_eq!(due(d.offer(ms(1), 1500)), ms(2));
    }

    #[test]
    fn delay_is_added_after_queueing() {
        let shape = Shape {
            delay: ms(30),
            ..shape_12m(1_000_000)
        };
        let mut d = Direction::new(shape, 1).unwrap();
        for i in 1..=5u32 {
            assert_eq!(due(d.offer(Duration::ZERO, 1500)), ms(30) + MS * i);
        }
        // The queue drains at the rate independently of the delay: at 5 ms the
        // queue is empty although nothing has been delivered yet.
        assert_eq!(d.backlog_bytes(ms(5)), 0);
        assert_eq!(due(d.offer(ms(5), 1500)), ms(36));
    }

    #[test]
    fn unlimited_rate_only_delays() {
        let shape = Shape {
            delay: ms(10),
            queue_bytes: 0,
            ..Shape::default()
        };
        let mut d = Direction::new(shape, 1).unwrap();
        for _ in 0..10_000 {
            assert_eq!(due(d.offer(ms(3), 65_000)), ms(13));
        }
        assert_eq!(d.counters().frames_dropped_queue, 0);
        assert_eq!(d.counters().bytes_delivered, 650_000_000);
        let mut wire = Direction::new(Shape::unlimited(), 1).unwrap();
        assert_eq!(due(wire.offer(ms(7), 60)), ms(7));
    }

    #[test]
    fn jitter_never_reorders_and_stays_in_bounds() {
        let shape = Shape {
            rate_bps: 100_000_000,
            delay: ms(5),
            jitter: ms(2),
            queue_bytes: u64::MAX,
            ..Shape::default()
        };
        let mut d = Direction::new(shape, 42).unwrap();
        let mut last = Duration::ZERO;
        let mut now = Duration::ZERO;
        let mut min_extra = Duration::MAX;
        let mut max_extra = Duration::ZERO;
        for i in 0..20_000u64 {
            // Mix bursts and gaps.
            now += Duration::from_micros(if i % 100 < 50 { 0 } else { 400 });
            let at = due(d.offer(now, 1000));
            assert!(at >= last, "reordered: {at:?} < {last:?}");
            last = at;
            let end = d.busy_until;
            let extra = at - Duration::from_nanos(end);
            min_extra = min_extra.min(extra);
            max_extra = max_extra.max(extra);
        }
        // Without clamping, total delay lies in [3 ms, 7 ms]; the no-reordering
        // clamp can only push later, bounded by the previous frame's due time.
        assert!(min_extra >= ms(3), "min {min_extra:?}");
        assert!(max_extra <= ms(7), "max {max_extra:?}");
    }

    #[test]
    fn jitter_on_sparse_frames_is_uniform_around_delay() {
        let shape = Shape {
            delay: ms(10),
            jitter: ms(4),
            ..Shape::default()
        };
        let mut d = Direction::new(shape, 7).unwrap();
        let n = 20_000u64;
        let mut sum = 0f64;
        let (mut lo, mut hi) = (f64::MAX, 0f64);
        for i in 0..n {
            // 1 s apart: the no-reordering clamp never kicks in.
            let now = Duration::from_secs(i);
            let extra = (due(d.offer(now, 100)) - now).as_secs_f64() * 1e3;
            sum += extra;
            lo = lo.min(extra);
            hi = hi.max(extra);
        }
        let mean = sum / n as f64;
        assert!((mean - 10.0).abs() < 0.05, "mean {mean} ms");
        assert!((6.0..6.01).contains(&lo), "min {lo}");
        assert!(hi > 13.99 && hi <= 14.0, "max {hi}");
    }

    #[test]
    fn jitter_larger_than_delay_never_goes_negative() {
        let shape = Shape {
            delay: ms(1),
            jitter: ms(5),
            ..Shape::default()
        };
        let mut d = Direction::new(shape, 3).unwrap();
        for i in 0..10_000u64 {
            let now = Duration::from_secs(i);
            assert!(due(d.offer(now, 100)) >= now);
        }
    }

    #[test]
    fn loss_rate_is_statistically_right() {
        for &(p, seed) in &[(0.01, 1u64), (0.1, 2), (0.5, 3)] {
            let shape = Shape {
                loss: p,
                ..Shape::default()
            };
            let mut d = Direction::new(shape, seed).unwrap();
            let n = 100_000u64;
            for _ in 0..n {
                d.offer(Duration::ZERO, 100);
            }
            let lost = d.counters().frames_dropped_loss as f64;
            let expected = p * n as f64;
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (lost - expected).abs() < 4.0 * sigma,
                "p={p}: lost {lost}, expected {expected} ± {sigma}"
            );
            assert_eq!(
                d.counters().frames_delivered + d.counters().frames_dropped_loss,
                n
            );
        }
    }

    #[test]
    fn loss_is_deterministic_for_a_seed() {
        let shape = Shape {
            loss: 0.3,
            jitter: ms(1),
            ..Shape::default()
        };
        let run = |seed| {
            let mut d = Direction::new(shape, seed).unwrap();
            (0..1000u64)
                .map(|i| d.offer(Duration::from_secs(i), 100))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn lost_frames_still_occupy_the_link() {
        let shape = Shape {
            loss: 1.0,
            ..shape_12m(3000)
        };
        let mut d = Direction::new(shape, 1).unwrap();
        assert_eq!(d.offer(Duration::ZERO, 1500), Verdict::Drop(Reason::Loss));
        assert_eq!(d.offer(Duration::ZERO, 1500), Verdict::Drop(Reason::Loss));
        // Both lost frames are still being serialised: the queue is full.
        assert_eq!(
            d.offer(Duration::ZERO, 1500),
            Verdict::Drop(Reason::QueueFull)
        );
        assert_eq!(d.backlog_bytes(ms(2)), 0);
    }

    #[test]
    fn invalid_loss_is_rejected() {
        for loss in [-0.1, 1.5, f64::NAN] {
            let shape = Shape {
                loss,
                ..Shape::default()
            };
            assert!(Direction::new(shape, 1).is_err(), "loss {loss} accepted");
        }
    }

    #[test]
    fn bdp_queue_has_a_floor() {
        assert_eq!(bdp_queue_bytes(100_000_000, ms(1)), QUEUE_FLOOR_BYTES);
        assert_eq!(bdp_queue_bytes(100_000_000, ms(2)), 25_000);
        assert_eq!(bdp_queue_bytes(100_000_000, ms(60)), 750_000);
        assert_eq!(bdp_queue_bytes(0, ms(60)), QUEUE_FLOOR_BYTES);
        assert_eq!(bdp_queue_bytes(u64::MAX, Duration::MAX), u64::MAX);
    }

    #[test]
    fn shape_serde_uses_integer_nanoseconds() {
        let shape = Shape {
            rate_bps: 10_000_000,
            delay: Duration::from_micros(1500),
            jitter: Duration::from_nanos(7),
            loss: 0.25,
            queue_bytes: 9000,
        };
        let json = serde_json::to_value(shape).unwrap();
        assert_eq!(json["delay_ns"], 1_500_000);
        assert_eq!(json["jitter_ns"], 7);
        let back: Shape = serde_json::from_value(json).unwrap();
        assert_eq!(back, shape);
    }

    #[test]
    fn serialisation_time() {
        assert_eq!(shape_12m(0).serialisation_time(1500), ms(1));
        assert_eq!(Shape::unlimited().serialisation_time(1500), Duration::ZERO);
    }
}

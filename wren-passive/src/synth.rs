//! A deterministic synthetic path, for tests and benchmarks: a sender's bursty trains and
//! Poisson cross traffic through one FIFO bottleneck of known capacity, a propagation delay,
//! and both ends' captures as [`Record`]s, the receiver's clock offset and drifting.
//!
//! The model: host A sends trains to host B. Each train has a number of datagrams
//! ([`Scenario::train_packets`]) sent in groups of [`Scenario::batch`] at one instant (as
//! vnetd sends a frame's fragments in one `UDP_SEGMENT` message), the groups paced at a rate
//! drawn log-uniformly from [`Scenario::rate_range`] (times the capacity), with an idle pause
//! between trains (a BSP compute phase). Cross traffic (not captured: other hosts' packets)
//! joins the same FIFO as a Poisson stream of [`Scenario::cross_fraction`] of the capacity.
//! The FIFO drains at the capacity, holds at most [`Scenario::queue_s`] of it (drop-tail),
//! then the propagation delay applies. B answers every second datagram with a small one
//! (an acknowledgement's worth) over an uncongested reverse path of the same delay, and A
//! sends a keepalive every second that B echoes, so round trips exist both ways.
//!
//! Truth: the available bandwidth is `capacity × (1 − cross_fraction)`.

use std::net::SocketAddr;

use crate::record::{Direction, MsgType, Record};

/// SplitMix64: a small, seeded, portable generator (deterministic across platforms).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random bits: exactly representable.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Exponential with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// A synthetic path.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Bottleneck capacity (bit/s of Ethernet frames).
    pub capacity_bps: f64,
    /// One-way propagation delay (s).
    pub delay_s: f64,
    /// Cross traffic as a fraction of the capacity (0 to below 1).
    pub cross_fraction: f64,
    /// Cross traffic's frame size (bytes on the wire).
    pub cross_len: u32,
    /// The sender's datagram size (bytes on the wire; 847 is a 1514-byte frame's fragment).
    pub packet_len: u32,
    /// Datagrams per send instant.
    pub batch: usize,
    /// Datagrams per train: uniform in this range.
    pub train_packets: (usize, usize),
    /// Train rates as multiples of the capacity: log-uniform in this range.
    pub rate_range: (f64, f64),
    /// Pause between trains (s): uniform in this range.
    pub idle_s: (f64, f64),
    /// How long the sender sends (s).
    pub duration_s: f64,
    /// The bottleneck's queue, in seconds of its capacity.
    pub queue_s: f64,
    /// The receiver's clock: offset from the sender's (ns).
    pub offset_ns: i64,
    /// The receiver's clock: drift against the sender's (e.g. 1e-4).
    pub drift: f64,
    /// The start, in the sender's clock (ns since the epoch).
    pub start_ns: i64,
    /// The generator's seed.
    pub seed: u64,
}

impl Scenario {
    /// A path of `capacity_bps`, `delay_s` and `cross_fraction` with the defaults: 847-byte
    /// datagrams in pairs, trains of 20 to 90 datagrams at 0.2 to 2 times the capacity, 50 to
    /// 300 ms pauses, 5 s of sending, a 100 ms queue, a receiver clock 1.5 s ahead drifting
    /// 50 ppm, seed 1.
    pub fn new(capacity_bps: f64, delay_s: f64, cross_fraction: f64) -> Self {
        Scenario {
            capacity_bps,
            delay_s,
            cross_fraction,
            cross_len: 1514,
            packet_len: 847,
            batch: 2,
            train_packets: (20, 90),
            rate_range: (0.2, 2.0),
            idle_s: (0.05, 0.3),
            duration_s: 5.0,
            queue_s: 0.1,
            offset_ns: 1_500_000_000,
            drift: 5e-5,
            start_ns: 1_700_000_000_000_000_000,
            seed: 1,
        }
    }

    /// The true available bandwidth (bit/s).
    pub fn available_bps(&self) -> f64 {
        self.capacity_bps * (1.0 - self.cross_fraction)
    }

    /// The true minimum round trip of the sender's datagram and the reverse path's smallest
    /// (s): propagation both ways plus serialisation at the bottleneck.
    pub fn min_rtt_s(&self) -> f64 {
        2.0 * self.delay_s + f64::from(self.packet_len + ACK_LEN) * 8.0 / self.capacity_bps
    }
}

/// The reverse path's datagram size.
const ACK_LEN: u32 = 110;

/// The two hosts of synthetic paths.
pub fn hosts() -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::from(([10, 200, 0, 1], 5400)),
        SocketAddr::from(([10, 200, 0, 2], 5400)),
    )
}

#[derive(Debug, Clone, Copy)]
struct Arrival {
    t: f64,
    len: u32,
    /// `Some(seq)` for the sender's datagrams, `None` for cross traffic.
    seq: Option<u64>,
}

fn ns(t_s: f64) -> i64 {
    // Times are at most hours: far inside i64's range of ns.
    #[allow(clippy::cast_possible_truncation)]
    let n = (t_s * 1e9).round() as i64;
    n
}

/// Both ends' records of the scenario (A's capture: its sent datagrams, B's acknowledgements
/// and echoes received; B's capture: what it received and sent), in no particular order.
pub fn generate(s: &Scenario) -> Vec<Record> {
    let mut rng = Rng::new(s.seed);
    let (a, b) = hosts();
    let (sess_a, sess_b) = (0xA0_0001, 0xB0_0001);
    // The sender's trains.
    let mut ours = Vec::new();
    let mut t = 0.0;
    let mut seq = 0u64;
    let (lo, hi) = s.rate_range;
    while t < s.duration_s {
        let span = s.train_packets.1.saturating_sub(s.train_packets.0) + 1;
        let extra = usize::try_from(rng.next_u64() % u64::try_from(span).unwrap_or(1)).unwrap_or(0);
        let n = s.train_packets.0 + extra;
        let rate = s.capacity_bps * (lo.ln() + (hi.ln() - lo.ln()) * rng.unit()).exp();
        let batch = s.batch.max(1);
        let gap =
            f64::from(s.packet_len) * 8.0 * f64::from(u32::try_from(batch).unwrap_or(1)) / rate;
        for i in 0..n {
            if i > 0 && i % batch == 0 {
                t += gap;
            }
            ours.push(Arrival {
                t,
                len: s.packet_len,
                seq: Some(seq),
            });
            seq += 1;
        }
        t += gap + rng.range(s.idle_s.0, s.idle_s.1);
    }
    // Cross traffic over the whole time, and a little before (a queue already in place).
    let mut arrivals = ours.clone();
    if s.cross_fraction > 0.0 {
        let mean = f64::from(s.cross_len) * 8.0 / (s.capacity_bps * s.cross_fraction);
        let mut c = -0.5;
        while c < t + 1.0 {
            c += rng.exp(mean);
            arrivals.push(Arrival {
                t: c,
                len: s.cross_len,
                seq: None,
            });
        }
    }
    arrivals.sort_by(|x, y| x.t.total_cmp(&y.t));
    let mut out = Vec::new();
    let mut free_at = f64::NEG_INFINITY;
    let recv_clock = |t_true: f64| s.start_ns + s.offset_ns + ns(t_true) + ns(t_true * s.drift);
    let mut acks = 0u64;
    let mut pending_ack = false;
    for arr in arrivals {
        let service = f64::from(arr.len) * 8.0 / s.capacity_bps;
        let start = free_at.max(arr.t);
        if let Some(q) = arr.seq {
            // The sender's capture sees it whether or not the bottleneck drops it.
            out.push(Record {
                t_ns: s.start_ns + ns(arr.t),
                dir: Direction::Tx,
                src: a,
                dst: b,
                len: arr.len,
                msg: MsgType::Fragment,
                session: sess_a,
                seq: q,
                batch: 0,
            });
        }
        if start - arr.t > s.queue_s {
            continue; // dropped at the tail
        }
        free_at = start + service;
        let Some(q) = arr.seq else { continue };
        let arrive = free_at + s.delay_s;
        out.push(Record {
            t_ns: recv_clock(arrive),
            dir: Direction::Rx,
            src: a,
            dst: b,
            len: arr.len,
            msg: MsgType::Fragment,
            session: sess_a,
            seq: q,
            batch: 0,
        });
        // Every second datagram is acknowledged at once over the idle reverse path.
        if pending_ack {
            let sent = arrive + 20e-6;
            let back = sent + f64::from(ACK_LEN) * 8.0 / s.capacity_bps + s.delay_s;
            for (dir, t_ns) in [
                (Direction::Tx, recv_clock(sent)),
                (Direction::Rx, s.start_ns + ns(back)),
            ] {
                out.push(Record {
                    t_ns,
                    dir,
                    src: b,
                    dst: a,
                    len: ACK_LEN,
                    msg: MsgType::Frame,
                    session: sess_b,
                    seq: acks,
                    batch: 0,
                });
            }
            acks += 1;
        }
        pending_ack = !pending_ack;
    }
    // A keepalive every second from A (its own sequence numbers follow the data's) and B's
    // echo 30 µs after it arrives.
    let mut k = 0.5;
    let mut kseq = seq;
    while k < s.duration_s {
        let arrive = k + s.delay_s + 100.0 * 8.0 / s.capacity_bps;
        let back = arrive + 30e-6 + s.delay_s + 100.0 * 8.0 / s.capacity_bps;
        out.push(Record {
            t_ns: s.start_ns + ns(k),
            dir: Direction::Tx,
            src: a,
            dst: b,
            len: 100,
            msg: MsgType::Keepalive,
            session: sess_a,
            seq: kseq,
            batch: 0,
        });
        out.push(Record {
            t_ns: s.start_ns + ns(back),
            dir: Direction::Rx,
            src: b,
            dst: a,
            len: 100,
            msg: MsgType::KeepaliveEcho,
            session: sess_b,
            seq: acks,
            batch: 0,
        });
        kseq += 1;
        acks += 1;
        k += 1.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_plausible() {
        let s = Scenario::new(1e6, 0.001, 0.5);
        let r1 = generate(&s);
        assert_eq!(r1, generate(&s));
        let sent = r1
            .iter()
            .filter(|r| r.dir == Direction::Tx && r.src == hosts().0 && r.msg == MsgType::Fragment)
            .count();
        assert!(sent > 100, "{sent}");
        let mut rng = Rng::new(7);
        let mean: f64 = (0..10_000).map(|_| rng.exp(2.0)).sum::<f64>() / 10_000.0;
        assert!((mean - 2.0).abs() < 0.1);
    }
}

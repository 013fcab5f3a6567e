//! Wren, passively: available bandwidth, throughput and latency between the overlay's hosts,
//! read from the timing of the packets the application already sends (seed 004 §5; Zangrilli
//! and Lowekamp's Wren). Wren sends nothing itself: its probe traffic is zero bytes.
//!
//! # Parts
//!
//! - [`capture`]: libpcap on a host's underlay interface, vnetd's link datagrams only
//!   (a BPF filter on its ports), headers only (snaplen 66), kernel timestamps at
//!   nanosecond precision, into a bounded [`ring`] (drop-oldest by default, counted).
//! - [`record`]: the [`Record`] of one datagram — time, direction, the two daemons'
//!   addresses, wire size, and from vnetd's clear-text header the message type, the
//!   sender's session and the sequence number — and the parser that never panics.
//! - [`train`], [`estimate`]: pure code over records: matching, trains, trends, and per
//!   directed host pair a [`PathEstimate`]. [`stats`] has the statistics (statrs).
//! - [`synth`]: a seeded bottleneck model that makes records with a known truth, for tests
//!   and the later `bench wren`.
//!
//! # The measurement design, and why
//!
//! **One-way delays from both ends, matched by vnetd's header.** Every vnetd datagram
//! carries in clear its sender's session id and a sequence number per link and session,
//! never reused (`vnetd/src/wire.rs`). `(source, destination, session, sequence)` therefore
//! names one datagram, and the sender's capture (its send time) and the receiver's (its
//! arrival time) can be matched exactly, without reading a byte of payload, without guessing,
//! and whatever the reordering. That gives what active tools have: per datagram a send time
//! and a one-way delay. Other designs were weaker here: the payload (and so TCP's timing
//! inside it) is encrypted; receiver dispersion alone does not know the sending rate;
//! keepalive round trips exist only on idle links (a busy link sends one every 5 s), so they
//! give latency, not bandwidth. The price: the two ends' records must meet in one estimator
//! (serving's job: each host ships its records to the Proxy, about 6 bytes a datagram on the
//! wire; see below).
//!
//! **Self-induced congestion** (pathload's principle, on the application's own bursts):
//! records are cut into trains at the sender's pauses; per train its sending rate and the
//! slope of its one-way delays against send time, with a confidence interval. A train sent
//! faster than the available bandwidth `A` queues at the bottleneck and its delays rise with
//! slope `(R − A) / C`; one sent slower leaves them flat. The available bandwidth is
//! bracketed between the fastest flat train and the slowest rising one. The number comes from
//! the probe-gap model on the same datagrams: vnetd's batches (a frame's fragments, sent in
//! one instant) leave the bottleneck back to back and give its capacity `C`; wherever the
//! bottleneck stayed busy between two consecutive datagrams of the link, their arrival
//! spacing counts the cross traffic that came between them: `A = C − X`. Where there are no
//! batches, a least-squares fit of the hinge above places `A` in the bracket ([`estimate`]).
//!
//! **Clocks are never trusted.** Trends are differences within a train, so the clocks'
//! offset cancels; their drift (linear) is estimated from the minima of the delays and
//! removed; the round-trip time sums the two directions' minimum delays taken at one
//! instant, where the offset cancels again. In the testbed all namespaces share one clock;
//! the estimator does not rely on it (the tests use a receiver clock 1.5 s ahead, drifting).
//! Only windows and ages assume the hosts' clocks agree within
//! [`Params::clock_tolerance_ns`] (2 s; NTP gives milliseconds).
//!
//! **Where timestamps are taken.** The kernel stamps a packet at the packet tap: on send,
//! after the interface's qdisc (so a `tbf` on the sender's own NIC has already spaced the
//! packets: a bottleneck at the sender's own interface shows as its departure spacing, not
//! as a delay trend, and Wren then sees that link's throughput rather than its available
//! bandwidth); on receive, before the stack. vnetd sends a frame's datagrams as one
//! `UDP_SEGMENT` message, which a capture on a virtual NIC sees as one super-packet:
//! [`record`] expands it into its datagrams (all with one timestamp: a *batch*, which trains
//! treat as sent in one instant). A capture on a physical NIC, or on the receiving side of an
//! emulated link, sees wire-sized packets.
//!
//! # Serving, and why a daemon of its own
//!
//! - [`ship`]: each host's agent ships its capture's records to the collector in compact,
//!   batched, HMAC-authenticated UDP datagrams (about 6 bytes a record, every 200 ms), keyed
//!   with the overlay's pre-shared key (vnetd's key file and HMAC).
//! - [`collector`]: the collector's pure state: the agents' datagrams (authenticated, replays
//!   refused) and its own capture into one [`Estimator`]; every directed pair of the hosts
//!   file's daemons watched, so idle pairs are reported as unknown rather than missing.
//! - [`matrix`]: what it serves — the host×host [`Matrix`] (JSON schema there), its
//!   Prometheus text, and the client VADAPT calls: [`fetch_matrix`], [`fetch_pair`].
//! - The binary `wrend`: `wrend agent` on every host, `wrend collector` on the Proxy (HTTP
//!   `/metrics`, `/matrix`, `/pair?from=A&to=B`, served by vnetd's small HTTP helper), and
//!   `wrend query`.
//!
//! Wren runs as **its own small daemon, not as a mode of vnetd**: vnetd's data path (one
//! thread, every frame of the host) stays exactly as it is, with no capture thread, no
//! estimator and no extra socket beside it; Wren's CPU and memory are its own process's,
//! measurable apart (`bench wren`) and bounded (the capture's ring); Wren can be started,
//! stopped or restarted without touching the overlay; and a capture on the interface sees
//! what the wire sees (the kernel's timestamps after the qdisc), which is what the
//! estimator needs, where a mode of vnetd would see its own send calls. The price is one
//! more process per host and one more socket to authenticate, both small. The Proxy's
//! collector, rather than every host, holds the estimator: every path's two ends must meet
//! in one place, and the Proxy already reaches every host (the star) and is where VADAPT
//! runs. What the agents ship crosses the measured links: it is counted
//! (`wren_reporter_bytes_total`) and measured on the wire (`bench wren`'s `probe_bytes`).
//! It goes to the collector's own port (5410), outside the capture's filter, so Wren never
//! measures its own reports.
//!
//! # Units
//!
//! Bandwidths in bit/s of Ethernet frames (14-byte header included, no preamble or FCS: what
//! `tbf` and the testbed's link emulator count); times in seconds in estimates, nanoseconds
//! since the Unix epoch in records; ages in seconds; drift dimensionless.
//!
//! # Unknown, and how VADAPT should treat it
//!
//! Every figure is a [`Measure`]: [`Measure::Known`] with its [`Estimate`] (value, interval,
//! confidence level, how many trains/bins/samples, age, method), or [`Measure::Unknown`] with
//! an [`Unknown`] reason — no traffic; one end's records only; too few trains; every train
//! flat (with the lower bound it proves); every train rising (with the upper bound);
//! contradictory trains; observed too briefly; no round-trip sample. Wren never makes a
//! number up. On the star, hosts only talk to the Proxy, so host↔Proxy paths are measured
//! from the start and host↔host paths only once fast paths carry traffic.
//!
//! VADAPT should treat an unknown figure as *unmeasured*, never as zero (which would forbid
//! a path that may be good) nor as infinite (which would pile traffic on a path that may be
//! poor): use the scenario's configured (or otherwise provisioned) rate as a prior with low
//! confidence, clip that prior to the bounds an [`Unknown::AllTrainsFlat`] or
//! [`Unknown::AllTrainsRising`] gives, prefer known figures when ranking paths, and let
//! known estimates replace the prior as soon as they come — weighting them by their interval
//! and their age (an old estimate decays toward the prior).

pub mod capture;
pub mod collector;
pub mod estimate;
pub mod matrix;
pub mod record;
pub mod ring;
pub mod ship;
pub mod stats;
pub mod synth;
pub mod train;

pub use capture::{Capture, CaptureConfig, CaptureError, CaptureStats};
pub use estimate::{
    estimate_path, Estimate, Estimator, Measure, Method, Params, ParamsError, Path, PathEstimate,
    Report, Unknown,
};
pub use matrix::{fetch_matrix, fetch_pair, ClientError, Matrix, PairEstimate};
pub use record::{parse_packet, Direction, LinkType, MsgType, Packet, ParseError, Record};
pub use ring::{DropPolicy, Ring};
pub use train::{Train, TrainParams, Trend};

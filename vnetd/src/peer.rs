//! The liveness of one overlay link, as pure state: handshake, keepalives, dead-peer
//! detection and reconnection with backoff.
//!
//! A [`Peer`] is the state machine of one configured link, seen from one end. Like the rest
//! of the link protocol ([`crate::wire`]) it never reads a clock or touches a socket: the
//! current time (`now: Duration`, from any monotonic origin the caller picks, the same for
//! every call) and what arrived go in; what to send, what changed and when to call again come
//! out. The daemon's I/O layer owns the sockets, the [`LinkTx`](crate::wire::LinkTx) /
//! [`LinkRx`](crate::wire::LinkRx) pair and one timer per link, and drives a `Peer` like
//! this:
//!
//! | the I/O layer saw                                   | it calls                              |
//! |-----------------------------------------------------|---------------------------------------|
//! | [`Received::Hello`] (after `tx.set_peer_session`)   | [`Peer::handle_hello`]                |
//! | [`Received::Keepalive`]                             | [`Peer::handle_keepalive`]            |
//! | [`Received::KeepaliveEcho`]                         | [`Peer::handle_echo`]                 |
//! | [`Received::Frame`] or [`Received::Fragment`]       | [`Peer::handle_datagram`]             |
//! | [`RxError::UnknownSession`], [`RxError::WrongReceiver`] on this link | [`Peer::hello_requested`] |
//! | TCP: connection established / refused, reset, closed | [`Peer::transport_connected`] / [`Peer::transport_failed`] |
//! | the deadline of [`Peer::poll_timeout`] passed       | [`Peer::handle_timeout`]              |
//!
//! and after each of these calls it drains [`Peer::poll_transmit`] (sealing each
//! [`Transmit`] with the link's `LinkTx` and sending it at once) and [`Peer::poll_event`]
//! ([`Event::Up`] → `Table::link_up`, [`Event::Down`] → `Table::link_down`,
//! [`Event::Reconnect`] → dial the TCP connection anew), then re-arms its timer at
//! [`Peer::poll_timeout`]. Only authentic datagrams are reported: everything that failed
//! [`LinkRx::open`](crate::wire::LinkRx::open) is dropped and counted by the I/O layer, so a
//! forger can neither keep a dead link up nor take a live one down.
//!
//! [`Received::Hello`]: crate::wire::Received::Hello
//! [`Received::Keepalive`]: crate::wire::Received::Keepalive
//! [`Received::KeepaliveEcho`]: crate::wire::Received::KeepaliveEcho
//! [`Received::Frame`]: crate::wire::Received::Frame
//! [`Received::Fragment`]: crate::wire::Received::Fragment
//! [`RxError::UnknownSession`]: crate::wire::RxError::UnknownSession
//! [`RxError::WrongReceiver`]: crate::wire::RxError::WrongReceiver
//!
//! # States
//!
//! ```text
//!              hello attempts (active)                 keepalive from the peer,
//!   ┌──────────────┐  or answers (passive)  ┌──────┐   or echo of ours
//!   │ Connecting / │ ─────────────────────▶ │  Up  │
//!   │    Down      │ ◀───────────────────── │      │
//!   └──────────────┘  silence, peer restart, └──────┘
//!                     "peer does not hear us", TCP failure
//! ```
//!
//! - [`State::Connecting`]: not up, and this end is trying: it sends hellos (and, over
//!   TCP, dials) on a backoff schedule. Where an [`Initiative::Active`] end sits whenever the
//!   link is not up.
//! - [`State::Down`]: not up, and this end waits for the peer to try; it answers whatever
//!   comes. Where an [`Initiative::Passive`] end sits whenever the link is not up.
//! - [`State::Up`]: the link carries frames both ways, as far as the evidence goes.
//!
//! [`Event::Up`] and [`Event::Down`] are emitted on the transitions into and out of `Up`
//! only, so they alternate, starting with `Up`; a link is down until the first `Up`.
//!
//! # Who initiates
//!
//! Each end is active or passive ([`Initiative`], [`Initiative::for_link`] gives the
//! default):
//!
//! - *Star links*: the host is active, the Proxy passive. The Proxy is the one address every
//!   host can reach; hosts may sit behind NATs and firewalls the Proxy cannot get through
//!   unasked, and after a Proxy restart every host finds it again by itself ("star links
//!   reconnect by themselves with backoff"). Over TCP the host dials.
//! - *Fast paths over UDP*: both ends are active. Either end then finds the other after a
//!   restart or a cut, and two hosts behind NATs only get through when both send (hole
//!   punching). The cost is a second stream of hellos while the link is down, a few
//!   datagrams per second.
//! - *Fast paths over TCP*: only one connection per link is wanted, so exactly one end dials:
//!   the one with the lexically smaller name. No simultaneous-open tie-break is needed.
//!
//! A passive end still answers everything, and [`Peer::hello_requested`] lets the I/O layer
//! make it speak first when it knows the peer's address (a restarted Proxy with persisted
//! links, say).
//!
//! # Handshake: when a link is up
//!
//! A link is up when this end has proof that datagrams crossed *both ways* recently, and
//! knows the peer's session (hellos tell it; without it nothing but hellos can be sealed).
//! The proof is either an echo of a keepalive this end sent since the link last went down,
//! or a keepalive from the peer — which the peer sends only when it is up itself (and so
//! heard this end within its detection bound) or in answer to this end's hello. A hello is
//! never proof: it is what a peer sends when it does *not* consider the link up; nor are
//! data frames (a straggler from before a cut would bring a dead link up). The answers:
//!
//! - a hello that asks for one ([`HelloOutcome::reply_wanted`]: the peer does not know this
//!   end's session) is answered with a hello;
//! - any other hello is answered with a keepalive, which is the proof the peer needs;
//! - every keepalive is echoed, whatever the state.
//!
//! A hello answers only a hello that asked, and keepalives are answered only by echoes, so
//! no exchange can loop. From scratch, with A active and B passive:
//!
//! ```text
//! A ── hello (your session: ?) ──▶ B    B learns A's session
//! A ◀── hello (your session: A) ── B    A learns B's session; B knows A's
//! A ── keepalive ────────────────▶ B    B: up
//! A ◀── echo ───────────────────── B    A: up, with a first RTT sample
//! ```
//!
//! B is up after one round trip from its hello, A after two (with both ends active the
//! hellos cross and both are up after about one and a half). When both sessions are already
//! known (after a cut heals), one hello and its keepalive answer bring the link up again.
//!
//! An end that goes up on the peer's keepalive sends one back (besides the echo): its echo
//! gives this end an RTT sample too.
//!
//! # Keepalives and dead-peer detection
//!
//! Every authentic datagram from the peer — hello, keepalive, echo, frame, fragment — proves
//! it is alive. While up, this end sends a keepalive (a *probe*) when it has *received*
//! nothing for the keepalive interval `K`, and repeats it every `K/2` for as long as nothing
//! arrives; the peer echoes each one. Traffic in the receiving direction therefore
//! suppresses probes entirely: a link busy both ways sends no keepalives at all (but one
//! every [`PeerConfig::rtt_refresh`], 5 s, so the RTT stays current). Asymmetric traffic
//! works out by itself: an end that only sends frames hears nothing, so it probes and hears
//! the echoes; an end that only receives has all the proof it needs and stays quiet. An
//! idle link costs one probe and one echo per `K` and direction.
//!
//! The link goes down when nothing authentic arrived for the *detection bound*
//! `D' = max(D, K + 2 RTO)` ([`Peer::dead_timeout`]), with `D` = [`PeerConfig::dead_after`]
//! and RTO RFC 6298's timeout from the RTT estimate: on the testbed's paths `D' = D`, and a
//! path whose round trip approaches `D` gets a bound long enough for an echo to come back.
//! With the defaults (`K` = 250 ms, `D` = 1 s) six probes go out, at 250, 375, …, 875 ms of
//! silence, before the link is declared dead, and the last one has 125 ms to be answered. A
//! false alarm needs six probes or their echoes lost in a row (with 5 % loss each way,
//! about once in 10^6 such rounds; the retries at `K/2` are what buy this, at no cost while
//! the link is healthy); on an idle link the peer's own probes count too.
//!
//! **One-way cuts.** An end that hears the peer but is not heard by it would stay up and
//! black-hole its frames. The peer, hearing nothing, goes down and sends hellos; a hello from
//! the peer's *current* session while this end is up therefore means "I do not hear you".
//! This end then *suspects* the link: it probes at once, and unless an echo of a probe sent
//! since the suspicion arrives within `max(K, 2 RTO)`, the link goes down
//! ([`DownReason::NotHeard`]). The probe settles the harmless case — a hello that was in
//! flight while the handshake completed, or a peer that lost a few datagrams and went down
//! while this end was fine — without a flap.
//!
//! # Reconnection and backoff
//!
//! An active end that is not up makes *attempts*: over UDP an attempt is a hello, over TCP
//! it is [`Event::Reconnect`] (dial, and send one hello once [`Peer::transport_connected`]:
//! a stream loses nothing, so hellos are not repeated on a connection).
//! The first attempt goes out at once (at creation or when the link goes down), the next
//! after 100 ms, then 200, 400, 800 ms and every 1.6 s from then on ([`Backoff`]: doubling
//! from [`PeerConfig::backoff_initial`] to [`PeerConfig::backoff_max`], shortened by up to
//! 25 % of jitter so that hosts that lost the Proxy together do not call it in step). Jitter
//! only shortens, so the cap is a hard bound: a peer that comes back is found within 1.6 s
//! plus a round trip. Attempts never stop; after a long outage they cost one hello per
//! 1.2–1.6 s. The schedule restarts from 100 ms each time the link goes down.
//!
//! Over TCP, a dial that neither connects nor fails within `D` counts as failed, and so does
//! a connection on which nothing arrives within `D` of its opening; each failure waits the
//! next backoff delay before dialing again. A link that was up and goes down for silence or
//! a transport failure dials again at once. [`Event::Reconnect`] means: close this link's
//! connection if there is one and dial a new one. The I/O layer reports
//! [`Peer::transport_failed`] only for the connection currently serving the link (the
//! close of a replaced connection is no failure). A passive TCP end just waits to be dialed.
//! Over UDP [`Peer::transport_failed`] (an ICMP unreachable, say) is counted and otherwise
//! ignored: such errors are unauthenticated and often transient.
//!
//! # Restarts
//!
//! A hello from a new session of the peer (LinkRx only lets newer sessions through) means the
//! peer restarted and lost its state: an up link goes down ([`DownReason::PeerRestarted`])
//! and the hello is answered as usual. The restarted peer's answer (a keepalive) brings the
//! link up again one round trip after its hello arrived. A restarted peer that does not
//! know this end's address cannot speak first; this end's probes (keyed for its previous
//! session) reach it and it calls [`Peer::hello_requested`] if the I/O layer can tell which
//! link they came from; otherwise this end detects the silence within `D'` and its own
//! hellos find the new peer.
//!
//! # Timer values and the 2 s budgets
//!
//! - *A fast path is cut* (both directions dropped): both ends go down at most `D'` = 1 s
//!   after the last datagram that got through, and the forwarding table falls back to the
//!   star at once: 1 s of the 2 s budget, leaving a second for timer slack, an RTT-inflated
//!   bound and the I/O layer. A one-way cut takes `D'` plus `max(K, 2 RTO)`, about 1.25 s.
//! - *The cut heals*: with both ends active, an attempt crosses within 1.6 s (the cap) and
//!   the link is up one round trip later.
//! - *The Proxy is killed and restarted*: every host's star link goes down within `D'` = 1 s
//!   of the kill (at once over TCP, where the connection resets), each host sends a hello at
//!   once and at most every 1.6 s after that, and the new Proxy answers the first one it
//!   gets: the star is back within 1.6 s plus a round trip of the Proxy being ready, and
//!   within about 1 s of the kill when the Proxy restarts quickly.
//!
//! # Round-trip time
//!
//! [`RttEstimator`]: RFC 6298's smoothed RTT and variation, the latest sample and the
//! minimum, from keepalive echoes. A keepalive carries its send time and its echo carries it
//! back, so samples need no synchronised clocks and are never ambiguous; echoes of
//! keepalives this end did not send (a path-MTU prober's, or a stray) prove liveness but give
//! no sample. The minimum is forgotten when the peer restarts (it may run elsewhere now).
//!
//! # Not done here
//!
//! - Damping of a flapping link (a hold-down before going up again): that is policy for the
//!   forwarding layer or VADAPT; the counters here show the flaps.
//! - Path-MTU probing rides on keepalives but is another component's job.

mod backoff;
mod rtt;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

pub use backoff::Backoff;
pub use rtt::{RttEstimator, RTT_GRANULARITY};

use crate::forward::Role;
use crate::model::{LinkKind, Name};
use crate::wire::{HelloOutcome, SessionId};

/// Default keepalive interval `K`: an up link with nothing received for this long probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(250);
/// Default detection bound `D`: an up link with nothing received for this long is down.
pub const DEAD_AFTER: Duration = Duration::from_secs(1);
/// Default first backoff delay between attempts.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default largest backoff delay between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_millis(1600);
/// Default jitter: attempts come up to this many percent early.
pub const BACKOFF_JITTER_PERCENT: u8 = 25;
/// Default longest time an up link goes without an RTT sample before it probes anyway.
pub const RTT_REFRESH: Duration = Duration::from_secs(5);
/// The shortest interval a [`PeerConfig`] accepts (shorter would spin the caller's timer).
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Echoes waiting to be polled; beyond this the oldest is dropped (and counted).
const MAX_PENDING_ECHOES: usize = 8;
/// Keepalives whose echo can still give an RTT sample.
const MAX_OUTSTANDING: usize = 8;
/// Events waiting to be polled; beyond this the oldest is dropped (and counted).
const MAX_PENDING_EVENTS: usize = 32;

/// Whether an end of a link tries to reach the peer by itself when the link is not up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiative {
    /// Sends hellos (and over TCP dials) on a backoff schedule whenever the link is not up.
    Active,
    /// Waits for the peer, answering whatever comes.
    Passive,
}

impl Initiative {
    /// The default for the link from `local` (whose role is `role`) to `peer` over `kind`:
    /// a host is active toward its Proxy and the Proxy passive; over UDP both ends of a fast
    /// path are active; over TCP the end with the lexically smaller name dials and the other
    /// waits.
    pub fn for_link(role: &Role, local: &Name, peer: &Name, kind: LinkKind) -> Initiative {
        match role {
            Role::Proxy => Initiative::Passive,
            Role::Host { proxy } if proxy == peer => Initiative::Active,
            Role::Host { .. } => match kind {
                LinkKind::Udp => Initiative::Active,
                LinkKind::Tcp if local < peer => Initiative::Active,
                LinkKind::Tcp => Initiative::Passive,
            },
        }
    }
}

/// The settings of one link's liveness machine. [`PeerConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer daemon's name.
    pub peer: Name,
    /// The link's transport.
    pub kind: LinkKind,
    /// Whether this end makes attempts by itself.
    pub initiative: Initiative,
    /// `K`: an up link that received nothing for this long sends a keepalive, and then one
    /// per `K/2` until it hears something.
    pub keepalive_interval: Duration,
    /// `D`: an up link that received nothing for this long (or for `K + 2 RTO`, if longer)
    /// goes down. Over TCP also the dial and handshake timeout.
    pub dead_after: Duration,
    /// An up link probes at least this often, even under traffic, to keep the RTT current.
    pub rtt_refresh: Duration,
    /// The delay before the second attempt; it doubles from attempt to attempt.
    pub backoff_initial: Duration,
    /// The largest delay between attempts.
    pub backoff_max: Duration,
    /// Attempts come up to this many percent of their delay early (0 to 99).
    pub backoff_jitter_percent: u8,
    /// Seeds the jitter (see [`Backoff`]).
    pub seed: u64,
}

impl PeerConfig {
    /// The defaults: `K` = [`KEEPALIVE_INTERVAL`], `D` = [`DEAD_AFTER`], backoff from
    /// [`BACKOFF_INITIAL`] to [`BACKOFF_MAX`] with [`BACKOFF_JITTER_PERCENT`] of jitter,
    /// [`RTT_REFRESH`], seed 0.
    pub fn new(peer: Name, kind: LinkKind, initiative: Initiative) -> Self {
        PeerConfig {
            peer,
            kind,
            initiative,
            keepalive_interval: KEEPALIVE_INTERVAL,
            dead_after: DEAD_AFTER,
            rtt_refresh: RTT_REFRESH,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
            backoff_jitter_percent: BACKOFF_JITTER_PERCENT,
            seed: 0,
        }
    }

    /// The same settings with the jitter seeded by `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`ConfigError::TooShort`] for an interval under [`MIN_INTERVAL`],
    /// [`ConfigError::DeadBeforeKeepalive`], [`ConfigError::BackoffMaxBelowInitial`],
    /// [`ConfigError::Jitter`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (what, value) in [
            ("keepalive interval", self.keepalive_interval),
            ("dead-peer timeout", self.dead_after),
            ("RTT refresh interval", self.rtt_refresh),
            ("initial backoff", self.backoff_initial),
        ] {
            if value < MIN_INTERVAL {
                return Err(ConfigError::TooShort { what, value });
            }
        }
        if self.dead_after <= self.keepalive_interval {
            return Err(ConfigError::DeadBeforeKeepalive {
                dead_after: self.dead_after,
                keepalive_interval: self.keepalive_interval,
            });
        }
        if self.backoff_max < self.backoff_initial {
            return Err(ConfigError::BackoffMaxBelowInitial {
                initial: self.backoff_initial,
                max: self.backoff_max,
            });
        }
        if self.backoff_jitter_percent > 99 {
            return Err(ConfigError::Jitter(self.backoff_jitter_percent));
        }
        Ok(())
    }
}

/// Why a [`PeerConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An interval below [`MIN_INTERVAL`].
    #[error("the {what} of {value:?} is below the minimum of 1 ms")]
    TooShort {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: Duration,
    },
    /// A dead-peer timeout no longer than the keepalive interval: a link would go down
    /// before it had probed once.
    #[error("the dead-peer timeout ({dead_after:?}) must exceed the keepalive interval ({keepalive_interval:?})")]
    DeadBeforeKeepalive {
        /// The dead-peer timeout.
        dead_after: Duration,
        /// The keepalive interval.
        keepalive_interval: Duration,
    },
    /// A largest backoff delay below the first one.
    #[error("the largest backoff ({max:?}) is below the initial one ({initial:?})")]
    BackoffMaxBelowInitial {
        /// The initial delay.
        initial: Duration,
        /// The largest delay.
        max: Duration,
    },
    /// A jitter of 100 % or more (an attempt could come with no delay at all).
    #[error("a backoff jitter of {0} % is not below 100 %")]
    Jitter(u8),
}

/// Where a link is (see the [module documentation](self#states)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not up; this end makes attempts to reach the peer.
    Connecting,
    /// Up: datagrams crossed both ways recently.
    Up,
    /// Not up; this end waits for the peer.
    Down,
}

/// Why an up link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// Nothing authentic arrived from the peer within the detection bound.
    Timeout,
    /// The peer started a new session: it restarted and lost its state.
    PeerRestarted,
    /// The peer sent hellos (it does not hear this end) and a probe went unanswered.
    NotHeard,
    /// The TCP connection failed (reset, closed, refused).
    TransportFailed,
}

impl DownReason {
    /// A short stable label, for metrics.
    pub fn label(self) -> &'static str {
        match self {
            DownReason::Timeout => "timeout",
            DownReason::PeerRestarted => "peer-restarted",
            DownReason::NotHeard => "not-heard",
            DownReason::TransportFailed => "transport-failed",
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What changed, for the I/O layer to act on ([`Peer::poll_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The link is up: mark it up in the forwarding table.
    Up {
        /// The smoothed RTT at this moment, if a sample was taken yet.
        rtt: Option<Duration>,
    },
    /// The link is down: mark it down in the forwarding table (traffic falls back to the
    /// star). Over TCP a passive end may close the connection.
    Down {
        /// Why.
        reason: DownReason,
    },
    /// TCP only: close this link's connection, if any, and dial the peer again; report
    /// the outcome with [`Peer::transport_connected`] or [`Peer::transport_failed`].
    Reconnect,
}

/// A control datagram to seal with the link's `LinkTx` and send now
/// ([`Peer::poll_transmit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// A hello ([`LinkTx::hello`](crate::wire::LinkTx::hello)).
    Hello,
    /// A keepalive carrying `sent_at`
    /// ([`LinkTx::keepalive`](crate::wire::LinkTx::keepalive), unpadded).
    Keepalive {
        /// This end's clock reading, in nanoseconds; the echo brings it back.
        sent_at: u64,
    },
    /// The echo of the peer's keepalive
    /// ([`LinkTx::keepalive_echo`](crate::wire::LinkTx::keepalive_echo)).
    Echo {
        /// The keepalive's `sent_at`.
        sent_at: u64,
        /// The size its datagram arrived with.
        probe_len: u16,
    },
}

/// Counters of one link's liveness machine, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Hellos handed out to send.
    pub hellos_sent: u64,
    /// Hellos received.
    pub hellos_received: u64,
    /// Calls of [`Peer::hello_requested`].
    pub hello_requests: u64,
    /// Keepalives handed out to send.
    pub keepalives_sent: u64,
    /// Keepalives received.
    pub keepalives_received: u64,
    /// Echoes handed out to send.
    pub echoes_sent: u64,
    /// Echoes received.
    pub echoes_received: u64,
    /// Echoes of keepalives this end does not remember sending (no RTT sample).
    pub echoes_unmatched: u64,
    /// Echoes not sent because too many were waiting to be polled.
    pub echoes_dropped: u64,
    /// Frames and fragments received ([`Peer::handle_datagram`]).
    pub datagrams_received: u64,
    /// Times the link went up.
    pub ups: u64,
    /// Times the link went down.
    pub downs: u64,
    /// Why it last went down.
    pub last_down: Option<DownReason>,
    /// New sessions of the peer seen after the first.
    pub peer_restarts: u64,
    /// [`Event::Reconnect`]s emitted.
    pub reconnects: u64,
    /// Calls of [`Peer::transport_failed`].
    pub transport_failures: u64,
    /// Events dropped because too many were waiting to be polled.
    pub events_dropped: u64,
}

/// The TCP connection of a link as this end knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// No connection.
    Closed,
    /// Dialing; counts as failed at `until`.
    Dialing { until: Duration },
    /// Connected since `since`.
    Open { since: Duration },
}

/// The timers of a link; [`Peer::next_timer`] finds the earliest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Up: nothing received within the detection bound.
    Dead,
    /// Up: time to probe.
    Probe,
    /// Up and suspected: no echo since the suspicion.
    Suspect,
    /// Not up, active: the next attempt.
    Attempt,
    /// TCP, active: the dial did not complete.
    DialTimeout,
    /// TCP, active, connected but not up: nothing arrived on the connection.
    Handshake,
}

/// The liveness state machine of one link, seen from one end (see the
/// [module documentation](self)).
#[derive(Debug, Clone)]
pub struct Peer {
    config: PeerConfig,
    /// The latest `now` seen: time never goes back inside.
    now: Duration,
    state: State,
    /// The peer's session, from its hellos.
    peer_session: Option<SessionId>,
    /// When something authentic last arrived.
    last_rx: Option<Duration>,
    /// When the link last went up.
    up_since: Duration,
    /// When the last probe was decided.
    last_probe: Option<Duration>,
    /// When the last RTT sample was taken.
    last_sample: Option<Duration>,
    /// Up, but the peer sent a hello at this time: an echo of a later probe is due.
    suspect_since: Option<Duration>,
    /// When the last hello was decided (for [`Peer::hello_requested`]'s rate limit).
    last_hello: Option<Duration>,
    /// Failed attempts since the link was last up (or went down).
    attempt: u32,
    next_attempt: Option<Duration>,
    transport: Transport,
    backoff: Backoff,
    rtt: RttEstimator,
    hello_pending: bool,
    keepalive_pending: bool,
    echoes: VecDeque<(u64, u16)>,
    /// Send times of recent keepalives, oldest first.
    outstanding: VecDeque<u64>,
    events: VecDeque<Event>,
    stats: PeerStats,
}

impl Peer {
    /// The machine of a link configured at `now`. An active end makes its first attempt at
    /// once (a hello to poll over UDP, [`Event::Reconnect`] over TCP); a passive one waits.
    ///
    /// # Errors
    /// Any [`ConfigError`] of [`PeerConfig::validate`].
    pub fn new(config: PeerConfig, now: Duration) -> Result<Peer, ConfigError> {
        config.validate()?;
        let backoff = Backoff::new(
            config.backoff_initial,
            config.backoff_max,
            config.backoff_jitter_percent,
            config.seed,
        );
        let transport = match config.kind {
            LinkKind::Udp => Transport::Open { since: now },
            LinkKind::Tcp => Transport::Closed,
        };
        let mut peer = Peer {
            config,
            now,
            state: State::Down,
            peer_session: None,
            last_rx: None,
            up_since: now,
            last_probe: None,
            last_sample: None,
            suspect_since: None,
            last_hello: None,
            attempt: 0,
            next_attempt: None,
            transport,
            backoff,
            rtt: RttEstimator::new(),
            hello_pending: false,
            keepalive_pending: false,
            echoes: VecDeque::new(),
            outstanding: VecDeque::new(),
            events: VecDeque::new(),
            stats: PeerStats::default(),
        };
        if peer.config.initiative == Initiative::Active {
            peer.state = State::Connecting;
            peer.make_attempt();
        }
        Ok(peer)
    }

    /// The settings.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The peer's name.
    pub fn peer(&self) -> &Name {
        &self.config.peer
    }

    /// Where the link is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// The peer's session, once a hello told it.
    pub fn peer_session(&self) -> Option<SessionId> {
        self.peer_session
    }

    /// When something authentic last arrived from the peer.
    pub fn last_received(&self) -> Option<Duration> {
        self.last_rx
    }

    /// The round-trip time estimate.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// The counters.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// The detection bound `D' = max(D, K + 2 RTO)`: an up link goes down when nothing
    /// authentic arrived for this long.
    pub fn dead_timeout(&self) -> Duration {
        let floor = self.rtt.rto().map_or(Duration::ZERO, |rto| {
            self.config
                .keepalive_interval
                .saturating_add(rto.saturating_mul(2))
        });
        self.config.dead_after.max(floor)
    }

    /// How long a suspected link waits for the echo of its probe: `max(K, 2 RTO)`.
    pub fn suspect_timeout(&self) -> Duration {
        let rto = self.rtt.rto().unwrap_or(Duration::ZERO);
        self.config.keepalive_interval.max(rto.saturating_mul(2))
    }

    // ---- inputs -------------------------------------------------------------------------

    /// An authentic hello from the peer was applied to the link
    /// ([`LinkRx::accept_hello`](crate::wire::LinkRx::accept_hello) or
    /// [`LinkRx::open`](crate::wire::LinkRx::open)); the I/O layer has already keyed its
    /// `LinkTx` for `hello.session`, so an answering hello tells the peer its session.
    ///
    /// A new session of the peer takes an up link down ([`DownReason::PeerRestarted`]); a
    /// hello from the current session while up makes this end suspect that the peer does
    /// not hear it. The hello is answered with a hello if it asks for one, else with a
    /// keepalive.
    pub fn handle_hello(&mut self, now: Duration, hello: &HelloOutcome) {
        self.advance(now);
        self.stats.hellos_received = self.stats.hellos_received.saturating_add(1);
        self.heard();
        let restarted = self.peer_session.is_some_and(|s| s != hello.session);
        if restarted {
            self.stats.peer_restarts = self.stats.peer_restarts.saturating_add(1);
            self.rtt.reset_min();
            // Echoes for the old session cannot come: its keys are gone on both sides.
            self.outstanding.clear();
            self.echoes.clear();
            if self.state == State::Up {
                self.go_down(DownReason::PeerRestarted);
            }
        } else if self.state == State::Up && self.suspect_since.is_none() {
            self.suspect_since = Some(self.now);
            self.keepalive_pending = true;
            self.last_probe = Some(self.now);
        }
        self.peer_session = Some(hello.session);
        if hello.reply_wanted {
            self.queue_hello();
        } else {
            self.queue_probe();
        }
    }

    /// An authentic keepalive from the peer, with the values of
    /// [`Received::Keepalive`](crate::wire::Received::Keepalive): it is echoed, and it
    /// brings the link up if it was not.
    pub fn handle_keepalive(&mut self, now: Duration, sent_at: u64, probe_len: u16) {
        self.advance(now);
        self.stats.keepalives_received = self.stats.keepalives_received.saturating_add(1);
        self.heard();
        if self.peer_session.is_none() {
            // Cannot happen through LinkRx (no session, no key); nothing can be sealed.
            return;
        }
        if self.echoes.len() >= MAX_PENDING_ECHOES {
            self.echoes.pop_front();
            self.stats.echoes_dropped = self.stats.echoes_dropped.saturating_add(1);
        }
        self.echoes.push_back((sent_at, probe_len));
        // Up on a keepalive: probe back for this end's own RTT sample.
        self.confirm(true);
    }

    /// An authentic echo of a keepalive that carried `sent_at`. Returns the round-trip
    /// sample it gave, if it echoes a keepalive this end sent recently (the sample is also
    /// fed to [`Peer::rtt`]). It brings the link up if it was not, and clears a suspicion
    /// if its keepalive was sent after the suspicion began.
    pub fn handle_echo(&mut self, now: Duration, sent_at: u64) -> Option<Duration> {
        self.advance(now);
        self.stats.echoes_received = self.stats.echoes_received.saturating_add(1);
        self.heard();
        let Some(index) = self.outstanding.iter().position(|&t| t == sent_at) else {
            self.stats.echoes_unmatched = self.stats.echoes_unmatched.saturating_add(1);
            return None;
        };
        self.outstanding.remove(index);
        let sample = self.now.checked_sub(Duration::from_nanos(sent_at));
        if let Some(sample) = sample {
            self.rtt.update(sample);
            self.last_sample = Some(self.now);
        }
        if self
            .suspect_since
            .is_some_and(|since| sent_at >= nanos(since))
        {
            self.suspect_since = None;
        }
        // Up on an echo: the sample was just taken, and the peer had its keepalive.
        self.confirm(false);
        sample
    }

    /// An authentic frame or fragment from the peer arrived: the peer is alive. (It does
    /// not bring a link up: only keepalives and echoes prove that both directions work.)
    pub fn handle_datagram(&mut self, now: Duration) {
        self.advance(now);
        self.stats.datagrams_received = self.stats.datagrams_received.saturating_add(1);
        self.heard();
    }

    /// Something came for this link that only a hello from this end can sort out: a
    /// datagram from a session of the peer with no hello yet
    /// ([`RxError::UnknownSession`](crate::wire::RxError::UnknownSession)) or keyed for an
    /// earlier session of this daemon
    /// ([`RxError::WrongReceiver`](crate::wire::RxError::WrongReceiver)). Queues a hello,
    /// at most one per [`PeerConfig::backoff_initial`]. Such datagrams are not authentic
    /// here, so nothing else changes.
    pub fn hello_requested(&mut self, now: Duration) {
        self.advance(now);
        self.stats.hello_requests = self.stats.hello_requests.saturating_add(1);
        let quiet = self
            .last_hello
            .is_none_or(|t| self.now >= t.saturating_add(self.config.backoff_initial));
        if quiet {
            self.queue_hello();
        }
    }

    /// TCP: the connection of this link is established (dialed after
    /// [`Event::Reconnect`], or accepted). An active end that is not up sends a hello on it.
    /// Nothing for UDP.
    pub fn transport_connected(&mut self, now: Duration) {
        self.advance(now);
        if self.config.kind != LinkKind::Tcp {
            return;
        }
        if !matches!(self.transport, Transport::Open { .. }) {
            self.transport = Transport::Open { since: self.now };
        }
        if self.config.initiative == Initiative::Active && self.state != State::Up {
            // One hello per connection (a stream loses nothing); the handshake timer
            // redials if nothing comes back.
            self.queue_hello();
            self.next_attempt = None;
        }
    }

    /// TCP: the link's connection failed — refused, reset or closed. An up link goes down
    /// ([`DownReason::TransportFailed`]); an active end dials again (at once if the link
    /// was up, else after the next backoff delay). Over UDP only counted.
    pub fn transport_failed(&mut self, now: Duration) {
        self.advance(now);
        self.stats.transport_failures = self.stats.transport_failures.saturating_add(1);
        if self.config.kind != LinkKind::Tcp {
            return;
        }
        if self.state == State::Up {
            self.go_down(DownReason::TransportFailed);
        } else if self.config.initiative == Initiative::Active {
            if self.transport != Transport::Closed {
                self.attempt_failed();
            }
        } else {
            self.close_transport();
        }
    }

    /// Runs every timer due at `now`. Afterwards [`Peer::poll_timeout`] is later than `now`
    /// (or `None`).
    pub fn handle_timeout(&mut self, now: Duration) {
        self.advance(now);
        // Each timer that fires moves past `now`; the bound is a guard, never reached.
        for _ in 0..16 {
            match self.next_timer() {
                Some((at, timer)) if at <= self.now => self.fire(timer),
                _ => break,
            }
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The next control datagram to send, sealed and sent by the caller at once (`now` is
    /// the send time a keepalive carries). Call until `None` after every input. Over TCP,
    /// nothing goes out while there is no connection.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<Transmit> {
        self.advance(now);
        if !matches!(self.transport, Transport::Open { .. }) {
            return None;
        }
        if self.hello_pending {
            self.hello_pending = false;
            self.stats.hellos_sent = self.stats.hellos_sent.saturating_add(1);
            return Some(Transmit::Hello);
        }
        if let Some((sent_at, probe_len)) = self.echoes.pop_front() {
            self.stats.echoes_sent = self.stats.echoes_sent.saturating_add(1);
            return Some(Transmit::Echo { sent_at, probe_len });
        }
        if self.keepalive_pending {
            self.keepalive_pending = false;
            if self.peer_session.is_some() {
                let sent_at = nanos(self.now);
                if self.outstanding.len() >= MAX_OUTSTANDING {
                    self.outstanding.pop_front();
                }
                self.outstanding.push_back(sent_at);
                self.stats.keepalives_sent = self.stats.keepalives_sent.saturating_add(1);
                return Some(Transmit::Keepalive { sent_at });
            }
        }
        None
    }

    /// The next event, if any. Call until `None` after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Peer::handle_timeout`] is next due; `None` if no timer runs (a passive end
    /// that is not up). Never earlier than the latest `now` given; equal to it means "due
    /// now" (an input arrived after a deadline the caller had not served yet).
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.next_timer().map(|(at, _)| at.max(self.now))
    }

    // ---- internals ----------------------------------------------------------------------

    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
    }

    /// Something authentic arrived now.
    fn heard(&mut self) {
        self.last_rx = Some(self.now);
        if self.config.kind == LinkKind::Tcp && !matches!(self.transport, Transport::Open { .. }) {
            // It came over a connection, so there is one.
            self.transport = Transport::Open { since: self.now };
        }
    }

    /// Proof that both directions work arrived: up, if the peer's session is known.
    fn confirm(&mut self, probe: bool) {
        if self.state != State::Up && self.peer_session.is_some() {
            self.go_up(probe);
        }
    }

    fn queue_hello(&mut self) {
        self.hello_pending = true;
        self.last_hello = Some(self.now);
    }

    fn queue_probe(&mut self) {
        if self.peer_session.is_some() {
            self.keepalive_pending = true;
            self.last_probe = Some(self.now);
        }
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
        }
        self.events.push_back(event);
    }

    fn go_up(&mut self, probe: bool) {
        self.state = State::Up;
        self.up_since = self.now;
        self.attempt = 0;
        self.next_attempt = None;
        self.suspect_since = None;
        self.stats.ups = self.stats.ups.saturating_add(1);
        self.push_event(Event::Up {
            rtt: self.rtt.smoothed(),
        });
        if probe {
            self.queue_probe();
        }
    }

    fn go_down(&mut self, reason: DownReason) {
        if self.state == State::Up {
            self.stats.downs = self.stats.downs.saturating_add(1);
            self.stats.last_down = Some(reason);
            self.push_event(Event::Down { reason });
        }
        self.suspect_since = None;
        self.keepalive_pending = false;
        // Only echoes of keepalives sent from now on bring the link up again.
        self.outstanding.clear();
        self.attempt = 0;
        let connection_lost = matches!(reason, DownReason::Timeout | DownReason::TransportFailed);
        if self.config.kind == LinkKind::Tcp && connection_lost {
            self.close_transport();
        }
        match self.config.initiative {
            Initiative::Active => {
                self.state = State::Connecting;
                self.make_attempt();
            }
            Initiative::Passive => {
                self.state = State::Down;
                self.next_attempt = None;
            }
        }
    }

    fn close_transport(&mut self) {
        self.transport = Transport::Closed;
        self.echoes.clear();
    }

    /// An attempt, now: a hello over UDP, a dial over TCP (or a hello on the connection if
    /// one is open).
    fn make_attempt(&mut self) {
        match (self.config.kind, self.transport) {
            (LinkKind::Udp, _) => self.hello_attempt(),
            (LinkKind::Tcp, Transport::Open { .. }) => {
                self.queue_hello();
                self.next_attempt = None;
            }
            (LinkKind::Tcp, Transport::Dialing { .. }) => self.next_attempt = None,
            (LinkKind::Tcp, Transport::Closed) => {
                self.transport = Transport::Dialing {
                    until: self.now.saturating_add(self.config.dead_after),
                };
                self.next_attempt = None;
                self.stats.reconnects = self.stats.reconnects.saturating_add(1);
                self.push_event(Event::Reconnect);
            }
        }
    }

    /// UDP: a hello now, and the next attempt after the backoff delay.
    fn hello_attempt(&mut self) {
        self.queue_hello();
        self.schedule_attempt();
    }

    /// TCP, active: the dial or the handshake on the connection failed; dial again after
    /// the backoff delay.
    fn attempt_failed(&mut self) {
        self.close_transport();
        self.schedule_attempt();
    }

    /// The next attempt, after this attempt's backoff delay.
    fn schedule_attempt(&mut self) {
        let delay = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.next_attempt = Some(self.now.saturating_add(delay));
    }

    /// When the next probe is due on an up link: `K` after the last arrival, or `K/2` after
    /// the last probe if nothing arrived since; and at the latest
    /// [`PeerConfig::rtt_refresh`] after the later of the last sample and the last probe.
    fn probe_at(&self) -> Duration {
        let last_rx = self.last_rx.unwrap_or(self.up_since);
        let idle = match self.last_probe {
            Some(probe) if probe >= last_rx => {
                probe.saturating_add(self.config.keepalive_interval / 2)
            }
            _ => last_rx.saturating_add(self.config.keepalive_interval),
        };
        let last_probe = self.last_probe.unwrap_or(Duration::ZERO);
        let sampled = self.last_sample.unwrap_or(self.up_since).max(last_probe);
        idle.min(sampled.saturating_add(self.config.rtt_refresh))
    }

    fn next_timer(&self) -> Option<(Duration, Timer)> {
        let mut timers: [Option<(Duration, Timer)>; 3] = [None; 3];
        if self.state == State::Up {
            let last_rx = self.last_rx.unwrap_or(self.up_since);
            timers[0] = Some((last_rx.saturating_add(self.dead_timeout()), Timer::Dead));
            timers[1] = Some((self.probe_at(), Timer::Probe));
            timers[2] = self
                .suspect_since
                .map(|since| (since.saturating_add(self.suspect_timeout()), Timer::Suspect));
        } else if self.config.initiative == Initiative::Active {
            timers[0] = self.next_attempt.map(|at| (at, Timer::Attempt));
            if self.config.kind == LinkKind::Tcp {
                timers[1] = match self.transport {
                    Transport::Dialing { until } => Some((until, Timer::DialTimeout)),
                    Transport::Open { since } => {
                        let quiet_since = self.last_rx.map_or(since, |rx| rx.max(since));
                        Some((
                            quiet_since.saturating_add(self.config.dead_after),
                            Timer::Handshake,
                        ))
                    }
                    Transport::Closed => None,
                };
            }
        }
        timers.into_iter().flatten().min_by_key(|&(at, _)| at)
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::Dead => self.go_down(DownReason::Timeout),
            Timer::Suspect => self.go_down(DownReason::NotHeard),
            Timer::Probe => {
                self.keepalive_pending = true;
                self.last_probe = Some(self.now);
            }
            Timer::Attempt => self.make_attempt(),
            Timer::DialTimeout | Timer::Handshake => self.attempt_failed(),
        }
    }
}

/// A clock reading as the nanoseconds a keepalive carries (saturating after 584 years).
fn nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

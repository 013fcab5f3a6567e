//! The two ends of a link as pure state: [`LinkTx`] seals what a daemon sends to one peer,
//! [`LinkRx`] opens what it receives from that peer.

use std::time::Duration;

use crate::model::Name;

use super::auth::{LinkKey, OverlayKey, SessionId};
use super::frag::{
    FragmentPlan, Reassembler, ReassemblyConfig, ReassemblyError, ReassemblyStats, Unsplittable,
};
use super::message::{
    piece_range, BufferTooSmall, Fragment, HelloPayload, Message, ETH_HEADER_LEN, KEEPALIVE_LEN,
    MAX_NAME_LEN,
};
use super::packet::{
    Datagram, Flags, Header, MessageType, ParseError, HEADER_LEN, MAX_PAYLOAD_LEN, OVERHEAD,
    TAG_LEN,
};
use super::replay::{ReplayError, ReplayWindow};

/// The hop budget a daemon gives a frame that enters the overlay from one of its ports: the
/// frame may cross this many links. The papers' longest path (host, Proxy, host) takes 2.
pub const DEFAULT_HOPS: u8 = 8;

/// The smallest datagram size a link may be configured with: a hello with the longest name
/// takes 112 bytes.
pub const MIN_DATAGRAM: usize = 128;

/// The largest datagram size a link may be configured with (the 16-bit UDP length field).
pub const MAX_DATAGRAM: usize = u16::MAX as usize;

/// The hop budget a forwarded frame leaves with, given the one it arrived with; `None` if it
/// arrived with its last hop, so it must be dropped (and counted) instead of forwarded.
/// Delivering a frame to a local port needs no budget.
pub fn forward_hops(arrived_with: u8) -> Option<u8> {
    arrived_with.checked_sub(1).filter(|&h| h > 0)
}

/// The largest UDP payload a path of this `mtu` carries in one IP packet: the MTU less the
/// IP header (20 bytes for IPv4, 40 for IPv6) and the UDP header (8 bytes). The largest
/// datagram a UDP link starts with; path-MTU discovery may lower or raise it later.
pub fn udp_max_datagram(mtu: usize, ipv6: bool) -> usize {
    mtu.saturating_sub(if ipv6 { 48 } else { 28 })
}

/// The local end of every link: the overlay's key, this daemon's name and its session.
#[derive(Debug, Clone)]
pub struct Local {
    /// The overlay's pre-shared key.
    pub overlay: OverlayKey,
    /// This daemon's name.
    pub name: Name,
    /// This daemon's session.
    pub session: SessionId,
}

/// Why [`LinkTx`] could not seal a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// No hello from the peer has told its session yet: only hellos can go out.
    #[error("the peer's session is not known yet (no hello from it)")]
    NoPeerSession,
    /// The output buffer cannot hold the datagrams.
    #[error(transparent)]
    BufferTooSmall(#[from] BufferTooSmall),
    /// A frame shorter than an Ethernet header.
    #[error("a {len}-byte frame is shorter than an Ethernet header")]
    RuntFrame {
        /// The frame's length.
        len: usize,
    },
    /// A frame that cannot be carried over this link.
    #[error(transparent)]
    Unsplittable(#[from] Unsplittable),
    /// A hop budget of zero: the frame may not be sent.
    #[error("hop budget of zero")]
    ZeroHops,
    /// A datagram size outside [`MIN_DATAGRAM`]`..=`[`MAX_DATAGRAM`].
    #[error("datagram size {0} is outside {MIN_DATAGRAM}..={MAX_DATAGRAM}")]
    BadDatagramSize(usize),
    /// A keepalive padded past the largest datagram.
    #[error("a keepalive cannot be padded to {0} bytes")]
    BadPadding(usize),
    /// The session has used all 2^64 sequence numbers (it would take centuries).
    #[error("sequence numbers exhausted; start a new session")]
    SequenceExhausted,
}

/// Why a datagram from a peer was dropped; [`RxError::reason`] names it for counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RxError {
    /// Malformed.
    #[error("malformed datagram: {0}")]
    Malformed(#[from] ParseError),
    /// Its tag is not right: forged, corrupted, or keyed with another overlay key.
    #[error("bad authentication tag")]
    BadTag,
    /// A hello that names another daemon than this link's peer.
    #[error("hello from {found}, but this link's peer is {expected}")]
    WrongPeer {
        /// This link's peer.
        expected: Name,
        /// The name in the hello.
        found: Name,
    },
    /// From a session of the peer older than the current one: a restarted peer's old traffic
    /// or its replay.
    #[error("from session {found} of the peer, older than its current session {current}")]
    StaleSession {
        /// The session in the datagram.
        found: SessionId,
        /// The peer's current session.
        current: SessionId,
    },
    /// From a session the link has had no hello for (newer than the current one, or none
    /// known yet): the peer restarted, or its hello was lost; answer with a hello.
    #[error("from a session of the peer with no hello yet")]
    UnknownSession,
    /// Keyed for another session of this daemon (the peer has not heard of this one yet:
    /// answer with a hello), or for another daemon.
    #[error("keyed for another receiver session")]
    WrongReceiver,
    /// Seen before.
    #[error("replayed (sequence number {seq})")]
    Replayed {
        /// Its sequence number.
        seq: u64,
    },
    /// Too far behind the newest to tell whether it was seen before.
    #[error("too old (sequence number {seq}, {behind} behind the newest)")]
    TooOld {
        /// Its sequence number.
        seq: u64,
        /// How far behind the newest.
        behind: u64,
    },
    /// A frame (whole or reassembled) longer than the link accepts.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A fragment whose piece already arrived.
    #[error("duplicate fragment")]
    DuplicateFragment,
    /// A fragment that disagrees with the earlier ones of its frame (the frame is dropped).
    #[error("fragment inconsistent with its frame")]
    InconsistentFragment,
}

impl RxError {
    /// A short stable label for the drop counter of this reason.
    pub fn reason(&self) -> &'static str {
        match self {
            RxError::Malformed(_) => "malformed",
            RxError::BadTag => "bad-tag",
            RxError::WrongPeer { .. } => "wrong-peer",
            RxError::StaleSession { .. } => "stale-session",
            RxError::UnknownSession => "unknown-session",
            RxError::WrongReceiver => "wrong-receiver",
            RxError::Replayed { .. } => "replayed",
            RxError::TooOld { .. } => "too-old",
            RxError::FrameTooLong { .. } => "frame-too-long",
            RxError::DuplicateFragment => "duplicate-fragment",
            RxError::InconsistentFragment => "inconsistent-fragment",
        }
    }
}

impl From<ReplayError> for RxError {
    fn from(error: ReplayError) -> Self {
        match error {
            ReplayError::Replayed { seq } => RxError::Replayed { seq },
            ReplayError::TooOld { seq, behind } => RxError::TooOld { seq, behind },
        }
    }
}

impl From<ReassemblyError> for RxError {
    fn from(error: ReassemblyError) -> Self {
        match error {
            ReassemblyError::Duplicate { .. } => RxError::DuplicateFragment,
            ReassemblyError::Inconsistent { .. } => RxError::InconsistentFragment,
            ReassemblyError::TooLong { len, max } => RxError::FrameTooLong { len, max },
        }
    }
}

/// Where [`LinkTx::seal_frame`] put the datagrams of a frame in its output buffer: back to
/// back, each `stride` bytes long but the last, which may be shorter (the layout UDP
/// segmentation offload takes as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// How many datagrams.
    pub count: usize,
    /// The length of each datagram but the last.
    pub stride: usize,
    /// The length of all of them together.
    pub len: usize,
}

impl Sealed {
    /// The datagrams, as slices of the buffer given to [`LinkTx::seal_frame`].
    pub fn datagrams<'b>(&self, out: &'b [u8]) -> impl Iterator<Item = &'b [u8]> {
        out[..self.len.min(out.len())].chunks(self.stride.max(1))
    }
}

/// The sending end of a link to one peer, for one session of this daemon.
#[derive(Debug, Clone)]
pub struct LinkTx {
    local: Local,
    peer: Name,
    hello_key: LinkKey,
    /// The peer's session and the key for it, once a hello told it.
    data_key: Option<(SessionId, LinkKey)>,
    next_seq: u64,
    next_frame_id: u32,
    max_datagram: usize,
}

impl LinkTx {
    /// The sending end toward `peer`, whose datagrams are at most `max_datagram` bytes (for
    /// UDP, see [`udp_max_datagram`]; for TCP, a size that takes the largest frame whole).
    ///
    /// # Errors
    /// [`TxError::BadDatagramSize`].
    pub fn new(local: &Local, peer: &Name, max_datagram: usize) -> Result<Self, TxError> {
        let mut tx = LinkTx {
            hello_key: LinkKey::derive(&local.overlay, (&local.name, local.session), (peer, None)),
            local: local.clone(),
            peer: peer.clone(),
            data_key: None,
            next_seq: 0,
            next_frame_id: 0,
            max_datagram: MIN_DATAGRAM,
        };
        tx.set_max_datagram(max_datagram)?;
        Ok(tx)
    }

    /// The peer's name.
    pub fn peer(&self) -> &Name {
        &self.peer
    }

    /// The peer's session, once known.
    pub fn peer_session(&self) -> Option<SessionId> {
        self.data_key.as_ref().map(|(s, _)| *s)
    }

    /// Keys datagrams for the peer's session `session` (from its hello; see
    /// [`HelloOutcome`]). Sequence numbers go on: the receiver's window is per session pair.
    pub fn set_peer_session(&mut self, session: SessionId) {
        if self.peer_session() != Some(session) {
            let key = LinkKey::derive(
                &self.local.overlay,
                (&self.local.name, self.local.session),
                (&self.peer, Some(session)),
            );
            self.data_key = Some((session, key));
        }
    }

    /// The largest datagram this link sends (frames beyond it are fragmented).
    pub fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Changes the largest datagram (after path-MTU discovery, say).
    ///
    /// # Errors
    /// [`TxError::BadDatagramSize`] outside [`MIN_DATAGRAM`]`..=`[`MAX_DATAGRAM`]; nothing
    /// changes then.
    pub fn set_max_datagram(&mut self, max_datagram: usize) -> Result<(), TxError> {
        if !(MIN_DATAGRAM..=MAX_DATAGRAM).contains(&max_datagram) {
            return Err(TxError::BadDatagramSize(max_datagram));
        }
        self.max_datagram = max_datagram;
        Ok(())
    }

    /// The sequence number the next datagram gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Goes on from sequence number `seq` if it is later than the next one: for a link to
    /// the same peer in the same session, deleted and added again, whose keys are the same
    /// and whose sequence numbers (the nonces) must therefore carry on where the old link
    /// stopped (see "Encryption and authentication" in [`crate::wire`]).
    pub fn continue_from(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// How many bytes [`LinkTx::seal_frame`] needs for a `frame_len`-byte frame.
    ///
    /// # Errors
    /// [`Unsplittable`] if this link cannot carry such a frame.
    pub fn sealed_len(&self, frame_len: usize) -> Result<usize, Unsplittable> {
        Ok(FragmentPlan::new(frame_len, self.max_datagram)?.total_len())
    }

    /// The next `n` sequence numbers, as the first of them and the one after the last;
    /// the caller moves `next_seq` once the datagrams are sealed.
    fn reserve_seqs(&self, n: usize) -> Result<(u64, u64), TxError> {
        let first = self.next_seq;
        let after = u64::try_from(n)
            .ok()
            .and_then(|n| first.checked_add(n))
            .ok_or(TxError::SequenceExhausted)?;
        Ok((first, after))
    }

    /// Seals a hello into `buf`, returning its length. Hellos can always be sent: they tell
    /// the peer this daemon's name and session, and the peer's session as known here.
    ///
    /// # Errors
    /// [`TxError::BufferTooSmall`], [`TxError::SequenceExhausted`].
    pub fn hello(&mut self, buf: &mut [u8]) -> Result<usize, TxError> {
        let message = Message::Hello(HelloPayload {
            name: self.local.name.clone(),
            your_session: self.peer_session(),
        });
        check_room(&message, buf)?;
        let (seq, after) = self.reserve_seqs(1)?;
        let id = DatagramId {
            key: &self.hello_key,
            session: self.local.session,
            receiver_hint: 0,
            hops: 1,
            flags: Flags::default(),
        };
        let len = seal(&id, seq, &message, buf)?;
        self.next_seq = after;
        Ok(len)
    }

    /// Seals a keepalive that carries `sent_at` (any clock reading the caller will recognise
    /// in the echo), padded with zeros to `pad_to` bytes if that is more than its natural 48 —
    /// a path-MTU probe. Padding may exceed [`LinkTx::max_datagram`]: that is what a probe is
    /// for.
    ///
    /// # Errors
    /// [`TxError::NoPeerSession`], [`TxError::BadPadding`] past [`MAX_DATAGRAM`],
    /// [`TxError::BufferTooSmall`], [`TxError::SequenceExhausted`].
    pub fn keepalive(
        &mut self,
        sent_at: u64,
        pad_to: usize,
        buf: &mut [u8],
    ) -> Result<usize, TxError> {
        if pad_to > MAX_DATAGRAM {
            return Err(TxError::BadPadding(pad_to));
        }
        let padding = pad_to.saturating_sub(OVERHEAD + KEEPALIVE_LEN);
        self.seal_control(&Message::Keepalive { sent_at, padding }, buf)
    }

    /// Seals the echo of a keepalive: its `sent_at` and the size its datagram had on arrival
    /// (see [`Received::Keepalive`]).
    ///
    /// # Errors
    /// [`TxError::NoPeerSession`], [`TxError::BufferTooSmall`], [`TxError::SequenceExhausted`].
    pub fn keepalive_echo(
        &mut self,
        sent_at: u64,
        probe_len: u16,
        buf: &mut [u8],
    ) -> Result<usize, TxError> {
        self.seal_control(&Message::KeepaliveEcho { sent_at, probe_len }, buf)
    }

    /// Seals a VTTIF update (at most [`LinkTx::max_datagram`] less [`OVERHEAD`] bytes).
    ///
    /// # Errors
    /// [`TxError::NoPeerSession`], [`TxError::BufferTooSmall`], [`TxError::SequenceExhausted`],
    /// [`TxError::BadDatagramSize`] for an update that does not fit one datagram.
    pub fn traffic(&mut self, update: &[u8], buf: &mut [u8]) -> Result<usize, TxError> {
        if update.len() + OVERHEAD > self.max_datagram {
            return Err(TxError::BadDatagramSize(update.len() + OVERHEAD));
        }
        self.seal_control(&Message::Traffic(update), buf)
    }

    fn seal_control(&mut self, message: &Message<'_>, buf: &mut [u8]) -> Result<usize, TxError> {
        let (peer_session, key) = self.data_key.as_ref().ok_or(TxError::NoPeerSession)?;
        check_room(message, buf)?;
        let (seq, after) = self.reserve_seqs(1)?;
        let id = DatagramId {
            key,
            session: self.local.session,
            receiver_hint: peer_session.hint(),
            hops: 1,
            flags: Flags::default(),
        };
        let len = seal(&id, seq, message, buf)?;
        self.next_seq = after;
        Ok(len)
    }

    /// Seals an Ethernet frame with hop budget `hops` into `out`: one datagram if it fits
    /// [`LinkTx::max_datagram`], else 2 to 64 fragments (see [`Sealed`]). With `offload`,
    /// `frame` begins with an offload descriptor and every datagram has [`Flags::OFFLOAD`].
    /// `out` needs [`LinkTx::sealed_len`] bytes. On error nothing is sent and no sequence
    /// number used.
    ///
    /// # Errors
    /// [`TxError::NoPeerSession`], [`TxError::ZeroHops`], [`TxError::RuntFrame`],
    /// [`TxError::Unsplittable`], [`TxError::BufferTooSmall`], [`TxError::SequenceExhausted`].
    pub fn seal_frame(
        &mut self,
        frame: &[u8],
        offload: bool,
        hops: u8,
        out: &mut [u8],
    ) -> Result<Sealed, TxError> {
        let (peer_session, key) = match &self.data_key {
            Some((session, key)) => (*session, key),
            None => return Err(TxError::NoPeerSession),
        };
        if hops == 0 {
            return Err(TxError::ZeroHops);
        }
        if frame.len() < ETH_HEADER_LEN {
            return Err(TxError::RuntFrame { len: frame.len() });
        }
        let plan = FragmentPlan::new(frame.len(), self.max_datagram)?;
        let need = plan.total_len();
        if out.len() < need {
            return Err(BufferTooSmall {
                need,
                have: out.len(),
            }
            .into());
        }
        let (first, after) = self.reserve_seqs(plan.count)?;
        let id = DatagramId {
            key,
            session: self.local.session,
            receiver_hint: peer_session.hint(),
            hops,
            flags: Flags(if offload { Flags::OFFLOAD } else { 0 }),
        };
        if !plan.is_fragmented() {
            seal(&id, first, &Message::Frame(frame), out)?;
        } else {
            let frame_id = self.next_frame_id;
            let count = u8::try_from(plan.count).map_err(|_| Unsplittable {
                frame_len: frame.len(),
                max_datagram: self.max_datagram,
            })?;
            let frame_len = u16::try_from(frame.len()).map_err(|_| Unsplittable {
                frame_len: frame.len(),
                max_datagram: self.max_datagram,
            })?;
            let mut at = 0;
            for (index, seq) in (0..count).zip(first..after) {
                let range =
                    piece_range(frame.len(), plan.count, usize::from(index)).unwrap_or(0..0);
                let message = Message::Fragment(Fragment {
                    frame_id,
                    frame_len,
                    index,
                    count,
                    piece: &frame[range],
                });
                at += seal(&id, seq, &message, &mut out[at..])?;
            }
            self.next_frame_id = frame_id.wrapping_add(1);
        }
        self.next_seq = after;
        Ok(Sealed {
            count: plan.count,
            stride: plan.stride(),
            len: need,
        })
    }
}

/// Checks that `buf` holds the sealed `message` before a sequence number is spent on it.
fn check_room(message: &Message<'_>, buf: &[u8]) -> Result<(), BufferTooSmall> {
    let need = OVERHEAD + message.payload_len();
    if buf.len() < need {
        return Err(BufferTooSmall {
            need,
            have: buf.len(),
        });
    }
    Ok(())
}

/// What the datagrams of one message share: key and header fields but the sequence number.
struct DatagramId<'k> {
    key: &'k LinkKey,
    session: SessionId,
    receiver_hint: u16,
    hops: u8,
    flags: Flags,
}

/// Writes header, payload and tag of one datagram at the start of `buf`; returns its length.
fn seal(
    id: &DatagramId<'_>,
    seq: u64,
    message: &Message<'_>,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let payload_len = message.payload_len();
    let len = OVERHEAD + payload_len;
    let (Some(out), Ok(payload_len)) = (buf.get_mut(..len), u16::try_from(payload_len)) else {
        return Err(BufferTooSmall {
            need: len.min(OVERHEAD + MAX_PAYLOAD_LEN),
            have: buf.len(),
        });
    };
    let mut datagram = Datagram::new_unchecked(out);
    datagram.emit_header(&Header {
        msg_type: message.msg_type(),
        hops: id.hops,
        flags: id.flags,
        session: id.session,
        seq,
        payload_len,
        receiver_hint: id.receiver_hint,
    });
    message.emit(datagram.payload_mut())?;
    if message.msg_type() == MessageType::Hello {
        // Readable by any member: authenticated, not encrypted.
        let (authenticated, tag) = datagram.authenticated_and_tag_mut();
        tag.copy_from_slice(&id.key.seal(seq, authenticated, &mut []));
    } else {
        let (header, payload, tag) = datagram.parts_mut();
        tag.copy_from_slice(&id.key.seal(seq, header, payload));
    }
    Ok(len)
}

/// An authenticated hello, not yet applied to a link (see [`open_hello`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    sender: Name,
    session: SessionId,
    seq: u64,
    your_session: Option<SessionId>,
}

impl Hello {
    /// The sender's name: the link it belongs to.
    pub fn sender(&self) -> &Name {
        &self.sender
    }

    /// The sender's session.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// This daemon's session as the sender knows it.
    pub fn your_session(&self) -> Option<SessionId> {
        self.your_session
    }
}

/// Opens a hello addressed to `local` — the one message a daemon can authenticate before it
/// knows which link it belongs to (its sender's session may be new). Apply it with
/// [`LinkRx::accept_hello`] on the link of [`Hello::sender`].
///
/// # Errors
/// [`RxError::Malformed`] (including a datagram that is not a hello), [`RxError::BadTag`].
pub fn open_hello(local: &Local, datagram: Datagram<&[u8]>) -> Result<Hello, RxError> {
    let header = Header::parse(&datagram)?;
    if header.msg_type != MessageType::Hello {
        return Err(ParseError::WrongType {
            expected: MessageType::Hello,
            found: header.msg_type,
        }
        .into());
    }
    let hello = HelloPayload::parse(datagram.payload())?;
    let key = LinkKey::derive(
        &local.overlay,
        (&hello.name, header.session),
        (&local.name, None),
    );
    if !key.open(
        datagram.seq(),
        datagram.authenticated(),
        &mut [],
        datagram.tag(),
    ) {
        return Err(RxError::BadTag);
    }
    Ok(Hello {
        sender: hello.name,
        session: header.session,
        seq: header.seq,
        your_session: hello.your_session,
    })
}

/// What a hello did to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloOutcome {
    /// The peer's session: give it to the link's [`LinkTx::set_peer_session`].
    pub session: SessionId,
    /// Whether it is a new session (the first, or the peer restarted): its sequence numbers
    /// start afresh, and frames in reassembly were dropped.
    pub new_session: bool,
    /// Whether the peer does not know this daemon's current session: answer with a hello.
    pub reply_wanted: bool,
}

/// What an authentic datagram from the peer brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received<'a> {
    /// A hello, applied to the link.
    Hello(HelloOutcome),
    /// An Ethernet frame, whole or reassembled, with the hop budget it arrived with.
    Frame {
        /// The frame (borrowed from the datagram, or from the reassembler until its next
        /// use); behind its offload descriptor if `offload`.
        frame: &'a [u8],
        /// Its hop budget (see [`forward_hops`]).
        hops: u8,
        /// The frame begins with an offload descriptor ([`Flags::OFFLOAD`]).
        offload: bool,
    },
    /// A fragment, kept until its frame is complete.
    Fragment,
    /// A keepalive: answer with [`LinkTx::keepalive_echo`] of these values.
    Keepalive {
        /// The sender's send time.
        sent_at: u64,
        /// The keepalive datagram's size (for a path-MTU probe, the size that got through).
        probe_len: u16,
    },
    /// A VTTIF update from the peer (not yet checked: see [`vttif::update::decode`]).
    Traffic(&'a [u8]),
    /// The echo of one of this daemon's keepalives.
    KeepaliveEcho {
        /// The keepalive's send time: now minus this is the round-trip time.
        sent_at: u64,
        /// The size the keepalive arrived with.
        probe_len: u16,
    },
}

/// The peer's session as a link knows it.
#[derive(Debug, Clone)]
struct PeerSession {
    session: SessionId,
    key: LinkKey,
}

/// The receiving end of a link from one peer, for one session of this daemon: the peer's
/// current session (which only moves forward), its replay window and its frames in
/// reassembly.
#[derive(Debug)]
pub struct LinkRx {
    local: Local,
    peer: Name,
    current: Option<PeerSession>,
    window: ReplayWindow,
    reassembly: Reassembler,
}

impl LinkRx {
    /// The receiving end from `peer`, knowing no session of it yet.
    pub fn new(local: &Local, peer: &Name, reassembly: ReassemblyConfig) -> Self {
        LinkRx {
            local: local.clone(),
            peer: peer.clone(),
            current: None,
            window: ReplayWindow::new(),
            reassembly: Reassembler::new(reassembly),
        }
    }

    /// The peer's name.
    pub fn peer(&self) -> &Name {
        &self.peer
    }

    /// The peer's current session, once a hello told it.
    pub fn peer_session(&self) -> Option<SessionId> {
        self.current.as_ref().map(|c| c.session)
    }

    /// The reassembler's counters.
    pub fn reassembly_stats(&self) -> ReassemblyStats {
        self.reassembly.stats()
    }

    /// When the reassembler next needs [`LinkRx::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.reassembly.poll_timeout()
    }

    /// Drops frames whose reassembly ran out of time by `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.reassembly.handle_timeout(now);
    }

    /// Applies an authenticated hello (from [`open_hello`]): a newer session of the peer
    /// replaces the current one (new key, fresh window, reassembly dropped); the current one
    /// changes nothing; an older one is refused. The hello's own sequence number goes through
    /// the window, so a replayed hello is refused too.
    ///
    /// # Errors
    /// [`RxError::WrongPeer`], [`RxError::StaleSession`], [`RxError::Replayed`],
    /// [`RxError::TooOld`].
    pub fn accept_hello(&mut self, hello: &Hello) -> Result<HelloOutcome, RxError> {
        if hello.sender != self.peer {
            return Err(RxError::WrongPeer {
                expected: self.peer.clone(),
                found: hello.sender.clone(),
            });
        }
        let new_session = match &self.current {
            Some(current) if hello.session < current.session => {
                return Err(RxError::StaleSession {
                    found: hello.session,
                    current: current.session,
                })
            }
            Some(current) => hello.session > current.session,
            None => true,
        };
        if new_session {
            self.current = Some(PeerSession {
                session: hello.session,
                key: LinkKey::derive(
                    &self.local.overlay,
                    (&self.peer, hello.session),
                    (&self.local.name, Some(self.local.session)),
                ),
            });
            self.window = ReplayWindow::new();
            self.reassembly.reset();
        }
        self.window.accept(hello.seq)?;
        Ok(HelloOutcome {
            session: hello.session,
            new_session,
            reply_wanted: hello.your_session != Some(self.local.session),
        })
    }

    /// Opens a datagram from the peer (already wrapped by [`Datagram::new_checked`]) that
    /// arrived at `now`. Checks, in this order: the peer's session (the datagram's must be
    /// the current one), the receiver hint, the replay window, the tag; then the payload.
    /// Only an authentic datagram moves the window. A hello goes through [`open_hello`] and
    /// [`LinkRx::accept_hello`].
    ///
    /// # Errors
    /// Any [`RxError`], each for the reason its documentation gives ([`RxError::WrongPeer`]
    /// only for a hello that names another daemon). A datagram refused before its tag is
    /// checked changes nothing; an authentic one uses up its sequence number even if refused
    /// afterwards (a malformed payload, a fragment error).
    pub fn open<'a>(
        &'a mut self,
        datagram: Datagram<&'a mut [u8]>,
        now: Duration,
    ) -> Result<Received<'a>, RxError> {
        let header = Header::parse(&datagram)?;
        if header.msg_type == MessageType::Hello {
            let hello = open_hello(&self.local, datagram.as_shared())?;
            return Ok(Received::Hello(self.accept_hello(&hello)?));
        }
        let current = self.current.as_ref().ok_or(RxError::UnknownSession)?;
        if header.session < current.session {
            return Err(RxError::StaleSession {
                found: header.session,
                current: current.session,
            });
        }
        if header.session > current.session {
            return Err(RxError::UnknownSession);
        }
        if header.receiver_hint != self.local.session.hint() {
            return Err(RxError::WrongReceiver);
        }
        self.window.check(header.seq)?;
        let datagram_len = u16::try_from(datagram.as_bytes().len()).unwrap_or(u16::MAX);
        let (head, payload, tag) = datagram.into_parts();
        if !current.key.open(header.seq, head, payload, tag) {
            return Err(RxError::BadTag);
        }
        self.window.commit(header.seq);
        let max_frame_len = self.reassembly.config().max_frame_len;
        match Message::parse(header.msg_type, payload)? {
            Message::Frame(frame) if frame.len() > max_frame_len => Err(RxError::FrameTooLong {
                len: frame.len(),
                max: max_frame_len,
            }),
            Message::Frame(frame) => Ok(Received::Frame {
                frame,
                hops: header.hops,
                offload: header.flags.offload(),
            }),
            Message::Fragment(fragment) => {
                let offload = header.flags.offload();
                match self
                    .reassembly
                    .insert(&fragment, header.hops, offload, now)?
                {
                    Some((frame, hops)) => Ok(Received::Frame {
                        frame,
                        hops,
                        offload,
                    }),
                    None => Ok(Received::Fragment),
                }
            }
            Message::Keepalive { sent_at, .. } => Ok(Received::Keepalive {
                sent_at,
                probe_len: datagram_len,
            }),
            Message::Traffic(update) => Ok(Received::Traffic(update)),
            Message::KeepaliveEcho { sent_at, probe_len } => {
                Ok(Received::KeepaliveEcho { sent_at, probe_len })
            }
            // Hellos were handled above.
            Message::Hello(_) => Err(ParseError::WrongType {
                expected: MessageType::Frame,
                found: MessageType::Hello,
            }
            .into()),
        }
    }
}

// The longest hello fits the smallest datagram.
const _: () = assert!(HEADER_LEN + 9 + MAX_NAME_LEN + TAG_LEN <= MIN_DATAGRAM);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_never_wrap() {
        let local = Local {
            overlay: OverlayKey::from_bytes([1; 32]),
            name: "a".parse().unwrap(),
            session: SessionId::new(1).unwrap(),
        };
        let mut tx = LinkTx::new(&local, &"b".parse().unwrap(), 1472).unwrap();
        tx.set_peer_session(SessionId::new(2).unwrap());
        tx.next_seq = u64::MAX - 1;
        let mut out = [0u8; 4000];
        // Two fragments would need u64::MAX - 1 and u64::MAX, and leave nothing after.
        assert_eq!(
            tx.seal_frame(&[0; 1514], false, 1, &mut out),
            Err(TxError::SequenceExhausted)
        );
        assert_eq!(tx.next_seq(), u64::MAX - 1);
        assert!(tx.seal_frame(&[0; 64], false, 1, &mut out).is_ok());
        assert_eq!(
            tx.keepalive(0, 0, &mut out),
            Err(TxError::SequenceExhausted)
        );
        assert_eq!(tx.hello(&mut out), Err(TxError::SequenceExhausted));
        assert_eq!(
            tx.seal_frame(&[0; 64], false, 1, &mut out),
            Err(TxError::SequenceExhausted)
        );
    }
}

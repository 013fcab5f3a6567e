//! The link protocol: what daemons send each other over UDP and TCP links, as pure code.
//!
//! Nothing here reads a clock, touches a socket or spawns anything. Bytes and the current
//! time (`now: Duration`, from any monotonic origin the caller picks) go in; datagrams to
//! send, frames to deliver and typed errors come out. The daemon's I/O layer owns sockets,
//! buffers and timers and drives these types; the liveness state machine (when to send
//! hellos and keepalives, when a peer is dead) is built on top of them elsewhere.
//!
//! # Datagram format
//!
//! One format for every message, over UDP as one datagram per message and over TCP as
//! records back to back ([`StreamDecoder`]). All numbers are big-endian.
//!
//! ```text
//! offset  size  field
//!      0     1  version          1; anything else is refused (ParseError::BadVersion)
//!      1     1  type             1 hello, 2 frame, 3 fragment, 4 keepalive, 5 keepalive echo
//!      2     1  hop budget       links the frame may still cross, this one included (>= 1)
//!      3     1  flags            none defined in version 1; unknown bits are ignored
//!      4     8  sender session   the sending daemon's session id (non-zero)
//!     12     8  sequence number  per link and sender session, from 0, never reused
//!     20     2  payload length
//!     22     2  receiver hint    low 16 bits of the receiver session the datagram is keyed for
//!     24     n  payload
//!   24+n    16  tag              AES-128-GCM's tag (link key, nonce = sequence number) over
//!                                the header and the payload, which is encrypted (but in a hello)
//! ```
//!
//! The header is 24 bytes and the tag 16, so a datagram costs 40 bytes inside UDP over the
//! frame it carries, where VXLAN costs 8 (and authenticates nothing). Payloads by type
//! ([`Message`]):
//!
//! - *hello*: the receiver's session as the sender knows it (8 bytes, zero if unknown), the
//!   sender's name (a length octet and 1 to 63 bytes).
//! - *frame*: a whole Ethernet frame, at least 14 bytes (so forwarding can always read both
//!   addresses).
//! - *fragment*: frame id (4), frame length (2), index (1), count (1), then the piece.
//! - *keepalive*: the sender's send time (8), then any padding. The time is opaque to the
//!   receiver, in the sender's own clock, so the echo gives the round-trip time without
//!   synchronised clocks.
//! - *keepalive echo*: the keepalive's send time (8) and the size its datagram had when it
//!   arrived (2).
//!
//! Parsing is smoltcp's: [`Datagram`] is a view over bytes whose
//! [`new_checked`](Datagram::new_checked) validates the header and length once (a UDP
//! datagram must be exactly header, payload and tag long); [`Header`] and [`Message`] are the
//! parsed representations, with `parse` and `emit`. Every malformation has its own
//! [`ParseError`] variant; no input makes a parser panic (a property test feeds them
//! arbitrary bytes).
//!
//! **Who sent it.** A daemon tells its peers who it is in a *hello*: its name and its
//! session id. Every later datagram carries only the 8-byte session id, which the daemon maps
//! back to the link (a table the I/O layer keeps, filled from hellos; keeping each peer's
//! previous session in it too lets the old session's stragglers be counted as stale rather
//! than unknown). Why not the UDP source
//! address, as tinc does? Because hosts sit behind NATs and firewalls that rewrite and
//! rebind ports, and a TCP link may be re-established from another port; the session id
//! survives all that. Why not the name in every datagram? It would cost up to 64 bytes. The
//! session id also carries the restart epoch (below), so one field does both jobs. The
//! 2-byte *receiver hint* lets a receiver notice cheaply, before any tag computation, that a
//! datagram was keyed for one of its earlier sessions (the peer has not heard of its restart
//! yet): [`RxError::WrongReceiver`], answered with a hello.
//!
//! **Hop budget.** The daemon where a frame enters the overlay sets it ([`DEFAULT_HOPS`],
//! 8; the papers' longest path, host–Proxy–host, takes 2). A daemon that forwards a frame to
//! another link sends it with one less ([`forward_hops`]) and drops it, counted, when that
//! would be zero; a zero budget on the wire is malformed. Delivering to a local port needs
//! no budget. Since every link re-seals the datagram with its own key, the budget is
//! authenticated hop by hop. Hellos and keepalives carry 1.
//!
//! # Encryption and authentication
//!
//! Every datagram but a hello is AES-128-GCM (ring's implementation): the payload encrypted
//! in place, the 24-byte header authenticated with it, and the 16-byte GCM tag at the end.
//! A hello is authenticated only (its header and payload are GCM's additional data, nothing
//! is encrypted), since its receiver needs the sender's name from the payload to derive the
//! key. The tag is checked in constant time, before anything of the payload is used.
//!
//! **The nonce** is the datagram's sequence number: four zero bytes, then the 8-byte number
//! of the header. GCM must never see one nonce twice under one key, and here it does not:
//! - a key belongs to one direction of one link in one pair of sessions (below), and a
//!   sender's sequence numbers for a peer only grow: never reused, never wrapped
//!   ([`TxError::SequenceExhausted`]), also across a link deleted and added again to the
//!   same peer within one session ([`LinkTx::continue_from`]: the daemon remembers where the
//!   old link stopped);
//! - a restarted daemon has a new session id ([`SessionId::starting_at`]: later than the one
//!   it remembers, and otherwise its clock in microseconds with 12 random bits), hence new
//!   keys. Only a daemon that lost its state directory, with a clock stepped back to the
//!   very microsecond of an earlier run, and the same 12 random bits, toward a peer still in
//!   the same session as then, could repeat a key; with HMAC that would have been a replay,
//!   with GCM it would let whoever saw both datagrams forge on that link.
//!
//! **Why AES-GCM.** The MAC is the data path's largest cost once frames are 64 KiB
//! super-frames (see "Offloads" in [`crate::daemon`]): with HMAC-SHA-256, the first choice,
//! `perf record -a -g -- sleep 4` during an iperf3 flow over a UDP fast path (5.2 Gbit/s; a
//! `dataplane` testbed run in vnet mode with `vnetctl mesh` applied, by hand) put
//! 41 % of the whole machine's CPU time in `sha2::sha256::x86::digest_blocks`, against some
//! 15 % for every copy together. Measured with `cargo bench -p vnetd --bench wire`, group
//! `mac`, 2026-12-02 (one core of this project's 2-core AMD EPYC machine, which has AES-NI,
//! VAES, SHA-NI and AVX-512, shared with other work, so figures vary by some 10 %; input is
//! header plus frame, 88 and 1538 bytes):
//!
//! ```text
//!                                   64-byte frame   1514-byte frame
//! AES-128-GCM encrypting (ring)            94 ns        0.28 µs   (chosen)
//! HMAC-SHA-256 (sha2, SHA-NI)             133 ns        0.98 µs
//! BLAKE3 keyed                            145 ns        1.66 µs
//! SipHash-2-4-128                          50 ns        0.62 µs
//! AES-128-GMAC (RustCrypto aes-gcm)       162 ns        0.46 µs
//! AES-128-GMAC (ring, additional data)    103 ns        1.00 µs
//! ChaCha20-Poly1305 (ring, add. data)     192 ns        0.65 µs
//! ```
//!
//! ring's GCM interleaves the AES and GHASH work of the ciphertext in vector code, so
//! encrypting a frame is cheaper than any MAC of it here, GMAC included (ring's GMAC of
//! the same bytes as additional data only takes longer than encrypting them). So links
//! are encrypted: confidentiality comes for free, and the header stays in clear (the hop
//! budget, session and sequence number; a passive probe reads only headers). The price is
//! the nonce discipline above, where HMAC, a PRF, asked for none. Without AES-NI and CLMUL,
//! ring's GCM falls back to constant-time software several times slower (not measured here).
//!
//! Through a link (group `link`, underlay MTU 1500, so a 1514-byte frame goes as two
//! fragments and is reassembled), sealing takes 0.11 µs for a 64-byte frame and 0.46 µs for
//! a 1514-byte one, opening 0.13 µs and 0.51 µs (HMAC-SHA-256 took 0.21, 1.41, 0.25 and
//! 1.53 µs): 4.6 to 26 Gbit/s of frames per core.
//!
//! **Keys.** Each direction of each link, in each pair of sessions, has its own key
//! ([`LinkKey::derive`]): HKDF-Expand-SHA-256 (RFC 5869) of the overlay key with, as info, a
//! label, the sender's session and name, and the receiver's session and name; its first 16
//! bytes are the AES key. So:
//! - a datagram from A to B replayed to C, or reflected back to A, fails (other key);
//! - datagrams keyed for an earlier session of the receiver fail after it restarts, so a
//!   restarted daemon cannot be fed its previous incarnation's traffic;
//! - the link key is derived (and its AES key schedule expanded) once per session change,
//!   not per datagram.
//!
//! A hello is sent before its sender knows the receiver's session, so it is keyed with the
//! receiver's session taken as zero: any member of the overlay addressed by name can check
//! it. [`open_hello`] parses its payload (in clear, to learn the name the key needs) and
//! then checks the tag; a forged hello is refused, a replayed one is refused by the window or is a
//! harmless repetition. Members of the overlay are trusted alike: holding the overlay key is
//! being a member.
//!
//! # Sessions and anti-replay
//!
//! A daemon picks a session id when it starts ([`SessionId::starting_at`]): its wall clock
//! in microseconds since 1970, shifted left by 12 bits, with 12 random bits below (two
//! daemons starting in the same microsecond differ anyway), and at least one more than its
//! previous session if it remembers it. Sequence numbers of a link start at 0 in each
//! session. A receiver's [`LinkRx`] only moves forward: a hello from a newer session of the
//! peer replaces the current one (new key, fresh window, frames in reassembly dropped);
//! datagrams of an older session are refused as [`RxError::StaleSession`]; data from a newer
//! session without its hello is [`RxError::UnknownSession`] (answer with a hello). So a
//! restarted peer is accepted as soon as its hello arrives, while a replay of its previous
//! session is refused.
//!
//! *If the clock steps back* across a restart and the daemon does not remember its previous
//! session, its new id is lower than the one its peers hold, and they refuse its hellos as
//! stale (a counted, distinct reason) until its clock passes the old id — a long outage
//! after a large step. Hence the `previous` argument: a daemon that persists its session id
//! with its other state and passes it back gets increasing ids whatever the clock does. A step back while running changes nothing: the id is taken once.
//!
//! Within a session, each [`LinkRx`] keeps a sliding window over sequence numbers
//! ([`ReplayWindow`], after RFC 6479: 32 blocks of 64 bits, sliding by whole blocks) that
//! accepts anything newer than the newest seen, and anything up to [`REPLAY_WINDOW`] (1984)
//! behind it that was not seen — a burst reordered by UDP passes. Older is
//! [`RxError::TooOld`], seen is [`RxError::Replayed`]. The checks run cheapest first —
//! session, receiver hint, window, then the tag — and only an authentic datagram moves the
//! window, so forgeries cannot push it forward. Each drop has a stable label
//! ([`RxError::reason`]) for the daemon's counters.
//!
//! # MTU: fragmentation inside the overlay
//!
//! Guests keep MTU 1500 (frames of 1514 bytes, 1518 with a VLAN tag) over an underlay that
//! may itself have MTU 1500, so a full frame plus our 40 bytes does not fit one UDP datagram
//! of 1472 bytes. Relying on IP fragmentation would work on some paths and black-hole on
//! others (firewalls drop fragments; IPv6 routers never fragment); lowering the guests' MTU
//! is not ours to do. So the overlay fragments by itself:
//!
//! - Each link has a largest datagram, `max_datagram` ([`LinkTx::new`],
//!   [`LinkTx::set_max_datagram`]): for UDP the path MTU less the IP and UDP headers
//!   ([`udp_max_datagram`]: 1472 at MTU 1500 over IPv4), for TCP any size that takes the
//!   largest frame whole.
//! - A frame that fits goes whole, as a *frame* message: no fragmentation cost. Anything
//!   larger is cut into the fewest pieces that fit, split evenly (a 1514-byte frame at 1472
//!   goes as two datagrams of 805 bytes, not 1472 and 138), each piece its own
//!   authenticated *fragment* datagram with frame id, frame length, index and count. Every
//!   datagram but the last has the same size and they are written back to back
//!   ([`Sealed`]), so a batch can go out with UDP segmentation offload. At most 64 pieces.
//! - The receiver rebuilds frames in a [`Reassembler`] per peer session: at most
//!   [`ReassemblyConfig::slots`] frames in progress (8 by default), each buffer allocated
//!   once at [`ReassemblyConfig::max_frame_len`] (1518 by default) and reused, so memory per
//!   peer is bounded (about 12 KB by default). A new frame when all slots are busy evicts the
//!   oldest; a frame incomplete after [`ReassemblyConfig::timeout`] (1 s) is dropped. Both
//!   are counted ([`ReassemblyStats`]), and so are duplicate pieces and pieces that disagree
//!   with their frame. Each fragment passed the window and the tag before it is stored, so
//!   an outsider cannot fill the slots.
//!
//! **Path-MTU discovery later** needs no change of format: `max_datagram` is a per-link
//! parameter that the I/O layer may raise or lower at any time. A probe is a keepalive
//! padded to the candidate size ([`LinkTx::keepalive`]'s `pad_to`, sent with the don't-
//! fragment bit by the I/O layer); its echo reports the size that arrived
//! ([`Received::KeepaliveEcho`]'s `probe_len`), so a prober knows which size passed without
//! guessing from losses. Until a larger size is confirmed, fragmentation keeps full frames
//! flowing, so there is never a black hole, only a second datagram.
//!
//! # Stream links
//!
//! Over TCP the same datagrams follow each other; the header's length field delimits them
//! (no extra length prefix). [`StreamDecoder`] takes bytes as they come and hands out
//! records, checking each header as soon as it is complete: a bad version or type, or a
//! length over its limit, fails the decoder for good, and the daemon closes that link — a
//! byte stream has no marker to resynchronise on, and a peer that sent garbage once is not
//! to be trusted with framing. Records are then opened as datagrams, windows and all.
//!
//! # Not done here
//!
//! - The liveness machine (hello and keepalive timers, dead-peer detection, reconnection)
//!   and the session-id-to-link table of the I/O layer.
//! - Frames above 65535 bytes (jumbo frames up to 9000 work if `max_frame_len` is raised).

mod auth;
mod frag;
mod link;
mod message;
mod packet;
mod replay;
mod stream;
#[cfg(test)]
mod tests;

pub use auth::{BadOverlayKey, LinkKey, OverlayKey, SessionId};
pub use frag::{
    FragmentPlan, Reassembler, ReassemblyConfig, ReassemblyError, ReassemblyStats, Unsplittable,
    DEFAULT_MAX_FRAME_LEN,
};
pub use link::{
    forward_hops, open_hello, udp_max_datagram, Hello, HelloOutcome, LinkRx, LinkTx, Local,
    Received, RxError, Sealed, TxError, DEFAULT_HOPS, MAX_DATAGRAM, MIN_DATAGRAM,
};
pub use message::{
    piece_len, piece_range, BufferTooSmall, Fragment, HelloPayload, Message, ETH_HEADER_LEN,
    FRAGMENT_HEADER_LEN, KEEPALIVE_ECHO_LEN, KEEPALIVE_LEN, MAX_FRAGMENTS, MAX_NAME_LEN,
};
pub use packet::{
    Datagram, Flags, Header, MessageType, ParseError, PayloadError, HEADER_LEN, MAX_PAYLOAD_LEN,
    OVERHEAD, TAG_LEN, VERSION,
};
pub use replay::{ReplayError, ReplayWindow, REPLAY_WINDOW};
pub use stream::StreamDecoder;

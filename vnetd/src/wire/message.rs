//! The payloads of the message types, parsed and emitted.
//!
//! ```text
//! Hello           your session (u64, 0 = unknown) | name length (u8) | name (1..=63 bytes)
//! Frame           the Ethernet frame (at least 14 bytes)
//! Fragment        frame id (u32) | frame length (u16) | index (u8) | count (u8) | piece
//! Keepalive       send time (u64) | padding (any length, ignored)
//! KeepaliveEcho   send time (u64) | size of the keepalive datagram as received (u16)
//! Traffic         a VTTIF update (`vttif::update`: checked by the receiver's VTTIF service)
//! ```

use crate::model::Name;

use super::auth::SessionId;
use super::packet::{MessageType, ParseError, PayloadError};

/// Length of an Ethernet header: a frame shorter than this cannot be forwarded.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of a fragment's own header, inside the payload.
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// The most fragments one frame may be cut into.
pub const MAX_FRAGMENTS: u8 = 64;
/// Length of a keepalive's payload without padding.
pub const KEEPALIVE_LEN: usize = 8;
/// Length of a keepalive echo's payload.
pub const KEEPALIVE_ECHO_LEN: usize = 10;
/// The longest name a hello carries (as [`Name`] allows).
pub const MAX_NAME_LEN: usize = 63;

/// A hello's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloPayload {
    /// The sender's name.
    pub name: Name,
    /// The receiver's session as the sender knows it, if it knows one.
    pub your_session: Option<SessionId>,
}

impl HelloPayload {
    /// Parses a hello's payload.
    ///
    /// # Errors
    /// [`ParseError::Payload`] if it does not follow the hello's layout.
    pub fn parse(payload: &[u8]) -> Result<Self, ParseError> {
        let wrap = |error| ParseError::Payload {
            kind: MessageType::Hello,
            error,
        };
        at_least(10, payload).map_err(wrap)?;
        let name_len = usize::from(payload[8]);
        exact(9 + name_len, payload).map_err(wrap)?;
        let name = std::str::from_utf8(&payload[9..])
            .ok()
            .and_then(|s| s.parse::<Name>().ok())
            .ok_or(wrap(PayloadError::BadName))?;
        Ok(HelloPayload {
            name,
            your_session: SessionId::new(be_u64(payload)),
        })
    }
}

/// A fragment's payload: one piece of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Which frame of the sender's session this piece belongs to.
    pub frame_id: u32,
    /// The whole frame's length.
    pub frame_len: u16,
    /// This piece's index, from 0.
    pub index: u8,
    /// How many pieces the frame was cut into (2 to [`MAX_FRAGMENTS`]).
    pub count: u8,
    /// The piece: bytes `index * piece_len(frame_len, count)` onwards of the frame.
    pub piece: &'a [u8],
}

/// The length of every piece but possibly the last when a `frame_len`-byte frame is cut into
/// `count` pieces: the frame is split evenly, each piece `ceil(frame_len / count)` bytes long
/// and the last one taking the rest.
pub fn piece_len(frame_len: usize, count: usize) -> usize {
    frame_len.div_ceil(count.max(1))
}

/// The byte range of piece `index` of `count` of a `frame_len`-byte frame, if that piece is
/// non-empty (every piece of a well-formed split is).
pub fn piece_range(frame_len: usize, count: usize, index: usize) -> Option<std::ops::Range<usize>> {
    let len = piece_len(frame_len, count);
    let start = index.checked_mul(len)?;
    if index >= count || start >= frame_len {
        return None;
    }
    Some(start..(start + len).min(frame_len))
}

impl Fragment<'_> {
    /// Checks the fragment's numbers against each other.
    ///
    /// # Errors
    /// [`PayloadError::RuntFrame`], [`PayloadError::FragmentIndex`] or
    /// [`PayloadError::FragmentLength`].
    pub fn check(&self) -> Result<(), PayloadError> {
        let frame_len = usize::from(self.frame_len);
        if frame_len < ETH_HEADER_LEN {
            return Err(PayloadError::RuntFrame { len: frame_len });
        }
        let bad_index = PayloadError::FragmentIndex {
            index: self.index,
            count: self.count,
        };
        if !(2..=MAX_FRAGMENTS).contains(&self.count) || self.index >= self.count {
            return Err(bad_index);
        }
        // Every piece, the last included, must be non-empty.
        let count = usize::from(self.count);
        piece_range(frame_len, count, count - 1).ok_or(bad_index.clone())?;
        let range = piece_range(frame_len, count, usize::from(self.index)).ok_or(bad_index)?;
        if range.len() != self.piece.len() {
            return Err(PayloadError::FragmentLength {
                expected: range.len(),
                actual: self.piece.len(),
            });
        }
        Ok(())
    }
}

/// A message: the payload of a datagram, by type (smoltcp's `Repr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A hello.
    Hello(HelloPayload),
    /// A whole Ethernet frame.
    Frame(&'a [u8]),
    /// A piece of an Ethernet frame.
    Fragment(Fragment<'a>),
    /// A keepalive.
    Keepalive {
        /// The sender's send time, in a unit and from an origin of the sender's choosing
        /// (vnetd: nanoseconds of its monotonic clock); the receiver echoes it unchanged.
        sent_at: u64,
        /// How many padding bytes follow (a path-MTU probe is a padded keepalive).
        padding: usize,
    },
    /// The answer to a keepalive.
    KeepaliveEcho {
        /// The keepalive's `sent_at`, unchanged.
        sent_at: u64,
        /// The size of the keepalive datagram as received (tells a prober which size passed).
        probe_len: u16,
    },
    /// A VTTIF update, as [`vttif::update::encode`] wrote it.
    Traffic(&'a [u8]),
}

/// The buffer given to [`Message::emit`] is too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {have} bytes is too small; {need} are needed")]
pub struct BufferTooSmall {
    /// The bytes needed.
    pub need: usize,
    /// The bytes given.
    pub have: usize,
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(out)
}

fn exact(expected: usize, payload: &[u8]) -> Result<(), PayloadError> {
    if payload.len() == expected {
        Ok(())
    } else {
        Err(PayloadError::BadLength {
            expected,
            actual: payload.len(),
        })
    }
}

fn at_least(expected: usize, payload: &[u8]) -> Result<(), PayloadError> {
    if payload.len() >= expected {
        Ok(())
    } else {
        Err(PayloadError::BadLength {
            expected,
            actual: payload.len(),
        })
    }
}

impl<'a> Message<'a> {
    /// The type a datagram carrying this message has.
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::Frame(_) => MessageType::Frame,
            Message::Fragment(_) => MessageType::Fragment,
            Message::Keepalive { .. } => MessageType::Keepalive,
            Message::KeepaliveEcho { .. } => MessageType::KeepaliveEcho,
            Message::Traffic(_) => MessageType::Traffic,
        }
    }

    /// Parses a payload of type `kind`.
    ///
    /// # Errors
    /// [`ParseError::UnknownType`] for an unknown type, [`ParseError::Payload`] for a payload
    /// that does not follow its type's layout.
    pub fn parse(kind: MessageType, payload: &'a [u8]) -> Result<Self, ParseError> {
        let wrap = |error| ParseError::Payload { kind, error };
        match kind {
            MessageType::Hello => HelloPayload::parse(payload).map(Message::Hello),
            MessageType::Frame => {
                if payload.len() < ETH_HEADER_LEN {
                    return Err(wrap(PayloadError::RuntFrame { len: payload.len() }));
                }
                Ok(Message::Frame(payload))
            }
            MessageType::Fragment => {
                at_least(FRAGMENT_HEADER_LEN + 1, payload).map_err(wrap)?;
                let fragment = Fragment {
                    frame_id: u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
                    frame_len: u16::from_be_bytes([payload[4], payload[5]]),
                    index: payload[6],
                    count: payload[7],
                    piece: &payload[FRAGMENT_HEADER_LEN..],
                };
                fragment.check().map_err(wrap)?;
                Ok(Message::Fragment(fragment))
            }
            MessageType::Keepalive => {
                at_least(KEEPALIVE_LEN, payload).map_err(wrap)?;
                Ok(Message::Keepalive {
                    sent_at: be_u64(payload),
                    padding: payload.len() - KEEPALIVE_LEN,
                })
            }
            MessageType::KeepaliveEcho => {
                exact(KEEPALIVE_ECHO_LEN, payload).map_err(wrap)?;
                Ok(Message::KeepaliveEcho {
                    sent_at: be_u64(payload),
                    probe_len: u16::from_be_bytes([payload[8], payload[9]]),
                })
            }
            MessageType::Traffic => Ok(Message::Traffic(payload)),
            MessageType::Unknown(t) => Err(ParseError::UnknownType(t)),
        }
    }

    /// The payload's length when emitted.
    pub fn payload_len(&self) -> usize {
        match self {
            Message::Hello(hello) => 9 + hello.name.as_str().len(),
            Message::Frame(frame) => frame.len(),
            Message::Fragment(fragment) => FRAGMENT_HEADER_LEN + fragment.piece.len(),
            Message::Keepalive { padding, .. } => KEEPALIVE_LEN + padding,
            Message::KeepaliveEcho { .. } => KEEPALIVE_ECHO_LEN,
            Message::Traffic(update) => update.len(),
        }
    }

    /// Writes the payload at the start of `buf` and returns its length.
    ///
    /// # Errors
    /// [`BufferTooSmall`] if `buf` is shorter than [`Message::payload_len`]; nothing is
    /// written then.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let need = self.payload_len();
        let have = buf.len();
        let out = buf.get_mut(..need).ok_or(BufferTooSmall { need, have })?;
        match self {
            Message::Hello(hello) => {
                let name = hello.name.as_str().as_bytes();
                let your = hello.your_session.map_or(0, SessionId::get);
                out[..8].copy_from_slice(&your.to_be_bytes());
                // A Name is at most 63 bytes long, so its length fits the octet.
                out[8] = u8::try_from(name.len()).unwrap_or(u8::MAX);
                out[9..].copy_from_slice(name);
            }
            Message::Frame(frame) => out.copy_from_slice(frame),
            Message::Fragment(fragment) => {
                out[..4].copy_from_slice(&fragment.frame_id.to_be_bytes());
                out[4..6].copy_from_slice(&fragment.frame_len.to_be_bytes());
                out[6] = fragment.index;
                out[7] = fragment.count;
                out[FRAGMENT_HEADER_LEN..].copy_from_slice(fragment.piece);
            }
            Message::Keepalive { sent_at, .. } => {
                out[..8].copy_from_slice(&sent_at.to_be_bytes());
                out[8..].fill(0);
            }
            Message::KeepaliveEcho { sent_at, probe_len } => {
                out[..8].copy_from_slice(&sent_at.to_be_bytes());
                out[8..].copy_from_slice(&probe_len.to_be_bytes());
            }
            Message::Traffic(update) => out.copy_from_slice(update),
        }
        Ok(need)
    }
}

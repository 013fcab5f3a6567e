//! The datagram header as a checked view over bytes, and the errors of parsing it.
//!
//! ```text
//!  0       1       2       3       4 ...                 12 ...                20      22      24
//! +-------+-------+-------+-------+----------------------+----------------------+-------+-------+
//! |version| type  | hops  | flags |  sender session id   |   sequence number    |length | hint  |
//! +-------+-------+-------+-------+----------------------+----------------------+-------+-------+
//! | payload (`length` bytes)                                         ...                        |
//! +---------------------------------------------------------------------------------------------+
//! | tag (16 bytes): AES-128-GCM over header and (encrypted) payload                            |
//! +---------------------------------------------------------------------------------------------+
//! ```
//!
//! Every multi-byte field is big-endian (network order).

use std::fmt;

use super::auth::SessionId;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 24;
/// Length of the authentication tag that follows the payload.
pub const TAG_LEN: usize = 16;
/// What the overlay adds to every datagram: header and tag.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// The largest payload the 16-bit length field can declare.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;

/// Byte ranges of the header fields.
mod field {
    use std::ops::Range;

    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const HOPS: usize = 2;
    pub const FLAGS: usize = 3;
    pub const SESSION: Range<usize> = 4..12;
    pub const SEQ: Range<usize> = 12..20;
    pub const LENGTH: Range<usize> = 20..22;
    pub const HINT: Range<usize> = 22..24;
}

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A daemon announces its name and session, and the session it knows of the receiver.
    Hello,
    /// A whole Ethernet frame.
    Frame,
    /// One piece of an Ethernet frame too large for the link's datagrams.
    Fragment,
    /// A liveness probe carrying the sender's send time (and optional padding).
    Keepalive,
    /// The answer to a keepalive: its send time and its size as received.
    KeepaliveEcho,
    /// A VTTIF update: traffic that entered the overlay at the sender's ports
    /// ([`vttif::update`]).
    Traffic,
    /// A type this version does not know; parsing rejects it.
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(value: u8) -> Self {
        match value {
            1 => MessageType::Hello,
            2 => MessageType::Frame,
            3 => MessageType::Fragment,
            4 => MessageType::Keepalive,
            5 => MessageType::KeepaliveEcho,
            6 => MessageType::Traffic,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(value: MessageType) -> Self {
        match value {
            MessageType::Hello => 1,
            MessageType::Frame => 2,
            MessageType::Fragment => 3,
            MessageType::Keepalive => 4,
            MessageType::KeepaliveEcho => 5,
            MessageType::Traffic => 6,
            MessageType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::Hello => f.write_str("hello"),
            MessageType::Frame => f.write_str("frame"),
            MessageType::Fragment => f.write_str("fragment"),
            MessageType::Keepalive => f.write_str("keepalive"),
            MessageType::KeepaliveEcho => f.write_str("keepalive echo"),
            MessageType::Traffic => f.write_str("traffic update"),
            MessageType::Unknown(t) => write!(f, "type {t}"),
        }
    }
}

/// The header's flag byte. Version 1 defines one flag, [`Flags::OFFLOAD`]; receivers ignore
/// bits they do not know (the tag covers them, so nobody but a peer can set them). A later
/// revision may define optional hints here; anything else that changes the meaning of a
/// datagram takes a new version instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// On a frame or fragment: the frame begins with an offload descriptor (checksum or
    /// segmentation left to do, [`crate::offload`]).
    pub const OFFLOAD: u8 = 0x01;

    /// Whether [`Flags::OFFLOAD`] is set.
    pub fn offload(self) -> bool {
        self.0 & Self::OFFLOAD != 0
    }
}

/// Why bytes are not a well-formed datagram (or record, on a stream link).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than a header and a tag.
    #[error("{len} bytes is shorter than a header and a tag ({OVERHEAD} bytes)")]
    TooShort {
        /// How many bytes there were.
        len: usize,
    },
    /// A version this daemon does not speak.
    #[error("unsupported protocol version {0} (this daemon speaks version {VERSION})")]
    BadVersion(u8),
    /// A message type this version does not define.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A hop budget of zero: the previous daemon should have dropped the datagram.
    #[error("hop budget of zero")]
    ZeroHops,
    /// A sender session id of zero, which no session has.
    #[error("sender session id of zero")]
    ZeroSession,
    /// The length field disagrees with the datagram's size.
    #[error("header declares a {declared}-byte payload but {actual} bytes follow the header (less the tag)")]
    LengthMismatch {
        /// The payload length the header declares.
        declared: usize,
        /// The payload length the datagram's size implies.
        actual: usize,
    },
    /// A record larger than the stream decoder accepts.
    #[error("record payload of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// The payload length the header declares.
        len: usize,
        /// The decoder's limit.
        max: usize,
    },
    /// A message of another type than the operation takes.
    #[error("expected a {expected}, got a {found}")]
    WrongType {
        /// The type the operation takes.
        expected: MessageType,
        /// The datagram's type.
        found: MessageType,
    },
    /// The header is sound but the payload is not what its type says.
    #[error("malformed {kind} payload: {error}")]
    Payload {
        /// The declared message type.
        kind: MessageType,
        /// What is wrong with it.
        #[source]
        error: PayloadError,
    },
}

/// What is wrong with a payload whose header is sound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The payload is shorter or longer than its type's fixed layout.
    #[error("{actual} bytes where the layout needs {expected}")]
    BadLength {
        /// The length the layout needs (a minimum for variable-length layouts).
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// A hello's name is not a valid daemon name.
    #[error("the sender name is not a valid name")]
    BadName,
    /// A frame shorter than an Ethernet header.
    #[error("a {len}-byte frame is shorter than an Ethernet header")]
    RuntFrame {
        /// The frame's length.
        len: usize,
    },
    /// A fragment's count is outside `2..=MAX_FRAGMENTS` or its index is not below its count.
    #[error("fragment {index} of {count} is out of range")]
    FragmentIndex {
        /// The fragment's index.
        index: u8,
        /// The number of fragments of its frame.
        count: u8,
    },
    /// A fragment's piece does not have the length its index, count and frame length imply.
    #[error("fragment piece of {actual} bytes where {expected} are due")]
    FragmentLength {
        /// The length the split rule gives.
        expected: usize,
        /// The length found.
        actual: usize,
    },
}

/// A view of a datagram (or a stream record) over a byte buffer.
///
/// [`Datagram::new_checked`] validates the header and the length once; after that no accessor
/// panics. [`Datagram::new_unchecked`] skips validation, for emitting into a buffer; accessors
/// on an unchecked view of a too-short buffer panic, so use it only on buffers of at least
/// [`Datagram::buffer_len`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Datagram<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Datagram { buffer }
    }

    /// Wraps `buffer` after checking that it holds exactly one well-formed datagram: a known
    /// version and type, a non-zero hop budget and session, and a length field that matches
    /// the buffer's size.
    ///
    /// # Errors
    /// The first [`ParseError`] found, checking in the order of the fields.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let datagram = Datagram { buffer };
        let total = datagram.check_header()?;
        let len = datagram.buffer.as_ref().len();
        if len != total {
            return Err(ParseError::LengthMismatch {
                declared: usize::from(datagram.payload_len()),
                actual: len.saturating_sub(OVERHEAD),
            });
        }
        Ok(datagram)
    }

    /// Checks the header alone (the buffer may hold fewer bytes than the whole datagram, as a
    /// stream decoder sees it) and returns the length of the whole datagram it announces.
    ///
    /// # Errors
    /// [`ParseError::TooShort`] if the buffer is shorter than a header; then the version, type,
    /// hop budget and session errors, in that order.
    pub fn check_header(&self) -> Result<usize, ParseError> {
        let bytes = self.buffer.as_ref();
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::TooShort { len: bytes.len() });
        }
        if self.version() != VERSION {
            return Err(ParseError::BadVersion(self.version()));
        }
        if let MessageType::Unknown(t) = self.msg_type() {
            return Err(ParseError::UnknownType(t));
        }
        if self.hops() == 0 {
            return Err(ParseError::ZeroHops);
        }
        if self.raw_session() == 0 {
            return Err(ParseError::ZeroSession);
        }
        Ok(Self::buffer_len(usize::from(self.payload_len())))
    }

    /// The size of a datagram carrying `payload_len` payload bytes.
    pub const fn buffer_len(payload_len: usize) -> usize {
        HEADER_LEN + payload_len + TAG_LEN
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole datagram's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn bytes<const N: usize>(&self, range: std::ops::Range<usize>) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buffer.as_ref()[range]);
        out
    }

    /// The protocol version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The message type.
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The hop budget: how many more links the frame may cross, this one included.
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }

    /// The flags.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// The sender's session id as a number (zero only in a datagram that failed checking).
    pub fn raw_session(&self) -> u64 {
        u64::from_be_bytes(self.bytes(field::SESSION))
    }

    /// The sender's session id; `None` only for an unchecked view whose field is zero.
    pub fn session(&self) -> Option<SessionId> {
        SessionId::new(self.raw_session())
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        u64::from_be_bytes(self.bytes(field::SEQ))
    }

    /// The payload length the header declares.
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::LENGTH))
    }

    /// The receiver hint: the low 16 bits of the receiver's session id that the sender keyed
    /// the datagram for (zero in a hello).
    pub fn receiver_hint(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::HINT))
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// Header and payload: the bytes the tag authenticates.
    pub fn authenticated(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[..end]
    }

    /// The tag.
    pub fn tag(&self) -> &[u8] {
        let start = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[start..start + TAG_LEN]
    }
}

impl<'a> Datagram<&'a mut [u8]> {
    /// The same datagram, read-only.
    pub fn as_shared(&self) -> Datagram<&[u8]> {
        Datagram::new_unchecked(&*self.buffer)
    }

    /// Header, payload (writable, to decrypt it in place) and tag, borrowed for as long as
    /// the buffer is.
    ///
    /// # Panics
    /// If the buffer is shorter than the datagram its header declares (not after
    /// [`Datagram::new_checked`]).
    pub fn into_parts(self) -> (&'a [u8], &'a mut [u8], &'a [u8]) {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let (header, rest) = self.buffer.split_at_mut(HEADER_LEN);
        let (payload, rest) = rest.split_at_mut(end - HEADER_LEN);
        (header, payload, &rest[..TAG_LEN])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Datagram<T> {
    /// Writes a whole header: version 1 and the given fields.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit_header(&mut self, header: &Header) {
        let b = self.buffer.as_mut();
        b[field::VERSION] = VERSION;
        b[field::TYPE] = header.msg_type.into();
        b[field::HOPS] = header.hops;
        b[field::FLAGS] = header.flags.0;
        b[field::SESSION].copy_from_slice(&header.session.get().to_be_bytes());
        b[field::SEQ].copy_from_slice(&header.seq.to_be_bytes());
        b[field::LENGTH].copy_from_slice(&header.payload_len.to_be_bytes());
        b[field::HINT].copy_from_slice(&header.receiver_hint.to_be_bytes());
    }

    /// The payload, for writing (its length is the header's length field).
    ///
    /// # Panics
    /// If the buffer is shorter than the header and the payload it declares.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Header, payload (to encrypt it in place) and tag (to write it).
    ///
    /// # Panics
    /// If the buffer is shorter than the datagram its header declares.
    pub fn parts_mut(&mut self) -> (&[u8], &mut [u8], &mut [u8]) {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let (header, rest) = self.buffer.as_mut().split_at_mut(HEADER_LEN);
        let (payload, rest) = rest.split_at_mut(end - HEADER_LEN);
        (header, payload, &mut rest[..TAG_LEN])
    }

    /// Header and payload, for computing the tag, and the tag, for writing it.
    ///
    /// # Panics
    /// If the buffer is shorter than the datagram its header declares.
    pub fn authenticated_and_tag_mut(&mut self) -> (&[u8], &mut [u8]) {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let (head, rest) = self.buffer.as_mut().split_at_mut(end);
        (head, &mut rest[..TAG_LEN])
    }
}

/// The header's fields, parsed (smoltcp's `Repr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub msg_type: MessageType,
    /// The hop budget (at least 1).
    pub hops: u8,
    /// The flags.
    pub flags: Flags,
    /// The sender's session.
    pub session: SessionId,
    /// The sequence number.
    pub seq: u64,
    /// The payload length.
    pub payload_len: u16,
    /// The low 16 bits of the receiver session the datagram is keyed for (zero in a hello).
    pub receiver_hint: u16,
}

impl Header {
    /// Reads the header of a checked datagram.
    ///
    /// # Errors
    /// As [`Datagram::check_header`] (so an unchecked view is safe to pass).
    pub fn parse<T: AsRef<[u8]>>(datagram: &Datagram<T>) -> Result<Header, ParseError> {
        datagram.check_header()?;
        Ok(Header {
            msg_type: datagram.msg_type(),
            hops: datagram.hops(),
            flags: datagram.flags(),
            session: datagram.session().ok_or(ParseError::ZeroSession)?,
            seq: datagram.seq(),
            payload_len: datagram.payload_len(),
            receiver_hint: datagram.receiver_hint(),
        })
    }
}

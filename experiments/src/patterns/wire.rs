//! The wire format. All integers are little-endian.
//!
//! Every connection starts with a [`Hello`] from the connecting rank, answered by an ack from
//! the accepting rank: a `u16` length and that many bytes of UTF-8 refusal reason (length 0 =
//! accepted). After that:
//! - a **data** connection carries data messages in both directions: a 16-byte header
//!   (`iteration: u64`, `len: u64`) followed by `len` payload bytes;
//! - a **control** connection (every rank > 0 to rank 0) carries control frames: a tag byte,
//!   a `u32` length and that many bytes.

use std::io::{self, IoSlice, Read, Write};

/// First bytes of every [`Hello`].
const MAGIC: [u8; 4] = *b"PTRN";
/// Protocol version, bumped on incompatible changes.
const VERSION: u16 = 1;
/// Upper bound on handshake strings and control frames, against garbage lengths.
const MAX_FRAME: u32 = 1 << 30;

/// The purpose of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// Carries data messages between two communicating ranks.
    Data,
    /// Carries control frames between a rank and rank 0.
    Control,
}

impl std::fmt::Display for Channel {
    /// `data` or `control`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Channel::Data => "data",
            Channel::Control => "control",
        })
    }
}

/// The first message on every connection, from the connecting rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Purpose of the connection.
    pub channel: Channel,
    /// Connecting rank.
    pub from: u32,
    /// Rank the connector believes it is talking to.
    pub to: u32,
    /// Number of ranks of the connector's run.
    pub n: u32,
    /// Canonical description of everything that must agree between ranks.
    pub config: String,
}

impl Hello {
    /// Writes the hello.
    ///
    /// # Errors
    /// I/O errors, or `InvalidInput` if `config` is longer than the protocol allows.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let config = self.config.as_bytes();
        let len = u32::try_from(config.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .ok_or_else(|| invalid_input("configuration string too long"))?;
        let mut buf = Vec::with_capacity(23 + config.len());
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.push(match self.channel {
            Channel::Data => 0,
            Channel::Control => 1,
        });
        for x in [self.from, self.to, self.n, len] {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        buf.extend_from_slice(config);
        w.write_all(&buf)
    }

    /// Reads a hello.
    ///
    /// # Errors
    /// I/O errors; `InvalidData` when the peer does not speak this protocol or version.
    pub fn read_from(r: &mut impl Read) -> io::Result<Self> {
        let mut head = [0u8; 7];
        r.read_exact(&mut head)?;
        if head[..4] != MAGIC {
            return Err(invalid_data("not a patterns peer (bad magic)"));
        }
        let version = u16::from_le_bytes([head[4], head[5]]);
        if version != VERSION {
            return Err(invalid_data(format!(
                "peer speaks protocol version {version}, this binary {VERSION}"
            )));
        }
        let channel = match head[6] {
            0 => Channel::Data,
            1 => Channel::Control,
            other => return Err(invalid_data(format!("unknown channel kind {other}"))),
        };
        let from = read_u32(r)?;
        let to = read_u32(r)?;
        let n = read_u32(r)?;
        let len = read_u32(r)?;
        let config = read_string(r, len)?;
        Ok(Hello {
            channel,
            from,
            to,
            n,
            config,
        })
    }
}

/// Writes the answer to a [`Hello`]: `None` accepts, `Some(reason)` refuses.
///
/// # Errors
/// I/O errors.
pub fn write_ack(w: &mut impl Write, refusal: Option<&str>) -> io::Result<()> {
    let reason = refusal.unwrap_or("").as_bytes();
    let len = u16::try_from(reason.len()).unwrap_or(u16::MAX);
    let reason = &reason[..usize::from(len)];
    w.write_all(&[&len.to_le_bytes()[..], reason].concat())
}

/// Reads the answer to a [`Hello`]: `None` if accepted, `Some(reason)` if refused.
///
/// # Errors
/// I/O errors, `InvalidData` for a reason that is not UTF-8.
pub fn read_ack(r: &mut impl Read) -> io::Result<Option<String>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let len = u16::from_le_bytes(len);
    if len == 0 {
        return Ok(None);
    }
    read_string(r, u32::from(len)).map(Some)
}

/// Tags of control frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Rank > 0 to rank 0: all my connections are up.
    Ready,
    /// Rank 0 to the others: everyone is ready, start iteration 0.
    Go,
    /// Rank > 0 to rank 0: my JSON report.
    Report,
}

impl Tag {
    fn byte(self) -> u8 {
        match self {
            Tag::Ready => 1,
            Tag::Go => 2,
            Tag::Report => 3,
        }
    }
}

/// Writes a control frame.
///
/// # Errors
/// I/O errors, or `InvalidInput` for a body larger than the protocol allows.
pub fn write_control(w: &mut impl Write, tag: Tag, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or_else(|| invalid_input("control frame too large"))?;
    let mut buf = Vec::with_capacity(5 + body.len());
    buf.push(tag.byte());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads a control frame, which must carry `tag`, and returns its body.
///
/// # Errors
/// I/O errors (`UnexpectedEof` when the peer closed the connection), `InvalidData` for a
/// different tag or an oversized frame.
pub fn read_control(r: &mut impl Read, tag: Tag) -> io::Result<Vec<u8>> {
    let mut t = [0u8; 1];
    r.read_exact(&mut t)?;
    if t[0] != tag.byte() {
        return Err(invalid_data(format!(
            "expected control frame {tag:?}, got tag {}",
            t[0]
        )));
    }
    let len = read_u32(r)?;
    if len > MAX_FRAME {
        return Err(invalid_data(format!(
            "control frame of {len} bytes is too large"
        )));
    }
    let mut body = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut body)?;
    if body.len() != body_len(len) {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

/// Size of a data message header.
pub const DATA_HEADER: usize = 16;

/// Encodes a data message header.
pub fn data_header(iteration: u64, len: u64) -> [u8; DATA_HEADER] {
    let mut h = [0u8; DATA_HEADER];
    h[..8].copy_from_slice(&iteration.to_le_bytes());
    h[8..].copy_from_slice(&len.to_le_bytes());
    h
}

/// Decodes a data message header into `(iteration, len)`.
pub fn parse_data_header(h: &[u8; DATA_HEADER]) -> (u64, u64) {
    let mut iteration = [0u8; 8];
    let mut len = [0u8; 8];
    iteration.copy_from_slice(&h[..8]);
    len.copy_from_slice(&h[8..]);
    (u64::from_le_bytes(iteration), u64::from_le_bytes(len))
}

/// Writes a data message (`header` then `payload`) with as few system calls as possible, so
/// that a small message leaves in one segment despite `TCP_NODELAY`.
///
/// # Errors
/// I/O errors; `WriteZero` if the stream stops accepting bytes.
pub fn write_message(w: &mut impl Write, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut slices = [IoSlice::new(header), IoSlice::new(payload)];
    let mut bufs = &mut slices[..];
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut bufs, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` completely, or returns `Ok(false)` if the stream ends cleanly before its first
/// byte (a message boundary).
///
/// # Errors
/// I/O errors; `UnexpectedEof` if the stream ends after the first byte.
pub fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_string(r: &mut impl Read, len: u32) -> io::Result<String> {
    if len > MAX_FRAME {
        return Err(invalid_data(format!("string of {len} bytes is too large")));
    }
    let mut buf = vec![0u8; body_len(len)];
    r.read_exact(&mut buf)?;
    String::from_utf8(buf).map_err(|_| invalid_data("string is not UTF-8"))
}

/// A frame length as a buffer length (lossless: frames are capped at [`MAX_FRAME`]).
fn body_len(len: u32) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

fn invalid_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn invalid_input(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn hello_round_trip() {
        let hello = Hello {
            channel: Channel::Control,
            from: 3,
            to: 0,
            n: 8,
            config: "op=exchange".into(),
        };
        let mut buf = Vec::new();
        hello.write_to(&mut buf).unwrap();
        assert_eq!(Hello::read_from(&mut Cursor::new(&buf)).unwrap(), hello);
        buf[0] = b'X';
        let err = Hello::read_from(&mut Cursor::new(&buf)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = Hello::read_from(&mut Cursor::new(b"GET / HTTP/1.1\r\n")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn ack_round_trip() {
        let mut buf = Vec::new();
        write_ack(&mut buf, None).unwrap();
        write_ack(&mut buf, Some("nope")).unwrap();
        let mut r = Cursor::new(buf);
        assert_eq!(read_ack(&mut r).unwrap(), None);
        assert_eq!(read_ack(&mut r).unwrap().as_deref(), Some("nope"));
    }

    #[test]
    fn control_round_trip() {
        let mut buf = Vec::new();
        write_control(&mut buf, Tag::Ready, b"").unwrap();
        write_control(&mut buf, Tag::Report, b"{}").unwrap();
        let mut r = Cursor::new(buf.clone());
        assert_eq!(read_control(&mut r, Tag::Ready).unwrap(), b"");
        assert_eq!(read_control(&mut r, Tag::Report).unwrap(), b"{}");
        let err = read_control(&mut r, Tag::Go).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = read_control(&mut Cursor::new(&buf[..]), Tag::Go).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let truncated = &buf[5..buf.len() - 1];
        let err = read_control(&mut Cursor::new(truncated), Tag::Report).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn data_messages() {
        let mut buf = Vec::new();
        let payload = vec![7u8; 100_000];
        write_message(&mut buf, &data_header(42, 100_000), &payload).unwrap();
        assert_eq!(buf.len(), DATA_HEADER + 100_000);
        let mut r = Cursor::new(buf);
        let mut h = [0u8; DATA_HEADER];
        assert!(read_exact_or_eof(&mut r, &mut h).unwrap());
        assert_eq!(parse_data_header(&h), (42, 100_000));
        r.set_position((DATA_HEADER + 100_000) as u64);
        assert!(!read_exact_or_eof(&mut r, &mut h).unwrap());
        let mut partial = Cursor::new(vec![1u8; 5]);
        let err = read_exact_or_eof(&mut partial, &mut h).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}

//! Shipping records to the collector: compact, batched, authenticated UDP datagrams.
//!
//! The estimator needs both ends' records of a path, so every host's agent sends what its
//! capture saw to the Proxy's collector. Whatever it sends crosses the very links Wren
//! measures (and counts in its probe bytes), so a record costs about 6 bytes on the wire
//! instead of its 40 in memory:
//!
//! - a datagram carries a table of the daemons' addresses and one of *streams* — (source,
//!   destination, sender session) — so a record names its stream in one byte;
//! - times, sequence numbers and sizes are deltas (zig-zag LEB128 varints): the time from the
//!   previous record of the datagram (0 within a batch, tens of µs on a busy link), the
//!   sequence number and the size from the previous record of the same stream (usually +1
//!   and 0: one byte each).
//!
//! ```text
//! offset  size  field
//!      0     4  magic "WRN1"
//!      4     8  reporter session (the agent's start time, ns; a restarted agent's is larger)
//!     12     8  datagram sequence number (per session, from 0)
//!     20     8  the reporter's clock when sent (ns since the epoch)
//!     28     1  name length n (1..=64), then n bytes of the reporter's name (UTF-8)
//!      .     1  addresses k (≤ 255), then each: family 4|6, 4|16 bytes of IP, port (2)
//!      .     1  streams s (≤ 255), then each: source index, destination index, session (8),
//!               the first record's sequence number (8) and size (4)
//!      .     2  records m, then the base time (8, i64 ns); then m records:
//!                 varint  zig-zag time delta (ns) from the previous record (the first: base)
//!                 1       flags: bit 0 received (else sent), bits 1-3 vnetd's type octet
//!                 1       stream index
//!                 varint  zig-zag sequence delta from the stream's previous record (the
//!                         first: from the stream's first sequence number, so 0)
//!                 varint  zig-zag size delta, likewise
//!                 varint  place in its capture batch
//!  end-32    32  tag: HMAC-SHA-256 with the overlay key
//! ```
//!
//! Integers are big-endian. **Authentication**: the tag is
//! [`OverlayKey::control_proof`] over [`LABEL`] followed by every byte before the tag
//! (`vnetd::wire`'s HMAC under its own control label; the Wren label keeps a tag from ever
//! being a control proof, whose challenges are 32 random bytes). A datagram with a wrong tag
//! is refused as a whole. **Replay**: the collector keeps, per reporter name, its newest
//! session and a 64-datagram window of sequence numbers ([`ReplayWindow`]); older sessions
//! and repeated numbers are refused. Records the estimator has seen twice are dropped
//! anyway (it counts duplicates). **Loss**: a lost datagram loses its records only (every
//! datagram stands alone); the estimator copes with unmatched records.
//!
//! [`decode`] never panics: every malformation is a [`ShipError`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vnetd::wire::OverlayKey;

use crate::record::{Direction, MsgType, Record};

/// The collector's UDP port by default.
pub const DEFAULT_PORT: u16 = 5410;
/// Largest datagram sent: fits a 1500-byte underlay with IPv6 and options to spare.
pub const MAX_DATAGRAM: usize = 1400;
/// The magic at the start of every datagram.
pub const MAGIC: &[u8; 4] = b"WRN1";
/// What the tag's HMAC covers first.
pub const LABEL: &[u8] = b"wren ship v1\0";
/// Bytes of the tag.
pub const TAG_LEN: usize = 32;
/// Longest reporter name.
pub const MAX_NAME: usize = 64;
/// Bytes of IP, UDP and Ethernet headers around a datagram on an IPv4 underlay: what a
/// shipped datagram costs the wire beyond its payload.
pub const WIRE_OVERHEAD_IPV4: usize = 14 + 20 + 8;

/// The largest a record can encode to (three 10-byte varints, two bytes, a 3-byte varint).
const MAX_RECORD: usize = 10 + 1 + 1 + 10 + 5 + 3;
/// The largest a new address and a new stream add to the tables.
const MAX_TABLE_ADD: usize = 2 * (1 + 16 + 2) + STREAM_LEN;
/// Bytes of a stream's table entry.
const STREAM_LEN: usize = 1 + 1 + 8 + 8 + 4;

/// Why bytes are not a datagram the collector takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipError {
    /// Shorter than its fields say.
    #[error("truncated datagram: {0}")]
    Truncated(&'static str),
    /// Not a Wren datagram (or another version).
    #[error("not a Wren datagram (bad magic)")]
    BadMagic,
    /// The tag does not verify under the overlay key.
    #[error("authentication failed: wrong overlay key or altered datagram")]
    BadTag,
    /// A field out of range.
    #[error("malformed datagram: {0}")]
    Malformed(&'static str),
    /// A session older than the reporter's newest, or a datagram seen before.
    #[error("replayed or stale datagram (session {session:x}, sequence {seq})")]
    Replayed {
        /// The datagram's session.
        session: u64,
        /// Its sequence number.
        seq: u64,
    },
}

impl ShipError {
    /// A short label for counters (`wren_reporter_rejected_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            ShipError::Truncated(_) => "truncated",
            ShipError::BadMagic => "bad_magic",
            ShipError::BadTag => "bad_tag",
            ShipError::Malformed(_) => "malformed",
            ShipError::Replayed { .. } => "replayed",
        }
    }
}

/// One decoded datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The reporter's name (a daemon name of the hosts file, e.g. `host1`).
    pub reporter: String,
    /// The reporter's session.
    pub session: u64,
    /// The datagram's sequence number in the session.
    pub seq: u64,
    /// The reporter's clock when it sent the datagram (ns).
    pub sent_ns: i64,
    /// The records, in the order the reporter's capture gave them.
    pub records: Vec<Record>,
}

/// Makes a reporter's datagrams: keeps its session and the next sequence number.
#[derive(Debug, Clone)]
pub struct Encoder {
    key: OverlayKey,
    reporter: String,
    session: u64,
    next_seq: u64,
}

impl Encoder {
    /// An encoder for `reporter` (1..=64 bytes) in `session`.
    ///
    /// # Errors
    /// [`ShipError::Malformed`] for an empty or over-long name.
    pub fn new(key: OverlayKey, reporter: &str, session: u64) -> Result<Encoder, ShipError> {
        if reporter.is_empty() || reporter.len() > MAX_NAME {
            return Err(ShipError::Malformed("reporter name must be 1..=64 bytes"));
        }
        Ok(Encoder {
            key,
            reporter: reporter.to_owned(),
            session,
            next_seq: 0,
        })
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// `records` as datagrams of at most [`MAX_DATAGRAM`] bytes, each standing alone; none
    /// for no records.
    pub fn encode(&mut self, sent_ns: i64, records: &[Record]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = records;
        while !rest.is_empty() {
            let (datagram, used) = self.one(sent_ns, rest);
            out.push(datagram);
            rest = &rest[used.max(1).min(rest.len())..];
        }
        out
    }

    /// One datagram from the front of `records`, and how many records it took.
    fn one(&mut self, sent_ns: i64, records: &[Record]) -> (Vec<u8>, usize) {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let mut streams: Vec<(u8, u8, u64, u64, u32)> = Vec::new();
        // Per stream: previous sequence number and size.
        let mut prev: Vec<(u64, u32)> = Vec::new();
        let mut body = Vec::with_capacity(MAX_DATAGRAM);
        let base = records.first().map_or(0, |r| r.t_ns);
        let mut prev_t = base;
        let fixed = 4 + 8 + 8 + 8 + 1 + self.reporter.len() + 1 + 1 + 2 + 8 + TAG_LEN;
        let mut tables = 0usize;
        let mut used = 0usize;
        for r in records {
            let room = fixed + tables + body.len() + MAX_RECORD + MAX_TABLE_ADD;
            if room > MAX_DATAGRAM || used >= usize::from(u16::MAX) {
                break;
            }
            // 255 entries at most per table: a full table ends the datagram.
            if addrs.len() >= 254 || streams.len() >= 255 {
                break;
            }
            let (Some(s), Some(d)) = (
                index_of(&mut addrs, r.src, &mut tables),
                index_of(&mut addrs, r.dst, &mut tables),
            ) else {
                break;
            };
            let stream = match streams
                .iter()
                .position(|x| (x.0, x.1, x.2) == (s, d, r.session))
                .and_then(|i| u8::try_from(i).ok())
            {
                Some(i) => i,
                None => {
                    let Ok(i) = u8::try_from(streams.len()) else {
                        break;
                    };
                    streams.push((s, d, r.session, r.seq, r.len));
                    prev.push((r.seq, r.len));
                    tables += STREAM_LEN;
                    i
                }
            };
            let (prev_seq, prev_len) = prev[usize::from(stream)];
            put_varint(&mut body, zigzag(r.t_ns.wrapping_sub(prev_t)));
            let rx = u8::from(r.dir == Direction::Rx);
            body.push(rx | (r.msg.octet() << 1));
            body.push(stream);
            put_varint(&mut body, zigzag(r.seq.wrapping_sub(prev_seq) as i64));
            put_varint(
                &mut body,
                zigzag(i64::from(r.len).wrapping_sub(i64::from(prev_len))),
            );
            put_varint(&mut body, u64::from(r.batch));
            prev[usize::from(stream)] = (r.seq, r.len);
            prev_t = r.t_ns;
            used += 1;
        }
        let mut d = Vec::with_capacity(fixed + tables + body.len());
        d.extend_from_slice(MAGIC);
        d.extend_from_slice(&self.session.to_be_bytes());
        d.extend_from_slice(&self.next_seq.to_be_bytes());
        d.extend_from_slice(&sent_ns.to_be_bytes());
        // The name's length was checked in `new`.
        d.push(u8::try_from(self.reporter.len()).unwrap_or(0));
        d.extend_from_slice(self.reporter.as_bytes());
        d.push(u8::try_from(addrs.len()).unwrap_or(0));
        for a in &addrs {
            match a.ip() {
                IpAddr::V4(ip) => {
                    d.push(4);
                    d.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    d.push(6);
                    d.extend_from_slice(&ip.octets());
                }
            }
            d.extend_from_slice(&a.port().to_be_bytes());
        }
        d.push(u8::try_from(streams.len()).unwrap_or(0));
        for (s, t, session, seq, len) in &streams {
            d.push(*s);
            d.push(*t);
            d.extend_from_slice(&session.to_be_bytes());
            d.extend_from_slice(&seq.to_be_bytes());
            d.extend_from_slice(&len.to_be_bytes());
        }
        d.extend_from_slice(&u16::try_from(used).unwrap_or(0).to_be_bytes());
        d.extend_from_slice(&base.to_be_bytes());
        d.extend_from_slice(&body);
        let tag = tag(&self.key, &d);
        d.extend_from_slice(&tag);
        self.next_seq += 1;
        (d, used)
    }
}

/// `a`'s index in the address table, added (and its bytes counted) if new.
fn index_of(addrs: &mut Vec<SocketAddr>, a: SocketAddr, tables: &mut usize) -> Option<u8> {
    if let Some(i) = addrs.iter().position(|x| *x == a) {
        return u8::try_from(i).ok();
    }
    let i = u8::try_from(addrs.len()).ok()?;
    *tables += if a.is_ipv4() { 1 + 4 + 2 } else { 1 + 16 + 2 };
    addrs.push(a);
    Some(i)
}

fn tag(key: &OverlayKey, bytes: &[u8]) -> [u8; 32] {
    let mut m = Vec::with_capacity(LABEL.len() + bytes.len());
    m.extend_from_slice(LABEL);
    m.extend_from_slice(bytes);
    key.control_proof(&m)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[allow(clippy::cast_possible_truncation)] // the low 7 bits, on purpose
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over a datagram that fails instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ShipError> {
        let end = self.at.checked_add(n).ok_or(ShipError::Truncated(what))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(ShipError::Truncated(what))?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ShipError> {
        Ok(self.take(1, what)?[0])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ShipError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ShipError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, ShipError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ShipError::Malformed("varint longer than 10 bytes"))
    }
}

/// Checks a datagram's tag under `key` and decodes it.
///
/// # Errors
/// [`ShipError`]: too short, not Wren's, a wrong tag, or a malformed field. Never panics.
pub fn decode(key: &OverlayKey, bytes: &[u8]) -> Result<Batch, ShipError> {
    if bytes.len() < MAGIC.len() + TAG_LEN {
        return Err(ShipError::Truncated("shorter than magic and tag"));
    }
    if &bytes[..4] != MAGIC {
        return Err(ShipError::BadMagic);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let mut m = Vec::with_capacity(LABEL.len() + signed.len());
    m.extend_from_slice(LABEL);
    m.extend_from_slice(signed);
    if !key.verify_control(&m, tag) {
        return Err(ShipError::BadTag);
    }
    let mut r = Reader {
        bytes: signed,
        at: 4,
    };
    let session = r.u64("session")?;
    let seq = r.u64("sequence number")?;
    let sent_ns = r.u64("send time")? as i64;
    let n = usize::from(r.u8("name length")?);
    if n == 0 || n > MAX_NAME {
        return Err(ShipError::Malformed("reporter name must be 1..=64 bytes"));
    }
    let reporter = std::str::from_utf8(r.take(n, "name")?)
        .map_err(|_| ShipError::Malformed("reporter name is not UTF-8"))?
        .to_owned();
    let k = usize::from(r.u8("address count")?);
    let mut addrs = Vec::with_capacity(k);
    for _ in 0..k {
        let ip = match r.u8("address family")? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>("IPv4 address")?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>("IPv6 address")?)),
            _ => return Err(ShipError::Malformed("address family is neither 4 nor 6")),
        };
        let port = u16::from_be_bytes(r.array("port")?);
        addrs.push(SocketAddr::new(ip, port));
    }
    let s = usize::from(r.u8("stream count")?);
    let mut streams = Vec::with_capacity(s);
    for _ in 0..s {
        let a = usize::from(r.u8("stream source")?);
        let b = usize::from(r.u8("stream destination")?);
        let session = r.u64("stream session")?;
        let first_seq = r.u64("stream's first sequence number")?;
        let first_len = u32::from_be_bytes(r.array("stream's first size")?);
        let (Some(src), Some(dst)) = (addrs.get(a), addrs.get(b)) else {
            return Err(ShipError::Malformed(
                "stream names an address not in the table",
            ));
        };
        streams.push((*src, *dst, session, first_seq, first_len));
    }
    let m = usize::from(u16::from_be_bytes(r.array("record count")?));
    let base = r.u64("base time")? as i64;
    // Every record takes at least 6 bytes: a count beyond what is left is a lie.
    if m > (signed.len() - r.at) / 6 + 1 {
        return Err(ShipError::Truncated(
            "fewer bytes than the record count needs",
        ));
    }
    let mut prev: Vec<(u64, u32)> = streams.iter().map(|s| (s.3, s.4)).collect();
    let mut records = Vec::with_capacity(m);
    let mut t = base;
    for _ in 0..m {
        t = t.wrapping_add(unzigzag(r.varint("record time")?));
        let flags = r.u8("record flags")?;
        let dir = if flags & 1 == 1 {
            Direction::Rx
        } else {
            Direction::Tx
        };
        let msg = MsgType::from_octet((flags >> 1) & 0x7)
            .ok_or(ShipError::Malformed("unknown message type"))?;
        if flags >> 4 != 0 {
            return Err(ShipError::Malformed("reserved flag bits set"));
        }
        let i = usize::from(r.u8("record stream")?);
        let &(src, dst, session, _, _) = streams.get(i).ok_or(ShipError::Malformed(
            "record names a stream not in the table",
        ))?;
        let dseq = unzigzag(r.varint("record sequence")?);
        let dlen = unzigzag(r.varint("record size")?);
        let (ps, pl) = prev[i];
        let seq = ps.wrapping_add(dseq as u64);
        let len = u32::try_from(i64::from(pl).wrapping_add(dlen))
            .map_err(|_| ShipError::Malformed("record size out of range"))?;
        prev[i] = (seq, len);
        let batch = u16::try_from(r.varint("record batch")?)
            .map_err(|_| ShipError::Malformed("batch place over 16 bits"))?;
        records.push(Record {
            t_ns: t,
            dir,
            src,
            dst,
            len,
            msg,
            session,
            seq,
            batch,
        });
    }
    if r.at != signed.len() {
        return Err(ShipError::Malformed("bytes after the last record"));
    }
    Ok(Batch {
        reporter,
        session,
        seq,
        sent_ns,
        records,
    })
}

/// Refuses replays: per reporter, its newest session and the last 64 sequence numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    session: u64,
    highest: Option<u64>,
    /// Bit `i`: `highest - i` was seen.
    seen: u64,
}

impl ReplayWindow {
    /// Takes `(session, seq)` if it is new; refuses older sessions, repeats, and numbers
    /// more than 64 below the newest.
    ///
    /// # Errors
    /// [`ShipError::Replayed`].
    pub fn check(&mut self, session: u64, seq: u64) -> Result<(), ShipError> {
        let refuse = Err(ShipError::Replayed { session, seq });
        if session < self.session {
            return refuse;
        }
        if session > self.session {
            *self = ReplayWindow {
                session,
                highest: Some(seq),
                seen: 1,
            };
            return Ok(());
        }
        let Some(h) = self.highest else {
            self.highest = Some(seq);
            self.seen = 1;
            return Ok(());
        };
        if seq > h {
            let shift = seq - h;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = Some(seq);
            return Ok(());
        }
        let back = h - seq;
        if back >= 64 || self.seen & (1 << back) != 0 {
            return refuse;
        }
        self.seen |= 1 << back;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> OverlayKey {
        OverlayKey::from_bytes([b; 32])
    }

    fn rec(i: u64, t: i64) -> Record {
        Record {
            t_ns: t,
            dir: if i.is_multiple_of(3) {
                Direction::Rx
            } else {
                Direction::Tx
            },
            src: "10.200.0.1:5400".parse().unwrap(),
            dst: if i.is_multiple_of(2) {
                "10.200.0.2:5400".parse().unwrap()
            } else {
                "[fd00::1]:5400".parse().unwrap()
            },
            len: 1514 - u32::try_from(i % 5).unwrap() * 100,
            msg: if i.is_multiple_of(7) {
                MsgType::Keepalive
            } else {
                MsgType::Fragment
            },
            session: 0x1234_5678_9abc_def0 + (i % 2),
            seq: 1000 + i,
            batch: u16::try_from(i % 4).unwrap(),
        }
    }

    #[test]
    fn round_trip_splits_into_datagrams_that_fit() {
        let records: Vec<Record> = (0..2000)
            .map(|i| {
                rec(
                    i,
                    1_700_000_000_000_000_000 + i64::try_from(i).unwrap() * 37_000,
                )
            })
            .collect();
        let mut e = Encoder::new(key(7), "host1", 42).unwrap();
        let ds = e.encode(5, &records);
        assert!(ds.len() > 1);
        let mut back = Vec::new();
        for (n, d) in ds.iter().enumerate() {
            assert!(d.len() <= MAX_DATAGRAM, "{} bytes", d.len());
            let b = decode(&key(7), d).unwrap();
            assert_eq!(
                (b.reporter.as_str(), b.session, b.seq, b.sent_ns),
                ("host1", 42, n as u64, 5)
            );
            back.extend(b.records);
        }
        assert_eq!(back, records);
        // Compact: far below the 40 bytes a record takes in memory.
        let bytes: usize = ds.iter().map(Vec::len).sum();
        assert!(
            bytes < records.len() * 12,
            "{bytes} bytes for {} records",
            records.len()
        );
    }

    #[test]
    fn no_records_no_datagram() {
        let mut e = Encoder::new(key(1), "h", 1).unwrap();
        assert!(e.encode(0, &[]).is_empty());
        assert!(Encoder::new(key(1), "", 1).is_err());
        assert!(Encoder::new(key(1), &"x".repeat(65), 1).is_err());
    }

    #[test]
    fn a_wrong_key_is_refused() {
        let mut e = Encoder::new(key(1), "host1", 1).unwrap();
        let d = e.encode(0, &[rec(1, 10)]).remove(0);
        assert_eq!(decode(&key(2), &d), Err(ShipError::BadTag));
        let mut altered = d.clone();
        altered[30] ^= 1;
        assert_eq!(decode(&key(1), &altered), Err(ShipError::BadTag));
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut e = Encoder::new(key(1), "host1", 1).unwrap();
        let d = e.encode(0, &[rec(1, 10), rec(2, 20)]).remove(0);
        for n in 0..d.len() {
            assert!(
                decode(&key(1), &d[..n]).is_err(),
                "prefix of {n} bytes taken"
            );
        }
        assert_eq!(
            decode(&key(1), b"XXXX0123456789012345678901234567890123"),
            Err(ShipError::BadMagic)
        );
    }

    #[test]
    fn replays_are_refused() {
        let mut w = ReplayWindow::default();
        assert!(w.check(5, 0).is_ok());
        assert!(w.check(5, 2).is_ok());
        assert!(w.check(5, 1).is_ok());
        assert!(w.check(5, 1).is_err());
        assert!(w.check(5, 2).is_err());
        assert!(w.check(4, 100).is_err(), "an older session");
        assert!(w.check(5, 100).is_ok());
        assert!(w.check(5, 30).is_err(), "more than 64 behind");
        assert!(w.check(6, 0).is_ok(), "a restarted reporter");
    }

    /// A datagram signed with the right key but arbitrary bytes inside: decode must not panic.
    fn signed(body: &[u8]) -> Vec<u8> {
        let mut d = MAGIC.to_vec();
        d.extend_from_slice(body);
        let t = tag(&key(3), &d);
        d.extend_from_slice(&t);
        d
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&key(3), &bytes);
            let _ = decode(&key(3), &signed(&bytes));
        }

        #[test]
        fn round_trip_any_records(
            ts in proptest::collection::vec(any::<i64>(), 1..300),
            seqs in proptest::collection::vec(any::<u64>(), 1..300),
        ) {
            let records: Vec<Record> = ts.iter().zip(seqs.iter().cycle()).enumerate().map(|(i, (t, s))| {
                let mut r = rec(i as u64, *t);
                r.seq = *s;
                r
            }).collect();
            let mut e = Encoder::new(key(3), "host9", 9).unwrap();
            let mut back = Vec::new();
            for d in e.encode(0, &records) {
                prop_assert!(d.len() <= MAX_DATAGRAM);
                back.extend(decode(&key(3), &d).unwrap().records);
            }
            prop_assert_eq!(back, records);
        }
    }
}

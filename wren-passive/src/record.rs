//! What Wren keeps of a captured packet: a [`Record`] per overlay datagram, and the parser
//! that makes them from the bytes libpcap hands over ([`parse_packet`]).
//!
//! A captured packet is a link-layer header (Ethernet, Linux "cooked" SLL or SLL2, or none),
//! IPv4 or IPv6, UDP, and the first bytes of a vnetd datagram. Of the datagram only its
//! 24-byte header is read, which vnetd sends in clear (`vnetd/src/wire.rs`, "Datagram
//! format"):
//!
//! ```text
//! offset  size  field
//!      0     1  version          1
//!      1     1  type             1 hello, 2 frame, 3 fragment, 4 keepalive, 5 echo, 6 traffic
//!      2     1  hop budget
//!      3     1  flags
//!      4     8  sender session   the sending daemon's session id (non-zero)
//!     12     8  sequence number  per link and sender session, from 0, never reused
//!     20     2  payload length
//!     22     2  receiver hint
//! ```
//!
//! The payload (encrypted, but for hellos) is never read or kept. `(source, destination,
//! session, sequence number)` names one datagram uniquely, so the record the sender's capture
//! makes and the one the receiver's capture makes can be matched for a one-way delay.
//!
//! **Batches.** vnetd sends a frame's datagrams as one `UDP_SEGMENT` message and receives
//! with `UDP_GRO`, so a capture on a virtual NIC may see one packet that stands for several
//! back-to-back datagrams of one size (the last may be shorter). The first datagram's header
//! tells the segment size (header, payload and tag); a UDP payload of `n` bytes with segment
//! size `s` is `ceil(n / s)` datagrams whose sequence numbers follow each other (vnetd seals a
//! frame's fragments in order). [`Packet::records`] expands such a packet into one record per
//! datagram, all with the packet's timestamp and [`Record::batch`] telling their place.
//!
//! Nothing here panics: every malformation is a [`ParseError`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use vnetd::wire::MessageType;

/// Length of vnetd's datagram header.
pub const VNET_HEADER_LEN: usize = 24;
/// Length of vnetd's authentication tag, after the payload.
pub const VNET_TAG_LEN: usize = 16;
/// vnetd's protocol version, the only one parsed.
pub const VNET_VERSION: u8 = 1;
/// Most datagrams one captured packet may stand for (the kernel's `UDP_MAX_SEGMENTS` is 128).
pub const MAX_BATCH: usize = 128;
/// Ethernet header length: [`Record::len`] counts it (as `tbf` and the testbed's link
/// emulator do) although a cooked or raw capture does not show one.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// The link-layer framing of captured packets (libpcap's `DLT_*` / `LINKTYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkType {
    /// Ethernet (`LINKTYPE_ETHERNET`, 1), with up to two VLAN tags.
    Ethernet,
    /// Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`, 113), e.g. on the `any` device.
    LinuxSll,
    /// Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`, 276).
    LinuxSll2,
    /// No link-layer header: the packet begins with IP (`LINKTYPE_RAW`, 101; `DLT_RAW`, 12
    /// or 14).
    Raw,
}

impl LinkType {
    /// The framing of libpcap's data-link type `dlt`, if Wren can parse it.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            12 | 14 | 101 => Some(LinkType::Raw),
            _ => None,
        }
    }
}

/// Which way a datagram crossed the capturing host's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    /// Sent by the capturing host (its source address is local).
    Tx,
    /// Received by the capturing host (its destination address is local).
    Rx,
}

/// vnetd's message type, as the header's type octet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MsgType {
    /// 1: a hello (link set-up).
    Hello,
    /// 2: a whole guest frame.
    Frame,
    /// 3: a piece of a guest frame.
    Fragment,
    /// 4: a keepalive (carries its sender's send time, encrypted).
    Keepalive,
    /// 5: a keepalive's echo.
    KeepaliveEcho,
    /// 6: a VTTIF traffic update.
    Traffic,
}

impl MsgType {
    /// The type of octet `value`, if vnetd's version 1 defines it (the numbering is vnetd's:
    /// [`MessageType`]).
    pub fn from_octet(value: u8) -> Option<MsgType> {
        Some(match MessageType::from(value) {
            MessageType::Hello => MsgType::Hello,
            MessageType::Frame => MsgType::Frame,
            MessageType::Fragment => MsgType::Fragment,
            MessageType::Keepalive => MsgType::Keepalive,
            MessageType::KeepaliveEcho => MsgType::KeepaliveEcho,
            MessageType::Traffic => MsgType::Traffic,
            MessageType::Unknown(_) => return None,
        })
    }

    /// The octet of this type.
    pub fn octet(self) -> u8 {
        u8::from(match self {
            MsgType::Hello => MessageType::Hello,
            MsgType::Frame => MessageType::Frame,
            MsgType::Fragment => MessageType::Fragment,
            MsgType::Keepalive => MessageType::Keepalive,
            MsgType::KeepaliveEcho => MessageType::KeepaliveEcho,
            MsgType::Traffic => MessageType::Traffic,
        })
    }
}

/// One overlay datagram as one capture saw it: when, which way, between which daemons, how
/// big on the wire, and the header fields that identify it. No payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    /// The capture's timestamp, nanoseconds since the Unix epoch in the capturing host's
    /// clock (which may be offset from and drift against other hosts' clocks).
    pub t_ns: i64,
    /// Which way it crossed the capturing host's interface.
    pub dir: Direction,
    /// The sending daemon's address (IP and UDP port).
    pub src: SocketAddr,
    /// The receiving daemon's address.
    pub dst: SocketAddr,
    /// Bytes on the wire: the Ethernet frame that carries this one datagram (14-byte
    /// Ethernet header, IP, UDP, vnetd header, payload and tag; no preamble or FCS).
    pub len: u32,
    /// The message type.
    pub msg: MsgType,
    /// The sending daemon's session id.
    pub session: u64,
    /// The datagram's sequence number (per link and sender session).
    pub seq: u64,
    /// Its place in the batch the capture saw it in (0: first or alone); records of a
    /// batch share one timestamp, so only the first one's time is the wire's.
    pub batch: u16,
}

/// A captured packet, parsed: one vnetd datagram, or a batch of equal-size ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The capture's timestamp (ns since the Unix epoch).
    pub t_ns: i64,
    /// Which way it went.
    pub dir: Direction,
    /// Source daemon.
    pub src: SocketAddr,
    /// Destination daemon.
    pub dst: SocketAddr,
    /// Bytes of IP and UDP header in front of each datagram (28 for IPv4 without options).
    pub ip_udp_overhead: u32,
    /// Size of each datagram (vnetd header, payload and tag) but the last.
    pub segment: u32,
    /// Size of the last datagram (equal to `segment` when the batch has one datagram).
    pub last_segment: u32,
    /// How many datagrams the packet stands for (1 unless batched).
    pub count: u16,
    /// The first datagram's message type.
    pub msg: MsgType,
    /// The sender's session.
    pub session: u64,
    /// The first datagram's sequence number.
    pub seq: u64,
}

impl Packet {
    /// One record per datagram of the packet, in order.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        (0..self.count).map(move |i| {
            let last = i + 1 == self.count;
            let datagram = if last {
                self.last_segment
            } else {
                self.segment
            };
            let eth = u32::try_from(ETHERNET_HEADER_LEN).unwrap_or(14);
            Record {
                t_ns: self.t_ns,
                dir: self.dir,
                src: self.src,
                dst: self.dst,
                len: datagram
                    .saturating_add(self.ip_udp_overhead)
                    .saturating_add(eth),
                msg: self.msg,
                session: self.session,
                seq: self.seq.saturating_add(u64::from(i)),
                batch: i,
            }
        })
    }
}

/// Why captured bytes are not a vnetd datagram Wren can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The capture ended before the headers did (snaplen, or a runt packet).
    #[error("truncated {layer} header ({have} bytes captured, {need} needed)")]
    Truncated {
        /// Which header.
        layer: &'static str,
        /// Bytes captured up to the end of that header.
        have: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// Not IPv4 or IPv6 (e.g. ARP).
    #[error("not IP (ethertype or version {0:#06x})")]
    NotIp(u16),
    /// IP, but not UDP.
    #[error("IP protocol {0}, not UDP")]
    NotUdp(u8),
    /// A fragment of an IP packet (vnetd sends with don't-fragment; a fragment has no UDP
    /// header, or only one piece of the datagram).
    #[error("an IP fragment")]
    IpFragment,
    /// An IP or UDP length field that contradicts the packet.
    #[error("bad {field} length field ({value})")]
    BadLength {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: usize,
    },
    /// Neither address is the capturing host's: not this host's traffic.
    #[error("neither {src} nor {dst} is a local address")]
    NotLocal {
        /// Source.
        src: IpAddr,
        /// Destination.
        dst: IpAddr,
    },
    /// Not vnetd version 1 (a version octet other than 1).
    #[error("vnetd version {0} (only 1 is parsed)")]
    BadVersion(u8),
    /// A message type vnetd does not define.
    #[error("unknown vnetd message type {0}")]
    BadType(u8),
    /// A hop budget or session id of zero: a malformed datagram.
    #[error("zero {0} in a vnetd header")]
    Zero(&'static str),
    /// The UDP payload is not a whole number of datagrams of the header's size.
    #[error("UDP payload of {udp} bytes is not a batch of {segment}-byte datagrams")]
    BadBatch {
        /// The UDP payload's length.
        udp: usize,
        /// The datagram size the first header declares.
        segment: usize,
    },
}

/// Bounds-checked big-endian reads.
fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut out = [0u8; 8];
    out.copy_from_slice(s);
    Some(u64::from_be_bytes(out))
}

fn need(layer: &'static str, b: &[u8], end: usize) -> Result<(), ParseError> {
    if b.len() < end {
        Err(ParseError::Truncated {
            layer,
            have: b.len(),
            need: end,
        })
    } else {
        Ok(())
    }
}

/// Where IP begins and which version it says it is (0x0800 / 0x86dd).
fn link_layer(link: LinkType, b: &[u8]) -> Result<(usize, u16), ParseError> {
    match link {
        LinkType::Ethernet => {
            need("Ethernet", b, 14)?;
            let mut off = 12;
            let mut ethertype = be_u16(b, off).unwrap_or(0);
            // Up to two VLAN tags (802.1Q, 802.1ad).
            for _ in 0..2 {
                if ethertype == 0x8100 || ethertype == 0x88a8 {
                    off += 4;
                    need("VLAN", b, off + 2)?;
                    ethertype = be_u16(b, off).unwrap_or(0);
                }
            }
            Ok((off + 2, ethertype))
        }
        LinkType::LinuxSll => {
            need("SLL", b, 16)?;
            Ok((16, be_u16(b, 14).unwrap_or(0)))
        }
        LinkType::LinuxSll2 => {
            need("SLL2", b, 20)?;
            Ok((20, be_u16(b, 0).unwrap_or(0)))
        }
        LinkType::Raw => {
            need("IP", b, 1)?;
            match b[0] >> 4 {
                4 => Ok((0, 0x0800)),
                6 => Ok((0, 0x86dd)),
                v => Err(ParseError::NotIp(u16::from(v))),
            }
        }
    }
}

/// Parses one captured packet.
///
/// - `data`: the captured bytes (at most the snaplen);
/// - `orig_len`: the packet's length on the interface (libpcap's `len`), which tells how big a
///   truncated packet was;
/// - `t_ns`: its timestamp;
/// - `is_local`: whether an IP address is the capturing host's, which gives the direction
///   (a packet from a local address to a local address counts as sent).
///
/// # Errors
/// A [`ParseError`] for anything that is not a well-formed vnetd datagram (or batch) between
/// this host and another.
pub fn parse_packet(
    link: LinkType,
    data: &[u8],
    orig_len: u32,
    t_ns: i64,
    is_local: impl Fn(IpAddr) -> bool,
) -> Result<Packet, ParseError> {
    let (ip_off, ethertype) = link_layer(link, data)?;
    let orig_len = usize::try_from(orig_len).unwrap_or(usize::MAX);
    // What follows the link layer on the wire: the IP packet (the link layer may add padding
    // after it, so the IP length field is the authority, checked against this).
    let ip_wire = orig_len.checked_sub(ip_off).ok_or(ParseError::BadLength {
        field: "captured",
        value: orig_len,
    })?;
    let (src_ip, dst_ip, l4_off, ip_total, ip_hdr) = match ethertype {
        0x0800 => {
            need("IPv4", data, ip_off + 20)?;
            let vihl = data[ip_off];
            if vihl >> 4 != 4 {
                return Err(ParseError::NotIp(u16::from(vihl >> 4)));
            }
            let ihl = usize::from(vihl & 0x0f) * 4;
            if ihl < 20 {
                return Err(ParseError::BadLength {
                    field: "IPv4 header",
                    value: ihl,
                });
            }
            need("IPv4", data, ip_off + ihl)?;
            let total = usize::from(be_u16(data, ip_off + 2).unwrap_or(0));
            let frag = be_u16(data, ip_off + 6).unwrap_or(0);
            // More fragments, or a non-zero offset.
            if frag & 0x3fff != 0 {
                return Err(ParseError::IpFragment);
            }
            let proto = data[ip_off + 9];
            if proto != 17 {
                return Err(ParseError::NotUdp(proto));
            }
            let src = Ipv4Addr::new(
                data[ip_off + 12],
                data[ip_off + 13],
                data[ip_off + 14],
                data[ip_off + 15],
            );
            let dst = Ipv4Addr::new(
                data[ip_off + 16],
                data[ip_off + 17],
                data[ip_off + 18],
                data[ip_off + 19],
            );
            // A GSO super-packet over 64 KiB carries 0 here; the wire length tells then.
            let total = if total == 0 { ip_wire } else { total };
            (IpAddr::V4(src), IpAddr::V4(dst), ip_off + ihl, total, ihl)
        }
        0x86dd => {
            need("IPv6", data, ip_off + 40)?;
            if data[ip_off] >> 4 != 6 {
                return Err(ParseError::NotIp(u16::from(data[ip_off] >> 4)));
            }
            let payload = usize::from(be_u16(data, ip_off + 4).unwrap_or(0));
            let next = data[ip_off + 6];
            if next == 44 {
                return Err(ParseError::IpFragment);
            }
            if next != 17 {
                // Extension headers are not followed: vnetd's datagrams carry none.
                return Err(ParseError::NotUdp(next));
            }
            let mut s = [0u8; 16];
            s.copy_from_slice(&data[ip_off + 8..ip_off + 24]);
            let mut d = [0u8; 16];
            d.copy_from_slice(&data[ip_off + 24..ip_off + 40]);
            let total = if payload == 0 { ip_wire } else { payload + 40 };
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                ip_off + 40,
                total,
                40,
            )
        }
        other => return Err(ParseError::NotIp(other)),
    };
    if ip_total > ip_wire || ip_total < ip_hdr + 8 {
        return Err(ParseError::BadLength {
            field: "IP total",
            value: ip_total,
        });
    }
    need("UDP", data, l4_off + 8)?;
    let sport = be_u16(data, l4_off).unwrap_or(0);
    let dport = be_u16(data, l4_off + 2).unwrap_or(0);
    let udp_payload = ip_total - ip_hdr - 8;
    // The UDP length field (0 in super-packets over 64 KiB) must agree when set.
    let udp_len = usize::from(be_u16(data, l4_off + 4).unwrap_or(0));
    if udp_len != 0 && udp_len != udp_payload + 8 {
        return Err(ParseError::BadLength {
            field: "UDP",
            value: udp_len,
        });
    }
    let dir = if is_local(src_ip) {
        Direction::Tx
    } else if is_local(dst_ip) {
        Direction::Rx
    } else {
        return Err(ParseError::NotLocal {
            src: src_ip,
            dst: dst_ip,
        });
    };
    let v = l4_off + 8;
    need("vnetd", data, v + VNET_HEADER_LEN)?;
    if data[v] != VNET_VERSION {
        return Err(ParseError::BadVersion(data[v]));
    }
    let msg = MsgType::from_octet(data[v + 1]).ok_or(ParseError::BadType(data[v + 1]))?;
    if data[v + 2] == 0 {
        return Err(ParseError::Zero("hop budget"));
    }
    let session = be_u64(data, v + 4).unwrap_or(0);
    if session == 0 {
        return Err(ParseError::Zero("session"));
    }
    let seq = be_u64(data, v + 12).unwrap_or(0);
    let payload_len = usize::from(be_u16(data, v + 20).unwrap_or(0));
    let segment = VNET_HEADER_LEN + payload_len + VNET_TAG_LEN;
    let bad_batch = ParseError::BadBatch {
        udp: udp_payload,
        segment,
    };
    if udp_payload < segment {
        return Err(bad_batch);
    }
    let count = udp_payload.div_ceil(segment);
    let last = udp_payload - (count - 1) * segment;
    // The last datagram of a batch needs a header and a tag at least.
    if count > MAX_BATCH || last < VNET_HEADER_LEN + VNET_TAG_LEN {
        return Err(bad_batch);
    }
    let to_u32 = |x: usize| u32::try_from(x).map_err(|_| bad_batch.clone());
    Ok(Packet {
        t_ns,
        dir,
        src: SocketAddr::new(src_ip, sport),
        dst: SocketAddr::new(dst_ip, dport),
        ip_udp_overhead: to_u32(ip_hdr + 8)?,
        segment: to_u32(segment)?,
        last_segment: to_u32(last)?,
        count: u16::try_from(count).map_err(|_| bad_batch.clone())?,
        msg,
        session,
        seq,
    })
}

/// Builders of packets shaped like vnetd's, for tests, the capture test and the fuzz target's
/// seeds: Ethernet, IPv4, UDP and a vnetd header, followed by `payload_len` zero bytes and a
/// zero tag (`segments` datagrams of one size back to back, as a `UDP_SEGMENT` send is
/// before segmentation).
pub mod build {
    use std::net::SocketAddrV4;

    use super::{MsgType, VNET_HEADER_LEN, VNET_TAG_LEN};

    /// The vnetd header and a zero payload and tag: one datagram's bytes.
    pub fn datagram(msg: MsgType, session: u64, seq: u64, payload_len: u16) -> Vec<u8> {
        let mut d = Vec::with_capacity(VNET_HEADER_LEN + usize::from(payload_len) + VNET_TAG_LEN);
        d.push(1);
        d.push(msg.octet());
        d.push(1);
        d.push(0);
        d.extend_from_slice(&session.to_be_bytes());
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&payload_len.to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.resize(d.len() + usize::from(payload_len) + VNET_TAG_LEN, 0);
        d
    }

    /// An Ethernet frame with IPv4 and UDP around `udp_payload`.
    pub fn ethernet_ipv4(src: SocketAddrV4, dst: SocketAddrV4, udp_payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(42 + udp_payload.len());
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = u16::try_from(20 + 8 + udp_payload.len()).unwrap_or(0);
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src.ip().octets());
        f.extend_from_slice(&dst.ip().octets());
        f.extend_from_slice(&src.port().to_be_bytes());
        f.extend_from_slice(&dst.port().to_be_bytes());
        let udp_len = u16::try_from(8 + udp_payload.len()).unwrap_or(0);
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(udp_payload);
        f
    }

    /// A batch of `segments` datagrams of `payload_len` payload bytes each, numbered from
    /// `seq`, as one UDP payload.
    pub fn batch(msg: MsgType, session: u64, seq: u64, payload_len: u16, segments: u16) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..u64::from(segments) {
            out.extend_from_slice(&datagram(msg, session, seq + i, payload_len));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use super::build::*;
    use super::*;

    fn a() -> SocketAddrV4 {
        "10.200.0.1:5400".parse().unwrap()
    }
    fn b() -> SocketAddrV4 {
        "10.200.0.2:5400".parse().unwrap()
    }
    fn local_a(ip: IpAddr) -> bool {
        ip == IpAddr::V4(*a().ip())
    }

    #[test]
    fn one_datagram() {
        let f = ethernet_ipv4(a(), b(), &datagram(MsgType::Frame, 7, 42, 100));
        let len = u32::try_from(f.len()).unwrap();
        let p = parse_packet(LinkType::Ethernet, &f[..66], len, 5, local_a).unwrap();
        assert_eq!(p.dir, Direction::Tx);
        assert_eq!(p.count, 1);
        assert_eq!((p.session, p.seq, p.msg), (7, 42, MsgType::Frame));
        let r: Vec<_> = p.records().collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].len, len);
        assert_eq!(r[0].src, SocketAddr::V4(a()));
        // Seen at the other end it is received.
        let p = parse_packet(LinkType::Ethernet, &f, len, 5, |ip| !local_a(ip)).unwrap();
        assert_eq!(p.dir, Direction::Rx);
    }

    #[test]
    fn a_batch_expands_into_its_datagrams() {
        // A 1514-byte frame as two 805-byte fragments (payload 765), the way vnetd cuts it,
        // but 3 of them with a shorter last one.
        let mut udp = batch(MsgType::Fragment, 9, 100, 765, 2);
        udp.extend_from_slice(&datagram(MsgType::Fragment, 9, 102, 300));
        let f = ethernet_ipv4(a(), b(), &udp);
        let len = u32::try_from(f.len()).unwrap();
        let p = parse_packet(LinkType::Ethernet, &f[..66], len, 1, local_a).unwrap();
        assert_eq!(p.count, 3);
        let r: Vec<_> = p.records().collect();
        assert_eq!(
            r.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![100, 101, 102]
        );
        assert_eq!(r[0].len, 805 + 42);
        assert_eq!(r[2].len, 340 + 42);
        assert_eq!(r.iter().map(|r| r.len).sum::<u32>(), len + 2 * 42);
    }

    #[test]
    fn malformations_are_errors() {
        let f = ethernet_ipv4(a(), b(), &datagram(MsgType::Frame, 7, 42, 100));
        let len = u32::try_from(f.len()).unwrap();
        for cut in 0..66 {
            assert!(parse_packet(LinkType::Ethernet, &f[..cut], len, 0, local_a).is_err());
        }
        let mut bad = f.clone();
        bad[42] = 2;
        assert_eq!(
            parse_packet(LinkType::Ethernet, &bad, len, 0, local_a),
            Err(ParseError::BadVersion(2))
        );
        let mut bad = f.clone();
        bad[43] = 9;
        assert_eq!(
            parse_packet(LinkType::Ethernet, &bad, len, 0, local_a),
            Err(ParseError::BadType(9))
        );
        // A payload length that does not fit the packet.
        let mut bad = f.clone();
        bad[62] = 0x10;
        assert!(matches!(
            parse_packet(LinkType::Ethernet, &bad, len, 0, local_a),
            Err(ParseError::BadBatch { .. })
        ));
        // Not ours.
        assert!(matches!(
            parse_packet(LinkType::Ethernet, &f, len, 0, |_| false),
            Err(ParseError::NotLocal { .. })
        ));
        // An original length shorter than the headers.
        assert!(parse_packet(LinkType::Ethernet, &f, 10, 0, local_a).is_err());
    }

    #[test]
    fn cooked_and_raw_framings() {
        let f = ethernet_ipv4(a(), b(), &datagram(MsgType::Keepalive, 7, 1, 8));
        let ip = &f[14..];
        let ip_len = u32::try_from(ip.len()).unwrap();
        let p = parse_packet(LinkType::Raw, ip, ip_len, 0, local_a).unwrap();
        assert_eq!(p.msg, MsgType::Keepalive);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(ip);
        let p = parse_packet(LinkType::LinuxSll, &sll, ip_len + 16, 0, local_a).unwrap();
        assert_eq!(p.records().next().unwrap().len, ip_len + 14);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>, len: u32, t: i64) {
            for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Raw] {
                if let Ok(p) = parse_packet(link, &data, len, t, |ip| ip.is_loopback()) {
                    proptest::prop_assert!(p.count >= 1);
                    proptest::prop_assert_eq!(p.records().count(), usize::from(p.count));
                }
            }
        }
    }
}

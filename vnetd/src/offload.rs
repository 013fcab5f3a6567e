//! Checksum and segmentation offloads, finished in software: the work a NIC does for a frame
//! that a TAP handed over half done.
//!
//! A TAP opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)`
//! prefixes every frame with a 10-byte `struct virtio_net_hdr` ([`VNET_HDR_LEN`]), and the
//! frame behind it may be unfinished: a TCP or UDP checksum that holds only the pseudo-header
//! sum (*needs checksum*), or a TCP *super-frame* of up to 64 KB that still has to be cut into
//! MSS-sized frames (*GSO*, generic segmentation offload). [`Offload`] is that header parsed.
//! The daemon carries it across the overlay next to the frame, as a [`DESCRIPTOR_LEN`]-byte
//! *descriptor*, so a TAP at the other end can take the frame as it is. A port that cannot
//! (libpcap injection, a unix datagram socket, a TAP without a vnet header) gets the frame
//! through [`resolve`], which completes the checksum and segments as Linux's
//! `skb_checksum_help` and `skb_gso_segment` would: out come plain frames, every checksum
//! right, no offload left.
//!
//! Nothing here does I/O or allocates per frame: [`resolve`] builds its frames in a buffer
//! the caller keeps, which stops growing once it holds the largest segment.
//!
//! # The two encodings
//!
//! Both hold the same five fields with the same numbers; the vnet header, as the kernel
//! reads and writes it on x86 (legacy virtio, `IFF_VNET_LE` not needed), is little-endian
//! ([`Offload::from_vnet_hdr`], [`Offload::to_vnet_hdr`]); the overlay's descriptor is
//! big-endian, like everything else on the wire ([`Offload::decode`], [`Offload::encode`]):
//!
//! ```text
//! offset  size  field
//!      0     1  flags            bit 0 needs checksum, bit 1 data valid; other bits refused
//!      1     1  GSO type         0 none, 1 TCP over IPv4, 4 TCP over IPv6, bit 7 ECN (TCP only);
//!                                3 (UDP fragmentation) and 5 (UDP segmentation) refused as
//!                                unsupported, any other value refused as unknown
//!      2     2  header length    the sender kernel's hint; carried, never used
//!      4     2  segment size     payload bytes per segment (the MSS), GSO only
//!      6     2  checksum start   offset in the frame where checksumming starts
//!      8     2  checksum offset  offset of the checksum field from checksum start
//! ```
//!
//! The descriptor has no version of its own: the message that carries it is versioned.
//! Fields that the flags and GSO type make meaningless (checksum start without *needs
//! checksum*, segment size without GSO) are carried unchanged, so both encodings round-trip
//! exactly.
//!
//! # What the fields mean here
//!
//! - *Needs checksum*: the 16-bit field at `csum_start + csum_offset` holds the folded
//!   pseudo-header sum. Completing it is the ones'-complement sum of the frame from
//!   `csum_start` to its end, folded and complemented, stored in that field; a result of 0
//!   is stored as `0xffff` (0 means "no checksum" in UDP; for TCP both are the same value).
//!   The protocol does not matter, only the two offsets, which must leave the field inside
//!   the frame.
//! - *Data valid*: the frame's checksums were already checked. Nothing to do, so an offload
//!   with only this flag is [`none`](Offload::is_none). If *needs checksum* is set too, it
//!   wins.
//! - *GSO* (TCP only): the frame must be Ethernet, at most one 802.1Q tag, IPv4 (options
//!   allowed) or IPv6 matching the GSO type, then TCP, with at least one payload byte and a
//!   non-zero segment size. Its headers end where parsing says (Ethernet, tag, IP header,
//!   TCP data offset); the header length field is not trusted, since Linux fills it with the
//!   length of the skb's linear part, not of the headers. Each segment is the headers, then
//!   the next `gso_size` payload bytes (the last one fewer). Per segment: IPv4 total length,
//!   identification (the super-frame's plus the segment's index, wrapping) and header
//!   checksum; IPv6 payload length; TCP sequence number (plus the offset of the segment's
//!   payload), flags (CWR kept on the first segment only, FIN and PSH on the last only) and
//!   a full checksum computed from scratch, whatever the field held. A payload that fits one
//!   segment gives one frame, its lengths and checksums finished the same way. The ECN bit
//!   changes nothing in that: it tells whoever segments that the super-frame may carry CWR,
//!   which is handled the same way with or without it.
//!
//! # What is refused, and why
//!
//! Every refusal has its own [`OffloadError`] variant. [`resolve`] runs all the checks before
//! it emits anything, and it panics on no input (a property test and the `offload` fuzz
//! target feed it arbitrary headers and frames).
//!
//! - **UDP segmentation and fragmentation offload** (GSO types 3 and 5): our TAPs are not
//!   opened with `TUN_F_UFO` or `TUN_F_USO4/6`, so the kernel never hands them over, and
//!   segmenting UDP is a different job (IPv4 fragments for UFO, per-datagram UDP headers for
//!   USO). Unknown flag bits and GSO types likewise: their meaning cannot be honoured.
//! - **IPv6 extension headers, IPv4 fragments, a second VLAN tag, non-TCP protocols** under
//!   GSO: the kernel's TCP stack does not produce them in super-frames, and copying
//!   extension headers or fragment fields into every segment would be wrong or need far more
//!   parsing.
//! - **An IP length field that disagrees with the frame** under GSO: a super-frame fills its
//!   IP packet exactly (Linux does not pad them), so a mismatch is a corrupt frame, and
//!   segmenting trailing bytes as TCP payload would forward garbage.
//! - **A checksum position that is not TCP's** under GSO with *needs checksum* (start at the
//!   TCP header, offset 16), as recent Linux refuses it: the segments get a TCP checksum
//!   anyway, so another position means the header does not describe this frame.
//! - **A header length longer than the frame**, which a TAP refuses on write (`EINVAL`).
//!
//! Not handled: the 12-byte headers of modern virtio (`num_buffers`, hash reports), which
//! TAPs only use when asked with `TUNSETVNETHDRSZ`; and super-frames of more than 64 KB (IPv6
//! BIG TCP), which a TAP never produces.

use std::fmt;

/// Length of the legacy `struct virtio_net_hdr` that prefixes every frame of a TAP opened with
/// `IFF_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;

/// Length of the overlay's descriptor of an offload (see the [module documentation](self)).
pub const DESCRIPTOR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`.
const F_DATA_VALID: u8 = 2;
const KNOWN_FLAGS: u8 = F_NEEDS_CSUM | F_DATA_VALID;

/// `VIRTIO_NET_HDR_GSO_NONE`, `_TCPV4`, `_UDP`, `_TCPV6`, `_UDP_L4`, `_ECN`.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP: u8 = 3;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

const ETH_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const IPPROTO_TCP: u8 = 6;
const TCP_MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field in the TCP header.
const TCP_CHECKSUM_OFFSET: u16 = 16;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// The segmentation a frame still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gso {
    /// None: the frame is no larger than the MTU.
    #[default]
    None,
    /// A TCP over IPv4 super-frame (`VIRTIO_NET_HDR_GSO_TCPV4`).
    Tcp4,
    /// A TCP over IPv6 super-frame (`VIRTIO_NET_HDR_GSO_TCPV6`).
    Tcp6,
}

impl Gso {
    fn code(self) -> u8 {
        match self {
            Gso::None => GSO_NONE,
            Gso::Tcp4 => GSO_TCPV4,
            Gso::Tcp6 => GSO_TCPV6,
        }
    }
}

impl fmt::Display for Gso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gso::None => "no",
            Gso::Tcp4 => "TCP/IPv4",
            Gso::Tcp6 => "TCP/IPv6",
        })
    }
}

/// What is left to do to a frame: the fields of a `virtio_net_hdr`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// The checksum at `csum_start + csum_offset` holds only the pseudo-header sum
    /// (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
    pub needs_csum: bool,
    /// The frame's checksums were verified already (`VIRTIO_NET_HDR_F_DATA_VALID`);
    /// informational, nothing to do.
    pub data_valid: bool,
    /// The segmentation still to do.
    pub gso: Gso,
    /// The ECN bit of the GSO type (`VIRTIO_NET_HDR_GSO_ECN`): the super-frame may carry CWR.
    /// Only with a TCP [`Gso`].
    pub ecn: bool,
    /// The sender's header-length hint; carried, never used (see the module documentation).
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS), for GSO.
    pub gso_size: u16,
    /// Where checksumming starts, from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

/// Where a TCP super-frame's headers are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    ipv4: bool,
    /// Start of the IP header.
    l3: usize,
    /// Start of the TCP header.
    l4: usize,
    /// Start of the TCP payload (end of the headers).
    payload: usize,
}

/// What [`resolve`] has to do with a frame that its offload is consistent with.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Plain,
    Checksum { start: usize, field: usize },
    Segment(Layout),
}

impl Offload {
    /// Nothing to do: the frame is complete as it is.
    pub const NONE: Offload = Offload {
        needs_csum: false,
        data_valid: false,
        gso: Gso::None,
        ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Whether nothing is left to do: no checksum to complete and no segmentation. *Data
    /// valid* alone counts as none, and so do fields that only matter with a flag or a GSO
    /// type set.
    pub fn is_none(&self) -> bool {
        !self.needs_csum && self.gso == Gso::None
    }

    /// Parses the `virtio_net_hdr` a TAP put before a frame (little-endian), from the first
    /// [`VNET_HDR_LEN`] bytes of `b`; the frame is what follows.
    ///
    /// # Errors
    /// [`OffloadError::ShortHeader`] if `b` is shorter than the header; unknown flags or GSO
    /// types, UDP GSO, and the ECN bit without TCP GSO (see the module documentation).
    pub fn from_vnet_hdr(b: &[u8]) -> Result<Offload, OffloadError> {
        Self::parse(b, VNET_HDR_LEN, u16::from_le_bytes)
    }

    /// The `virtio_net_hdr` to write before the frame to a TAP (little-endian).
    pub fn to_vnet_hdr(&self) -> [u8; VNET_HDR_LEN] {
        self.emit(u16::to_le_bytes)
    }

    /// Parses the overlay's descriptor (big-endian) from the first [`DESCRIPTOR_LEN`] bytes of
    /// `b`.
    ///
    /// # Errors
    /// As [`from_vnet_hdr`](Self::from_vnet_hdr).
    pub fn decode(b: &[u8]) -> Result<Offload, OffloadError> {
        Self::parse(b, DESCRIPTOR_LEN, u16::from_be_bytes)
    }

    /// The overlay's descriptor of this offload (big-endian).
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        self.emit(u16::to_be_bytes)
    }

    fn parse(b: &[u8], need: usize, word: fn([u8; 2]) -> u16) -> Result<Offload, OffloadError> {
        let &[flags, gso_type, h0, h1, g0, g1, s0, s1, o0, o1, ..] = b else {
            return Err(OffloadError::ShortHeader { len: b.len(), need });
        };
        if flags & !KNOWN_FLAGS != 0 {
            return Err(OffloadError::UnknownFlags(flags));
        }
        let ecn = gso_type & GSO_ECN != 0;
        let gso = match gso_type & !GSO_ECN {
            GSO_NONE => Gso::None,
            GSO_TCPV4 => Gso::Tcp4,
            GSO_TCPV6 => Gso::Tcp6,
            GSO_UDP | GSO_UDP_L4 => return Err(OffloadError::UdpGso(gso_type)),
            _ => return Err(OffloadError::UnknownGsoType(gso_type)),
        };
        if ecn && gso == Gso::None {
            return Err(OffloadError::EcnWithoutGso);
        }
        Ok(Offload {
            needs_csum: flags & F_NEEDS_CSUM != 0,
            data_valid: flags & F_DATA_VALID != 0,
            gso,
            ecn,
            hdr_len: word([h0, h1]),
            gso_size: word([g0, g1]),
            csum_start: word([s0, s1]),
            csum_offset: word([o0, o1]),
        })
    }

    fn emit(&self, word: fn(u16) -> [u8; 2]) -> [u8; 10] {
        let mut flags = 0;
        if self.needs_csum {
            flags |= F_NEEDS_CSUM;
        }
        if self.data_valid {
            flags |= F_DATA_VALID;
        }
        let ecn = if self.ecn { GSO_ECN } else { 0 };
        let [h0, h1] = word(self.hdr_len);
        let [g0, g1] = word(self.gso_size);
        let [s0, s1] = word(self.csum_start);
        let [o0, o1] = word(self.csum_offset);
        [flags, self.gso.code() | ecn, h0, h1, g0, g1, s0, s1, o0, o1]
    }

    /// Checks that this offload is consistent with `frame` (the Ethernet frame, without the
    /// vnet header), and says what [`resolve`] has to do to finish it.
    ///
    /// # Errors
    /// The first inconsistency found (see the module documentation for the rules).
    fn plan(&self, frame: &[u8]) -> Result<Plan, OffloadError> {
        let len = frame.len();
        if self.ecn && self.gso == Gso::None {
            return Err(OffloadError::EcnWithoutGso);
        }
        if usize::from(self.hdr_len) > len {
            return Err(OffloadError::HdrLenTooLong {
                hdr_len: self.hdr_len,
                len,
            });
        }
        let start = usize::from(self.csum_start);
        let field = start + usize::from(self.csum_offset);
        if self.needs_csum && field + 2 > len {
            return Err(OffloadError::ChecksumOutOfFrame {
                csum_start: self.csum_start,
                csum_offset: self.csum_offset,
                len,
            });
        }
        if self.gso == Gso::None {
            return Ok(if self.needs_csum {
                Plan::Checksum { start, field }
            } else {
                Plan::Plain
            });
        }
        if self.gso_size == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        let layout = parse_tcp(self.gso, frame)?;
        if self.needs_csum && (start != layout.l4 || self.csum_offset != TCP_CHECKSUM_OFFSET) {
            return Err(OffloadError::ChecksumNotTcp {
                csum_start: self.csum_start,
                csum_offset: self.csum_offset,
                tcp_start: layout.l4,
            });
        }
        Ok(Plan::Segment(layout))
    }
}

/// The header of a frame that ended too early (in [`OffloadError::Truncated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The 14-byte Ethernet header.
    Ethernet,
    /// The 4-byte 802.1Q tag.
    Vlan,
    /// The IPv4 header, options included.
    Ipv4,
    /// The 40-byte IPv6 header.
    Ipv6,
    /// The TCP header, options included.
    Tcp,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "Ethernet",
            Layer::Vlan => "802.1Q",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Tcp => "TCP",
        })
    }
}

/// Why an offload header, or an offload with its frame, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Fewer bytes than a vnet header or a descriptor.
    #[error("an offload header is {need} bytes, got {len}")]
    ShortHeader {
        /// The bytes there were.
        len: usize,
        /// The bytes needed.
        need: usize,
    },
    /// Flag bits other than *needs checksum* and *data valid*.
    #[error("unknown offload flags {0:#04x}")]
    UnknownFlags(u8),
    /// A GSO type that virtio does not define (the whole byte, ECN bit included).
    #[error("unknown GSO type {0:#04x}")]
    UnknownGsoType(u8),
    /// UDP fragmentation (3) or segmentation (5) offload, which vnetd does not enable.
    #[error("UDP segmentation offload (GSO type {0:#04x}) is not supported")]
    UdpGso(u8),
    /// The ECN bit without a TCP GSO type.
    #[error("the ECN bit is set without TCP segmentation")]
    EcnWithoutGso,
    /// The header length exceeds the frame (a TAP refuses such a write).
    #[error("header length {hdr_len} is beyond the end of the {len}-byte frame")]
    HdrLenTooLong {
        /// The header length field.
        hdr_len: u16,
        /// The frame's length.
        len: usize,
    },
    /// The checksum field to complete is not inside the frame.
    #[error(
        "checksum field at {csum_start}+{csum_offset} is beyond the end of the {len}-byte frame"
    )]
    ChecksumOutOfFrame {
        /// The checksum start.
        csum_start: u16,
        /// The checksum offset.
        csum_offset: u16,
        /// The frame's length.
        len: usize,
    },
    /// GSO with a segment size of 0.
    #[error("GSO with a segment size of 0")]
    ZeroGsoSize,
    /// The frame ends inside one of its headers.
    #[error("the frame ends inside its {0} header")]
    Truncated(Layer),
    /// The Ethertype (after any VLAN tag) is not the GSO type's IP version.
    #[error("Ethertype {ethertype:#06x} does not match {gso} segmentation")]
    WrongEthertype {
        /// The Ethertype found.
        ethertype: u16,
        /// The GSO type.
        gso: Gso,
    },
    /// The IP header's version field does not match the GSO type.
    #[error("IP version {version} does not match {gso} segmentation")]
    WrongIpVersion {
        /// The version field.
        version: u8,
        /// The GSO type.
        gso: Gso,
    },
    /// An IPv4 header length below 5 words.
    #[error("IPv4 header length of {0} words, below the minimum of 5")]
    BadIhl(u8),
    /// An IPv4 fragment (more-fragments bit or a fragment offset) as a super-frame.
    #[error("an IPv4 fragment cannot be segmented")]
    Fragment,
    /// The IPv4 protocol or IPv6 next header is not TCP (IPv6 extension headers included).
    #[error("IP protocol {0} is not TCP (IPv6 extension headers are not supported)")]
    NotTcp(u8),
    /// The IP header's length disagrees with the frame.
    #[error("the IP header gives its packet {ip} bytes, the frame carries {frame}")]
    IpLength {
        /// The length the IP header gives (IPv6: payload length plus 40).
        ip: usize,
        /// The bytes of the frame from the IP header on.
        frame: usize,
    },
    /// A TCP data offset below 5 words.
    #[error("TCP data offset of {0} words, below the minimum of 5")]
    BadDataOffset(u8),
    /// A super-frame without TCP payload.
    #[error("a GSO frame without TCP payload")]
    NoPayload,
    /// GSO with *needs checksum* where the checksum is not TCP's.
    #[error("checksum at {csum_start}+{csum_offset} in a TCP super-frame whose TCP header starts at {tcp_start} (offset 16 expected)")]
    ChecksumNotTcp {
        /// The checksum start.
        csum_start: u16,
        /// The checksum offset.
        csum_offset: u16,
        /// Where the TCP header starts.
        tcp_start: usize,
    },
}

/// Parses a TCP super-frame's headers (see the module documentation for the rules).
fn parse_tcp(gso: Gso, frame: &[u8]) -> Result<Layout, OffloadError> {
    if frame.len() < ETH_HEADER_LEN {
        return Err(OffloadError::Truncated(Layer::Ethernet));
    }
    let mut ethertype = be16(frame, 12);
    let mut l3 = ETH_HEADER_LEN;
    if ethertype == ETHERTYPE_VLAN {
        if frame.len() < ETH_HEADER_LEN + VLAN_TAG_LEN {
            return Err(OffloadError::Truncated(Layer::Vlan));
        }
        ethertype = be16(frame, 16);
        l3 += VLAN_TAG_LEN;
    }
    let (ipv4, wanted) = match gso {
        Gso::Tcp4 => (true, ETHERTYPE_IPV4),
        Gso::Tcp6 | Gso::None => (false, ETHERTYPE_IPV6),
    };
    if ethertype != wanted {
        return Err(OffloadError::WrongEthertype { ethertype, gso });
    }
    let ip = frame.get(l3..).unwrap_or_default();
    let (l4, ip_len, protocol) = if ipv4 {
        if ip.len() < IPV4_MIN_HEADER_LEN {
            return Err(OffloadError::Truncated(Layer::Ipv4));
        }
        let version = ip[0] >> 4;
        if version != 4 {
            return Err(OffloadError::WrongIpVersion { version, gso });
        }
        let ihl = ip[0] & 0x0f;
        if usize::from(ihl) * 4 < IPV4_MIN_HEADER_LEN {
            return Err(OffloadError::BadIhl(ihl));
        }
        let header_len = usize::from(ihl) * 4;
        if ip.len() < header_len {
            return Err(OffloadError::Truncated(Layer::Ipv4));
        }
        if be16(ip, 6) & 0x3fff != 0 {
            return Err(OffloadError::Fragment);
        }
        (l3 + header_len, usize::from(be16(ip, 2)), ip[9])
    } else {
        if ip.len() < IPV6_HEADER_LEN {
            return Err(OffloadError::Truncated(Layer::Ipv6));
        }
        let version = ip[0] >> 4;
        if version != 6 {
            return Err(OffloadError::WrongIpVersion { version, gso });
        }
        let ip_len = usize::from(be16(ip, 4)) + IPV6_HEADER_LEN;
        (l3 + IPV6_HEADER_LEN, ip_len, ip[6])
    };
    if protocol != IPPROTO_TCP {
        return Err(OffloadError::NotTcp(protocol));
    }
    if ip_len != ip.len() {
        return Err(OffloadError::IpLength {
            ip: ip_len,
            frame: ip.len(),
        });
    }
    let Some(&data_offset) = frame.get(l4 + 12) else {
        return Err(OffloadError::Truncated(Layer::Tcp));
    };
    let doff = data_offset >> 4;
    let tcp_len = usize::from(doff) * 4;
    if tcp_len < TCP_MIN_HEADER_LEN {
        return Err(OffloadError::BadDataOffset(doff));
    }
    let payload = l4 + tcp_len;
    if payload > frame.len() {
        return Err(OffloadError::Truncated(Layer::Tcp));
    }
    if payload == frame.len() {
        return Err(OffloadError::NoPayload);
    }
    Ok(Layout {
        ipv4,
        l3,
        l4,
        payload,
    })
}

/// Finishes the offloads of `frame` in software and hands each resulting plain frame (no
/// offload left, every checksum correct) to `emit`, in order. Returns how many frames were
/// emitted: 1 without GSO.
///
/// A frame with nothing to do ([`Offload::is_none`]) is handed over as it is; otherwise the
/// frames are built in `scratch`, whose contents are overwritten and whose capacity is kept
/// (it grows once to the largest frame emitted, so a buffer kept across calls stops
/// allocating).
///
/// # Errors
/// The first inconsistency of `offload` with `frame` (see the module documentation for the
/// rules); then nothing was emitted.
pub fn resolve(
    offload: &Offload,
    frame: &[u8],
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    match offload.plan(frame)? {
        Plan::Plain => {
            emit(frame);
            Ok(1)
        }
        Plan::Checksum { start, field } => {
            scratch.clear();
            scratch.extend_from_slice(frame);
            store_checksum(scratch, start, field);
            emit(scratch);
            Ok(1)
        }
        Plan::Segment(layout) => Ok(segment(
            layout,
            usize::from(offload.gso_size),
            frame,
            scratch,
            &mut emit,
        )),
    }
}

/// The *needs checksum* completion: the sum from `start` to the end (the field holding the
/// pseudo-header sum), complemented, into the field at `field`; 0 becomes `0xffff`.
fn store_checksum(frame: &mut [u8], start: usize, field: usize) {
    let sum = fold(sum(frame.get(start..).unwrap_or_default()));
    let checksum = match !sum {
        0 => 0xffff,
        checksum => checksum,
    };
    put16(frame, field, checksum);
}

/// Cuts a checked super-frame into segments of `mss` payload bytes; returns how many.
fn segment(
    layout: Layout,
    mss: usize,
    frame: &[u8],
    scratch: &mut Vec<u8>,
    emit: &mut impl FnMut(&[u8]),
) -> usize {
    let Layout {
        ipv4,
        l3,
        l4,
        payload: headers_len,
    } = layout;
    let Some((headers, payload)) = frame.split_at_checked(headers_len) else {
        return 0;
    };
    let mss = mss.max(1);
    let count = payload.len().div_ceil(mss);
    let tcp_header_len = headers_len - l4;
    let addresses = if ipv4 {
        frame.get(l3 + 12..l3 + 20)
    } else {
        frame.get(l3 + 8..l3 + 40)
    };
    // The pseudo-header without its length: both addresses and the protocol.
    let pseudo = sum(addresses.unwrap_or_default()) + u64::from(IPPROTO_TCP);
    let mut id = be16(frame, l3 + 4);
    let mut seq = be32(frame, l4 + 4);
    let flags = frame.get(l4 + 13).copied().unwrap_or_default();
    for (i, piece) in payload.chunks(mss).enumerate() {
        scratch.clear();
        scratch.extend_from_slice(headers);
        scratch.extend_from_slice(piece);
        let seg = scratch.as_mut_slice();
        let tcp_len = tcp_header_len + piece.len();
        if ipv4 {
            put16(seg, l3 + 2, to_u16(l4 - l3 + tcp_len));
            put16(seg, l3 + 4, id);
            put16(seg, l3 + 10, 0);
            let header_sum = fold(sum(seg.get(l3..l4).unwrap_or_default()));
            put16(seg, l3 + 10, !header_sum);
        } else {
            put16(seg, l3 + 4, to_u16(tcp_len));
        }
        put32(seg, l4 + 4, seq);
        let mut seg_flags = flags;
        if i > 0 {
            seg_flags &= !TCP_CWR;
        }
        if i + 1 < count {
            seg_flags &= !(TCP_FIN | TCP_PSH);
        }
        if let Some(byte) = seg.get_mut(l4 + 13) {
            *byte = seg_flags;
        }
        put16(seg, l4 + 16, 0);
        let tcp_sum = pseudo
            + u64::from(to_u16(tcp_len))
            + sum(seg.get(l4..headers_len).unwrap_or_default())
            + sum(piece);
        put16(seg, l4 + 16, !fold(tcp_sum));
        emit(seg);
        id = id.wrapping_add(1);
        seq = seq.wrapping_add(u32::from(to_u16(piece.len())));
    }
    count
}

/// The ones'-complement sum of `data` as big-endian 16-bit words (an odd last byte padded
/// with a zero byte), not folded. Words are taken 64 bits at a time and added as two 32-bit
/// halves, less than 2^33 per 8 bytes, so the sum cannot overflow below 16 GiB of data (a
/// frame is at most 64 KiB).
fn sum(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_be_bytes(word.try_into().unwrap_or_default());
        acc += (x >> 32) + (x & 0xffff_ffff);
    }
    let rest = words.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    let x = u64::from_be_bytes(tail);
    acc + (x >> 32) + (x & 0xffff_ffff)
}

/// Folds a ones'-complement sum to 16 bits (end-around carries).
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let [.., hi, lo] = sum.to_be_bytes();
    u16::from_be_bytes([hi, lo])
}

/// A length that the checks made at most 65535 (saturating, never reached).
fn to_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn put16(b: &mut [u8], at: usize, value: u16) {
    if let Some(field) = b.get_mut(at..at + 2) {
        field.copy_from_slice(&value.to_be_bytes());
    }
}

fn put32(b: &mut [u8], at: usize, value: u32) {
    if let Some(field) = b.get_mut(at..at + 4) {
        field.copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MSS: u16 = 1448;
    const ACK: u8 = 0x10;
    const ALL_FLAGS: u8 = TCP_CWR | ACK | TCP_PSH | TCP_FIN;

    /// Straightforward ones'-complement sum, byte pair by byte pair, independent of `sum`.
    fn naive_sum(bytes: &[u8]) -> u32 {
        let mut total: u32 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let hi = u32::from(bytes[i]) << 8;
            let lo = bytes.get(i + 1).map_or(0, |&b| u32::from(b));
            total += hi | lo;
            while total > 0xffff {
                total = (total & 0xffff) + (total >> 16);
            }
            i += 2;
        }
        total
    }

    /// Whether the checksum of `bytes` (checksum field included) verifies.
    fn verifies(bytes: &[u8]) -> bool {
        naive_sum(bytes) == 0xffff
    }

    /// The pseudo-header, then the TCP or UDP segment, of the IP packet at `l3`.
    fn pseudo_and_segment(frame: &[u8], l3: usize, l4: usize, ipv4: bool, proto: u8) -> Vec<u8> {
        let segment = &frame[l4..];
        let len = u32::try_from(segment.len()).unwrap();
        let mut bytes = Vec::new();
        if ipv4 {
            bytes.extend_from_slice(&frame[l3 + 12..l3 + 20]);
            bytes.extend_from_slice(&[0, proto]);
            bytes.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        } else {
            bytes.extend_from_slice(&frame[l3 + 8..l3 + 40]);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, proto]);
        }
        bytes.extend_from_slice(segment);
        bytes
    }

    /// A super-frame to build: what varies between tests.
    #[derive(Debug, Clone, Copy)]
    struct Spec {
        ipv4: bool,
        vlan: bool,
        ip_options: bool,
        tcp_options: bool,
        payload_len: usize,
        flags: u8,
        id: u16,
        seq: u32,
    }

    impl Spec {
        fn new(ipv4: bool, payload_len: usize) -> Spec {
            Spec {
                ipv4,
                vlan: false,
                ip_options: false,
                tcp_options: true,
                payload_len,
                flags: ALL_FLAGS,
                id: 0xfffe,
                seq: 0xffff_f000,
            }
        }

        fn l3(&self) -> usize {
            if self.vlan {
                18
            } else {
                14
            }
        }

        fn l4(&self) -> usize {
            self.l3()
                + match (self.ipv4, self.ip_options) {
                    (true, false) => 20,
                    (true, true) => 24,
                    (false, _) => 40,
                }
        }

        fn headers_len(&self) -> usize {
            self.l4() + if self.tcp_options { 32 } else { 20 }
        }

        fn gso(&self) -> Gso {
            if self.ipv4 {
                Gso::Tcp4
            } else {
                Gso::Tcp6
            }
        }

        fn payload(&self) -> Vec<u8> {
            (0..self.payload_len)
                .map(|i| u8::try_from(i % 251).unwrap() ^ 0x5a)
                .collect()
        }

        /// The super-frame, as a Linux guest hands it over with TSO: IP lengths of the whole
        /// frame, a valid IPv4 header checksum, and a TCP checksum field holding garbage
        /// (it must be recomputed whatever it holds).
        fn frame(&self) -> Vec<u8> {
            let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
            if self.vlan {
                f.extend_from_slice(&[0x81, 0x00, 0x20, 0x07]);
            }
            let total = self.headers_len() + self.payload_len;
            if self.ipv4 {
                f.extend_from_slice(&[0x08, 0x00]);
                let ihl: u8 = if self.ip_options { 6 } else { 5 };
                let ip_len = u16::try_from(total - self.l3()).unwrap();
                f.push(0x40 | ihl);
                f.push(0);
                f.extend_from_slice(&ip_len.to_be_bytes());
                f.extend_from_slice(&self.id.to_be_bytes());
                f.extend_from_slice(&[0x40, 0x00, 64, IPPROTO_TCP, 0, 0]);
                f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
                if self.ip_options {
                    f.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
                }
                let check = !u16::try_from(naive_sum(&f[self.l3()..self.l4()])).unwrap();
                f[self.l3() + 10..self.l3() + 12].copy_from_slice(&check.to_be_bytes());
            } else {
                f.extend_from_slice(&[0x86, 0xdd]);
                let payload_len = u16::try_from(total - self.l4()).unwrap();
                f.extend_from_slice(&[0x60, 0x01, 0x23, 0x45]);
                f.extend_from_slice(&payload_len.to_be_bytes());
                f.extend_from_slice(&[IPPROTO_TCP, 64]);
                f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
                f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            }
            f.extend_from_slice(&40000u16.to_be_bytes());
            f.extend_from_slice(&5201u16.to_be_bytes());
            f.extend_from_slice(&self.seq.to_be_bytes());
            f.extend_from_slice(&0x0102_0304u32.to_be_bytes());
            let doff: u8 = if self.tcp_options { 8 } else { 5 };
            f.extend_from_slice(&[doff << 4, self.flags, 0x01, 0xf5, 0xde, 0xad, 0, 0]);
            if self.tcp_options {
                // NOP, NOP, timestamps.
                f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
            }
            assert_eq!(f.len(), self.headers_len());
            f.extend_from_slice(&self.payload());
            f
        }

        /// The offload a TAP gives such a frame: needs checksum at TCP's field, TSO, and a
        /// header length like Linux's (the linear part, here more than the headers).
        fn offload(&self, gso_size: u16) -> Offload {
            let len = self.headers_len() + self.payload_len;
            Offload {
                needs_csum: true,
                gso: self.gso(),
                hdr_len: u16::try_from(len.min(self.headers_len() + 100)).unwrap(),
                gso_size,
                csum_start: u16::try_from(self.l4()).unwrap(),
                csum_offset: 16,
                ..Offload::NONE
            }
        }
    }

    fn collect(offload: &Offload, frame: &[u8]) -> Result<Vec<Vec<u8>>, OffloadError> {
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        let n = resolve(offload, frame, &mut scratch, |f| out.push(f.to_vec()))?;
        assert_eq!(n, out.len());
        Ok(out)
    }

    /// What [`resolve`] says of `offload` on `frame`: as many frames emitted as it returns, at
    /// least one, or none if it refused.
    fn resolved(offload: &Offload, frame: &[u8]) -> Result<(), OffloadError> {
        let mut emitted = 0;
        let result = resolve(offload, frame, &mut Vec::new(), |_| emitted += 1);
        match result {
            Ok(n) => assert!(n == emitted && n >= 1, "{n} frames, {emitted} emitted"),
            Err(_) => assert_eq!(emitted, 0),
        }
        result.map(|_| ())
    }

    /// Checks every segment of `spec`'s super-frame cut at `mss` on its own, and that their
    /// payloads make up the original one.
    fn verify_segments(spec: &Spec, mss: u16, segments: &[Vec<u8>]) {
        let original = spec.frame();
        let (l3, l4, hl) = (spec.l3(), spec.l4(), spec.headers_len());
        let mss = usize::from(mss);
        let count = spec.payload_len.div_ceil(mss);
        assert_eq!(segments.len(), count);
        let mut payload = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            let last = i + 1 == count;
            let piece = if last {
                spec.payload_len - mss * (count - 1)
            } else {
                mss
            };
            assert_eq!(seg.len(), hl + piece, "segment {i} length");
            // Link layer unchanged.
            assert_eq!(seg[..l3], original[..l3]);
            let index = u16::try_from(i).unwrap();
            if spec.ipv4 {
                let total = u16::from_be_bytes([seg[l3 + 2], seg[l3 + 3]]);
                assert_eq!(usize::from(total), seg.len() - l3);
                let id = u16::from_be_bytes([seg[l3 + 4], seg[l3 + 5]]);
                assert_eq!(id, spec.id.wrapping_add(index));
                assert!(verifies(&seg[l3..l4]), "segment {i} IPv4 header checksum");
                // Everything else of the IP header as it was.
                assert_eq!(seg[l3 + 6..l3 + 10], original[l3 + 6..l3 + 10]);
                assert_eq!(seg[l3 + 12..l4], original[l3 + 12..l4]);
            } else {
                let plen = u16::from_be_bytes([seg[l3 + 4], seg[l3 + 5]]);
                assert_eq!(usize::from(plen), seg.len() - l4);
                assert_eq!(seg[l3..l3 + 4], original[l3..l3 + 4]);
                assert_eq!(seg[l3 + 6..l4], original[l3 + 6..l4]);
            }
            let seq = u32::from_be_bytes(seg[l4 + 4..l4 + 8].try_into().unwrap());
            let offset = u32::try_from(i * mss).unwrap();
            assert_eq!(seq, spec.seq.wrapping_add(offset), "segment {i} seq");
            let flags = seg[l4 + 13];
            let mut expected = spec.flags;
            if i > 0 {
                expected &= !TCP_CWR;
            }
            if !last {
                expected &= !(TCP_FIN | TCP_PSH);
            }
            assert_eq!(flags, expected, "segment {i} flags");
            // Ports, ack, window, urgent pointer, options as they were.
            assert_eq!(seg[l4..l4 + 4], original[l4..l4 + 4]);
            assert_eq!(seg[l4 + 8..l4 + 13], original[l4 + 8..l4 + 13]);
            assert_eq!(seg[l4 + 14..l4 + 16], original[l4 + 14..l4 + 16]);
            assert_eq!(seg[l4 + 18..hl], original[l4 + 18..hl]);
            let tcp = pseudo_and_segment(seg, l3, l4, spec.ipv4, IPPROTO_TCP);
            assert!(verifies(&tcp), "segment {i} TCP checksum");
            payload.extend_from_slice(&seg[hl..]);
        }
        assert_eq!(payload, spec.payload());
    }

    #[test]
    fn tso4_three_mss_and_a_bit() {
        let spec = Spec::new(true, 3 * usize::from(MSS) + 100);
        let frame = spec.frame();
        let offload = spec.offload(MSS);
        let segments = collect(&offload, &frame).unwrap();
        assert_eq!(segments.len(), 4);
        verify_segments(&spec, MSS, &segments);
        // The identification wraps: 0xfffe, 0xffff, 0, 1.
        let ids: Vec<u16> = segments
            .iter()
            .map(|s| u16::from_be_bytes([s[18], s[19]]))
            .collect();
        assert_eq!(ids, [0xfffe, 0xffff, 0, 1]);
        // Only the first segment has CWR, only the last FIN and PSH; ACK on all.
        let flags: Vec<u8> = segments.iter().map(|s| s[14 + 20 + 13]).collect();
        assert_eq!(flags, [TCP_CWR | ACK, ACK, ACK, ACK | TCP_PSH | TCP_FIN]);
    }

    #[test]
    fn tso6_with_vlan_three_mss_and_a_bit() {
        let spec = Spec {
            vlan: true,
            ..Spec::new(false, 3 * usize::from(MSS) + 1)
        };
        let frame = spec.frame();
        let offload = Offload {
            ecn: true,
            ..spec.offload(MSS)
        };
        let segments = collect(&offload, &frame).unwrap();
        verify_segments(&spec, MSS, &segments);
        // The sequence number wraps too.
        assert_eq!(&segments[3][18 + 40 + 4..18 + 40 + 8], &[0, 0, 0, 0xf8]);
    }

    #[test]
    fn tso4_with_ip_options_and_no_tcp_options() {
        let spec = Spec {
            ip_options: true,
            tcp_options: false,
            ..Spec::new(true, 2 * 536)
        };
        let frame = spec.frame();
        // Exactly two full segments; GSO without needs-checksum is taken too.
        let offload = Offload {
            needs_csum: false,
            csum_start: 0,
            csum_offset: 0,
            ..spec.offload(536)
        };
        let segments = collect(&offload, &frame).unwrap();
        verify_segments(&spec, 536, &segments);
    }

    #[test]
    fn a_super_frame_that_fits_one_segment_is_emitted_once_with_its_checksum() {
        let spec = Spec::new(true, usize::from(MSS));
        let frame = spec.frame();
        let segments = collect(&spec.offload(MSS), &frame).unwrap();
        verify_segments(&spec, MSS, &segments);
        // Only the checksum changed.
        let check = 14 + 20 + 16;
        assert_eq!(segments[0][..check], frame[..check]);
        assert_eq!(segments[0][check + 2..], frame[check + 2..]);
        // A segment size above the payload: the same.
        assert_eq!(collect(&spec.offload(u16::MAX), &frame).unwrap(), segments);
    }

    #[test]
    fn segment_size_one() {
        let spec = Spec::new(false, 7);
        let segments = collect(&spec.offload(1), &spec.frame()).unwrap();
        verify_segments(&spec, 1, &segments);
    }

    #[test]
    fn scratch_stops_growing() {
        let spec = Spec::new(true, 10 * usize::from(MSS) + 3);
        let frame = spec.frame();
        let offload = spec.offload(MSS);
        let mut scratch = Vec::new();
        resolve(&offload, &frame, &mut scratch, |_| {}).unwrap();
        let capacity = scratch.capacity();
        assert!(capacity >= spec.headers_len() + usize::from(MSS));
        assert!(capacity < frame.len());
        let pointer = scratch.as_ptr();
        for _ in 0..3 {
            assert_eq!(resolve(&offload, &frame, &mut scratch, |_| {}), Ok(11));
            assert_eq!(scratch.capacity(), capacity);
            assert_eq!(scratch.as_ptr(), pointer);
        }
    }

    /// A UDP/IPv4 datagram with its checksum field holding the folded pseudo-header sum, as
    /// Linux hands it over with needs-checksum.
    fn udp4_partial(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let udp_len = u16::try_from(8 + payload.len()).unwrap();
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&(udp_len + 20).to_be_bytes());
        f.extend_from_slice(&[0, 7, 0x40, 0, 64, 17, 0, 0, 192, 168, 1, 1, 192, 168, 1, 2]);
        let check = !u16::try_from(naive_sum(&f[14..34])).unwrap();
        f[24..26].copy_from_slice(&check.to_be_bytes());
        f.extend_from_slice(&5353u16.to_be_bytes());
        f.extend_from_slice(&53u16.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&udp_len.to_be_bytes());
        let partial = u16::try_from(naive_sum(&pseudo)).unwrap();
        f.extend_from_slice(&partial.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const UDP_CSUM: Offload = Offload {
        needs_csum: true,
        csum_start: 34,
        csum_offset: 6,
        ..Offload::NONE
    };

    #[test]
    fn udp_checksum_completion() {
        for payload in [&b"hello, overlay"[..], b"odd", b""] {
            let frame = udp4_partial(payload);
            let [done] = &collect(&UDP_CSUM, &frame).unwrap()[..] else {
                panic!("not one frame");
            };
            assert!(verifies(&pseudo_and_segment(done, 14, 34, true, 17)));
            assert_ne!(done[40..42], [0, 0]);
            // Only the checksum changed.
            assert_eq!(done[..40], frame[..40]);
            assert_eq!(done[42..], frame[42..]);
        }
    }

    #[test]
    fn udp_checksum_of_zero_is_sent_as_all_ones() {
        // Pick the last two payload bytes so that the checksum comes out as 0.
        let mut frame = udp4_partial(&[1, 2, 3, 4, 0, 0]);
        let sum = naive_sum(&frame[34..]);
        let fill = u16::try_from(0xffff - sum).unwrap();
        let at = frame.len() - 2;
        frame[at..].copy_from_slice(&fill.to_be_bytes());
        let [done] = &collect(&UDP_CSUM, &frame).unwrap()[..] else {
            panic!("not one frame");
        };
        assert_eq!(done[40..42], [0xff, 0xff]);
        assert!(verifies(&pseudo_and_segment(done, 14, 34, true, 17)));
    }

    #[test]
    fn tcp_checksum_completion_matches_segmentation() {
        // A TCP frame that fits the MTU, with needs-checksum only: completing the partial sum
        // gives the checksum segmentation computes from scratch.
        let spec = Spec::new(true, 1000);
        let mut frame = spec.frame();
        let segmented = collect(&spec.offload(MSS), &frame).unwrap().remove(0);
        let l4 = spec.l4();
        let mut pseudo = frame[26..34].to_vec();
        pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
        pseudo.extend_from_slice(&u16::try_from(frame.len() - l4).unwrap().to_be_bytes());
        let partial = u16::try_from(naive_sum(&pseudo)).unwrap();
        frame[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let offload = Offload {
            gso: Gso::None,
            gso_size: 0,
            ..spec.offload(MSS)
        };
        assert_eq!(collect(&offload, &frame).unwrap(), [segmented]);
    }

    #[test]
    fn nothing_to_do_passes_the_frame_through() {
        let frame = udp4_partial(b"as is");
        for offload in [
            Offload::NONE,
            Offload {
                data_valid: true,
                ..Offload::NONE
            },
            // Fields without their flag are ignored.
            Offload {
                csum_start: 9999,
                gso_size: 3,
                ..Offload::NONE
            },
        ] {
            assert!(offload.is_none());
            let mut scratch = Vec::new();
            let mut out = Vec::new();
            let n = resolve(&offload, &frame, &mut scratch, |f| out.push(f.to_vec()));
            assert_eq!(n, Ok(1));
            assert_eq!(out, std::slice::from_ref(&frame));
            assert!(scratch.is_empty() && scratch.capacity() == 0);
        }
        assert!(!UDP_CSUM.is_none());
        assert!(!Spec::new(true, 1).offload(MSS).is_none());
        assert_eq!(Offload::default(), Offload::NONE);
    }

    #[test]
    fn vnet_hdr_and_descriptor_round_trip() {
        let offload = Offload {
            needs_csum: true,
            data_valid: false,
            gso: Gso::Tcp6,
            ecn: true,
            hdr_len: 0x0142,
            gso_size: 1440,
            csum_start: 54,
            csum_offset: 16,
        };
        let vnet = [0x01, 0x84, 0x42, 0x01, 0xa0, 0x05, 54, 0, 16, 0];
        let descriptor = [0x01, 0x84, 0x01, 0x42, 0x05, 0xa0, 0, 54, 0, 16];
        assert_eq!(offload.to_vnet_hdr(), vnet);
        assert_eq!(offload.encode(), descriptor);
        assert_eq!(Offload::from_vnet_hdr(&vnet), Ok(offload));
        assert_eq!(Offload::decode(&descriptor), Ok(offload));
        // The frame may follow the header in the same buffer.
        let mut read = vnet.to_vec();
        read.extend_from_slice(&[0xaa; 60]);
        assert_eq!(Offload::from_vnet_hdr(&read), Ok(offload));
        let data_valid = Offload {
            data_valid: true,
            ..Offload::NONE
        };
        assert_eq!(data_valid.to_vnet_hdr(), [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Offload::NONE.encode(), [0; DESCRIPTOR_LEN]);
        assert_eq!(Offload::decode(&[0; 10]), Ok(Offload::NONE));
        let tcp4 = Offload::decode(&[0, 1, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!((tcp4.gso, tcp4.gso_size, tcp4.ecn), (Gso::Tcp4, 1, false));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let ok = [0u8; 10];
        let with = |at: usize, value: u8| {
            let mut b = ok;
            b[at] = value;
            b
        };
        for parse in [Offload::from_vnet_hdr, Offload::decode] {
            assert_eq!(
                parse(&ok[..9]),
                Err(OffloadError::ShortHeader { len: 9, need: 10 })
            );
            assert_eq!(
                parse(&[]),
                Err(OffloadError::ShortHeader { len: 0, need: 10 })
            );
            assert_eq!(parse(&with(0, 4)), Err(OffloadError::UnknownFlags(4)));
            assert_eq!(parse(&with(0, 0x81)), Err(OffloadError::UnknownFlags(0x81)));
            assert_eq!(parse(&with(1, 2)), Err(OffloadError::UnknownGsoType(2)));
            assert_eq!(parse(&with(1, 6)), Err(OffloadError::UnknownGsoType(6)));
            assert_eq!(
                parse(&with(1, 0x41)),
                Err(OffloadError::UnknownGsoType(0x41))
            );
            assert_eq!(parse(&with(1, 3)), Err(OffloadError::UdpGso(3)));
            assert_eq!(parse(&with(1, 5)), Err(OffloadError::UdpGso(5)));
            assert_eq!(parse(&with(1, 0x85)), Err(OffloadError::UdpGso(0x85)));
            assert_eq!(parse(&with(1, 0x80)), Err(OffloadError::EcnWithoutGso));
            assert!(parse(&with(0, 3)).is_ok());
            assert!(parse(&with(1, 0x81)).is_ok());
        }
    }

    #[test]
    fn inconsistent_offloads_are_refused() {
        let frame = udp4_partial(b"x");
        let len = frame.len();
        let check = |offload: Offload| resolved(&offload, &frame);
        assert_eq!(
            check(Offload {
                ecn: true,
                ..Offload::NONE
            }),
            Err(OffloadError::EcnWithoutGso)
        );
        assert_eq!(
            check(Offload {
                hdr_len: u16::try_from(len + 1).unwrap(),
                ..Offload::NONE
            }),
            Err(OffloadError::HdrLenTooLong {
                hdr_len: u16::try_from(len + 1).unwrap(),
                len
            })
        );
        // The checksum field must end inside the frame: the last two bytes are the last place.
        let last = u16::try_from(len - 2).unwrap();
        let at = |csum_start, csum_offset| Offload {
            needs_csum: true,
            csum_start,
            csum_offset,
            ..Offload::NONE
        };
        assert_eq!(check(at(last, 0)), Ok(()));
        assert_eq!(check(at(0, last)), Ok(()));
        for (start, offset) in [(last + 1, 0), (0, last + 1), (u16::MAX, u16::MAX)] {
            assert_eq!(
                check(at(start, offset)),
                Err(OffloadError::ChecksumOutOfFrame {
                    csum_start: start,
                    csum_offset: offset,
                    len
                })
            );
        }
        let spec = Spec::new(true, 3000);
        let frame = spec.frame();
        assert_eq!(
            resolved(&spec.offload(0), &frame),
            Err(OffloadError::ZeroGsoSize)
        );
        let misplaced = Offload {
            csum_offset: 6,
            ..spec.offload(MSS)
        };
        assert_eq!(
            resolved(&misplaced, &frame),
            Err(OffloadError::ChecksumNotTcp {
                csum_start: 34,
                csum_offset: 6,
                tcp_start: 34
            })
        );
        let misplaced = Offload {
            csum_start: 14,
            ..spec.offload(MSS)
        };
        assert!(matches!(
            resolved(&misplaced, &frame),
            Err(OffloadError::ChecksumNotTcp { .. })
        ));
    }

    /// What [`resolve`] says of `spec`'s offload on its frame after `mangle`.
    fn mangled(spec: &Spec, mangle: impl FnOnce(&mut Vec<u8>)) -> Result<(), OffloadError> {
        let mut frame = spec.frame();
        mangle(&mut frame);
        let offload = Offload {
            needs_csum: false,
            hdr_len: 0,
            ..spec.offload(MSS)
        };
        resolved(&offload, &frame)
    }

    #[test]
    fn malformed_super_frames_are_refused() {
        use OffloadError as E;
        let v4 = Spec::new(true, 3000);
        let v6 = Spec::new(false, 3000);
        let vlan = Spec { vlan: true, ..v4 };
        assert_eq!(mangled(&v4, |_| {}), Ok(()));
        assert_eq!(mangled(&v6, |_| {}), Ok(()));
        assert_eq!(mangled(&vlan, |_| {}), Ok(()));
        let truncated = |len: usize| move |f: &mut Vec<u8>| f.truncate(len);
        assert_eq!(
            mangled(&v4, truncated(13)),
            Err(E::Truncated(Layer::Ethernet))
        );
        assert_eq!(
            mangled(&vlan, truncated(17)),
            Err(E::Truncated(Layer::Vlan))
        );
        assert_eq!(mangled(&v4, truncated(33)), Err(E::Truncated(Layer::Ipv4)));
        assert_eq!(mangled(&v6, truncated(53)), Err(E::Truncated(Layer::Ipv6)));
        // Truncated inside the TCP header: the IP length no longer matches first, so fix it.
        let tcp_cut = |f: &mut Vec<u8>| {
            f.truncate(14 + 20 + 10);
            f[16..18].copy_from_slice(&30u16.to_be_bytes());
        };
        assert_eq!(mangled(&v4, tcp_cut), Err(E::Truncated(Layer::Tcp)));
        // A data offset past the end of the frame.
        let doff_past_end = |f: &mut Vec<u8>| {
            f.truncate(14 + 20 + 24);
            f[16..18].copy_from_slice(&44u16.to_be_bytes());
        };
        assert_eq!(mangled(&v4, doff_past_end), Err(E::Truncated(Layer::Tcp)));
        assert_eq!(
            mangled(&v4, |f| f[12..14].copy_from_slice(&[0x86, 0xdd])),
            Err(E::WrongEthertype {
                ethertype: 0x86dd,
                gso: Gso::Tcp4
            })
        );
        assert_eq!(
            mangled(&v6, |f| f[12..14].copy_from_slice(&[0x08, 0x00])),
            Err(E::WrongEthertype {
                ethertype: 0x0800,
                gso: Gso::Tcp6
            })
        );
        // Two VLAN tags.
        assert_eq!(
            mangled(&vlan, |f| f[16..18].copy_from_slice(&[0x81, 0x00])),
            Err(E::WrongEthertype {
                ethertype: 0x8100,
                gso: Gso::Tcp4
            })
        );
        assert_eq!(
            mangled(&v4, |f| f[14] = 0x65),
            Err(E::WrongIpVersion {
                version: 6,
                gso: Gso::Tcp4
            })
        );
        assert_eq!(
            mangled(&v6, |f| f[14] = 0x40),
            Err(E::WrongIpVersion {
                version: 4,
                gso: Gso::Tcp6
            })
        );
        assert_eq!(mangled(&v4, |f| f[14] = 0x44), Err(E::BadIhl(4)));
        assert_eq!(mangled(&v4, |f| f[20] |= 0x20), Err(E::Fragment));
        assert_eq!(mangled(&v4, |f| f[21] = 1), Err(E::Fragment));
        assert_eq!(mangled(&v4, |f| f[23] = 17), Err(E::NotTcp(17)));
        // IPv6 with a hop-by-hop options header.
        assert_eq!(mangled(&v6, |f| f[20] = 0), Err(E::NotTcp(0)));
        let frame_len = v4.frame().len();
        assert_eq!(
            mangled(&v4, |f| f.push(0)),
            Err(E::IpLength {
                ip: frame_len - 14,
                frame: frame_len - 14 + 1
            })
        );
        let v6_ip_len = v6.frame().len() - 14;
        assert_eq!(
            mangled(&v6, |f| f[19] ^= 1),
            Err(E::IpLength {
                ip: ((v6_ip_len - 40) ^ 1) + 40,
                frame: v6_ip_len
            })
        );
        assert_eq!(mangled(&v4, |f| f[46] = 0x40), Err(E::BadDataOffset(4)));
        let no_payload = |f: &mut Vec<u8>| {
            f.truncate(v4.headers_len());
            let ip_len = u16::try_from(v4.headers_len() - 14).unwrap();
            f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        };
        assert_eq!(mangled(&v4, no_payload), Err(E::NoPayload));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            OffloadError::UdpGso(5).to_string(),
            "UDP segmentation offload (GSO type 0x05) is not supported"
        );
        assert_eq!(
            OffloadError::Truncated(Layer::Vlan).to_string(),
            "the frame ends inside its 802.1Q header"
        );
        assert_eq!(
            OffloadError::WrongEthertype {
                ethertype: 0x86dd,
                gso: Gso::Tcp4
            }
            .to_string(),
            "Ethertype 0x86dd does not match TCP/IPv4 segmentation"
        );
    }

    #[test]
    fn word_sum_matches_the_naive_one() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
            .collect();
        for len in (0..40).chain([65_535, 65_536, 65_537, 131_075, 200_000]) {
            let naive = naive_sum(&data[..len]);
            let fast = u32::from(fold(sum(&data[..len])));
            assert_eq!(fast, naive, "length {len}");
        }
    }

    fn spec_strategy() -> impl Strategy<Value = (Spec, u16)> {
        (
            any::<(bool, bool, bool, bool)>(),
            1usize..9000,
            any::<(u8, u16, u32)>(),
            1u16..3000,
        )
            .prop_map(
                |((ipv4, vlan, ip_options, tcp_options), payload_len, (flags, id, seq), mss)| {
                    let spec = Spec {
                        ipv4,
                        vlan,
                        ip_options,
                        tcp_options,
                        payload_len,
                        flags,
                        id,
                        seq,
                    };
                    (spec, mss)
                },
            )
    }

    proptest! {
        #[test]
        fn every_super_frame_segments_right((spec, mss) in spec_strategy(), ecn in any::<bool>()) {
            let offload = Offload { ecn, ..spec.offload(mss) };
            let frame = spec.frame();
            let segments = collect(&offload, &frame).unwrap();
            verify_segments(&spec, mss, &segments);
        }

        #[test]
        fn arbitrary_headers_and_frames_never_panic(
            header in prop::array::uniform10(any::<u8>()),
            frame in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            for parse in [Offload::from_vnet_hdr, Offload::decode] {
                let Ok(offload) = parse(&header) else { continue };
                prop_assert_eq!(Offload::from_vnet_hdr(&offload.to_vnet_hdr()), Ok(offload));
                prop_assert_eq!(Offload::decode(&offload.encode()), Ok(offload));
                let mut lengths = Vec::new();
                let result = resolve(&offload, &frame, &mut Vec::new(), |f| lengths.push(f.len()));
                match result {
                    Ok(n) => {
                        prop_assert_eq!(n, lengths.len());
                        // Without GSO, one frame of the input's length.
                        if offload.gso == Gso::None {
                            prop_assert_eq!(lengths, [frame.len()]);
                        }
                    }
                    Err(_) => prop_assert!(lengths.is_empty()),
                }
            }
            let vnet = Offload::from_vnet_hdr(&header);
            if let Ok(offload) = vnet {
                prop_assert_eq!(offload.to_vnet_hdr(), header);
            }
            if let Ok(offload) = Offload::decode(&header) {
                prop_assert_eq!(offload.encode(), header);
            }
        }

        #[test]
        fn arbitrary_offloads_on_real_frames_never_panic(
            (spec, _) in spec_strategy(),
            header in prop::array::uniform10(any::<u8>()),
            keep in any::<prop::sample::Index>(),
        ) {
            let mut frame = spec.frame();
            frame.truncate(keep.index(frame.len() + 1));
            if let Ok(offload) = Offload::decode(&header) {
                let _ = resolved(&offload, &frame);
            }
        }
    }
}

//! The offload finisher, `vnetd::offload`: arbitrary bytes as a mode byte, a 10-byte header
//! and a frame. Bit 0 of the mode picks the header's encoding (set: the TAP's little-endian
//! `virtio_net_hdr`, `Offload::from_vnet_hdr`; clear: the overlay descriptor,
//! `Offload::decode`); bit 1 rewrites the frame's IPv4 total length or IPv6 payload length to
//! fit the frame, and bit 2 points the checksum at the TCP header, so that mutated
//! super-frames still reach the segmentation. Then `resolve`. Properties: no panic; the
//! header written back is the bytes read, and it parses back to the same offload; `resolve`
//! emits as many frames as it returns, none when it fails. Without GSO it emits one frame of
//! the input's length: the input itself, or with *needs checksum* the input with only the
//! checksum field changed. With GSO it emits at least one frame, each the input's headers
//! (as parsed here) and 1 to `gso_size` payload bytes, all but the last `gso_size`, and their
//! payloads put together are the input's.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vnetd::offload::{self, Gso, Offload, DESCRIPTOR_LEN, VNET_HDR_LEN};

/// Offset of the IP header: after the Ethernet header and at most one 802.1Q tag.
fn l3(frame: &[u8]) -> usize {
    if frame.get(12..14) == Some(&[0x81, 0x00]) {
        18
    } else {
        14
    }
}

/// Makes the IP header's length field agree with the frame (bit 1 of the mode).
fn fix_ip_length(gso: Gso, frame: &mut [u8]) {
    let l3 = l3(frame);
    let Some(ip_len) = frame.len().checked_sub(l3) else {
        return;
    };
    let (at, len) = match gso {
        Gso::Tcp4 => (l3 + 2, ip_len),
        Gso::Tcp6 => (l3 + 4, ip_len.saturating_sub(40)),
        Gso::None => return,
    };
    if let (Some(field), Ok(len)) = (frame.get_mut(at..at + 2), u16::try_from(len)) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

/// Length of a super-frame's headers: Ethernet, VLAN tag, IP header, TCP header. Only for a
/// frame that `resolve` segmented, which must hold them all.
fn headers_len(gso: Gso, frame: &[u8]) -> usize {
    let l3 = l3(frame);
    let l4 = l3
        + match gso {
            Gso::Tcp4 => usize::from(frame[l3] & 0x0f) * 4,
            Gso::Tcp6 | Gso::None => 40,
        };
    l4 + usize::from(frame[l4 + 12] >> 4) * 4
}

/// Points the checksum at the TCP header's (bit 2 of the mode).
fn aim_checksum(offload: &mut Offload, frame: &[u8]) {
    let l3 = l3(frame);
    let ip_header = match offload.gso {
        Gso::Tcp4 => frame.get(l3).map_or(20, |&b| usize::from(b & 0x0f) * 4),
        Gso::Tcp6 | Gso::None => 40,
    };
    if let Ok(start) = u16::try_from(l3 + ip_header) {
        offload.csum_start = start;
        offload.csum_offset = 16;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let header = rest.get(..VNET_HDR_LEN).unwrap_or(rest);
    let frame = rest.get(VNET_HDR_LEN..).unwrap_or_default();
    let vnet = mode & 1 != 0;
    let parsed = if vnet {
        Offload::from_vnet_hdr(header)
    } else {
        Offload::decode(header)
    };
    let Ok(mut offload) = parsed else {
        return;
    };
    // Exactly the bytes read, both ways.
    if vnet {
        assert_eq!(offload.to_vnet_hdr()[..], header[..]);
    } else {
        assert_eq!(offload.encode()[..DESCRIPTOR_LEN], header[..]);
    }
    assert_eq!(Offload::decode(&offload.encode()), Ok(offload));
    assert_eq!(Offload::from_vnet_hdr(&offload.to_vnet_hdr()), Ok(offload));

    let mut frame = frame.to_vec();
    if mode & 2 != 0 {
        fix_ip_length(offload.gso, &mut frame);
    }
    if mode & 4 != 0 {
        aim_checksum(&mut offload, &frame);
    }

    let mut scratch = Vec::new();
    let mut emitted = Vec::new();
    let resolved = offload::resolve(&offload, &frame, &mut scratch, |f| {
        assert!(f.len() <= frame.len());
        emitted.push(f.to_vec());
    });
    let Ok(n) = resolved else {
        assert!(emitted.is_empty());
        return;
    };
    assert_eq!(n, emitted.len());

    if offload.gso == Gso::None {
        let [out] = &emitted[..] else {
            panic!("{n} frames without GSO");
        };
        assert_eq!(out.len(), frame.len());
        if offload.needs_csum {
            let field = usize::from(offload.csum_start) + usize::from(offload.csum_offset);
            assert_eq!(out[..field], frame[..field]);
            assert_eq!(out[field + 2..], frame[field + 2..]);
        } else {
            assert_eq!(out[..], frame[..]);
        }
        return;
    }

    let headers = headers_len(offload.gso, &frame);
    let mss = usize::from(offload.gso_size);
    assert!(!emitted.is_empty());
    let mut payload = Vec::with_capacity(frame.len());
    for (i, out) in emitted.iter().enumerate() {
        assert!(out.len() > headers && out.len() <= headers + mss);
        if i + 1 < emitted.len() {
            assert_eq!(out.len(), headers + mss);
        }
        payload.extend_from_slice(&out[headers..]);
    }
    assert_eq!(payload[..], frame[headers..]);
});

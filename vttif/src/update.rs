//! The update a daemon ships to the Proxy at the update rate: what entered the overlay at its
//! ports since its previous update, per (source MAC, destination MAC).
//!
//! ```text
//!  0       1       2       4               8
//! +-------+-------+-------+---------------+------------------------------------------+
//! |version|   0   | count |   sequence    | count entries of 28 bytes:               |
//! +-------+-------+-------+---------------+   src MAC (6) dst MAC (6)                |
//!                                         |   bytes (8) frames (8)                   |
//!                                         +------------------------------------------+
//! ```
//!
//! Big-endian. The sequence number counts a daemon's updates from 0, so the receiver can
//! count the ones lost on the way; a daemon whose delta does not fit one message sends
//! several, each with its own number. The message rides the daemon's authenticated link to
//! the Proxy, so its origin is proven by the link, not here.

use crate::Mac;

/// The format version this module speaks.
pub const VERSION: u8 = 1;
/// Bytes before the entries.
pub const HEADER_LEN: usize = 8;
/// Bytes per entry.
pub const ENTRY_LEN: usize = 28;

/// Traffic from one MAC to another (unicast, or a group address for broadcast and multicast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The sending guest.
    pub src: Mac,
    /// The destination address.
    pub dst: Mac,
    /// Bytes of Ethernet frames.
    pub bytes: u64,
    /// Frames (a super-frame of a guest with offloads counts as one).
    pub frames: u64,
}

/// A decoded update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The sender's update number.
    pub seq: u32,
    /// Its entries.
    pub entries: Vec<Entry>,
}

/// Why bytes are not an update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// Shorter than the header.
    #[error("update of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    Short(usize),
    /// A version this code does not speak.
    #[error("update version {0} is not supported (this daemon speaks {VERSION})")]
    Version(u8),
    /// The reserved octet is not zero (a later version's field this one cannot read).
    #[error("update has {0} in its reserved octet, which must be 0")]
    Reserved(u8),
    /// The length does not match the entry count.
    #[error("update declares {count} entries ({expected} bytes) but has {len} bytes")]
    Length {
        /// Declared entries.
        count: usize,
        /// The length they need.
        expected: usize,
        /// The actual length.
        len: usize,
    },
    /// An entry whose source is a group address: no guest sends from one.
    #[error("entry {0} has a group (broadcast or multicast) source address")]
    GroupSource(usize),
    /// An entry with bytes but no frames, or more frames than bytes.
    #[error("entry {0} counts {1} bytes in {2} frames")]
    Counts(usize, u64, u64),
}

/// How many entries fit in a message payload of `max_payload` bytes (at most `u16::MAX`).
pub fn entries_per_message(max_payload: usize) -> usize {
    (max_payload.saturating_sub(HEADER_LEN) / ENTRY_LEN).min(usize::from(u16::MAX))
}

/// Appends the encoding of `entries` with number `seq` to `out`.
///
/// # Panics
/// Never for fewer than 65536 entries; more are a caller's bug (see [`entries_per_message`]).
pub fn encode(seq: u32, entries: &[Entry], out: &mut Vec<u8>) {
    let count = u16::try_from(entries.len()).expect("at most u16::MAX entries per update");
    out.reserve(HEADER_LEN + entries.len() * ENTRY_LEN);
    out.extend_from_slice(&[VERSION, 0]);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.src.0);
        out.extend_from_slice(&e.dst.0);
        out.extend_from_slice(&e.bytes.to_be_bytes());
        out.extend_from_slice(&e.frames.to_be_bytes());
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

fn mac(b: &[u8]) -> Mac {
    let mut a = [0u8; 6];
    a.copy_from_slice(b);
    Mac(a)
}

/// Decodes an update, checking every field.
///
/// # Errors
/// See [`UpdateError`].
pub fn decode(bytes: &[u8]) -> Result<Update, UpdateError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(UpdateError::Short(bytes.len()));
    };
    if header[0] != VERSION {
        return Err(UpdateError::Version(header[0]));
    }
    if header[1] != 0 {
        return Err(UpdateError::Reserved(header[1]));
    }
    let count = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let seq = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let expected = HEADER_LEN + count * ENTRY_LEN;
    if bytes.len() != expected {
        return Err(UpdateError::Length {
            count,
            expected,
            len: bytes.len(),
        });
    }
    let entries = body
        .chunks_exact(ENTRY_LEN)
        .enumerate()
        .map(|(i, e)| {
            let entry = Entry {
                src: mac(&e[0..6]),
                dst: mac(&e[6..12]),
                bytes: be_u64(&e[12..20]),
                frames: be_u64(&e[20..28]),
            };
            if entry.src.is_group() {
                return Err(UpdateError::GroupSource(i));
            }
            if (entry.bytes > 0) != (entry.frames > 0) || entry.frames > entry.bytes {
                return Err(UpdateError::Counts(i, entry.bytes, entry.frames));
            }
            Ok(entry)
        })
        .collect::<Result<_, _>>()?;
    Ok(Update { seq, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8, bytes: u64, frames: u64) -> Entry {
        Entry {
            src: Mac([2, 0, 0, 0, 0, i]),
            dst: Mac([2, 0, 0, 0, 1, i]),
            bytes,
            frames,
        }
    }

    #[test]
    fn round_trip() {
        let entries: Vec<Entry> = (0..50)
            .map(|i| entry(i, 1514 * u64::from(i) + 60, u64::from(i) + 1))
            .collect();
        let mut out = Vec::new();
        encode(7, &entries, &mut out);
        assert_eq!(out.len(), HEADER_LEN + 50 * ENTRY_LEN);
        assert_eq!(decode(&out), Ok(Update { seq: 7, entries }));
        let mut empty = Vec::new();
        encode(0, &[], &mut empty);
        assert_eq!(decode(&empty).unwrap().entries, vec![]);
    }

    #[test]
    fn fits_a_message() {
        assert_eq!(entries_per_message(1400), (1400 - 8) / 28);
        assert_eq!(entries_per_message(3), 0);
        assert_eq!(entries_per_message(usize::MAX), usize::from(u16::MAX));
    }

    #[test]
    fn bad_updates_are_rejected() {
        let mut good = Vec::new();
        encode(1, &[entry(1, 100, 1)], &mut good);
        assert_eq!(decode(&good[..5]), Err(UpdateError::Short(5)));
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(decode(&v), Err(UpdateError::Version(9)));
        let mut r = good.clone();
        r[1] = 0x86;
        assert_eq!(decode(&r), Err(UpdateError::Reserved(0x86)));
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(UpdateError::Length { .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(decode(&long), Err(UpdateError::Length { .. })));
        let mut group = good.clone();
        group[HEADER_LEN] = 1;
        assert_eq!(decode(&group), Err(UpdateError::GroupSource(0)));
        for (bytes, frames) in [(100, 0), (0, 1), (5, 6)] {
            let mut out = Vec::new();
            encode(1, &[entry(1, bytes, frames)], &mut out);
            assert_eq!(decode(&out), Err(UpdateError::Counts(0, bytes, frames)));
        }
    }
}

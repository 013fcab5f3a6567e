//! VTTIF in the daemon: the local traffic matrix counted on the frame path, and what is done
//! with it at the update rate.
//!
//! Every frame is counted once, where it enters the overlay: when a port hands it to the
//! forwarding table (after the port's checks), by (source MAC, destination MAC), bytes of
//! Ethernet frame and frames (a super-frame of a guest with offloads counts as one frame
//! with all its bytes). Frames arriving over links are not counted: their first daemon did.
//! Broadcast and multicast are counted the same way, under their group destination, and
//! the inference keeps them apart. Counting is one hash probe per frame read from a port.
//!
//! At the update rate a host ships the delta since its last update to its Proxy over the
//! star link, as [`MessageType::Traffic`](crate::wire::MessageType::Traffic) messages (as
//! many as its entries need, each one datagram, sealed and authenticated like every link
//! datagram). While that link is down the counts keep accumulating and go out when it is up
//! again, so an outage of the star loses no traffic, only timeliness. The Proxy feeds its own
//! ports' counts and every host's updates to its [`vttif::Service`].

use std::collections::HashMap;

use foldhash::fast::RandomState;
use vttif::update::{self, Entry};

use crate::model::Mac;

/// Bytes and frames per (source, destination) since the last update.
#[derive(Debug, Default)]
pub(super) struct LocalMatrix {
    counts: HashMap<(Mac, Mac), (u64, u64), RandomState>,
    next_seq: u32,
    /// Updates shipped (hosts) or fed to the service (the Proxy).
    pub updates: u64,
}

impl LocalMatrix {
    /// Counts one frame of `len` bytes.
    pub fn count(&mut self, src: Mac, dst: Mac, len: usize) {
        let c = self.counts.entry((src, dst)).or_default();
        c.0 = c.0.saturating_add(len as u64);
        c.1 = c.1.saturating_add(1);
    }

    /// Whether nothing was counted since the last update.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Takes the counts, as entries.
    pub fn take(&mut self) -> Vec<Entry> {
        self.counts
            .drain()
            .map(|((src, dst), (bytes, frames))| Entry {
                src,
                dst,
                bytes,
                frames,
            })
            .collect()
    }

    /// Takes the counts as encoded updates of at most `max_payload` bytes each, numbered.
    pub fn take_updates(&mut self, max_payload: usize) -> Vec<Vec<u8>> {
        let per_message = update::entries_per_message(max_payload).max(1);
        let entries = self.take();
        entries
            .chunks(per_message)
            .map(|chunk| {
                let mut out = Vec::new();
                update::encode(self.next_seq, chunk, &mut out);
                self.next_seq = self.next_seq.wrapping_add(1);
                self.updates += 1;
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_become_numbered_updates_that_fit() {
        let mut m = LocalMatrix::default();
        for i in 0..100u8 {
            m.count(Mac([2, 0, 0, 0, 0, i]), Mac([2, 0, 0, 0, 1, i]), 1514);
            m.count(Mac([2, 0, 0, 0, 0, i]), Mac([2, 0, 0, 0, 1, i]), 60);
        }
        let updates = m.take_updates(1400);
        assert!(m.is_empty());
        // 49 entries of 28 bytes fit behind the 8-byte header in 1400 bytes.
        assert_eq!(updates.len(), 3);
        let mut total = 0;
        for (seq, u) in updates.iter().enumerate() {
            assert!(u.len() <= 1400);
            let d = update::decode(u).unwrap();
            assert_eq!(d.seq as usize, seq);
            for e in &d.entries {
                assert_eq!((e.bytes, e.frames), (1574, 2));
            }
            total += d.entries.len();
        }
        assert_eq!(total, 100);
        assert_eq!(m.updates, 3);
        assert!(m.take_updates(1400).is_empty());
    }
}

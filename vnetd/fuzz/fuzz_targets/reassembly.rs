//! The reassembler on its own (`Reassembler::insert`), with any limits and fed fragments
//! whose numbers come straight from the input, unchecked: `insert` must judge them itself
//! (`Fragment::check`), whatever the frame length, index, count and piece length say, and
//! however fragments of different frames interleave, repeat, time out and evict each other.
//!
//! Input: slots (u8, `% 17`, so 0 too), largest frame (u16), timeout (u8, in 10 ms), then
//! operations: an op byte (`% 4`: insert, run timers, reset, insert) and, for an insert, the
//! frame id (u8, so ids collide), frame length (u16), index, count, hop budget, clock step
//! (u8, in ms) and piece length (u8; 255: the length the piece must have).
//! Property: no panic.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vnetd::wire::{piece_range, Fragment, Reassembler, ReassemblyConfig};
use vnetd_fuzz::Cursor;

/// What pieces are cut from (their bytes do not matter to the reassembler).
static PIECES: [u8; 1 << 16] = [0xa5; 1 << 16];

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let config = ReassemblyConfig {
        slots: usize::from(input.u8() % 17),
        max_frame_len: usize::from(input.u16()),
        timeout: Duration::from_millis(10 * u64::from(input.u8())),
    };
    let mut reassembler = Reassembler::new(config);
    let mut now = Duration::ZERO;
    while !input.is_empty() {
        match input.u8() % 4 {
            1 => {
                now += Duration::from_millis(u64::from(input.u8()));
                reassembler.handle_timeout(now);
            }
            2 => reassembler.reset(),
            _ => {
                let frame_id = u32::from(input.u8());
                let frame_len = input.u16();
                let index = input.u8();
                let count = input.u8();
                let hops = input.u8();
                now += Duration::from_millis(u64::from(input.u8()));
                let piece_len = match input.u8() {
                    255 => piece_range(
                        usize::from(frame_len),
                        usize::from(count),
                        usize::from(index),
                    )
                    .map_or(0, |r| r.len()),
                    n => usize::from(n),
                };
                let fragment = Fragment {
                    frame_id,
                    frame_len,
                    index,
                    count,
                    piece: &PIECES[..piece_len],
                };
                if let Ok(Some((frame, hops))) = reassembler.insert(&fragment, hops, false, now) {
                    std::hint::black_box((frame.len(), hops));
                }
            }
        }
        let _ = reassembler.poll_timeout();
    }
    let _ = (
        reassembler.stats(),
        reassembler.memory(),
        reassembler.in_progress(),
    );
});

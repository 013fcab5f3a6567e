//! A TCP link's byte stream: a `StreamDecoder` with any payload limit, pushed the input in
//! chunks of varying sizes, popping after each push until it has no record or fails; every
//! record is parsed (`Header::parse`, `Message::parse`) and opened by the receiving end of
//! `link_rx` (so a stream of real sealed records, as in the seeds, reaches authenticated
//! paths). After a failure it is pushed and popped once more.
//!
//! Input: the payload limit (u16, big-endian), a seed byte for the chunk sizes (1 to 600
//! bytes), then the stream. Property: no panic.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vnetd::wire::{Header, LinkRx, Message, ReassemblyConfig, StreamDecoder};
use vnetd_fuzz::link::{local, peer_name};
use vnetd_fuzz::{Cursor, Rng};

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let mut decoder = StreamDecoder::new(usize::from(input.u16()));
    let mut rng = Rng::new(input.u8());
    let mut stream = input.rest();
    let local = local();
    let mut rx = LinkRx::new(&local, &peer_name(), ReassemblyConfig::default());
    while !stream.is_empty() {
        let n = (1 + rng.below(600)).min(stream.len());
        let (chunk, rest) = stream.split_at(n);
        stream = rest;
        decoder.push(chunk);
        let _ = decoder.buffered();
        loop {
            match decoder.pop() {
                Ok(Some(record)) => {
                    if let Ok(header) = Header::parse(&record) {
                        let _ = Message::parse(header.msg_type, record.payload());
                    }
                    let _ = record.tag();
                    let _ = rx.open(record, Duration::ZERO);
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = decoder.is_failed();
                    decoder.push(chunk);
                    let _ = decoder.pop();
                    return;
                }
            }
        }
    }
});

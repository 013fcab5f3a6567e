//! Arbitrary bytes as one UDP datagram: `Datagram::new_checked`, every accessor,
//! `Header::parse` and `Message::parse` (then `Message::emit` of what parsed), plus each
//! payload parser on the bytes after the first, whose value picks the message type.
//! Property: no panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vnetd::wire::{Datagram, Header, HelloPayload, Message, MessageType};

fuzz_target!(|data: &[u8]| {
    let unchecked = Datagram::new_unchecked(data);
    let _ = unchecked.check_header();
    if let Ok(datagram) = Datagram::new_checked(data) {
        let _ = (datagram.version(), datagram.flags(), datagram.session());
        let _ = (datagram.seq(), datagram.receiver_hint(), datagram.tag());
        let _ = datagram.authenticated();
        if let Ok(header) = Header::parse(&datagram) {
            if let Ok(message) = Message::parse(header.msg_type, datagram.payload()) {
                emit(&message);
            }
        }
    }
    if let Some((&kind, payload)) = data.split_first() {
        if let Ok(message) = Message::parse(MessageType::from(kind), payload) {
            emit(&message);
        }
        let _ = HelloPayload::parse(payload);
    }
});

/// Writes a parsed message back out, into a buffer of exactly its length and one byte short.
fn emit(message: &Message<'_>) {
    let len = message.payload_len();
    let _ = message.msg_type();
    let mut buf = vec![0u8; len];
    let _ = message.emit(&mut buf);
    if len > 0 {
        let _ = message.emit(&mut buf[..len - 1]);
    }
}

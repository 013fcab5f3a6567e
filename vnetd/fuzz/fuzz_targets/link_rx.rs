//! The receiving end of a link (`LinkRx`) fed a sequence of datagrams: raw ones split from
//! the input, and ones the peer seals with the real keys (hellos, frames cut into fragments,
//! keepalives, echoes), delivered in any order, replayed, tampered with, across clock steps
//! and peer restarts. Every datagram also goes through `open_hello`, as the daemon does to
//! find the link of a hello. The input language is in `vnetd_fuzz::link`.
//! Property: no panic.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vnetd::wire::{
    open_hello, Datagram, LinkRx, LinkTx, Local, ReassemblyConfig, Received, SessionId,
};
use vnetd_fuzz::link::{self, *};
use vnetd_fuzz::{eth_frame, Cursor};

/// Datagrams sealed and not yet delivered, at most this many (the oldest go first).
const MAX_PENDING: usize = 256;

struct State {
    local: Local,
    rx: LinkRx,
    tx: LinkTx,
    session: u64,
    now: Duration,
    pending: Vec<Vec<u8>>,
}

impl State {
    fn deliver(&mut self, bytes: &[u8]) {
        let mut bytes = bytes.to_vec();
        let Ok(datagram) = Datagram::new_checked(&mut bytes[..]) else {
            return;
        };
        let _ = open_hello(&self.local, datagram.as_shared());
        match self.rx.open(datagram, self.now) {
            Ok(Received::Frame { frame, hops, .. }) => {
                std::hint::black_box((frame.len(), hops));
            }
            Ok(other) => {
                std::hint::black_box(other);
            }
            Err(e) => {
                std::hint::black_box(e.reason());
            }
        }
    }

    fn keep(&mut self, datagram: &[u8]) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(datagram.to_vec());
    }
}

fuzz_target!(|data: &[u8]| {
    let local = link::local();
    let mut s = State {
        rx: LinkRx::new(&local, &peer_name(), ReassemblyConfig::default()),
        local,
        tx: peer_tx(SessionId::new(PEER_SESSION).expect("non-zero")),
        session: PEER_SESSION,
        now: Duration::ZERO,
        pending: Vec::new(),
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut input = Cursor::new(data);
    while !input.is_empty() {
        let op = input.u8();
        let flag = op & FLAG != 0;
        match op & 7 {
            RAW => {
                let len = usize::from(input.u16());
                let bytes = input.take(len);
                s.deliver(bytes);
            }
            HELLO => {
                if let Ok(n) = s.tx.hello(&mut buf) {
                    s.keep(&buf[..n]);
                }
            }
            FRAME => {
                let len = usize::from(input.u16()) % 2049;
                let hops = input.u8();
                let mtu = input.u8();
                let _ = s.tx.set_max_datagram(128 + 8 * usize::from(mtu));
                let frame = eth_frame(len, hops);
                if let Ok(sealed) = s.tx.seal_frame(&frame, false, hops, &mut buf) {
                    let datagrams: Vec<Vec<u8>> =
                        sealed.datagrams(&buf).map(<[u8]>::to_vec).collect();
                    for d in datagrams {
                        s.keep(&d);
                    }
                }
            }
            KEEPALIVE => {
                let pad = input.u8();
                let sent_at = u64::try_from(s.now.as_nanos()).unwrap_or(u64::MAX);
                let sealed = if flag {
                    s.tx.keepalive_echo(sent_at, u16::from(pad) * 8, &mut buf)
                } else {
                    s.tx.keepalive(sent_at, usize::from(pad) * 8, &mut buf)
                };
                if let Ok(n) = sealed {
                    s.keep(&buf[..n]);
                }
            }
            DELIVER => {
                let i = usize::from(input.u8());
                if !s.pending.is_empty() {
                    let i = i % s.pending.len();
                    let d = if flag {
                        s.pending[i].clone()
                    } else {
                        s.pending.remove(i)
                    };
                    s.deliver(&d);
                }
            }
            DELIVER_ALL => {
                let mut all = std::mem::take(&mut s.pending);
                if flag {
                    all.reverse();
                }
                for d in &all {
                    s.deliver(d);
                }
            }
            TIME => {
                s.now += TICK * u32::from(input.u8());
                if flag {
                    s.rx.handle_timeout(s.now);
                }
                let _ = s.rx.poll_timeout();
            }
            _ if flag => {
                let i = usize::from(input.u8());
                let at = usize::from(input.u16());
                let xor = input.u8();
                if !s.pending.is_empty() {
                    let n = s.pending.len();
                    let d = &mut s.pending[i % n];
                    if !d.is_empty() {
                        let at = at % d.len();
                        d[at] ^= xor;
                    }
                }
            }
            _ => {
                let delta = i64::from(i8::from_be_bytes([input.u8()]));
                let session = s.session.wrapping_add_signed(delta);
                if let Some(id) = SessionId::new(session) {
                    s.session = session;
                    s.tx = peer_tx(id);
                }
            }
        }
    }
    let _ = (s.rx.peer_session(), s.rx.reassembly_stats(), s.rx.peer());
});

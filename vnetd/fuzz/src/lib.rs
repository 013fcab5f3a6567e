//! What the fuzz targets (`fuzz_targets/`) and the seed generator (`examples/seeds.rs`) share:
//! a cursor over the fuzzer's bytes, test frames, and the fixed identities and the input
//! format of the `link_rx` target, so that seeds produced here are datagrams the target's
//! link end accepts.

use std::time::Duration;

use vnetd::model::Name;
use vnetd::wire::{LinkTx, Local, OverlayKey, SessionId};

/// Reads numbers and slices off the fuzzer's input; past its end every number is 0 and every
/// slice empty, so targets never need to check lengths.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// A deterministic stream of numbers (xorshift64) from one seed byte: chunk sizes and the
/// like that should not take input bytes of their own.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u8) -> Self {
        Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(seed))
    }

    /// The next number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n.max(1) as u64).unwrap_or(0)
    }
}

/// A `len`-byte Ethernet frame from guest 1 to guest 2 (shorter ones are cut), its bytes a
/// pattern of `seed`.
pub fn eth_frame(len: usize, seed: u8) -> Vec<u8> {
    let mut frame: Vec<u8> = (0..len)
        .map(|i| u8::try_from(i % 251).unwrap_or(0) ^ seed)
        .collect();
    let macs = [
        0x02, 0x56, 0x4e, 0, 0, 2, // destination
        0x02, 0x56, 0x4e, 0, 0, 1, // source
    ];
    let n = len.min(macs.len());
    frame[..n].copy_from_slice(&macs[..n]);
    frame
}

/// The `link_rx` target: the receiving end at daemon `proxy` of its link from daemon `host1`,
/// in a fixed overlay, and the little language its input is written in.
///
/// The input is a sequence of operations, each an op byte (low 3 bits: the kind, high 5
/// bits: flags) and its arguments:
///
/// | kind | arguments | what it does |
/// |---|---|---|
/// | [`RAW`] | `len: u16`, `len` bytes | delivers those bytes as a datagram |
/// | [`HELLO`] | | the peer seals a hello, kept pending |
/// | [`FRAME`] | `len: u16`, `hops: u8`, `mtu: u8` | the peer seals a frame of `len % 2049` bytes with `hops`, at a largest datagram of `128 + 8 * mtu`, kept pending |
/// | [`KEEPALIVE`] | `pad: u8` | the peer seals a keepalive padded to `8 * pad` (flag 1: an echo), kept pending |
/// | [`DELIVER`] | `i: u8` | delivers pending datagram `i % pending` (flag 1: and keeps it, to replay) |
/// | [`DELIVER_ALL`] | | delivers every pending datagram in order (flag 1: in reverse) |
/// | [`TIME`] | `ticks: u8` | the clock moves on by `10 ms * ticks` (flag 1: and the link's timers run) |
/// | [`RESTART`] | `delta: u8` | the peer restarts with session `current + delta as i8` (flag 1: instead, tamper: `i: u8`, `at: u16`, `xor: u8` flips bits of a pending datagram) |
///
/// "Delivers" is what the daemon does with a datagram that arrives: `Datagram::new_checked`,
/// then `open_hello` (as it does to find the link of a hello) and `LinkRx::open`. Since the
/// peer seals with the real keys, authentic datagrams reach every state of the link (replays,
/// reordered fragments, restarts, expiry) despite the tag, which no mutation can forge.
pub mod link {
    use super::*;

    /// The overlay key.
    pub const KEY: [u8; 32] = [0x5a; 32];
    /// The receiving daemon.
    pub const LOCAL_NAME: &str = "proxy";
    /// Its session.
    pub const LOCAL_SESSION: u64 = 0x2000_0002;
    /// The peer daemon.
    pub const PEER_NAME: &str = "host1";
    /// The peer's first session.
    pub const PEER_SESSION: u64 = 0x1000_0001;
    /// The peer's largest datagram before a [`FRAME`] sets it (UDP at MTU 1500).
    pub const MAX_DATAGRAM: usize = 1472;

    /// Deliver raw bytes.
    pub const RAW: u8 = 0;
    /// The peer seals a hello.
    pub const HELLO: u8 = 1;
    /// The peer seals a frame.
    pub const FRAME: u8 = 2;
    /// The peer seals a keepalive or an echo.
    pub const KEEPALIVE: u8 = 3;
    /// Deliver one pending datagram.
    pub const DELIVER: u8 = 4;
    /// Deliver every pending datagram.
    pub const DELIVER_ALL: u8 = 5;
    /// Move the clock.
    pub const TIME: u8 = 6;
    /// Restart the peer, or tamper with a pending datagram.
    pub const RESTART: u8 = 7;
    /// The flag of an op byte (its bit 3).
    pub const FLAG: u8 = 1 << 3;

    fn name(s: &str) -> Name {
        s.parse().expect("a valid name")
    }

    /// The receiving daemon's local end.
    pub fn local() -> Local {
        Local {
            overlay: OverlayKey::from_bytes(KEY),
            name: name(LOCAL_NAME),
            session: SessionId::new(LOCAL_SESSION).expect("non-zero"),
        }
    }

    /// The peer's name.
    pub fn peer_name() -> Name {
        name(PEER_NAME)
    }

    /// The local end's name (the peer's peer).
    pub fn local_name() -> Name {
        name(LOCAL_NAME)
    }

    /// The peer's sending end in `session`, which knows the receiver's session already.
    pub fn peer_tx(session: SessionId) -> LinkTx {
        let peer = Local {
            overlay: OverlayKey::from_bytes(KEY),
            name: peer_name(),
            session,
        };
        let mut tx = LinkTx::new(&peer, &local_name(), MAX_DATAGRAM).expect("a valid size");
        tx.set_peer_session(SessionId::new(LOCAL_SESSION).expect("non-zero"));
        tx
    }

    /// The clock step of one [`TIME`] tick.
    pub const TICK: Duration = Duration::from_millis(10);

    /// Writes `link_rx` inputs (for seeds).
    #[derive(Debug, Default, Clone)]
    pub struct Script(pub Vec<u8>);

    impl Script {
        /// [`RAW`].
        pub fn raw(mut self, datagram: &[u8]) -> Self {
            let len = u16::try_from(datagram.len()).expect("a datagram fits 64 KiB");
            self.0.push(RAW);
            self.0.extend_from_slice(&len.to_be_bytes());
            self.0.extend_from_slice(datagram);
            self
        }

        /// [`HELLO`].
        pub fn hello(mut self) -> Self {
            self.0.push(HELLO);
            self
        }

        /// [`FRAME`].
        pub fn frame(mut self, len: u16, hops: u8, mtu: u8) -> Self {
            self.0.push(FRAME);
            self.0.extend_from_slice(&len.to_be_bytes());
            self.0.extend_from_slice(&[hops, mtu]);
            self
        }

        /// [`KEEPALIVE`].
        pub fn keepalive(mut self, pad: u8, echo: bool) -> Self {
            self.0
                .extend_from_slice(&[KEEPALIVE | if echo { FLAG } else { 0 }, pad]);
            self
        }

        /// [`DELIVER`].
        pub fn deliver(mut self, i: u8, keep: bool) -> Self {
            self.0
                .extend_from_slice(&[DELIVER | if keep { FLAG } else { 0 }, i]);
            self
        }

        /// [`DELIVER_ALL`].
        pub fn deliver_all(mut self, reverse: bool) -> Self {
            self.0.push(DELIVER_ALL | if reverse { FLAG } else { 0 });
            self
        }

        /// [`TIME`].
        pub fn time(mut self, ticks: u8, timers: bool) -> Self {
            self.0
                .extend_from_slice(&[TIME | if timers { FLAG } else { 0 }, ticks]);
            self
        }

        /// [`RESTART`] of the peer.
        pub fn restart(mut self, delta: i8) -> Self {
            self.0.extend_from_slice(&[RESTART, delta.to_be_bytes()[0]]);
            self
        }

        /// [`RESTART`] with its flag: tampering.
        pub fn tamper(mut self, i: u8, at: u16, xor: u8) -> Self {
            self.0.extend_from_slice(&[RESTART | FLAG, i]);
            self.0.extend_from_slice(&at.to_be_bytes());
            self.0.push(xor);
            self
        }
    }
}

//! Tests across the wire module: two daemons' link ends talking through bytes.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::Name;

const KEY: [u8; 32] = [0x5a; 32];

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn session(id: u64) -> SessionId {
    SessionId::new(id).unwrap()
}

/// One daemon's end of a link to one peer.
struct End {
    local: Local,
    tx: LinkTx,
    rx: LinkRx,
}

impl End {
    fn new(me: &str, id: u64, peer: &str, max_datagram: usize) -> End {
        let local = Local {
            overlay: OverlayKey::from_bytes(KEY),
            name: name(me),
            session: session(id),
        };
        End {
            tx: LinkTx::new(&local, &name(peer), max_datagram).unwrap(),
            rx: LinkRx::new(&local, &name(peer), ReassemblyConfig::default()),
            local,
        }
    }

    fn hello(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = self.tx.hello(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// Receives a hello as the daemon would: open it, apply it, key the sending end.
    fn take_hello(&mut self, bytes: &[u8]) -> Result<HelloOutcome, RxError> {
        let datagram = Datagram::new_checked(bytes)?;
        let hello = open_hello(&self.local, datagram)?;
        let outcome = self.rx.accept_hello(&hello)?;
        self.tx.set_peer_session(outcome.session);
        Ok(outcome)
    }

    fn frame(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![0u8; self.tx.sealed_len(frame.len()).unwrap()];
        let sealed = self
            .tx
            .seal_frame(frame, false, DEFAULT_HOPS, &mut out)
            .unwrap();
        sealed.datagrams(&out).map(<[u8]>::to_vec).collect()
    }

    /// Opens one datagram; returns the frame it completes, if any.
    fn open(&mut self, bytes: &[u8], now: Duration) -> Result<Option<Vec<u8>>, RxError> {
        let mut bytes = bytes.to_vec();
        let datagram = Datagram::new_checked(&mut bytes[..])?;
        match self.rx.open(datagram, now)? {
            Received::Frame { frame, .. } => Ok(Some(frame.to_vec())),
            _ => Ok(None),
        }
    }
}

/// Two ends that exchanged hellos.
fn linked(max_datagram: usize) -> (End, End) {
    let mut a = End::new("host1", 0x1000_0001, "proxy", max_datagram);
    let mut b = End::new("proxy", 0x2000_0002, "host1", max_datagram);
    let hello = a.hello();
    let outcome = b.take_hello(&hello).unwrap();
    assert!(outcome.new_session && outcome.reply_wanted);
    let hello = b.hello();
    let outcome = a.take_hello(&hello).unwrap();
    assert!(outcome.new_session && !outcome.reply_wanted);
    (a, b)
}

fn eth_frame(len: usize, seed: u8) -> Vec<u8> {
    let mut frame: Vec<u8> = (0..len)
        .map(|i| u8::try_from(i % 251).unwrap() ^ seed)
        .collect();
    frame[..6].copy_from_slice(&[0x02, 0x56, 0x4e, 0, 0, 2]);
    frame[6..12].copy_from_slice(&[0x02, 0x56, 0x4e, 0, 0, 1]);
    frame
}

// ---------------------------------------------------------------------------------------------
// Formats

#[test]
fn every_message_round_trips() {
    let frame = eth_frame(100, 1);
    let messages = [
        Message::Hello(HelloPayload {
            name: name("host-1.site_a"),
            your_session: None,
        }),
        Message::Hello(HelloPayload {
            name: name(&"x".repeat(63)),
            your_session: Some(session(u64::MAX)),
        }),
        Message::Frame(&frame),
        Message::Fragment(Fragment {
            frame_id: 0xdead_beef,
            frame_len: 100,
            index: 1,
            count: 2,
            piece: &frame[50..],
        }),
        Message::Keepalive {
            sent_at: 123_456_789,
            padding: 0,
        },
        Message::Keepalive {
            sent_at: u64::MAX,
            padding: 1000,
        },
        Message::KeepaliveEcho {
            sent_at: 42,
            probe_len: 1472,
        },
    ];
    for message in &messages {
        let mut buf = vec![0xffu8; message.payload_len()];
        assert_eq!(message.emit(&mut buf), Ok(buf.len()));
        assert_eq!(&Message::parse(message.msg_type(), &buf).unwrap(), message);
        // Too small a buffer is an error, not a panic.
        if let Some(short) = buf.len().checked_sub(1) {
            assert_eq!(
                message.emit(&mut buf[..short]),
                Err(BufferTooSmall {
                    need: short + 1,
                    have: short
                })
            );
        }
    }
    for t in 0..=255u8 {
        assert_eq!(u8::from(MessageType::from(t)), t);
    }
}

#[test]
fn header_round_trips() {
    let header = Header {
        msg_type: MessageType::Fragment,
        hops: 7,
        flags: Flags(0x80),
        session: session(0x0102_0304_0506_0708),
        seq: 0x1112_1314_1516_1718,
        payload_len: 3,
        receiver_hint: 0xabcd,
    };
    let mut buf = [0u8; HEADER_LEN + 3 + TAG_LEN];
    let mut datagram = Datagram::new_unchecked(&mut buf[..]);
    datagram.emit_header(&header);
    datagram.payload_mut().copy_from_slice(b"abc");
    let datagram = Datagram::new_checked(&buf[..]).unwrap();
    assert_eq!(Header::parse(&datagram), Ok(header));
    assert_eq!(datagram.payload(), b"abc");
    assert_eq!(datagram.authenticated().len(), HEADER_LEN + 3);
    assert_eq!(datagram.tag().len(), TAG_LEN);
    assert_eq!(
        &buf[..HEADER_LEN],
        &[
            1, 3, 7, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
            0, 3, 0xab, 0xcd
        ]
    );
}

#[test]
fn every_header_error() {
    let (mut a, _) = linked(1472);
    let good = a.frame(&eth_frame(60, 0)).remove(0);
    let with = |at: usize, value: u8| {
        let mut bytes = good.clone();
        bytes[at] = value;
        bytes
    };
    let check = |bytes: &[u8]| Datagram::new_checked(bytes).map(|_| ());
    assert_eq!(check(&good), Ok(()));
    assert_eq!(check(&[]), Err(ParseError::TooShort { len: 0 }));
    assert_eq!(check(&good[..23]), Err(ParseError::TooShort { len: 23 }));
    assert_eq!(check(&with(0, 2)), Err(ParseError::BadVersion(2)));
    assert_eq!(check(&with(0, 0)), Err(ParseError::BadVersion(0)));
    assert_eq!(check(&with(1, 0)), Err(ParseError::UnknownType(0)));
    assert_eq!(check(&with(1, 7)), Err(ParseError::UnknownType(7)));
    assert_eq!(check(&with(2, 0)), Err(ParseError::ZeroHops));
    let mut zero_session = good.clone();
    zero_session[4..12].fill(0);
    assert_eq!(check(&zero_session), Err(ParseError::ZeroSession));
    assert_eq!(
        check(&good[..good.len() - 1]),
        Err(ParseError::LengthMismatch {
            declared: 60,
            actual: 59
        })
    );
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        check(&longer),
        Err(ParseError::LengthMismatch {
            declared: 60,
            actual: 61
        })
    );
    assert_eq!(
        check(&good[..HEADER_LEN + 3]),
        Err(ParseError::LengthMismatch {
            declared: 60,
            actual: 0
        })
    );
    // Unknown flag bits are no parse error (the tag still covers them).
    assert_eq!(check(&with(3, 0xff)), Ok(()));
    // Every error has a message.
    assert!(ParseError::BadVersion(2).to_string().contains("version 2"));
}

#[test]
fn every_payload_error() {
    let payload_error = |kind, bytes: &[u8]| match Message::parse(kind, bytes) {
        Err(ParseError::Payload { kind: k, error }) if k == kind => error,
        other => panic!("{kind}: {other:?}"),
    };
    use MessageType as T;
    // Hello: too short, length octet disagreeing, bad names.
    assert!(matches!(
        payload_error(T::Hello, &[0; 9]),
        PayloadError::BadLength { .. }
    ));
    let mut hello = vec![0u8; 8];
    hello.extend([3, b'a', b'b']);
    assert_eq!(
        payload_error(T::Hello, &hello),
        PayloadError::BadLength {
            expected: 12,
            actual: 11
        }
    );
    for bad in [&b"-x"[..], b"a b", &[0xff, 0xfe], &[b'x'; 64]] {
        let mut hello = vec![0u8; 8];
        hello.push(u8::try_from(bad.len()).unwrap());
        hello.extend_from_slice(bad);
        assert_eq!(payload_error(T::Hello, &hello), PayloadError::BadName);
    }
    // Frame: a runt.
    assert_eq!(
        payload_error(T::Frame, &[0; 13]),
        PayloadError::RuntFrame { len: 13 }
    );
    // Fragment: too short, runt frame, bad counts and indexes, wrong piece length.
    let fragment = |frame_len: u16, index: u8, count: u8, piece: usize| {
        let mut p = vec![0, 0, 0, 1];
        p.extend(frame_len.to_be_bytes());
        p.extend([index, count]);
        p.extend(std::iter::repeat_n(0, piece));
        p
    };
    assert!(matches!(
        payload_error(T::Fragment, &[0; 8]),
        PayloadError::BadLength { .. }
    ));
    assert_eq!(
        payload_error(T::Fragment, &fragment(13, 0, 2, 7)),
        PayloadError::RuntFrame { len: 13 }
    );
    for (index, count) in [(0, 1), (0, 0), (2, 2), (0, 65), (200, 100)] {
        assert_eq!(
            payload_error(T::Fragment, &fragment(100, index, count, 50)),
            PayloadError::FragmentIndex { index, count }
        );
    }
    // 20 bytes in 11 pieces of 2 leaves the last one empty.
    assert_eq!(
        payload_error(T::Fragment, &fragment(20, 0, 11, 2)),
        PayloadError::FragmentIndex {
            index: 0,
            count: 11
        }
    );
    assert_eq!(
        payload_error(T::Fragment, &fragment(100, 2, 3, 33)),
        PayloadError::FragmentLength {
            expected: 32,
            actual: 33
        }
    );
    assert!(Message::parse(T::Fragment, &fragment(100, 1, 3, 34)).is_ok());
    assert!(Message::parse(T::Fragment, &fragment(100, 2, 3, 32)).is_ok());
    // Keepalives: too short; echoes: not exactly 10 bytes.
    assert!(matches!(
        payload_error(T::Keepalive, &[0; 7]),
        PayloadError::BadLength { .. }
    ));
    assert!(matches!(
        payload_error(T::KeepaliveEcho, &[0; 9]),
        PayloadError::BadLength { .. }
    ));
    assert!(matches!(
        payload_error(T::KeepaliveEcho, &[0; 11]),
        PayloadError::BadLength { .. }
    ));
    assert_eq!(
        Message::parse(T::Unknown(9), &[]),
        Err(ParseError::UnknownType(9))
    );
}

// ---------------------------------------------------------------------------------------------
// Links end to end

#[test]
fn every_message_crosses_a_link() {
    let (mut a, mut b) = linked(1472);
    let now = Duration::ZERO;
    // Whole frame.
    let small = eth_frame(64, 2);
    let datagrams = a.frame(&small);
    assert_eq!(datagrams.len(), 1);
    assert_eq!(datagrams[0].len(), 64 + OVERHEAD);
    assert_eq!(b.open(&datagrams[0], now), Ok(Some(small)));
    // Fragmented frame: two even pieces.
    let big = eth_frame(1514, 3);
    let datagrams = a.frame(&big);
    assert_eq!(
        datagrams.iter().map(Vec::len).collect::<Vec<_>>(),
        [805, 805]
    );
    assert_eq!(b.open(&datagrams[0], now), Ok(None));
    assert_eq!(b.open(&datagrams[1], now), Ok(Some(big)));
    // Keepalive, padded as a probe, and its echo.
    let mut buf = [0u8; 2000];
    let n = a.tx.keepalive(777, 1400, &mut buf).unwrap();
    assert_eq!(n, 1400);
    let datagram = Datagram::new_checked(&mut buf[..n]).unwrap();
    let (sent_at, probe_len) = match b.rx.open(datagram, now) {
        Ok(Received::Keepalive { sent_at, probe_len }) => (sent_at, probe_len),
        other => panic!("{other:?}"),
    };
    assert_eq!((sent_at, probe_len), (777, 1400));
    let mut echo = [0u8; 100];
    let n = b.tx.keepalive_echo(sent_at, probe_len, &mut echo).unwrap();
    let datagram = Datagram::new_checked(&mut echo[..n]).unwrap();
    assert_eq!(
        a.rx.open(datagram, now),
        Ok(Received::KeepaliveEcho {
            sent_at: 777,
            probe_len: 1400
        })
    );
    // An unpadded keepalive.
    let n = a.tx.keepalive(1, 0, &mut buf).unwrap();
    assert_eq!(n, OVERHEAD + KEEPALIVE_LEN);
    // A hello through `open` on a known link: same session, nothing new.
    let mut hello = a.hello();
    let datagram = Datagram::new_checked(&mut hello[..]).unwrap();
    assert_eq!(
        b.rx.open(datagram, now),
        Ok(Received::Hello(HelloOutcome {
            session: a.local.session,
            new_session: false,
            reply_wanted: false
        }))
    );
}

#[test]
fn hop_budget_and_helpers() {
    assert_eq!(forward_hops(8), Some(7));
    assert_eq!(forward_hops(2), Some(1));
    assert_eq!(forward_hops(1), None);
    assert_eq!(forward_hops(0), None);
    assert_eq!(udp_max_datagram(1500, false), 1472);
    assert_eq!(udp_max_datagram(1500, true), 1452);
    assert_eq!(udp_max_datagram(10, true), 0);
    let (mut a, mut b) = linked(1472);
    let mut out = [0u8; 200];
    a.tx.seal_frame(&eth_frame(60, 0), false, 1, &mut out)
        .unwrap();
    let datagram = Datagram::new_checked(&mut out[..60 + OVERHEAD]).unwrap();
    assert!(matches!(
        b.rx.open(datagram, Duration::ZERO),
        Ok(Received::Frame { hops: 1, .. })
    ));
}

#[test]
fn sending_errors() {
    let mut a = End::new("host1", 5, "proxy", 1472);
    let mut out = [0u8; 4000];
    let frame = eth_frame(100, 0);
    // Nothing but hellos before the peer's session is known.
    assert_eq!(
        a.tx.seal_frame(&frame, false, 1, &mut out),
        Err(TxError::NoPeerSession)
    );
    assert_eq!(a.tx.keepalive(0, 0, &mut out), Err(TxError::NoPeerSession));
    assert_eq!(
        a.tx.keepalive_echo(0, 0, &mut out),
        Err(TxError::NoPeerSession)
    );
    assert_eq!(
        a.tx.hello(&mut out[..10]).map(|_| ()),
        Err(TxError::BufferTooSmall(BufferTooSmall {
            need: 54,
            have: 10
        }))
    );
    assert_eq!(
        a.tx.next_seq(),
        0,
        "a failed send spends no sequence number"
    );
    a.tx.set_peer_session(session(9));
    assert_eq!(a.tx.peer_session(), Some(session(9)));
    assert_eq!(
        a.tx.seal_frame(&frame, false, 0, &mut out),
        Err(TxError::ZeroHops)
    );
    assert_eq!(
        a.tx.seal_frame(&frame[..13], false, 1, &mut out),
        Err(TxError::RuntFrame { len: 13 })
    );
    assert_eq!(
        a.tx.seal_frame(&frame, false, 1, &mut out[..139]),
        Err(TxError::BufferTooSmall(BufferTooSmall {
            need: 140,
            have: 139
        }))
    );
    assert!(matches!(
        a.tx.seal_frame(&vec![0; 70_000], false, 1, &mut out),
        Err(TxError::Unsplittable(_))
    ));
    assert_eq!(a.tx.next_seq(), 0);
    assert_eq!(
        a.tx.set_max_datagram(MIN_DATAGRAM - 1),
        Err(TxError::BadDatagramSize(MIN_DATAGRAM - 1))
    );
    assert_eq!(
        a.tx.set_max_datagram(MAX_DATAGRAM + 1),
        Err(TxError::BadDatagramSize(MAX_DATAGRAM + 1))
    );
    assert_eq!(a.tx.max_datagram(), 1472);
    // At the smallest datagram a full frame takes 19 pieces.
    a.tx.set_max_datagram(MIN_DATAGRAM).unwrap();
    let sealed =
        a.tx.seal_frame(&eth_frame(1518, 0), false, 1, &mut out)
            .unwrap();
    assert_eq!(sealed.count, 19);
    assert!(sealed.datagrams(&out).all(|d| d.len() <= MIN_DATAGRAM));
    assert_eq!(a.tx.next_seq(), 19);
    assert_eq!(
        a.tx.keepalive(0, MAX_DATAGRAM + 1, &mut out),
        Err(TxError::BadPadding(MAX_DATAGRAM + 1))
    );
    assert!(LinkTx::new(&a.local, &name("proxy"), 0).is_err());
}

#[test]
fn tampering_with_any_byte_is_refused() {
    let (mut a, mut b) = linked(1472);
    let good = a.frame(&eth_frame(64, 4)).remove(0);
    for at in 0..good.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            let result = b.open(&bad, Duration::ZERO);
            assert!(result.is_err(), "byte {at} ^ {flip:#x} accepted");
            // Past the header, only the tag can tell.
            if at >= HEADER_LEN {
                assert_eq!(result, Err(RxError::BadTag), "byte {at}");
            }
        }
    }
    // None of that moved the window: the genuine datagram still passes, once.
    assert!(b.open(&good, Duration::ZERO).unwrap().is_some());
    assert!(matches!(
        b.open(&good, Duration::ZERO),
        Err(RxError::Replayed { .. })
    ));
}

#[test]
fn tampered_header_fields_give_their_reason() {
    let (mut a, mut b) = linked(1472);
    let good = a.frame(&eth_frame(64, 4)).remove(0);
    let with = |range: std::ops::Range<usize>, bytes: &[u8]| {
        let mut bad = good.clone();
        bad[range].copy_from_slice(bytes);
        bad
    };
    let now = Duration::ZERO;
    assert_eq!(b.open(&with(2..3, &[5]), now), Err(RxError::BadTag));
    assert_eq!(b.open(&with(3..4, &[1]), now), Err(RxError::BadTag));
    assert_eq!(
        b.open(&with(12..20, &5u64.to_be_bytes()), now),
        Err(RxError::BadTag)
    );
    assert_eq!(
        b.open(&with(22..24, &[0, 0]), now),
        Err(RxError::WrongReceiver)
    );
    assert_eq!(
        b.open(&with(4..12, &1u64.to_be_bytes()), now),
        Err(RxError::StaleSession {
            found: session(1),
            current: a.local.session
        })
    );
    assert_eq!(
        b.open(&with(4..12, &u64::MAX.to_be_bytes()), now),
        Err(RxError::UnknownSession)
    );
    assert_eq!(
        b.open(&with(1..2, &[4]), now),
        Err(RxError::BadTag),
        "a frame relabelled as a keepalive"
    );
    // An authentic datagram with a malformed payload is still malformed (a buggy peer).
    let mut out = [0u8; 100];
    let key = LinkKey::derive(
        &a.local.overlay,
        (&a.local.name, a.local.session),
        (&b.local.name, Some(b.local.session)),
    );
    let runt = seal_raw(
        &key,
        &a.local,
        b.local.session,
        100,
        MessageType::Frame,
        &[0; 13],
        &mut out,
    );
    assert_eq!(
        b.open(runt, now),
        Err(RxError::Malformed(ParseError::Payload {
            kind: MessageType::Frame,
            error: PayloadError::RuntFrame { len: 13 }
        }))
    );
    let reasons = [
        RxError::BadTag.reason(),
        RxError::Replayed { seq: 0 }.reason(),
        RxError::TooOld { seq: 0, behind: 0 }.reason(),
        RxError::StaleSession {
            found: session(1),
            current: session(2),
        }
        .reason(),
    ];
    assert_eq!(reasons, ["bad-tag", "replayed", "too-old", "stale-session"]);
}

/// Seals any payload by hand, as a buggy or hostile peer holding the key could.
fn seal_raw<'b>(
    key: &LinkKey,
    from: &Local,
    to: SessionId,
    seq: u64,
    msg_type: MessageType,
    payload: &[u8],
    out: &'b mut [u8],
) -> &'b [u8] {
    let len = OVERHEAD + payload.len();
    let mut datagram = Datagram::new_unchecked(&mut out[..len]);
    datagram.emit_header(&Header {
        msg_type,
        hops: 1,
        flags: Flags::default(),
        session: from.session,
        seq,
        payload_len: u16::try_from(payload.len()).unwrap(),
        receiver_hint: to.hint(),
    });
    datagram.payload_mut().copy_from_slice(payload);
    if msg_type == MessageType::Hello {
        let (authenticated, tag) = datagram.authenticated_and_tag_mut();
        tag.copy_from_slice(&key.seal(seq, authenticated, &mut []));
    } else {
        let (header, payload, tag) = datagram.parts_mut();
        tag.copy_from_slice(&key.seal(seq, header, payload));
    }
    &out[..len]
}

// ---------------------------------------------------------------------------------------------
// Replay and sessions

#[test]
fn replay_window_on_a_link() {
    let (mut a, mut b) = linked(1472);
    let now = Duration::ZERO;
    let datagrams: Vec<Vec<u8>> = (0..5000)
        .map(|i| {
            a.frame(&eth_frame(60, u8::try_from(i % 256).unwrap()))
                .remove(0)
        })
        .collect();
    // In order for a while, then a burst reordered within the window.
    for d in &datagrams[..1000] {
        assert!(b.open(d, now).unwrap().is_some());
    }
    for d in datagrams[1000..2000].iter().rev() {
        assert!(b.open(d, now).unwrap().is_some());
    }
    // Duplicates, within the window.
    for d in [&datagrams[1999], &datagrams[1500], &datagrams[1000]] {
        assert!(matches!(b.open(d, now), Err(RxError::Replayed { .. })));
    }
    // A jump ahead, then ones just inside and just outside the window. Datagram `i` has
    // sequence number `i + 1`: a's hello took 0.
    assert!(b.open(&datagrams[4999], now).unwrap().is_some());
    let oldest_inside = usize::try_from(5000 - (REPLAY_WINDOW - 1)).unwrap() - 1;
    assert!(b.open(&datagrams[oldest_inside], now).unwrap().is_some());
    assert!(matches!(
        b.open(&datagrams[oldest_inside - 1], now),
        Err(RxError::TooOld { .. })
    ));
    assert!(matches!(
        b.open(&datagrams[0], now),
        Err(RxError::TooOld { .. })
    ));
}

#[test]
fn restarted_peer_is_accepted_and_its_old_session_is_not() {
    let (mut a, mut b) = linked(1472);
    let now = Duration::ZERO;
    let old_hello = a.hello();
    let old: Vec<Vec<u8>> = (0..5)
        .map(|i| a.frame(&eth_frame(80, i)).remove(0))
        .collect();
    for d in &old[..3] {
        assert!(b.open(d, now).unwrap().is_some());
    }
    // a restarts: a new, higher session; its sequence numbers start again at 0.
    let mut a2 = End::new("host1", 0x1000_0002, "proxy", 1472);
    let fresh = eth_frame(90, 9);
    // Its data before its hello is from an unknown session (b answers with a hello).
    a2.tx.set_peer_session(b.local.session);
    let early = a2.frame(&fresh).remove(0);
    assert_eq!(b.open(&early, now), Err(RxError::UnknownSession));
    let outcome = b.take_hello(&a2.hello()).unwrap();
    assert!(outcome.new_session);
    assert!(!outcome.reply_wanted, "a2 already keyed for b's session");
    assert_eq!(b.rx.peer_session(), Some(a2.local.session));
    let outcome = a2.take_hello(&b.hello()).unwrap();
    assert!(outcome.new_session && !outcome.reply_wanted);
    // Sequence numbers restarted (early frame 0, hello 1, this one 2): accepted.
    let d = a2.frame(&fresh).remove(0);
    assert_eq!(Datagram::new_checked(&d[..]).unwrap().seq(), 2);
    assert_eq!(b.open(&d, now), Ok(Some(fresh)));
    // The old session's datagrams, sent or not, replayed or not, and its hello: stale.
    for d in &old {
        assert!(matches!(b.open(d, now), Err(RxError::StaleSession { .. })));
    }
    assert!(matches!(
        b.take_hello(&old_hello),
        Err(RxError::StaleSession { .. })
    ));
    assert_eq!(b.rx.peer_session(), Some(a2.local.session));
}

#[test]
fn restarted_receiver_refuses_traffic_keyed_for_its_old_session() {
    let (mut a, mut b) = linked(1472);
    let now = Duration::ZERO;
    let for_old_b = a.frame(&eth_frame(70, 1)).remove(0);
    assert!(b.open(&for_old_b, now).unwrap().is_some());
    // b restarts; the two exchange hellos again.
    let mut b2 = End::new("proxy", 0x2000_0003, "host1", 1472);
    assert_eq!(b2.open(&for_old_b, now), Err(RxError::UnknownSession));
    let outcome = a.take_hello(&b2.hello()).unwrap();
    assert!(outcome.new_session && outcome.reply_wanted);
    assert!(b2.take_hello(&a.hello()).unwrap().new_session);
    // a's old datagram, keyed for b's previous session, is refused by b2...
    assert_eq!(b2.open(&for_old_b, now), Err(RxError::WrongReceiver));
    // ...even with the hint forged to b2's.
    let mut forged = for_old_b.clone();
    forged[22..24].copy_from_slice(&b2.local.session.hint().to_be_bytes());
    assert_eq!(b2.open(&forged, now), Err(RxError::BadTag));
    // New traffic flows.
    let d = a.frame(&eth_frame(70, 2)).remove(0);
    assert!(b2.open(&d, now).unwrap().is_some());
}

#[test]
fn datagrams_cannot_be_moved_to_another_link() {
    // a talks to b and to c, both of which know a's session.
    let (mut a, mut b) = linked(1472);
    let mut c = End::new("host2", 0x2000_0002, "host1", 1472); // even the same session as b
    let mut a_to_c = End::new("host1", a.local.session.get(), "host2", 1472);
    c.take_hello(&a_to_c.hello()).unwrap();
    a_to_c.take_hello(&c.hello()).unwrap();
    let d = a.frame(&eth_frame(60, 1)).remove(0);
    assert_eq!(c.open(&d, Duration::ZERO), Err(RxError::BadTag));
    assert!(b.open(&d, Duration::ZERO).unwrap().is_some());
    // A datagram reflected back to its sender.
    assert_eq!(
        a.open(&d, Duration::ZERO),
        Err(RxError::StaleSession {
            found: a.local.session,
            current: b.local.session,
        })
    );
}

#[test]
fn hellos_are_authenticated_and_checked() {
    let mut a = End::new("host1", 10, "proxy", 1472);
    let mut b = End::new("proxy", 20, "host1", 1472);
    let hello = a.hello();
    // Another overlay's key.
    let outsider = Local {
        overlay: OverlayKey::from_bytes([1; 32]),
        ..b.local.clone()
    };
    let datagram = Datagram::new_checked(&hello[..]).unwrap();
    assert_eq!(open_hello(&outsider, datagram), Err(RxError::BadTag));
    // Addressed to another daemon.
    let mut c = End::new("host2", 30, "host1", 1472);
    assert_eq!(c.take_hello(&hello), Err(RxError::BadTag));
    // Tampered.
    let mut bad = hello.clone();
    let last = bad.len() - TAG_LEN - 1;
    bad[last] ^= 1;
    assert_eq!(b.take_hello(&bad), Err(RxError::BadTag));
    // From another daemon than the link's peer.
    let mut stranger = End::new("host3", 40, "proxy", 1472);
    assert_eq!(
        b.take_hello(&stranger.hello()),
        Err(RxError::WrongPeer {
            expected: name("host1"),
            found: name("host3")
        })
    );
    // Not a hello at all.
    a.tx.set_peer_session(b.local.session);
    let frame = a.frame(&eth_frame(60, 0)).remove(0);
    assert_eq!(
        open_hello(&b.local, Datagram::new_checked(&frame[..]).unwrap()),
        Err(RxError::Malformed(ParseError::WrongType {
            expected: MessageType::Hello,
            found: MessageType::Frame
        }))
    );
    // Genuine: accepted once; replayed: refused.
    assert!(b.take_hello(&hello).unwrap().new_session);
    assert!(matches!(
        b.take_hello(&hello),
        Err(RxError::Replayed { .. })
    ));
    // A later hello of the same session is no new session.
    let again = a.hello();
    assert!(!b.take_hello(&again).unwrap().new_session);
}

#[test]
fn a_peer_whose_clock_stepped_back_is_refused_until_it_remembers() {
    let t = Duration::from_secs(1_800_000_000);
    let first = SessionId::starting_at(t, 1, None);
    let mut b = End::new("proxy", 0x2000_0002, "host1", 1472);
    let mut a = End::new("host1", first.get(), "proxy", 1472);
    b.take_hello(&a.hello()).unwrap();
    // Restart after the clock stepped back a minute, without the previous id: refused.
    let forgetful = SessionId::starting_at(t - Duration::from_secs(60), 2, None);
    let mut a2 = End::new("host1", forgetful.get(), "proxy", 1472);
    assert!(matches!(
        b.take_hello(&a2.hello()),
        Err(RxError::StaleSession { .. })
    ));
    // With the previous id persisted: accepted.
    let remembering = SessionId::starting_at(t - Duration::from_secs(60), 2, Some(first));
    let mut a3 = End::new("host1", remembering.get(), "proxy", 1472);
    assert!(b.take_hello(&a3.hello()).unwrap().new_session);
}

// ---------------------------------------------------------------------------------------------
// Fragmentation

#[test]
fn lost_fragment_is_evicted_in_time() {
    let (mut a, mut b) = linked(udp_max_datagram(576, false));
    let t0 = Duration::from_secs(10);
    let pieces = a.frame(&eth_frame(1518, 5));
    assert_eq!(pieces.len(), 4);
    for i in [0, 2, 3] {
        assert_eq!(b.open(&pieces[i], t0), Ok(None));
    }
    assert_eq!(b.rx.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    b.rx.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(b.rx.reassembly_stats().expired, 0);
    b.rx.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(b.rx.reassembly_stats().expired, 1);
    assert_eq!(b.rx.poll_timeout(), None);
    // The lost piece turns up late: it completes nothing.
    assert_eq!(b.open(&pieces[1], t0 + Duration::from_secs(2)), Ok(None));
}

#[test]
fn duplicate_and_interleaved_fragments() {
    let (mut a, mut b) = linked(udp_max_datagram(1280, true));
    let now = Duration::ZERO;
    let (f1, f2) = (eth_frame(1500, 1), eth_frame(1400, 2));
    let (p1, p2) = (a.frame(&f1), a.frame(&f2));
    assert_eq!((p1.len(), p2.len()), (2, 2));
    assert_eq!(b.open(&p1[0], now), Ok(None));
    assert_eq!(b.open(&p2[0], now), Ok(None));
    // The same fragment again is caught by the window.
    assert!(matches!(b.open(&p1[0], now), Err(RxError::Replayed { .. })));
    assert_eq!(b.open(&p2[1], now), Ok(Some(f2)));
    assert_eq!(b.open(&p1[1], now), Ok(Some(f1.clone())));
    // A duplicate piece under a new sequence number (a buggy peer) is caught by reassembly.
    let key = LinkKey::derive(
        &a.local.overlay,
        (&a.local.name, a.local.session),
        (&b.local.name, Some(b.local.session)),
    );
    // The first piece of f1 again, as frame 99 (payloads travel encrypted, so it is built
    // afresh rather than copied from p1).
    let piece = Message::Fragment(Fragment {
        frame_id: 99,
        frame_len: 1500,
        index: 0,
        count: 2,
        piece: &f1[..750],
    });
    let mut first_again = vec![0u8; piece.payload_len()];
    piece.emit(&mut first_again).unwrap();
    let mut out = [0u8; 2000];
    let d = seal_raw(
        &key,
        &a.local,
        b.local.session,
        1000,
        MessageType::Fragment,
        &first_again,
        &mut out,
    )
    .to_vec();
    assert_eq!(b.open(&d, now), Ok(None));
    let d = seal_raw(
        &key,
        &a.local,
        b.local.session,
        1001,
        MessageType::Fragment,
        &first_again,
        &mut out,
    )
    .to_vec();
    assert_eq!(b.open(&d, now), Err(RxError::DuplicateFragment));
    assert_eq!(b.rx.reassembly_stats().duplicates, 1);
    assert_eq!(b.rx.reassembly_stats().completed, 2);
}

#[test]
fn super_frames_with_offload_cross_in_fragments_and_keep_their_flag() {
    let mut a = End::new("host1", 0x1000_0001, "proxy", udp_max_datagram(1500, false));
    let mut b = End::new("proxy", 0x2000_0002, "host1", udp_max_datagram(1500, false));
    b.rx = LinkRx::new(
        &b.local,
        &name("host1"),
        ReassemblyConfig {
            max_frame_len: usize::from(u16::MAX),
            ..ReassemblyConfig::default()
        },
    );
    let hello = a.hello();
    b.take_hello(&hello).unwrap();
    let hello = b.hello();
    a.take_hello(&hello).unwrap();
    // A 64 KiB TCP super-frame behind its descriptor: the most a 16-bit length takes.
    let frame = eth_frame(usize::from(u16::MAX), 3);
    let mut out = vec![0u8; a.tx.sealed_len(frame.len()).unwrap()];
    let sealed =
        a.tx.seal_frame(&frame, true, DEFAULT_HOPS, &mut out)
            .unwrap();
    assert_eq!(sealed.count, 47, "65 535 bytes in pieces of 1424");
    let datagrams: Vec<Vec<u8>> = sealed.datagrams(&out).map(<[u8]>::to_vec).collect();
    for d in &datagrams {
        let d = Datagram::new_checked(&d[..]).unwrap();
        assert!(d.flags().offload(), "every fragment carries the flag");
    }
    let mut got = None;
    for mut d in datagrams {
        let datagram = Datagram::new_checked(&mut d[..]).unwrap();
        if let Received::Frame { frame, offload, .. } = b.rx.open(datagram, Duration::ZERO).unwrap()
        {
            got = Some((frame.to_vec(), offload));
        }
    }
    assert_eq!(got, Some((frame.clone(), true)));
    // A small frame with offload goes whole, flag and all.
    let small = eth_frame(200, 4);
    let mut out = vec![0u8; a.tx.sealed_len(small.len()).unwrap()];
    a.tx.seal_frame(&small, true, DEFAULT_HOPS, &mut out)
        .unwrap();
    let datagram = Datagram::new_checked(&mut out[..]).unwrap();
    assert!(matches!(
        b.rx.open(datagram, Duration::ZERO),
        Ok(Received::Frame { offload: true, .. })
    ));
}

#[test]
fn fragments_of_one_frame_must_agree_on_the_offload_flag() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let frame = eth_frame(1514, 5);
    let piece = |index: u8| Fragment {
        frame_id: 9,
        frame_len: 1514,
        index,
        count: 2,
        piece: &frame[usize::from(index) * 757..(usize::from(index) + 1) * 757],
    };
    assert_eq!(r.insert(&piece(0), 1, true, Duration::ZERO), Ok(None));
    assert_eq!(
        r.insert(&piece(1), 1, false, Duration::ZERO),
        Err(ReassemblyError::Inconsistent { frame_id: 9 })
    );
}

#[test]
fn oversized_frames_are_refused() {
    let (mut a, mut b) = linked(udp_max_datagram(9000, false));
    // 1600 bytes goes whole at 9000 but exceeds b's limit of 1518.
    let d = a.frame(&eth_frame(1600, 1)).remove(0);
    assert_eq!(
        b.open(&d, Duration::ZERO),
        Err(RxError::FrameTooLong {
            len: 1600,
            max: 1518
        })
    );
    a.tx.set_max_datagram(1472).unwrap();
    let pieces = a.frame(&eth_frame(1600, 1));
    assert_eq!(
        b.open(&pieces[0], Duration::ZERO),
        Err(RxError::FrameTooLong {
            len: 1600,
            max: 1518
        })
    );
}

proptest! {
    #[test]
    fn frames_of_every_size_cross_every_mtu(
        len in 60usize..=1518,
        mtu in prop::sample::select(vec![1500usize, 1280, 576]),
        ipv6 in any::<bool>(),
        order in any::<prop::sample::Index>(),
        seed in any::<u8>(),
    ) {
        let max_datagram = udp_max_datagram(mtu, ipv6);
        let (mut a, mut b) = linked(max_datagram);
        let frame = eth_frame(len, seed);
        let mut datagrams = a.frame(&frame);
        let whole = len + OVERHEAD <= max_datagram;
        prop_assert_eq!(datagrams.len() == 1, whole);
        let stride = datagrams[0].len();
        for (i, d) in datagrams.iter().enumerate() {
            prop_assert!(d.len() <= max_datagram);
            if i + 1 < datagrams.len() {
                prop_assert_eq!(d.len(), stride);
            }
        }
        let total: usize = datagrams.iter().map(Vec::len).sum();
        prop_assert_eq!(total, a.tx.sealed_len(len).unwrap());
        // Any arrival order: rotate by a random amount, reverse every other time.
        let k = order.index(datagrams.len());
        datagrams.rotate_left(k);
        if k % 2 == 1 {
            datagrams.reverse();
        }
        let mut got = Vec::new();
        for d in &datagrams {
            if let Some(frame) = b.open(d, Duration::ZERO).unwrap() {
                got.push(frame);
            }
        }
        prop_assert_eq!(got, vec![frame]);
        prop_assert_eq!(b.rx.poll_timeout(), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Stream links

fn stream_records(a: &mut End, n: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut records = vec![a.hello()];
    a.tx.set_max_datagram(MAX_DATAGRAM).unwrap();
    for i in 0..n {
        let len = 14 + (i * 97) % 1505;
        records.extend(a.frame(&eth_frame(len, u8::try_from(i % 256).unwrap())));
    }
    let stream = records.concat();
    (records, stream)
}

#[test]
fn stream_decoder_byte_by_byte() {
    let (mut a, mut b) = linked(1472);
    let (records, stream) = stream_records(&mut a, 20);
    let mut decoder = StreamDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut got = Vec::new();
    for byte in &stream {
        decoder.push(std::slice::from_ref(byte));
        while let Some(record) = decoder.pop().unwrap() {
            got.push(record.as_bytes().to_vec());
        }
    }
    assert_eq!(got, records);
    assert_eq!(decoder.buffered(), 0);
    // And they open as datagrams.
    for record in &got {
        b.open(record, Duration::ZERO).unwrap();
    }
}

#[test]
fn stream_decoder_fails_on_garbage_for_good() {
    let (mut a, _) = linked(1472);
    let (records, _) = stream_records(&mut a, 3);
    // A good record, then garbage, then a good record: the first comes out, then the error,
    // forever.
    let mut decoder = StreamDecoder::new(DEFAULT_MAX_FRAME_LEN);
    decoder.push(&records[1]);
    decoder.push(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    decoder.push(&records[2]);
    assert!(decoder.pop().unwrap().is_some());
    let error = decoder.pop().unwrap_err();
    assert_eq!(error, ParseError::BadVersion(b'G'));
    assert!(decoder.is_failed());
    decoder.push(&records[2]);
    assert_eq!(decoder.pop().unwrap_err(), error);
    assert_eq!(decoder.buffered(), 0, "a failed decoder holds nothing");
    // An oversized record is refused as soon as its header is in.
    let mut decoder = StreamDecoder::new(100);
    decoder.push(&records[2][..HEADER_LEN]);
    assert_eq!(
        decoder.pop().unwrap_err(),
        ParseError::Oversized {
            len: records[2].len() - OVERHEAD,
            max: 100
        }
    );
    // A partial header is no error, just not yet a record.
    let mut decoder = StreamDecoder::new(100);
    decoder.push(&records[0][..HEADER_LEN - 1]);
    assert_eq!(decoder.pop().map(|r| r.is_some()), Ok(false));
}

proptest! {
    #[test]
    fn stream_decoder_in_random_chunks(chunks in prop::collection::vec(1usize..700, 1..200)) {
        let (mut a, _) = linked(1472);
        let (records, stream) = stream_records(&mut a, 12);
        let mut decoder = StreamDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut sizes = chunks.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            decoder.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(record) = decoder.pop().unwrap() {
                got.push(record.as_bytes().to_vec());
            }
            prop_assert!(decoder.buffered() < 2 * (DEFAULT_MAX_FRAME_LEN + OVERHEAD) + 700);
        }
        prop_assert_eq!(got, records);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let (_, mut b) = linked(1472);
        for t in 0..=6u8 {
            let _ = Message::parse(MessageType::from(t), &bytes);
        }
        let _ = HelloPayload::parse(&bytes);
        let unchecked = Datagram::new_unchecked(&bytes[..]);
        let _ = unchecked.check_header();
        let _ = Header::parse(&unchecked);
        let mut copy = bytes.clone();
        if let Ok(datagram) = Datagram::new_checked(&mut copy[..]) {
            let _ = open_hello(&b.local, datagram.as_shared());
            let _ = b.rx.open(datagram, Duration::ZERO);
        }
        let mut decoder = StreamDecoder::new(MAX_PAYLOAD_LEN);
        decoder.push(&bytes);
        while let Ok(Some(record)) = decoder.pop() {
            let _ = b.rx.open(record, Duration::ZERO);
        }
    }

    #[test]
    fn mutated_datagrams_never_pass(
        len in 14usize..1600,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let (mut a, mut b) = linked(1472);
        let mut datagrams = a.frame(&eth_frame(len, 3));
        let original = datagrams[0].clone();
        let target = &mut datagrams[0];
        for (at, flip) in &edits {
            let i = at.index(target.len());
            target[i] ^= flip;
        }
        let result = b.open(target, Duration::ZERO);
        // Edits may cancel out; a datagram that differs must fail.
        if *target != original {
            prop_assert!(result.is_err());
        } else {
            prop_assert!(result.is_ok());
        }
    }
}

//! Benchmarks of the link protocol: the candidate MACs over a header and a frame, and
//! AES-128-GCM encrypting the frame (the measurement behind the choice, see `vnetd::wire`),
//! and sealing and opening frames through a link as the data path does.
//!
//! `cargo bench -p vnetd --bench wire -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vnetd::model::Name;
use vnetd::wire::{
    udp_max_datagram, Datagram, LinkKey, LinkRx, LinkTx, Local, OverlayKey, ReassemblyConfig,
    Received, SessionId, DEFAULT_HOPS, HEADER_LEN,
};

/// Frame sizes: the smallest and the largest untagged Ethernet frames (less the FCS).
const SIZES: [usize; 2] = [64, 1514];

fn macs(c: &mut Criterion) {
    let key = [7u8; 32];
    let key16: [u8; 16] = [7u8; 16];
    for frame in SIZES {
        let data = vec![0xa5u8; HEADER_LEN + frame];
        let mut g = c.benchmark_group(format!("mac/{frame}"));
        g.throughput(Throughput::Bytes(frame as u64));
        g.bench_function("aes128-gcm encrypting (ring, chosen)", |b| {
            let overlay = OverlayKey::from_bytes(key);
            let name: Name = "a".parse().unwrap();
            let s = SessionId::new(1).unwrap();
            let link = LinkKey::derive(&overlay, (&name, s), (&name, Some(s)));
            let mut payload = data[HEADER_LEN..].to_vec();
            let mut seq = 0;
            b.iter(|| {
                seq += 1;
                link.seal(seq, black_box(&data[..HEADER_LEN]), &mut payload)
            })
        });
        for (name, algorithm) in [
            (
                "aes128-gmac (ring, additional data only)",
                &ring::aead::AES_128_GCM,
            ),
            (
                "chacha20-poly1305 (ring, additional data only)",
                &ring::aead::CHACHA20_POLY1305,
            ),
        ] {
            g.bench_function(name, |b| {
                use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
                let raw = &key[..algorithm.key_len()];
                let aead = LessSafeKey::new(UnboundKey::new(algorithm, raw).unwrap());
                let mut n = 0u64;
                b.iter(|| {
                    n += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&n.to_be_bytes());
                    aead.seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(black_box(&data)),
                        &mut [],
                    )
                    .unwrap()
                })
            });
        }
        g.bench_function("hmac-sha256", |b| {
            use hmac::Mac;
            let mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
            b.iter(|| {
                let mut m = mac.clone();
                m.update(black_box(&data));
                m.finalize().into_bytes()
            })
        });
        g.bench_function("blake3-keyed", |b| {
            b.iter(|| {
                let hash = blake3::keyed_hash(&key, black_box(&data));
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&hash.as_bytes()[..16]);
                tag
            })
        });
        g.bench_function("siphash128-2-4", |b| {
            b.iter(|| {
                siphasher::sip128::SipHasher24::new_with_key(&key16)
                    .hash(black_box(&data))
                    .as_bytes()
            })
        });
        g.bench_function("aes128-gmac", |b| {
            use aes_gcm::{AeadInOut, KeyInit};
            let aead = aes_gcm::Aes128Gcm::new(&key16.into());
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&n.to_be_bytes());
                let mut empty = [0u8; 0];
                aead.encrypt_inout_detached(
                    &nonce.into(),
                    black_box(&data),
                    (&mut empty[..]).into(),
                )
                .unwrap()
            })
        });
        g.finish();
    }
}

/// Two link ends that exchanged hellos, with datagrams of at most `max_datagram` bytes.
fn linked(max_datagram: usize) -> (LinkTx, LinkRx) {
    let overlay = OverlayKey::from_bytes([9; 32]);
    let a = Local {
        overlay: overlay.clone(),
        name: "host1".parse().unwrap(),
        session: SessionId::new(11).unwrap(),
    };
    let b = Local {
        overlay,
        name: "proxy".parse().unwrap(),
        session: SessionId::new(22).unwrap(),
    };
    let mut tx = LinkTx::new(&a, &b.name, max_datagram).unwrap();
    let mut rx = LinkRx::new(&b, &a.name, ReassemblyConfig::default());
    let mut buf = [0u8; 256];
    let n = tx.hello(&mut buf).unwrap();
    let hello = vnetd::wire::open_hello(&b, Datagram::new_checked(&buf[..n]).unwrap()).unwrap();
    rx.accept_hello(&hello).unwrap();
    tx.set_peer_session(b.session);
    (tx, rx)
}

fn link(c: &mut Criterion) {
    // An underlay of MTU 1500 over IPv4: a 1514-byte frame goes as two fragments.
    let max_datagram = udp_max_datagram(1500, false);
    for size in SIZES {
        let frame = vec![0x5au8; size];
        let mut g = c.benchmark_group(format!("link/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("seal", |b| {
            let (mut tx, _) = linked(max_datagram);
            let mut out = vec![0u8; tx.sealed_len(size).unwrap()];
            b.iter(|| {
                tx.seal_frame(black_box(&frame), false, DEFAULT_HOPS, &mut out)
                    .unwrap()
            })
        });
        g.bench_function("open", |b| {
            let (mut tx, mut rx) = linked(max_datagram);
            let mut out = vec![0u8; tx.sealed_len(size).unwrap()];
            // `_ref`: the datagrams are dropped outside the measurement.
            b.iter_batched_ref(
                || {
                    let sealed = tx
                        .seal_frame(&frame, false, DEFAULT_HOPS, &mut out)
                        .unwrap();
                    sealed
                        .datagrams(&out)
                        .map(<[u8]>::to_vec)
                        .collect::<Vec<_>>()
                },
                |datagrams| {
                    let mut delivered = 0;
                    for d in datagrams.iter_mut() {
                        let datagram = Datagram::new_checked(&mut d[..]).unwrap();
                        if let Received::Frame { frame, .. } =
                            rx.open(datagram, Duration::ZERO).unwrap()
                        {
                            delivered += frame.len();
                        }
                    }
                    assert_eq!(delivered, size);
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, macs, link);
criterion_main!(benches);

//! Wren's parser and estimator (`wren-passive`): the bytes as a captured packet under every
//! link type, and as a stream of records (truncated, reordered, duplicated, clock-skewed as
//! the fuzzer likes) fed to the estimator. Property: no panic; every number a report gives
//! is finite, and every interval holds its value.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use wren_passive::{
    parse_packet, Direction, Estimator, LinkType, Measure, MsgType, Params, Record,
};

fn check(m: &Measure) {
    if let Some(e) = m.known() {
        assert!(e.value.is_finite() && e.low.is_finite() && e.high.is_finite(), "{e:?}");
        assert!(e.low <= e.value && e.value <= e.high, "{e:?}");
        assert!(e.age_s.is_finite() && e.age_s >= 0.0, "{e:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Raw] {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        for orig in [len, len.saturating_add(3000), 0] {
            if let Ok(p) = parse_packet(link, data, orig, 0, |ip| ip.is_loopback()) {
                assert_eq!(p.records().count(), usize::from(p.count));
            }
        }
    }
    // Records: 16 bytes each. Two hosts; times around a base, spread by the fuzzer.
    let hosts: [SocketAddr; 2] = ["10.0.0.1:5400".parse().unwrap(), "10.0.0.2:5400".parse().unwrap()];
    let base: i64 = 1_700_000_000_000_000_000;
    let records: Vec<Record> = data
        .chunks_exact(16)
        .map(|c| {
            let dt = i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])) * 1000;
            let forward = c[4] & 1 == 0;
            let (src, dst) = if forward { (hosts[0], hosts[1]) } else { (hosts[1], hosts[0]) };
            Record {
                t_ns: base + dt,
                dir: if c[4] & 2 == 0 { Direction::Tx } else { Direction::Rx },
                src,
                dst,
                len: u32::from(u16::from_be_bytes([c[5], c[6]])),
                msg: MsgType::from_octet(c[7] % 7).unwrap_or(MsgType::Frame),
                session: u64::from(c[8] % 3),
                seq: u64::from(u16::from_be_bytes([c[9], c[10]])),
                batch: u16::from(c[11]),
            }
        })
        .collect();
    let mut e = Estimator::new(Params::default()).unwrap();
    let now = base + 5_000_000_000;
    for part in records.chunks(64) {
        e.ingest(now, part.iter().copied());
        let report = e.report(now);
        for p in &report.paths {
            check(&p.available_bps);
            check(&p.throughput_bps);
            check(&p.rtt_s);
            assert!(p.drift.is_finite());
        }
    }
});

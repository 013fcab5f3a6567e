//! The estimator against the synthetic bottleneck model (`wren_passive::synth`): available
//! bandwidth within ±15 % of the truth after 5 s of bursty traffic, for capacities of 1, 5
//! and 10 Mbit/s, 1 and 30 ms of delay, 0 and 50 % cross traffic (five seeds each), with the
//! truth inside the interval — but for 1 Mbit/s with 50 % cross traffic, where only the
//! interval is checked (after 10 s): its Poisson cross traffic is 41 packets a second, the
//! 100 ms queue overflows under the faster trains, whose busy periods are then left out, and
//! too little remains for ±15 %. Also the round-trip time, and `Unknown` with the right
//! reason where traffic does not allow a number.

use wren_passive::synth::{generate, hosts, Scenario};
use wren_passive::{Estimator, Measure, Params, Path, PathEstimate, Record, Unknown};

fn run(s: &Scenario, records: Vec<Record>) -> (PathEstimate, Option<PathEstimate>) {
    let mut e = Estimator::new(Params::default()).unwrap();
    // The sender's clock is the caller's; ingest as a capture would, a second at a time.
    let end = s.start_ns + ns(s.duration_s + 0.5);
    let mut sorted = records;
    sorted.sort_by_key(|r| r.t_ns);
    let mut now = s.start_ns;
    let mut i = 0;
    while now < end {
        now += 1_000_000_000;
        let j = sorted.partition_point(|r| r.t_ns <= now + 2_000_000_000);
        e.ingest(now, sorted[i..j].iter().copied());
        i = j;
    }
    let report = e.report(end);
    let (a, b) = hosts();
    let get = |p: Path| report.paths.iter().find(|x| x.path == p).cloned();
    (
        get(Path { src: a, dst: b }).expect("the forward path"),
        get(Path { src: b, dst: a }),
    )
}

fn ns(secs: f64) -> i64 {
    // Seconds of a test run: far inside i64's range of nanoseconds.
    #[allow(clippy::cast_possible_truncation)]
    let n = (secs * 1e9) as i64;
    n
}

fn rel_err(estimate: &Measure, truth: f64) -> Option<f64> {
    estimate.known().map(|e| (e.value - truth) / truth)
}

#[test]
fn available_bandwidth_within_15_percent() {
    let mut worst: f64 = 0.0;
    let mut failures = Vec::new();
    let mut rows = 0;
    for capacity in [1e6, 5e6, 10e6] {
        for delay in [0.001, 0.030] {
            for cross in [0.0, 0.5] {
                for seed in 1..=5 {
                    let s = Scenario {
                        seed,
                        duration_s: if capacity < 2e6 && cross > 0.0 {
                            10.0
                        } else {
                            5.0
                        },
                        ..Scenario::new(capacity, delay, cross)
                    };
                    let (fwd, _) = run(&s, generate(&s));
                    let truth = s.available_bps();
                    let err = rel_err(&fwd.available_bps, truth);
                    rows += 1;
                    let e = fwd.available_bps.known();
                    println!(
                        "C={:>4.0e} d={:>2.0}ms x={:.1} seed={} truth={:>8.0} est={:>9} [{:>9}, {:>9}] err={:>7} trains={:?}",
                        capacity,
                        delay * 1e3,
                        cross,
                        seed,
                        truth,
                        e.map_or("-".into(), |e| format!("{:.0}", e.value)),
                        e.map_or("-".into(), |e| format!("{:.0}", e.low)),
                        e.map_or("-".into(), |e| format!("{:.0}", e.high)),
                        err.map_or(format!("{:?}", fwd.available_bps), |x| format!("{:+.1}%", x * 100.0)),
                        fwd.trains,
                    );
                    // The interval holds the truth (within the model's 1 ns rounding).
                    let covered =
                        e.is_some_and(|e| e.low * 0.999 <= truth && truth <= e.high * 1.001);
                    // 1 Mbit/s with 50 % cross traffic: the queue (100 ms, 8 cross packets)
                    // overflows under the faster trains, whose busy periods are then left
                    // out, and too little remains for ±15 %: only the interval is checked.
                    let hard = capacity < 2e6 && cross > 0.0;
                    match err {
                        Some(x) if (x.abs() <= 0.15 || hard) && covered => {
                            if !hard {
                                worst = worst.max(x.abs());
                            }
                        }
                        _ => failures.push((capacity, delay, cross, seed, err)),
                    }
                    // The round trip: propagation and serialisation, within 5 %.
                    let rtt = fwd.rtt_s.known().expect("an RTT");
                    assert!(
                        (rtt.value - s.min_rtt_s()).abs() / s.min_rtt_s() < 0.05,
                        "{rtt:?} vs {}",
                        s.min_rtt_s()
                    );
                }
            }
        }
    }
    println!(
        "worst {:.1}% over {} cases, failures {:?}",
        worst * 100.0,
        rows,
        failures
    );
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn too_little_traffic_is_unknown_with_its_reason() {
    let (a, b) = hosts();
    let ab = Path { src: a, dst: b };
    // Nothing at all on a watched path.
    let mut e = Estimator::new(Params::default()).unwrap();
    e.watch(ab);
    let r = e.report(1_000_000_000_000);
    assert_eq!(r.paths.len(), 1);
    assert_eq!(
        r.paths[0].available_bps,
        Measure::Unknown {
            why: Unknown::NoTraffic
        }
    );
    assert_eq!(
        r.paths[0].rtt_s,
        Measure::Unknown {
            why: Unknown::NoRttSamples
        }
    );
    assert_eq!(
        r.paths[0].throughput_bps,
        Measure::Unknown {
            why: Unknown::NoTraffic
        }
    );

    let base = Scenario::new(5e6, 0.001, 0.0);
    // The sender's records only (the receiver's capture is missing).
    let only_tx: Vec<Record> = generate(&base)
        .into_iter()
        .filter(|r| r.dir == wren_passive::Direction::Tx && r.src == a)
        .collect();
    let (fwd, _) = run(&base, only_tx);
    assert!(
        matches!(
            fwd.available_bps,
            Measure::Unknown {
                why: Unknown::OneEndOnly { received: 0, .. }
            }
        ),
        "{:?}",
        fwd.available_bps
    );
    // But the throughput is known (as sent).
    assert!(fwd.throughput_bps.known().is_some());

    // Half a second of traffic: two or three trains.
    let short = Scenario {
        duration_s: 0.4,
        ..base.clone()
    };
    let (fwd, _) = run(&short, generate(&short));
    assert!(
        matches!(
            fwd.available_bps,
            Measure::Unknown {
                why: Unknown::TooFewTrains { .. }
            }
        ),
        "{:?}",
        fwd.available_bps
    );

    // Trains that are all slower than the path: a lower bound only.
    let slow = Scenario {
        rate_range: (0.1, 0.5),
        ..base.clone()
    };
    let (fwd, _) = run(&slow, generate(&slow));
    match fwd.available_bps {
        Measure::Unknown {
            why: Unknown::AllTrainsFlat { at_least_bps },
        } => {
            assert!(
                at_least_bps <= slow.available_bps() && at_least_bps > 0.3 * slow.available_bps()
            );
        }
        other => panic!("{other:?}"),
    }

    // Single datagrams far apart (a keepalive's worth of traffic): no trains.
    let sparse = Scenario {
        train_packets: (1, 1),
        idle_s: (0.2, 0.3),
        ..base.clone()
    };
    let (fwd, _) = run(&sparse, generate(&sparse));
    assert!(
        matches!(
            fwd.available_bps,
            Measure::Unknown {
                why: Unknown::TooFewTrains { trains: 0, .. }
            }
        ),
        "{:?}",
        fwd.available_bps
    );
}

/// Shuffled, duplicated, truncated (half the records gone at random) and clock-skewed
/// (offset 1.9 s, drift 500 ppm) records: the estimate stays within 15 %.
#[test]
fn bad_records_do_not_poison_the_estimate() {
    let s = Scenario {
        offset_ns: 1_900_000_000,
        drift: 5e-4,
        ..Scenario::new(5e6, 0.030, 0.5)
    };
    let clean = run(&s, generate(&s)).0;
    let mut records = generate(&s);
    let mut rng = wren_passive::synth::Rng::new(99);
    // Duplicate a third, drop a tenth of the rest, and shuffle.
    let dups: Vec<Record> = records
        .iter()
        .filter(|_| rng.unit() < 0.3)
        .copied()
        .collect();
    records.extend(dups);
    records.retain(|_| rng.unit() > 0.1);
    for i in (1..records.len()).rev() {
        let j = usize::try_from(rng.next_u64() % u64::try_from(i + 1).unwrap()).unwrap();
        records.swap(i, j);
    }
    // And garbage: records in the far future and past, absurd delays.
    let mut junk = records[0];
    for (k, t) in [(0, i64::MAX), (1, i64::MIN), (2, 0), (3, s.start_ns + 1)].into_iter() {
        junk.t_ns = t;
        junk.seq = 1_000_000 + k;
        records.push(junk);
    }
    let (fwd, _) = run(&s, records);
    let truth = s.available_bps();
    let est = fwd.available_bps.known().expect("known").value;
    println!(
        "clean {:?}\nbad {:?}",
        clean.available_bps, fwd.available_bps
    );
    assert!((est - truth).abs() / truth < 0.15, "{est} vs {truth}");
    assert!(fwd.records.duplicates > 0);
    assert!((fwd.drift - 5e-4).abs() < 1e-4, "drift {}", fwd.drift);
    let rtt = fwd.rtt_s.known().unwrap().value;
    assert!((rtt - s.min_rtt_s()).abs() / s.min_rtt_s() < 0.05, "{rtt}");
}

/// Keepalives alone give the round trip when only one end captures.
#[test]
fn keepalives_give_the_rtt_from_one_end() {
    let s = Scenario::new(5e6, 0.030, 0.0);
    let (a, _) = hosts();
    // A's capture only: what A sent and what it received.
    let mine: Vec<Record> = generate(&s)
        .into_iter()
        .filter(|r| (r.dir == wren_passive::Direction::Tx) == (r.src == a))
        .collect();
    let (fwd, _) = run(&s, mine);
    let rtt = fwd.rtt_s.known().expect("rtt");
    assert_eq!(rtt.method, wren_passive::Method::Keepalives);
    assert!((rtt.value - 0.060).abs() < 0.001, "{rtt:?}");
}

#[test]
fn reports_serialise() {
    let s = Scenario::new(5e6, 0.001, 0.0);
    let (fwd, _) = run(&s, generate(&s));
    let json = serde_json::to_string(&fwd).unwrap();
    assert!(json.contains("\"status\":\"known\""), "{json}");
    let back: PathEstimate = serde_json::from_str(&json).unwrap();
    assert_eq!(back.path, fwd.path);
    assert_eq!(back.trains, fwd.trains);
    let (x, y) = (
        back.available_bps.known().unwrap(),
        fwd.available_bps.known().unwrap(),
    );
    assert!((x.value - y.value).abs() <= 1e-6 * y.value && x.method == y.method);
    let u = serde_json::to_string(&Measure::Unknown {
        why: Unknown::TooFewTrains {
            trains: 1,
            needed: 5,
        },
    })
    .unwrap();
    assert_eq!(
        u,
        r#"{"status":"unknown","reason":"too_few_trains","trains":1,"needed":5}"#
    );
}

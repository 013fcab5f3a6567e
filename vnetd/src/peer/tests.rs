//! One link end driven by hand through timelines on a simulated clock, and properties over
//! arbitrary input sequences. The two-end simulation through real datagrams is in `sim.rs`.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::forward::Role;
use crate::model::{LinkKind, Name};
use crate::wire::{HelloOutcome, SessionId};

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn session(id: u64) -> SessionId {
    SessionId::new(id).unwrap()
}

/// A hello outcome from peer session `id`.
fn hello(id: u64, reply_wanted: bool) -> HelloOutcome {
    HelloOutcome {
        session: session(id),
        new_session: false,
        reply_wanted,
    }
}

fn config(kind: LinkKind, initiative: Initiative) -> PeerConfig {
    PeerConfig::new(name("peer"), kind, initiative).with_seed(42)
}

fn peer(kind: LinkKind, initiative: Initiative) -> Peer {
    Peer::new(config(kind, initiative), Duration::ZERO).unwrap()
}

/// Everything the peer has to send and to say at `now`.
fn drain(p: &mut Peer, now: Duration) -> (Vec<Transmit>, Vec<Event>) {
    let mut transmits = Vec::new();
    while let Some(t) = p.poll_transmit(now) {
        transmits.push(t);
    }
    let mut events = Vec::new();
    while let Some(e) = p.poll_event() {
        events.push(e);
    }
    (transmits, events)
}

/// What a link end sent and said, each with its time.
type Timeline = (Vec<(Duration, Transmit)>, Vec<(Duration, Event)>);

/// Runs the peer's timers from `from` to `to` with nothing arriving.
fn idle(p: &mut Peer, from: Duration, to: Duration) -> Timeline {
    let (mut transmits, mut events) = (Vec::new(), Vec::new());
    let mut now = from;
    while let Some(at) = p.poll_timeout() {
        if at > to {
            break;
        }
        assert!(at >= now, "deadline {at:?} before {now:?}");
        now = at;
        p.handle_timeout(now);
        let (t, e) = drain(p, now);
        transmits.extend(t.into_iter().map(|t| (now, t)));
        events.extend(e.into_iter().map(|e| (now, e)));
    }
    (transmits, events)
}

fn keepalive_at(transmits: &[Transmit]) -> Option<u64> {
    transmits.iter().find_map(|t| match t {
        Transmit::Keepalive { sent_at } => Some(*sent_at),
        _ => None,
    })
}

/// An active UDP end brought up at 20 ms with a 10 ms round trip, peer session 7.
fn up_active() -> Peer {
    let mut p = peer(LinkKind::Udp, Initiative::Active);
    let (t, _) = drain(&mut p, ms(0));
    assert_eq!(t, [Transmit::Hello]);
    p.handle_hello(ms(10), &hello(7, false));
    let (t, e) = drain(&mut p, ms(10));
    let sent_at = keepalive_at(&t).unwrap();
    assert!(e.is_empty(), "a hello alone is no proof");
    assert_eq!(p.handle_echo(ms(20), sent_at), Some(ms(10)));
    let (_, e) = drain(&mut p, ms(20));
    assert_eq!(e, [Event::Up { rtt: Some(ms(10)) }]);
    p
}

#[test]
fn configs_are_checked() {
    let good = config(LinkKind::Udp, Initiative::Active);
    assert_eq!(good.validate(), Ok(()));
    let mut c = good.clone();
    c.keepalive_interval = Duration::ZERO;
    assert!(matches!(
        Peer::new(c, Duration::ZERO),
        Err(ConfigError::TooShort { .. })
    ));
    let mut c = good.clone();
    c.dead_after = c.keepalive_interval;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::DeadBeforeKeepalive { .. })
    ));
    let mut c = good.clone();
    c.backoff_max = ms(10);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::BackoffMaxBelowInitial { .. })
    ));
    let mut c = good;
    c.backoff_jitter_percent = 100;
    assert_eq!(c.validate(), Err(ConfigError::Jitter(100)));
    assert!(c.validate().unwrap_err().to_string().contains("100 %"));
}

#[test]
fn initiative_follows_the_star_and_names() {
    let (h1, h2, px) = (name("host1"), name("host2"), name("proxy"));
    let host = Role::Host { proxy: px.clone() };
    for kind in [LinkKind::Udp, LinkKind::Tcp] {
        assert_eq!(
            Initiative::for_link(&host, &h1, &px, kind),
            Initiative::Active
        );
        assert_eq!(
            Initiative::for_link(&Role::Proxy, &px, &h1, kind),
            Initiative::Passive
        );
    }
    assert_eq!(
        Initiative::for_link(&host, &h2, &h1, LinkKind::Udp),
        Initiative::Active
    );
    assert_eq!(
        Initiative::for_link(&host, &h1, &h2, LinkKind::Tcp),
        Initiative::Active
    );
    assert_eq!(
        Initiative::for_link(&host, &h2, &h1, LinkKind::Tcp),
        Initiative::Passive
    );
}

#[test]
fn active_end_comes_up_on_the_echo_of_its_keepalive() {
    let p = up_active();
    assert_eq!(p.state(), State::Up);
    assert_eq!(p.peer_session(), Some(session(7)));
    assert_eq!(p.rtt().min(), Some(ms(10)));
    let s = p.stats();
    assert_eq!((s.hellos_sent, s.hellos_received), (1, 1));
    assert_eq!((s.keepalives_sent, s.echoes_received, s.ups), (1, 1, 1));
}

#[test]
fn passive_end_answers_and_comes_up_on_a_keepalive() {
    let mut p = peer(LinkKind::Udp, Initiative::Passive);
    assert_eq!(p.state(), State::Down);
    assert_eq!(p.poll_timeout(), None);
    assert_eq!(drain(&mut p, ms(0)), (vec![], vec![]));
    p.handle_hello(ms(5), &hello(7, true));
    assert_eq!(drain(&mut p, ms(5)), (vec![Transmit::Hello], vec![]));
    assert_eq!(p.poll_timeout(), None, "a passive end does not retry");
    p.handle_keepalive(ms(15), 1234, 48);
    let (t, e) = drain(&mut p, ms(15));
    assert_eq!(e, [Event::Up { rtt: None }]);
    assert_eq!(
        t[0],
        Transmit::Echo {
            sent_at: 1234,
            probe_len: 48
        }
    );
    assert!(
        keepalive_at(&t).is_some(),
        "going up probes for an RTT sample"
    );
}

#[test]
fn hellos_are_answered_without_loops() {
    let mut p = peer(LinkKind::Udp, Initiative::Passive);
    // A hello that asks is answered by a hello; one that does not, by a keepalive.
    p.handle_hello(ms(1), &hello(7, true));
    assert_eq!(drain(&mut p, ms(1)).0, [Transmit::Hello]);
    p.handle_hello(ms(2), &hello(7, false));
    let (t, e) = drain(&mut p, ms(2));
    assert!(matches!(t[..], [Transmit::Keepalive { .. }]), "{t:?}");
    assert!(e.is_empty());
}

#[test]
fn silence_takes_the_link_down_within_the_bound() {
    let mut p = up_active();
    let last_rx = ms(20);
    assert_eq!(p.dead_timeout(), DEAD_AFTER);
    let (t, e) = idle(&mut p, last_rx, ms(5000));
    let probes: Vec<Duration> = t
        .iter()
        .filter(|(_, t)| matches!(t, Transmit::Keepalive { .. }))
        .map(|(at, _)| *at)
        .collect();
    // Six probes: K after the last arrival, then every K/2.
    assert_eq!(probes, [270, 395, 520, 645, 770, 895].map(ms));
    let (down_at, down) = e[0];
    assert_eq!(
        down,
        Event::Down {
            reason: DownReason::Timeout
        }
    );
    assert_eq!(down_at, last_rx + DEAD_AFTER);
    assert_eq!(p.state(), State::Connecting);
    assert_eq!(p.stats().last_down, Some(DownReason::Timeout));
    // Re-hello at once.
    assert!(t.contains(&(down_at, Transmit::Hello)));
    assert_eq!(e.len(), 1);
}

/// Steps the clock by 1 ms from `from` to `to`; every keepalive the end sends is echoed
/// `rtt` later, and nothing else arrives. Returns how many keepalives it sent; fails on any
/// event.
fn echoed_probes(p: &mut Peer, from: Duration, to: Duration, rtt: Duration) -> usize {
    let mut now = from;
    let mut in_flight: Vec<(Duration, u64)> = Vec::new();
    let mut probes = 0;
    while now < to {
        now += ms(1);
        in_flight.retain(|&(at, sent_at)| {
            if at <= now {
                p.handle_echo(now, sent_at);
                false
            } else {
                true
            }
        });
        if p.poll_timeout().is_some_and(|at| at <= now) {
            p.handle_timeout(now);
        }
        let (t, e) = drain(p, now);
        assert!(e.is_empty(), "{e:?} at {now:?}");
        if let Some(sent_at) = keepalive_at(&t) {
            probes += 1;
            in_flight.push((now + rtt, sent_at));
        }
    }
    probes
}

#[test]
fn the_bound_grows_for_long_round_trips() {
    let mut p = up_active();
    // Echoes 600 ms late keep coming; the first one within D, the rest within the grown bound.
    echoed_probes(&mut p, ms(20), ms(20_000), ms(600));
    let rto = p.rtt().rto().unwrap();
    assert!(p.rtt().smoothed().unwrap() > ms(500));
    assert_eq!(p.dead_timeout(), KEEPALIVE_INTERVAL + rto * 2);
    assert!(p.dead_timeout() > DEAD_AFTER);
    assert!(p.is_up(), "echoes every 600 ms keep a 600 ms link up");
}

#[test]
fn the_link_recovers_after_a_cut() {
    let mut p = up_active();
    let (_, e) = idle(&mut p, ms(20), ms(1020));
    assert_eq!(e.len(), 1);
    // The peer's attempt gets through: answered with a keepalive, whose echo brings it up.
    p.handle_hello(ms(3000), &hello(7, false));
    let (t, e) = drain(&mut p, ms(3000));
    assert!(e.is_empty());
    let sent_at = keepalive_at(&t).unwrap();
    p.handle_echo(ms(3010), sent_at);
    let (_, e) = drain(&mut p, ms(3010));
    assert!(matches!(e[..], [Event::Up { rtt: Some(_) }]));
    let s = p.stats();
    assert_eq!((s.ups, s.downs, s.peer_restarts), (2, 1, 0));
}

#[test]
fn a_keepalive_from_the_peer_also_recovers() {
    let mut p = up_active();
    idle(&mut p, ms(20), ms(1500));
    assert_eq!(p.state(), State::Connecting);
    p.handle_keepalive(ms(1600), 99, 48);
    let (t, e) = drain(&mut p, ms(1600));
    assert!(matches!(e[..], [Event::Up { .. }]));
    assert_eq!(
        t[0],
        Transmit::Echo {
            sent_at: 99,
            probe_len: 48
        }
    );
}

#[test]
fn data_alone_does_not_bring_a_link_up() {
    let mut p = up_active();
    idle(&mut p, ms(20), ms(1500));
    p.handle_datagram(ms(1600));
    assert_eq!(drain(&mut p, ms(1600)).1, []);
    assert_eq!(p.state(), State::Connecting);
    assert_eq!(p.last_received(), Some(ms(1600)));
}

#[test]
fn a_restarted_peer_is_back_one_round_trip_after_its_hello() {
    let mut p = up_active();
    // The peer restarted: new session, and it does not know ours.
    let restart = HelloOutcome {
        session: session(8),
        new_session: true,
        reply_wanted: true,
    };
    p.handle_hello(ms(500), &restart);
    let (t, e) = drain(&mut p, ms(500));
    assert_eq!(
        e,
        [Event::Down {
            reason: DownReason::PeerRestarted
        }]
    );
    assert_eq!(t, [Transmit::Hello]);
    assert_eq!(p.peer_session(), Some(session(8)));
    assert_eq!(p.rtt().min(), None, "the path may have changed");
    // Our hello reached it; its keepalive answer arrives one round trip later.
    p.handle_keepalive(ms(510), 5, 48);
    let (_, e) = drain(&mut p, ms(510));
    assert_eq!(e, [Event::Up { rtt: Some(ms(10)) }]);
    assert_eq!(p.stats().peer_restarts, 1);
}

#[test]
fn a_passive_end_sees_a_restart_too() {
    let mut p = peer(LinkKind::Udp, Initiative::Passive);
    p.handle_hello(ms(0), &hello(7, true));
    p.handle_keepalive(ms(10), 1, 48);
    drain(&mut p, ms(10));
    assert!(p.is_up());
    p.handle_hello(ms(100), &hello(9, true));
    let (t, e) = drain(&mut p, ms(100));
    assert_eq!(
        e,
        [Event::Down {
            reason: DownReason::PeerRestarted
        }]
    );
    assert_eq!(t, [Transmit::Hello]);
    assert_eq!(p.state(), State::Down);
}

#[test]
fn backoff_doubles_to_its_cap_with_jitter_that_only_shortens() {
    let b = Backoff::new(ms(100), ms(1600), 25, 1);
    let nominal: Vec<Duration> = (0..8).map(|n| b.nominal(n)).collect();
    assert_eq!(
        nominal,
        [100, 200, 400, 800, 1600, 1600, 1600, 1600].map(ms)
    );
    assert_eq!(b.nominal(u32::MAX), ms(1600));
    let mut a = Backoff::new(ms(100), ms(1600), 25, 1);
    let mut c = Backoff::new(ms(100), ms(1600), 25, 1);
    for n in 0..100 {
        let d = a.delay(n);
        assert_eq!(d, c.delay(n), "same seed, same delays");
        assert!(d <= b.nominal(n) && d >= b.nominal(n) * 3 / 4, "{n}: {d:?}");
    }
}

#[test]
fn attempts_follow_the_backoff_and_never_stop() {
    let mut p = peer(LinkKind::Udp, Initiative::Active);
    let (t, _) = drain(&mut p, ms(0));
    assert_eq!(t, [Transmit::Hello]);
    let (t, e) = idle(&mut p, ms(0), ms(60_000));
    assert!(e.is_empty());
    let mut times = vec![ms(0)];
    times.extend(t.iter().map(|(at, t)| {
        assert_eq!(*t, Transmit::Hello);
        *at
    }));
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let b = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX, 0, 0);
    for (n, gap) in (0u32..).zip(&gaps) {
        let nominal = b.nominal(n);
        assert!(*gap <= nominal && *gap >= nominal * 3 / 4, "{n}: {gap:?}");
        assert!(*gap <= BACKOFF_MAX);
    }
    // 60 s at 1.2 to 1.6 s apart after the first 1.5 s.
    assert!((38..=52).contains(&gaps.len()), "{}", gaps.len());
    assert_eq!(p.stats().hellos_sent, u64::try_from(times.len()).unwrap());
}

#[test]
fn keepalives_are_suppressed_while_frames_arrive() {
    let mut p = up_active();
    drain(&mut p, ms(20));
    let mut sent = Vec::new();
    let mut now = ms(20);
    // Frames arrive every 10 ms for 6 s.
    while now < ms(6020) {
        now += ms(10);
        p.handle_datagram(now);
        if p.poll_timeout().is_some_and(|at| at <= now) {
            p.handle_timeout(now);
        }
        let (t, e) = drain(&mut p, now);
        assert!(e.is_empty());
        sent.extend(
            t.into_iter()
                .filter(|t| matches!(t, Transmit::Keepalive { .. }))
                .map(|_| now),
        );
    }
    // Only the RTT refresh, 5 s after the last sample (at 20 ms); never answered here.
    assert_eq!(sent, [ms(5020)]);
}

#[test]
fn an_end_that_only_sends_probes_and_hears_echoes() {
    // The sending end hears nothing but the echoes of its probes: it probes every K and
    // stays up. (The receiving end is the previous test: frames keep it quiet.)
    let mut p = up_active();
    let probes = echoed_probes(&mut p, ms(20), ms(10_020), ms(30));
    // One probe per K plus the echo's delay: about 10 s / 280 ms.
    assert!((34..=37).contains(&probes), "{probes}");
    assert!(p.is_up());
    assert_eq!(p.rtt().latest(), Some(ms(30)));
}

#[test]
fn rtt_follows_rfc_6298() {
    let mut r = RttEstimator::new();
    assert_eq!((r.smoothed(), r.variation(), r.rto()), (None, None, None));
    r.update(ms(100));
    assert_eq!(r.smoothed(), Some(ms(100)));
    assert_eq!(r.variation(), Some(ms(50)));
    assert_eq!(r.rto(), Some(ms(300)));
    r.update(ms(200));
    // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5.
    assert_eq!(r.variation(), Some(Duration::from_micros(62_500)));
    assert_eq!(r.smoothed(), Some(Duration::from_micros(112_500)));
    assert_eq!(r.rto(), Some(Duration::from_micros(362_500)));
    assert_eq!(
        (r.min(), r.latest(), r.samples()),
        (Some(ms(100)), Some(ms(200)), 2)
    );
    r.update(ms(50));
    assert_eq!(r.min(), Some(ms(50)));
    r.reset_min();
    assert_eq!(r.min(), None);
    r.update(ms(80));
    assert_eq!(r.min(), Some(ms(80)));
    // A steady path converges, and the granularity floors the variation's share.
    let mut r = RttEstimator::new();
    for _ in 0..200 {
        r.update(Duration::from_micros(200));
    }
    assert_eq!(r.smoothed(), Some(Duration::from_micros(200)));
    assert_eq!(r.rto(), Some(Duration::from_micros(200) + RTT_GRANULARITY));
    // Huge samples saturate instead of overflowing.
    r.update(Duration::MAX);
    r.update(Duration::MAX);
    assert!(r.rto().is_some());
}

#[test]
fn echoes_of_unknown_keepalives_give_no_sample() {
    let mut p = up_active();
    assert_eq!(p.handle_echo(ms(30), 777), None);
    assert_eq!(p.stats().echoes_unmatched, 1);
    assert_eq!(p.rtt().samples(), 1);
    assert_eq!(p.last_received(), Some(ms(30)));
}

#[test]
fn a_hello_while_up_is_settled_by_a_probe() {
    // A hello from the current session while up: the peer may not hear us. A probe goes
    // out at once; its echo clears the suspicion.
    let mut p = up_active();
    p.handle_hello(ms(100), &hello(7, false));
    let (t, e) = drain(&mut p, ms(100));
    assert!(e.is_empty());
    let sent_at = keepalive_at(&t).unwrap();
    p.handle_echo(ms(110), sent_at);
    let (_, e) = idle(&mut p, ms(110), ms(1000));
    assert!(e.is_empty(), "{e:?}");
    assert!(p.is_up());
}

#[test]
fn a_peer_that_does_not_hear_us_takes_the_link_down() {
    let mut p = up_active();
    // The peer keeps sending hellos (it hears nothing from us); our probes die.
    let mut events = Vec::new();
    for at in [100, 200, 300, 400] {
        p.handle_hello(ms(at), &hello(7, false));
        events.extend(drain(&mut p, ms(at)).1.into_iter().map(|e| (ms(at), e)));
        let (_, e) = idle(&mut p, ms(at), ms(at + 99));
        events.extend(e);
    }
    let down = Event::Down {
        reason: DownReason::NotHeard,
    };
    assert_eq!(events, [(ms(100) + p.suspect_timeout(), down)]);
    assert_eq!(p.suspect_timeout(), KEEPALIVE_INTERVAL);
}

#[test]
fn a_suspicion_is_not_cleared_by_an_older_echo() {
    let mut p = up_active();
    drain(&mut p, ms(20));
    p.handle_timeout(ms(270));
    let (t, _) = drain(&mut p, ms(270));
    let old = keepalive_at(&t).unwrap();
    p.handle_hello(ms(280), &hello(7, false));
    drain(&mut p, ms(280));
    p.handle_echo(ms(290), old);
    let (_, e) = idle(&mut p, ms(290), ms(600));
    assert_eq!(
        e,
        [(
            ms(530),
            Event::Down {
                reason: DownReason::NotHeard
            }
        )]
    );
}

#[test]
fn hello_requests_are_rate_limited() {
    let mut p = peer(LinkKind::Udp, Initiative::Passive);
    p.hello_requested(ms(0));
    p.hello_requested(ms(50));
    assert_eq!(drain(&mut p, ms(50)).0, [Transmit::Hello]);
    p.hello_requested(ms(99));
    assert_eq!(drain(&mut p, ms(99)).0, []);
    p.hello_requested(ms(100));
    assert_eq!(drain(&mut p, ms(100)).0, [Transmit::Hello]);
    assert_eq!(p.stats().hello_requests, 4);
    assert_eq!(p.state(), State::Down);
}

#[test]
fn udp_transport_errors_are_only_counted() {
    let mut p = up_active();
    p.transport_failed(ms(30));
    p.transport_connected(ms(30));
    assert!(p.is_up());
    assert_eq!(drain(&mut p, ms(30)).1, []);
    assert_eq!(p.stats().transport_failures, 1);
}

#[test]
fn tcp_active_end_dials_with_backoff() {
    let mut p = peer(LinkKind::Tcp, Initiative::Active);
    assert_eq!(drain(&mut p, ms(0)), (vec![], vec![Event::Reconnect]));
    // Refused: the next dial comes after the backoff.
    p.transport_failed(ms(1));
    let (t, e) = idle(&mut p, ms(1), ms(500));
    assert!(t.is_empty(), "nothing goes out without a connection");
    let dials: Vec<Duration> = e.iter().map(|(at, _)| *at).collect();
    assert_eq!(dials.len(), 1);
    assert!(dials[0] > ms(75) && dials[0] <= ms(101));
    // That dial hangs: after D it counts as failed, and the next one comes 200 ms later.
    let (_, e) = idle(&mut p, dials[0], dials[0] + ms(1200));
    let timed_out = dials[0] + DEAD_AFTER;
    assert_eq!(e.len(), 1);
    assert!(e[0].0 > timed_out + ms(150) && e[0].0 <= timed_out + ms(200));
    // Connected: hello; the answer and the echo bring it up.
    let now = e[0].0 + ms(5);
    p.transport_connected(now);
    assert_eq!(drain(&mut p, now).0, [Transmit::Hello]);
    p.handle_hello(now + ms(5), &hello(7, false));
    let sent_at = keepalive_at(&drain(&mut p, now + ms(5)).0).unwrap();
    p.handle_echo(now + ms(10), sent_at);
    assert!(matches!(
        drain(&mut p, now + ms(10)).1[..],
        [Event::Up { .. }]
    ));
    assert_eq!(p.stats().reconnects, 3);
    // Reset: down, and an immediate redial.
    p.transport_failed(now + ms(20));
    assert_eq!(
        drain(&mut p, now + ms(20)).1,
        [
            Event::Down {
                reason: DownReason::TransportFailed
            },
            Event::Reconnect
        ]
    );
}

#[test]
fn tcp_connection_without_an_answer_is_redialed() {
    let mut p = peer(LinkKind::Tcp, Initiative::Active);
    drain(&mut p, ms(0));
    p.transport_connected(ms(10));
    assert_eq!(drain(&mut p, ms(10)).0, [Transmit::Hello]);
    let (t, e) = idle(&mut p, ms(10), ms(1300));
    // One hello per connection; after D of silence it counts as a failed attempt, and the
    // redial comes after the first backoff delay.
    assert!(t.is_empty());
    let redial: Vec<Duration> = e.iter().map(|(at, _)| *at).collect();
    assert_eq!(redial.len(), 1);
    assert!(redial[0] > ms(1010) + ms(75) && redial[0] <= ms(1010) + ms(100));
}

#[test]
fn tcp_silence_redials_at_once() {
    let mut p = peer(LinkKind::Tcp, Initiative::Active);
    drain(&mut p, ms(0));
    p.transport_connected(ms(10));
    p.handle_keepalive(ms(10), 1, 48);
    p.handle_hello(ms(10), &hello(7, false));
    p.handle_keepalive(ms(11), 2, 48);
    drain(&mut p, ms(11));
    assert!(p.is_up());
    let (_, e) = idle(&mut p, ms(11), ms(1100));
    assert_eq!(
        e,
        [
            (
                ms(1011),
                Event::Down {
                    reason: DownReason::Timeout
                }
            ),
            (ms(1011), Event::Reconnect)
        ]
    );
}

#[test]
fn tcp_passive_end_waits_to_be_dialed() {
    let mut p = peer(LinkKind::Tcp, Initiative::Passive);
    assert_eq!(drain(&mut p, ms(0)), (vec![], vec![]));
    p.transport_connected(ms(5));
    p.handle_hello(ms(6), &hello(7, true));
    assert_eq!(drain(&mut p, ms(6)).0, [Transmit::Hello]);
    p.handle_keepalive(ms(8), 1, 48);
    assert!(matches!(drain(&mut p, ms(8)).1[..], [Event::Up { .. }]));
    p.transport_failed(ms(20));
    assert_eq!(
        drain(&mut p, ms(20)),
        (
            vec![],
            vec![Event::Down {
                reason: DownReason::TransportFailed
            }]
        )
    );
    assert_eq!(p.poll_timeout(), None);
    p.hello_requested(ms(30));
    assert_eq!(
        drain(&mut p, ms(30)).0,
        [],
        "no connection, nothing to send on"
    );
}

#[test]
fn time_going_back_is_taken_as_standing_still() {
    let mut p = up_active();
    p.handle_timeout(ms(400));
    drain(&mut p, ms(400));
    p.handle_datagram(ms(100));
    assert_eq!(p.last_received(), Some(ms(400)));
    assert!(p.poll_timeout().unwrap() >= ms(400));
}

/// One input to a link end, for the properties.
#[derive(Debug, Clone)]
enum Op {
    /// The clock moves on by this many milliseconds.
    Wait(u16),
    /// The clock jumps back (a misbehaving caller).
    Back(u16),
    /// Run due timers.
    Timeout,
    /// A hello from session `1 + session`.
    Hello {
        session: u8,
        reply_wanted: bool,
    },
    Keepalive(u64),
    /// The echo of a keepalive sent earlier (by index among those sent) or of anything.
    Echo(prop::sample::Index, bool, u64),
    Datagram,
    HelloRequested,
    Connected,
    Failed,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..2000).prop_map(Op::Wait),
        1 => (0u16..500).prop_map(Op::Back),
        4 => Just(Op::Timeout),
        2 => (0u8..4, any::<bool>())
            .prop_map(|(session, reply_wanted)| Op::Hello { session, reply_wanted }),
        2 => any::<u64>().prop_map(Op::Keepalive),
        2 => (any::<prop::sample::Index>(), any::<bool>(), any::<u64>())
            .prop_map(|(i, known, v)| Op::Echo(i, known, v)),
        2 => Just(Op::Datagram),
        1 => Just(Op::HelloRequested),
        1 => Just(Op::Connected),
        1 => Just(Op::Failed),
    ]
}

/// Applies `ops` to a fresh link end and checks the invariants after every step.
fn check_invariants(
    kind: LinkKind,
    initiative: Initiative,
    seed: u64,
    ops: &[Op],
) -> Result<Peer, TestCaseError> {
    let mut p = Peer::new(config(kind, initiative).with_seed(seed), ms(1)).unwrap();
    let mut now = ms(1);
    let mut latest = now;
    let mut sent: Vec<u64> = Vec::new();
    let mut up = false;
    let mut ups = 0u64;
    for op in ops {
        match op {
            Op::Wait(n) => now += ms(u64::from(*n)),
            Op::Back(n) => now = now.saturating_sub(ms(u64::from(*n))),
            Op::Timeout => p.handle_timeout(now),
            Op::Hello {
                session: s,
                reply_wanted,
            } => p.handle_hello(
                now,
                &HelloOutcome {
                    session: session(1 + u64::from(*s)),
                    new_session: false,
                    reply_wanted: *reply_wanted,
                },
            ),
            Op::Keepalive(v) => p.handle_keepalive(now, *v, 48),
            Op::Echo(i, known, v) => {
                let sent_at = if *known && !sent.is_empty() {
                    sent[i.index(sent.len())]
                } else {
                    *v
                };
                p.handle_echo(now, sent_at);
            }
            Op::Datagram => p.handle_datagram(now),
            Op::HelloRequested => p.hello_requested(now),
            Op::Connected => p.transport_connected(now),
            Op::Failed => p.transport_failed(now),
        }
        latest = latest.max(now);
        if matches!(op, Op::Timeout) {
            // Progress: every timer due now has run.
            prop_assert!(p.poll_timeout().is_none_or(|at| at > latest));
        }
        while let Some(t) = p.poll_transmit(now) {
            if let Transmit::Keepalive { sent_at } = t {
                prop_assert!(p.peer_session().is_some());
                sent.push(sent_at);
            }
        }
        while let Some(e) = p.poll_event() {
            match e {
                Event::Up { .. } => {
                    prop_assert!(!up, "up twice");
                    up = true;
                    ups += 1;
                }
                Event::Down { .. } => {
                    prop_assert!(up, "down while down");
                    up = false;
                }
                Event::Reconnect => {
                    prop_assert_eq!(kind, LinkKind::Tcp);
                    prop_assert_eq!(initiative, Initiative::Active);
                }
            }
        }
        prop_assert_eq!(p.is_up(), up);
        prop_assert_eq!(p.stats().ups, ups);
        prop_assert!(p.stats().ups - p.stats().downs == u64::from(up));
        let expected = match (up, initiative) {
            (true, _) => State::Up,
            (false, Initiative::Active) => State::Connecting,
            (false, Initiative::Passive) => State::Down,
        };
        prop_assert_eq!(p.state(), expected);
        // Deadlines are never in the past, and an end with work to do always has one.
        let timeout = p.poll_timeout();
        prop_assert!(timeout.is_none_or(|at| at >= latest));
        if up || initiative == Initiative::Active {
            prop_assert!(timeout.is_some());
        }
        if up {
            prop_assert!(p.peer_session().is_some());
            let last_rx = p.last_received().unwrap();
            prop_assert!(timeout.unwrap() <= (last_rx + p.dead_timeout()).max(latest));
        }
    }
    Ok(p)
}

fn kinds() -> impl Strategy<Value = (LinkKind, Initiative)> {
    (
        prop::sample::select(vec![LinkKind::Udp, LinkKind::Tcp]),
        prop::sample::select(vec![Initiative::Active, Initiative::Passive]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn no_input_sequence_breaks_the_invariants(
        (kind, initiative) in kinds(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        check_invariants(kind, initiative, seed, &ops)?;
    }

    #[test]
    fn silence_always_ends_an_up_link_within_the_bound(
        (kind, initiative) in kinds(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let mut p = check_invariants(kind, initiative, seed, &ops)?;
        let Some(start) = p.poll_timeout() else { return Ok(()) };
        let bound = p.last_received().map(|rx| (rx + p.dead_timeout()).max(start));
        let mut was_up = p.is_up();
        let mut now = start;
        // Serve the timers with nothing arriving for a minute past the bound (which is more
        // than a minute away when the ops fed RTT samples of seconds: D' = K + 2 RTO).
        let horizon = bound.map_or(start, |b| b.max(start)) + Duration::from_secs(60);
        for _ in 0..10_000 {
            match p.poll_timeout() {
                Some(at) if at <= horizon => {
                    prop_assert!(at >= now);
                    now = at;
                    p.handle_timeout(now);
                    while p.poll_transmit(now).is_some() {}
                    while p.poll_event().is_some() {}
                    if was_up && !p.is_up() {
                        prop_assert!(now <= bound.unwrap());
                        was_up = false;
                    }
                }
                _ => break,
            }
        }
        prop_assert!(!p.is_up());
    }

    #[test]
    fn backoff_delays_stay_within_their_bounds(
        seed in any::<u64>(),
        initial_ms in 1u64..1000,
        factor in 1u32..64,
        jitter in 0u8..100,
        attempts in prop::collection::vec(any::<u32>(), 1..50),
    ) {
        let initial = ms(initial_ms);
        let max = initial * factor;
        let mut b = Backoff::new(initial, max, jitter, seed);
        for n in attempts {
            let nominal = b.nominal(n);
            let d = b.delay(n);
            prop_assert!(nominal >= initial && nominal <= max);
            prop_assert!(d <= nominal && d > Duration::ZERO);
            prop_assert!(d.as_nanos() * 100 >= nominal.as_nanos() * u128::from(100 - jitter));
        }
    }
}

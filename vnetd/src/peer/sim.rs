//! Two daemons' ends of one link — each a [`Peer`] with the real [`LinkTx`] / [`LinkRx`] of
//! the wire module — joined by a simulated network with a virtual clock, delay, loss, cuts,
//! kills and restarts, and a crude TCP connection model. Checks the budgets end to
//! end: a cut link falls back within 2 s, a killed and restarted Proxy is found again within
//! 2 s.

use std::time::Duration;

use super::*;
use crate::model::{LinkKind, Name};
use crate::wire::{
    Datagram, LinkRx, LinkTx, Local, OverlayKey, ReassemblyConfig, Received, RxError, SessionId,
};

const KEY: [u8; 32] = [0x33; 32];
const MAX_DATAGRAM: usize = 1472;
const BUDGET: Duration = Duration::from_secs(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What an opened datagram asks of the peer machine.
enum Got {
    Hello(HelloOutcome),
    Keepalive(u64, u16),
    Echo(u64),
    Data,
    AskHello,
    Drop,
}

/// One daemon, as far as this link goes.
struct Node {
    name: Name,
    other: Name,
    kind: LinkKind,
    initiative: Initiative,
    session: u64,
    local: Local,
    tx: LinkTx,
    rx: LinkRx,
    peer: Peer,
    alive: bool,
    /// Bumped at each restart, so that stale dial outcomes are ignored.
    generation: u64,
    /// Whether this daemon's I/O layer can tell which link an unknown datagram belongs to
    /// (and so call `hello_requested`).
    asks_hellos: bool,
    /// Application frames sent every this often while the link is up.
    frame_every: Option<Duration>,
    next_frame: Duration,
    events: Vec<(Duration, Event)>,
    drops: u64,
}

impl Node {
    fn new(name: &str, other: &str, kind: LinkKind, initiative: Initiative, session: u64) -> Node {
        let name: Name = name.parse().unwrap();
        let other: Name = other.parse().unwrap();
        let local = Local {
            overlay: OverlayKey::from_bytes(KEY),
            name: name.clone(),
            session: SessionId::new(session).unwrap(),
        };
        let config = PeerConfig::new(other.clone(), kind, initiative).with_seed(session);
        Node {
            tx: LinkTx::new(&local, &other, MAX_DATAGRAM).unwrap(),
            rx: LinkRx::new(&local, &other, ReassemblyConfig::default()),
            peer: Peer::new(config, Duration::ZERO).unwrap(),
            local,
            name,
            other,
            kind,
            initiative,
            session,
            alive: true,
            generation: 0,
            asks_hellos: false,
            frame_every: None,
            next_frame: Duration::ZERO,
            events: Vec::new(),
            drops: 0,
        }
    }

    /// A new run of the daemon at `now`: a newer session, fresh link state.
    fn restart(&mut self, now: Duration) {
        self.session += 1_000_000;
        self.local.session = SessionId::new(self.session).unwrap();
        let config =
            PeerConfig::new(self.other.clone(), self.kind, self.initiative).with_seed(self.session);
        self.tx = LinkTx::new(&self.local, &self.other, MAX_DATAGRAM).unwrap();
        self.rx = LinkRx::new(&self.local, &self.other, ReassemblyConfig::default());
        self.peer = Peer::new(config, now).unwrap();
        self.alive = true;
        self.generation += 1;
    }

    fn seal(&mut self, transmit: Transmit) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let len = match transmit {
            Transmit::Hello => self.tx.hello(&mut buf),
            Transmit::Keepalive { sent_at } => self.tx.keepalive(sent_at, 0, &mut buf),
            Transmit::Echo { sent_at, probe_len } => {
                self.tx.keepalive_echo(sent_at, probe_len, &mut buf)
            }
        }
        .expect("the peer only asks for what the link can seal");
        buf[..len].to_vec()
    }

    fn frame(&mut self) -> Vec<u8> {
        let mut frame = [0u8; 64];
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let mut out = [0u8; 256];
        let sealed = self.tx.seal_frame(&frame, false, 1, &mut out).unwrap();
        out[..sealed.len].to_vec()
    }

    /// A datagram arrives: open it as the daemon would and tell the peer machine.
    fn receive(&mut self, now: Duration, bytes: &[u8]) {
        let mut bytes = bytes.to_vec();
        let Ok(datagram) = Datagram::new_checked(&mut bytes[..]) else {
            self.drops += 1;
            return;
        };
        let got = match self.rx.open(datagram, now) {
            Ok(Received::Hello(outcome)) => Got::Hello(outcome),
            Ok(Received::Keepalive { sent_at, probe_len }) => Got::Keepalive(sent_at, probe_len),
            Ok(Received::KeepaliveEcho { sent_at, .. }) => Got::Echo(sent_at),
            Ok(Received::Frame { .. } | Received::Fragment | Received::Traffic(_)) => Got::Data,
            Err(RxError::UnknownSession | RxError::WrongReceiver) => Got::AskHello,
            Err(_) => Got::Drop,
        };
        match got {
            Got::Hello(outcome) => {
                self.tx.set_peer_session(outcome.session);
                self.peer.handle_hello(now, &outcome);
            }
            Got::Keepalive(sent_at, probe_len) => {
                self.peer.handle_keepalive(now, sent_at, probe_len)
            }
            Got::Echo(sent_at) => {
                self.peer.handle_echo(now, sent_at);
            }
            Got::Data => self.peer.handle_datagram(now),
            Got::AskHello if self.asks_hellos => self.peer.hello_requested(now),
            Got::AskHello | Got::Drop => self.drops += 1,
        }
    }

    fn ups(&self) -> impl Iterator<Item = Duration> + '_ {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Up { .. }))
            .map(|(at, _)| *at)
    }

    fn downs(&self) -> impl Iterator<Item = (Duration, DownReason)> + '_ {
        self.events.iter().filter_map(|(at, e)| match e {
            Event::Down { reason } => Some((*at, *reason)),
            _ => None,
        })
    }

    fn first_up_after(&self, t: Duration) -> Option<Duration> {
        self.ups().find(|&at| at >= t)
    }

    fn first_down_after(&self, t: Duration) -> Option<(Duration, DownReason)> {
        self.downs().find(|&(at, _)| at >= t)
    }
}

/// Something in flight.
enum Pending {
    /// A datagram for node `to`, sent on TCP connection `conn` (0 over UDP).
    Datagram {
        to: usize,
        conn: u64,
        bytes: Vec<u8>,
    },
    /// The outcome of node `dialer`'s dial (of its run `generation`).
    Dial { dialer: usize, generation: u64 },
    /// Node `to` learns that TCP connection `conn` is gone.
    Closed { to: usize, conn: u64 },
}

/// Two nodes and the network between them.
struct Net {
    now: Duration,
    nodes: [Node; 2],
    queue: Vec<(Duration, u64, Pending)>,
    order: u64,
    one_way: Duration,
    loss_percent: u64,
    /// `cut[i]`: everything node `i` sends is lost.
    cut: [bool; 2],
    rng: u64,
    /// The current TCP connection's id, and whether it is up.
    conn: u64,
    connected: bool,
}

impl Net {
    fn new(a: Node, b: Node, one_way: Duration) -> Net {
        let mut net = Net {
            now: Duration::ZERO,
            nodes: [a, b],
            queue: Vec::new(),
            order: 0,
            one_way,
            loss_percent: 0,
            cut: [false; 2],
            rng: 0x5eed,
            conn: 0,
            connected: false,
        };
        net.flush();
        net
    }

    fn tcp(&self) -> bool {
        self.nodes[0].kind == LinkKind::Tcp
    }

    fn random_percent(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 100
    }

    fn schedule(&mut self, at: Duration, pending: Pending) {
        self.order += 1;
        self.queue.push((at, self.order, pending));
    }

    fn send(&mut self, from: usize, bytes: Vec<u8>) {
        if self.cut[from] || (self.tcp() && !self.connected) {
            return;
        }
        if !self.tcp() && self.random_percent() < self.loss_percent {
            return;
        }
        let conn = if self.tcp() { self.conn } else { 0 };
        let at = self.now + self.one_way;
        self.schedule(
            at,
            Pending::Datagram {
                to: 1 - from,
                conn,
                bytes,
            },
        );
    }

    /// Node `i` dials: its old connection, if any, closes (the other end hears of it unless
    /// the path is cut), and the outcome is known a round trip later.
    fn dial(&mut self, i: usize) {
        if self.connected {
            self.connected = false;
            if !self.cut[i] {
                let (at, conn) = (self.now + self.one_way, self.conn);
                self.schedule(at, Pending::Closed { to: 1 - i, conn });
            }
        }
        let (at, generation) = (self.now + self.one_way * 2, self.nodes[i].generation);
        self.schedule(
            at,
            Pending::Dial {
                dialer: i,
                generation,
            },
        );
    }

    /// Drains both nodes' transmits and events.
    fn flush(&mut self) {
        let now = self.now;
        for i in 0..2 {
            if !self.nodes[i].alive {
                continue;
            }
            while let Some(t) = self.nodes[i].peer.poll_transmit(now) {
                let bytes = self.nodes[i].seal(t);
                self.send(i, bytes);
            }
            while let Some(e) = self.nodes[i].peer.poll_event() {
                self.nodes[i].events.push((now, e));
                if e == Event::Reconnect {
                    self.dial(i);
                }
            }
        }
    }

    fn next_due(&self) -> Option<Duration> {
        let mut due = self.queue.iter().map(|(at, ..)| *at).min();
        for node in self.nodes.iter().filter(|n| n.alive) {
            let timers = [
                node.peer.poll_timeout(),
                node.frame_every
                    .filter(|_| node.peer.is_up())
                    .map(|_| node.next_frame),
            ];
            for at in timers.into_iter().flatten() {
                due = Some(due.map_or(at, |d| d.min(at)));
            }
        }
        due.map(|d| d.max(self.now))
    }

    fn run_until(&mut self, end: Duration) {
        while let Some(at) = self.next_due().filter(|&at| at <= end) {
            self.now = at;
            self.step();
        }
        self.now = end;
    }

    /// Serves one thing due now: the oldest arrival, else every due timer.
    fn step(&mut self) {
        let now = self.now;
        let due = self
            .queue
            .iter()
            .enumerate()
            .filter(|(_, (at, ..))| *at <= now)
            .min_by_key(|(_, (at, order, _))| (*at, *order))
            .map(|(index, _)| index);
        if let Some(index) = due {
            let (_, _, pending) = self.queue.swap_remove(index);
            self.arrive(pending);
        } else {
            for node in self.nodes.iter_mut().filter(|n| n.alive) {
                if node.peer.poll_timeout().is_some_and(|at| at <= now) {
                    node.peer.handle_timeout(now);
                }
            }
            for i in 0..2 {
                let node = &mut self.nodes[i];
                let send_frame = node.alive
                    && node.peer.is_up()
                    && node.frame_every.is_some_and(|_| node.next_frame <= now);
                if send_frame {
                    node.next_frame = now + node.frame_every.unwrap_or_default();
                    let bytes = node.frame();
                    self.send(i, bytes);
                }
            }
        }
        self.flush();
    }

    fn arrive(&mut self, pending: Pending) {
        let now = self.now;
        match pending {
            Pending::Datagram { to, conn, bytes } => {
                let live = !self.tcp() || (self.connected && conn == self.conn);
                if self.nodes[to].alive && live {
                    self.nodes[to].receive(now, &bytes);
                }
            }
            Pending::Dial { dialer, generation } => {
                let other = 1 - dialer;
                if self.nodes[dialer].generation != generation || !self.nodes[dialer].alive {
                    return;
                }
                if self.cut[dialer] || self.cut[other] {
                    // SYNs lost: the dial hangs until the peer machine's own timeout.
                    return;
                }
                if self.nodes[other].alive {
                    self.conn += 1;
                    self.connected = true;
                    self.nodes[dialer].peer.transport_connected(now);
                    self.nodes[other].peer.transport_connected(now);
                } else {
                    // The machine is up but no daemon listens: refused.
                    self.nodes[dialer].peer.transport_failed(now);
                }
            }
            Pending::Closed { to, conn } => {
                if self.nodes[to].alive && conn == self.conn {
                    self.nodes[to].peer.transport_failed(now);
                }
            }
        }
    }

    /// Node `i` dies (kill -9): its TCP connection, if any, is reset by its kernel.
    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        if self.tcp() && self.connected && !self.cut[i] {
            self.connected = false;
            let (at, conn) = (self.now + self.one_way, self.conn);
            self.schedule(at, Pending::Closed { to: 1 - i, conn });
        }
    }

    fn restart(&mut self, i: usize) {
        let now = self.now;
        self.nodes[i].restart(now);
        self.flush();
    }

    fn both_up(&self) -> bool {
        self.nodes.iter().all(|n| n.peer.is_up())
    }
}

/// A host (active) and the Proxy (passive): a star link.
fn star(kind: LinkKind, one_way: Duration) -> Net {
    let host = Node::new("host1", "proxy", kind, Initiative::Active, 0x1000);
    let proxy = Node::new("proxy", "host1", kind, Initiative::Passive, 0x2000);
    Net::new(host, proxy, one_way)
}

/// Two hosts, both active over UDP: a fast path.
fn fast_path(one_way: Duration) -> Net {
    let a = Node::new("host1", "host2", LinkKind::Udp, Initiative::Active, 0x1000);
    let b = Node::new("host2", "host1", LinkKind::Udp, Initiative::Active, 0x2000);
    Net::new(a, b, one_way)
}

#[test]
fn a_star_link_comes_up_in_two_round_trips() {
    for kind in [LinkKind::Udp, LinkKind::Tcp] {
        let mut net = star(kind, ms(5));
        net.run_until(ms(100));
        assert!(net.both_up(), "{kind:?}");
        let host_up = net.nodes[0].first_up_after(ms(0)).unwrap();
        let proxy_up = net.nodes[1].first_up_after(ms(0)).unwrap();
        // UDP: hello, hello, keepalive (Proxy up), echo (host up). TCP adds the connect.
        let connect = if kind == LinkKind::Tcp { ms(10) } else { ms(0) };
        assert_eq!(proxy_up, connect + ms(15), "{kind:?}");
        assert_eq!(host_up, connect + ms(20), "{kind:?}");
        assert_eq!(net.nodes[0].peer.rtt().smoothed(), Some(ms(10)));
    }
}

#[test]
fn a_fast_path_comes_up_when_both_ends_start_together() {
    let mut net = fast_path(ms(5));
    net.run_until(ms(100));
    assert!(net.both_up());
    for node in &net.nodes {
        assert!(node.first_up_after(ms(0)).unwrap() <= ms(20));
        assert_eq!(node.peer.stats().downs, 0);
    }
}

#[test]
fn loss_does_not_take_a_busy_link_down() {
    // 5 % loss each way for ten minutes, host1 sending frames one way only.
    let mut net = fast_path(ms(10));
    net.loss_percent = 5;
    net.nodes[0].frame_every = Some(ms(20));
    net.run_until(secs(600));
    for node in &net.nodes {
        assert_eq!(
            node.peer.stats().downs,
            0,
            "{}: {:?}",
            node.name,
            node.events
        );
        assert!(node.peer.is_up());
    }
    let sender = net.nodes[0].peer.stats();
    let receiver = net.nodes[1].peer.stats();
    // The sender hears nothing but echoes, so it probes about every K + RTT.
    assert!(sender.keepalives_sent > 1500, "{sender:?}");
    // The receiver hears frames all the time: only the RTT refresh, every 5 s.
    assert!(receiver.keepalives_sent < 150, "{receiver:?}");
    assert!(receiver.datagrams_received > 25_000, "{receiver:?}");
}

#[test]
fn a_cut_fast_path_falls_back_within_2_s_and_returns_when_healed() {
    let mut net = fast_path(ms(10));
    net.nodes[0].frame_every = Some(ms(10));
    net.nodes[1].frame_every = Some(ms(10));
    net.run_until(secs(10));
    assert!(net.both_up());
    let cut = net.now;
    net.cut = [true, true];
    net.run_until(secs(20));
    for node in &net.nodes {
        let (down, reason) = node.first_down_after(cut).unwrap();
        assert_eq!(reason, DownReason::Timeout);
        assert!(down - cut < BUDGET, "{}: {:?}", node.name, down - cut);
        // The documented bound: D' after the last datagram, sent before the cut.
        assert!(down - cut <= node.peer.dead_timeout() + net.one_way);
        assert!(!node.peer.is_up());
    }
    let heal = net.now;
    net.cut = [false, false];
    net.run_until(secs(30));
    for node in &net.nodes {
        let up = node.first_up_after(heal).unwrap();
        // An attempt within the 1.6 s cap, up a round trip or two later.
        assert!(up - heal < BUDGET, "{}: {:?}", node.name, up - heal);
        assert!(node.peer.is_up());
    }
}

#[test]
fn a_one_way_cut_takes_both_ends_down() {
    for direction in 0..2 {
        let mut net = fast_path(ms(10));
        net.nodes[0].frame_every = Some(ms(10));
        net.run_until(secs(10));
        let cut = net.now;
        net.cut[direction] = true;
        net.run_until(secs(20));
        for node in &net.nodes {
            let (down, _) = node.first_down_after(cut).unwrap();
            assert!(
                down - cut < BUDGET,
                "cut {direction}, {}: {:?}",
                node.name,
                down - cut
            );
            assert!(!node.peer.is_up(), "cut {direction}, {}", node.name);
        }
        // The end that hears the other learns it is not heard.
        let deaf = 1 - direction;
        let hearing = direction;
        assert_eq!(
            net.nodes[hearing].first_down_after(cut).unwrap().1,
            DownReason::NotHeard,
            "cut {direction}"
        );
        assert_eq!(
            net.nodes[deaf].first_down_after(cut).unwrap().1,
            DownReason::Timeout
        );
        net.cut[direction] = false;
        let heal = net.now;
        net.run_until(secs(25));
        assert!(net.both_up());
        assert!(net
            .nodes
            .iter()
            .all(|n| n.first_up_after(heal).unwrap() - heal < BUDGET));
    }
}

/// Kills the Proxy of a star at 10 s and restarts it `after` later; returns the host's
/// first up after the restart, measured from the restart.
fn proxy_restart(kind: LinkKind, after: Duration, proxy_asks_hellos: bool) -> (Net, Duration) {
    let mut net = star(kind, ms(10));
    net.nodes[0].frame_every = Some(ms(10));
    net.nodes[1].asks_hellos = proxy_asks_hellos;
    net.run_until(secs(10));
    assert!(net.both_up());
    let kill = net.now;
    net.kill(1);
    net.run_until(kill + after);
    net.restart(1);
    let restart = net.now;
    net.run_until(restart + secs(10));
    assert!(net.both_up(), "{kind:?} {after:?}");
    let up = net.nodes[0].first_up_after(restart).unwrap_or_else(|| {
        // Only when the host never noticed (it cannot: the Proxy lost its session).
        panic!("host never up again: {:?}", net.nodes[0].events)
    });
    let proxy_up = net.nodes[1].first_up_after(restart).unwrap();
    (net, up.max(proxy_up) - restart)
}

#[test]
fn a_restarted_proxy_is_found_within_2_s() {
    for kind in [LinkKind::Udp, LinkKind::Tcp] {
        for after in [ms(0), ms(50), ms(300), ms(900), ms(1500), ms(4000)] {
            for asks in [false, true] {
                let (net, took) = proxy_restart(kind, after, asks);
                let host = &net.nodes[0];
                assert!(
                    took < BUDGET,
                    "{kind:?}, restart after {after:?}, asks {asks}: {took:?}, {:?}",
                    host.events
                );
                // Measured from the kill too, when the Proxy is back quickly.
                if after <= ms(300) {
                    assert!(after + took < BUDGET, "{kind:?} {after:?} {asks}: {took:?}");
                }
                assert_eq!(host.peer.stats().downs, 1, "{:?}", host.events);
            }
        }
    }
}

#[test]
fn a_proxy_that_can_ask_for_hellos_is_found_at_once() {
    // Restarted 50 ms after the kill, before the host noticed anything: the host's next probe
    // (keyed for the old Proxy) makes the new Proxy say hello, and the host sees the restart.
    let (net, took) = proxy_restart(LinkKind::Udp, ms(50), true);
    assert!(took < ms(300), "{took:?}");
    assert_eq!(
        net.nodes[0].peer.stats().last_down,
        Some(DownReason::PeerRestarted)
    );
}

#[test]
fn a_restarted_host_is_back_at_once() {
    for kind in [LinkKind::Udp, LinkKind::Tcp] {
        let mut net = star(kind, ms(10));
        net.run_until(secs(10));
        assert!(net.both_up());
        net.kill(0);
        net.run_until(secs(10) + ms(100));
        net.restart(0);
        let restart = net.now;
        net.run_until(secs(20));
        assert!(net.both_up(), "{kind:?}");
        let proxy = &net.nodes[1];
        let up = proxy.first_up_after(restart).unwrap();
        // The host's hello reaches the Proxy in 10 ms: it sees the restart; the link is up
        // again once its keepalive answer arrives (plus the connect over TCP).
        assert!(up - restart <= ms(60), "{kind:?}: {:?}", up - restart);
        let expected = match kind {
            LinkKind::Udp => DownReason::PeerRestarted,
            // The reset of the old connection arrives first.
            LinkKind::Tcp => DownReason::TransportFailed,
        };
        assert_eq!(proxy.peer.stats().last_down, Some(expected), "{kind:?}");
        assert_eq!(proxy.peer.stats().downs, 1);
    }
}

#[test]
fn a_cut_tcp_link_redials_and_returns() {
    let mut net = star(LinkKind::Tcp, ms(10));
    net.nodes[0].frame_every = Some(ms(10));
    net.run_until(secs(10));
    let cut = net.now;
    net.cut = [true, true];
    net.run_until(secs(20));
    for node in &net.nodes {
        let (down, reason) = node.first_down_after(cut).unwrap();
        assert!(down - cut < BUDGET);
        assert_eq!(reason, DownReason::Timeout);
    }
    let heal = net.now;
    net.cut = [false, false];
    net.run_until(secs(30));
    assert!(net.both_up());
    // The next dial comes within the cap (or a dial timeout that was under way), then up.
    let up = net.nodes[0].first_up_after(heal).unwrap();
    assert!(up - heal < BUDGET + DEAD_AFTER, "{:?}", up - heal);
    assert!(net.nodes[0].peer.stats().reconnects > 3);
}

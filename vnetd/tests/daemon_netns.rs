//! End-to-end tests of the daemon: real `vnetd` processes, configured with the real `vnetctl`,
//! carrying guests' frames between network namespaces (root only, hence `#[ignore]`; the e2e
//! tier runs them with `cargo test -p vnetd --test daemon_netns -- --ignored`).
//!
//! Each test builds its own overlay: an *underlay* namespace where the Proxy `px` and the
//! hosts `h1`..`h3` run on 127.0.0.1 (ports 5400..5403), a namespace per guest whose `eth0` is
//! a TAP its host's daemon created, and a `user` namespace holding the Proxy's LAN port. A
//! guard kills the daemons and deletes the namespaces when the test ends, also when it fails.

mod common;
use common::{poll_readable, tcp_stream, Netns, Pump};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vnetd::control::{PortStats, Stats, Traffic};
use vnetd::io::tap::{LinkSettings, Tap};

const VNETD: &str = env!("CARGO_BIN_EXE_vnetd");
const VNETCTL: &str = env!("CARGO_BIN_EXE_vnetctl");
const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

fn guest_mac(i: usize) -> String {
    format!("02:56:4e:77:00:{i:02x}")
}

fn guest_ip(i: usize) -> String {
    format!("10.77.0.{i}")
}

const USER_IP: &str = "10.77.0.254";

fn port_of(daemon: &str) -> u16 {
    match daemon {
        "px" => 5400,
        h => 5400 + h[1..].parse::<u16>().expect("hN"),
    }
}

/// An overlay of a Proxy, three hosts with a guest each, and the user's LAN.
struct Overlay {
    dir: PathBuf,
    underlay: Netns,
    guests: Vec<Netns>,
    user: Netns,
    daemons: BTreeMap<&'static str, Child>,
    /// Arguments every daemon gets besides the fixture's own (e.g. `--no-offloads`).
    extra_args: Vec<String>,
}

impl Overlay {
    /// Starts every daemon, attaches every port and applies the star.
    fn new(tag: &str) -> Overlay {
        Overlay::with_args(tag, &[])
    }

    /// As [`Overlay::new`], every daemon started (and restarted) with `extra_args` too.
    fn with_args(tag: &str, extra_args: &[&str]) -> Overlay {
        let id = format!("vnd{}{tag}", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut key = [0u8; 32];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .expect("urandom");
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(dir.join("key"), hex).expect("key");
        std::fs::write(dir.join("hosts"), "127.0.0.1 px h1 h2 h3\n").expect("hosts");
        let mut overlay = Overlay {
            underlay: Netns::new(format!("{id}-ul")),
            guests: (1..=3).map(|i| Netns::new(format!("{id}-g{i}"))).collect(),
            user: Netns::new(format!("{id}-u")),
            dir,
            daemons: BTreeMap::new(),
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        };
        for daemon in ["px", "h1", "h2", "h3"] {
            overlay.start(daemon);
        }
        overlay.wait_serving(Duration::from_secs(5));
        for (i, host) in HOSTS.iter().enumerate() {
            let guest = &overlay.guests[i];
            let netns = guest.path.display().to_string();
            overlay.ctl_ok(&[
                "attach-port",
                &format!("{host}:{}", port_of(host)),
                &format!("vm{}", i + 1),
                "--tap",
                "eth0",
                "--netns",
                &netns,
                "--mac",
                &guest_mac(i + 1),
            ]);
            guest.run(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", guest_ip(i + 1)),
                "dev",
                "eth0",
            ]);
        }
        let netns = overlay.user.path.display().to_string();
        overlay.ctl_ok(&[
            "attach-port",
            "px:5400",
            "lan0",
            "--tap",
            "lan0",
            "--netns",
            &netns,
            "--lan",
        ]);
        overlay
            .user
            .run(&["ip", "addr", "add", &format!("{USER_IP}/24"), "dev", "lan0"]);
        std::fs::write(overlay.file("star.vnet"), topology(false)).expect("star");
        std::fs::write(overlay.file("mesh.vnet"), topology(true)).expect("mesh");
        overlay.ctl_ok(&["apply", "-q", &overlay.path("star.vnet"), "--proxy", "px"]);
        overlay.ctl_ok(&["wait-up", &overlay.path("star.vnet"), "--for", "5"]);
        overlay
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn path(&self, name: &str) -> String {
        self.file(name).display().to_string()
    }

    /// Starts daemon `name` (again) with its state directory.
    fn start(&mut self, name: &'static str) {
        let mut args = vec![
            VNETD.to_string(),
            "--name".into(),
            name.into(),
            "--key-file".into(),
            self.path("key"),
            "--listen".into(),
            format!("127.0.0.1:{}", port_of(name)),
            "--state-dir".into(),
            self.path(&format!("state-{name}")),
            "--metrics".into(),
        ];
        if name == "px" {
            args.extend(["127.0.0.1:9540".into(), "--role".into(), "proxy".into()]);
        } else {
            args.extend(["off".into(), "--role".into(), "host".into()]);
            args.extend(["--proxy".into(), "px".into()]);
        }
        args.extend(self.extra_args.iter().cloned());
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.file(&format!("{name}.log")))
            .expect("log");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = self
            .underlay
            .command(&args)
            .env("VNETD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vnetd");
        self.daemons.insert(name, child);
    }

    /// Kills daemon `name` with SIGKILL.
    fn kill9(&mut self, name: &str) {
        if let Some(mut child) = self.daemons.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every daemon answers `info`.
    fn wait_serving(&self, timeout: Duration) {
        let start = Instant::now();
        for daemon in self.daemons.keys() {
            loop {
                let out = self.ctl(&["info", &format!("{daemon}:{}", port_of(daemon))]);
                if out.status.success() {
                    break;
                }
                assert!(
                    start.elapsed() < timeout,
                    "{daemon} does not answer: {}\nlog:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.log(daemon)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn log(&self, daemon: &str) -> String {
        std::fs::read_to_string(self.file(&format!("{daemon}.log"))).unwrap_or_default()
    }

    /// `vnetctl` in the underlay with this overlay's key and hosts file.
    fn ctl(&self, args: &[&str]) -> Output {
        let (key, hosts) = (self.path("key"), self.path("hosts"));
        let mut all = vec![VNETCTL, "--key-file", &key, "--hosts", &hosts];
        all.extend_from_slice(args);
        self.underlay.output(&all)
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "vnetctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stats(&self, daemon: &str) -> Stats {
        let text = self.ctl_ok(&["stats", &format!("{daemon}:{}", port_of(daemon)), "--json"]);
        serde_json::from_str(&text).expect("stats JSON")
    }

    /// The counters of port `port` of `daemon`.
    fn port_stats(&self, daemon: &str, port: &str) -> PortStats {
        let stats = self.stats(daemon);
        let found = stats.ports.iter().find(|p| p.name.as_str() == port);
        found
            .cloned()
            .unwrap_or_else(|| panic!("{daemon} has no port {port}: {stats:?}"))
    }

    /// Every drop with `reason` counted anywhere (ports, links, forwarding) by any daemon,
    /// as `daemon where count` lines.
    fn drops_of(&self, reason: &str) -> Vec<String> {
        let mut found = Vec::new();
        for daemon in self.daemons.keys() {
            let stats = self.stats(daemon);
            let mut places = vec![("forwarding".to_owned(), &stats.drops)];
            for p in &stats.ports {
                places.push((format!("port {}", p.name.as_str()), &p.drops));
            }
            for l in &stats.links {
                let peer = l.info.as_ref().map_or("?", |i| i.peer.as_str());
                places.push((format!("link to {peer}"), &l.drops));
            }
            for (place, drops) in places {
                if let Some(n) = drops.get(reason).filter(|n| **n > 0) {
                    found.push(format!("{daemon} {place}: {n}"));
                }
            }
        }
        found
    }

    /// The prefix of this overlay's namespaces (`vndNNNNtag`).
    fn id(&self) -> &str {
        self.underlay.name.trim_end_matches("-ul")
    }

    /// Unicast data frames the Proxy relayed between links so far.
    fn relayed(&self) -> u64 {
        self.stats("px").relayed_unicast.frames
    }

    /// `ping` from guest `i` (from 1); its output, whatever its status.
    fn ping(&self, i: usize, to: &str, args: &[&str]) -> Output {
        let mut all = vec!["ping", "-n", "-q"];
        all.extend_from_slice(args);
        all.push(to);
        self.guests[i - 1].output(&all)
    }

    fn ping_ok(&self, i: usize, to: &str, args: &[&str]) {
        let out = self.ping(i, to, args);
        if !out.status.success() {
            // Every daemon's counters tell where the frames went.
            let stats: Vec<String> = self
                .daemons
                .keys()
                .map(|d| self.ctl_ok(&["stats", &format!("{d}:{}", port_of(d))]))
                .collect();
            panic!(
                "ping from vm{i} to {to} {args:?}: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                stats.join("\n")
            );
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.daemons) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The star (or, with `mesh`, the star plus a fast path between every two hosts, with rules
/// that send each host's traffic for another host's guest over it), in the language.
fn topology(mesh: bool) -> String {
    let mut t = String::from("BEGIN\n");
    for d in ["px", "h1", "h2", "h3"] {
        t += &format!("HOST root AT {d} {} eth0\n", port_of(d));
    }
    t += "ADD\n";
    for h in HOSTS {
        t += &format!("LINK UDP {h} {h} px\n");
    }
    for (i, h) in HOSTS.iter().enumerate() {
        let mac = guest_mac(i + 1);
        t += &format!("FORWARD INTERFACE {h} ANY {mac} vm{}\n", i + 1);
        t += &format!("FORWARD EDGE {h} ANY NONE {h} px\n");
        t += &format!("FORWARD EDGE px ANY {mac} px {h}\n");
    }
    t += "FORWARD INTERFACE px ANY NONE lan0\n";
    if mesh {
        for (i, a) in HOSTS.iter().enumerate() {
            for (j, b) in HOSTS.iter().enumerate() {
                if i < j {
                    t += &format!("LINK UDP {a} {a} {b}\n");
                }
                if i != j {
                    t += &format!("FORWARD EDGE {a} ANY {} {a} {b}\n", guest_mac(j + 1));
                }
            }
        }
    }
    t + "END\n"
}

/// Counts, for `listen`, the frames on `ifname` in `ns` that carry `marker` and were not
/// sent from this namespace (a packet socket sees both directions).
fn count_marked(
    ns: &Netns,
    ifname: &'static str,
    marker: [u8; 8],
    listen: Duration,
) -> std::thread::JoinHandle<usize> {
    ns.thread(move || {
        let sock = PacketSocket::open(ifname);
        let deadline = Instant::now() + listen;
        let mut n = 0;
        while Instant::now() < deadline {
            if let Some((frame, outgoing)) = sock.recv(Duration::from_millis(50)) {
                if !outgoing && frame.windows(8).any(|w| w == marker) {
                    n += 1;
                }
            }
        }
        n
    })
}

/// `ETH_P_ALL` in network order, as packet sockets take it.
fn eth_p_all() -> u16 {
    u16::try_from(libc::ETH_P_ALL).expect("ETH_P_ALL").to_be()
}

fn sll_len() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>()).expect("small")
}

/// An `AF_PACKET` socket bound to one interface of the calling thread's namespace.
struct PacketSocket {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    fn open(ifname: &str) -> PacketSocket {
        use std::os::fd::FromRawFd as _;
        let ifindex = i32::try_from(nix::net::if_::if_nametoindex(ifname).expect("ifindex"))
            .expect("ifindex fits");
        let proto = eth_p_all();
        // SAFETY: plain socket(2) call; the descriptor is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        assert!(
            raw >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let sock = PacketSocket { fd, ifindex };
        let addr = sock.addr();
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let rc = unsafe { libc::bind(raw, std::ptr::addr_of!(addr).cast(), sll_len()) };
        assert_eq!(
            rc,
            0,
            "bind packet socket: {}",
            std::io::Error::last_os_error()
        );
        sock
    }

    fn addr(&self) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = u16::try_from(libc::AF_PACKET).expect("AF_PACKET");
        addr.sll_protocol = eth_p_all();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr
    }

    /// One frame and whether this host sent it, or `None` after `wait`.
    fn recv(&self, wait: Duration) -> Option<(Vec<u8>, bool)> {
        use std::os::fd::AsRawFd as _;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(wait.as_millis()).unwrap_or(100);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: as above.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = sll_len();
        // SAFETY: buffer and address are valid for the sizes given.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                std::ptr::addr_of_mut!(from).cast(),
                &mut len,
            )
        };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some((buf, from.sll_pkttype == libc::PACKET_OUTGOING))
    }

    fn send(&self, frame: &[u8]) {
        use std::os::fd::AsRawFd as _;
        let addr = self.addr();
        // SAFETY: frame and address are valid for the sizes given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(addr).cast(),
                sll_len(),
            )
        };
        assert_eq!(
            usize::try_from(n).ok(),
            Some(frame.len()),
            "send: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn mac_bytes(text: &str) -> [u8; 6] {
    text.parse::<vnetd::model::Mac>().expect("mac").0
}

/// A frame from `src` to `dst` with a local-experimental EtherType, carrying `marker`.
fn marked_frame(dst: [u8; 6], src: [u8; 6], marker: [u8; 8], len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(len);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&0x88b5u16.to_be_bytes());
    frame.extend_from_slice(&marker);
    frame.resize(len.max(60), 0);
    frame
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn the_star_carries_full_frames_the_user_lan_and_broadcast_exactly_once() {
    let o = Overlay::new("s");
    // Full-size frames (1500-byte IP packets, DF set) between every two guests, through the
    // Proxy, over a 1500-byte underlay (loopback's MTU is 65536, but the daemons fragment at
    // 1500 regardless).
    for (from, to) in [(1, 2), (2, 3), (3, 1)] {
        o.ping_ok(
            from,
            &guest_ip(to),
            &["-c", "3", "-i", "0.1", "-W", "2", "-M", "do", "-s", "1472"],
        );
    }
    // The user reaches the guests and they reach the user.
    let out = o.user.output(&[
        "ping",
        "-n",
        "-q",
        "-c",
        "2",
        "-i",
        "0.1",
        "-W",
        "2",
        &guest_ip(2),
    ]);
    assert!(out.status.success(), "user -> vm2: {out:?}");
    o.ping_ok(3, USER_IP, &["-c", "2", "-i", "0.1", "-W", "2"]);
    // A TCP connection from the user to a guest.
    let listener = o.guests[1].thread(|| {
        let l = TcpListener::bind("10.77.0.2:7000").expect("listen in vm2");
        let (mut s, _) = l.accept().expect("accept");
        let mut got = String::new();
        s.read_to_string(&mut got).expect("read");
        got
    });
    std::thread::sleep(Duration::from_millis(100));
    o.user
        .thread(|| {
            let mut s = TcpStream::connect_timeout(
                &"10.77.0.2:7000".parse().unwrap(),
                Duration::from_secs(3),
            )
            .expect("user connects to vm2");
            s.write_all(b"hello from the user's LAN").expect("write");
        })
        .join()
        .unwrap();
    assert_eq!(listener.join().unwrap(), "hello from the user's LAN");
    // The route goes through the Proxy.
    let route = o.ctl_ok(&[
        "route",
        &o.path("star.vnet"),
        &guest_mac(1),
        &guest_mac(2),
        "--proxy",
        "px",
        "--live",
    ]);
    assert!(route.contains("h1 --udp--> px --udp--> h2"), "{route}");
    assert!(o.relayed() > 0, "the Proxy relayed nothing");

    // With the star, a full mesh of fast paths and the user's LAN all present, one broadcast
    // from vm1 reaches vm2, vm3 and the user exactly once, and never comes back to vm1.
    o.ctl_ok(&["apply", "-q", &o.path("mesh.vnet"), "--proxy", "px"]);
    o.ctl_ok(&["wait-up", &o.path("mesh.vnet"), "--for", "5"]);
    let marker = *b"vnbcast1";
    let listen = Duration::from_millis(1500);
    let counters = [
        count_marked(&o.guests[0], "eth0", marker, listen),
        count_marked(&o.guests[1], "eth0", marker, listen),
        count_marked(&o.guests[2], "eth0", marker, listen),
        count_marked(&o.user, "lan0", marker, listen),
    ];
    std::thread::sleep(Duration::from_millis(200));
    let src = mac_bytes(&guest_mac(1));
    o.guests[0]
        .thread(move || PacketSocket::open("eth0").send(&marked_frame([0xff; 6], src, marker, 60)))
        .join()
        .unwrap();
    let counts: Vec<usize> = counters.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(
        counts,
        [0, 1, 1, 1],
        "copies at vm1 (sender), vm2, vm3, user"
    );
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn fast_paths_take_traffic_off_the_proxy_and_fall_back_within_2_s_when_cut() {
    let o = Overlay::new("f");
    o.ctl_ok(&["apply", "-q", &o.path("mesh.vnet"), "--proxy", "px"]);
    o.ctl_ok(&["wait-up", &o.path("mesh.vnet"), "--for", "5"]);
    let again = o.ctl_ok(&["apply", &o.path("mesh.vnet"), "--proxy", "px"]);
    assert!(
        again.contains("nothing to do"),
        "apply is not idempotent: {again}"
    );
    o.ping_ok(1, &guest_ip(2), &["-c", "2", "-i", "0.1", "-W", "2"]);
    // Guests talk; the Proxy's relayed unicast frames stay the same.
    let before = o.relayed();
    o.ping_ok(
        1,
        &guest_ip(2),
        &["-c", "20", "-i", "0.02", "-W", "2", "-s", "1400"],
    );
    o.ping_ok(3, &guest_ip(1), &["-c", "20", "-i", "0.02", "-W", "2"]);
    assert_eq!(
        o.relayed(),
        before,
        "traffic between guests still crosses the Proxy"
    );
    let route = o.ctl_ok(&[
        "route",
        &o.path("mesh.vnet"),
        &guest_mac(1),
        &guest_mac(2),
        "--proxy",
        "px",
        "--live",
    ]);
    assert!(route.contains("h1 --udp--> h2"), "{route}");

    // Cut the h1-h2 fast path in the underlay (both directions), not the star.
    let nft = |script: &str| {
        let mut c = o.underlay.command(&["nft", "-f", "-"]);
        let mut child = c.stdin(Stdio::piped()).spawn().expect("nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft {script}");
    };
    nft("table inet cut {
        chain out {
            type filter hook output priority 0;
            udp sport 5401 udp dport 5402 drop
            udp sport 5402 udp dport 5401 drop
        }
    }\n");
    let cut = Instant::now();
    // Keep vm1 talking to vm2 until the Proxy relays again: that is the fallback.
    let pinger = o.guests[0]
        .command(&["ping", "-n", "-q", "-i", "0.02", "-w", "6", &guest_ip(2)])
        .stdout(Stdio::null())
        .spawn()
        .expect("ping");
    let relayed_at_cut = o.relayed();
    let fallback = loop {
        if o.relayed() > relayed_at_cut + 5 {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(4),
            "no fallback to the star after 4 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "fallback to the star {:.0} ms after the cut",
        fallback.as_secs_f64() * 1000.0
    );
    assert!(
        fallback <= Duration::from_secs(2),
        "fallback took {fallback:?}"
    );
    // Heal; traffic returns to the fast path.
    nft("delete table inet cut");
    let healed = Instant::now();
    let back = loop {
        let a = o.relayed();
        std::thread::sleep(Duration::from_millis(200));
        if o.relayed() == a {
            break healed.elapsed();
        }
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "traffic did not return to the fast path"
        );
    };
    eprintln!(
        "back on the fast path within {:.0} ms of the heal",
        back.as_secs_f64() * 1000.0
    );
    let mut pinger = pinger;
    let _ = pinger.wait();
    // The relayed count standing still proves nothing if the guests stopped talking: they
    // talk now, over the healed fast path, and the Proxy still relays nothing.
    let before = o.relayed();
    o.ping_ok(1, &guest_ip(2), &["-c", "20", "-i", "0.02", "-W", "2"]);
    assert_eq!(
        o.relayed(),
        before,
        "vm1-vm2 traffic still crosses the Proxy after the heal"
    );
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn restarts_lose_nothing() {
    let mut o = Overlay::new("r");
    o.ctl_ok(&["apply", "-q", &o.path("mesh.vnet"), "--proxy", "px"]);
    o.ctl_ok(&["wait-up", &o.path("mesh.vnet"), "--for", "5"]);
    // Kill -9 the Proxy while vm1 and vm2 talk over their fast path: they never notice.
    let pinger = o.guests[0]
        .command(&[
            "ping",
            "-n",
            "-q",
            "-i",
            "0.02",
            "-c",
            "150",
            "-W",
            "1",
            &guest_ip(2),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));
    o.kill9("px");
    std::thread::sleep(Duration::from_millis(300));
    o.start("px");
    let restarted = Instant::now();
    o.wait_serving(Duration::from_secs(5));
    o.ctl_ok(&["wait-up", &o.path("star.vnet"), "--for", "5"]);
    let star_back = restarted.elapsed();
    eprintln!(
        "star re-formed {:.0} ms after the Proxy restarted",
        star_back.as_secs_f64() * 1000.0
    );
    assert!(
        star_back <= Duration::from_secs(2),
        "star took {star_back:?}"
    );
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "the fast path noticed the Proxy's restart: {text}"
    );
    // The Proxy has its configuration back: the user reaches guests through it.
    let shown = o.ctl_ok(&["show", &o.path("mesh.vnet")]);
    assert!(!shown.contains("half link"), "{shown}");
    let out = o.user.output(&[
        "ping",
        "-n",
        "-q",
        "-c",
        "2",
        "-i",
        "0.1",
        "-W",
        "2",
        &guest_ip(3),
    ]);
    assert!(
        out.status.success(),
        "user -> vm3 after the Proxy restart: {out:?}"
    );

    // Kill -9 a host: its guest's interface stays, and once the daemon is back the guest
    // reaches the others again, with its rules.
    o.kill9("h1");
    std::thread::sleep(Duration::from_millis(300));
    o.guests[0].run(&["ip", "addr", "show", "eth0"]);
    o.start("h1");
    let restarted = Instant::now();
    o.wait_serving(Duration::from_secs(5));
    o.ctl_ok(&["wait-up", &o.path("mesh.vnet"), "--for", "5"]);
    let host_back = restarted.elapsed();
    eprintln!(
        "h1's links back {:.0} ms after it restarted",
        host_back.as_secs_f64() * 1000.0
    );
    assert!(host_back <= Duration::from_secs(2), "took {host_back:?}");
    o.ping_ok(1, &guest_ip(2), &["-c", "3", "-i", "0.1", "-W", "2"]);
    o.ping_ok(1, USER_IP, &["-c", "2", "-i", "0.1", "-W", "2"]);
    let again = o.ctl_ok(&["apply", &o.path("mesh.vnet"), "--proxy", "px"]);
    assert!(again.contains("nothing to do"), "state was lost: {again}");
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn bad_input_gets_a_clear_error_or_a_counted_drop_and_the_daemon_keeps_serving() {
    let o = Overlay::new("b");
    // A wrong key.
    let wrong = o.file("wrong-key");
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    let wrong = wrong.display().to_string();
    let hosts = o.path("hosts");
    let out = o.underlay.output(&[
        VNETCTL,
        "--key-file",
        &wrong,
        "--hosts",
        &hosts,
        "info",
        "px",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused our key"),
        "{out:?}"
    );
    // Garbage instead of a proof, and garbage after one.
    o.underlay
        .thread(|| {
            let mut s = TcpStream::connect("127.0.0.1:5400").unwrap();
            let mut challenge = [0u8; 128];
            let _ = s.read(&mut challenge).unwrap();
            s.write_all(b"{{{{ not json\n").unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            assert!(answer.contains("authentication failed"), "{answer}");
        })
        .join()
        .unwrap();
    // Bad rules and files.
    let out = o.ctl(&[
        "add-rule",
        "h1:5401",
        "--src",
        "any",
        "--dst",
        "ff:ff:ff:ff:ff:ff",
        "--link",
        "px",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broadcast"),
        "{out:?}"
    );
    let out = o.ctl(&[
        "add-rule",
        "h1:5401",
        "--src",
        "any",
        "--dst",
        "02:00:00:00:00:09",
        "--link",
        "h9",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no link to h9"),
        "{out:?}"
    );
    std::fs::write(
        o.file("bad.vnet"),
        "BEGIN\nHOST root AT px 5400 eth0\nADD LINK UDP px\nEND\n",
    )
    .unwrap();
    let out = o.ctl(&["apply", &o.path("bad.vnet")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.vnet:4:1: expected a machine name"),
        "{out:?}"
    );
    // A configuration that would misdeliver is refused before anything changes: vm2's frames
    // sent to h3's port.
    let misdeliver = topology(false).replace(
        &format!("FORWARD EDGE px ANY {} px h2", guest_mac(2)),
        &format!("FORWARD EDGE px ANY {} px h3", guest_mac(2)),
    );
    std::fs::write(o.file("mis.vnet"), misdeliver).unwrap();
    let out = o.ctl(&["apply", &o.path("mis.vnet"), "--proxy", "px"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{out:?}"
    );

    // A primitive checked against the whole overlay is refused when it would misdeliver, and
    // nothing changes.
    let (star, mac2) = (o.path("star.vnet"), guest_mac(2));
    let out = o.ctl(&[
        "add-rule",
        "px:5400",
        "--src",
        "any",
        "--dst",
        &mac2,
        "--link",
        "h3",
        "--against",
        &star,
        "--proxy",
        "px",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("would cause"),
        "{out:?}"
    );
    let rules = o.ctl_ok(&["list-rules", "px:5400"]);
    assert!(rules.contains(&format!("{mac2} px h2")), "{rules}");
    let out = o.ctl(&[
        "delete-link",
        "h1:5401",
        "px:5400",
        "--against",
        &star,
        "--proxy",
        "px",
    ]);
    assert!(
        !out.status.success(),
        "deleting a star link that rules use: {out:?}"
    );

    // Garbage, forged and replayed datagrams on the Proxy's link port: capture one real
    // datagram from h1 on the underlay's loopback, then send it again, forged and as noise.
    let captured = o.underlay.thread(|| {
        let sock = PacketSocket::open("lo");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let Some((frame, _)) = sock.recv(Duration::from_millis(100)) else {
                continue;
            };
            // Ethernet (14) + IPv4 (20) + UDP (8); from port 5401 to 5400.
            if frame.len() > 42 + 24
                && frame[23] == 17
                && frame[34..36] == 5401u16.to_be_bytes()
                && frame[36..38] == 5400u16.to_be_bytes()
            {
                return Some(frame[42..].to_vec());
            }
        }
        None
    });
    o.ping_ok(1, &guest_ip(2), &["-c", "3", "-i", "0.1", "-W", "2"]);
    let datagram = captured
        .join()
        .unwrap()
        .expect("captured a datagram from h1 to px");
    let drops_before = o.stats("px");
    o.underlay
        .thread(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(&datagram, "127.0.0.1:5400").unwrap(); // replayed
            let mut forged = datagram.clone();
            let seq = u64::from_be_bytes(forged[12..20].try_into().unwrap());
            forged[12..20].copy_from_slice(&(seq + 100_000).to_be_bytes());
            s.send_to(&forged, "127.0.0.1:5400").unwrap(); // new sequence number, old tag
            for n in [0usize, 1, 23, 24, 100, 1500] {
                s.send_to(&vec![0x5a; n], "127.0.0.1:5400").unwrap(); // noise
            }
        })
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = o.stats("px");
    let h1 = |s: &Stats| {
        s.links
            .iter()
            .find(|l| l.info.as_ref().is_some_and(|i| i.peer.as_str() == "h1"))
            .map(|l| l.drops.clone())
            .unwrap_or_default()
    };
    let grew = |map: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, reason: &str| {
        map.get(reason).copied().unwrap_or(0) > before.get(reason).copied().unwrap_or(0)
    };
    assert!(
        grew(&h1(&after), &h1(&drops_before), "replayed"),
        "{:?}",
        h1(&after)
    );
    assert!(
        grew(&h1(&after), &h1(&drops_before), "bad-tag"),
        "{:?}",
        h1(&after)
    );
    assert!(
        grew(&after.drops, &drops_before.drops, "malformed"),
        "{:?}",
        after.drops
    );

    // An oversized frame from a guest (its MTU raised past what the overlay carries).
    o.guests[0].run(&["ip", "link", "set", "eth0", "mtu", "4000"]);
    let src = mac_bytes(&guest_mac(1));
    let dst = mac_bytes(&guest_mac(2));
    o.guests[0]
        .thread(move || {
            PacketSocket::open("eth0").send(&marked_frame(dst, src, *b"toolarge", 3000))
        })
        .join()
        .unwrap();
    // And a frame with a spoofed source.
    o.guests[0]
        .thread(move || {
            PacketSocket::open("eth0").send(&marked_frame(
                dst,
                [2, 0, 0, 0, 0, 0x66],
                *b"spoofed!",
                60,
            ))
        })
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let port = o
        .stats("h1")
        .ports
        .into_iter()
        .find(|p| p.name.as_str() == "vm1")
        .unwrap();
    assert_eq!(port.drops.get("oversized"), Some(&1), "{:?}", port.drops);
    assert_eq!(port.drops.get("source-guard"), Some(&1), "{:?}", port.drops);
    o.guests[0].run(&["ip", "link", "set", "eth0", "mtu", "1500"]);

    // Everyone still serves, and frames still flow.
    for d in ["px", "h1", "h2", "h3"] {
        o.ctl_ok(&["info", &format!("{d}:{}", port_of(d))]);
    }
    o.ping_ok(1, &guest_ip(2), &["-c", "2", "-i", "0.1", "-W", "2"]);
    // Metrics are served too.
    let metrics = o
        .underlay
        .thread(|| {
            let mut s = TcpStream::connect("127.0.0.1:9540").expect("metrics port");
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        })
        .join()
        .unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(
        metrics.contains("vnetd_link_up{daemon=\"px\",peer=\"h1\",kind=\"udp\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vnetd_relayed_frames_total{daemon=\"px\",cast=\"unicast\"}"),
        "{metrics}"
    );
}

/// An ARP request from `mac`/`ip` for `target`.
fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

/// Sends frames for guest `mac` from anywhere to port `port` of `host` (`hN`), over the
/// star.
fn route_to_port(o: &Overlay, host: &str, port: &str, mac: &str) {
    let daemon = format!("{host}:{}", port_of(host));
    o.ctl_ok(&[
        "add-rule", &daemon, "--src", "any", "--dst", mac, "--port", port,
    ]);
    o.ctl_ok(&[
        "add-rule", "px:5400", "--src", "any", "--dst", mac, "--link", host,
    ]);
}

/// vm4: a veth pair in its own namespace; h2 captures and injects on the far end (`p4`)
/// with libpcap, as for a guest of any hypervisor.
fn attach_pcap_guest(o: &Overlay) -> Netns {
    let vm4 = Netns::new(format!("{}-g4", o.id()));
    vm4.run(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p4",
    ]);
    vm4.run(&["ip", "link", "set", "eth0", "address", &guest_mac(4), "up"]);
    vm4.run(&["ip", "link", "set", "p4", "up"]);
    vm4.run(&[
        "ip",
        "addr",
        "add",
        &format!("{}/24", guest_ip(4)),
        "dev",
        "eth0",
    ]);
    let netns = vm4.path.display().to_string();
    o.ctl_ok(&[
        "attach-port",
        "h2:5402",
        "vm4",
        "--pcap",
        "p4",
        "--netns",
        &netns,
        "--mac",
        &guest_mac(4),
    ]);
    route_to_port(o, "h2", "vm4", &guest_mac(4));
    vm4
}

/// Attaches port `vm5` of h3: the unix datagram socket `port_sock`, its guest's socket at
/// `guest_sock`.
fn attach_unix_port(o: &Overlay, port_sock: &Path, guest_sock: &Path) {
    let (ps, gs) = (
        port_sock.display().to_string(),
        guest_sock.display().to_string(),
    );
    o.ctl_ok(&[
        "attach-port",
        "h3:5403",
        "vm5",
        "--unix",
        &ps,
        "--unix-peer",
        &gs,
        "--mac",
        &guest_mac(5),
    ]);
    route_to_port(o, "h3", "vm5", &guest_mac(5));
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn pcap_and_unix_ports_carry_guests_frames() {
    let o = Overlay::new("p");
    let vm4 = attach_pcap_guest(&o);
    // vm5: a unix datagram socket, as QEMU's `-netdev dgram` or the project's VMM uses.
    let (guest_sock, port_sock) = (o.file("vm5.sock"), o.file("h3-vm5.sock"));
    let guest = std::os::unix::net::UnixDatagram::bind(&guest_sock).expect("bind guest socket");
    guest
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    attach_unix_port(&o, &port_sock, &guest_sock);
    let interfaces = o.ctl_ok(&["list-interfaces", "h2:5402"]);
    assert!(interfaces.contains("pcap p4"), "{interfaces}");
    // The pcap guest and a TAP guest on another host ping each other.
    o.ping_ok(
        1,
        &guest_ip(4),
        &["-c", "3", "-i", "0.1", "-W", "2", "-M", "do", "-s", "1472"],
    );
    let out = vm4.output(&[
        "ping",
        "-n",
        "-q",
        "-c",
        "2",
        "-i",
        "0.1",
        "-W",
        "2",
        &guest_ip(3),
    ]);
    assert!(out.status.success(), "vm4 -> vm3: {out:?}");
    // The unix guest asks vm1 who it is (ARP, a broadcast) and gets the answer back over
    // the overlay, as a datagram.
    let request = arp_request(mac_bytes(&guest_mac(5)), [10, 77, 0, 5], [10, 77, 0, 1]);
    let mut reply = None;
    for _ in 0..10 {
        guest
            .send_to(&request, &port_sock)
            .expect("send to the port");
        let mut buf = [0u8; 2048];
        while let Ok(n) = guest.recv(&mut buf) {
            let frame = &buf[..n];
            if frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 2] {
                reply = Some(frame.to_vec());
            }
        }
        if reply.is_some() {
            break;
        }
    }
    let reply = reply.expect("no ARP reply from vm1 reached the unix guest");
    assert_eq!(
        reply[0..6],
        mac_bytes(&guest_mac(5)),
        "reply not addressed to vm5"
    );
    assert_eq!(reply[6..12], mac_bytes(&guest_mac(1)), "reply not from vm1");
    o.ctl_ok(&["detach-port", "h3:5403", "vm5"]);
    assert!(
        !port_sock.exists(),
        "the unix port's socket file stayed after detach"
    );
    o.ctl_ok(&["detach-port", "h2:5402", "vm4"]);
    vm4.run(&["ip", "link", "show", "p4"]);
}

/// vm5 with a network stack: a namespace whose `eth0` is a plain TAP (no offloads), and a
/// thread that carries its frames to and from h3's unix port `vm5` as datagrams, as a VMM
/// with a unix datagram backend does. Stopped, and its namespace deleted, when dropped.
struct UnixGuest {
    // Declared first, so dropped (stopped) before the namespace goes.
    bridge: Pump<Bridged>,
    ns: Netns,
}

/// What a [`UnixGuest`]'s bridge carried toward the guest.
#[derive(Debug, Default)]
struct Bridged {
    /// Datagrams from the port.
    frames: usize,
    /// The longest.
    longest: usize,
}

impl UnixGuest {
    fn attach(o: &Overlay) -> UnixGuest {
        let ns = Netns::new(format!("{}-g5", o.id()));
        let tap = Tap::create_in(&ns.path, "eth0").expect("vm5's TAP");
        tap.configure(&LinkSettings {
            mac: Some(guest_mac(5).parse().expect("mac")),
            mtu: Some(1500),
            up: Some(true),
        })
        .expect("configure vm5's TAP");
        ns.run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", guest_ip(5)),
            "dev",
            "eth0",
        ]);
        let (guest_sock, port_sock) = (o.file("vm5.sock"), o.file("h3-vm5.sock"));
        let sock = UnixDatagram::bind(&guest_sock).expect("bind guest socket");
        sock.set_nonblocking(true).expect("non-blocking");
        attach_unix_port(o, &port_sock, &guest_sock);
        // Connected to the port: the port's bursts (a super-frame's segments) are then
        // bounded by socket buffers only, not by the kernel's queue of datagrams from
        // strangers (`net.unix.max_dgram_qlen`, 10).
        sock.connect(&port_sock).expect("connect to the port");
        let bridge = Pump::spawn(move |stop| {
            let mut seen = Bridged::default();
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                poll_readable(&[tap.as_raw_fd(), sock.as_raw_fd()], 10);
                // The guest's frames to the port; one the port cannot take now is lost, as
                // on a full NIC queue.
                while let Ok(n) = tap.read_frame(&mut buf) {
                    let _ = sock.send(&buf[..n]);
                }
                while let Ok(n) = sock.recv(&mut buf) {
                    seen.frames += 1;
                    seen.longest = seen.longest.max(n);
                    let _ = tap.write_frame(&buf[..n]);
                }
            }
            seen
        });
        UnixGuest { bridge, ns }
    }

    /// Stops the bridge; what it carried to the guest.
    fn finish(self) -> Bridged {
        self.bridge.finish()
    }
}

/// `ns`'s count of TCP segments received with a bad checksum (`InCsumErrors` in
/// `/proc/net/snmp`).
fn tcp_checksum_errors(ns: &Netns) -> u64 {
    let snmp = ns.run(&["cat", "/proc/net/snmp"]);
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().expect("Tcp: names"), tcp.next().expect("values"));
    let at = names
        .split_whitespace()
        .position(|n| n == "InCsumErrors")
        .expect("InCsumErrors");
    values
        .split_whitespace()
        .nth(at)
        .expect("a value")
        .parse()
        .expect("a number")
}

/// What `after` counted since `before`.
fn delta(after: Traffic, before: Traffic) -> Traffic {
    Traffic {
        frames: after.frames - before.frames,
        bytes: after.bytes - before.bytes,
    }
}

fn average(t: Traffic) -> u64 {
    t.bytes / t.frames.max(1)
}

const BULK: usize = 4 << 20;

fn guest_addr(i: usize) -> SocketAddr {
    SocketAddr::new(guest_ip(i).parse().expect("guest IP"), 7000)
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn tcp_super_frames_from_a_tap_guest_reach_pcap_and_unix_guests_segmented() {
    let o = Overlay::new("o");
    let vm4 = attach_pcap_guest(&o);
    // A capture on a veth sees what the other end's stack sent before any checksum was
    // finished: with its transmit checksum offload on (a veth's default), TCP segments come
    // out of the pcap port with only the pseudo-header sum, and vm1 drops them (the SYN-ACK
    // first). The daemon cannot tell them apart, so the guest's NIC checksums itself.
    vm4.set_tx_checksum("eth0", false);
    assert!(!vm4.tso("eth0"));
    let vm5 = UnixGuest::attach(&o);
    assert!(
        o.guests[0].tso("eth0") && o.guests[0].tx_checksum("eth0"),
        "vm1's TAP offers no offloads"
    );
    // A bulk TCP stream from vm1 (a TAP with offloads) to each: its super-frames cross the
    // star whole and are cut into wire-sized frames with correct checksums at h2 (pcap) and
    // h3 (unix), or the guests' stacks would drop them and the streams stall.
    let before = o.port_stats("h1", "vm1");
    let (pcap_before, unix_before) = (o.port_stats("h2", "vm4"), o.port_stats("h3", "vm5"));
    let took = tcp_stream(&o.guests[0], &vm4, guest_addr(4), BULK);
    eprintln!("vm1 -> vm4 (pcap): {} MiB in {took:?}", BULK >> 20);
    let took = tcp_stream(&o.guests[0], &vm5.ns, guest_addr(5), BULK);
    eprintln!("vm1 -> vm5 (unix): {} MiB in {took:?}", BULK >> 20);
    let rx = delta(o.port_stats("h1", "vm1").rx, before.rx);
    let pcap = o.port_stats("h2", "vm4");
    let unix = o.port_stats("h3", "vm5");
    eprintln!(
        "vm1 rx {rx:?}, vm4 tx {:?} drops {:?}, vm5 tx {:?} drops {:?}",
        delta(pcap.tx, pcap_before.tx),
        pcap.drops,
        delta(unix.tx, unix_before.tx),
        unix.drops
    );
    assert!(
        average(rx) > 3000,
        "vm1's frames average {} bytes: no super-frames ({rx:?})",
        average(rx)
    );
    assert!(rx.bytes >= 2 * BULK as u64, "{rx:?}");
    // The ports count a frame as it reaches them, before its offloads are finished: still
    // super-frames at h2 and h3, so they crossed the star whole.
    for (name, t) in [
        ("vm4", delta(pcap.tx, pcap_before.tx)),
        ("vm5", delta(unix.tx, unix_before.tx)),
    ] {
        assert!(
            average(t) > 1514,
            "{name}'s frames average {} bytes: segmented before h2/h3 ({t:?})",
            average(t)
        );
    }
    let bad = o.drops_of("bad-offload");
    assert!(bad.is_empty(), "bad-offload drops: {bad:?}");
    for (name, port) in [("vm4", &pcap), ("vm5", &unix)] {
        assert_eq!(
            port.drops.get("write-failed"),
            None,
            "{name}: {:?}",
            port.drops
        );
    }
    assert_eq!(tcp_checksum_errors(&vm4), 0, "vm4 got bad TCP checksums");
    assert_eq!(tcp_checksum_errors(&vm5.ns), 0, "vm5 got bad TCP checksums");
    let bridged = vm5.finish();
    assert!(
        bridged.longest <= 1514 && bridged.frames as u64 > BULK as u64 / 1514,
        "the unix guest got {bridged:?}"
    );
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn without_offloads_tap_guests_exchange_plain_frames_over_a_fast_path() {
    // Every daemon without offloads: the guests' TAPs announce none, so their stacks hand
    // over (and take) only wire-sized frames, and bulk TCP still flows both ways over the
    // h1-h2 fast path. The counters hold totals only: no frame over 1514 bytes shows as an
    // average of at most 1514 bytes and no `oversized` drop.
    let o = Overlay::with_args("n", &["--no-offloads"]);
    o.ctl_ok(&["apply", "-q", &o.path("mesh.vnet"), "--proxy", "px"]);
    o.ctl_ok(&["wait-up", &o.path("mesh.vnet"), "--for", "5"]);
    for (i, guest) in o.guests.iter().enumerate() {
        assert!(
            !guest.tso("eth0") && !guest.tx_checksum("eth0"),
            "vm{}'s TAP offers offloads",
            i + 1
        );
    }
    let ports = |o: &Overlay| (o.port_stats("h1", "vm1"), o.port_stats("h2", "vm2"));
    // Each stream's data direction only (where it enters at the sender's port and leaves at
    // the receiver's), so that the other way's small ACKs do not dilute the averages.
    let plain = |name: &str, way: &str, t: Traffic| {
        eprintln!("{name} {way} {t:?}");
        assert!(t.bytes >= BULK as u64, "{name} {way}: {t:?}");
        assert!(
            t.bytes <= t.frames * 1514,
            "{name} {way}: frames over 1514 bytes ({t:?})"
        );
    };
    let relayed = o.relayed();
    let (vm1, vm2) = ports(&o);
    let took = tcp_stream(&o.guests[0], &o.guests[1], guest_addr(2), BULK);
    eprintln!("vm1 -> vm2: {} MiB in {took:?}", BULK >> 20);
    let (vm1_mid, vm2_mid) = ports(&o);
    plain("vm1", "rx", delta(vm1_mid.rx, vm1.rx));
    plain("vm2", "tx", delta(vm2_mid.tx, vm2.tx));
    let took = tcp_stream(&o.guests[1], &o.guests[0], guest_addr(1), BULK);
    eprintln!("vm2 -> vm1: {} MiB in {took:?}", BULK >> 20);
    let (vm1_after, vm2_after) = ports(&o);
    plain("vm2", "rx", delta(vm2_after.rx, vm2_mid.rx));
    plain("vm1", "tx", delta(vm1_after.tx, vm1_mid.tx));
    assert_eq!(o.relayed(), relayed, "vm1-vm2 traffic crossed the Proxy");
    for (name, after) in [("vm1", &vm1_after), ("vm2", &vm2_after)] {
        assert_eq!(
            after.drops.get("oversized"),
            None,
            "{name}: {:?}",
            after.drops
        );
    }
    let bad = o.drops_of("bad-offload");
    assert!(bad.is_empty(), "bad-offload drops: {bad:?}");
    for host in ["h1", "h2"] {
        for link in o.stats(host).links {
            for (way, t) in [("rx", link.rx), ("tx", link.tx)] {
                assert!(
                    t.bytes <= t.frames * 1514,
                    "{host} {:?} {way}: frames over 1514 bytes ({t:?})",
                    link.info
                );
            }
        }
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn a_tcp_fast_path_carries_full_frames_and_falls_back_when_cut() {
    let o = Overlay::new("t");
    let tcp = topology(true).replace("LINK UDP h1 h1 h2", "LINK TCP h1 h1 h2");
    std::fs::write(o.file("tcp.vnet"), tcp).unwrap();
    o.ctl_ok(&["apply", "-q", &o.path("tcp.vnet"), "--proxy", "px"]);
    o.ctl_ok(&["wait-up", &o.path("tcp.vnet"), "--for", "5"]);
    let links = o.ctl_ok(&["list-links", "h1:5401"]);
    assert!(
        links
            .lines()
            .any(|l| l.starts_with("h2") && l.contains("tcp") && l.contains("up")),
        "{links}"
    );
    let before = o.relayed();
    o.ping_ok(
        1,
        &guest_ip(2),
        &["-c", "5", "-i", "0.05", "-W", "2", "-M", "do", "-s", "1472"],
    );
    o.ping_ok(2, &guest_ip(1), &["-c", "5", "-i", "0.05", "-W", "2"]);
    assert_eq!(
        o.relayed(),
        before,
        "vm1-vm2 traffic still crosses the Proxy"
    );
    let route = o.ctl_ok(&[
        "route",
        &o.path("tcp.vnet"),
        &guest_mac(1),
        &guest_mac(2),
        "--proxy",
        "px",
        "--live",
    ]);
    assert!(route.contains("h1 --tcp--> h2"), "{route}");
    // Cut the TCP connection's packets (both ways): the link dies and traffic falls back.
    let mut nft = o
        .underlay
        .command(&["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(
            b"table inet cut {
        chain out {
            type filter hook output priority 0;
            tcp sport 5402 tcp dport != 5400 drop
            tcp dport 5402 tcp sport != 5400 drop
        }
    }\n",
        )
        .unwrap();
    assert!(nft.wait().unwrap().success());
    let cut = Instant::now();
    let pinger = o.guests[0]
        .command(&["ping", "-n", "-q", "-i", "0.02", "-w", "5", &guest_ip(2)])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let at_cut = o.relayed();
    loop {
        if o.relayed() > at_cut + 5 {
            break;
        }
        assert!(
            cut.elapsed() < Duration::from_secs(4),
            "no fallback to the star after 4 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "TCP fast path: fallback {:.0} ms after the cut",
        cut.elapsed().as_secs_f64() * 1000.0
    );
    assert!(cut.elapsed() <= Duration::from_secs(2));
    let mut pinger = pinger;
    let _ = pinger.wait();
}

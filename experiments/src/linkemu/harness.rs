//! Harness for exercising the emulator end to end: a pair of throw-away
//! network namespaces, an emulator running in a thread, and ping / TCP
//! goodput measurements between the namespaces. Shared by the end-to-end
//! test (`tests/linkemu_netns.rs`) and [`super::accuracy`].
//!
//! Needs root (or `CAP_SYS_ADMIN` + `CAP_NET_ADMIN`), `ip` (iproute2) and
//! `ping` (iputils).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sched::{setns, CloneFlags};
use serde::Serialize;

use super::{run_with, Endpoint, LinkSpec, LinkStats, RunOptions};

/// Runs `program args` and fails (with its stderr) unless it exits with 0.
pub fn command(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Whether the end-to-end prerequisites are there: effective uid 0 and the
/// `ip` and `ping` programs. Returns the reason when they are not.
pub fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root".into());
    }
    for (program, arg) in [("ip", "-V"), ("ping", "-V")] {
        match Command::new(program).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            _ => return Err(format!("`{program}` is not available")),
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun does not exist".into());
    }
    Ok(())
}

/// Two named network namespaces (`ip netns add`), deleted again on drop.
#[derive(Debug)]
pub struct NetnsPair {
    /// Name of the first namespace.
    pub a: String,
    /// Name of the second namespace.
    pub b: String,
    created: Vec<String>,
}

static PAIR_SEQ: AtomicU32 = AtomicU32::new(0);

impl NetnsPair {
    /// Creates `lemu-<pid>-<n>-a` and `…-b` (unique per process and call),
    /// with loopback up and IPv6 disabled (no router solicitations or DAD
    /// noise on the emulated link).
    pub fn create() -> anyhow::Result<Self> {
        let n = PAIR_SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("lemu-{}-{n}", std::process::id());
        let mut pair = NetnsPair {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            created: Vec::new(),
        };
        for name in [pair.a.clone(), pair.b.clone()] {
            command("ip", &["netns", "add", &name])
                .with_context(|| format!("create network namespace {name}"))?;
            pair.created.push(name.clone());
            command("ip", &["-n", &name, "link", "set", "lo", "up"])?;
            command(
                "ip",
                &[
                    "netns",
                    "exec",
                    &name,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
        }
        Ok(pair)
    }

    /// `/run/netns/<name>`.
    pub fn path(name: &str) -> PathBuf {
        Path::new("/run/netns").join(name)
    }

    /// An endpoint `ifname` in namespace a.
    pub fn endpoint_a(&self, ifname: &str) -> Endpoint {
        Endpoint {
            netns: Self::path(&self.a),
            ifname: ifname.into(),
        }
    }

    /// An endpoint `ifname` in namespace b.
    pub fn endpoint_b(&self, ifname: &str) -> Endpoint {
        Endpoint {
            netns: Self::path(&self.b),
            ifname: ifname.into(),
        }
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for name in self.created.drain(..) {
            if let Err(e) = command("ip", &["netns", "del", &name]) {
                eprintln!("warning: could not delete network namespace {name}: {e:#}");
            }
        }
    }
}

/// Assigns `cidr` (e.g. `10.99.0.1/24`) to `ifname` in namespace `ns` and
/// brings it up.
pub fn configure(ns: &str, ifname: &str, cidr: &str) -> anyhow::Result<()> {
    command("ip", &["-n", ns, "addr", "add", cidr, "dev", ifname])
        .with_context(|| format!("configure {ifname} in {ns}"))?;
    command("ip", &["-n", ns, "link", "set", ifname, "up"])
        .with_context(|| format!("bring {ifname} up in {ns}"))?;
    Ok(())
}

/// An emulator running [`run_with`] in a thread; stopped (and joined) on drop.
pub struct Emulator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<LinkStats>>>,
}

impl Emulator {
    /// Starts the emulator and waits (up to 10 s) until both TAPs exist.
    pub fn start(spec: LinkSpec, opts: RunOptions) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread_stop = Arc::clone(&stop);
        let name = spec.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("linkemu-{name}"))
            .spawn(move || {
                run_with(
                    &spec,
                    &opts,
                    move || {
                        // The receiver only goes away if `start` gave up.
                        let _ = tx.send(());
                    },
                    &thread_stop,
                )
            })
            .with_context(|| format!("spawn emulator thread for {name}"))?;
        let mut emu = Emulator {
            stop,
            thread: Some(thread),
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => Ok(emu),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The thread ended before ready(): report its error.
                Err(emu
                    .join()
                    .err()
                    .unwrap_or_else(|| anyhow!("emulator {name} exited early")))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("emulator {name} not ready after 10 s"),
        }
    }

    /// Stops the emulator and returns its statistics.
    pub fn stop(mut self) -> anyhow::Result<LinkStats> {
        self.join()
    }

    fn join(&mut self) -> anyhow::Result<LinkStats> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self
            .thread
            .take()
            .ok_or_else(|| anyhow!("emulator already stopped"))?;
        thread
            .join()
            .map_err(|_| anyhow!("emulator thread panicked"))?
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.join() {
                eprintln!("warning: emulator: {e:#}");
            }
        }
    }
}

/// Round-trip times measured with `ping`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PingStats {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Per-reply RTTs in ms, as printed by ping (3 significant digits).
    pub rtts_ms: Vec<f64>,
    /// ping's own summary (min, avg, max, mdev) in ms, µs precision.
    pub summary_ms: Option<[f64; 4]>,
}

impl PingStats {
    /// Mean RTT (ping's µs-precision average when available).
    pub fn mean_ms(&self) -> f64 {
        match self.summary_ms {
            Some([_, avg, _, _]) => avg,
            None => mean(&self.rtts_ms),
        }
    }

    /// Median of the per-reply RTTs.
    pub fn median_ms(&self) -> f64 {
        median(&self.rtts_ms)
    }

    /// Minimum RTT.
    pub fn min_ms(&self) -> f64 {
        match self.summary_ms {
            Some([min, ..]) => min,
            None => self.rtts_ms.iter().copied().fold(f64::NAN, f64::min),
        }
    }

    /// Standard deviation (ping's mdev).
    pub fn mdev_ms(&self) -> f64 {
        match self.summary_ms {
            Some([.., mdev]) => mdev,
            None => f64::NAN,
        }
    }
}

/// Mean of `v` (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Pings `dst` from namespace `ns` `count` times, `interval` apart (< 200 ms
/// needs root). Lost replies are not an error; ping failing to run is.
pub fn ping(ns: &str, dst: Ipv4Addr, count: u32, interval: Duration) -> anyhow::Result<PingStats> {
    let interval = format!("{:.3}", interval.as_secs_f64());
    let (count_s, dst_s) = (count.to_string(), dst.to_string());
    let args = [
        "netns", "exec", ns, "ping", "-n", "-c", &count_s, "-i", &interval, "-W", "2", &dst_s,
    ];
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("run ping {dst} in {ns}"))?;
    // 0: all replies, 1: some missing, 2 and others: error.
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "ping {dst} in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut stats = parse_ping(&String::from_utf8_lossy(&out.stdout));
    stats.sent = count;
    Ok(stats)
}

/// Parses iputils ping output.
fn parse_ping(text: &str) -> PingStats {
    let mut stats = PingStats::default();
    for line in text.lines() {
        if let Some(rest) = line.split(" time=").nth(1) {
            if let Some(Ok(ms)) = rest.split_whitespace().next().map(str::parse::<f64>) {
                stats.rtts_ms.push(ms);
            }
        } else if let Some(rest) = line.strip_prefix("rtt min/avg/max/mdev = ") {
            // May end in ", pipe N" when several requests are outstanding.
            let nums: Vec<f64> = rest
                .split(" ms")
                .next()
                .unwrap_or_default()
                .split('/')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            if let [a, b, c, d] = nums[..] {
                stats.summary_ms = Some([a, b, c, d]);
            }
        }
    }
    stats.received = u32::try_from(stats.rtts_ms.len()).unwrap_or(u32::MAX);
    stats
}

/// Result of [`tcp_goodput`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TcpResult {
    /// Application bytes received per second × 8, over the measurement window.
    pub goodput_bps: f64,
    /// Bytes received in the window.
    pub bytes: u64,
    /// Length of the window (s).
    pub window_s: f64,
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> anyhow::Result<()> {
    let ns = std::fs::File::open(path)
        .with_context(|| format!("open network namespace {}", path.display()))?;
    setns(ns, CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("enter network namespace {}", path.display()))
}

/// Measures single-flow TCP goodput from namespace `client_ns` to
/// `server:port` in `server_ns` (both given as paths such as
/// `/run/netns/x`), in-process: a receiver thread and a sender thread each
/// enter their namespace; the sender writes as fast as it can, the receiver
/// skips `warmup` after the first byte (slow start), then counts the bytes
/// the kernel received in order (`TCP_INFO`'s `tcpi_bytes_received`, i.e.
/// goodput, not affected by how promptly the application reads) over
/// `window`, then closes the connection. The congestion control is the
/// namespace default.
pub fn tcp_goodput(
    client_ns: &Path,
    server_ns: &Path,
    server: SocketAddr,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<TcpResult> {
    let (bound_tx, bound_rx) = mpsc::channel();
    let server_ns_owned = server_ns.to_owned();
    let receiver = std::thread::Builder::new()
        .name("tcp-receiver".into())
        .spawn(move || -> anyhow::Result<TcpResult> {
            enter(&server_ns_owned)?;
            let listener = TcpListener::bind(server).with_context(|| format!("bind {server}"))?;
            // The sender may fail to connect: never block forever in accept.
            listener
                .set_nonblocking(true)
                .context("set listener non-blocking")?;
            let _ = bound_tx.send(());
            let deadline = Instant::now() + Duration::from_secs(10);
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            bail!("no connection to {server} within 10 s");
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(e).context("accept"),
                }
            };
            stream
                .set_nonblocking(false)
                .context("set stream blocking")?;
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .context("set read timeout")?;
            receive(stream, warmup, window)
        })
        .context("spawn TCP receiver")?;
    if bound_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        // The receiver gave up before listening (it cannot block there):
        // report its own error.
        return Err(join(receiver.join())
            .err()
            .unwrap_or_else(|| anyhow!("TCP receiver did not start")));
    }

    let client_ns = client_ns.to_owned();
    let total = warmup + window + Duration::from_secs(30);
    let sender = std::thread::Builder::new()
        .name("tcp-sender".into())
        .spawn(move || -> anyhow::Result<()> {
            enter(&client_ns)?;
            let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))
                .with_context(|| format!("connect to {server}"))?;
            stream
                .set_write_timeout(Some(Duration::from_secs(5)))
                .context("set write timeout")?;
            let buf = vec![0x5au8; 128 << 10];
            let start = Instant::now();
            while start.elapsed() < total {
                match stream.write(&buf) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // The receiver closes the connection when it is done.
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
                        ) =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(e).context("send"),
                }
            }
            Ok(())
        })
        .context("spawn TCP sender")?;
    let received = join(receiver.join());
    let sent = join(sender.join());
    let result = received.context("TCP receiver")?;
    sent.context("TCP sender")?;
    Ok(result)
}

fn join<T>(r: std::thread::Result<anyhow::Result<T>>) -> anyhow::Result<T> {
    r.map_err(|_| anyhow!("thread panicked"))?
}

/// Bytes the kernel has received in order on `stream` (`tcpi_bytes_received`
/// of `TCP_INFO`), independent of how far the application has read.
fn tcp_bytes_received(stream: &TcpStream) -> anyhow::Result<u64> {
    // SAFETY: all-zero is a valid `tcp_info` (plain integers).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>())
        .context("tcp_info size")?;
    // SAFETY: `info` is a valid, exclusively borrowed `tcp_info` of `len`
    // bytes for the kernel to fill; the fd is open for the call's duration.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::from_mut(&mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getsockopt(TCP_INFO)");
    }
    Ok(info.tcpi_bytes_received)
}

/// Receiver side of [`tcp_goodput`]: a helper thread drains the socket while
/// this one samples the kernel's byte counter at the window edges, so a
/// receiver that falls behind (busy CPUs) does not skew the result.
fn receive(stream: TcpStream, warmup: Duration, window: Duration) -> anyhow::Result<TcpResult> {
    let mut reader = stream.try_clone().context("clone the TCP stream")?;
    let drain = std::thread::Builder::new()
        .name("tcp-drain".into())
        .spawn(move || {
            let mut buf = vec![0u8; 256 << 10];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        })
        .context("spawn TCP drain thread")?;
    let measured = (|| -> anyhow::Result<TcpResult> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tcp_bytes_received(&stream)? == 0 {
            if Instant::now() > deadline {
                bail!("no data within 10 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(warmup);
        let b0 = tcp_bytes_received(&stream)?;
        let t0 = Instant::now();
        std::thread::sleep(window);
        let b1 = tcp_bytes_received(&stream)?;
        let secs = t0.elapsed().as_secs_f64();
        let bytes = b1.saturating_sub(b0);
        Ok(TcpResult {
            goodput_bps: bytes as f64 * 8.0 / secs,
            bytes,
            window_s: secs,
        })
    })();
    // Ends the drain thread (reads return 0); dropping the socket with unread
    // data then resets the connection, which stops the sender.
    let _ = stream.shutdown(std::net::Shutdown::Read);
    let _ = drain.join();
    measured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iputils_ping_output() {
        let text = "PING 10.99.0.2 (10.99.0.2) 56(84) bytes of data.
64 bytes from 10.99.0.2: icmp_seq=1 ttl=64 time=20.1 ms
64 bytes from 10.99.0.2: icmp_seq=2 ttl=64 time=20.3 ms
64 bytes from 10.99.0.2: icmp_seq=4 ttl=64 time=19.9 ms

--- 10.99.0.2 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 3004ms
rtt min/avg/max/mdev = 19.912/20.104/20.301/0.158 ms, pipe 2
";
        let s = parse_ping(text);
        assert_eq!(s.received, 3);
        assert_eq!(s.rtts_ms, vec![20.1, 20.3, 19.9]);
        assert_eq!(s.summary_ms, Some([19.912, 20.104, 20.301, 0.158]));
        assert_eq!(s.mean_ms(), 20.104);
        assert_eq!(s.median_ms(), 20.1);
    }

    #[test]
    fn median_and_mean() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(mean(&[1.0, 2.0]), 1.5);
    }
}

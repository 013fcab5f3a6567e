//! What the root-only end-to-end tests of this crate share: a network namespace that is
//! deleted when the test ends, also when it fails.

#![allow(dead_code)] // Each test file uses a part of it.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

/// A network namespace that exists as long as this value does, with its loopback up.
pub struct Netns {
    pub name: String,
    pub path: PathBuf,
}

impl Netns {
    /// Namespace `name`; a leftover of that name (a killed earlier run) is deleted first.
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(status.success(), "ip netns add {name} (are we root?)");
        let ns = Netns {
            path: PathBuf::from(format!("/run/netns/{name}")),
            name,
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Namespace `vnio-PID-TAG`.
    pub fn tagged(tag: &str) -> Netns {
        Netns::new(format!("vnio-{}-{tag}", std::process::id()))
    }

    /// `ip -n NS ARGS`; its stdout, or `Err(stderr)`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("run ip");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `args` as a command to run inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs `args` inside the namespace and returns its output, whatever its status.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ip netns exec")
    }

    /// Runs `args` inside the namespace; panics with its output if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?} in {}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `args` inside the namespace to the end; whether it succeeded.
    pub fn succeeds(&self, args: &[&str]) -> bool {
        self.command(args)
            .stdout(Stdio::null())
            .status()
            .expect("run ip netns exec")
            .success()
    }

    /// Starts `args` inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("run ip netns exec")
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let file = File::open(&self.path).expect("open netns");
        std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// Whether interface `ifname` of the namespace has TCP segmentation offload on (its
    /// `tcp-segmentation-offload` feature, as `ethtool -k` shows it; `ETHTOOL_GTSO`).
    pub fn tso(&self, ifname: &str) -> bool {
        const ETHTOOL_GTSO: u32 = 0x1e;
        self.ethtool(ifname, ETHTOOL_GTSO, 0) != 0
    }

    /// Whether interface `ifname` of the namespace has transmit checksum offload on
    /// (`ETHTOOL_GTXCSUM`).
    pub fn tx_checksum(&self, ifname: &str) -> bool {
        const ETHTOOL_GTXCSUM: u32 = 0x16;
        self.ethtool(ifname, ETHTOOL_GTXCSUM, 0) != 0
    }

    /// Turns transmit checksum offload of interface `ifname` of the namespace on or off, as
    /// `ethtool -K IF tx on|off` does (`ETHTOOL_STXCSUM`); off, the kernel turns
    /// segmentation offload off too, since it needs checksum offload.
    pub fn set_tx_checksum(&self, ifname: &str, on: bool) {
        const ETHTOOL_STXCSUM: u32 = 0x17;
        self.ethtool(ifname, ETHTOOL_STXCSUM, u32::from(on));
    }

    /// A legacy `ETHTOOL_*` command with a `struct ethtool_value` (`SIOCETHTOOL`), run from
    /// inside the namespace; the value it leaves.
    fn ethtool(&self, ifname: &str, cmd: u32, data: u32) -> u32 {
        let name = ifname.to_owned();
        self.thread(move || {
            ethtool(&name, cmd, data).unwrap_or_else(|e| panic!("ethtool {cmd:#x} {name}: {e}"))
        })
        .join()
        .expect("ethtool thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

fn ethtool(ifname: &str, cmd: u32, data: u32) -> std::io::Result<u32> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    assert!(ifname.len() < libc::IFNAMSIZ, "interface name too long");
    let mut value = EthtoolValue { cmd, data };
    // SAFETY: `ifreq` is plain data (a name and a union of plain data and a pointer); all
    // zeros is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *to = libc::c_char::from_ne_bytes([from]);
    }
    req.ifr_ifru.ifru_data = std::ptr::addr_of_mut!(value).cast();
    // SAFETY: plain socket(2) call; the descriptor is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: SIOCETHTOOL reads the name from `req`, and the command from (and, for a
    // query, the answer into) the `ethtool_value` its data pointer points to; both live
    // until the call returns.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value.data)
}

/// Sends `len` bytes over one TCP connection from namespace `from` to `to_addr`, listened on
/// in namespace `to`, and checks that every byte arrives, in order; how long it took, from
/// the connection to the last byte read.
pub fn tcp_stream(from: &Netns, to: &Netns, to_addr: SocketAddr, len: usize) -> Duration {
    let data: Arc<Vec<u8>> = Arc::new(
        (0..len)
            .map(|i| u8::try_from((i * 7 + i / 251) % 251).expect("< 251"))
            .collect(),
    );
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = to.thread(move || {
        let listener = TcpListener::bind(to_addr).expect("listen");
        ready_tx.send(()).expect("ready");
        listener.set_nonblocking(true).expect("non-blocking");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection within 5 s");
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).expect("blocking");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut got = Vec::with_capacity(len);
        conn.read_to_end(&mut got).expect("read the stream");
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("listener ready");
    let sent = Arc::clone(&data);
    let start = Instant::now();
    from.thread(move || {
        let mut conn =
            TcpStream::connect_timeout(&to_addr, Duration::from_secs(3)).expect("connect");
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        conn.write_all(&sent).expect("write the stream");
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    })
    .join()
    .expect("sender");
    let got = receiver.join().expect("receiver");
    let took = start.elapsed();
    assert_eq!(got.len(), data.len(), "bytes received to {to_addr}");
    assert!(got == *data, "the stream to {to_addr} arrived corrupted");
    took
}

/// A test's background thread that moves frames until it is finished or dropped: `body`
/// runs until the flag it is given is set, and [`Pump::finish`] returns what it returned.
pub struct Pump<T: Send + 'static> {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + 'static> Pump<T> {
    pub fn spawn(body: impl FnOnce(&std::sync::atomic::AtomicBool) -> T + Send + 'static) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        Pump {
            stop,
            thread: Some(std::thread::spawn(move || body(&flag))),
        }
    }

    /// Stops the thread; what it returned.
    pub fn finish(mut self) -> T {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = self.thread.take().expect("running");
        thread.join().expect("pump thread")
    }
}

impl<T: Send + 'static> Drop for Pump<T> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until one of `fds` is readable, at most `ms` milliseconds.
pub fn poll_readable(fds: &[std::os::fd::RawFd], ms: i32) {
    let mut fds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` valid pollfds.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

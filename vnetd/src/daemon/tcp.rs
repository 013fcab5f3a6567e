//! TCP links: one connection per link, carrying the same authenticated datagrams as UDP back
//! to back ([`StreamDecoder`]).
//!
//! **One port.** A daemon accepts link connections on its control port: the control server
//! speaks first (its challenge line), and a dialing daemon answers with [`LINK_PREAMBLE`]
//! instead of a proof; the control thread then hands the connection, and whatever it had
//! read past the preamble, to the data plane. The dialer skips the challenge line and both
//! ends exchange records. A connection belongs to no link until an authentic hello on it
//! names its sender ([`crate::wire::open_hello`]); anything else first closes it. So a TCP
//! link needs nothing but the `HOST` line's port, like the control API.
//!
//! **Who dials** is the liveness machine's decision ([`crate::peer`], "Who initiates"); on
//! [`crate::peer::Event::Reconnect`] the daemon drops the old connection and dials anew,
//! without blocking: the connect completes when the socket becomes writable.
//!
//! **Back-pressure.** Writes are non-blocking; what the kernel does not take waits in the
//! connection's buffer, up to [`MAX_PENDING`] bytes, beyond which frames are dropped and
//! counted (`send-full`) as on a full UDP socket: a TCP link must not grow an unbounded
//! queue behind a slow path, which would delay every frame of every guest on it.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::wire::{ParseError, StreamDecoder, MAX_PAYLOAD_LEN};

/// What a dialing daemon sends in answer to the control server's challenge.
pub const LINK_PREAMBLE: &str = "{\"link\":1}";

/// How long an accepted connection may stay silent before its first record (a hello).
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Bytes a connection may hold unsent before frames are dropped.
pub const MAX_PENDING: usize = 1 << 20;

/// One TCP connection of a link (or not yet of one).
#[derive(Debug)]
pub(super) struct TcpConn {
    stream: TcpStream,
    decoder: StreamDecoder,
    tx: Vec<u8>,
    /// Dialed, not yet connected.
    pub(super) connecting: bool,
    /// The dialer's first line from the server (the challenge) is not a record.
    skip_line: bool,
    opened: std::time::Instant,
}

impl TcpConn {
    /// Starts a non-blocking connect to `addr`.
    pub(super) fn dial(addr: SocketAddr) -> io::Result<TcpConn> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd: OwnedFd = sock::socket(
            family,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        match sock::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let mut conn = TcpConn::new(TcpStream::from(fd));
        conn.connecting = true;
        conn.skip_line = true;
        Ok(conn)
    }

    /// A connection the control server accepted and handed over, with what it had already
    /// read past the preamble.
    pub(super) fn accepted(stream: TcpStream, buffered: &[u8]) -> io::Result<TcpConn> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let mut conn = TcpConn::new(stream);
        conn.decoder.push(buffered);
        Ok(conn)
    }

    fn new(stream: TcpStream) -> TcpConn {
        TcpConn {
            stream,
            decoder: StreamDecoder::new(MAX_PAYLOAD_LEN),
            tx: Vec::new(),
            connecting: false,
            skip_line: false,
            opened: std::time::Instant::now(),
        }
    }

    /// After the socket became writable while connecting: whether the connect succeeded.
    /// On success the preamble is queued.
    pub(super) fn finish_connect(&mut self) -> io::Result<()> {
        if let Some(error) = self.stream.take_error()? {
            return Err(error);
        }
        // Not connected yet if the peer address is unknown (a spurious wake-up).
        self.stream.peer_addr()?;
        self.connecting = false;
        self.stream.set_nodelay(true)?;
        let mut preamble = LINK_PREAMBLE.as_bytes().to_vec();
        preamble.push(b'\n');
        preamble.append(&mut self.tx);
        self.tx = preamble;
        self.flush()
    }

    /// How long ago the connection was opened.
    pub(super) fn age(&self) -> std::time::Duration {
        self.opened.elapsed()
    }

    /// Whether there is something to write (or a connect to finish).
    pub(super) fn wants_write(&self) -> bool {
        self.connecting || !self.tx.is_empty()
    }

    /// Queues `bytes` (whole records only) and writes what the socket takes. `Ok(false)`
    /// when the buffer is full and nothing was queued.
    pub(super) fn send(&mut self, bytes: &[u8]) -> io::Result<bool> {
        if self.tx.len() + bytes.len() > MAX_PENDING {
            return Ok(false);
        }
        self.tx.extend_from_slice(bytes);
        if !self.connecting {
            self.flush()?;
        }
        Ok(true)
    }

    /// Writes queued bytes until the socket would block.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        let mut written = 0;
        while written < self.tx.len() {
            match self.stream.write(&self.tx[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.tx.drain(..written);
        Ok(())
    }

    /// Reads what is waiting into the decoder. `Err` when the peer closed or the connection
    /// failed.
    pub(super) fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    let mut bytes = &buf[..n];
                    if self.skip_line {
                        match bytes.iter().position(|&b| b == b'\n') {
                            Some(end) => {
                                self.skip_line = false;
                                bytes = &bytes[end + 1..];
                            }
                            None => continue,
                        }
                    }
                    self.decoder.push(bytes);
                    if self.decoder.buffered() > 4 * MAX_PENDING {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies the next complete record into `out`; `Ok(false)` when none is complete.
    ///
    /// # Errors
    /// A bad record header: the connection must be closed.
    pub(super) fn next_record(&mut self, out: &mut Vec<u8>) -> Result<bool, ParseError> {
        match self.decoder.pop()? {
            Some(datagram) => {
                out.clear();
                out.extend_from_slice(datagram.as_bytes());
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl AsFd for TcpConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

//! Connection set-up: one data connection per communicating pair, a control connection from
//! every rank to rank 0, and the start barrier.
//!
//! Rules: for every pair of ranks that exchanges data at some point of the run, the higher rank
//! connects to the lower one; every rank `> 0` also opens a control connection to rank 0. Each
//! rank binds its listener first, accepts on a background thread, and connects out with
//! retries (ranks start at different times), all within one deadline. Both sides check the
//! [`Hello`] (rank numbering, number of ranks, run configuration) and refuse mismatches with a
//! reason shown on both ends.

use std::collections::BTreeSet;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::addr::PeerAddr;
use super::report::RankReport;
use super::wire::{self, Channel, Hello, Tag};

/// Longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the accept loop checks its deadline.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// Who this rank is and how to reach the others.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// This rank.
    pub rank: usize,
    /// Every rank's address, by rank.
    pub peers: &'a [PeerAddr],
    /// Where this rank listens (usually `peers[rank]`).
    pub listen: &'a PeerAddr,
    /// Canonical description of the settings that must agree between ranks.
    pub config: &'a str,
    /// Time allowed for all connections to come up.
    pub timeout: Duration,
}

impl Setup<'_> {
    fn n(&self) -> usize {
        self.peers.len()
    }

    /// `rank R (host:port)`, for messages.
    pub fn label(&self, rank: usize) -> String {
        format!("rank {rank} ({})", self.peers[rank])
    }
}

/// All connections of one rank, ready for the run.
#[derive(Debug)]
pub struct Connections {
    /// Data connections, by partner rank (ascending).
    pub data: Vec<(usize, TcpStream)>,
    /// This rank's end of the control star.
    pub control: Control,
}

/// The control connections: a star centred on rank 0.
#[derive(Debug)]
pub enum Control {
    /// Rank 0's end: the connections from ranks `1..n`, in rank order.
    Root(Vec<TcpStream>),
    /// Any other rank's end: its connection to rank 0.
    Member(TcpStream),
}

/// Opens this rank's data connections to every rank in `partners` plus the control star,
/// all with `TCP_NODELAY` and without read timeouts.
///
/// # Errors
/// Cannot listen; a peer unreachable or silent until `setup.timeout`; a handshake refused
/// either way (inconsistent `--peers` or run settings).
pub fn establish(setup: &Setup<'_>, partners: &BTreeSet<usize>) -> Result<Connections> {
    let deadline = Instant::now() + setup.timeout;
    let (rank, n) = (setup.rank, setup.n());
    let mut expected: BTreeSet<(Channel, usize)> = partners
        .range(rank + 1..)
        .map(|&p| (Channel::Data, p))
        .collect();
    if rank == 0 {
        expected.extend((1..n).map(|r| (Channel::Control, r)));
    }

    let listener = bind(setup.listen)
        .with_context(|| format!("rank {rank} cannot listen on {}", setup.listen))?;
    let (tx, accepted) = mpsc::channel();
    if !expected.is_empty() {
        let acceptor = Acceptor {
            listener,
            expected: expected.clone(),
            rank,
            n,
            config: setup.config.to_string(),
            deadline,
        };
        thread::Builder::new()
            .name("patterns-accept".into())
            .spawn(move || acceptor.run(&tx))
            .context("cannot start the accept thread")?;
    }

    let mut control = None;
    if rank > 0 {
        control = Some(connect(setup, 0, Channel::Control, deadline)?);
    }
    let mut data = Vec::new();
    for &peer in partners.range(..rank) {
        data.push((peer, connect(setup, peer, Channel::Data, deadline)?));
    }

    let mut members = Vec::new();
    while !expected.is_empty() {
        let wait = deadline.saturating_duration_since(Instant::now());
        match accepted.recv_timeout(wait) {
            Ok(Ok((channel, from, stream))) => {
                expected.remove(&(channel, from));
                match channel {
                    Channel::Data => data.push((from, stream)),
                    Channel::Control => members.push((from, stream)),
                }
            }
            Ok(Err(refusal)) => bail!("{refusal}"),
            Err(_) => {
                let missing: BTreeSet<usize> = expected.iter().map(|&(_, r)| r).collect();
                let missing: Vec<String> = missing.iter().map(|&r| setup.label(r)).collect();
                bail!(
                    "rank {rank}: timed out after {} s waiting for {} to connect",
                    setup.timeout.as_secs_f64(),
                    missing.join(", ")
                );
            }
        }
    }
    data.sort_by_key(|&(peer, _)| peer);
    members.sort_by_key(|&(from, _)| from);
    let control = match control {
        Some(stream) => Control::Member(stream),
        None => Control::Root(members.into_iter().map(|(_, s)| s).collect()),
    };
    Ok(Connections { data, control })
}

impl Control {
    /// The start barrier: every rank > 0 reports ready (all its connections are up) and waits
    /// for rank 0's go, which rank 0 sends once it heard from everyone.
    ///
    /// # Errors
    /// A rank left (its connection closed) before the barrier completed.
    pub fn start_barrier(&mut self, setup: &Setup<'_>) -> Result<()> {
        match self {
            Control::Member(root) => {
                wire::write_control(root, Tag::Ready, b"")
                    .and_then(|()| wire::read_control(root, Tag::Go))
                    .with_context(|| {
                        format!("{} ended the run before it started", setup.label(0))
                    })?;
            }
            Control::Root(members) => {
                for (i, member) in members.iter_mut().enumerate() {
                    wire::read_control(member, Tag::Ready).with_context(|| {
                        format!("{} left before the start barrier", setup.label(i + 1))
                    })?;
                }
                for (i, member) in members.iter_mut().enumerate() {
                    wire::write_control(member, Tag::Go, b"").with_context(|| {
                        format!("{} left before the start barrier", setup.label(i + 1))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Collects the reports at rank 0: members send `own` and get `None`; rank 0 gets every
    /// rank's report in rank order, starting with `own`.
    ///
    /// # Errors
    /// A report cannot be sent, or a member's report does not arrive or is malformed.
    pub fn gather(self, own: RankReport, setup: &Setup<'_>) -> Result<Option<Vec<RankReport>>> {
        match self {
            Control::Member(mut root) => {
                let json = serde_json::to_vec(&own).context("cannot encode the report")?;
                wire::write_control(&mut root, Tag::Report, &json)
                    .with_context(|| format!("cannot send the report to {}", setup.label(0)))?;
                Ok(None)
            }
            Control::Root(members) => {
                let mut reports = vec![own];
                for (i, mut member) in members.into_iter().enumerate() {
                    let from = setup.label(i + 1);
                    let body = wire::read_control(&mut member, Tag::Report)
                        .with_context(|| format!("{from} did not deliver its report"))?;
                    let report: RankReport = serde_json::from_slice(&body)
                        .with_context(|| format!("{from} sent a malformed report"))?;
                    if report.rank != i + 1 {
                        bail!("{from} sent the report of rank {}", report.rank);
                    }
                    reports.push(report);
                }
                Ok(Some(reports))
            }
        }
    }
}

fn bind(addr: &PeerAddr) -> io::Result<TcpListener> {
    TcpListener::bind(&addr.resolve()?[..])
}

/// Connects to `to` (retrying until `deadline`) and completes the handshake.
fn connect(setup: &Setup<'_>, to: usize, channel: Channel, deadline: Instant) -> Result<TcpStream> {
    let rank = setup.rank;
    let who = setup.label(to);
    let mut stream = connect_with_retry(&setup.peers[to], deadline).map_err(|e| {
        anyhow!(
            "rank {rank} cannot reach {who} within {} s: {e}",
            setup.timeout.as_secs_f64()
        )
    })?;
    let hello = Hello {
        channel,
        from: wire_rank(rank)?,
        to: wire_rank(to)?,
        n: wire_rank(setup.n())?,
        config: setup.config.to_string(),
    };
    match say_hello(&mut stream, &hello, deadline) {
        Ok(None) => Ok(stream),
        Ok(Some(reason)) => bail!("{who} refused the connection from rank {rank}: {reason}"),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            bail!(
                "rank {rank}: {who} accepted the connection but did not answer the handshake \
                 within {} s (is something else listening there?)",
                setup.timeout.as_secs_f64()
            )
        }
        Err(e) => bail!("rank {rank}: handshake with {who} failed: {e}"),
    }
}

/// Sends `hello` and returns the peer's answer (`Some(reason)` if it refused).
fn say_hello(
    stream: &mut TcpStream,
    hello: &Hello,
    deadline: Instant,
) -> io::Result<Option<String>> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(remaining(deadline)))?;
    hello.write_to(stream)?;
    let ack = wire::read_ack(stream)?;
    stream.set_read_timeout(None)?;
    Ok(ack)
}

/// Connects to `addr`, retrying with exponential backoff until `deadline`; returns the last
/// error if it never succeeds.
fn connect_with_retry(addr: &PeerAddr, deadline: Instant) -> io::Result<TcpStream> {
    let mut backoff = Duration::from_millis(20);
    loop {
        let attempt = addr.resolve().and_then(|candidates| {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for candidate in candidates {
                let limit = remaining(deadline).min(Duration::from_secs(5));
                match TcpStream::connect_timeout(&candidate, limit) {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = e,
                }
            }
            Err(last)
        });
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {
                thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Time left until `deadline`, at least a little (zero timeouts are invalid for sockets).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100))
}

fn wire_rank(x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| anyhow!("{x} ranks are more than the protocol supports"))
}

/// An accepted, checked connection: its purpose, the peer's rank and the stream.
type Accepted = (Channel, usize, TcpStream);

/// The accepting side of [`establish`], run on its own thread.
struct Acceptor {
    listener: TcpListener,
    expected: BTreeSet<(Channel, usize)>,
    rank: usize,
    n: usize,
    config: String,
    deadline: Instant,
}

impl Acceptor {
    /// Accepts until every expected connection arrived, the deadline passed (the main thread
    /// reports that) or a handshake failed (sent as `Err`, which ends the loop).
    fn run(mut self, out: &mpsc::Sender<Result<Accepted, String>>) {
        if let Err(e) = self.listener.set_nonblocking(true) {
            let _ = out.send(Err(format!(
                "rank {}: cannot configure the listener: {e}",
                self.rank
            )));
            return;
        }
        while !self.expected.is_empty() && Instant::now() < self.deadline {
            let (stream, from) = match self.listener.accept() {
                Ok(conn) => conn,
                Err(e) if is_transient(&e) => {
                    thread::sleep(ACCEPT_POLL);
                    continue;
                }
                Err(e) => {
                    let _ = out.send(Err(format!("rank {}: accept failed: {e}", self.rank)));
                    return;
                }
            };
            let result = self.handshake(stream).map_err(|e| {
                format!(
                    "rank {}: bad incoming connection from {from}: {e}",
                    self.rank
                )
            });
            let failed = result.is_err();
            if out.send(result).is_err() || failed {
                return;
            }
        }
    }

    /// Reads and checks a hello, answers it, and returns the accepted connection.
    fn handshake(&mut self, mut stream: TcpStream) -> Result<Accepted, String> {
        let io = |e: io::Error| e.to_string();
        stream.set_nonblocking(false).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream
            .set_read_timeout(Some(remaining(self.deadline)))
            .map_err(io)?;
        let hello = Hello::read_from(&mut stream).map_err(io)?;
        match self.check(&hello) {
            Ok(key) => {
                wire::write_ack(&mut stream, None).map_err(io)?;
                stream.set_read_timeout(None).map_err(io)?;
                self.expected.remove(&key);
                Ok((key.0, key.1, stream))
            }
            Err(reason) => {
                // Best effort: the refusal is reported here in any case.
                let _ = wire::write_ack(&mut stream, Some(&reason));
                Err(reason)
            }
        }
    }

    fn check(&self, hello: &Hello) -> Result<(Channel, usize), String> {
        let (rank, from) = (self.rank, hello.from);
        if usize::try_from(hello.n).ok() != Some(self.n) {
            return Err(format!(
                "rank {from} was started with {} ranks, rank {rank} with {} (check --peers)",
                hello.n, self.n
            ));
        }
        if usize::try_from(hello.to).ok() != Some(rank) {
            return Err(format!(
                "rank {from} expected rank {} at this address, but rank {rank} listens here \
                 (check --peers)",
                hello.to
            ));
        }
        if hello.config != self.config {
            return Err(format!(
                "settings differ: rank {from} runs `{}`, rank {rank} runs `{}` (--op, --size, \
                 --iterations and --schedule must be identical on all ranks)",
                hello.config, self.config
            ));
        }
        let key = (hello.channel, usize::try_from(from).unwrap_or(usize::MAX));
        if !self.expected.contains(&key) {
            return Err(format!(
                "unexpected {} connection from rank {from} (duplicate rank, or --peers differs \
                 between ranks)",
                hello.channel
            ));
        }
        Ok(key)
    }
}

/// Accept errors that just mean "nothing yet" or a connection that died while queued.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    )
}

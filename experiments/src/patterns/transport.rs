//! The data plane during the run: one writer and one reader thread per data connection.
//!
//! The main thread never touches a socket. It hands messages to a connection's writer thread
//! through a bounded queue (one message may wait besides the one being written, so a rank
//! that only sends cannot run arbitrarily far ahead), and it learns about arrivals from
//! notices that reader threads post once they have read (and discarded) a whole message.
//! Readers drain their sockets continuously, independent of what the main thread waits for,
//! so every writer makes progress while its peer is alive: no combination of message sizes
//! and orders can deadlock.
//!
//! Per connection, messages arrive in the order they were sent, and both ends follow the same
//! plan, so the next message from a peer must be for exactly the iteration the main thread
//! expects; anything else is reported as a protocol error.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use anyhow::{anyhow, bail, Context, Result};

use super::wire::{self, DATA_HEADER};

/// Messages that may wait in a connection's send queue, besides the one being written.
const SEND_QUEUE: usize = 1;
/// Read buffer of the reader threads.
const READ_CHUNK: usize = 256 * 1024;

/// Payload bytes and messages moved so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Payload bytes handed to writer threads.
    pub bytes_sent: u64,
    /// Payload bytes of consumed messages.
    pub bytes_received: u64,
    /// Messages handed to writer threads.
    pub messages_sent: u64,
    /// Messages consumed.
    pub messages_received: u64,
}

/// The data connections of one rank while the run is in progress.
#[derive(Debug)]
pub struct Transport {
    /// Sending side, by peer rank (`None`: no connection).
    links: Vec<Option<Link>>,
    /// Iterations of the arrived but not yet consumed messages, by peer rank, in arrival order.
    inbox: Vec<VecDeque<u64>>,
    /// Why a peer's incoming stream ended, once it did, by peer rank.
    ended: Vec<Option<String>>,
    events: Receiver<Event>,
    /// `rank R (host:port)` by rank, for messages.
    labels: Vec<String>,
    size: u64,
    counters: Counters,
}

#[derive(Debug)]
struct Link {
    jobs: SyncSender<u64>,
    writer: JoinHandle<io::Result<()>>,
}

/// What reader and writer threads tell the main thread.
#[derive(Debug)]
enum Event {
    /// A whole message for `iteration` arrived from `peer`.
    Arrived { peer: usize, iteration: u64 },
    /// Nothing more will arrive from `peer`.
    Ended { peer: usize, reason: String },
    /// Writing to `peer` failed.
    WriteFailed { peer: usize, error: String },
}

impl Transport {
    /// Starts the reader and writer threads for `connections` (peer rank, stream). Every
    /// message sent carries `payload`; every message received must be as long. `labels` names
    /// every rank for error messages.
    ///
    /// # Errors
    /// A stream cannot be duplicated or a thread cannot be started.
    pub fn start(
        connections: Vec<(usize, TcpStream)>,
        labels: Vec<String>,
        payload: Arc<[u8]>,
    ) -> Result<Self> {
        let n = labels.len();
        let size = payload.len() as u64;
        let (events_tx, events) = mpsc::channel();
        let mut links: Vec<Option<Link>> = (0..n).map(|_| None).collect();
        for (peer, stream) in connections {
            let incoming = stream.try_clone().context("cannot duplicate a socket")?;
            let tx = events_tx.clone();
            thread::Builder::new()
                .name(format!("patterns-rx-{peer}"))
                .spawn(move || read_loop(peer, incoming, size, &tx))
                .context("cannot start a reader thread")?;
            let (jobs, queue) = mpsc::sync_channel(SEND_QUEUE);
            let tx = events_tx.clone();
            let payload = Arc::clone(&payload);
            let writer = thread::Builder::new()
                .name(format!("patterns-tx-{peer}"))
                .spawn(move || write_loop(peer, stream, &queue, &payload, &tx))
                .context("cannot start a writer thread")?;
            links[peer] = Some(Link { jobs, writer });
        }
        Ok(Transport {
            links,
            inbox: vec![VecDeque::new(); n],
            ended: vec![None; n],
            events,
            labels,
            size,
            counters: Counters::default(),
        })
    }

    /// Queues this iteration's message to `peer`; blocks while that connection's queue is full.
    ///
    /// # Errors
    /// There is no connection to `peer`, or writing to it failed.
    pub fn send(&mut self, peer: usize, iteration: u64) -> Result<()> {
        let label = &self.labels[peer];
        let link = self.links[peer]
            .take()
            .ok_or_else(|| anyhow!("no connection to {label}"))?;
        if link.jobs.send(iteration).is_err() {
            // The writer only stops early on an error; report it.
            return Err(match link.writer.join() {
                Ok(Err(e)) => anyhow!("sending to {label} in iteration {iteration} failed: {e}"),
                Ok(Ok(())) => anyhow!("the connection to {label} closed in iteration {iteration}"),
                Err(_) => anyhow!("the writer thread for {label} panicked"),
            });
        }
        self.links[peer] = Some(link);
        self.counters.bytes_sent += self.size;
        self.counters.messages_sent += 1;
        Ok(())
    }

    /// Waits for `peer`'s message of `iteration` and consumes it.
    ///
    /// # Errors
    /// The connection to `peer` ended first, the next message from `peer` is for another
    /// iteration, or writing to any peer failed meanwhile.
    pub fn receive(&mut self, peer: usize, iteration: u64) -> Result<()> {
        loop {
            if let Some(got) = self.inbox[peer].pop_front() {
                if got != iteration {
                    bail!(
                        "protocol error: {} sent its message of iteration {got} while this rank \
                         expected iteration {iteration} (do all ranks run the same binary?)",
                        self.labels[peer]
                    );
                }
                self.counters.bytes_received += self.size;
                self.counters.messages_received += 1;
                return Ok(());
            }
            if let Some(reason) = &self.ended[peer] {
                bail!(
                    "lost {} while waiting for its message of iteration {iteration}: {reason}",
                    self.labels[peer]
                );
            }
            match self.events.recv() {
                Ok(Event::Arrived {
                    peer: from,
                    iteration: got,
                }) => self.inbox[from].push_back(got),
                Ok(Event::Ended { peer: from, reason }) => self.ended[from] = Some(reason),
                Ok(Event::WriteFailed { peer: to, error }) => {
                    bail!("sending to {} failed: {error}", self.labels[to])
                }
                Err(mpsc::RecvError) => bail!("all data connections are gone"),
            }
        }
    }

    /// Waits until every queued message has been handed to the kernel, half-closes every
    /// connection (the peer sees the end of the stream) and returns the counters. Reader
    /// threads keep running until their peers half-close or close in turn.
    ///
    /// # Errors
    /// Writing to some peer failed.
    pub fn finish(mut self) -> Result<Counters> {
        for (peer, link) in self.links.iter_mut().enumerate() {
            if let Some(link) = link.take() {
                let Link { jobs, writer } = link;
                drop(jobs);
                match writer.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => bail!("sending to {} failed: {e}", self.labels[peer]),
                    Err(_) => bail!("the writer thread for {} panicked", self.labels[peer]),
                }
            }
        }
        Ok(self.counters)
    }
}

/// Writer thread: writes one message per queued iteration until the queue closes.
fn write_loop(
    peer: usize,
    mut stream: TcpStream,
    jobs: &Receiver<u64>,
    payload: &[u8],
    events: &Sender<Event>,
) -> io::Result<()> {
    let len = payload.len() as u64;
    for iteration in jobs {
        let header = wire::data_header(iteration, len);
        if let Err(e) = wire::write_message(&mut stream, &header, payload) {
            // The main thread may be waiting on a receive; tell it right away.
            let _ = events.send(Event::WriteFailed {
                peer,
                error: e.to_string(),
            });
            return Err(e);
        }
    }
    // Tell the peer that nothing more is coming, so its reader thread ends. Everything was
    // handed to the kernel already; if this fails the peer is gone and will say so itself.
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// Reader thread: reads whole messages of `size` payload bytes, discards the payload and
/// posts a notice for each, until the stream ends or breaks (posted as the last event).
fn read_loop(peer: usize, mut stream: TcpStream, size: u64, events: &Sender<Event>) {
    let mut scratch = vec![0u8; READ_CHUNK];
    let reason = loop {
        let mut header = [0u8; DATA_HEADER];
        match wire::read_exact_or_eof(&mut stream, &mut header) {
            Ok(true) => {}
            Ok(false) => break "the connection was closed".to_string(),
            Err(e) => break e.to_string(),
        }
        let (iteration, len) = wire::parse_data_header(&header);
        if len != size {
            break format!("protocol error: a message of {len} bytes, expected {size}");
        }
        if let Err(e) = discard(&mut stream, len, &mut scratch) {
            break format!("{e} (in the middle of a message)");
        }
        if events.send(Event::Arrived { peer, iteration }).is_err() {
            return; // The main thread is gone.
        }
    };
    let _ = events.send(Event::Ended { peer, reason });
}

/// Reads and drops exactly `len` bytes.
fn discard(r: &mut impl Read, mut len: u64, scratch: &mut [u8]) -> io::Result<()> {
    while len > 0 {
        let chunk = usize::try_from(len).map_or(scratch.len(), |l| l.min(scratch.len()));
        match r.read(&mut scratch[..chunk]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(got) => len -= got as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Two transports over one loopback connection, each the other's only peer.
    fn pair(size: usize) -> (Transport, Transport) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        let labels = || vec!["rank 0 (a)".to_string(), "rank 1 (b)".to_string()];
        let payload: Arc<[u8]> = vec![1u8; size].into();
        let t0 = Transport::start(vec![(1, a)], labels(), Arc::clone(&payload)).unwrap();
        let t1 = Transport::start(vec![(0, b)], labels(), payload).unwrap();
        (t0, t1)
    }

    #[test]
    fn large_messages_both_ways_do_not_deadlock() {
        let (mut a, mut b) = pair(4 << 20);
        let other = thread::spawn(move || {
            for i in 0..5 {
                b.send(0, i).unwrap();
                b.receive(0, i).unwrap();
            }
            b.finish().unwrap()
        });
        for i in 0..5 {
            a.send(1, i).unwrap();
            a.receive(1, i).unwrap();
        }
        let mine = a.finish().unwrap();
        let theirs = other.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(mine.bytes_sent, 5 * (4 << 20));
        assert_eq!(mine.messages_received, 5);
    }

    #[test]
    fn wrong_iteration_and_lost_peer_are_errors() {
        let (mut a, mut b) = pair(10);
        b.send(0, 7).unwrap();
        let err = a.receive(1, 3).unwrap_err().to_string();
        assert!(
            err.contains("iteration 7") && err.contains("expected iteration 3"),
            "{err}"
        );
        b.finish().unwrap();
        let err = a.receive(1, 8).unwrap_err().to_string();
        assert!(err.contains("lost rank 1 (b)"), "{err}");
        assert!(a
            .send(0, 0)
            .unwrap_err()
            .to_string()
            .contains("no connection to rank 0"));
    }
}

//! The offline tuning tool's library (the `vttif` binary is its command line): packet traces
//! replayed through the inference exactly as the Proxy runs it, measured against what the
//! application really did, over a grid of parameters if asked.
//!
//! ```text
//! read_pcap ─▶ Capture ┐                Samples::new            Samples::replay
//! read_pcap ─▶ Capture ┼─ Trace::merge ─▶ Trace ─▶ Samples ─────────▶ Replay ─┐
//!                      ┘ (counting rule)          (one delta per   (Service)  ├─ Metrics::new
//!                                                  update interval)  Truth ───┘
//! ```
//!
//! [`Synth`] makes a trace and its truth without a testbed.
//!
//! # Counting, as the daemons count
//!
//! A daemon counts every frame where it enters the overlay, at the port of the guest that
//! sent it: by (source MAC, destination MAC) as in the Ethernet header, its bytes of Ethernet
//! frame, one frame each, group destinations (broadcast, multicast) included — the inference
//! keeps those apart. A capture on a guest's TAP (`tcpdump -i vmtap -w f.pcap`) shows the
//! same frames, so here a frame counts with its length on the wire (the record's `orig_len`,
//! whatever the snapshot length kept). Skipped, and reported per file, are the frames a daemon
//! would not count: those too short to hold an Ethernet header, and those from a group
//! source address (a port drops them).
//!
//! # Frames seen twice
//!
//! A frame between two guests whose ports were both captured is in both files. The daemons
//! count it once, at the sender's port, and so does this: with several files, each file
//! counts only the frames *sent by its local MACs*, the guests of the port it was captured
//! on. They are given per file (the tool's `--local TRACE=MAC,...`, like a port's MAC list),
//! or else the file is taken to be one guest's port, whose local MAC is the file's *owner*:
//! the MAC at one end of the most unicast frames in it (a guest is an end of every unicast
//! frame on its own port, each of its peers only of their own exchanges). A guest with a
//! single peer ties with that peer; the tie goes to the MAC that owns no other file. If that
//! does not settle it, or a MAC would be local to two files, merging fails and asks for the
//! local MACs. A file without unicast frames has no owner and counts nothing.
//!
//! A single file counts every frame it holds: it is the whole capture (one port, or a
//! bridge or mirror where every frame appears once).
//!
//! Files are merged by timestamp, so the hosts' clocks should agree (NTP): a skew shifts that
//! host's traffic by as much. Time 0 is the earliest frame of any file.
//!
//! # Replay
//!
//! [`Samples`] groups the counted frames into update intervals of `1 / update_hz` from time
//! 0, summed per (source, destination): the deltas daemons ship. [`Samples::replay`] hands
//! each interval's delta to a [`Service`] at the interval's end and evaluates there, as the
//! Proxy does at each update tick, until the interval of the last frame.
//!
//! # Truth and metrics
//!
//! A [`Truth`] (a small TOML file, see [`Truth::parse`]) lists the application's phases and
//! each one's topology. [`Metrics::new`] compares a replay with it; see [`Metrics`] for the
//! definitions.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::classify::Shape;
use crate::infer::pair;
use crate::pcap_writer::PcapWriter;
use crate::rng::Rng;
use crate::update::Entry;
use crate::{Change, Mac, Pair, Params, ParamsError, Service};

/// One Ethernet frame of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// When it was captured, since the UNIX epoch.
    pub at: Duration,
    /// The source MAC.
    pub src: Mac,
    /// The destination MAC.
    pub dst: Mac,
    /// Its length on the wire: bytes of Ethernet frame, without the FCS.
    pub len: u32,
}

/// The frames of one capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The name it goes by (its path as given).
    pub name: String,
    /// Its frames that hold an Ethernet header, in file order.
    pub frames: Vec<Frame>,
    /// Frames too short to hold an Ethernet header.
    pub short: u64,
}

/// Why a capture file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// libpcap could not open it (missing, unreadable, not a pcap or pcapng file).
    #[error("{path}: {error}")]
    Open {
        /// The file.
        path: String,
        /// What libpcap said.
        error: pcap::Error,
    },
    /// Its frames are not Ethernet frames.
    #[error(
        "{path}: link type {name} ({code}) is not Ethernet: capture on the guest's TAP or \
         port (tcpdump -i vmtap -w FILE)"
    )]
    LinkType {
        /// The file.
        path: String,
        /// libpcap's name of the link type.
        name: String,
        /// Its number.
        code: i32,
    },
    /// A record could not be read (a truncated or corrupt file).
    #[error("{path}: record {index}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The record's position, from 0.
        index: u64,
        /// What libpcap said.
        error: pcap::Error,
    },
    /// A record's timestamp is before 1970.
    #[error("{path}: record {index} has a timestamp before 1970")]
    Timestamp {
        /// The file.
        path: String,
        /// The record's position, from 0.
        index: u64,
    },
}

/// The destination and source MACs of a frame, if it holds an Ethernet header.
fn ethernet_addresses(frame: &[u8]) -> Option<(Mac, Mac)> {
    let dst = frame.get(0..6)?.try_into().ok()?;
    let src = frame.get(6..12)?.try_into().ok()?;
    frame.get(12..14)?;
    Some((Mac(dst), Mac(src)))
}

/// Reads a capture (pcap or pcapng, Ethernet link type).
///
/// # Errors
/// See [`TraceError`]; each names the file.
pub fn read_pcap(path: &Path) -> Result<Capture, TraceError> {
    let name = path.display().to_string();
    let mut file = pcap::Capture::from_file(path).map_err(|error| TraceError::Open {
        path: name.clone(),
        error,
    })?;
    let link = file.get_datalink();
    if link != pcap::Linktype::ETHERNET {
        return Err(TraceError::LinkType {
            name: link.get_name().unwrap_or_else(|_| "unknown".to_string()),
            code: link.0,
            path: name,
        });
    }
    let mut frames = Vec::new();
    let mut short = 0;
    for index in 0u64.. {
        let packet = match file.next_packet() {
            Ok(packet) => packet,
            Err(pcap::Error::NoMorePackets) => break,
            Err(error) => {
                return Err(TraceError::Read {
                    path: name,
                    index,
                    error,
                })
            }
        };
        let ts = packet.header.ts;
        let (Ok(secs), Ok(micros)) = (u64::try_from(ts.tv_sec), u64::try_from(ts.tv_usec)) else {
            return Err(TraceError::Timestamp { path: name, index });
        };
        let Some((dst, src)) = ethernet_addresses(packet.data) else {
            short += 1;
            continue;
        };
        frames.push(Frame {
            at: Duration::from_secs(secs) + Duration::from_micros(micros),
            src,
            dst,
            len: packet.header.len,
        });
    }
    Ok(Capture {
        name,
        frames,
        short,
    })
}

/// The snapshot length of the traces [`write_pcap`] writes: a frame's first 64 bytes are
/// kept (its headers), its length on the wire is recorded in full.
pub const SNAPLEN: u32 = 64;

/// The EtherType of written frames: IEEE 802 local experimental EtherType 1, as the frames
/// carry no real protocol.
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// Writes `frames` as a classic pcap file (microsecond timestamps, Ethernet link type,
/// snapshot length [`SNAPLEN`]): each record keeps the frame's addresses and EtherType, then
/// zeros, up to its length or the snapshot length.
///
/// # Errors
/// Writing fails, or a timestamp is past 2106 (the format's 32-bit seconds).
pub fn write_pcap(out: impl Write, frames: &[Frame]) -> io::Result<()> {
    let mut w = PcapWriter::new(out, SNAPLEN)?;
    let mut bytes = Vec::new();
    for f in frames {
        bytes.clear();
        bytes.extend_from_slice(&f.dst.0);
        bytes.extend_from_slice(&f.src.0);
        bytes.extend_from_slice(&ETHERTYPE);
        let len = usize::try_from(f.len).unwrap_or(usize::MAX);
        bytes.resize(len.clamp(14, usize::try_from(SNAPLEN).unwrap_or(14)), 0);
        w.write(f.at, &bytes, len)?;
    }
    w.flush()
}

/// What became of one file's frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The file.
    pub name: String,
    /// Frames that hold an Ethernet header.
    pub frames: u64,
    /// Frames too short to hold one (skipped).
    pub short: u64,
    /// Frames from a group source address (skipped).
    pub group_source: u64,
    /// The MACs whose frames counted; `None` when every sender's did (a single file).
    pub local: Option<Vec<Mac>>,
    /// Whether `local` is the file's owner, found from its frames, rather than given.
    pub owner_inferred: bool,
    /// Frames counted.
    pub counted: u64,
}

/// The frames the daemons would have counted, from one or more captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Time 0: the earliest frame of any file, since the UNIX epoch.
    pub start: Duration,
    /// The counted frames, by time.
    pub frames: Vec<Frame>,
    /// Per file, in the order given.
    pub files: Vec<FileSummary>,
}

/// Why captures cannot be merged into a trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// No file has an Ethernet frame.
    #[error("no Ethernet frames in {0}")]
    Empty(String),
    /// Two captures go by one name.
    #[error("{0} is given twice")]
    Twice(String),
    /// Local MACs were given for a file that is not among the traces.
    #[error(
        "local MACs given for `{0}`, which is not one of the traces (name it exactly as the trace)"
    )]
    UnknownFile(String),
    /// A file's owner cannot be told from its frames.
    #[error(
        "{name}: cannot tell whose port this is: {} are each at one end of as many frames; \
         give its local MACs (--local {name}=MAC,...)",
        list(candidates)
    )]
    Ambiguous {
        /// The file.
        name: String,
        /// The MACs that tie.
        candidates: Vec<Mac>,
    },
    /// A MAC is local to two files, so its frames would count twice.
    #[error(
        "{mac} would be local to both {first} and {second}, counting its frames twice; give \
         each trace's local MACs (--local TRACE=MAC,...)"
    )]
    SharedLocal {
        /// The MAC.
        mac: Mac,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// The files span more than [`Trace::MAX_SPAN`].
    #[error(
        "the traces span {:.0} s, more than 31 days: are the files from one run, with the \
         hosts' clocks in agreement?",
        .0.as_secs_f64()
    )]
    TooLong(Duration),
}

fn list(macs: &[Mac]) -> String {
    macs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The MACs at one end of the most unicast frames of `frames`.
fn owner_candidates(frames: &[Frame]) -> BTreeSet<Mac> {
    let mut ends: BTreeMap<Mac, u64> = BTreeMap::new();
    for f in frames {
        if !f.src.is_group() && !f.dst.is_group() && f.src != f.dst {
            *ends.entry(f.src).or_default() += 1;
            *ends.entry(f.dst).or_default() += 1;
        }
    }
    let most = ends.values().copied().max().unwrap_or(0);
    ends.into_iter()
        .filter(|&(_, n)| n == most)
        .map(|(mac, _)| mac)
        .collect()
}

impl Trace {
    /// The longest span of time a trace may cover: 31 days.
    pub const MAX_SPAN: Duration = Duration::from_secs(31 * 24 * 3600);

    /// Merges captures, counting each frame once as the module documentation says: with
    /// several files, each counts the frames sent by its local MACs, from `local` (keyed by
    /// [`Capture::name`]) or else its owner's.
    ///
    /// # Errors
    /// See [`MergeError`].
    pub fn merge(
        captures: Vec<Capture>,
        local: &BTreeMap<String, BTreeSet<Mac>>,
    ) -> Result<Trace, MergeError> {
        let mut names = BTreeSet::new();
        if let Some(c) = captures.iter().find(|c| !names.insert(&c.name)) {
            return Err(MergeError::Twice(c.name.clone()));
        }
        if let Some(name) = local
            .keys()
            .find(|name| !captures.iter().any(|c| &c.name == *name))
        {
            return Err(MergeError::UnknownFile(name.clone()));
        }
        let start = captures
            .iter()
            .flat_map(|c| c.frames.iter().map(|f| f.at))
            .min();
        let end = captures
            .iter()
            .flat_map(|c| c.frames.iter().map(|f| f.at))
            .max();
        let (Some(start), Some(end)) = (start, end) else {
            let names: Vec<&str> = captures.iter().map(|c| c.name.as_str()).collect();
            return Err(MergeError::Empty(names.join(", ")));
        };
        if end - start > Self::MAX_SPAN {
            return Err(MergeError::TooLong(end - start));
        }
        let locals = if captures.len() == 1 && local.is_empty() {
            vec![None]
        } else {
            Self::locals(&captures, local)?
                .into_iter()
                .map(Some)
                .collect()
        };
        let mut frames: Vec<Frame> = Vec::new();
        let mut files = Vec::new();
        for (capture, locals) in captures.into_iter().zip(locals) {
            let group_source = capture.frames.iter().filter(|f| f.src.is_group()).count();
            let before = frames.len();
            frames.extend(capture.frames.iter().filter(|f| {
                !f.src.is_group() && locals.as_ref().is_none_or(|l| l.contains(&f.src))
            }));
            files.push(FileSummary {
                frames: capture.frames.len() as u64,
                short: capture.short,
                group_source: group_source as u64,
                owner_inferred: locals.is_some() && !local.contains_key(&capture.name),
                local: locals.map(|l| l.into_iter().collect()),
                counted: (frames.len() - before) as u64,
                name: capture.name,
            });
        }
        frames.sort_by_key(|f| f.at);
        Ok(Trace {
            start,
            frames,
            files,
        })
    }

    /// Every file's local MACs: given, or its owner.
    fn locals(
        captures: &[Capture],
        local: &BTreeMap<String, BTreeSet<Mac>>,
    ) -> Result<Vec<BTreeSet<Mac>>, MergeError> {
        let mut decided: Vec<Option<BTreeSet<Mac>>> = captures
            .iter()
            .map(|c| local.get(&c.name).cloned())
            .collect();
        let candidates: Vec<BTreeSet<Mac>> = captures
            .iter()
            .map(|c| owner_candidates(&c.frames))
            .collect();
        // Unique owners first; then ties, each broken by the MACs other files own, for as
        // long as that decides more files.
        loop {
            let taken: BTreeSet<Mac> = decided.iter().flatten().flatten().copied().collect();
            let mut progress = false;
            for (i, candidates) in candidates.iter().enumerate() {
                if decided[i].is_some() {
                    continue;
                }
                let left: BTreeSet<Mac> = if candidates.len() <= 1 {
                    candidates.clone()
                } else {
                    candidates.difference(&taken).copied().collect()
                };
                if left.len() == 1 || candidates.is_empty() {
                    decided[i] = Some(left);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        let mut owner_of: BTreeMap<Mac, usize> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, d) in decided.into_iter().enumerate() {
            let Some(d) = d else {
                return Err(MergeError::Ambiguous {
                    name: captures[i].name.clone(),
                    candidates: candidates[i].iter().copied().collect(),
                });
            };
            for &mac in &d {
                if let Some(&first) = owner_of.get(&mac) {
                    return Err(MergeError::SharedLocal {
                        mac,
                        first: captures[first].name.clone(),
                        second: captures[i].name.clone(),
                    });
                }
                owner_of.insert(mac, i);
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// A trace as the Proxy would receive it: per update interval, the traffic per (source,
/// destination).
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    update_hz: f64,
    interval: Duration,
    /// The intervals that hold traffic, by index (interval `k` covers `[k, k + 1)` update
    /// intervals from time 0).
    deltas: Vec<(usize, Vec<Entry>)>,
    /// How many intervals the trace covers, through the one of its last frame.
    intervals: usize,
}

impl Samples {
    /// Groups `trace` into update intervals at `params.update_hz` (the window and threshold
    /// are checked, not used).
    ///
    /// # Errors
    /// Parameters out of range ([`Params::check`]).
    pub fn new(trace: &Trace, params: &Params) -> Result<Samples, ParamsError> {
        params.check()?;
        let interval = params.update_interval();
        let index = |f: &Frame| {
            let k = f.at.saturating_sub(trace.start).as_nanos() / interval.as_nanos();
            // A merged trace spans at most `Trace::MAX_SPAN`: some 54 million intervals.
            usize::try_from(k).unwrap_or(usize::MAX)
        };
        let mut deltas: Vec<(usize, Vec<Entry>)> = Vec::new();
        let mut sums: BTreeMap<(Mac, Mac), (u64, u64)> = BTreeMap::new();
        let mut current = None;
        let mut flush = |k: Option<usize>, sums: &mut BTreeMap<(Mac, Mac), (u64, u64)>| {
            if let Some(k) = k {
                let entries = std::mem::take(sums)
                    .into_iter()
                    .map(|((src, dst), (bytes, frames))| Entry {
                        src,
                        dst,
                        bytes,
                        frames,
                    })
                    .collect();
                deltas.push((k, entries));
            }
        };
        for f in &trace.frames {
            let k = index(f);
            if current != Some(k) {
                flush(current, &mut sums);
                current = Some(k);
            }
            let sum = sums.entry((f.src, f.dst)).or_default();
            sum.0 = sum.0.saturating_add(u64::from(f.len));
            sum.1 = sum.1.saturating_add(1);
        }
        flush(current, &mut sums);
        let intervals = current.map_or(0, |k| k.saturating_add(1));
        Ok(Samples {
            update_hz: params.update_hz,
            interval,
            deltas,
            intervals,
        })
    }

    /// The update rate the intervals were made for.
    pub fn update_hz(&self) -> f64 {
        self.update_hz
    }

    /// How many update intervals the trace covers (and evaluations a replay makes).
    pub fn intervals(&self) -> usize {
        self.intervals
    }

    /// Feeds every interval's traffic to a [`Service`] with this window and threshold at the
    /// interval's end, and evaluates there; returns every change declared.
    ///
    /// # Errors
    /// Parameters out of range ([`Params::check`]).
    pub fn replay(&self, window: Duration, threshold: f64) -> Result<Replay, ParamsError> {
        let params = Params {
            update_hz: self.update_hz,
            window,
            threshold,
        };
        let mut service = Service::new(params)?;
        let mut deltas = self.deltas.iter().peekable();
        let mut changes = Vec::new();
        for k in 0..self.intervals {
            let now = end_of(self.interval, k);
            if let Some((_, entries)) = deltas.next_if(|(i, _)| *i == k) {
                service.record(now, entries);
            }
            if let Some(change) = service.evaluate(now) {
                let shapes = service.shapes().iter().map(ToString::to_string).collect();
                changes.push(Declared::new(&change, shapes));
            }
        }
        Ok(Replay {
            params,
            evaluations: self.intervals,
            changes,
        })
    }
}

/// The end of interval `k`: `(k + 1)` intervals from time 0.
fn end_of(interval: Duration, k: usize) -> Duration {
    interval.saturating_mul(u32::try_from(k.saturating_add(1)).unwrap_or(u32::MAX))
}

/// A change declared during a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Declared {
    /// When, in seconds from time 0.
    pub at_s: f64,
    /// How many were declared before it.
    pub number: u64,
    /// The topology declared: its edges, the smaller MAC first, sorted.
    pub edges: Vec<Pair>,
    /// Every known shape it has.
    pub shapes: Vec<String>,
    /// Edges it added.
    pub added: Vec<Pair>,
    /// Edges it removed.
    pub removed: Vec<Pair>,
    /// From the first evaluation whose candidate differed from the old topology to this
    /// declaration (s).
    pub settle_s: f64,
}

impl Declared {
    fn new(change: &Change, shapes: Vec<String>) -> Declared {
        Declared {
            at_s: change.at.as_secs_f64(),
            number: change.number,
            edges: change.topology.edges.keys().copied().collect(),
            shapes,
            added: change.added.clone(),
            removed: change.removed.clone(),
            settle_s: change.settle.as_secs_f64(),
        }
    }
}

/// The outcome of one replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    /// The parameters.
    pub params: Params,
    /// How many evaluations were made: at `k / update_hz` s for `k` in `1..=evaluations`.
    pub evaluations: usize,
    /// The changes declared, in order.
    pub changes: Vec<Declared>,
}

impl Replay {
    /// The time of evaluation `k` (from 0), in seconds from time 0.
    pub fn evaluation_s(&self, k: usize) -> f64 {
        end_of(self.params.update_interval(), k).as_secs_f64()
    }
}

/// The names a truth file's `topology` takes: what [`Shape`]'s `Display` prints.
pub const TOPOLOGY_NAMES: &str =
    "bus, ring, mesh:AxB[x...], torus:AxB[x...], hypercube:D, tree, all-to-all, star";

/// The shape a name means (as [`Shape`]'s `Display` prints it: `ring`, `mesh:4x2`,
/// `hypercube:3`, ...; extents in any order); `None` for anything else.
pub fn parse_shape(name: &str) -> Option<Shape> {
    let extents = |a: &str| {
        a.split('x')
            .map(|e| e.parse().ok())
            .collect::<Option<Vec<usize>>>()
    };
    match name.split_once(':') {
        None => match name {
            "bus" => Some(Shape::Bus),
            "ring" => Some(Shape::Ring),
            "tree" => Some(Shape::Tree),
            "all-to-all" => Some(Shape::AllToAll),
            "star" => Some(Shape::Star),
            _ => None,
        },
        Some(("hypercube", d)) => d.parse().ok().map(Shape::Hypercube),
        Some(("mesh", a)) => extents(a).map(Shape::Mesh),
        Some(("torus", a)) => extents(a).map(Shape::Torus),
        Some(_) => None,
    }
}

/// One phase of the application: a span of time with one topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Its start, in seconds from time 0.
    pub from_s: f64,
    /// Its end (exclusive).
    pub to_s: f64,
    /// Its shape, when it was given by name.
    pub shape: Option<Shape>,
    /// Its edges, the smaller MAC first.
    pub edges: BTreeSet<Pair>,
}

impl Phase {
    /// The shape's name, or the number of edges given explicitly.
    pub fn label(&self) -> String {
        self.shape.as_ref().map_or_else(
            || format!("{} edges", self.edges.len()),
            ToString::to_string,
        )
    }
}

/// What the application really did: its guests and phases.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The guests, in rank order (rank `r` is node `r` of a shape).
    pub guests: Vec<Mac>,
    /// The phases, in order, not overlapping (there may be gaps).
    pub phases: Vec<Phase>,
}

/// Why a truth file is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TruthError {
    /// Not TOML, or not the truth file's fields.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A guest is listed twice or is a group address.
    #[error("guest {0} is listed twice or is a group address")]
    Guest(Mac),
    /// No `[[phase]]`.
    #[error("no [[phase]] given")]
    NoPhases,
    /// A phase's times are not `0 <= from_s < to_s`, or it starts before the previous ends.
    #[error("phase {0}: its times are not 0 <= from_s < to_s, after the previous phase's to_s")]
    Times(usize),
    /// A phase has both or neither of `topology` and `edges`.
    #[error("phase {0}: give exactly one of `topology` and `edges`")]
    OneOf(usize),
    /// A topology name is unknown.
    #[error("phase {phase}: unknown topology `{name}` (known: {TOPOLOGY_NAMES})")]
    UnknownTopology {
        /// The phase, from 0.
        phase: usize,
        /// The name.
        name: String,
    },
    /// A topology does not fit the number of guests.
    #[error("phase {phase}: topology {name} does not fit {guests} guests (listed in `guests`)")]
    DoesNotFit {
        /// The phase, from 0.
        phase: usize,
        /// The topology.
        name: String,
        /// How many guests are listed.
        guests: usize,
    },
    /// Explicit edges are empty, a self-loop or touch a group address.
    #[error("phase {0}: `edges` must be pairs of two different unicast MACs, at least one")]
    Edges(usize),
}

/// A truth file, as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TruthFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    guests: Vec<Mac>,
    #[serde(default)]
    phase: Vec<PhaseFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    from_s: f64,
    to_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topology: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edges: Option<Vec<(Mac, Mac)>>,
}

impl Truth {
    /// Parses a truth file:
    ///
    /// ```toml
    /// guests = ["02:56:4e:00:00:01", "02:56:4e:00:00:02", "02:56:4e:00:00:03"]  # rank order
    ///
    /// [[phase]]
    /// from_s = 0.0          # seconds from the trace's first frame
    /// to_s = 30.0
    /// topology = "ring"     # a shape's name, laid out on the guests by rank
    ///
    /// [[phase]]
    /// from_s = 30.0
    /// to_s = 60.0
    /// edges = [["02:56:4e:00:00:01", "02:56:4e:00:00:02"]]  # or the edges themselves
    /// ```
    ///
    /// # Errors
    /// See [`TruthError`].
    pub fn parse(text: &str) -> Result<Truth, TruthError> {
        let file: TruthFile = toml::from_str(text)?;
        let mut seen = BTreeSet::new();
        if let Some(&mac) = file
            .guests
            .iter()
            .find(|m| m.is_group() || !seen.insert(**m))
        {
            return Err(TruthError::Guest(mac));
        }
        if file.phase.is_empty() {
            return Err(TruthError::NoPhases);
        }
        let mut phases: Vec<Phase> = Vec::new();
        for (i, p) in file.phase.into_iter().enumerate() {
            let after = phases.last().map_or(0.0, |last| last.to_s);
            if !(p.from_s >= after && p.to_s > p.from_s && p.to_s.is_finite()) {
                return Err(TruthError::Times(i));
            }
            let (shape, edges) = match (p.topology, p.edges) {
                (Some(name), None) => {
                    let shape = parse_shape(&name).ok_or_else(|| TruthError::UnknownTopology {
                        phase: i,
                        name: name.clone(),
                    })?;
                    let edges = shape
                        .edges(file.guests.len())
                        .ok_or(TruthError::DoesNotFit {
                            phase: i,
                            name,
                            guests: file.guests.len(),
                        })?
                        .into_iter()
                        .map(|(a, b)| pair(file.guests[a], file.guests[b]))
                        .collect();
                    (Some(shape), edges)
                }
                (None, Some(edges)) => {
                    if edges.is_empty()
                        || edges
                            .iter()
                            .any(|&(a, b)| a == b || a.is_group() || b.is_group())
                    {
                        return Err(TruthError::Edges(i));
                    }
                    (None, edges.into_iter().map(|(a, b)| pair(a, b)).collect())
                }
                _ => return Err(TruthError::OneOf(i)),
            };
            phases.push(Phase {
                from_s: p.from_s,
                to_s: p.to_s,
                shape,
                edges,
            });
        }
        Ok(Truth {
            guests: file.guests,
            phases,
        })
    }

    /// The truth file that [`Truth::parse`] reads back as `self`: phases with a shape by its
    /// name, others by their edges.
    ///
    /// # Errors
    /// None in practice (TOML serialisation of plain data).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let file = TruthFile {
            guests: self.guests.clone(),
            phase: self
                .phases
                .iter()
                .map(|p| PhaseFile {
                    from_s: p.from_s,
                    to_s: p.to_s,
                    topology: p.shape.as_ref().map(ToString::to_string),
                    edges: p.shape.is_none().then(|| p.edges.iter().copied().collect()),
                })
                .collect(),
        };
        toml::to_string(&file)
    }

    /// The phase at `t` seconds, if any.
    fn phase_at(&self, t: f64) -> Option<usize> {
        let i = self
            .phases
            .partition_point(|p| p.from_s <= t)
            .checked_sub(1)?;
        (t < self.phases[i].to_s).then_some(i)
    }
}

/// How one phase was followed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseOutcome {
    /// Its start (s).
    pub from_s: f64,
    /// Its end (s).
    pub to_s: f64,
    /// Its topology's name (or edge count).
    pub topology: String,
    /// Its reaction time (s); `None` when it was not followed.
    pub reaction_s: Option<f64>,
}

/// How well a replay followed the truth.
///
/// - **Reaction time**, per phase: from the phase's start to the first change declared
///   within the phase whose edges are the phase's; not followed (`None`) when no such change
///   comes before the phase ends. The first phase's reaction is the time to the first
///   detection. A phase with the same topology as the one before it is no switch: its
///   reaction is 0 if that topology is still declared at its start. (A topology that differs
///   from the previous phase's but was left declared from earlier, because inference stuck,
///   does not count as followed.)
/// - **Settle time**: the median of the declared changes' [`Declared::settle_s`].
/// - **Spurious changes**: declared changes whose edges are no phase's, plus changes within
///   a phase after its topology was reached (each counted once). Under alternation too fast
///   to follow, the union of the topologies is declared: that is one spurious change, and
///   the phases count as not followed.
/// - **Accuracy**: over the evaluations from the first declaration on that fall in a phase,
///   the fraction at which the declared edges are the phase's; **precision** and **recall**
///   are the declared edges' precision and recall against the phase's, averaged over the
///   same evaluations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Per phase.
    pub phases: Vec<PhaseOutcome>,
    /// How many phases were followed.
    pub followed: usize,
    /// The mean reaction time over the followed phases (s).
    pub reaction_s: Option<f64>,
    /// The median settle time (s); `None` without changes.
    pub settle_s: Option<f64>,
    /// Changes declared.
    pub changes: usize,
    /// Spurious changes among them.
    pub spurious: usize,
    /// `None` when nothing was declared within a phase.
    pub accuracy: Option<f64>,
    /// Mean edge precision.
    pub precision: Option<f64>,
    /// Mean edge recall.
    pub recall: Option<f64>,
}

impl Metrics {
    /// Compares `replay` with `truth` (times in seconds from time 0 in both).
    pub fn new(replay: &Replay, truth: &Truth) -> Metrics {
        let changes = &replay.changes;
        let sets: Vec<BTreeSet<Pair>> = changes
            .iter()
            .map(|c| c.edges.iter().copied().collect())
            .collect();
        // The change in force at `t`: the last one declared at or before it.
        let in_force = |t: f64| changes.partition_point(|c| c.at_s <= t).checked_sub(1);

        // Per phase, the change through which its topology was reached.
        let mut reached_by: Vec<Option<usize>> = Vec::new();
        let mut phases = Vec::new();
        for (n, p) in truth.phases.iter().enumerate() {
            // No switch: the previous phase had the same topology, and it is still declared.
            let same_as_before = n > 0 && truth.phases[n - 1].edges == p.edges;
            let held = in_force(p.from_s).filter(|&i| same_as_before && sets[i] == p.edges);
            let first_inside = changes.partition_point(|c| c.at_s < p.from_s);
            let by = held.or_else(|| {
                (first_inside..changes.len())
                    .take_while(|&i| changes[i].at_s < p.to_s)
                    .find(|&i| sets[i] == p.edges)
            });
            reached_by.push(by);
            phases.push(PhaseOutcome {
                from_s: p.from_s,
                to_s: p.to_s,
                topology: p.label(),
                reaction_s: by.map(|i| (changes[i].at_s - p.from_s).max(0.0)),
            });
        }

        let spurious = changes
            .iter()
            .enumerate()
            .filter(|&(i, c)| {
                let matches_a_phase = truth.phases.iter().any(|p| p.edges == sets[i]);
                let after_reached = truth
                    .phase_at(c.at_s)
                    .and_then(|p| reached_by[p])
                    .is_some_and(|by| i > by);
                !matches_a_phase || after_reached
            })
            .count();

        let (mut scored, mut correct, mut precision, mut recall) = (0usize, 0usize, 0.0, 0.0);
        for k in 0..replay.evaluations {
            let t = replay.evaluation_s(k);
            let (Some(i), Some(p)) = (in_force(t), truth.phase_at(t)) else {
                continue;
            };
            let (declared, real) = (&sets[i], &truth.phases[p].edges);
            let common = declared.intersection(real).count() as f64;
            scored += 1;
            correct += usize::from(declared == real);
            precision += common / declared.len().max(1) as f64;
            recall += common / real.len().max(1) as f64;
        }
        let mean = |sum: f64| (scored > 0).then(|| sum / scored as f64);

        let reactions: Vec<f64> = phases.iter().filter_map(|p| p.reaction_s).collect();
        Metrics {
            followed: reactions.len(),
            reaction_s: (!reactions.is_empty())
                .then(|| reactions.iter().sum::<f64>() / reactions.len() as f64),
            settle_s: median(changes.iter().map(|c| c.settle_s).collect()),
            changes: changes.len(),
            spurious,
            accuracy: mean(correct as f64),
            precision: mean(precision),
            recall: mean(recall),
            phases,
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// One parameter set of a sweep, and how it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// The smoothing window (s).
    pub window_s: f64,
    /// The detection threshold.
    pub threshold: f64,
    /// How it did.
    pub metrics: Metrics,
}

/// Replays `samples` with every combination of `windows` and `thresholds` (on all CPUs) and
/// measures each against `truth`. Rows come window by window, thresholds in the given order
/// within; `progress(done, total, row)` is called as each finishes (from worker threads, in
/// no particular order).
///
/// # Errors
/// A combination out of range ([`Params::check`]), found before anything runs.
pub fn sweep(
    samples: &Samples,
    truth: &Truth,
    windows: &[Duration],
    thresholds: &[f64],
    progress: &(dyn Fn(usize, usize, &SweepRow) + Sync),
) -> Result<Vec<SweepRow>, ParamsError> {
    let grid: Vec<(Duration, f64)> = windows
        .iter()
        .flat_map(|&w| thresholds.iter().map(move |&t| (w, t)))
        .collect();
    for &(window, threshold) in &grid {
        Params {
            update_hz: samples.update_hz(),
            window,
            threshold,
        }
        .check()?;
    }
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(grid.len());
    let run = || -> Result<Vec<(usize, SweepRow)>, ParamsError> {
        let mut rows = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(window, threshold)) = grid.get(i) else {
                return Ok(rows);
            };
            let replay = samples.replay(window, threshold)?;
            let row = SweepRow {
                window_s: window.as_secs_f64(),
                threshold,
                metrics: Metrics::new(&replay, truth),
            };
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, grid.len(), &row);
            rows.push((i, row));
        }
    };
    let mut rows: Vec<(usize, SweepRow)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(run)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>, _>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    rows.sort_by_key(|(i, _)| *i);
    Ok(rows.into_iter().map(|(_, row)| row).collect())
}

/// A synthetic trace: guests running a BSP-like program through phases of known
/// topologies, as one capture where every frame appears once.
///
/// Every iteration, each edge of the current phase's topology carries a message each way:
/// back-to-back full-size frames (1514 bytes, 1460 of payload) and a last, shorter one, as
/// TCP would send it, starting at a random offset in the iteration's first quarter,
/// spaced as at 1 Gbit/s, with a 66-byte acknowledgement back after every second frame and
/// the last. `noise_pct` of all bytes go as random-sized frames between random pairs that
/// are not edges. Every guest also sends one 60-byte broadcast a second (ARP-like), guest
/// 0's at time 0, which opens the trace. Guest `r`'s MAC is [`guest_mac`]`(r)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Synth {
    /// How many guests (2 to [`Synth::MAX_GUESTS`]).
    pub guests: usize,
    /// The phases: each topology and how long it lasts.
    pub phases: Vec<(Shape, Duration)>,
    /// Payload bytes per second each way on every edge.
    pub rate_bytes_s: u64,
    /// The share of all bytes that is noise, in percent (0 to under 100).
    pub noise_pct: f64,
    /// The BSP iteration: how often the messages go.
    pub iteration: Duration,
    /// Seeds the pseudo-random jitter and noise, so a trace can be made again.
    pub seed: u64,
}

/// Why a synthetic trace cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SynthError {
    /// The guest count is out of range.
    #[error("{0} guests: give 2 to {max}", max = Synth::MAX_GUESTS)]
    Guests(usize),
    /// No phases, or one that lasts no time.
    #[error("give at least one phase, each lasting more than 0 s")]
    Phases,
    /// A topology does not fit the guest count.
    #[error("topology {shape} does not fit {guests} guests")]
    DoesNotFit {
        /// The topology.
        shape: Shape,
        /// The guest count.
        guests: usize,
    },
    /// Rate, noise or iteration out of range.
    #[error("rate must be more than 0 B/s, noise from 0 to under 100 %, and the iteration from 1 ms to 10 s")]
    Traffic,
}

/// Guest `rank`'s MAC: `02:56:4e:00:HH:LL` with `HHLL = rank + 1` (`02:56:4e:00:00:01` for
/// rank 0); `None` past [`Synth::MAX_GUESTS`].
pub fn guest_mac(rank: usize) -> Option<Mac> {
    let n = u16::try_from(rank.checked_add(1)?).ok()?;
    let [hi, lo] = n.to_be_bytes();
    Some(Mac([0x02, 0x56, 0x4e, 0, hi, lo]))
}

/// Frame sizes, as TCP over Ethernet makes them.
const FULL_FRAME: u32 = 1514;
const HEADERS: u32 = 54;
const MIN_FRAME: u32 = 60;
const ACK: u32 = 66;

impl Synth {
    /// The most guests a synthetic trace has (their MACs' last two octets count from 1).
    pub const MAX_GUESTS: usize = 0xffff;

    /// The frames (by time, from 1 700 000 000 s after the UNIX epoch) and the truth.
    ///
    /// # Errors
    /// See [`SynthError`].
    pub fn generate(&self) -> Result<(Vec<Frame>, Truth), SynthError> {
        if !(2..=Self::MAX_GUESTS).contains(&self.guests) {
            return Err(SynthError::Guests(self.guests));
        }
        if self.phases.is_empty() || self.phases.iter().any(|(_, d)| d.is_zero()) {
            return Err(SynthError::Phases);
        }
        let iteration_ok =
            (Duration::from_millis(1)..=Duration::from_secs(10)).contains(&self.iteration);
        if self.rate_bytes_s == 0 || !(0.0..100.0).contains(&self.noise_pct) || !iteration_ok {
            return Err(SynthError::Traffic);
        }
        let guests: Vec<Mac> = (0..self.guests).filter_map(guest_mac).collect();
        let mut rng = Rng(self.seed);
        let mut frames = Vec::new();
        let mut phases = Vec::new();
        let mut from = Duration::ZERO;
        for (shape, length) in &self.phases {
            let edges: Vec<(usize, usize)> =
                shape
                    .edges(self.guests)
                    .ok_or_else(|| SynthError::DoesNotFit {
                        shape: shape.clone(),
                        guests: self.guests,
                    })?;
            let edges: BTreeSet<Pair> = edges
                .iter()
                .map(|&(a, b)| pair(guests[a], guests[b]))
                .collect();
            let directions: Vec<(Mac, Mac)> =
                edges.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
            let others: Vec<(Mac, Mac)> = guests
                .iter()
                .flat_map(|&a| guests.iter().map(move |&b| (a, b)))
                .filter(|&(a, b)| a != b && !edges.contains(&pair(a, b)))
                .collect();
            let to = from + *length;
            let mut at = from;
            while at < to {
                self.iterate(&directions, &others, at, &mut rng, &mut frames);
                at += self.iteration;
            }
            phases.push(Phase {
                from_s: from.as_secs_f64(),
                to_s: to.as_secs_f64(),
                shape: Some(shape.clone()),
                edges,
            });
            from = to;
        }
        for second in 0..from.as_secs().saturating_add(1) {
            for (rank, &mac) in guests.iter().enumerate() {
                let offset = u64::try_from(rank % 1000).unwrap_or(0);
                frames.push(Frame {
                    at: Duration::from_secs(second) + Duration::from_millis(offset),
                    src: mac,
                    dst: Mac::BROADCAST,
                    len: MIN_FRAME,
                });
            }
        }
        let epoch = Duration::from_secs(1_700_000_000);
        for f in &mut frames {
            f.at += epoch;
        }
        frames.sort_by_key(|f| f.at);
        Ok((frames, Truth { guests, phases }))
    }

    /// One iteration from `start`: a message each way of every edge (`directions`), and
    /// the noise between `others`.
    fn iterate(
        &self,
        directions: &[(Mac, Mac)],
        others: &[(Mac, Mac)],
        start: Duration,
        rng: &mut Rng,
        frames: &mut Vec<Frame>,
    ) {
        let iteration_ns = u64::try_from(self.iteration.as_nanos()).unwrap_or(u64::MAX);
        let message = u64::try_from(
            u128::from(self.rate_bytes_s) * self.iteration.as_nanos() / 1_000_000_000,
        )
        .unwrap_or(u64::MAX)
        .max(1);
        for &(src, dst) in directions {
            let mut at = start + Duration::from_nanos(rng.below(iteration_ns / 4 + 1));
            let mut left = message;
            let mut sent = 0u32;
            while left > 0 {
                let payload = left.min(u64::from(FULL_FRAME - HEADERS));
                left -= payload;
                // At most 1460 payload bytes: fits.
                let len = (HEADERS + u32::try_from(payload).unwrap_or(0)).max(MIN_FRAME);
                frames.push(Frame { at, src, dst, len });
                at += wire_time(len);
                sent += 1;
                if sent.is_multiple_of(2) || left == 0 {
                    frames.push(Frame {
                        at,
                        src: dst,
                        dst: src,
                        len: ACK,
                    });
                }
            }
        }
        let Ok(count) = u64::try_from(others.len()) else {
            return;
        };
        if count == 0 {
            return;
        }
        let edge_bytes = directions.len() as f64 * message as f64;
        let mut noise = whole(edge_bytes * self.noise_pct / (100.0 - self.noise_pct));
        while noise > 0 {
            let (src, dst) = others[usize::try_from(rng.below(count)).unwrap_or(0)];
            let size = MIN_FRAME
                + u32::try_from(rng.below(u64::from(FULL_FRAME - MIN_FRAME) + 1)).unwrap_or(0);
            frames.push(Frame {
                at: start + Duration::from_nanos(rng.below(iteration_ns)),
                src,
                dst,
                len: size,
            });
            noise = noise.saturating_sub(u64::from(size));
        }
    }
}

/// How long a frame of `len` bytes takes at 1 Gbit/s.
fn wire_time(len: u32) -> Duration {
    Duration::from_nanos(u64::from(len) * 8)
}

/// `x` rounded to a whole number of bytes (0 for negative or NaN, saturating above).
#[allow(clippy::cast_possible_truncation)] // float to int: `as` saturates, as wanted here
fn whole(x: f64) -> u64 {
    x.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: usize) -> Mac {
        guest_mac(i).unwrap()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn synth(guests: usize, phases: &[(Shape, f64)]) -> Synth {
        Synth {
            guests,
            phases: phases.iter().map(|(s, d)| (s.clone(), secs(*d))).collect(),
            rate_bytes_s: 300_000,
            noise_pct: 5.0,
            iteration: Duration::from_millis(20),
            seed: 7,
        }
    }

    /// Synthesises, merges as one capture and replays with the defaults.
    fn run(spec: &Synth) -> (Replay, Truth) {
        let (frames, truth) = spec.generate().unwrap();
        let capture = Capture {
            name: "synth".into(),
            frames,
            short: 0,
        };
        let trace = Trace::merge(vec![capture], &BTreeMap::new()).unwrap();
        let samples = Samples::new(&trace, &Params::DEFAULT).unwrap();
        let replay = samples
            .replay(Params::DEFAULT.window, Params::DEFAULT.threshold)
            .unwrap();
        (replay, truth)
    }

    #[test]
    fn shape_names_round_trip() {
        let shapes = [
            Shape::Bus,
            Shape::Ring,
            Shape::Mesh(vec![4, 2]),
            Shape::Torus(vec![3, 3, 2]),
            Shape::Hypercube(3),
            Shape::Tree,
            Shape::AllToAll,
            Shape::Star,
        ];
        for shape in shapes {
            assert_eq!(parse_shape(&shape.to_string()), Some(shape));
        }
        assert_eq!(parse_shape("mesh:2x4"), Some(Shape::Mesh(vec![2, 4])));
        for bad in [
            "",
            "hypercube",
            "mesh:",
            "mesh:4x",
            "ring:3",
            "torus:4xa",
            "Ring",
        ] {
            assert_eq!(parse_shape(bad), None, "{bad}");
        }
    }

    #[test]
    fn truth_files_parse_and_errors_say_what_is_wrong() {
        let text = r#"
            guests = ["02:56:4e:00:00:01", "02:56:4e:00:00:02", "02:56:4e:00:00:03", "02:56:4e:00:00:04"]
            [[phase]]
            from_s = 0.0
            to_s = 10.0
            topology = "ring"
            [[phase]]
            from_s = 12.0
            to_s = 20.0
            edges = [["02:56:4e:00:00:02", "02:56:4e:00:00:01"]]
        "#;
        let truth = Truth::parse(text).unwrap();
        assert_eq!(truth.phases.len(), 2);
        assert_eq!(truth.phases[0].edges.len(), 4);
        assert!(truth.phases[0].edges.contains(&(mac(0), mac(3))));
        assert_eq!(truth.phases[1].edges, BTreeSet::from([(mac(0), mac(1))]));
        assert_eq!(truth.phases[1].label(), "1 edges");
        assert_eq!(truth.phase_at(11.0), None);
        assert_eq!(truth.phase_at(12.0), Some(1));
        assert_eq!(Truth::parse(&truth.to_toml().unwrap()).unwrap(), truth);

        let guests = r#"guests = ["02:56:4e:00:00:01", "02:56:4e:00:00:02", "02:56:4e:00:00:03"]"#;
        let with = |phase: &str| format!("{guests}\n[[phase]]\n{phase}");
        let err = |text: &str| Truth::parse(text).unwrap_err();
        assert!(matches!(err("guests = [1"), TruthError::Toml(_)));
        assert!(matches!(err("guests = [\"zz\"]"), TruthError::Toml(_)));
        assert!(matches!(
            err(&with(
                "from_s = 0.0\nto_s = 1.0\ntopology = \"ring\"\ncolour = 1"
            )),
            TruthError::Toml(_)
        ));
        assert_eq!(err(guests), TruthError::NoPhases);
        assert_eq!(
            err(&with("from_s = 2.0\nto_s = 1.0\ntopology = \"ring\"")),
            TruthError::Times(0)
        );
        assert_eq!(err(&with("from_s = 0.0\nto_s = 1.0")), TruthError::OneOf(0));
        assert_eq!(
            err(&with("from_s = 0.0\nto_s = 1.0\ntopology = \"hypercube\"")),
            TruthError::UnknownTopology {
                phase: 0,
                name: "hypercube".into()
            }
        );
        assert_eq!(
            err(&with(
                "from_s = 0.0\nto_s = 1.0\ntopology = \"hypercube:2\""
            )),
            TruthError::DoesNotFit {
                phase: 0,
                name: "hypercube:2".into(),
                guests: 3
            }
        );
        assert_eq!(
            err(&with("from_s = 0.0\nto_s = 1.0\nedges = []")),
            TruthError::Edges(0)
        );
        let overlapping = with(
            "from_s = 0.0\nto_s = 2.0\ntopology = \"ring\"\n[[phase]]\nfrom_s = 1.0\nto_s = 3.0\ntopology = \"bus\"",
        );
        assert_eq!(err(&overlapping), TruthError::Times(1));
        let twice = r#"guests = ["02:56:4e:00:00:01", "02:56:4e:00:00:01"]"#;
        assert_eq!(err(twice), TruthError::Guest(mac(0)));
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("vttif-offline-{}-{name}", std::process::id()))
    }

    #[test]
    fn pcap_files_round_trip_and_bad_ones_name_themselves() {
        let frames = vec![
            Frame {
                at: secs(1_700_000_000.25),
                src: mac(0),
                dst: mac(1),
                len: 1514,
            },
            Frame {
                at: secs(1_700_000_000.5),
                src: mac(1),
                dst: Mac::BROADCAST,
                len: 60,
            },
        ];
        let path = temp("round-trip.pcap");
        let mut bytes = Vec::new();
        write_pcap(&mut bytes, &frames).unwrap();
        assert_eq!(bytes.len(), 24 + 2 * 16 + 64 + 60);
        std::fs::write(&path, &bytes).unwrap();
        let capture = read_pcap(&path).unwrap();
        assert_eq!(capture.frames, frames);
        assert_eq!(capture.short, 0);

        // 802.11 (link type 105) instead of Ethernet.
        bytes[20] = 105;
        std::fs::write(&path, &bytes).unwrap();
        let e = read_pcap(&path).unwrap_err();
        assert!(matches!(e, TraceError::LinkType { code: 105, .. }), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        std::fs::write(&path, b"not a capture at all, just some text\n").unwrap();
        let e = read_pcap(&path).unwrap_err();
        assert!(matches!(e, TraceError::Open { .. }), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = read_pcap(&path).unwrap_err();
        assert!(e.to_string().contains("round-trip.pcap"), "{e}");
    }

    /// Splits one capture into one per guest, as captures on every guest's port would see
    /// it: a unicast frame in its sender's and its receiver's, a broadcast in all.
    fn per_guest(frames: &[Frame], guests: usize) -> Vec<Capture> {
        (0..guests)
            .map(|g| Capture {
                name: format!("guest{g}"),
                frames: frames
                    .iter()
                    .filter(|f| f.src == mac(g) || f.dst == mac(g) || f.dst.is_group())
                    .copied()
                    .collect(),
                short: 0,
            })
            .collect()
    }

    /// `frames` in one order whatever order equal timestamps came in.
    fn sorted(mut frames: Vec<Frame>) -> Vec<Frame> {
        frames.sort_by_key(|f| (f.at, f.src, f.dst, f.len));
        frames
    }

    #[test]
    fn captures_of_both_ends_count_each_frame_once() {
        // A bus: its end guests each have one peer, so their files tie.
        let (frames, _) = synth(5, &[(Shape::Bus, 1.0)]).generate().unwrap();
        let trace = Trace::merge(per_guest(&frames, 5), &BTreeMap::new()).unwrap();
        assert_eq!(sorted(trace.frames), sorted(frames.clone()));
        for (g, file) in trace.files.iter().enumerate() {
            assert_eq!(file.local, Some(vec![mac(g)]), "{file:?}");
            assert!(file.owner_inferred);
        }
        assert_eq!(trace.start, frames[0].at);

        // Two guests only: each file is one exchange, nothing tells whose it is.
        let (two, _) = synth(2, &[(Shape::Bus, 0.5)]).generate().unwrap();
        let e = Trace::merge(per_guest(&two, 2), &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, MergeError::Ambiguous { .. }), "{e}");
        let local = BTreeMap::from([("guest0".to_string(), BTreeSet::from([mac(0)]))]);
        let trace = Trace::merge(per_guest(&two, 2), &local).unwrap();
        assert_eq!(sorted(trace.frames), sorted(two.clone()));
        assert!(!trace.files[0].owner_inferred && trace.files[1].owner_inferred);

        let both = BTreeMap::from([
            ("guest0".to_string(), BTreeSet::from([mac(0)])),
            ("guest1".to_string(), BTreeSet::from([mac(0)])),
        ]);
        let e = Trace::merge(per_guest(&two, 2), &both).unwrap_err();
        assert!(matches!(e, MergeError::SharedLocal { .. }), "{e}");
        let mut twice = per_guest(&two, 2);
        twice[1].name = "guest0".into();
        assert_eq!(
            Trace::merge(twice, &BTreeMap::new()),
            Err(MergeError::Twice("guest0".into()))
        );
        let typo = BTreeMap::from([("guest7".to_string(), BTreeSet::from([mac(0)]))]);
        assert_eq!(
            Trace::merge(per_guest(&two, 2), &typo),
            Err(MergeError::UnknownFile("guest7".into()))
        );
        let empty = Capture {
            name: "empty".into(),
            frames: vec![],
            short: 3,
        };
        assert!(matches!(
            Trace::merge(vec![empty], &BTreeMap::new()),
            Err(MergeError::Empty(_))
        ));
    }

    #[test]
    fn group_sources_are_skipped_like_the_port_drops_them() {
        let at = secs(1.0);
        let frames = vec![
            Frame {
                at,
                src: mac(0),
                dst: mac(1),
                len: 100,
            },
            Frame {
                at,
                src: Mac::BROADCAST,
                dst: mac(1),
                len: 100,
            },
        ];
        let capture = Capture {
            name: "one".into(),
            frames,
            short: 2,
        };
        let trace = Trace::merge(vec![capture], &BTreeMap::new()).unwrap();
        assert_eq!(trace.frames.len(), 1);
        let f = &trace.files[0];
        assert_eq!((f.frames, f.short, f.group_source, f.counted), (2, 2, 1, 1));
        assert_eq!(f.local, None);
    }

    #[test]
    fn samples_are_per_interval_deltas() {
        let at = |ms| Duration::from_secs(100) + Duration::from_millis(ms);
        let frame = |ms, len| Frame {
            at: at(ms),
            src: mac(0),
            dst: mac(1),
            len,
        };
        let trace = Trace {
            start: at(0),
            frames: vec![
                frame(0, 100),
                frame(49, 200),
                frame(50, 300),
                frame(260, 60),
            ],
            files: vec![],
        };
        let samples = Samples::new(&trace, &Params::DEFAULT).unwrap();
        assert_eq!(samples.intervals(), 6);
        let sums: Vec<(usize, u64, u64)> = samples
            .deltas
            .iter()
            .map(|(k, e)| (*k, e[0].bytes, e[0].frames))
            .collect();
        assert_eq!(sums, [(0, 300, 2), (1, 300, 1), (5, 60, 1)]);
        let bad = Params {
            update_hz: 50.0,
            ..Params::DEFAULT
        };
        assert!(Samples::new(&trace, &bad).is_err());
    }

    #[test]
    fn a_steady_ring_is_one_change_with_its_edges() {
        let (replay, truth) = run(&synth(8, &[(Shape::Ring, 5.0)]));
        assert_eq!(replay.changes.len(), 1, "{:?}", replay.changes);
        let change = &replay.changes[0];
        let edges: BTreeSet<Pair> = change.edges.iter().copied().collect();
        assert_eq!(edges, truth.phases[0].edges);
        assert!(change.shapes.contains(&"ring".to_string()), "{change:?}");
        let m = Metrics::new(&replay, &truth);
        assert_eq!((m.followed, m.spurious, m.changes), (1, 0, 1));
        assert!(m.reaction_s.unwrap() < 0.5, "{m:?}");
        assert_eq!(m.accuracy, Some(1.0));
    }

    #[test]
    fn a_switch_from_ring_to_hypercube_is_followed_within_a_second() {
        let spec = synth(8, &[(Shape::Ring, 5.0), (Shape::Hypercube(3), 5.0)]);
        let (replay, truth) = run(&spec);
        let m = Metrics::new(&replay, &truth);
        assert_eq!(replay.changes.len(), 2, "{:?}", replay.changes);
        assert!(replay.changes[1]
            .shapes
            .contains(&"hypercube:3".to_string()));
        assert_eq!((m.followed, m.spurious), (2, 0), "{m:?}");
        let switch = m.phases[1].reaction_s.unwrap();
        assert!(switch < 1.0, "reaction {switch} s");
        assert!(m.accuracy.unwrap() > 0.85, "{m:?}");
        assert!(
            m.recall.unwrap() > 0.9 && m.precision.unwrap() > 0.9,
            "{m:?}"
        );
    }

    #[test]
    fn fast_alternation_is_damped_to_the_union() {
        let phases: Vec<(Shape, f64)> = (0..60)
            .map(|i| {
                let shape = if i % 2 == 0 {
                    Shape::Ring
                } else {
                    Shape::Hypercube(3)
                };
                (shape, 0.1)
            })
            .collect();
        let (replay, truth) = run(&synth(8, &phases));
        let union: BTreeSet<Pair> = truth.phases[0]
            .edges
            .union(&truth.phases[1].edges)
            .copied()
            .collect();
        let last = replay.changes.last().unwrap();
        assert_eq!(last.edges.iter().copied().collect::<BTreeSet<_>>(), union);
        assert_eq!(replay.changes.len(), 1, "{:?}", replay.changes);
        let m = Metrics::new(&replay, &truth);
        assert_eq!((m.followed, m.spurious), (0, 1), "{m:?}");
        assert!(m.accuracy.unwrap() < 0.1, "{m:?}");
        assert!(m.recall.unwrap() > 0.99, "{m:?}");
    }

    fn declared(at_s: f64, edges: &BTreeSet<Pair>, settle_s: f64) -> Declared {
        Declared {
            at_s,
            number: 0,
            edges: edges.iter().copied().collect(),
            shapes: vec![],
            added: vec![],
            removed: vec![],
            settle_s,
        }
    }

    #[test]
    fn metrics_arithmetic() {
        let a = BTreeSet::from([(mac(0), mac(1)), (mac(1), mac(2))]);
        let b = BTreeSet::from([(mac(0), mac(2))]);
        let other = BTreeSet::from([(mac(0), mac(1)), (mac(0), mac(2))]);
        let phase = |from_s, to_s, edges: &BTreeSet<Pair>| Phase {
            from_s,
            to_s,
            shape: None,
            edges: edges.clone(),
        };
        let truth = Truth {
            guests: vec![],
            // a, a again (already held: reaction 0), b (never reached), a.
            phases: vec![
                phase(0.0, 2.0, &a),
                phase(2.0, 4.0, &a),
                phase(4.0, 6.0, &b),
                phase(6.0, 8.0, &a),
            ],
        };
        let replay = Replay {
            params: Params {
                update_hz: 10.0,
                ..Params::DEFAULT
            },
            evaluations: 80, // 0.1 s to 8.0 s
            changes: vec![
                declared(0.5, &a, 0.5),      // phase 0 reached
                declared(3.0, &other, 0.1),  // no phase's
                declared(3.5, &a, 0.2),      // after phase 1's was reached (held at its start)
                declared(4.5, &other, 0.25), // no phase's
                declared(6.5, &a, 0.3),      // phase 3 reached
                declared(7.0, &other, 0.4),  // no phase's, and after phase 3's was reached
            ],
        };
        let m = Metrics::new(&replay, &truth);
        let reactions: Vec<Option<f64>> = m.phases.iter().map(|p| p.reaction_s).collect();
        assert_eq!(reactions, [Some(0.5), Some(0.0), None, Some(0.5)]);
        assert_eq!(m.followed, 3);
        assert!((m.reaction_s.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.settle_s, Some(0.275));
        assert_eq!((m.changes, m.spurious), (6, 4));
        // Scored: the evaluations from 0.5 s to 7.9 s (8.0 s is past the last phase): 75.
        // Declared against true, with (precision, recall) and evaluations:
        //   0.5-3.0 a/a (1, 1) 25; 3.0-3.5 other/a (1/2, 1/2) 5; 3.5-4.0 a/a (1, 1) 5;
        //   4.0-4.5 a/b (0, 0) 5; 4.5-6.0 other/b (1/2, 1) 15; 6.0-6.5 other/a (1/2, 1/2) 5;
        //   6.5-7.0 a/a (1, 1) 5; 7.0-8.0 other/a (1/2, 1/2) 10.
        let close = |x: Option<f64>, y: f64| (x.unwrap() - y).abs() < 1e-9;
        assert!(close(m.accuracy, 35.0 / 75.0), "{m:?}");
        assert!(close(m.precision, 52.5 / 75.0), "{m:?}");
        assert!(close(m.recall, 60.0 / 75.0), "{m:?}");

        let nothing = Replay {
            changes: vec![],
            ..replay
        };
        let m = Metrics::new(&nothing, &truth);
        assert_eq!(
            (m.followed, m.reaction_s, m.accuracy, m.settle_s),
            (0, None, None, None)
        );
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }

    #[test]
    fn a_sweep_runs_the_grid_in_order() {
        let spec = synth(8, &[(Shape::Ring, 3.0), (Shape::Hypercube(3), 3.0)]);
        let (frames, truth) = spec.generate().unwrap();
        let capture = Capture {
            name: "s".into(),
            frames,
            short: 0,
        };
        let trace = Trace::merge(vec![capture], &BTreeMap::new()).unwrap();
        let samples = Samples::new(&trace, &Params::DEFAULT).unwrap();
        let windows = [secs(0.25), secs(1.0)];
        let thresholds = [0.1, 0.2, 0.5];
        let calls = AtomicUsize::new(0);
        let rows = sweep(
            &samples,
            &truth,
            &windows,
            &thresholds,
            &|done, total, _| {
                assert!(done <= total && total == 6);
                calls.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
        assert_eq!(calls.into_inner(), 6);
        let grid: Vec<(f64, f64)> = rows.iter().map(|r| (r.window_s, r.threshold)).collect();
        assert_eq!(
            grid,
            [
                (0.25, 0.1),
                (0.25, 0.2),
                (0.25, 0.5),
                (1.0, 0.1),
                (1.0, 0.2),
                (1.0, 0.5)
            ]
        );
        // Above the noise, both phases are followed whatever the window.
        for r in rows.iter().filter(|r| r.threshold >= 0.2) {
            assert_eq!(r.metrics.followed, 2, "{r:?}");
        }
        let too_short = [Duration::from_millis(60)];
        assert!(sweep(&samples, &truth, &too_short, &thresholds, &|_, _, _| {}).is_err());
    }

    #[test]
    fn synthetic_traces_are_checked() {
        let ok = synth(8, &[(Shape::Ring, 1.0)]);
        assert!(ok.generate().is_ok());
        let bad = |f: &dyn Fn(&mut Synth)| {
            let mut s = ok.clone();
            f(&mut s);
            s.generate().unwrap_err()
        };
        assert_eq!(bad(&|s| s.guests = 1), SynthError::Guests(1));
        assert_eq!(bad(&|s| s.phases.clear()), SynthError::Phases);
        assert_eq!(
            bad(&|s| s.phases = vec![(Shape::Hypercube(2), secs(1.0))]).to_string(),
            "topology hypercube:2 does not fit 8 guests"
        );
        assert_eq!(bad(&|s| s.noise_pct = 100.0), SynthError::Traffic);
        assert_eq!(bad(&|s| s.rate_bytes_s = 0), SynthError::Traffic);
        assert_eq!(guest_mac(0), Some(Mac([2, 0x56, 0x4e, 0, 0, 1])));
        assert_eq!(guest_mac(299), Some(Mac([2, 0x56, 0x4e, 0, 1, 0x2c])));
        assert_eq!(guest_mac(Synth::MAX_GUESTS), None);
    }
}

//! What the collector serves: the host×host [`Matrix`] of [`PathEstimate`]s by daemon name,
//! its JSON form, its Prometheus form, and the client that reads it ([`fetch_matrix`],
//! [`fetch_pair`]) — what VADAPT calls.
//!
//! # JSON (`GET /matrix`; `GET /pair?from=A&to=B` is one element of `pairs`)
//!
//! ```text
//! {
//!   "at_ns": 1764700000000000000,          // the collector's clock (ns since the epoch)
//!   "collector": "proxy",
//!   "window_s": 10.0,                      // the estimator's window
//!   "pairs": [                             // every directed pair of the hosts file's daemons
//!     { "from": "host1", "to": "host2",    // names (an address when the hosts file has none)
//!       "estimate": {                      // a PathEstimate (crate::estimate)
//!         "path": { "src": "10.200.0.1:5400", "dst": "10.200.0.2:5400" },
//!         "available_bps": M, "throughput_bps": M, "rtt_s": M,
//!         "at_least_bps": 4.1e6 | null, "at_most_bps": 5.3e6 | null,
//!         "capacity_bps": 9.9e6 | null,
//!         "trains": { "flat": 12, "rising": 3, "ambiguous": 1, "bursts": 40 },
//!         "records": { "sent": 9000, "received": 8990, "matched": 8990,
//!                      "duplicates": 0, "outliers": 0 },
//!         "drift": 0.0 } } ],
//!   "reporters": [ { "name": "host1", "datagrams": 120, "records": 5000, "bytes": 40000,
//!                    "rejected": { "bad_tag": 0 }, "last_age_s": 0.2 } ],
//!   "ingest": { "accepted": 0, "future": 0, "stale": 0, "overflow": 0 }
//! }
//! ```
//!
//! where each measure `M` is either
//! `{"status": "known", "value": 4.6e6, "low": 4.2e6, "high": 5.0e6, "confidence": 0.95,
//! "samples": 14, "age_s": 0.3, "method": "cross_traffic"}` (methods: `cross_traffic`,
//! `bracket`, `extrapolated`, `counted`, `one_way_delays`, `keepalives`), or
//! `{"status": "unknown", "reason": R, ...}` with `R` one of `no_traffic`, `one_end_only`
//! (`sent`, `received`), `too_few_trains` (`trains`, `needed`), `all_trains_flat`
//! (`at_least_bps`), `all_trains_rising` (`at_most_bps`), `inconsistent` (`misjudged`,
//! `trains`), `too_short` (`observed_s`), `no_rtt_samples` ([`Unknown`]). Bandwidths are bit/s
//! of Ethernet frames, times seconds.
//!
//! # Prometheus (`GET /metrics`)
//!
//! Per directed pair (`from`, `to` labels): `wren_available_bandwidth_bps`,
//! `wren_available_bandwidth_low_bps`, `wren_available_bandwidth_high_bps`,
//! `wren_throughput_bps`, `wren_rtt_seconds` (and `_low`/`_high`), `wren_capacity_bps`,
//! `wren_estimate_age_seconds{figure}` — present only while known — and always
//! `wren_known{figure, reason}` (1 known, 0 unknown; `reason` is the unknown's, `known`
//! otherwise), `wren_records{kind}`, `wren_trains{verdict}`. Per reporter:
//! `wren_reporter_datagrams_total`, `wren_reporter_records_total`,
//! `wren_reporter_bytes_total` (bytes on the wire, headers included),
//! `wren_reporter_rejected_total{reason}`, `wren_reporter_last_seconds`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::estimate::{IngestStats, Measure, PathEstimate, Unknown};

/// Every directed pair's estimate, by daemon name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// When (the collector's clock, ns since the epoch).
    pub at_ns: i64,
    /// The collector's name.
    pub collector: String,
    /// The estimator's window (s).
    pub window_s: f64,
    /// Every directed pair.
    pub pairs: Vec<PairEstimate>,
    /// What each reporter sent.
    pub reporters: Vec<ReporterStatus>,
    /// The estimator's ingestion counters.
    pub ingest: IngestStats,
}

/// One directed pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairEstimate {
    /// The sending daemon's name.
    pub from: String,
    /// The receiving daemon's name.
    pub to: String,
    /// Everything Wren knows about the path.
    pub estimate: PathEstimate,
}

impl PairEstimate {
    /// The available bandwidth (bit/s), if known.
    pub fn available_bps(&self) -> Option<f64> {
        self.estimate.available_bps.known().map(|e| e.value)
    }

    /// The round-trip time (s), if known.
    pub fn rtt_s(&self) -> Option<f64> {
        self.estimate.rtt_s.known().map(|e| e.value)
    }
}

/// What one reporter (a host's agent, or the collector's own capture) sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReporterStatus {
    /// Its name.
    pub name: String,
    /// Datagrams taken.
    pub datagrams: u64,
    /// Records taken.
    pub records: u64,
    /// Bytes on the wire of the datagrams taken (IP, UDP and Ethernet headers included); 0
    /// for the collector's own capture.
    pub bytes: u64,
    /// Datagrams refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Seconds since its last datagram; `None` before the first.
    pub last_age_s: Option<f64>,
}

impl Matrix {
    /// The pair `from` → `to`, if the matrix has it.
    pub fn pair(&self, from: &str, to: &str) -> Option<&PairEstimate> {
        self.pairs.iter().find(|p| p.from == from && p.to == to)
    }
}

/// The reason label of a measure: `known`, or the unknown's snake-case name.
pub fn reason_label(m: &Measure) -> &'static str {
    match m {
        Measure::Known(_) => "known",
        Measure::Unknown { why } => unknown_label(why),
    }
}

/// An unknown's snake-case name (as in the JSON).
pub fn unknown_label(u: &Unknown) -> &'static str {
    match u {
        Unknown::NoTraffic => "no_traffic",
        Unknown::OneEndOnly { .. } => "one_end_only",
        Unknown::TooFewTrains { .. } => "too_few_trains",
        Unknown::AllTrainsFlat { .. } => "all_trains_flat",
        Unknown::AllTrainsRising { .. } => "all_trains_rising",
        Unknown::Inconsistent { .. } => "inconsistent",
        Unknown::TooShort { .. } => "too_short",
        Unknown::NoRttSamples => "no_rtt_samples",
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The matrix as Prometheus text (see the module's documentation).
pub fn render_prometheus(m: &Matrix) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let pl = |p: &PairEstimate| format!("from=\"{}\",to=\"{}\"", esc(&p.from), esc(&p.to));
    let known = |f: fn(&PathEstimate) -> &Measure, g: fn(&crate::Estimate) -> f64| {
        m.pairs
            .iter()
            .filter_map(|p| f(&p.estimate).known().map(|e| (pl(p), g(e))))
            .collect::<Vec<_>>()
    };
    fn avail(e: &PathEstimate) -> &Measure {
        &e.available_bps
    }
    fn thr(e: &PathEstimate) -> &Measure {
        &e.throughput_bps
    }
    fn rtt(e: &PathEstimate) -> &Measure {
        &e.rtt_s
    }
    family(
        "wren_available_bandwidth_bps",
        "gauge",
        "Available bandwidth of the directed path (bit/s of Ethernet frames), while known.",
        &known(avail, |e| e.value),
    );
    family(
        "wren_available_bandwidth_low_bps",
        "gauge",
        "Lower end of the available bandwidth's interval.",
        &known(avail, |e| e.low),
    );
    family(
        "wren_available_bandwidth_high_bps",
        "gauge",
        "Upper end of the available bandwidth's interval.",
        &known(avail, |e| e.high),
    );
    family(
        "wren_throughput_bps",
        "gauge",
        "Throughput the path carried over the window (bit/s).",
        &known(thr, |e| e.value),
    );
    family(
        "wren_rtt_seconds",
        "gauge",
        "Round-trip time between the two daemons (s).",
        &known(rtt, |e| e.value),
    );
    family(
        "wren_rtt_low_seconds",
        "gauge",
        "Lower end of the round-trip time's interval.",
        &known(rtt, |e| e.low),
    );
    family(
        "wren_rtt_high_seconds",
        "gauge",
        "Upper end of the round-trip time's interval.",
        &known(rtt, |e| e.high),
    );
    let cap: Vec<(String, f64)> = m
        .pairs
        .iter()
        .filter_map(|p| p.estimate.capacity_bps.map(|c| (pl(p), c)))
        .collect();
    family(
        "wren_capacity_bps",
        "gauge",
        "The capacity the bursts or the fit suggest (rough, no interval).",
        &cap,
    );
    type Figure = fn(&PathEstimate) -> &Measure;
    let figures: [(&str, Figure); 3] = [
        ("available_bandwidth", avail),
        ("throughput", thr),
        ("rtt", rtt),
    ];
    let mut age = Vec::new();
    let mut k = Vec::new();
    for p in &m.pairs {
        for (name, f) in figures {
            let measure = f(&p.estimate);
            if let Some(e) = measure.known() {
                age.push((format!("{},figure=\"{name}\"", pl(p)), e.age_s));
            }
            k.push((
                format!(
                    "{},figure=\"{name}\",reason=\"{}\"",
                    pl(p),
                    reason_label(measure)
                ),
                if measure.known().is_some() { 1.0 } else { 0.0 },
            ));
        }
    }
    family(
        "wren_estimate_age_seconds",
        "gauge",
        "Seconds since the newest evidence of a known figure.",
        &age,
    );
    family(
        "wren_known",
        "gauge",
        "1 if the figure is known, 0 if not; reason says why not.",
        &k,
    );
    let mut rec = Vec::new();
    let mut trains = Vec::new();
    for p in &m.pairs {
        let r = &p.estimate.records;
        for (kind, v) in [
            ("sent", r.sent),
            ("received", r.received),
            ("matched", r.matched),
        ] {
            rec.push((format!("{},kind=\"{kind}\"", pl(p)), v as f64));
        }
        let t = &p.estimate.trains;
        for (verdict, v) in [
            ("flat", t.flat),
            ("rising", t.rising),
            ("ambiguous", t.ambiguous),
            ("burst", t.bursts),
        ] {
            trains.push((format!("{},verdict=\"{verdict}\"", pl(p)), v as f64));
        }
    }
    family(
        "wren_records",
        "gauge",
        "Datagrams of the path in the window.",
        &rec,
    );
    family(
        "wren_trains",
        "gauge",
        "Trains in the window by verdict.",
        &trains,
    );
    let rl = |r: &ReporterStatus| format!("reporter=\"{}\"", esc(&r.name));
    let per = |f: fn(&ReporterStatus) -> f64| {
        m.reporters
            .iter()
            .map(|r| (rl(r), f(r)))
            .collect::<Vec<_>>()
    };
    family(
        "wren_reporter_datagrams_total",
        "counter",
        "Datagrams taken from the reporter.",
        &per(|r| r.datagrams as f64),
    );
    family(
        "wren_reporter_records_total",
        "counter",
        "Records taken from the reporter.",
        &per(|r| r.records as f64),
    );
    family(
        "wren_reporter_bytes_total",
        "counter",
        "Bytes on the wire of the reporter's datagrams (what Wren adds to the links).",
        &per(|r| r.bytes as f64),
    );
    let rej: Vec<(String, f64)> = m
        .reporters
        .iter()
        .flat_map(|r| {
            r.rejected
                .iter()
                .map(move |(why, n)| (format!("{},reason=\"{}\"", rl(r), esc(why)), *n as f64))
        })
        .collect();
    family(
        "wren_reporter_rejected_total",
        "counter",
        "Datagrams refused, by reason.",
        &rej,
    );
    let last: Vec<(String, f64)> = m
        .reporters
        .iter()
        .filter_map(|r| r.last_age_s.map(|a| (rl(r), a)))
        .collect();
    family(
        "wren_reporter_last_seconds",
        "gauge",
        "Seconds since the reporter's last datagram.",
        &last,
    );
    out
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection, or it broke.
    #[error("collector {addr}: {source}")]
    Io {
        /// The collector.
        addr: SocketAddr,
        /// What happened.
        source: std::io::Error,
    },
    /// The collector answered with an error status.
    #[error("collector {addr}: {status}: {body}")]
    Status {
        /// The collector.
        addr: SocketAddr,
        /// The status line.
        status: String,
        /// The answer's text.
        body: String,
    },
    /// Not an HTTP answer, or not the JSON expected.
    #[error("collector {addr}: bad answer: {why}")]
    Bad {
        /// The collector.
        addr: SocketAddr,
        /// What was wrong.
        why: String,
    },
}

/// `GET target` on the collector at `addr`; the body of a 200 answer.
///
/// # Errors
/// [`ClientError`].
pub fn fetch_text(
    addr: SocketAddr,
    target: &str,
    timeout: Duration,
) -> Result<String, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(io)?;
    let text = String::from_utf8(answer).map_err(|_| ClientError::Bad {
        addr,
        why: "not UTF-8".into(),
    })?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| ClientError::Bad {
            addr,
            why: "no end of headers".into(),
        })?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(ClientError::Status {
            addr,
            status: status.to_owned(),
            body: body.trim().to_owned(),
        });
    }
    Ok(body.to_owned())
}

/// The collector's matrix (`GET /matrix`).
///
/// # Errors
/// [`ClientError`].
pub fn fetch_matrix(addr: SocketAddr, timeout: Duration) -> Result<Matrix, ClientError> {
    let body = fetch_text(addr, "/matrix", timeout)?;
    serde_json::from_str(&body).map_err(|e| ClientError::Bad {
        addr,
        why: e.to_string(),
    })
}

/// One pair from the collector (`GET /pair?from=A&to=B`).
///
/// # Errors
/// [`ClientError`]; [`ClientError::Status`] 404 for names the collector does not know.
pub fn fetch_pair(
    addr: SocketAddr,
    from: &str,
    to: &str,
    timeout: Duration,
) -> Result<PairEstimate, ClientError> {
    let body = fetch_text(
        addr,
        &format!("/pair?from={}&to={}", url_encode(from), url_encode(to)),
        timeout,
    )?;
    serde_json::from_str(&body).map_err(|e| ClientError::Bad {
        addr,
        why: e.to_string(),
    })
}

fn url_encode(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// `%XX`-decoding of a query value (`+` is a space); `None` for a bad escape.
pub fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `key` in a query string `a=1&b=2`.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| url_decode(v))
}

/// One line per pair for people: `from → to: available …, rtt …, throughput …`.
pub fn render_text(m: &Matrix) -> String {
    let mut out = String::new();
    let fmt_bw = |me: &Measure| match me {
        Measure::Known(e) => format!(
            "{:.2} Mbit/s [{:.2}-{:.2}]",
            e.value / 1e6,
            e.low / 1e6,
            e.high / 1e6
        ),
        Measure::Unknown { why } => format!("unknown ({why})"),
    };
    let fmt_t = |me: &Measure| match me {
        Measure::Known(e) => format!(
            "{:.2} ms [{:.2}-{:.2}]",
            e.value * 1e3,
            e.low * 1e3,
            e.high * 1e3
        ),
        Measure::Unknown { why } => format!("unknown ({why})"),
    };
    for p in &m.pairs {
        let e = &p.estimate;
        let _ = writeln!(
            out,
            "{} -> {}: available {}; rtt {}; throughput {}",
            p.from,
            p.to,
            fmt_bw(&e.available_bps),
            fmt_t(&e.rtt_s),
            fmt_bw(&e.throughput_bps)
        );
    }
    out
}

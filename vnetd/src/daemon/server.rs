//! The daemon's network-facing threads: the control API (TCP, JSON lines, authenticated; see
//! [`crate::control`]) and the Prometheus endpoint (HTTP `GET /metrics`). Both turn what
//! they read into [`Command`]s for the data plane and write back its answers; neither holds
//! any of the daemon's state.

use std::io::{BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::tcp::LINK_PREAMBLE;
use super::{random_bytes, render_metrics, render_vttif, Command};
use crate::control::{
    hex, read_line, unhex, write_line, Challenge, Proof, Request, Response, CHALLENGE_LEN,
    MAX_WATCH_MS,
};
use crate::wire::OverlayKey;

/// Connections served at once; more are refused with an error line.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client has to authenticate, and how long a connection may stay silent.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// What the threads need to reach the data plane.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    wake: Arc<UnixDatagram>,
}

impl Handle {
    /// A handle that sends commands on `commands` and wakes the data plane through `wake`.
    pub fn new(commands: mpsc::Sender<Command>, wake: UnixDatagram) -> Handle {
        Handle {
            commands,
            wake: Arc::new(wake),
        }
    }

    /// Hands a link connection to the data plane.
    fn hand_over(&self, stream: TcpStream, buffered: Vec<u8>) {
        if self
            .commands
            .send(Command::TcpLink { stream, buffered })
            .is_ok()
        {
            self.wake();
        }
    }

    /// Wakes the data plane (to notice a stop flag, say).
    pub fn wake(&self) {
        let _ = self.wake.send(&[1]);
    }

    /// Asks the data plane and waits for its answer.
    pub fn call(&self, request: Request) -> Response {
        let (reply, answer) = mpsc::sync_channel(1);
        if self
            .commands
            .send(Command::Control { request, reply })
            .is_err()
        {
            return Response::Error {
                message: "the daemon is stopping".into(),
            };
        }
        self.wake();
        answer.recv().unwrap_or(Response::Error {
            message: "the daemon is stopping".into(),
        })
    }
}

/// Serves the control API on `listener` until the process ends: a thread per connection.
pub fn spawn_control(listener: TcpListener, key: OverlayKey, handle: Handle) {
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                open.fetch_sub(1, Ordering::SeqCst);
                let _ = write_line(
                    &mut stream,
                    &Response::Error {
                        message: format!(
                            "too many control connections (at most {MAX_CONNECTIONS})"
                        ),
                    },
                );
                continue;
            }
            let (key, handle, open) = (key.clone(), handle.clone(), Arc::clone(&open));
            std::thread::spawn(move || {
                let peer = stream.peer_addr().ok();
                if let Err(e) = serve_control(stream, &key, &handle) {
                    debug!(?peer, "control connection ended: {e}");
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
}

fn serve_control(stream: TcpStream, key: &OverlayKey, handle: &Handle) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(AUTH_TIMEOUT))?;
    stream.set_write_timeout(Some(AUTH_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let challenge: [u8; CHALLENGE_LEN] = random_bytes();
    write_line(
        &mut writer,
        &Challenge {
            challenge: hex(&challenge),
        },
    )?;
    let Some(line) = read_line(&mut reader)? else {
        debug!(%peer, "control client left before authenticating");
        return Ok(());
    };
    if line == LINK_PREAMBLE {
        // A peer daemon dialing a TCP link: the data plane authenticates its records.
        let buffered = reader.buffer().to_vec();
        drop(writer);
        handle.hand_over(reader.into_inner(), buffered);
        return Ok(());
    }
    let proof = serde_json::from_str::<Proof>(&line)
        .ok()
        .and_then(|p| unhex(&p.proof));
    if !proof.is_some_and(|p| key.verify_control(&challenge, &p)) {
        warn!(%peer, "control client refused: wrong key");
        write_line(
            &mut writer,
            &Response::Error {
                message: "authentication failed: wrong overlay key".into(),
            },
        )?;
        return Ok(());
    }
    write_line(&mut writer, &Response::Ok { message: None })?;
    reader.get_ref().set_read_timeout(Some(IDLE_TIMEOUT))?;
    while let Some(line) = read_line(&mut reader)? {
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(Request::WatchTopology { after, timeout_ms }) => watch(
                handle,
                after,
                Duration::from_millis(timeout_ms.min(MAX_WATCH_MS)),
            ),
            Ok(request) => handle.call(request),
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        };
        write_line(&mut writer, &response)?;
    }
    Ok(())
}

/// Answers a [`Request::WatchTopology`]: asks the data plane at VTTIF's update rate until
/// more than `after` changes are declared or `timeout` passes. Waiting here, on the
/// connection's own thread, keeps the data plane free.
fn watch(handle: &Handle, after: u64, timeout: Duration) -> Response {
    let start = Instant::now();
    loop {
        let response = handle.call(Request::AppTopology);
        let Response::AppTopology(report) = &response else {
            return response;
        };
        if report.changes > after || start.elapsed() >= timeout {
            return response;
        }
        std::thread::sleep(Duration::from_secs_f64(1.0 / report.update_hz.max(1.0)));
    }
}

/// Serves `GET /metrics` on `listener` until the process ends: the daemon's counters and, at
/// the Proxy, VTTIF's.
pub fn spawn_metrics(listener: TcpListener, handle: Handle) {
    spawn_text_metrics(listener, move || match handle.call(Request::Stats) {
        Response::Stats(stats) => {
            let info = match handle.call(Request::Info) {
                Response::Info(info) => Some(info),
                _ => None,
            };
            let mut body = render_metrics(&stats, info.as_ref());
            if info.as_ref().is_some_and(|i| i.role == "proxy") {
                if let Response::AppTopology(report) = handle.call(Request::AppTopology) {
                    let daemon = stats.name.as_ref().map_or("", |n| n.as_str());
                    body.push_str(&render_vttif(&report, daemon));
                }
            }
            Ok(body)
        }
        other => Err(format!("{other:?}")),
    });
}

/// Serves `GET /metrics` on `listener` until the process ends, with the Prometheus text that
/// `render` gives (an `Err` is answered 503 with its text), one request at a time: a scrape
/// takes microseconds. Any program's metrics endpoint (vnetd's, VADAPT's).
pub fn spawn_text_metrics(
    listener: TcpListener,
    render: impl Fn() -> Result<String, String> + Send + 'static,
) {
    spawn_http(listener, move |path, _query| {
        if path != "/metrics" {
            return HttpReply::error("404 Not Found", "try /metrics");
        }
        match render() {
            Ok(body) => HttpReply::ok("text/plain; version=0.0.4; charset=utf-8", body),
            Err(why) => HttpReply::error("503 Service Unavailable", why),
        }
    });
}

/// An answer of a [`spawn_http`] handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status, e.g. `200 OK`.
    pub status: &'static str,
    /// The content type, e.g. `application/json`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl HttpReply {
    /// `200 OK` with `body` of `content_type`.
    pub fn ok(content_type: &'static str, body: String) -> HttpReply {
        HttpReply {
            status: "200 OK",
            content_type,
            body,
        }
    }

    /// An error `status` with a plain-text `message`.
    pub fn error(status: &'static str, message: impl Into<String>) -> HttpReply {
        let mut body = message.into();
        body.push('\n');
        HttpReply {
            status,
            content_type: "text/plain",
            body,
        }
    }
}

/// Serves HTTP `GET` on `listener` until the process ends, one request at a time (a request
/// takes microseconds): `handle(path, query)` answers each (`query` is
/// the text after `?`, empty without one). Other methods get 405. For small JSON and text
/// endpoints (Wren's collector: `/metrics`, `/matrix`, `/pair`).
pub fn spawn_http(
    listener: TcpListener,
    handle: impl Fn(&str, &str) -> HttpReply + Send + 'static,
) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if let Err(e) = serve_http(stream, &handle) {
                debug!("http request: {e}");
            }
        }
    });
}

fn serve_http(
    mut stream: TcpStream,
    handle: &impl Fn(&str, &str) -> HttpReply,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let reply = if method == "GET" {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        handle(path, query)
    } else {
        HttpReply::error("405 Method Not Allowed", "only GET")
    };
    write!(
        stream,
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    )?;
    stream.flush()
}

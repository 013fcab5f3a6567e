//! The online commands of `vnetctl`: what it asks running daemons, through their control API
//! ([`crate::control`]). The binary parses the command line and prints; the work is here.
//!
//! # Finding daemons
//!
//! A daemon is named by its machine name. Its address comes from a hosts file in
//! `/etc/hosts` format (`10.200.0.1 host1`, one address and any number of names per line, `#`
//! comments), given with `--hosts` or `VNET_HOSTS`, and otherwise from the system's resolver.
//! Its port is its `HOST` line's (in commands that read a topology file) or the one given as
//! `NAME:PORT`, else [`DEFAULT_PORT`]. The same names and ports give each daemon the addresses
//! of its peers' link sockets when `apply` or `add-link` creates a link.
//!
//! # Links, as the daemons see them
//!
//! Each daemon knows its own links only. A link is *in* the live overlay when both its ends
//! report it; a link only one end reports (an `add-link` that failed halfway, or a daemon
//! that lost its state) is a *half link*: `show` reports it, `apply` completes it if the
//! desired topology has it and removes it otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::control::{Client, ControlError, LinkInfo, Request, Response, Stats, DEFAULT_PORT};
use crate::lang::{self, Action, Item};
use crate::model::{Host, Link, Name, Topology};
use crate::wire::OverlayKey;

/// What went wrong in an online command.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The hosts file could not be read, or has a bad line.
    #[error("hosts file {file}: {why}")]
    Hosts {
        /// The file.
        file: String,
        /// What is wrong.
        why: String,
    },
    /// A daemon's name resolves to no address.
    #[error("cannot find the address of `{name}`: {why} (add it to the --hosts file)")]
    Resolve {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
    /// Talking to a daemon failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A daemon answered something else than the request calls for.
    #[error("{daemon}: unexpected answer {answer}")]
    Unexpected {
        /// Who.
        daemon: Name,
        /// What it said.
        answer: String,
    },
    /// `apply` refuses a configuration that would misdeliver, loop or duplicate frames.
    #[error("the configuration is refused, nothing was changed:\n{problems}")]
    Refused {
        /// One problem a line.
        problems: String,
    },
    /// A primitive of `apply` failed; the ones before it were applied.
    #[error("primitive {index} of {total} (`{action}`) failed at {daemon}: {error}\n({index_before} primitives before it were applied; run apply again once the cause is fixed)")]
    Primitive {
        /// Its position, from 1.
        index: usize,
        /// How many the plan has.
        total: usize,
        /// The primitive, in the language.
        action: String,
        /// Where it failed.
        daemon: Name,
        /// Why.
        error: Box<ControlError>,
        /// `index - 1`.
        index_before: usize,
    },
    /// `wait-up` ran out of time.
    #[error("after {waited:.1?}, links still not up: {links}")]
    NotUp {
        /// How long it waited.
        waited: Duration,
        /// The links, as `a-b (state at a / state at b)`.
        links: String,
    },
}

/// Daemon addresses by name, from a hosts file.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    names: BTreeMap<String, IpAddr>,
}

impl Hosts {
    /// Reads a hosts file (`/etc/hosts` format).
    ///
    /// # Errors
    /// [`OnlineError::Hosts`]: unreadable, or a line whose first word is not an address.
    pub fn load(path: &Path) -> Result<Hosts, OnlineError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| OnlineError::Hosts {
            file: file.clone(),
            why: e.to_string(),
        })?;
        Hosts::parse(&text).map_err(|why| OnlineError::Hosts { file, why })
    }

    /// Parses a hosts file's text.
    ///
    /// # Errors
    /// The line number and what is wrong with it.
    pub fn parse(text: &str) -> Result<Hosts, String> {
        let mut names = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(addr) = words.next() else { continue };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("line {}: `{addr}` is not an IP address", i + 1))?;
            for name in words {
                names.entry(name.to_string()).or_insert(addr);
            }
        }
        Ok(Hosts { names })
    }

    /// Every name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// The socket address of `name` at `port`: from the file, else from the system resolver.
    ///
    /// # Errors
    /// [`OnlineError::Resolve`].
    pub fn resolve(&self, name: &str, port: u16) -> Result<SocketAddr, OnlineError> {
        if let Some(ip) = self.names.get(name) {
            return Ok(SocketAddr::new(*ip, port));
        }
        let err = |why: String| OnlineError::Resolve {
            name: name.to_string(),
            why,
        };
        (name, port)
            .to_socket_addrs()
            .map_err(|e| err(e.to_string()))?
            .next()
            .ok_or_else(|| err("no address".into()))
    }
}

/// Reads `NAME` or `NAME:PORT`.
///
/// # Errors
/// Not a name, or a bad port.
pub fn parse_daemon(given: &str) -> Result<(Name, u16), String> {
    let (name, port) = match given.rsplit_once(':') {
        Some((name, port)) => (
            name,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?,
        ),
        None => (given, DEFAULT_PORT),
    };
    Ok((name.parse().map_err(|e| format!("{e}"))?, port))
}

/// Open connections to daemons, one per daemon, reused for every request to it.
#[derive(Debug)]
pub struct Session {
    key: OverlayKey,
    hosts: Hosts,
    timeout: Duration,
    clients: BTreeMap<Name, Client>,
}

impl Session {
    /// A session that authenticates with `key` and finds daemons through `hosts`.
    pub fn new(key: OverlayKey, hosts: Hosts, timeout: Duration) -> Session {
        Session {
            key,
            hosts,
            timeout,
            clients: BTreeMap::new(),
        }
    }

    /// The hosts file in use.
    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// Sends `request` to daemon `name` at `port`.
    ///
    /// # Errors
    /// Resolving, connecting, authenticating, or the daemon's refusal.
    pub fn call(
        &mut self,
        name: &Name,
        port: u16,
        request: &Request,
    ) -> Result<Response, OnlineError> {
        if !self.clients.contains_key(name) {
            let addr = self.hosts.resolve(name.as_str(), port)?;
            let client = Client::connect_addr(addr, &self.key, self.timeout)?;
            self.clients.insert(name.clone(), client);
        }
        let Some(client) = self.clients.get_mut(name) else {
            unreachable!("inserted above")
        };
        let result = client.call(request);
        if matches!(
            result,
            Err(ControlError::Io { .. } | ControlError::Protocol { .. })
        ) {
            // A broken connection is not reused.
            self.clients.remove(name);
        }
        Ok(result?)
    }

    /// Sends each daemon its requests, in order, all daemons at once (a thread each, on
    /// its own connection). Returns, per daemon in the order given, its answers or the index
    /// of the request that failed and why.
    pub fn parallel(&mut self, jobs: Vec<Job>) -> Vec<(Name, JobResult)> {
        let (key, hosts, timeout) = (&self.key, &self.hosts, self.timeout);
        let work: Vec<(Job, Option<Client>)> = jobs
            .into_iter()
            .map(|job| {
                let client = self.clients.remove(&job.daemon);
                (job, client)
            })
            .collect();
        let done: Vec<(Name, Option<Client>, JobResult)> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .into_iter()
                .map(|(job, client)| {
                    scope.spawn(move || {
                        let client = match client {
                            Some(client) => Ok(client),
                            None => hosts
                                .resolve(job.daemon.as_str(), job.port)
                                .and_then(|addr| Ok(Client::connect_addr(addr, key, timeout)?)),
                        };
                        let mut client = match client {
                            Ok(client) => client,
                            Err(e) => return (job.daemon, None, Err((0, e))),
                        };
                        let mut answers = Vec::with_capacity(job.requests.len());
                        for (i, request) in job.requests.iter().enumerate() {
                            match client.call(request) {
                                Ok(answer) => answers.push(answer),
                                Err(e) => {
                                    let keep = matches!(e, ControlError::Refused { .. });
                                    let client = keep.then_some(client);
                                    return (job.daemon, client, Err((i, e.into())));
                                }
                            }
                        }
                        (job.daemon, Some(client), Ok(answers))
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        done.into_iter()
            .map(|(name, client, result)| {
                if let Some(client) = client {
                    self.clients.insert(name.clone(), client);
                }
                (name, result)
            })
            .collect()
    }

    /// Every daemon's links, asked all at once.
    fn all_links(
        &mut self,
        topology: &Topology,
    ) -> Result<Vec<(Name, Vec<LinkInfo>)>, OnlineError> {
        let jobs = topology
            .hosts
            .values()
            .map(|h| Job::new(h, vec![Request::ListLinks]))
            .collect();
        self.parallel(jobs)
            .into_iter()
            .map(|(name, result)| match result.map_err(|(_, e)| e)?.pop() {
                Some(Response::Links { links }) => Ok((name, links)),
                other => Err(unexpected(&name, &format!("{other:?}"))),
            })
            .collect()
    }

    /// The statistics of daemon `name` at `port`.
    ///
    /// # Errors
    /// As [`Session::call`].
    pub fn stats(&mut self, name: &Name, port: u16) -> Result<Stats, OnlineError> {
        match self.call(name, port, &Request::Stats)? {
            Response::Stats(stats) => Ok(*stats),
            other => Err(unexpected(name, &other)),
        }
    }
}

fn unexpected(daemon: &Name, answer: &impl std::fmt::Debug) -> OnlineError {
    OnlineError::Unexpected {
        daemon: daemon.clone(),
        answer: format!("{answer:?}"),
    }
}

/// Requests for one daemon, sent in order ([`Session::parallel`]).
#[derive(Debug, Clone)]
pub struct Job {
    /// The daemon.
    pub daemon: Name,
    /// Its control port.
    pub port: u16,
    /// What to send it.
    pub requests: Vec<Request>,
}

impl Job {
    /// `requests` for the daemon of `host`.
    pub fn new(host: &Host, requests: Vec<Request>) -> Job {
        Job {
            daemon: host.machine.clone(),
            port: host.port,
            requests,
        }
    }
}

/// A daemon's answers to its [`Job`], or the index of the request that failed and why.
pub type JobResult = Result<Vec<Response>, (usize, OnlineError)>;

/// The daemons of a hosts file, as `HOST` lines with the defaults (`root`, [`DEFAULT_PORT`],
/// `eth0`): what `show` and friends use when no topology file is given.
pub fn declared_from_hosts(hosts: &Hosts) -> Topology {
    let mut topology = Topology::default();
    for name in hosts.names() {
        if let (Ok(machine), Ok(interface)) = (name.parse::<Name>(), "eth0".parse::<Name>()) {
            topology.hosts.insert(
                machine.clone(),
                Host {
                    user: "root".into(),
                    machine,
                    port: DEFAULT_PORT,
                    interface,
                },
            );
        }
    }
    topology
}

/// The overlay as its daemons report it.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The declared machines, the links both ends report, and every daemon's rules.
    pub topology: Topology,
    /// Links only one end reports, with that end.
    pub half_links: Vec<(Link, Name)>,
    /// Each link's state at each end: `(link, state at a, state at b)`.
    pub states: Vec<(Link, String, String)>,
}

impl Live {
    /// The links that are not up at both ends (for routes over the live overlay).
    pub fn down(&self) -> BTreeSet<Link> {
        self.states
            .iter()
            .filter(|(_, a, b)| a != "up" || b != "up")
            .map(|(l, _, _)| l.clone())
            .collect()
    }
}

/// Asks every daemon `declared` names for its links and rules.
///
/// # Errors
/// The first daemon that cannot be asked.
pub fn live(session: &mut Session, declared: &Topology) -> Result<Live, OnlineError> {
    let mut live = Live::default();
    live.topology.hosts = declared.hosts.clone();
    let mut ends: BTreeMap<Link, BTreeMap<Name, String>> = BTreeMap::new();
    let jobs = declared
        .hosts
        .values()
        .map(|h| Job::new(h, vec![Request::ListLinks, Request::ListRules]))
        .collect();
    for (machine, result) in session.parallel(jobs) {
        let answers = result.map_err(|(_, e)| e)?;
        let (Some(Response::Links { links }), Some(Response::Rules { rules })) =
            (answers.first(), answers.get(1))
        else {
            return Err(unexpected(&machine, &answers));
        };
        for info in links {
            if let Some(link) = Link::new(machine.clone(), info.peer.clone(), info.kind) {
                ends.entry(link)
                    .or_default()
                    .insert(machine.clone(), info.state.clone());
            }
        }
        let table = live.topology.rules.entry(machine.clone()).or_default();
        for rule in rules {
            table.insert((rule.src, rule.dst), rule.target.clone());
        }
    }
    for (link, states) in ends {
        match (states.get(&link.a), states.get(&link.b)) {
            (Some(a), Some(b)) => {
                live.states.push((link.clone(), a.clone(), b.clone()));
                live.topology.links.insert(link);
            }
            _ => {
                // Only one end answered for it (or the other is not declared).
                if let Some(end) = states.keys().next() {
                    live.half_links.push((link, end.clone()));
                }
            }
        }
    }
    Ok(live)
}

/// What `vnetctl show` prints: link states and half links as comments, then the live
/// topology in the language.
pub fn show_text(live: &Live) -> String {
    let mut out = String::new();
    for (link, a, b) in &live.states {
        let _ = writeln!(
            out,
            "# {}-{}: {a} at {}, {b} at {}",
            link.a, link.b, link.a, link.b
        );
    }
    for (link, end) in &live.half_links {
        let _ = writeln!(
            out,
            "# half link {}-{}: only {end} has it (apply completes or removes it)",
            link.a, link.b
        );
    }
    out.push_str(&lang::print(&live.topology));
    out
}

/// Whether one primitive, applied to the live overlay of `declared`'s daemons, would make a
/// frame loop, go astray or arrive twice that does not already ([`crate::forward::check`],
/// with `proxy` as the Proxy): what `vnetctl add-link`, `delete-link`, `add-rule` and
/// `delete-rule --against FILE` ask before they send anything.
///
/// # Errors
/// [`OnlineError::Refused`] with the new problems (or why the primitive cannot apply);
/// errors reading the live overlay.
pub fn check_primitive(
    session: &mut Session,
    declared: &Topology,
    proxy: &Name,
    action: &Action,
) -> Result<(), OnlineError> {
    let live = live(session, declared)?;
    let problems = |t: &Topology| -> BTreeSet<String> {
        crate::forward::check(t, proxy)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let before = problems(&live.topology);
    let mut after = live.topology.clone();
    lang::apply(&mut after, action).map_err(|e| OnlineError::Refused {
        problems: format!("  {action}: {e}\n"),
    })?;
    let new: Vec<String> = problems(&after).difference(&before).cloned().collect();
    if new.is_empty() {
        return Ok(());
    }
    Err(OnlineError::Refused {
        problems: new
            .iter()
            .fold(format!("  {action} would cause:\n"), |mut s, p| {
                let _ = writeln!(s, "  {p}");
                s
            }),
    })
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// The primitives of the plan, in the language, in the order applied.
    pub actions: Vec<String>,
    /// Control calls made (a link is two: one per end).
    pub calls: usize,
    /// How long applying took (after the live state was read).
    pub elapsed: Duration,
}

/// Brings the overlay to `desired`: checks it as a whole ([`crate::forward::check`], with `proxy`
/// as the Proxy), reads the live state, plans the fewest primitives in a safe order
/// ([`lang::plan`]) and sends each to the daemon(s) it concerns, calling `progress` with each
/// primitive's text as it goes. Idempotent: a second run finds nothing to do.
///
/// # Errors
/// [`OnlineError::Refused`] before anything is changed; [`OnlineError::Primitive`] for the
/// first primitive that fails; errors reading the live state.
pub fn apply(
    session: &mut Session,
    desired: &Topology,
    proxy: &Name,
    mut progress: impl FnMut(&str),
) -> Result<ApplyReport, OnlineError> {
    let report = crate::cli::check(desired, proxy).map_err(|e| OnlineError::Refused {
        problems: format!("  {e}\n"),
    })?;
    let problems = report.problems;
    if !problems.is_empty() {
        let problems = problems.iter().fold(String::new(), |mut s, p| {
            let _ = writeln!(s, "  {p}");
            s
        });
        return Err(OnlineError::Refused { problems });
    }
    let current = live(session, desired)?;
    let start = Instant::now();
    let mut steps: Vec<(Action, Vec<(Name, Request)>)> = Vec::new();
    for action in lang::plan(&current.topology, desired) {
        let requests = requests_for(session.hosts(), desired, &action)?;
        steps.push((action, requests));
    }
    // Half links the desired topology lacks: remove them at the end that has them.
    for (link, end) in &current.half_links {
        if !desired.links.contains(link) {
            if let Some(peer) = link.peer_of(end) {
                let action = Action::Delete(Item::Link(link.clone()));
                steps.push((
                    action,
                    vec![(end.clone(), Request::DeleteLink { peer: peer.clone() })],
                ));
            }
        }
    }
    let total = steps.len();
    let mut report = ApplyReport {
        actions: Vec::new(),
        calls: 0,
        elapsed: Duration::ZERO,
    };
    // Runs of primitives of one kind (add links, add rules, delete rules, delete links, as
    // the plan orders them) go to all their daemons at once; each daemon gets its share in
    // plan order, and a run starts when the one before it is done everywhere.
    let mut index = 0;
    while index < steps.len() {
        let kind = phase(&steps[index].0);
        let end = steps[index..]
            .iter()
            .position(|(a, _)| phase(a) != kind)
            .map_or(steps.len(), |n| index + n);
        let mut per_daemon: BTreeMap<Name, (Vec<Request>, Vec<usize>)> = BTreeMap::new();
        for (i, (action, requests)) in steps[index..end].iter().enumerate() {
            progress(&action.to_string());
            for (daemon, request) in requests {
                let entry = per_daemon.entry(daemon.clone()).or_default();
                entry.0.push(request.clone());
                entry.1.push(index + i);
            }
        }
        let mut step_of: BTreeMap<Name, Vec<usize>> = BTreeMap::new();
        let jobs = per_daemon
            .into_iter()
            .map(|(daemon, (requests, steps_of))| {
                let port = desired.hosts.get(&daemon).map_or(DEFAULT_PORT, |h| h.port);
                step_of.insert(daemon.clone(), steps_of);
                Job {
                    daemon,
                    port,
                    requests,
                }
            })
            .collect();
        let mut failure = None;
        for (daemon, result) in session.parallel(jobs) {
            match result {
                Ok(answers) => report.calls += answers.len(),
                Err((i, error)) => {
                    report.calls += i;
                    let step = step_of
                        .get(&daemon)
                        .and_then(|s| s.get(i))
                        .copied()
                        .unwrap_or(index);
                    if failure.as_ref().is_none_or(|(s, _, _)| step < *s) {
                        failure = Some((step, daemon, error));
                    }
                }
            }
        }
        if let Some((step, daemon, error)) = failure {
            return Err(match error {
                OnlineError::Control(error) => OnlineError::Primitive {
                    index: step + 1,
                    total,
                    action: steps[step].0.to_string(),
                    daemon,
                    error: Box::new(error),
                    index_before: step,
                },
                other => other,
            });
        }
        report
            .actions
            .extend(steps[index..end].iter().map(|(a, _)| a.to_string()));
        index = end;
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Which run of the plan a primitive belongs to (see [`apply`]).
fn phase(action: &Action) -> (bool, bool) {
    match action {
        Action::Add(item) => (true, matches!(item, Item::Link(_))),
        Action::Delete(item) => (false, matches!(item, Item::Link(_))),
    }
}

/// The control requests that carry out one primitive: a link at both its ends (each told
/// where the other's link socket is), a rule at its machine. Which end hears of the link first
/// does not matter: a daemon answers a hello that came before its link was configured.
fn requests_for(
    hosts: &Hosts,
    topology: &Topology,
    action: &Action,
) -> Result<Vec<(Name, Request)>, OnlineError> {
    let port_of = |name: &Name| topology.hosts.get(name).map_or(DEFAULT_PORT, |h| h.port);
    Ok(match action {
        Action::Add(Item::Link(link)) => {
            let mut requests = Vec::new();
            for (me, peer) in [(&link.a, &link.b), (&link.b, &link.a)] {
                let addr = hosts.resolve(peer.as_str(), port_of(peer))?;
                requests.push((
                    me.clone(),
                    Request::AddLink {
                        peer: peer.clone(),
                        kind: link.kind,
                        addr: Some(addr),
                    },
                ));
            }
            requests
        }
        Action::Delete(Item::Link(link)) => vec![
            (
                link.a.clone(),
                Request::DeleteLink {
                    peer: link.b.clone(),
                },
            ),
            (
                link.b.clone(),
                Request::DeleteLink {
                    peer: link.a.clone(),
                },
            ),
        ],
        Action::Add(Item::Rule { machine, rule }) => {
            vec![(machine.clone(), Request::AddRule { rule: rule.clone() })]
        }
        Action::Delete(Item::Rule { machine, rule }) => vec![(
            machine.clone(),
            Request::DeleteRule {
                src: rule.src,
                dst: rule.dst,
            },
        )],
    })
}

/// Adds the link between `a` and `b` at both ends (the primitive "add an overlay link between
/// two daemons"), each told where the other is.
///
/// # Errors
/// Resolving either end, or either daemon's refusal.
pub fn add_link(
    session: &mut Session,
    a: (&Name, u16),
    b: (&Name, u16),
    kind: crate::model::LinkKind,
) -> Result<Vec<String>, OnlineError> {
    let mut messages = Vec::new();
    for ((me, my_port), (peer, peer_port)) in [(a, b), (b, a)] {
        let addr = session.hosts.resolve(peer.as_str(), peer_port)?;
        let request = Request::AddLink {
            peer: peer.clone(),
            kind,
            addr: Some(addr),
        };
        if let Response::Ok {
            message: Some(message),
        } = session.call(me, my_port, &request)?
        {
            messages.push(format!("{me}: {message}"));
        }
    }
    Ok(messages)
}

/// Waits until every link of `topology` is up at both ends, polling every 5 ms.
///
/// # Errors
/// [`OnlineError::NotUp`] after `timeout`, naming the links still down; errors asking.
pub fn wait_up(
    session: &mut Session,
    topology: &Topology,
    timeout: Duration,
) -> Result<Duration, OnlineError> {
    let start = Instant::now();
    loop {
        let mut states: BTreeMap<(Name, Name), String> = BTreeMap::new();
        for (machine, links) in session.all_links(topology)? {
            for info in links {
                states.insert((machine.clone(), info.peer), info.state);
            }
        }
        let state = |a: &Name, b: &Name| {
            states
                .get(&(a.clone(), b.clone()))
                .map_or("missing", String::as_str)
                .to_string()
        };
        let down: Vec<String> = topology
            .links
            .iter()
            .filter_map(|l| {
                let (a, b) = (state(&l.a, &l.b), state(&l.b, &l.a));
                (a != "up" || b != "up").then(|| format!("{}-{} ({a} / {b})", l.a, l.b))
            })
            .collect();
        if down.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(OnlineError::NotUp {
                waited: start.elapsed(),
                links: down.join(", "),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A readable rendering of a daemon's statistics.
pub fn stats_text(stats: &Stats) -> String {
    let mut out = String::new();
    let name = stats.name.as_ref().map_or("?", |n| n.as_str());
    let _ = writeln!(out, "daemon {name}");
    let _ = writeln!(
        out,
        "\nports{:>14}{:>14}{:>14}{:>14}  drops",
        "rx frames", "rx bytes", "tx frames", "tx bytes"
    );
    for p in &stats.ports {
        let _ = writeln!(
            out,
            "  {:<8}{:>11}{:>14}{:>14}{:>14}  {}",
            p.name.as_str(),
            p.rx.frames,
            p.rx.bytes,
            p.tx.frames,
            p.tx.bytes,
            drops_text(&p.drops)
        );
    }
    let _ = writeln!(
        out,
        "\nlinks{:>12}{:>10}{:>12}{:>14}{:>12}{:>14}{:>10}  drops",
        "state", "rtt ms", "rx frames", "rx bytes", "tx frames", "tx bytes", "ctl rx/tx"
    );
    for l in &stats.links {
        let (peer, state, rtt) = l.info.as_ref().map_or(("?".into(), "?".into(), None), |i| {
            (i.peer.to_string(), i.state.clone(), i.rtt_s)
        });
        let rtt = rtt.map_or("-".to_string(), |r| format!("{:.3}", r * 1000.0));
        let _ = writeln!(
            out,
            "  {peer:<8}{state:>9}{rtt:>10}{:>12}{:>14}{:>12}{:>14}{:>10}  {}",
            l.rx.frames,
            l.rx.bytes,
            l.tx.frames,
            l.tx.bytes,
            format!("{}/{}", l.control_rx, l.control_tx),
            drops_text(&l.drops)
        );
    }
    let _ = writeln!(out, "\nrules{:>52}{:>14}", "frames", "bytes");
    for (rule, t) in &stats.rules {
        let text = format!("{:?} {:?} -> {:?}", rule.src, rule.dst, rule.target);
        let _ = writeln!(out, "  {text:<55}{:>14}{:>14}", t.frames, t.bytes);
    }
    let _ = writeln!(
        out,
        "\nrelayed link-to-link: unicast {} frames / {} bytes, broadcast {} frames / {} bytes",
        stats.relayed_unicast.frames,
        stats.relayed_unicast.bytes,
        stats.relayed_group.frames,
        stats.relayed_group.bytes
    );
    let _ = writeln!(
        out,
        "forwarding cache: {} hits, {} misses; drops: {}",
        stats.cache_hits,
        stats.cache_misses,
        drops_text(&stats.drops)
    );
    out
}

fn drops_text(drops: &BTreeMap<String, u64>) -> String {
    if drops.is_empty() {
        return "-".into();
    }
    drops
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_files_parse_and_refuse_garbage() {
        let hosts =
            Hosts::parse("# overlay\n10.200.0.1 host1 h1\n\n10.200.255.254 proxy # px\n").unwrap();
        assert_eq!(
            hosts.resolve("h1", 5400).unwrap(),
            "10.200.0.1:5400".parse().unwrap()
        );
        assert_eq!(
            hosts.resolve("proxy", 1).unwrap(),
            "10.200.255.254:1".parse().unwrap()
        );
        assert_eq!(hosts.names().collect::<Vec<_>>(), ["h1", "host1", "proxy"]);
        let err = Hosts::parse("host1 10.0.0.1\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn daemons_are_named_with_an_optional_port() {
        assert_eq!(
            parse_daemon("host1").unwrap(),
            ("host1".parse().unwrap(), DEFAULT_PORT)
        );
        assert_eq!(parse_daemon("host1:7000").unwrap().1, 7000);
        assert!(parse_daemon("host1:0").is_err());
        assert!(parse_daemon("-x").is_err());
    }
}

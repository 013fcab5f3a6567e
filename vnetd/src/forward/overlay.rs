//! The whole overlay at once: every daemon's table built from a [`Topology`], frames followed
//! from daemon to daemon, and a configuration checked for loops, dead ends, misdeliveries and
//! broadcasts that do not reach everyone exactly once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use super::{Decision, DropReason, Ingress, MatchText, Out, Role, RuleError, Table};
use crate::model::{DstMatch, Link, LinkKind, Mac, Match, Name, Rule, Target, Topology};

/// One step of a frame's path: a daemon and where it sent the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The daemon that forwarded the frame.
    pub daemon: Name,
    /// Where it sent the frame.
    pub out: Out,
    /// The link's transport, when `out` is a link.
    pub kind: Option<LinkKind>,
    /// The match of the rule that decided.
    pub rule: Option<Match>,
}

impl fmt::Display for Hop {
    /// `host1 --udp--> proxy` or `host3 -> port vm3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.daemon)?;
        self.fmt_out(f)
    }
}

impl Hop {
    /// The part after the daemon's name: ` --udp--> proxy` or ` -> port vm3`.
    fn fmt_out(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.out {
            Out::Link(peer) => match self.kind {
                Some(LinkKind::Udp) => write!(f, " --udp--> {peer}"),
                Some(LinkKind::Tcp) => write!(f, " --tcp--> {peer}"),
                None => write!(f, " --> {peer}"),
            },
            Out::Port(port) => write!(f, " -> port {port}"),
        }
    }
}

/// A path written as in `vnetctl route`: `host1 --udp--> proxy --udp--> host3 -> port vm3`.
struct Path<'a>(&'a [Hop]);

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(first) = self.0.first() else {
            return f.write_str("(nowhere)");
        };
        write!(f, "{}", first.daemon)?;
        for hop in self.0 {
            hop.fmt_out(f)?;
        }
        Ok(())
    }
}

/// The path of a unicast frame from its sender's port to the port it is delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The hops, the last one out of a port.
    pub hops: Vec<Hop>,
}

impl Route {
    /// The daemon and port the frame is delivered to.
    pub fn delivered_to(&self) -> Option<(&Name, &Name)> {
        match self.hops.last() {
            Some(Hop {
                daemon,
                out: Out::Port(port),
                ..
            }) => Some((daemon, port)),
            _ => None,
        }
    }

    /// The links the frame crosses, in order, as (from, to) daemons.
    pub fn links(&self) -> impl Iterator<Item = (&Name, &Name)> {
        links_of(&self.hops)
    }
}

fn links_of(hops: &[Hop]) -> impl Iterator<Item = (&Name, &Name)> {
    hops.iter().filter_map(|hop| match &hop.out {
        Out::Link(peer) => Some((&hop.daemon, peer)),
        Out::Port(_) => None,
    })
}

impl fmt::Display for Route {
    /// `host1 --udp--> proxy --udp--> host3 -> port vm3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Path(&self.hops).fmt(f)
    }
}

/// Where a guest lives: its daemon and its port there.
pub type Home = (Name, Name);

struct Homes<'a>(&'a [Home]);

impl fmt::Display for Homes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (daemon, port)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{daemon} port {port}")?;
        }
        Ok(())
    }
}

/// Why a frame cannot be followed to a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No daemon has a port rule for the source address.
    #[error("{mac} is not a guest of this overlay: no daemon has a rule sending {mac} to a port")]
    UnknownSource {
        /// The source address.
        mac: Mac,
    },
    /// More than one daemon or port claims the address.
    #[error("{mac} has more than one home: {}", Homes(homes))]
    AmbiguousHome {
        /// The address.
        mac: Mac,
        /// Every (daemon, port) with a rule sending it there.
        homes: Vec<Home>,
    },
    /// The destination is a group address.
    #[error(
        "{mac} is a broadcast or multicast address: such frames are flooded along the star, not \
         routed"
    )]
    GroupDestination {
        /// The destination address.
        mac: Mac,
    },
    /// The frame reaches a daemon it has already passed.
    #[error("loop through {}: {}", Cycle(cycle), Path(hops))]
    Loop {
        /// The daemons of the cycle, the first one repeated at the end.
        cycle: Vec<Name>,
        /// The hops from the sender to the repeated daemon.
        hops: Vec<Hop>,
    },
    /// A daemon drops the frame.
    #[error("{}: dropped at {at}: {reason}", Trail(hops, at))]
    DeadEnd {
        /// The daemon that drops it.
        at: Name,
        /// Its reason.
        reason: DropReason,
        /// The hops before it.
        hops: Vec<Hop>,
    },
    /// A broadcast keeps being forwarded (some daemon floods it back): it was followed for this
    /// many receptions before giving up.
    #[error("a broadcast from {mac} was still being forwarded after {receptions} receptions")]
    Storm {
        /// The source address.
        mac: Mac,
        /// How many times a daemon received it before giving up.
        receptions: usize,
    },
}

impl RouteError {
    /// The hops the frame took before the problem, if any.
    pub fn hops(&self) -> &[Hop] {
        match self {
            RouteError::Loop { hops, .. } | RouteError::DeadEnd { hops, .. } => hops,
            _ => &[],
        }
    }
}

struct Cycle<'a>(&'a [Name]);

impl fmt::Display for Cycle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{name}")?;
        }
        Ok(())
    }
}

/// The path up to a daemon: the hops, or the daemon alone if there are none.
struct Trail<'a>(&'a [Hop], &'a Name);

impl fmt::Display for Trail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            write!(f, "{}", self.1)
        } else {
            Path(self.0).fmt(f)
        }
    }
}

/// How many copies of one broadcast each (daemon, port) received.
pub type Deliveries = BTreeMap<Home, usize>;

/// "with link a–b (udp) down, " or nothing.
struct Scenario<'a>(&'a Option<Link>);

impl fmt::Display for Scenario<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(link) => write!(f, "with link {}-{} down, ", link.a, link.b),
            None => Ok(()),
        }
    }
}

fn target_text(target: &Target) -> String {
    Out::from(target.clone()).to_string()
}

/// Something wrong with a configuration, found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A daemon's table would refuse one of its rules.
    #[error("{daemon}: rule {} -> {} is refused: {error}", MatchText(&(rule.src, rule.dst)), target_text(&rule.target))]
    BadRule {
        /// The daemon.
        daemon: Name,
        /// The rule.
        rule: Rule,
        /// Why it is refused.
        error: RuleError,
    },
    /// More than one daemon or port claims a guest's address.
    #[error("{mac} has more than one home: {}", Homes(homes))]
    AmbiguousHome {
        /// The address.
        mac: Mac,
        /// Every (daemon, port) with a rule sending it there.
        homes: Vec<Home>,
    },
    /// A frame from one guest to another goes nowhere.
    #[error("{}{src} to {dst}: {error}", Scenario(down))]
    Unreachable {
        /// The link that is down in this scenario, if any.
        down: Option<Link>,
        /// The sender.
        src: Mac,
        /// The receiver.
        dst: Mac,
        /// What goes wrong.
        error: RouteError,
    },
    /// A frame from one guest to another arrives at the wrong port.
    #[error(
        "{}{src} to {dst}: {route} delivers to {} port {} instead of {} port {}",
        Scenario(down), delivered.0, delivered.1, expected.0, expected.1
    )]
    Misdelivered {
        /// The link that is down in this scenario, if any.
        down: Option<Link>,
        /// The sender.
        src: Mac,
        /// The receiver.
        dst: Mac,
        /// The path it takes.
        route: Route,
        /// Where it arrives.
        delivered: Home,
        /// Where the receiver lives.
        expected: Home,
    },
    /// A broadcast from a guest reaches some port other than once (its sender: other than
    /// never).
    #[error(
        "a broadcast from {src} reaches {} port {} {} (expected {})",
        receiver.0, receiver.1, Times(*copies), Times(*expected)
    )]
    Broadcast {
        /// The sender.
        src: Mac,
        /// The (daemon, port) that receives the wrong number of copies.
        receiver: Home,
        /// How many it receives.
        copies: usize,
        /// How many it should.
        expected: usize,
    },
    /// A broadcast from a guest cannot be followed.
    #[error("broadcast from {src}: {error}")]
    Flood {
        /// The sender.
        src: Mac,
        /// What goes wrong.
        error: RouteError,
    },
}

struct Times(usize);

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("never"),
            1 => f.write_str("once"),
            n => write!(f, "{n} times"),
        }
    }
}

/// Every daemon's table, built from a [`Topology`] as the daemons would hold it, with every
/// port its rules name attached and every link of the topology up unless told otherwise
/// ([`Overlay::set_link`]).
#[derive(Debug, Clone)]
pub struct Overlay {
    tables: BTreeMap<Name, Table>,
    kinds: BTreeMap<(Name, Name), LinkKind>,
    homes: BTreeMap<Mac, Vec<Home>>,
    refused: Vec<Problem>,
}

impl Overlay {
    /// Builds every daemon's table. The daemons are the topology's hosts, the machines its links
    /// and rules name, and `proxy`; `proxy` gets [`Role::Proxy`] and every other daemon
    /// [`Role::Host`]. Rules a table refuses are left out ([`Overlay::refused`]).
    pub fn new(topology: &Topology, proxy: &Name) -> Overlay {
        let mut names: BTreeSet<&Name> = topology.hosts.keys().collect();
        names.extend(topology.rules.keys());
        for link in &topology.links {
            names.insert(&link.a);
            names.insert(&link.b);
        }
        names.insert(proxy);
        let mut tables: BTreeMap<Name, Table> = names
            .into_iter()
            .map(|name| {
                let role = if name == proxy {
                    Role::Proxy
                } else {
                    Role::Host {
                        proxy: proxy.clone(),
                    }
                };
                (name.clone(), Table::new(role, name.clone()))
            })
            .collect();

        let mut kinds = BTreeMap::new();
        for link in &topology.links {
            // At most one link per pair; should a topology hold two, the first (UDP) counts.
            kinds
                .entry((link.a.clone(), link.b.clone()))
                .or_insert(link.kind);
            if let Some(table) = tables.get_mut(&link.a) {
                table.link_up(link.b.clone());
            }
            if let Some(table) = tables.get_mut(&link.b) {
                table.link_up(link.a.clone());
            }
        }

        let mut homes: BTreeMap<Mac, Vec<Home>> = BTreeMap::new();
        let mut refused = Vec::new();
        for (daemon, rules) in &topology.rules {
            let Some(table) = tables.get_mut(daemon) else {
                continue;
            };
            for ((src, dst), target) in rules {
                let rule = Rule {
                    src: *src,
                    dst: *dst,
                    target: target.clone(),
                };
                if let Err(error) = table.add_rule(rule.clone()) {
                    refused.push(Problem::BadRule {
                        daemon: daemon.clone(),
                        rule,
                        error,
                    });
                    continue;
                }
                if let Target::Port(port) = target {
                    table.attach_port(port.clone());
                    if let DstMatch::Is(mac) = dst {
                        let home = (daemon.clone(), port.clone());
                        let list = homes.entry(*mac).or_default();
                        if !list.contains(&home) {
                            list.push(home);
                        }
                    }
                }
            }
        }
        Overlay {
            tables,
            kinds,
            homes,
            refused,
        }
    }

    /// The problems found while building: rules a table refused.
    pub fn refused(&self) -> &[Problem] {
        &self.refused
    }

    /// A daemon's table.
    pub fn table(&self, daemon: &Name) -> Option<&Table> {
        self.tables.get(daemon)
    }

    /// Takes the link between `a` and `b` down (`up == false`) or brings it back. A link the
    /// topology does not have cannot be brought up: nothing happens.
    pub fn set_link(&mut self, a: &Name, b: &Name, up: bool) {
        let key = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        if !self.kinds.contains_key(&key) {
            return;
        }
        for (end, peer) in [(a, b), (b, a)] {
            if let Some(table) = self.tables.get_mut(end) {
                if up {
                    table.link_up(peer.clone());
                } else {
                    table.link_down(peer);
                }
            }
        }
    }

    /// Where a guest lives: the one (daemon, port) with a rule sending frames for `mac` there.
    ///
    /// # Errors
    ///
    /// [`RouteError::UnknownSource`] if none does, [`RouteError::AmbiguousHome`] if several do.
    pub fn home(&self, mac: Mac) -> Result<&Home, RouteError> {
        match self.homes.get(&mac).map(Vec::as_slice) {
            None | Some([]) => Err(RouteError::UnknownSource { mac }),
            Some([home]) => Ok(home),
            Some(homes) => Err(RouteError::AmbiguousHome {
                mac,
                homes: homes.to_vec(),
            }),
        }
    }

    /// Every guest address with exactly one home, in order.
    pub fn guests(&self) -> impl Iterator<Item = Mac> + '_ {
        self.homes
            .iter()
            .filter(|(_, homes)| homes.len() == 1)
            .map(|(mac, _)| *mac)
    }

    fn kind(&self, a: &Name, b: &Name) -> Option<LinkKind> {
        let key = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        self.kinds.get(&key).copied()
    }

    /// Follows a unicast frame from `src`'s port at its home, through each daemon's table, to the
    /// port it leaves by.
    ///
    /// # Errors
    ///
    /// The source has no home or several, the destination is a group address, the frame passes a
    /// daemon twice ([`RouteError::Loop`], even if it would leave it differently the second
    /// time: two daemons then disagree about the way), or a daemon drops it
    /// ([`RouteError::DeadEnd`]).
    pub fn route(&self, src: Mac, dst: Mac) -> Result<Route, RouteError> {
        if dst.is_group() {
            return Err(RouteError::GroupDestination { mac: dst });
        }
        let (home, port) = self.home(src)?;
        let mut at = home.clone();
        let mut ingress = Ingress::Port(port.clone());
        let mut visited: Vec<Name> = Vec::new();
        let mut hops: Vec<Hop> = Vec::new();
        loop {
            if let Some(first) = visited.iter().position(|d| *d == at) {
                let mut cycle = visited.split_off(first);
                cycle.push(at);
                return Err(RouteError::Loop { cycle, hops });
            }
            visited.push(at.clone());
            let Some(table) = self.tables.get(&at) else {
                return Err(RouteError::DeadEnd {
                    at,
                    reason: DropReason::UnknownIngress,
                    hops,
                });
            };
            let explanation = table.explain(&ingress, src, dst);
            let rule = explanation.rule.map(|r| (r.src, r.dst));
            match explanation.decision {
                Decision::Forward(Out::Port(port)) => {
                    hops.push(Hop {
                        daemon: at,
                        out: Out::Port(port),
                        kind: None,
                        rule,
                    });
                    return Ok(Route { hops });
                }
                Decision::Forward(Out::Link(peer)) => {
                    hops.push(Hop {
                        daemon: at.clone(),
                        out: Out::Link(peer.clone()),
                        kind: self.kind(&at, &peer),
                        rule,
                    });
                    ingress = Ingress::Link(at);
                    at = peer;
                }
                Decision::Drop(reason) => return Err(RouteError::DeadEnd { at, reason, hops }),
                // Only group destinations are flooded, and they were refused above.
                Decision::Flood(_) => return Err(RouteError::GroupDestination { mac: dst }),
            }
        }
    }

    /// Follows a broadcast from `src`'s port at its home through every daemon it reaches, and
    /// counts the copies each (daemon, port) receives. Ports that receive none are absent.
    ///
    /// # Errors
    ///
    /// The source has no home or several, or the broadcast is still being forwarded after
    /// more receptions than the overlay has ports and links ([`RouteError::Storm`]).
    pub fn broadcast(&self, src: Mac) -> Result<Deliveries, RouteError> {
        let (home, port) = self.home(src)?;
        let bound = self
            .tables
            .values()
            .map(|t| t.links_up().count() + t.ports().count())
            .sum::<usize>()
            .saturating_add(1);
        let mut deliveries = Deliveries::new();
        let mut queue = VecDeque::from([(home.clone(), Ingress::Port(port.clone()))]);
        let mut receptions = 0usize;
        while let Some((at, ingress)) = queue.pop_front() {
            receptions += 1;
            if receptions > bound {
                return Err(RouteError::Storm {
                    mac: src,
                    receptions: bound,
                });
            }
            let Some(table) = self.tables.get(&at) else {
                continue;
            };
            let Decision::Flood(outs) = table.explain(&ingress, src, Mac::BROADCAST).decision
            else {
                continue;
            };
            for out in outs {
                match out {
                    Out::Port(port) => *deliveries.entry((at.clone(), port)).or_insert(0) += 1,
                    Out::Link(peer) => queue.push_back((peer, Ingress::Link(at.clone()))),
                }
            }
        }
        Ok(deliveries)
    }

    /// Every attached port of every daemon.
    fn ports(&self) -> BTreeSet<Home> {
        self.tables
            .iter()
            .flat_map(|(daemon, table)| table.ports().map(|p| (daemon.clone(), p.clone())))
            .collect()
    }
}

/// Follows a unicast frame from `src` to `dst` through a configuration whose Proxy is `proxy`,
/// with `down_links` down and every other link up: what `vnetctl route` prints.
///
/// # Errors
///
/// As [`Overlay::route`].
pub fn route(
    topology: &Topology,
    proxy: &Name,
    src: Mac,
    dst: Mac,
    down_links: &BTreeSet<Link>,
) -> Result<Route, RouteError> {
    let mut overlay = Overlay::new(topology, proxy);
    for link in down_links {
        overlay.set_link(&link.a, &link.b, false);
    }
    overlay.route(src, dst)
}

/// Checks a configuration whose Proxy is `proxy`; an empty list means it is sound. This is what
/// `vnetctl apply` refuses a configuration with.
///
/// It reports rules a daemon would refuse and guests with several homes; then, with every link
/// up and again with each fast path (a link between two hosts) down in turn, it follows a frame
/// between every ordered pair of guests and reports loops, dead ends and frames delivered to
/// the wrong port; and it follows a broadcast from every guest and reports each port that does
/// not get exactly one copy (the sender's: none). Broadcasts travel only along the star, so they
/// are checked with every link up only.
pub fn check(topology: &Topology, proxy: &Name) -> Vec<Problem> {
    let mut overlay = Overlay::new(topology, proxy);
    let mut problems = overlay.refused.clone();
    for (mac, homes) in &overlay.homes {
        if homes.len() > 1 {
            problems.push(Problem::AmbiguousHome {
                mac: *mac,
                homes: homes.clone(),
            });
        }
    }
    let guests: Vec<Mac> = overlay.guests().collect();

    // Every pair with every link up; remember which pairs cross which links. Taking down a link
    // a pair's path does not cross changes nothing on that path (the rules chosen there did not
    // target it, and rules that were unusable stay unusable), so only those pairs are followed
    // again when a fast path goes down.
    let mut crossing: BTreeMap<(Name, Name), Vec<(Mac, Mac)>> = BTreeMap::new();
    for &src in &guests {
        for &dst in &guests {
            if src == dst {
                continue;
            }
            let result = overlay.route(src, dst);
            let hops = match &result {
                Ok(route) => &route.hops[..],
                Err(error) => error.hops(),
            };
            for (a, b) in links_of(hops) {
                let key = if a < b {
                    (a.clone(), b.clone())
                } else {
                    (b.clone(), a.clone())
                };
                crossing.entry(key).or_default().push((src, dst));
            }
            judge(&overlay, &None, src, dst, result, &mut problems);
        }
    }

    let ports = overlay.ports();
    for &src in &guests {
        match overlay.broadcast(src) {
            Ok(deliveries) => {
                let sender = overlay.home(src).ok().cloned();
                let receivers: BTreeSet<&Home> = ports.iter().chain(deliveries.keys()).collect();
                for receiver in receivers {
                    let copies = deliveries.get(receiver).copied().unwrap_or(0);
                    let expected = usize::from(Some(receiver) != sender.as_ref());
                    if copies != expected {
                        problems.push(Problem::Broadcast {
                            src,
                            receiver: receiver.clone(),
                            copies,
                            expected,
                        });
                    }
                }
            }
            Err(error) => problems.push(Problem::Flood { src, error }),
        }
    }

    let fast_paths: Vec<Link> = topology
        .links
        .iter()
        .filter(|link| link.a != *proxy && link.b != *proxy)
        .cloned()
        .collect();
    for link in fast_paths {
        let Some(pairs) = crossing.get(&(link.a.clone(), link.b.clone())) else {
            continue;
        };
        overlay.set_link(&link.a, &link.b, false);
        let down = Some(link.clone());
        for &(src, dst) in pairs {
            let result = overlay.route(src, dst);
            judge(&overlay, &down, src, dst, result, &mut problems);
        }
        overlay.set_link(&link.a, &link.b, true);
    }
    problems
}

/// Records what is wrong, if anything, with the path of a frame between two guests.
fn judge(
    overlay: &Overlay,
    down: &Option<Link>,
    src: Mac,
    dst: Mac,
    result: Result<Route, RouteError>,
    problems: &mut Vec<Problem>,
) {
    match result {
        Ok(route) => {
            let Ok(expected) = overlay.home(dst) else {
                return;
            };
            let delivered = route.delivered_to().map(|(d, p)| (d.clone(), p.clone()));
            if let Some(delivered) = delivered {
                if delivered != *expected {
                    problems.push(Problem::Misdelivered {
                        down: down.clone(),
                        src,
                        dst,
                        route,
                        delivered,
                        expected: expected.clone(),
                    });
                }
            }
        }
        Err(error) => problems.push(Problem::Unreachable {
            down: down.clone(),
            src,
            dst,
            error,
        }),
    }
}

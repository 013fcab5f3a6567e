//! The offline commands of `vnetctl`: what it does with topology-language files alone, before
//! any daemon is asked anything. Each function takes text and values and returns the text to
//! print, so that the binary only reads files, prints and picks the exit status.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::forward::{self, Problem, Route, RouteError};
use crate::lang::{self, Guest, HostChange, StarError};
use crate::model::{Host, Link, LinkKind, Mac, Name, Topology};

/// Why a file does not give a topology, with the file's name: its Display is
/// `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The text is not a program of the language.
    #[error("{file}:{}: {}", error.pos, error.kind)]
    Syntax {
        /// The file's name as given.
        file: String,
        /// What is wrong, and where.
        error: Box<lang::SyntaxError>,
    },
    /// A `HOST` line or item of the program cannot be applied.
    #[error("{file}:{}: {}", error.pos, error.error)]
    Semantic {
        /// The file's name as given.
        file: String,
        /// What is wrong, and where.
        error: Box<lang::ProgramError>,
    },
}

/// The topology that `text`, read from `file`, describes.
///
/// # Errors
///
/// The first syntax error, or the first line that cannot be applied, as `FILE:LINE:COL: …`.
pub fn load(file: &str, text: &str) -> Result<Topology, LoadError> {
    let program = lang::parse(text).map_err(|error| LoadError::Syntax {
        file: file.to_string(),
        error: Box::new(error),
    })?;
    lang::program_to_topology(&program).map_err(|error| LoadError::Semantic {
        file: file.to_string(),
        error: Box::new(error),
    })
}

/// A machine given on the command line that the topology does not declare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Proxy `{proxy}` is not a machine of this topology (declared: {declared}); pass --proxy NAME")]
pub struct UnknownProxy {
    /// The name given.
    pub proxy: Name,
    /// The machines the topology declares, comma-separated.
    pub declared: String,
}

fn require_proxy(topology: &Topology, proxy: &Name) -> Result<(), UnknownProxy> {
    if topology.hosts.contains_key(proxy) {
        return Ok(());
    }
    let declared: Vec<&str> = topology.hosts.keys().map(Name::as_str).collect();
    Err(UnknownProxy {
        proxy: proxy.clone(),
        declared: if declared.is_empty() {
            "none".to_string()
        } else {
            declared.join(", ")
        },
    })
}

/// What `vnetctl check` found in a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// How many machines the topology declares.
    pub hosts: usize,
    /// How many links it has.
    pub links: usize,
    /// How many rules, over every machine's table.
    pub rules: usize,
    /// What [`forward::check`] reports; empty when the configuration is sound.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether the configuration is sound.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The text to print for `file`: one line per problem and a last line that counts them, or
    /// the one-line summary when there are none.
    pub fn text(&self, file: &str) -> String {
        let mut out = String::new();
        for problem in &self.problems {
            let _ = writeln!(out, "{file}: {problem}");
        }
        let counts = format!(
            "{} host{}, {} link{}, {} rule{}",
            self.hosts,
            plural(self.hosts),
            self.links,
            plural(self.links),
            self.rules,
            plural(self.rules)
        );
        if self.ok() {
            let _ = writeln!(out, "{file}: ok: {counts}");
        } else {
            let n = self.problems.len();
            let _ = writeln!(out, "{file}: {n} problem{} ({counts})", plural(n));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Checks a loaded topology as a whole overlay whose Proxy is `proxy` ([`forward::check`]).
///
/// # Errors
///
/// `proxy` is not a machine of the topology.
pub fn check(topology: &Topology, proxy: &Name) -> Result<CheckReport, UnknownProxy> {
    require_proxy(topology, proxy)?;
    Ok(CheckReport {
        hosts: topology.hosts.len(),
        links: topology.links.len(),
        rules: topology.rules.values().map(|table| table.len()).sum(),
        problems: forward::check(topology, proxy),
    })
}

/// What `vnetctl diff` prints: the host changes as comments, then the plan from `current` to
/// `desired` as a program ([`lang::render_plan`]), which applied to `current` gives `desired`.
/// When the two are the same topology, a single comment line.
pub fn diff(current: &Topology, desired: &Topology) -> String {
    let plan = lang::plan(current, desired);
    let hosts = lang::host_changes(current, desired);
    if plan.is_empty() && hosts.is_empty() {
        return "# no differences: nothing to do\n".to_string();
    }
    let mut out = String::new();
    for change in &hosts {
        let line = match change {
            HostChange::Added(host) => format!("start the daemon on `{}` before", host.machine),
            HostChange::Removed(host) => format!("stop the daemon on `{}` after", host.machine),
            HostChange::Changed { current, desired } => format!(
                "restart the daemon on `{}` (now {}@{}:{} on {}, to be {}@{}:{} on {})",
                desired.machine,
                current.user,
                current.machine,
                current.port,
                current.interface,
                desired.user,
                desired.machine,
                desired.port,
                desired.interface
            ),
        };
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(out, "# {} primitive{}", plan.len(), plural(plan.len()));
    out.push_str(&lang::render_plan(current, desired, &plan));
    out
}

/// Why `vnetctl route` cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteCmdError {
    /// The Proxy is not a machine of the topology.
    #[error(transparent)]
    UnknownProxy(#[from] UnknownProxy),
    /// A `--down` value is not `A-B` for two machines a link joins.
    #[error("--down `{given}`: {why}")]
    BadDown {
        /// The value given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// The frame cannot be followed to a port.
    #[error("no route from {src} to {dst}: {error}")]
    NoRoute {
        /// The source address.
        src: Mac,
        /// The destination address.
        dst: Mac,
        /// What goes wrong.
        error: RouteError,
    },
}

/// The link of `topology` that `given` (`A-B`, either order) names. Names may hold `-`
/// themselves, so every split at a `-` is tried and the one that names a link is taken.
///
/// # Errors
///
/// No split names a link of the topology, or more than one does.
pub fn down_link(topology: &Topology, given: &str) -> Result<Link, RouteCmdError> {
    let bad = |why: String| RouteCmdError::BadDown {
        given: given.to_string(),
        why,
    };
    let mut pairs = Vec::new();
    let mut found = Vec::new();
    for (i, _) in given.match_indices('-') {
        let (Ok(a), Ok(b)) = (given[..i].parse::<Name>(), given[i + 1..].parse::<Name>()) else {
            continue;
        };
        if let Some(link) = topology
            .links
            .iter()
            .find(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
        {
            found.push(link.clone());
        }
        pairs.push((a, b));
    }
    match (found.len(), pairs.first()) {
        (1, _) => Ok(found.remove(0)),
        (0, None) => Err(bad(
            "expected two machine names joined by `-`, e.g. host1-host2".to_string(),
        )),
        (0, Some((a, b))) => Err(bad(format!("no link joins `{a}` and `{b}`"))),
        _ => Err(bad(
            "names more than one link; the machine names hold `-` themselves".to_string(),
        )),
    }
}

/// The path of a frame from `src` to `dst` with the links named by `down` (each `A-B`) down
/// ([`forward::route`]); its Display is what `vnetctl route` prints.
///
/// # Errors
///
/// `proxy` is not a machine of the topology, a `--down` value names no link, or the frame
/// cannot be followed to a port.
pub fn route(
    topology: &Topology,
    proxy: &Name,
    src: Mac,
    dst: Mac,
    down: &[String],
) -> Result<Route, RouteCmdError> {
    require_proxy(topology, proxy)?;
    let down: BTreeSet<Link> = down
        .iter()
        .map(|given| down_link(topology, given))
        .collect::<Result<_, _>>()?;
    forward::route(topology, proxy, src, dst, &down).map_err(|error| RouteCmdError::NoRoute {
        src,
        dst,
        error,
    })
}

/// A `--guest HOST:PORT:MAC` value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not HOST:PORT:MAC (e.g. host1:vm1:02:56:4e:00:00:01): {why}")]
pub struct BadGuest {
    /// The value given.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

/// Reads `HOST:PORT:MAC`, e.g. `host1:vm1:02:56:4e:00:00:01` (names hold no `:`, so the first
/// two split the value).
///
/// # Errors
///
/// Fewer than three parts, or a part that is not a name or a MAC.
pub fn parse_guest(given: &str) -> Result<Guest, BadGuest> {
    let bad = |why: String| BadGuest {
        given: given.to_string(),
        why,
    };
    let (host, rest) = given
        .split_once(':')
        .ok_or_else(|| bad("no `:`".to_string()))?;
    let (port, mac) = rest
        .split_once(':')
        .ok_or_else(|| bad("no port".to_string()))?;
    Ok(Guest {
        host: host.parse().map_err(|e| bad(format!("{e}")))?,
        port: port.parse().map_err(|e| bad(format!("{e}")))?,
        mac: mac.parse().map_err(|e| bad(format!("{e}")))?,
    })
}

/// How every daemon of a generated star is declared (its `HOST` line but the machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// The user it runs as.
    pub user: String,
    /// Its control API's port.
    pub port: u16,
    /// Its interface to the underlay.
    pub interface: Name,
}

/// Why a star cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarCmdError {
    /// The generated topology is not one that a program can describe (e.g. the user is not
    /// one token of the language).
    #[error("cannot write this star in the language: {0}")]
    Invalid(#[from] lang::SemanticError),
    /// Port 0.
    #[error("--port must be from 1 to 65535")]
    PortZero,
    /// [`lang::star`] refuses it.
    #[error(transparent)]
    Star(#[from] StarError),
}

/// The star configuration ([`lang::star`]) as a program in canonical form.
///
/// # Errors
///
/// A bad user or port, or what [`lang::star`] refuses (a machine twice, a guest on an unknown
/// machine, an address twice or a group address).
pub fn star(
    proxy: &Name,
    hosts: &[Name],
    guests: &[Guest],
    lan_port: &Name,
    daemon: &Daemon,
) -> Result<String, StarCmdError> {
    let host = |machine: &Name| Host {
        user: daemon.user.clone(),
        machine: machine.clone(),
        port: daemon.port,
        interface: daemon.interface.clone(),
    };
    if daemon.port == 0 {
        return Err(StarCmdError::PortZero);
    }
    let topology = lang::star(
        host(proxy),
        hosts.iter().map(host).collect(),
        guests,
        lan_port.clone(),
    )?;
    lang::check(&topology)?;
    Ok(lang::print(&topology))
}

/// `topology` plus a fast path of `kind` between every two hosts and the rules that use them
/// ([`lang::mesh`]), as a program in canonical form.
///
/// # Errors
/// `proxy` is not a machine of the topology.
pub fn mesh(topology: &Topology, proxy: &Name, kind: LinkKind) -> Result<String, UnknownProxy> {
    require_proxy(topology, proxy)?;
    Ok(lang::print(&lang::mesh(topology, proxy, kind)))
}

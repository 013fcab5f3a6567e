//! The vocabulary of the overlay, shared by the forwarding table, the topology language and the
//! control API: Ethernet addresses, machine names, links and forwarding rules (seed 004, Fig. 2),
//! and a whole overlay's configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use vttif::{BadMac, Mac};

/// The name of a machine that runs a vnetd (a host or the Proxy), or of a local interface
/// (port): 1 to 63 characters of ASCII letters, digits, `.`, `_` and `-`, starting with a
/// letter or digit.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Name(String);

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid name (1 to 63 ASCII letters, digits, `.`, `_` or `-`, starting with a letter or digit)")]
pub struct BadName(String);

impl Name {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = BadName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Name(s.to_string()))
        } else {
            Err(BadName(s.to_string()))
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl TryFrom<String> for Name {
    type Error = BadName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The transport of an overlay link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// Datagrams (the default: the papers measured twice the application throughput over UDP).
    Udp,
    /// A byte stream, for sites that let only TCP through.
    Tcp,
}

/// An overlay link between two daemons. There is at most one link per pair of machines, so the
/// pair names it; `a < b` always (see [`Link::new`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    pub a: Name,
    pub b: Name,
    pub kind: LinkKind,
}

impl Link {
    /// The link between `x` and `y`, in either order. `None` if `x == y`.
    pub fn new(x: Name, y: Name, kind: LinkKind) -> Option<Link> {
        match x.cmp(&y) {
            std::cmp::Ordering::Less => Some(Link { a: x, b: y, kind }),
            std::cmp::Ordering::Greater => Some(Link { a: y, b: x, kind }),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// The other end, seen from `end`; `None` if `end` is not an end of this link.
    pub fn peer_of(&self, end: &Name) -> Option<&Name> {
        if *end == self.a {
            Some(&self.b)
        } else if *end == self.b {
            Some(&self.a)
        } else {
            None
        }
    }
}

/// How a rule matches a frame's source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "match", content = "mac")]
pub enum SrcMatch {
    /// Exactly this address.
    Is(Mac),
    /// Any address but this one.
    Not(Mac),
    /// Any address.
    Any,
}

/// How a rule matches a frame's destination address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "match", content = "mac")]
pub enum DstMatch {
    /// Exactly this address.
    Is(Mac),
    /// Any address but this one.
    Not(Mac),
    /// Any address.
    Any,
    /// The default rule (toward the Proxy): matches every destination, weaker than any other.
    None,
}

/// Where a rule sends the frames it matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Over the link to this peer daemon (seed 004's `EDGE` rules).
    Link(Name),
    /// Out of this local port (seed 004's `INTERFACE` rules).
    Port(Name),
}

/// A forwarding rule of one daemon.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub src: SrcMatch,
    pub dst: DstMatch,
    pub target: Target,
}

impl Rule {
    /// Whether daemon `me` can hold this rule: no group address in either field (broadcast and
    /// multicast are flooded along the star, never routed by rules) and no link to itself.
    /// Both the forwarding table and the topology language ask this.
    ///
    /// # Errors
    /// The first [`RuleError`] found.
    pub fn validate(&self, me: &Name) -> Result<(), RuleError> {
        if let DstMatch::Is(mac) | DstMatch::Not(mac) = self.dst {
            if mac.is_group() {
                return Err(RuleError::GroupDestination { mac });
            }
        }
        if let SrcMatch::Is(mac) | SrcMatch::Not(mac) = self.src {
            if mac.is_group() {
                return Err(RuleError::GroupSource { mac });
            }
        }
        if self.target == Target::Link(me.clone()) {
            return Err(RuleError::LinkToSelf { me: me.clone() });
        }
        Ok(())
    }
}

/// Why no daemon can hold a rule (see [`Rule::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The destination is a group address.
    #[error(
        "destination {mac} is a broadcast or multicast address: such frames never use rules, they \
         are flooded along the star with split horizon so that every guest gets exactly one copy"
    )]
    GroupDestination {
        /// The group address.
        mac: Mac,
    },
    /// The source is a group address.
    #[error(
        "source {mac} is a broadcast or multicast address, which no frame comes from: the rule \
         would match every frame or none (write `any` or a guest's address)"
    )]
    GroupSource {
        /// The group address.
        mac: Mac,
    },
    /// The target is a link from the daemon to itself.
    #[error("{me} cannot send frames over a link to itself")]
    LinkToSelf {
        /// The daemon's own name.
        me: Name,
    },
}

/// A daemon of the overlay, as the topology language's `HOST` line declares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Host {
    /// The user account the daemon runs as.
    pub user: String,
    /// The machine's name, which links and rules refer to.
    pub machine: Name,
    /// The port its control API listens on.
    pub port: u16,
    /// Its interface to the underlay.
    pub interface: Name,
}

/// What a rule matches: a daemon holds at most one rule per match, so adding a rule whose
/// match exists replaces its target in one step (that is how a route moves without a gap).
pub type Match = (SrcMatch, DstMatch);

/// A whole overlay's configuration: its daemons, links and every daemon's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub hosts: BTreeMap<Name, Host>,
    pub links: BTreeSet<Link>,
    /// Rules by the machine whose table holds them, each by its match.
    pub rules: BTreeMap<Name, BTreeMap<Match, Target>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let mac: Mac = "02:56:4E:0:0:1".parse().unwrap();
        assert_eq!(mac.to_string(), "02:56:4e:00:00:01");
        assert!(!mac.is_group());
        assert!(Mac::BROADCAST.is_group());
        assert!("01:00:5e:00:00:01".parse::<Mac>().unwrap().is_group());
        for bad in [
            "",
            "02:56:4e:00:00",
            "02:56:4e:00:00:01:02",
            "02:56:4e:00:00:001",
            "02:56:4e:00::01",
            "g2:56:4e:00:00:01",
            "02-56-4e-00-00-01",
        ] {
            let err = bad.parse::<Mac>().unwrap_err();
            assert!(err.to_string().contains("not an Ethernet address"), "{bad}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!("host1".parse::<Name>().unwrap().as_str(), "host1");
        assert!("proxy.site-a_1".parse::<Name>().is_ok());
        for bad in ["", "-x", "a b", "é", &"x".repeat(64)] {
            assert!(bad.parse::<Name>().is_err(), "{bad}");
        }
    }

    #[test]
    fn links_are_unordered_pairs() {
        let h1: Name = "host1".parse().unwrap();
        let px: Name = "proxy".parse().unwrap();
        let l1 = Link::new(px.clone(), h1.clone(), LinkKind::Udp).unwrap();
        let l2 = Link::new(h1.clone(), px.clone(), LinkKind::Udp).unwrap();
        assert_eq!(l1, l2);
        assert_eq!(l1.peer_of(&h1), Some(&px));
        assert_eq!(l1.peer_of(&"host2".parse().unwrap()), None);
        assert!(Link::new(h1.clone(), h1, LinkKind::Tcp).is_none());
    }
}

//! The forwarding decision: one daemon's forwarding table ([`Table`]) and, over a whole
//! overlay's configuration, the paths frames take ([`route`], [`check`]).
//!
//! Everything here is pure: no sockets, no clocks. The daemon tells a table what changed (rules,
//! links, ports) and asks it, per frame, where the frame goes; `vnetctl` builds every daemon's
//! table from a [`Topology`](crate::model::Topology) to print a route or to reject a
//! configuration with an explanation.
//!
//! # Roles and the star
//!
//! A daemon is either a host, which knows the name of its Proxy, or the Proxy itself
//! ([`Role`]). Every host has a link to the Proxy: those links are *the star*, the overlay's
//! initial and fallback topology (seed 004 §3). Any other link between two hosts is a *fast
//! path*.
//!
//! # Rules and their specificity
//!
//! A rule (seed 004, Fig. 2) matches a frame's source and destination addresses and names a
//! target: a link to a peer daemon or a local port. A table holds at most one rule per match
//! ([`Match`]); adding a rule whose match exists replaces its target, so a route moves in one
//! step.
//!
//! When several rules match a frame, the most specific one wins. Each field has a strength
//! ([`FieldStrength`]): an exact address beats `not` beats `any`, and for the destination the
//! default rule's `none` is below `any`. Two rules compare by destination strength first and
//! source strength second ([`Specificity`]), which gives this order, strongest first:
//!
//! | rank | source | destination |
//! |------|--------|-------------|
//! | 1    | exact  | exact       |
//! | 2    | not    | exact       |
//! | 3    | any    | exact       |
//! | 4    | exact  | not         |
//! | 5    | not    | not         |
//! | 6    | any    | not         |
//! | 7    | exact  | any         |
//! | 8    | not    | any         |
//! | 9    | any    | any         |
//! | 10   | exact  | none        |
//! | 11   | not    | none        |
//! | 12   | any    | none        |
//!
//! Why the destination comes first: forwarding is about where a frame goes. A rule naming the
//! destination (a guest's port rule `any → vm2`, a fast path `any → vm3`) must beat a rule that
//! names only the source (`vm1 → any`), or one per-source catch-all would shadow every fast path
//! and even the delivery to a guest on the same host. The default rule being weakest whatever
//! its source (the papers' rule) is then the bottom row of the same order rather than a special
//! case. The source refines among rules for one destination: `vm1 → vm3` over a fast path beats
//! `any → vm3` through the Proxy, which is what per-pair adaptation needs.
//!
//! Two different matches of equal specificity can both match a frame only when a field is `not`
//! with different addresses (`not a → vm3` and `not b → vm3` for a frame from `c`). The tie goes
//! to the smaller match in [`Match`]'s order — here, the smaller excluded address — so the
//! outcome never depends on the order rules were added.
//!
//! # Down links, detached ports and split horizon
//!
//! A rule whose link is down or whose port is not attached is skipped, and the next-strongest
//! matching rule is used: when a fast path dies, traffic falls back to the default rule, the
//! star. A unicast frame never leaves by where it came in (split horizon): if the best *usable*
//! rule points back to the ingress, the frame is dropped ([`DropReason::WouldReturn`]) rather
//! than handed to a weaker rule. Two reasons:
//!
//! - At the Proxy the user's LAN port captures every frame on the LAN, also those between two of
//!   the user's own machines. Such a frame matches the Proxy's default rule, which points at the
//!   LAN port; dropping it is exactly what keeps LAN-local traffic out of the overlay, and a
//!   weaker rule would have no business carrying it.
//! - Elsewhere a rule pointing back means two daemons disagree about the direction of a
//!   destination (a two-hop loop). Falling back to a weaker rule would hide that and usually
//!   send the frame back anyway (the next rule is the default, toward the Proxy, which is often
//!   where it came from). A counted drop, and a dead end reported by [`check`], make it visible.
//!
//! # Broadcast and multicast
//!
//! Frames to a group address ([`Mac::is_group`](crate::model::Mac::is_group)) never use rules:
//! they are flooded along the star with split horizon, so every other guest and the user's LAN
//! get exactly one copy whatever fast paths exist, and the sender none.
//!
//! - At a host: from a local port to every other local port and to the Proxy (if the link is
//!   up); from the Proxy's link to every local port; from any other link, dropped
//!   ([`DropReason::GroupOnFastPath`]).
//! - At the Proxy: from a host's link to every local port (the user's LAN) and every other host
//!   link that is up; from a local port to every other local port and every host link that is
//!   up. (The Proxy normally has one port, the LAN; the other ports get a copy so that a guest
//!   attached at the Proxy, if any, is a member of the LAN like the rest.)
//!
//! Rules with a group destination are refused ([`RuleError`]), and so are rules with a group
//! source (no frame comes from one) and rules sending frames over a link to the daemon itself.
//!
//! # Ingress
//!
//! A frame is judged by where it can go, not by the state of where it came from: a frame that
//! arrived over a link the table believes down is still forwarded (the link layer decides what
//! it accepts). Only a frame from a port or link the table has never heard of is dropped
//! ([`DropReason::UnknownIngress`]).
//!
//! # The cache
//!
//! Decisions are cached per (ingress, source, destination), so the common case is one hash
//! probe and no allocation: [`Table::lookup_id`] takes an ingress as an [`IngressId`] (a
//! handle the daemon obtains once per port or link) and returns the decision by reference.
//! Flood decisions depend only on the ingress and are kept per ingress, outside the hash map,
//! so a broadcast storm with varied source addresses does not churn the cache.
//!
//! Any change that alters a decision (a rule added, replaced or deleted, a link up or down, a
//! port attached or detached) empties the cache; changes that alter nothing (a link reported up
//! twice) keep it. The cache is bounded ([`DEFAULT_CACHE_CAPACITY`] entries unless set with
//! [`Table::with_cache_capacity`]): a lookup that finds it full empties it first, keeping the
//! allocation. A scan of spoofed addresses therefore costs misses, never memory, and no
//! per-entry bookkeeping (LRU lists, timestamps) is paid on hits. The price: a working set
//! larger than the capacity empties the cache again and again, so the capacity should exceed the
//! number of (ingress, source, destination) triples in use; [`Counters::cache_full`] shows when
//! it does not. A miss searches the rules in order of strength, so it costs time linear in
//! the number of rules.
//!
//! A lookup takes `&mut Table` (it fills the cache): a data path with several threads gives each
//! its own table and applies every change to all of them.
//!
//! # The whole overlay
//!
//! [`Overlay`] builds every daemon's table from a configuration and follows frames through
//! them with the same decision code as the data path. [`route`] is what `vnetctl route`
//! prints (`host1 --udp--> proxy --udp--> host3 -> port vm3`); [`check`] is what `vnetctl
//! apply` refuses a configuration with: it follows a frame between every ordered pair of
//! guests with every link up and with each fast path down in turn (so fallbacks are checked
//! too), and a broadcast from every guest, and reports loops, dead ends, frames delivered to
//! the wrong port and ports that get a broadcast other than once. A guest's *home* is the
//! daemon and port that a rule `(any qualifier, exactly its address) → port` names.

mod overlay;
mod table;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::model::{DstMatch, Match, Name, SrcMatch, Target};

pub use crate::model::RuleError;
pub use overlay::{check, route, Deliveries, Home, Hop, Overlay, Problem, Route, RouteError};
pub use table::{Counters, Explanation, IngressId, Table, DEFAULT_CACHE_CAPACITY};

/// What a daemon is in the overlay.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A host running guests; its link to `proxy` is its part of the star.
    Host {
        /// The Proxy's machine name.
        proxy: Name,
    },
    /// The Proxy: the centre of the star, with the user's LAN as a local port.
    Proxy,
}

/// Where a frame came in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ingress {
    /// From this local port.
    Port(Name),
    /// Over the link from this peer daemon.
    Link(Name),
}

/// Where a frame goes out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Out {
    /// Out of this local port.
    Port(Name),
    /// Over the link to this peer daemon.
    Link(Name),
}

impl From<Target> for Out {
    fn from(target: Target) -> Out {
        match target {
            Target::Port(name) => Out::Port(name),
            Target::Link(name) => Out::Link(name),
        }
    }
}

impl fmt::Display for Ingress {
    /// `port vm1` or `link host3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ingress::Port(name) => write!(f, "port {name}"),
            Ingress::Link(name) => write!(f, "link {name}"),
        }
    }
}

impl fmt::Display for Out {
    /// `port vm1` or `link host3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Out::Port(name) => write!(f, "port {name}"),
            Out::Link(name) => write!(f, "link {name}"),
        }
    }
}

/// What a table decided for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A unicast frame goes out here, and only here.
    Forward(Out),
    /// A broadcast or multicast frame goes out of each of these (possibly none: a guest alone on
    /// the LAN), in a fixed order: ports by name, then links by peer name.
    Flood(Vec<Out>),
    /// The frame goes nowhere.
    Drop(DropReason),
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Forward(out) => write!(f, "forward to {out}"),
            Decision::Flood(outs) if outs.is_empty() => f.write_str("flood to nobody"),
            Decision::Flood(outs) => {
                f.write_str("flood to ")?;
                for (i, out) in outs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{out}")?;
                }
                Ok(())
            }
            Decision::Drop(reason) => write!(f, "drop: {reason}"),
        }
    }
}

/// Why a table dropped a frame. Each reason is counted ([`Counters::drops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// No rule matches the frame.
    NoRule,
    /// Rules match, but each one's link is down or its port is not attached.
    NoUsableRule,
    /// The best usable rule sends the frame back where it came in (split horizon).
    WouldReturn,
    /// A broadcast or multicast frame came in over a fast path: group frames travel only along
    /// the star, so this copy is a duplicate (or a misbehaving peer).
    GroupOnFastPath,
    /// The frame came in by a port or link the table was never told about.
    UnknownIngress,
}

impl DropReason {
    /// Every reason, in order.
    pub const ALL: [DropReason; 5] = [
        DropReason::NoRule,
        DropReason::NoUsableRule,
        DropReason::WouldReturn,
        DropReason::GroupOnFastPath,
        DropReason::UnknownIngress,
    ];

    /// A short label for metrics: `no_rule`, `no_usable_rule`, `would_return`,
    /// `group_on_fast_path`, `unknown_ingress`.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::NoRule => "no_rule",
            DropReason::NoUsableRule => "no_usable_rule",
            DropReason::WouldReturn => "would_return",
            DropReason::GroupOnFastPath => "group_on_fast_path",
            DropReason::UnknownIngress => "unknown_ingress",
        }
    }

    /// The position of this reason in [`DropReason::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::NoRule => "no rule matches the frame",
            DropReason::NoUsableRule => {
                "every matching rule's link is down or its port is not attached"
            }
            DropReason::WouldReturn => {
                "the best usable rule sends the frame back where it came in (split horizon)"
            }
            DropReason::GroupOnFastPath => {
                "a broadcast or multicast frame came in over a fast path, not the star"
            }
            DropReason::UnknownIngress => "it came in by a port or link the table does not know",
        })
    }
}

/// How strongly one field of a rule matches a frame; stronger variants compare greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldStrength {
    /// The default rule's destination, `none`: weaker than anything.
    Default,
    /// `any` address.
    Any,
    /// Any address but one (`not`).
    Not,
    /// Exactly one address.
    Exact,
}

/// How specific a rule's match is. Greater is more specific: the destination's strength
/// decides, then the source's (the derived order compares `dst` first). See the module
/// documentation for the full order and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Specificity {
    /// The destination field's strength.
    pub dst: FieldStrength,
    /// The source field's strength (never [`FieldStrength::Default`]).
    pub src: FieldStrength,
}

impl Specificity {
    /// The specificity of a rule's match.
    pub fn of(m: &Match) -> Specificity {
        let src = match m.0 {
            SrcMatch::Is(_) => FieldStrength::Exact,
            SrcMatch::Not(_) => FieldStrength::Not,
            SrcMatch::Any => FieldStrength::Any,
        };
        let dst = match m.1 {
            DstMatch::Is(_) => FieldStrength::Exact,
            DstMatch::Not(_) => FieldStrength::Not,
            DstMatch::Any => FieldStrength::Any,
            DstMatch::None => FieldStrength::Default,
        };
        Specificity { dst, src }
    }
}

/// A rule's match in words, for messages: `from any to 02:56:4e:00:00:03`,
/// `from not 02:56:4e:00:00:01 to none`.
pub(crate) struct MatchText<'a>(pub(crate) &'a Match);

impl fmt::Display for MatchText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 .0 {
            SrcMatch::Is(mac) => write!(f, "from {mac}")?,
            SrcMatch::Not(mac) => write!(f, "from not {mac}")?,
            SrcMatch::Any => f.write_str("from any")?,
        }
        match self.0 .1 {
            DstMatch::Is(mac) => write!(f, " to {mac}"),
            DstMatch::Not(mac) => write!(f, " to not {mac}"),
            DstMatch::Any => f.write_str(" to any"),
            DstMatch::None => f.write_str(" to none"),
        }
    }
}

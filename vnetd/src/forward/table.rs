//! One daemon's forwarding table and its decision cache.

use std::cmp::Reverse;
use std::collections::hash_map::{Entry, HashMap};
use std::collections::BTreeMap;

use foldhash::fast::RandomState;

use super::{Decision, DropReason, Ingress, Out, Role, RuleError, Specificity};
use crate::model::{DstMatch, Mac, Match, Name, Rule, SrcMatch, Target};

/// How many unicast decisions a table caches unless told otherwise
/// ([`Table::with_cache_capacity`]). A full cache of this size takes about 8 MiB: 48-byte
/// entries in a hash table of 131,072 slots, plus the names the decisions hold.
pub const DEFAULT_CACHE_CAPACITY: usize = 1 << 16;

/// What every lookup from an ingress the table does not know returns.
static UNKNOWN_INGRESS: Decision = Decision::Drop(DropReason::UnknownIngress);

/// A cheap handle for a port or link of one table, for [`Table::lookup_id`]. A table hands
/// one out for every port it was told to attach and every link it was told is up
/// ([`Table::ingress_id`]); the handle stays valid for the table's life, across detach and
/// re-attach. A handle from another table is not an error: it names some other endpoint, or
/// none (then the frame is dropped as [`DropReason::UnknownIngress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IngressId(usize);

/// What a table counted since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to search the rules (or compute a flood list).
    pub misses: u64,
    /// Times a lookup found the cache full and emptied it.
    pub cache_full: u64,
    /// Times a change (rule, link, port) emptied the cache.
    pub invalidations: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Frames dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    fn count_drop(&mut self, reason: DropReason) {
        if let Some(n) = self.drops.get_mut(reason.index()) {
            *n = n.wrapping_add(1);
        }
    }
}

/// A decision together with the rule that made it, for `vnetctl route` and for reasoning about
/// a configuration ([`Table::explain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// What the table decides.
    pub decision: Decision,
    /// The rule that decided: the one used to forward, or the one that would have sent the frame
    /// back ([`DropReason::WouldReturn`]); `None` for floods and other drops.
    pub rule: Option<Rule>,
}

/// One daemon's forwarding table: its rules, which of its links are up and ports attached, and
/// a cache of decisions. See the [module documentation](super) for the semantics.
#[derive(Debug, Clone)]
pub struct Table {
    core: Core,
    /// Unicast decisions by (ingress, source, destination), with the rank of the rule that
    /// made each (for its counters).
    cache: HashMap<Key, (Decision, Option<usize>), RandomState>,
    /// Flood decisions by ingress id; `None` until asked for.
    floods: Vec<Option<Decision>>,
    /// The last decision for an ingress whose id is too large for a cache key.
    uncached: (Decision, Option<usize>),
    capacity: usize,
    counters: Counters,
}

/// Everything a decision depends on, apart from the caches (so that a lookup can borrow the
/// cache mutably while deciding).
#[derive(Debug, Clone)]
struct Core {
    role: Role,
    me: Name,
    rules: BTreeMap<Match, Target>,
    /// The rules, strongest first (see [`Core::rank`]), with targets as endpoint ids.
    ranked: Vec<Ranked>,
    /// Unicast frames and bytes each rule of `ranked` forwarded (same order).
    traffic: Vec<(u64, u64)>,
    endpoints: Endpoints,
    /// A host's link to its Proxy.
    star: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Ranked {
    src: SrcMatch,
    dst: DstMatch,
    target: usize,
}

impl Ranked {
    fn matches(&self, src: Mac, dst: Mac) -> bool {
        let src_ok = match self.src {
            SrcMatch::Is(m) => src == m,
            SrcMatch::Not(m) => src != m,
            SrcMatch::Any => true,
        };
        src_ok
            && match self.dst {
                DstMatch::Is(m) => dst == m,
                DstMatch::Not(m) => dst != m,
                DstMatch::Any | DstMatch::None => true,
            }
    }
}

/// The ports and links a table has heard of, each with a small id. Ids are never reused, so the
/// list grows with the number of distinct names the daemon was told about (its ports, its
/// peers, its rules' targets), not with traffic.
#[derive(Debug, Clone, Default)]
struct Endpoints {
    ports: HashMap<Name, usize>,
    links: HashMap<Name, usize>,
    all: Vec<Endpoint>,
}

#[derive(Debug, Clone)]
struct Endpoint {
    out: Out,
    /// Port attached, or link up.
    up: bool,
}

impl Endpoints {
    fn id_of(&self, ingress: &Ingress) -> Option<usize> {
        match ingress {
            Ingress::Port(name) => self.ports.get(name).copied(),
            Ingress::Link(name) => self.links.get(name).copied(),
        }
    }

    fn intern(&mut self, out: &Out) -> usize {
        let (map, name) = match out {
            Out::Port(name) => (&mut self.ports, name),
            Out::Link(name) => (&mut self.links, name),
        };
        if let Some(&id) = map.get(name) {
            return id;
        }
        let id = self.all.len();
        map.insert(name.clone(), id);
        self.all.push(Endpoint {
            out: out.clone(),
            up: false,
        });
        id
    }

    /// Sets an endpoint's state; `true` if that changed it.
    fn set(&mut self, out: &Out, up: bool) -> bool {
        let id = self.intern(out);
        match self.all.get_mut(id) {
            Some(endpoint) if endpoint.up != up => {
                endpoint.up = up;
                true
            }
            _ => false,
        }
    }

    fn names_up(&self, port: bool) -> impl Iterator<Item = &Name> {
        self.all
            .iter()
            .filter(|e| e.up)
            .filter_map(move |e| match &e.out {
                Out::Port(name) if port => Some(name),
                Out::Link(name) if !port => Some(name),
                _ => None,
            })
    }
}

/// A cache key: source, destination and ingress packed in one integer (48 + 48 + 32 bits), so
/// that hashing and comparing are one operation each. An ingress id that does not fit in 32
/// bits (a table told of four billion names) has no key: its frames are decided uncached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key(u128);

impl Key {
    fn new(ingress: usize, src: Mac, dst: Mac) -> Option<Key> {
        let ingress = u32::try_from(ingress).ok()?;
        let [a, b, c, d, e, f] = src.0;
        let [g, h, i, j, k, l] = dst.0;
        let [m, n, o, p] = ingress.to_le_bytes();
        Some(Key(u128::from_le_bytes([
            a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p,
        ])))
    }
}

impl Core {
    /// Rebuilds the ranked list: strongest specificity first, ties by match order (the
    /// `BTreeMap` already iterates in match order and the sort is stable).
    fn rank(&mut self) {
        let mut ranked: Vec<(Specificity, Ranked)> = Vec::with_capacity(self.rules.len());
        for (m, target) in &self.rules {
            let target = self.endpoints.intern(&Out::from(target.clone()));
            ranked.push((
                Specificity::of(m),
                Ranked {
                    src: m.0,
                    dst: m.1,
                    target,
                },
            ));
        }
        ranked.sort_by_key(|(specificity, _)| Reverse(*specificity));
        // Counters follow their rule's match (a rule whose target is replaced keeps them).
        let old: HashMap<Match, (u64, u64), RandomState> = self
            .ranked
            .iter()
            .zip(&self.traffic)
            .map(|(r, t)| ((r.src, r.dst), *t))
            .collect();
        self.ranked = ranked.into_iter().map(|(_, r)| r).collect();
        self.traffic = self
            .ranked
            .iter()
            .map(|r| old.get(&(r.src, r.dst)).copied().unwrap_or_default())
            .collect();
    }

    /// The decision for a frame, and the index in `ranked` of the rule that made it.
    fn decide(&self, ingress: usize, src: Mac, dst: Mac) -> (Decision, Option<usize>) {
        if dst.is_group() {
            return (self.flood(ingress), None);
        }
        let mut matched = false;
        for (i, rule) in self.ranked.iter().enumerate() {
            if !rule.matches(src, dst) {
                continue;
            }
            matched = true;
            let Some(endpoint) = self.endpoints.all.get(rule.target) else {
                continue;
            };
            if !endpoint.up {
                continue;
            }
            if rule.target == ingress {
                return (Decision::Drop(DropReason::WouldReturn), Some(i));
            }
            return (Decision::Forward(endpoint.out.clone()), Some(i));
        }
        let reason = if matched {
            DropReason::NoUsableRule
        } else {
            DropReason::NoRule
        };
        (Decision::Drop(reason), None)
    }

    /// Where a group frame from `ingress` goes: along the star, never back.
    fn flood(&self, ingress: usize) -> Decision {
        let Some(from) = self.endpoints.all.get(ingress) else {
            return Decision::Drop(DropReason::UnknownIngress);
        };
        let from_link = matches!(from.out, Out::Link(_));
        let links = match (&self.role, from_link) {
            // From the Proxy: the Proxy has already sent copies to the other hosts.
            (Role::Host { .. }, true) if self.star == Some(ingress) => false,
            (Role::Host { .. }, true) => {
                return Decision::Drop(DropReason::GroupOnFastPath);
            }
            (Role::Host { .. }, false) | (Role::Proxy, _) => true,
        };
        let mut outs: Vec<&Out> = Vec::new();
        for (id, endpoint) in self.endpoints.all.iter().enumerate() {
            if !endpoint.up || id == ingress {
                continue;
            }
            let wanted = match (&endpoint.out, &self.role) {
                (Out::Port(_), _) => true,
                (Out::Link(_), Role::Proxy) => links,
                (Out::Link(_), Role::Host { .. }) => links && self.star == Some(id),
            };
            if wanted {
                outs.push(&endpoint.out);
            }
        }
        // Ports by name, then links by name (`Out` orders ports first).
        outs.sort_unstable();
        Decision::Flood(outs.into_iter().cloned().collect())
    }
}

impl Table {
    /// An empty table for daemon `me`: no rules, no links up, no ports attached.
    pub fn new(role: Role, me: Name) -> Table {
        Table::with_cache_capacity(role, me, DEFAULT_CACHE_CAPACITY)
    }

    /// An empty table whose cache holds at most `capacity` unicast decisions (at least one).
    pub fn with_cache_capacity(role: Role, me: Name, capacity: usize) -> Table {
        let mut endpoints = Endpoints::default();
        let star = match &role {
            Role::Host { proxy } => Some(endpoints.intern(&Out::Link(proxy.clone()))),
            Role::Proxy => None,
        };
        Table {
            core: Core {
                role,
                me,
                rules: BTreeMap::new(),
                ranked: Vec::new(),
                traffic: Vec::new(),
                endpoints,
                star,
            },
            cache: HashMap::with_hasher(RandomState::default()),
            floods: Vec::new(),
            uncached: (UNKNOWN_INGRESS.clone(), None),
            capacity: capacity.max(1),
            counters: Counters::default(),
        }
    }

    /// This daemon's role.
    pub fn role(&self) -> &Role {
        &self.core.role
    }

    /// This daemon's name.
    pub fn me(&self) -> &Name {
        &self.core.me
    }

    /// Adds a rule, or replaces the target of the rule with the same match. Returns the target
    /// it replaced, if any.
    ///
    /// # Errors
    ///
    /// A rule whose destination or source is a group address, or whose target is a link to this
    /// daemon itself ([`RuleError`]); the table is unchanged then.
    pub fn add_rule(&mut self, rule: Rule) -> Result<Option<Target>, RuleError> {
        rule.validate(&self.core.me)?;
        let previous = self
            .core
            .rules
            .insert((rule.src, rule.dst), rule.target.clone());
        if previous.as_ref() != Some(&rule.target) {
            self.core.rank();
            self.invalidate();
        }
        Ok(previous)
    }

    /// Deletes the rule with this match; returns its target, or `None` if there was none.
    pub fn delete_rule(&mut self, m: &Match) -> Option<Target> {
        let previous = self.core.rules.remove(m);
        if previous.is_some() {
            self.core.rank();
            self.invalidate();
        }
        previous
    }

    /// The rules, in match order.
    pub fn rules(&self) -> impl Iterator<Item = Rule> + '_ {
        self.core.rules.iter().map(|(m, target)| Rule {
            src: m.0,
            dst: m.1,
            target: target.clone(),
        })
    }

    /// The link to `peer` is up. Returns `true` if it was not already.
    pub fn link_up(&mut self, peer: Name) -> bool {
        self.set(&Out::Link(peer), true)
    }

    /// The link to `peer` is down. Returns `true` if it was up.
    pub fn link_down(&mut self, peer: &Name) -> bool {
        self.core.endpoints.links.contains_key(peer) && self.set(&Out::Link(peer.clone()), false)
    }

    /// The port `name` is attached. Returns `true` if it was not already.
    pub fn attach_port(&mut self, name: Name) -> bool {
        self.set(&Out::Port(name), true)
    }

    /// The port `name` is detached. Returns `true` if it was attached.
    pub fn detach_port(&mut self, name: &Name) -> bool {
        self.core.endpoints.ports.contains_key(name) && self.set(&Out::Port(name.clone()), false)
    }

    /// The peers whose link is up, in no particular order.
    pub fn links_up(&self) -> impl Iterator<Item = &Name> {
        self.core.endpoints.names_up(false)
    }

    /// The attached ports, in no particular order.
    pub fn ports(&self) -> impl Iterator<Item = &Name> {
        self.core.endpoints.names_up(true)
    }

    /// The handle of a port or link for [`Table::lookup_id`], or `None` if the table has never
    /// heard of it (it was never attached, brought up or named by a rule).
    pub fn ingress_id(&self, ingress: &Ingress) -> Option<IngressId> {
        self.core.endpoints.id_of(ingress).map(IngressId)
    }

    /// What happens to a frame from `src` to `dst` that came in by `ingress`: like
    /// [`Table::lookup_id`], after finding the ingress's handle (a second hash probe). An
    /// ingress the table does not know is dropped ([`DropReason::UnknownIngress`]).
    pub fn lookup(&mut self, ingress: &Ingress, src: Mac, dst: Mac) -> &Decision {
        match self.core.endpoints.id_of(ingress) {
            Some(id) => self.lookup_id(IngressId(id), src, dst),
            None => {
                self.counters.count_drop(DropReason::UnknownIngress);
                &UNKNOWN_INGRESS
            }
        }
    }

    /// What happens to a frame from `src` to `dst` that came in by `ingress`. On a cache hit
    /// this is one hash probe (or, for a group destination, one vector index) and allocates
    /// nothing. The decision is counted ([`Table::counters`]).
    pub fn lookup_id(&mut self, ingress: IngressId, src: Mac, dst: Mac) -> &Decision {
        self.lookup_frame(ingress, src, dst, None)
    }

    /// [`Table::lookup_id`] for a frame of `len` bytes that will be sent as decided: a
    /// unicast frame forwarded by a rule is counted for that rule ([`Table::rule_traffic`]).
    pub fn lookup_counted(
        &mut self,
        ingress: IngressId,
        src: Mac,
        dst: Mac,
        len: usize,
    ) -> &Decision {
        self.lookup_frame(ingress, src, dst, Some(len))
    }

    /// The rules in match order, each with the unicast frames and bytes it forwarded through
    /// [`Table::lookup_counted`] since it was added (replacing a rule's target keeps them).
    pub fn rule_traffic(&self) -> Vec<(Rule, u64, u64)> {
        let by_match: HashMap<Match, (u64, u64), RandomState> = self
            .core
            .ranked
            .iter()
            .zip(&self.core.traffic)
            .map(|(r, t)| ((r.src, r.dst), *t))
            .collect();
        self.rules()
            .map(|rule| {
                let (frames, bytes) = by_match
                    .get(&(rule.src, rule.dst))
                    .copied()
                    .unwrap_or_default();
                (rule, frames, bytes)
            })
            .collect()
    }

    fn lookup_frame(
        &mut self,
        ingress: IngressId,
        src: Mac,
        dst: Mac,
        len: Option<usize>,
    ) -> &Decision {
        let id = ingress.0;
        if id >= self.core.endpoints.all.len() {
            self.counters.count_drop(DropReason::UnknownIngress);
            return &UNKNOWN_INGRESS;
        }
        let decision = if dst.is_group() {
            if self.floods.len() <= id {
                self.floods.resize(self.core.endpoints.all.len(), None);
            }
            let slot = &mut self.floods[id];
            if slot.is_some() {
                self.counters.hits = self.counters.hits.wrapping_add(1);
            } else {
                self.counters.misses = self.counters.misses.wrapping_add(1);
            }
            slot.get_or_insert_with(|| self.core.flood(id))
        } else {
            match Key::new(id, src, dst) {
                Some(key) => {
                    // Full: make room for a new decision (a hit needs none).
                    if self.cache.len() >= self.capacity && !self.cache.contains_key(&key) {
                        self.cache.clear();
                        self.counters.cache_full = self.counters.cache_full.wrapping_add(1);
                    }
                    let (decision, rank) = match self.cache.entry(key) {
                        Entry::Occupied(entry) => {
                            self.counters.hits = self.counters.hits.wrapping_add(1);
                            entry.into_mut()
                        }
                        Entry::Vacant(entry) => {
                            self.counters.misses = self.counters.misses.wrapping_add(1);
                            entry.insert(self.core.decide(id, src, dst))
                        }
                    };
                    count_rule(&mut self.core.traffic, *rank, decision, len);
                    decision
                }
                None => {
                    self.counters.misses = self.counters.misses.wrapping_add(1);
                    self.uncached = self.core.decide(id, src, dst);
                    let (decision, rank) = &mut self.uncached;
                    count_rule(&mut self.core.traffic, *rank, decision, len);
                    decision
                }
            }
        };
        if let Decision::Drop(reason) = decision {
            self.counters.count_drop(*reason);
        }
        decision
    }

    /// The decision for a frame and the rule that made it, computed afresh: neither the cache
    /// nor the counters are used.
    pub fn explain(&self, ingress: &Ingress, src: Mac, dst: Mac) -> Explanation {
        let Some(id) = self.core.endpoints.id_of(ingress) else {
            return Explanation {
                decision: UNKNOWN_INGRESS.clone(),
                rule: None,
            };
        };
        let (decision, rank) = self.core.decide(id, src, dst);
        let rule = rank.and_then(|i| self.core.ranked.get(i)).and_then(|r| {
            self.core.rules.get(&(r.src, r.dst)).map(|target| Rule {
                src: r.src,
                dst: r.dst,
                target: target.clone(),
            })
        });
        Explanation { decision, rule }
    }

    /// What the table counted so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How many unicast decisions are cached now (at most the capacity).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn set(&mut self, out: &Out, up: bool) -> bool {
        let changed = self.core.endpoints.set(out, up);
        if changed {
            self.invalidate();
        }
        changed
    }

    fn invalidate(&mut self) {
        self.cache.clear();
        self.floods.clear();
        self.counters.invalidations = self.counters.invalidations.wrapping_add(1);
    }
}

/// Counts a frame of `len` bytes for the rule of rank `rank` when it forwarded it.
fn count_rule(
    traffic: &mut [(u64, u64)],
    rank: Option<usize>,
    decision: &Decision,
    len: Option<usize>,
) {
    if let (Some(rank), Some(len), Decision::Forward(_)) = (rank, len, decision) {
        if let Some((frames, bytes)) = traffic.get_mut(rank) {
            *frames = frames.wrapping_add(1);
            *bytes = bytes.wrapping_add(len as u64);
        }
    }
}

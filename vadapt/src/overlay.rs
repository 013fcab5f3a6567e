//! Between the overlay as vnetd knows it (a [`Topology`]: machines, links, every daemon's
//! rules) and VADAPT's model (a [`Configuration`]: a VM→host mapping, overlay links and a host
//! path per demand). Pure.
//!
//! - [`Layout::of`] reads, from a live topology, who the machines and guests are and gives
//!   them the indices the model uses.
//! - [`Layout::configuration`] is the model's view of a topology: where each guest lives, the
//!   links, and the path each demand's frames take under the rules ([`forward::route`]).
//! - [`Layout::topology`] is the reverse: the overlay that realises a configuration. It is the
//!   star of the new homes (seed 004, Fig. 1: the star always stays), plus each fast-path link
//!   of the configuration with rules sending each end's guests over it
//!   ([`vnetd::lang::add_fast_path`]), plus, for a demand whose chosen path differs from where
//!   those rules send it (a detour through another host), source-exact rules along its path.
//!   It is then checked as `vnetctl apply` checks a configuration ([`forward::check`]).
//!
//! VADAPT owns the overlay's links and rules while it runs: rules or links added by hand that
//! its configuration does not have are removed by the next plan it applies.

use std::collections::{BTreeMap, BTreeSet};

use vnetd::forward;
use vnetd::lang::{self, Guest};
use vnetd::model::{DstMatch, Link, LinkKind, Mac, Name, SrcMatch, Target, Topology};

use crate::model::{Configuration, Demand};

/// Why a topology cannot be read, or a configuration cannot be realised.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverlayError {
    /// The Proxy is not a machine of the topology.
    #[error("the Proxy `{0}` is not a machine of the overlay")]
    NoProxy(Name),
    /// The Proxy has no default rule to a local port (its LAN).
    #[error("the Proxy `{0}` has no default rule to its LAN port")]
    NoLan(Name),
    /// A guest has ports at two machines.
    #[error("guest {mac} has ports at `{a}` and at `{b}`")]
    TwoHomes {
        /// The guest.
        mac: Mac,
        /// One machine.
        a: Name,
        /// The other.
        b: Name,
    },
    /// A frame between two guests cannot be followed through the rules.
    #[error("no route from {src} to {dst}: {why}")]
    NoRoute {
        /// Sender.
        src: Mac,
        /// Receiver.
        dst: Mac,
        /// What the forwarding model says.
        why: String,
    },
    /// The configuration does not fit the layout (sizes or indices).
    #[error("the configuration does not fit the overlay: {0}")]
    Mismatch(String),
    /// The configuration places a guest on the Proxy or routes over a pair with no link.
    #[error("the configuration cannot be realised: {0}")]
    Unrealisable(String),
    /// The overlay built for the configuration fails vnetd's check.
    #[error("the overlay built for the configuration is refused: {0}")]
    Refused(String),
}

/// Who is in the overlay, with the indices of VADAPT's model.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The Proxy.
    pub proxy: Name,
    /// The Proxy's LAN port (its default rule's target).
    pub lan_port: Name,
    /// Every machine (hosts and the Proxy), by host index, in name order.
    pub machines: Vec<Name>,
    /// Every guest, by VM index, in MAC order, with its current home and port.
    pub guests: Vec<Guest>,
    /// The machines' declarations (user, control port, interface).
    hosts: BTreeMap<Name, vnetd::model::Host>,
}

impl Layout {
    /// The layout of `topology` (a live overlay) whose Proxy is `proxy`: its machines, and its
    /// guests where their `INTERFACE` rules are (`ANY <mac>` to a port).
    ///
    /// # Errors
    ///
    /// The Proxy is missing or has no LAN port, or a guest has ports at two machines.
    pub fn of(topology: &Topology, proxy: &Name) -> Result<Layout, OverlayError> {
        if !topology.hosts.contains_key(proxy) {
            return Err(OverlayError::NoProxy(proxy.clone()));
        }
        let lan_port = match topology
            .rules
            .get(proxy)
            .and_then(|t| t.get(&(SrcMatch::Any, DstMatch::None)))
        {
            Some(Target::Port(port)) => port.clone(),
            _ => return Err(OverlayError::NoLan(proxy.clone())),
        };
        let mut homes: BTreeMap<Mac, Guest> = BTreeMap::new();
        for (machine, table) in &topology.rules {
            if machine == proxy {
                continue;
            }
            for ((src, dst), target) in table {
                let (SrcMatch::Any, DstMatch::Is(mac), Target::Port(port)) = (src, dst, target)
                else {
                    continue;
                };
                let guest = Guest {
                    host: machine.clone(),
                    port: port.clone(),
                    mac: *mac,
                };
                if let Some(other) = homes.insert(*mac, guest) {
                    return Err(OverlayError::TwoHomes {
                        mac: *mac,
                        a: other.host,
                        b: machine.clone(),
                    });
                }
            }
        }
        Ok(Layout {
            proxy: proxy.clone(),
            lan_port,
            machines: topology.hosts.keys().cloned().collect(),
            guests: homes.into_values().collect(),
            hosts: topology.hosts.clone(),
        })
    }

    /// The host index of `machine`.
    pub fn machine_index(&self, machine: &Name) -> Option<usize> {
        self.machines.iter().position(|m| m == machine)
    }

    /// The VM index of the guest with address `mac`.
    pub fn guest_index(&self, mac: Mac) -> Option<usize> {
        self.guests.iter().position(|g| g.mac == mac)
    }

    /// The host index of the Proxy.
    pub fn proxy_index(&self) -> usize {
        self.machine_index(&self.proxy)
            .expect("Layout::of checked that the Proxy is a machine")
    }

    /// The model's view of `topology`: each guest's home, the links, and for each of
    /// `demands` the machines its frames cross under the rules.
    ///
    /// # Errors
    ///
    /// A guest of the layout has no home in `topology`, or a demand's frames cannot be
    /// followed (a loop, a dead end).
    pub fn configuration(
        &self,
        topology: &Topology,
        demands: &[Demand],
    ) -> Result<Configuration, OverlayError> {
        let now = Layout::of(topology, &self.proxy)?;
        let mapping = self
            .guests
            .iter()
            .map(|g| {
                now.guests
                    .iter()
                    .find(|h| h.mac == g.mac)
                    .and_then(|h| self.machine_index(&h.host))
                    .ok_or_else(|| OverlayError::Mismatch(format!("guest {} has no home", g.mac)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let links = topology
            .links
            .iter()
            .filter_map(|l| Some((self.machine_index(&l.a)?, self.machine_index(&l.b)?)))
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        let routes = demands
            .iter()
            .map(|d| self.route(topology, d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Configuration {
            mapping,
            links,
            routes,
        })
    }

    /// The machines (host indices) that a demand's frames cross in `topology`.
    fn route(&self, topology: &Topology, demand: &Demand) -> Result<Vec<usize>, OverlayError> {
        let mac = |vm: usize| {
            self.guests
                .get(vm)
                .map(|g| g.mac)
                .ok_or_else(|| OverlayError::Mismatch(format!("demand names VM {vm}")))
        };
        let (src, dst) = (mac(demand.src)?, mac(demand.dst)?);
        let route =
            forward::route(topology, &self.proxy, src, dst, &BTreeSet::new()).map_err(|e| {
                OverlayError::NoRoute {
                    src,
                    dst,
                    why: e.to_string(),
                }
            })?;
        route
            .hops
            .iter()
            .map(|hop| {
                self.machine_index(&hop.daemon).ok_or_else(|| {
                    OverlayError::Mismatch(format!("route crosses unknown `{}`", hop.daemon))
                })
            })
            .collect()
    }

    /// The overlay that realises `config` for `demands` (see the module's documentation).
    ///
    /// # Errors
    ///
    /// The configuration does not fit the layout, places a guest on the Proxy, routes a demand
    /// over a pair of machines it has no link between, or gives an overlay that vnetd's check
    /// refuses.
    pub fn topology(
        &self,
        config: &Configuration,
        demands: &[Demand],
    ) -> Result<Topology, OverlayError> {
        if config.mapping.len() != self.guests.len() || config.routes.len() != demands.len() {
            return Err(OverlayError::Mismatch(format!(
                "{} guests and {} demands, but a mapping of {} and {} routes",
                self.guests.len(),
                demands.len(),
                config.mapping.len(),
                config.routes.len()
            )));
        }
        let machine = |i: usize| {
            self.machines
                .get(i)
                .ok_or_else(|| OverlayError::Mismatch(format!("host index {i}")))
        };
        let mut guests = Vec::with_capacity(self.guests.len());
        for (g, &h) in self.guests.iter().zip(&config.mapping) {
            let host = machine(h)?;
            if *host == self.proxy {
                return Err(OverlayError::Unrealisable(format!(
                    "guest {} placed on the Proxy",
                    g.mac
                )));
            }
            guests.push(Guest {
                host: host.clone(),
                port: g.port.clone(),
                mac: g.mac,
            });
        }
        let proxy = self.hosts[&self.proxy].clone();
        let hosts = self
            .hosts
            .iter()
            .filter(|(name, _)| **name != self.proxy)
            .map(|(_, h)| h.clone())
            .collect();
        let mut topology = lang::star(proxy, hosts, &guests, self.lan_port.clone())
            .map_err(|e| OverlayError::Unrealisable(e.to_string()))?;
        let homes = lang::guest_homes(&topology, &self.proxy);
        for &(a, b) in &config.links {
            let (a, b) = (machine(a)?, machine(b)?);
            if *a != self.proxy && *b != self.proxy {
                lang::add_fast_path(&mut topology, &homes, a, b, LinkKind::Udp);
            }
        }
        // Demands the destination rules do not send along their chosen path get source-exact
        // rules along it.
        for (demand, path) in demands.iter().zip(&config.routes) {
            if self.route(&topology, demand)? == *path {
                continue;
            }
            let (src, dst) = (self.guests[demand.src].mac, self.guests[demand.dst].mac);
            for hop in path.windows(2) {
                let (here, next) = (machine(hop[0])?, machine(hop[1])?);
                let link = Link::new(here.clone(), next.clone(), LinkKind::Udp);
                if !link.is_some_and(|l| topology.links.contains(&l)) {
                    return Err(OverlayError::Unrealisable(format!(
                        "the route of {src} to {dst} crosses {here}-{next}, which has no link"
                    )));
                }
                topology.rules.entry(here.clone()).or_default().insert(
                    (SrcMatch::Is(src), DstMatch::Is(dst)),
                    Target::Link(next.clone()),
                );
            }
            let got = self.route(&topology, demand)?;
            if got != *path {
                return Err(OverlayError::Unrealisable(format!(
                    "the route of {src} to {dst} is {got:?} under the rules, not {path:?}"
                )));
            }
        }
        let problems = forward::check(&topology, &self.proxy);
        if let Some(first) = problems.first() {
            return Err(OverlayError::Refused(format!(
                "{first} ({} problems)",
                problems.len()
            )));
        }
        Ok(topology)
    }
}

#[cfg(test)]
mod tests;

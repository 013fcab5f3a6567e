//! The star: the overlay's initial topology (seed 004, Fig. 1), every host linked to the Proxy.

use std::collections::BTreeSet;

use crate::model::{DstMatch, Host, Link, LinkKind, Mac, Match, Name, SrcMatch, Target, Topology};

/// A guest (virtual machine) of the overlay: where it runs and its address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guest {
    /// The machine whose daemon serves it.
    pub host: Name,
    /// The local interface (port) of that daemon that leads to the guest, e.g. its TAP.
    pub port: Name,
    /// The guest's Ethernet address.
    pub mac: Mac,
}

/// Why a star cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarError {
    /// Two hosts, or a host and the Proxy, on one machine.
    #[error("machine `{0}` is given twice")]
    MachineTwice(Name),
    /// A guest on a machine that is neither a host nor the Proxy.
    #[error("guest {mac} is on `{host}`, which is neither a host nor the Proxy")]
    UnknownHost {
        /// The guest's address.
        mac: Mac,
        /// Its machine.
        host: Name,
    },
    /// Two guests with one address.
    #[error("two guests have the address {0}")]
    MacTwice(Mac),
    /// A guest whose address is broadcast or multicast.
    #[error("guest address {0} is a broadcast or multicast address")]
    GroupMac(Mac),
}

/// The star topology, VNET's initial configuration: every host talks to every other through
/// the Proxy, which gives the guests their presence on the user's LAN.
///
/// * A UDP link from every host to the Proxy.
/// * At each host, for each of its guests, `FORWARD INTERFACE host ANY <mac> <port>` (frames
///   for the guest go out of its port), and the default rule `FORWARD EDGE host ANY NONE host
///   proxy` (everything else goes to the Proxy).
/// * At the Proxy, for every guest of a host, `FORWARD EDGE proxy ANY <mac> proxy <host>`,
///   and the default rule `FORWARD INTERFACE proxy ANY NONE <lan_port>` (everything else goes
///   out to the user's LAN). A guest on the Proxy itself gets an `INTERFACE` rule there.
///
/// Broadcast and multicast frames follow no rule: the daemons flood them along the star.
///
/// # Errors
///
/// Two hosts on one machine (or a host on the Proxy's), a guest on an unknown machine, two
/// guests with one address, or a guest with a group address.
pub fn star(
    proxy: Host,
    hosts: Vec<Host>,
    guests: &[Guest],
    lan_port: Name,
) -> Result<Topology, StarError> {
    let mut topology = Topology::default();
    let to_guest = |mac| (SrcMatch::Any, DstMatch::Is(mac));
    let default = (SrcMatch::Any, DstMatch::None);
    let px = proxy.machine.clone();
    topology
        .rules
        .entry(px.clone())
        .or_default()
        .insert(default, Target::Port(lan_port));
    topology.hosts.insert(px.clone(), proxy);
    for host in hosts {
        let machine = host.machine.clone();
        let link = Link::new(machine.clone(), px.clone(), LinkKind::Udp);
        let (Some(link), None) = (link, topology.hosts.insert(machine.clone(), host)) else {
            return Err(StarError::MachineTwice(machine));
        };
        topology.links.insert(link);
        topology
            .rules
            .entry(machine)
            .or_default()
            .insert(default, Target::Link(px.clone()));
    }
    let mut macs = BTreeSet::new();
    for guest in guests {
        let mac = guest.mac;
        if mac.is_group() {
            return Err(StarError::GroupMac(mac));
        }
        if !macs.insert(mac) {
            return Err(StarError::MacTwice(mac));
        }
        if !topology.hosts.contains_key(&guest.host) {
            return Err(StarError::UnknownHost {
                mac,
                host: guest.host.clone(),
            });
        }
        let port = Target::Port(guest.port.clone());
        if guest.host != px {
            let via_host = Target::Link(guest.host.clone());
            let table = topology.rules.entry(px.clone()).or_default();
            table.insert(to_guest(mac), via_host);
        }
        let table = topology.rules.entry(guest.host.clone()).or_default();
        table.insert(to_guest(mac), port);
    }
    Ok(topology)
}

/// Where each guest lives, as the Proxy's rules of `topology` say (`ANY <mac> -> link
/// <host>`, the star's rules): `(mac, host)` pairs.
pub fn guest_homes(topology: &Topology, proxy: &Name) -> Vec<(Mac, Name)> {
    topology
        .rules
        .get(proxy)
        .into_iter()
        .flatten()
        .filter_map(|((_, dst), target)| match (dst, target) {
            (DstMatch::Is(mac), Target::Link(host)) => Some((*mac, host.clone())),
            _ => None,
        })
        .collect()
}

/// Adds a fast path of `kind` between hosts `a` and `b` to `topology`, and at each of them a
/// rule sending the other's guests (by `homes`, see [`guest_homes`]) over it. Nothing is
/// added if `a == b`.
pub fn add_fast_path(
    topology: &mut Topology,
    homes: &[(Mac, Name)],
    a: &Name,
    b: &Name,
    kind: LinkKind,
) {
    let Some(link) = Link::new(a.clone(), b.clone(), kind) else {
        return;
    };
    topology.links.insert(link);
    for (here, there) in [(a, b), (b, a)] {
        let table = topology.rules.entry(here.clone()).or_default();
        for (mac, _) in homes.iter().filter(|(_, home)| home == there) {
            table.insert(
                (SrcMatch::Any, DstMatch::Is(*mac)),
                Target::Link(there.clone()),
            );
        }
    }
}

/// The star plus a fast path between every two hosts (over `kind`), each with its rules
/// ([`add_fast_path`]): the overlay with no frame between guests crossing the Proxy;
/// broadcast still rides the star.
pub fn mesh(star: &Topology, proxy: &Name, kind: LinkKind) -> Topology {
    let mut t = star.clone();
    let homes = guest_homes(star, proxy);
    let hosts: Vec<Name> = t.hosts.keys().filter(|h| *h != proxy).cloned().collect();
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            add_fast_path(&mut t, &homes, a, b, kind);
        }
    }
    t
}

/// Why a guest cannot be re-homed ([`rehome`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RehomeError {
    /// A machine the topology does not declare.
    #[error("`{0}` is not a daemon of the overlay")]
    UnknownMachine(Name),
    /// The guest would move to where it is.
    #[error("guest {mac} is at `{host}` already")]
    AlreadyThere {
        /// The guest's address.
        mac: Mac,
        /// Its home.
        host: Name,
    },
    /// A guest whose address is broadcast or multicast.
    #[error("guest address {0} is a broadcast or multicast address")]
    GroupMac(Mac),
    /// The old home does not deliver the guest out of a port.
    #[error("guest {mac} does not live at `{from}`: `{from}` has no rule `ANY {mac}` to a port")]
    NotAtHome {
        /// The guest's address.
        mac: Mac,
        /// The supposed home.
        from: Name,
    },
    /// The Proxy could not reach the new home: the star lacks its link.
    #[error("the Proxy `{proxy}` has no link to `{to}` (the star's link is missing)")]
    NoStarLink {
        /// The Proxy.
        proxy: Name,
        /// The new home.
        to: Name,
    },
}

/// Whether `topology` has a link (of either transport) between `a` and `b`.
fn linked(topology: &Topology, a: &Name, b: &Name) -> bool {
    topology
        .links
        .iter()
        .any(|l| l.peer_of(a).is_some_and(|peer| peer == b))
}

/// The overlay `topology` with guest `mac` living at `to` instead of `from` (a migration),
/// reached there through port `port` of `to`'s daemon; `proxy` is the star's Proxy. Links
/// do not change; only the rules for the guest (those whose destination is exactly `mac`):
///
/// * at `to`: one rule `ANY <mac>` to port `port` (any other rule there for the guest, e.g.
///   for one source, would win over it and goes);
/// * at the Proxy: one rule `ANY <mac>` over the link to `to`;
/// * at `from`: one rule `ANY <mac>` over the link to `to` if there is one (a fast path), else
///   none, so the default rule sends the guest's frames to the Proxy;
/// * at every other daemon, each rule for the guest over the link to `from` now goes over the
///   link to `to` if that daemon has one, else it is dropped (the default rule then sends the
///   frames to the Proxy, which sends them to `to`); rules over other links stay.
///
/// Every way to the guest then ends at `to`, directly or through the Proxy, so a topology
/// without loops or misdeliveries ([`crate::forward::check`]) gives one. [`plan`](super::plan)
/// from the old topology to the new one gives the primitives in a safe order (the new home's
/// rule and the moved routes first, the dropped rules last).
///
/// # Errors
///
/// A machine that `topology` does not declare, `from == to`, a group address, a `from` with
/// no rule `ANY <mac>` to a port (the guest does not live there), or a new home (other than
/// the Proxy) without a link to the Proxy.
pub fn rehome(
    topology: &Topology,
    mac: Mac,
    port: Name,
    from: &Name,
    to: &Name,
    proxy: &Name,
) -> Result<Topology, RehomeError> {
    if mac.is_group() {
        return Err(RehomeError::GroupMac(mac));
    }
    if let Some(unknown) = [from, to, proxy]
        .into_iter()
        .find(|m| !topology.hosts.contains_key(*m))
    {
        return Err(RehomeError::UnknownMachine(unknown.clone()));
    }
    if from == to {
        return Err(RehomeError::AlreadyThere {
            mac,
            host: to.clone(),
        });
    }
    let to_guest: Match = (SrcMatch::Any, DstMatch::Is(mac));
    let at_home = topology.rules.get(from).and_then(|t| t.get(&to_guest));
    if !matches!(at_home, Some(Target::Port(_))) {
        return Err(RehomeError::NotAtHome {
            mac,
            from: from.clone(),
        });
    }
    if to != proxy && !linked(topology, proxy, to) {
        return Err(RehomeError::NoStarLink {
            proxy: proxy.clone(),
            to: to.clone(),
        });
    }
    let via_to = Target::Link(to.clone());
    let mut t = topology.clone();
    for (machine, table) in &mut t.rules {
        let for_guest: Vec<Match> = table
            .keys()
            .filter(|(_, dst)| *dst == DstMatch::Is(mac))
            .copied()
            .collect();
        // The guest's one rule at the new home, the Proxy and the old home.
        let only = if machine == to {
            Some(Some(Target::Port(port.clone())))
        } else if machine == proxy {
            Some(Some(via_to.clone()))
        } else if machine == from {
            Some(linked(topology, from, to).then(|| via_to.clone()))
        } else {
            None
        };
        match only {
            Some(target) => {
                for m in for_guest {
                    table.remove(&m);
                }
                if let Some(target) = target {
                    table.insert(to_guest, target);
                }
            }
            None => {
                let over_from = Target::Link(from.clone());
                let moved: Vec<Match> = for_guest
                    .into_iter()
                    .filter(|m| table.get(m) == Some(&over_from))
                    .collect();
                for m in moved {
                    if linked(topology, machine, to) {
                        table.insert(m, via_to.clone());
                    } else {
                        table.remove(&m);
                    }
                }
            }
        }
    }
    // The new home and the Proxy may have had no table at all.
    let port_rule = Target::Port(port);
    t.rules
        .entry(to.clone())
        .or_default()
        .insert(to_guest, port_rule);
    if to != proxy {
        t.rules
            .entry(proxy.clone())
            .or_default()
            .insert(to_guest, via_to);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::{check, print};
    use super::*;

    fn name(s: &str) -> Name {
        s.parse().expect("a valid name")
    }

    fn host(machine: &str) -> Host {
        Host {
            user: "vnet".into(),
            machine: name(machine),
            port: 2222,
            interface: name("eth0"),
        }
    }

    fn guest(host: &str, port: &str, last: u8) -> Guest {
        Guest {
            host: name(host),
            port: name(port),
            mac: Mac([2, 0x56, 0x4e, 0, 0, last]),
        }
    }

    #[test]
    fn two_hosts_three_guests() {
        let guests = [
            guest("host1", "tap0", 1),
            guest("host1", "tap1", 2),
            guest("host2", "tap0", 3),
        ];
        let t = star(
            host("proxy"),
            vec![host("host1"), host("host2")],
            &guests,
            name("lan0"),
        )
        .expect("a star");
        assert_eq!(check(&t), Ok(()));
        assert_eq!(
            print(&t),
            "BEGIN\n\
             HOST vnet AT host1 2222 eth0\n\
             HOST vnet AT host2 2222 eth0\n\
             HOST vnet AT proxy 2222 eth0\n\
             ADD\n\
             \x20 LINK UDP host1 host1 proxy\n\
             \x20 LINK UDP host2 host2 proxy\n\
             \x20 FORWARD INTERFACE host1 ANY 02:56:4e:00:00:01 tap0\n\
             \x20 FORWARD INTERFACE host1 ANY 02:56:4e:00:00:02 tap1\n\
             \x20 FORWARD EDGE host1 ANY NONE host1 proxy\n\
             \x20 FORWARD INTERFACE host2 ANY 02:56:4e:00:00:03 tap0\n\
             \x20 FORWARD EDGE host2 ANY NONE host2 proxy\n\
             \x20 FORWARD EDGE proxy ANY 02:56:4e:00:00:01 proxy host1\n\
             \x20 FORWARD EDGE proxy ANY 02:56:4e:00:00:02 proxy host1\n\
             \x20 FORWARD EDGE proxy ANY 02:56:4e:00:00:03 proxy host2\n\
             \x20 FORWARD INTERFACE proxy ANY NONE lan0\n\
             END\n"
        );
    }

    #[test]
    fn a_guest_on_the_proxy_and_a_host_without_guests() {
        let t = star(
            host("proxy"),
            vec![host("idle")],
            &[guest("proxy", "tap9", 9)],
            name("lan0"),
        )
        .expect("a star");
        assert_eq!(check(&t), Ok(()));
        let proxy = &t.rules[&name("proxy")];
        assert_eq!(
            proxy[&(SrcMatch::Any, DstMatch::Is(Mac([2, 0x56, 0x4e, 0, 0, 9])))],
            Target::Port(name("tap9"))
        );
        assert_eq!(t.rules[&name("idle")].len(), 1);
    }

    #[test]
    fn inconsistent_inputs() {
        let lan = name("lan0");
        let star_of = |hosts: Vec<Host>, guests: &[Guest]| {
            star(host("proxy"), hosts, guests, lan.clone()).map(|_| ())
        };
        assert_eq!(
            star_of(vec![host("h"), host("h")], &[]),
            Err(StarError::MachineTwice(name("h")))
        );
        assert_eq!(
            star_of(vec![host("proxy")], &[]),
            Err(StarError::MachineTwice(name("proxy")))
        );
        assert_eq!(
            star_of(vec![host("h")], &[guest("x", "tap0", 1)]),
            Err(StarError::UnknownHost {
                mac: Mac([2, 0x56, 0x4e, 0, 0, 1]),
                host: name("x"),
            })
        );
        assert_eq!(
            star_of(vec![host("h")], &[guest("h", "t0", 1), guest("h", "t1", 1)]),
            Err(StarError::MacTwice(Mac([2, 0x56, 0x4e, 0, 0, 1])))
        );
        let mut multicast = guest("h", "t0", 1);
        multicast.mac = Mac([1, 0, 0x5e, 0, 0, 1]);
        assert_eq!(
            star_of(vec![host("h")], &[multicast]),
            Err(StarError::GroupMac(Mac([1, 0, 0x5e, 0, 0, 1])))
        );
    }

    #[test]
    fn the_mesh_adds_a_link_per_pair_of_hosts_and_a_rule_per_remote_guest() {
        let star = star(
            host("px"),
            vec![host("h1"), host("h2"), host("h3")],
            &[
                guest("h1", "vm1", 1),
                guest("h2", "vm2", 2),
                guest("h3", "vm3", 3),
            ],
            name("lan0"),
        )
        .unwrap();
        let mesh = mesh(&star, &name("px"), LinkKind::Udp);
        assert_eq!(mesh.links.len(), 3 + 3);
        for h in ["h1", "h2", "h3"] {
            assert_eq!(mesh.rules[&name(h)].len(), 2 + 2, "{h}");
        }
        assert!(crate::forward::check(&mesh, &name("px")).is_empty());
        assert_eq!(mesh.rules[&name("px")], star.rules[&name("px")]);
    }

    fn mac(last: u8) -> Mac {
        Mac([2, 0x56, 0x4e, 0, 0, last])
    }

    /// A star of `px` and hosts h1..h3 with guests `vmI` at the hosts given, by index.
    fn placed(homes: &[&str]) -> Topology {
        let guests: Vec<Guest> = homes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let last = u8::try_from(i + 1).unwrap();
                guest(h, &format!("vm{last}"), last)
            })
            .collect();
        star(
            host("px"),
            vec![host("h1"), host("h2"), host("h3")],
            &guests,
            name("lan0"),
        )
        .unwrap()
    }

    fn move_vm1(t: &Topology, from: &str, to: &str) -> Result<Topology, RehomeError> {
        rehome(t, mac(1), name("vm1"), &name(from), &name(to), &name("px"))
    }

    #[test]
    fn rehoming_in_the_star_gives_the_star_of_the_new_placement() {
        let before = placed(&["h1", "h2", "h3", "h1"]);
        let after = move_vm1(&before, "h1", "h2").unwrap();
        assert_eq!(after, placed(&["h2", "h2", "h3", "h1"]));
        assert!(crate::forward::check(&after, &name("px")).is_empty());
        // The plan: the new home's rule and the Proxy's moved route first, the old rule last.
        let actions: Vec<String> = super::super::plan(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            actions,
            [
                "ADD FORWARD INTERFACE h2 ANY 02:56:4e:00:00:01 vm1",
                "ADD FORWARD EDGE px ANY 02:56:4e:00:00:01 px h2",
                "DELETE FORWARD INTERFACE h1 ANY 02:56:4e:00:00:01 vm1",
            ]
        );
        // And back.
        assert_eq!(move_vm1(&after, "h2", "h1").unwrap(), before);
    }

    #[test]
    fn rehoming_in_the_mesh_gives_the_mesh_of_the_new_placement() {
        let px = name("px");
        let before = mesh(&placed(&["h1", "h2", "h3"]), &px, LinkKind::Udp);
        let after = move_vm1(&before, "h1", "h3").unwrap();
        assert_eq!(
            after,
            mesh(&placed(&["h3", "h2", "h3"]), &px, LinkKind::Udp)
        );
        assert!(crate::forward::check(&after, &px).is_empty());
        // The old home keeps a rule, over the fast path; the others' rules move to it.
        let rules = |m: &str| after.rules[&name(m)].get(&(SrcMatch::Any, DstMatch::Is(mac(1))));
        assert_eq!(rules("h1"), Some(&Target::Link(name("h3"))));
        assert_eq!(rules("h2"), Some(&Target::Link(name("h3"))));
        assert_eq!(rules("h3"), Some(&Target::Port(name("vm1"))));
        assert_eq!(rules("px"), Some(&Target::Link(name("h3"))));
    }

    #[test]
    fn rules_over_missing_fast_paths_are_dropped_and_others_stay() {
        let px = name("px");
        let star = placed(&["h1", "h2", "h3"]);
        // One fast path, h1-h3, with its rules; and at h2 a route to vm1 through h3.
        let mut before = star.clone();
        let homes = guest_homes(&star, &px);
        add_fast_path(&mut before, &homes, &name("h1"), &name("h3"), LinkKind::Udp);
        let link = Link::new(name("h2"), name("h3"), LinkKind::Tcp).unwrap();
        before.links.insert(link.clone());
        let to_vm1 = (SrcMatch::Any, DstMatch::Is(mac(1)));
        let h2 = before.rules.get_mut(&name("h2")).unwrap();
        h2.insert(to_vm1, Target::Link(name("h3")));
        // A rule for one source at the new home, which would win over the port rule.
        let from_vm2 = (SrcMatch::Is(mac(2)), DstMatch::Is(mac(1)));
        h2.insert(from_vm2, Target::Link(px.clone()));
        assert!(crate::forward::check(&before, &px).is_empty());

        // vm1 to h2: h3's rule over h1 moves to its link to h2; h1 has no link to h2, so its
        // rule goes; h2's rules for vm1 become the one port rule.
        let after = move_vm1(&before, "h1", "h2").unwrap();
        assert!(crate::forward::check(&after, &px).is_empty());
        let rule = |t: &Topology, m: &str, k| t.rules[&name(m)].get(&k).cloned();
        assert_eq!(rule(&after, "h1", to_vm1), None);
        assert_eq!(rule(&after, "h2", to_vm1), Some(Target::Port(name("vm1"))));
        assert_eq!(rule(&after, "h2", from_vm2), None);
        assert_eq!(rule(&after, "h3", to_vm1), Some(Target::Link(name("h2"))));
        assert_eq!(rule(&after, "px", to_vm1), Some(Target::Link(name("h2"))));
        assert_eq!(after.links, before.links);

        // Without the h2-h3 link (and h2's route over it), h3's rule over h1 is dropped.
        let mut no_h2_h3 = before.clone();
        no_h2_h3.links.remove(&link);
        let h2 = no_h2_h3.rules.get_mut(&name("h2")).unwrap();
        h2.remove(&to_vm1);
        let after = move_vm1(&no_h2_h3, "h1", "h2").unwrap();
        assert!(crate::forward::check(&after, &px).is_empty());
        assert_eq!(rule(&after, "h3", to_vm1), None);
        assert_eq!(rule(&after, "h1", to_vm1), None);

        // vm1 to h3, over the fast path: h1 keeps a rule, to h3; h2's rule through h3 stays.
        let after = move_vm1(&before, "h1", "h3").unwrap();
        assert!(crate::forward::check(&after, &px).is_empty());
        assert_eq!(rule(&after, "h1", to_vm1), Some(Target::Link(name("h3"))));
        assert_eq!(rule(&after, "h2", to_vm1), Some(Target::Link(name("h3"))));
        assert_eq!(rule(&after, "h3", to_vm1), Some(Target::Port(name("vm1"))));
    }

    #[test]
    fn a_guest_can_move_to_and_from_the_proxy() {
        let px = name("px");
        let before = placed(&["h1", "h2"]);
        let at_proxy = rehome(&before, mac(1), name("tap1"), &name("h1"), &px, &px).unwrap();
        assert!(crate::forward::check(&at_proxy, &px).is_empty());
        let to_vm1 = (SrcMatch::Any, DstMatch::Is(mac(1)));
        assert_eq!(at_proxy.rules[&px][&to_vm1], Target::Port(name("tap1")));
        // The old home's link to the new one is its star link: a rule like its default.
        let via_px = Target::Link(px.clone());
        assert_eq!(at_proxy.rules[&name("h1")].get(&to_vm1), Some(&via_px));
        let back = rehome(&at_proxy, mac(1), name("vm1"), &px, &name("h1"), &px).unwrap();
        assert_eq!(back, before);
    }

    #[test]
    fn rehoming_refuses_what_cannot_be() {
        let t = placed(&["h1", "h2"]);
        assert_eq!(
            move_vm1(&t, "h1", "h9"),
            Err(RehomeError::UnknownMachine(name("h9")))
        );
        assert_eq!(
            move_vm1(&t, "h1", "h1"),
            Err(RehomeError::AlreadyThere {
                mac: mac(1),
                host: name("h1")
            })
        );
        assert_eq!(
            move_vm1(&t, "h2", "h3"),
            Err(RehomeError::NotAtHome {
                mac: mac(1),
                from: name("h2")
            })
        );
        let group = Mac([1, 0, 0x5e, 0, 0, 1]);
        assert_eq!(
            rehome(&t, group, name("p"), &name("h1"), &name("h2"), &name("px")),
            Err(RehomeError::GroupMac(group))
        );
        let mut no_star_link = t.clone();
        no_star_link
            .links
            .retain(|l| l.peer_of(&name("h3")).is_none());
        assert_eq!(
            move_vm1(&no_star_link, "h1", "h3"),
            Err(RehomeError::NoStarLink {
                proxy: name("px"),
                to: name("h3")
            })
        );
    }
}

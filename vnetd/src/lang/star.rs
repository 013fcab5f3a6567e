//! The star: the overlay's initial topology (seed 004, Fig. 1), every host linked to the Proxy.

use std::collections::BTreeSet;

use crate::model::{DstMatch, Host, Link, LinkKind, Mac, Name, SrcMatch, Target, Topology};

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
}

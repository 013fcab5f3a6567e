//! The build plan: what a scenario becomes, as plain data, before anything touches the kernel.
//!
//! Layout of a run (every name carries the run's name, so that `down` finds everything):
//!
//! - one network namespace per node, `tb-RUN.NODE`: a namespace per site switch (`sw-SITE`, with
//!   bridge `br0`), per host, per guest, and `proxy` and `user`;
//! - every host and the Proxy has one underlay interface `eth0` on its site's switch, with an
//!   address in 10.200.0.0/16; the sites' switches are joined by the scenario's links into one
//!   bridged underlay (a tree of sites);
//! - the user's LAN: `user`'s `eth0` is cabled to the Proxy's LAN bridge `br0` (port `user`);
//! - a guest's NIC is its `eth0`, with its fixed MAC and address on the guest subnet; how it reaches
//!   the others is the network mode ([`Mode`]): a veth cable to a bridge on its host (`direct`,
//!   `vxlan`, `tinc`), or a TAP device of its host's overlay daemon (`vnet`, see [`Vnet`]);
//! - a wire with delay, jitter or loss is a pair of TAP devices owned by a link-emulator process;
//!   a wire with only a rate is a veth pair shaped by `tbf` at both ends; others are plain veths.
//!
//! No interface is ever created in the root namespace: veths are created directly inside their
//! namespaces and TAPs are born inside theirs, so Linux's 15-character interface names only bound
//! the short names used inside namespaces.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sys::NETNS_DIR;
use crate::linkemu::model::{bdp_queue_bytes, FULL_FRAME_BYTES};
use crate::scenario::{LinkShape, Scenario, USER_MAC};

/// How guests' NICs reach each other and the user's LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No overlay: each host bridges its guests onto its underlay uplink, and the Proxy bridges the
    /// user's LAN onto its own, so the user's LAN stretches over the sites' links.
    Direct,
    /// The in-kernel overlay reference: a VXLAN full mesh between the hosts and the Proxy, with
    /// the underlay MTU raised to carry 1500-byte guest frames (unless
    /// [`Options::keep_underlay_mtu`]).
    Vxlan,
    /// The VNET overlay: `vnetd` on every host and the Proxy, each guest's NIC a TAP of its host's
    /// daemon, every host linked to the Proxy over UDP (the star). The underlay MTU stays the
    /// scenario's: the overlay fragments by itself.
    Vnet,
    /// The user-space overlay reference: Debian's tinc 1.0 in switch mode, encryption and
    /// packet authentication off, a `tincd` on every host and the Proxy (see [`Tinc`]), each
    /// host's TAP on its guest bridge, the Proxy's on its LAN bridge. The underlay keeps the
    /// scenario's MTU: tinc's path-MTU discovery is off, so the kernel fragments its datagrams.
    Tinc,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Direct => "direct",
            Mode::Vxlan => "vxlan",
            Mode::Vnet => "vnet",
            Mode::Tinc => "tinc",
        })
    }
}

/// MTU of every guest NIC.
pub const GUEST_MTU: u32 = 1500;
/// VXLAN adds 50 bytes (outer Ethernet excluded) to a guest frame.
const VXLAN_OVERHEAD: u32 = 50;
/// VXLAN network identifier used by `vxlan` mode.
const VNI: u32 = 42;
/// The port of every overlay daemon's UDP link socket and TCP control API (`vnetd --listen`).
pub const VNET_PORT: u16 = 5400;
/// The port of every overlay daemon's Prometheus endpoint (`vnetd --metrics`).
pub const VNET_METRICS_PORT: u16 = 9540;
/// The Proxy's TAP onto the user's LAN (a port of its LAN bridge `br0`).
pub const VNET_LAN_PORT: &str = "lan0";
/// The port of every `tincd` (TCP meta connections and UDP packets).
pub const TINC_PORT: u16 = 655;
/// The TAP device every `tincd` creates in its node's namespace (a port of the node's `br0`).
pub const TINC_INTERFACE: &str = "tinc0";

/// How `up` builds a scenario, beyond its network mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Never raise the underlay MTU above the scenario's (`testbed up --keep-underlay-mtu`). Only
    /// `vxlan` mode raises it (to the guests' 1500 plus VXLAN's 50 bytes); with this option its
    /// VTEPs keep MTU 1500 over the scenario's underlay, have no lower device (which would cap
    /// them at the underlay's MTU minus 50) and send their outer packets without don't-fragment
    /// (`df unset`), so the kernel fragments them. Linux's bridged VXLAN still answers a
    /// don't-fragment frame that does not fit (1450 bytes of IP at underlay MTU 1500) with an
    /// ICMP "fragmentation needed" to its sender (`skb_tunnel_check_pmtu`, Linux 5.9 and
    /// later): guests' `ping -M do -s 1472` fails and their TCP (which sets don't-fragment)
    /// learns a path MTU of 1450; frames without don't-fragment cross in fragments.
    pub keep_underlay_mtu: bool,
    /// More arguments for every `vnetd` of a vnet-mode run, after the testbed's own (`testbed
    /// up --vnetd-arg=--vttif-window=2`): VTTIF's parameters, `--no-offloads`, ...
    #[serde(default)]
    pub vnetd_args: Vec<String>,
}

/// What kind of node a namespace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A site's switch (a bridge).
    Switch,
    /// An emulated physical host.
    Host,
    /// A guest (VM) on a host.
    Guest,
    /// The Proxy, on the user's network.
    Proxy,
    /// The user's machine.
    User,
}

/// One node of the run: a network namespace (and, but for switches, a UTS namespace).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Node name: `hostN`, `vmN`, `proxy`, `user`, `sw-SITE`.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Network namespace name.
    pub netns: String,
    /// The CPU cgroup whose quota its processes run under (a guest's is its host's).
    pub cgroup: String,
    /// Address on the underlay (hosts and Proxy) or on the guest subnet (guests, user).
    pub ip: Option<Ipv4Addr>,
}

/// One end of a wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Network namespace.
    pub netns: String,
    /// Interface name inside it.
    pub ifname: String,
}

/// A cable between two namespaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wire {
    /// Human name, e.g. `host3-sw-cluster` or `cluster-proxysite`.
    pub name: String,
    /// One end.
    pub a: End,
    /// The other end.
    pub b: End,
    /// Shape, both directions; `None` for an ideal cable.
    pub shape: Option<LinkShape>,
    /// Whether the scenario defines this wire (site links and access links) rather than it being
    /// internal plumbing (guest NICs, the user's cable).
    pub emulated: bool,
    /// FIFO size in bytes of the direction leaving end `a` (0 for an unshaped wire).
    pub queue_a: u64,
    /// FIFO size in bytes of the direction leaving end `b`.
    pub queue_b: u64,
}

/// What a wire is, which sets its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireKind {
    /// A host's or the Proxy's link to its site's switch; end `a` is the node's NIC, which
    /// queues `nic_queue` bytes ([`nic_queue_bytes`]).
    Access { nic_queue: u64 },
    /// A link between two sites' switches.
    SiteLink,
    /// Plumbing inside the testbed (guest NICs, the user's cable): never shaped.
    Internal,
}

impl Wire {
    /// True when a user-space link emulator carries it (delay, jitter or loss to emulate).
    #[must_use]
    pub fn needs_emulator(&self) -> bool {
        self.shape.is_some_and(|s| !s.kernel_only())
    }
}

/// Queue of a host's (or the Proxy's) NIC, the sending end of its access link: as long in time
/// as Linux's default `txqueuelen` of 1000 frames at the unscaled rate, i.e. `1000 × rate_scale`
/// frames (100 at 0.1: 120 ms at 10 Mbit/s, like 1000 frames at 100 Mbit/s), and at least 64.
/// A queue of 1000 frames at the scaled rate would hold 1.2 s of traffic: ten times the
/// queueing delay of the hosts the scenarios describe, which stretched CUBIC's loss recovery so
/// much that `patterns` ring ran 1.37× its prediction instead of 1.24× (`bench fidelity`).
#[must_use]
pub fn nic_queue_bytes(rate_scale: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let frames = (1000.0 * rate_scale).round() as u64;
    frames.max(64) * FULL_FRAME_BYTES
}

/// Queue of a switch port or a site link when the scenario gives none: one bandwidth-delay
/// product of the link, but at least 100 ms of traffic and 64 full frames. With 16 frames (tried
/// first), seven flows converging on one port made TCP retransmit 27 % of its segments (counted
/// with `nstat` in a guest during `testbed patterns` all-to-all), far more than the era's
/// switches and routers would.
#[must_use]
pub fn default_queue(shape: &LinkShape) -> u64 {
    let rtt = (2 * shape.delay).max(Duration::from_millis(100));
    bdp_queue_bytes(shape.rate_bps, rtt).max(64 * FULL_FRAME_BYTES)
}

/// A command-stream for one tool in one namespace (`ip -n NS -batch -`, `tc ...`, `bridge ...`).
pub type Batches = BTreeMap<String, Vec<String>>;

/// Everything `up` creates, in the order it creates it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Run name.
    pub run: String,
    /// Network mode.
    pub mode: Mode,
    /// Underlay MTU actually used (raised in vxlan mode unless `up` was asked to keep it,
    /// [`Options::keep_underlay_mtu`]).
    pub underlay_mtu: u32,
    /// Every node.
    pub nodes: Vec<Node>,
    /// Every wire.
    pub wires: Vec<Wire>,
    /// `ip` commands per namespace, run after every wire exists.
    pub ip: Batches,
    /// `tc` commands per namespace.
    pub tc: Batches,
    /// `bridge` commands per namespace.
    pub bridge: Batches,
    /// CPU quota per cgroup (cores); `None` = unlimited.
    pub cgroups: BTreeMap<String, Option<f64>>,
    /// The overlay, in `vnet` mode only.
    #[serde(default)]
    pub vnet: Option<Vnet>,
    /// The tinc daemons, in `tinc` mode only.
    #[serde(default)]
    pub tinc: Option<Tinc>,
}

/// What a daemon is in the overlay (`vnetd --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A host: links to the Proxy, guests' ports.
    Host,
    /// The Proxy: the star's centre, the user's LAN port.
    Proxy,
}

/// One overlay daemon (`vnetd`), on a host or the Proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    /// The node it runs on, which is also its name in the overlay.
    pub node: String,
    /// Host or Proxy.
    pub role: Role,
    /// Its UDP link socket and TCP control API (the node's underlay address).
    pub listen: SocketAddrV4,
    /// Its Prometheus endpoint.
    pub metrics: SocketAddrV4,
    /// The underlay's MTU, which bounds its datagrams (it fragments larger frames).
    pub underlay_mtu: u32,
    /// Arguments after the testbed's own ([`Options::vnetd_args`]).
    #[serde(default)]
    pub extra_args: Vec<String>,
}

impl Daemon {
    /// The `vnetd` arguments of this daemon, given the run's key file and its own state directory.
    #[must_use]
    pub fn args(&self, key_file: &Path, state_dir: &Path) -> Vec<String> {
        let mut a = vec!["--name".to_string(), self.node.clone()];
        match self.role {
            Role::Host => a.extend(["--role", "host", "--proxy", "proxy"].map(String::from)),
            Role::Proxy => a.extend(["--role", "proxy"].map(String::from)),
        }
        a.extend([
            "--key-file".to_string(),
            key_file.display().to_string(),
            "--listen".to_string(),
            self.listen.to_string(),
            "--metrics".to_string(),
            self.metrics.to_string(),
            "--state-dir".to_string(),
            state_dir.display().to_string(),
            "--underlay-mtu".to_string(),
            self.underlay_mtu.to_string(),
        ]);
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// One port of an overlay daemon: a TAP device it creates and owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// The daemon (node) that owns it.
    pub daemon: String,
    /// Its name in the overlay (a guest's node name, or `lan0`).
    pub name: String,
    /// The TAP device's name.
    pub tap: String,
    /// The namespace the TAP is born in (a guest's), or `None` for the daemon's own.
    pub netns: Option<String>,
    /// The one source MAC a guest port accepts, or `None` for the Proxy's LAN port, which
    /// carries many MACs.
    pub mac: Option<String>,
}

impl Port {
    /// The `vnetctl attach-port` arguments that create it.
    #[must_use]
    pub fn attach_args(&self) -> Vec<String> {
        let mut a = vec![
            "attach-port".to_string(),
            self.daemon.clone(),
            self.name.clone(),
            "--tap".to_string(),
            self.tap.clone(),
        ];
        if let Some(ns) = &self.netns {
            a.push("--netns".into());
            a.push(Path::new(NETNS_DIR).join(ns).display().to_string());
        }
        match &self.mac {
            Some(mac) => a.extend(["--mac".to_string(), mac.clone()]),
            None => a.push("--lan".into()),
        }
        a
    }
}

/// The overlay of a `vnet`-mode run, set up once the underlay works: daemons started, ports
/// attached, then [`Vnet::after_attach`], then the star applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vnet {
    /// Every daemon: the hosts in order, then the Proxy.
    pub daemons: Vec<Daemon>,
    /// Every port: the guests' in order, then the Proxy's LAN port.
    pub ports: Vec<Port>,
    /// `ip` commands per namespace, run once every port's TAP exists.
    pub after_attach: Batches,
}

impl Vnet {
    /// The hosts file that names every daemon's underlay address (`/etc/hosts` format).
    #[must_use]
    pub fn hosts_file(&self) -> String {
        self.daemons
            .iter()
            .map(|d| format!("{} {}\n", d.listen.ip(), d.node))
            .collect()
    }

    /// The `vnetctl star` arguments of the initial star: every host linked to the Proxy, every
    /// guest on its host's port, the user's LAN on the Proxy's port.
    #[must_use]
    pub fn star_args(&self) -> Vec<String> {
        let mut a = vec!["star".to_string(), "--proxy".to_string()];
        a.extend(
            self.daemons
                .iter()
                .filter(|d| d.role == Role::Proxy)
                .map(|d| d.node.clone()),
        );
        for d in self.daemons.iter().filter(|d| d.role == Role::Host) {
            a.extend(["--host".to_string(), d.node.clone()]);
        }
        for p in &self.ports {
            match &p.mac {
                Some(mac) => a.extend([
                    "--guest".to_string(),
                    format!("{}:{}:{mac}", p.daemon, p.name),
                ]),
                None => a.extend(["--lan-port".to_string(), p.name.clone()]),
            }
        }
        a.extend(["--port".to_string(), VNET_PORT.to_string()]);
        a
    }
}

/// The tinc daemons of a `tinc`-mode run (Debian's tinc 1.0, `tincd`): one per host and the
/// Proxy, in switch mode (a learning Ethernet switch between TAPs), packet encryption and
/// authentication off (`Cipher = none`, `Digest = none`), no compression. The meta connections
/// form a star (every host connects to the Proxy, whose `tincd` starts first); packets go
/// between any two daemons directly over UDP, each knowing every other's address and public key
/// from its host file. Path-MTU discovery and MSS clamping are off, so a 1500-byte guest frame
/// is one datagram that the kernel fragments on the underlay (as with VXLAN's `df unset`), and
/// guests' TCP is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tinc {
    /// Every daemon: the hosts in order, then the Proxy.
    pub nodes: Vec<TincNode>,
}

/// One `tincd`, on a host or the Proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TincNode {
    /// The node it runs on, which is also its tinc name (letters and digits only).
    pub node: String,
    /// Its underlay address (the `Address` of its host file).
    pub address: Ipv4Addr,
    /// The daemon it opens a meta connection to (`ConnectTo`); `None` for the Proxy's, which
    /// waits for the others.
    pub connect_to: Option<String>,
}

impl TincNode {
    /// Its `tinc.conf`.
    #[must_use]
    pub fn tinc_conf(&self) -> String {
        let mut s = format!(
            "# Written by `testbed up` (tinc mode).\n\
             Name = {}\n\
             Mode = switch\n\
             DeviceType = tap\n\
             Interface = {TINC_INTERFACE}\n\
             AddressFamily = ipv4\n",
            self.node
        );
        if let Some(peer) = &self.connect_to {
            s.push_str(&format!("ConnectTo = {peer}\n"));
        }
        s
    }

    /// Its host file (`hosts/NODE`) before `tincd -K` appends its public key. Every daemon gets
    /// every daemon's host file; the options are host options, alike everywhere.
    #[must_use]
    pub fn host_file(&self) -> String {
        format!(
            "Address = {}\n\
             Port = {TINC_PORT}\n\
             Cipher = none\n\
             Digest = none\n\
             Compression = 0\n\
             PMTUDiscovery = no\n\
             ClampMSS = no\n",
            self.address
        )
    }

    /// The `tincd` arguments that run it in the foreground, logging to stderr, from `dir`.
    #[must_use]
    pub fn args(dir: &Path) -> Vec<String> {
        vec![
            "--config".to_string(),
            dir.display().to_string(),
            "--no-detach".to_string(),
            "--debug=1".to_string(),
            format!("--pidfile={}", dir.join("tincd.pid").display()),
        ]
    }
}

/// The `tinc-up` script of every daemon: its TAP joins the node's bridge (a host's guest bridge,
/// the Proxy's LAN bridge) with the guests' MTU.
#[must_use]
pub fn tinc_up_script() -> String {
    format!(
        "#!/bin/sh\n# Written by `testbed up` (tinc mode).\n\
         exec ip link set \"$INTERFACE\" mtu {GUEST_MTU} master br0 up\n"
    )
}

/// The `host-up` script of every daemon: marks each daemon it reaches in `reachable`, which is
/// how `up` knows the overlay is complete.
#[must_use]
pub fn tinc_host_up_script(reachable: &Path) -> String {
    format!(
        "#!/bin/sh\n# Written by `testbed up` (tinc mode).\n\
         exec touch \"{}/$NODE\"\n",
        reachable.display()
    )
}

fn tinc(uplinks: &[(String, usize, Ipv4Addr)]) -> Tinc {
    Tinc {
        nodes: uplinks
            .iter()
            .map(|(node, _, ip)| TincNode {
                node: node.clone(),
                address: *ip,
                connect_to: (node != "proxy").then(|| "proxy".to_string()),
            })
            .collect(),
    }
}

/// Namespace name of a node of a run: `tb-RUN.NODE` (run and node names never hold a dot, so
/// no run's names are a prefix of another's).
#[must_use]
pub fn netns_name(run: &str, node: &str) -> String {
    format!("{}{node}", netns_prefix(run))
}

/// The prefix of every namespace of a run.
#[must_use]
pub fn netns_prefix(run: &str) -> String {
    format!("tb-{run}.")
}

/// The cgroup holding the link emulators of a run (no quota: it is the network, not a host).
pub const NET_CGROUP: &str = "net";

/// Underlay address of host `index` (from 1).
#[must_use]
pub fn host_underlay_ip(index: usize) -> Ipv4Addr {
    let i = u32::try_from(index).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + i)
}

/// Underlay address of the Proxy.
pub const PROXY_UNDERLAY_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 255, 254);
const UNDERLAY_PREFIX: u8 = 16;

impl Plan {
    /// Builds the plan of `scenario` for run `run` in `mode`, with default [`Options`].
    #[must_use]
    pub fn new(scenario: &Scenario, run: &str, mode: Mode) -> Plan {
        Plan::with_options(scenario, run, mode, Options::default())
    }

    /// Builds the plan of `scenario` for run `run` in `mode` with `options`.
    #[must_use]
    pub fn with_options(scenario: &Scenario, run: &str, mode: Mode, options: Options) -> Plan {
        let mtu = match mode {
            Mode::Vxlan if !options.keep_underlay_mtu => {
                scenario.underlay_mtu.max(GUEST_MTU + VXLAN_OVERHEAD)
            }
            _ => scenario.underlay_mtu,
        };
        let mut p = Plan {
            run: run.to_string(),
            mode,
            underlay_mtu: mtu,
            nodes: Vec::new(),
            wires: Vec::new(),
            ip: Batches::new(),
            tc: Batches::new(),
            bridge: Batches::new(),
            cgroups: BTreeMap::new(),
            vnet: None,
            tinc: None,
        };
        let ns = |node: &str| netns_name(run, node);
        let sw = |site: usize| format!("sw-{}", scenario.sites[site].name);
        let prefix = scenario.guest_subnet.1;

        // Nodes.
        for s in 0..scenario.sites.len() {
            p.node(&sw(s), NodeKind::Switch, NET_CGROUP, None);
        }
        for h in &scenario.hosts {
            p.node(
                &h.name,
                NodeKind::Host,
                &h.name,
                Some(host_underlay_ip(h.index)),
            );
            p.cgroups.insert(h.name.clone(), h.cpu);
        }
        for g in &scenario.guests {
            p.node(
                &g.name,
                NodeKind::Guest,
                &scenario.hosts[g.host].name,
                Some(g.ip),
            );
        }
        p.node("proxy", NodeKind::Proxy, "proxy", Some(PROXY_UNDERLAY_IP));
        p.node("user", NodeKind::User, "user", Some(scenario.user_ip()));
        for c in [NET_CGROUP, "proxy", "user"] {
            p.cgroups.insert(c.to_string(), None);
        }

        // Switches: a bridge each.
        for s in 0..scenario.sites.len() {
            let cmds = p.ip.entry(ns(&sw(s))).or_default();
            cmds.push(format!(
                "link add br0 mtu {mtu} type bridge stp_state 0 mcast_snooping 0"
            ));
        }

        // Access wires: hosts and the Proxy to their site's switch.
        let uplinks: Vec<(String, usize, Ipv4Addr)> = scenario
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.site, host_underlay_ip(h.index)))
            .chain(std::iter::once((
                "proxy".to_string(),
                scenario.proxy_site,
                PROXY_UNDERLAY_IP,
            )))
            .collect();
        for (node, site, _) in &uplinks {
            let port = if node == "proxy" {
                "px".to_string()
            } else {
                format!("h{}", &node[4..])
            };
            let shape = scenario.sites[*site].access;
            p.wire(
                format!("{node}-{}", sw(*site)),
                End {
                    netns: ns(node),
                    ifname: "eth0".into(),
                },
                End {
                    netns: ns(&sw(*site)),
                    ifname: port.clone(),
                },
                (shape.rate_bps > 0 || !shape.kernel_only()).then_some(shape),
                WireKind::Access {
                    nic_queue: nic_queue_bytes(scenario.rate_scale),
                },
            );
            p.port_of(&ns(&sw(*site)), &port, "br0", mtu);
        }

        // Site links.
        for (k, l) in scenario.links.iter().enumerate() {
            let ifname = format!("l{k}");
            p.wire(
                format!("{}-{}", scenario.sites[l.a].name, scenario.sites[l.b].name),
                End {
                    netns: ns(&sw(l.a)),
                    ifname: ifname.clone(),
                },
                End {
                    netns: ns(&sw(l.b)),
                    ifname: ifname.clone(),
                },
                Some(l.shape),
                WireKind::SiteLink,
            );
            p.port_of(&ns(&sw(l.a)), &ifname, "br0", mtu);
            p.port_of(&ns(&sw(l.b)), &ifname, "br0", mtu);
        }

        // The user's LAN: user's eth0 cabled to the Proxy's LAN bridge.
        p.wire(
            "user-proxy".into(),
            End {
                netns: ns("user"),
                ifname: "eth0".into(),
            },
            End {
                netns: ns("proxy"),
                ifname: "user".into(),
            },
            None,
            WireKind::Internal,
        );
        {
            let c = p.ip.entry(ns("proxy")).or_default();
            c.push(format!(
                "link add br0 mtu {GUEST_MTU} type bridge stp_state 0 mcast_snooping 0"
            ));
        }
        p.port_of(&ns("proxy"), "user", "br0", GUEST_MTU);
        p.ip.entry(ns("user")).or_default().extend([
            format!("link set eth0 address {USER_MAC} mtu {GUEST_MTU} up"),
            format!("addr add {}/{prefix} dev eth0", scenario.user_ip()),
        ]);

        // Guests: a NIC each, cabled to a bridge on its host; in vnet mode a TAP of the host's
        // daemon instead, which exists only once the daemon runs.
        if mode == Mode::Tinc {
            p.tinc = Some(tinc(&uplinks));
        }
        if mode == Mode::Vnet {
            p.vnet = Some(vnet(scenario, run, &uplinks, mtu, &options.vnetd_args));
        } else {
            for h in &scenario.hosts {
                p.ip.entry(ns(&h.name)).or_default().push(format!(
                    "link add br0 mtu {GUEST_MTU} type bridge stp_state 0 mcast_snooping 0"
                ));
            }
            for g in &scenario.guests {
                let host = &scenario.hosts[g.host].name;
                let port = g.name.clone();
                p.wire(
                    format!("{}-{host}", g.name),
                    End {
                        netns: ns(&g.name),
                        ifname: "eth0".into(),
                    },
                    End {
                        netns: ns(host),
                        ifname: port.clone(),
                    },
                    None,
                    WireKind::Internal,
                );
                p.port_of(&ns(host), &port, "br0", GUEST_MTU);
                p.ip.entry(ns(&g.name)).or_default().extend([
                    format!("link set eth0 address {} mtu {GUEST_MTU} up", g.mac),
                    format!("addr add {}/{prefix} dev eth0", g.ip),
                ]);
            }
        }

        // The mode: how each host's (and the Proxy's) guest bridge reaches the others.
        for (node, _, ip) in &uplinks {
            let c = p.ip.entry(ns(node)).or_default();
            c.push(format!("link set eth0 mtu {mtu} up"));
            match mode {
                Mode::Direct => {
                    // The uplink becomes a bridge port, so the node's own address moves to the bridge.
                    c.push(format!("link set br0 mtu {mtu}"));
                    c.push("link set eth0 master br0".into());
                    c.push(format!("addr add {ip}/{UNDERLAY_PREFIX} dev br0"));
                }
                Mode::Vnet => {
                    // The daemon's UDP socket is bound to this address; no bridge on hosts.
                    c.push(format!("addr add {ip}/{UNDERLAY_PREFIX} dev eth0"));
                }
                Mode::Tinc => {
                    // tincd talks from this address; its TAP joins br0 once it exists (tinc-up).
                    c.push(format!("addr add {ip}/{UNDERLAY_PREFIX} dev eth0"));
                }
                Mode::Vxlan => {
                    c.push(format!("addr add {ip}/{UNDERLAY_PREFIX} dev eth0"));
                    if mtu >= GUEST_MTU + VXLAN_OVERHEAD {
                        c.push(format!(
                            "link add vxlan0 mtu {GUEST_MTU} type vxlan id {VNI} local {ip} dev eth0 dstport 4789 learning"
                        ));
                    } else {
                        // The kept, smaller underlay (Options::keep_underlay_mtu): no lower
                        // device, which would cap the VTEP at its MTU minus 50 (and the bridge
                        // would then drop full guest frames), and outer packets that the
                        // kernel may fragment.
                        c.push(format!(
                            "link add vxlan0 mtu {GUEST_MTU} type vxlan id {VNI} local {ip} dstport 4789 learning df unset"
                        ));
                    }
                    c.push("link set vxlan0 master br0 up".into());
                    let fdb = p.bridge.entry(ns(node)).or_default();
                    for (_, _, peer) in uplinks.iter().filter(|(_, _, peer)| peer != ip) {
                        fdb.push(format!(
                            "fdb append 00:00:00:00:00:00 dev vxlan0 dst {peer}"
                        ));
                    }
                }
            }
        }
        // Every host has a guest bridge but in vnet mode; the Proxy always has its LAN bridge.
        for node in uplinks
            .iter()
            .map(|u| u.0.as_str())
            .filter(|n| mode != Mode::Vnet || *n == "proxy")
        {
            p.ip.entry(ns(node))
                .or_default()
                .push("link set br0 up".into());
        }
        for s in 0..scenario.sites.len() {
            p.ip.entry(ns(&sw(s)))
                .or_default()
                .push("link set br0 up".into());
        }
        for n in &p.nodes {
            p.ip.entry(n.netns.clone())
                .or_default()
                .insert(0, "link set lo up".into());
        }

        // Rate shaping of kernel-only wires: tbf on both ends' egress.
        let shaped: Vec<(End, u64, u64)> = p
            .wires
            .iter()
            .filter(|w| !w.needs_emulator())
            .filter_map(|w| {
                let rate = w.shape.filter(|s| s.rate_bps > 0)?.rate_bps;
                Some([
                    (w.a.clone(), rate, w.queue_a),
                    (w.b.clone(), rate, w.queue_b),
                ])
            })
            .flatten()
            .collect();
        for (end, rate, queue) in shaped {
            p.tc.entry(end.netns)
                .or_default()
                .push(tbf(&end.ifname, rate, queue, mtu));
        }
        p
    }

    fn node(&mut self, name: &str, kind: NodeKind, cgroup: &str, ip: Option<Ipv4Addr>) {
        self.nodes.push(Node {
            name: name.to_string(),
            kind,
            netns: netns_name(&self.run, name),
            cgroup: cgroup.to_string(),
            ip,
        });
    }

    fn wire(&mut self, name: String, a: End, b: End, shape: Option<LinkShape>, kind: WireKind) {
        let queue = shape.map_or(0, |s| s.queue_bytes.unwrap_or_else(|| default_queue(&s)));
        let queue_a = match kind {
            WireKind::Access { nic_queue } if shape.is_some() => nic_queue,
            _ => queue,
        };
        let emulated = kind != WireKind::Internal;
        self.wires.push(Wire {
            name,
            a,
            b,
            shape,
            emulated,
            queue_a,
            queue_b: queue,
        });
    }

    fn port_of(&mut self, netns: &str, ifname: &str, bridge: &str, mtu: u32) {
        self.ip
            .entry(netns.to_string())
            .or_default()
            .push(format!("link set {ifname} mtu {mtu} master {bridge} up"));
    }

    /// The node named `name`.
    #[must_use]
    pub fn node_named(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Largest frame on the underlay (Ethernet header and one VLAN tag included).
    #[must_use]
    pub fn max_frame(&self) -> usize {
        self.underlay_mtu as usize + 18
    }
}

/// The overlay of a vnet-mode run of `scenario`: a daemon on every node of `uplinks` (the hosts,
/// then the Proxy, with their underlay addresses), a port per guest on its host's daemon, the
/// Proxy's LAN port, and what the testbed does once the ports exist: the guests' addresses, and
/// the LAN port joining the Proxy's LAN bridge.
fn vnet(
    scenario: &Scenario,
    run: &str,
    uplinks: &[(String, usize, Ipv4Addr)],
    underlay_mtu: u32,
    extra_args: &[String],
) -> Vnet {
    let daemons = uplinks
        .iter()
        .map(|(node, _, ip)| Daemon {
            node: node.clone(),
            role: if node == "proxy" {
                Role::Proxy
            } else {
                Role::Host
            },
            listen: SocketAddrV4::new(*ip, VNET_PORT),
            metrics: SocketAddrV4::new(*ip, VNET_METRICS_PORT),
            underlay_mtu,
            extra_args: extra_args.to_vec(),
        })
        .collect();
    let mut ports: Vec<Port> = scenario
        .guests
        .iter()
        .map(|g| Port {
            daemon: scenario.hosts[g.host].name.clone(),
            name: g.name.clone(),
            tap: "eth0".into(),
            netns: Some(netns_name(run, &g.name)),
            mac: Some(g.mac.clone()),
        })
        .collect();
    ports.push(Port {
        daemon: "proxy".into(),
        name: VNET_LAN_PORT.into(),
        tap: VNET_LAN_PORT.into(),
        netns: None,
        mac: None,
    });
    let mut after_attach = Batches::new();
    let prefix = scenario.guest_subnet.1;
    for g in &scenario.guests {
        after_attach
            .entry(netns_name(run, &g.name))
            .or_default()
            .push(format!("addr add {}/{prefix} dev eth0", g.ip));
    }
    after_attach
        .entry(netns_name(run, "proxy"))
        .or_default()
        .push(format!("link set {VNET_LAN_PORT} master br0 up"));
    Vnet {
        daemons,
        ports,
        after_attach,
    }
}

/// A `tbf` qdisc: a FIFO of `queue` bytes drained at `rate`, with a bucket of one millisecond of
/// traffic (at least two full frames) so that the kernel's timer granularity does not cut the rate.
fn tbf(dev: &str, rate_bps: u64, queue: u64, mtu: u32) -> String {
    let frame = u64::from(mtu) + 18;
    let burst = (rate_bps / 8 / 1000).max(2 * frame);
    format!("qdisc replace dev {dev} root tbf rate {rate_bps}bit burst {burst} limit {queue}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario() -> Scenario {
        Scenario::parse(
            Path::new("t.toml"),
            r#"
name = "t"
rate_scale = 1
[[site]]
name = "a"
hosts = 2
access = { rate = "100mbit" }
[[site]]
name = "b"
hosts = 1
proxy = true
[[link]]
between = ["a", "b"]
rate = "10mbit"
delay = "5ms"
"#,
        )
        .unwrap()
    }

    #[test]
    fn names_fit_linux_limits_and_carry_the_run() {
        let p = Plan::new(&scenario(), "averyveryverylongrunname", Mode::Direct);
        for w in &p.wires {
            for e in [&w.a, &w.b] {
                assert!(e.ifname.len() <= 15, "{}", e.ifname);
                assert!(e.netns.starts_with("tb-averyveryverylongrunname."));
            }
        }
        assert_eq!(p.nodes.len(), 2 + 3 + 3 + 2);
    }

    #[test]
    fn wires_pick_kernel_or_emulator() {
        let p = Plan::new(&scenario(), "r", Mode::Direct);
        let site = p.wires.iter().find(|w| w.name == "a-b").unwrap();
        assert!(site.needs_emulator());
        let access = p.wires.iter().find(|w| w.name == "host1-sw-a").unwrap();
        assert!(!access.needs_emulator());
        assert!(p.tc["tb-r.host1"][0].contains("tbf rate 100000000bit"));
        assert!(p.tc["tb-r.sw-a"].iter().any(|c| c.contains("dev h1 ")));
        // host3 is on site b, which has no access rate: no shaping.
        assert!(!p.tc.contains_key("tb-r.host3"));
    }

    #[test]
    fn modes_differ_only_in_how_bridges_reach_out() {
        let d = Plan::new(&scenario(), "r", Mode::Direct);
        let v = Plan::new(&scenario(), "r", Mode::Vxlan);
        assert_eq!(d.underlay_mtu, 1500);
        assert_eq!(v.underlay_mtu, 1550);
        assert!(d.ip["tb-r.host1"]
            .iter()
            .any(|c| c == "link set eth0 master br0"));
        assert!(v.ip["tb-r.host1"].iter().any(|c| c.contains("type vxlan")));
        // Full mesh: each VTEP (3 hosts + Proxy) floods to the 3 others.
        assert_eq!(v.bridge["tb-r.proxy"].len(), 3);
        // Guests look the same in both modes.
        assert_eq!(d.ip["tb-r.vm2"], v.ip["tb-r.vm2"]);
    }

    #[test]
    fn vnet_mode_has_daemons_instead_of_guest_cables() {
        let p = Plan::new(&scenario(), "r", Mode::Vnet);
        // The overlay fragments by itself: the underlay keeps the scenario's MTU.
        assert_eq!(p.underlay_mtu, 1500);
        // No guest is cabled: only access links, the site link and the user's cable.
        let wires: Vec<&str> = p.wires.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            wires,
            [
                "host1-sw-a",
                "host2-sw-a",
                "host3-sw-b",
                "proxy-sw-b",
                "a-b",
                "user-proxy"
            ]
        );
        // Hosts carry their underlay address on eth0 and have no bridge.
        assert_eq!(
            p.ip["tb-r.host1"],
            [
                "link set lo up",
                "link set eth0 mtu 1500 up",
                "addr add 10.200.0.1/16 dev eth0"
            ]
        );
        // The Proxy keeps its LAN bridge with the user's cable, and its address on eth0.
        let proxy = &p.ip["tb-r.proxy"];
        assert!(proxy.iter().any(|c| c.starts_with("link add br0 ")));
        assert!(proxy
            .iter()
            .any(|c| c == "link set user mtu 1500 master br0 up"));
        assert!(proxy
            .iter()
            .any(|c| c == "addr add 10.200.255.254/16 dev eth0"));
        assert!(!proxy
            .iter()
            .any(|c| c.contains("master br0") && c.contains("eth0")));
        // A guest's namespace gets nothing before its TAP exists but its loopback.
        assert_eq!(p.ip["tb-r.vm2"], ["link set lo up"]);
        assert!(p.bridge.is_empty());

        let v = p.vnet.as_ref().unwrap();
        let nodes: Vec<(&str, Role, String)> = v
            .daemons
            .iter()
            .map(|d| (d.node.as_str(), d.role, d.listen.to_string()))
            .collect();
        assert_eq!(
            nodes,
            [
                ("host1", Role::Host, "10.200.0.1:5400".to_string()),
                ("host2", Role::Host, "10.200.0.2:5400".to_string()),
                ("host3", Role::Host, "10.200.0.3:5400".to_string()),
                ("proxy", Role::Proxy, "10.200.255.254:5400".to_string()),
            ]
        );
        assert_eq!(
            v.after_attach["tb-r.vm2"],
            ["addr add 10.10.0.2/24 dev eth0"]
        );
        assert_eq!(
            v.after_attach["tb-r.proxy"],
            ["link set lan0 master br0 up"]
        );
        assert_eq!(v.after_attach.len(), 3 + 1);
        // Other modes have no overlay.
        assert!(Plan::new(&scenario(), "r", Mode::Vxlan).vnet.is_none());
    }

    #[test]
    fn vnet_daemons_ports_hosts_and_star() {
        let p = Plan::new(&scenario(), "r", Mode::Vnet);
        let v = p.vnet.unwrap();
        let key = Path::new("/run/testbed/r/vnet/key");
        assert_eq!(
            v.daemons[1].args(key, Path::new("/run/testbed/r/vnet/state/host2")),
            [
                "--name",
                "host2",
                "--role",
                "host",
                "--proxy",
                "proxy",
                "--key-file",
                "/run/testbed/r/vnet/key",
                "--listen",
                "10.200.0.2:5400",
                "--metrics",
                "10.200.0.2:9540",
                "--state-dir",
                "/run/testbed/r/vnet/state/host2",
                "--underlay-mtu",
                "1500"
            ]
        );
        let proxy = v.daemons[3].args(key, Path::new("/s"));
        assert_eq!(proxy[..4], ["--name", "proxy", "--role", "proxy"]);
        assert!(!proxy.contains(&"--proxy".to_string()));

        assert_eq!(v.ports.len(), 3 + 1);
        assert_eq!(
            v.ports[2].attach_args(),
            [
                "attach-port",
                "host3",
                "vm3",
                "--tap",
                "eth0",
                "--netns",
                "/run/netns/tb-r.vm3",
                "--mac",
                "02:56:4e:00:00:03"
            ]
        );
        assert_eq!(
            v.ports[3].attach_args(),
            ["attach-port", "proxy", "lan0", "--tap", "lan0", "--lan"]
        );
        assert_eq!(
            v.hosts_file(),
            "10.200.0.1 host1\n10.200.0.2 host2\n10.200.0.3 host3\n10.200.255.254 proxy\n"
        );
        assert_eq!(
            v.star_args().join(" "),
            "star --proxy proxy --host host1 --host host2 --host host3 \
             --guest host1:vm1:02:56:4e:00:00:01 --guest host2:vm2:02:56:4e:00:00:02 \
             --guest host3:vm3:02:56:4e:00:00:03 --lan-port lan0 --port 5400"
        );
    }

    #[test]
    fn vxlan_can_keep_the_underlay_mtu() {
        let keep = Options {
            keep_underlay_mtu: true,
            ..Options::default()
        };
        let v = Plan::with_options(&scenario(), "r", Mode::Vxlan, keep.clone());
        assert_eq!(v.underlay_mtu, 1500);
        let host = &v.ip["tb-r.host1"];
        assert!(host.iter().any(|c| c == "link set eth0 mtu 1500 up"));
        // No lower device (it would cap the VTEP at 1450) and fragmentable outer packets.
        assert!(host.iter().any(|c| c
            == "link add vxlan0 mtu 1500 type vxlan id 42 local 10.200.0.1 dstport 4789 learning df unset"));
        // Without the option the underlay grows and the VTEP sits on eth0.
        let raised = Plan::new(&scenario(), "r", Mode::Vxlan);
        assert!(raised.ip["tb-r.host1"]
            .iter()
            .any(|c| c.contains("type vxlan") && c.contains(" dev eth0 ")));
        // Other modes never raise it: the option changes nothing there.
        for mode in [Mode::Direct, Mode::Vnet, Mode::Tinc] {
            let a = Plan::new(&scenario(), "r", mode);
            let b = Plan::with_options(&scenario(), "r", mode, keep.clone());
            assert_eq!(a.underlay_mtu, 1500);
            assert_eq!(a.ip, b.ip, "{mode}");
        }
    }

    #[test]
    fn tinc_mode_bridges_a_tincd_tap_on_every_host_and_the_proxy() {
        let p = Plan::new(&scenario(), "r", Mode::Tinc);
        assert_eq!(p.underlay_mtu, 1500);
        assert!(p.vnet.is_none());
        // Guests are cabled to their host's bridge as in direct and vxlan mode.
        let d = Plan::new(&scenario(), "r", Mode::Direct);
        assert_eq!(d.ip["tb-r.vm2"], p.ip["tb-r.vm2"]);
        assert!(p.wires.iter().any(|w| w.name == "vm2-host2"));
        // Hosts keep their address on eth0, which is no bridge port; the guest bridge is up.
        let host = &p.ip["tb-r.host1"];
        assert!(host.iter().any(|c| c == "addr add 10.200.0.1/16 dev eth0"));
        assert!(host.iter().any(|c| c == "link set br0 up"));
        assert!(!host.iter().any(|c| c.contains("eth0 master")));
        assert!(!host.iter().any(|c| c.contains("vxlan")));
        assert!(p.bridge.is_empty());

        let t = p.tinc.as_ref().unwrap();
        let nodes: Vec<(&str, String, Option<&str>)> = t
            .nodes
            .iter()
            .map(|n| {
                (
                    n.node.as_str(),
                    n.address.to_string(),
                    n.connect_to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            nodes,
            [
                ("host1", "10.200.0.1".into(), Some("proxy")),
                ("host2", "10.200.0.2".into(), Some("proxy")),
                ("host3", "10.200.0.3".into(), Some("proxy")),
                ("proxy", "10.200.255.254".into(), None),
            ]
        );
        assert_eq!(
            t.nodes[1].tinc_conf(),
            "# Written by `testbed up` (tinc mode).\nName = host2\nMode = switch\n\
             DeviceType = tap\nInterface = tinc0\nAddressFamily = ipv4\nConnectTo = proxy\n"
        );
        assert!(!t.nodes[3].tinc_conf().contains("ConnectTo"));
        assert_eq!(
            t.nodes[3].host_file(),
            "Address = 10.200.255.254\nPort = 655\nCipher = none\nDigest = none\n\
             Compression = 0\nPMTUDiscovery = no\nClampMSS = no\n"
        );
        assert_eq!(
            TincNode::args(Path::new("/run/testbed/r/tinc/host1")),
            [
                "--config",
                "/run/testbed/r/tinc/host1",
                "--no-detach",
                "--debug=1",
                "--pidfile=/run/testbed/r/tinc/host1/tincd.pid"
            ]
        );
        assert!(
            tinc_up_script().ends_with("exec ip link set \"$INTERFACE\" mtu 1500 master br0 up\n")
        );
        assert!(tinc_host_up_script(Path::new("/x/reachable"))
            .ends_with("exec touch \"/x/reachable/$NODE\"\n"));
        // tinc names are letters, digits and underscores only.
        for n in &t.nodes {
            assert!(
                n.node.chars().all(|c| c.is_ascii_alphanumeric()),
                "{}",
                n.node
            );
        }
        assert!(Plan::new(&scenario(), "r", Mode::Vxlan).tinc.is_none());
    }

    #[test]
    fn plans_without_an_overlay_still_parse() {
        // A state file written before vnet mode existed has no `vnet` key.
        let p = Plan::new(&scenario(), "r", Mode::Direct);
        let mut json: serde_json::Value = serde_json::to_value(&p).unwrap();
        json.as_object_mut().unwrap().remove("vnet");
        let back: Plan = serde_json::from_value(json).unwrap();
        assert!(back.vnet.is_none());
        let v = Plan::new(&scenario(), "r", Mode::Vnet);
        let back: Plan = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back.mode, Mode::Vnet);
        assert_eq!(back.vnet.unwrap().ports, v.vnet.unwrap().ports);
    }
}

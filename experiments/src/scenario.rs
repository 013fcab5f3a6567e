//! Scenario files: what the testbed builds.
//!
//! A scenario is a TOML file describing sites (switched LANs), the hosts in each, the Proxy and the
//! user's machine, the emulated links joining the sites, the guests, and (for later experiments)
//! cross traffic and CPU hogs. [`Scenario::load`] parses and validates it; every error names the
//! file, line and column and the problem, and nothing is built from an invalid file.
//!
//! Every rate in the file is multiplied by the scenario's `rate_scale` (see the scenarios' own
//! comments for the factor chosen and why); all rates a [`Scenario`] exposes are already scaled.
//!
//! Naming and addressing are fixed so that every mode and every later issue sees the same guests:
//! hosts are `host1..hostN` numbered across sites in file order, guests `vm1..vmN` (by default
//! `vmI` on `hostI`), the Proxy `proxy` and the user's machine `user`. A guest's MAC
//! ([`guest_mac`]) and address (its index in `guest_subnet`) never change; `user` takes the
//! subnet's last usable address.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A problem in a scenario file, located at a line and column.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// The shape of one emulated link, both directions alike. Rates are already scaled. The default
/// is an ideal cable: unshaped, no delay, no loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LinkShape {
    /// Link rate in bit/s; 0 means unshaped.
    pub rate_bps: u64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Jitter added to the delay (never reorders frames).
    pub jitter: Duration,
    /// Frame loss probability, 0..1.
    pub loss: f64,
    /// FIFO size in bytes; `None` lets the emulator size it for the bandwidth-delay product.
    pub queue_bytes: Option<u64>,
}

impl LinkShape {
    /// True when only the kernel is needed (rate shaping with tbf, no delay, jitter or loss).
    #[must_use]
    pub fn kernel_only(&self) -> bool {
        self.delay.is_zero() && self.jitter.is_zero() && self.loss == 0.0
    }
}

/// A site: one switched LAN.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    /// Site name (unique).
    pub name: String,
    /// The link from each host (and the Proxy) of this site to the site's switch.
    pub access: LinkShape,
}

/// An emulated host.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// `hostN`.
    pub name: String,
    /// N, from 1.
    pub index: usize,
    /// Index into [`Scenario::sites`].
    pub site: usize,
    /// CPU quota in cores (e.g. 0.25 = a quarter of one core); `None` = unlimited.
    pub cpu: Option<f64>,
}

/// A guest (VM) on a host.
#[derive(Debug, Clone, Serialize)]
pub struct Guest {
    /// `vmN`.
    pub name: String,
    /// N, from 1.
    pub index: usize,
    /// Index into [`Scenario::hosts`].
    pub host: usize,
    /// The guest's MAC, fixed in every mode.
    pub mac: String,
    /// The guest's address on the user's LAN subnet, fixed in every mode.
    pub ip: Ipv4Addr,
    /// Memory size in bytes (what a migration has to move).
    pub memory_bytes: u64,
}

/// An emulated link between two sites' switches.
#[derive(Debug, Clone, Serialize)]
pub struct SiteLink {
    /// Index into [`Scenario::sites`].
    pub a: usize,
    /// Index into [`Scenario::sites`].
    pub b: usize,
    /// Shape of the link.
    pub shape: LinkShape,
}

/// Background traffic between two underlay nodes (hosts or `proxy`): constant-rate UDP.
#[derive(Debug, Clone, Serialize)]
pub struct CrossTraffic {
    /// Sending node.
    pub from: String,
    /// Receiving node.
    pub to: String,
    /// Rate in bit/s (scaled).
    pub rate_bps: u64,
    /// Start, from the end of `testbed up`.
    pub start: Duration,
}

/// A CPU hog on a host: busy loops, as many as the host's cores, from a given time.
#[derive(Debug, Clone, Serialize)]
pub struct CpuHog {
    /// Index into [`Scenario::hosts`].
    pub host: usize,
    /// Start, from the end of `testbed up`.
    pub start: Duration,
}

/// A validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Scenario name (the default run name).
    pub name: String,
    /// What it reproduces.
    pub description: String,
    /// The factor every rate of the file was multiplied by.
    pub rate_scale: f64,
    /// MTU of the underlay (the sites' switches and links).
    pub underlay_mtu: u32,
    /// The user's LAN subnet, on which every guest has its address.
    pub guest_subnet: (Ipv4Addr, u8),
    /// Whether IPv6 stays on.
    pub ipv6: bool,
    /// TCP congestion control of every node (default `cubic`, what a stock Debian host runs).
    pub tcp_congestion: String,
    /// Sites in file order.
    pub sites: Vec<Site>,
    /// Hosts, `hosts[i].index == i + 1`.
    pub hosts: Vec<Host>,
    /// The Proxy's site.
    pub proxy_site: usize,
    /// Guests, `guests[i].index == i + 1`.
    pub guests: Vec<Guest>,
    /// Links between sites; they form a tree over the sites.
    pub links: Vec<SiteLink>,
    /// Background traffic.
    pub cross_traffic: Vec<CrossTraffic>,
    /// CPU hogs.
    pub cpu_hogs: Vec<CpuHog>,
    /// The cores a guest needs (`[defaults] guest_cpu`): what VADAPT counts as a VM's compute
    /// demand against a host's quota. `None`: its host's quota shared by the guests the
    /// scenario starts there (so no host takes more guests than it starts with).
    pub guest_cpu: Option<f64>,
}

/// MAC of guest `index`: locally administered, unicast, stable across modes and runs.
#[must_use]
pub fn guest_mac(index: usize) -> String {
    format!(
        "02:56:4e:00:{:02x}:{:02x}",
        (index >> 8) & 0xff,
        index & 0xff
    )
}

/// MAC of the user's machine.
pub const USER_MAC: &str = "02:56:4e:ff:00:01";

// ---------------------------------------------------------------------------------------------
// The file format.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    rate_scale: Spanned<f64>,
    #[serde(default = "default_mtu")]
    underlay_mtu: Spanned<u32>,
    #[serde(default = "default_subnet")]
    guest_subnet: Spanned<String>,
    #[serde(default)]
    ipv6: bool,
    #[serde(default = "default_congestion")]
    tcp_congestion: Spanned<String>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    site: Vec<FileSite>,
    #[serde(default)]
    link: Vec<FileLink>,
    #[serde(default)]
    host: Vec<FileHost>,
    #[serde(default)]
    guest: Vec<FileGuest>,
    #[serde(default)]
    cross_traffic: Vec<FileCross>,
    #[serde(default)]
    cpu_hog: Vec<FileHog>,
}

fn default_mtu() -> Spanned<u32> {
    Spanned::new(0..0, 1500)
}

fn default_congestion() -> Spanned<String> {
    Spanned::new(0..0, "cubic".to_string())
}

fn default_subnet() -> Spanned<String> {
    Spanned::new(0..0, "10.10.0.0/24".into())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    host_cpu: Option<Spanned<f64>>,
    guest_memory: Option<Spanned<String>>,
    guest_cpu: Option<Spanned<f64>>,
}

/// Most hosts a scenario may have (each is several namespaces and processes on this machine;
/// the papers' largest setting has 28).
pub const MAX_HOSTS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSite {
    name: Spanned<String>,
    #[serde(default)]
    hosts: usize,
    #[serde(default)]
    proxy: bool,
    access: Option<FileShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    rate: Option<Spanned<String>>,
    delay: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    loss: Option<Spanned<f64>>,
    queue: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLink {
    between: Spanned<[Spanned<String>; 2]>,
    rate: Option<Spanned<String>>,
    delay: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    loss: Option<Spanned<f64>>,
    queue: Option<Spanned<String>>,
}

impl FileLink {
    fn shape(&self) -> FileShape {
        FileShape {
            rate: self.rate.clone(),
            delay: self.delay.clone(),
            jitter: self.jitter.clone(),
            loss: self.loss.clone(),
            queue: self.queue.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHost {
    name: Spanned<String>,
    cpu: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGuest {
    name: Spanned<String>,
    host: Spanned<String>,
    memory: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCross {
    from: Spanned<String>,
    to: Spanned<String>,
    rate: Spanned<String>,
    #[serde(default)]
    start: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHog {
    host: Spanned<String>,
    #[serde(default)]
    start: Option<Spanned<String>>,
}

/// Default guest memory when neither the guest nor `[defaults]` give one.
pub const DEFAULT_GUEST_MEMORY: u64 = 256 << 20;

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl fmt::Display) -> ScenarioError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        ScenarioError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.to_string(),
        }
    }

    fn parse<T>(
        &self,
        v: &Spanned<String>,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ScenarioError> {
        f(v.get_ref()).map_err(|m| self.err(v.span(), m))
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// I/O errors, and every syntactic or semantic problem, as a [`ScenarioError`] naming the
    /// file, line and column.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates scenario text; `file` is used in error messages only.
    ///
    /// # Errors
    /// Every syntactic or semantic problem, as a [`ScenarioError`].
    pub fn parse(file: &Path, text: &str) -> Result<Self, ScenarioError> {
        let cx = Ctx { file, text };
        let f: File = toml::from_str(text)
            .map_err(|e| cx.err(e.span().unwrap_or(0..0), e.message().trim()))?;
        resolve(&cx, f)
    }

    /// Index of a host by name.
    #[must_use]
    pub fn host_index(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    /// The bytes a migration of a guest with `memory_bytes` of memory copies: the memory
    /// scaled by `rate_scale` like every rate, so that the copy over the scaled links takes as
    /// long as the unscaled memory would over the unscaled ones.
    #[must_use]
    pub fn migrated_bytes(&self, memory_bytes: u64) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bytes = (memory_bytes as f64 * self.rate_scale).round() as u64;
        bytes
    }

    /// The address of the user's machine: the last usable address of the guest subnet.
    #[must_use]
    pub fn user_ip(&self) -> Ipv4Addr {
        let (net, len) = self.guest_subnet;
        let host_bits = 32 - u32::from(len);
        Ipv4Addr::from(u32::from(net) | ((1u32 << host_bits) - 2))
    }

    /// The path between two sites as a list of link indices (unique: the sites form a tree).
    #[must_use]
    pub fn site_path(&self, from: usize, to: usize) -> Vec<usize> {
        // Depth-first search over the tree of sites.
        fn walk(
            s: &Scenario,
            at: usize,
            to: usize,
            came: Option<usize>,
            path: &mut Vec<usize>,
        ) -> bool {
            if at == to {
                return true;
            }
            for (i, l) in s.links.iter().enumerate() {
                if Some(i) == came {
                    continue;
                }
                let next = if l.a == at {
                    l.b
                } else if l.b == at {
                    l.a
                } else {
                    continue;
                };
                path.push(i);
                if walk(s, next, to, Some(i), path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        let mut path = Vec::new();
        walk(self, from, to, None, &mut path);
        path
    }
}

fn resolve(cx: &Ctx, f: File) -> Result<Scenario, ScenarioError> {
    let name = f.name.get_ref().clone();
    if !valid_name(&name) {
        return Err(cx.err(
            f.name.span(),
            "name must be 1-24 characters of a-z, 0-9 and '-'",
        ));
    }
    let scale = *f.rate_scale.get_ref();
    if !(scale > 0.0 && scale <= 100.0) {
        return Err(cx.err(f.rate_scale.span(), "rate_scale must be in (0, 100]"));
    }
    let mtu = *f.underlay_mtu.get_ref();
    if !(1280..=9000).contains(&mtu) {
        return Err(cx.err(f.underlay_mtu.span(), "underlay_mtu must be in 1280..=9000"));
    }
    let tcp_congestion = f.tcp_congestion.get_ref().clone();
    if tcp_congestion.is_empty()
        || tcp_congestion.len() > 15
        || !tcp_congestion
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(cx.err(
            f.tcp_congestion.span(),
            "tcp_congestion must name a TCP congestion control algorithm, e.g. \"cubic\"",
        ));
    }
    let guest_subnet = cx.parse(&f.guest_subnet, parse_subnet)?;
    let default_cpu = match &f.defaults.host_cpu {
        Some(c) => Some(check_cpu(cx, c)?),
        None => None,
    };
    let guest_cpu = match &f.defaults.guest_cpu {
        Some(c) => Some(check_cpu(cx, c)?),
        None => None,
    };
    let default_memory = match &f.defaults.guest_memory {
        Some(m) => cx.parse(m, parse_bytes)?,
        None => DEFAULT_GUEST_MEMORY,
    };

    // Sites and hosts.
    if f.site.is_empty() {
        return Err(cx.err(0..0, "no [[site]]: a scenario needs at least one site"));
    }
    let mut sites = Vec::new();
    let mut hosts = Vec::new();
    let mut proxy_site = None;
    let mut seen = HashSet::new();
    for s in &f.site {
        let n = s.name.get_ref();
        if !valid_name(n) {
            return Err(cx.err(
                s.name.span(),
                "site name must be 1-24 characters of a-z, 0-9 and '-'",
            ));
        }
        if !seen.insert(n.clone()) {
            return Err(cx.err(s.name.span(), format!("duplicate site name `{n}`")));
        }
        let access = match &s.access {
            Some(a) => shape(cx, a, scale)?,
            None => LinkShape::default(),
        };
        let site = sites.len();
        if s.proxy {
            if proxy_site.is_some() {
                return Err(cx.err(
                    s.name.span(),
                    "a second site with `proxy = true`: there is one Proxy",
                ));
            }
            proxy_site = Some(site);
        }
        if hosts.len() + s.hosts > MAX_HOSTS {
            return Err(cx.err(
                s.name.span(),
                format!(
                    "{} hosts in all: the testbed runs every host as namespaces on this one \
                     machine, at most {MAX_HOSTS}",
                    hosts.len().saturating_add(s.hosts)
                ),
            ));
        }
        for _ in 0..s.hosts {
            let index = hosts.len() + 1;
            hosts.push(Host {
                name: format!("host{index}"),
                index,
                site,
                cpu: default_cpu,
            });
        }
        sites.push(Site {
            name: n.clone(),
            access,
        });
    }
    if hosts.is_empty() {
        return Err(cx.err(
            f.site[0].name.span(),
            "no hosts: give some site `hosts = N`",
        ));
    }
    let Some(proxy_site) = proxy_site else {
        return Err(cx.err(
            0..0,
            "no site has `proxy = true`: say where the Proxy and the user are",
        ));
    };
    let site_of = |s: &Spanned<String>| {
        sites
            .iter()
            .position(|x| &x.name == s.get_ref())
            .ok_or_else(|| cx.err(s.span(), format!("no site named `{}`", s.get_ref())))
    };
    let host_of = |hosts: &[Host], s: &Spanned<String>| {
        hosts
            .iter()
            .position(|h| &h.name == s.get_ref())
            .ok_or_else(|| {
                cx.err(
                    s.span(),
                    format!(
                        "no host named `{}` (hosts are host1..host{})",
                        s.get_ref(),
                        hosts.len()
                    ),
                )
            })
    };

    let mut overridden = HashSet::new();
    let mut host_cpu = BTreeMap::new();
    for h in &f.host {
        let i = host_of(&hosts, &h.name)?;
        if !overridden.insert(i) {
            return Err(cx.err(
                h.name.span(),
                format!("duplicate [[host]] entry for `{}`", h.name.get_ref()),
            ));
        }
        if let Some(c) = &h.cpu {
            host_cpu.insert(i, check_cpu(cx, c)?);
        }
    }
    for (i, c) in host_cpu {
        hosts[i].cpu = Some(c);
    }

    // Links: they must join existing sites into a tree (the underlay is one bridged LAN).
    let mut links = Vec::new();
    let mut component: Vec<usize> = (0..sites.len()).collect();
    fn root(c: &mut [usize], mut i: usize) -> usize {
        while c[i] != i {
            c[i] = c[c[i]];
            i = c[i];
        }
        i
    }
    for l in &f.link {
        let [a, b] = l.between.get_ref();
        let (ia, ib) = (site_of(a)?, site_of(b)?);
        if ia == ib {
            return Err(cx.err(l.between.span(), "a link must join two different sites"));
        }
        let (ra, rb) = (root(&mut component, ia), root(&mut component, ib));
        if ra == rb {
            return Err(cx.err(
                l.between.span(),
                format!("link {}-{} closes a loop: the sites' links must form a tree (one bridged underlay)", a.get_ref(), b.get_ref()),
            ));
        }
        component[ra] = rb;
        let shape = shape(cx, &l.shape(), scale)?;
        if l.rate.is_none() {
            return Err(cx.err(l.between.span(), "a link between sites needs a `rate`"));
        }
        links.push(SiteLink {
            a: ia,
            b: ib,
            shape,
        });
    }
    for s in 1..sites.len() {
        if root(&mut component, s) != root(&mut component, 0) {
            return Err(cx.err(
                f.site[s].name.span(),
                format!(
                    "site `{}` is not linked to site `{}`: add a [[link]]",
                    sites[s].name, sites[0].name
                ),
            ));
        }
    }

    // Guests: by default one per host, vmI on hostI.
    let (net, len) = guest_subnet;
    let capacity = (1usize << (32 - u32::from(len))) - 3; // network, user, broadcast
    let mut guests = Vec::new();
    if f.guest.is_empty() {
        for h in &hosts {
            guests.push((h.index - 1, default_memory));
        }
    } else {
        for (k, g) in f.guest.iter().enumerate() {
            let want = format!("vm{}", k + 1);
            if g.name.get_ref() != &want {
                return Err(cx.err(
                    g.name.span(),
                    format!("guests are named vm1..vmN in order: expected `{want}`"),
                ));
            }
            let memory = match &g.memory {
                Some(m) => cx.parse(m, parse_bytes)?,
                None => default_memory,
            };
            guests.push((host_of(&hosts, &g.host)?, memory));
        }
    }
    if guests.len() > capacity {
        return Err(cx.err(
            f.guest_subnet.span(),
            format!(
                "guest_subnet holds {capacity} guests, the scenario has {}",
                guests.len()
            ),
        ));
    }
    let guests = guests
        .into_iter()
        .enumerate()
        .map(|(k, (host, memory_bytes))| {
            let index = k + 1;
            let offset = u32::try_from(index).expect("bounded by the subnet size");
            Guest {
                name: format!("vm{index}"),
                index,
                host,
                mac: guest_mac(index),
                ip: Ipv4Addr::from(u32::from(net) + offset),
                memory_bytes,
            }
        })
        .collect();

    // Cross traffic runs between underlay nodes: hosts and the Proxy.
    let node_ok = |s: &Spanned<String>| -> Result<String, ScenarioError> {
        let n = s.get_ref();
        if n == "proxy" || hosts.iter().any(|h| &h.name == n) {
            Ok(n.clone())
        } else {
            Err(cx.err(
                s.span(),
                format!(
                    "no underlay node named `{n}` (hosts host1..host{}, proxy)",
                    hosts.len()
                ),
            ))
        }
    };
    let start_of = |s: &Option<Spanned<String>>| match s {
        Some(s) => cx.parse(s, parse_duration),
        None => Ok(Duration::ZERO),
    };
    let mut cross_traffic = Vec::new();
    for c in &f.cross_traffic {
        let (from, to) = (node_ok(&c.from)?, node_ok(&c.to)?);
        if from == to {
            return Err(cx.err(c.to.span(), "cross traffic needs two different nodes"));
        }
        let rate_bps = scaled(cx.parse(&c.rate, parse_rate)?, scale);
        if rate_bps == 0 {
            return Err(cx.err(c.rate.span(), "cross traffic rate must be positive"));
        }
        cross_traffic.push(CrossTraffic {
            from,
            to,
            rate_bps,
            start: start_of(&c.start)?,
        });
    }
    let mut cpu_hogs = Vec::new();
    for h in &f.cpu_hog {
        cpu_hogs.push(CpuHog {
            host: host_of(&hosts, &h.host)?,
            start: start_of(&h.start)?,
        });
    }

    Ok(Scenario {
        name,
        description: f.description,
        rate_scale: scale,
        underlay_mtu: mtu,
        guest_subnet,
        ipv6: f.ipv6,
        tcp_congestion,
        sites,
        hosts,
        proxy_site,
        guests,
        links,
        cross_traffic,
        cpu_hogs,
        guest_cpu,
    })
}

fn valid_name(s: &str) -> bool {
    (1..=24).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

fn check_cpu(cx: &Ctx, c: &Spanned<f64>) -> Result<f64, ScenarioError> {
    let v = *c.get_ref();
    if v > 0.0 && v <= 64.0 {
        Ok(v)
    } else {
        Err(cx.err(c.span(), "cpu is a quota in cores and must be in (0, 64]"))
    }
}

fn scaled(rate: u64, scale: f64) -> u64 {
    // Rates are at most a few Gbit/s, far inside f64's exact integer range.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let r = (rate as f64 * scale).round() as u64;
    r
}

fn shape(cx: &Ctx, s: &FileShape, scale: f64) -> Result<LinkShape, ScenarioError> {
    let dur = |v: &Option<Spanned<String>>| match v {
        Some(v) => cx.parse(v, parse_duration),
        None => Ok(Duration::ZERO),
    };
    let rate_bps = match &s.rate {
        Some(r) => {
            let r0 = cx.parse(r, parse_rate)?;
            let r1 = scaled(r0, scale);
            if r1 < 64_000 {
                return Err(cx.err(
                    r.span(),
                    format!("rate {} scaled by {scale} is below 64 kbit/s", r.get_ref()),
                ));
            }
            r1
        }
        None => 0,
    };
    let loss = match &s.loss {
        Some(l) if !(0.0..1.0).contains(l.get_ref()) => {
            return Err(cx.err(l.span(), "loss is a probability in [0, 1)"));
        }
        Some(l) => *l.get_ref(),
        None => 0.0,
    };
    let delay = dur(&s.delay)?;
    let jitter = dur(&s.jitter)?;
    if jitter > delay {
        if let Some(j) = &s.jitter {
            return Err(cx.err(j.span(), "jitter must not exceed the delay"));
        }
    }
    let queue_bytes = match &s.queue {
        Some(q) => {
            let b = cx.parse(q, parse_bytes)?;
            if b < 2000 {
                return Err(cx.err(
                    q.span(),
                    "queue must hold at least one full frame (2000 bytes)",
                ));
            }
            Some(b)
        }
        None => None,
    };
    Ok(LinkShape {
        rate_bps,
        delay,
        jitter,
        loss,
        queue_bytes,
    })
}

/// Splits `"12.5ms"` into (12.5, "ms").
fn number_unit(s: &str) -> Result<(f64, String), String> {
    let s = s.trim();
    let cut = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(cut);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` does not start with a number"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}`: must be a non-negative number"));
    }
    Ok((n, unit.trim().to_ascii_lowercase()))
}

fn to_u64(x: f64) -> Result<u64, String> {
    if (0.0..1.8e19).contains(&x) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(x.round() as u64)
    } else {
        Err("value out of range".into())
    }
}

/// Parses a rate: `100mbit`, `1.5Mbit/s`, `800kbit`, `1gbit`, `64000bit` (decimal units, bits).
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let (n, unit) = number_unit(s)?;
    let mult = match unit.trim_end_matches("/s").trim_end_matches("ps") {
        "bit" | "b" => 1.0,
        "kbit" | "k" | "kb" => 1e3,
        "mbit" | "m" | "mb" => 1e6,
        "gbit" | "g" | "gb" => 1e9,
        _ => {
            return Err(format!(
                "`{s}`: unknown rate unit `{unit}` (use bit, kbit, mbit or gbit)"
            ))
        }
    };
    to_u64(n * mult)
}

/// Parses a duration: `30ms`, `0.5ms`, `100us`, `2s`.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = number_unit(s)?;
    let ns = match unit.as_str() {
        "ns" => n,
        "us" | "µs" => n * 1e3,
        "ms" => n * 1e6,
        "s" => n * 1e9,
        "" => return Err(format!("`{s}`: a duration needs a unit (ns, us, ms, s)")),
        _ => {
            return Err(format!(
                "`{s}`: unknown duration unit `{unit}` (use ns, us, ms or s)"
            ))
        }
    };
    if ns > 3.6e12 {
        return Err(format!("`{s}`: longer than an hour"));
    }
    Ok(Duration::from_nanos(to_u64(ns)?))
}

/// Parses a size in bytes: `64KiB`, `1GiB`, `1500`, `10kB`.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let (n, unit) = number_unit(s)?;
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown size unit `{unit}` (use B, KiB, MiB, GiB, kB, MB, GB)"
            ))
        }
    };
    to_u64(n * mult)
}

fn parse_subnet(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected ADDRESS/PREFIX, e.g. 10.10.0.0/24"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("`{len}` is not a prefix length"))?;
    if !(8..=29).contains(&len) {
        return Err("prefix length must be in 8..=29".into());
    }
    let mask = u32::MAX << (32 - u32::from(len));
    if u32::from(ip) & !mask != 0 {
        return Err(format!("`{s}` has host bits set"));
    }
    Ok((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
rate_scale = 0.5
[defaults]
host_cpu = 0.25
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
jitter = "1ms"
[[host]]
name = "host3"
cpu = 1.0
"#;

    fn parse(t: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("s.toml"), t)
    }

    #[test]
    fn good_file_resolves_names_addresses_and_scaled_rates() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.hosts.len(), 3);
        assert_eq!(s.hosts[2].site, 1);
        assert_eq!(s.hosts[0].cpu, Some(0.25));
        assert_eq!(s.hosts[2].cpu, Some(1.0));
        assert_eq!(s.guests.len(), 3);
        assert_eq!(s.guests[1].name, "vm2");
        assert_eq!(s.guests[1].host, 1);
        assert_eq!(s.guests[1].ip, Ipv4Addr::new(10, 10, 0, 2));
        assert_eq!(s.guests[1].mac, "02:56:4e:00:00:02");
        assert_eq!(s.user_ip(), Ipv4Addr::new(10, 10, 0, 254));
        assert_eq!(s.sites[0].access.rate_bps, 50_000_000);
        assert_eq!(s.links[0].shape.rate_bps, 5_000_000);
        assert_eq!(s.links[0].shape.delay, Duration::from_millis(5));
        assert_eq!(s.proxy_site, 1);
        assert_eq!(s.site_path(0, 1), vec![0]);
        assert_eq!(s.tcp_congestion, "cubic");
    }

    #[test]
    fn tcp_congestion_is_checked() {
        let with = |v: &str| {
            GOOD.replacen(
                "rate_scale",
                &format!("tcp_congestion = {v}\nrate_scale"),
                1,
            )
        };
        assert_eq!(parse(&with("\"reno\"")).unwrap().tcp_congestion, "reno");
        let e = error_of(&with("\"cubic; rm\""));
        assert!(e.contains("tcp_congestion must name"), "{e}");
        assert!(e.starts_with("s.toml:"), "{e}");
    }

    fn error_of(t: &str) -> String {
        parse(t).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = error_of(&GOOD.replace("hosts = 1\n", "hosts = 1\ncolour = 3\n"));
        assert!(e.starts_with("s.toml:13:1:"), "{e}");
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_rate_is_located() {
        let e = error_of(&GOOD.replace("\"10mbit\"", "\"10 parsecs\""));
        assert!(e.starts_with("s.toml:16:8:"), "{e}");
        assert!(e.contains("unknown rate unit"), "{e}");
    }

    #[test]
    fn missing_host_is_located() {
        let e = error_of(&GOOD.replace("name = \"host3\"", "name = \"host9\""));
        assert!(e.starts_with("s.toml:20:8:"), "{e}");
        assert!(e.contains("no host named `host9`"), "{e}");
    }

    #[test]
    fn duplicate_site_is_rejected() {
        let e = error_of(&GOOD.replace("name = \"b\"", "name = \"a\""));
        assert!(e.contains("duplicate site name `a`"), "{e}");
        assert!(e.starts_with("s.toml:11:8:"), "{e}");
    }

    #[test]
    fn duplicate_host_entry_is_rejected() {
        let e = error_of(&format!("{GOOD}[[host]]\nname = \"host3\"\n"));
        assert!(e.contains("duplicate [[host]]"), "{e}");
    }

    #[test]
    fn loops_and_islands_are_rejected() {
        let e = error_of(&format!(
            "{GOOD}[[link]]\nbetween = [\"b\", \"a\"]\nrate = \"1mbit\"\n"
        ));
        assert!(e.contains("closes a loop"), "{e}");
        let e = error_of(&GOOD.replace("between = [\"a\", \"b\"]", "between = [\"a\", \"a\"]"));
        assert!(e.contains("two different sites"), "{e}");
        let e = error_of(&format!("{GOOD}[[site]]\nname = \"c\"\nhosts = 1\n"));
        assert!(e.contains("site `c` is not linked"), "{e}");
    }

    #[test]
    fn other_bad_values() {
        assert!(
            error_of(&GOOD.replace("rate_scale = 0.5", "rate_scale = 0")).contains("rate_scale")
        );
        assert!(error_of(&GOOD.replace("jitter = \"1ms\"", "jitter = \"9ms\"")).contains("jitter"));
        assert!(error_of(&GOOD.replace("proxy = true\n", "")).contains("proxy = true"));
        assert!(
            error_of(&GOOD.replace("delay = \"5ms\"", "delay = \"5\"")).contains("needs a unit")
        );
        assert!(error_of(&GOOD.replace("cpu = 1.0", "cpu = -1.0")).contains("cpu"));
        assert!(error_of("name = \"t\"\nrate_scale = 1\n").contains("no [[site]]"));
        let e = error_of("name = \"t\"\nrate_scale = \n");
        assert!(e.starts_with("s.toml:2:"), "{e}");
    }

    #[test]
    fn units() {
        assert_eq!(parse_rate("100mbit").unwrap(), 100_000_000);
        assert_eq!(parse_rate("1.5Mbit/s").unwrap(), 1_500_000);
        assert_eq!(parse_duration("0.1ms").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_bytes("64KiB").unwrap(), 65536);
        assert!(parse_rate("fast").is_err());
        assert!(parse_bytes("-1").is_err());
    }

    #[test]
    fn absurd_host_counts_are_refused_before_anything_is_allocated() {
        let e = error_of("name=\"t\"\nrate_scale=1\n[[site]]\nname=\"a\"\nhosts=100000000000\n");
        assert!(e.contains("at most 1000"), "{e}");
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every scenario shipped in `experiments/scenarios/` is valid, with the papers' host counts
    /// (and `dataplane` and `wren`, the two hosts of `bench dataplane` and `bench wren`).
    #[test]
    fn shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen.push((s.name.clone(), s.hosts.len(), s.guests.len()));
            }
        }
        seen.sort();
        let expect = [
            ("cluster-28", 28, 28),
            ("dataplane", 2, 2),
            ("man", 8, 8),
            ("single-cluster", 8, 8),
            ("two-clusters", 8, 8),
            ("vttif", 8, 16),
            ("wan", 8, 8),
            ("wren", 2, 2),
        ];
        assert_eq!(seen.len(), expect.len(), "{seen:?}");
        for ((name, hosts, guests), want) in seen.iter().zip(expect) {
            assert_eq!((name.as_str(), *hosts, *guests), want);
        }
    }
}

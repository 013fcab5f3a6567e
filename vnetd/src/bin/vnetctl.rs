//! `vnetctl`: the control tool of the VNET overlay. Offline subcommands work on
//! topology-language files (check, print, diff, route, star; logic in [`vnetd::cli`]); online
//! ones talk to running daemons through their control API (show, apply, wait-up, stats and
//! one subcommand per primitive; logic in [`vnetd::online`]). This file parses, prints and
//! exits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vnetd::cli::{self, Daemon};
use vnetd::control::{self, PortKind, PortSpec, Request, Response};
use vnetd::lang::{Action, Guest, Item};
use vnetd::model::{DstMatch, Link, LinkKind, Mac, Name, Rule, SrcMatch, Target, Topology};
use vnetd::online::{self, Hosts, Session};

/// Control tool of the vnetd layer-2 overlay.
///
/// Offline subcommands (check, print, diff, route, star) work on topology-language files.
/// The others talk to running daemons, named by machine name: addresses come from the hosts
/// file (/etc/hosts format) or the system resolver, the port from the topology file's HOST
/// lines or NAME:PORT (default 5400); every call is authenticated with the overlay's key.
#[derive(Debug, Parser)]
#[command(name = "vnetctl", version)]
struct Cli {
    /// The overlay's key file (64 hexadecimal digits), for online subcommands.
    #[arg(long, global = true, env = "VNET_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Daemon addresses, in /etc/hosts format ("10.200.0.1 host1").
    #[arg(long = "hosts", global = true, env = "VNET_HOSTS", value_name = "FILE")]
    hosts_file: Option<PathBuf>,
    /// Seconds to wait for a daemon to answer.
    #[arg(long, global = true, default_value_t = 5.0)]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and check a topology file, then check it as a whole overlay.
    ///
    /// Syntax and semantic errors are printed as FILE:LINE:COL: message. Then every frame
    /// between every pair of guests is followed, with every link up and with each fast path
    /// down in turn, and every broadcast; loops, dead ends, misdeliveries and broadcast
    /// problems are printed one a line. Exits 1 on any error or problem, 0 with a one-line
    /// summary otherwise.
    Check {
        /// The topology-language file.
        file: PathBuf,
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME", default_value = "proxy")]
        proxy: Name,
    },
    /// Print a topology file in canonical form.
    Print {
        /// The topology-language file.
        file: PathBuf,
    },
    /// Print the primitives that turn CURRENT into DESIRED, as a program of the language.
    ///
    /// Daemons to start, stop or restart come first, as comments. Applied to CURRENT, the
    /// program gives DESIRED. Exits 0 whether or not the two differ; when they do not, prints
    /// a single comment line.
    Diff {
        /// The topology as it is.
        current: PathBuf,
        /// The topology as it should be.
        desired: PathBuf,
    },
    /// Print the hops a unicast frame from SRC-MAC to DST-MAC takes.
    ///
    /// The output reads e.g. `host1 --udp--> proxy --udp--> host2 -> port vm2`.
    Route {
        /// The topology-language file.
        file: PathBuf,
        /// The sender's MAC, e.g. 02:56:4e:00:00:01.
        #[arg(value_name = "SRC-MAC")]
        src: Mac,
        /// The receiver's MAC.
        #[arg(value_name = "DST-MAC")]
        dst: Mac,
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME", default_value = "proxy")]
        proxy: Name,
        /// A link to consider down, as its two machines joined by `-` (e.g. host1-host2);
        /// may be given several times.
        #[arg(long, value_name = "A-B")]
        down: Vec<String>,
        /// Follow the frame through the live overlay instead: the links and rules the
        /// daemons of FILE's HOST lines hold, with the links that are not up considered down.
        #[arg(long)]
        live: bool,
    },
    /// Generate the star configuration (every host linked to the Proxy) in the language.
    Star {
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME")]
        proxy: Name,
        /// A host machine; give it once per host.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<Name>,
        /// A guest: its machine, its port there and its MAC; give it once per guest.
        #[arg(long = "guest", value_name = "HOST:PORT:MAC", value_parser = parse_guest)]
        guests: Vec<Guest>,
        /// The Proxy's port to the user's LAN (where frames for no guest go).
        #[arg(long, value_name = "NAME", default_value = "lan0")]
        lan_port: Name,
        /// The user every daemon runs as.
        #[arg(long, default_value = "root")]
        user: String,
        /// The control API port of every daemon.
        #[arg(long, default_value_t = 5400, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// Every daemon's interface to the underlay.
        #[arg(long, value_name = "NAME", default_value = "eth0")]
        interface: Name,
    },
    /// Print FILE plus a fast path between every two hosts and, at each host, the rules that
    /// send other hosts' guests over them: no unicast frame between guests crosses the Proxy
    /// (where each guest lives is read from the Proxy's rules, as the star has them).
    Mesh {
        /// The topology file, e.g. the star.
        file: PathBuf,
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME", default_value = "proxy")]
        proxy: Name,
        /// The fast paths' transport.
        #[arg(long, value_enum, default_value = "udp")]
        kind: KindArg,
    },
    /// Print the live overlay in the language: the links both ends hold and every rule, with
    /// each link's state and any half link as comments.
    ///
    /// The daemons asked are FILE's HOST lines, or without FILE every name of the hosts file.
    Show {
        /// A topology file whose HOST lines name the daemons.
        file: Option<PathBuf>,
    },
    /// Bring the live overlay to FILE's topology with the fewest primitives, in an order that
    /// never cuts a guest off. Refuses (changing nothing) a configuration that would loop,
    /// misdeliver or duplicate a frame. Idempotent: a second run has nothing to do.
    Apply {
        /// The desired topology.
        file: PathBuf,
        /// The machine that is the Proxy.
        #[arg(long, value_name = "NAME", default_value = "proxy")]
        proxy: Name,
        /// Print only the summary, not each primitive.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Wait until every link of FILE is up at both ends.
    WaitUp {
        /// The topology file.
        file: PathBuf,
        /// Give up after this many seconds (exit 1).
        #[arg(long = "for", value_name = "SECONDS", default_value_t = 10.0)]
        wait: f64,
    },
    /// Add an overlay link between two daemons (configured at both ends).
    AddLink {
        /// One end, NAME[:PORT].
        a: String,
        /// The other end.
        b: String,
        /// The transport.
        #[arg(long, value_enum, default_value = "udp")]
        kind: KindArg,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// Delete the overlay link between two daemons (at both ends).
    DeleteLink {
        /// One end, NAME[:PORT].
        a: String,
        /// The other end.
        b: String,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// Add a rule to a daemon's forwarding table (or replace the target of the rule with the
    /// same match).
    AddRule {
        /// The daemon, NAME[:PORT].
        daemon: String,
        /// Source match: `any`, a MAC, or `not MAC`.
        #[arg(long, value_parser = parse_src, allow_hyphen_values = true)]
        src: SrcMatch,
        /// Destination match: `any`, `none` (the default rule), a MAC, or `not MAC`.
        #[arg(long, value_parser = parse_dst, allow_hyphen_values = true)]
        dst: DstMatch,
        /// Send matching frames over the link to this peer...
        #[arg(
            long,
            value_name = "PEER",
            conflicts_with = "port",
            required_unless_present = "port"
        )]
        link: Option<Name>,
        /// ... or out of this local port.
        #[arg(long, value_name = "PORT")]
        port: Option<Name>,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// Delete the rule with this match from a daemon's table.
    DeleteRule {
        /// The daemon, NAME[:PORT].
        daemon: String,
        /// Source match: `any`, a MAC, or `not MAC`.
        #[arg(long, value_parser = parse_src)]
        src: SrcMatch,
        /// Destination match: `any`, `none`, a MAC, or `not MAC`.
        #[arg(long, value_parser = parse_dst)]
        dst: DstMatch,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// List a daemon's ports (its network interfaces toward guests).
    ListInterfaces {
        /// The daemon, NAME[:PORT].
        daemon: String,
    },
    /// List a daemon's links, with their state and round-trip time.
    ListLinks {
        /// The daemon, NAME[:PORT].
        daemon: String,
    },
    /// List a daemon's forwarding rules.
    ListRules {
        /// The daemon, NAME[:PORT].
        daemon: String,
    },
    /// Set the upper bound on configuration time (read by VTTIF).
    SetConfigBound {
        /// The daemon, NAME[:PORT].
        daemon: String,
        /// The bound, in milliseconds.
        millis: u64,
    },
    /// Attach a port: a TAP device the daemon creates (persistent, so it outlives daemon
    /// restarts), an existing interface through libpcap, or a unix datagram socket.
    #[command(group(clap::ArgGroup::new("device").required(true).args(["tap", "pcap", "unix"])))]
    AttachPort {
        /// The daemon, NAME[:PORT].
        daemon: String,
        /// The port's name (INTERFACE rules use it).
        port: Name,
        /// A TAP device of this name, created by the daemon.
        #[arg(long, value_name = "IFNAME")]
        tap: Option<String>,
        /// An existing interface, captured and injected into with libpcap (promiscuous).
        #[arg(long, value_name = "IFNAME")]
        pcap: Option<String>,
        /// A unix datagram socket the daemon binds at this path, one frame per datagram.
        #[arg(long, value_name = "PATH")]
        unix: Option<PathBuf>,
        /// With --unix: the guest's socket (else the first sender's).
        #[arg(long, value_name = "PATH", requires = "unix")]
        unix_peer: Option<PathBuf>,
        /// The network namespace of the TAP or pcap interface, e.g. /run/netns/guest1.
        #[arg(long, value_name = "PATH", conflicts_with = "unix")]
        netns: Option<PathBuf>,
        /// The guest's MAC (source guard: frames from other sources are dropped); repeat
        /// for a guest with several.
        #[arg(long = "mac", value_name = "MAC")]
        macs: Vec<Mac>,
        /// A LAN port (the Proxy's, toward the user's network): many machines, no guard.
        #[arg(long)]
        lan: bool,
    },
    /// Detach and remove a port.
    DetachPort {
        /// The daemon, NAME[:PORT].
        daemon: String,
        /// The port.
        port: Name,
    },
    /// A daemon's counters: ports, links, rules, relayed frames, drops by reason.
    Stats {
        /// The daemon, NAME[:PORT].
        daemon: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A daemon's identity: name, role, session, uptime.
    Info {
        /// The daemon, NAME[:PORT].
        daemon: String,
    },
    /// Record a port's frames, both directions, into a new pcap file for a while: the first
    /// 128 bytes of each (headers, never a payload) and its length, where the daemon counts
    /// them — the traces `vttif replay` tunes VTTIF with. The file is written by the daemon,
    /// on its machine (a relative path is taken from here, for daemons on this machine).
    Record {
        /// The daemon, NAME[:PORT].
        daemon: String,
        /// The port.
        port: Name,
        /// The file to create (an existing one is not overwritten).
        #[arg(long, required_unless_present = "stop")]
        out: Option<PathBuf>,
        /// How long to record.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// End the port's recording now instead.
        #[arg(long, conflicts_with = "out")]
        stop: bool,
    },
    /// The application's topology and traffic matrix as VTTIF infers them at the Proxy:
    /// edges with their intensities, the shapes they fit, changes, the matrix in bytes/s.
    AppTopology {
        /// The Proxy, NAME[:PORT].
        #[arg(default_value = "proxy")]
        daemon: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print the report, then again at every change of topology, until interrupted (the
        /// change stream). With --format json, one JSON object per line.
        #[arg(long)]
        watch: bool,
    },
}

/// How `app-topology` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// Graphviz.
    Dot,
    /// The whole report.
    Json,
}

/// How a primitive is checked against the whole overlay before it is sent.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Check first, against the live overlay of FILE's daemons (its HOST lines), that the
    /// primitive makes no frame loop, go astray or arrive twice; refuse it, changing nothing,
    /// if it would.
    #[arg(long, value_name = "FILE")]
    against: Option<PathBuf>,
    /// With --against: the machine that is the Proxy.
    #[arg(long, value_name = "NAME", default_value = "proxy")]
    proxy: Name,
}

impl CheckArgs {
    /// Refuses `action` if the check is asked for and fails.
    fn check(&self, session: &mut Session, action: &Action) -> anyhow::Result<()> {
        if let Some(file) = &self.against {
            online::check_primitive(session, &load(file)?, &self.proxy, action)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KindArg {
    Udp,
    Tcp,
}

impl From<KindArg> for LinkKind {
    fn from(kind: KindArg) -> LinkKind {
        match kind {
            KindArg::Udp => LinkKind::Udp,
            KindArg::Tcp => LinkKind::Tcp,
        }
    }
}

fn parse_src(given: &str) -> Result<SrcMatch, String> {
    let given = given.trim();
    if given.eq_ignore_ascii_case("any") {
        return Ok(SrcMatch::Any);
    }
    match not_mac(given)? {
        Some(mac) => Ok(SrcMatch::Not(mac)),
        None => Ok(SrcMatch::Is(given.parse().map_err(|e| format!("{e}"))?)),
    }
}

fn parse_dst(given: &str) -> Result<DstMatch, String> {
    let given = given.trim();
    if given.eq_ignore_ascii_case("any") {
        return Ok(DstMatch::Any);
    }
    if given.eq_ignore_ascii_case("none") {
        return Ok(DstMatch::None);
    }
    match not_mac(given)? {
        Some(mac) => Ok(DstMatch::Not(mac)),
        None => Ok(DstMatch::Is(given.parse().map_err(|e| format!("{e}"))?)),
    }
}

/// `not MAC` (or `not:MAC`) gives the MAC; anything else `None`.
fn not_mac(given: &str) -> Result<Option<Mac>, String> {
    let lower = given.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("not") else {
        return Ok(None);
    };
    let rest = rest.trim_start_matches([' ', ':']);
    rest.parse().map(Some).map_err(|e| format!("{e}"))
}

fn parse_guest(given: &str) -> Result<Guest, cli::BadGuest> {
    cli::parse_guest(given)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn load(path: &Path) -> anyhow::Result<Topology> {
    let text = read(path)?;
    Ok(cli::load(&path.display().to_string(), &text)?)
}

/// A session with the daemons, from the global options.
fn session(cli: &Cli) -> anyhow::Result<Session> {
    let Some(key_file) = &cli.key_file else {
        anyhow::bail!("this subcommand talks to daemons: give the overlay's key with --key-file FILE or VNET_KEY_FILE");
    };
    let key = control::read_key_file(key_file).map_err(anyhow::Error::msg)?;
    let hosts = match &cli.hosts_file {
        Some(path) => Hosts::load(path)?,
        None => Hosts::default(),
    };
    let timeout = std::time::Duration::try_from_secs_f64(cli.timeout)
        .map_err(|_| anyhow::anyhow!("--timeout {}: not a number of seconds", cli.timeout))?;
    Ok(Session::new(key, hosts, timeout))
}

fn daemon(given: &str) -> anyhow::Result<(Name, u16)> {
    online::parse_daemon(given).map_err(|e| anyhow::anyhow!("daemon `{given}`: {e}"))
}

/// Sends one request and prints what the daemon says.
fn primitive(session: &mut Session, given: &str, request: &Request) -> anyhow::Result<ExitCode> {
    let (name, port) = daemon(given)?;
    let response = session.call(&name, port, request)?;
    print_response(&name, &response);
    Ok(ExitCode::SUCCESS)
}

fn print_response(name: &Name, response: &Response) {
    match response {
        Response::Ok { message: Some(m) } => println!("{name}: ok: {m}"),
        Response::Ok { message: None } => println!("{name}: ok"),
        Response::Error { message } => println!("{name}: error: {message}"),
        Response::Info(info) => {
            println!(
                "{} ({}{}), session {}, listening on {}, up {:.1} s{}",
                info.name,
                info.role,
                info.proxy
                    .as_ref()
                    .map_or(String::new(), |p| format!(", Proxy {p}")),
                info.session,
                info.listen,
                info.uptime_s,
                info.config_bound_ms
                    .map_or(String::new(), |ms| format!(", configuration bound {ms} ms"))
            );
        }
        Response::Interfaces { ports } => {
            for p in ports {
                let macs: Vec<String> = p.spec.macs.iter().map(ToString::to_string).collect();
                println!(
                    "{:<10} {:<40} {:<20} {}",
                    p.spec.name.as_str(),
                    p.spec.kind.to_string(),
                    if p.spec.lan {
                        "lan".to_string()
                    } else {
                        macs.join(",")
                    },
                    if p.attached {
                        "attached".to_string()
                    } else {
                        format!("NOT attached: {}", p.error.clone().unwrap_or_default())
                    }
                );
            }
        }
        Response::Links { links } => {
            for l in links {
                println!(
                    "{:<10} {:<4} {:<11} rtt {:<9} remote {}",
                    l.peer.as_str(),
                    format!("{:?}", l.kind).to_lowercase(),
                    l.state,
                    l.rtt_s
                        .map_or("-".to_string(), |r| format!("{:.3}ms", r * 1000.0)),
                    l.remote.map_or("-".to_string(), |a| a.to_string())
                );
            }
        }
        Response::Rules { rules } => {
            let topology = one_table(name, rules);
            for line in vnetd::lang::print(&topology).lines() {
                if line.trim_start().starts_with("FORWARD") {
                    println!("{}", line.trim());
                }
            }
        }
        Response::Stats(stats) => print!("{}", online::stats_text(stats)),
        Response::AppTopology(report) => print!("{}", report.text()),
    }
}

/// A topology holding only `name`'s rules, so the language's printer writes them.
fn one_table(name: &Name, rules: &[Rule]) -> Topology {
    let mut topology = Topology::default();
    let table = topology.rules.entry(name.clone()).or_default();
    for rule in rules {
        table.insert((rule.src, rule.dst), rule.target.clone());
    }
    topology
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Mesh { file, proxy, kind } => {
            print!("{}", cli::mesh(&load(file)?, proxy, (*kind).into())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { file } => {
            let mut session = session(&cli)?;
            let declared = match file {
                Some(file) => load(file)?,
                None => online::declared_from_hosts(session.hosts()),
            };
            if declared.hosts.is_empty() {
                anyhow::bail!("no daemons to ask: give a topology FILE or a --hosts file");
            }
            let live = online::live(&mut session, &declared)?;
            print!("{}", online::show_text(&live));
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply { file, proxy, quiet } => {
            let desired = load(file)?;
            let mut session = session(&cli)?;
            let report = online::apply(&mut session, &desired, proxy, |action| {
                if !quiet {
                    println!("{action}");
                }
            })?;
            if report.actions.is_empty() {
                println!(
                    "{}: nothing to do: the overlay is as the file says",
                    file.display()
                );
            } else {
                println!(
                    "{}: applied {} primitive{} ({} control calls) in {:.1} ms",
                    file.display(),
                    report.actions.len(),
                    if report.actions.len() == 1 { "" } else { "s" },
                    report.calls,
                    report.elapsed.as_secs_f64() * 1000.0
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::WaitUp { file, wait } => {
            let topology = load(file)?;
            let mut session = session(&cli)?;
            let wait = std::time::Duration::try_from_secs_f64(*wait)
                .map_err(|_| anyhow::anyhow!("--for {wait}: not a number of seconds"))?;
            let took = online::wait_up(&mut session, &topology, wait)?;
            println!(
                "{}: all {} links up after {:.0} ms",
                file.display(),
                topology.links.len(),
                took.as_secs_f64() * 1000.0
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::AddLink { a, b, kind, check } => {
            let mut session = session(&cli)?;
            let (a, b) = (daemon(a)?, daemon(b)?);
            let link = Link::new(a.0.clone(), b.0.clone(), (*kind).into())
                .ok_or_else(|| anyhow::anyhow!("a link joins two different daemons"))?;
            check.check(&mut session, &Action::Add(Item::Link(link)))?;
            for message in online::add_link(&mut session, (&a.0, a.1), (&b.0, b.1), (*kind).into())?
            {
                println!("{message}");
            }
            println!("link {}-{} added at both ends", a.0, b.0);
            Ok(ExitCode::SUCCESS)
        }
        Command::DeleteLink { a, b, check } => {
            let mut session = session(&cli)?;
            let (a, b) = (daemon(a)?, daemon(b)?);
            if let Some(file) = &check.against {
                // The kind does not matter to the check: the link is found by its two ends.
                let live = online::live(&mut session, &load(file)?)?;
                if let Some(link) = live
                    .topology
                    .links
                    .iter()
                    .find(|l| (l.a == a.0 && l.b == b.0) || (l.a == b.0 && l.b == a.0))
                {
                    check.check(&mut session, &Action::Delete(Item::Link(link.clone())))?;
                }
            }
            for ((me, port), (peer, _)) in [(&a, &b), (&b, &a)] {
                let response =
                    session.call(me, *port, &Request::DeleteLink { peer: peer.clone() })?;
                print_response(me, &response);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::AddRule {
            daemon: given,
            src,
            dst,
            link,
            port,
            check,
        } => {
            let target = match (link, port) {
                (Some(peer), _) => Target::Link(peer.clone()),
                (None, Some(port)) => Target::Port(port.clone()),
                (None, None) => anyhow::bail!("give --link PEER or --port PORT"),
            };
            let rule = Rule {
                src: *src,
                dst: *dst,
                target,
            };
            let mut session = session(&cli)?;
            let machine = daemon(given)?.0;
            let action = Action::Add(Item::Rule {
                machine,
                rule: rule.clone(),
            });
            check.check(&mut session, &action)?;
            primitive(&mut session, given, &Request::AddRule { rule })
        }
        Command::DeleteRule {
            daemon: given,
            src,
            dst,
            check,
        } => {
            let mut session = session(&cli)?;
            let machine = daemon(given)?.0;
            if check.against.is_some() {
                // The rule as the daemon holds it (the check needs its target).
                let rules = match session.call(&machine, daemon(given)?.1, &Request::ListRules)? {
                    Response::Rules { rules } => rules,
                    other => anyhow::bail!("{machine}: unexpected answer {other:?}"),
                };
                if let Some(rule) = rules.into_iter().find(|r| r.src == *src && r.dst == *dst) {
                    check.check(&mut session, &Action::Delete(Item::Rule { machine, rule }))?;
                }
            }
            primitive(
                &mut session,
                given,
                &Request::DeleteRule {
                    src: *src,
                    dst: *dst,
                },
            )
        }
        Command::ListInterfaces { daemon } => {
            primitive(&mut session(&cli)?, daemon, &Request::ListInterfaces)
        }
        Command::ListLinks { daemon } => {
            primitive(&mut session(&cli)?, daemon, &Request::ListLinks)
        }
        Command::ListRules { daemon } => {
            primitive(&mut session(&cli)?, daemon, &Request::ListRules)
        }
        Command::SetConfigBound { daemon, millis } => primitive(
            &mut session(&cli)?,
            daemon,
            &Request::SetConfigBound { millis: *millis },
        ),
        Command::AttachPort {
            daemon,
            port,
            tap,
            pcap,
            unix,
            unix_peer,
            netns,
            macs,
            lan,
        } => {
            let kind = match (tap, pcap, unix) {
                (Some(ifname), _, _) => PortKind::Tap {
                    ifname: ifname.clone(),
                    netns: netns.clone(),
                },
                (None, Some(device), _) => PortKind::Pcap {
                    device: device.clone(),
                    netns: netns.clone(),
                },
                (None, None, Some(path)) => PortKind::Unix {
                    path: path.clone(),
                    peer: unix_peer.clone(),
                },
                (None, None, None) => anyhow::bail!("give --tap, --pcap or --unix"),
            };
            let spec = PortSpec {
                name: port.clone(),
                kind,
                macs: macs.clone(),
                lan: *lan,
            };
            primitive(
                &mut session(&cli)?,
                daemon,
                &Request::AttachPort { port: spec },
            )
        }
        Command::DetachPort { daemon, port } => primitive(
            &mut session(&cli)?,
            daemon,
            &Request::DetachPort { name: port.clone() },
        ),
        Command::Stats {
            daemon: given,
            json,
        } => {
            let mut session = session(&cli)?;
            let (name, port) = daemon(given)?;
            let stats = session.stats(&name, port)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", online::stats_text(&stats));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { daemon } => primitive(&mut session(&cli)?, daemon, &Request::Info),
        Command::Record {
            daemon: given,
            port,
            out,
            seconds,
            stop,
        } => {
            let request = match out {
                Some(path) if !*stop => Request::Record {
                    port: port.clone(),
                    path: std::env::current_dir()?.join(path),
                    millis: u64::try_from(
                        std::time::Duration::try_from_secs_f64(*seconds)
                            .map_err(|_| anyhow::anyhow!("--seconds {seconds}: not a duration"))?
                            .as_millis(),
                    )?,
                },
                _ => Request::StopRecord { port: port.clone() },
            };
            primitive(&mut session(&cli)?, given, &request)
        }
        Command::AppTopology {
            daemon: given,
            format,
            watch,
        } => {
            let mut session = session(&cli)?;
            let (name, port) = daemon(given)?;
            // Each wait ends a second before the client's own timeout would.
            let wait_ms = u64::try_from(
                std::time::Duration::try_from_secs_f64(cli.timeout)?
                    .as_millis()
                    .saturating_sub(1000)
                    .max(100),
            )
            .unwrap_or(control::MAX_WATCH_MS);
            let mut request = Request::AppTopology;
            let mut seen = None;
            loop {
                let report = match session.call(&name, port, &request)? {
                    Response::AppTopology(report) => report,
                    Response::Error { message } => anyhow::bail!("{name}: {message}"),
                    other => anyhow::bail!("{name}: unexpected answer {other:?}"),
                };
                if seen != Some(report.changes) {
                    match format {
                        Format::Text => print!("{}", report.text()),
                        Format::Dot => print!("{}", report.dot()),
                        Format::Json if *watch => println!("{}", serde_json::to_string(&report)?),
                        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                    }
                    std::io::Write::flush(&mut std::io::stdout())?;
                }
                if !*watch {
                    return Ok(ExitCode::SUCCESS);
                }
                seen = Some(report.changes);
                request = Request::WatchTopology {
                    after: report.changes,
                    timeout_ms: wait_ms,
                };
            }
        }
        Command::Check { file, proxy } => {
            let topology = load(file)?;
            let report = cli::check(&topology, proxy)?;
            print!("{}", report.text(&file.display().to_string()));
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Print { file } => {
            print!("{}", vnetd::lang::print(&load(file)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { current, desired } => {
            let current = load(current)?;
            let desired = load(desired)?;
            print!("{}", cli::diff(&current, &desired));
            Ok(ExitCode::SUCCESS)
        }
        Command::Route {
            file,
            src,
            dst,
            proxy,
            down,
            live,
        } => {
            let declared = load(file)?;
            let route = if *live {
                let live = online::live(&mut session(&cli)?, &declared)?;
                let mut down_links: Vec<String> = live
                    .down()
                    .iter()
                    .map(|l| format!("{}-{}", l.a, l.b))
                    .collect();
                down_links.extend(down.iter().cloned());
                cli::route(&live.topology, proxy, *src, *dst, &down_links)?
            } else {
                cli::route(&declared, proxy, *src, *dst, down)?
            };
            println!("{route}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Star {
            proxy,
            hosts,
            guests,
            lan_port,
            user,
            port,
            interface,
        } => {
            let daemon = Daemon {
                user: user.clone(),
                port: *port,
                interface: interface.clone(),
            };
            print!("{}", cli::star(proxy, hosts, guests, lan_port, &daemon)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // Errors in a file already start with FILE:LINE:COL. Causes whose text the message
            // already holds are not repeated.
            let mut text = String::new();
            for cause in error.chain() {
                let cause = cause.to_string();
                if !text.contains(&cause) {
                    if !text.is_empty() {
                        text.push_str(": ");
                    }
                    text.push_str(&cause);
                }
            }
            eprintln!("{text}");
            ExitCode::FAILURE
        }
    }
}

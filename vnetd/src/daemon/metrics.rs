//! Prometheus text exposition (format 0.0.4) of a daemon's counters: what `GET /metrics`
//! answers. Every series carries a `daemon` label, so one Prometheus scraping every daemon of
//! an overlay can tell them apart without relabelling.

use std::fmt::Write as _;

use crate::control::{Info, Stats};
use crate::model::{DstMatch, SrcMatch, Target};

/// One metric family being written: its header once, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn src_text(src: &SrcMatch) -> String {
    match src {
        SrcMatch::Is(m) => m.to_string(),
        SrcMatch::Not(m) => format!("not {m}"),
        SrcMatch::Any => "any".into(),
    }
}

fn dst_text(dst: &DstMatch) -> String {
    match dst {
        DstMatch::Is(m) => m.to_string(),
        DstMatch::Not(m) => format!("not {m}"),
        DstMatch::Any => "any".into(),
        DstMatch::None => "none".into(),
    }
}

/// The exposition of `stats` (and `info`, for uptime and the configuration-time bound).
pub fn render(stats: &Stats, info: Option<&Info>) -> String {
    let mut out = String::new();
    let daemon = stats.name.as_ref().map_or("", |n| n.as_str());
    let d = ("daemon", daemon);

    if let Some(info) = info {
        let mut f = Family::new(
            &mut out,
            "vnetd_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );
        f.sample(
            "vnetd_uptime_seconds",
            &[d, ("role", &info.role)],
            info.uptime_s,
        );
        if let Some(ms) = info.config_bound_ms {
            let mut f = Family::new(
                &mut out,
                "vnetd_config_bound_seconds",
                "gauge",
                "The upper bound on configuration time set by the last set-config-bound primitive.",
            );
            #[allow(clippy::cast_precision_loss)]
            f.sample("vnetd_config_bound_seconds", &[d], ms as f64 / 1000.0);
        }
    }

    for (metric, help, pick) in [
        (
            "vnetd_port_frames_total",
            "Frames through a port (rx: from the guest, tx: to it).",
            0,
        ),
        (
            "vnetd_port_bytes_total",
            "Bytes of frames through a port.",
            1,
        ),
    ] {
        let mut f = Family::new(&mut out, metric, "counter", help);
        for p in &stats.ports {
            for (dir, t) in [("rx", p.rx), ("tx", p.tx)] {
                let v = if pick == 0 { t.frames } else { t.bytes };
                f.sample(
                    metric,
                    &[d, ("port", p.name.as_str()), ("direction", dir)],
                    v,
                );
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_port_drops_total",
        "counter",
        "Frames dropped at a port, by reason.",
    );
    for p in &stats.ports {
        for (reason, n) in &p.drops {
            f.sample(
                "vnetd_port_drops_total",
                &[d, ("port", p.name.as_str()), ("reason", reason)],
                n,
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "vnetd_link_up",
        "gauge",
        "1 if the link is up (traffic can use it), else 0.",
    );
    for l in &stats.links {
        if let Some(info) = &l.info {
            let kind = format!("{:?}", info.kind).to_lowercase();
            f.sample(
                "vnetd_link_up",
                &[d, ("peer", info.peer.as_str()), ("kind", &kind)],
                u8::from(info.state == "up"),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_link_rtt_seconds",
        "gauge",
        "Smoothed round-trip time of a link, from keepalive echoes.",
    );
    for l in &stats.links {
        if let Some((peer, rtt)) = l
            .info
            .as_ref()
            .and_then(|i| Some((i.peer.as_str(), i.rtt_s?)))
        {
            f.sample("vnetd_link_rtt_seconds", &[d, ("peer", peer)], rtt);
        }
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_link_rtt_min_seconds",
        "gauge",
        "Smallest round-trip time seen on a link.",
    );
    for l in &stats.links {
        if let Some((peer, rtt)) = l
            .info
            .as_ref()
            .and_then(|i| Some((i.peer.as_str(), i.rtt_min_s?)))
        {
            f.sample("vnetd_link_rtt_min_seconds", &[d, ("peer", peer)], rtt);
        }
    }
    let peer_of = |l: &crate::control::LinkStats| {
        l.info
            .as_ref()
            .map_or(String::new(), |i| i.peer.to_string())
    };
    for (metric, help, pick) in [
        (
            "vnetd_link_frames_total",
            "Data frames over a link (whole frames, after reassembly).",
            0,
        ),
        (
            "vnetd_link_bytes_total",
            "Bytes of data frames over a link.",
            1,
        ),
    ] {
        let mut f = Family::new(&mut out, metric, "counter", help);
        for l in &stats.links {
            let peer = peer_of(l);
            for (dir, t) in [("rx", l.rx), ("tx", l.tx)] {
                let v = if pick == 0 { t.frames } else { t.bytes };
                f.sample(metric, &[d, ("peer", &peer), ("direction", dir)], v);
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_link_control_datagrams_total",
        "counter",
        "Control datagrams (hellos, keepalives, echoes) over a link.",
    );
    for l in &stats.links {
        let peer = peer_of(l);
        f.sample(
            "vnetd_link_control_datagrams_total",
            &[d, ("peer", &peer), ("direction", "rx")],
            l.control_rx,
        );
        f.sample(
            "vnetd_link_control_datagrams_total",
            &[d, ("peer", &peer), ("direction", "tx")],
            l.control_tx,
        );
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_link_drops_total",
        "counter",
        "Datagrams from a peer, or frames for it, dropped, by reason.",
    );
    for l in &stats.links {
        let peer = peer_of(l);
        for (reason, n) in &l.drops {
            f.sample(
                "vnetd_link_drops_total",
                &[d, ("peer", &peer), ("reason", reason)],
                n,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_link_transitions_total",
        "counter",
        "Times a link went up or down.",
    );
    for l in &stats.links {
        let peer = peer_of(l);
        f.sample(
            "vnetd_link_transitions_total",
            &[d, ("peer", &peer), ("to", "up")],
            l.ups,
        );
        f.sample(
            "vnetd_link_transitions_total",
            &[d, ("peer", &peer), ("to", "down")],
            l.downs,
        );
    }

    let mut f = Family::new(
        &mut out,
        "vnetd_rules",
        "gauge",
        "Rules in the forwarding table.",
    );
    f.sample("vnetd_rules", &[d], stats.rules.len());
    for (metric, help, pick) in [
        (
            "vnetd_rule_frames_total",
            "Unicast frames a rule forwarded.",
            0,
        ),
        (
            "vnetd_rule_bytes_total",
            "Bytes of unicast frames a rule forwarded.",
            1,
        ),
    ] {
        let mut f = Family::new(&mut out, metric, "counter", help);
        for (rule, t) in &stats.rules {
            let target = match &rule.target {
                Target::Link(p) => format!("link {p}"),
                Target::Port(p) => format!("port {p}"),
            };
            let v = if pick == 0 { t.frames } else { t.bytes };
            f.sample(
                metric,
                &[
                    d,
                    ("src", &src_text(&rule.src)),
                    ("dst", &dst_text(&rule.dst)),
                    ("target", &target),
                ],
                v,
            );
        }
    }

    for (metric, help, pick) in [
        ("vnetd_relayed_frames_total", "Frames that came in over a link and left over another (a Proxy relaying for hosts without a fast path).", 0),
        ("vnetd_relayed_bytes_total", "Bytes of relayed frames.", 1),
    ] {
        let mut f = Family::new(&mut out, metric, "counter", help);
        for (cast, t) in [("unicast", stats.relayed_unicast), ("group", stats.relayed_group)] {
            let v = if pick == 0 { t.frames } else { t.bytes };
            f.sample(metric, &[d, ("cast", cast)], v);
        }
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_drops_total",
        "counter",
        "Frames dropped by the forwarding decision, and datagrams no link could claim, by reason.",
    );
    for (reason, n) in &stats.drops {
        f.sample("vnetd_drops_total", &[d, ("reason", reason)], n);
    }
    let mut f = Family::new(
        &mut out,
        "vnetd_forwarding_cache_lookups_total",
        "counter",
        "Forwarding-table lookups, by whether the cache answered.",
    );
    f.sample(
        "vnetd_forwarding_cache_lookups_total",
        &[d, ("result", "hit")],
        stats.cache_hits,
    );
    f.sample(
        "vnetd_forwarding_cache_lookups_total",
        &[d, ("result", "miss")],
        stats.cache_misses,
    );
    let mut f = Family::new(
        &mut out,
        "vnetd_vttif_updates_total",
        "counter",
        "VTTIF updates of the local traffic matrix: shipped to the Proxy (a host), or fed to the inference (the Proxy).",
    );
    f.sample("vnetd_vttif_updates_total", &[d], stats.vttif_updates);
    out
}

/// The exposition of the Proxy's VTTIF report: the inferred topology (edges with their
/// intensities, shapes), the traffic matrix, changes and settle time, and updates per
/// reporting daemon. Metric names start with `vttif_`; the dashboard queries them.
pub fn render_vttif(report: &vttif::Report, daemon: &str) -> String {
    let mut out = String::new();
    let d = ("daemon", daemon);
    let mut f = Family::new(
        &mut out,
        "vttif_edge_intensity",
        "gauge",
        "An edge of the inferred application topology: its traffic over the heaviest edge's (0-1].",
    );
    for e in &report.edges {
        let (a, b) = (e.a.to_string(), e.b.to_string());
        f.sample(
            "vttif_edge_intensity",
            &[d, ("src", &a), ("dst", &b)],
            e.intensity,
        );
    }
    let mut f = Family::new(
        &mut out,
        "vttif_traffic_bytes_per_second",
        "gauge",
        "The application's traffic matrix: unicast bytes per second from src to dst over the smoothing window.",
    );
    for flow in &report.matrix {
        let (s, t) = (flow.src.to_string(), flow.dst.to_string());
        f.sample(
            "vttif_traffic_bytes_per_second",
            &[d, ("src", &s), ("dst", &t)],
            flow.bytes_per_s,
        );
    }
    let mut f = Family::new(
        &mut out,
        "vttif_broadcast_bytes_per_second",
        "gauge",
        "Broadcast and multicast bytes per second from src to the group address dst over the smoothing window.",
    );
    for flow in &report.broadcast {
        let (s, t) = (flow.src.to_string(), flow.dst.to_string());
        f.sample(
            "vttif_broadcast_bytes_per_second",
            &[d, ("src", &s), ("dst", &t)],
            flow.bytes_per_s,
        );
    }
    let mut f = Family::new(
        &mut out,
        "vttif_topology_shape",
        "gauge",
        "1 for every known shape the inferred topology has (ring, torus:4x2, ...).",
    );
    for shape in &report.shapes {
        f.sample("vttif_topology_shape", &[d, ("shape", shape)], 1);
    }
    let mut f = Family::new(
        &mut out,
        "vttif_topology_edges",
        "gauge",
        "Edges of the inferred topology.",
    );
    f.sample("vttif_topology_edges", &[d], report.edges.len());
    let mut f = Family::new(
        &mut out,
        "vttif_topology_changes_total",
        "counter",
        "Changes of the inferred topology declared.",
    );
    f.sample("vttif_topology_changes_total", &[d], report.changes);
    if let Some(change) = &report.last_change {
        let mut f = Family::new(
            &mut out,
            "vttif_settle_seconds",
            "gauge",
            "Of the last change: seconds from its first sign to its declaration.",
        );
        f.sample("vttif_settle_seconds", &[d], change.settle_s);
        let mut f = Family::new(
            &mut out,
            "vttif_last_change_age_seconds",
            "gauge",
            "Seconds since the last change was declared.",
        );
        f.sample(
            "vttif_last_change_age_seconds",
            &[d],
            report.now_s - change.at_s,
        );
    }
    for (metric, help, pick) in [
        (
            "vttif_updates_received_total",
            "VTTIF updates accepted from a daemon.",
            0,
        ),
        (
            "vttif_updates_rejected_total",
            "VTTIF updates from a daemon refused as malformed.",
            1,
        ),
        (
            "vttif_updates_lost_total",
            "VTTIF updates from a daemon that never arrived (gaps in their numbers).",
            2,
        ),
    ] {
        let mut f = Family::new(&mut out, metric, "counter", help);
        for (name, r) in &report.reporters {
            let v = [r.received, r.rejected, r.lost][pick];
            f.sample(metric, &[d, ("reporter", name)], v);
        }
    }
    for (metric, help, v) in [
        (
            "vttif_update_hz",
            "VTTIF's update rate (Hz).",
            report.update_hz,
        ),
        (
            "vttif_window_seconds",
            "VTTIF's smoothing window (s).",
            report.window_s,
        ),
        (
            "vttif_threshold",
            "VTTIF's detection threshold (fraction of the heaviest edge).",
            report.threshold,
        ),
    ] {
        let mut f = Family::new(&mut out, metric, "gauge", help);
        f.sample(metric, &[d], v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{PortStats, Traffic};

    #[test]
    fn exposition_is_well_formed() {
        let mut stats = Stats {
            name: Some("host1".parse().unwrap()),
            ..Stats::default()
        };
        stats.ports.push(PortStats {
            name: "vm1".parse().unwrap(),
            rx: Traffic {
                frames: 3,
                bytes: 300,
            },
            tx: Traffic::default(),
            drops: Default::default(),
        });
        stats.drops.insert("no_rule".into(), 2);
        let text = render(&stats, None);
        assert!(
            text.contains(
                "vnetd_port_frames_total{daemon=\"host1\",port=\"vm1\",direction=\"rx\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("vnetd_drops_total{daemon=\"host1\",reason=\"no_rule\"} 2\n"),
            "{text}"
        );
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(
                    line.starts_with("# HELP vnetd_") || line.starts_with("# TYPE vnetd_"),
                    "{line}"
                );
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(series.starts_with("vnetd_"), "{line}");
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}

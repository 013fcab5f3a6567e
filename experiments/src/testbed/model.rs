//! What a scenario predicts: paths, RTTs, TCP goodput and BSP iteration times, from its configured
//! rates and delays alone. `bench fidelity` compares the testbed's measurements with these.
//!
//! The underlay is a tree: an underlay node (host or Proxy) hangs off its site's switch by its
//! access wire, and sites are joined by links. A path is a list of (wire, direction) hops.
//!
//! - **RTT** of a ping of `b` bytes of frame: twice the sum of one-way delays, plus, on every
//!   emulator-carried hop in each direction, the frame's serialisation time (the emulator is a
//!   serialising FIFO). Kernel `tbf` hops add nothing for an isolated packet (its token bucket
//!   holds a millisecond of traffic).
//! - **TCP goodput** over a path: the bottleneck rate times 1448/1514 — a full frame of 1514 bytes
//!   (Ethernet header included, as the shapers count it) carries 1448 bytes of payload (TCP with
//!   timestamps) at MTU 1500.
//! - **A BSP iteration** in which ranks exchange messages: every directed hop carries the frames of
//!   every message routed over it (payload × 1514/1448) and, in the other direction, their TCP
//!   acknowledgements (one 66-byte frame per two full frames: delayed ACKs); the iteration takes
//!   as long as the most loaded hop needs at its rate, plus the longest one-way delay among the
//!   pairs that talk (the last message still has to arrive). It is a lower bound: TCP's loss
//!   recovery and the stragglers of each iteration (every rank waits for its slowest message) come
//!   on top, less so the longer an iteration lasts.

use std::time::Duration;

use crate::linkemu::model::{
    serialisation_time, tcp_goodput_bps, FULL_FRAME_BYTES, TCP_PAYLOAD_BYTES,
};
use crate::scenario::{LinkShape, Scenario};
use crate::testbed::plan::{Plan, Wire};

/// Bytes of a pure TCP acknowledgement frame (with timestamps), sent for every second full frame.
pub const ACK_FRAME: f64 = 66.0;

/// One hop of a path: a wire index into [`Plan::wires`] and whether it is crossed from `a` to `b`.
pub type Hop = (usize, bool);

/// Paths between the underlay nodes (hosts and the Proxy) of a plan.
pub struct Underlay<'a> {
    scenario: &'a Scenario,
    plan: &'a Plan,
}

impl<'a> Underlay<'a> {
    /// The underlay of `plan`, built from `scenario`.
    #[must_use]
    pub fn new(scenario: &'a Scenario, plan: &'a Plan) -> Self {
        Underlay { scenario, plan }
    }

    /// The site of an underlay node (`hostN` or `proxy`).
    #[must_use]
    pub fn site_of(&self, node: &str) -> Option<usize> {
        if node == "proxy" {
            return Some(self.scenario.proxy_site);
        }
        self.scenario
            .host_index(node)
            .map(|i| self.scenario.hosts[i].site)
    }

    fn wire_index(&self, name: &str) -> usize {
        self.plan
            .wires
            .iter()
            .position(|w| w.name == name)
            .expect("plan has every scenario wire")
    }

    fn access(&self, node: &str) -> usize {
        let site = self.site_of(node).expect("underlay node");
        self.wire_index(&format!("{node}-sw-{}", self.scenario.sites[site].name))
    }

    /// The hops from underlay node `from` to underlay node `to`.
    #[must_use]
    pub fn path(&self, from: &str, to: &str) -> Vec<Hop> {
        let (Some(sa), Some(sb)) = (self.site_of(from), self.site_of(to)) else {
            return Vec::new();
        };
        // Access wires run from the node (a) to its switch (b).
        let mut hops = vec![(self.access(from), true)];
        let mut at = sa;
        for l in self.scenario.site_path(sa, sb) {
            let link = &self.scenario.links[l];
            let name = format!(
                "{}-{}",
                self.scenario.sites[link.a].name, self.scenario.sites[link.b].name
            );
            let forward = link.a == at;
            at = if forward { link.b } else { link.a };
            hops.push((self.wire_index(&name), forward));
        }
        hops.push((self.access(to), false));
        hops
    }

    /// The wire of a hop.
    #[must_use]
    pub fn wire(&self, hop: Hop) -> &Wire {
        &self.plan.wires[hop.0]
    }

    fn shape(&self, hop: Hop) -> Option<LinkShape> {
        self.wire(hop).shape
    }

    /// One-way propagation delay along `path`.
    #[must_use]
    pub fn delay(&self, path: &[Hop]) -> Duration {
        path.iter()
            .filter_map(|h| self.shape(*h))
            .map(|s| s.delay)
            .sum()
    }

    /// Predicted RTT of a ping whose frames are `frame_bytes` long, both ways along `path`.
    #[must_use]
    pub fn rtt(&self, path: &[Hop], frame_bytes: u64) -> Duration {
        let serialising: Duration = path
            .iter()
            .filter(|h| self.wire(**h).needs_emulator())
            .filter_map(|h| self.shape(*h))
            .map(|s| serialisation_time(frame_bytes, s.rate_bps))
            .sum();
        2 * (self.delay(path) + serialising)
    }

    /// Bottleneck rate of `path` in bit/s (0 if nothing on it is shaped).
    #[must_use]
    pub fn bottleneck(&self, path: &[Hop]) -> u64 {
        path.iter()
            .filter_map(|h| self.shape(*h))
            .map(|s| s.rate_bps)
            .filter(|r| *r > 0)
            .min()
            .unwrap_or(0)
    }

    /// Predicted TCP goodput of one flow along `path`, in bit/s.
    #[must_use]
    pub fn goodput(&self, path: &[Hop]) -> f64 {
        tcp_goodput_bps(self.bottleneck(path))
    }

    /// Predicted time of one BSP iteration in which every `(src, dst)` in `messages` (underlay
    /// nodes) sends `payload` bytes.
    #[must_use]
    pub fn iteration(&self, messages: &[(String, String)], payload: u64) -> Duration {
        let mut load = vec![[0.0f64; 2]; self.plan.wires.len()];
        let mut longest = Duration::ZERO;
        #[allow(clippy::cast_precision_loss)]
        let segments = payload as f64 / TCP_PAYLOAD_BYTES as f64;
        for (src, dst) in messages {
            let path = self.path(src, dst);
            longest = longest.max(self.delay(&path));
            for (w, forward) in path {
                load[w][usize::from(forward)] += segments * FULL_FRAME_BYTES as f64;
                load[w][usize::from(!forward)] += segments / 2.0 * ACK_FRAME;
            }
        }
        let busiest = load
            .iter()
            .enumerate()
            .filter_map(|(w, l)| {
                let rate = self.plan.wires[w].shape.map_or(0, |s| s.rate_bps);
                #[allow(clippy::cast_precision_loss)]
                (rate > 0).then(|| l[0].max(l[1]) * 8.0 / rate as f64)
            })
            .fold(0.0, f64::max);
        Duration::from_secs_f64(busiest) + longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testbed::Mode;
    use std::path::Path;

    fn two_clusters() -> Scenario {
        Scenario::parse(
            Path::new("t.toml"),
            r#"
name = "t"
rate_scale = 1
[[site]]
name = "c1"
hosts = 2
access = { rate = "100mbit" }
[[site]]
name = "c2"
hosts = 2
access = { rate = "100mbit" }
[[site]]
name = "u"
proxy = true
[[link]]
between = ["c1", "c2"]
rate = "10mbit"
delay = "5ms"
[[link]]
between = ["u", "c1"]
rate = "100mbit"
delay = "1ms"
"#,
        )
        .unwrap()
    }

    #[test]
    fn paths_cross_the_tree() {
        let s = two_clusters();
        let p = Plan::new(&s, "r", Mode::Direct);
        let u = Underlay::new(&s, &p);
        let path = u.path("host1", "host3");
        let names: Vec<&str> = path.iter().map(|h| u.wire(*h).name.as_str()).collect();
        assert_eq!(names, ["host1-sw-c1", "c1-c2", "host3-sw-c2"]);
        assert_eq!(u.bottleneck(&path), 10_000_000);
        assert_eq!(u.delay(&path), Duration::from_millis(5));
        // Proxy to host3 crosses u-c1 (declared u to c1) then c1-c2, both forwards.
        let path = u.path("proxy", "host3");
        assert_eq!(path.len(), 4);
        assert!(path[1].1 && path[2].1);
        assert!(!u.path("host3", "proxy")[2].1);
        assert_eq!(u.delay(&path), Duration::from_millis(6));
        // Serialisation of a 98-byte frame on the 10 Mbit/s emulated link, both ways.
        let rtt = u.rtt(&u.path("host1", "host3"), 98);
        assert_eq!(
            rtt,
            Duration::from_millis(10) + 2 * serialisation_time(98, 10_000_000)
        );
    }

    #[test]
    fn iteration_is_limited_by_the_busiest_hop() {
        let s = two_clusters();
        let p = Plan::new(&s, "r", Mode::Direct);
        let u = Underlay::new(&s, &p);
        let hosts: Vec<String> = (1..=4).map(|i| format!("host{i}")).collect();
        let all: Vec<(String, String)> = hosts
            .iter()
            .flat_map(|a| {
                hosts
                    .iter()
                    .filter(move |b| *b != a)
                    .map(move |b| (a.clone(), b.clone()))
            })
            .collect();
        // 4 messages cross c1-c2 each way: 4 × 1448 B payload = 4 full frames at 10 Mbit/s, plus
        // the acknowledgements of the 4 going the other way (one per two frames).
        let t = u.iteration(&all, 1448);
        let bytes = 4.0 * 1514.0 + 4.0 * 0.5 * 66.0;
        let expect = Duration::from_secs_f64(bytes * 8.0 / 10e6) + Duration::from_millis(5);
        assert!(
            (t.as_secs_f64() - expect.as_secs_f64()).abs() < 1e-9,
            "{t:?} vs {expect:?}"
        );
    }
}

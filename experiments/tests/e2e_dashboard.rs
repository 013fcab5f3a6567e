//! End-to-end test of `dashboards/`: a real Prometheus (Debian's `prometheus`) scrapes a
//! vnet-mode testbed run's daemons with the shipped scrape configuration while the guests run a
//! ring, and every PromQL expression of the Grafana dashboard runs through Prometheus's HTTP API
//! (needs root; run by `cargo xtask test`, which passes `--ignored --test-threads=1`).
//!
//! Prometheus runs in the Proxy's node, the one place that reaches every daemon's metrics
//! address (underlay addresses; the root namespace has no route to them), and listens on that
//! node's loopback. The test talks to it from a thread that has entered the node's network
//! namespace (`setns` moves only the calling thread), so no HTTP client needs to be installed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod common;
use common::{ok, testbed, Run};

/// The scenario whose addresses `dashboards/prometheus.yml` lists.
const SCENARIO: &str = "single-cluster";
const RUN: &str = "t-dash";
/// Where Prometheus listens, inside the Proxy's network namespace.
const PROMETHEUS: &str = "127.0.0.1:9090";
/// `dashboards/prometheus.yml`'s scrape interval.
const SCRAPE_INTERVAL_S: u64 = 1;
/// Grafana's `$__interval` at its finest (a step of one scrape interval).
const INTERVAL_S: u64 = SCRAPE_INTERVAL_S;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A Prometheus server in a node of a run, with its own configuration and storage in a
/// temporary directory; killed, and the directory removed, when dropped (passed or not).
struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// The node's network namespace, where [`PROMETHEUS`] is.
    netns: PathBuf,
}

impl Prometheus {
    fn start(run: &Run, node: &str, netns: PathBuf, config: &str) -> Prometheus {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("e2e-dashboard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = File::create(dir.join("prometheus.log")).unwrap();
        // `testbed exec` enters the node and exec()s: the child is Prometheus itself.
        let child = testbed()
            .args(["exec", &run.name, node, "--", "prometheus"])
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus { child, dir, netns }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET target` on Prometheus: the status code and body.
    fn get(&self, target: &str) -> std::io::Result<(u16, String)> {
        http_get(&self.netns, PROMETHEUS, target)
    }

    /// An API call that must succeed: its `data`.
    fn api(&self, target: &str) -> Value {
        let (code, body) = self
            .get(target)
            .unwrap_or_else(|e| panic!("GET {target}: {e}\nprometheus log:\n{}", self.log()));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {target}: {code}, not JSON ({e}): {body}"));
        assert!(
            code == 200 && v["status"] == "success",
            "GET {target}: {code} {body}"
        );
        v["data"].clone()
    }

    /// An instant query (`/api/v1/query`, now) that must succeed: its vector's elements.
    fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)));
        assert_eq!(data["resultType"], "vector", "{expr}: {data}");
        data["result"].as_array().unwrap().clone()
    }

    /// A range query (`/api/v1/query_range`) that must succeed: its matrix's series.
    fn query_range(&self, expr: &str, start: u64, end: u64, step_s: u64) -> Vec<Value> {
        let data = self.api(&format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step_s}",
            encode(expr)
        ));
        assert_eq!(data["resultType"], "matrix", "{expr}: {data}");
        data["result"].as_array().unwrap().clone()
    }

    /// Waits until Prometheus is ready and has scraped each of `targets` successfully (about
    /// 6 s: Prometheus hands discovered targets to its scrapers on a 5 s tick, even static ones).
    fn wait_scraped(&mut self, targets: &BTreeSet<String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if let Ok((200, _)) = self.get("/-/ready") {
                let up: BTreeSet<String> = self
                    .query("up == 1")
                    .iter()
                    .map(|s| s["metric"]["instance"].as_str().unwrap().to_string())
                    .collect();
                if &up == targets {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not scrape {targets:?} within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("prometheus log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET target` with HTTP/1.0 to `addr` in network namespace `netns`, from a thread that
/// enters it (the socket belongs to the namespace it was made in).
fn http_get(netns: &Path, addr: &str, target: &str) -> std::io::Result<(u16, String)> {
    let (netns, addr, target) = (netns.to_owned(), addr.to_owned(), target.to_owned());
    std::thread::spawn(move || {
        let ns = File::open(&netns)?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let sock: SocketAddr = addr.parse().unwrap();
        let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(s, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut response = Vec::new();
        s.read_to_end(&mut response)?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let bad = || std::io::Error::other(format!("bad HTTP response: {response:?}"));
        let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        Ok((code, body.to_string()))
    })
    .join()
    .unwrap()
}

/// Percent-encoding of a query parameter's value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The elements of a JSON array; none if `v` is not one.
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// One query of a dashboard panel.
struct PanelQuery {
    panel: String,
    kind: String,
    ref_id: String,
    expr: String,
}

/// Every query of every panel of `dashboard` (rows' nested panels too). Panics on a target
/// without a PromQL `expr`: a panel whose query this test would not run.
fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &[Value], out: &mut Vec<PanelQuery>) {
        for p in panels {
            walk(items(&p["panels"]), out);
            for t in items(&p["targets"]) {
                let expr = t["expr"].as_str().unwrap_or_else(|| {
                    panic!(
                        "panel {:?}: a target without a PromQL expr: {t}",
                        p["title"]
                    )
                });
                out.push(PanelQuery {
                    panel: p["title"].as_str().unwrap().to_string(),
                    kind: p["type"].as_str().unwrap().to_string(),
                    ref_id: t["refId"].as_str().unwrap().to_string(),
                    expr: expr.to_string(),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut out);
    out
}

/// The one query of panel `panel` (of type `kind`) with refId `ref_id`.
fn find<'q>(queries: &'q [PanelQuery], kind: &str, panel: &str, ref_id: &str) -> &'q str {
    let found: Vec<&PanelQuery> = queries
        .iter()
        .filter(|q| q.kind == kind && q.panel == panel && q.ref_id == ref_id)
        .collect();
    assert_eq!(found.len(), 1, "{kind} panel {panel:?}, query {ref_id}");
    &found[0].expr
}

/// `expr` with Grafana's template variables replaced by `vars` (`$name` and `${name}`).
/// Panics on any other variable left.
fn substitute(expr: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut names: Vec<&&str> = vars.keys().collect();
    // `$__interval` before `$__interval_ms` would cut the longer name.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut s = expr.to_string();
    for name in names {
        s = s.replace(&format!("${{{name}}}"), &vars[*name]);
        s = s.replace(&format!("${name}"), &vars[*name]);
    }
    // What is left of `$` must be a regex group reference (`"$1"` of label_replace).
    for (i, _) in s.match_indices('$') {
        let next = s[i + 1..].chars().next();
        assert!(
            next.is_some_and(|c| c.is_ascii_digit()),
            "unknown template variable in {expr:?} at {:?}",
            &s[i..]
        );
    }
    s
}

/// `label` of every element of an instant query's result.
fn labels(result: &[Value], label: &str) -> Vec<String> {
    result
        .iter()
        .map(|s| {
            s["metric"][label]
                .as_str()
                .unwrap_or_else(|| panic!("no label {label} in {s}"))
                .to_string()
        })
        .collect()
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

/// The shipped scrape configuration with its target lines (`- ADDRESS:PORT # comment`)
/// replaced by `targets` (node, metrics address); and the addresses it listed.
fn with_targets(shipped: &str, targets: &[(String, String)]) -> (String, BTreeSet<String>) {
    let mut out = String::new();
    let mut listed = BTreeSet::new();
    for line in shipped.lines() {
        let item = line.trim_start().strip_prefix("- ");
        let addr = item.map(|i| i.split('#').next().unwrap().trim());
        if let Some(addr) = addr.filter(|a| a.parse::<SocketAddrV4>().is_ok()) {
            if listed.is_empty() {
                let indent = &line[..line.len() - line.trim_start().len()];
                for (node, a) in targets {
                    out.push_str(&format!("{indent}- {a} # {node}\n"));
                }
            }
            listed.insert(addr.to_string());
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(!listed.is_empty(), "no target lines in the scrape config");
    (out, listed)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_file("dashboards/vttif.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The template variables of the dashboard's queries, as Grafana would fill them in for
/// Proxy `daemon` and a time range of `range_s`.
fn variables(daemon: &str, range_s: u64) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("daemon", daemon.to_string()),
        ("__interval", format!("{INTERVAL_S}s")),
        // Grafana: max($__interval + scrape interval, 4 × scrape interval).
        (
            "__rate_interval",
            format!(
                "{}s",
                (INTERVAL_S + SCRAPE_INTERVAL_S).max(4 * SCRAPE_INTERVAL_S)
            ),
        ),
        ("__range", format!("{range_s}s")),
    ])
}

/// Without Prometheus: the dashboard's panels all query the `${datasource}` variable's
/// Prometheus with PromQL that uses only known template variables, have unique ids and refIds,
/// and do not overlap on Grafana's 24-column grid; the scrape config has its target lines.
#[test]
fn dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(d["schemaVersion"], 39);
    let vars = items(&d["templating"]["list"]);
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus `datasource` variable"
    );
    let ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    let (mut ids, mut cells) = (BTreeSet::new(), Vec::new());
    for p in items(&d["panels"]) {
        let title = &p["title"];
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "panel id twice: {title}"
        );
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: {g}");
        for &(other, ox, oy, ow, oh) in &cells {
            let apart = x + w <= ox || ox + ow <= x || y + h <= oy || oy + oh <= y;
            assert!(apart, "{title} overlaps {other}");
        }
        cells.push((title, x, y, w, h));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"], ds, "{title}");
        let targets = items(&p["targets"]);
        assert!(!targets.is_empty(), "{title}: no query");
        let refs: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), targets.len(), "{title}: a refId twice");
        for t in targets {
            assert_eq!(t["datasource"], ds, "{title}");
        }
    }
    let queries = panel_queries(&d);
    for q in &queries {
        substitute(&q.expr, &variables("proxy", 60));
    }
    for a in items(&d["annotations"]["list"]) {
        if let Some(expr) = a["expr"].as_str() {
            assert_eq!(a["datasource"], ds);
            substitute(expr, &variables("proxy", 60));
        }
    }
    let config = std::fs::read_to_string(repo_file("dashboards/prometheus.yml")).unwrap();
    assert!(config.contains("scrape_interval: 1s"), "{config}");
    let (_, listed) = with_targets(&config, &[]);
    assert!(
        listed.contains("10.200.255.254:9540"),
        "the Proxy: {listed:?}"
    );
}

/// The dashboard's queries against a live overlay: Prometheus scrapes a `single-cluster` run
/// with `dashboards/prometheus.yml` while the guests run a ring; every panel's and the
/// annotation's PromQL succeeds, the node graph's edges are exactly those `vnetctl app-topology`
/// reports at the Proxy, its nodes their endpoints, and the traffic matrix holds the ring's pairs.
#[test]
#[ignore = "end-to-end: needs root, network namespaces and prometheus; run by `cargo xtask test`"]
fn dashboard_queries_return_the_inferred_topology() {
    let version = Command::new("prometheus").arg("--version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "no `prometheus` here: `cargo xtask install` (Debian package prometheus)"
    );
    let shipped_config = repo_file("dashboards/prometheus.yml");
    ok(
        Command::new("promtool")
            .args(["check", "config"])
            .arg(&shipped_config)
            .output()
            .unwrap(),
        "promtool check config dashboards/prometheus.yml",
    );
    let dashboard = dashboard();
    let queries = panel_queries(&dashboard);
    let annotations: Vec<&str> = dashboard["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["expr"].as_str())
        .collect();
    assert_eq!(
        annotations.len(),
        1,
        "one annotation query (topology changes)"
    );
    let variable = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "daemon")
        .expect("a `daemon` template variable");
    let variable = variable["query"]["query"].as_str().unwrap();
    let edges_query = find(&queries, "nodeGraph", "Inferred topology", "edges");
    let nodes_query = find(&queries, "nodeGraph", "Inferred topology", "nodes");
    let matrix_query = find(&queries, "table", "Traffic matrix", "A");
    let changes_query = find(&queries, "stat", "Changes declared", "A");

    let run = Run::up(SCENARIO, RUN, "vnet");
    let status = run.status();
    let daemons: Vec<(String, String)> = status["vnet"]["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let node = d["node"].as_str().unwrap().to_string();
            (node, d["metrics"].as_str().unwrap().to_string())
        })
        .collect();
    let addresses: BTreeSet<String> = daemons.iter().map(|d| d.1.clone()).collect();
    let (config, listed) =
        with_targets(&std::fs::read_to_string(&shipped_config).unwrap(), &daemons);
    assert_eq!(
        listed, addresses,
        "dashboards/prometheus.yml should list the {SCENARIO} run's daemons"
    );
    let proxy_ns = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "proxy")
        .unwrap()["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = Instant::now();
    let mut prometheus = Prometheus::start(
        &run,
        "proxy",
        Path::new("/run/netns").join(proxy_ns),
        &config,
    );
    prometheus.wait_scraped(&addresses);
    let started = unix_now();
    eprintln!(
        "prometheus scraped all {} daemons after {:.1} s",
        daemons.len(),
        t0.elapsed().as_secs_f64()
    );

    // The template variable: `label_values(METRIC, LABEL)` is Grafana's, not PromQL; it lists
    // LABEL's values among METRIC's series, the Proxy's name.
    let (metric, label) = variable
        .strip_prefix("label_values(")
        .and_then(|v| v.strip_suffix(')'))
        .and_then(|v| v.split_once(','))
        .unwrap_or_else(|| panic!("daemon variable: {variable}"));
    let proxies = labels(
        &prometheus.query(&format!("group by ({}) ({metric})", label.trim())),
        label.trim(),
    );
    assert_eq!(proxies, ["proxy"], "{variable}");

    let out = testbed()
        .args(["patterns", RUN, "--timeout", "120", "--"])
        .args(["--topology", "ring", "--op", "exchange"])
        .args(["--size", "16KiB", "--iterations", "40"])
        .output()
        .unwrap();
    ok(out, "testbed patterns ring");
    let guests = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "guest")
        .count();

    let vars = |range_s: u64| variables(&proxies[0], range_s);
    let range = || unix_now() - started + 2;

    // The node graph's edges against the Proxy's own report. VTTIF keeps the declared topology
    // while the guests are silent, so both settle; compare them when Prometheus has scraped the
    // change count the report has (the same declared topology), retrying while it lags.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (report, edges) = loop {
        let report = run.app_topology();
        let result = prometheus.query(&substitute(edges_query, &vars(range())));
        let changes = prometheus.query(&substitute(changes_query, &vars(range())));
        let reported: BTreeSet<(String, String)> = report["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["a"].as_str().unwrap().into(),
                    e["b"].as_str().unwrap().into(),
                )
            })
            .collect();
        let scraped: BTreeSet<(String, String)> = labels(&result, "src")
            .into_iter()
            .zip(labels(&result, "dst"))
            .collect();
        let same_change =
            changes.len() == 1 && value(&changes[0]) == report["changes"].as_f64().unwrap();
        if same_change && reported == scraped {
            assert_eq!(result.len(), scraped.len(), "an edge twice: {result:?}");
            break (report, result);
        }
        assert!(
            Instant::now() < deadline,
            "the node graph's edges ({scraped:?}, changes {changes:?}) are not the Proxy's \
             ({reported:?}, changes {}) after 20 s",
            report["changes"]
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(!edges.is_empty(), "VTTIF inferred no edge: {report}");
    eprintln!(
        "node graph: {} edges, shapes {}, {} changes declared",
        edges.len(),
        report["shapes"],
        report["changes"]
    );
    // What Grafana's node graph needs: an edge's `id`, `source` and `target`.
    let mut degree: BTreeMap<String, f64> = BTreeMap::new();
    for e in &edges {
        let m = &e["metric"];
        let (src, dst) = (m["src"].as_str().unwrap(), m["dst"].as_str().unwrap());
        assert_eq!(m["source"], src, "{e}");
        assert_eq!(m["target"], dst, "{e}");
        assert_eq!(m["id"], format!("{src}--{dst}"), "{e}");
        let intensity = value(e);
        assert!(intensity > 0.0 && intensity <= 1.0, "{e}");
        *degree.entry(src.to_string()).or_default() += 1.0;
        *degree.entry(dst.to_string()).or_default() += 1.0;
    }
    // Its nodes: every endpoint once (`id`, `title`), with its degree.
    let nodes = prometheus.query(&substitute(nodes_query, &vars(range())));
    let scraped_nodes: BTreeMap<String, f64> = nodes
        .iter()
        .map(|n| {
            assert_eq!(n["metric"]["title"], n["metric"]["id"], "{n}");
            (n["metric"]["id"].as_str().unwrap().to_string(), value(n))
        })
        .collect();
    assert_eq!(nodes.len(), scraped_nodes.len(), "a node twice: {nodes:?}");
    assert_eq!(scraped_nodes, degree, "the node graph's nodes");

    // The traffic matrix over the time range holds both directions of every pair of the ring.
    let matrix = prometheus.query(&substitute(matrix_query, &vars(range())));
    let pairs: BTreeMap<(String, String), f64> = matrix
        .iter()
        .map(|s| {
            let m = &s["metric"];
            let pair = (m["src"].as_str().unwrap(), m["dst"].as_str().unwrap());
            ((pair.0.to_string(), pair.1.to_string()), value(s))
        })
        .collect();
    let mac = experiments::scenario::guest_mac;
    for i in 1..=guests {
        let next = i % guests + 1;
        for pair in [(mac(i), mac(next)), (mac(next), mac(i))] {
            assert!(
                pairs.get(&pair).is_some_and(|&bps| bps > 0.0),
                "ring pair {pair:?} missing from the traffic matrix: {pairs:?}"
            );
        }
    }

    // Every query of every panel succeeds; a few stat panels against what is known.
    for q in &queries {
        let expr = substitute(&q.expr, &vars(range()));
        let result = prometheus.query(&expr);
        let values: Vec<f64> = result.iter().map(value).collect();
        match (q.panel.as_str(), q.ref_id.as_str()) {
            ("Edges", "A") => assert_eq!(values, [edges.len() as f64], "{expr}"),
            ("Daemons scraped", "A") => assert_eq!(values, [daemons.len() as f64], "{expr}"),
            ("Shapes", "A") => {
                let shapes: BTreeSet<String> = labels(&result, "shape").into_iter().collect();
                let reported: BTreeSet<String> = report["shapes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(shapes, reported, "{expr}");
            }
            ("Updates received", "A") => {
                let reporters: BTreeSet<String> = labels(&result, "reporter").into_iter().collect();
                let hosts: BTreeSet<String> = daemons
                    .iter()
                    .map(|d| d.0.clone())
                    .filter(|n| n != "proxy")
                    .collect();
                assert_eq!(reporters, hosts, "{expr}");
                assert!(values.iter().all(|&v| v > 0.0), "{expr}: {result:?}");
            }
            _ => {}
        }
        eprintln!("ok: {} [{}]: {} series", q.panel, q.ref_id, result.len());
    }

    // The change annotation, as Grafana runs it (a range query at its step), marks the ring's
    // declaration.
    let step: u64 = dashboard["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["expr"].is_string())
        .and_then(|a| a["step"].as_str())
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .expect("the annotation's step, in seconds");
    let end = unix_now();
    let expr = substitute(annotations[0], &vars(end - started));
    let marks = prometheus.query_range(&expr, started - started % step, end, step);
    assert!(
        !marks.is_empty(),
        "the annotation {expr} marks no change over the run"
    );
    eprintln!(
        "annotation: {} series; the test took {:.1} s from Prometheus's start",
        marks.len(),
        t0.elapsed().as_secs_f64()
    );
}

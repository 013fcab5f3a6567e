//! Writes the seed corpora, `corpus/TARGET/seed-*`: small valid inputs of every target, the
//! binary ones made by the real code (datagrams sealed by `LinkTx`, a star printed by
//! `lang::print`), the scenarios copied from `experiments/scenarios/`. Deterministic: running
//! it again rewrites the same files. Run from `vnetd/fuzz` (stable is enough):
//!
//! ```sh
//! cargo run --example seeds
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use vnetd::control::{Request, Response};
use vnetd::daemon::Saved;
use vnetd::lang::{self, Guest};
use vnetd::model::{Host, Name};
use vnetd::wire::{LinkTx, SessionId, DEFAULT_HOPS};
use vnetd_fuzz::eth_frame;
use vnetd_fuzz::link::{self, Script};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = root().join("corpus").join(target);
    fs::create_dir_all(&dir).expect("create the corpus directory");
    let path = dir.join(format!("seed-{name}"));
    fs::write(&path, bytes).expect("write a seed");
    println!("{}", path.strip_prefix(root()).unwrap_or(&path).display());
}

fn name(s: &str) -> Name {
    s.parse().expect("a valid name")
}

/// Datagrams from the peer (`host1`, first session) to the local end (`proxy`) of `link_rx`.
struct Sealed {
    hello: Vec<u8>,
    frame: Vec<u8>,
    fragments: Vec<Vec<u8>>,
    keepalive: Vec<u8>,
    probe: Vec<u8>,
    echo: Vec<u8>,
}

fn seal(tx: &mut LinkTx, frame: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![0u8; tx.sealed_len(frame.len()).expect("a carriable frame")];
    let sealed = tx
        .seal_frame(frame, false, DEFAULT_HOPS, &mut out)
        .expect("sealed");
    sealed.datagrams(&out).map(<[u8]>::to_vec).collect()
}

fn sealed() -> Sealed {
    let mut tx = link::peer_tx(SessionId::new(link::PEER_SESSION).expect("non-zero"));
    let mut buf = [0u8; 2048];
    let n = tx.hello(&mut buf).expect("a hello");
    let hello = buf[..n].to_vec();
    let frame = seal(&mut tx, &eth_frame(64, 1)).remove(0);
    let fragments = seal(&mut tx, &eth_frame(1514, 2));
    assert_eq!(fragments.len(), 2, "1514 bytes at 1472 go as two fragments");
    let n = tx.keepalive(1_000, 0, &mut buf).expect("a keepalive");
    let keepalive = buf[..n].to_vec();
    let n = tx.keepalive(2_000, 1472, &mut buf).expect("a probe");
    let probe = buf[..n].to_vec();
    let n = tx.keepalive_echo(3_000, 1472, &mut buf).expect("an echo");
    let echo = buf[..n].to_vec();
    Sealed {
        hello,
        frame,
        fragments,
        keepalive,
        probe,
        echo,
    }
}

fn wire_seeds() {
    let s = sealed();
    write("datagram", "hello", &s.hello);
    write("datagram", "frame", &s.frame);
    write("datagram", "fragment-0", &s.fragments[0]);
    write("datagram", "fragment-1", &s.fragments[1]);
    write("datagram", "keepalive", &s.keepalive);
    write("datagram", "probe", &s.probe);
    write("datagram", "echo", &s.echo);

    // link_rx: real datagrams as raw bytes, then scripts that have the peer seal them.
    let raw = Script::default()
        .raw(&s.hello)
        .raw(&s.frame)
        .raw(&s.fragments[0])
        .raw(&s.fragments[1])
        .raw(&s.keepalive)
        .raw(&s.echo);
    write("link_rx", "raw-datagrams", raw.0);
    let raw_out_of_order = Script::default()
        .raw(&s.frame)
        .raw(&s.hello)
        .raw(&s.fragments[1])
        .raw(&s.hello)
        .raw(&s.fragments[0])
        .raw(&s.fragments[0]);
    write("link_rx", "raw-out-of-order", raw_out_of_order.0);
    // 168: a largest datagram of 128 + 8 * 168 = 1472; 0: of 128, so 20 fragments.
    let traffic = Script::default()
        .hello()
        .deliver(0, false)
        .frame(64, 8, 168)
        .frame(1514, 8, 168)
        .keepalive(0, false)
        .keepalive(184, false)
        .keepalive(0, true)
        .deliver_all(false);
    write("link_rx", "traffic", traffic.0);
    let reordered = Script::default()
        .hello()
        .deliver_all(false)
        .frame(1514, 2, 0)
        .frame(1000, 8, 20)
        .deliver_all(true)
        .frame(1514, 8, 0)
        .deliver(3, false)
        .deliver(7, true)
        .deliver(7, false)
        .time(120, true)
        .deliver_all(false);
    write("link_rx", "reordered-and-expired", reordered.0);
    let restarts = Script::default()
        .hello()
        .deliver_all(false)
        .frame(100, 8, 168)
        .restart(1)
        .frame(100, 8, 168)
        .deliver(1, false)
        .hello()
        .deliver_all(false)
        .frame(100, 8, 168)
        .restart(-2)
        .hello()
        .frame(100, 8, 168)
        .deliver_all(false);
    write("link_rx", "restarts", restarts.0);
    let tampered = Script::default()
        .hello()
        .deliver_all(false)
        .frame(64, 8, 168)
        .deliver(0, true)
        .deliver(0, true)
        .tamper(0, 30, 1)
        .deliver(0, false)
        .frame(1514, 1, 168)
        .tamper(1, 2, 0x80)
        .deliver_all(false);
    write("link_rx", "replayed-and-tampered", tampered.0);

    // stream: payload limit, chunk seed, then records back to back.
    let mut records = Vec::new();
    for d in [
        &s.hello,
        &s.frame,
        &s.fragments[0],
        &s.fragments[1],
        &s.keepalive,
        &s.echo,
    ] {
        records.extend_from_slice(d);
    }
    let stream = |limit: u16, seed: u8, tail: &[u8]| {
        let mut bytes = limit.to_be_bytes().to_vec();
        bytes.push(seed);
        bytes.extend_from_slice(&records);
        bytes.extend_from_slice(tail);
        bytes
    };
    write("stream", "records", stream(u16::MAX, 0, &[]));
    write("stream", "records-small-limit", stream(1518, 7, &[]));
    write(
        "stream",
        "records-then-garbage",
        stream(u16::MAX, 42, &[2; 30]),
    );
    write(
        "stream",
        "records-then-partial",
        stream(u16::MAX, 3, &s.frame[..30]),
    );
}

/// One `reassembly` insert: id, frame length, index, count, hops, clock step, piece length
/// (255: the right one).
fn insert(id: u8, len: u16, index: u8, count: u8, dt: u8) -> Vec<u8> {
    let mut op = vec![0, id];
    op.extend_from_slice(&len.to_be_bytes());
    op.extend_from_slice(&[index, count, 8, dt, 255]);
    op
}

fn reassembly_seeds() {
    let config = |slots: u8, max: u16, timeout: u8| {
        let mut bytes = vec![slots];
        bytes.extend_from_slice(&max.to_be_bytes());
        bytes.push(timeout);
        bytes
    };
    let mut two = config(8, 1518, 100);
    two.extend(insert(1, 1514, 0, 2, 0));
    two.extend(insert(1, 1514, 1, 2, 1));
    write("reassembly", "two-pieces", two);
    let mut interleaved = config(2, 1518, 100);
    for i in 0..20 {
        interleaved.extend(insert(1, 1514, i, 20, 1));
        interleaved.extend(insert(2, 1400, 19 - i, 20, 1));
        if i % 5 == 0 {
            interleaved.extend(insert(3, 200, 0, 3, 0));
        }
    }
    write("reassembly", "interleaved-and-evicted", interleaved);
    let mut expiring = config(8, 9018, 10);
    expiring.extend(insert(7, 9000, 0, 7, 0));
    expiring.extend(insert(7, 9000, 0, 7, 0));
    expiring.extend([1, 200]);
    expiring.extend(insert(7, 9000, 1, 7, 0));
    expiring.extend([2]);
    expiring.extend(insert(7, 9000, 1, 6, 0));
    write("reassembly", "duplicate-expired-reset", expiring);
}

fn lang_seeds() {
    let host = |machine: &str| Host {
        user: "vnet".into(),
        machine: name(machine),
        port: 5400,
        interface: name("eth0"),
    };
    let guests: Vec<Guest> = (1..=3)
        .map(|i| Guest {
            host: name(&format!("host{i}")),
            port: name(&format!("vm{i}")),
            mac: format!("02:56:4e:00:00:{i:02x}").parse().expect("a MAC"),
        })
        .collect();
    let star = lang::star(
        host("proxy"),
        (1..=3).map(|i| host(&format!("host{i}"))).collect(),
        &guests,
        name("lan0"),
    )
    .expect("a star");
    write("lang", "star", lang::print(&star));
    write(
        "lang",
        "figure-2",
        "# Seed 004, Fig. 2 in the language.\n\
         BEGIN\n\
         HOST vnet AT Host1 2222 eth0\n\
         HOST vnet AT Proxy 2222 eth0\n\
         ADD\n\
         \x20 LINK TCP Host1 Host1 Proxy\n\
         \x20 FORWARD INTERFACE Host1 ANY 00:50:56:00:21:01 vmnet1\n\
         \x20 FORWARD EDGE Host1 00:50:56:00:21:01 NONE Host1 Proxy\n\
         END\n",
    );
    write(
        "lang",
        "add-and-delete",
        "begin host alice at h1 2222 eth0 host bob at h2 1 eth1 HOST u AT p 65535 e\n\
         add link udp h1 h1 p LINK tcp h2 p h2 link UDP h1 h2 h1\n\
         \x20 forward edge h1 not 02:00:00:00:00:01 any h1 h2 # fast path\n\
         \x20 forward edge h1 any NOT 02:00:00:00:00:02 h1 p\n\
         \x20 forward interface h2 02:00:00:00:00:02 any vm2\n\
         delete forward edge h1 any NOT 02:00:00:00:00:02 h1 p\n\
         DELETE LINK UDP h1 h1 p\n\
         end\n",
    );
}

fn json_seeds() {
    let requests = [
        r#"{"op":"info"}"#,
        r#"{"op":"add-link","peer":"host1","kind":"udp","addr":"10.200.0.1:5400"}"#,
        r#"{"op":"add-link","peer":"host2","kind":"tcp"}"#,
        r#"{"op":"delete-link","peer":"host1"}"#,
        r#"{"op":"add-rule","rule":{"src":{"match":"any"},"dst":{"match":"is","mac":"02:56:4e:00:00:01"},"target":{"port":"vm1"}}}"#,
        r#"{"op":"add-rule","rule":{"src":{"match":"not","mac":"02:56:4e:00:00:02"},"dst":{"match":"none"},"target":{"link":"proxy"}}}"#,
        r#"{"op":"delete-rule","src":{"match":"any"},"dst":{"match":"none"}}"#,
        r#"{"op":"list-interfaces"}"#,
        r#"{"op":"list-links"}"#,
        r#"{"op":"list-rules"}"#,
        r#"{"op":"set-config-bound","millis":500}"#,
        r#"{"op":"attach-port","port":{"name":"vm1","kind":{"type":"tap","ifname":"eth0","netns":"/run/netns/vm1"},"macs":["02:56:4e:00:00:01"]}}"#,
        r#"{"op":"attach-port","port":{"name":"lan0","kind":{"type":"tap","ifname":"lan0"},"lan":true}}"#,
        r#"{"op":"detach-port","name":"vm1"}"#,
        r#"{"op":"stats"}"#,
    ];
    let stats = serde_json::to_string(&Response::Stats(Box::default())).expect("JSON");
    let responses = [
        r#"{"result":"ok"}"#,
        r#"{"result":"ok","message":"the link already existed; address updated"}"#,
        r#"{"result":"error","message":"no such rule"}"#,
        r#"{"result":"info","name":"proxy","role":"proxy","session":"0000000020000002","listen":"10.200.0.100:5400","config_bound_ms":500,"uptime_s":1.5}"#,
        r#"{"result":"interfaces","ports":[{"spec":{"name":"vm1","kind":{"type":"tap","ifname":"eth0"},"macs":["02:56:4e:00:00:01"],"lan":false},"attached":true}]}"#,
        r#"{"result":"links","links":[{"peer":"host1","kind":"udp","addr":"10.200.0.1:5400","state":"up","rtt_s":0.002}]}"#,
        r#"{"result":"rules","rules":[{"src":{"match":"any"},"dst":{"match":"none"},"target":{"port":"lan0"}}]}"#,
        &stats,
    ];
    let mut lines = String::new();
    for (i, r) in requests.iter().enumerate() {
        if let Err(e) = serde_json::from_str::<Request>(r) {
            eprintln!("warning: control seed request {i} does not parse: {e}");
        }
        lines.push_str(r);
        lines.push('\n');
    }
    for (i, r) in responses.iter().enumerate() {
        if let Err(e) = serde_json::from_str::<Response>(r) {
            eprintln!("warning: control seed response {i} does not parse: {e}");
        }
        lines.push_str(r);
        lines.push('\n');
    }
    write("control", "requests-and-responses", &lines);
    write("control", "add-rule", requests[4]);
    write("control", "info", responses[3]);
    write(
        "control",
        "handshake",
        format!(
            "{{\"challenge\":\"{}\"}}\n{{\"proof\":\"{}\"}}\n",
            "00112233445566778899aabbccddeeff",
            "ab".repeat(32)
        ),
    );

    let state = r#"{"version":1,"name":"host1","session":268435457,"links":[{"peer":"proxy","kind":"udp","addr":"10.200.0.100:5400"},{"peer":"host2","kind":"tcp"}],"rules":[{"src":{"match":"any"},"dst":{"match":"is","mac":"02:56:4e:00:00:01"},"target":{"port":"vm1"}},{"src":{"match":"any"},"dst":{"match":"none"},"target":{"link":"proxy"}},{"src":{"match":"is","mac":"02:56:4e:00:00:01"},"dst":{"match":"is","mac":"02:56:4e:00:00:02"},"target":{"link":"host2"}}],"ports":[{"name":"vm1","kind":{"type":"tap","ifname":"eth0","netns":"/run/netns/vm1"},"macs":["02:56:4e:00:00:01"],"lan":false}],"config_bound_ms":250}"#;
    if let Err(e) = serde_json::from_str::<Saved>(state) {
        eprintln!("warning: the state seed does not parse: {e}");
    }
    write("state", "host", state);
    let empty = serde_json::to_string_pretty(&Saved::empty(name("proxy"))).expect("JSON");
    write("state", "empty", empty);
}

fn text_seeds() {
    write(
        "hosts",
        "testbed",
        "# vnet daemons of run demo\n\
         10.200.0.1 host1\n\
         10.200.0.2\thost2 host2.site-a   # two names\n\
         10.200.0.100 proxy\n\
         fd00::1 host3\n\
         ::1 localhost ip6-localhost\n",
    );
    write("hosts", "bad-line", "10.200.0.1 host1\nhost2 10.200.0.2\n");

    let scenarios = root().join("../../experiments/scenarios");
    let mut files: Vec<PathBuf> = fs::read_dir(&scenarios)
        .expect("experiments/scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let stem = path.file_stem().expect("a file name").to_string_lossy();
        write("scenario", &stem, fs::read(&path).expect("a scenario"));
    }
    write("scenario", "rate", "1.5Mbit/s");
    write("scenario", "duration", "0.5ms");

    for (seed, text) in [
        ("mac", "02:56:4e:00:00:01"),
        ("mac-short", "2:56:4E:0:0:1"),
        ("name", "host1.site-a_2"),
        (
            "key",
            "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\n",
        ),
        ("guest", "host1:vm1:02:56:4e:00:00:01"),
        ("daemon", "host1:5400"),
        ("ifname", "eth0"),
    ] {
        write("model", seed, text);
    }
}

/// VTTIF updates as a daemon encodes them, and a truth file of the offline tool.
fn vttif_seeds() {
    let mac = |i: u8| vnetd::model::Mac([2, 0x56, 0x4e, 0, 0, i]);
    let entries: Vec<vttif::update::Entry> = (1..=4)
        .map(|i| vttif::update::Entry {
            src: mac(i),
            dst: mac(i % 4 + 1),
            bytes: 1514 * u64::from(i),
            frames: u64::from(i),
        })
        .collect();
    let mut update = Vec::new();
    vttif::update::encode(7, &entries, &mut update);
    write("vttif", "update", &update);
    let mut empty = Vec::new();
    vttif::update::encode(0, &[], &mut empty);
    write("vttif", "empty-update", &empty);
    write(
        "vttif",
        "truth",
        "guests = [\"02:56:4e:00:00:01\", \"02:56:4e:00:00:02\", \"02:56:4e:00:00:03\"]\n\n\
         [[phase]]\nfrom_s = 0.0\nto_s = 10.0\ntopology = \"ring\"\n",
    );
}

fn main() {
    vttif_seeds();
    wire_seeds();
    reassembly_seeds();
    lang_seeds();
    json_seeds();
    text_seeds();
}

//! `testbed up` with a bad scenario file fails with the file, line and problem, and creates
//! nothing (fast tier: it never gets as far as needing root).

use std::path::Path;
use std::process::Command;

fn up(name: &str, text: &str) -> (bool, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-scenarios");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["up"])
        .arg(&file)
        .args(["--run", &format!("t-bad-{name}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // Nothing of the run exists.
    assert!(!Path::new("/run/testbed")
        .join(format!("t-bad-{name}"))
        .exists());
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .any(|n| n.starts_with(&format!("tb-t-bad-{name}.")))
        })
        .unwrap_or(false);
    assert!(!netns, "namespaces were created from a bad file");
    (out.status.success(), err)
}

const BASE: &str =
    "name = \"x\"\nrate_scale = 1\n[[site]]\nname = \"a\"\nhosts = 2\nproxy = true\n";

#[test]
fn bad_files_are_refused_with_file_line_and_problem() {
    let cases = [
        ("unknown-key", format!("{BASE}colour = \"red\"\n"), "7:1", "unknown field `colour`"),
        ("missing-host", format!("{BASE}[[host]]\nname = \"host9\"\n"), "8:8", "no host named `host9`"),
        ("bad-rate", format!("{BASE}[[site]]\nname = \"b\"\n[[link]]\nbetween = [\"a\", \"b\"]\nrate = \"fast\"\n"), "11:8", "`fast` does not start with a number"),
        ("duplicate", format!("{BASE}[[site]]\nname = \"a\"\n"), "8:8", "duplicate site name `a`"),
    ];
    for (name, text, at, problem) in cases {
        let (ok, err) = up(name, &text);
        assert!(!ok, "{name}: accepted");
        assert!(
            err.contains(&format!("{name}.toml:{at}: ")),
            "{name}: no file:line:column in {err}"
        );
        assert!(err.contains(problem), "{name}: {err}");
    }
}

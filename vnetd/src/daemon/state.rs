//! What a daemon persists so that a restart loses nothing: its links (with the peers'
//! addresses), rules and ports, the configuration-time bound, and its last session id (so the
//! next session id is larger whatever the clock does; see [`crate::wire::SessionId`]).
//!
//! One JSON file, `STATE_DIR/state.json`, rewritten whole after every change and before the
//! change is acknowledged: written to a temporary file, then renamed over the old one, so a
//! daemon killed at any moment leaves either the old or the new state, never a torn one (the
//! kernel keeps what was written when the process dies). Reaching the disk is a separate
//! step, [`Syncer`]: a thread that flushes the file (and its directory) shortly after each
//! change, coalescing bursts. So a primitive costs a write and a rename (some 50 µs), not a
//! disk flush (which took 0.3 to 12 ms on this machine's shared virtual disk, `bench setup`);
//! what a *machine* crash can lose is the changes of the last few tens of milliseconds.

use std::fs::{self, File};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::control::PortSpec;
use crate::model::{LinkKind, Name, Rule};

/// The format's version; a file of another version is refused rather than misread.
const VERSION: u32 = 1;

/// A link as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLink {
    /// The other end.
    pub peer: Name,
    /// The transport.
    pub kind: LinkKind,
    /// The peer's address, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
}

/// Everything a daemon persists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// [`VERSION`].
    pub version: u32,
    /// Whose state this is: a daemon refuses another's.
    pub name: Name,
    /// The last session id it used.
    pub session: Option<u64>,
    /// Its links.
    pub links: Vec<SavedLink>,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// Its ports.
    pub ports: Vec<PortSpec>,
    /// The configuration-time bound, in milliseconds.
    pub config_bound_ms: Option<u64>,
}

impl Saved {
    /// The state of a daemon that has none yet.
    pub fn empty(name: Name) -> Saved {
        Saved {
            version: VERSION,
            name,
            session: None,
            links: Vec::new(),
            rules: Vec::new(),
            ports: Vec::new(),
            config_bound_ms: None,
        }
    }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, renaming or creating the directory failed.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a state file this version understands.
    #[error("{} is not a vnetd state file of version {VERSION}: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file belongs to another daemon.
    #[error("{} holds the state of `{found}`, not of `{expected}`: give each daemon its own --state-dir", .path.display())]
    OtherDaemon {
        /// The file.
        path: PathBuf,
        /// This daemon's name.
        expected: Name,
        /// The name in the file.
        found: Name,
    },
}

/// The state file of `dir`.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Loads the state of daemon `name` from `dir`; `None` if there is none yet (the directory is
/// created if missing).
///
/// # Errors
/// [`StateError`]: unreadable, corrupt, or another daemon's.
pub fn load(dir: &Path, name: &Name) -> Result<Option<Saved>, StateError> {
    fs::create_dir_all(dir).map_err(|source| StateError::Io {
        what: "create state directory",
        path: dir.to_owned(),
        source,
    })?;
    let path = state_file(dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                what: "read",
                path,
                source,
            })
        }
    };
    let saved: Saved = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if saved.version != VERSION {
        return Err(StateError::Corrupt {
            path,
            reason: format!("version {}", saved.version),
        });
    }
    if saved.name != *name {
        return Err(StateError::OtherDaemon {
            path,
            expected: name.clone(),
            found: saved.name,
        });
    }
    Ok(Some(saved))
}

/// Writes `saved` to `dir` atomically (temporary file, rename); [`Syncer`] gets it to disk.
///
/// # Errors
/// [`StateError::Io`].
pub fn save(dir: &Path, saved: &Saved) -> Result<(), StateError> {
    let path = state_file(dir);
    let tmp = dir.join("state.json.tmp");
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io { what, path, source }
    };
    let text = serde_json::to_vec_pretty(saved).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(&text).map_err(io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("rename into place", &path))
}

/// Flushes the state file of a directory to disk, in a thread of its own, soon after each
/// [`Syncer::dirty`]: bursts of changes cost one flush.
#[derive(Debug)]
pub struct Syncer {
    dirty: std::sync::mpsc::Sender<()>,
}

/// How long the syncer waits for more changes before flushing.
const SYNC_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

impl Syncer {
    /// Starts the thread for `dir`.
    pub fn start(dir: &Path) -> Syncer {
        let (dirty, changes) = std::sync::mpsc::channel::<()>();
        let dir = dir.to_owned();
        std::thread::spawn(move || {
            while changes.recv().is_ok() {
                std::thread::sleep(SYNC_DELAY);
                while changes.try_recv().is_ok() {}
                let flushed = File::open(state_file(&dir))
                    .and_then(|f| f.sync_all())
                    .and_then(|()| File::open(&dir)?.sync_all());
                if let Err(e) = flushed {
                    tracing::warn!("flush the state in {} to disk: {e}", dir.display());
                }
            }
        });
        Syncer { dirty }
    }

    /// The state file changed.
    pub fn dirty(&self) {
        let _ = self.dirty.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::PortKind;
    use crate::model::{DstMatch, SrcMatch, Target};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vnetd-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn state_round_trips_and_refuses_others_and_garbage() {
        let dir = temp_dir("rt");
        let me: Name = "host1".parse().unwrap();
        assert_eq!(load(&dir, &me).unwrap(), None);
        let mut saved = Saved::empty(me.clone());
        saved.session = Some(42);
        saved.links.push(SavedLink {
            peer: "proxy".parse().unwrap(),
            kind: LinkKind::Udp,
            addr: Some("10.0.0.1:5400".parse().unwrap()),
        });
        saved.rules.push(Rule {
            src: SrcMatch::Any,
            dst: DstMatch::None,
            target: Target::Link("proxy".parse().unwrap()),
        });
        saved.ports.push(PortSpec {
            name: "vm1".parse().unwrap(),
            kind: PortKind::Tap {
                ifname: "eth0".into(),
                netns: None,
            },
            macs: vec!["02:56:4e:00:00:01".parse().unwrap()],
            lan: false,
        });
        save(&dir, &saved).unwrap();
        assert_eq!(load(&dir, &me).unwrap(), Some(saved));
        let other: Name = "host2".parse().unwrap();
        let err = load(&dir, &other).unwrap_err().to_string();
        assert!(err.contains("not of `host2`"), "{err}");
        fs::write(state_file(&dir), "{ not json").unwrap();
        let err = load(&dir, &me).unwrap_err().to_string();
        assert!(err.contains("not a vnetd state file"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! TAP devices created directly inside a target network namespace.
//!
//! The calling thread enters the target namespace (`setns(CLONE_NEWNET)`),
//! opens `/dev/net/tun`, attaches a new TAP interface with `TUNSETIFF`
//! (`IFF_TAP | IFF_NO_PI`: raw Ethernet frames, no packet-info header, no
//! virtio-net header, so the kernel segments GSO packets and fills in
//! checksums before handing frames to us), and returns to its original
//! namespace. The interface is therefore born inside the target namespace and
//! no name is ever created in the emulator's own namespace.
//!
//! The file descriptor keeps working from any namespace. The TAP is not
//! persistent: it disappears when the descriptor is closed (i.e. when the
//! [`Tap`] is dropped or the process exits). It is created administratively
//! down; the caller brings it up (and e.g. enslaves it to a bridge).

use std::ffi::c_short;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use nix::sched::{setns, CloneFlags};

/// `IFF_TAP | IFF_NO_PI` as the `short` that `struct ifreq` carries.
// The flags are 0x1002, which fits a c_short.
#[allow(clippy::cast_possible_truncation)]
const TAP_FLAGS: c_short = (libc::IFF_TAP | libc::IFF_NO_PI) as c_short;

/// An open TAP device (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Creates TAP `ifname` inside the network namespace `netns` (a bind-mounted
    /// namespace such as `/run/netns/NAME`, or `/proc/PID/ns/net`).
    ///
    /// Errors name the step, e.g. `create TAP wan0 in /run/netns/x: ...`.
    pub fn create(netns: &Path, ifname: &str) -> anyhow::Result<Tap> {
        validate_ifname(ifname)?;
        let target = File::open(netns)
            .with_context(|| format!("open network namespace {}", netns.display()))?;
        // This thread's namespace, to come back to.
        let home = File::open("/proc/thread-self/ns/net")
            .context("open the current thread's network namespace")?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("enter network namespace {}", netns.display()))?;
        let created = open_tap(ifname);
        if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
            // The thread is now stuck in the wrong namespace; the TAP (if any)
            // is closed again when `created` is dropped.
            return Err(anyhow!(e)).context(format!(
                "return to the original network namespace after creating TAP {ifname} in {}",
                netns.display()
            ));
        }
        let file =
            created.with_context(|| format!("create TAP {ifname} in {}", netns.display()))?;
        Ok(Tap {
            file,
            name: ifname.to_owned(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TAP's file: `read` returns one frame, `write` injects one frame.
    /// Non-blocking: `WouldBlock` when no frame is waiting.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Rejects names the kernel would reject (or silently truncate).
pub fn validate_ifname(ifname: &str) -> anyhow::Result<()> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        bail!(
            "invalid interface name {ifname:?}: must be 1..={} bytes",
            libc::IFNAMSIZ - 1
        );
    }
    if ifname == "." || ifname == ".." {
        bail!("invalid interface name {ifname:?}");
    }
    if ifname
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        bail!("invalid interface name {ifname:?}: contains '/', ':', NUL or whitespace");
    }
    Ok(())
}

/// Opens `/dev/net/tun` and attaches TAP `ifname` in the current namespace.
fn open_tap(ifname: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    // SAFETY: `ifreq` is a plain C struct (a char array and a union of
    // integers, arrays, sockaddrs and a raw pointer), for which all-zero bytes
    // is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // `validate_ifname` guarantees len < IFNAMSIZ, so the name stays
    // NUL-terminated by the zeroed tail.
    for (dst, &src) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = TAP_FLAGS;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, and `req` is a
    // valid, exclusively borrowed `ifreq` that outlives the call; the fd is
    // open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_validated() {
        for ok in ["tap0", "a", "lemu-123456-ab", "x_y.z"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "0123456789abcdef", "a/b", "a b", "a:b", ".", ".."] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_namespace_is_reported_with_its_path() {
        let err = Tap::create(Path::new("/nonexistent/netns/x"), "tap0").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("open network namespace /nonexistent/netns/x"),
            "{msg}"
        );
    }
}

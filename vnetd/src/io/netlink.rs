//! Just enough rtnetlink to change a network interface: one `RTM_SETLINK` request (rename
//! nothing; set MAC, MTU, up/down, or move into another network namespace) and the
//! kernel's acknowledgement.
//!
//! The socket acts in the network namespace of the thread that opened it, whatever thread
//! uses it later; callers open it inside the namespace that holds the interface.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

// Kernel ABI numbers (uapi/linux/netlink.h, rtnetlink.h, if_link.h), spelt out here rather
// than taken from libc, whose module for them differs between libc versions.
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const RTM_SETLINK: u16 = 19;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_NET_NS_FD: u16 = 28;
/// `struct nlmsghdr`: length, type, flags, sequence number, port id.
const NLMSG_HDR_LEN: usize = 16;
/// `struct ifinfomsg`: family, pad, type, index, flags, change mask.
const IFINFO_LEN: usize = 16;

/// One change to one interface, named as it is in the socket's namespace. `None` leaves a
/// setting alone.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinkChange<'a> {
    /// The interface's current name.
    pub name: &'a str,
    /// New hardware address.
    pub mac: Option<[u8; 6]>,
    /// New MTU.
    pub mtu: Option<u32>,
    /// Administratively up (`true`) or down.
    pub up: Option<bool>,
    /// Move the interface into the network namespace this descriptor refers to.
    pub netns_fd: Option<RawFd>,
}

/// A `NETLINK_ROUTE` socket bound to the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
}

impl RouteSocket {
    /// Opens a route socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        Ok(Self { fd, seq: 0 })
    }

    /// Sends `change` as one `RTM_SETLINK` request and waits for the kernel's answer.
    ///
    /// # Errors
    ///
    /// The kernel's refusal as an `io::Error` (e.g. `ENODEV` for an unknown name, `EEXIST`
    /// when the target namespace already has an interface of that name, `EINVAL` for an
    /// MTU out of range, `EPERM` without `CAP_NET_ADMIN`), or a socket error.
    pub(crate) fn set_link(&mut self, change: &LinkChange<'_>) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let request = encode_setlink(change, self.seq)?;
        let kernel = NetlinkAddr::new(0, 0);
        sendto(self.fd.as_raw_fd(), &request, &kernel, MsgFlags::empty())?;
        let mut buf = [0u8; 4096];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            if let Some(answer) = find_ack(&buf[..n.min(buf.len())], self.seq) {
                return answer;
            }
        }
    }
}

/// Encodes an `RTM_SETLINK` request with `NLM_F_ACK`, the interface named by `IFLA_IFNAME`.
fn encode_setlink(change: &LinkChange<'_>, seq: u32) -> io::Result<Vec<u8>> {
    let mut msg = Vec::with_capacity(128);
    msg.extend_from_slice(&[0; NLMSG_HDR_LEN]); // length and header filled in below
    let (flags, mask) = match change.up {
        Some(true) => (libc::IFF_UP as u32, libc::IFF_UP as u32),
        Some(false) => (0, libc::IFF_UP as u32),
        None => (0, 0),
    };
    // ifinfomsg: AF_UNSPEC, pad, type 0, index 0 (use the name), flags, change mask.
    msg.extend_from_slice(&[0; 8]);
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&mask.to_ne_bytes());
    debug_assert_eq!(msg.len(), NLMSG_HDR_LEN + IFINFO_LEN);

    let mut name = change.name.as_bytes().to_vec();
    name.push(0);
    push_attr(&mut msg, IFLA_IFNAME, &name)?;
    if let Some(mac) = change.mac {
        push_attr(&mut msg, IFLA_ADDRESS, &mac)?;
    }
    if let Some(mtu) = change.mtu {
        push_attr(&mut msg, IFLA_MTU, &mtu.to_ne_bytes())?;
    }
    if let Some(fd) = change.netns_fd {
        push_attr(&mut msg, IFLA_NET_NS_FD, &fd.to_ne_bytes())?;
    }

    let len = u32::try_from(msg.len()).map_err(|_| too_long())?;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    msg[4..6].copy_from_slice(&RTM_SETLINK.to_ne_bytes());
    msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    // Port id 0: the kernel fills in ours.
    Ok(msg)
}

/// Appends one `rtattr` (length, type, value, padding to 4 bytes).
fn push_attr(msg: &mut Vec<u8>, kind: u16, value: &[u8]) -> io::Result<()> {
    let len = u16::try_from(4 + value.len()).map_err(|_| too_long())?;
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(value);
    msg.resize(msg.len().next_multiple_of(4), 0);
    Ok(())
}

fn too_long() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "netlink attribute too long")
}

/// Looks through a buffer of netlink messages for the answer to request `seq`: `Ok` for an
/// acknowledgement, the kernel's error otherwise, `None` if it is not there.
fn find_ack(mut buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    while buf.len() >= NLMSG_HDR_LEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().ok()?);
        let msg_seq = u32::from_ne_bytes(buf[8..12].try_into().ok()?);
        if len < NLMSG_HDR_LEN || len > buf.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink answer",
            )));
        }
        if kind == NLMSG_ERROR && msg_seq == seq && len >= NLMSG_HDR_LEN + 4 {
            let code = i32::from_ne_bytes(buf[16..20].try_into().ok()?);
            return Some(if code == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(code.saturating_neg()))
            });
        }
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setlink_request_layout() {
        let change = LinkChange {
            name: "tap0",
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: Some(1500),
            up: Some(true),
            netns_fd: None,
        };
        let msg = encode_setlink(&change, 7).unwrap();
        assert_eq!(msg.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(
            u16::from_ne_bytes(msg[4..6].try_into().unwrap()),
            RTM_SETLINK
        );
        assert_eq!(u32::from_ne_bytes(msg[8..12].try_into().unwrap()), 7);
        // ifinfomsg flags and change mask: IFF_UP.
        assert_eq!(u32::from_ne_bytes(msg[24..28].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(msg[28..32].try_into().unwrap()), 1);
        // First attribute: IFLA_IFNAME "tap0\0", 9 bytes, padded to 12.
        assert_eq!(&msg[32..34], &9u16.to_ne_bytes());
        assert_eq!(&msg[34..36], &IFLA_IFNAME.to_ne_bytes());
        assert_eq!(&msg[36..41], b"tap0\0");
        // Then IFLA_ADDRESS (10 bytes, padded to 12) and IFLA_MTU (8).
        assert_eq!(&msg[44..46], &10u16.to_ne_bytes());
        assert_eq!(&msg[48..54], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&msg[58..60], &IFLA_MTU.to_ne_bytes());
        assert_eq!(msg.len(), 64);
    }

    #[test]
    fn acknowledgements_and_errors_are_found_by_sequence() {
        let answer = |seq: u32, code: i32| {
            let mut m = Vec::new();
            m.extend_from_slice(&36u32.to_ne_bytes());
            m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m.extend_from_slice(&0u16.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(&code.to_ne_bytes());
            m.extend_from_slice(&[0; 16]);
            m
        };
        assert!(find_ack(&answer(3, 0), 3).unwrap().is_ok());
        let err = find_ack(&answer(3, -libc::ENODEV), 3).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
        assert!(find_ack(&answer(2, 0), 3).is_none());
        let mut two = answer(2, -1);
        two.extend(answer(3, 0));
        assert!(find_ack(&two, 3).unwrap().is_ok());
        // Garbage never panics.
        assert!(find_ack(&[0xff; 3], 1).is_none());
        assert!(find_ack(&[0xff; 40], 1).unwrap().is_err());
        assert!(find_ack(&[0; 40], 1).unwrap().is_err());
    }
}

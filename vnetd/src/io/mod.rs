//! The daemon's I/O edge: the kernel objects frames and datagrams pass through.
//!
//! Everything above this module is pure (bytes and time in, decisions out); everything here
//! is a thin, non-blocking wrapper over one kind of file descriptor, with no policy:
//!
//! - [`tap`]: a TAP device (`IFF_TAP | IFF_NO_PI`), created in the current network namespace
//!   or born inside another one, movable into a guest's namespace by its `/run/netns` path,
//!   configured (MAC, MTU, up) by netlink; one Ethernet frame per read or write. The link
//!   emulator of the experiments crate uses the same type.
//!   A TAP can also be made persistent, so that the interface and what the guest
//!   configured on it outlive the daemon, and re-attached by name after a restart.
//! - [`pcap`]: an existing interface (a bridge port, a veth end, a NIC; in any namespace)
//!   attached through libpcap, the classic VNET way: promiscuous, inbound-only capture in
//!   batches from libpcap's ring, and injection.
//! - [`unix`]: a unix datagram socket at a path the daemon owns, one frame per datagram,
//!   for guests that are processes (QEMU's `-netdev dgram` with unix addresses); its peer
//!   given or learnt.
//! - [`udp`]: the link socket: batched receive (`recvmmsg`) into reusable buffers, batched
//!   send (`sendmmsg`), UDP segmentation offload (`UDP_SEGMENT`) for the equal-size fragments
//!   of one frame with a fallback when the kernel or the route refuses it, the don't-fragment
//!   policy and socket buffer sizes.
//!
//! All hand out their file descriptor ([`std::os::fd::AsFd`]) for whatever readiness loop
//! the daemon runs (`poll`, epoll, mio's `SourceFd`). None blocks: "nothing to read" and
//! "no room to write" are ordinary outcomes, told apart from real errors.
//!
//! # Unsafe code
//!
//! Where nix has a safe wrapper it is used (sockets, socket options, `setns`, netlink
//! addresses, `read`/`write`). What remains is `ioctl` on `/dev/net/tun`, `setsockopt` for
//! the don't-fragment options nix lacks, and the `recvmmsg`/`sendmmsg`/`sendmsg` calls of
//! the data path: nix's `MultiHeaders` keeps raw pointers between calls (which would make
//! the socket's batch state neither `Send` nor `Sync`), allocates its control buffers per
//! `sendmsg`, and shares one set of control messages across a `sendmmsg` batch. Here the
//! message headers are built on the stack for each call, pointing into buffers borrowed for
//! that call only, so nothing unsafe outlives a system call and the types stay `Send`.

mod netlink;
pub mod pcap;
pub mod tap;
pub mod udp;
pub mod unix;

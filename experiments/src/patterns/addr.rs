//! Rank addresses: `host` or `host:port`.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Port used when an address does not give one.
pub const DEFAULT_PORT: u16 = 7400;

/// Where a rank listens: a host name or IP address and a TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    host: String,
    port: u16,
}

/// Why an address string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad address `{0}` (expected HOST or HOST:PORT, IPv6 as [ADDR]:PORT or bare ADDR)")]
pub struct AddrError(String);

impl PeerAddr {
    /// An address from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        PeerAddr {
            host: host.into(),
            port,
        }
    }

    /// The host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resolves the address (DNS for host names).
    ///
    /// # Errors
    /// Resolution failures, or `NotFound` when the name resolves to nothing.
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "name resolves to no address",
            ));
        }
        Ok(addrs)
    }
}

impl fmt::Display for PeerAddr {
    /// `host:port`, with IPv6 addresses in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for PeerAddr {
    type Err = AddrError;

    /// Accepts `host`, `host:port`, `a.b.c.d[:port]`, `[v6]:port`, `[v6]` and a bare IPv6
    /// address; the port defaults to [`DEFAULT_PORT`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = || AddrError(s.to_string());
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(PeerAddr::new(sa.ip().to_string(), sa.port()));
        }
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(PeerAddr::new(ip.to_string(), DEFAULT_PORT));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| err())?),
            None => (s, DEFAULT_PORT),
        };
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if valid_host {
            Ok(PeerAddr::new(host, port))
        } else {
            Err(err())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> PeerAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!(addr("10.0.0.2"), PeerAddr::new("10.0.0.2", DEFAULT_PORT));
        assert_eq!(addr("10.0.0.2:9000"), PeerAddr::new("10.0.0.2", 9000));
        assert_eq!(
            addr("node-3.local"),
            PeerAddr::new("node-3.local", DEFAULT_PORT)
        );
        assert_eq!(addr("localhost:1"), PeerAddr::new("localhost", 1));
        assert_eq!(addr("::1"), PeerAddr::new("::1", DEFAULT_PORT));
        assert_eq!(addr("[fd00::2]"), PeerAddr::new("fd00::2", DEFAULT_PORT));
        assert_eq!(addr("[fd00::2]:81"), PeerAddr::new("fd00::2", 81));
        assert_eq!(addr("[fd00::2]:81").to_string(), "[fd00::2]:81");
        assert_eq!(addr(" 10.0.0.2 ").to_string(), "10.0.0.2:7400");
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            ":80",
            "host:",
            "host:70000",
            "host:x",
            "a b",
            "h/x:1",
            "[::1]:x",
        ] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_loopback() {
        let resolved = addr("127.0.0.1:5").resolve().unwrap();
        assert_eq!(resolved, [SocketAddr::from(([127, 0, 0, 1], 5))]);
    }
}

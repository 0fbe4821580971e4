//! Who is on the other end of a loopback connection.
//!
//! Every account on a machine can connect to `127.0.0.1`, so "the request
//! comes from loopback" does not say "the request comes from the
//! operator". On Linux the kernel says who owns each TCP socket: the
//! client's end of a loopback connection is the socket whose own address
//! is the peer address the server sees, and the kernel tells its owning
//! user id (asked over `sock_diag` netlink, see [`super::sock_diag`]; from
//! `/proc/net/tcp{,6}` where netlink is not allowed). A tokenless request
//! is the local operator only when that user is the one the server runs as.
//!
//! Elsewhere the owner cannot be read this way; there the old rule (any
//! loopback connection) holds, and `auth.required: true` is the way to
//! demand tokens from every local account.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The owner of a connection's client socket, as far as it can be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerOwner {
    /// The peer is not on this machine: nothing to look up.
    Remote,
    /// A loopback socket owned by the user the server runs as.
    ServerUser,
    /// A loopback socket owned by another user (its uid).
    OtherUser(u32),
    /// A loopback socket whose owner could not be read: this platform
    /// does not tell, or the socket was gone before it was looked up.
    Unknown,
}

impl PeerOwner {
    /// Looks up the owner of the client socket `peer`, connected to the
    /// server's socket `server_end`.
    pub fn of(peer: SocketAddr, server_end: SocketAddr) -> PeerOwner {
        if !peer.ip().to_canonical().is_loopback() {
            return PeerOwner::Remote;
        }
        match socket_owner(peer, server_end) {
            Some(uid) if uid == server_uid() => PeerOwner::ServerUser,
            Some(uid) => PeerOwner::OtherUser(uid),
            None => PeerOwner::Unknown,
        }
    }

    /// Whether a tokenless request over this connection may be the local
    /// operator (the other checks — loopback bind, `Host`, `Origin` —
    /// still apply).
    pub fn may_be_operator(self) -> bool {
        match self {
            PeerOwner::ServerUser => true,
            // Where the kernel cannot be asked, loopback is all there is.
            PeerOwner::Unknown => !OWNER_KNOWABLE,
            PeerOwner::Remote | PeerOwner::OtherUser(_) => false,
        }
    }

    /// Why a tokenless request over this connection is not the operator.
    pub fn refusal(self) -> Option<String> {
        match self {
            _ if self.may_be_operator() => None,
            PeerOwner::OtherUser(uid) => Some(format!(
                "the connection belongs to another local account (uid {uid}), not to the user the server runs as (uid {})",
                server_uid()
            )),
            PeerOwner::Unknown => Some(
                "the owner of the connection could not be read from /proc/net/tcp, so it cannot be the server's own user"
                    .into(),
            ),
            PeerOwner::Remote | PeerOwner::ServerUser => None,
        }
    }
}

/// Whether this platform tells socket owners (see the module comment).
const OWNER_KNOWABLE: bool = cfg!(target_os = "linux");

/// The effective user id of this process.
pub fn server_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(target_os = "linux")]
fn socket_owner(peer: SocketAddr, server_end: SocketAddr) -> Option<u32> {
    use super::sock_diag::{Lookup, owner};
    match owner(peer, server_end) {
        Lookup::Owner(uid) => return Some(uid),
        Lookup::Gone => return None,
        // Without netlink (a restricted sandbox), the table is the way.
        Lookup::Unavailable => {}
    }
    let server_port = server_end.port();
    // A v4 client of a dual-stack listener is seen as `::ffff:a.b.c.d` but
    // its socket is listed in `tcp`; a v6 client only in `tcp6`.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let file = match peer {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let table = std::fs::read_to_string(file).ok()?;
    owner_in_table(&table, peer, server_port)
}

#[cfg(not(target_os = "linux"))]
fn socket_owner(_peer: SocketAddr, _server_end: SocketAddr) -> Option<u32> {
    None
}

/// TCP states whose socket no longer belongs to a process: `TIME_WAIT`
/// (06) and `LISTEN` (0A) lines carry uid 0 or the listener's owner.
const NOT_A_CLIENT: [&str; 2] = ["06", "0A"];

/// Finds the line of a `/proc/net/tcp{,6}` table whose local address is
/// `peer` and whose remote port is `server_port`, and returns its uid.
fn owner_in_table(table: &str, peer: SocketAddr, server_port: u16) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, state, uid) = (
            fields.get(1)?,
            fields.get(2)?,
            fields.get(3)?,
            fields.get(7)?,
        );
        if NOT_A_CLIENT.contains(state) {
            return None;
        }
        if parse_address(local)? != peer || parse_address(remote)?.port() != server_port {
            return None;
        }
        uid.parse().ok()
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The kernel
/// prints each 32-bit word of the address in the machine's byte order.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = address.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_endian = "little")]
    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 65534        0 3 1 0 20 4 30 10 -1
   3: 0100007F:D432 0100007F:1F90 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn the_client_end_of_the_connection_gives_the_owner() {
        let peer: SocketAddr = "127.0.0.1:54321".parse().expect("addr");
        assert_eq!(owner_in_table(TABLE, peer, 8080), Some(65534));
        // The server's own end (local 8080) is not the client's.
        let other_port: SocketAddr = "127.0.0.1:54322".parse().expect("addr");
        assert_eq!(
            owner_in_table(TABLE, other_port, 8080),
            None,
            "TIME_WAIT is nobody's"
        );
        assert_eq!(
            owner_in_table(TABLE, peer, 9090),
            None,
            "another server port"
        );
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn v6_addresses_parse_word_by_word() {
        // ::1 port 8080 as /proc/net/tcp6 prints it.
        let parsed = parse_address("00000000000000000000000001000000:1F90").expect("parses");
        assert_eq!(parsed, "[::1]:8080".parse::<SocketAddr>().expect("addr"));
        // ::ffff:127.0.0.1 becomes the plain v4 address.
        let mapped = parse_address("0000000000000000FFFF00000100007F:0050").expect("parses");
        assert_eq!(mapped, "127.0.0.1:80".parse::<SocketAddr>().expect("addr"));
    }

    #[test]
    fn garbage_is_no_owner() {
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        for table in [
            "",
            "header only",
            "h\n 0: zz:zz yy 01 a b c notanumber",
            "h\n 0: 0100007F",
        ] {
            assert_eq!(owner_in_table(table, peer, 1), None);
        }
        assert_eq!(parse_address("123:45"), None);
        assert_eq!(parse_address("ÿÿÿÿÿÿÿÿ:1F90"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_real_loopback_connection_is_owned_by_this_process_user() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (served, peer) = listener.accept().expect("accept");
        let server_end = served.local_addr().expect("addr");
        assert_eq!(peer, client.local_addr().expect("addr"));
        assert_eq!(PeerOwner::of(peer, server_end), PeerOwner::ServerUser);
        assert!(PeerOwner::of(peer, server_end).may_be_operator());
        let remote: SocketAddr = "10.1.2.3:4".parse().expect("addr");
        assert_eq!(PeerOwner::of(remote, server_end), PeerOwner::Remote);
    }
}

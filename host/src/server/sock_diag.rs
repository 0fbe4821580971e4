//! The owner of one TCP socket, asked of the kernel by its four-tuple.
//!
//! `/proc/net/tcp` lists every socket on the machine: after a load test it
//! holds tens of thousands of `TIME_WAIT` lines (megabytes read for every
//! accepted connection), and it is produced a page at a time, so a line can
//! be skipped while other sockets come and go. The `sock_diag` netlink
//! interface (what `ss` uses) looks one socket up by its addresses and
//! ports, atomically and in microseconds. This module sends that one query.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What the kernel said about a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The socket exists and belongs to this uid.
    Owner(u32),
    /// No such live socket (closed, or only a `TIME_WAIT` remnant).
    Gone,
    /// The interface could not be used here (no netlink, not permitted).
    Unavailable,
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const INET_DIAG_NOCOOKIE: u32 = !0;
/// `TIME_WAIT` and `LISTEN`: sockets no process owns as a client.
const NOT_A_CLIENT: [u8; 2] = [6, 10];

#[repr(C)]
#[derive(Clone, Copy)]
struct NetlinkHeader {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

/// `struct inet_diag_sockid`: ports and addresses in network byte order.
#[repr(C)]
#[derive(Clone, Copy)]
struct SocketId {
    source_port: [u8; 2],
    destination_port: [u8; 2],
    source: [u8; 16],
    destination: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2` behind its netlink header.
#[repr(C)]
#[derive(Clone, Copy)]
struct Request {
    header: NetlinkHeader,
    family: u8,
    protocol: u8,
    extensions: u8,
    pad: u8,
    states: u32,
    id: SocketId,
}

/// The start of `struct inet_diag_msg`, up to the uid.
#[repr(C)]
#[derive(Clone, Copy)]
struct Reply {
    family: u8,
    state: u8,
    timer: u8,
    retransmits: u8,
    id: SocketId,
    expires: u32,
    receive_queue: u32,
    send_queue: u32,
    uid: u32,
}

/// Asks for the owner of the TCP socket whose own address is `local` and
/// whose peer is `remote` (both v4 or both v6 once v4-mapped addresses are
/// unwrapped).
pub fn owner(local: SocketAddr, remote: SocketAddr) -> Lookup {
    let (local, remote) = (canonical(local), canonical(remote));
    let family = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return Lookup::Gone,
    };
    let request = Request {
        header: NetlinkHeader {
            len: std::mem::size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: libc::NLM_F_REQUEST as u16,
            seq: 1,
            pid: 0,
        },
        family: family as u8,
        protocol: libc::IPPROTO_TCP as u8,
        extensions: 0,
        pad: 0,
        states: !0,
        id: SocketId {
            source_port: local.port().to_be_bytes(),
            destination_port: remote.port().to_be_bytes(),
            source: address_bytes(local.ip()),
            destination: address_bytes(remote.ip()),
            interface: 0,
            cookie: [INET_DIAG_NOCOOKIE; 2],
        },
    };
    let Some(socket) = open() else {
        return Lookup::Unavailable;
    };
    if !send(&socket, &request) {
        return Lookup::Unavailable;
    }
    let mut buffer = [0u8; 1024];
    // SAFETY: the buffer is valid for its length; the socket is open.
    let received = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
        )
    };
    let Ok(received) = usize::try_from(received) else {
        return Lookup::Unavailable;
    };
    parse(&buffer[..received])
}

/// Reads the kernel's answer: an error message (no such socket) or one
/// `inet_diag_msg`.
fn parse(answer: &[u8]) -> Lookup {
    let header_len = std::mem::size_of::<NetlinkHeader>();
    let Some(header) = read::<NetlinkHeader>(answer) else {
        return Lookup::Unavailable;
    };
    match header.kind {
        SOCK_DIAG_BY_FAMILY => match answer.get(header_len..).and_then(read::<Reply>) {
            Some(reply) if NOT_A_CLIENT.contains(&reply.state) => Lookup::Gone,
            Some(reply) => Lookup::Owner(reply.uid),
            None => Lookup::Unavailable,
        },
        NLMSG_ERROR => {
            let errno = answer
                .get(header_len..header_len + 4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes)
                .unwrap_or(0);
            if errno == -libc::ENOENT {
                Lookup::Gone
            } else {
                Lookup::Unavailable
            }
        }
        _ => Lookup::Unavailable,
    }
}

fn open() -> Option<OwnedFd> {
    // SAFETY: plain socket creation; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // The kernel answers at once; a second bounds a wait that never ends.
    let timeout = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: the option value points to a live timeval of the right size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    (set == 0).then_some(socket)
}

fn send(socket: &OwnedFd, request: &Request) -> bool {
    // SAFETY: zeroed sockaddr_nl is valid (pid 0 = the kernel).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the request is plain data of the stated size; the address
    // points to a live sockaddr_nl.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            std::ptr::from_ref(request).cast(),
            std::mem::size_of::<Request>(),
            0,
            std::ptr::from_ref(&kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    usize::try_from(sent).is_ok_and(|n| n == std::mem::size_of::<Request>())
}

/// Copies a plain-data struct out of the front of `bytes`.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: the length is checked; `T` is plain data (integers and byte
    // arrays, every bit pattern valid) and the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

fn address_bytes(ip: IpAddr) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => bytes.copy_from_slice(&v6.octets()),
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layouts_are_the_kernels() {
        assert_eq!(std::mem::size_of::<SocketId>(), 48);
        assert_eq!(std::mem::size_of::<Request>(), 16 + 56);
        assert_eq!(std::mem::size_of::<Reply>(), 4 + 48 + 16);
    }

    #[test]
    fn a_live_client_socket_is_found_and_an_unknown_one_is_gone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server_end, peer) = listener.accept().expect("accept");
        let local = server_end.local_addr().expect("local");
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        // The client's socket: its own address is the peer's.
        assert_eq!(owner(peer, local), Lookup::Owner(me));
        let nobody_there = SocketAddr::new(peer.ip(), peer.port().wrapping_add(1));
        assert_eq!(owner(nobody_there, local), Lookup::Gone);
    }

    #[test]
    fn truncated_or_odd_answers_are_not_an_owner() {
        assert_eq!(parse(&[]), Lookup::Unavailable);
        assert_eq!(parse(&[0u8; 8]), Lookup::Unavailable);
        let mut header = [0u8; 16];
        header[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        assert_eq!(parse(&header), Lookup::Unavailable, "no body");
    }
}

//! The client's sockets: how each is made, and what its receive buffer is.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// A non-blocking socket connected to `addr`. Its receive buffer is the system's
/// default, as a user's would be: a bigger one would hold replies the generator has no
/// time to read, and they would come back late rather than be counted as dropped at the
/// client (`client_socket_drops`).
pub(super) fn open_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let any = if addr.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0u8; 4], 0))
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `SO_RCVBUF` of `socket`, as `getsockopt` reports it.
pub(super) fn recv_buffer_bytes(socket: &UdpSocket) -> Option<u64> {
    nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::RcvBuf)
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

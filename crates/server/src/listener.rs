use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// The default listen backlog. std's `TcpListener::bind` uses 128: a burst of 10,000
/// connects then overflows the accept queue, and each dropped SYN is retried after 1 s,
/// 3 s, 7 s... — a minute of stalls that looks like a slow server. The kernel caps the
/// value at `net.core.somaxconn`.
pub const DEFAULT_BACKLOG: i32 = 4096;

/// Binds a blocking TCP listener with `SO_REUSEADDR`, so a restarted server can bind
/// its port while old connections sit in TIME_WAIT.
pub fn bind_listener(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_ephemeral_port_with_reuseaddr() {
        let listener = bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert!(socket2::SockRef::from(&listener).reuse_address().unwrap());
    }

    #[test]
    fn rebinds_a_port_with_a_connection_in_time_wait() {
        use std::io::Read;
        let listener = bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        // The server closes first, so its side of the connection enters TIME_WAIT.
        drop(server_side);
        let mut buf = [0u8; 1];
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(client.read(&mut buf).unwrap(), 0);
        drop(client);
        drop(listener);
        bind_listener(addr, 16).expect("SO_REUSEADDR lets the port be bound again");
    }
}

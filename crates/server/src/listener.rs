//! The bind seam: a model binds its own listening sockets from a [`Listen`] spec, so it
//! can open one, or one per loop or per process with `SO_REUSEPORT`.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;

use socket2::{Domain, Protocol, Socket, Type};

/// The default listen backlog. std's `TcpListener::bind` uses 128: a burst of 10,000
/// connects then overflows the accept queue, and each dropped SYN is retried after 1 s,
/// 3 s, 7 s... — a minute of stalls that looks like a slow server. The kernel caps the
/// value at `net.core.somaxconn`.
pub const DEFAULT_BACKLOG: i32 = 4096;

/// Binds a blocking TCP listener with `SO_REUSEADDR`, so a restarted server can bind
/// its port while old connections sit in TIME_WAIT (and `SO_REUSEPORT` for a group).
fn bind(addr: SocketAddr, backlog: i32, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Binds a blocking UDP socket. No `SO_REUSEADDR`: for UDP it would let a second
/// server bind the same port and take the datagrams, and there is no TIME_WAIT to wait
/// out.
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Called once with the bound address, when every listener of the model is bound.
pub type Announce = Box<dyn FnOnce(SocketAddr) + Send>;

/// What a model needs to bind its own listening sockets: the address (port 0 lets the
/// kernel choose), the backlog, and whom to tell the bound address once it is known —
/// `echolab serve` prints `listening on HOST:PORT` then, and the harness and tests wait
/// for that line, so it must come only once every listener is ready.
pub struct Listen {
    addr: SocketAddr,
    backlog: i32,
    announce: Mutex<Option<Announce>>,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listen")
            .field("addr", &self.addr)
            .field("backlog", &self.backlog)
            .finish_non_exhaustive()
    }
}

impl Listen {
    /// A spec for `addr` with `backlog`; `announce` is called with the bound address.
    pub fn new(addr: SocketAddr, backlog: i32, announce: Announce) -> Listen {
        Listen {
            addr,
            backlog,
            announce: Mutex::new(Some(announce)),
        }
    }

    /// The address asked for (its port may be 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Binds the model's one listener and announces it.
    pub fn bind(&self) -> io::Result<TcpListener> {
        let listener = self.bind_unannounced()?;
        self.announce(&listener)?;
        Ok(listener)
    }

    /// Binds the model's one listener without announcing it, for a model that has more
    /// to do before a client may come (`prefork` forks its workers first); it calls
    /// [`Listen::announce`] when it is ready.
    pub fn bind_unannounced(&self) -> io::Result<TcpListener> {
        self.context(bind(self.addr, self.backlog, false))
    }

    /// Announces `listener`'s address; only the first announcement is heard.
    pub fn announce(&self, listener: &TcpListener) -> io::Result<()> {
        self.announce_addr(listener.local_addr()?);
        Ok(())
    }

    /// Binds `count` listeners on one port with `SO_REUSEPORT` (the kernel spreads new
    /// connections over them by a hash of the peer's address): the first resolves port
    /// 0, the rest reuse its port. Announced once all are bound.
    pub fn bind_reuse_port(&self, count: usize) -> io::Result<Vec<TcpListener>> {
        let listeners = self.bind_reuse_port_unannounced(count)?;
        self.announce(&listeners[0])?;
        Ok(listeners)
    }

    /// [`Listen::bind_reuse_port`] without the announcement, for a model that starts
    /// its loops first (`reactors`: a loop that cannot start has its listener closed
    /// before any client can be queued on it); it calls [`Listen::announce`] then.
    /// Always at least one listener.
    pub fn bind_reuse_port_unannounced(&self, count: usize) -> io::Result<Vec<TcpListener>> {
        let first = self.context(bind(self.addr, self.backlog, true))?;
        let bound = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..count.max(1) {
            listeners.push(self.context(bind(bound, self.backlog, true))?);
        }
        Ok(listeners)
    }

    /// Binds the model's one UDP socket and announces it (datagram models: there is no
    /// listener, the socket that receives is the socket that answers; the backlog does
    /// not apply).
    pub fn bind_udp(&self) -> io::Result<UdpSocket> {
        let socket = self.context(bind_udp(self.addr, false))?;
        self.announce_addr(socket.local_addr()?);
        Ok(socket)
    }

    /// Binds `count` UDP sockets on one port with `SO_REUSEPORT`: the kernel picks a
    /// socket for each datagram by a hash of the sender's address and port, so one
    /// client's datagrams always reach the same socket (and stay in order). The first
    /// resolves port 0; announced once all are bound.
    pub fn bind_udp_reuse_port(&self, count: usize) -> io::Result<Vec<UdpSocket>> {
        let sockets = self.bind_udp_reuse_port_unannounced(count)?;
        self.announce_udp(&sockets[0])?;
        Ok(sockets)
    }

    /// [`Listen::bind_udp_reuse_port`] without the announcement, for a model that starts
    /// its workers first (`udp-reuseport`: a socket whose thread cannot start is closed
    /// before any client is told the port); it calls [`Listen::announce_udp`] then.
    /// Always at least one socket.
    pub fn bind_udp_reuse_port_unannounced(&self, count: usize) -> io::Result<Vec<UdpSocket>> {
        let first = self.context(bind_udp(self.addr, true))?;
        let bound = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..count.max(1) {
            sockets.push(self.context(bind_udp(bound, true))?);
        }
        Ok(sockets)
    }

    /// Announces `socket`'s address; only the first announcement is heard.
    pub fn announce_udp(&self, socket: &UdpSocket) -> io::Result<()> {
        self.announce_addr(socket.local_addr()?);
        Ok(())
    }

    fn context<T>(&self, result: io::Result<T>) -> io::Result<T> {
        result.map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", self.addr)))
    }

    /// Announces `bound`, an address taken from a socket earlier: for a model that
    /// announces only after its sockets have moved to their threads
    /// ([`crate::serve_each_socket`]).
    pub fn announce_bound(&self, bound: SocketAddr) -> io::Result<()> {
        self.announce_addr(bound);
        Ok(())
    }

    fn announce_addr(&self, bound: SocketAddr) {
        let announce = match self.announce.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(announce) = announce {
            announce(bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_ephemeral_port_with_reuseaddr() {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 16, false).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert!(socket2::SockRef::from(&listener).reuse_address().unwrap());
    }

    /// A spec for an ephemeral loopback port that records what it announces.
    fn recording_listen() -> (Listen, std::sync::Arc<std::sync::Mutex<Vec<SocketAddr>>>) {
        use std::sync::{Arc, Mutex};
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let listen = Listen::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            16,
            Box::new(move |addr| sink.lock().unwrap().push(addr)),
        );
        (listen, heard)
    }

    #[test]
    fn reuse_port_siblings_share_the_first_port_and_announce_once() {
        let (listen, heard) = recording_listen();
        let listeners = listen.bind_reuse_port(3).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        assert!(listeners
            .iter()
            .all(|l| l.local_addr().unwrap().port() == port));
        assert_eq!(
            *heard.lock().unwrap(),
            vec![listeners[0].local_addr().unwrap()]
        );
        // A later bind announces nothing more.
        drop(listeners);
        let _again = listen.bind().unwrap();
        assert_eq!(heard.lock().unwrap().len(), 1);
    }

    #[test]
    fn udp_reuse_port_siblings_share_the_first_port_and_announce_once() {
        let (listen, heard) = recording_listen();
        let sockets = listen.bind_udp_reuse_port(2).unwrap();
        let first = sockets[0].local_addr().unwrap();
        assert_ne!(first.port(), 0);
        assert_eq!(sockets[1].local_addr().unwrap(), first);
        assert_eq!(*heard.lock().unwrap(), vec![first]);
        // A plain UDP socket cannot join them: no SO_REUSEPORT on it.
        assert!(Listen::new(first, 16, Box::new(|_| {})).bind_udp().is_err());
    }

    #[test]
    fn rebinds_a_port_with_a_connection_in_time_wait() {
        use std::io::Read;
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 16, false).unwrap();
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
        bind(addr, 16, false).expect("SO_REUSEADDR lets the port be bound again");
    }
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use echolab_proto::{
    encode_frame, AuthKey, Protocol, Reply, ReplyDecoder, DEFAULT_MAX_FRAME, NONCE_LEN,
};

use crate::error::ClientError;

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's address.
    pub addr: SocketAddr,
    /// The protocol the server speaks.
    pub protocol: Protocol,
    /// The shared key, when the server requires the handshake.
    pub auth_key: Option<AuthKey>,
    /// Connect, read and write timeout: no call waits longer than this.
    pub timeout: Duration,
    /// Largest reply accepted (framed).
    pub max_frame: u32,
}

impl ClientConfig {
    /// Defaults for `addr`: framed, no key, 5 s timeouts, 1 MiB frames.
    pub fn new(addr: SocketAddr) -> ClientConfig {
        ClientConfig {
            addr,
            protocol: Protocol::Framed,
            auth_key: None,
            timeout: Duration::from_secs(5),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// A blocking connection to an echolab server.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    protocol: Protocol,
    decoder: ReplyDecoder,
    buf: Vec<u8>,
}

impl Client {
    /// Connects and, when a key is configured, answers the server's challenge.
    pub fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        let stream =
            TcpStream::connect_timeout(&config.addr, config.timeout).map_err(|source| {
                ClientError::Connect {
                    addr: config.addr,
                    source,
                }
            })?;
        stream
            .set_read_timeout(Some(config.timeout))
            .and_then(|()| stream.set_write_timeout(Some(config.timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(ClientError::io("configuring the socket"))?;
        let mut client = Client {
            stream,
            protocol: config.protocol,
            decoder: ReplyDecoder::new(config.max_frame),
            buf: vec![0; 64 * 1024],
        };
        if let Some(key) = &config.auth_key {
            client.authenticate(key)?;
        }
        Ok(client)
    }

    fn authenticate(&mut self, key: &AuthKey) -> Result<(), ClientError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.read_exact(
            &mut nonce,
            "reading the server's challenge (does the server use --auth-key-file?)",
        )?;
        let answer = key.respond(&nonce);
        self.stream
            .write_all(&answer)
            .map_err(ClientError::io("answering the challenge"))
    }

    fn read_exact(&mut self, buf: &mut [u8], context: &'static str) -> Result<(), ClientError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(ClientError::Closed("before the reply was complete")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ClientError::io(context)(source)),
            }
        }
        Ok(())
    }

    /// Sends one message and returns the server's echo. Framed: one frame, one reply
    /// (a notice becomes [`ClientError::Notice`]). Raw: the bytes, then exactly as many
    /// bytes back.
    pub fn echo(&mut self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.send(message)?;
        match self.protocol {
            Protocol::Framed => self.recv_frame(),
            Protocol::Raw => {
                let mut reply = vec![0; message.len()];
                self.read_exact(&mut reply, "reading the echo")?;
                Ok(reply)
            }
        }
    }

    /// Sends one message (framed: as one frame) without waiting for the reply.
    pub fn send(&mut self, message: &[u8]) -> Result<(), ClientError> {
        match self.protocol {
            Protocol::Framed => {
                let mut wire = Vec::with_capacity(message.len() + 4);
                encode_frame(message, &mut wire)?;
                self.stream.write_all(&wire)
            }
            Protocol::Raw => self.stream.write_all(message),
        }
        .map_err(ClientError::io("sending"))
    }

    /// Reads the next reply frame (framed mode).
    pub fn recv_frame(&mut self) -> Result<Vec<u8>, ClientError> {
        match self.recv_reply()? {
            Some(Reply::Frame(payload)) => Ok(payload),
            Some(Reply::Notice(text)) => Err(ClientError::Notice(text)),
            None => Err(ClientError::Closed("before replying")),
        }
    }

    /// Reads the next reply, frame or notice; `None` when the server closed cleanly
    /// between replies.
    pub fn recv_reply(&mut self) -> Result<Option<Reply>, ClientError> {
        loop {
            if let Some(reply) = self.decoder.next_reply()? {
                return Ok(Some(reply));
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) if self.decoder.buffered() == 0 => return Ok(None),
                Ok(0) => return Err(ClientError::Closed("in the middle of a reply")),
                Ok(n) => self.decoder.feed(&self.buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ClientError::io("waiting for the reply")(source)),
            }
        }
    }

    /// The underlying socket, for tests that need to misbehave on purpose.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

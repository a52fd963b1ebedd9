use std::sync::Arc;
use std::time::Duration;

use crate::{AuthKey, ProtoError, WorkMode, DEFAULT_MAX_FRAME, NOTICE_BIT};

/// Which wire protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Length-prefixed frames with error notices (the default).
    #[default]
    Framed,
    /// RFC 862 echo: every byte back as it arrives, no framing, no notices.
    Raw,
}

/// Once this many bytes of output are waiting, a session stops asking for input, so a
/// client that sends but never reads cannot grow the server's memory without bound.
pub const DEFAULT_HIGH_WATER: usize = 256 * 1024;

/// The per-connection rules every model applies identically.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Largest frame payload accepted (framed mode).
    pub max_frame: FrameLimit,
    /// The shared key, when connections must authenticate.
    pub auth_key: Option<Arc<AuthKey>>,
    /// How long a client has to answer the challenge.
    pub handshake_timeout: Duration,
    /// A connection that moves no bytes in either direction for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// A frame must be complete this long after its first header byte arrived: an
    /// absolute deadline, so trickling bytes (slowloris) cannot extend it.
    pub frame_timeout: Option<Duration>,
    /// Pending output above which the session stops wanting input.
    pub high_water: usize,
    /// Where each framed message's work runs (none, inline, offloaded); raw sessions
    /// ignore it.
    pub work: WorkMode,
}

/// The largest frame payload a session accepts: below 2^31, because the top bit of a
/// header word marks a notice. The type makes a limit a header cannot carry
/// unrepresentable, instead of leaving the check to each caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimit(u32);

impl FrameLimit {
    /// The limit, refused when a frame header could not carry it.
    pub fn new(bytes: u32) -> Result<FrameLimit, ProtoError> {
        if bytes & NOTICE_BIT != 0 {
            return Err(ProtoError::FrameLimitTooLarge {
                limit: bytes,
                max: NOTICE_BIT - 1,
            });
        }
        Ok(FrameLimit(bytes))
    }

    /// The limit in bytes.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for FrameLimit {
    fn default() -> Self {
        FrameLimit(DEFAULT_MAX_FRAME)
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            protocol: Protocol::Framed,
            max_frame: FrameLimit::default(),
            auth_key: None,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(60)),
            frame_timeout: Some(Duration::from_secs(30)),
            high_water: DEFAULT_HIGH_WATER,
            work: WorkMode::None,
        }
    }
}

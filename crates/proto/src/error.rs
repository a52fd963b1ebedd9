use thiserror::Error;

/// Everything that can go wrong in the protocol layer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// An authentication key shorter than [`crate::MIN_KEY_LEN`] bytes.
    #[error("authentication key is {len} bytes; at least {min} are required")]
    KeyTooShort {
        /// The length that was given.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// A payload too large to be described by a frame header.
    #[error("payload of {len} bytes cannot be framed (the limit is {max} bytes)")]
    PayloadTooLarge {
        /// The payload length.
        len: usize,
        /// The largest length a header can carry.
        max: usize,
    },
    /// A reply header announced more than the decoder accepts.
    #[error("reply announces {len} bytes, more than the limit of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: u32,
        /// The decoder's limit.
        max: u32,
    },
    /// A notice header announced more than [`crate::MAX_NOTICE_LEN`] bytes of text.
    #[error("error notice announces {len} bytes of text, more than the limit of {max}")]
    NoticeTooLong {
        /// The announced length.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// A frame limit the header cannot carry (its top bit marks a notice).
    #[error("a frame limit of {limit} bytes cannot be carried by a frame header (at most {max})")]
    FrameLimitTooLarge {
        /// The limit asked for.
        limit: u32,
        /// The largest limit a header can carry.
        max: u32,
    },
}

//! Why the model cannot run here: every way the kernel can refuse what it needs, as one
//! typed error whose message starts `io_uring unavailable:`, so `echolab serve uring`
//! says what is missing and exits non-zero instead of crashing.

use std::io;

use thiserror::Error;

/// The kernel refused something the model needs.
#[derive(Debug, Error)]
pub enum UringError {
    /// The kernel is older than the features the model uses.
    #[error("io_uring unavailable: kernel {found} is older than {needed}, which {feature} needs")]
    KernelTooOld {
        /// The running kernel's release (`/proc/sys/kernel/osrelease`).
        found: String,
        /// The first release with the feature.
        needed: &'static str,
        /// What needs it.
        feature: &'static str,
    },
    /// `io_uring_setup` failed: not built in (ENOSYS), switched off by
    /// `kernel.io_uring_disabled` or a seccomp filter (EPERM), or out of memory.
    #[error("io_uring unavailable: io_uring_setup failed{hint}")]
    Setup {
        /// The error of the call.
        source: io::Error,
        /// What to check, from `/proc/sys/kernel/io_uring_disabled`.
        hint: String,
    },
    /// An operation or feature is missing from this kernel's io_uring.
    #[error("io_uring unavailable: {feature} is not supported (needs Linux {since})")]
    Unsupported {
        /// What is missing.
        feature: &'static str,
        /// The first release that has it.
        since: &'static str,
    },
    /// The kernel refused a request the model cannot do without.
    #[error("io_uring unavailable: {what} refused (needs Linux {since})")]
    Refused {
        /// The request.
        what: &'static str,
        /// The first release that has it.
        since: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
}

impl From<UringError> for io::Error {
    fn from(e: UringError) -> io::Error {
        io::Error::other(e)
    }
}

impl UringError {
    /// `io_uring_setup` failed with `source`; the hint reads the sysctl that most often
    /// explains it.
    pub(crate) fn setup(source: io::Error) -> UringError {
        let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let hint = match disabled {
            Some(2) => " (kernel.io_uring_disabled = 2: io_uring is off for everyone)".into(),
            Some(1) => {
                " (kernel.io_uring_disabled = 1: only root and kernel.io_uring_group may use it)"
                    .into()
            }
            _ if source.raw_os_error() == Some(libc::EPERM) => {
                " (a seccomp filter, such as a container runtime's default, may block it)".into()
            }
            _ => String::new(),
        };
        UringError::Setup { source, hint }
    }
}

/// Refuses a kernel older than `needed` (`"6.0"`), read from `release` (`"6.18.44-..."`).
pub(crate) fn check_release(
    release: &str,
    needed: (u32, u32),
    needed_text: &'static str,
    feature: &'static str,
) -> Result<(), UringError> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let major = parts.next().flatten();
    let minor = parts.next().flatten();
    match (major, minor) {
        (Some(major), Some(minor)) if (major, minor) >= needed => Ok(()),
        // A release we cannot read is given the benefit of the doubt: the probe and the
        // first requests still refuse clearly if the features are missing.
        (None, _) | (_, None) => Ok(()),
        _ => Err(UringError::KernelTooOld {
            found: release.to_string(),
            needed: needed_text,
            feature,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_compared_by_major_and_minor() {
        let check = |r| check_release(r, (6, 0), "6.0", "multishot receive");
        assert!(check("6.18.44-fc-v857").is_ok());
        assert!(check("6.0.0").is_ok());
        assert!(check("10.1").is_ok());
        assert!(check("garbage").is_ok());
        let old = check("5.15.0-91-generic").unwrap_err().to_string();
        assert!(
            old.starts_with("io_uring unavailable: kernel 5.15.0-91-generic"),
            "{old}"
        );
        assert!(
            old.contains("6.0") && old.contains("multishot receive"),
            "{old}"
        );
    }

    #[test]
    fn every_message_says_io_uring_is_unavailable() {
        let errors = [
            UringError::setup(io::Error::from_raw_os_error(libc::EPERM)),
            UringError::Unsupported {
                feature: "IORING_OP_SEND",
                since: "5.6",
            },
            UringError::Refused {
                what: "multishot accept",
                since: "5.19",
                source: io::Error::from_raw_os_error(libc::EINVAL),
            },
        ];
        for e in errors {
            let text = io::Error::from(e).to_string();
            assert!(text.starts_with("io_uring unavailable: "), "{text}");
        }
    }
}

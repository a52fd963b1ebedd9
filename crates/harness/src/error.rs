use std::fmt::Display;
use std::path::Path;

/// What can stop a benchmark run (a model that serves badly is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The server child could not be started or did not announce its address.
    #[error("cannot start `{model}`: {reason}")]
    ServerStart {
        /// The model.
        model: String,
        /// What went wrong.
        reason: String,
    },
    /// The load generator refused the configuration.
    #[error("load generator: {0}")]
    Load(#[from] echolab_client::ClientError),
    /// A result file could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The plan asked for something that does not exist.
    #[error("{0}")]
    Plan(String),
    /// A load agent failed: it did not start, get ready or report.
    #[error("{0}")]
    Agent(String),
    /// A server did not answer a `snapshot` request.
    #[error("server snapshot: {0}")]
    Snapshot(String),
    /// The loopback floor could not be measured.
    #[error("cannot measure the loopback floor: {0}")]
    Floor(String),
}

impl HarnessError {
    /// A failure to write (or draw) the file at `path`.
    pub(crate) fn write(path: &Path, reason: impl Display) -> HarnessError {
        HarnessError::Write {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};

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
    /// A results file (or another input file) could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file read whole is not the results JSON `echolab compare` writes.
    #[error("{} is not a results file", path.display())]
    NotResults {
        /// The file.
        path: PathBuf,
        /// Where its JSON, or the shape expected of it, failed.
        #[source]
        source: serde_json::Error,
    },
    /// The client's thread could not be pinned to the CPU the plan gave it.
    #[error("cannot pin the client to CPU {cpu}")]
    Pin {
        /// The CPU asked for.
        cpu: usize,
        /// Why.
        #[source]
        source: io::Error,
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
    /// A failure to read the file at `path`.
    pub(crate) fn read(path: &Path) -> impl FnOnce(io::Error) -> HarnessError + '_ {
        move |source| HarnessError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A file at `path` that is not a results file.
    pub(crate) fn not_results(path: &Path) -> impl FnOnce(serde_json::Error) -> HarnessError + '_ {
        move |source| HarnessError::NotResults {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failure to write (or draw) the file at `path`.
    pub(crate) fn write(path: &Path, reason: impl Display) -> HarnessError {
        HarnessError::Write {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

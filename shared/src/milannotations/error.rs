//! Errors of the MILANNOTATIONS reader and writer: each names the file, and the line or field
//! where there is one.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    // The cause is part of the message and deliberately not a `#[source]`: error chains printed
    // by callers (anyhow's `{:#}`) would repeat it.
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

impl FormatError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        FormatError::Io {
            path: path.to_owned(),
            cause: source,
        }
    }

    pub(crate) fn file(path: &Path, message: impl Into<String>) -> Self {
        FormatError::File {
            path: path.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn line(path: &Path, line: u64, message: impl Into<String>) -> Self {
        FormatError::Line {
            path: path.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FormatError::Io { path, .. }
            | FormatError::File { path, .. }
            | FormatError::Line { path, .. } => path,
        }
    }
}

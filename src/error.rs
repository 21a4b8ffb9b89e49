//! The library's error type.
//!
//! Every variant names what failed: the syscall or step, the path or field,
//! and the errno. Engines grep these texts (see runc-compat.md), so the
//! wording of `NotExist`, `NotRunning` and errno descriptions is part of the
//! contract: errno texts are lower-case like Go's, so that "permission
//! denied", "operation not permitted" and "no such file or directory" match.

use std::fmt;
use std::path::Path;

use nix::errno::Errno;

pub type Result<T> = std::result::Result<T, Error>;

/// A kernel error code rendered the way Go (and so runc) renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrnoText(pub Errno);

impl fmt::Display for ErrnoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desc = self.0.desc();
        let mut chars = desc.chars();
        match chars.next() {
            Some(first) => {
                write!(f, "{}{}", first.to_lowercase(), chars.as_str())
            }
            None => write!(f, "errno {}", self.0 as i32),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall failed. `op` says which step (e.g. "mount proc"), `path`
    /// which file it was about, if any.
    #[error("{op}{}: {}", .path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(), ErrnoText(*.errno))]
    Sys {
        op: String,
        path: Option<String>,
        errno: Errno,
    },

    /// A field of config.json (or another input) is not acceptable.
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },

    #[error("container does not exist: {0}")]
    NotExist(String),

    #[error("container not running: {0}")]
    NotRunning(String),

    #[error("container with given ID already exists: {0}")]
    AlreadyExists(String),

    #[error("invalid container ID format: {0:?}")]
    InvalidId(String),

    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Msg(String),

    /// Context wrapped around another error.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

/// Run `call` again while it fails with EINTR (a signal arrived during the
/// syscall). For raw libc calls, wrap the return value in `Errno::result`.
pub fn retry_eintr<T>(
    mut call: impl FnMut() -> std::result::Result<T, Errno>,
) -> std::result::Result<T, Errno> {
    loop {
        match call() {
            // A stopper during setup ends the wait (see signal::make_setup_interruptible).
            Err(Errno::EINTR) if crate::sys::signal::interrupted().is_some() => {
                return Err(Errno::EINTR)
            }
            Err(Errno::EINTR) => {}
            r => return r,
        }
    }
}

impl Error {
    pub fn sys(op: impl Into<String>, errno: Errno) -> Self {
        Error::Sys {
            op: op.into(),
            path: None,
            errno,
        }
    }

    pub fn sys_path(op: impl Into<String>, path: impl AsRef<Path>, errno: Errno) -> Self {
        Error::Sys {
            op: op.into(),
            path: Some(path.as_ref().display().to_string()),
            errno,
        }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }

    /// The errno at the bottom of this error, if a syscall caused it.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            Error::Context { source, .. } => source.errno(),
            _ => None,
        }
    }

    /// Build from an `std::io::Error` for a step on a path.
    /// An error without an errno (e.g. "not a regular file") keeps its own text.
    pub fn io(op: impl Into<String>, path: impl AsRef<Path>, err: std::io::Error) -> Self {
        match err.raw_os_error() {
            Some(raw) => Error::sys_path(op, path, Errno::from_raw(raw)),
            None => Error::msg(format!("{}: {err}", path.as_ref().display())),
        }
    }
}

/// `anyhow`-style context for the library's results.
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.into(),
            source: Box::new(e),
        })
    }
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: f(),
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_texts_are_lower_case_like_go() {
        let e = Error::sys_path("open", "/x", Errno::ENOENT);
        assert_eq!(e.to_string(), "open /x: no such file or directory");
        let e = Error::sys("setns", Errno::EPERM);
        assert_eq!(e.to_string(), "setns: operation not permitted");
    }

    #[test]
    fn context_chains() {
        let r: Result<()> = Err(Error::sys("mount", Errno::EACCES));
        let e = r.context("mount /proc").unwrap_err();
        assert_eq!(e.to_string(), "mount /proc: mount: permission denied");
        assert_eq!(e.errno(), Some(Errno::EACCES));
    }
}

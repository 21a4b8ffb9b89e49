//! The channel between `skiff create` (the parent) and the container init.
//!
//! A SOCK_SEQPACKET socketpair: each message is one packet, so a message is
//! never split or merged, and a peer that dies shows up as end-of-file.
//! Messages are typed enums, serialised as JSON (small, and an error text
//! from the child travels with its full context).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{retry_eintr, Error, Result};

/// Parent -> init.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ToInit {
    /// uid_map/gid_map are written (when there is a new user namespace), and
    /// here is the state for the hooks the init runs itself.
    Proceed { state_json: Option<String> },
    /// prestart and createRuntime hooks have run.
    RuntimeHooksDone,
    /// The seccomp listener reached the agent at listenerPath.
    SeccompListenerSent,
    /// The state file says `created`: the init may wait for `start`.
    Committed,
}

/// Init -> parent.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ToParent {
    /// Sent by the intermediate process (user namespace joined by path and a
    /// new pid namespace): the host pid of the real init.
    InitPid(i32),
    /// Namespaces and mounts are ready, before pivot_root: run prestart and createRuntime hooks.
    RuntimeHooks,
    /// A seccomp NOTIFY listener fd follows on the channel (SCM_RIGHTS);
    /// the parent sends it to listenerPath with the container state.
    SeccompListener,
    /// Fully set up, waiting for `start`.
    Ready,
    /// Setup failed; the text names the step, path and errno.
    Failed(String),
}

pub struct Channel {
    fd: OwnedFd,
}

/// Large enough for any message: error texts are cut to `MAX_TEXT` (a config value quoted in
/// one can be long).
const MAX_MESSAGE: usize = 64 * 1024;
const MAX_TEXT: usize = 16 * 1024;

/// An error text cut to fit in one message, at a character boundary, marked as cut.
pub fn bounded_text(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("... (cut)");
    }
    text
}

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints for the kernel to fill.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(Error::sys("socketpair", Errno::last()));
        }
        // SAFETY: the kernel just returned two new fds that nothing else owns.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub fn send<T: Serialize>(&self, msg: &T) -> Result<()> {
        let bytes = serde_json::to_vec(msg)
            .map_err(|e| Error::msg(format!("sync: encode message: {e}")))?;
        if bytes.len() > MAX_MESSAGE {
            return Err(Error::msg(format!(
                "sync: a message of {} bytes is larger than {MAX_MESSAGE}",
                bytes.len()
            )));
        }
        retry_eintr(|| {
            // SAFETY: bytes is a valid buffer of the given length.
            Errno::result(unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_NOSIGNAL,
                )
            })
        })
        .map_err(|e| Error::sys("sync: send", e))?;
        Ok(())
    }

    /// Receive one message; `Ok(None)` when the peer has gone.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        // Peek at the next packet's length first (MSG_TRUNC reports it for
        // SEQPACKET sockets): a buffer of exactly that size instead of one of
        // MAX_MESSAGE keeps a 64 KiB zeroed allocation off every message.
        let len = self.recv_into(&mut [], libc::MSG_PEEK | libc::MSG_TRUNC)?;
        let mut buf = vec![0u8; len.min(MAX_MESSAGE)];
        let n = self.recv_into(&mut buf, 0)?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::msg(format!("sync: decode message: {e}")))
    }

    /// recv(2) retried on EINTR; 0 means the peer has gone.
    fn recv_into(&self, buf: &mut [u8], flags: libc::c_int) -> Result<usize> {
        retry_eintr(|| {
            // SAFETY: buf is a valid writable buffer of the given length (an
            // empty one is fine: the kernel writes nothing into it).
            Errno::result(unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    flags,
                )
            })
        })
        .map(|n| n as usize)
        .map_err(|e| Error::sys("sync: receive", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_none() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&ToParent::Failed("mount /proc: permission denied".into()))
            .unwrap();
        a.send(&ToParent::Ready).unwrap();
        assert_eq!(
            b.recv::<ToParent>().unwrap(),
            Some(ToParent::Failed("mount /proc: permission denied".into()))
        );
        assert_eq!(b.recv::<ToParent>().unwrap(), Some(ToParent::Ready));
        drop(a);
        assert_eq!(b.recv::<ToParent>().unwrap(), None);
    }
}

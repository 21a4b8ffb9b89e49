//! OOM notifications: v1 memory.oom_control through cgroup.event_control
//! and an eventfd; v2 inotify on memory.events comparing oom_kill counts.

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::manager::CgroupHandle;
use crate::error::{Error, Result};

pub struct OomWatcher {
    fd: OwnedFd,
    kind: Kind,
}

enum Kind {
    V1 { _control: std::fs::File },
    V2 { events: PathBuf, last: u64 },
}

fn oom_kills(p: &std::path::Path) -> u64 {
    crate::sys::fsio::read_to_string(p)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

impl CgroupHandle {
    /// How many processes the OOM killer has killed in this cgroup (0 without a memory
    /// controller): `oom_kill` of memory.events (v2) or memory.oom_control (v1).
    pub fn oom_kill_count(&self) -> u64 {
        match self.dir_for("memory") {
            Some(d) if d.v2 => oom_kills(&d.dir.join("memory.events")),
            Some(d) => oom_kills(&d.dir.join("memory.oom_control")),
            None => 0,
        }
    }

    /// A source of OOM events; None when there is no memory controller.
    pub fn oom_watcher(&self) -> Result<Option<OomWatcher>> {
        let Some(d) = self.dir_for("memory") else {
            return Ok(None);
        };
        if d.v2 {
            let events = d.dir.join("memory.events");
            // SAFETY: plain syscall returning a new fd or -1.
            let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if ifd < 0 {
                return Err(Error::sys("inotify_init1", Errno::last()));
            }
            // SAFETY: ifd is a fresh fd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(ifd) };
            let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::msg("memory.events path has a NUL byte"))?;
            // SAFETY: fd is a live inotify fd and c a NUL-terminated path.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
                return Err(Error::sys_path("inotify_add_watch", &events, Errno::last()));
            }
            let last = oom_kills(&events);
            return Ok(Some(OomWatcher {
                fd,
                kind: Kind::V2 { events, last },
            }));
        }
        let ctl = d.dir.join("memory.oom_control");
        let control = std::fs::File::open(&ctl).map_err(|e| Error::io("open", &ctl, e))?;
        // SAFETY: plain syscall returning a new fd or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(Error::sys("eventfd", Errno::last()));
        }
        // SAFETY: efd is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(efd) };
        let ec = d.dir.join("cgroup.event_control");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&ec)
            .map_err(|e| Error::io("open", &ec, e))?;
        f.write_all(format!("{} {}", fd.as_raw_fd(), control.as_raw_fd()).as_bytes())
            .map_err(|e| Error::io("register OOM eventfd in", &ec, e))?;
        Ok(Some(OomWatcher {
            fd,
            kind: Kind::V1 { _control: control },
        }))
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl OomWatcher {
    /// Number of new OOM kills since the last call, without blocking.
    pub fn check(&mut self) -> Result<u64> {
        let mut buf = [0u8; 4096];
        match &mut self.kind {
            Kind::V1 { .. } => match nix::unistd::read(self.fd.as_raw_fd(), &mut buf[..8]) {
                Ok(8) => Ok(u64::from_ne_bytes(buf[..8].try_into().unwrap_or([0; 8]))),
                Ok(_) | Err(Errno::EAGAIN) => Ok(0),
                Err(e) => Err(Error::sys("read OOM eventfd", e)),
            },
            Kind::V2 { events, last } => {
                // Drain the inotify queue; the count tells what happened.
                while let Ok(n) = nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                let now = oom_kills(events);
                let new = now.saturating_sub(*last);
                *last = now;
                Ok(new)
            }
        }
    }

    /// Wait up to `timeout` (None = forever) for OOM kills; returns how
    /// many happened (0 on timeout).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<u64> {
        let n = self.check()?;
        if n > 0 {
            return Ok(n);
        }
        let t = match timeout {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, t) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll OOM events", e)),
        }
        self.check()
    }
}

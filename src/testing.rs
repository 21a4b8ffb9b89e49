//! Helpers shared by the root tests of several modules (test builds only).

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// Fork; run `f` in the child (which may change its own scheduling,
/// namespaces, ...) and report its error text.
pub fn in_child(f: impl FnOnce() -> std::result::Result<(), String>) -> Result<(), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned here only.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child only runs `f` and then _exit()s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        drop(rd);
        let mut out = std::fs::File::from(wr);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let code = match r {
            Ok(Ok(())) => 0,
            Ok(Err(msg)) => {
                let _ = out.write_all(msg.as_bytes());
                1
            }
            Err(_) => {
                let _ = out.write_all(b"child panicked");
                2
            }
        };
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(wr);
    let mut msg = String::new();
    let _ = std::fs::File::from(rd).read_to_string(&mut msg);
    match wait(pid) {
        0 => Ok(()),
        code => Err(format!("child exit code {code}: {msg}")),
    }
}

/// Create `path` with `contents`, mode 0755, from a forked child. Written by this multi-threaded
/// test process, the open fd could be inherited by a child that another test thread forks at that
/// moment and keeps until its exec; executing the file in that window fails with ETXTBSY (seen in
/// CI). The forked child has no other threads, so nothing else can hold the fd.
pub fn write_executable(path: &std::path::Path, contents: &[u8]) {
    in_child(|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(path)
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        f.write_all(contents)
            .map_err(|e| format!("write {}: {e}", path.display()))
    })
    .unwrap_or_else(|e| panic!("write_executable {}: {e}", path.display()));
}

pub fn is_root() -> bool {
    // SAFETY: plain getter.
    unsafe { libc::geteuid() == 0 }
}

/// A field of /proc/self/status with its whitespace normalised.
pub fn status_field(name: &str) -> String {
    let s = crate::sys::fsio::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Fork; run `f` in the child (for tests that change process-wide state: credentials,
/// capabilities, signal masks) and return its exit code, 101 when it panicked, 128+signal when
/// killed. The child never returns into the harness.
pub fn in_child_exit_code(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f` and then _exits; glibc's malloc is fork-safe, so
    // allocation in the child is fine even though the test harness is multi-threaded.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: _exit never returns and skips the harness's atexit work.
        unsafe { libc::_exit(code) };
    }
    wait(pid)
}

/// Reap our child `pid`: its exit code, or 128+signal.
pub fn wait(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        assert_eq!(nix::errno::Errno::last(), nix::errno::Errno::EINTR);
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

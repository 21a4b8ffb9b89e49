//! OCI hooks (config.md, "POSIX-platform Hooks").
//!
//! Each hook gets the container state on stdin, exactly its own `env`, and
//! its `args` (args[0] becomes argv[0]). Its stdout and stderr are captured
//! (never inherited: during `create` the runtime's stdio belong to the
//! container, so a chatty hook must not write into them); up to 1 KiB of
//! each is quoted in the error when the hook fails, like runc does.
//!
//! Waiting uses one poll loop over a pidfd and the pipes, with the hook's
//! timeout as the poll timeout. No threads.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use oci_spec::runtime::Hook;

use crate::error::{Context, Error, Result};
use crate::spawn;

/// How much of a failing hook's stdout/stderr goes into the error.
const OUTPUT_LIMIT: usize = 1024;

/// Checks `hooks.<stage>` without running anything: absolute paths, and
/// timeouts greater than zero.
pub fn validate_hooks(stage: &str, hooks: &[Hook]) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        if !h.path().is_absolute() {
            return Err(Error::config(
                format!("hooks.{stage}[{i}].path"),
                format!(
                    "{:?} is not an absolute path",
                    h.path().display().to_string()
                ),
            ));
        }
        if let Some(t) = h.timeout() {
            if t <= 0 {
                return Err(Error::config(
                    format!("hooks.{stage}[{i}].timeout"),
                    format!("must be greater than zero, got {t}"),
                ));
            }
        }
    }
    Ok(())
}

/// Runs the hooks of one stage in order; the first failure stops the rest.
pub fn run_hooks(stage: &str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    run_hooks_with(stage, hooks, state_json, &HookEnv::default())
}

/// Where and how a stage's hooks run, beyond the default (the caller's working directory,
/// no seccomp filter).
#[derive(Default)]
pub struct HookEnv<'a> {
    /// The hooks' working directory (createContainer: the container's rootfs, which hooks
    /// written for runc, such as ldconfig hooks, rely on).
    pub cwd: Option<&'a std::path::Path>,
    /// A filter each hook process installs right before it execs (the startContainer hooks
    /// run in the container under its seccomp filter, as with runc; the runtime's own process
    /// stays unfiltered until its own execve).
    pub filter: Option<&'a crate::seccomp::CompiledFilter>,
}

/// The hooks of a stage after which nothing depends on them (poststart, poststop): every
/// hook runs whatever the one before did (the spec's MUST), and each failure is a warning
/// naming the hook.
pub fn run_hooks_warn(stage: &str, hooks: &[Hook], state_json: &[u8]) {
    if hooks.is_empty() {
        return;
    }
    if let Err(e) = validate_hooks(stage, hooks) {
        log::warn!("{e}");
        return;
    }
    let _pipe_guard = SigpipeGuard::block();
    for h in hooks {
        if let Err(e) = run_one(stage, h, state_json, &HookEnv::default()) {
            log::warn!("{e}");
        }
    }
}

/// [`run_hooks`] in `env`.
pub fn run_hooks_with(
    stage: &str,
    hooks: &[Hook],
    state_json: &[u8],
    env: &HookEnv<'_>,
) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    validate_hooks(stage, hooks)?;
    // A hook that exits without reading stdin makes our write fail with
    // EPIPE; block SIGPIPE so that is an error code and not our death (the
    // container init may run with SIGPIPE's default action).
    let _pipe_guard = SigpipeGuard::block();
    for h in hooks {
        run_one(stage, h, state_json, env)?;
    }
    Ok(())
}

fn run_one(stage: &str, hook: &Hook, state: &[u8], env: &HookEnv<'_>) -> Result<()> {
    let path = hook.path();
    log::debug!("{stage} hook {}", path.display());
    let what = || format!("{stage} hook {}", path.display());
    let mut cmd = Command::new(path);
    match hook.args().as_deref() {
        Some([arg0, rest @ ..]) => {
            cmd.arg0(arg0).args(rest);
        }
        _ => {
            cmd.arg0(path);
        }
    }
    cmd.env_clear();
    for e in hook.env().as_deref().unwrap_or(&[]) {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                cmd.env(k, v);
            }
            _ => log::warn!("{}: env entry {e:?} is not KEY=VALUE, skipped", what()),
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = env.cwd {
        cmd.current_dir(dir);
    }
    if let Some(f) = env.filter {
        let f = f.clone();
        // SAFETY: the closure runs in the forked child of a single-threaded process (the
        // container's init), where installing a filter (one seccomp(2) call on a program
        // already built) is sound.
        unsafe {
            cmd.pre_exec(move || {
                crate::seccomp::install(&f).map(|_| ()).map_err(|e| {
                    std::io::Error::from_raw_os_error(e.errno().map_or(libc::EPERM, |e| e as i32))
                })
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("{stage} hook"), path, e))?;
    let result = supervise(&mut child, hook.timeout(), state, &what);
    if result.is_err() {
        // Timed out or our own failure: never leave the hook running.
        let _ = child.kill();
    }
    // Reap in every case.
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("{stage} hook: wait"), path, e));
    let (out, err) = result?;
    let status = status?;
    if status.success() {
        return Ok(());
    }
    let mut msg = match (status.code(), status.signal()) {
        (Some(c), _) => format!("{}: exit status {c}", what()),
        (None, Some(s)) => format!("{}: terminated by signal {s}", what()),
        _ => format!("{}: {status}", what()),
    };
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        let t = String::from_utf8_lossy(text);
        let t = t.trim();
        if !t.is_empty() {
            msg.push_str(&format!(", {name}: {t}"));
        }
    }
    Err(Error::msg(msg))
}

/// Feeds stdin, collects output and waits for exit or the timeout.
/// Returns the captured (stdout, stderr).
fn supervise(
    child: &mut Child,
    timeout: Option<i64>,
    state: &[u8],
    what: &dyn Fn() -> String,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let pidfd = crate::sys::spawn::pidfd_open(child.id() as i32).with_context(what)?;
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    for fd in [
        stdin.as_ref().map(|s| s.as_raw_fd()),
        stdout.as_ref().map(|s| s.as_raw_fd()),
        stderr.as_ref().map(|s| s.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd).with_context(what)?;
    }
    let mut out = Capture::new(stdout.as_ref().map(|s| s.as_raw_fd()));
    let mut err = Capture::new(stderr.as_ref().map(|s| s.as_raw_fd()));
    let mut written = 0usize;
    if state.is_empty() {
        stdin = None;
    }
    let deadline = timeout.map(|t| (t, Instant::now() + Duration::from_secs(t as u64)));

    loop {
        let wait_ms = match deadline {
            None => -1,
            Some((secs, at)) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::msg(format!(
                        "{}: timed out after {secs} seconds",
                        what()
                    )));
                }
                // Round up so we never spin on a sub-millisecond rest.
                left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32
            }
        };
        let mut fds = [
            spawn::pollfd(pidfd.as_raw_fd(), libc::POLLIN),
            spawn::pollfd(stdin.as_ref().map_or(-1, |s| s.as_raw_fd()), libc::POLLOUT),
            spawn::pollfd(out.fd.unwrap_or(-1), libc::POLLIN),
            spawn::pollfd(err.fd.unwrap_or(-1), libc::POLLIN),
        ];
        // SAFETY: a valid array of pollfd for the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if r < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                crate::sys::signal::check_interrupted().with_context(what)?;
                continue;
            }
            return Err(Error::sys("poll", e)).with_context(what);
        }
        if fds[1].revents != 0 {
            if let Some(s) = stdin.as_ref() {
                // SAFETY: writing from a live slice to a non-blocking pipe.
                let n = unsafe {
                    libc::write(
                        s.as_raw_fd(),
                        state[written..].as_ptr() as *const libc::c_void,
                        state.len() - written,
                    )
                };
                if n >= 0 {
                    written += n as usize;
                    if written == state.len() {
                        stdin = None; // closes it: the hook sees EOF
                    }
                } else if !matches!(Errno::last(), Errno::EAGAIN | Errno::EINTR) {
                    // EPIPE: the hook does not read its stdin; that is fine.
                    stdin = None;
                }
            }
        }
        if fds[2].revents != 0 {
            out.read();
        }
        if fds[3].revents != 0 {
            err.read();
        }
        if fds[0].revents != 0 {
            // Exited. Take what is already in the pipes, but do not wait for
            // EOF: a daemon the hook started may hold them open forever.
            out.read();
            err.read();
            return Ok((out.buf, err.buf));
        }
    }
}

fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: F_GETFL/F_SETFL only read and change the fd's status flags.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(Error::sys("fcntl O_NONBLOCK", Errno::last()));
        }
    }
    Ok(())
}

/// Output of one pipe, keeping the first OUTPUT_LIMIT bytes and discarding
/// the rest (it must still be read so the hook never blocks on a full pipe).
struct Capture {
    fd: Option<RawFd>,
    buf: Vec<u8>,
}

impl Capture {
    fn new(fd: Option<RawFd>) -> Self {
        Capture {
            fd,
            buf: Vec::new(),
        }
    }

    /// Reads until the pipe is empty; at EOF stops polling it.
    fn read(&mut self) {
        let Some(fd) = self.fd else { return };
        let mut chunk = [0u8; 4096];
        loop {
            // SAFETY: reading into a live local buffer.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr() as *mut libc::c_void, chunk.len()) };
            if n > 0 {
                let room = OUTPUT_LIMIT.saturating_sub(self.buf.len());
                self.buf.extend_from_slice(&chunk[..(n as usize).min(room)]);
                continue;
            }
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            if n == 0 || Errno::last() != Errno::EAGAIN {
                self.fd = None;
            }
            return;
        }
    }
}

/// Blocks SIGPIPE for the duration of the hooks; on drop, discards a
/// SIGPIPE our writes left pending (unless one was pending before) and
/// restores the mask.
struct SigpipeGuard {
    old: libc::sigset_t,
    was_pending: bool,
}

impl SigpipeGuard {
    fn block() -> Option<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset; the
        // calls only read `set` and write `old`/`pending`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            let mut old: libc::sigset_t = std::mem::zeroed();
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
                return None;
            }
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            Some(SigpipeGuard {
                old,
                was_pending: libc::sigismember(&pending, libc::SIGPIPE) == 1,
            })
        }
    }
}

impl Drop for SigpipeGuard {
    fn drop(&mut self) {
        // SAFETY: as in block(); sigtimedwait with a zero timeout only
        // dequeues a pending SIGPIPE if there is one.
        unsafe {
            if !self.was_pending {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGPIPE);
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                while libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) == libc::SIGPIPE {}
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    fn sh(script: &str) -> Hook {
        hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}))
    }

    #[test]
    fn success_and_order() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("log");
        let f = f.display();
        let hooks = [
            sh(&format!("echo one >> {f}")),
            hook(serde_json::json!({"path": "/bin/true"})),
            sh(&format!("echo two >> {f}")),
        ];
        run_hooks("poststart", &hooks, b"{}").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("log")).unwrap(),
            "one\ntwo\n"
        );
        run_hooks("poststart", &[], b"{}").unwrap();
    }

    #[test]
    fn non_zero_exit_stops_and_quotes_output() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("ran");
        let hooks = [
            sh("echo out; echo '  boom  ' >&2; exit 3"),
            sh(&format!("touch {}", marker.display())),
        ];
        let e = run_hooks("createRuntime", &hooks, b"{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "createRuntime hook /bin/sh: exit status 3, stdout: out, stderr: boom"
        );
        assert!(!marker.exists());
        let e = run_hooks("poststop", &[sh("exit 1")], b"{}").unwrap_err();
        assert_eq!(e.to_string(), "poststop hook /bin/sh: exit status 1");
        let e = run_hooks("poststop", &[sh("kill -9 $$")], b"{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "poststop hook /bin/sh: terminated by signal 9"
        );
        // Long output is cut to the limit.
        let e = run_hooks(
            "poststop",
            &[sh("head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1")],
            b"",
        )
        .unwrap_err();
        assert!(e.to_string().len() < OUTPUT_LIMIT + 100);
    }

    #[test]
    fn timeout_kills() {
        let mut h = sh("exec sleep 30");
        h.set_timeout(Some(1));
        let t = Instant::now();
        let e = run_hooks("prestart", &[h], b"{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "prestart hook /bin/sh: timed out after 1 seconds"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        // A generous timeout does not fire.
        let mut h = sh("exit 0");
        h.set_timeout(Some(30));
        run_hooks("prestart", &[h], b"{}").unwrap();
    }

    #[test]
    fn state_on_stdin() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("state");
        let state = br#"{"ociVersion":"1.3.0","id":"c1","status":"created","pid":42}"#;
        run_hooks(
            "createContainer",
            &[sh(&format!("cat > {}", f.display()))],
            state,
        )
        .unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), state);
        // A hook that does not read a large state is not an error.
        let big = vec![b'x'; 1 << 20];
        run_hooks("createContainer", &[sh("exit 0")], &big).unwrap();
        run_hooks(
            "createContainer",
            &[hook(serde_json::json!({"path": "/bin/true"}))],
            &big,
        )
        .unwrap();
    }

    #[test]
    fn env_is_exact_and_args0_is_argv0() {
        let d = tempfile::tempdir().unwrap();
        let env = d.path().join("env");
        let cmdline = d.path().join("cmdline");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["my-hook", "-c",
                format!("cat /proc/$$/environ > {}; cat /proc/$$/cmdline > {}",
                    env.display(), cmdline.display())],
            "env": ["A=1", "B=two words", "C=x=y"],
        }));
        run_hooks("startContainer", &[h], b"{}").unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"A=1\0B=two words\0C=x=y\0");
        let cl = std::fs::read(&cmdline).unwrap();
        assert!(cl.starts_with(b"my-hook\0-c\0"), "{cl:?}");

        // No env: empty environment. No args: argv[0] is the path.
        let h = hook(serde_json::json!({"path": "/usr/bin/env"}));
        run_hooks("startContainer", &[h], b"{}").unwrap();
        let script = d.path().join("hook.sh");
        crate::testing::write_executable(
            &script,
            format!(
                "#!/bin/sh\ncat /proc/$$/environ > {}\necho \"$0\" > {}\n",
                env.display(),
                cmdline.display()
            )
            .as_bytes(),
        );
        run_hooks(
            "startContainer",
            &[hook(serde_json::json!({"path": script}))],
            b"{}",
        )
        .unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"");
        assert_eq!(
            std::fs::read_to_string(&cmdline).unwrap(),
            format!("{}\n", script.display())
        );
    }

    #[test]
    fn survives_epipe_with_default_sigpipe() {
        let code = crate::testing::in_child_exit_code(|| {
            // SAFETY: resetting a disposition in our own forked child, as the
            // container init may have it.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let big = vec![b'x'; 1 << 20];
            match run_hooks("createContainer", &[sh("exit 0")], &big) {
                Ok(()) => 0,
                Err(_) => 2,
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn config_errors() {
        let mut h = sh("exit 0");
        h.set_timeout(Some(0));
        let e = run_hooks("prestart", &[sh("exit 0"), h], b"{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "hooks.prestart[1].timeout: must be greater than zero, got 0"
        );
        let e = run_hooks(
            "poststop",
            &[hook(serde_json::json!({"path": "bin/x"}))],
            b"",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "hooks.poststop[0].path: \"bin/x\" is not an absolute path"
        );
        let e = run_hooks(
            "poststop",
            &[hook(serde_json::json!({"path": "/nonexistent/x"}))],
            b"",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "poststop hook /nonexistent/x: no such file or directory"
        );
    }
}

//! The foreground side of `skiff run`: relaying a terminal like
//! `docker run -it`, forwarding signals, and turning a wait status into an
//! exit code. One poll loop, no threads.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// Signals passed on to the container process.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

const STDIN: RawFd = 0;
const STDOUT: RawFd = 1;

/// Blocks a set of signals and reads them from a signalfd; the previous mask
/// is restored when dropped, on every exit path.
struct SignalGuard {
    old: libc::sigset_t,
    fd: OwnedFd,
}

impl SignalGuard {
    fn new(signals: &[libc::c_int]) -> Result<Self> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise
        // it, and sigprocmask/signalfd only read it or write `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
                return Err(Error::sys("sigprocmask SIG_BLOCK", Errno::last()));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                let e = Errno::last();
                libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(Error::sys("signalfd", e));
            }
            Ok(SignalGuard {
                old,
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// The next pending signal, if any.
    fn next(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = libc::read(
                self.fd.as_raw_fd(),
                &mut info as *mut _ as *mut libc::c_void,
                size,
            );
            (n as usize == size).then_some(info.ssi_signo as libc::c_int)
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        // Consume what is still queued so restoring the mask does not
        // deliver it to us (SIGINT would kill the runtime before it reaps).
        while self.next().is_some() {}
        // SAFETY: restores the mask saved in new().
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Block the signals `run` and `exec` forward (and SIGWINCH) for the rest
/// of this process's life, so that one arriving while the container
/// process is being set up waits for the forwarding loop instead of killing
/// the runtime and orphaning the process. Children reset their own mask.
pub fn block_forwarded_signals() -> Result<()> {
    block_signals(FORWARDED.iter().chain(&[libc::SIGWINCH]))
}

/// During setup: block the forwarded signals but the ones that stop the setup (see
/// `signal::make_setup_interruptible`), which are handled until `block_forwarded_signals`.
pub fn block_forwarded_signals_during_setup() -> Result<()> {
    crate::sys::signal::make_setup_interruptible()?;
    block_signals(
        FORWARDED
            .iter()
            .chain(&[libc::SIGWINCH])
            .filter(|s| ![libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM].contains(s)),
    )
}

fn block_signals<'a>(signals: impl Iterator<Item = &'a libc::c_int>) -> Result<()> {
    // SAFETY: the set is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in signals {
            libc::sigaddset(&mut set, *sig);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(Error::sys("sigprocmask SIG_BLOCK", Errno::last()));
        }
    }
    Ok(())
}

/// Puts a terminal in raw mode and restores its settings when dropped.
struct RawModeGuard {
    fd: RawFd,
    saved: libc::termios,
}

impl RawModeGuard {
    fn enter(fd: RawFd) -> Result<Self> {
        // SAFETY: termios is plain data filled by tcgetattr; cfmakeraw and
        // tcsetattr only read/modify the local copy.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return Err(Error::sys("tcgetattr stdin", Errno::last()));
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return Err(Error::sys("tcsetattr stdin (raw mode)", Errno::last()));
            }
            Ok(RawModeGuard { fd, saved })
        }
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in enter().
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only queries the fd.
    unsafe { libc::isatty(fd) == 1 }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; TIOCGWINSZ writes it, TIOCSWINSZ reads it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) {
    // SAFETY: pidfd_send_signal with a NULL siginfo behaves like kill(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r != 0 {
        // ESRCH: it just exited; the pidfd will say so.
        log::debug!("pidfd_send_signal {sig}: {}", Errno::last());
    }
}

/// Writes all of `buf`, waiting for POLLOUT if the fd is non-blocking.
fn write_all(fd: RawFd, mut buf: &[u8]) -> std::result::Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: buf is a live slice.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n >= 0 {
            buf = &buf[n as usize..];
            continue;
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EAGAIN => {
                let mut p = crate::sys::spawn::pollfd(fd, libc::POLLOUT);
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, -1) };
            }
            e => return Err(e),
        }
    }
    Ok(())
}

enum Read {
    Data(usize),
    Again,
    End,
}

fn read_some(fd: RawFd, buf: &mut [u8]) -> Read {
    loop {
        // SAFETY: buf is a live, writable slice.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n > 0 {
            return Read::Data(n as usize);
        }
        if n == 0 {
            return Read::End;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EAGAIN => return Read::Again,
            // EIO: every peer of the pty is closed.
            _ => return Read::End,
        }
    }
}

fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: F_GETFL/F_SETFL only read and change the fd's status flags.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(Error::sys("fcntl O_NONBLOCK (pty master)", Errno::last()));
        }
    }
    Ok(())
}

/// The terminal's end-of-file character (^D unless the pty says otherwise).
fn eof_char(fd: RawFd) -> u8 {
    // SAFETY: termios is plain data filled by tcgetattr.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) == 0 && t.c_cc[libc::VEOF] != 0 {
            t.c_cc[libc::VEOF]
        } else {
            4
        }
    }
}

/// Relays between the caller's terminal (fd 0 in, fd 1 out) and the pty
/// master until the process behind `pidfd` exits, then drains the master.
pub fn relay(master: OwnedFd, pidfd: BorrowedFd<'_>) -> Result<()> {
    let m = master.as_raw_fd();
    let stdin_tty = is_tty(STDIN);
    // Order matters for drop: signals are unblocked after the terminal is
    // restored, so a late SIGINT cannot leave the user's tty raw.
    let mut all = FORWARDED.to_vec();
    all.push(libc::SIGWINCH);
    let signals = SignalGuard::new(&all)?;
    let _raw = if stdin_tty {
        copy_winsize(STDIN, m);
        Some(RawModeGuard::enter(STDIN)?)
    } else {
        None
    };
    set_nonblocking(m)?;

    let mut buf = vec![0u8; 32 * 1024];
    // stdin bytes not yet accepted by the master.
    let mut pending: Vec<u8> = Vec::new();
    let mut last_sent = b'\n';
    let mut stdin_open = true;
    let mut master_open = true;
    let mut stdout_ok = true;

    loop {
        let mut fds = [
            crate::sys::spawn::pollfd(pidfd.as_raw_fd(), libc::POLLIN),
            crate::sys::spawn::pollfd(signals.fd.as_raw_fd(), libc::POLLIN),
            // A negative fd is ignored by poll.
            crate::sys::spawn::pollfd(
                if master_open { m } else { -1 },
                libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT },
            ),
            crate::sys::spawn::pollfd(
                if stdin_open && pending.is_empty() {
                    STDIN
                } else {
                    -1
                },
                libc::POLLIN,
            ),
        ];
        // SAFETY: fds is a valid array of pollfd for the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(Error::sys("poll (terminal relay)", e));
        }

        if fds[1].revents != 0 {
            while let Some(sig) = signals.next() {
                if sig == libc::SIGWINCH {
                    if stdin_tty {
                        copy_winsize(STDIN, m);
                    }
                } else {
                    send_signal(pidfd, sig);
                }
            }
        }

        let mrev = fds[2].revents;
        if mrev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match read_some(m, &mut buf) {
                Read::Data(n) => {
                    if stdout_ok && write_all(STDOUT, &buf[..n]).is_err() {
                        // Keep draining the master so the container never
                        // blocks on a full pty, but stop writing.
                        stdout_ok = false;
                    }
                }
                Read::Again => {}
                Read::End => master_open = false,
            }
        }
        if mrev & libc::POLLOUT != 0 && !pending.is_empty() {
            // SAFETY: pending is a live slice; m is non-blocking.
            let n =
                unsafe { libc::write(m, pending.as_ptr() as *const libc::c_void, pending.len()) };
            if n > 0 {
                pending.drain(..n as usize);
            } else if n < 0 && !matches!(Errno::last(), Errno::EAGAIN | Errno::EINTR) {
                pending.clear();
                stdin_open = false;
            }
        }

        let irev = fds[3].revents;
        if irev != 0 {
            let eof = if irev & libc::POLLNVAL != 0 {
                true
            } else {
                match read_some(STDIN, &mut buf) {
                    Read::Data(n) => {
                        pending.extend_from_slice(&buf[..n]);
                        last_sent = buf[n - 1];
                        false
                    }
                    Read::Again => false,
                    Read::End => true,
                }
            };
            if eof {
                stdin_open = false;
                if !stdin_tty {
                    // One EOF char ends input at the start of a line; after
                    // a partial line the first one only flushes that line.
                    let c = eof_char(m);
                    if last_sent != b'\n' {
                        pending.push(c);
                    }
                    pending.push(c);
                }
            }
        }

        if fds[0].revents != 0 {
            break;
        }
    }

    // The process is gone and with it (usually) the last holder of the pts:
    // whatever it wrote is still queued in the master.
    if master_open {
        while let Read::Data(n) = read_some(m, &mut buf) {
            if stdout_ok && write_all(STDOUT, &buf[..n]).is_err() {
                stdout_ok = false;
            }
        }
    }
    drop(master);
    Ok(())
}

/// Forwards signals to the process behind `pidfd` until it exits, then
/// reaps `pid` and returns its exit code (128+N when killed by signal N).
pub fn forward_signals_and_wait(pid: i32, pidfd: BorrowedFd<'_>) -> Result<i32> {
    let mut all = FORWARDED.to_vec();
    all.push(libc::SIGWINCH);
    {
        let signals = SignalGuard::new(&all)?;
        loop {
            let mut fds = [
                crate::sys::spawn::pollfd(pidfd.as_raw_fd(), libc::POLLIN),
                crate::sys::spawn::pollfd(signals.fd.as_raw_fd(), libc::POLLIN),
            ];
            // SAFETY: fds is a valid array of pollfd.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 {
                let e = Errno::last();
                if e == Errno::EINTR {
                    continue;
                }
                return Err(Error::sys("poll (signal forwarding)", e));
            }
            if fds[1].revents != 0 {
                while let Some(sig) = signals.next() {
                    send_signal(pidfd, sig);
                }
            }
            if fds[0].revents != 0 {
                break;
            }
        }
    }
    wait_exit_code(pid)
}

pub use crate::sys::spawn::{exit_code, pidfd_open, wait_exit_code};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{in_child_exit_code as in_child, wait};
    use std::os::fd::AsFd;

    fn fork_fn(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = f();
            // SAFETY: leave the forked child without running the harness.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    fn read_all_nonblocking(fd: RawFd) -> Vec<u8> {
        set_nonblocking(fd).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Read::Data(n) = read_some(fd, &mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn termios(fd: RawFd) -> libc::termios {
        // SAFETY: plain data filled by tcgetattr.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            libc::tcgetattr(fd, &mut t);
            t
        }
    }

    fn same(a: &libc::termios, b: &libc::termios) -> bool {
        a.c_iflag == b.c_iflag
            && a.c_oflag == b.c_oflag
            && a.c_cflag == b.c_cflag
            && a.c_lflag == b.c_lflag
            && a.c_cc == b.c_cc
    }

    #[test]
    fn relays_output_from_a_tty_and_restores_it() {
        let caller = nix::pty::openpty(None, None).unwrap();
        let (cm, cs) = (caller.master, caller.slave);
        let ws = libc::winsize {
            ws_row: 42,
            ws_col: 99,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize.
        unsafe { libc::ioctl(cs.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        let code = in_child(|| {
            // SAFETY: in our forked supervisor: the caller pty becomes stdio.
            unsafe {
                libc::dup2(cs.as_raw_fd(), 0);
                libc::dup2(cs.as_raw_fd(), 1);
            }
            let before = termios(0);
            let ctr = nix::pty::openpty(None, None).unwrap();
            let s2 = ctr.slave;
            let child = fork_fn(|| {
                let msg = b"hello from container\n";
                // Wait until the relay copied the caller's size over.
                for _ in 0..200 {
                    // SAFETY: reads the window size of our pts.
                    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
                    unsafe { libc::ioctl(s2.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
                    if ws.ws_row == 42 && ws.ws_col == 99 {
                        return write_all(s2.as_raw_fd(), msg).map_or(3, |_| 0);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                4
            });
            drop(s2);
            let pidfd = pidfd_open(child).unwrap();
            if let Err(e) = relay(ctr.master, pidfd.as_fd()) {
                eprintln!("{e}");
                return 2;
            }
            if !same(&before, &termios(0)) {
                return 3;
            }
            match wait_exit_code(child) {
                Ok(0) => 0,
                Ok(c) => 10 + c,
                Err(_) => 5,
            }
        });
        assert_eq!(code, 0);
        let out = read_all_nonblocking(cm.as_raw_fd());
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("hello from container\r\n"), "{out:?}");
    }

    /// stdin is a pipe: its bytes reach the container, and its EOF becomes
    /// the terminal's EOF character.
    fn relay_piped(input: &'static [u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let outp = dir.path().join("out");
        let out = std::fs::File::create(&outp).unwrap();
        let code = in_child(|| {
            let mut p = [0; 2];
            // SAFETY: pipe fills two fds; the supervisor wires them to stdio.
            unsafe {
                libc::pipe(p.as_mut_ptr());
                libc::write(p[1], input.as_ptr() as *const _, input.len());
                libc::close(p[1]);
                libc::dup2(p[0], 0);
                libc::close(p[0]);
                libc::dup2(out.as_raw_fd(), 1);
            }
            let ctr = nix::pty::openpty(None, None).unwrap();
            let s2 = ctr.slave;
            let child = fork_fn(|| {
                let mut total = 0;
                let mut buf = [0u8; 256];
                while let Read::Data(n) = read_some(s2.as_raw_fd(), &mut buf) {
                    total += n;
                }
                let msg = format!("got {total}\n");
                write_all(s2.as_raw_fd(), msg.as_bytes()).map_or(3, |_| 0)
            });
            drop(s2);
            let pidfd = pidfd_open(child).unwrap();
            if let Err(e) = relay(ctr.master, pidfd.as_fd()) {
                eprintln!("{e}");
                return 2;
            }
            wait_exit_code(child).unwrap_or(9)
        });
        assert_eq!(code, 0);
        std::fs::read_to_string(&outp).unwrap()
    }

    #[test]
    fn relays_piped_stdin_with_eof() {
        let out = relay_piped(b"abc\n");
        assert!(out.contains("got 4\r\n"), "{out:?}");
        // A partial last line needs two EOF chars: one flushes it.
        let out = relay_piped(b"abc");
        assert!(out.contains("got 3\r\n"), "{out:?}");
        let out = relay_piped(b"");
        assert!(out.contains("got 0\r\n"), "{out:?}");
    }

    #[test]
    fn exit_codes() {
        let c = fork_fn(|| 3);
        let pidfd = pidfd_open(c).unwrap();
        assert_eq!(forward_signals_and_wait(c, pidfd.as_fd()).unwrap(), 3);
        let c = fork_fn(|| {
            // SAFETY: the forked child kills itself.
            unsafe { libc::raise(libc::SIGTERM) };
            0
        });
        assert_eq!(wait_exit_code(c).unwrap(), 143);
        assert!(wait_exit_code(c).is_err());
    }

    #[test]
    fn forwards_sigterm() {
        let mut ready = [0; 2];
        // SAFETY: pipe fills two fds.
        unsafe { libc::pipe(ready.as_mut_ptr()) };
        let sup = fork_fn(|| {
            let child = fork_fn(|| loop {
                // SAFETY: waits for a signal; SIGTERM's default kills us.
                unsafe { libc::pause() };
            });
            let pidfd = match pidfd_open(child) {
                Ok(p) => p,
                Err(_) => return 2,
            };
            // Block before telling the test we are ready, so its SIGTERM is
            // queued for the signalfd instead of killing us.
            // SAFETY: plain data set, then blocking it in this process.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::write(ready[1], b"r".as_ptr() as *const _, 1);
            }
            match forward_signals_and_wait(child, pidfd.as_fd()) {
                Ok(143) => 0,
                Ok(c) => 10 + c.min(100),
                Err(_) => 3,
            }
        });
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a local; then signalling our own
        // forked supervisor (never pid 1 or another process).
        unsafe {
            libc::close(ready[1]);
            assert_eq!(libc::read(ready[0], b.as_mut_ptr() as *mut _, 1), 1);
            libc::close(ready[0]);
            libc::kill(sup, libc::SIGTERM);
        }
        assert_eq!(wait(sup), 0);
    }
}

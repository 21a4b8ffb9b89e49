//! Signal names as runc's `kill` takes them (`9`, `KILL` or `SIGKILL`), and the signals that
//! stop the runtime's own setup.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// The signals a user sends to stop a command (Ctrl-C, `kill`, a closed terminal, Ctrl-\).
const SETUP_STOPPERS: [libc::c_int; 4] = [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];

/// The stopper that arrived during setup, 0 if none.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stopper(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(sig, Ordering::Relaxed);
}

/// While `create`, `run` and `exec` set a container up, a stopper does not kill the runtime
/// (which would leave a half-made container) nor wait for the setup to end (a config that
/// is a FIFO, a hook that never returns): it is recorded, and the blocking call it interrupts
/// fails with EINTR instead of being retried ([`crate::error::retry_eintr`]), so the setup
/// unwinds and removes what it made. Installed without SA_RESTART for that reason.
pub fn make_setup_interruptible() -> Result<()> {
    for sig in SETUP_STOPPERS {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stopper as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(Error::sys(format!("sigaction {sig}"), Errno::last()));
            }
        }
    }
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// The stopper received during setup, if one was.
pub fn interrupted() -> Option<libc::c_int> {
    match INTERRUPTED.load(Ordering::Relaxed) {
        0 => None,
        sig => Some(sig),
    }
}

/// Err when a stopper arrived during setup (also one that interrupted nothing).
pub fn check_interrupted() -> Result<()> {
    match interrupted() {
        None => Ok(()),
        Some(sig) => Err(Error::msg(format!(
            "interrupted by signal {sig} ({}) during setup",
            name_of(sig)
        ))),
    }
}

/// In a child of the runtime (init, exec child): the stoppers' default actions again.
pub fn restore_default_stoppers() {
    if !INSTALLED.load(Ordering::Relaxed) {
        return;
    }
    for sig in SETUP_STOPPERS {
        // SAFETY: setting a default disposition has no memory effects.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

fn name_of(sig: libc::c_int) -> String {
    NAMES
        .iter()
        .find(|(_, n)| *n == sig)
        .map(|(name, _)| format!("SIG{name}"))
        .unwrap_or_else(|| sig.to_string())
}

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

pub fn parse(text: &str) -> Result<i32> {
    let bad = || Error::msg(format!("invalid signal: {text:?}"));
    if let Ok(n) = text.parse::<i32>() {
        let max = libc::SIGRTMAX();
        // 0 checks that the process exists (runc takes it: engines use it as a liveness probe).
        return if (0..=max).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(nm, _)| *nm == name) {
        return Ok(n);
    }
    // RTMIN+N / RTMAX-N
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| bad())?
        };
        let n = base + sign * off;
        if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest.trim_start_matches('+'), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest.trim_start_matches('-'), -1);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert_eq!(parse("0").unwrap(), 0, "signal 0: the liveness probe");
        assert!(parse("SIGFOO").unwrap_err().to_string().contains("SIGFOO"));
        assert!(parse("99").is_err());
    }
}

//! Doing: load the program with seccomp(2), and hand the notification
//! listener to the agent.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    connect, recvmsg, sendmsg, socket, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};

use super::compile::CompiledFilter;
use crate::error::{Error, Result};

/// The filter flags in runtime-spec spelling, for messages.
const FLAG_NAMES: &[(u64, &str)] = &[
    (libc::SECCOMP_FILTER_FLAG_TSYNC, "SECCOMP_FILTER_FLAG_TSYNC"),
    (libc::SECCOMP_FILTER_FLAG_LOG, "SECCOMP_FILTER_FLAG_LOG"),
    (
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        "SECCOMP_FILTER_FLAG_NEW_LISTENER",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
        "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ),
];

fn seccomp_set_filter(flags: u64, prog: *const libc::sock_fprog) -> libc::c_long {
    // SAFETY: seccomp(2) reads `prog` (a valid sock_fprog whose filter
    // pointer covers `len` instructions, or NULL for a probe) and nothing else.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags as libc::c_ulong,
            prog,
        )
    }
}

/// Load the filter into the calling thread. Needs no_new_privs or
/// CAP_SYS_ADMIN. Returns the notification listener (close-on-exec) when
/// the filter has NOTIFY rules.
///
/// Every syscall after this one goes through the filter: call it as late as
/// possible.
pub fn install(filter: &CompiledFilter) -> Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: filter.program.len() as u16,
        // seccompiler's sock_filter is repr(C) with libc's layout.
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    let flags = u64::from(filter.flags);
    let rc = seccomp_set_filter(flags, &prog);
    if rc < 0 {
        return Err(install_error(flags, Errno::last()));
    }
    if filter.listener {
        // SAFETY: with NEW_LISTENER the kernel returns a new fd that we own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as RawFd) }))
    } else {
        Ok(None)
    }
}

/// Turn an install failure into an error that says what to do about it.
/// EINVAL usually means a flag this kernel lacks: find which one with
/// probes that pass no program (a known flag then fails with EFAULT when
/// the kernel reads the program, an unknown one with EINVAL before).
pub(super) fn install_error(flags: u64, errno: Errno) -> Error {
    let op = "seccomp(SECCOMP_SET_MODE_FILTER)";
    match errno {
        Errno::EACCES => Error::sys(
            format!("{op} (needs process.noNewPrivileges or CAP_SYS_ADMIN)"),
            errno,
        ),
        Errno::EINVAL if flags != 0 => {
            let listener = flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
            let known = FLAG_NAMES.iter().fold(0, |acc, (f, _)| acc | f);
            let mut missing: Vec<String> = FLAG_NAMES
                .iter()
                .filter(|(f, _)| flags & f != 0)
                .filter(|(f, _)| {
                    let probe = if *f == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
                        f | listener
                    } else {
                        *f
                    };
                    seccomp_set_filter(probe, std::ptr::null()) < 0
                        && Errno::last() == Errno::EINVAL
                })
                .map(|(_, n)| n.to_string())
                .collect();
            if flags & !known != 0 {
                missing.push(format!("flag bits {:#x}", flags & !known));
            }
            if missing.is_empty() {
                Error::sys(op, errno)
            } else {
                Error::sys(
                    format!("{op}: this kernel does not support {}", missing.join(", ")),
                    errno,
                )
            }
        }
        _ => Error::sys(op, errno),
    }
}

/// The container process state (config-linux.md "The Container Process
/// State") sent with the listener: `state_json` is the container's state as
/// `skiff state` prints it.
pub fn process_state_message(state_json: &[u8], metadata: Option<&str>) -> Result<Vec<u8>> {
    let state: serde_json::Value = serde_json::from_slice(state_json).map_err(|e| {
        Error::msg(format!(
            "seccomp listener: container state is not JSON: {e}"
        ))
    })?;
    let pid = state
        .get("pid")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| Error::msg("seccomp listener: container state has no pid"))?;
    let version = state
        .get("ociVersion")
        .cloned()
        .unwrap_or_else(|| serde_json::Value::from("1.3.0"));
    let mut msg = serde_json::Map::new();
    msg.insert("ociVersion".into(), version);
    msg.insert("fds".into(), serde_json::json!(["seccompFd"]));
    msg.insert("pid".into(), pid.into());
    if let Some(m) = metadata {
        msg.insert("metadata".into(), m.into());
    }
    msg.insert("state".into(), state);
    serde_json::to_vec(&msg).map_err(|e| Error::msg(format!("seccomp listener: encode: {e}")))
}

/// Send the listener with the container process state to the agent's
/// socket at `listener_path` (one connection, one message, then closed),
/// and close our copy of the listener.
pub fn send_listener(
    listener_path: &Path,
    listener: OwnedFd,
    state_json: &[u8],
    metadata: Option<&str>,
) -> Result<()> {
    let msg = process_state_message(state_json, metadata)?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("seccomp listener: socket", e))?;
    let addr = UnixAddr::new(listener_path)
        .map_err(|e| Error::sys_path("seccomp listener: socket address", listener_path, e))?;
    connect(sock.as_raw_fd(), &addr).map_err(|e| {
        Error::sys_path(
            "failed to connect with seccomp agent: connect",
            listener_path,
            e,
        )
    })?;
    let fds = [listener.as_raw_fd()];
    let mut sent = 0;
    while sent < msg.len() {
        // The fd travels with the first part only (config-linux.md).
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage] = if sent == 0 { &cmsg } else { &[] };
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&msg[sent..])],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys_path("seccomp listener: send", listener_path, e)),
        }
    }
    drop(listener);
    Ok(())
}

/// Pass an fd over a connected unix socket (for the init to hand the
/// listener to `create`, which has the container state): one packet with a
/// one-byte payload and the fd. Uses sendmsg only.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(b"L")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("seccomp listener: send to the runtime", e)),
        }
    }
}

/// Receive the fd `send_fd` sent.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    loop {
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("seccomp listener: receive from the init", e)),
        };
        let cmsgs = msg
            .cmsgs()
            .map_err(|e| Error::sys("seccomp listener: control message", e))?;
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: SCM_RIGHTS installed this fd in our table; we own it.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        break;
    }
    Err(Error::msg(
        "seccomp listener: the init's message carried no fd",
    ))
}

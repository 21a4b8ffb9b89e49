//! `process.terminal`: the pty is allocated inside the container (from the
//! container's own devpts) and its master is handed out over a unix socket,
//! the protocol engines expect from runc's `--console-socket`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

use crate::error::{Error, Result};

const PTMX: &str = "/dev/ptmx";

/// The name sent along with the master. Receivers only use the fd; the name
/// is what runc sends as well (a short path), so it fits their buffers.
const MASTER_NAME: &[u8] = b"/dev/ptmx";

fn ioctl_err(op: &str) -> Error {
    Error::sys(op, Errno::last())
}

/// Allocates the container's pty, makes its peer the controlling terminal
/// and stdio of this (init) process, and sends the master over `socket`.
///
/// `size` is (rows, columns), i.e. `process.consoleSize` (height, width).
///
/// `bind_console`: make /dev/console this pty. Only the container's first
/// process does (as runc): an exec'd process's pty would outlive neither
/// its process nor the next exec, and must not change the container's mounts.
/// `owner`: the process's uid; the pty is made its own (the group stays the devpts's, tty),
/// as runc does, so a non-root process can reopen its own /dev/pts/N.
pub fn setup_console(
    socket: BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    bind_console: bool,
    owner: u32,
) -> Result<()> {
    // SAFETY: NUL-terminated literal path; the returned fd is owned below.
    let fd = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::sys_path("open", PTMX, Errno::last()));
    }
    // SAFETY: fd was just opened and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    check_multiplexer(&master)?;

    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(ioctl_err("unlockpt (ioctl TIOCSPTLCK)"));
    }

    let peer = open_peer(&master)?;
    check_container_pty(&master, &peer)?;
    // SAFETY: fchown on an fd we own; -1 keeps the group.
    if unsafe { libc::fchown(peer.as_raw_fd(), owner, u32::MAX) } != 0 {
        return Err(Error::sys(
            format!("chown the pty to uid {owner}"),
            Errno::last(),
        ));
    }
    if bind_console {
        bind_dev_console(&peer)?;
    }

    // SAFETY: setsid has no arguments; the init is not a group leader.
    if unsafe { libc::setsid() } < 0 {
        return Err(ioctl_err("setsid"));
    }
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    if unsafe { libc::ioctl(peer.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(ioctl_err("ioctl TIOCSCTTY"));
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
        if unsafe { libc::ioctl(peer.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(ioctl_err("ioctl TIOCSWINSZ"));
        }
    }
    let peer_fd = peer.as_raw_fd();
    for target in 0..3 {
        if target == peer_fd {
            // dup2 onto itself would keep O_CLOEXEC: clear it instead.
            // SAFETY: only changes fd flags.
            if unsafe { libc::fcntl(peer_fd, libc::F_SETFD, 0) } != 0 {
                return Err(ioctl_err("fcntl F_SETFD (pty peer)"));
            }
        // SAFETY: dup2 onto stdio of this process, which it owns.
        } else if unsafe { libc::dup2(peer_fd, target) } < 0 {
            return Err(Error::sys(
                format!("dup2 pty onto fd {target}"),
                Errno::last(),
            ));
        }
    }
    if peer_fd <= 2 {
        // It is now one of the stdio fds: do not close it.
        std::mem::forget(peer);
    } else {
        drop(peer);
    }

    send_fd(socket, master.as_raw_fd())
        .map_err(|e| Error::sys("send pty master over console socket (sendmsg)", e))?;
    drop(master);
    Ok(())
}

/// The pty must come from the container's own devpts: /dev/ptmx (in the
/// rootfs image's control until now) must have opened the pty multiplexer
/// (5:2), the peer must live on a devpts, and that devpts must be the one
/// mounted on /dev/pts (with /dev/ptmx a symlink to pts/ptmx, the master is
/// on it too). Otherwise a planted /dev/ptmx or /dev/pts could hand the
/// container a terminal of another devpts, or make skiff open a file that
/// is not a pty at all.
fn check_container_pty(master: &OwnedFd, peer: &OwnedFd) -> Result<()> {
    use crate::rootfs::procfs::{fs_type, fstat, DEVPTS_SUPER_MAGIC};
    use std::os::fd::AsFd;
    let m = fstat(master.as_fd()).map_err(|e| Error::sys_path("stat", PTMX, e))?;
    // SAFETY: NUL-terminated literal path; the fd is owned below.
    let pts = unsafe {
        libc::open(
            c"/dev/pts".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if pts < 0 {
        return Err(Error::sys_path("open", "/dev/pts", Errno::last()));
    }
    // SAFETY: just opened, owned by nobody else.
    let pts = unsafe { OwnedFd::from_raw_fd(pts) };
    let pts_type = fs_type(pts.as_fd()).map_err(|e| Error::sys_path("statfs", "/dev/pts", e))?;
    let pts_dev = fstat(pts.as_fd())
        .map_err(|e| Error::sys_path("stat", "/dev/pts", e))?
        .st_dev;
    if pts_type != DEVPTS_SUPER_MAGIC {
        return Err(Error::msg(
            "/dev/pts is not a devpts filesystem: refusing the console",
        ));
    }
    let peer_type = fs_type(peer.as_fd()).map_err(|e| Error::sys("statfs pty peer", e))?;
    let peer_dev = fstat(peer.as_fd())
        .map_err(|e| Error::sys("stat pty peer", e))?
        .st_dev;
    let master_type = fs_type(master.as_fd()).map_err(|e| Error::sys_path("statfs", PTMX, e))?;
    if peer_type != DEVPTS_SUPER_MAGIC
        || peer_dev != pts_dev
        || (master_type == DEVPTS_SUPER_MAGIC && m.st_dev != pts_dev)
    {
        return Err(Error::msg(
            "the pty opened through /dev/ptmx is not on the container's /dev/pts: refusing it",
        ));
    }
    Ok(())
}

/// Before any ioctl: what /dev/ptmx opened must be the multiplexer.
fn check_multiplexer(master: &OwnedFd) -> Result<()> {
    use std::os::fd::AsFd;
    let m = crate::rootfs::procfs::fstat(master.as_fd())
        .map_err(|e| Error::sys_path("stat", PTMX, e))?;
    if m.st_mode & libc::S_IFMT != libc::S_IFCHR
        || libc::major(m.st_rdev) != 5
        || libc::minor(m.st_rdev) != 2
    {
        return Err(Error::msg(
            "/dev/ptmx is not the pty multiplexer (5:2): refusing it",
        ));
    }
    Ok(())
}

/// Make /dev/console the container's pty, as runc does: programs that
/// write to the console (init systems, getty) reach the terminal. /dev is
/// checked not to lead into procfs or sysfs, /dev/console is created (or
/// opened) without following a symlink, and the pty is attached by fd
/// (open_tree of the peer, move_mount onto the opened console): the rootfs
/// cannot aim the bind mount at another file (the CVE-2025-52565 class).
fn bind_dev_console(peer: &OwnedFd) -> Result<()> {
    use crate::sys::mount_api;
    use std::os::fd::AsFd;
    // SAFETY: NUL-terminated literal path; the fd is owned below.
    let dev = unsafe {
        libc::open(
            c"/dev".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dev < 0 {
        return Err(Error::sys_path("open", "/dev", Errno::last()));
    }
    // SAFETY: just opened, owned by nobody else.
    let dev = unsafe { OwnedFd::from_raw_fd(dev) };
    crate::rootfs::procfs::refuse_kernel_fs(dev.as_fd(), b"/dev")?;
    // SAFETY: `dev` is an open directory fd, the name a single component;
    // mknodat never follows a symlink.
    let r = unsafe {
        libc::mknodat(
            dev.as_raw_fd(),
            c"console".as_ptr(),
            libc::S_IFREG | 0o600,
            0,
        )
    };
    if r < 0 && Errno::last() != Errno::EEXIST {
        return Err(Error::sys_path("create", "/dev/console", Errno::last()));
    }
    // O_PATH: an existing node is never opened as a device; O_NOFOLLOW
    // refuses a symlink planted at /dev/console.
    // SAFETY: as above.
    let fd = unsafe {
        libc::openat(
            dev.as_raw_fd(),
            c"console".as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::sys_path("open", "/dev/console", Errno::last()));
    }
    // SAFETY: just opened, owned by nobody else.
    let console = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = crate::rootfs::procfs::fstat(console.as_fd())
        .map_err(|e| Error::sys_path("stat", "/dev/console", e))?;
    let ft = st.st_mode & libc::S_IFMT;
    if ft != libc::S_IFREG && ft != libc::S_IFCHR {
        return Err(Error::msg(
            "/dev/console exists and is neither a file nor a device (a symlink?): refusing it",
        ));
    }
    let tree = mount_api::clone_of(peer.as_fd(), false)
        .map_err(|e| Error::sys("bind the pty to /dev/console (open_tree)", e))?;
    mount_api::move_onto(tree.as_fd(), console.as_fd())
        .map_err(|e| Error::sys_path("bind the pty to (move_mount)", "/dev/console", e))
}

/// The pts peer of `master`: TIOCGPTPEER (Linux 4.13+) opens it without a
/// path lookup, which is immune to a different devpts mounted on /dev/pts.
fn open_peer(master: &OwnedFd) -> Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as an int argument.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd >= 0 {
        // SAFETY: the ioctl returned a new fd that nothing else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let errno = Errno::last();
    if errno != Errno::EINVAL && errno != Errno::ENOTTY {
        return Err(Error::sys("ioctl TIOCGPTPEER", errno));
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } != 0 {
        return Err(ioctl_err("ptsname (ioctl TIOCGPTN)"));
    }
    let path = format!("/dev/pts/{n}");
    let c =
        std::ffi::CString::new(path.as_str()).map_err(|_| Error::msg("pts path contains NUL"))?;
    // SAFETY: valid C string path; the fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::sys_path("open", &path, Errno::last()));
    }
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Space for one cmsg carrying `n` fds, aligned for cmsghdr.
#[repr(C)]
union CmsgBuf<const N: usize> {
    _align: libc::cmsghdr,
    bytes: [u8; N],
}

const ONE_FD_SPACE: usize = 32; // >= CMSG_SPACE(sizeof(int)) on every 64/32-bit ABI
const MANY_FD_SPACE: usize = 64; // room to notice (and close) extra fds

/// One sendmsg: data MASTER_NAME, one SCM_RIGHTS cmsg with one fd.
fn send_fd(socket: BorrowedFd<'_>, fd: RawFd) -> std::result::Result<(), Errno> {
    send_named_fd(socket, fd, MASTER_NAME)
}

/// One sendmsg whose data is `name` and whose ancillary data is exactly one
/// SCM_RIGHTS cmsg carrying `fd` (the protocol of runc's console and pidfd sockets).
pub fn send_named_fd(
    socket: BorrowedFd<'_>,
    fd: RawFd,
    name: &[u8],
) -> std::result::Result<(), Errno> {
    let mut buf = CmsgBuf::<ONE_FD_SPACE> {
        bytes: [0; ONE_FD_SPACE],
    };
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut libc::c_void,
        iov_len: name.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid "empty" value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    debug_assert!(space <= ONE_FD_SPACE);
    // SAFETY: the union's bytes field is always initialised (zeroed above).
    msg.msg_control = unsafe { buf.bytes.as_mut_ptr() } as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` aligned, writable bytes, so the
    // first header and its data fit; CMSG_* only compute addresses in it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
    }
    loop {
        // SAFETY: msg and everything it points to are alive for the call.
        let r = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Connects to the `--console-socket` path. Done before the init is cloned,
/// so the init can still use it after pivot_root.
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let addr = UnixAddr::new(path).map_err(|e| Error::sys_path("console socket", path, e))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socket AF_UNIX for console socket", e))?;
    connect(sock.as_raw_fd(), &addr)
        .map_err(|e| Error::sys_path("connect to console socket", path, e))?;
    Ok(sock)
}

/// Receives the pty master sent by `setup_console` (or by any runtime
/// speaking the same protocol). Anything but exactly one fd is rejected, and
/// every fd that did arrive is closed.
pub fn recv_master(socket: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut data = [0u8; 256];
    let mut buf = CmsgBuf::<MANY_FD_SPACE> {
        bytes: [0; MANY_FD_SPACE],
    };
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid "empty" value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: the union's bytes field is initialised.
    msg.msg_control = unsafe { buf.bytes.as_mut_ptr() } as *mut libc::c_void;
    msg.msg_controllen = MANY_FD_SPACE as _;
    let n = loop {
        // SAFETY: msg points at live buffers of the declared sizes.
        let r = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r;
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(Error::sys("receive pty master (recvmsg)", e));
        }
    };

    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut other_cmsg = false;
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay within it, and each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / sizeof(int) fds now owned by this process.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(cmsg) as *const RawFd;
                for i in 0..payload / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                }
            } else {
                other_cmsg = true;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(Error::msg(
            "console socket: message carried more fds than expected (truncated), rejected",
        ));
    }
    if n == 0 && fds.is_empty() {
        return Err(Error::msg(
            "console socket: closed before the pty master was received",
        ));
    }
    if other_cmsg || fds.len() != 1 {
        return Err(Error::msg(format!(
            "console socket: expected exactly one fd (the pty master), got {}{}",
            fds.len(),
            if other_cmsg {
                " and other control data"
            } else {
                ""
            }
        )));
    }
    Ok(fds.pop().expect("length checked above"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child_exit_code as in_child;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn sends_and_receives_one_fd() {
        let (a, b) = pair();
        let f = std::fs::File::open("/dev/null").unwrap();
        send_fd(a.as_fd(), f.as_raw_fd()).unwrap();
        let got = recv_master(b.as_fd()).unwrap();
        // SAFETY: fcntl reads flags of an fd we own.
        let flags = unsafe { libc::fcntl(got.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    fn send_n(sock: BorrowedFd<'_>, fds: &[RawFd]) {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let iov = [std::io::IoSlice::new(b"x")];
        let cmsgs: Vec<ControlMessage> = if fds.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(fds)]
        };
        sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).unwrap();
    }

    #[test]
    fn rejects_zero_or_many_fds() {
        let (a, b) = pair();
        send_n(a.as_fd(), &[]);
        let e = recv_master(b.as_fd()).unwrap_err();
        assert!(e.to_string().contains("expected exactly one fd"), "{e}");

        let f = std::fs::File::open("/dev/null").unwrap();
        let (a, b) = pair();
        send_n(a.as_fd(), &[f.as_raw_fd(), f.as_raw_fd()]);
        let e = recv_master(b.as_fd()).unwrap_err();
        assert!(e.to_string().contains("got 2"), "{e}");

        let (a, b) = pair();
        send_n(a.as_fd(), &[f.as_raw_fd(); 20]);
        assert!(recv_master(b.as_fd()).is_err());

        let (a, b) = pair();
        drop(a);
        let e = recv_master(b.as_fd()).unwrap_err();
        assert!(e.to_string().contains("closed before"), "{e}");
    }

    #[test]
    fn connect_error_names_path() {
        let e = connect_console_socket(Path::new("/nonexistent/sock")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "connect to console socket /nonexistent/sock: no such file or directory"
        );
    }

    #[test]
    fn connects_to_a_listening_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.sock");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let s = connect_console_socket(&p).unwrap();
        let (peer, _) = l.accept().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        send_fd(s.as_fd(), f.as_raw_fd()).unwrap();
        recv_master(peer.as_fd()).unwrap();
    }

    /// The whole init-side sequence in a forked child (on the host's
    /// /dev/ptmx): the child's stdio become the pts, and the received
    /// master sees what the child writes.
    #[test]
    fn setup_console_in_child() {
        let (a, b) = pair();
        let code = in_child(|| {
            // setup_console bind-mounts over /dev/console: keep that off the host.
            // SAFETY: unshare/mount with plain flags in a forked test child.
            unsafe {
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) != 0
                {
                    return 5;
                }
            }
            if let Err(e) = setup_console(a.as_fd(), Some((33, 120)), true, 0) {
                eprintln!("{e}");
                return 2;
            }
            let mut ws = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes to a valid winsize.
            unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
            if (ws.ws_row, ws.ws_col) != (33, 120) {
                return 3;
            }
            // SAFETY: tcgetpgrp/getsid on our own fds and session.
            if unsafe { libc::tcgetsid(0) } != unsafe { libc::getsid(0) } {
                return 4;
            }
            // SAFETY: writing a literal to our stdout.
            unsafe { libc::write(1, b"hi\n".as_ptr() as *const _, 3) };
            0
        });
        assert_eq!(code, 0);
        drop(a);
        let master = recv_master(b.as_fd()).unwrap();
        let mut out = [0u8; 16];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(master.as_raw_fd(), out.as_mut_ptr() as *mut _, 16) };
        assert!(n > 0);
        assert_eq!(&out[..n as usize], b"hi\r\n");
    }

    #[test]
    fn refuses_a_ptmx_that_is_not_the_multiplexer() {
        let (a, _b) = pair();
        let code = in_child(|| {
            use nix::mount::{mount, MsFlags};
            let none = None::<&str>;
            // SAFETY: unshare with a plain flag in a forked test child.
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0
                || mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).is_err()
            {
                return 5;
            }
            // An image's /dev/ptmx that leads to some other device.
            if mount(Some("/dev/null"), "/dev/ptmx", none, MsFlags::MS_BIND, none).is_err() {
                return 6;
            }
            match setup_console(a.as_fd(), None, false, 0) {
                Err(e) if e.to_string().contains("not the pty multiplexer") => 0,
                Err(_) => 2,
                Ok(()) => 3,
            }
        });
        assert_eq!(code, 0);
    }
}

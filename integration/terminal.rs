//! process.terminal: --console-socket and `run` attached to the caller's terminal.

use crate::common::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Read from `fd` until `needle` shows up or the deadline passes; returns what was read.
fn read_until(fd: &File, needle: &str, timeout: Duration) -> String {
    let mut acc = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n <= 0 {
            continue;
        }
        match (&*fd).read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO: the last slave fd closed
            Ok(n) => acc.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&acc).contains(needle) {
            break;
        }
    }
    String::from_utf8_lossy(&acc).into_owned()
}

/// Accept one connection on `listener` and receive the console fd: exactly one message with
/// exactly one SCM_RIGHTS control message carrying exactly one fd.
fn receive_console(
    listener: &UnixListener,
    timeout: Duration,
) -> (File, std::os::unix::net::UnixStream) {
    listener.set_nonblocking(true).unwrap();
    let stream = wait_for(timeout, "console socket connection", || {
        listener.accept().ok()
    })
    .0;
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut data = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on console socket");
    assert!(msg.bytes > 0, "console message carries no name");
    let mut cmsgs = 0;
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("cmsgs") {
        cmsgs += 1;
        match c {
            ControlMessageOwned::ScmRights(f) => fds.extend(f),
            other => panic!("unexpected control message {other:?}"),
        }
    }
    assert_eq!(cmsgs, 1, "want exactly one control message");
    assert_eq!(fds.len(), 1, "want exactly one fd, got {fds:?}");
    // SAFETY: the kernel just installed this fd in our table for us; we own it now.
    let master = unsafe { File::from_raw_fd(fds[0]) };
    (master, stream)
}

#[test]
fn console_socket_sends_one_pty_master() {
    let mut c = Ctx::new("console_socket");
    c.spec["process"]["terminal"] = json!(true);
    c.set_args(&["sh"]);
    let sock = c.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    c.write_spec();
    c.track(&c.id);
    let pid_file = c.pid_file(&c.id);
    let b = c.bundle.to_str().unwrap().to_string();
    let mut child = c
        .command(&[
            "create",
            "--bundle",
            &b,
            "--console-socket",
            sock.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &c.id,
        ])
        .stdout(File::create(c.out_file(&c.id)).unwrap())
        .stderr(File::create(c.err_file(&c.id)).unwrap())
        .spawn()
        .unwrap();
    let (master, stream) = receive_console(&listener, Duration::from_secs(10));
    let st = wait_for(Duration::from_secs(10), "create to exit", || {
        child.try_wait().unwrap()
    });
    assert!(
        st.success(),
        "create failed: {}",
        std::fs::read_to_string(c.err_file(&c.id)).unwrap_or_default()
    );
    // Nothing else arrives on the socket: it is closed after the one message.
    let mut rest = [0u8; 16];
    assert_eq!(
        (&stream).read(&mut rest).unwrap_or(0),
        0,
        "extra data on console socket"
    );
    let pid = c.read_pid_file(&c.id).expect("pid file");
    c.track_pid(pid);

    c.start().ok();
    (&master)
        .write_all(b"tty; stat -c '%F %t' /dev/console; echo MA$((1+1))RK\n")
        .unwrap();
    let out = read_until(&master, "MA2RK", Duration::from_secs(10));
    assert!(
        out.contains("MA2RK"),
        "no reply from the shell over the pty: {out:?}"
    );
    assert!(
        out.contains("/dev/pts/0"),
        "pty is not from the container's devpts: {out:?}"
    );
    assert!(
        out.contains("character special file 88"),
        "/dev/console is not the pty: {out:?}"
    );
    (&master).write_all(b"exit 0\n").unwrap();
    c.wait_status(&c.id, "stopped");
}

#[test]
fn run_in_a_terminal() {
    let mut c = Ctx::new("run_tty");
    c.spec["process"]["terminal"] = json!(true);
    c.set_args(&["sh"]);
    c.write_spec();
    c.track(&c.id);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let master = File::from(pty.master);
    let slave: OwnedFd = pty.slave;
    let b = c.bundle.to_str().unwrap().to_string();
    let mut cmd = c.command(&["run", "--bundle", &b, &c.id]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe setsid/ioctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(slave);
    (&master)
        .write_all(b"echo MA$((1+1))RK; tty; exit 5\n")
        .unwrap();
    let out = read_until(&master, "\u{0}never", Duration::from_secs(10));
    let st = wait_for(Duration::from_secs(10), "run to exit", || {
        child.try_wait().unwrap()
    });
    assert!(out.contains("MA2RK"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert_eq!(st.code(), Some(5), "{out:?}");
}

#[test]
fn terminal_detach_without_socket_fails() {
    let mut c = Ctx::new("tty_detach");
    c.spec["process"]["terminal"] = json!(true);
    c.set_args(&["sh"]);
    c.create().fails();
    c.assert_clean();
}

#[test]
fn console_socket_without_terminal_fails() {
    let c = Ctx::new("socket_no_tty");
    let sock = c.path("c.sock");
    let _l = UnixListener::bind(&sock).unwrap();
    c.create_id(&c.id, &["--console-socket", sock.to_str().unwrap()])
        .fails();
    c.assert_clean();
}

#[test]
fn run_without_terminal_has_no_tty() {
    let mut c = Ctx::new("no_tty");
    let out = c.run_sh("tty; test -e /dev/console && echo console; true");
    out.ok();
    assert!(out.stdout.contains("not a tty"), "{out:?}");
}

/// Run `script` (ending in `echo DONE`) in the shell behind the pty master `master`.
fn pty_script(master: &File, script: &str) -> String {
    let mut m = master;
    m.write_all(format!("{script}; echo DO$((1))NE\n").as_bytes())
        .unwrap();
    read_until(master, "DO1NE", Duration::from_secs(10))
}

/// The pty belongs to the process's user (group tty, the devpts's), so a non-root process can
/// reopen its own /dev/pts/N; for the init and for `exec -t --user`.
#[test]
fn pty_is_owned_by_the_process_user() {
    let mut c = Ctx::new("pty_owner");
    c.spec["process"]["terminal"] = json!(true);
    c.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c.set_args(&["sh"]);
    let sock = c.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    c.write_spec();
    c.track(&c.id);
    let pid_file = c.pid_file(&c.id);
    let b = c.bundle.to_str().unwrap().to_string();
    let mut child = c
        .command(&[
            "create",
            "--bundle",
            &b,
            "--console-socket",
            sock.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &c.id,
        ])
        .stdout(File::create(c.out_file(&c.id)).unwrap())
        .stderr(File::create(c.err_file(&c.id)).unwrap())
        .spawn()
        .unwrap();
    let (master, _stream) = receive_console(&listener, Duration::from_secs(10));
    wait_for(Duration::from_secs(10), "create", || {
        child.try_wait().unwrap()
    });
    c.track_pid(c.read_pid_file(&c.id).expect("pid file"));
    c.start().ok();
    let out = pty_script(
        &master,
        "stat -c 'owner=%u:%g' $(tty); (echo x > $(tty)) 2>/dev/null && echo reopened",
    );
    assert!(out.contains("owner=1000:5"), "{out:?}");
    assert!(out.contains("reopened"), "{out:?}");

    // exec -t --user 1001 with a console socket of its own.
    let sock2 = c.path("exec.sock");
    let listener2 = UnixListener::bind(&sock2).unwrap();
    let mut exec = c
        .command(&[
            "exec",
            "-t",
            "-d",
            "--user",
            "1001:1001",
            "--console-socket",
            sock2.to_str().unwrap(),
            &c.id,
            "sh",
        ])
        .stdout(File::create(c.path("exec.out")).unwrap())
        .stderr(File::create(c.path("exec.err")).unwrap())
        .spawn()
        .unwrap();
    let (master2, _s2) = receive_console(&listener2, Duration::from_secs(10));
    wait_for(Duration::from_secs(10), "exec", || exec.try_wait().unwrap());
    let out = pty_script(
        &master2,
        "stat -c 'owner=%u:%g' $(tty); (echo x > $(tty)) 2>/dev/null && echo reopened; exit",
    );
    assert!(out.contains("owner=1001:5"), "{out:?}");
    assert!(out.contains("reopened"), "{out:?}");
    (&master).write_all(b"exit 0\n").unwrap();
    c.wait_status(&c.id, "stopped");
}

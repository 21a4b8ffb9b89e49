//! Root tests: each filter is installed in a forked child (filters cannot
//! be removed), which reports through its exit status: 0 = all checks
//! passed, otherwise the line of the failed check (mod 250).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde_json::json;

use super::super::*;
use super::{fixture, profile};

macro_rules! check {
    ($c:expr) => {
        if !$c {
            eprintln!(
                "seccomp child: check failed at line {}: {}",
                line!(),
                stringify!($c)
            );
            return (line!() % 250 + 1) as i32;
        }
    };
}

/// Raw syscall: Ok(return value) or Err(errno).
fn sys(nr: libc::c_long, a: [u64; 6]) -> Result<i64, i32> {
    // SAFETY: the tests only pass syscalls whose arguments are plain
    // integers or NULL/invalid pointers the kernel checks.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(r)
    }
}

/// A syscall through the i386 ABI (int 0x80) from this 64-bit process.
fn int80(nr: u32, a: u32, b: u32) -> i32 {
    let ret: i32;
    // SAFETY: int 0x80 takes nr in eax and arguments in ebx, ecx; ebx is
    // reserved by the compiler, so it is swapped in and out around the
    // call. The compat entry clobbers r8-r11.
    unsafe {
        std::arch::asm!(
            "xchg {a:r}, rbx",
            "int 0x80",
            "xchg {a:r}, rbx",
            a = inout(reg) u64::from(a) => _,
            inlateout("eax") nr as i32 => ret,
            in("ecx") b,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret
}

fn ia32_works() -> bool {
    // SAFETY: getpid has no preconditions.
    int80(20, 0, 0) == unsafe { libc::getpid() }
}

/// Fork; in the child set no_new_privs, install `filter`, run `body` and
/// exit with its result.
fn in_child(filter: &CompiledFilter, body: impl FnOnce(Option<OwnedFd>) -> i32) -> WaitStatus {
    // SAFETY: the child only runs the test body and _exits; nothing of the
    // parent's other threads is touched.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            unsafe { libc::_exit(251) };
        }
        let code = match install(filter) {
            Ok(l) => body(l),
            Err(e) => {
                eprintln!("seccomp child: install: {e}");
                252
            }
        };
        // SAFETY: leave without running the test harness's destructors.
        unsafe { libc::_exit(code) };
    }
    waitpid(Pid::from_raw(pid), None).unwrap()
}

fn assert_ok(st: WaitStatus) {
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "child: {st:?}");
}

/// fork + exec /bin/true + wait, as a shell would.
fn run_true() -> bool {
    // SAFETY: the grandchild only execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let path = c"/bin/true";
        let argv = [path.as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated path and argv.
        unsafe {
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    if pid < 0 {
        return false;
    }
    matches!(
        waitpid(Pid::from_raw(pid), None),
        Ok(WaitStatus::Exited(_, 0))
    )
}

fn busybox_like_workload() -> bool {
    run_true() && std::fs::read("/etc/passwd").is_ok() && std::fs::read_dir("/proc/self/fd").is_ok()
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn docker_profile_in_a_real_process() {
    if !root() {
        return;
    }
    let f = compile(&SeccompPlan::from_spec(&fixture("docker.json")).unwrap()).unwrap();
    let ia32 = ia32_works();
    if !ia32 {
        eprintln!("seccomp: no ia32 emulation in this kernel: i386 ABI checks skipped");
    }
    assert_ok(in_child(&f, |_| {
        check!(busybox_like_workload());
        check!(
            sys(
                libc::SYS_unshare,
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]
            ) == Err(libc::EPERM)
        );
        let src = c"none";
        let fstype = c"tmpfs";
        let target = c"/nonexistent-skiff";
        let m = [
            src.as_ptr() as u64,
            target.as_ptr() as u64,
            fstype.as_ptr() as u64,
            0,
            0,
            0,
        ];
        check!(sys(libc::SYS_mount, m) == Err(libc::EPERM));
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
        check!(sys(libc::SYS_keyctl, [0, -3i64 as u64, 0, 0, 0, 0]) == Err(libc::EPERM));
        // Docker allows ptrace: the kernel answers (no such process).
        check!(
            sys(
                libc::SYS_ptrace,
                [libc::PTRACE_ATTACH as u64, 0x3fff_fff0, 0, 0, 0, 0]
            ) == Err(libc::ESRCH)
        );
        check!(sys(libc::SYS_clone3, [0; 6]) == Err(libc::ENOSYS));
        // cachestat (451) is newer than the profile: ENOSYS, not EPERM.
        check!(sys(451, [u64::MAX, 0, 0, 0, 0, 0]) == Err(libc::ENOSYS));
        if ia32 {
            check!(int80(310, libc::CLONE_NEWUSER as u32, 0) == -libc::EPERM);
            check!(int80(451, 0, 0) == -libc::ENOSYS);
            // SAFETY: getpid has no preconditions.
            check!(int80(20, 0, 0) == unsafe { libc::getpid() });
        }
        0
    }));
}

#[test]
fn podman_profile_in_a_real_process() {
    if !root() {
        return;
    }
    let f = compile(&SeccompPlan::from_spec(&fixture("podman.json")).unwrap()).unwrap();
    assert_ok(in_child(&f, |_| {
        check!(busybox_like_workload());
        // Without the rule setns(-1) would fail with EBADF.
        check!(sys(libc::SYS_setns, [u64::MAX, 0, 0, 0, 0, 0]) == Err(libc::EPERM));
        check!(sys(libc::SYS_bpf, [0; 6]) == Err(libc::EPERM));
        let audit = [
            libc::AF_NETLINK as u64,
            libc::SOCK_RAW as u64,
            libc::NETLINK_AUDIT as u64,
            0,
            0,
            0,
        ];
        check!(sys(libc::SYS_socket, audit) == Err(libc::EINVAL));
        let udp = sys(
            libc::SYS_socket,
            [libc::AF_INET as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0],
        );
        check!(udp.is_ok());
        check!(sys(451, [u64::MAX, 0, 0, 0, 0, 0]) == Err(libc::ENOSYS));
        0
    }));
}

fn getppid_with(action: &str, errno_ret: Option<u32>) -> CompiledFilter {
    let mut rule = json!({"names": ["getppid"], "action": action});
    if let Some(e) = errno_ret {
        rule["errnoRet"] = e.into();
    }
    compile(
        &SeccompPlan::from_spec(&profile(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}),
        ))
        .unwrap(),
    )
    .unwrap()
}

fn raw_getppid() -> Result<i64, i32> {
    sys(libc::SYS_getppid, [0; 6])
}

#[test]
fn each_action_in_a_real_process() {
    if !root() {
        return;
    }
    let me = std::process::id() as i64;
    assert_ok(in_child(&getppid_with("SCMP_ACT_ERRNO", Some(123)), |_| {
        check!(raw_getppid() == Err(123));
        0
    }));
    assert_ok(in_child(&getppid_with("SCMP_ACT_ERRNO", None), |_| {
        check!(raw_getppid() == Err(libc::EPERM));
        0
    }));
    for kill in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        let st = in_child(&getppid_with(kill, None), |_| {
            let _ = raw_getppid();
            0
        });
        assert!(
            matches!(
                st,
                WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
            ),
            "{kill}: {st:?}"
        );
    }
    assert_ok(in_child(&getppid_with("SCMP_ACT_LOG", None), |_| {
        check!(raw_getppid() == Ok(me));
        0
    }));
    // No tracer attached: the kernel fails the call with ENOSYS.
    assert_ok(in_child(&getppid_with("SCMP_ACT_TRACE", Some(7)), |_| {
        check!(raw_getppid() == Err(libc::ENOSYS));
        0
    }));
    assert_ok(in_child(&getppid_with("SCMP_ACT_ALLOW", None), |_| {
        check!(raw_getppid() == Ok(me));
        0
    }));
}

static TRAPPED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let code = unsafe { (*info).si_code };
    TRAPPED.store(code, Ordering::SeqCst);
}

#[test]
fn trap_raises_sigsys_in_a_real_process() {
    if !root() {
        return;
    }
    assert_ok(in_child(&getppid_with("SCMP_ACT_TRAP", None), |_| {
        // SAFETY: installing a handler that only stores an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            check!(libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) == 0);
        }
        let _ = raw_getppid();
        const SYS_SECCOMP: i32 = 1;
        check!(TRAPPED.load(Ordering::SeqCst) == SYS_SECCOMP);
        0
    }));
}

#[test]
fn operators_and_rules_in_a_real_process() {
    if !root() {
        return;
    }
    let big = 0x1_0000_0005u64;
    let rule = |name: &str, args: serde_json::Value| json!({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 100, "args": args});
    let s = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        rule("getppid", json!([{"index": 0, "value": big, "op": "SCMP_CMP_NE"}])),
        rule("getuid", json!([{"index": 0, "value": big, "op": "SCMP_CMP_LT"}])),
        rule("getgid", json!([{"index": 0, "value": big, "op": "SCMP_CMP_LE"}])),
        rule("geteuid", json!([{"index": 0, "value": big, "op": "SCMP_CMP_EQ"}])),
        rule("getegid", json!([{"index": 0, "value": big, "op": "SCMP_CMP_GE"}])),
        rule("getpgrp", json!([{"index": 0, "value": big, "op": "SCMP_CMP_GT"}])),
        rule("gettid", json!([{"index": 0, "value": 0xf0, "valueTwo": 0x30, "op": "SCMP_CMP_MASKED_EQ"}])),
        rule("sched_yield", json!([{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 3, "value": 2, "op": "SCMP_CMP_EQ"}])),
        rule("sync", json!([{"index": 4, "value": 9, "op": "SCMP_CMP_EQ"}])),
        rule("sync", json!([{"index": 5, "value": 9, "op": "SCMP_CMP_EQ"}])),
    ]}));
    let f = compile(&SeccompPlan::from_spec(&s).unwrap()).unwrap();
    assert_ok(in_child(&f, |_| {
        let hit = |nr: libc::c_long, a: [u64; 6]| sys(nr, a) == Err(100);
        let v = |x: u64| [x, 0, 0, 0, 0, 0];
        check!(!hit(libc::SYS_getppid, v(big)) && hit(libc::SYS_getppid, v(5)));
        check!(hit(libc::SYS_getuid, v(big - 1)) && !hit(libc::SYS_getuid, v(big)));
        check!(hit(libc::SYS_getgid, v(big)) && !hit(libc::SYS_getgid, v(big + 1)));
        check!(hit(libc::SYS_geteuid, v(big)) && !hit(libc::SYS_geteuid, v(5)));
        check!(hit(libc::SYS_getegid, v(big)) && !hit(libc::SYS_getegid, v(big - 1)));
        check!(hit(libc::SYS_getpgrp, v(big + 1)) && !hit(libc::SYS_getpgrp, v(big)));
        check!(hit(libc::SYS_gettid, v(0x135)) && !hit(libc::SYS_gettid, v(0x145)));
        check!(hit(libc::SYS_sched_yield, [1, 0, 0, 2, 0, 0]));
        check!(!hit(libc::SYS_sched_yield, [1, 0, 0, 3, 0, 0]));
        check!(!hit(libc::SYS_sched_yield, [0, 0, 0, 2, 0, 0]));
        check!(hit(libc::SYS_sync, [0, 0, 0, 0, 9, 0]) && hit(libc::SYS_sync, [0, 0, 0, 0, 0, 9]));
        check!(!hit(libc::SYS_sync, [0; 6]));
        0
    }));
}

#[test]
fn flags_install_on_this_kernel() {
    if !root() {
        return;
    }
    for flag in [
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
    ] {
        let s = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100}]}));
        let f = compile(&SeccompPlan::from_spec(&s).unwrap()).unwrap();
        let st = in_child(&f, |_| {
            check!(raw_getppid() == Err(100));
            0
        });
        assert!(matches!(st, WaitStatus::Exited(_, 0)), "{flag}: {st:?}");
    }
}

#[test]
fn a_flag_the_kernel_lacks_is_named() {
    if !root() {
        return;
    }
    let mut f = getppid_with("SCMP_ACT_ERRNO", None);
    f.flags |= 1 << 20;
    let st = in_child(&f, |_| 0);
    // install fails in the child: 252.
    assert!(matches!(st, WaitStatus::Exited(_, 252)), "{st:?}");
    // The message names what the kernel refuses; the probes install nothing.
    let e = super::super::install::install_error(
        libc::SECCOMP_FILTER_FLAG_LOG | 1 << 20,
        nix::errno::Errno::EINVAL,
    )
    .to_string();
    assert!(e.contains("0x100000") && !e.contains("FLAG_LOG"), "{e}");
}

#[test]
fn notify_reaches_an_agent_that_answers() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("agent.sock");
    let agent = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let s = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock_path,
        "listenerMetadata": "skiff-test",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let plan = SeccompPlan::from_spec(&s).unwrap();
    let f = compile(&plan).unwrap();
    let path = plan.listener_path().unwrap().to_path_buf();

    // SAFETY: the child only runs the code below and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = (|| {
            // SAFETY: plain prctl.
            check!(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0);
            let listener = match install(&f) {
                Ok(Some(l)) => l,
                _ => return 240,
            };
            let state = json!({"ociVersion": "1.3.0", "id": "notify-test", "status": "creating",
                "pid": std::process::id(), "bundle": "/b"});
            let state = serde_json::to_vec(&state).unwrap_or_default();
            check!(send_listener(&path, listener, &state, Some("skiff-test")).is_ok());
            check!(raw_getppid() == Ok(4242));
            0
        })();
        // SAFETY: see in_child.
        unsafe { libc::_exit(code) };
    }

    let result = (|| -> Result<(), String> {
        let conn = accept_within(&agent, 10_000)?;
        let (msg, fd) = recv_state(conn.as_raw_fd())?;
        let v: serde_json::Value = serde_json::from_slice(&msg).map_err(|e| e.to_string())?;
        if v["fds"] != json!(["seccompFd"]) || v["metadata"] != "skiff-test" || v["pid"] != pid {
            return Err(format!("bad state message {v}"));
        }
        if v["state"]["id"] != "notify-test" {
            return Err(format!("bad state {v}"));
        }
        answer_one(fd.as_fd_borrowed(), 4242)
    })();
    let st = waitpid(Pid::from_raw(pid), None).unwrap();
    result.unwrap();
    assert_ok(st);
}

trait Borrow {
    fn as_fd_borrowed(&self) -> BorrowedFd<'_>;
}
impl Borrow for OwnedFd {
    fn as_fd_borrowed(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

fn poll_in(fd: i32, ms: i32) -> Result<(), String> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n != 1 || p.revents & libc::POLLIN == 0 {
        return Err(format!(
            "poll: nothing within {ms} ms (revents {:#x})",
            p.revents
        ));
    }
    Ok(())
}

fn accept_within(l: &std::os::unix::net::UnixListener, ms: i32) -> Result<OwnedFd, String> {
    poll_in(l.as_raw_fd(), ms)?;
    let (s, _) = l.accept().map_err(|e| e.to_string())?;
    Ok(s.into())
}

fn recv_state(sock: i32) -> Result<(Vec<u8>, OwnedFd), String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    poll_in(sock, 10_000)?;
    let mut buf = vec![0u8; 8192];
    let mut space = nix::cmsg_space!([i32; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let m = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| e.to_string())?;
    let n = m.bytes;
    let mut fd = None;
    for c in m.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: received via SCM_RIGHTS: ours now.
            fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
        }
    }
    let fd = fd.ok_or("no fd in the state message")?;
    Ok((buf[..n].to_vec(), fd))
}

fn answer_one(listener: BorrowedFd<'_>, val: i64) -> Result<(), String> {
    poll_in(listener.as_raw_fd(), 10_000)?;
    // SAFETY: zeroed POD structs the ioctls fill / read.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: SECCOMP_IOCTL_NOTIF_RECV writes one seccomp_notif.
    if unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req,
        )
    } != 0
    {
        return Err(format!("NOTIF_RECV: {}", std::io::Error::last_os_error()));
    }
    if req.data.nr != libc::SYS_getppid as i32 {
        return Err(format!("notified of syscall {}", req.data.nr));
    }
    let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    resp.id = req.id;
    resp.val = val;
    // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads one seccomp_notif_resp.
    if unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    } != 0
    {
        return Err(format!("NOTIF_SEND: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[test]
fn listener_fd_travels_between_processes() {
    let (a, b) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let file = std::fs::File::open("/proc/self/status").unwrap();
    send_fd(a.as_fd_borrowed(), std::os::fd::AsFd::as_fd(&file)).unwrap();
    let got = recv_fd(b.as_fd_borrowed()).unwrap();
    let target = std::fs::read_link(format!("/proc/self/fd/{}", got.as_raw_fd())).unwrap();
    assert!(target.ends_with("status"), "{target:?}");
}

//! `exec`: a new process in a running container sees the container's world (namespaces, mounts,
//! cgroup), reports exit codes and signal deaths, honours each flag, forwards signals, and
//! leaves no process or fd behind.

use crate::common::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use std::fs::{self, File};
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Create and start the main container with `sleep` as its init; returns the init's host pid.
fn running(c: &mut Ctx) -> i32 {
    c.set_args(&["sleep", "600"]);
    let pid = c.create_ok();
    c.start().ok();
    pid
}

/// `exec ARGS...` (flags, id and command as given).
fn exec(c: &Ctx, args: &[&str]) -> Out {
    let mut v = vec!["exec"];
    v.extend_from_slice(args);
    c.rt(&v)
}

/// `exec ID sh -c SCRIPT` into the main container.
fn exec_sh(c: &Ctx, script: &str) -> Out {
    exec(c, &[&c.id, "sh", "-c", script])
}

/// `exec ID sh -c SCRIPT`, asserting success; returns stdout.
#[track_caller]
fn exec_ok(c: &Ctx, script: &str) -> String {
    let out = exec_sh(c, script);
    out.ok();
    out.stdout
}

/// A runtime command spawned in the background, stdout/stderr to files of the test.
fn spawn(c: &Ctx, args: &[&str], tag: &str) -> (Child, std::path::PathBuf, std::path::PathBuf) {
    let (o, e) = (c.path(&format!("{tag}.out")), c.path(&format!("{tag}.err")));
    let mut cmd = c.command(args);
    cmd.stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap());
    let child = cmd.spawn().unwrap();
    (child, o, e)
}

#[track_caller]
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    wait_for(Duration::from_secs(20), what, || child.try_wait().unwrap())
}

/// Wait until `path` contains `needle`; returns the whole text.
#[track_caller]
fn wait_file(path: &Path, needle: &str) -> String {
    wait_for(
        Duration::from_secs(10),
        &format!("{needle:?} in {}", path.display()),
        || {
            let s = fs::read_to_string(path).ok()?;
            s.contains(needle).then_some(s)
        },
    )
}

/// Host pids (alive, not zombies) whose pid namespace is `init`'s.
fn pids_in_pidns_of(init: i32) -> Vec<i32> {
    let want = ns_link(&init.to_string(), "pid");
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if matches!(proc_state(pid), Some('Z') | Some('X') | None) {
            continue;
        }
        if ns_link(&pid.to_string(), "pid") == want {
            v.push(pid);
        }
    }
    v
}

fn fd_count(pid: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn cap_hex(text: &str, field: &str) -> u64 {
    let v = status_field(text, field).unwrap_or_else(|| panic!("{field} missing in {text}"));
    u64::from_str_radix(&v, 16).unwrap()
}

/// Read from `fd` until `needle` shows up, EOF/EIO, or the deadline passes.
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
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
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

/// Accept one connection and receive the pty master: exactly one message carrying exactly one
/// SCM_RIGHTS fd, and nothing after it on the socket.
fn receive_console(listener: &UnixListener) -> File {
    listener.set_nonblocking(true).unwrap();
    let stream: UnixStream = wait_for(Duration::from_secs(10), "console socket connection", || {
        listener.accept().ok()
    })
    .0;
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
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
    let mut fds = Vec::new();
    let mut cmsgs = 0;
    for m in msg.cmsgs().expect("cmsgs") {
        cmsgs += 1;
        match m {
            ControlMessageOwned::ScmRights(f) => fds.extend(f),
            other => panic!("unexpected control message {other:?}"),
        }
    }
    assert_eq!(cmsgs, 1, "want exactly one control message");
    assert_eq!(fds.len(), 1, "want exactly one fd, got {fds:?}");
    // SAFETY: the kernel just installed this fd for us; we own it now.
    let master = unsafe { File::from_raw_fd(fds[0]) };
    let mut rest = [0u8; 16];
    assert_eq!(
        (&stream).read(&mut rest).unwrap_or(0),
        0,
        "extra data on console socket"
    );
    master
}

// ---------------------------------------------------------------------------------------------
// The container's world

#[test]
fn sees_hostname_and_pid_namespace() {
    let mut c = Ctx::new("exec_world");
    c.spec["hostname"] = json!("exec-host");
    running(&mut c);
    let out = exec_ok(&c, "hostname; echo pid=$$; ps -o pid,args");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exec-host", "{out}");
    let pid: i32 = lines[1].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(pid > 1, "exec'd process must not be the init: {out}");
    let init = lines[3..]
        .iter()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no pid 1 in ps: {out}"));
    assert!(init.contains("sleep 600"), "pid 1 is not the init: {out}");
    // Only the init, the shell and ps: the host is invisible.
    assert!(lines.len() - 3 <= 3, "{out}");
}

#[test]
fn joins_every_namespace_of_the_init() {
    let mut c = Ctx::new("exec_ns");
    for kind in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        c.set_namespace(kind, None);
    }
    let init = running(&mut c).to_string();
    let kinds = ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let out = exec_ok(&c, &script);
    let want: Vec<String> = kinds.iter().map(|k| ns_link(&init, k)).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

#[test]
fn sees_the_init_mounts_and_cgroup() {
    let mut c = Ctx::new("exec_mounts");
    c.add_mount(json!({"destination": "/exec-tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let init = running(&mut c);
    let out = exec_ok(
        &c,
        "cat /proc/self/mountinfo; echo ===; cat /proc/1/mountinfo; echo ===; \
         cat /proc/self/cgroup; echo ===; cat /proc/1/cgroup",
    );
    let parts: Vec<&str> = out.split("===\n").collect();
    assert_eq!(parts.len(), 4, "{out}");
    assert_eq!(parts[0], parts[1], "mount table differs from the init's");
    assert!(
        find_mount(&parse_mountinfo(parts[0]), "/exec-tmp").is_some(),
        "{out}"
    );
    // The host's view of the init's mounts (relative to its root) is what exec saw. (The root
    // field of cgroup mounts is shown relative to the reader's cgroup namespace: left out.)
    let host_view = fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    let key = |text: &str| -> Vec<(String, String, String, Vec<String>)> {
        parse_mountinfo(text)
            .into_iter()
            .map(|m| (m.mount_point, m.fstype, m.source, m.options))
            .collect()
    };
    assert_eq!(key(parts[0]), key(&host_view));
    assert_eq!(parts[2], parts[3], "cgroup differs from the init's");
}

#[test]
fn exec_into_created_container() {
    let mut c = Ctx::new("exec_created");
    c.set_args(&["sleep", "600"]);
    c.create_ok();
    assert_eq!(c.status(&c.id), "created");
    let out = exec_ok(&c, "echo in-created; echo $$");
    assert!(out.starts_with("in-created\n"), "{out}");
    assert_eq!(c.status(&c.id), "created");
}

#[test]
fn read_only_root() {
    let mut c = Ctx::new("exec_ro");
    c.spec["root"]["readonly"] = json!(true);
    running(&mut c);
    let out = exec_ok(&c, "touch /x 2>/dev/null && echo writable; echo ran");
    assert_eq!(out, "ran\n");
}

#[test]
fn user_namespace_runs_as_mapped_root() {
    let mut c = Ctx::new("exec_userns");
    c.set_namespace("user", None);
    c.set_namespace("network", None);
    c.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let init = running(&mut c).to_string();
    let out = exec_ok(
        &c,
        "id; readlink /proc/self/ns/user; cat /proc/self/uid_map",
    );
    assert!(out.starts_with("uid=0(root) gid=0(root)"), "{out}");
    assert!(out.contains(&ns_link(&init, "user")), "{out}");
    assert_eq!(
        out.lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );

    let pf = c.path("u.pid");
    exec(
        &c,
        &[
            "-d",
            "--pid-file",
            pf.to_str().unwrap(),
            &c.id,
            "sleep",
            "60",
        ],
    )
    .ok();
    let pid = fs::read_to_string(&pf).unwrap();
    assert_eq!(
        proc_status(&pid, "Uid").unwrap(),
        "100000 100000 100000 100000"
    );
    assert_eq!(
        proc_status(&pid, "Gid").unwrap(),
        "100000 100000 100000 100000"
    );

    // A non-root user inside maps through the same table.
    let pf2 = c.path("u2.pid");
    exec(
        &c,
        &[
            "-d",
            "-u",
            "1000:1000",
            "--pid-file",
            pf2.to_str().unwrap(),
            &c.id,
            "sleep",
            "60",
        ],
    )
    .ok();
    let pid2 = fs::read_to_string(&pf2).unwrap();
    assert_eq!(
        proc_status(&pid2, "Uid").unwrap(),
        "101000 101000 101000 101000"
    );
}

#[test]
fn time_namespace_clock_is_shifted() {
    skiff_only!("runc 1.1 has no time namespace support");
    let mut c = Ctx::new("exec_timens");
    c.set_namespace("time", None);
    c.spec["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1728000, "nanosecs": 0}});
    let init = running(&mut c).to_string();
    let host_up: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = exec_ok(&c, "readlink /proc/self/ns/time; cat /proc/uptime");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ns_link(&init, "time"), "{out}");
    let up: f64 = lines[1].split(' ').next().unwrap().parse().unwrap();
    assert!(
        up >= host_up + 1728000.0 - 5.0 && up < host_up + 1728000.0 + 60.0,
        "uptime {up} not shifted (host {host_up})"
    );
}

// ---------------------------------------------------------------------------------------------
// Exit codes and errors

#[test]
fn exit_codes_and_signal_deaths() {
    let mut c = Ctx::new("exec_codes");
    running(&mut c);
    assert_eq!(exec_sh(&c, "exit 4").code, 4);
    assert_eq!(exec_sh(&c, "exit 0").code, 0);
    assert_eq!(exec_sh(&c, "kill -9 $$").code, 137);
    assert_eq!(exec_sh(&c, "kill -TERM $$").code, 143);
    // The container is untouched by its exec'd processes dying.
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn unknown_container() {
    let c = Ctx::new("exec_unknown");
    let out = exec(&c, &["no-such-container", "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("container does not exist", Some("container does not exist"));
}

#[test]
fn stopped_container() {
    let mut c = Ctx::new("exec_stopped");
    c.set_args(&["true"]);
    c.create_ok();
    c.start().ok();
    c.wait_status(&c.id, "stopped");
    let out = exec(&c, &[&c.id, "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("container not running", Some("cannot exec in a stopped"));
}

#[test]
fn program_not_found() {
    let mut c = Ctx::new("exec_enoent");
    let init = running(&mut c);
    let out = exec(&c, &[&c.id, "no-such-program"]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with(
        "executable file not found in $PATH",
        Some("executable file not found in $PATH"),
    );
    // The failed process is gone: only the init is left.
    wait_for(Duration::from_secs(5), "only the init", || {
        (pids_in_pidns_of(init) == [init]).then_some(())
    });
}

#[test]
fn bad_cwd_fails() {
    let mut c = Ctx::new("exec_badcwd");
    running(&mut c);
    let out = exec(&c, &["--cwd", "/no/such/dir", &c.id, "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("/no/such/dir", None);
}

// ---------------------------------------------------------------------------------------------
// Flags

#[test]
fn flag_cwd() {
    let mut c = Ctx::new("exec_cwd");
    running(&mut c);
    let out = exec(&c, &["--cwd", "/etc", &c.id, "pwd"]);
    out.ok();
    assert_eq!(out.stdout, "/etc\n");
}

#[test]
fn flag_env_overrides_and_adds() {
    let mut c = Ctx::new("exec_env");
    c.spec["process"]["env"] = json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "KEEP=1", "OVER=old"]);
    running(&mut c);
    let out = exec(
        &c,
        &["--env", "OVER=new", "--env", "ADDED=a b", &c.id, "env"],
    );
    out.ok();
    // HOME is added for the user when the config has none, as runc does.
    let mut env: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| *l != "HOME=/root")
        .collect();
    env.sort();
    assert_eq!(
        env,
        [
            "ADDED=a b",
            "KEEP=1",
            "OVER=new",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
        ],
        "{out:?}"
    );
    // A bare key is refused, as runc does (docker resolves `-e KEY` in its CLI).
    exec(&c, &["--env", "KEEP", &c.id, "true"]).fails_with("--env", Some("env"));
}

#[test]
fn flag_user() {
    let mut c = Ctx::new("exec_user");
    running(&mut c);
    let out = exec(&c, &["-u", "1000:1001", &c.id, "sh", "-c", "id -u; id -g"]);
    out.ok();
    assert_eq!(out.stdout, "1000\n1001\n");
    // A uid alone keeps the container's gid.
    let out = exec(&c, &["--user", "1000", &c.id, "sh", "-c", "id -u; id -g"]);
    out.ok();
    assert_eq!(out.stdout, "1000\n0\n");
}

#[test]
fn flag_additional_gids() {
    let mut c = Ctx::new("exec_gids");
    running(&mut c);
    let out = exec(
        &c,
        &[
            "-u",
            "1000:1000",
            "--additional-gids",
            "100",
            "--additional-gids",
            "65534",
            &c.id,
            "cat",
            "/proc/self/status",
        ],
    );
    out.ok();
    let groups = status_field(&out.stdout, "Groups").unwrap();
    let mut g: Vec<&str> = groups.split(' ').collect();
    g.sort();
    assert_eq!(g, ["100", "65534"], "{groups}");
}

#[test]
fn flag_cap() {
    let mut c = Ctx::new("exec_cap");
    running(&mut c);
    const NET_ADMIN: u64 = 1 << 12;
    let out = exec_ok(&c, "cat /proc/self/status");
    assert_eq!(cap_hex(&out, "CapEff") & NET_ADMIN, 0, "{out}");
    let out = exec(
        &c,
        &["--cap", "CAP_NET_ADMIN", &c.id, "cat", "/proc/self/status"],
    );
    out.ok();
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_ne!(cap_hex(&out.stdout, set) & NET_ADMIN, 0, "{set}: {out:?}");
    }
    // Not inheritable or ambient: a non-root user's exec does not hand it to what it runs.
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(cap_hex(&out.stdout, set) & NET_ADMIN, 0, "{set}: {out:?}");
    }
    // The container's own capabilities stay.
    assert_ne!(
        cap_hex(&out.stdout, "CapEff") & (1 << 5),
        0,
        "CAP_KILL lost"
    );
    let out = exec(
        &c,
        &[
            "--cap",
            "CAP_NET_ADMIN",
            "--user",
            "1000",
            &c.id,
            "sh",
            "-c",
            "cat /proc/self/status",
        ],
    );
    out.ok();
    assert_eq!(cap_hex(&out.stdout, "CapAmb") & NET_ADMIN, 0, "{out:?}");
}

#[test]
fn flag_no_new_privs() {
    let mut c = Ctx::new("exec_nnp");
    c.spec["process"]["noNewPrivileges"] = json!(false);
    running(&mut c);
    let nnp = |out: Out| {
        out.ok();
        status_field(&out.stdout, "NoNewPrivs").unwrap()
    };
    assert_eq!(nnp(exec(&c, &[&c.id, "cat", "/proc/self/status"])), "0");
    assert_eq!(
        nnp(exec(
            &c,
            &["--no-new-privs", &c.id, "cat", "/proc/self/status"]
        )),
        "1"
    );
}

#[test]
fn flag_apparmor_without_apparmor_fails() {
    let mut c = Ctx::new("exec_apparmor");
    if Path::new("/sys/kernel/security/apparmor").exists() {
        eprintln!("skipped: this host runs AppArmor");
        return;
    }
    running(&mut c);
    let out = exec(&c, &["--apparmor", "some-profile", &c.id, "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("AppArmor is not enabled on this host", Some("apparmor"));
}

#[test]
fn flag_process_label_without_selinux_fails() {
    let mut c = Ctx::new("exec_selinux");
    if Path::new("/sys/fs/selinux/enforce").exists() {
        eprintln!("skipped: this host runs SELinux");
        return;
    }
    running(&mut c);
    let out = exec(
        &c,
        &[
            "--process-label",
            "system_u:system_r:container_t:s0",
            &c.id,
            "true",
        ],
    );
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("SELinux is not enabled on this host", Some("selinux"));
}

#[test]
fn flag_preserve_fds() {
    let mut c = Ctx::new("exec_fds");
    running(&mut c);
    let p = c.path("passed");
    fs::write(&p, "passed-through-fd\n").unwrap();
    let f = File::open(&p).unwrap();
    let fd = f.as_raw_fd();
    let script = "cat <&3; cat <&4 2>/dev/null && echo fd4-open; true";
    let out = c.rt_with(
        &["exec", "--preserve-fds", "1", &c.id, "sh", "-c", script],
        |cmd| pass_fd(cmd, fd, 3),
    );
    out.ok();
    assert_eq!(out.stdout, "passed-through-fd\n", "{out:?}");
    // Without the flag the fd stays out.
    let out = c.rt_with(&["exec", &c.id, "sh", "-c", script], |cmd| {
        pass_fd(cmd, fd, 3)
    });
    out.ok();
    assert!(
        !out.stdout.contains("passed-through-fd"),
        "fd 3 leaked: {out:?}"
    );
}

#[test]
fn only_stdio_reaches_the_process() {
    let mut c = Ctx::new("exec_stdio_only");
    running(&mut c);
    // ls opens the directory itself as fd 3: anything past that leaked from the runtime.
    let out = exec_ok(&c, "exec ls /proc/self/fd");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
}

#[test]
fn flag_detach_with_pid_file() {
    let mut c = Ctx::new("exec_detach");
    let init = running(&mut c).to_string();
    let pf = c.path("exec.pid");
    let start = Instant::now();
    exec(
        &c,
        &[
            "-d",
            "--pid-file",
            pf.to_str().unwrap(),
            &c.id,
            "sleep",
            "60",
        ],
    )
    .ok();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "detached exec waited for its process"
    );
    let text = fs::read_to_string(&pf).unwrap();
    assert!(
        !text.ends_with('\n'),
        "pid file has a trailing newline: {text:?}"
    );
    let pid: i32 = text.parse().unwrap_or_else(|_| panic!("pid file {text:?}"));
    assert_eq!(
        proc_state(pid).map(|s| s != 'Z'),
        Some(true),
        "{pid} not running"
    );
    // runc 1.1 writes the pid file before its init has exec'd the command.
    let cmdline = wait_for(Duration::from_secs(5), "the command to be exec'd", || {
        let s = fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
        s.starts_with("sleep").then_some(s)
    });
    assert_eq!(cmdline, "sleep\u{0}60\u{0}");
    // Host pid first, then its pid inside the container (not the init's 1).
    let nspid = proc_status(&text, "NSpid").unwrap();
    let nspid: Vec<&str> = nspid.split(' ').collect();
    assert_eq!(nspid.len(), 2, "{nspid:?}");
    assert_eq!(nspid[0], text);
    assert_ne!(nspid[1], "1");
    for k in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        assert_eq!(ns_link(&text, k), ns_link(&init, k), "{k} namespace");
    }
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap(),
        "exec'd process is not in the container's cgroup"
    );
}

#[test]
fn flag_tty_with_console_socket() {
    skiff_only!("runc 1.1 uses --console-socket only with --detach (else it attaches itself)");
    let mut c = Ctx::new("exec_tty_socket");
    running(&mut c);
    let sock = c.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let (mut child, _, e) = spawn(
        &c,
        &[
            "exec",
            "-t",
            "--console-socket",
            sock.to_str().unwrap(),
            &c.id,
            "sh",
        ],
        "tty",
    );
    let master = receive_console(&listener);
    (&master)
        .write_all(b"tty; echo MA$((1+1))RK; exit 3\n")
        .unwrap();
    let out = read_until(&master, "\u{0}never", Duration::from_secs(10));
    let st = wait_exit(&mut child, "exec -t to exit");
    assert!(out.contains("MA2RK"), "no reply over the pty: {out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert_eq!(
        st.code(),
        Some(3),
        "{}",
        fs::read_to_string(e).unwrap_or_default()
    );
}

#[test]
fn flag_tty_in_callers_terminal() {
    let mut c = Ctx::new("exec_tty_attached");
    running(&mut c);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let master = File::from(pty.master);
    let slave: OwnedFd = pty.slave;
    let mut cmd = c.command(&["exec", "-t", &c.id, "sh"]);
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
    let st = wait_exit(&mut child, "exec -t to exit");
    assert!(out.contains("MA2RK"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert_eq!(st.code(), Some(5), "{out:?}");
}

#[test]
fn flag_tty_detached_without_socket_fails() {
    let mut c = Ctx::new("exec_tty_detach");
    running(&mut c);
    let out = exec(&c, &["-t", "-d", &c.id, "sh"]);
    assert_eq!(out.code, 255, "{out:?}");
}

fn write_process(c: &Ctx, name: &str, p: serde_json::Value) -> std::path::PathBuf {
    let f = c.path(name);
    fs::write(&f, serde_json::to_vec(&p).unwrap()).unwrap();
    f
}

#[test]
fn flag_process_file() {
    let mut c = Ctx::new("exec_process_file");
    running(&mut c);
    let f = write_process(
        &c,
        "process.json",
        json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1001, "additionalGids": [100]},
            "args": ["sh", "-c", "pwd; id -u; id -g; id -G; echo FOO=$FOO; echo PATH=$PATH"],
            "env": ["PATH=/bin:/usr/bin", "FOO=from-file"],
            "cwd": "/tmp"
        }),
    );
    let out = exec(&c, &["--process", f.to_str().unwrap(), &c.id]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "/tmp", "{out:?}");
    assert_eq!(lines[1], "1000", "{out:?}");
    assert_eq!(lines[2], "1001", "{out:?}");
    assert!(lines[3].split(' ').any(|g| g == "100"), "{out:?}");
    assert_eq!(
        &lines[4..],
        ["FOO=from-file", "PATH=/bin:/usr/bin"],
        "{out:?}"
    );
}

#[test]
fn flag_process_from_stdin() {
    skiff_only!("runc 1.1 reads --process only from a file");
    let mut c = Ctx::new("exec_process_stdin");
    running(&mut c);
    let f = write_process(
        &c,
        "process.json",
        json!({"args": ["sh", "-c", "echo from-stdin; pwd"], "env": ["PATH=/bin"], "cwd": "/etc",
               "user": {"uid": 0, "gid": 0}}),
    );
    let out = c.rt_with(&["exec", "--process", "-", &c.id], |cmd| {
        cmd.stdin(File::open(&f).unwrap());
    });
    out.ok();
    assert_eq!(out.stdout, "from-stdin\n/etc\n");
}

#[test]
fn bad_process_file_fails() {
    let mut c = Ctx::new("exec_bad_process");
    running(&mut c);
    let f = c.path("bad.json");
    fs::write(&f, "{\"args\": 42}").unwrap();
    let out = exec(&c, &["--process", f.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("args", None);
    let missing = c.path("missing.json");
    let out = exec(&c, &["--process", missing.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("missing.json", None);
}

/// How engines call it: a process file with a terminal, detached, pid file, console socket.
#[test]
fn engine_style_detached_terminal() {
    let mut c = Ctx::new("exec_engine");
    running(&mut c);
    let f = write_process(
        &c,
        "process.json",
        json!({
            "terminal": true,
            "consoleSize": {"height": 33, "width": 101},
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/bin:/usr/bin", "TERM=xterm"],
            "cwd": "/"
        }),
    );
    let sock = c.path("engine.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let pf = c.path("engine.pid");
    let (mut child, _, e) = spawn(
        &c,
        &[
            "exec",
            "--process",
            f.to_str().unwrap(),
            "--detach",
            "--pid-file",
            pf.to_str().unwrap(),
            "--console-socket",
            sock.to_str().unwrap(),
            &c.id,
        ],
        "engine",
    );
    let master = receive_console(&listener);
    let st = wait_exit(&mut child, "detached exec to return");
    assert!(
        st.success(),
        "{}",
        fs::read_to_string(&e).unwrap_or_default()
    );
    let pid: i32 = fs::read_to_string(&pf).unwrap().parse().unwrap();
    let start = proc_starttime(pid).expect("exec'd process is running");
    (&master)
        .write_all(b"stty size; tty; echo MA$((1+1))RK; exit 0\n")
        .unwrap();
    let out = read_until(&master, "MA2RK", Duration::from_secs(10));
    assert!(out.contains("33 101"), "consoleSize not applied: {out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("MA2RK"), "{out:?}");
    wait_for(Duration::from_secs(10), "the exec'd shell to exit", || {
        (!proc_alive(pid, start)).then_some(())
    });
}

#[test]
fn flag_ignore_paused() {
    let mut c = Ctx::new("exec_paused");
    running(&mut c);
    c.rt(&["pause", &c.id]).ok();
    assert_eq!(c.status(&c.id), "paused");
    let out = exec(&c, &[&c.id, "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    out.fails_with("paused", Some("paused"));
    // Let through, the process lands in the frozen cgroup and runs once the container resumes.
    let (mut child, o, e) = spawn(
        &c,
        &["exec", "--ignore-paused", &c.id, "sh", "-c", "echo thawed"],
        "paused",
    );
    std::thread::sleep(Duration::from_millis(300));
    c.rt(&["resume", &c.id]).ok();
    let st = wait_exit(&mut child, "exec --ignore-paused after resume");
    assert!(
        st.success(),
        "{}",
        fs::read_to_string(&e).unwrap_or_default()
    );
    assert_eq!(fs::read_to_string(&o).unwrap(), "thawed\n");
}

// ---------------------------------------------------------------------------------------------
// Signals

/// Wait until the runtime process `pid` handles `sig` (blocked for a signalfd, or caught):
/// before that a signal would hit the runtime itself, not be forwarded.
fn wait_forwarding(pid: u32, sig: i32) {
    let bit = 1u64 << (sig - 1);
    wait_for(Duration::from_secs(10), "runtime to handle signals", || {
        let st = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let blk = u64::from_str_radix(&status_field(&st, "SigBlk")?, 16).ok()?;
        let cgt = u64::from_str_radix(&status_field(&st, "SigCgt")?, 16).ok()?;
        ((blk | cgt) & bit != 0).then_some(())
    });
}

const SIGNALS: [(i32, &str); 6] = [
    (libc::SIGTERM, "TERM"),
    (libc::SIGINT, "INT"),
    (libc::SIGHUP, "HUP"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
];

#[test]
fn forwards_signals_to_the_process() {
    let mut c = Ctx::new("exec_sigfwd");
    running(&mut c);
    for (i, (sig, name)) in SIGNALS.iter().enumerate() {
        let code = 40 + i as i32;
        let script = format!(
            "trap 'echo got-{name}; exit {code}' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let (mut child, o, e) = spawn(&c, &["exec", &c.id, "sh", "-c", &script], name);
        wait_file(&o, "ready");
        wait_forwarding(child.id(), *sig);
        // SAFETY: signalling our own child, which we have not reaped yet.
        assert_eq!(unsafe { libc::kill(child.id() as i32, *sig) }, 0);
        let st = wait_exit(&mut child, &format!("exec after SIG{name}"));
        let out = fs::read_to_string(&o).unwrap();
        assert_eq!(
            st.code(),
            Some(code),
            "SIG{name}: {out:?} {:?}",
            fs::read_to_string(&e).unwrap_or_default()
        );
        assert!(out.contains(&format!("got-{name}")), "{out:?}");
    }
}

#[test]
fn killed_by_forwarded_signal_is_128_plus_n() {
    let mut c = Ctx::new("exec_sigdeath");
    let init = running(&mut c);
    for (sig, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
    ] {
        let (mut child, o, e) = spawn(
            &c,
            &["exec", &c.id, "sh", "-c", "echo ready; exec sleep 100"],
            name,
        );
        wait_file(&o, "ready");
        wait_forwarding(child.id(), sig);
        // SAFETY: signalling our own child, which we have not reaped yet.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let st = wait_exit(&mut child, &format!("exec after SIG{name}"));
        assert_eq!(
            st.code(),
            Some(128 + sig),
            "SIG{name}: {:?}",
            fs::read_to_string(&e).unwrap_or_default()
        );
    }
    wait_for(Duration::from_secs(5), "only the init", || {
        (pids_in_pidns_of(init) == [init]).then_some(())
    });
}

/// A signal that arrives while exec is still setting up must not kill the runtime and leave the
/// process running orphaned in the container: it is forwarded once the process exists (runc
/// catches signals before it starts the process), or the setup is abandoned.
#[test]
fn signal_during_setup_leaves_no_orphan() {
    let mut c = Ctx::new("exec_sigsetup");
    let init = running(&mut c);
    for round in 0..60u64 {
        let (mut child, _, _) = spawn(&c, &["exec", &c.id, "sleep", "30"], &format!("s{round}"));
        std::thread::sleep(Duration::from_micros(250 * (round % 30)));
        // SAFETY: signalling our own child, which we have not reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_exit(&mut child, "exec after SIGTERM");
    }
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<i32> = pids_in_pidns_of(init)
        .into_iter()
        .filter(|&p| p != init)
        .collect();
    let cmds: Vec<String> = left
        .iter()
        .map(|p| fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default())
        .collect();
    assert!(
        left.is_empty(),
        "{} exec'd processes outlived their killed runtime: {cmds:?}",
        left.len()
    );
}

#[test]
fn sigpipe_has_default_action() {
    let mut c = Ctx::new("exec_sigpipe");
    running(&mut c);
    let out = exec_ok(&c, "grep SigIgn /proc/self/status; yes | head -n 1");
    assert_eq!(
        cap_hex(&out, "SigIgn") & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored: {out}"
    );
    assert_eq!(out.lines().last(), Some("y"));
}

// ---------------------------------------------------------------------------------------------
// Many at once

#[test]
fn twenty_concurrent_execs() {
    let mut c = Ctx::new("exec_concurrent");
    let init = running(&mut c);
    let init_s = init.to_string();
    let init_fds = fd_count(&init_s);
    let outs: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let c = &c;
                s.spawn(move || exec_sh(c, &format!("echo n={i} pid=$$")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut pids = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        out.ok();
        let line = out.stdout.trim();
        assert!(line.starts_with(&format!("n={i} pid=")), "{out:?}");
        pids.push(line.rsplit('=').next().unwrap().to_string());
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 20, "pids not distinct: {pids:?}");
    // Nothing left in the container but its init, and the init holds no new fds.
    wait_for(Duration::from_secs(5), "only the init", || {
        (pids_in_pidns_of(init) == [init]).then_some(())
    });
    assert_eq!(fd_count(&init_s), init_fds, "the init gained fds");
    assert_eq!(c.status(&c.id), "running");
}

/// A long-lived caller (a host shell, like an engine's daemon) runs 20 execs at once and has
/// exactly the fds afterwards that it had before.
#[test]
fn long_lived_caller_keeps_its_fds() {
    let mut c = Ctx::new("exec_caller_fds");
    let init = running(&mut c);
    let script = r#"
        before=$(ls /proc/$$/fd | sort -n | tr '\n' ' ')
        i=0
        while [ $i -lt 20 ]; do
            "$RT" --root "$ROOT" exec "$ID" sh -c 'echo ok' > "$DIR/c$i.out" 2>&1 </dev/null &
            i=$((i + 1))
        done
        wait
        after=$(ls /proc/$$/fd | sort -n | tr '\n' ' ')
        echo "before: $before"
        echo "after: $after"
        cat "$DIR"/c*.out | grep -c '^ok$'
    "#;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .env("RT", runtime())
        .env("ROOT", &c.root)
        .env("ID", &c.id)
        .env("DIR", c.tmp.path())
        .stdin(Stdio::null());
    let out = c.exec_cmd(cmd, &c.path("caller.out"), &c.path("caller.err"));
    out.ok();
    let lines = out.lines();
    assert_eq!(
        lines[0].strip_prefix("before: "),
        lines[1].strip_prefix("after: "),
        "caller's fds changed: {out:?}"
    );
    assert_eq!(lines[2], "20", "not all execs succeeded: {out:?}");
    wait_for(Duration::from_secs(5), "only the init", || {
        (pids_in_pidns_of(init) == [init]).then_some(())
    });
}

/// The container's /etc/passwd is a FIFO nobody writes to (it is read for $HOME when the
/// process has none): run and exec still go ahead, with HOME=/.
#[test]
fn passwd_fifo_does_not_hang_run_or_exec() {
    let mut c = Ctx::new("exec_passwd_fifo");
    let passwd = c.rootfs_path().join("etc/passwd");
    let _ = fs::remove_file(&passwd);
    nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    c.spec["process"]["env"] = json!(["PATH=/bin"]);
    let out = c.sh_ok("echo home=$HOME");
    assert_eq!(out, "home=/\n");
    c.id = c.new_id();
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    let out = c.rt(&["exec", &c.id, "sh", "-c", "echo home=$HOME"]);
    out.ok();
    assert_eq!(out.stdout, "home=/\n");
}

/// `exec --process FILE` with only cwd and args (all the schema requires): uid 0, gid 0, as
/// runc runs it, whatever the container's own user.
#[test]
fn process_file_without_user_runs_as_root() {
    let mut c = Ctx::new("exec_no_user");
    c.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    running(&mut c);
    let p = c.path("process.json");
    fs::write(
        &p,
        r#"{"cwd": "/", "args": ["/bin/sh", "-c", "echo $(/usr/bin/id -u):$(/usr/bin/id -g)"]}"#,
    )
    .unwrap();
    let out = exec(&c, &["--process", p.to_str().unwrap(), &c.id]);
    out.ok();
    assert_eq!(out.stdout, "0:0\n");
}

/// `exec --cgroup [CONTROLLER:]PATH` (runc 1.1): the process runs in an existing sub-cgroup of
/// the container's, in every hierarchy or in those of the controllers named.
#[test]
fn exec_into_a_sub_cgroup() {
    skiff_only!("runc 1.1 leaves a new v1 cpuset sub-cgroup empty and fails with ENOSPC");
    let mut c = Ctx::new("exec_sub_cg");
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    c.start().ok();
    // The container's directory in each hierarchy, and a sub-cgroup "sub" in each.
    let dirs = proc_cgroup_dirs(pid);
    for (_, d) in &dirs {
        fs::create_dir_all(d.join("sub")).unwrap();
    }
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let memory_line = |text: &str| {
        text.lines()
            .find(|l| l.split(':').nth(1) == Some("memory"))
            .map(|l| l.rsplit(':').next().unwrap().to_string())
            .unwrap()
    };
    let base = memory_line(&own);
    let out = c.rt(&[
        "exec",
        "--cgroup",
        "/sub",
        &c.id,
        "cat",
        "/proc/self/cgroup",
    ]);
    out.ok();
    for line in out
        .stdout
        .lines()
        .filter(|l| !l.contains("name=systemd") || is_skiff())
    {
        assert!(line.ends_with("/sub"), "{line}\n{}", out.stdout);
    }
    let out = c.rt(&[
        "exec",
        "--cgroup",
        "memory:/sub",
        &c.id,
        "cat",
        "/proc/self/cgroup",
    ]);
    out.ok();
    assert_eq!(
        memory_line(&out.stdout),
        format!("{base}/sub"),
        "{}",
        out.stdout
    );
    let cpu = out
        .stdout
        .lines()
        .find(|l| l.split(':').nth(1) == Some("cpu"))
        .unwrap();
    assert!(!cpu.ends_with("/sub"), "{}", out.stdout);
    // A sub-cgroup that does not exist is refused, naming the flag.
    c.rt(&["exec", "--cgroup", "/nope", &c.id, "true"])
        .fails_with("--cgroup", None);
    c.kill_id(&c.id, "KILL").ok();
    c.wait_status(&c.id, "stopped");
    for (_, d) in &dirs {
        let _ = fs::remove_dir(d.join("sub"));
    }
}

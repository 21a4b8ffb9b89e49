//! create / start / kill / delete / run and their exit codes.

use crate::common::*;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn create_waits_for_start() {
    let mut c = Ctx::new("create_waits");
    c.sh_args("echo started-$((40+2)); exec sleep 60");
    let pid = c.create_ok();

    // The pid file: decimal init pid, no trailing newline, equal to state.pid.
    let raw = fs::read_to_string(c.pid_file(&c.id)).unwrap();
    assert!(
        !raw.ends_with('\n'),
        "pid file has a trailing newline: {raw:?}"
    );
    let st = c.state_json(&c.id);
    assert_eq!(st["status"], "created");
    assert_eq!(
        st["pid"].as_i64(),
        Some(pid as i64),
        "state pid vs pid file"
    );
    assert!(
        proc_state(pid).is_some(),
        "init {pid} not alive on the host"
    );

    // Until start, the user process must not run.
    std::thread::sleep(Duration::from_millis(150));
    let early = fs::read_to_string(c.out_file(&c.id)).unwrap_or_default();
    assert!(
        !early.contains("started-42"),
        "process ran before start: {early}"
    );
    assert_eq!(c.status(&c.id), "created");

    c.start().ok();
    c.wait_output(&c.id, "started-42");
    assert_eq!(c.status(&c.id), "running");
    assert_eq!(c.state_json(&c.id)["pid"].as_i64(), Some(pid as i64));

    c.kill_id(&c.id, "KILL").ok();
    c.wait_status(&c.id, "stopped");
    c.delete_id(&c.id, false).ok();
    assert!(!c.root.join(&c.id).exists(), "state dir survives delete");
    c.state_id(&c.id)
        .fails_with("container does not exist", Some("does not exist"));
}

#[test]
fn start_twice_fails() {
    let mut c = Ctx::new("start_twice");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    c.start().fails();
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn start_after_init_died_fails() {
    let mut c = Ctx::new("start_dead");
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    // SAFETY: pid is the init we just created (checked alive via its pid file).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for(Duration::from_secs(5), "init to die", || {
        (!matches!(
            proc_state(pid),
            Some('R') | Some('S') | Some('D') | Some('T')
        ))
        .then_some(())
    });
    c.start().fails();
}

#[test]
fn delete_running_needs_force() {
    let mut c = Ctx::new("delete_running");
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    c.start().ok();
    c.delete_id(&c.id, false).fails();
    assert_eq!(
        c.status(&c.id),
        "running",
        "failed delete changed the container"
    );
    assert!(proc_state(pid).is_some());
    c.delete_id(&c.id, true).ok();
    c.assert_clean();
}

#[test]
fn delete_created_without_force() {
    let mut c = Ctx::new("delete_created");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.delete_id(&c.id, false).ok();
    c.assert_clean();
}

#[test]
fn run_returns_exit_code() {
    let mut c = Ctx::new("run_exit");
    let out = c.run_sh("echo out-marker; echo err-marker >&2; exit 3");
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout.contains("out-marker"),
        "container stdout not passed: {out:?}"
    );
    assert!(
        out.stderr.contains("err-marker"),
        "container stderr not passed: {out:?}"
    );
    // Without --keep, run removes the container.
    assert!(!c.root.join(&c.id).exists());
    c.state_id(&c.id).fails();
}

#[test]
fn run_passes_stdin() {
    let mut c = Ctx::new("run_stdin");
    let input = c.path("input");
    fs::write(&input, "hello-from-stdin\n").unwrap();
    c.set_args(&["cat"]);
    let id = c.id.clone();
    let out = c.run_with(&id, &[], |cmd| {
        cmd.stdin(fs::File::open(&input).unwrap());
    });
    out.ok();
    assert_eq!(out.stdout, "hello-from-stdin\n");
}

#[test]
fn run_killed_by_signal_is_128_plus_n() {
    let mut c = Ctx::new("run_sigkill");
    c.set_args(&["sleep", "60"]);
    c.write_spec();
    c.track(&c.id);
    let bundle = c.bundle.to_str().unwrap().to_string();
    let mut child = c
        .command(&["run", "--bundle", &bundle, &c.id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "container running", || {
        let o = c.state_id(&c.id);
        (o.code == 0 && o.stdout.contains("\"running\"")).then_some(())
    });
    c.kill_id(&c.id, "KILL").ok();
    let st = wait_for(Duration::from_secs(10), "run to exit", || {
        child.try_wait().unwrap()
    });
    assert_eq!(st.code(), Some(137), "run after SIGKILL: {st:?}");
}

#[test]
fn run_detach() {
    let mut c = Ctx::new("run_detach");
    c.set_args(&["sleep", "60"]);
    c.write_spec();
    c.track(&c.id);
    let pid_file = c.pid_file(&c.id);
    let bundle = c.bundle.to_str().unwrap().to_string();
    let args = [
        "run",
        "-d",
        "--bundle",
        &bundle,
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
    ];
    let out = c.exec_cmd(c.command(&args), &c.out_file(&c.id), &c.err_file(&c.id));
    out.ok();
    let pid = c.read_pid_file(&c.id).expect("pid file");
    c.track_pid(pid);
    let st = c.state_json(&c.id);
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/exe"))
            .unwrap()
            .file_name()
            .unwrap(),
        "busybox"
    );
    // --detach is the long form.
    let id2 = c.new_id();
    c.track(&id2);
    let args = ["run", "--detach", "--bundle", &bundle, &id2];
    c.exec_cmd(c.command(&args), &c.out_file(&id2), &c.err_file(&id2))
        .ok();
    assert_eq!(c.status(&id2), "running");
}

#[test]
fn run_keep() {
    let mut c = Ctx::new("run_keep");
    c.sh_args("exit 4");
    let id = c.id.clone();
    let out = c.run_id(&id, &["--keep"]);
    assert_eq!(out.code, 4, "{out:?}");
    let st = c.state_json(&id);
    assert_eq!(st["status"], "stopped");
    c.delete_id(&id, false).ok();
    c.assert_clean();
}

#[test]
fn kill_signal_forms() {
    let mut c = Ctx::new("kill_forms");
    c.set_args(&["sleep", "60"]);
    for sig in ["9", "KILL", "SIGKILL"] {
        let id = c.new_id();
        c.create_id(&id, &[]).ok();
        c.start_id(&id).ok();
        assert_eq!(c.status(&id), "running");
        c.kill_id(&id, sig).ok();
        c.wait_status(&id, "stopped");
    }
}

#[test]
fn kill_default_is_sigterm() {
    let mut c = Ctx::new("kill_term");
    // PID 1 only gets signals it handles: the trap proves SIGTERM arrived.
    c.sh_args("trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    c.create_ok();
    c.start().ok();
    c.wait_output(&c.id, "ready");
    c.rt(&["kill", &c.id]).ok();
    c.wait_output(&c.id, "got-term");
    c.wait_status(&c.id, "stopped");
}

#[test]
fn kill_created_container() {
    let mut c = Ctx::new("kill_created");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.kill_id(&c.id, "KILL").ok();
    c.wait_status(&c.id, "stopped");
}

#[test]
fn no_pivot() {
    let mut c = Ctx::new("no_pivot");
    c.sh_args("cat /etc/hostname; ls /");
    let id = c.id.clone();
    let out = c.run_id(&id, &["--no-pivot"]);
    out.ok();
    // The container sees its own rootfs as /, not the host's.
    assert!(out.stdout.starts_with("skiff\n"), "{out:?}");
    assert!(
        out.stdout.contains("busybox") || out.stdout.contains("bin"),
        "{out:?}"
    );
}

#[test]
fn version_three_lines() {
    let out = Command::new(runtime()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    assert!(lines[0].contains(" version "), "{text}");
    assert!(lines[1].starts_with("commit: "), "{text}");
    assert!(lines[2].starts_with("spec: 1."), "{text}");
    if is_skiff() {
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("skiff version "), "{text}");
    }
}

/// runc accepts any id of [A-Za-z0-9_+.-] but "." and "..": one starting with a dot too (the
/// kernel reserves such names for keyrings, so the session keyring is named `_ses.ID`).
#[test]
fn id_starting_with_a_dot_runs() {
    let mut c = Ctx::new("dot_id");
    c.sh_args("echo ran");
    let id = format!(".{}", c.new_id());
    let out = c.run_id(&id, &[]);
    out.ok();
    assert_eq!(out.stdout, "ran\n");
}

/// `kill ID 0` (also with --all) sends nothing and says whether the container still runs:
/// engines use it as a liveness probe, as with runc.
#[test]
fn kill_zero_is_a_liveness_probe() {
    let mut c = Ctx::new("kill_zero");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    c.kill_id(&c.id, "0").ok();
    c.rt(&["kill", "--all", &c.id, "0"]).ok();
    assert_eq!(c.status(&c.id), "running");
    c.kill_id(&c.id, "KILL").ok();
    c.wait_status(&c.id, "stopped");
    c.kill_id(&c.id, "0").fails();
}

/// --no-pivot: the host's mounts do not stay in the container's mount namespace (chroot only
/// hides them), so a process in a nested user namespace cannot mount a fresh, unmasked procfs
/// or sysfs next to a full one of the host's.
#[test]
fn no_pivot_leaves_no_host_mount_behind() {
    let mut c = Ctx::new("no_pivot_mounts");
    c.set_args(&["sleep", "60"]);
    c.write_spec();
    c.create_id(&c.id.clone(), &["--no-pivot"]).ok();
    c.start().ok();
    let pid = c.read_pid_file(&c.id).expect("pid file");
    // Every mount of its namespace, reachable or not (listmount(2), Linux 6.11+), against those
    // the container sees: the difference may only be the mounts its rootfs lies on.
    match mounts_in_mount_namespace(pid) {
        None => eprintln!("listmount(2) with a namespace id is not available: count not checked"),
        Some(all) => {
            let visible = fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .unwrap()
                .lines()
                .count();
            let rootfs = fs::canonicalize(c.rootfs_path()).unwrap();
            let holders = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap())
                .iter()
                .filter(|m| rootfs.starts_with(&m.mount_point))
                .count();
            // The host has hidden mounts of its own (the kernel's initial rootfs under "/"):
            // those stay under the mounts that hold the rootfs too.
            // Other tests mount and unmount meanwhile: count until two reads agree.
            let count = || {
                fs::read_to_string("/proc/self/mountinfo")
                    .unwrap()
                    .lines()
                    .count()
            };
            let host_hidden = loop {
                let before = count();
                let host_all = mounts_in_mount_namespace(std::process::id() as i32).unwrap_or(0);
                if count() == before {
                    break host_all.saturating_sub(before);
                }
            };
            let strays = all.saturating_sub(visible);
            let allowed = if is_skiff() {
                holders + host_hidden
            } else {
                usize::MAX
            };
            assert!(
                strays <= allowed,
                "{strays} hidden mounts in the container's namespace ({all} in all, {visible} visible, {holders} hold the rootfs, {host_hidden} hidden on the host)"
            );
        }
    }
    // A nested user namespace may not mount procfs.
    let out = c.rt(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "mkdir -p /tmp/p; unshare -U -r -m sh -c 'mount -t proc proc /tmp/p && echo mounted'; true",
    ]);
    out.ok();
    assert!(!out.stdout.contains("mounted"), "{out:?}");
}

/// The number of mounts in the mount namespace of `pid` (listmount(2) from the namespace's
/// root), or None where the kernel cannot say.
fn mounts_in_mount_namespace(pid: i32) -> Option<usize> {
    use std::os::fd::AsRawFd;
    const NS_GET_MNTNS_ID: libc::c_ulong = 0x8008_b705;
    const SYS_LISTMOUNT: libc::c_long = 458;
    const LSMT_ROOT: u64 = u64::MAX;
    #[repr(C)]
    struct MntIdReq {
        size: u32,
        spare: u32,
        mnt_id: u64,
        param: u64,
        mnt_ns_id: u64,
    }
    let ns = fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
    let mut ns_id: u64 = 0;
    // SAFETY: the ioctl writes one u64 to a valid pointer.
    if unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_MNTNS_ID, &mut ns_id) } != 0 {
        return None;
    }
    let req = MntIdReq {
        size: 32,
        spare: 0,
        mnt_id: LSMT_ROOT,
        param: 0,
        mnt_ns_id: ns_id,
    };
    let mut ids = vec![0u64; 4096];
    // SAFETY: a valid request of the size given and a writable buffer of `ids.len()` ids.
    let n = unsafe {
        libc::syscall(
            SYS_LISTMOUNT,
            &req as *const MntIdReq,
            ids.as_mut_ptr(),
            ids.len(),
            0u32,
        )
    };
    // The namespace's root mount is not among its children.
    (n >= 0).then(|| n as usize + 1)
}

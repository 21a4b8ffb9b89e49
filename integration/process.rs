//! process.*: user, umask, env, cwd, rlimits, capabilities, noNewPrivileges, oomScoreAdj,
//! --preserve-fds, LISTEN_FDS.

use crate::common::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;

#[test]
fn user_uid_gid_groups() {
    let mut c = Ctx::new("user_ids");
    c.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [100, 65534]});
    let out = c.sh_ok("cat /proc/self/status; echo ID=$(id)");
    assert_eq!(status_field(&out, "Uid").unwrap(), "1000 1000 1000 1000");
    assert_eq!(status_field(&out, "Gid").unwrap(), "1000 1000 1000 1000");
    let groups = status_field(&out, "Groups").unwrap();
    let mut g: Vec<&str> = groups.split(' ').collect();
    g.sort();
    assert!(
        g.contains(&"100") && g.contains(&"65534"),
        "Groups: {groups}"
    );
    assert!(!g.contains(&"0"), "root group leaked into Groups: {groups}");
    assert!(out.contains("ID=uid=1000(user) gid=1000(user)"), "{out}");
}

#[test]
fn user_root_has_no_extra_groups() {
    let mut c = Ctx::new("root_groups");
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&out, "Uid").unwrap(), "0 0 0 0");
    assert_eq!(status_field(&out, "Groups").unwrap_or_default(), "");
}

#[test]
fn umask() {
    let mut c = Ctx::new("umask");
    c.spec["process"]["user"]["umask"] = json!(0o027);
    let out = c.sh_ok("umask; cd /tmp && touch f && stat -c %a f");
    assert_eq!(out, "0027\n640\n");
}

#[test]
fn env_is_exactly_config() {
    let mut c = Ctx::new("env");
    c.spec["process"]["env"] = json!([
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "FOO=bar baz",
        "EMPTY="
    ]);
    let out = c.sh_ok("echo \"FOO=$FOO\"; env | sort");
    assert!(out.starts_with("FOO=bar baz\n"), "{out}");
    assert!(out.contains("EMPTY=\n"), "{out}");
    // Nothing from the runtime's own environment leaks in.
    assert!(!out.contains("CARGO"), "host env leaked: {out}");
    assert!(!out.contains("SKIFF_TEST"), "host env leaked: {out}");
}

#[test]
fn cwd() {
    let mut c = Ctx::new("cwd");
    c.spec["process"]["cwd"] = json!("/etc");
    assert_eq!(c.sh_ok("pwd"), "/etc\n");
}

/// The working directory is entered before the user switch and the capability drop (as
/// runc): a user who could not enter it still starts there.
#[test]
fn cwd_entered_before_the_user_switch() {
    use std::os::unix::fs::PermissionsExt;
    let mut c = Ctx::new("cwd_before_user");
    let root_home = c.rootfs_path().join("root");
    fs::create_dir_all(&root_home).unwrap();
    fs::set_permissions(&root_home, fs::Permissions::from_mode(0o700)).unwrap();
    c.spec["process"]["user"] = json!({"uid": 42, "gid": 42});
    c.spec["process"]["cwd"] = json!("/root");
    assert_eq!(c.sh_ok("echo $(id -u) $PWD"), "42 /root\n");

    // exec --user 0 into a 0700 directory of uid 42's, with the default capabilities (no
    // CAP_DAC_OVERRIDE): entered while the process still has every capability.
    let home = c.rootfs_path().join("home/u42");
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(42), Some(42)).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    c.id = c.new_id();
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    let out = c.rt(&[
        "exec",
        "--user",
        "0",
        "--cwd",
        "/home/u42",
        &c.id,
        "sh",
        "-c",
        "pwd",
    ]);
    out.ok();
    assert_eq!(out.stdout, "/home/u42\n");
}

#[test]
fn args_passed_verbatim() {
    let mut c = Ctx::new("args");
    c.set_args(&["/bin/echo", "a b", "", "c'd\"e"]);
    let out = c.run_id(&c.id.clone(), &[]);
    out.ok();
    assert_eq!(out.stdout, "a b  c'd\"e\n");
}

#[test]
fn rlimits() {
    let mut c = Ctx::new("rlimits");
    c.spec["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 4242, "hard": 8484},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 1048576},
        {"type": "RLIMIT_NPROC", "soft": 777, "hard": 778}
    ]);
    let out = c.sh_ok("cat /proc/self/limits; echo nofile=$(ulimit -n)");
    let line = |name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {out}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let nofile = line("Max open files");
    assert_eq!(&nofile[3..5], ["4242", "8484"], "{out}");
    let core = line("Max core file size");
    assert_eq!(&core[4..6], ["0", "1048576"], "{out}");
    let nproc = line("Max processes");
    assert_eq!(&nproc[2..4], ["777", "778"], "{out}");
    assert!(out.contains("nofile=4242"), "{out}");
}

/// Bits for CAP_CHOWN(0), CAP_KILL(5), CAP_NET_BIND_SERVICE(10).
const CAPS3: u64 = (1 << 0) | (1 << 5) | (1 << 10);

fn cap_hex(text: &str, field: &str) -> u64 {
    let v = status_field(text, field).unwrap_or_else(|| panic!("{field} missing in {text}"));
    u64::from_str_radix(&v, 16).unwrap()
}

#[test]
fn capabilities_all_five_sets() {
    let mut c = Ctx::new("caps");
    let three = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    c.spec["process"]["capabilities"] = json!({
        "bounding": three, "effective": three, "permitted": three,
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(cap_hex(&out, "CapBnd"), CAPS3, "{out}");
    assert_eq!(cap_hex(&out, "CapPrm"), CAPS3, "{out}");
    assert_eq!(cap_hex(&out, "CapEff"), CAPS3, "{out}");
    assert_eq!(cap_hex(&out, "CapInh"), (1 << 5) | (1 << 10), "{out}");
    assert_eq!(cap_hex(&out, "CapAmb"), 1 << 10, "{out}");
}

#[test]
fn capabilities_enforced() {
    let mut c = Ctx::new("caps_enforced");
    c.spec["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
    });
    c.add_mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}));
    // Without CAP_CHOWN and CAP_DAC_OVERRIDE, root can neither chown nor write a 000 file.
    let out = c.run_sh(
        "touch /scratch/f && chmod 000 /scratch/f; \
         chown 1000 /scratch/f && echo chown-ok; echo x > /scratch/f && echo write-ok; cat /proc/self/status",
    );
    out.ok();
    assert!(!out.stdout.contains("chown-ok"), "{out:?}");
    assert!(!out.stdout.contains("write-ok"), "{out:?}");
    assert_eq!(cap_hex(&out.stdout, "CapEff"), 1 << 5);
}

#[test]
fn user_with_caps_non_root() {
    let mut c = Ctx::new("caps_user");
    let all = json!(["CAP_NET_BIND_SERVICE", "CAP_KILL"]);
    c.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c.spec["process"]["capabilities"] = json!({
        "bounding": all, "effective": all, "permitted": all, "inheritable": all, "ambient": all
    });
    let out = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&out, "Uid").unwrap(), "1000 1000 1000 1000");
    let want = (1u64 << 5) | (1 << 10);
    assert_eq!(
        cap_hex(&out, "CapEff"),
        want,
        "ambient caps must survive the uid switch: {out}"
    );
    assert_eq!(cap_hex(&out, "CapAmb"), want, "{out}");
}

#[test]
fn no_new_privileges() {
    let mut c = Ctx::new("nnp");
    c.spec["process"]["noNewPrivileges"] = json!(true);
    assert_eq!(
        status_field(&c.sh_ok("cat /proc/self/status"), "NoNewPrivs").unwrap(),
        "1"
    );
    c.spec["process"]["noNewPrivileges"] = json!(false);
    c.id = c.new_id();
    assert_eq!(
        status_field(&c.sh_ok("cat /proc/self/status"), "NoNewPrivs").unwrap(),
        "0"
    );
}

#[test]
fn oom_score_adj() {
    let mut c = Ctx::new("oom");
    c.spec["process"]["oomScoreAdj"] = json!(123);
    c.sh_args("cat /proc/self/oom_score_adj; exec sleep 60");
    let pid = c.create_ok();
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "123"
    );
    c.start().ok();
    assert_eq!(c.wait_output(&c.id, "\n").trim(), "123");
}

#[test]
fn preserve_fds() {
    let mut c = Ctx::new("preserve_fds");
    let p = c.path("passed");
    fs::write(&p, "passed-through-fd\n").unwrap();
    let f = fs::File::open(&p).unwrap();
    let fd = f.as_raw_fd();
    c.sh_args("cat <&3; cat <&4 && echo fd4-open; true");
    let id = c.id.clone();
    let out = c.run_with(&id, &["--preserve-fds", "1"], |cmd| pass_fd(cmd, fd, 3));
    out.ok();
    assert!(out.stdout.starts_with("passed-through-fd\n"), "{out:?}");
    assert!(!out.stdout.contains("fd4-open"), "{out:?}");
    // Without --preserve-fds the fd must not leak in.
    let id2 = c.new_id();
    let out = c.run_with(&id2, &[], |cmd| pass_fd(cmd, fd, 3));
    assert!(
        !out.stdout.contains("passed-through-fd"),
        "fd 3 leaked without --preserve-fds: {out:?}"
    );
    drop(f);
}

#[test]
fn listen_fds() {
    let mut c = Ctx::new("listen_fds");
    let p = c.path("socketish");
    fs::write(&p, "listen-fd-data\n").unwrap();
    let f = fs::File::open(&p).unwrap();
    let fd = f.as_raw_fd();
    c.sh_args("echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID; cat <&3");
    c.write_spec();
    c.track(&c.id);
    // sd_listen_fds-style consumers check LISTEN_PID against their own pid: exec keeps $$.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"")
        .arg("sh")
        .arg(runtime())
        .arg("--root")
        .arg(&c.root)
        .args(["run", "--bundle", c.bundle.to_str().unwrap(), &c.id])
        .stdin(std::process::Stdio::null());
    pass_fd(&mut cmd, fd, 3);
    let (o, e) = (c.path("listen.out"), c.path("listen.err"));
    let out = c.exec_cmd(cmd, &o, &e);
    out.ok();
    assert!(
        out.stdout.contains("LISTEN_FDS=1 LISTEN_PID=1\n"),
        "{out:?}"
    );
    assert!(out.stdout.contains("listen-fd-data"), "{out:?}");
}

#[test]
fn pid_is_one_and_ps() {
    let mut c = Ctx::new("pid_one");
    let out = c.sh_ok("echo pid=$$; ps -o pid,comm");
    assert!(out.starts_with("pid=1\n"), "{out}");
    let procs: Vec<&str> = out.lines().skip(2).collect();
    assert!(
        procs
            .iter()
            .any(|l| l.split_whitespace().next() == Some("1")),
        "{out}"
    );
    // Only the shell and ps itself: the host's processes are invisible.
    assert!(procs.len() <= 2, "{out}");
}

//! Security: each test attacks or observes one protection so that it fails without it.
//!
//! - seccomp: the Docker and Podman profiles (fixtures captured from the engines), every action,
//!   every operator, multi-argument rules, flags, the NOTIFY agent hand-over, exec filtered.
//!   Syscalls are made by `sc`, a tiny static C program built at test time with `gcc -static`
//!   (packages gcc and libc6-dev); without a toolchain the probes are skipped with a note.
//! - CVE-2019-5736 class: the runtime's own processes (init while `created`, exec child while it
//!   sets up) cannot be opened through /proc by a container process, and a container cannot run
//!   and then overwrite the runtime binary through /proc/self/exe.
//! - CVE-2024-21626 class: no fd of the runtime or its caller reaches the container.
//! - Symlinks in the rootfs cannot send a mount, a mkdir or a device node outside the rootfs.
//! - Isolation: host processes invisible and unsignalable, masked and readonly paths hold.
//! - User namespaces with several ranges; LSM labels refused on a host without the LSM.

use crate::common::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// The syscall helper

/// `sc [-t] NR [ARG...]`: one raw syscall, prints `ret=R errno=E`. With `-t` a SIGSYS handler
/// prints `trap nr=N data=D` (seccomp TRAP) instead of dying.
const SC_SOURCE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
    char buf[96];
    int n = snprintf(buf, sizeof buf, "trap nr=%d data=%d\n", si->si_syscall, si->si_errno);
    (void)sig; (void)uc;
    if (write(1, buf, n) < 0) _exit(3);
    _exit(0);
}

int main(int argc, char **argv) {
    int i = 1;
    if (argc > 1 && strcmp(argv[1], "-t") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSYS, &sa, NULL);
        i++;
    }
    if (argc - i < 1 || argc - i > 7) {
        fprintf(stderr, "usage: sc [-t] NR [ARG...]\n");
        return 2;
    }
    long nr = strtol(argv[i], NULL, 0);
    unsigned long a[6] = {0};
    for (int k = 0; k < argc - i - 1; k++) a[k] = strtoull(argv[i + 1 + k], NULL, 0);
    errno = 0;
    long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    printf("ret=%ld errno=%d\n", r, r == -1 ? errno : 0);
    return 0;
}
"#;

/// The helper binary, built once per source version into cargo's test scratch dir; None when
/// this machine has no static C toolchain.
fn sc_binary() -> Option<&'static Path> {
    static SC: OnceLock<Option<PathBuf>> = OnceLock::new();
    SC.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let mut h = DefaultHasher::new();
        SC_SOURCE.hash(&mut h);
        let out = dir.join(format!("skiff-sc-{:016x}", h.finish()));
        if out.exists() {
            return Some(out);
        }
        let tag = format!("{}-{:?}", std::process::id(), std::thread::current().id());
        let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let src = dir.join(format!("skiff-sc-{tag}.c"));
        let tmp = dir.join(format!("skiff-sc-{tag}.tmp"));
        fs::write(&src, SC_SOURCE).ok()?;
        let st = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status();
        let _ = fs::remove_file(&src);
        match st {
            Ok(s) if s.success() => {
                // rename is atomic: a concurrent test binary sees the old name or a whole file.
                fs::rename(&tmp, &out).ok()?;
                Some(out)
            }
            _ => {
                let _ = fs::remove_file(&tmp);
                eprintln!("no static C toolchain (install gcc libc6-dev): syscall probes skipped");
                None
            }
        }
    })
    .as_deref()
}

/// Copy the helper to /bin/sc of the test's rootfs. False when it cannot be built.
fn install_sc(c: &Ctx) -> bool {
    let Some(bin) = sc_binary() else {
        return false;
    };
    let dst = c.rootfs_path().join("bin/sc");
    copy_executable(bin, &dst);
    true
}

/// Return early (the test is skipped) when the syscall helper cannot be built.
macro_rules! need_sc {
    ($c:expr) => {
        if !install_sc(&$c) {
            eprintln!("skipped: needs gcc -static for the syscall helper");
            return;
        }
    };
}

/// A shell script running each probe `(tag, "sc arguments")` and printing `tag: RESULT`.
fn probe_script(probes: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (tag, args) in probes {
        s.push_str(&format!(
            "r=$(/bin/sc {args} 2>&1); rc=$?; if [ $rc = 0 ]; then echo \"{tag}: $r\"; else echo \"{tag}: exit=$rc\"; fi\n"
        ));
    }
    s
}

/// `tag -> result` where result is `errno=N` (failed), `ret=R` (succeeded), `exit=N` (the
/// helper died: 159 is SIGSYS) or `trap nr=N data=D`.
fn probe_results(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let Some((tag, rest)) = line.split_once(": ") else {
            continue;
        };
        let rest = rest.trim();
        let v = if let Some(r) = rest.strip_prefix("ret=-1 errno=") {
            format!("errno={r}")
        } else if let Some((r, _)) = rest.strip_prefix("ret=").and_then(|r| r.split_once(' ')) {
            format!("ret={r}")
        } else {
            rest.to_string()
        };
        m.insert(tag.to_string(), v);
    }
    m
}

/// Assert every probe got its expected result; shows all mismatches at once.
#[track_caller]
fn check_probes(out: &str, want: &[(&str, &str)]) {
    let got = probe_results(out);
    let bad: Vec<String> = want
        .iter()
        .filter(|(tag, w)| got.get(*tag).map(String::as_str) != Some(*w))
        .map(|(tag, w)| format!("{tag}: want {w}, got {:?}", got.get(*tag)))
        .collect();
    assert!(bad.is_empty(), "{}\nfull output:\n{out}", bad.join("\n"));
}

fn nr(n: libc::c_long) -> String {
    n.to_string()
}

// ---------------------------------------------------------------------------------------------
// Seccomp profiles

fn fixture(name: &str) -> Value {
    let p = repo().join(format!("integration/fixtures/seccomp/{name}.json"));
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The rules of a profile that name `syscall`: (action, errnoRet, has args).
fn rules_for(profile: &Value, syscall: &str) -> Vec<(String, Option<u64>, bool)> {
    profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == syscall))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["errnoRet"].as_u64(),
                r["args"].as_array().is_some_and(|a| !a.is_empty()),
            )
        })
        .collect()
}

/// Work a busybox container does under a default engine profile; prints `workload-ok` at the end.
const WORKLOAD: &str = "set -e; ls / >/dev/null; cat /etc/passwd >/dev/null; \
    x=$(echo sub); [ \"$x\" = sub ]; echo b a | tr ' ' '\\n' | sort >/dev/null; \
    mkdir -p /tmp/w/d && touch /tmp/w/d/f && mv /tmp/w/d/f /tmp/w/g && rm -r /tmp/w; \
    date >/dev/null; sleep 0.01; ps >/dev/null; id -u >/dev/null; \
    sh -c 'exit 3' || [ $? = 3 ]; (sleep 0.01 &) ; wait; echo workload-ok; set +e\n";

#[test]
fn docker_profile() {
    let prof = fixture("docker");
    // What the assertions below rely on, read from the fixture itself.
    assert_eq!(prof["defaultAction"], "SCMP_ACT_ERRNO");
    assert!(
        prof.get("defaultErrnoRet").is_none(),
        "default errno is EPERM"
    );
    for s in ["unshare", "mount", "keyctl"] {
        assert!(rules_for(&prof, s).is_empty(), "{s} is denied by default");
    }
    assert_eq!(
        rules_for(&prof, "ptrace"),
        [("SCMP_ACT_ALLOW".to_string(), None, false)]
    );
    assert_eq!(
        rules_for(&prof, "clone3"),
        [("SCMP_ACT_ERRNO".to_string(), Some(38), false)]
    );
    // futex_waitv (449) is the highest x86_64 syscall it names: cachestat (451) is newer.
    assert!(!rules_for(&prof, "futex_waitv").is_empty());

    let mut c = Ctx::new("sec_docker");
    c.spec["linux"]["seccomp"] = prof;
    let have_sc = install_sc(&c);
    let mut script = WORKLOAD.to_string();
    script.push_str("unshare -U true 2>&1 && echo unshare-ran; echo unshare-tried\n");
    let probes = [
        ("unshare", format!("{} 0", nr(libc::SYS_unshare))),
        ("mount", format!("{} 0 0 0 0 0", nr(libc::SYS_mount))),
        ("keyctl", format!("{} 0xffff", nr(libc::SYS_keyctl))),
        ("ptrace", format!("{} 12 999999", nr(libc::SYS_ptrace))),
        ("clone3", format!("{} 0 0", nr(libc::SYS_clone3))),
        ("cachestat", "451 -1 0 0 0".to_string()),
        // personality is allowed for a few personas only (argument rules of a real profile).
        (
            "persona_query",
            format!("{} 0xffffffff", nr(libc::SYS_personality)),
        ),
        (
            "persona_norand",
            format!("{} 0x0040000", nr(libc::SYS_personality)),
        ),
    ];
    if have_sc {
        script.push_str(&probe_script(&probes));
    }
    let out = c.sh_ok(&script);
    assert!(out.contains("workload-ok"), "{out}");
    assert!(
        !out.contains("unshare-ran"),
        "unshare -U must be denied: {out}"
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    if !have_sc {
        eprintln!("syscall probes skipped: no gcc -static");
        return;
    }
    check_probes(
        &out,
        &[
            ("unshare", "errno=1"),
            ("mount", "errno=1"),
            ("keyctl", "errno=1"),
            // Allowed: the kernel itself answers (no such process).
            ("ptrace", "errno=3"),
            ("clone3", "errno=38"),
            ("cachestat", "errno=38"),
            ("persona_query", "ret=0"),
            ("persona_norand", "errno=1"),
        ],
    );
}

#[test]
fn podman_profile() {
    let prof = fixture("podman");
    assert_eq!(prof["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(prof["defaultErrnoRet"], 38);
    // Podman leaves these to capabilities: allowed by the profile.
    for s in ["unshare", "mount", "keyctl", "ptrace"] {
        assert_eq!(
            rules_for(&prof, s),
            [("SCMP_ACT_ALLOW".to_string(), None, false)],
            "{s}"
        );
    }
    for s in ["perf_event_open", "kcmp"] {
        assert_eq!(
            rules_for(&prof, s),
            [("SCMP_ACT_ERRNO".to_string(), Some(1), false)],
            "{s}"
        );
    }
    assert!(rules_for(&prof, "add_key").is_empty());
    // setns is both allowed and ERRNO(EPERM): the more restrictive action wins.
    assert_eq!(rules_for(&prof, "setns").len(), 2);

    let mut c = Ctx::new("sec_podman");
    c.spec["linux"]["seccomp"] = prof;
    let have_sc = install_sc(&c);
    let mut script = WORKLOAD.to_string();
    let probes = [
        ("unshare", format!("{} 0", nr(libc::SYS_unshare))),
        ("mount", format!("{} 0 0 0 0 0", nr(libc::SYS_mount))),
        ("keyctl", format!("{} 0xffff", nr(libc::SYS_keyctl))),
        ("ptrace", format!("{} 12 999999", nr(libc::SYS_ptrace))),
        (
            "perf",
            format!("{} 0 0 -1 -1 0", nr(libc::SYS_perf_event_open)),
        ),
        ("kcmp", format!("{} 0 0 0 0 0", nr(libc::SYS_kcmp))),
        ("add_key", format!("{} 0 0 0 0 0", nr(libc::SYS_add_key))),
        ("setns", format!("{} -1 0", nr(libc::SYS_setns))),
        // socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT) -> EINVAL by a two-argument rule.
        ("audit_socket", format!("{} 16 3 9", nr(libc::SYS_socket))),
        ("route_socket", format!("{} 16 3 0", nr(libc::SYS_socket))),
        ("cachestat", "451 -1 0 0 0".to_string()),
    ];
    if have_sc {
        script.push_str(&probe_script(&probes));
    }
    let out = c.sh_ok(&script);
    assert!(out.contains("workload-ok"), "{out}");
    if !have_sc {
        eprintln!("syscall probes skipped: no gcc -static");
        return;
    }
    // runc (libseccomp) lets the ALLOW rule win; skiff gives the more restrictive action.
    let setns_want = if is_skiff() { "errno=1" } else { "errno=9" };
    check_probes(
        &out,
        &[
            ("unshare", "ret=0"),
            ("mount", "errno=14"),
            ("keyctl", "errno=95"),
            ("ptrace", "errno=3"),
            ("perf", "errno=1"),
            ("kcmp", "errno=1"),
            ("add_key", "errno=38"),
            ("setns", setns_want),
            ("audit_socket", "errno=22"),
            ("route_socket", "ret=3"),
            ("cachestat", "errno=38"),
        ],
    );
}

/// A container running `sleep` under `seccomp`; returns the init pid.
fn running_with(c: &mut Ctx) -> i32 {
    c.set_args(&["sleep", "600"]);
    let pid = c.create_ok();
    c.start().ok();
    pid
}

#[test]
fn exec_is_filtered() {
    let mut c = Ctx::new("sec_exec");
    need_sc!(c);
    c.spec["linux"]["seccomp"] = fixture("docker");
    let init = running_with(&mut c);
    let out = c.rt(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        &format!(
            "grep -E '^Seccomp' /proc/self/status; {}",
            probe_script(&[
                ("keyctl", format!("{} 0xffff", nr(libc::SYS_keyctl))),
                ("unshare", format!("{} 0", nr(libc::SYS_unshare))),
                ("cachestat", "451 -1 0 0 0".to_string()),
                ("ptrace", format!("{} 12 999999", nr(libc::SYS_ptrace))),
            ])
        ),
    ]);
    out.ok();
    check_probes(
        &out.stdout,
        &[
            ("keyctl", "errno=1"),
            ("unshare", "errno=1"),
            ("cachestat", "errno=38"),
            ("ptrace", "errno=3"),
        ],
    );
    assert_eq!(status_field(&out.stdout, "Seccomp").as_deref(), Some("2"));
    assert_eq!(
        proc_status(&init.to_string(), "Seccomp").as_deref(),
        Some("2")
    );
    if is_skiff() {
        // One program for the whole profile (the design in src/seccomp/mod.rs).
        assert_eq!(
            status_field(&out.stdout, "Seccomp_filters").as_deref(),
            Some("1"),
            "{}",
            out.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Every action, operator and flag

fn rule(name: &str, action: &str) -> Value {
    json!({"names": [name], "action": action})
}

#[test]
fn every_action() {
    let mut c = Ctx::new("sec_actions");
    need_sc!(c);
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["sched_get_priority_max"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
            rule("ioprio_set", "SCMP_ACT_ERRNO"),
            rule("sched_get_priority_min", "SCMP_ACT_KILL_PROCESS"),
            rule("sched_getparam", "SCMP_ACT_KILL_THREAD"),
            rule("syslog", "SCMP_ACT_KILL"),
            rule("sched_rr_get_interval", "SCMP_ACT_TRAP"),
            rule("ioprio_get", "SCMP_ACT_LOG"),
            {"names": ["sched_getscheduler"], "action": "SCMP_ACT_TRACE", "errnoRet": 43},
            rule("getpriority", "SCMP_ACT_ALLOW"),
        ]
    });
    let script = probe_script(&[
        (
            "errno42",
            format!("{} 0", nr(libc::SYS_sched_get_priority_max)),
        ),
        (
            "errno_default",
            format!("{} 99 0 0", nr(libc::SYS_ioprio_set)),
        ),
        (
            "kill_process",
            format!("{} 0", nr(libc::SYS_sched_get_priority_min)),
        ),
        (
            "kill_thread",
            format!("{} 0 0", nr(libc::SYS_sched_getparam)),
        ),
        ("kill", format!("{} 99 0 0", nr(libc::SYS_syslog))),
        (
            "trap_dies",
            format!("{} 0 0", nr(libc::SYS_sched_rr_get_interval)),
        ),
        (
            "trap_caught",
            format!("-t {} 0 0", nr(libc::SYS_sched_rr_get_interval)),
        ),
        ("log", format!("{} 99 0", nr(libc::SYS_ioprio_get))),
        ("trace", format!("{} 0", nr(libc::SYS_sched_getscheduler))),
        ("allow", format!("{} 99 0", nr(libc::SYS_getpriority))),
        ("default_allow", format!("{} 999999", nr(libc::SYS_getsid))),
    ]);
    let out = c.sh_ok(&script);
    check_probes(
        &out,
        &[
            ("errno42", "errno=42"),
            ("errno_default", "errno=1"),
            ("kill_process", "exit=159"),
            ("kill_thread", "exit=159"),
            ("kill", "exit=159"),
            ("trap_dies", "exit=159"),
            (
                "trap_caught",
                &format!("trap nr={} data=0", libc::SYS_sched_rr_get_interval),
            ),
            // LOG allows the call: the kernel's own EINVAL for a bad `which`.
            ("log", "errno=22"),
            // TRACE with no tracer attached: ENOSYS, whatever errnoRet says.
            ("trace", "errno=38"),
            ("allow", "errno=22"),
            ("default_allow", "errno=3"),
        ],
    );
}

#[test]
fn every_operator_and_multi_argument_rules() {
    let mut c = Ctx::new("sec_ops");
    need_sc!(c);
    let cond = |index: u32, op: &str, value: u64| json!({"index": index, "op": op, "value": value});
    let errno_rule = |name: &str, errno: u32, args: Value| json!({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno, "args": args});
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            errno_rule("fsync", 60, json!([cond(0, "SCMP_CMP_EQ", 100)])),
            errno_rule("fdatasync", 61, json!([cond(0, "SCMP_CMP_NE", 100)])),
            errno_rule("syncfs", 62, json!([cond(0, "SCMP_CMP_LT", 100)])),
            errno_rule("sched_get_priority_max", 63, json!([cond(0, "SCMP_CMP_LE", 100)])),
            errno_rule("sched_get_priority_min", 64, json!([cond(0, "SCMP_CMP_GE", 100)])),
            errno_rule("getsid", 65, json!([cond(0, "SCMP_CMP_GT", 100)])),
            errno_rule("getpgid", 66,
                json!([{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": 0xF0, "valueTwo": 0x30}])),
            // Two arguments, AND-ed.
            errno_rule("fadvise64", 67,
                json!([cond(0, "SCMP_CMP_EQ", 100), cond(3, "SCMP_CMP_EQ", 4)])),
            // Three arguments, AND-ed, including a 64-bit value.
            errno_rule("ioprio_get", 68, json!([
                cond(0, "SCMP_CMP_EQ", 7), cond(1, "SCMP_CMP_GE", 0x1_0000_0000u64),
                cond(2, "SCMP_CMP_NE", 5)
            ])),
        ]
    });
    let p = |tag: &'static str, n: libc::c_long, args: &str| (tag, format!("{n} {args}"));
    let script = probe_script(&[
        p("eq_hit", libc::SYS_fsync, "100"),
        p("eq_miss", libc::SYS_fsync, "101"),
        // The kernel sees fd 100 (an int), the filter the whole 64-bit register.
        p("eq_high", libc::SYS_fsync, "0x100000064"),
        p("ne_hit", libc::SYS_fdatasync, "5000"),
        p("ne_miss", libc::SYS_fdatasync, "100"),
        p("lt_hit", libc::SYS_syncfs, "99"),
        p("lt_miss", libc::SYS_syncfs, "100"),
        p("le_hit", libc::SYS_sched_get_priority_max, "100"),
        p("le_miss", libc::SYS_sched_get_priority_max, "101"),
        p("le_high", libc::SYS_sched_get_priority_max, "0x100000000"),
        p("ge_hit", libc::SYS_sched_get_priority_min, "100"),
        p("ge_miss", libc::SYS_sched_get_priority_min, "99"),
        p("gt_hit", libc::SYS_getsid, "101"),
        p("gt_miss", libc::SYS_getsid, "100"),
        p("gt_high", libc::SYS_getsid, "0x100000000"),
        p("masked_hit", libc::SYS_getpgid, "0x35"),
        p("masked_miss", libc::SYS_getpgid, "0x45"),
        p("multi_hit", libc::SYS_fadvise64, "100 0 0 4"),
        p("multi_miss_a", libc::SYS_fadvise64, "100 0 0 3"),
        p("multi_miss_b", libc::SYS_fadvise64, "101 0 0 4"),
        p("three_hit", libc::SYS_ioprio_get, "7 0x100000001 0"),
        p("three_miss_a", libc::SYS_ioprio_get, "7 0xffffffff 0"),
        p("three_miss_b", libc::SYS_ioprio_get, "7 0x100000001 5"),
    ]);
    let out = c.sh_ok(&script);
    check_probes(
        &out,
        &[
            ("eq_hit", "errno=60"),
            ("eq_miss", "errno=9"),
            ("eq_high", "errno=9"),
            ("ne_hit", "errno=61"),
            ("ne_miss", "errno=9"),
            ("lt_hit", "errno=62"),
            ("lt_miss", "errno=9"),
            ("le_hit", "errno=63"),
            ("le_miss", "errno=22"),
            // The filter compares all 64 bits (no match); the kernel takes policy 0.
            ("le_high", "ret=0"),
            ("ge_hit", "errno=64"),
            ("ge_miss", "errno=22"),
            ("gt_hit", "errno=65"),
            ("gt_miss", "errno=3"),
            ("gt_high", "errno=65"),
            ("masked_hit", "errno=66"),
            ("masked_miss", "errno=3"),
            ("multi_hit", "errno=67"),
            ("multi_miss_a", "errno=9"),
            ("multi_miss_b", "errno=9"),
            ("three_hit", "errno=68"),
            ("three_miss_a", "errno=22"),
            ("three_miss_b", "errno=22"),
        ],
    );
}

#[test]
fn flags_accepted_and_filter_applies() {
    skiff_only!("runc 1.1 refuses every seccomp flag (\"not yet supported by runc\")");
    let mut c = Ctx::new("sec_flags");
    need_sc!(c);
    let flag_sets = vec![
        vec!["SECCOMP_FILTER_FLAG_LOG"],
        vec!["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        vec!["SECCOMP_FILTER_FLAG_TSYNC"],
        vec![
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC",
        ],
        vec!["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    ];
    for flags in flag_sets {
        c.id = c.new_id();
        c.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": flags,
            "syscalls": [{"names": ["sched_get_priority_max"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]
        });
        let out = c.run_sh(&probe_script(&[(
            "probe",
            format!("{} 0", nr(libc::SYS_sched_get_priority_max)),
        )]));
        out.ok();
        check_probes(&out.stdout, &[("probe", "errno=42")]);
    }
    c.id = c.new_id();
    c.spec["linux"]["seccomp"]["flags"] = json!(["SECCOMP_FILTER_FLAG_BOGUS"]);
    c.run_sh("true")
        .fails_with("SECCOMP_FILTER_FLAG_BOGUS", None);
}

#[test]
fn bad_profiles_refused() {
    let mut c = Ctx::new("sec_bad");
    if is_skiff() {
        // errnoRet with an action that has no errno (runtime-spec: MUST fail). runc 1.1
        // ignores errnoRet here and hangs with this profile.
        c.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]
        });
        c.run_sh("true").fails_with("errnoRet", None);
        c.id = c.new_id();
    }
    c.spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"});
    c.run_sh("true").fails_with("SCMP_ACT_BOGUS", None);
    c.id = c.new_id();
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "op": "SCMP_CMP_BOGUS", "value": 1}]}]
    });
    c.run_sh("true").fails_with("SCMP_CMP_BOGUS", None);
}

// ---------------------------------------------------------------------------------------------
// NOTIFY: a seccomp agent

const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;

#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// What the agent answers to one notification.
enum Reply {
    Val(i64),
    Errno(i32),
    Continue,
    /// Keep the caller blocked until `Agent::release`, then let it continue.
    Hold,
}

#[derive(Debug, Clone)]
struct Notice {
    conn: usize,
    pid: u32,
    nr: i32,
    args: [u64; 6],
}

/// One connection to the listener: what arrived on it.
#[derive(Debug, Clone)]
struct Conn {
    cmsgs: usize,
    fds: usize,
    text: String,
}

#[derive(Default)]
struct AgentLog {
    conns: Vec<Conn>,
    notices: Vec<Notice>,
    held: Vec<Notice>,
    errors: Vec<String>,
}

type Handler = Box<dyn FnMut(&Notice) -> Reply + Send>;

/// A seccomp agent on a unix socket: receives listener fds with the container process state and
/// answers notifications through the seccomp ioctls.
struct Agent {
    path: PathBuf,
    log: Arc<Mutex<AgentLog>>,
    stop: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    fn start(path: PathBuf, handler: Handler) -> Agent {
        let listener = UnixListener::bind(&path).expect("bind the agent socket");
        listener.set_nonblocking(true).unwrap();
        let log = Arc::new(Mutex::new(AgentLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (l2, s2, r2) = (log.clone(), stop.clone(), release.clone());
        let thread = std::thread::spawn(move || agent_loop(listener, handler, l2, s2, r2));
        Agent {
            path,
            log,
            stop,
            release,
            thread: Some(thread),
        }
    }

    fn release(&self) {
        self.release.store(true, Ordering::SeqCst);
    }

    fn with_log<T>(&self, f: impl FnOnce(&AgentLog) -> T) -> T {
        f(&self.log.lock().unwrap())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.release.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

fn receive_conn(listener: &UnixListener) -> Option<Result<(Conn, Vec<OwnedFd>), String>> {
    let (stream, _) = listener.accept().ok()?;
    Some((|| {
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut data = vec![0u8; 65536];
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut space = nix::cmsg_space!([RawFd; 8]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("recvmsg: {e}"))?;
        let mut fds = Vec::new();
        let mut cmsgs = 0;
        for m in msg.cmsgs().map_err(|e| e.to_string())? {
            cmsgs += 1;
            if let ControlMessageOwned::ScmRights(f) = m {
                // SAFETY: the kernel just installed these fds for us; we own them now.
                fds.extend(f.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        let n = msg.bytes;
        let mut bytes = data[..n].to_vec();
        // The rest of the state, if the runtime used several sendmsg calls, up to EOF.
        (&stream)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("read: {e}"))?;
        let conn = Conn {
            cmsgs,
            fds: fds.len(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        };
        Ok((conn, fds))
    })())
}

fn agent_loop(
    listener: UnixListener,
    mut handler: Handler,
    log: Arc<Mutex<AgentLog>>,
    stop: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
) {
    // (connection index, listener fd)
    let mut notifs: Vec<(usize, OwnedFd)> = Vec::new();
    let mut held: Vec<(RawFd, u64)> = Vec::new();
    let respond = |fd: RawFd, id: u64, reply: &Reply| {
        let mut resp = SeccompNotifResp {
            id,
            ..Default::default()
        };
        match reply {
            Reply::Val(v) => resp.val = *v,
            Reply::Errno(e) => resp.error = -e,
            Reply::Continue | Reply::Hold => resp.flags = USER_NOTIF_FLAG_CONTINUE,
        }
        // SAFETY: a valid notify fd and a response struct of the kernel's layout.
        unsafe { libc::ioctl(fd, NOTIF_SEND, &mut resp) };
    };
    loop {
        if release.load(Ordering::SeqCst) {
            for (fd, id) in held.drain(..) {
                respond(fd, id, &Reply::Continue);
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut pfds = vec![libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for (_, fd) in &notifs {
            pfds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 20) };
        if n <= 0 {
            continue;
        }
        if pfds[0].revents & libc::POLLIN != 0 {
            match receive_conn(&listener) {
                Some(Ok((conn, mut fds))) => {
                    let mut l = log.lock().unwrap();
                    let idx = l.conns.len();
                    l.conns.push(conn);
                    if let Some(fd) = fds.pop() {
                        notifs.push((idx, fd));
                    }
                }
                Some(Err(e)) => log.lock().unwrap().errors.push(e),
                None => {}
            }
        }
        let mut gone = Vec::new();
        for (i, p) in pfds.iter().enumerate().skip(1) {
            let (conn, fd) = (notifs[i - 1].0, notifs[i - 1].1.as_raw_fd());
            if p.revents & libc::POLLIN != 0 {
                let mut req = SeccompNotif::default();
                // SAFETY: a valid notify fd and a zeroed struct of the kernel's layout.
                if unsafe { libc::ioctl(fd, NOTIF_RECV, &mut req) } < 0 {
                    continue; // the caller died meanwhile
                }
                let notice = Notice {
                    conn,
                    pid: req.pid,
                    nr: req.data.nr,
                    args: req.data.args,
                };
                let reply = handler(&notice);
                let mut l = log.lock().unwrap();
                l.notices.push(notice.clone());
                if matches!(reply, Reply::Hold) && !release.load(Ordering::SeqCst) {
                    l.held.push(notice);
                    held.push((fd, req.id));
                } else {
                    respond(fd, req.id, &reply);
                }
            } else if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                gone.push(i - 1);
            }
        }
        for i in gone.into_iter().rev() {
            let fd = notifs[i].1.as_raw_fd();
            held.retain(|(f, _)| *f != fd);
            notifs.remove(i);
        }
    }
}

#[test]
fn notify_agent_gets_state_and_answers() {
    skiff_only!("runc 1.1.5 answers ENOSYS to notified calls here");
    let mut c = Ctx::new("sec_notify");
    need_sc!(c);
    let sock = c.path("agent.sock");
    let agent = Agent::start(
        sock.clone(),
        Box::new(|n: &Notice| {
            if n.args[0] == 7 {
                Reply::Errno(libc::EACCES)
            } else {
                Reply::Val(1000 + n.args[0] as i64)
            }
        }),
    );
    c.spec["annotations"] = json!({"sec.test": "yes"});
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "listenerMetadata": "agent-metadata-42",
        "syscalls": [
            {"names": ["sched_get_priority_max"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["sched_get_priority_min"], "action": "SCMP_ACT_ERRNO", "errnoRet": 50}
        ]
    });
    let n = libc::SYS_sched_get_priority_max;
    let out = c.sh_ok(&probe_script(&[
        ("val", format!("{n} 5")),
        ("err", format!("{n} 7")),
        ("other", format!("{} 5", libc::SYS_sched_get_priority_min)),
    ]));
    check_probes(
        &out,
        &[
            ("val", "ret=1005"),
            ("err", "errno=13"),
            ("other", "errno=50"),
        ],
    );
    let (conns, notices, errors) =
        agent.with_log(|l| (l.conns.clone(), l.notices.clone(), l.errors.clone()));
    assert!(errors.is_empty(), "agent errors: {errors:?}");
    assert_eq!(conns.len(), 1, "one connection per listener: {conns:?}");
    let conn = &conns[0];
    assert_eq!((conn.cmsgs, conn.fds), (1, 1), "exactly one fd: {conn:?}");
    let st: Value = serde_json::from_str(&conn.text)
        .unwrap_or_else(|e| panic!("state is not one JSON document ({e}): {}", conn.text));
    assert!(st["ociVersion"].is_string(), "{st}");
    assert_eq!(st["fds"], json!(["seccompFd"]), "{st}");
    assert_eq!(st["metadata"], "agent-metadata-42", "{st}");
    let pid = st["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{st}");
    assert_eq!(st["state"]["id"], c.id.as_str(), "{st}");
    assert_eq!(st["state"]["pid"].as_i64(), Some(pid), "{st}");
    assert_eq!(
        st["state"]["bundle"].as_str().map(PathBuf::from),
        Some(c.bundle.clone()),
        "{st}"
    );
    assert_eq!(st["state"]["annotations"]["sec.test"], "yes", "{st}");
    assert!(st["state"]["status"].is_string(), "{st}");
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices.iter().all(|x| x.nr == n as i32), "{notices:?}");
    drop(agent);
}

#[test]
fn notify_listener_path_missing_fails() {
    let mut c = Ctx::new("sec_notify_nopath");
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": c.path("nobody-listens").to_str().unwrap(),
        "syscalls": [{"names": ["sched_get_priority_max"], "action": "SCMP_ACT_NOTIFY"}]
    });
    c.run_sh("true").fails_with("nobody-listens", None);
    c.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// CVE-2019-5736 class

/// Attack `/proc/$P/...` of the process whose pid (in the container) is in $P; prints one
/// `name-ok` or `name-denied` per attempt.
const EXE_ATTACK: &str =
    "a() { if eval \"$2\" 2>/dev/null; then echo $1-ok; else echo $1-denied; fi; }; \
    a read 'cat /proc/$P/exe >/dev/null'; \
    a link 'readlink /proc/$P/exe >/dev/null'; \
    a write '(exec 3>>/proc/$P/exe)'; \
    a fd 'readlink /proc/$P/fd/0 >/dev/null'; \
    a cwd 'readlink /proc/$P/cwd >/dev/null'; \
    a environ 'cat /proc/$P/environ >/dev/null'; \
    a mem 'dd if=/proc/$P/mem bs=1 count=1 skip=4096 >/dev/null'; \
    echo attack-done";

/// skiff's protection is that the process is non-dumpable: nothing of it is reachable. runc's
/// is a sealed memfd copy of itself: readable, but never writable.
#[track_caller]
fn assert_all_denied(out: &str) {
    assert!(out.contains("attack-done"), "{out}");
    assert!(out.contains("write-denied"), "{out}");
    if is_skiff() {
        let ok: Vec<&str> = out.lines().filter(|l| l.ends_with("-ok")).collect();
        assert!(
            ok.is_empty(),
            "the runtime's process was reachable: {ok:?}\n{out}"
        );
    }
}

fn digest(p: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    fs::read(p).expect("read binary").hash(&mut h);
    h.finish()
}

#[test]
fn created_init_is_not_inspectable() {
    let mut c = Ctx::new("sec_created");
    let before = digest(&runtime());
    let init = c.create_ok();
    // A second container in the created container's pid namespace: its pid 1 is the runtime's
    // waiting init, still a copy of the runtime binary.
    let other = c.new_id();
    c.set_namespace("pid", Some(&format!("/proc/{init}/ns/pid")));
    c.spec["process"]["args"] = json!(["sh", "-c", format!("P=1; {EXE_ATTACK}")]);
    let out = c.run_id(&other, &[]);
    out.ok();
    assert_all_denied(&out.stdout);
    assert_eq!(digest(&runtime()), before, "the runtime binary changed");
    assert_eq!(c.status(&c.id), "created");
}

/// The exec child is held right before its execve (a NOTIFY rule on execve answered later),
/// still a copy of the runtime; a second exec attacks it through /proc.
#[test]
fn exec_child_is_not_inspectable() {
    held_exec_child_attack(false);
}

/// With CAP_SYS_PTRACE the container does reach the held exec child's /proc files: its root
/// and cwd must be the container's, it must hold no host fd, and its exe must not be writable.
#[test]
fn exec_child_gives_a_ptrace_capable_container_nothing_of_the_host() {
    held_exec_child_attack(true);
}

fn held_exec_child_attack(ptrace: bool) {
    skiff_only!("needs a working NOTIFY hand-over, which runc 1.1.5 lacks here");
    let mut c = Ctx::new(if ptrace {
        "sec_execchild_pt"
    } else {
        "sec_execchild"
    });
    let marker = c.path("host-only-marker");
    fs::write(&marker, "").unwrap();
    if ptrace {
        add_ptrace(&mut c);
    }
    let before = digest(&runtime());
    let sock = c.path("agent.sock");
    // Hold the first execve seen on the second listener (the first exec's).
    let mut held_one = false;
    let agent = Agent::start(
        sock.clone(),
        Box::new(move |n: &Notice| {
            if n.conn == 1 && !held_one {
                held_one = true;
                Reply::Hold
            } else {
                Reply::Continue
            }
        }),
    );
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}]
    });
    running_with(&mut c);
    let (o, e) = (c.path("victim.out"), c.path("victim.err"));
    let mut victim = c
        .command(&["exec", &c.id, "true"])
        .stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let held = wait_for(
        Duration::from_secs(10),
        "the exec child's held execve",
        || agent.with_log(|l| l.held.first().cloned()),
    );
    assert_eq!(held.nr as libc::c_long, libc::SYS_execve);
    let nspid = proc_status(&held.pid.to_string(), "NSpid").expect("NSpid of the exec child");
    let inner = nspid.split(' ').next_back().unwrap().to_string();
    let script = if ptrace {
        format!("P={inner}; {EXE_ATTACK}; {}", scan_script(&marker))
    } else {
        format!("P={inner}; {EXE_ATTACK}")
    };
    let attack = c.rt(&["exec", &c.id, "sh", "-c", &script]);
    agent.release();
    let st = wait_for(Duration::from_secs(20), "the victim exec", || {
        victim.try_wait().unwrap()
    });
    attack.ok();
    if ptrace {
        let out = &attack.stdout;
        assert!(
            out.contains("write-denied") && out.contains("scan-done"),
            "{out}"
        );
        let found: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.starts_with("host-root") || l.starts_with("dir-fd") || l.starts_with("path-fd")
            })
            .collect();
        assert!(
            found.is_empty(),
            "the exec child exposes the host: {found:?}"
        );
        assert!(
            out.contains("cwd-ok") || out.contains("cwd-denied"),
            "{out}"
        );
    } else {
        assert_all_denied(&attack.stdout);
    }
    assert!(
        st.success(),
        "victim exec: {}",
        fs::read_to_string(&e).unwrap()
    );
    assert_eq!(digest(&runtime()), before, "the runtime binary changed");
    drop(agent);
}

/// An exec stuck in its setup (its execve held by a NOTIFY agent that never answers) holds
/// the container's lock; `delete --force` still finishes, and the stuck exec fails.
#[test]
fn delete_force_finishes_while_an_exec_is_stuck() {
    skiff_only!("needs a working NOTIFY hand-over, which runc 1.1.5 lacks here");
    let mut c = Ctx::new("sec_stuck_exec");
    let sock = c.path("agent.sock");
    let agent = Agent::start(
        sock.clone(),
        Box::new(|n: &Notice| {
            if n.conn == 1 {
                Reply::Hold
            } else {
                Reply::Continue
            }
        }),
    );
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}]
    });
    running_with(&mut c);
    let (o, e) = (c.path("stuck.out"), c.path("stuck.err"));
    let mut stuck = c
        .command(&["exec", &c.id, "true"])
        .stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the held execve", || {
        agent.with_log(|l| l.held.first().cloned())
    });
    let t = std::time::Instant::now();
    c.delete_id(&c.id, true).ok();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "delete --force took {:?}",
        t.elapsed()
    );
    let st = wait_for(Duration::from_secs(10), "the stuck exec to end", || {
        stuck.try_wait().unwrap()
    });
    assert!(!st.success(), "the stuck exec succeeded");
    drop(agent);
}

/// Copy `bin` and the shared libraries it loads into `rootfs`, so that a container can execute
/// the host binary through /proc/self/exe (any glibc-based image can).
fn copy_with_libs(bin: &Path, rootfs: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    for word in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if word.starts_with('/') && Path::new(word).exists() {
            let dst = rootfs.join(word.trim_start_matches('/'));
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            copy_executable(Path::new(word), &dst);
        }
    }
}

/// A private copy of the runtime binary: the attack below, if it works, damages the copy only.
fn runtime_copy(c: &Ctx) -> PathBuf {
    let copy = c.path("runtime-copy");
    copy_executable(&runtime(), &copy);
    copy_with_libs(&copy, &c.rootfs_path());
    copy
}

/// The container keeps a read fd on /proc/$P/exe of the process running the runtime binary,
/// unblocks it (it waits writing its log to a fifo), and once it has exited reopens the fd for
/// writing: the original CVE-2019-5736 exploit.
const OVERWRITE_ATTACK: &str = "rm -f /tmp/go; mkfifo /tmp/logfifo; \
    while [ ! -e /tmp/go ]; do usleep 10000; done; P=$(cat /tmp/go); \
    if (: </proc/$P/exe) 2>/dev/null; then exec 3</proc/$P/exe; echo got-exe-fd; else echo exe-fd-denied; fi; \
    cat /tmp/logfifo >/dev/null; while [ -e /proc/$P ]; do usleep 10000; done; \
    if (exec 4>>/proc/self/fd/3 && echo OVERWRITTEN >&4); then echo write-ok; else echo write-denied; fi; \
    echo attack-done; sleep 600";

fn overwrite_attack(via_exec: bool) {
    let mut c = Ctx::new(if via_exec {
        "sec_selfexe_exec"
    } else {
        "sec_selfexe_init"
    });
    let rt = runtime_copy(&c);
    let before = digest(&rt);
    c.spec["root"]["readonly"] = json!(false);
    c.sh_args(OVERWRITE_ATTACK);
    c.write_spec();
    c.track(&c.id);
    let (rt2, root) = (rt.clone(), c.root.clone());
    let cmd = move |args: &[&str]| {
        let mut k = Command::new(&rt2);
        k.arg("--root").arg(&root).args(args);
        k.stdin(std::process::Stdio::null());
        k
    };
    let bundle = c.bundle.to_str().unwrap().to_string();
    let out_file = c.out_file(&c.id);
    let main_pid = c.pid_file(&c.id);
    c.exec_cmd(
        cmd(&[
            "run",
            "-d",
            "--bundle",
            &bundle,
            "--pid-file",
            main_pid.to_str().unwrap(),
            &c.id,
        ]),
        &out_file,
        &c.err_file(&c.id),
    )
    .ok();
    wait_for(Duration::from_secs(10), "the fifo", || {
        c.rootfs_path().join("tmp/logfifo").exists().then_some(())
    });
    // The runtime binary runs inside the container, blocked opening its log (the fifo).
    let victim_args = [
        "/proc/self/exe",
        "--log",
        "/tmp/logfifo",
        "state",
        "nonexistent",
    ];
    let pid_file = c.path("victim.pid");
    if via_exec {
        let mut args = vec![
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &c.id,
        ];
        args.extend_from_slice(&victim_args);
        let (o, e) = (c.path("victim.out"), c.path("victim.err"));
        c.exec_cmd(cmd(&args), &o, &e).ok();
    } else {
        let other = c.new_id();
        c.spec["process"]["args"] = json!(victim_args);
        let init = c.read_pid_file(&c.id).unwrap();
        c.set_namespace("pid", Some(&format!("/proc/{init}/ns/pid")));
        c.write_spec();
        c.track(&other);
        let (o, e) = (c.out_file(&other), c.err_file(&other));
        c.exec_cmd(
            cmd(&[
                "run",
                "-d",
                "--bundle",
                &bundle,
                "--pid-file",
                pid_file.to_str().unwrap(),
                &other,
            ]),
            &o,
            &e,
        )
        .ok();
    }
    let host_pid: i32 = wait_for(Duration::from_secs(10), "victim pid", || {
        fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    let nspid = proc_status(&host_pid.to_string(), "NSpid").unwrap_or_default();
    let inner = nspid.split(' ').next_back().unwrap_or("0").to_string();
    fs::write(c.rootfs_path().join("tmp/go"), &inner).unwrap();
    let out = wait_for(Duration::from_secs(20), "the attack", || {
        let s = fs::read_to_string(&out_file).ok()?;
        s.contains("attack-done").then_some(s)
    });
    let after = digest(&rt);
    assert!(
        !out.contains("write-ok"),
        "the container wrote the runtime binary:\n{out}"
    );
    assert_eq!(after, before, "the runtime binary changed:\n{out}");
}

#[test]
fn exec_of_proc_self_exe_cannot_overwrite_runtime() {
    overwrite_attack(true);
}

#[test]
fn init_of_proc_self_exe_cannot_overwrite_runtime() {
    overwrite_attack(false);
}

/// The container's attacker: once the test names the victim in /tmp/go, keep a read fd on
/// /proc/$P/exe, wait (on /tmp/released) for the test to let the victim exit, then try to
/// reopen that fd for writing.
const HOLD_EXE_ATTACK: &str = "rm -f /tmp/go /tmp/released; \
    while [ ! -e /tmp/go ]; do usleep 10000; done; P=$(cat /tmp/go); \
    if (: </proc/$P/exe) 2>/dev/null; then exec 3</proc/$P/exe; echo got-exe-fd; else echo exe-fd-denied; fi; \
    while [ ! -e /tmp/released ]; do usleep 10000; done; \
    while [ -e /proc/$P ]; do usleep 10000; done; \
    if (exec 4>>/proc/self/fd/3 && echo OVERWRITTEN >&4); then echo write-ok; else echo write-denied; fi; \
    echo attack-done; sleep 600";

/// A pipe whose buffer is full: a process writing to it blocks until it is drained.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .expect("pipe2");
    let chunk = [b'x'; 4096];
    while nix::unistd::write(&w, &chunk).is_ok() {}
    // The writer blocks from now on (a non-blocking one would fail with EAGAIN and go).
    nix::fcntl::fcntl(
        w.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .expect("F_SETFL");
    (r, w)
}

/// The admin's `exec` runs a program that the container has turned into the runtime binary
/// (`interp` is written to /victim and friends before). The process that results is blocked
/// writing its complaint to a full stderr pipe while the container grabs /proc/$P/exe; once it
/// has exited, the container tries to write the binary through that handle. Whatever the
/// script, the binary must stay as it was: the runtime never runs, in a process the container
/// can see or become, from a path that can be opened for writing.
fn exec_variant_attack(name: &str, files: &[(&str, &[u8])], args: &[&str]) {
    let mut c = Ctx::new(name);
    let rt = runtime_copy(&c);
    let before = digest(&rt);
    c.spec["root"]["readonly"] = json!(false);
    c.sh_args(HOLD_EXE_ATTACK);
    for (path, text) in files {
        let p = c.rootfs_path().join(path.trim_start_matches('/'));
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    c.write_spec();
    c.track(&c.id);
    let run = |args: &[&str], out: &Path, err: &Path| {
        let mut k = Command::new(&rt);
        k.arg("--root").arg(&c.root).args(args);
        k.stdin(std::process::Stdio::null());
        c.exec_cmd(k, out, err)
    };
    let bundle = c.bundle.to_str().unwrap().to_string();
    let out_file = c.out_file(&c.id);
    run(
        &["run", "-d", "--bundle", &bundle, &c.id],
        &out_file,
        &c.err_file(&c.id),
    )
    .ok();
    // The victim's stdout and stderr: a full pipe, so it blocks at its first word.
    let (drain, full) = full_pipe();
    let pid_file = c.path("victim.pid");
    let mut victim_args = vec![
        "--root",
        c.root.to_str().unwrap(),
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
    ];
    victim_args.extend_from_slice(args);
    let full2 = full.try_clone().unwrap();
    let mut exec = Command::new(&rt)
        .args(&victim_args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(full))
        .stderr(std::process::Stdio::from(full2))
        .spawn()
        .unwrap();
    // `exec -d` itself writes nothing when it succeeds; one that fails blocks on the full pipe
    // with its error: give up, unblock it, and show why.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(st) = exec.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = exec.kill();
            let _ = exec.wait();
            panic!("exec of the victim did not return (it failed, blocked writing its error)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "exec of the victim failed: {st}");
    let host_pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let nspid = proc_status(&host_pid.to_string(), "NSpid").unwrap_or_default();
    let inner = nspid.split(' ').next_back().unwrap_or("0").to_string();
    fs::write(c.rootfs_path().join("tmp/go"), &inner).unwrap();
    wait_for(Duration::from_secs(10), "the attacker's exe fd", || {
        fs::read_to_string(&out_file)
            .ok()?
            .contains("exe-fd")
            .then_some(())
    });
    // Let the victim write and exit.
    let mut drain = File::from(drain);
    nix::fcntl::fcntl(
        drain.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    let mut sink = Vec::new();
    let _ = drain.read_to_end(&mut sink);
    fs::write(c.rootfs_path().join("tmp/released"), "").unwrap();
    let out = wait_for(Duration::from_secs(20), "the attack", || {
        let s = fs::read_to_string(&out_file).ok()?;
        s.contains("attack-done").then_some(s)
    });
    // The attack reached the point that matters: a handle on the binary the victim ran.
    assert!(out.contains("got-exe-fd"), "{out}");
    assert!(
        !out.contains("write-ok"),
        "the container wrote the runtime binary:\n{out}"
    );
    assert_eq!(digest(&rt), before, "the runtime binary changed:\n{out}");
}

#[test]
fn exec_of_the_runtime_binary_cannot_overwrite_it() {
    exec_variant_attack(
        "sec_variant_direct",
        &[],
        &["/proc/self/exe", "state", "nonexistent"],
    );
}

#[test]
fn exec_of_a_script_interpreted_by_the_runtime_binary_cannot_overwrite_it() {
    exec_variant_attack(
        "sec_variant_script",
        &[("/victim", b"#!/proc/self/exe\n")],
        &["/victim"],
    );
}

// Shapes a line parser gets wrong and the kernel does not: a non-UTF-8 argument, a NUL right
// after the interpreter, and the deepest chain of interpreters the kernel follows.

#[test]
fn shebang_with_a_non_utf8_argument_cannot_overwrite_the_runtime() {
    exec_variant_attack(
        "sec_variant_utf8",
        &[("/victim", b"#!/proc/self/exe \xff\n")],
        &["/victim"],
    );
}

#[test]
fn shebang_with_a_nul_cannot_overwrite_the_runtime() {
    exec_variant_attack(
        "sec_variant_nul",
        &[("/victim", b"#!/proc/self/exe\0ignored\n")],
        &["/victim"],
    );
}

#[test]
fn chain_of_interpreters_cannot_overwrite_the_runtime() {
    exec_variant_attack(
        "sec_variant_chain",
        &[
            ("/victim", b"#!/s2\n"),
            ("/s2", b"#!/s3\n"),
            ("/s3", b"#!/s4\n"),
            ("/s4", b"#!/proc/self/exe\n"),
        ],
        &["/victim"],
    );
}

// ---------------------------------------------------------------------------------------------
// CVE-2024-21626 class

/// Open `path` without O_CLOEXEC as fd `to` in the runtime command (the caller's leaked fds).
fn leak_fd(cmd: &mut Command, path: &str, to: RawFd) {
    let f = File::open(path).unwrap();
    // A source fd far above every target, so that one leak never overwrites another's source.
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we own.
    let from = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 500) };
    assert!(
        from >= 500,
        "F_DUPFD_CLOEXEC: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `from` was just returned to us and is owned by nothing else.
    let keep = Arc::new(unsafe { OwnedFd::from_raw_fd(from) });
    // SAFETY: only async-signal-safe dup2 between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            let _keep = &keep;
            if libc::dup2(from, to) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn no_caller_fd_reaches_the_container() {
    let mut c = Ctx::new("sec_fds");
    // ls of /proc/self/fd opens the directory itself: 3.
    c.sh_args("ls /proc/self/fd | tr '\\n' ' '; echo; readlink /proc/self/cwd");
    let id = c.id.clone();
    let out = c.run_with(&id, &[], |cmd| {
        leak_fd(cmd, "/sys/fs/cgroup", 7);
        leak_fd(cmd, "/", 12);
        leak_fd(cmd, "/etc/hostname", 40);
    });
    out.ok();
    assert_eq!(out.lines()[0].trim(), "0 1 2 3", "{out:?}");
    assert_eq!(out.lines()[1], "/", "{out:?}");

    // With --preserve-fds 1 only fd 3 comes along.
    let id2 = c.new_id();
    let out = c.run_with(&id2, &["--preserve-fds", "1"], |cmd| {
        leak_fd(cmd, "/etc/hostname", 3);
        leak_fd(cmd, "/sys/fs/cgroup", 7);
    });
    out.ok();
    assert_eq!(out.lines()[0].trim(), "0 1 2 3 4", "{out:?}");

    // exec: the same for the new process.
    c.id = c.new_id();
    running_with(&mut c);
    let out = c.rt_with(
        &[
            "exec",
            &c.id,
            "sh",
            "-c",
            "ls /proc/self/fd | tr '\\n' ' '; echo; readlink /proc/self/cwd",
        ],
        |cmd| {
            leak_fd(cmd, "/sys/fs/cgroup", 7);
            leak_fd(cmd, "/", 12);
        },
    );
    out.ok();
    assert_eq!(out.lines()[0].trim(), "0 1 2 3", "{out:?}");
    assert_eq!(out.lines()[1], "/", "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// A container with CAP_SYS_PTRACE (a common --cap-add): the runtime's processes that it can see
// are reachable through /proc/PID/{root,cwd,fd,exe} despite being non-dumpable, so they must
// hold nothing of the host's.

/// Give the container CAP_SYS_PTRACE on top of the base capabilities.
fn add_ptrace(c: &mut Ctx) {
    for set in ["bounding", "effective", "permitted"] {
        let list = c.spec["process"]["capabilities"][set]
            .as_array_mut()
            .expect("capability list");
        list.push(json!("CAP_SYS_PTRACE"));
    }
}

/// Lists, for every process in the pid namespace but the shell's own, its fds that are
/// directories or name a path (`dir-fd P N TARGET`, `path-fd P N TARGET`), and its root when it
/// shows the marker file only the host's root has (`host-root P`). Ends with `scan-done`.
fn scan_script(marker: &Path) -> String {
    format!(
        "for p in $(ls /proc | grep -E '^[0-9]+$'); do [ $p = $$ ] && continue; \
           [ -e /proc/$p/root{marker} ] && echo host-root $p; \
           for f in /proc/$p/fd/*; do n=${{f##*/}}; [ $n -lt 3 ] && continue; \
             t=$(readlink $f 2>/dev/null) || continue; \
             [ -d $f ] && echo dir-fd $p $n $t; \
             case $t in /*) echo path-fd $p $n $t;; esac; done; done; echo scan-done",
        marker = marker.display()
    )
}

#[test]
fn created_init_holds_no_host_fd() {
    let mut c = Ctx::new("sec_created_fds");
    let marker = c.path("host-only-marker");
    fs::write(&marker, "").unwrap();
    c.write_spec();
    c.track(&c.id.clone());
    // The caller hands create fds it did not mean for the container.
    let bundle = c.bundle.to_str().unwrap().to_string();
    let pid_file = c.pid_file(&c.id);
    let mut cmd = c.command(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id.clone(),
    ]);
    leak_fd(&mut cmd, "/sys/fs/cgroup", 7);
    leak_fd(&mut cmd, "/", 12);
    c.exec_cmd(cmd, &c.out_file(&c.id), &c.err_file(&c.id)).ok();
    let init = c.read_pid_file(&c.id).expect("pid file");
    c.track_pid(init);
    // Another container in the created one's pid namespace, with CAP_SYS_PTRACE.
    let other = c.new_id();
    c.set_namespace("pid", Some(&format!("/proc/{init}/ns/pid")));
    add_ptrace(&mut c);
    c.sh_args(&scan_script(&marker));
    let out = c.run_id(&other, &[]);
    out.ok();
    assert!(out.stdout.contains("scan-done"), "{out:?}");
    // runc's created init keeps an O_PATH fd of its exec.fifo (a file in the state dir, not
    // a directory): only skiff is held to "no host path at all".
    let found: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with("scan-done") && (is_skiff() || !l.starts_with("path-fd")))
        .collect();
    assert!(
        found.is_empty(),
        "the created init exposes the host: {found:?}"
    );
    assert_eq!(c.status(&c.id), "created");
}

/// An exec into a paused container (`--ignore-paused`) is frozen the moment it joins the
/// container's cgroups. If that happened while it stood in the container's pid namespace but
/// still in the host's mount namespace, a container sharing that pid namespace with
/// CAP_SYS_PTRACE would read and write the host's root through /proc/PID/root.
#[test]
fn exec_never_shows_the_host_root_or_fds() {
    let mut c = Ctx::new("sec_exec_root");
    let marker = c.path("host-only-marker");
    fs::write(&marker, "").unwrap();
    c.set_args(&["sleep", "1000"]);
    let init = c.create_ok();
    c.start().ok();
    c.rt(&["pause", &c.id]).ok();
    let (o, e) = (c.path("exec.out"), c.path("exec.err"));
    let mut exec = c
        .command(&["exec", "--ignore-paused", &c.id, "true"])
        .stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap())
        .spawn()
        .unwrap();
    // Give the exec time to reach the freezer.
    std::thread::sleep(Duration::from_millis(500));
    let other = c.new_id();
    c.set_namespace("pid", Some(&format!("/proc/{init}/ns/pid")));
    add_ptrace(&mut c);
    c.sh_args(&scan_script(&marker));
    let out = c.run_id(&other, &[]);
    c.rt(&["resume", &c.id]).ok();
    let st = wait_for(Duration::from_secs(20), "the exec", || {
        exec.try_wait().unwrap()
    });
    out.ok();
    assert!(out.stdout.contains("scan-done"), "{out:?}");
    let found: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with("scan-done"))
        .collect();
    assert!(
        found.is_empty(),
        "a process in the container's pid namespace exposes the host: {found:?}"
    );
    assert!(st.success(), "exec: {}", fs::read_to_string(&e).unwrap());
}

/// A read-only bind whose destination lies in a directory shared with someone hostile (here a
/// thread of the test, standing for another container on the same volume), who keeps
/// swapping an ancestor of the destination with a symlink to a decoy mount. Wherever the bind
/// lands, it must be read-only: its flags belong to the mount, not to a path looked up again.
#[test]
fn ro_bind_stays_read_only_when_its_path_is_swapped() {
    let mut c = Ctx::new("sec_ro_swap");
    let (shared, decoy, ro_src) = (c.path("shared"), c.path("decoy"), c.path("ro-src"));
    for d in [&shared, &decoy, &ro_src] {
        fs::create_dir_all(d).unwrap();
    }
    fs::create_dir_all(shared.join("a/ro")).unwrap();
    fs::write(ro_src.join("r-marker"), "").unwrap();
    symlink("/", shared.join("a-link")).unwrap();
    let bind = |src: &Path, dst: &str, opts: &[&str]| json!({"destination": dst, "type": "bind", "source": src.to_str().unwrap(), "options": opts});
    c.add_mount(bind(&shared, "/shared", &["rbind", "rw"]));
    c.add_mount(bind(&decoy, "/ro", &["rbind", "rw"]));
    c.add_mount(bind(&ro_src, "/shared/a/ro", &["rbind", "ro"]));
    // Wherever the read-only source shows up, try to write into it.
    c.sh_args("for d in /shared/a/ro /ro /shared/a-link/ro; do [ -e $d/r-marker ] && touch $d/written 2>/dev/null; done; true");
    c.write_spec();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, shared) = (stop.clone(), shared.clone());
        std::thread::spawn(move || {
            let (a, b) = (
                std::ffi::CString::new(shared.join("a").as_os_str().as_encoded_bytes()).unwrap(),
                std::ffi::CString::new(shared.join("a-link").as_os_str().as_encoded_bytes())
                    .unwrap(),
            );
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 with two NUL-terminated paths.
                unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
            }
        })
    };
    let (mut writable, mut failed) = (0, 0);
    for _ in 0..150 {
        let id = c.new_id();
        let out = c.run_id(&id, &[]);
        if out.code != 0 {
            failed += 1; // the swap may make a create fail: that is allowed
        }
        if ro_src.join("written").exists() {
            writable += 1;
            let _ = fs::remove_file(ro_src.join("written"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("150 creates: {writable} got the read-only bind writable, {failed} failed");
    assert_eq!(
        writable, 0,
        "the read-only bind was writable in {writable} of 150 containers"
    );
}

// ---------------------------------------------------------------------------------------------
// Symlinks in the rootfs

/// A host directory outside the rootfs the rootfs's symlinks point at; must stay empty.
fn outside_dir(c: &Ctx) -> PathBuf {
    let d = c.path("outside");
    fs::create_dir_all(&d).unwrap();
    d
}

fn dir_entries(d: &Path) -> Vec<String> {
    fs::read_dir(d)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `../` enough times to climb from anywhere in the rootfs to the host's /, then `target`.
fn escaping(target: &Path) -> String {
    format!(
        "{}{}",
        "../".repeat(32),
        target.to_str().unwrap().trim_start_matches('/')
    )
}

#[test]
fn mount_destination_symlinks_stay_inside() {
    let mut c = Ctx::new("sec_mnt_symlink");
    let outside = outside_dir(&c);
    let rootfs = c.rootfs_path();
    symlink(&outside, rootfs.join("abs")).unwrap();
    symlink(escaping(&outside), rootfs.join("rel")).unwrap();
    symlink("/etc", rootfs.join("etclink")).unwrap();
    let etc_name = format!("skiff-sectest-{}", std::process::id());
    let host_etc_victim = Path::new("/etc").join(&etc_name);
    for (dest, tag) in [
        ("/abs/m1".to_string(), "m1"),
        ("/rel/m2".to_string(), "m2"),
        (format!("/etclink/{etc_name}"), "m3"),
    ] {
        c.add_mount(json!({"destination": dest, "type": "tmpfs", "source": tag,
                           "options": ["nosuid", "size=1m"]}));
    }
    let out = c.run_sh("cat /proc/self/mountinfo; touch /abs/m1/marker && echo touched");
    let leaked_etc = host_etc_victim.exists();
    if leaked_etc {
        let _ = fs::remove_dir(&host_etc_victim);
    }
    assert!(!leaked_etc, "a mount target was created in the host's /etc");
    assert!(
        dir_entries(&outside).is_empty(),
        "a mount target was created outside the rootfs: {:?}",
        dir_entries(&outside)
    );
    out.ok();
    // Resolved inside the rootfs: the mounts exist in the container at the symlinks' targets.
    let mounts = parse_mountinfo(&out.stdout);
    let inner = outside.to_str().unwrap();
    for (point, src) in [
        (format!("{inner}/m1"), "m1"),
        (format!("{inner}/m2"), "m2"),
        (format!("/etc/{etc_name}"), "m3"),
    ] {
        let m = find_mount(&mounts, &point)
            .unwrap_or_else(|| panic!("no mount at {point} in the container:\n{}", out.stdout));
        assert_eq!((m.fstype.as_str(), m.source.as_str()), ("tmpfs", src));
    }
    assert!(out.stdout.contains("touched"), "{out:?}");
    assert!(!outside.join("m1/marker").exists());
}

/// Without a /dev tmpfs the rootfs's own /dev is used: symlinks there must not send device
/// nodes (listed or default) to the host.
#[test]
fn device_at_symlinked_path_stays_inside() {
    let mut c = Ctx::new("sec_dev_symlink");
    let outside = outside_dir(&c);
    let dev = c.rootfs_path().join("dev");
    symlink(&outside, dev.join("sub")).unwrap();
    symlink(escaping(&outside), dev.join("rel")).unwrap();
    c.spec["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
    c.spec["linux"]["devices"] = json!([
        {"path": "/dev/sub/evil", "type": "c", "major": 1, "minor": 3, "fileMode": 438},
        {"path": "/dev/rel/evil2", "type": "c", "major": 1, "minor": 3, "fileMode": 438}
    ]);
    let out = c.run_sh("echo x > /dev/sub/evil && echo wrote");
    assert!(
        dir_entries(&outside).is_empty(),
        "a device node was made outside the rootfs: {:?}",
        dir_entries(&outside)
    );
    out.ok();
    assert!(out.stdout.contains("wrote"), "{out:?}");
    let inner = c.rootfs_path().join(outside.strip_prefix("/").unwrap());
    for name in ["evil", "evil2"] {
        let m = fs::symlink_metadata(inner.join(name))
            .unwrap_or_else(|e| panic!("device {name} inside the rootfs: {e}"));
        assert_eq!(m.rdev(), libc::makedev(1, 3));
    }
}

/// A rootfs whose /dev/null is a symlink to a host file: the default device must not replace,
/// truncate or write the host file. skiff refuses the rootfs; runc makes the node inside it.
#[test]
fn dev_null_symlink_to_host_file() {
    let mut c = Ctx::new("sec_devnull_symlink");
    let victim = c.path("victim-null");
    fs::write(&victim, "host-file").unwrap();
    symlink(&victim, c.rootfs_path().join("dev/null")).unwrap();
    c.spec["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
    let out = c.run_sh("echo x > /dev/null && echo wrote");
    let vm = fs::symlink_metadata(&victim).unwrap();
    assert!(
        vm.file_type().is_file(),
        "the host file behind /dev/null was replaced"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host-file");
    if is_skiff() {
        out.fails_with("already exists", None);
    } else {
        out.ok();
    }
}

#[test]
fn masked_and_readonly_path_symlinks_stay_inside() {
    let mut c = Ctx::new("sec_mask_symlink");
    let outside = outside_dir(&c);
    fs::write(outside.join("secret"), "host-secret").unwrap();
    // A masked path that is a symlink escaping to the host resolves inside the rootfs instead:
    // there it names the container's own /etc.
    symlink(
        escaping(Path::new("/etc")),
        c.rootfs_path().join("masklink"),
    )
    .unwrap();
    symlink(&outside, c.rootfs_path().join("rolink")).unwrap();
    let inner_outside = c.rootfs_path().join(outside.strip_prefix("/").unwrap());
    fs::create_dir_all(&inner_outside).unwrap();
    fs::write(inner_outside.join("secret"), "inner").unwrap();
    c.spec["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/masklink"));
    c.spec["linux"]["readonlyPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/rolink"));
    let out = c.run_sh(
        "echo etc=$(ls /etc | wc -l); echo y > /rolink/secret 2>/dev/null && echo ro-write-ok; \
         cat /rolink/secret; echo",
    );
    out.ok();
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "host-secret"
    );
    assert!(
        out.stdout.contains("etc=0"),
        "the masked symlink target is not masked: {out:?}"
    );
    assert!(!out.stdout.contains("ro-write-ok"), "{out:?}");
    assert!(out.stdout.contains("inner"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Isolation

#[test]
fn host_processes_invisible_and_unsignalable() {
    let mut c = Ctx::new("sec_pidns");
    let me = std::process::id();
    let out = c.sh_ok(&format!(
        "kill -0 {me} 2>/dev/null && echo signal-ok; ls -d /proc/[0-9]* | wc -l; \
         ls /proc/{me} >/dev/null 2>&1 && echo visible; true"
    ));
    assert!(!out.contains("signal-ok"), "{out}");
    assert!(!out.contains("visible"), "{out}");
    let n: usize = out.lines().next().unwrap().trim().parse().unwrap();
    assert!(n <= 4, "host processes visible: {out}");
}

#[test]
fn masked_and_readonly_paths_hold() {
    let mut c = Ctx::new("sec_masked");
    let masked: Vec<String> = c.spec["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for p in ["/proc/kcore", "/proc/keys", "/sys/firmware"] {
        assert!(
            masked.iter().any(|m| m == p),
            "{p} not in the default maskedPaths"
        );
    }
    let out = c.sh_ok(
        "echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); echo keys=$(cat /proc/keys | wc -c); \
         echo fw=$(ls -A /sys/firmware | wc -l); \
         echo h > /proc/sys/kernel/hostname 2>/dev/null && echo sys-write-ok; \
         umount /proc/kcore 2>/dev/null && echo umount-ok; \
         mount -o remount,rw /proc/sys 2>/dev/null && echo remount-ok; \
         grep -E ' /proc/(sys|sysrq-trigger|bus|irq|fs) ' /proc/self/mountinfo",
    );
    assert!(out.contains("kcore=0\n"), "{out}");
    assert!(out.contains("keys=0\n"), "{out}");
    assert!(out.contains("fw=0\n"), "{out}");
    for bad in ["sys-write-ok", "umount-ok", "remount-ok"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    let mounts = parse_mountinfo(&out);
    let ro = find_mount(&mounts, "/proc/sys").expect("/proc/sys is a readonly mount");
    assert!(ro.has_opt("ro"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// User namespaces with several ranges

#[test]
fn user_namespace_several_ranges() {
    let mut c = Ctx::new("sec_userns_ranges");
    c.set_namespace("user", None);
    c.set_namespace("network", None);
    let maps = json!([
        {"containerID": 0, "hostID": 100000, "size": 1000},
        {"containerID": 1000, "hostID": 200000, "size": 1000},
        {"containerID": 5000, "hostID": 300000, "size": 10}
    ]);
    c.spec["linux"]["uidMappings"] = maps.clone();
    c.spec["linux"]["gidMappings"] = maps;
    let files = c.rootfs_path().join("owned");
    fs::create_dir(&files).unwrap();
    fs::set_permissions(&files, fs::Permissions::from_mode(0o755)).unwrap();
    for (name, host) in [
        ("a", 100000u32),
        ("b", 200005),
        ("c", 300003),
        ("d", 400000),
    ] {
        let p = files.join(name);
        fs::write(&p, name).unwrap();
        std::os::unix::fs::chown(&p, Some(host), Some(host + 1)).unwrap();
    }
    c.spec["process"]["user"] = json!({"uid": 1005, "gid": 5003});
    let out = c.sh_ok(
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; \
         for f in a b c d; do stat -c '%n %u %g' /owned/$f; done",
    );
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let want_map = ["0 100000 1000", "1000 200000 1000", "5000 300000 10"];
    assert_eq!(&lines[0..3], want_map, "{out}");
    assert_eq!(&lines[3..6], want_map, "{out}");
    assert_eq!(&lines[6..8], ["1005", "5003"], "{out}");
    assert_eq!(
        &lines[8..12],
        [
            "/owned/a 0 1",
            "/owned/b 1005 1006",
            "/owned/c 5003 5004",
            "/owned/d 65534 65534"
        ],
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// LSM

#[test]
fn lsm_labels_refused_without_the_lsm() {
    if fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
        || Path::new("/sys/fs/selinux/enforce").exists()
    {
        eprintln!("skipped: this host runs AppArmor or SELinux");
        return;
    }
    let mut c = Ctx::new("sec_lsm");
    c.spec["process"]["apparmorProfile"] = json!("docker-default");
    c.run_sh("true").fails_with("AppArmor is not enabled", None);
    c.assert_clean();
    c.id = c.new_id();
    c.spec["process"]
        .as_object_mut()
        .unwrap()
        .remove("apparmorProfile");
    c.spec["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    c.run_sh("true").fails_with("SELinux is not enabled", None);
    c.assert_clean();
}

/// An image whose /proc or /sys is a symlink (to "/", to /proc): refused up front, naming the
/// path, before the root could become a procfs or masked paths could miss their targets.
#[test]
fn symlinked_proc_or_sys_in_the_image_is_refused() {
    for (dir, target) in [("proc", "/"), ("sys", "/proc"), ("proc", "tmp")] {
        let c = Ctx::new(&format!("sec_symlinked_{dir}"));
        let p = c.rootfs_path().join(dir);
        let _ = fs::remove_dir_all(&p);
        symlink(target, &p).unwrap();
        let out = c.create();
        out.fails_with(
            &format!("/{dir} is a symlink in the root filesystem"),
            Some(""),
        );
        assert!(
            out.stderr.contains("ordinary directory") || !is_skiff(),
            "{out:?}"
        );
        c.assert_clean();
    }
}

/// A profile that denies everything a shell does not need, the runtime's own favourites
/// included (close_range, getcwd, openat2, pidfd_*, clone3): run and exec still work, with and
/// without noNewPrivileges. The runtime's work is done before the filter; only the process's
/// execve follows it.
#[test]
fn minimal_errno_profile_runs_and_execs() {
    skiff_only!("runc 1.1 calls getcwd after installing the filter (its check of the cwd)");
    // busybox sh's own calls, plus the process setup a runtime may do after installing the
    // filter without no_new_privs (runc does its user switch and capset there).
    let allowed = [
        "arch_prctl",
        "brk",
        "clone",
        "close",
        "dup2",
        "execve",
        "exit_group",
        "exit",
        "fcntl",
        "getdents64",
        "getegid",
        "geteuid",
        "getgid",
        "getpid",
        "getppid",
        "getrandom",
        "getuid",
        "ioctl",
        "mprotect",
        "mmap",
        "munmap",
        "newfstatat",
        "fstat",
        "openat",
        "prctl",
        "prlimit64",
        "read",
        "readlink",
        "rseq",
        "rt_sigaction",
        "rt_sigreturn",
        "rt_sigprocmask",
        "sendfile",
        "set_robust_list",
        "set_tid_address",
        "uname",
        "wait4",
        "write",
        "nanosleep",
        "clock_nanosleep",
        "futex",
        "capget",
        "capset",
        "setgroups",
        "setresuid",
        "setresgid",
        "setuid",
        "setgid",
        "chdir",
        "fchdir",
        "lseek",
        "sigaltstack",
        "gettid",
        "tgkill",
        "sched_yield",
        "sched_getaffinity",
        "madvise",
        "pipe2",
        "epoll_create1",
        "epoll_ctl",
        "epoll_pwait",
        "mlock",
        "munlock",
        "getpgid",
        "setsid",
        "fstatfs",
        "statfs",
    ];
    for nnp in [true, false] {
        let mut c = Ctx::new(if nnp { "sec_min_nnp" } else { "sec_min" });
        c.spec["process"]["noNewPrivileges"] = json!(nnp);
        c.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": allowed.to_vec(), "action": "SCMP_ACT_ALLOW"}]
        });
        c.sh_args("echo ran");
        let id = c.new_id();
        let out = c.run_id(&id, &[]);
        out.ok();
        assert_eq!(out.stdout, "ran\n", "nnp {nnp}");
        running_with(&mut c);
        let out = c.rt(&["exec", &c.id, "sh", "-c", "echo exec-ran"]);
        out.ok();
        assert_eq!(out.stdout, "exec-ran\n", "nnp {nnp}");
    }
}

/// startContainer hooks run with the container's seccomp filter in place (as runc runs them),
/// in both modes, without the runtime's own work being filtered.
#[test]
fn start_container_hooks_run_under_the_filter() {
    for nnp in [true, false] {
        let mut c = Ctx::new(if nnp { "sec_hook_nnp" } else { "sec_hook" });
        c.spec["process"]["noNewPrivileges"] = json!(nnp);
        c.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        });
        c.spec["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /hook-made 2>/dev/null && echo allowed > /hook-result || echo denied > /hook-result"]}]});
        c.set_args(&["true"]);
        let id = c.new_id();
        c.run_id(&id, &[]).ok();
        let got = fs::read_to_string(c.rootfs_path().join("hook-result")).unwrap_or_default();
        assert_eq!(got, "denied\n", "nnp {nnp}");
    }
}

//! Pure tests run the compiled program in `bpf_eval`; root tests install it
//! in forked children and make real syscalls.

use std::path::PathBuf;

use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

use super::bpf_eval::{run, Data};
use super::*;

const ARCH_X86_64: u32 = 0xc000_003e;
const ARCH_I386: u32 = 0x4000_0003;
const ARCH_AARCH64: u32 = 0xc000_00b7;
const X32: u32 = 0x4000_0000;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e as u32
}

fn fixture(name: &str) -> LinuxSeccomp {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("integration/fixtures/seccomp")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn build(s: &LinuxSeccomp) -> CompiledFilter {
    compile(&SeccompPlan::from_spec(s).unwrap()).unwrap()
}

fn eval(f: &CompiledFilter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    run(f.instructions(), &Data { nr, arch, args })
}

fn native(f: &CompiledFilter, name: &str, args: [u64; 6]) -> u32 {
    let nr = Abi::X86_64.syscall_nr(name).unwrap();
    eval(f, ARCH_X86_64, nr, args)
}

const NO: [u64; 6] = [0; 6];
fn a0(v: u64) -> [u64; 6] {
    [v, 0, 0, 0, 0, 0]
}

#[test]
fn tables_are_sorted_and_know_the_abis() {
    for t in [tables::X86_64, tables::X86, tables::X32] {
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }
    assert_eq!(Abi::X86_64.syscall_nr("execve"), Some(59));
    assert_eq!(Abi::X86.syscall_nr("execve"), Some(11));
    assert_eq!(Abi::X32.syscall_nr("execve"), Some(X32 | 520));
    assert_eq!(Abi::X32.syscall_nr("getpid"), Some(X32 | 39));
    assert_eq!(Abi::X86_64.syscall_nr("cachestat"), Some(451));
    assert_eq!(Abi::X86.syscall_nr("socketcall"), Some(102));
    assert_eq!(Abi::X86_64.syscall_nr("socketcall"), None);
}

#[test]
fn docker_profile_translates_exactly() {
    let f = build(&fixture("docker.json"));
    eprintln!(
        "docker profile: {} BPF instructions",
        f.instructions().len()
    );
    assert!(
        f.instructions().len() < MAX_INSNS,
        "{}",
        f.instructions().len()
    );
    let eperm = errno(libc::EPERM);
    assert_eq!(native(&f, "read", NO), ALLOW);
    assert_eq!(native(&f, "execve", NO), ALLOW);
    assert_eq!(native(&f, "ptrace", NO), ALLOW);
    for denied in ["unshare", "mount", "keyctl", "setns", "bpf", "umount2"] {
        assert_eq!(native(&f, denied, NO), eperm, "{denied}");
    }
    assert_eq!(native(&f, "clone3", NO), errno(libc::ENOSYS));
    // Newer than anything the profile names: ENOSYS, not EPERM.
    assert_eq!(native(&f, "cachestat", NO), errno(libc::ENOSYS));
    assert_eq!(eval(&f, ARCH_X86_64, 1000, NO), errno(libc::ENOSYS));
    // personality: only the listed values, compared on 64 bits.
    assert_eq!(native(&f, "personality", a0(0)), ALLOW);
    assert_eq!(native(&f, "personality", a0(8)), ALLOW);
    assert_eq!(native(&f, "personality", a0(0xffff_ffff)), ALLOW);
    assert_eq!(native(&f, "personality", a0(1)), eperm);
    assert_eq!(native(&f, "personality", a0(0x1_0000_0000)), eperm);
    // clone: MASKED_EQ on the namespace flags.
    assert_eq!(native(&f, "clone", a0(libc::SIGCHLD as u64)), ALLOW);
    let newuser = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
    assert_eq!(native(&f, "clone", a0(newuser)), eperm);
    // The i386 ABI with its own numbers.
    assert_eq!(eval(&f, ARCH_I386, 20, NO), ALLOW); // getpid
    assert_eq!(eval(&f, ARCH_I386, 310, NO), eperm); // unshare
    assert_eq!(eval(&f, ARCH_I386, 451, NO), errno(libc::ENOSYS));
    // i386 arguments are 32 bits wide: garbage above them is ignored.
    assert_eq!(eval(&f, ARCH_I386, 136, a0(0xdead_0000_0000)), ALLOW); // personality(0)
                                                                       // x32.
    assert_eq!(eval(&f, ARCH_X86_64, X32 | 39, NO), ALLOW);
    assert_eq!(eval(&f, ARCH_X86_64, X32 | 520, NO), ALLOW); // x32 execve
    assert_eq!(eval(&f, ARCH_X86_64, X32 | 272, NO), eperm); // x32 unshare
                                                             // x32's own numbers go up to 547, so only calls above that are "newer"
                                                             // (runc computes the same per-ABI maximum).
    assert_eq!(eval(&f, ARCH_X86_64, X32 | 451, NO), eperm);
    assert_eq!(eval(&f, ARCH_X86_64, X32 | 600, NO), errno(libc::ENOSYS));
    // An arch the profile cannot cover.
    assert_eq!(eval(&f, ARCH_AARCH64, 0, NO), KILL_PROCESS);
}

#[test]
fn podman_profile_translates_exactly() {
    let f = build(&fixture("podman.json"));
    let eperm = errno(libc::EPERM);
    assert_eq!(native(&f, "read", NO), ALLOW);
    // Both allowed and denied in the profile: the more restrictive wins.
    assert_eq!(native(&f, "setns", NO), eperm);
    assert_eq!(native(&f, "bpf", NO), eperm);
    assert_eq!(native(&f, "mount", NO), ALLOW);
    // socket(AF_NETLINK, *, NETLINK_AUDIT) -> EINVAL; anything else allowed.
    let audit = [16, 3, 9, 0, 0, 0];
    assert_eq!(native(&f, "socket", audit), errno(libc::EINVAL));
    assert_eq!(native(&f, "socket", [16, 3, 0, 0, 0, 0]), ALLOW);
    assert_eq!(native(&f, "socket", [2, 2, 9, 0, 0, 0]), ALLOW);
    // defaultErrnoRet is ENOSYS already: no stub needed, same answer.
    assert_eq!(eval(&f, ARCH_X86_64, 1000, NO), errno(libc::ENOSYS));
    assert_eq!(native(&f, "cachestat", NO), errno(libc::ENOSYS));
}

#[test]
fn unlisted_abis_are_killed() {
    let f = build(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    })));
    assert_eq!(native(&f, "getpid", NO), ALLOW);
    assert_eq!(eval(&f, ARCH_I386, 20, NO), KILL_PROCESS);
    assert_eq!(eval(&f, ARCH_X86_64, X32 | 39, NO), KILL_PROCESS);
    // nr -1 (a tracer skipping a call) is a native call.
    assert_eq!(eval(&f, ARCH_X86_64, u32::MAX, NO), errno(libc::ENOSYS));
    // Without an architectures list only the native ABI is covered.
    let f = build(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW"})));
    assert_eq!(native(&f, "getpid", NO), ALLOW);
    assert_eq!(eval(&f, ARCH_I386, 20, NO), KILL_PROCESS);
}

fn one_rule(args: serde_json::Value) -> CompiledFilter {
    build(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100, "args": args}]
    })))
}

const HIT: u32 = libc::SECCOMP_RET_ERRNO | 100;

#[test]
fn every_operator_on_64_bits() {
    let big = 0x1_0000_0005u64;
    let cases: &[(&str, &[(u64, bool)])] = &[
        ("SCMP_CMP_NE", &[(big, false), (5, true), (big + 1, true)]),
        (
            "SCMP_CMP_LT",
            &[(big - 1, true), (big, false), (5, true), (big + 1, false)],
        ),
        (
            "SCMP_CMP_LE",
            &[(big, true), (big + 1, false), (0x2_0000_0000, false)],
        ),
        ("SCMP_CMP_EQ", &[(big, true), (5, false), (big + 1, false)]),
        (
            "SCMP_CMP_GE",
            &[(big, true), (big - 1, false), (0x2_0000_0000, true)],
        ),
        ("SCMP_CMP_GT", &[(big, false), (big + 1, true), (6, false)]),
    ];
    for (op, checks) in cases {
        let f = one_rule(json!([{"index": 1, "value": big, "op": op}]));
        for (v, hit) in *checks {
            let got = native(&f, "getppid", [0, *v, 0, 0, 0, 0]);
            assert_eq!(got == HIT, *hit, "{op} {v:#x}");
            if !hit {
                assert_eq!(got, ALLOW);
            }
        }
    }
    // MASKED_EQ: value is the mask, valueTwo the expected bits.
    let f = one_rule(
        json!([{"index": 2, "value": 0xff00_0000_00f0u64, "valueTwo": 0x1200_0000_0030u64, "op": "SCMP_CMP_MASKED_EQ"}]),
    );
    assert_eq!(
        native(&f, "getppid", [0, 0, 0x1200_0000_0031, 0, 0, 0]),
        HIT
    );
    assert_eq!(
        native(&f, "getppid", [0, 0, 0x1300_0000_0030, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        native(&f, "getppid", [0, 0, 0x1200_0000_0040, 0, 0, 0]),
        ALLOW
    );
}

#[test]
fn conditions_and_rules_combine() {
    // Different indexes: AND.
    let f = one_rule(json!([
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 5, "value": 2, "op": "SCMP_CMP_EQ"}
    ]));
    assert_eq!(native(&f, "getppid", [1, 0, 0, 0, 0, 2]), HIT);
    assert_eq!(native(&f, "getppid", [1, 0, 0, 0, 0, 3]), ALLOW);
    assert_eq!(native(&f, "getppid", [0, 0, 0, 0, 0, 2]), ALLOW);
    // Same index: runc makes them separate rules, OR-ed.
    let f = one_rule(json!([
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}
    ]));
    assert_eq!(native(&f, "getppid", a0(1)), HIT);
    assert_eq!(native(&f, "getppid", a0(7)), HIT);
    assert_eq!(native(&f, "getppid", a0(2)), ALLOW);
    // Several entries for one syscall and action: OR; an argument-free one
    // makes the call match whatever its arguments.
    let f = build(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100, "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100, "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100, "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100}
        ]
    })));
    assert_eq!(native(&f, "getppid", [1, 0, 0, 0, 0, 0]), HIT);
    assert_eq!(native(&f, "getppid", [0, 2, 0, 0, 0, 0]), HIT);
    assert_eq!(native(&f, "getppid", [0, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(native(&f, "getuid", NO), HIT);
}

#[test]
fn every_action_and_precedence() {
    let s = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getuid"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["geteuid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getgid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getegid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpgrp"], "action": "SCMP_ACT_TRACE", "errnoRet": 9},
            {"names": ["getsid"], "action": "SCMP_ACT_LOG"},
            {"names": ["gettid"], "action": "SCMP_ACT_NOTIFY"},
            // Allowed and killed: the kill wins, wherever it is listed.
            {"names": ["uname"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}
        ],
        "listenerPath": "/run/agent.sock"
    }));
    let plan = SeccompPlan::from_spec(&s).unwrap();
    assert!(plan.needs_listener());
    let f = compile(&plan).unwrap();
    assert!(f.has_listener());
    assert_ne!(f.flags() & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32, 0);
    assert_eq!(native(&f, "getpid", NO), ALLOW);
    assert_eq!(native(&f, "getppid", NO), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(native(&f, "getuid", NO), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(native(&f, "geteuid", NO), KILL_PROCESS);
    assert_eq!(native(&f, "getgid", NO), libc::SECCOMP_RET_TRAP);
    assert_eq!(native(&f, "getegid", NO), errno(libc::EPERM));
    assert_eq!(native(&f, "getpgrp", NO), libc::SECCOMP_RET_TRACE | 9);
    assert_eq!(native(&f, "getsid", NO), libc::SECCOMP_RET_LOG);
    assert_eq!(native(&f, "gettid", NO), libc::SECCOMP_RET_USER_NOTIF);
    assert_eq!(native(&f, "uname", a0(0)), KILL_PROCESS);
    assert_eq!(native(&f, "uname", a0(1)), ALLOW);
    // Same action kind: the first listed wins.
    assert_eq!(native(&f, "getcwd", NO), errno(1));
    assert_eq!(native(&f, "getrusage", NO), errno(13));
    // Numbered above every syscall the profile names (gettid, 186).
    assert_eq!(native(&f, "getrandom", NO), errno(libc::ENOSYS));
}

#[test]
fn enosys_rule_follows_runc() {
    let with_default = |d: serde_json::Value| {
        let mut v =
            json!({"syscalls": [{"names": ["read", "openat2"], "action": "SCMP_ACT_ALLOW"}]});
        v.as_object_mut()
            .unwrap()
            .extend(d.as_object().unwrap().clone());
        build(&profile(v))
    };
    let f = with_default(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}));
    assert_eq!(native(&f, "write", NO), KILL_PROCESS);
    assert_eq!(native(&f, "close_range", NO), KILL_PROCESS); // 436 < openat2's 437
    assert_eq!(native(&f, "cachestat", NO), errno(libc::ENOSYS));
    for allow_like in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG"] {
        let f = with_default(json!({ "defaultAction": allow_like }));
        assert_ne!(
            native(&f, "cachestat", NO),
            errno(libc::ENOSYS),
            "{allow_like}"
        );
    }
    let f = with_default(json!({"defaultAction": "SCMP_ACT_TRACE"}));
    assert_eq!(native(&f, "cachestat", NO), libc::SECCOMP_RET_TRACE | 1);
}

#[test]
fn config_errors_name_the_field() {
    let err = |v: serde_json::Value| SeccompPlan::from_spec(&profile(v)).unwrap_err().to_string();
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}));
    assert!(e.starts_with("linux.seccomp.syscalls[1].errnoRet:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}));
    assert!(e.starts_with("linux.seccomp.defaultErrnoRet:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
    assert!(e.starts_with("linux.seccomp.defaultAction:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert!(e.starts_with("linux.seccomp.listenerPath:"), "{e}");
    let e = err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
        {"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].action:") && e.contains("sendmsg"),
        "{e}"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}));
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].args[0].index:"),
        "{e}"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}));
    assert!(e.starts_with("linux.seccomp.syscalls[0].errnoRet:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}));
    assert!(e.starts_with("linux.seccomp.listenerMetadata:"), "{e}");
    // Unknown flags are refused when config.json is parsed.
    let r: Result<LinuxSeccomp, _> = serde_json::from_value(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
    );
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("SECCOMP_FILTER_FLAG_BOGUS"));
}

#[test]
fn unknown_names_are_skipped() {
    let f = build(&profile(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["no_such_syscall", "getpid"], "action": "SCMP_ACT_ALLOW"}]}),
    ));
    assert_eq!(native(&f, "getpid", NO), ALLOW);
}

#[test]
fn flags_translate() {
    let plan = SeccompPlan::from_spec(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    })))
    .unwrap();
    let f = compile(&plan).unwrap();
    // WAIT_KILLABLE_RECV only matters (and is only accepted) with a listener.
    assert_eq!(
        f.flags(),
        (libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            | libc::SECCOMP_FILTER_FLAG_TSYNC) as u32
    );
    let plan = SeccompPlan::from_spec(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    let f = compile(&plan).unwrap();
    assert_eq!(
        f.flags(),
        (libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) as u32
    );
}

#[test]
fn too_long_a_profile_is_refused() {
    let rules: Vec<_> = (0..1500)
        .map(|i| json!({"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": i, "op": "SCMP_CMP_EQ"}]}))
        .collect();
    let plan = SeccompPlan::from_spec(&profile(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules}),
    ))
    .unwrap();
    let e = compile(&plan).unwrap_err().to_string();
    assert!(e.starts_with("linux.seccomp:") && e.contains("4096"), "{e}");
}

#[test]
fn process_state_message_follows_the_spec() {
    let state = br#"{"ociVersion":"1.3.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;
    let m: serde_json::Value =
        serde_json::from_slice(&process_state_message(state, Some("meta")).unwrap()).unwrap();
    assert_eq!(m["fds"], json!(["seccompFd"]));
    assert_eq!(m["pid"], 42);
    assert_eq!(m["metadata"], "meta");
    assert_eq!(m["ociVersion"], "1.3.0");
    assert_eq!(m["state"]["id"], "c1");
}

#[test]
fn execve_denial_is_explained() {
    let plan = SeccompPlan::from_spec(&profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})))
    .unwrap();
    assert!(plan.execve_denial().unwrap().contains("execve"));
    let plan = SeccompPlan::from_spec(&fixture("docker.json")).unwrap();
    assert_eq!(plan.execve_denial(), None);
}

mod root;

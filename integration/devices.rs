//! /dev: default devices, links, linux.devices.

use crate::common::*;
use serde_json::json;

#[test]
fn default_devices_and_links() {
    let mut c = Ctx::new("dev_default");
    let out = c.sh_ok(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; \
         echo hi > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c",
    );
    let want = [
        ("/dev/null", "1:3"),
        ("/dev/zero", "1:5"),
        ("/dev/full", "1:7"),
        ("/dev/random", "1:8"),
        ("/dev/urandom", "1:9"),
        ("/dev/tty", "5:0"),
    ];
    for (path, num) in want {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{path} ")))
            .unwrap_or_else(|| panic!("{path}: {out}"));
        assert!(line.contains("character special file"), "{line}");
        assert!(line.contains(&format!(" {num} ")), "{line}");
        assert!(line.ends_with(" 666"), "{line}");
    }
    for l in [
        "pts/ptmx",
        "/proc/self/fd",
        "/proc/self/fd/0",
        "/proc/self/fd/1",
        "/proc/self/fd/2",
        "null-ok",
        "4",
    ] {
        assert!(out.lines().any(|x| x == l), "{l} missing in:\n{out}");
    }
    // No host devices leak in.
    let out = c.sh_ok("ls /dev");
    assert!(
        !out.lines()
            .any(|l| l.starts_with("sd") || l.starts_with("vd") || l == "mem" || l == "kmsg"),
        "{out}"
    );
}

#[test]
fn linux_devices() {
    let mut c = Ctx::new("dev_custom");
    c.spec["linux"]["devices"] = json!([
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 100},
        {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5}
    ]);
    let res = c.spec["linux"]["resources"]["devices"].as_array_mut();
    if let Some(r) = res {
        r.push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        r.push(json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}));
    }
    let out = c.sh_ok("stat -c '%F %t:%T %a %u %g' /dev/mynull /dev/sub/myzero; echo hi > /dev/mynull && echo w-ok; head -c 3 /dev/sub/myzero | wc -c");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "character special file 1:3 640 0 100", "{out}");
    assert!(lines[1].starts_with("character special file 1:5 "), "{out}");
    assert_eq!(&lines[2..], ["w-ok", "3"], "{out}");
}

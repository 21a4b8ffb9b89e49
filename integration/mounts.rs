//! root.readonly, mounts of every type, propagation, masked/readonly paths, symlink safety.

use crate::common::*;
use serde_json::json;
use std::ffi::CString;
use std::fs;
use std::process::Command;

/// Replace the config's mounts with an explicit list of every filesystem type.
fn all_types_mounts() -> serde_json::Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    ])
}

#[test]
fn every_filesystem_type() {
    let mut c = Ctx::new("mount_types");
    c.spec["mounts"] = all_types_mounts();
    let out = c.sh_ok("cat /proc/self/mountinfo");
    let m = parse_mountinfo(&out);
    for (point, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        let mi = find_mount(&m, point).unwrap_or_else(|| panic!("{point} not mounted:\n{out}"));
        assert_eq!(mi.fstype, fstype, "{point}");
    }
    assert!(find_mount(&m, "/sys").unwrap().has_opt("ro"));
    assert!(find_mount(&m, "/dev/shm").unwrap().has_opt("noexec"));
    assert!(find_mount(&m, "/dev/shm").unwrap().has_opt("nodev"));
    assert!(find_mount(&m, "/dev/mqueue").unwrap().has_opt("nosuid"));
    // cgroup (v1 here: a tmpfs with one mount per controller; v2: cgroup2 itself).
    assert!(
        m.iter()
            .any(|x| x.mount_point.starts_with("/sys/fs/cgroup") && x.fstype.starts_with("cgroup")),
        "no cgroup mount:\n{out}"
    );
    // Nothing of the host's mount table is visible: the first mount is our rootfs at /.
    assert_eq!(m[0].mount_point, "/", "{out}");
    assert!(!m
        .iter()
        .any(|x| x.mount_point.starts_with("/home") || x.mount_point == "/boot"));
}

/// Every cgroup hierarchy the host has under /sys/fs/cgroup is mounted at the same name inside,
/// read-only as asked, with and without a cgroup namespace; the host's symlinks (cpu ->
/// cpu,cpuacct) are recreated.
#[test]
fn cgroup_mount_shows_every_host_hierarchy() {
    let host = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let names: Vec<String> = host
        .iter()
        .filter(|m| m.fstype.starts_with("cgroup"))
        .filter_map(|m| {
            m.mount_point
                .strip_prefix("/sys/fs/cgroup/")
                .map(str::to_string)
        })
        .filter(|n| !n.contains('/'))
        .collect();
    let links: Vec<String> = fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_symlink()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for cgroupns in [true, false] {
        let mut c = Ctx::new(if cgroupns {
            "mount_cg_ns"
        } else {
            "mount_cg_host"
        });
        if cgroupns {
            c.set_namespace("cgroup", None);
        } else {
            c.remove_namespace("cgroup");
        }
        c.spec["mounts"] = all_types_mounts();
        let out = c.sh_ok("cat /proc/self/mountinfo; echo ==; ls /sys/fs/cgroup");
        let (mi, ls) = out.split_once("==\n").expect("separator");
        let inside = parse_mountinfo(mi);
        for n in &names {
            let point = format!("/sys/fs/cgroup/{n}");
            let m = find_mount(&inside, &point)
                .unwrap_or_else(|| panic!("cgroupns={cgroupns}: {point} not mounted:\n{mi}"));
            assert!(m.fstype.starts_with("cgroup"), "{point}: {}", m.fstype);
            assert!(
                m.has_opt("ro"),
                "cgroupns={cgroupns}: {point} is not read-only"
            );
        }
        for l in &links {
            assert!(
                ls.lines().any(|x| x == l),
                "cgroupns={cgroupns}: symlink {l} missing: {ls}"
            );
        }
    }
}

#[test]
fn cgroup2_mount() {
    let mut c = Ctx::new("mount_cgroup2");
    c.remove_namespace("cgroup");
    c.set_namespace("cgroup", None);
    c.add_mount(json!({"destination": "/mnt/cg2", "type": "cgroup2", "source": "cgroup2", "options": ["nosuid", "noexec", "nodev"]}));
    let out = c.sh_ok("cat /proc/self/mountinfo");
    let m = parse_mountinfo(&out);
    let mi = find_mount(&m, "/mnt/cg2").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(mi.fstype, "cgroup2");
}

#[test]
fn root_readonly() {
    let mut c = Ctx::new("root_ro");
    c.spec["root"]["readonly"] = json!(true);
    let out = c.run_sh("touch /should-fail && echo wrote; cat /proc/self/mountinfo");
    assert!(!out.stdout.contains("wrote"), "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    let m = parse_mountinfo(&out.stdout);
    assert!(
        find_mount(&m, "/")
            .unwrap()
            .options
            .iter()
            .any(|o| o == "ro"),
        "{out:?}"
    );
    assert!(!c.rootfs_path().join("should-fail").exists());

    c.spec["root"]["readonly"] = json!(false);
    c.id = c.new_id();
    c.sh_ok("touch /did-write");
    assert!(c.rootfs_path().join("did-write").exists());
}

#[test]
fn bind_rw_and_ro() {
    let mut c = Ctx::new("bind");
    let src = c.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("hello"), "from-host\n").unwrap();
    let s = src.to_str().unwrap();
    c.add_mount(
        json!({"destination": "/mnt/rw", "type": "bind", "source": s, "options": ["rbind", "rw"]}),
    );
    c.add_mount(json!({"destination": "/mnt/ro", "type": "bind", "source": s, "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
    c.add_mount(json!({"destination": "/mnt/file", "type": "none", "source": src.join("hello").to_str().unwrap(), "options": ["bind", "ro"]}));
    let out = c.run_sh(
        "cat /mnt/rw/hello /mnt/file; echo new > /mnt/rw/written; \
         echo no > /mnt/ro/nope && echo ro-wrote; cat /proc/self/mountinfo",
    );
    out.ok();
    assert!(out.stdout.starts_with("from-host\nfrom-host\n"), "{out:?}");
    assert!(!out.stdout.contains("ro-wrote"), "{out:?}");
    assert_eq!(fs::read_to_string(src.join("written")).unwrap(), "new\n");
    assert!(!src.join("nope").exists());
    let m = parse_mountinfo(&out.stdout);
    let ro = find_mount(&m, "/mnt/ro").unwrap();
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            ro.options.iter().any(|x| x == o),
            "{o} missing on /mnt/ro: {ro:?}"
        );
    }
    assert!(find_mount(&m, "/mnt/rw")
        .unwrap()
        .options
        .iter()
        .any(|x| x == "rw"));
    assert!(find_mount(&m, "/mnt/file")
        .unwrap()
        .options
        .iter()
        .any(|x| x == "ro"));
}

/// A host dir with a tmpfs mounted below it (unmounted by the harness).
fn dir_with_submount(c: &Ctx) -> std::path::PathBuf {
    let src = c.path("tree");
    fs::create_dir_all(src.join("sub")).unwrap();
    let sub = CString::new(src.join("sub").to_str().unwrap()).unwrap();
    let t = CString::new("tmpfs").unwrap();
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe { libc::mount(t.as_ptr(), sub.as_ptr(), t.as_ptr(), 0, std::ptr::null()) };
    assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    c.track_host_mount(&src.join("sub"));
    fs::write(src.join("sub/inner"), "in-submount\n").unwrap();
    src
}

#[test]
fn bind_vs_rbind_submounts() {
    let mut c = Ctx::new("rbind");
    let src = dir_with_submount(&c);
    let s = src.to_str().unwrap();
    c.add_mount(
        json!({"destination": "/mnt/bind", "type": "bind", "source": s, "options": ["bind"]}),
    );
    c.add_mount(
        json!({"destination": "/mnt/rbind", "type": "bind", "source": s, "options": ["rbind"]}),
    );
    let out = c.run_sh("cat /mnt/rbind/sub/inner; ls /mnt/bind/sub | wc -l");
    out.ok();
    assert_eq!(out.stdout, "in-submount\n0\n");
}

#[test]
fn rro_recursive_readonly() {
    let mut c = Ctx::new("rro");
    let src = dir_with_submount(&c);
    let s = src.to_str().unwrap();
    c.add_mount(json!({"destination": "/mnt/rro", "type": "bind", "source": s, "options": ["rbind", "rro"]}));
    c.add_mount(
        json!({"destination": "/mnt/ro", "type": "bind", "source": s, "options": ["rbind", "ro"]}),
    );
    let out = c.run_sh(
        "echo x > /mnt/rro/sub/f1 && echo rro-sub-wrote; echo x > /mnt/rro/f2 && echo rro-top-wrote; \
         echo x > /mnt/ro/sub/f3 && echo ro-sub-wrote; true",
    );
    out.ok();
    assert!(
        !out.stdout.contains("rro-sub-wrote"),
        "rro must make submounts read-only: {out:?}"
    );
    assert!(!out.stdout.contains("rro-top-wrote"), "{out:?}");
    // Plain ro is not recursive: the submount stays writable (this is what rro is for).
    assert!(out.stdout.contains("ro-sub-wrote"), "{out:?}");
}

#[test]
fn tmpfs_size_and_mode() {
    let mut c = Ctx::new("tmpfs_opts");
    c.add_mount(json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1770", "nosuid", "nodev", "noexec"]}));
    let out = c.sh_ok("stat -c %a /mnt/t; grep ' /mnt/t ' /proc/self/mountinfo; dd if=/dev/zero of=/mnt/t/big bs=1k count=2048 2>/dev/null || echo full");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1770", "{out}");
    let mi = &parse_mountinfo(lines[1])[0];
    assert!(mi.has_opt("size=1024k"), "{mi:?}");
    assert!(mi.has_opt("mode=1770"), "{mi:?}");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(mi.has_opt(o), "{o}: {mi:?}");
    }
    assert_eq!(
        lines.last(),
        Some(&"full"),
        "size limit not enforced: {out}"
    );
}

#[test]
fn mount_destination_created() {
    let mut c = Ctx::new("mount_mkdir");
    c.add_mount(json!({"destination": "/deep/new/dir", "type": "tmpfs", "source": "tmpfs"}));
    let out = c.sh_ok("grep -c ' /deep/new/dir ' /proc/self/mountinfo");
    assert_eq!(out, "1\n");
}

#[test]
fn symlink_cannot_escape_rootfs() {
    let mut c = Ctx::new("symlink_escape");
    let outside = c.path("outside");
    fs::create_dir(&outside).unwrap();
    let rootfs = c.rootfs_path();
    // An absolute link to a host path and a relative one climbing above the rootfs.
    std::os::unix::fs::symlink(&outside, rootfs.join("abs")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../../../../..".to_string() + outside.to_str().unwrap(),
        rootfs.join("rel"),
    )
    .unwrap();
    c.add_mount(json!({"destination": "/abs/m", "type": "tmpfs", "source": "tmpfs"}));
    c.add_mount(json!({"destination": "/rel/m", "type": "tmpfs", "source": "tmpfs"}));
    let out = c.run_sh("echo ok");
    // The runtime may refuse or resolve inside the rootfs; it must never touch the host path.
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "a mount target was created outside the rootfs: {:?}",
        fs::read_dir(&outside)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    );
    if out.code == 0 {
        // Resolved as if the rootfs were /: the mounts landed under rootfs/<outside>.
        let inner = rootfs.join(outside.strip_prefix("/").unwrap());
        assert!(
            inner.join("m").is_dir(),
            "mount target not created inside the rootfs"
        );
    }
}

#[test]
fn symlink_bind_source_is_not_followed_out_of_rootfs_for_devices() {
    let mut c = Ctx::new("symlink_dev");
    let outside = c.path("outside-dev");
    fs::create_dir(&outside).unwrap();
    let rootfs = c.rootfs_path();
    std::os::unix::fs::symlink(&outside, rootfs.join("devlink")).unwrap();
    c.spec["linux"]["devices"] =
        json!([{"path": "/devlink/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 438}]);
    let _ = c.run_sh("true");
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "device node created outside the rootfs"
    );
}

#[test]
fn masked_paths() {
    let mut c = Ctx::new("masked");
    fs::write(c.rootfs_path().join("etc/secret"), "top-secret\n").unwrap();
    fs::create_dir_all(c.rootfs_path().join("etc/secretdir")).unwrap();
    fs::write(c.rootfs_path().join("etc/secretdir/a"), "a").unwrap();
    // A /proc file this kernel has (kcore depends on the kernel config).
    let procfile = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("/proc/keys");
    c.spec["linux"]["maskedPaths"] = json!([
        procfile,
        "/etc/secret",
        "/etc/secretdir",
        "/proc/does-not-exist"
    ]);
    let out = c.sh_ok(&format!("wc -c < /etc/secret; ls /etc/secretdir | wc -l; wc -c < {procfile}; touch /etc/secretdir/new && echo wrote-dir; true"));
    assert_eq!(out, "0\n0\n0\n", "{out}");
}

#[test]
fn readonly_paths() {
    let mut c = Ctx::new("readonly_paths");
    fs::create_dir_all(c.rootfs_path().join("data")).unwrap();
    c.spec["linux"]["readonlyPaths"] = json!(["/proc/sys", "/data", "/does-not-exist"]);
    c.set_namespace("uts", None);
    let out = c.run_sh("echo x > /proc/sys/kernel/hostname && echo sys-wrote; touch /data/f && echo data-wrote; grep -E ' /(proc/sys|data) ' /proc/self/mountinfo");
    out.ok();
    assert!(!out.stdout.contains("sys-wrote"), "{out:?}");
    assert!(!out.stdout.contains("data-wrote"), "{out:?}");
    let m = parse_mountinfo(&out.stdout);
    assert!(find_mount(&m, "/proc/sys")
        .unwrap()
        .options
        .iter()
        .any(|o| o == "ro"));
    assert!(find_mount(&m, "/data")
        .unwrap()
        .options
        .iter()
        .any(|o| o == "ro"));
}

#[test]
fn rootfs_propagation() {
    let mut c = Ctx::new("propagation");
    c.spec["linux"]["rootfsPropagation"] = json!("private");
    let out = c.sh_ok("cat /proc/self/mountinfo");
    let m = parse_mountinfo(&out);
    let mi = find_mount(&m, "/").unwrap();
    assert!(
        !mi.optional
            .iter()
            .any(|o| o.starts_with("shared:") || o.starts_with("master:")),
        "{out}"
    );

    // runc 1.1 refuses "shared" unless the rootfs' parent mount on the host is shared.
    skiff_only!("runc needs a shared parent mount for rootfsPropagation=shared");
    c.spec["linux"]["rootfsPropagation"] = json!("shared");
    c.id = c.new_id();
    let out = c.sh_ok("cat /proc/self/mountinfo");
    let m = parse_mountinfo(&out);
    let mi = find_mount(&m, "/").unwrap();
    assert!(
        mi.optional.iter().any(|o| o.starts_with("shared:")),
        "{out}"
    );
}

#[test]
fn bind_propagation_option() {
    let mut c = Ctx::new("bind_prop");
    let src = c.path("psrc");
    fs::create_dir(&src).unwrap();
    c.add_mount(json!({"destination": "/mnt/p", "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind", "rshared"]}));
    c.add_mount(json!({"destination": "/mnt/q", "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind", "rprivate"]}));
    let out = c.sh_ok("grep -E ' /mnt/(p|q) ' /proc/self/mountinfo");
    let m = parse_mountinfo(&out);
    assert!(
        find_mount(&m, "/mnt/p")
            .unwrap()
            .optional
            .iter()
            .any(|o| o.starts_with("shared:")),
        "{out}"
    );
    assert!(
        find_mount(&m, "/mnt/q").unwrap().optional.is_empty(),
        "{out}"
    );
}

#[test]
fn atime_options() {
    let mut c = Ctx::new("atime");
    let src = c.path("asrc");
    fs::create_dir(&src).unwrap();
    c.add_mount(json!({"destination": "/mnt/na", "type": "bind", "source": src.to_str().unwrap(), "options": ["bind", "noatime"]}));
    c.add_mount(json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["nodiratime", "strictatime"]}));
    let out = c.sh_ok("grep -E ' /mnt/(na|t) ' /proc/self/mountinfo");
    let m = parse_mountinfo(&out);
    assert!(
        find_mount(&m, "/mnt/na")
            .unwrap()
            .options
            .iter()
            .any(|o| o == "noatime"),
        "{out}"
    );
    let t = find_mount(&m, "/mnt/t").unwrap();
    assert!(t.options.iter().any(|o| o == "nodiratime"), "{out}");
    assert!(
        !t.options.iter().any(|o| o == "relatime" || o == "noatime"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// rootfsPropagation on the hosts engines make: the rootfs a plain directory, a bind mount or an
// overlay mount (containerd's shim always mounts an overlay), host "/" private or rshared (every
// systemd host). Each case runs in a mount namespace of its own (util-linux `unshare -m`), so the
// host's table is untouched whatever happens.

/// Run `script` with sh under `unshare -m --propagation unchanged`; $RT is the runtime, $ROOT its
/// state root. Returns the script's output.
fn in_private_mount_ns(c: &Ctx, script: &str) -> Out {
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "unchanged", "sh", "-ec", script])
        .env("RT", runtime())
        .env("ROOT", &c.root)
        .env("BUNDLE", &c.bundle)
        .env("TMP", c.tmp.path());
    c.exec_cmd(cmd, &c.path("ns.out"), &c.path("ns.err"))
}

/// Shell lines that make the rootfs at $BUNDLE/rootfs-mnt: a plain directory, a bind mount of
/// $BUNDLE/rootfs, or an overlay with $BUNDLE/rootfs as its lower layer.
fn rootfs_kind_script(kind: &str) -> &'static str {
    match kind {
        "dir" => "rm -rf $BUNDLE/rootfs-mnt; cp -a $BUNDLE/rootfs $BUNDLE/rootfs-mnt",
        "bind" => "mkdir -p $BUNDLE/rootfs-mnt; mount --bind $BUNDLE/rootfs $BUNDLE/rootfs-mnt",
        "overlay" => {
            "mkdir -p $BUNDLE/rootfs-mnt $TMP/upper $TMP/work; \
             mount -t overlay overlay -o lowerdir=$BUNDLE/rootfs,upperdir=$TMP/upper,workdir=$TMP/work $BUNDLE/rootfs-mnt"
        }
        other => panic!("unknown rootfs kind {other}"),
    }
}

#[test]
fn rootfs_propagation_matrix() {
    let mut c = Ctx::new("prop_matrix");
    c.spec["root"]["path"] = json!("rootfs-mnt");
    c.sh_args("awk '$5 == \"/\"' /proc/self/mountinfo");
    let mut failures = Vec::new();
    for kind in ["dir", "bind", "overlay"] {
        for host in ["rprivate", "rshared"] {
            for value in [
                "private",
                "rprivate",
                "slave",
                "rslave",
                "shared",
                "rshared",
                "unbindable",
                "runbindable",
            ] {
                if !is_skiff() && (value.ends_with("unbindable") || value == "shared") {
                    // runc 1.1 sets "/" unbindable before binding the rootfs (EINVAL), and
                    // needs a shared parent for "shared".
                    continue;
                }
                c.spec["linux"]["rootfsPropagation"] = json!(value);
                let id = c.new_id();
                c.write_spec();
                c.track(&id);
                let script = format!(
                    "mount --make-{host} /; {}; $RT --root $ROOT run --bundle $BUNDLE {id}",
                    rootfs_kind_script(kind)
                );
                let out = in_private_mount_ns(&c, &script);
                let case = format!("rootfs {kind}, host / {host}, rootfsPropagation {value}");
                if out.code != 0 {
                    failures.push(format!(
                        "{case}: exit {} {} {}",
                        out.code,
                        out.stdout.trim(),
                        out.stderr.trim()
                    ));
                    continue;
                }
                // What the container's "/" became: the requested mode.
                let opt = parse_mountinfo(&out.stdout)
                    .first()
                    .map(|m| m.optional.join(" "))
                    .unwrap_or_default();
                let shared = opt.contains("shared:");
                let slave = opt.contains("master:");
                let unbindable = opt.contains("unbindable");
                let ok = match value {
                    "private" | "rprivate" => !shared && !slave && !unbindable,
                    "slave" | "rslave" => !shared,
                    // runc 1.1 does not apply it again after pivot_root: "/" stays private.
                    "shared" | "rshared" => shared || !is_skiff(),
                    _ => unbindable,
                };
                if !ok {
                    failures.push(format!("{case}: \"/\" inside has {opt:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The script of a container that waits for the host's mount under /vol, reports it, then
/// makes one of its own under /vol and waits to be killed.
const PROPAGATION_PROBE: &str = "i=0; while [ ! -e /vol/from-host/marker ] && [ $i -lt 100 ]; do usleep 50000; i=$((i+1)); done; \
     if [ -e /vol/from-host/marker ]; then echo host-mount-seen > /vol/report; else echo host-mount-unseen > /vol/report; fi; \
     mount -t tmpfs tmpfs /vol/from-container && echo x > /vol/from-container/marker; echo done >> /vol/report; sleep 1000";

/// A volume with `propagation` (on a host whose "/" is rshared, as on systemd hosts, and
/// the rootfs an overlay, as under containerd): does a mount made on the host under the volume
/// show inside, and one made inside show on the host?
fn volume_propagation(name: &str, propagation: &str) -> (bool, bool) {
    let mut c = Ctx::new(name);
    c.spec["root"]["path"] = json!("rootfs-mnt");
    c.spec["linux"]["rootfsPropagation"] = json!(if propagation == "rshared" {
        "rshared"
    } else {
        "rslave"
    });
    // Mounting inside needs CAP_SYS_ADMIN (a privileged container, as Bidirectional demands).
    let all_caps = json!([
        "CAP_SYS_ADMIN",
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_SETUID",
        "CAP_SETGID"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        c.spec["process"]["capabilities"][set] = all_caps.clone();
    }
    let vol = c.path("vol");
    fs::create_dir_all(vol.join("from-host")).unwrap();
    fs::create_dir_all(vol.join("from-container")).unwrap();
    c.add_mount(json!({"destination": "/vol", "type": "bind", "source": vol.to_str().unwrap(), "options": ["rbind", propagation]}));
    c.sh_args(PROPAGATION_PROBE);
    c.write_spec();
    let id = c.id.clone();
    c.track(&id);
    let script = format!(
        "mount --make-rshared /; mount --bind $TMP/vol $TMP/vol; mount --make-shared $TMP/vol; {}; \
         $RT --root $ROOT run -d --bundle $BUNDLE {id} >/dev/null; \
         mount -t tmpfs tmpfs $TMP/vol/from-host; echo x > $TMP/vol/from-host/marker; \
         i=0; while ! grep -q done $TMP/vol/report 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
         cat $TMP/vol/report; \
         if [ -e $TMP/vol/from-container/marker ]; then echo container-mount-seen; else echo container-mount-unseen; fi; \
         $RT --root $ROOT delete -f {id}",
        rootfs_kind_script("overlay")
    );
    let out = in_private_mount_ns(&c, &script);
    out.ok();
    (
        out.stdout.contains("host-mount-seen"),
        out.stdout.contains("container-mount-seen"),
    )
}

#[test]
fn rshared_volume_propagates_both_ways() {
    assert_eq!(
        volume_propagation("prop_rshared", "rshared"),
        (true, true),
        "(host mount seen inside, container mount seen on the host)"
    );
}

#[test]
fn rslave_volume_propagates_into_the_container_only() {
    assert_eq!(
        volume_propagation("prop_rslave", "rslave"),
        (true, false),
        "(host mount seen inside, container mount seen on the host)"
    );
}

/// A bind source that only host root can reach (under a 0700 directory of root's), in a
/// container with a user namespace: the runtime opens it before the init enters the user
/// namespace, as runc does.
#[test]
fn bind_source_only_host_root_can_reach_in_a_user_namespace() {
    use std::os::unix::fs::PermissionsExt;
    let mut c = Ctx::new("bind_root_only");
    c.set_namespace("user", None);
    c.set_namespace("network", None);
    c.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let private = c.path("root-only");
    let src = private.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "reached\n").unwrap();
    fs::set_permissions(src.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    c.add_mount(json!({"destination": "/mnt", "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind", "ro"]}));
    assert_eq!(c.sh_ok("cat /mnt/f"), "reached\n");
}

/// A /dev asked read-only ("ro" among its options) is made read-only once /dev/pts, /dev/shm,
/// the devices and the links are in place (mounted read-only at once, none could be made).
#[test]
fn read_only_dev_is_complete_and_read_only() {
    let mut c = Ctx::new("dev_ro");
    for m in c.spec["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    let out = c.sh_ok(
        "touch /dev/x 2>/dev/null && echo dev-writable; echo hi > /dev/null && echo null-ok; \
         [ -c /dev/zero ] && echo zero; [ -L /dev/stdout ] && echo links; \
         [ -d /dev/pts ] && echo pts; touch /dev/shm/y && echo shm-writable",
    );
    assert_eq!(out, "null-ok\nzero\nlinks\npts\nshm-writable\n");
}

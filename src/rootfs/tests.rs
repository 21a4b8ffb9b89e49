//! Root tests: each runs the three steps in a forked child that has its
//! own mount namespace, checks the result from inside, and reports
//! failures through a pipe. The parent checks that nothing got mounted on
//! the host under the test bundles.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::*;

fn host_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// The host's mounts under any bundle of these tests (whose children mount only there).
/// Not the whole table: engines or other tests may mount elsewhere meanwhile (the whole-table
/// comparison failed twice while the engine smoke tests ran beside the unit tests).
fn mounts_under_test_bundles() -> String {
    let prefix = std::env::temp_dir().join("skiff-rootfs-");
    let prefix = prefix.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| mp.starts_with(&*prefix))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A bundle with rootfs/bin/busybox.
struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("skiff-rootfs-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        if Path::new("/bin/busybox").exists() {
            std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        }
        for d in ["proc", "sys", "dev", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        Bundle { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// Fork; in the child unshare(flags), run `f`, report its error. The host's
/// mount table must be unchanged afterwards.
fn in_child(
    flags: libc::c_int,
    f: impl FnOnce() -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let before = mounts_under_test_bundles();
    let r = crate::testing::in_child(|| {
        // SAFETY: plain syscall in the forked child.
        if unsafe { libc::unshare(flags) } != 0 {
            return Err(format!("unshare: {}", std::io::Error::last_os_error()));
        }
        f()
    });
    assert_eq!(
        mounts_under_test_bundles(),
        before,
        "mounts of a test bundle reached the host"
    );
    r
}

/// A parsed line of the container's mountinfo.
#[derive(Debug)]
struct Mi {
    root: String,
    mount_point: String,
    options: String,
    optional: String,
    fstype: String,
    super_options: String,
}

fn mountinfo_from(text: &str) -> Vec<Mi> {
    text.lines()
        .filter_map(|line| {
            let (l, r) = line.split_once(" - ")?;
            let l: Vec<&str> = l.split(' ').collect();
            let r: Vec<&str> = r.split(' ').collect();
            Some(Mi {
                root: l[3].to_string(),
                mount_point: l[4].to_string(),
                options: l[5].to_string(),
                optional: l[6..].join(" "),
                fstype: r[0].to_string(),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn find<'a>(mi: &'a [Mi], mp: &str) -> std::result::Result<&'a Mi, String> {
    mi.iter()
        .rev()
        .find(|m| m.mount_point == mp)
        .ok_or_else(|| format!("no mount at {mp}"))
}

fn has_opt(opts: &str, o: &str) -> bool {
    opts.split(',').any(|x| x == o)
}

fn ensure(cond: bool, what: impl Into<String>) -> std::result::Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn is_erofs(p: &str) -> bool {
    matches!(std::fs::write(p, b"x"), Err(e) if e.raw_os_error() == Some(libc::EROFS))
}

fn all_steps(
    spec: &Spec,
    bundle: &Path,
    no_pivot: bool,
    in_userns: bool,
) -> std::result::Result<(), String> {
    let plan =
        RootfsPlan::from_spec(spec, bundle, no_pivot, in_userns).map_err(|e| e.to_string())?;
    prepare(&plan).map_err(|e| format!("prepare: {e}"))?;
    enter(&plan).map_err(|e| format!("enter: {e}"))?;
    finish(&plan).map_err(|e| format!("finish: {e}"))
}

/// The tests run each container in a mount namespace of its own (`in_child(CLONE_NEWNS)`):
/// say so in the spec unless it says otherwise.
fn spec(json: String) -> Spec {
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let linux = v
        .as_object_mut()
        .unwrap()
        .entry("linux")
        .or_insert_with(|| serde_json::json!({}));
    linux
        .as_object_mut()
        .unwrap()
        .entry("namespaces")
        .or_insert_with(|| serde_json::json!([{"type": "mount"}]));
    serde_json::from_value(v).unwrap()
}

#[test]
fn full_container() {
    let b = Bundle::new();
    std::fs::write(b.path().join("hostfile"), b"hello").unwrap();
    std::fs::create_dir_all(b.path().join("vol")).unwrap();
    std::fs::create_dir_all(b.path().join("rsrc/sub")).unwrap();
    let rsrc_sub = b.path().join("rsrc/sub");
    let s = spec(format!(
        r#"{{"ociVersion":"1.3.0","root":{{"path":"rootfs","readonly":true}},
        "mounts":[
          {{"destination":"/proc","type":"proc","source":"proc"}},
          {{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}},
          {{"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]}},
          {{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=1m"]}},
          {{"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]}},
          {{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}},
          {{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}},
          {{"destination":"/tmp","type":"tmpfs","options":["noexec","noatime","mode=1777","size=2m"]}},
          {{"destination":"/etc/hostfile","type":"bind","source":"hostfile","options":["bind","ro","nosuid"]}},
          {{"destination":"/data","source":"vol","options":["bind","nodev","private"]}},
          {{"destination":"/rdata","type":"none","source":"{rsrc}","options":["rbind","rro","rnosuid"]}},
          {{"destination":"/shared","type":"bind","source":"vol","options":["rbind","shared"]}},
          {{"destination":"/unbind","type":"bind","source":"vol","options":["rbind","runbindable"]}},
          {{"destination":"/slave","type":"bind","source":"vol","options":["rbind","rshared","rslave"]}}
        ],
        "linux":{{
          "devices":[{{"path":"/dev/mynull","type":"c","major":1,"minor":3,"fileMode":438,"uid":1000,"gid":0}}],
          "maskedPaths":["/proc/keys","/proc/acpi","/sys/firmware","/proc/does-not-exist"],
          "readonlyPaths":["/proc/sys","/proc/timer_list","/does/not/exist"]
        }}}}"#,
        rsrc = b.path().join("rsrc").display()
    ));
    let bundle = b.path().to_path_buf();
    in_child(libc::CLONE_NEWNS, move || {
        // A submount in the rbind source, for rro to reach.
        let sub = CString::new(rsrc_sub.as_os_str().as_encoded_bytes()).unwrap();
        mounts::sys_mount(Some(c"tmpfs"), &sub, Some(c"tmpfs"), 0, None)
            .map_err(|e| format!("submount: {e}"))?;
        all_steps(&s, &bundle, false, false)?;

        ensure(
            std::env::current_dir().map_err(|e| e.to_string())? == Path::new("/"),
            "cwd is not /",
        )?;
        let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let mi = mountinfo_from(&text);
        let root = find(&mi, "/")?;
        ensure(
            has_opt(&root.options, "ro"),
            format!("/ not ro: {}", root.options),
        )?;
        ensure(is_erofs("/newfile"), "/ writable")?;
        ensure(find(&mi, "/proc")?.fstype == "proc", "/proc type")?;
        let dev = find(&mi, "/dev")?;
        ensure(
            dev.fstype == "tmpfs" && has_opt(&dev.options, "nosuid"),
            format!("/dev: {dev:?}"),
        )?;
        let pts = find(&mi, "/dev/pts")?;
        ensure(
            pts.fstype == "devpts"
                && has_opt(&pts.super_options, "ptmxmode=666")
                && has_opt(&pts.super_options, "mode=620")
                && has_opt(&pts.super_options, "gid=5")
                && has_opt(&pts.options, "noexec"),
            format!("/dev/pts: {pts:?}"),
        )?;
        let shm = find(&mi, "/dev/shm")?;
        ensure(
            shm.fstype == "tmpfs"
                && has_opt(&shm.super_options, "size=1024k")
                && has_opt(&shm.options, "nodev"),
            format!("{shm:?}"),
        )?;
        let shm_mode = std::fs::metadata("/dev/shm")
            .map_err(|e| e.to_string())?
            .mode()
            & 0o7777;
        ensure(shm_mode == 0o1777, format!("/dev/shm mode {shm_mode:o}"))?;
        ensure(find(&mi, "/dev/mqueue")?.fstype == "mqueue", "mqueue")?;
        let sys = find(&mi, "/sys")?;
        ensure(
            sys.fstype == "sysfs" && has_opt(&sys.options, "ro"),
            format!("{sys:?}"),
        )?;
        let cg = find(&mi, "/sys/fs/cgroup")?;
        ensure(
            cg.fstype == "tmpfs" && has_opt(&cg.options, "ro"),
            format!("{cg:?}"),
        )?;
        let mem = find(&mi, "/sys/fs/cgroup/memory")?;
        ensure(
            mem.fstype == "cgroup"
                && has_opt(&mem.options, "ro")
                && has_opt(&mem.options, "nosuid"),
            format!("{mem:?}"),
        )?;
        ensure(
            Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(),
            "memory controller files",
        )?;
        ensure(
            find(&mi, "/sys/fs/cgroup/unified")?.fstype == "cgroup2",
            "unified",
        )?;
        ensure(is_erofs("/sys/fs/cgroup/memory/x"), "cgroup ro")?;
        let tmp = find(&mi, "/tmp")?;
        ensure(
            has_opt(&tmp.options, "noatime") && has_opt(&tmp.options, "noexec"),
            format!("{tmp:?}"),
        )?;
        std::fs::write("/tmp/ok", b"x").map_err(|e| format!("write /tmp: {e}"))?;

        let hf = find(&mi, "/etc/hostfile").map_err(|e| format!("{e}: {text}"))?;
        ensure(
            has_opt(&hf.options, "ro") && has_opt(&hf.options, "nosuid"),
            format!("{hf:?}"),
        )?;
        ensure(
            std::fs::read("/etc/hostfile").map_err(|e| e.to_string())? == b"hello",
            "hostfile content",
        )?;
        ensure(is_erofs("/etc/hostfile"), "hostfile writable")?;
        let data = find(&mi, "/data")?;
        ensure(
            has_opt(&data.options, "nodev") && data.optional.is_empty(),
            format!("{data:?}"),
        )?;
        for mp in ["/rdata", "/rdata/sub"] {
            let m = find(&mi, mp)?;
            ensure(
                has_opt(&m.options, "ro") && has_opt(&m.options, "nosuid"),
                format!("rro: {m:?}"),
            )?;
        }
        ensure(find(&mi, "/shared")?.optional.contains("shared:"), "shared")?;
        ensure(
            find(&mi, "/unbind")?.optional.contains("unbindable"),
            "unbindable",
        )?;
        let sl = find(&mi, "/slave")?;
        // rshared then rslave: the only member of its peer group has no
        // master to follow, so it ends up private; what matters is the order.
        ensure(!sl.optional.contains("shared:"), format!("slave: {sl:?}"))?;

        for (p, maj, min) in [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
            ("/dev/mynull", 1, 3),
        ] {
            let md = std::fs::symlink_metadata(p).map_err(|e| format!("{p}: {e}"))?;
            ensure(
                md.mode() & libc::S_IFMT == libc::S_IFCHR
                    && libc::major(md.rdev()) == maj
                    && libc::minor(md.rdev()) == min
                    && md.permissions().mode() & 0o777 == 0o666,
                format!("{p}: mode {:o} rdev {:x}", md.mode(), md.rdev()),
            )?;
        }
        ensure(
            std::fs::metadata("/dev/mynull")
                .map_err(|e| e.to_string())?
                .uid()
                == 1000,
            "mynull uid",
        )?;
        for (l, t) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            let got = std::fs::read_link(l).map_err(|e| format!("{l}: {e}"))?;
            ensure(got == Path::new(t), format!("{l} -> {}", got.display()))?;
        }
        ensure(std::fs::File::open("/dev/ptmx").is_ok(), "open /dev/ptmx")?;

        ensure(
            std::fs::read("/proc/keys")
                .map_err(|e| e.to_string())?
                .is_empty(),
            "/proc/keys not masked",
        )?;
        for d in ["/sys/firmware", "/proc/acpi"] {
            let m = find(&mi, d)?;
            ensure(
                m.fstype == "tmpfs" && has_opt(&m.options, "ro"),
                format!("{m:?}"),
            )?;
            ensure(
                std::fs::read_dir(d).map_err(|e| e.to_string())?.count() == 0,
                format!("{d} not empty"),
            )?;
        }
        let ps = find(&mi, "/proc/sys")?;
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            ensure(
                has_opt(&ps.options, o),
                format!("/proc/sys lacks {o}: {}", ps.options),
            )?;
        }
        ensure(is_erofs("/proc/sys/kernel/hostname"), "/proc/sys writable")?;
        let tl = find(&mi, "/proc/timer_list")?;
        ensure(has_opt(&tl.options, "ro"), format!("{tl:?}"))?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn no_pivot_mode() {
    let b = Bundle::new();
    let s = spec(
        r#"{"ociVersion":"1.3.0","root":{"path":"rootfs","readonly":true},
        "mounts":[{"destination":"/proc","type":"proc","source":"proc"}],
        "linux":{"rootfsPropagation":"private"}}"#
            .to_string(),
    );
    let bundle = b.path().to_path_buf();
    let has_busybox = b.rootfs().join("bin/busybox").exists();
    in_child(libc::CLONE_NEWNS, move || {
        all_steps(&s, &bundle, true, false)?;
        ensure(
            std::env::current_dir().map_err(|e| e.to_string())? == Path::new("/"),
            "cwd",
        )?;
        ensure(
            !has_busybox || Path::new("/bin/busybox").exists(),
            "rootfs not the root",
        )?;
        ensure(
            !Path::new("/etc/debian_version").exists(),
            "still on the host root",
        )?;
        let mi = mountinfo_from(
            &std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?,
        );
        let root = find(&mi, "/")?;
        ensure(
            has_opt(&root.options, "ro") && root.optional.is_empty(),
            format!("/: {root:?}"),
        )?;
        ensure(is_erofs("/x"), "/ writable")?;
        // Default devices landed in the rootfs's own /dev (no tmpfs there).
        ensure(
            Path::new("/dev/null").exists() && std::fs::read_link("/dev/fd").is_ok(),
            "devices",
        )?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn rootfs_propagation_shared() {
    let b = Bundle::new();
    let s = spec(
        r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},
        "mounts":[{"destination":"/proc","type":"proc"},{"destination":"/dev","type":"tmpfs"}],
        "linux":{"rootfsPropagation":"rshared"}}"#
            .to_string(),
    );
    let bundle = b.path().to_path_buf();
    in_child(libc::CLONE_NEWNS, move || {
        // Make the host side shared in this namespace, as on systemd hosts,
        // to exercise the parent-private step pivot_root needs.
        mounts::sys_mount(None, c"/", None, MS_SHARED | MS_REC, None).map_err(|e| e.to_string())?;
        all_steps(&s, &bundle, false, false)?;
        let mi = mountinfo_from(
            &std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?,
        );
        let root = find(&mi, "/")?;
        ensure(root.optional.contains("shared:"), format!("/: {root:?}"))?;
        ensure(!has_opt(&root.options, "ro"), "/ ro")?;
        std::fs::write("/written", b"x").map_err(|e| e.to_string())
    })
    .unwrap();
    assert!(b.rootfs().join("written").exists());
}

#[test]
fn symlinks_cannot_escape_the_rootfs() {
    let b = Bundle::new();
    let outside = b.path().join("outside-target");
    std::fs::create_dir_all(&outside).unwrap();
    let rootfs = b.rootfs();
    std::os::unix::fs::symlink(&outside, rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink("../../..", rootfs.join("a")).unwrap();
    std::os::unix::fs::symlink(outside.join("etc-file"), rootfs.join("etc/evilfile")).unwrap();
    std::fs::remove_dir(rootfs.join("dev")).unwrap();
    std::os::unix::fs::symlink(outside.join("dev"), rootfs.join("dev")).unwrap();
    std::fs::write(b.path().join("hostfile"), b"hello").unwrap();
    let s = spec(format!(
        r#"{{"ociVersion":"1.3.0","root":{{"path":"rootfs"}},
        "mounts":[
          {{"destination":"/evil/x","type":"tmpfs"}},
          {{"destination":"/a/{rel}/up","type":"tmpfs"}},
          {{"destination":"/a/etc/file","type":"bind","source":"hostfile","options":["bind"]}},
          {{"destination":"/etc/evilfile","type":"bind","source":"hostfile","options":["bind"]}},
          {{"destination":"/evil","type":"tmpfs"}}
        ],
        "linux":{{"devices":[{{"path":"/dev/net/tun","type":"c","major":10,"minor":200}}]}}}}"#,
        rel = outside.strip_prefix("/").unwrap().display()
    ));
    let bundle = b.path().to_path_buf();
    let rootfs_c = rootfs.clone();
    in_child(libc::CLONE_NEWNS, move || {
        let plan = RootfsPlan::from_spec(&s, &bundle, false, false).map_err(|e| e.to_string())?;
        let before: Vec<String> = mountinfo_from(&host_mountinfo())
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        prepare(&plan).map_err(|e| format!("prepare: {e}"))?;
        let after = mountinfo_from(&host_mountinfo());
        let root = rootfs_c.to_str().unwrap();
        for m in &after {
            if !before.contains(&m.mount_point) {
                ensure(
                    m.mount_point == root || m.mount_point.starts_with(&format!("{root}/")),
                    format!("mount outside the rootfs: {}", m.mount_point),
                )?;
            }
        }
        ensure(
            std::fs::read_dir(rootfs_c.parent().unwrap().join("outside-target"))
                .unwrap()
                .count()
                == 0,
            "outside touched",
        )?;
        let inside = rootfs_c.join(
            rootfs_c
                .parent()
                .unwrap()
                .join("outside-target")
                .strip_prefix("/")
                .unwrap(),
        );
        ensure(
            after
                .iter()
                .any(|m| Path::new(&m.mount_point) == inside.join("x")),
            "tmpfs not at /<outside>/x inside",
        )?;
        ensure(inside.join("dev/net/tun").exists(), "tun not inside")?;
        ensure(
            rootfs_c.join("etc/file").is_file(),
            "bind target not inside",
        )?;
        enter(&plan).map_err(|e| format!("enter: {e}"))?;
        finish(&plan).map_err(|e| format!("finish: {e}"))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was created outside the rootfs"
    );
    assert!(!Path::new("/up").exists());
}

#[test]
fn devices_bound_from_host_in_userns_mode() {
    let b = Bundle::new();
    let s = spec(
        r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},
        "mounts":[{"destination":"/proc","type":"proc"},{"destination":"/dev","type":"tmpfs","options":["mode=755"]},
                  {"destination":"/sys","type":"sysfs","options":["ro","nosuid"]}],
        "linux":{"devices":[{"path":"/dev/kmsg","type":"c","major":1,"minor":11,"fileMode":420}]}}"#
            .to_string(),
    );
    let bundle = b.path().to_path_buf();
    in_child(libc::CLONE_NEWNS, move || {
        let plan = RootfsPlan::from_spec(&s, &bundle, false, true).map_err(|e| e.to_string())?;
        prepare(&plan).map_err(|e| format!("prepare: {e}"))?;
        enter(&plan).map_err(|e| format!("enter: {e}"))?;
        finish(&plan).map_err(|e| format!("finish: {e}"))?;
        let mi = mountinfo_from(
            &std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?,
        );
        for p in ["/dev/null", "/dev/tty", "/dev/urandom"] {
            ensure(find(&mi, p).is_ok(), format!("{p} not a bind mount"))?;
            let md = std::fs::metadata(p).map_err(|e| e.to_string())?;
            ensure(
                md.mode() & libc::S_IFMT == libc::S_IFCHR,
                format!("{p} not a char device"),
            )?;
        }
        ensure(find(&mi, "/dev/kmsg").is_ok(), "/dev/kmsg not bound")?;
        // No network namespace in the config: /sys is the host's, bound.
        let sys = find(&mi, "/sys")?;
        ensure(
            sys.fstype == "sysfs" && has_opt(&sys.options, "ro"),
            format!("{sys:?}"),
        )?;
        ensure(
            find(&mi, "/sys/fs/cgroup").is_ok(),
            "rbind of /sys lacks submounts",
        )?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn real_user_namespace_keeps_locked_flags() {
    let b = Bundle::new();
    std::fs::write(b.path().join("hostfile"), b"hello").unwrap();
    let s = spec(
        r#"{"ociVersion":"1.3.0","root":{"path":"rootfs","readonly":true},
        "mounts":[{"destination":"/dev","type":"tmpfs","options":["mode=755"]},
                  {"destination":"/dev/pts","type":"devpts","options":["newinstance","ptmxmode=0666"]},
                  {"destination":"/sys","type":"sysfs","options":["ro","nosuid","nodev","noexec"]},
                  {"destination":"/etc/hostfile","type":"bind","source":"hostfile","options":["bind","ro","noatime"]}],
        "linux":{"readonlyPaths":["/sys/kernel"]}}"#
            .to_string(),
    );
    let bundle = b.path().to_path_buf();
    in_child(libc::CLONE_NEWUSER | libc::CLONE_NEWNS, move || {
        // Map root to root (allowed for one's own uid) so the files stay ours.
        std::fs::write("/proc/self/setgroups", b"deny").map_err(|e| format!("setgroups: {e}"))?;
        std::fs::write("/proc/self/uid_map", b"0 0 1").map_err(|e| format!("uid_map: {e}"))?;
        std::fs::write("/proc/self/gid_map", b"0 0 1").map_err(|e| format!("gid_map: {e}"))?;
        // No proc mount is possible here (the pid namespace is the host's):
        // keep a view of the mount table across pivot_root.
        // (mountinfo shows mounts relative to the root at open time: open
        // it after pivot_root, through a directory fd of the host's /proc.)
        let proc_self = std::fs::File::open("/proc/self").map_err(|e| e.to_string())?;
        all_steps(&s, &bundle, false, true)?;
        let text = {
            use std::os::fd::AsRawFd;
            // SAFETY: valid directory fd, NUL-terminated name.
            let fd = unsafe {
                libc::openat(
                    proc_self.as_raw_fd(),
                    c"mountinfo".as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            ensure(fd >= 0, "open mountinfo")?;
            // SAFETY: just opened, owned here.
            let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            let mut text = String::new();
            f.read_to_string(&mut text).map_err(|e| e.to_string())?;
            text
        };
        let mi = mountinfo_from(&text);
        let hf = find(&mi, "/etc/hostfile").map_err(|e| format!("{e}: {text}"))?;
        // noatime was refused (relatime is locked) and the retry kept relatime.
        ensure(
            has_opt(&hf.options, "ro") && has_opt(&hf.options, "relatime"),
            format!("{hf:?}"),
        )?;
        ensure(
            find(&mi, "/")?.options.split(',').any(|o| o == "ro"),
            "/ not ro",
        )?;
        ensure(find(&mi, "/dev/null").is_ok(), "/dev/null not bound")?;
        ensure(find(&mi, "/sys")?.fstype == "sysfs", "sysfs")?;
        let k = find(&mi, "/sys/kernel")?;
        ensure(has_opt(&k.options, "ro"), format!("{k:?}"))?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn mount_errors_name_the_entry() {
    let b = Bundle::new();
    let s = spec(
        r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},
        "mounts":[{"destination":"/proc","type":"proc"},{"destination":"/x","type":"tmpfs"},
                  {"destination":"/dev/shm","type":"tmpfs","options":["size=banana"]}]}"#
            .to_string(),
    );
    let bundle = b.path().to_path_buf();
    in_child(libc::CLONE_NEWNS, move || {
        let plan = RootfsPlan::from_spec(&s, &bundle, false, false).map_err(|e| e.to_string())?;
        let e = prepare(&plan).err().ok_or("prepare succeeded")?;
        ensure(
            e.to_string() == "mounts[2] (tmpfs on /dev/shm): mount: invalid argument",
            format!("message: {e}"),
        )
    })
    .unwrap();
}

#[test]
fn cgroup_mount_in_a_cgroup_namespace() {
    let b = Bundle::new();
    let s = spec(
        r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},
        "mounts":[{"destination":"/proc","type":"proc"},
                  {"destination":"/sys","type":"sysfs","options":["nosuid","noexec","nodev"]},
                  {"destination":"/sys/fs/cgroup","type":"cgroup","options":["nosuid","noexec","nodev","ro"]}],
        "linux":{"namespaces":[{"type":"mount"},{"type":"cgroup"}]}}"#
            .to_string(),
    );
    let bundle = b.path().to_path_buf();
    in_child(libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP, move || {
        all_steps(&s, &bundle, false, false)?;
        let mi = mountinfo_from(
            &std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?,
        );
        for (mp, fstype) in [
            ("/sys/fs/cgroup/memory", "cgroup"),
            ("/sys/fs/cgroup/systemd", "cgroup"),
            ("/sys/fs/cgroup/unified", "cgroup2"),
        ] {
            let m = find(&mi, mp)?;
            // A fresh mount in the namespace shows the namespace's root.
            ensure(
                m.fstype == fstype && m.root == "/" && has_opt(&m.options, "ro"),
                format!("{m:?}"),
            )?;
        }
        ensure(
            Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(),
            "memory files",
        )?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn dev_symlink_into_proc_cannot_redirect_devices_or_mounts() {
    for (mounts, want) in [
        // Device nodes (the defaults) would go into the container's procfs.
        (
            r#"{"destination":"/proc","type":"proc"}"#,
            "/dev/null: resolves into procfs",
        ),
        // So would a mount below /dev.
        (
            r#"{"destination":"/proc","type":"proc"},{"destination":"/dev/vm","type":"tmpfs"}"#,
            "/dev/vm: resolves into procfs",
        ),
    ] {
        let b = Bundle::new();
        let rootfs = b.rootfs();
        std::fs::remove_dir(rootfs.join("dev")).unwrap();
        std::os::unix::fs::symlink("/proc/sys", rootfs.join("dev")).unwrap();
        let s = spec(format!(
            r#"{{"ociVersion":"1.3.0","root":{{"path":"rootfs"}},"mounts":[{mounts}]}}"#
        ));
        let bundle = b.path().to_path_buf();
        let e = in_child(libc::CLONE_NEWNS | libc::CLONE_NEWPID, move || {
            let plan =
                RootfsPlan::from_spec(&s, &bundle, false, false).map_err(|e| e.to_string())?;
            match prepare(&plan) {
                Ok(()) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
        .unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn idmapped_bind_mounts_show_mapped_owners() {
    let b = Bundle::new();
    let vol = b.path().join("vol");
    std::fs::create_dir_all(vol.join("sub")).unwrap();
    for (name, uid) in [("f0", 0u32), ("f3", 3), ("f1000", 1000)] {
        let p = vol.join(name);
        std::fs::write(&p, b"x").unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
    }
    let s = spec(
        r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},
        "mounts":[
          {"destination":"/m","type":"bind","source":"vol","options":["rbind","idmap","ro"],
           "uidMappings":[{"containerID":0,"hostID":5000,"size":10}],
           "gidMappings":[{"containerID":0,"hostID":6000,"size":10}]},
          {"destination":"/plain","type":"bind","source":"vol","options":["rbind"]}
        ]}"#
        .to_string(),
    );
    let bundle = b.path().to_path_buf();
    let rootfs = b.rootfs();
    in_child(libc::CLONE_NEWNS, move || {
        let plan = RootfsPlan::from_spec(&s, &bundle, false, false).map_err(|e| e.to_string())?;
        let trees = DetachedMounts::prepare(&plan, true).map_err(|e| e.to_string())?;
        ensure(!trees.is_empty(), "no tree prepared")?;
        prepare_with(&plan, &trees, None).map_err(|e| format!("prepare: {e}"))?;
        let owner = |p: &str| {
            std::fs::metadata(rootfs.join(p))
                .map(|m| (m.uid(), m.gid()))
                .map_err(|e| format!("{p}: {e}"))
        };
        ensure(
            owner("m/f0")? == (5000, 6000),
            format!("m/f0: {:?}", owner("m/f0")),
        )?;
        ensure(
            owner("m/f3")? == (5003, 6003),
            format!("m/f3: {:?}", owner("m/f3")),
        )?;
        ensure(
            owner("m/f1000")? == (65534, 65534),
            format!("m/f1000: {:?}", owner("m/f1000")),
        )?;
        ensure(owner("plain/f3")? == (3, 3), "the plain bind is mapped too")?;
        ensure(
            is_erofs(rootfs.join("m/new").to_str().unwrap()),
            "m is not read-only",
        )?;
        // Without prepared trees, the init refuses instead of mounting unmapped.
        let e = prepare_with(&plan, &DetachedMounts::default(), None).unwrap_err();
        ensure(e.to_string().contains("was not prepared"), e.to_string())?;
        Ok(())
    })
    .unwrap();
}

//! User namespaces: writing id maps (directly, or through the setuid
//! newuidmap/newgidmap helpers when skiff is unprivileged), rootless mode,
//! the checks that tell an unprivileged user what a container cannot have,
//! and short-lived user namespaces that only exist to lend their mapping to
//! an id-mapped mount.
//!
//! # Who writes the maps
//!
//! - skiff runs as root: it writes /proc/PID/uid_map and gid_map itself.
//! - skiff is unprivileged and each map is one line mapping its own id:
//!   the kernel lets it write them itself after "deny" went to
//!   /proc/PID/setgroups. The init is non-dumpable from its first
//!   instruction (so its /proc files belong to root): when that makes the
//!   direct write fail with EACCES, the helpers are used instead.
//! - anything else (sub-id ranges from /etc/subuid and /etc/subgid): the
//!   setuid helpers of shadow's `uidmap` package, which check the ranges.
//!
//! # Rootless
//!
//! runc's `--rootless true|false|auto`: with `auto` (the default) skiff is
//! rootless when its effective uid is not 0. Rootless changes one thing at
//! run time: a cgroup that cannot be created is skipped, unless resources
//! were asked for (see `cgroups::create_for`).

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// The value of the global `--rootless` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rootless {
    Yes,
    No,
    #[default]
    Auto,
}

impl Rootless {
    /// "true", "false" or "auto" (runc's spelling); None = auto.
    pub fn parse(flag: Option<&str>) -> Result<Rootless> {
        match flag {
            None | Some("auto") => Ok(Rootless::Auto),
            Some("true") => Ok(Rootless::Yes),
            Some("false") => Ok(Rootless::No),
            Some(other) => Err(Error::config(
                "--rootless",
                format!("{other:?}: must be true, false or auto"),
            )),
        }
    }

    /// Whether cgroup permission errors are tolerated, for a process whose
    /// effective uid is `euid`.
    pub fn enabled(self, euid: u32) -> bool {
        match self {
            Rootless::Yes => true,
            Rootless::No => false,
            Rootless::Auto => euid != 0,
        }
    }
}

/// How one map file gets written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapWriter {
    /// skiff writes /proc/PID/{uid,gid}_map; `deny_setgroups` first writes
    /// "deny" to /proc/PID/setgroups (required for an unprivileged gid_map).
    Direct { deny_setgroups: bool },
    /// newuidmap/newgidmap.
    Helpers,
}

/// One parsed map line: (container id, host id, size).
pub type MapLine = (u32, u32, u32);

/// Parse the text written to a map file ("c h s" per line).
pub fn parse_map(text: &str) -> Result<Vec<MapLine>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace().map(str::parse::<u32>);
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(Ok(c)), Some(Ok(h)), Some(Ok(s)), None) => out.push((c, h, s)),
            _ => return Err(Error::msg(format!("invalid id map line {line:?}"))),
        }
    }
    Ok(out)
}

/// The map text for a list of mappings, as the kernel reads it.
pub fn render_map(maps: &[LinuxIdMapping]) -> String {
    let mut text = String::with_capacity(maps.len() * 24);
    for m in maps {
        text.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    text
}

fn only_own_id(map: &[MapLine], own: u32) -> bool {
    matches!(map, [(_, h, 1)] if *h == own)
}

/// Decide who writes the maps (pure).
pub fn choose_writer(euid: u32, egid: u32, uid_map: &[MapLine], gid_map: &[MapLine]) -> MapWriter {
    if euid == 0 {
        MapWriter::Direct {
            deny_setgroups: false,
        }
    } else if only_own_id(uid_map, euid) && only_own_id(gid_map, egid) {
        MapWriter::Direct {
            deny_setgroups: true,
        }
    } else {
        MapWriter::Helpers
    }
}

/// Write the uid and gid maps of process `pid`, which must have just made
/// its user namespace and wait for them.
pub fn write_id_maps(pid: i32, uid_map_text: &str, gid_map_text: &str) -> Result<()> {
    let uid_map = parse_map(uid_map_text).context("linux.uidMappings")?;
    let gid_map = parse_map(gid_map_text).context("linux.gidMappings")?;
    // SAFETY: geteuid/getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    match choose_writer(euid, egid, &uid_map, &gid_map) {
        MapWriter::Direct { deny_setgroups } => {
            match write_direct(pid, uid_map_text, gid_map_text, deny_setgroups) {
                // Non-dumpable target: its map files belong to root.
                Err(e) if euid != 0 && e.errno() == Some(Errno::EACCES) => {
                    match find_helper("newuidmap") {
                        Some(_) => write_with_helpers(pid, &uid_map, &gid_map),
                        None => Err(e).context(
                            "cannot write the id maps of the container init; \
                             install newuidmap/newgidmap (Debian package uidmap)",
                        ),
                    }
                }
                r => r,
            }
        }
        MapWriter::Helpers => write_with_helpers(pid, &uid_map, &gid_map),
    }
}

fn write_direct(pid: i32, uid_map: &str, gid_map: &str, deny_setgroups: bool) -> Result<()> {
    if deny_setgroups {
        let p = format!("/proc/{pid}/setgroups");
        std::fs::write(&p, b"deny").map_err(|e| Error::io("write \"deny\" to", &p, e))?;
    }
    for (file, text, field) in [
        ("uid_map", uid_map, "linux.uidMappings"),
        ("gid_map", gid_map, "linux.gidMappings"),
    ] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text.as_bytes())
            .map_err(|e| Error::io("write", &path, e))
            .context(field)?;
    }
    Ok(())
}

/// The helper's arguments after the program name.
pub fn helper_args(pid: i32, map: &[MapLine]) -> Vec<String> {
    let mut args = Vec::with_capacity(1 + map.len() * 3);
    args.push(pid.to_string());
    for (c, h, s) in map {
        args.push(c.to_string());
        args.push(h.to_string());
        args.push(s.to_string());
    }
    args
}

/// newuidmap/newgidmap on $PATH, else in /usr/bin or /bin.
pub fn find_helper(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

fn write_with_helpers(pid: i32, uid_map: &[MapLine], gid_map: &[MapLine]) -> Result<()> {
    for (name, map, field) in [
        ("newuidmap", uid_map, "linux.uidMappings"),
        ("newgidmap", gid_map, "linux.gidMappings"),
    ] {
        let prog = find_helper(name).ok_or_else(|| {
            Error::config(
                field,
                format!(
                    "mapping more than your own id needs {name} (Debian package uidmap), \
                     which was not found"
                ),
            )
        })?;
        let out = std::process::Command::new(&prog)
            .args(helper_args(pid, map))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::io("run", &prog, e))
            .context(field)?;
        if !out.status.success() {
            return Err(Error::config(
                field,
                format!(
                    "{} failed ({}): {}; are the ranges in /etc/sub{}id?",
                    prog.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim(),
                    &name[3..6]
                ),
            ));
        }
    }
    Ok(())
}

/// A user namespace holding a given mapping, for mount_setattr(2)'s
/// MOUNT_ATTR_IDMAP. A forked child unshares CLONE_NEWUSER and waits, its
/// maps are written, its /proc/PID/ns/user is opened, and it is killed: the
/// fd keeps the namespace alive. Needs root (the maps may map any id).
pub fn mapping_namespace(uid_map_text: &str, gid_map_text: &str) -> Result<OwnedFd> {
    let mut ready = [0 as libc::c_int; 2];
    let mut hold = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into each valid array.
    unsafe {
        if libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
            return Err(Error::sys("pipe2", Errno::last()));
        }
        if libc::pipe2(hold.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
            let e = Errno::last();
            libc::close(ready[0]);
            libc::close(ready[1]);
            return Err(Error::sys("pipe2", e));
        }
    }
    // SAFETY: the pipe fds were just created and are owned here only.
    let (ready_r, ready_w, hold_r, hold_w) = unsafe {
        (
            OwnedFd::from_raw_fd(ready[0]),
            OwnedFd::from_raw_fd(ready[1]),
            OwnedFd::from_raw_fd(hold[0]),
            OwnedFd::from_raw_fd(hold[1]),
        )
    };
    use std::os::fd::AsRawFd;
    // SAFETY: the child only makes raw async-signal-safe syscalls (unshare,
    // write, read, _exit), so forking a multi-threaded caller is sound.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::sys("fork (id-mapping namespace)", Errno::last()));
    }
    if pid == 0 {
        // SAFETY: see above; every call is a plain syscall on our own fds.
        unsafe {
            let ok: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                1
            } else {
                0
            };
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(hold_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(hold_r);
    let finish = |r: Result<OwnedFd>| -> Result<OwnedFd> {
        // SAFETY: `pid` is our child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        drop(hold_w);
        let mut status = 0;
        // SAFETY: reaping our own child; `status` is a valid out pointer.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && Errno::last() == Errno::EINTR {}
        r
    };
    let mut ok = 0u8;
    // SAFETY: reading one byte into a valid buffer from our pipe.
    let n = unsafe { libc::read(ready_r.as_raw_fd(), (&mut ok as *mut u8).cast(), 1) };
    if n != 1 || ok != 1 {
        return finish(Err(Error::sys(
            "unshare CLONE_NEWUSER (id-mapping namespace)",
            Errno::EPERM,
        )));
    }
    let r = write_id_maps(pid, uid_map_text, gid_map_text).and_then(|()| {
        let p = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&p)
            .map(OwnedFd::from)
            .map_err(|e| Error::io("open", &p, e))
    });
    finish(r)
}

/// Whether `id` lies in one of the mappings' container ranges.
pub fn is_mapped(id: u32, maps: &[LinuxIdMapping]) -> bool {
    maps.iter().any(|m| {
        let start = m.container_id() as u64;
        (start..start + m.size() as u64).contains(&(id as u64))
    })
}

/// Config checks about user namespaces, before anything exists (pure).
///
/// - In a new user namespace, process.user (uid, gid, additionalGids) must
///   be mapped: otherwise the user switch fails with a bare EINVAL.
/// - `euid != 0` (rootless): the container needs a user namespace; a
///   mapping beyond the caller's own ids needs the uidmap helpers
///   (`helpers`); id-mapped mounts need root.
pub fn check_spec(spec: &Spec, euid: u32, egid: u32, helpers: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let user_ns = linux
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User));
    let new_userns = user_ns.is_some_and(|n| n.path().is_none());
    let uid_maps = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or(&[]);
    let gid_maps = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    if new_userns && !uid_maps.is_empty() && !gid_maps.is_empty() {
        if let Some(p) = spec.process() {
            let u = p.user();
            if !is_mapped(u.uid(), uid_maps) {
                return Err(Error::config(
                    "process.user.uid",
                    format!("{} is not mapped by linux.uidMappings", u.uid()),
                ));
            }
            if !is_mapped(u.gid(), gid_maps) {
                return Err(Error::config(
                    "process.user.gid",
                    format!("{} is not mapped by linux.gidMappings", u.gid()),
                ));
            }
            for (i, g) in u.additional_gids().iter().flatten().enumerate() {
                if !is_mapped(*g, gid_maps) {
                    return Err(Error::config(
                        format!("process.user.additionalGids[{i}]"),
                        format!("{g} is not mapped by linux.gidMappings"),
                    ));
                }
            }
        }
    }
    if euid == 0 {
        return Ok(());
    }
    if user_ns.is_none() {
        return Err(Error::config(
            "linux.namespaces",
            "running as an unprivileged user needs a user namespace: \
             add {\"type\": \"user\"} with uidMappings and gidMappings \
             (`skiff spec --rootless` writes such a config)",
        ));
    }
    if new_userns && !helpers {
        let own = |maps: &[LinuxIdMapping], id: u32| {
            maps.len() == 1 && maps[0].host_id() == id && maps[0].size() == 1
        };
        for (maps, id, field, what) in [
            (uid_maps, euid, "linux.uidMappings", "uid"),
            (gid_maps, egid, "linux.gidMappings", "gid"),
        ] {
            if !maps.is_empty() && !own(maps, id) {
                return Err(Error::config(
                    field,
                    format!(
                        "maps more than your own {what} {id}: that needs newuidmap and \
                         newgidmap (Debian package uidmap) and ranges in /etc/sub{what}"
                    ),
                ));
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let idmapped = m.uid_mappings().is_some()
            || m.gid_mappings().is_some()
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "idmap" || o == "ridmap");
        if idmapped {
            return Err(Error::config(
                format!("mounts[{i}]"),
                "id-mapped mounts need a privileged runtime (CAP_SYS_ADMIN on the host): \
                 not available to an unprivileged user",
            ));
        }
    }
    Ok(())
}

/// [`check_spec`] for this process: its ids, and whether the helpers exist.
pub fn check(spec: &Spec) -> Result<()> {
    // SAFETY: geteuid/getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let helpers =
        euid != 0 && find_helper("newuidmap").is_some() && find_helper("newgidmap").is_some();
    check_spec(spec, euid, egid, helpers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_flag() {
        assert_eq!(Rootless::parse(None).unwrap(), Rootless::Auto);
        assert_eq!(Rootless::parse(Some("true")).unwrap(), Rootless::Yes);
        assert_eq!(Rootless::parse(Some("false")).unwrap(), Rootless::No);
        let e = Rootless::parse(Some("yes")).unwrap_err().to_string();
        assert!(e.starts_with("--rootless: \"yes\""), "{e}");
        assert!(Rootless::Auto.enabled(1000) && !Rootless::Auto.enabled(0));
        assert!(Rootless::Yes.enabled(0) && !Rootless::No.enabled(1000));
    }

    #[test]
    fn maps_parse_and_writer_choice() {
        let own = parse_map("0 1000 1\n").unwrap();
        let own_g = parse_map("0 1000 1\n").unwrap();
        let sub = parse_map("0 1000 1\n1 100000 65536\n").unwrap();
        assert_eq!(sub, vec![(0, 1000, 1), (1, 100000, 65536)]);
        assert!(parse_map("0 1000\n").is_err());
        assert!(parse_map("0 x 1\n").is_err());
        assert_eq!(
            choose_writer(0, 0, &sub, &sub),
            MapWriter::Direct {
                deny_setgroups: false
            }
        );
        assert_eq!(
            choose_writer(1000, 1000, &own, &own_g),
            MapWriter::Direct {
                deny_setgroups: true
            }
        );
        assert_eq!(choose_writer(1000, 1000, &sub, &own_g), MapWriter::Helpers);
        assert_eq!(choose_writer(1000, 1000, &own, &sub), MapWriter::Helpers);
        // Someone else's id is never "own".
        let other = parse_map("0 1001 1\n").unwrap();
        assert_eq!(choose_writer(1000, 1000, &other, &own), MapWriter::Helpers);
        assert_eq!(
            helper_args(42, &sub),
            ["42", "0", "1000", "1", "1", "100000", "65536"]
        );
    }

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    const USERNS: &str = r#""namespaces":[{"type":"user"},{"type":"mount"}],
        "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
        "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]"#;

    #[test]
    fn unprivileged_checks() {
        let s = spec(&format!(
            r#"{{"ociVersion":"1.3.0","process":{{"cwd":"/","user":{{"uid":0,"gid":0}}}},"linux":{{{USERNS}}}}}"#
        ));
        check_spec(&s, 1000, 1000, false).unwrap();
        check_spec(&s, 0, 0, false).unwrap();
        let e = check_spec(&s, 1001, 1000, false).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.uidMappings: maps more than your own uid 1001"),
            "{e}"
        );
        check_spec(&s, 1001, 1000, true).unwrap();

        let s = spec(r#"{"ociVersion":"1.3.0","linux":{"namespaces":[{"type":"mount"}]}}"#);
        let e = check_spec(&s, 1000, 1000, true).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.namespaces: running as an unprivileged user"),
            "{e}"
        );
        check_spec(&s, 0, 0, false).unwrap();

        let s = spec(&format!(
            r#"{{"ociVersion":"1.3.0","linux":{{{USERNS}}},
            "mounts":[{{"destination":"/d","type":"bind","source":"/x","options":["rbind","idmap"]}}]}}"#
        ));
        let e = check_spec(&s, 1000, 1000, true).unwrap_err().to_string();
        assert!(
            e.starts_with("mounts[0]: id-mapped mounts need a privileged"),
            "{e}"
        );
    }

    #[test]
    fn process_user_must_be_mapped() {
        let s = spec(&format!(
            r#"{{"ociVersion":"1.3.0","process":{{"cwd":"/","user":{{"uid":5,"gid":0}}}},"linux":{{{USERNS}}}}}"#
        ));
        let e = check_spec(&s, 0, 0, false).unwrap_err().to_string();
        assert_eq!(e, "process.user.uid: 5 is not mapped by linux.uidMappings");
        let s = spec(&format!(
            r#"{{"ociVersion":"1.3.0","process":{{"cwd":"/","user":{{"uid":0,"gid":0,"additionalGids":[0,7]}}}},"linux":{{{USERNS}}}}}"#
        ));
        let e = check_spec(&s, 0, 0, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "process.user.additionalGids[1]: 7 is not mapped by linux.gidMappings"
        );
    }

    #[test]
    fn mapping_namespace_has_the_maps() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let fd = mapping_namespace("0 100000 10\n", "0 200000 5\n20 300 1\n").unwrap();
        // Enter it in a child and read the maps back from there.
        use std::os::fd::AsRawFd;
        let raw = fd.as_raw_fd();
        let code = crate::testing::in_child_exit_code(|| {
            // SAFETY: setns on a valid user namespace fd in a single-threaded child.
            if unsafe { libc::setns(raw, libc::CLONE_NEWUSER) } != 0 {
                return 2;
            }
            let u = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
            let g = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
            let norm = |s: &str| {
                s.lines()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
            };
            if norm(&u) == ["0 100000 10"] && norm(&g) == ["0 200000 5", "20 300 1"] {
                0
            } else {
                3
            }
        });
        assert_eq!(code, 0);
    }
}

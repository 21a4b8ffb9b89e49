//! Mount option strings → what to hand to mount(2) and mount_setattr(2).
//!
//! Pure: unit-tested without root.

use crate::error::{Error, Result};

// Raw MS_* values: kept as plain u64 so a plan is `Copy`-cheap and the
// table below reads like the kernel's uapi header.
pub const MS_RDONLY: u64 = libc::MS_RDONLY;
pub const MS_NOSUID: u64 = libc::MS_NOSUID;
pub const MS_NODEV: u64 = libc::MS_NODEV;
pub const MS_NOEXEC: u64 = libc::MS_NOEXEC;
pub const MS_SYNCHRONOUS: u64 = libc::MS_SYNCHRONOUS;
pub const MS_REMOUNT: u64 = libc::MS_REMOUNT;
pub const MS_MANDLOCK: u64 = libc::MS_MANDLOCK;
pub const MS_DIRSYNC: u64 = libc::MS_DIRSYNC;
pub const MS_NOSYMFOLLOW: u64 = 256;
pub const MS_NOATIME: u64 = libc::MS_NOATIME;
pub const MS_NODIRATIME: u64 = libc::MS_NODIRATIME;
pub const MS_BIND: u64 = libc::MS_BIND;
pub const MS_REC: u64 = libc::MS_REC;
pub const MS_SILENT: u64 = libc::MS_SILENT;
pub const MS_UNBINDABLE: u64 = libc::MS_UNBINDABLE;
pub const MS_PRIVATE: u64 = libc::MS_PRIVATE;
pub const MS_SLAVE: u64 = libc::MS_SLAVE;
pub const MS_SHARED: u64 = libc::MS_SHARED;
pub const MS_RELATIME: u64 = libc::MS_RELATIME;
pub const MS_I_VERSION: u64 = libc::MS_I_VERSION;
pub const MS_STRICTATIME: u64 = libc::MS_STRICTATIME;
pub const MS_LAZYTIME: u64 = libc::MS_LAZYTIME;

/// The per-mount atime bits: setting one mode means dropping the others.
pub const MS_ATIME_MASK: u64 = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;

// mount_setattr(2) attributes (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// Attributes for one recursive mount_setattr(2) call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecAttr {
    pub set: u64,
    pub clr: u64,
}

impl RecAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0
    }
}

/// The parsed `options` of one mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags for the mount(2) call (MS_BIND/MS_REC included for binds).
    pub flags: u64,
    /// Propagation changes, each applied with its own mount(2) call, in order.
    pub propagation: Vec<u64>,
    /// Recursive attributes (rro, rnosuid, ...) for mount_setattr(2).
    pub rec: RecAttr,
    /// Filesystem-specific options, comma-separated (the `data` argument).
    pub data: String,
    /// "bind" or "rbind" was given.
    pub bind: bool,
    /// `tmpcopyup` was given (not implemented: the caller warns).
    pub tmpcopyup: bool,
    /// `idmap` (Some(false)) or `ridmap` (Some(true)): an id-mapped mount,
    /// the mapping applied recursively for ridmap.
    pub idmap: Option<bool>,
}

enum Opt {
    Set(u64),
    Clear(u64),
    /// An atime mode: replaces the other atime bits.
    Atime(u64),
    Propagation(u64),
    Rec(RecAttr),
    Bind(bool),
    Ignore,
    TmpCopyUp,
    IdMap(bool),
}

fn lookup(opt: &str) -> Option<Opt> {
    use Opt::*;
    let rec = |set, clr| Rec(RecAttr { set, clr });
    // atime modes: the kernel rejects a partial clear of MOUNT_ATTR__ATIME,
    // so every recursive atime option sets a whole mode. The "no*"/"atime"
    // negations fall back to the kernel default, relatime.
    let rec_atime = |mode| {
        Rec(RecAttr {
            set: mode,
            clr: MOUNT_ATTR__ATIME,
        })
    };
    Some(match opt {
        "defaults" => Ignore,
        "ro" => Set(MS_RDONLY),
        "rw" => Clear(MS_RDONLY),
        "nosuid" => Set(MS_NOSUID),
        "suid" => Clear(MS_NOSUID),
        "nodev" => Set(MS_NODEV),
        "dev" => Clear(MS_NODEV),
        "noexec" => Set(MS_NOEXEC),
        "exec" => Clear(MS_NOEXEC),
        "sync" => Set(MS_SYNCHRONOUS),
        "async" => Clear(MS_SYNCHRONOUS),
        "dirsync" => Set(MS_DIRSYNC),
        "remount" => Set(MS_REMOUNT),
        "mand" => Set(MS_MANDLOCK),
        "nomand" => Clear(MS_MANDLOCK),
        "noatime" => Atime(MS_NOATIME),
        "atime" | "norelatime" | "nostrictatime" => Atime(0),
        "relatime" => Atime(MS_RELATIME),
        "strictatime" => Atime(MS_STRICTATIME),
        "nodiratime" => Set(MS_NODIRATIME),
        "diratime" => Clear(MS_NODIRATIME),
        "lazytime" => Set(MS_LAZYTIME),
        "nolazytime" => Clear(MS_LAZYTIME),
        "silent" => Set(MS_SILENT),
        "loud" => Clear(MS_SILENT),
        "iversion" => Set(MS_I_VERSION),
        "noiversion" => Clear(MS_I_VERSION),
        "nosymfollow" => Set(MS_NOSYMFOLLOW),
        "symfollow" => Clear(MS_NOSYMFOLLOW),
        "bind" => Bind(false),
        "rbind" => Bind(true),
        "private" => Propagation(MS_PRIVATE),
        "rprivate" => Propagation(MS_PRIVATE | MS_REC),
        "shared" => Propagation(MS_SHARED),
        "rshared" => Propagation(MS_SHARED | MS_REC),
        "slave" => Propagation(MS_SLAVE),
        "rslave" => Propagation(MS_SLAVE | MS_REC),
        "unbindable" => Propagation(MS_UNBINDABLE),
        "runbindable" => Propagation(MS_UNBINDABLE | MS_REC),
        "rro" => rec(MOUNT_ATTR_RDONLY, 0),
        "rrw" => rec(0, MOUNT_ATTR_RDONLY),
        "rnosuid" => rec(MOUNT_ATTR_NOSUID, 0),
        "rsuid" => rec(0, MOUNT_ATTR_NOSUID),
        "rnodev" => rec(MOUNT_ATTR_NODEV, 0),
        "rdev" => rec(0, MOUNT_ATTR_NODEV),
        "rnoexec" => rec(MOUNT_ATTR_NOEXEC, 0),
        "rexec" => rec(0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => rec(MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => rec(0, MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => rec(MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => rec(0, MOUNT_ATTR_NOSYMFOLLOW),
        "rnoatime" => rec_atime(MOUNT_ATTR_NOATIME),
        "rstrictatime" => rec_atime(MOUNT_ATTR_STRICTATIME),
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => rec_atime(MOUNT_ATTR_RELATIME),
        "tmpcopyup" => TmpCopyUp,
        "idmap" => IdMap(false),
        "ridmap" => IdMap(true),
        _ => return None,
    })
}

/// Parse a mount's options. `field` names the options in errors
/// (e.g. "mounts[2].options").
pub fn parse(options: &[String], field: &str) -> Result<MountOptions> {
    let mut out = MountOptions::default();
    for opt in options {
        match lookup(opt) {
            Some(Opt::Set(f)) => out.flags |= f,
            Some(Opt::Clear(f)) => out.flags &= !f,
            Some(Opt::Atime(f)) => out.flags = (out.flags & !MS_ATIME_MASK) | f,
            Some(Opt::Propagation(p)) => out.propagation.push(p),
            Some(Opt::Rec(r)) => {
                // Later options win over earlier ones, as with plain flags.
                out.rec.set = (out.rec.set & !r.clr & !r.set) | r.set;
                out.rec.clr = (out.rec.clr & !r.set) | r.clr;
            }
            Some(Opt::Bind(rec)) => {
                out.bind = true;
                out.flags |= MS_BIND;
                if rec {
                    out.flags |= MS_REC;
                }
            }
            Some(Opt::Ignore) => {}
            Some(Opt::TmpCopyUp) => out.tmpcopyup = true,
            Some(Opt::IdMap(rec)) => {
                out.idmap = Some(out.idmap.unwrap_or(false) || rec);
            }
            None if opt.is_empty() => {}
            // Userspace-only hints (x-systemd.*, x-initrd.mount): never for the kernel.
            None if opt.starts_with("x-") => {}
            None => {
                if opt.contains('\0') {
                    return Err(Error::config(
                        field,
                        format!("{opt:?}: contains a NUL byte"),
                    ));
                }
                if !out.data.is_empty() {
                    out.data.push(',');
                }
                out.data.push_str(opt);
            }
        }
    }
    Ok(out)
}

/// statvfs(3)'s ST_RELATIME (the kernel's MNT_RELATIME bit in f_flag); the
/// libc crate defines it for glibc only.
const ST_RELATIME: u64 = 0x1000;

/// Convert statvfs(3) `f_flag` bits into the MS_* flags a bind remount must
/// repeat: in a user namespace the kernel refuses to drop flags that a more
/// privileged namespace set (they are "locked").
pub fn locked_flags_from_statvfs(f_flag: u64) -> u64 {
    let mut flags = 0;
    for (st, ms) in [
        (libc::ST_RDONLY, MS_RDONLY),
        (libc::ST_NOSUID, MS_NOSUID),
        (libc::ST_NODEV, MS_NODEV),
        (libc::ST_NOEXEC, MS_NOEXEC),
        (libc::ST_NOATIME, MS_NOATIME),
        (libc::ST_NODIRATIME, MS_NODIRATIME),
        (ST_RELATIME, MS_RELATIME),
    ] {
        if f_flag & st != 0 {
            flags |= ms;
        }
    }
    flags
}

/// The flags for a retry of a bind remount that failed with EPERM: the
/// requested ones plus the locked ones; the atime mode must be the existing
/// one since it cannot be changed either.
pub fn merge_locked(requested: u64, existing: u64) -> u64 {
    let atime = existing & (MS_ATIME_MASK | MS_NODIRATIME);
    let kept = existing & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    (requested & !(MS_ATIME_MASK | MS_NODIRATIME)) | kept | atime
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        let v: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse(&v, "mounts[0].options").unwrap()
    }

    #[test]
    fn plain_flags_and_negations() {
        let o = p(&["nosuid", "nodev", "noexec", "ro"]);
        assert_eq!(o.flags, MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY);
        assert!(!o.bind);
        let o = p(&["ro", "rw", "nosuid", "suid", "sync", "async", "dev", "exec"]);
        assert_eq!(o.flags, 0);
        assert_eq!(p(&["defaults"]).flags, 0);
        assert_eq!(p(&["nosymfollow"]).flags, MS_NOSYMFOLLOW);
        assert_eq!(
            p(&["dirsync", "mand", "lazytime"]).flags,
            MS_DIRSYNC | MS_MANDLOCK | MS_LAZYTIME
        );
    }

    #[test]
    fn atime_modes_replace_each_other() {
        assert_eq!(p(&["noatime"]).flags, MS_NOATIME);
        assert_eq!(p(&["noatime", "relatime"]).flags, MS_RELATIME);
        assert_eq!(p(&["relatime", "strictatime"]).flags, MS_STRICTATIME);
        assert_eq!(p(&["strictatime", "nostrictatime"]).flags, 0);
        assert_eq!(
            p(&["nodiratime", "noatime"]).flags,
            MS_NODIRATIME | MS_NOATIME
        );
        assert_eq!(p(&["nodiratime", "diratime"]).flags, 0);
    }

    #[test]
    fn bind_and_rbind() {
        let o = p(&["bind", "ro"]);
        assert!(o.bind);
        assert_eq!(o.flags, MS_BIND | MS_RDONLY);
        let o = p(&["rbind"]);
        assert_eq!(o.flags, MS_BIND | MS_REC);
    }

    #[test]
    fn propagation_kept_in_order() {
        let o = p(&[
            "rbind",
            "rprivate",
            "shared",
            "runbindable",
            "slave",
            "rslave",
            "private",
            "unbindable",
            "rshared",
        ]);
        assert_eq!(
            o.propagation,
            vec![
                MS_PRIVATE | MS_REC,
                MS_SHARED,
                MS_UNBINDABLE | MS_REC,
                MS_SLAVE,
                MS_SLAVE | MS_REC,
                MS_PRIVATE,
                MS_UNBINDABLE,
                MS_SHARED | MS_REC
            ]
        );
        assert_eq!(o.flags, MS_BIND | MS_REC);
    }

    #[test]
    fn recursive_attributes() {
        let o = p(&[
            "rbind",
            "rro",
            "rnosuid",
            "rnodev",
            "rnoexec",
            "rnodiratime",
            "rnosymfollow",
        ]);
        assert_eq!(
            o.rec,
            RecAttr {
                set: MOUNT_ATTR_RDONLY
                    | MOUNT_ATTR_NOSUID
                    | MOUNT_ATTR_NODEV
                    | MOUNT_ATTR_NOEXEC
                    | MOUNT_ATTR_NODIRATIME
                    | MOUNT_ATTR_NOSYMFOLLOW,
                clr: 0
            }
        );
        let o = p(&["rro", "rrw"]);
        assert_eq!(
            o.rec,
            RecAttr {
                set: 0,
                clr: MOUNT_ATTR_RDONLY
            }
        );
        let o = p(&["rrw", "rro"]);
        assert_eq!(
            o.rec,
            RecAttr {
                set: MOUNT_ATTR_RDONLY,
                clr: 0
            }
        );
        let o = p(&["rsuid", "rdev", "rexec", "rdiratime", "rsymfollow"]);
        assert_eq!(o.rec.set, 0);
        assert_eq!(
            o.rec.clr,
            MOUNT_ATTR_NOSUID
                | MOUNT_ATTR_NODEV
                | MOUNT_ATTR_NOEXEC
                | MOUNT_ATTR_NODIRATIME
                | MOUNT_ATTR_NOSYMFOLLOW
        );
    }

    #[test]
    fn recursive_atime_sets_a_whole_mode() {
        let o = p(&["rnoatime"]);
        assert_eq!(
            o.rec,
            RecAttr {
                set: MOUNT_ATTR_NOATIME,
                clr: MOUNT_ATTR__ATIME
            }
        );
        let o = p(&["rnoatime", "rstrictatime"]);
        assert_eq!(
            o.rec,
            RecAttr {
                set: MOUNT_ATTR_STRICTATIME,
                clr: MOUNT_ATTR__ATIME
            }
        );
        for neg in ["rrelatime", "ratime", "rnorelatime", "rnostrictatime"] {
            let o = p(&["rnoatime", neg]);
            assert_eq!(
                o.rec,
                RecAttr {
                    set: MOUNT_ATTR_RELATIME,
                    clr: MOUNT_ATTR__ATIME
                },
                "{neg}"
            );
        }
    }

    #[test]
    fn unknown_options_become_data() {
        let o = p(&[
            "nosuid",
            "size=65536k",
            "mode=755",
            "",
            "x-systemd.automount",
            "newinstance",
        ]);
        assert_eq!(o.flags, MS_NOSUID);
        assert_eq!(o.data, "size=65536k,mode=755,newinstance");
        assert!(p(&["tmpcopyup"]).tmpcopyup);
    }

    #[test]
    fn idmap_options_and_nul() {
        assert_eq!(p(&["rbind", "idmap"]).idmap, Some(false));
        assert_eq!(p(&["ridmap"]).idmap, Some(true));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(true));
        assert_eq!(p(&["rbind"]).idmap, None);
        assert_eq!(p(&["idmap"]).data, "");
        let e = parse(&["a\0b".to_string()], "mounts[1].options").unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn locked_flags() {
        let f = locked_flags_from_statvfs(libc::ST_NOSUID | libc::ST_NODEV | ST_RELATIME);
        assert_eq!(f, MS_NOSUID | MS_NODEV | MS_RELATIME);
        // The requested noatime cannot replace a locked relatime.
        let m = merge_locked(MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOATIME, f);
        assert_eq!(
            m,
            MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_RELATIME
        );
    }
}

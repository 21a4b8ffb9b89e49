//! Device nodes in the container's /dev: validation (pure) and creation.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::paths::{self, ContainerPath, Kind, ProcFd};
use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// Where in the container ("/dev/null").
    pub path: ContainerPath,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub file_type: u32,
    pub major: u64,
    pub minor: u64,
    /// Permission bits only.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (config-linux.md "Default Devices").
pub fn default_devices() -> Vec<DevicePlan> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .filter_map(|(name, major, minor)| {
        let path =
            ContainerPath::parse(Path::new(&format!("/dev/{name}")), "default device").ok()?;
        Some(DevicePlan {
            path,
            file_type: libc::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
    })
    .collect()
}

/// Validate `linux.devices[index]`.
pub fn validate(dev: &LinuxDevice, index: usize) -> Result<DevicePlan> {
    let field = |f: &str| format!("linux.devices[{index}].{f}");
    let path = ContainerPath::parse(dev.path(), &field("path"))?;
    if !path.abs.as_bytes().starts_with(b"/dev/") {
        return Err(Error::config(
            field("path"),
            format!("{}: must be under /dev", dev.path().display()),
        ));
    }
    let file_type = match dev.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::config(
                field("type"),
                "\"a\" is not a device node type (c, b, u or p)",
            ))
        }
    };
    let number = |v: i64, f: &str| -> Result<u64> {
        if !(0..=u32::MAX as i64).contains(&v) {
            return Err(Error::config(field(f), format!("{v}: out of range")));
        }
        Ok(v as u64)
    };
    let major = number(dev.major(), "major")?;
    let minor = number(dev.minor(), "minor")?;
    // A missing major/minor deserializes as 0; 0:0 is no device at all.
    if file_type != libc::S_IFIFO && major == 0 && minor == 0 {
        return Err(Error::config(
            field("major"),
            "major and minor are required for c, u and b devices",
        ));
    }
    let mode = dev.file_mode().unwrap_or(0o666);
    if mode & !0o7777 != 0 {
        // Some generators put the file type bits in fileMode: accept those
        // only when they agree with `type`.
        if mode & libc::S_IFMT != file_type {
            return Err(Error::config(
                field("fileMode"),
                format!("{mode:#o}: file type bits do not match type"),
            ));
        }
    }
    Ok(DevicePlan {
        path,
        file_type,
        major,
        minor,
        mode: mode & 0o7777,
        uid: dev.uid().unwrap_or(0),
        gid: dev.gid().unwrap_or(0),
    })
}

/// The user's devices, plus the defaults they do not override.
pub fn plan(devices: &[LinuxDevice]) -> Result<Vec<DevicePlan>> {
    let mut out = Vec::with_capacity(devices.len() + 6);
    for d in default_devices() {
        if !devices.iter().any(|u| {
            ContainerPath::parse(u.path(), "")
                .map(|p| p.abs == d.path.abs)
                .unwrap_or(false)
        }) {
            out.push(d);
        }
    }
    for (i, d) in devices.iter().enumerate() {
        let p = validate(d, i)?;
        if out.iter().any(|o| o.path.abs == p.path.abs) {
            return Err(Error::config(
                format!("linux.devices[{i}].path"),
                format!("{}: duplicate device", p.path.display()),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// The directory the last device node went into, kept for the next one
/// with the same parent (most are in /dev): resolved and checked once.
#[derive(Default)]
pub struct ParentDirs {
    last: Option<(Vec<u8>, OwnedFd)>,
}

impl ParentDirs {
    fn get(
        &mut self,
        root: BorrowedFd<'_>,
        rel: &[u8],
        dev: &DevicePlan,
    ) -> Result<BorrowedFd<'_>> {
        if !matches!(&self.last, Some((p, _)) if p.as_slice() == rel) {
            let c = CString::new(rel).map_err(|_| Error::msg("NUL in device path"))?;
            let fd = paths::ensure(root, &c, Kind::Dir)?;
            // The parent as written is under /dev (validated): if it resolves
            // into procfs or sysfs a symlink is at work, and no node goes there.
            super::procfs::refuse_kernel_fs(fd.as_fd(), dev.path.abs.as_bytes())?;
            self.last = Some((rel.to_vec(), fd));
        }
        match &self.last {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(Error::msg("device parent directory missing")),
        }
    }
}

/// Create one device node. With `bind` (a user namespace, where mknod is
/// never allowed) or when mknod fails with EPERM, the host's node at the
/// same path is bind-mounted over an empty file instead.
pub fn create(
    root: BorrowedFd<'_>,
    parents: &mut ParentDirs,
    dev: &DevicePlan,
    bind: bool,
) -> Result<()> {
    let Some((parent_rel, name)) = dev.path.split_last() else {
        return Err(Error::msg("device path is /"));
    };
    let name = CString::new(name).map_err(|_| Error::msg("NUL in device path"))?;
    let parent = parents.get(root, parent_rel, dev)?;
    if !bind {
        let rdev = libc::makedev(dev.major as u32, dev.minor as u32);
        // SAFETY: `parent` is an open directory fd, `name` is NUL-terminated
        // and a single component; mknodat does not follow symlinks.
        let r = unsafe {
            libc::mknodat(
                parent.as_raw_fd(),
                name.as_ptr(),
                dev.file_type | dev.mode,
                rdev,
            )
        };
        if r == 0 {
            // SAFETY: as above; AT_SYMLINK_NOFOLLOW keeps the chown on the node.
            let r = unsafe {
                libc::fchownat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    dev.uid,
                    dev.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if r < 0 {
                return Err(Error::sys_path("chown", dev.path.as_path(), Errno::last()));
            }
            return Ok(());
        }
        match Errno::last() {
            Errno::EEXIST => return check_existing(parent.as_fd(), &name, dev),
            Errno::EPERM => {}
            e => return Err(Error::sys_path("mknod", dev.path.as_path(), e)),
        }
    }
    bind_host_node(root, parent.as_fd(), &name, dev)
}

fn check_existing(parent: BorrowedFd<'_>, name: &CStr, dev: &DevicePlan) -> Result<()> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, NUL-terminated name, `st` writable.
    let r = unsafe {
        libc::fstatat(
            parent.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        return Err(Error::sys_path("stat", dev.path.as_path(), Errno::last()));
    }
    let same_type = st.st_mode & libc::S_IFMT == dev.file_type;
    let same_dev = dev.file_type == libc::S_IFIFO
        || (libc::major(st.st_rdev) as u64 == dev.major
            && libc::minor(st.st_rdev) as u64 == dev.minor);
    if same_type && same_dev {
        return Ok(());
    }
    Err(Error::msg(format!(
        "{}: a file that is not the requested device already exists",
        dev.path.display()
    )))
}

fn bind_host_node(
    root: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    name: &CStr,
    dev: &DevicePlan,
) -> Result<()> {
    // SAFETY: valid directory fd, NUL-terminated single component.
    let r = unsafe { libc::mknodat(parent.as_raw_fd(), name.as_ptr(), libc::S_IFREG, 0) };
    if r < 0 && Errno::last() != Errno::EEXIST {
        return Err(Error::sys_path("create", dev.path.as_path(), Errno::last()));
    }
    let target = paths::open_in_root(root, &dev.path.rel, libc::O_PATH)
        .map_err(|e| Error::sys_path("open", dev.path.as_path(), e))?;
    let t = ProcFd::new(target.as_fd());
    // SAFETY: both paths NUL-terminated; null fstype/data are allowed for MS_BIND.
    let r = unsafe {
        libc::mount(
            dev.path.abs.as_ptr(),
            t.as_cstr().as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(Error::sys_path(
            "bind mount",
            dev.path.as_path(),
            Errno::last(),
        ))
        .context("bind the host device (mknod not allowed)");
    }
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, and /dev/ptmx when /dev/pts is a devpts.
pub fn symlinks(root: BorrowedFd<'_>, ptmx: bool) -> Result<()> {
    let dev = paths::ensure(root, c"dev", Kind::Dir)?;
    super::procfs::refuse_kernel_fs(dev.as_fd(), b"/dev")?;
    for (target, name) in [
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
    ] {
        // SAFETY: NUL-terminated strings, valid directory fd.
        let r = unsafe { libc::symlinkat(target.as_ptr(), dev.as_raw_fd(), name.as_ptr()) };
        if r < 0 && Errno::last() != Errno::EEXIST {
            return Err(Error::sys_path(
                "symlink",
                format!("/dev/{}", name.to_string_lossy()),
                Errno::last(),
            ));
        }
    }
    if ptmx {
        // SAFETY: valid directory fd, NUL-terminated name.
        let r = unsafe { libc::unlinkat(dev.as_raw_fd(), c"ptmx".as_ptr(), 0) };
        if r < 0 && Errno::last() != Errno::ENOENT {
            return Err(Error::sys_path("unlink", "/dev/ptmx", Errno::last()));
        }
        // SAFETY: as above.
        let r = unsafe { libc::symlinkat(c"pts/ptmx".as_ptr(), dev.as_raw_fd(), c"ptmx".as_ptr()) };
        if r < 0 {
            return Err(Error::sys_path("symlink", "/dev/ptmx", Errno::last()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(json: &str) -> LinuxDevice {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn validates_devices() {
        let d = validate(&dev(r#"{"path":"/dev/mynull","type":"c","major":1,"minor":3,"fileMode":438,"uid":1000}"#), 0).unwrap();
        assert_eq!(d.file_type, libc::S_IFCHR);
        assert_eq!(
            (d.major, d.minor, d.mode, d.uid, d.gid),
            (1, 3, 0o666, 1000, 0)
        );
        let d = validate(
            &dev(r#"{"path":"/dev/sda","type":"b","major":8,"minor":0}"#),
            0,
        )
        .unwrap();
        assert_eq!(d.file_type, libc::S_IFBLK);
        assert_eq!(d.mode, 0o666);
        let d = validate(&dev(r#"{"path":"/dev/fifo","type":"p"}"#), 0).unwrap();
        assert_eq!(d.file_type, libc::S_IFIFO);
        let d = validate(
            &dev(r#"{"path":"/dev/x","type":"u","major":4,"minor":1,"fileMode":8630}"#),
            0,
        )
        .unwrap();
        assert_eq!((d.file_type, d.mode), (libc::S_IFCHR, 0o666));

        let e = validate(
            &dev(r#"{"path":"/etc/passwd","type":"c","major":1,"minor":3}"#),
            2,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.devices[2].path: /etc/passwd: must be under /dev"
        );
        let e = validate(
            &dev(r#"{"path":"/dev/../etc/x","type":"c","major":1,"minor":3}"#),
            0,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("linux.devices[0].path"), "{e}");
        let e = validate(
            &dev(r#"{"path":"dev/x","type":"c","major":1,"minor":3}"#),
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be absolute"), "{e}");
        let e = validate(&dev(r#"{"path":"/dev/x","type":"a"}"#), 1).unwrap_err();
        assert!(e.to_string().starts_with("linux.devices[1].type"), "{e}");
        let e = validate(&dev(r#"{"path":"/dev/x","type":"c"}"#), 1).unwrap_err();
        assert!(e.to_string().starts_with("linux.devices[1].major"), "{e}");
        let e = validate(
            &dev(r#"{"path":"/dev/x","type":"c","major":-1,"minor":3}"#),
            1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = validate(
            &dev(r#"{"path":"/dev/x","type":"c","major":1,"minor":3,"fileMode":25014}"#),
            1,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("linux.devices[1].fileMode"),
            "{e}"
        );
    }

    #[test]
    fn defaults_merge_with_user_devices() {
        let all = plan(&[]).unwrap();
        let names: Vec<_> = all.iter().map(|d| d.path.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
        let user = [dev(
            r#"{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384}"#,
        )];
        let all = plan(&user).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(
            all.iter()
                .find(|d| d.path.display() == "/dev/null")
                .unwrap()
                .mode,
            0o600
        );
        let dup = [
            dev(r#"{"path":"/dev/a","type":"c","major":1,"minor":3}"#),
            dev(r#"{"path":"/dev//a","type":"c","major":1,"minor":3}"#),
        ];
        assert!(plan(&dup).unwrap_err().to_string().contains("duplicate"));
    }
}

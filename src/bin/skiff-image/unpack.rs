//! Applying layers to a root file system without ever leaving it.
//!
//! Every path is resolved with openat2(RESOLVE_IN_ROOT) from an fd of the
//! target directory, so `..`, absolute symlinks and symlinks planted by an
//! earlier entry all resolve inside the target; the last component is then
//! handled with *at() calls that do not follow it. A path's `..` is also
//! cleaned lexically first, clamped at the root.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use skiff::error::{retry_eintr as retry, Error, Result};

type SysResult<T> = std::result::Result<T, Errno>;

fn cvt(rc: libc::c_int) -> SysResult<libc::c_int> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

/// openat2 with the dirfd as the root of resolution.
fn open_in_root(root: RawFd, path: &CStr, flags: libc::c_int, mode: u32) -> SysResult<OwnedFd> {
    skiff::rootfs::openat2(
        root,
        path,
        flags,
        mode,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> SysResult<OwnedFd> {
    retry(|| {
        // SAFETY: plain openat on a NUL-terminated name.
        let fd = cvt(unsafe {
            libc::openat(
                dir,
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })?;
        // SAFETY: the kernel just returned this fd to us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> SysResult<()> {
    // SAFETY: plain syscall on a NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(drop)
}

fn lstat_at(dir: RawFd, name: &CStr) -> SysResult<libc::stat> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer, the name is NUL-terminated.
    cvt(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// Removes `name` in `dir` whatever it is (a directory recursively).
fn remove_all_at(dir: RawFd, name: &CStr) -> SysResult<()> {
    match unlinkat(dir, name, 0) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {
            let sub = openat(
                dir,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            clear_dir(sub.as_raw_fd(), |_| false)?;
            unlinkat(dir, name, libc::AT_REMOVEDIR)
        }
        Err(e) => Err(e),
    }
}

/// Removes every child of `dir` for which `keep` says no.
fn clear_dir(dir: RawFd, keep: impl Fn(&[u8]) -> bool) -> SysResult<()> {
    let names: Vec<CString> = {
        let d = nix::dir::Dir::openat(
            Some(dir),
            ".",
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )?;
        let mut d = d;
        d.iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .filter(|n| !keep(n.as_bytes()))
            .collect()
    };
    for n in names {
        remove_all_at(dir, &n)?;
    }
    Ok(())
}

/// Path components after lexical cleaning, clamped at the root.
pub fn clean(p: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            v.push(b'/');
        }
        v.extend_from_slice(c);
    }
    v
}

fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::msg("layer entry name contains a NUL byte"))
}

/// Wraps a layer blob in the right decompressor, by its first bytes.
pub fn decompress<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(1 << 20, r);
    let head = br
        .fill_buf()
        .map_err(|e| Error::msg(format!("read layer: {e}")))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(br)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::with_buffer(br)
            .map_err(|e| Error::msg(format!("zstd layer: {e}")))?;
        Ok(Box::new(d))
    } else {
        Ok(Box::new(br))
    }
}

#[derive(Default)]
struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

pub struct Applier {
    root: OwnedFd,
    root_path: PathBuf,
    /// Ownership is applied only when we may (root).
    chown: bool,
    /// Directory times (and modes, unprivileged) set after all layers,
    /// since adding entries changes them.
    deferred: HashMap<Vec<u8>, (i64, Option<u32>)>,
    /// The last parent directory resolved. An entry only changes children
    /// of its parent, never what the parent path resolves to, so this
    /// stays valid for the next entry with the same parent.
    cache: Option<(Vec<u8>, OwnedFd)>,
    buf: Vec<u8>,
    pub warnings: Vec<String>,
    /// Asked between entries and buffers: Some(reason) stops the apply.
    cancel: Option<fn() -> Option<String>>,
}

impl Applier {
    pub fn new(root_path: &Path) -> Result<Applier> {
        let c = cstring(root_path.as_os_str().as_encoded_bytes())?;
        let root = openat(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| Error::sys_path("open rootfs", root_path, e))?;
        Ok(Applier {
            root,
            root_path: root_path.to_path_buf(),
            // SAFETY: geteuid has no failure modes.
            chown: unsafe { libc::geteuid() } == 0,
            deferred: HashMap::new(),
            cache: None,
            buf: vec![0u8; 256 * 1024],
            warnings: Vec::new(),
            cancel: None,
        })
    }

    /// `f` is asked between entries and between buffers of a file: when
    /// it says Some(reason), apply fails with that reason.
    pub fn set_cancel(&mut self, f: fn() -> Option<String>) {
        self.cancel = Some(f);
    }

    fn check_cancel(&self) -> Result<()> {
        match self.cancel.and_then(|f| f()) {
            Some(why) => Err(Error::msg(why)),
            None => Ok(()),
        }
    }

    fn err(&self, op: &str, path: &[u8], e: Errno) -> Error {
        let p = self.root_path.join(String::from_utf8_lossy(path).as_ref());
        Error::sys_path(op, p, e)
    }

    /// An O_PATH fd of the directory `comps` inside the root, created
    /// (mode 0755) where missing.
    fn dir_fd(&mut self, comps: &[&[u8]]) -> Result<RawFd> {
        if comps.is_empty() {
            return Ok(self.root.as_raw_fd());
        }
        let path = join(comps);
        if let Some((p, fd)) = &self.cache {
            if *p == path {
                return Ok(fd.as_raw_fd());
            }
        }
        let c = cstring(&path)?;
        let fd = match open_in_root(
            self.root.as_raw_fd(),
            &c,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => self.mkdir_parents(comps)?,
            Err(e) => return Err(self.err("resolve directory", &path, e)),
        };
        self.cache = Some((path, fd));
        Ok(self
            .cache
            .as_ref()
            .map(|(_, f)| f.as_raw_fd())
            .unwrap_or(-1))
    }

    fn mkdir_parents(&mut self, comps: &[&[u8]]) -> Result<OwnedFd> {
        let mut cur: Option<OwnedFd> = None;
        for i in 0..comps.len() {
            let prefix = join(&comps[..=i]);
            let c = cstring(&prefix)?;
            match open_in_root(
                self.root.as_raw_fd(),
                &c,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
            ) {
                Ok(fd) => cur = Some(fd),
                Err(Errno::ENOENT) => {
                    let parent = cur
                        .as_ref()
                        .map(|f| f.as_raw_fd())
                        .unwrap_or(self.root.as_raw_fd());
                    let name = cstring(comps[i])?;
                    // SAFETY: plain syscall on a NUL-terminated name.
                    match cvt(unsafe { libc::mkdirat(parent, name.as_ptr(), 0o755) }) {
                        Ok(_) => {}
                        Err(Errno::EEXIST) => {
                            return Err(self.err(
                                "create parent directory (a dangling symlink is in the way)",
                                &prefix,
                                Errno::EEXIST,
                            ))
                        }
                        Err(e) => return Err(self.err("create parent directory", &prefix, e)),
                    }
                    let fd = openat(
                        parent,
                        &name,
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )
                    .map_err(|e| self.err("open new directory", &prefix, e))?;
                    cur = Some(fd);
                }
                Err(e) => return Err(self.err("resolve directory", &prefix, e)),
            }
        }
        cur.ok_or_else(|| Error::msg("empty directory path"))
    }

    /// Applies one layer (any compression) on top of what is there.
    pub fn apply(&mut self, layer: impl Read) -> Result<()> {
        let r = decompress(layer)?;
        let mut ar = tar::Archive::new(r);
        let mut this_layer: HashSet<Vec<u8>> = HashSet::new();
        let entries = ar
            .entries()
            .map_err(|e| Error::msg(format!("read layer: {e}")))?;
        for entry in entries {
            self.check_cancel()?;
            let mut entry = entry.map_err(|e| Error::msg(format!("read layer entry: {e}")))?;
            self.entry(&mut entry, &mut this_layer)?;
        }
        Ok(())
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        this_layer: &mut HashSet<Vec<u8>>,
    ) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let comps = clean(&raw_path);
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let meta = self.meta(entry, &raw_path)?;

        if comps.is_empty() {
            // The root itself: only its metadata.
            if kind.is_dir() {
                let fd = self.root.as_raw_fd();
                self.set_fd_meta(fd, &meta, b".", true)?;
                self.deferred.insert(Vec::new(), (meta.mtime, None));
            }
            return Ok(());
        }
        let (name, parent) = comps.split_last().ok_or_else(|| Error::msg("empty path"))?;
        let name = *name;
        let full = join(&comps);

        // Whiteouts.
        if let Some(rest) = name.strip_prefix(b".wh.") {
            // Removing entries changes what paths resolve to: drop the cache.
            self.cache = None;
            let shown = || String::from_utf8_lossy(&full).into_owned();
            if rest.starts_with(b".wh.") && rest != b".wh..opq" {
                // aufs' own metadata (.wh..wh.plnk, .wh..wh.aufs), not a whiteout.
                self.warnings
                    .push(format!("skipped aufs metadata entry {}", shown()));
                return Ok(());
            }
            if rest.is_empty() || rest == b"." || rest == b".." || rest.contains(&b'/') {
                return Err(Error::msg(format!(
                    "layer entry {}: invalid whiteout (it must name a file)",
                    clip_bytes(&full)
                )));
            }
            // The directory it is in, resolved inside the root; when there is
            // none, there is nothing to remove (and nothing is created).
            let pfd = if parent.is_empty() {
                match openat(
                    self.root.as_raw_fd(),
                    c".",
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                ) {
                    Ok(fd) => fd,
                    Err(e) => return Err(self.err("open root", b".", e)),
                }
            } else {
                match open_in_root(
                    self.root.as_raw_fd(),
                    &cstring(&join(parent))?,
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                ) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
                    Err(e) => return Err(self.err("resolve whiteout directory", &full, e)),
                }
            };
            if rest == b".wh..opq" {
                let dir = join(parent);
                let d = openat(pfd.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| self.err("open opaque directory", &dir, e))?;
                clear_dir(d.as_raw_fd(), |child| {
                    let mut p = dir.clone();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(child);
                    this_layer.contains(&p)
                })
                .map_err(|e| self.err("clear opaque directory", &dir, e))?;
            } else {
                let victim = cstring(rest)?;
                remove_all_at(pfd.as_raw_fd(), &victim)
                    .map_err(|e| self.err("apply whiteout", &full, e))?;
            }
            return Ok(());
        }

        this_layer.insert(full.clone());
        let pfd = self.dir_fd(parent)?;
        let cname = cstring(name)?;

        match kind {
            tar::EntryType::Directory => {
                // SAFETY: plain syscall on a NUL-terminated name.
                match cvt(unsafe { libc::mkdirat(pfd, cname.as_ptr(), 0o700) }) {
                    Ok(_) => {}
                    Err(Errno::EEXIST) => {
                        let st = lstat_at(pfd, &cname).map_err(|e| self.err("stat", &full, e))?;
                        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                            // E.g. a symlink replaced by a directory.
                            self.cache = None;
                            unlinkat(pfd, &cname, 0).map_err(|e| self.err("unlink", &full, e))?;
                            // SAFETY: as above.
                            cvt(unsafe { libc::mkdirat(pfd, cname.as_ptr(), 0o700) })
                                .map_err(|e| self.err("mkdir", &full, e))?;
                        }
                    }
                    Err(e) => return Err(self.err("mkdir", &full, e)),
                }
                let fd = openat(
                    pfd,
                    &cname,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(|e| self.err("open directory", &full, e))?;
                self.set_fd_meta(fd.as_raw_fd(), &meta, &full, true)?;
                let deferred_mode = if self.chown { None } else { Some(meta.mode) };
                self.deferred.insert(full, (meta.mtime, deferred_mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
                let fd = match openat(pfd, &cname, flags, 0o600) {
                    Ok(fd) => fd,
                    Err(Errno::EEXIST) => {
                        self.cache = None;
                        remove_all_at(pfd, &cname).map_err(|e| self.err("replace", &full, e))?;
                        openat(pfd, &cname, flags, 0o600)
                            .map_err(|e| self.err("create file", &full, e))?
                    }
                    Err(e) => return Err(self.err("create file", &full, e)),
                };
                let mut f = File::from(fd);
                loop {
                    self.check_cancel()?;
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(Error::msg(format!(
                                "read layer entry {}: {e}",
                                String::from_utf8_lossy(&full)
                            )))
                        }
                    };
                    f.write_all(&self.buf[..n]).map_err(|e| {
                        Error::io(
                            "write",
                            self.root_path.join(String::from_utf8_lossy(&full).as_ref()),
                            e,
                        )
                    })?;
                }
                self.set_fd_meta(f.as_raw_fd(), &meta, &full, false)?;
                self.set_fd_times(f.as_raw_fd(), meta.mtime, &full)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::msg("symlink without target"))?
                    .into_owned();
                let ctarget = cstring(&target)?;
                let mk = || {
                    // SAFETY: plain syscall on NUL-terminated strings.
                    cvt(unsafe { libc::symlinkat(ctarget.as_ptr(), pfd, cname.as_ptr()) })
                };
                match mk() {
                    Ok(_) => {}
                    Err(Errno::EEXIST) => {
                        self.cache = None;
                        remove_all_at(pfd, &cname).map_err(|e| self.err("replace", &full, e))?;
                        mk().map_err(|e| self.err("symlink", &full, e))?;
                    }
                    Err(e) => return Err(self.err("symlink", &full, e)),
                }
                self.set_at_meta(pfd, &cname, &meta, &full, false)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::msg("hardlink without target"))?
                    .into_owned();
                let tcomps = clean(&target);
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(self.err("hardlink to the root", &full, Errno::EINVAL));
                };
                let tpath = join(&tcomps);
                let tparent_fd = if tparent.is_empty() {
                    openat(
                        self.root.as_raw_fd(),
                        c".",
                        libc::O_PATH | libc::O_DIRECTORY,
                        0,
                    )
                } else {
                    open_in_root(
                        self.root.as_raw_fd(),
                        &cstring(&join(tparent))?,
                        libc::O_PATH | libc::O_DIRECTORY,
                        0,
                    )
                };
                let tparent_fd = match tparent_fd {
                    Ok(fd) => fd,
                    Err(e) => return Err(self.err("resolve hardlink target", &tpath, e)),
                };
                let ctname = cstring(tname)?;
                let pfd = self.dir_fd(parent)?;
                let link = || {
                    // SAFETY: plain syscall; flags 0 links a final symlink
                    // itself, never what it points to.
                    cvt(unsafe {
                        libc::linkat(
                            tparent_fd.as_raw_fd(),
                            ctname.as_ptr(),
                            pfd,
                            cname.as_ptr(),
                            0,
                        )
                    })
                };
                match link() {
                    Ok(_) => {}
                    Err(Errno::EEXIST) => {
                        let same = match (
                            lstat_at(tparent_fd.as_raw_fd(), &ctname),
                            lstat_at(pfd, &cname),
                        ) {
                            (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
                            _ => false,
                        };
                        if !same {
                            self.cache = None;
                            remove_all_at(pfd, &cname)
                                .map_err(|e| self.err("replace", &full, e))?;
                            link().map_err(|e| self.err("hardlink", &full, e))?;
                        }
                    }
                    Err(e) => return Err(self.err("hardlink", &full, e)),
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ftype, dev) = match kind {
                    tar::EntryType::Char | tar::EntryType::Block => {
                        if !self.chown {
                            self.warnings.push(format!(
                                "skipped device node {} (needs root)",
                                String::from_utf8_lossy(&full)
                            ));
                            return Ok(());
                        }
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let t = if kind == tar::EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (t, libc::makedev(major, minor))
                    }
                    _ => (libc::S_IFIFO, 0),
                };
                let mk = || {
                    // SAFETY: plain syscall on a NUL-terminated name.
                    cvt(unsafe { libc::mknodat(pfd, cname.as_ptr(), ftype | 0o600, dev) })
                };
                match mk() {
                    Ok(_) => {}
                    Err(Errno::EEXIST) => {
                        self.cache = None;
                        remove_all_at(pfd, &cname).map_err(|e| self.err("replace", &full, e))?;
                        mk().map_err(|e| self.err("mknod", &full, e))?;
                    }
                    Err(e) => return Err(self.err("mknod", &full, e)),
                }
                self.set_at_meta(pfd, &cname, &meta, &full, true)?;
            }
            other => {
                self.warnings.push(format!(
                    "skipped {} (unsupported tar entry type {:?})",
                    String::from_utf8_lossy(&full),
                    other
                ));
            }
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, path: &[u8]) -> Result<Meta> {
        let bad = |what: &str, e: io::Error| {
            Error::msg(format!(
                "layer entry {}: bad {what}: {e}",
                String::from_utf8_lossy(path)
            ))
        };
        let h = entry.header();
        // Empty numeric fields (some writers leave them blank) mean 0.
        let mut m = Meta {
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mode: h.mode().map_err(|e| bad("mode", e))? & 0o7777,
            mtime: h.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let (Ok(k), v) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                let num = || {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.split('.').next()?.parse::<i64>().ok())
                };
                match k {
                    "uid" => m.uid = num().unwrap_or(m.uid as i64) as u64,
                    "gid" => m.gid = num().unwrap_or(m.gid as i64) as u64,
                    "mtime" => m.mtime = num().unwrap_or(m.mtime),
                    _ => {
                        if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                            if let Ok(c) = CString::new(x) {
                                m.xattrs.push((c, v.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    fn set_fd_meta(&mut self, fd: RawFd, m: &Meta, path: &[u8], dir: bool) -> Result<()> {
        if self.chown {
            // SAFETY: plain syscall on an fd we own.
            cvt(unsafe { libc::fchown(fd, m.uid as libc::uid_t, m.gid as libc::gid_t) })
                .map_err(|e| self.err("chown", path, e))?;
        }
        // Unprivileged, a directory stays writable for us until the end.
        let mode = if dir && !self.chown {
            m.mode | 0o700
        } else {
            m.mode
        };
        // SAFETY: plain syscall on an fd we own.
        cvt(unsafe { libc::fchmod(fd, mode) }).map_err(|e| self.err("chmod", path, e))?;
        for (k, v) in &m.xattrs {
            // SAFETY: name is NUL-terminated, value pointer/len come from a Vec.
            let rc = unsafe {
                libc::fsetxattr(
                    fd,
                    k.as_ptr(),
                    v.as_ptr() as *const libc::c_void,
                    v.len(),
                    0,
                )
            };
            if rc < 0 {
                let e = Errno::last();
                if matches!(e, Errno::EOPNOTSUPP | Errno::EPERM) {
                    self.warnings.push(format!(
                        "xattr {} on {} not set: {}",
                        k.to_string_lossy(),
                        String::from_utf8_lossy(path),
                        skiff::error::ErrnoText(e)
                    ));
                } else {
                    return Err(self.err("setxattr", path, e));
                }
            }
        }
        Ok(())
    }

    fn set_fd_times(&self, fd: RawFd, mtime: i64, path: &[u8]) -> Result<()> {
        let ts = [
            libc::timespec {
                tv_sec: mtime as libc::time_t,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: mtime as libc::time_t,
                tv_nsec: 0,
            },
        ];
        // SAFETY: `ts` is a valid array of two timespecs.
        cvt(unsafe { libc::futimens(fd, ts.as_ptr()) })
            .map_err(|e| self.err("set times", path, e))?;
        Ok(())
    }

    /// Metadata of a node that cannot be opened (symlink, device, fifo).
    fn set_at_meta(
        &self,
        dir: RawFd,
        name: &CStr,
        m: &Meta,
        path: &[u8],
        chmod: bool,
    ) -> Result<()> {
        if self.chown {
            // SAFETY: plain syscall, not following a final symlink.
            cvt(unsafe {
                libc::fchownat(
                    dir,
                    name.as_ptr(),
                    m.uid as libc::uid_t,
                    m.gid as libc::gid_t,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })
            .map_err(|e| self.err("chown", path, e))?;
        }
        if chmod {
            // The node was just created by us and is not a symlink.
            // SAFETY: plain syscall on a NUL-terminated name.
            cvt(unsafe { libc::fchmodat(dir, name.as_ptr(), m.mode, 0) })
                .map_err(|e| self.err("chmod", path, e))?;
        }
        let ts = [
            libc::timespec {
                tv_sec: m.mtime as libc::time_t,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: m.mtime as libc::time_t,
                tv_nsec: 0,
            },
        ];
        // SAFETY: valid timespec array, NUL-terminated name.
        cvt(unsafe { libc::utimensat(dir, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
            .map_err(|e| self.err("set times", path, e))?;
        Ok(())
    }

    /// Directory times (and unprivileged, modes) once every layer is in.
    pub fn finish(mut self) -> Result<Vec<String>> {
        let mut dirs: Vec<_> = self.deferred.drain().collect();
        // Deepest first, so setting a child's time does not touch a parent's after it.
        dirs.sort_by_key(|(p, _)| {
            std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count() + usize::from(!p.is_empty()))
        });
        for (path, (mtime, mode)) in dirs {
            let fd = if path.is_empty() {
                match openat(
                    self.root.as_raw_fd(),
                    c".",
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                ) {
                    Ok(fd) => fd,
                    Err(e) => return Err(self.err("open", b".", e)),
                }
            } else {
                match open_in_root(
                    self.root.as_raw_fd(),
                    &cstring(&path)?,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                ) {
                    Ok(fd) => fd,
                    // Removed or replaced by a later layer.
                    Err(Errno::ENOENT) | Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => continue,
                    Err(e) => return Err(self.err("open directory", &path, e)),
                }
            };
            if let Some(mode) = mode {
                // SAFETY: plain syscall on an fd we own.
                cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })
                    .map_err(|e| self.err("chmod", &path, e))?;
            }
            self.set_fd_times(fd.as_raw_fd(), mtime, &path)?;
        }
        Ok(std::mem::take(&mut self.warnings))
    }
}

/// Reads a file of the unpacked root file system without following any
/// symlink out of it (an image's /etc/passwd may point anywhere): Ok(None)
/// when there is none; an error when it is not a regular file (a FIFO
/// would block, a device node like /dev/zero never end) or holds more than
/// `max` bytes.
pub fn read_in_root(
    root: &Path,
    path: &str,
    max: u64,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let c = CString::new(root.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let rootfd = openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| format!("open {}: {e}", root.display()))?;
    let p = CString::new(path.trim_start_matches('/')).map_err(|e| e.to_string())?;
    let stat = |fd: RawFd| -> std::result::Result<libc::stat, String> {
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on an fd we own, into a valid out-pointer.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(format!(
                "{path}: {}",
                skiff::error::ErrnoText(Errno::last())
            ));
        }
        Ok(st)
    };
    // Looked at through O_PATH first: opening a device node can have
    // effects (a watchdog starts, a tape rewinds).
    let pfd = match open_in_root(rootfd.as_raw_fd(), &p, libc::O_PATH, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => return Ok(None),
        Err(e) => return Err(format!("{path}: {}", skiff::error::ErrnoText(e))),
    };
    let st = stat(pfd.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(format!("{path} in the image is not a regular file"));
    }
    if st.st_size as u64 > max {
        return Err(format!(
            "{path} in the image is {} bytes, more than the {max}-byte limit",
            st.st_size
        ));
    }
    let fd = open_in_root(
        rootfd.as_raw_fd(),
        &p,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )
    .map_err(|e| format!("{path}: {}", skiff::error::ErrnoText(e)))?;
    let st2 = stat(fd.as_raw_fd())?;
    if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) {
        return Err(format!("{path} in the image changed while read"));
    }
    let mut v = Vec::new();
    File::from(fd)
        .take(max.saturating_add(1))
        .read_to_end(&mut v)
        .map_err(|e| format!("read {path}: {e}"))?;
    if v.len() as u64 > max {
        return Err(format!("{path} in the image is more than {max} bytes"));
    }
    Ok(Some(v))
}

/// A path from a layer for an error message, cut short.
fn clip_bytes(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    match s.char_indices().nth(200) {
        None => s.into_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_size(data.len() as u64);
            // Raw: the builder checks names.
            let raw = h.as_old_mut();
            raw.name = [0; 100];
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A whiteout of `..` (an entry `.wh...`) removed the root's parent's
    /// contents: the bundle directory, whatever sat next to the rootfs.
    #[test]
    fn whiteout_of_dotdot_stays_inside() {
        use tar::EntryType::{Directory, Regular};
        for bad in [
            ".wh...",
            "a/.wh...",
            "a/b/.wh...",
            ".wh..",
            "a/.wh.",
            "a/.wh..",
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("rootfs");
            std::fs::create_dir(&root).unwrap();
            std::fs::write(tmp.path().join("sentinel"), "outside").unwrap();
            let mut ap = Applier::new(&root).unwrap();
            ap.apply(
                &tar_of(&[
                    ("a/", Directory, b""),
                    ("a/b/", Directory, b""),
                    ("a/b/keep", Regular, b"1"),
                ])[..],
            )
            .unwrap();
            let res = ap.apply(&tar_of(&[(bad, Regular, b"")])[..]);
            assert!(
                tmp.path().join("sentinel").exists(),
                "{bad}: removed a file outside the root ({res:?})"
            );
            assert!(root.join("a/b/keep").exists(), "{bad}: {res:?}");
            let e = res.unwrap_err().to_string();
            assert!(e.contains("invalid whiteout"), "{bad}: {e}");
        }
    }

    #[test]
    fn cancel_stops_an_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ap = Applier::new(tmp.path()).unwrap();
        ap.set_cancel(|| Some("interrupted by SIGTERM".into()));
        let e = ap
            .apply(&tar_of(&[("f", tar::EntryType::Regular, b"x")])[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SIGTERM"), "{e}");
        assert!(!tmp.path().join("f").exists());
    }

    #[test]
    fn read_in_root_wants_a_small_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir(r.join("etc")).unwrap();
        assert_eq!(read_in_root(r, "/etc/passwd", 100).unwrap(), None);
        std::fs::write(r.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        assert!(read_in_root(r, "/etc/passwd", 100).unwrap().is_some());
        assert!(read_in_root(r, "/etc/passwd", 5)
            .unwrap_err()
            .contains("limit"));
        std::fs::remove_file(r.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(
            &r.join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let e = read_in_root(r, "/etc/passwd", 100).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        // A symlink out of the root resolves inside it.
        std::fs::remove_file(r.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", r.join("etc/passwd")).unwrap();
        assert_eq!(read_in_root(r, "/etc/passwd", 100).unwrap(), None);
    }

    #[test]
    fn clean_clamps_at_root() {
        assert_eq!(clean(b"../../etc/passwd"), vec![&b"etc"[..], b"passwd"]);
        assert_eq!(clean(b"/abs/./x/../y"), vec![&b"abs"[..], b"y"]);
        assert!(clean(b"./").is_empty());
    }
}

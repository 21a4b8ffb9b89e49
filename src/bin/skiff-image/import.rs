//! `import`: docker-archive, oci-archive, an OCI layout directory, or a
//! plain root file system tar (made into a one-layer image).
//!
//! What an archive or a layout says is not trusted: files of a layout are
//! opened without following symlinks (anywhere in their path) and must be
//! regular files; a blob must have its descriptor's size (checked before
//! and while it is read, so a huge file is not copied) and digest;
//! manifests, indexes and configs are read whole only below the limits in
//! store.rs.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use sha2::{Digest, Sha256};
use skiff::error::{Error, Result};

use crate::registry::{check_and_convert, host_platform, media_type_of, select_platform};
use crate::store::{self, *};
use crate::{bundle, refs, unpack};

/// Where the files of an archive or layout come from.
enum Source {
    Dir(PathBuf),
    /// Archive member name -> extracted temp file.
    Files(HashMap<String, PathBuf>),
}

/// fstat of an fd.
fn fstat(fd: &OwnedFd) -> std::result::Result<libc::stat, Errno> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd we own, into a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(Errno::last());
    }
    Ok(st)
}

fn kind(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symlink",
        _ => "not a regular file",
    }
}

/// Opens `name` (relative, cleaned) under the directory `dir` for reading:
/// no symlink may be on the way (nor be the file), and it must be a regular
/// file; it is looked at through O_PATH first, so a FIFO does not block
/// and a device node is never opened. Returns the file and its size.
fn open_beneath(dir: &Path, name: &str) -> Result<(File, u64)> {
    let shown = dir.join(name);
    let cdir = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::msg(format!("{}: path contains a NUL byte", dir.display())))?;
    let cname = CString::new(name)
        .map_err(|_| Error::msg(format!("{}: name contains a NUL byte", clip(name, 100))))?;
    let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    let dfd = skiff::rootfs::openat2(
        libc::AT_FDCWD,
        &cdir,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .map_err(|e| Error::sys_path("open", dir, e))?;
    let open = |flags| {
        skiff::rootfs::openat2(dfd.as_raw_fd(), &cname, flags, 0, resolve).map_err(|e| match e {
            Errno::ELOOP => Error::msg(format!(
                "{}: is a symlink or under one (refused: a layout's files must be its own)",
                shown.display()
            )),
            e => Error::sys_path("open", &shown, e),
        })
    };
    let pfd = open(libc::O_PATH)?;
    let st = fstat(&pfd).map_err(|e| Error::sys_path("stat", &shown, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::msg(format!(
            "{}: not a regular file ({})",
            shown.display(),
            kind(st.st_mode)
        )));
    }
    let fd = open(libc::O_RDONLY | libc::O_NOCTTY)?;
    let st2 = fstat(&fd).map_err(|e| Error::sys_path("stat", &shown, e))?;
    if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) {
        return Err(Error::msg(format!(
            "{}: changed while opened",
            shown.display()
        )));
    }
    Ok((File::from(fd), st2.st_size as u64))
}

impl Source {
    /// Opens a file of the archive or layout; returns it and its size.
    fn open(&self, name: &str) -> Result<(File, u64)> {
        let name =
            String::from_utf8_lossy(&unpack::clean(name.as_bytes()).join(&b'/')).into_owned();
        match self {
            Source::Dir(d) => open_beneath(d, &name),
            Source::Files(m) => {
                let p = m.get(&name).ok_or_else(|| {
                    Error::msg(format!("archive has no file {:?}", clip(&name, 100)))
                })?;
                let f = File::open(p).map_err(|e| Error::io("open", p, e))?;
                let len = f.metadata().map_err(|e| Error::io("stat", p, e))?.len();
                Ok((f, len))
            }
        }
    }

    /// A file read whole, refused when it is over `max` bytes.
    fn read(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let (f, _) = self.open(name)?;
        store::read_max(f, max, &clip(name, 100))
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => d.join(name).is_file(),
            Source::Files(m) => m.contains_key(name),
        }
    }
}

/// Opens the blob `d` describes, checking its size against the descriptor
/// (and against `max` when given) before anything is read.
fn open_blob(src: &Source, d: &Descriptor, what: &str, max: Option<u64>) -> Result<File> {
    if let Some(max) = max {
        if d.size > max {
            return Err(Error::msg(format!(
                "{what} {} is {} bytes, more than the {max}-byte limit",
                clip(&d.digest, 80),
                d.size
            )));
        }
    }
    let (f, len) = src.open(&format!("blobs/sha256/{}", digest_hex(&d.digest)?))?;
    if len != d.size {
        return Err(Error::msg(format!(
            "{what} {}: size mismatch: the descriptor gives {} bytes, the blob has {len}",
            d.digest, d.size
        )));
    }
    Ok(f)
}

struct Importer<'a> {
    store: &'a Store,
    added: HashSet<String>,
    stem: String,
}

impl Importer<'_> {
    fn put(
        &mut self,
        r: impl Read,
        expected: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<(String, u64)> {
        let (d, size, new) = self.store.put_blob_reader(r, expected, expected_size)?;
        if new {
            self.added.insert(d.clone());
        }
        Ok((d, size))
    }

    fn put_bytes(&mut self, digest: &str, data: &[u8]) -> Result<()> {
        if self.store.put_blob_bytes(digest, data)? {
            self.added.insert(digest.to_string());
        }
        Ok(())
    }

    /// A store name for an image: the user's, else the archive's own
    /// when it is a full reference, else `localhost/<file stem>:<tag>`.
    fn name(&self, given: Option<&str>, archive: Option<&str>) -> Result<String> {
        if let Some(g) = given {
            return Ok(refs::ref_name(&refs::parse(g)?));
        }
        match archive {
            Some(a) if a.contains('/') => Ok(refs::ref_name(&refs::parse(a)?)),
            Some(tag) => Ok(refs::ref_name(&refs::parse(&format!(
                "localhost/{}:{tag}",
                self.stem
            ))?)),
            None => Ok(refs::ref_name(&refs::parse(&format!(
                "localhost/{}:latest",
                self.stem
            ))?)),
        }
    }

    fn oci(&mut self, src: &Source, given: Option<&str>) -> Result<Vec<(String, String)>> {
        let index: Index = serde_json::from_slice(&src.read("index.json", MAX_MANIFEST)?)
            .map_err(|e| Error::msg(format!("index.json: invalid: {e}")))?;
        if given.is_some() && index.manifests.len() != 1 {
            return Err(Error::msg(format!(
                "the layout holds {} images: a name can be given only for one",
                index.manifests.len()
            )));
        }
        let mut out = Vec::new();
        for top in &index.manifests {
            let mut desc = top.clone();
            let mut body = self.verified(src, &desc)?;
            let mut mt = media_type_of(&body, Some(&desc.media_type))?;
            if mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST {
                let sub: Index = serde_json::from_slice(&body)
                    .map_err(|e| Error::msg(format!("{}: invalid index: {e}", desc.digest)))?;
                desc = select_platform(&sub.manifests, &host_platform())
                    .ok_or_else(|| {
                        Error::msg(format!("{}: no image for this platform", top.digest))
                    })?
                    .clone();
                body = self.verified(src, &desc)?;
                mt = media_type_of(&body, Some(&desc.media_type))?;
            }
            if mt != MT_OCI_MANIFEST && mt != MT_DOCKER_MANIFEST {
                return Err(Error::msg(format!(
                    "unsupported media type {:?} for the manifest",
                    clip(&mt, 100)
                )));
            }
            let m: Manifest = serde_json::from_slice(&body)
                .map_err(|e| Error::msg(format!("{}: invalid manifest: {e}", desc.digest)))?;
            let converted = check_and_convert(&m, &mt)?;
            for (i, b) in std::iter::once(&m.config)
                .chain(m.layers.iter())
                .enumerate()
            {
                let (what, max) = if i == 0 {
                    ("image config", Some(MAX_CONFIG))
                } else {
                    ("layer", None)
                };
                if let Some(max) = max.filter(|&max| b.size > max) {
                    return Err(Error::msg(format!(
                        "{what} {} is {} bytes, more than the {max}-byte limit",
                        b.digest, b.size
                    )));
                }
                if self.store.has_blob(b) {
                    continue;
                }
                let f = open_blob(src, b, what, max)?;
                self.put(
                    BufReader::with_capacity(1 << 20, f),
                    Some(&b.digest),
                    Some(b.size),
                )
                .map_err(|e| Error::msg(format!("{what} {}: {e}", b.digest)))?;
            }
            let (mbody, mdigest, mmt) = match converted {
                Some(o) => {
                    let b = serde_json::to_vec(&o)
                        .map_err(|e| Error::msg(format!("encode manifest: {e}")))?;
                    let d = format!("sha256:{}", sha256_hex(&b));
                    (b, d, MT_OCI_MANIFEST.to_string())
                }
                None => (body, desc.digest.clone(), mt),
            };
            self.put_bytes(&mdigest, &mbody)?;
            let name = self.name(given, top.annotations.get(REF_NAME).map(String::as_str))?;
            let d = Descriptor {
                media_type: mmt,
                digest: mdigest.clone(),
                size: mbody.len() as u64,
                platform: desc.platform.clone(),
                ..Default::default()
            };
            self.store.set_ref(&name, d)?;
            out.push((name, mdigest));
        }
        Ok(out)
    }

    /// A manifest or index, checked against its descriptor (size first).
    fn verified(&self, src: &Source, d: &Descriptor) -> Result<Vec<u8>> {
        let digest = &d.digest;
        let f = open_blob(src, d, "manifest", Some(MAX_MANIFEST))?;
        let body = store::read_max(f, MAX_MANIFEST, &format!("manifest {digest}"))?;
        if body.len() as u64 != d.size {
            return Err(Error::msg(format!(
                "manifest {digest}: size mismatch: the descriptor gives {} bytes, the blob has {}",
                d.size,
                body.len()
            )));
        }
        let actual = format!("sha256:{}", sha256_hex(&body));
        if actual != *digest {
            return Err(Error::msg(format!(
                "digest mismatch: expected {digest}, got {actual}"
            )));
        }
        Ok(body)
    }

    fn docker(&mut self, src: &Source, given: Option<&str>) -> Result<Vec<(String, String)>> {
        let list: serde_json::Value =
            serde_json::from_slice(&src.read("manifest.json", MAX_MANIFEST)?)
                .map_err(|e| Error::msg(format!("manifest.json: invalid: {e}")))?;
        let items = list
            .as_array()
            .ok_or_else(|| Error::msg("manifest.json: not a list"))?;
        if given.is_some() && items.len() != 1 {
            return Err(Error::msg(
                "the archive holds several images: a name can be given only for one",
            ));
        }
        let mut out = Vec::new();
        for it in items {
            let cfg_name = it
                .get("Config")
                .and_then(|c| c.as_str())
                .ok_or_else(|| Error::msg("manifest.json: entry without Config"))?;
            let (cf, clen) = src.open(cfg_name)?;
            if clen > MAX_CONFIG {
                return Err(Error::msg(format!(
                    "image config {:?} is {clen} bytes, more than the {MAX_CONFIG}-byte limit",
                    clip(cfg_name, 100)
                )));
            }
            let (cdigest, csize) = self.put(cf, None, Some(clen))?;
            let mut layers = Vec::new();
            for l in it
                .get("Layers")
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten()
            {
                let l = l
                    .as_str()
                    .ok_or_else(|| Error::msg("manifest.json: bad Layers"))?;
                let (lf, llen) = src.open(l)?;
                let mut br = BufReader::new(lf);
                let head = br
                    .fill_buf()
                    .map_err(|e| Error::msg(format!("read {}: {e}", clip(l, 100))))?;
                let mt = sniff(head);
                let (d, size) = self.put(br, None, Some(llen))?;
                layers.push(Descriptor {
                    media_type: mt.to_string(),
                    digest: d,
                    size,
                    ..Default::default()
                });
            }
            let m = Manifest {
                schema_version: 2,
                media_type: Some(MT_OCI_MANIFEST.into()),
                config: Descriptor {
                    media_type: MT_OCI_CONFIG.into(),
                    digest: cdigest,
                    size: csize,
                    ..Default::default()
                },
                layers,
                annotations: Default::default(),
            };
            let tag = it
                .get("RepoTags")
                .and_then(|t| t.as_array())
                .and_then(|t| t.first())
                .and_then(|t| t.as_str());
            let name = match (given, tag) {
                (Some(_), _) => self.name(given, None)?,
                (None, Some(t)) => refs::ref_name(&refs::parse(t)?),
                (None, None) => self.name(None, None)?,
            };
            out.push(self.finish_manifest(&m, &name)?);
        }
        Ok(out)
    }

    fn finish_manifest(&mut self, m: &Manifest, name: &str) -> Result<(String, String)> {
        let b = serde_json::to_vec(m).map_err(|e| Error::msg(format!("encode manifest: {e}")))?;
        let d = format!("sha256:{}", sha256_hex(&b));
        self.put_bytes(&d, &b)?;
        let desc = Descriptor {
            media_type: MT_OCI_MANIFEST.into(),
            digest: d.clone(),
            size: b.len() as u64,
            ..Default::default()
        };
        self.store.set_ref(name, desc)?;
        Ok((name.to_string(), d))
    }

    fn rootfs(&mut self, path: &Path, given: Option<&str>) -> Result<Vec<(String, String)>> {
        let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut br = BufReader::with_capacity(1 << 20, f);
        let head = br.fill_buf().map_err(|e| Error::io("read", path, e))?;
        let mt = sniff(head);
        let (digest, size) = self.put(br, None, None)?;
        let diff_id = if mt == MT_OCI_LAYER {
            digest.clone()
        } else {
            let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
            let mut r = unpack::decompress(f)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                store::check_interrupted()?;
                let n = r
                    .read(&mut buf)
                    .map_err(|e| Error::io("decompress", path, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            format!("sha256:{}", hex(&h.finalize()))
        };
        let now = rfc3339_now();
        let p = host_platform();
        let config = serde_json::json!({
            "created": now,
            "architecture": p.architecture,
            "os": p.os,
            "config": {"Env": [bundle::DEFAULT_PATH], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": now, "created_by": "skiff-image import"}]
        });
        let cb =
            serde_json::to_vec(&config).map_err(|e| Error::msg(format!("encode config: {e}")))?;
        let cd = format!("sha256:{}", sha256_hex(&cb));
        self.put_bytes(&cd, &cb)?;
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MT_OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: MT_OCI_CONFIG.into(),
                digest: cd,
                size: cb.len() as u64,
                ..Default::default()
            },
            layers: vec![Descriptor {
                media_type: mt.into(),
                digest,
                size,
                ..Default::default()
            }],
            annotations: Default::default(),
        };
        let name = self.name(given, None)?;
        Ok(vec![self.finish_manifest(&m, &name)?])
    }
}

fn sniff(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        MT_OCI_LAYER_GZIP
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        MT_OCI_LAYER_ZSTD
    } else {
        MT_OCI_LAYER
    }
}

/// UTC now as RFC 3339 (civil-from-days, no time crate needed).
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut s = name.as_str();
    for ext in [".tar.gz", ".tgz", ".tar.zst", ".tar", ".oci"] {
        if let Some(x) = s.strip_suffix(ext) {
            s = x;
            break;
        }
    }
    let clean: String = s
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if clean.is_empty() {
        "imported".into()
    } else {
        clean
    }
}

/// Imports `src`; returns the (name, digest) of each image stored.
pub fn import(store: &Store, src: &Path, given: Option<&str>) -> Result<Vec<(String, String)>> {
    let shared = store.lock_shared()?;
    let mut imp = Importer {
        store,
        added: HashSet::new(),
        stem: stem(src),
    };
    let mut tmpfiles = Vec::new();
    let res = (|| {
        let meta = std::fs::metadata(src).map_err(|e| Error::io("import", src, e))?;
        if !meta.is_dir() && !meta.is_file() {
            // A FIFO or a device (/dev/zero) would be read forever.
            return Err(Error::msg(format!(
                "{}: not a regular file or a directory",
                src.display()
            )));
        }
        if meta.is_dir() {
            if !src.join("oci-layout").is_file() || !src.join("index.json").is_file() {
                return Err(Error::msg(format!(
                    "{}: not an OCI image layout (no oci-layout or index.json)",
                    src.display()
                )));
            }
            return imp.oci(&Source::Dir(src.to_path_buf()), given);
        }
        // Which kind of tar is it? One pass over the names only.
        let names = list_tar(src)?;
        let is_docker = names.contains("manifest.json");
        let is_oci = names.contains("oci-layout") && names.contains("index.json");
        if !is_docker && !is_oci {
            return imp.rootfs(src, given);
        }
        let files = extract_files(store, src, &mut tmpfiles)?;
        let source = Source::Files(files);
        if is_oci && source.has("index.json") {
            imp.oci(&source, given)
        } else {
            imp.docker(&source, given)
        }
    })();
    for t in &tmpfiles {
        let _ = std::fs::remove_file(t);
        store::tmp_done(t);
    }
    match res {
        Ok(v) => Ok(v),
        Err(e) => {
            store.rollback(shared, &imp.added);
            Err(e.context_msg(&format!("import {}", src.display())))
        }
    }
}

trait ContextMsg {
    fn context_msg(self, c: &str) -> Error;
}
impl ContextMsg for Error {
    fn context_msg(self, c: &str) -> Error {
        Error::Context {
            context: c.to_string(),
            source: Box::new(self),
        }
    }
}

fn list_tar(path: &Path) -> Result<HashSet<String>> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut ar = tar::Archive::new(unpack::decompress(f)?);
    let mut names = HashSet::new();
    for e in ar
        .entries()
        .map_err(|e| Error::msg(format!("{}: not a tar archive: {e}", path.display())))?
    {
        store::check_interrupted()?;
        let e = e.map_err(|e| Error::msg(format!("{}: not a tar archive: {e}", path.display())))?;
        let n = String::from_utf8_lossy(&unpack::clean(&e.path_bytes()).join(&b'/')).into_owned();
        names.insert(n);
    }
    Ok(names)
}

/// Copies each regular file of the archive to a numbered temp file (the
/// archive's names never become paths on disk).
fn extract_files(
    store: &Store,
    path: &Path,
    tmpfiles: &mut Vec<PathBuf>,
) -> Result<HashMap<String, PathBuf>> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut ar = tar::Archive::new(unpack::decompress(f)?);
    let mut map = HashMap::new();
    for e in ar
        .entries()
        .map_err(|e| Error::msg(format!("{}: read archive: {e}", path.display())))?
    {
        let mut e = e.map_err(|e| Error::msg(format!("{}: read archive: {e}", path.display())))?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let n = String::from_utf8_lossy(&unpack::clean(&e.path_bytes()).join(&b'/')).into_owned();
        let (mut out, tmp) = store.create_tmp("import")?;
        tmpfiles.push(tmp.clone());
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            store::check_interrupted()?;
            let n = match e.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(Error::msg(format!(
                        "{}: read archive: {err}",
                        path.display()
                    )))
                }
            };
            std::io::Write::write_all(&mut out, &buf[..n])
                .map_err(|e| Error::io("write", &tmp, e))?;
        }
        map.insert(n, tmp);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_stems() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(stem(Path::new("/x/My Image.tar.gz")), "my-image");
        assert_eq!(stem(Path::new("/x/...")), "imported");
    }
}

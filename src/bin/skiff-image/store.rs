//! The image store: a plain OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`), so skopeo (`oci:DIR:REF`) and umoci read it as is.
//! skiff keeps its own bookkeeping under `.skiff/` (locks, temp files),
//! which other tools ignore.
//!
//! Concurrency: writers of blobs hold `.skiff/lock` shared, `gc` holds it
//! exclusive, so gc never deletes a blob a running pull has just written
//! but not yet referenced. `index.json` is rewritten under
//! `.skiff/index.lock` (exclusive) with temp file + rename.
//!
//! Limits: what is read whole into memory is bounded (manifests and
//! indexes [`MAX_MANIFEST`], image configs [`MAX_CONFIG`]), and every blob
//! is checked against its descriptor's size before and while it is read.
//!
//! Interruption: main.rs turns SIGINT/SIGTERM/SIGHUP into [`interrupted`];
//! long loops check it ([`check_interrupted`]) and fail, so the usual
//! error path undoes the operation. Temp files are created through
//! [`Store::create_tmp`], which records them, so that
//! [`remove_live_tmp_files`] can remove them if the process must die
//! before that.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skiff::error::{Error, Result};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The digest the registry served, when the stored manifest differs from
/// it (a Docker schema2 manifest converted to OCI).
pub const SOURCE_DIGEST: &str = "dev.skiff.image.source-digest";

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_DOCKER_LAYER_FOREIGN: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The largest manifest or image index read (from a registry, an archive,
/// an OCI layout or the store): 4 MiB, the limit containerd applies and the
/// distribution spec suggests registries enforce.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config read (configs with long histories reach a few
/// hundred kB).
pub const MAX_CONFIG: u64 = 8 << 20;

/// `s` cut to at most `max` characters (an ellipsis marks the cut), for
/// error messages quoting what an image or a registry said.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// The signal that interrupted this process (0: none yet).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Records that `sig` arrived: the running operation fails at its next
/// check and undoes what it did.
pub fn set_interrupted(sig: i32) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// The signal that interrupted this process, if one did.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Fails once a signal asked this process to stop.
pub fn check_interrupted() -> Result<()> {
    match interrupted() {
        None => Ok(()),
        Some(sig) => Err(Error::msg(format!(
            "interrupted by {}",
            match sig {
                libc::SIGINT => "SIGINT".to_string(),
                libc::SIGTERM => "SIGTERM".to_string(),
                libc::SIGHUP => "SIGHUP".to_string(),
                n => format!("signal {n}"),
            }
        ))),
    }
}

/// Temp files this process created and has not renamed or removed yet.
static LIVE_TMP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live_tmp() -> MutexGuard<'static, Vec<PathBuf>> {
    LIVE_TMP.lock().unwrap_or_else(|e| e.into_inner())
}

/// The temp file at `path` is gone (renamed into place or removed).
pub fn tmp_done(path: &Path) {
    live_tmp().retain(|p| p != path);
}

/// Removes every temp file this process has live, and returns the lock
/// that keeps new ones from being created: a process about to die (a
/// signal its operation did not react to) holds it until it exits.
pub fn remove_live_tmp_files() -> MutexGuard<'static, Vec<PathBuf>> {
    let mut live = live_tmp();
    for p in live.drain(..) {
        let _ = fs::remove_file(p);
    }
    live
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(MT_OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// The hex part of a `sha256:` digest, checked so it can name a file.
pub fn digest_hex(digest: &str) -> Result<&str> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        Error::msg(format!(
            "unsupported digest algorithm: {}",
            clip(digest, 80)
        ))
    })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(Error::msg(format!("invalid digest: {}", clip(digest, 80))));
    }
    Ok(hex)
}

/// A held flock; released on drop (closing the fd).
pub struct Lock(#[allow(dead_code)] File);

fn flock(path: &Path, exclusive: bool) -> Result<Lock> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open lock file", path, e))?;
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    loop {
        // SAFETY: flock on an fd we own; no memory is passed.
        let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(Lock(f));
        }
        let errno = Errno::last();
        if errno != Errno::EINTR {
            return Err(Error::sys_path("flock", path, errno));
        }
    }
}

/// Reads `r` whole, failing (after at most `max` + 1 bytes) when it holds
/// more than `max` bytes; `what` names it in the error. A file is checked
/// by its size first.
pub fn read_max(r: impl Read + AsRawFd, max: u64, what: &str) -> Result<Vec<u8>> {
    let too_big = |n: Option<i64>| {
        Error::msg(match n {
            Some(n) => format!("{what} is {n} bytes, more than the {max}-byte limit"),
            None => format!("{what} is more than the {max}-byte limit"),
        })
    };
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd the reader owns, into a valid out-pointer.
    if unsafe { libc::fstat(r.as_raw_fd(), &mut st) } == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_size as u64 > max
    {
        return Err(too_big(Some(st.st_size)));
    }
    let mut v = Vec::new();
    r.take(max.saturating_add(1))
        .read_to_end(&mut v)
        .map_err(|e| Error::msg(format!("read {what}: {e}")))?;
    if v.len() as u64 > max {
        return Err(too_big(None));
    }
    Ok(v)
}

pub struct Store {
    pub root: PathBuf,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens the store, laying out an empty OCI layout if there is none.
    pub fn open(root: &Path) -> Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
        };
        // A new store is private: it holds the layers of images pulled
        // with credentials.
        if !store.root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&store.root)
                .map_err(|e| Error::io("create store", &store.root, e))?;
        }
        let blobs = store.root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create store", &blobs, e))?;
        let tmp = store.tmp_dir();
        fs::create_dir_all(&tmp).map_err(|e| Error::io("create store", &tmp, e))?;
        // The lock files exist from the start, so taking a lock never
        // changes what the store holds.
        for l in [".skiff/lock", ".skiff/index.lock"] {
            let p = store.root.join(l);
            if !p.exists() {
                File::create(&p).map_err(|e| Error::io("create lock file", &p, e))?;
            }
        }
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = store.root.join("index.json");
        if !index.exists() {
            let _l = store.lock_index()?;
            if !index.exists() {
                let data = serde_json::to_vec(&Index::default())
                    .map_err(|e| Error::msg(format!("encode index.json: {e}")))?;
                store.write_atomic(&index, &data)?;
            }
        }
        Ok(store)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(".skiff/tmp")
    }

    pub fn lock_shared(&self) -> Result<Lock> {
        flock(&self.root.join(".skiff/lock"), false)
    }

    pub fn lock_exclusive(&self) -> Result<Lock> {
        flock(&self.root.join(".skiff/lock"), true)
    }

    pub fn lock_index(&self) -> Result<Lock> {
        flock(&self.root.join(".skiff/index.lock"), true)
    }

    /// A fresh temp path in the store's file system (so rename works).
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.tmp_dir()
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Creates a fresh temp file (mode 0600), recorded as live until
    /// [`tmp_done`]. Fails once the process is interrupted.
    pub fn create_tmp(&self, what: &str) -> Result<(File, PathBuf)> {
        let path = self.tmp_path(what);
        let mut live = live_tmp();
        check_interrupted()?;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        live.push(path.clone());
        Ok((f, path))
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, desc: &Descriptor) -> bool {
        match self.blob_path(&desc.digest) {
            Ok(p) => fs::metadata(p)
                .map(|m| m.len() == desc.size)
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// A blob of at most `max` bytes (`what` names it in errors: "manifest",
    /// "image config"), read whole.
    pub fn read_blob_max(&self, digest: &str, max: u64, what: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        let f = File::open(&p).map_err(|e| Error::io("read blob", &p, e))?;
        read_max(f, max, &format!("{what} {digest}"))
    }

    /// Writes `data` to `path` through a temp file, synced, then renamed.
    pub fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let (mut f, tmp) = self.create_tmp("write")?;
        let res = (|| {
            f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
            f.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
            fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        tmp_done(&tmp);
        res
    }

    /// Stores a blob held in memory after checking its digest. Returns true
    /// when the blob is new in the store.
    pub fn put_blob_bytes(&self, digest: &str, data: &[u8]) -> Result<bool> {
        let actual = format!("sha256:{}", sha256_hex(data));
        if actual != digest {
            return Err(Error::msg(format!(
                "digest mismatch: expected {digest}, got {actual}"
            )));
        }
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(false);
        }
        self.write_atomic(&path, data)?;
        Ok(true)
    }

    /// Copies a stream into the store, hashing as it goes; renamed into
    /// place only if the digest matches `expected` (when given). With
    /// `expected_size`, reads no more than one byte past it and fails
    /// unless the stream has exactly that many. Returns the digest, size,
    /// and whether the blob is new.
    pub fn put_blob_reader(
        &self,
        r: impl Read,
        expected: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<(String, u64, bool)> {
        let mut r = r.take(expected_size.map_or(u64::MAX, |n| n.saturating_add(1)));
        let (mut f, tmp) = self.create_tmp("blob")?;
        let res = (|| {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
                check_interrupted()?;
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read blob source", &tmp, e)),
                };
                h.update(&buf[..n]);
                f.write_all(&buf[..n])
                    .map_err(|e| Error::io("write blob", &tmp, e))?;
                size += n as u64;
                if let Some(want) = expected_size {
                    if size > want {
                        return Err(Error::msg(format!(
                            "size mismatch: the descriptor gives {want} bytes, the blob has more"
                        )));
                    }
                }
            }
            if let Some(want) = expected_size {
                if size != want {
                    return Err(Error::msg(format!(
                        "size mismatch: the descriptor gives {want} bytes, the blob has {size}"
                    )));
                }
            }
            let digest = format!("sha256:{}", hex(&h.finalize()));
            if let Some(exp) = expected {
                if exp != digest {
                    return Err(Error::msg(format!(
                        "digest mismatch: expected {exp}, got {digest}"
                    )));
                }
            }
            let path = self.blob_path(&digest)?;
            if path.exists() {
                let _ = fs::remove_file(&tmp);
                return Ok((digest, size, false));
            }
            f.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| Error::io("rename into place", &path, e))?;
            Ok((digest, size, true))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        tmp_done(&tmp);
        res
    }

    pub fn read_index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        let data = fs::read(&p).map_err(|e| Error::io("read", &p, e))?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::msg(format!("{}: invalid index: {e}", p.display())))
    }

    /// Read-modify-write of index.json under the index lock.
    pub fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _l = self.lock_index()?;
        let mut index = self.read_index()?;
        let out = f(&mut index)?;
        let data = serde_json::to_vec_pretty(&index)
            .map_err(|e| Error::msg(format!("encode index.json: {e}")))?;
        self.write_atomic(&self.root.join("index.json"), &data)?;
        Ok(out)
    }

    /// Points `name` at `desc`, replacing what it named before.
    pub fn set_ref(&self, name: &str, mut desc: Descriptor) -> Result<()> {
        desc.annotations
            .insert(REF_NAME.to_string(), name.to_string());
        self.update_index(|index| {
            index
                .manifests
                .retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(name));
            index.manifests.push(desc);
            Ok(())
        })
    }

    pub fn read_manifest(&self, digest: &str) -> Result<Manifest> {
        let data = self.read_blob_max(digest, MAX_MANIFEST, "manifest")?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::msg(format!("manifest {digest}: invalid JSON: {e}")))
    }

    /// Every blob reachable from index.json.
    pub fn reachable(&self, index: &Index) -> Result<HashSet<String>> {
        let mut seen = HashSet::new();
        let mut todo: Vec<Descriptor> = index.manifests.clone();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            // (Not a layer a stray descriptor names: only what can be a manifest.)
            let Ok(data) = self.read_blob_max(&d.digest, MAX_MANIFEST, "manifest") else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
                continue;
            };
            if let Some(ms) = v.get("manifests") {
                if let Ok(ms) = serde_json::from_value::<Vec<Descriptor>>(ms.clone()) {
                    todo.extend(ms);
                }
            }
            if let Some(c) = v.get("config") {
                if let Ok(c) = serde_json::from_value::<Descriptor>(c.clone()) {
                    seen.insert(c.digest);
                }
            }
            if let Some(ls) = v.get("layers") {
                if let Ok(ls) = serde_json::from_value::<Vec<Descriptor>>(ls.clone()) {
                    seen.extend(ls.into_iter().map(|l| l.digest));
                }
            }
        }
        Ok(seen)
    }

    /// Removes blobs nothing references and stale temp files. Returns the
    /// number of blobs removed and bytes freed.
    pub fn gc(&self) -> Result<(usize, u64)> {
        let _l = self.lock_exclusive()?;
        self.gc_locked(None)
    }

    /// gc restricted to `only` (when given), with the exclusive lock held.
    pub fn gc_locked(&self, only: Option<&HashSet<String>>) -> Result<(usize, u64)> {
        let index = {
            let _il = self.lock_index()?;
            self.read_index()?
        };
        let keep = self.reachable(&index)?;
        let dir = self.root.join("blobs/sha256");
        let mut removed = 0;
        let mut freed = 0;
        let rd = fs::read_dir(&dir).map_err(|e| Error::io("read dir", &dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read dir", &dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if keep.contains(&digest) {
                continue;
            }
            if let Some(only) = only {
                if !only.contains(&digest) {
                    continue;
                }
            }
            let size = ent.metadata().map(|m| m.len()).unwrap_or(0);
            let p = ent.path();
            fs::remove_file(&p).map_err(|e| Error::io("remove blob", &p, e))?;
            removed += 1;
            freed += size;
        }
        if only.is_none() {
            // No writer holds the shared lock now, so every temp file is stale.
            let tmp = self.tmp_dir();
            if let Ok(rd) = fs::read_dir(&tmp) {
                for ent in rd.flatten() {
                    let _ = fs::remove_file(ent.path());
                }
            }
        }
        Ok((removed, freed))
    }

    /// After a failed pull or import: drops the blobs it added that no
    /// image references, so the store is as before. Waits for other
    /// writers (they may share those blobs and reference them soon).
    pub fn rollback(&self, shared: Lock, added: &HashSet<String>) {
        // Downloads cancelled mid-way (a sibling failed) left temp files.
        let mine = format!("-{}-", std::process::id());
        if let Ok(rd) = fs::read_dir(self.tmp_dir()) {
            for ent in rd.flatten() {
                if ent.file_name().to_string_lossy().contains(&mine) {
                    let _ = fs::remove_file(ent.path());
                    tmp_done(&ent.path());
                }
            }
        }
        drop(shared);
        if added.is_empty() {
            return;
        }
        if let Ok(_l) = self.lock_exclusive() {
            let _ = self.gc_locked(Some(added));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_hex_rejects_paths() {
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex("md5:abc").is_err());
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(digest_hex(&ok).unwrap(), "a".repeat(64));
    }

    #[test]
    fn bounded_reads_and_clipped_messages() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, vec![b'x'; 100]).unwrap();
        assert_eq!(
            read_max(File::open(&p).unwrap(), 100, "f").unwrap().len(),
            100
        );
        let e = read_max(File::open(&p).unwrap(), 99, "manifest m")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("manifest m is 100 bytes, more than the 99-byte limit"),
            "{e}"
        );
        // Not a regular file: counted while read, stops after max + 1.
        let e = read_max(File::open("/dev/zero").unwrap(), 1000, "z")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 1000-byte limit"), "{e}");
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("ééé", 2), "éé…");
        let e = digest_hex(&format!("sha256:{}", "z".repeat(100_000)))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn new_stores_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/store");
        Store::open(&root).unwrap();
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn blobs_are_verified_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let d = format!("sha256:{}", sha256_hex(b"hello"));
        assert!(s.put_blob_bytes(&d, b"hello").unwrap());
        assert!(!s.put_blob_bytes(&d, b"hello").unwrap());
        assert!(s.put_blob_bytes(&d, b"hellp").is_err());
        let (d2, size, new) = s.put_blob_reader(&b"hello"[..], Some(&d), None).unwrap();
        assert_eq!((d2.as_str(), size, new), (d.as_str(), 5, false));
        assert!(s
            .put_blob_reader(&b"other"[..], Some(&d), None)
            .unwrap_err()
            .to_string()
            .contains("digest mismatch"));
        // The descriptor's size: exact, and a longer stream is not read on.
        assert!(s.put_blob_reader(&b"hello"[..], Some(&d), Some(5)).is_ok());
        for n in [4, 6] {
            let e = s
                .put_blob_reader(&b"hello"[..], Some(&d), Some(n))
                .unwrap_err()
                .to_string();
            assert!(e.contains("size mismatch"), "{e}");
        }
        let e = s
            .put_blob_reader(std::io::repeat(0), None, Some(1000))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has more"), "{e}");
        // gc drops the unreferenced blob and the temp dir is empty.
        assert_eq!(s.gc().unwrap().0, 1);
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }
}

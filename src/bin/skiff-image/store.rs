//! The image store: a plain OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`), so skopeo (`oci:DIR:REF`) and umoci read it as is.
//! skiff keeps its own bookkeeping under `.skiff/` (locks, temp files),
//! which other tools ignore.
//!
//! Concurrency: writers of blobs hold `.skiff/lock` shared, `gc` holds it
//! exclusive, so gc never deletes a blob a running pull has just written
//! but not yet referenced. `index.json` is rewritten under
//! `.skiff/index.lock` (exclusive) with temp file + rename.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| Error::msg(format!("unsupported digest algorithm: {digest}")))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(Error::msg(format!("invalid digest: {digest}")));
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

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| Error::io("read blob", &p, e))
    }

    /// Writes `data` to `path` through a temp file, synced, then renamed.
    pub fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let tmp = self.tmp_path("write");
        let res = (|| {
            let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
            f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
            f.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
            fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
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
    /// place only if the digest matches `expected` (when given). Returns
    /// the digest, size, and whether the blob is new.
    pub fn put_blob_reader(
        &self,
        mut r: impl Read,
        expected: Option<&str>,
    ) -> Result<(String, u64, bool)> {
        let tmp = self.tmp_path("blob");
        let res = (|| {
            let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
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
        let data = self.read_blob(digest)?;
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
            let Ok(data) = self.read_blob(&d.digest) else {
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
    fn blobs_are_verified_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let d = format!("sha256:{}", sha256_hex(b"hello"));
        assert!(s.put_blob_bytes(&d, b"hello").unwrap());
        assert!(!s.put_blob_bytes(&d, b"hello").unwrap());
        assert!(s.put_blob_bytes(&d, b"hellp").is_err());
        let (d2, size, new) = s.put_blob_reader(&b"hello"[..], Some(&d)).unwrap();
        assert_eq!((d2.as_str(), size, new), (d.as_str(), 5, false));
        assert!(s
            .put_blob_reader(&b"other"[..], Some(&d))
            .unwrap_err()
            .to_string()
            .contains("digest mismatch"));
        // gc drops the unreferenced blob and the temp dir is empty.
        assert_eq!(s.gc().unwrap().0, 1);
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }
}

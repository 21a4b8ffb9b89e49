//! Loading config.json and the checks that apply to the whole document.
//!
//! Module-specific checks live with their plans (`rootfs::RootfsPlan`,
//! `namespaces::NamespacePlan`, ...); this module checks what only makes
//! sense on the document as a whole: the version, `root`, `process`.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The runtime-spec version skiff implements, as printed by `--version` and `state`.
pub const OCI_VERSION: &str = "1.3.0";

/// The largest config.json read (real ones are a few KiB; seccomp profiles make them ~100).
const MAX_CONFIG: usize = 16 << 20;

/// Read and parse `<bundle>/config.json`. The errors name the bundle or
/// file and, for malformed JSON, the line and column.
pub fn load(bundle: &Path) -> Result<Spec> {
    match std::fs::metadata(bundle) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Error::sys_path("bundle", bundle, Errno::ENOTDIR)),
        Err(e) => return Err(Error::io("bundle", bundle, e)),
    }
    let path = bundle.join("config.json");
    let bytes =
        crate::sys::fsio::read_regular(&path, MAX_CONFIG).map_err(|e| Error::io("read", &path, e))?;
    parse(&bytes).map_err(|e| match e {
        Error::Msg(m) => Error::msg(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Parse config.json text and check the document-wide rules.
pub fn parse(bytes: &[u8]) -> Result<Spec> {
    let spec: Spec = if crate::process::sched::spec_needs_fixup(bytes) {
        // runtime-spec spellings oci-spec does not read: go through a Value.
        let mut value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::msg(format!("malformed JSON: {e}")))?;
        crate::process::sched::fixup_spec_json(&mut value, false);
        serde_path_to_error::deserialize(value)
            .map_err(|e| Error::msg(format!("invalid config: {}: {}", e.path(), e.inner())))?
    } else {
        deserialize_with_path(bytes)?
    };
    check_version(spec.version())?;
    Ok(spec)
}

fn deserialize_with_path(bytes: &[u8]) -> Result<Spec> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if field != "." => {
                Error::msg(format!("invalid config: {field}: {inner}"))
            }
            serde_json::error::Category::Data => Error::msg(format!("invalid config: {inner}")),
            _ => Error::msg(format!("malformed JSON: {inner}")),
        }
    })
}

/// skiff runs configs written for runtime-spec 1.0 up to the version it implements.
fn check_version(version: &str) -> Result<()> {
    let reason =
        || format!("{version:?} is not supported (this runtime implements 1.0.0 to {OCI_VERSION})");
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    let (major, minor) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(ma)), Some(Ok(mi)), Some(Ok(_)), None) => (ma, mi),
        _ => return Err(Error::config("ociVersion", reason())),
    };
    if major != 1 || minor > 3 {
        return Err(Error::config("ociVersion", reason()));
    }
    Ok(())
}

/// The absolute path of the root filesystem: `root.path` is relative to the bundle.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::config("root", "missing"))?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err(Error::config("root.path", "empty"));
    }
    Ok(if path.is_absolute() {
        path.clone()
    } else {
        bundle.join(path)
    })
}

/// Make the bundle path absolute without following symlinks in a way that
/// would change its meaning (it is recorded in the state as the user gave it, made absolute).
pub fn absolute_bundle(bundle: &Path) -> Result<PathBuf> {
    if bundle.is_absolute() {
        return Ok(bundle.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("getcwd", ".", e))?;
    let joined = cwd.join(bundle);
    // Normalise "." and ".." lexically so the state shows a clean path.
    let mut out = PathBuf::new();
    for comp in joined.components() {
        match comp {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(version: &str) -> String {
        format!(
            r#"{{"ociVersion":"{version}","root":{{"path":"rootfs"}},"process":{{"user":{{"uid":0,"gid":0}},"args":["sh"],"cwd":"/"}}}}"#
        )
    }

    #[test]
    fn accepts_1_0_to_1_3() {
        for v in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.0+dev"] {
            parse(doc(v).as_bytes()).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }

    #[test]
    fn refuses_other_versions_naming_the_field() {
        for v in ["", "2.0.0", "1.4.0", "0.9.0", "1.0", "x"] {
            let e = parse(doc(v).as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with("ociVersion:"), "{v}: {e}");
        }
    }

    #[test]
    fn malformed_json_says_where() {
        let e = parse(b"{\n  \"ociVersion\": \"1.0.0\",\n  oops\n}").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("malformed JSON") && s.contains("line 3"), "{s}");
    }

    #[test]
    fn wrong_type_is_invalid_config() {
        let e = parse(br#"{"ociVersion":"1.0.0","process":{"args":"sh"}}"#).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("invalid config: process.args:"), "{s}");
    }

    #[test]
    fn rootfs_relative_to_bundle() {
        let spec = parse(doc("1.0.0").as_bytes()).unwrap();
        assert_eq!(
            rootfs_path(&spec, Path::new("/b")).unwrap(),
            PathBuf::from("/b/rootfs")
        );
    }
}

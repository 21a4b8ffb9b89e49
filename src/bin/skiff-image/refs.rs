//! Image references and registry credentials.

use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::Reference;
use skiff::error::{Error, Result};

/// Parses a Docker-style reference (`busybox`, `library/busybox:1.36`,
/// `host:port/name@sha256:...`); docker.io is the default registry.
pub fn parse(s: &str) -> Result<Reference> {
    s.parse::<Reference>()
        .map_err(|e| Error::msg(format!("invalid image reference {s:?}: {e}")))
}

/// The name an image gets in the store's index.json
/// (`org.opencontainers.image.ref.name`), e.g. `docker.io/library/busybox:latest`.
pub fn ref_name(r: &Reference) -> String {
    r.whole()
}

/// Splits a stored ref name into repository and tag (or digest).
pub fn split_name(name: &str) -> (&str, &str) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (repo, digest);
    }
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, ""),
    }
}

/// Plain HTTP is allowed only for registries on this machine.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    if host == "localhost" {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Where credentials are looked up, in order: podman's auth.json, then
/// docker's config.json.
pub fn auth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        v.push(Path::new(&x).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        v.push(Path::new(&h).join(".docker/config.json"));
    }
    v
}

/// The keys an `auths` entry for `registry` may be filed under.
fn auth_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![registry.to_string()];
    if registry == "docker.io" || registry == "index.docker.io" {
        keys.extend(
            [
                "docker.io",
                "index.docker.io",
                "https://index.docker.io/v1/",
                "registry-1.docker.io",
            ]
            .map(String::from),
        );
    }
    keys
}

fn normalize_key(k: &str) -> &str {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k)
}

/// Finds `user:password` for `registry` in an auth file's JSON.
pub fn lookup_auth(json: &serde_json::Value, registry: &str) -> Result<Option<(String, String)>> {
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for want in auth_keys(registry) {
        for (k, v) in auths {
            if k != &want && normalize_key(k) != want {
                continue;
            }
            let Some(b64) = v.get("auth").and_then(|a| a.as_str()) else {
                continue;
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| Error::msg(format!("auths.{k}.auth: invalid base64: {e}")))?;
            let text = String::from_utf8(raw)
                .map_err(|_| Error::msg(format!("auths.{k}.auth: not UTF-8")))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| Error::msg(format!("auths.{k}.auth: not user:password")))?;
            return Ok(Some((u.to_string(), p.to_string())));
        }
    }
    Ok(None)
}

pub fn parse_creds(s: &str) -> Result<(String, String)> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err(Error::msg("--creds: expected USER:PASSWORD")),
    }
}

/// Credentials for `registry`: `--creds` first, then the auth files.
pub fn credentials(registry: &str, creds: Option<&str>) -> Result<Option<(String, String)>> {
    if let Some(c) = creds {
        return parse_creds(c).map(Some);
    }
    for f in auth_files() {
        let Ok(data) = std::fs::read(&f) else {
            continue;
        };
        let json: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::msg(format!("{}: invalid JSON: {e}", f.display())))?;
        if let Some(c) =
            lookup_auth(&json, registry).map_err(|e| Error::msg(format!("{}: {e}", f.display())))?
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_style_references() {
        let r = parse("busybox").unwrap();
        assert_eq!(ref_name(&r), "docker.io/library/busybox:latest");
        let r = parse("library/busybox:1.36").unwrap();
        assert_eq!(ref_name(&r), "docker.io/library/busybox:1.36");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("127.0.0.1:5000/x/y@{d}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.digest(), Some(d.as_str()));
        assert!(parse("Bad//Ref").is_err());
        assert!(parse("library/UPPER").is_err());
    }

    #[test]
    fn split_names() {
        assert_eq!(
            split_name("127.0.0.1:5000/a/b:v1"),
            ("127.0.0.1:5000/a/b", "v1")
        );
        assert_eq!(split_name("localhost:5000/a"), ("localhost:5000/a", ""));
        assert_eq!(split_name("x/y@sha256:ab"), ("x/y", "sha256:ab"));
    }

    #[test]
    fn loopback() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:80"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn auth_file_lookup() {
        let json = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "dTpw"},
            "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjN0"}
        }});
        assert_eq!(
            lookup_auth(&json, "127.0.0.1:5000").unwrap(),
            Some(("alice".into(), "s3cr3t".into()))
        );
        assert_eq!(
            lookup_auth(&json, "docker.io").unwrap(),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(lookup_auth(&json, "quay.io").unwrap(), None);
        let bad = serde_json::json!({"auths": {"h": {"auth": "!!"}}});
        assert!(lookup_auth(&bad, "h").is_err());
    }
}

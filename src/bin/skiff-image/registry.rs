//! Pulling from a registry through oci-client: auth (anonymous, basic,
//! bearer-token challenge flow, all inside oci-client), manifest/index
//! resolution with platform selection, verified parallel blob downloads.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, TryStreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use skiff::error::{Error, Result};
use tokio::io::AsyncWriteExt;

use crate::refs;
use crate::store::*;

pub struct PullOpts<'a> {
    pub platform: Option<&'a str>,
    pub creds: Option<&'a str>,
    pub insecure: bool,
    pub quiet: bool,
}

pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        a => a,
    };
    Platform {
        architecture: arch.to_string(),
        os: "linux".to_string(),
        variant: if arch == "arm" {
            Some("v7".to_string())
        } else {
            None
        },
    }
}

/// `os/arch[/variant]`.
pub fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(Error::msg(format!(
            "--platform {s:?}: expected os/arch[/variant]"
        )));
    }
    Ok(Platform {
        os: parts[0].to_string(),
        architecture: parts[1].to_string(),
        variant: parts.get(2).map(|v| v.to_string()),
    })
}

/// Picks the manifest for `want` from an index (decide only).
pub fn select_platform<'a>(manifests: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let matches = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && p.architecture == want.architecture
                && (want.variant.is_none() || p.variant == want.variant)
        })
    };
    // Without a requested variant prefer an entry without one (or arm64's v8).
    manifests.iter().filter(matches).min_by_key(|d| {
        match d.platform.as_ref().and_then(|p| p.variant.as_deref()) {
            None => 0,
            Some("v8") => 1,
            Some(_) => 2,
        }
    })
}

pub fn is_supported_layer(mt: &str) -> bool {
    matches!(
        mt,
        MT_OCI_LAYER
            | MT_OCI_LAYER_GZIP
            | MT_OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | MT_DOCKER_LAYER_GZIP
            | MT_DOCKER_LAYER_FOREIGN
            | "application/vnd.docker.image.rootfs.diff.tar"
    )
}

/// Checks media types before anything is downloaded and turns a Docker
/// schema2 manifest into the equivalent OCI one (what skopeo does when it
/// copies into an OCI layout), so umoci reads the store too.
pub fn check_and_convert(m: &Manifest, manifest_mt: &str) -> Result<Option<Manifest>> {
    if m.schema_version != 2 {
        return Err(Error::msg(format!(
            "unsupported manifest schema version {}",
            m.schema_version
        )));
    }
    let docker = manifest_mt == MT_DOCKER_MANIFEST;
    match m.config.media_type.as_str() {
        MT_OCI_CONFIG | MT_DOCKER_CONFIG => {}
        other => {
            return Err(Error::msg(format!(
                "unsupported media type {other:?} for the image config (not a container image)"
            )))
        }
    }
    for l in &m.layers {
        if !is_supported_layer(&l.media_type) {
            return Err(Error::msg(format!(
                "unsupported media type {:?} for layer {}",
                l.media_type, l.digest
            )));
        }
    }
    if !docker && m.config.media_type == MT_OCI_CONFIG {
        return Ok(None);
    }
    let mut o = m.clone();
    o.media_type = Some(MT_OCI_MANIFEST.to_string());
    o.config.media_type = MT_OCI_CONFIG.to_string();
    for l in &mut o.layers {
        l.media_type = match l.media_type.as_str() {
            MT_DOCKER_LAYER_GZIP => MT_OCI_LAYER_GZIP.to_string(),
            MT_DOCKER_LAYER_FOREIGN => {
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".to_string()
            }
            "application/vnd.docker.image.rootfs.diff.tar" => MT_OCI_LAYER.to_string(),
            other => other.to_string(),
        };
    }
    Ok(Some(o))
}

/// What kind of document a manifest body is.
pub fn media_type_of(body: &[u8], header_hint: Option<&str>) -> Result<String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::msg(format!("manifest is not valid JSON: {e}")))?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Ok(mt.to_string());
    }
    if let Some(h) = header_hint {
        return Ok(h.to_string());
    }
    if v.get("manifests").is_some() {
        Ok(MT_OCI_INDEX.to_string())
    } else if v.get("layers").is_some() {
        Ok(MT_OCI_MANIFEST.to_string())
    } else if v.get("fsLayers").is_some() {
        Ok("application/vnd.docker.distribution.manifest.v1+json".to_string())
    } else {
        Err(Error::msg("manifest has no mediaType and an unknown shape"))
    }
}

/// Says what went wrong with a registry call, in terms a user can act on.
fn describe(e: &OciDistributionError, what: &str, r: &Reference) -> Error {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let msg = match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => format!(
            "{what}: unauthorized: registry {} rejected the credentials (or needs some): {chain}",
            r.registry()
        ),
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) =>
        {
            format!("{what}: image not found: {}: {chain}", r.whole())
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            format!("{what}: image not found: {}: {chain}", r.whole())
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            format!("{what}: image not found: {}: {chain}", r.whole())
        }
        OciDistributionError::DigestError(_) => {
            format!("{what}: digest mismatch (corrupted or tampered content): {chain}")
        }
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => {
            format!("{what}: cannot reach registry {}: {chain}", r.registry())
        }
        _ => format!("{what}: {chain}"),
    };
    Error::msg(msg)
}

const ACCEPT: &[&str] = &[
    MT_OCI_MANIFEST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_DOCKER_LIST,
];

/// Pulls `reference` into the store; returns (ref name, manifest digest).
pub fn pull(store: &Store, reference: &str, opts: &PullOpts) -> Result<(String, String)> {
    let r = refs::parse(reference)?;
    let want = match opts.platform {
        Some(p) => parse_platform(p)?,
        None => host_platform(),
    };
    let auth = match refs::credentials(r.registry(), opts.creds)? {
        Some((u, p)) => RegistryAuth::Basic(u, p),
        None => RegistryAuth::Anonymous,
    };
    let protocol = if opts.insecure || refs::is_loopback(r.registry()) {
        ClientProtocol::HttpsExcept(vec![r.registry().to_string()])
    } else {
        ClientProtocol::Https
    };
    let config = ClientConfig {
        protocol,
        platform_resolver: None,
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("start async runtime: {e}")))?;
    let shared = store.lock_shared()?;
    let added = Arc::new(Mutex::new(HashSet::new()));
    let res = rt.block_on(pull_async(
        store,
        &r,
        &want,
        &auth,
        config,
        opts,
        added.clone(),
    ));
    // Dropping the runtime waits for its blocking pool: a download cancelled because a sibling
    // failed may still be creating its temp file there (tokio::fs runs file operations on that
    // pool), after the rollback below had looked for it (a left temp file, 1 in 15 runs of
    // full_disk_leaves_the_store_unchanged).
    drop(rt);
    match res {
        Ok(v) => Ok(v),
        Err(e) => {
            let added = added.lock().map(|a| a.clone()).unwrap_or_default();
            store.rollback(shared, &added);
            Err(e)
        }
    }
}

async fn pull_async(
    store: &Store,
    r: &Reference,
    want: &Platform,
    auth: &RegistryAuth,
    config: ClientConfig,
    opts: &PullOpts<'_>,
    added: Arc<Mutex<HashSet<String>>>,
) -> Result<(String, String)> {
    let client = Client::new(config);
    let what = format!("pull {}", r.whole());
    let (body, digest) = client
        .pull_manifest_raw(r, auth, ACCEPT)
        .await
        .map_err(|e| describe(&e, &what, r))?;
    let mut mt = media_type_of(&body, None)?;
    let (mut body, mut digest) = (body.to_vec(), digest);
    let mut platform = None;
    if mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST {
        let index: Index = serde_json::from_slice(&body)
            .map_err(|e| Error::msg(format!("{what}: invalid image index: {e}")))?;
        let chosen = select_platform(&index.manifests, want).ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| {
                    let mut s = format!("{}/{}", p.os, p.architecture);
                    if let Some(v) = &p.variant {
                        s.push('/');
                        s.push_str(v);
                    }
                    s
                })
                .collect();
            let mut w = format!("{}/{}", want.os, want.architecture);
            if let Some(v) = &want.variant {
                w.push('/');
                w.push_str(v);
            }
            Error::msg(format!(
                "{what}: no image for platform {w} in the index (it has: {})",
                have.join(", ")
            ))
        })?;
        platform = chosen.platform.clone();
        let pr = r.clone_with_digest(chosen.digest.clone());
        let (b, d) = client
            .pull_manifest_raw(&pr, auth, ACCEPT)
            .await
            .map_err(|e| describe(&e, &what, r))?;
        if d != chosen.digest {
            return Err(Error::msg(format!(
                "{what}: digest mismatch: index names {}, registry served {d}",
                chosen.digest
            )));
        }
        mt = media_type_of(&b, Some(&chosen.media_type))?;
        body = b.to_vec();
        digest = d;
    }
    if mt != MT_OCI_MANIFEST && mt != MT_DOCKER_MANIFEST {
        return Err(Error::msg(format!(
            "{what}: unsupported media type {mt:?} for the manifest"
        )));
    }
    // oci-client checked the body against the digest when the reference
    // had one; check it here in every case.
    let actual = format!("sha256:{}", sha256_hex(&body));
    if actual != digest {
        return Err(Error::msg(format!(
            "{what}: digest mismatch for the manifest: expected {digest}, got {actual}"
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| Error::msg(format!("{what}: invalid manifest: {e}")))?;
    let converted =
        check_and_convert(&manifest, &mt).map_err(|e| Error::msg(format!("{what}: {e}")))?;

    // Config first (small), then the layers in parallel.
    let mut blobs = vec![manifest.config.clone()];
    blobs.extend(manifest.layers.iter().cloned());
    let mp = if opts.quiet || !std::io::stderr().is_terminal() {
        None
    } else {
        Some(MultiProgress::new())
    };
    let todo: Vec<Descriptor> = {
        let mut seen = HashSet::new();
        blobs
            .into_iter()
            .filter(|d| seen.insert(d.digest.clone()) && !store.has_blob(d))
            .collect()
    };
    futures_util::stream::iter(todo.into_iter().map(|d| {
        let client = &client;
        let mp = mp.as_ref();
        let added = added.clone();
        let what = &what;
        async move {
            let new = fetch_blob(store, client, r, &d, mp)
                .await
                .map_err(|e| Error::msg(format!("{what}: blob {}: {e}", d.digest)))?;
            if new {
                if let Ok(mut a) = added.lock() {
                    a.insert(d.digest.clone());
                }
            }
            Ok::<(), Error>(())
        }
    }))
    .buffer_unordered(6)
    .try_collect::<Vec<()>>()
    .await?;

    // The manifest last, so no index entry ever names missing blobs.
    let (mbody, mdigest, mmt) = match &converted {
        Some(o) => {
            let b =
                serde_json::to_vec(o).map_err(|e| Error::msg(format!("encode manifest: {e}")))?;
            let d = format!("sha256:{}", sha256_hex(&b));
            (b, d, MT_OCI_MANIFEST.to_string())
        }
        None => (body.clone(), digest.clone(), mt.clone()),
    };
    if store.put_blob_bytes(&mdigest, &mbody)? {
        if let Ok(mut a) = added.lock() {
            a.insert(mdigest.clone());
        }
    }
    let mut annotations = BTreeMap::new();
    if converted.is_some() {
        annotations.insert(SOURCE_DIGEST.to_string(), digest.clone());
    }
    let desc = Descriptor {
        media_type: mmt,
        digest: mdigest.clone(),
        size: mbody.len() as u64,
        urls: None,
        annotations,
        platform,
    };
    let name = refs::ref_name(r);
    store.set_ref(&name, desc)?;
    Ok((name, digest))
}

/// Downloads one blob into a temp file, hashing as it goes, and renames
/// it into place only if digest and size match. Returns true if new.
async fn fetch_blob(
    store: &Store,
    client: &Client,
    r: &Reference,
    d: &Descriptor,
    mp: Option<&MultiProgress>,
) -> Result<bool> {
    let dest = store.blob_path(&d.digest)?;
    let tmp = store.tmp_path("pull");
    let bar = mp.map(|mp| {
        let b = mp.add(ProgressBar::new(d.size));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let short = d.digest.get(7..19).unwrap_or(&d.digest);
        b.set_prefix(short.to_string());
        b
    });
    let res = async {
        let mut stream = client
            .pull_blob_stream(r, d.digest.as_str())
            .await
            .map_err(|e| describe(&e, "download", r))?;
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Error::io("create", &tmp, e))?;
        let mut h = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                let t = e.to_string();
                if t.contains("Invalid digest") {
                    Error::msg(format!(
                        "digest mismatch (corrupted or tampered content): {t}"
                    ))
                } else {
                    Error::msg(format!("download interrupted: {t}"))
                }
            })?;
            h.update(&chunk);
            size += chunk.len() as u64;
            if size > d.size {
                return Err(Error::msg(format!(
                    "registry sent more than the {} bytes the manifest gives",
                    d.size
                )));
            }
            f.write_all(&chunk)
                .await
                .map_err(|e| Error::io("write blob", &tmp, e))?;
            if let Some(b) = &bar {
                b.inc(chunk.len() as u64);
            }
        }
        let actual = format!("sha256:{}", hex(&h.finalize()));
        if actual != d.digest {
            return Err(Error::msg(format!(
                "digest mismatch (corrupted or tampered content): expected {}, got {actual}",
                d.digest
            )));
        }
        if size != d.size {
            return Err(Error::msg(format!(
                "size mismatch: expected {} bytes, got {size}",
                d.size
            )));
        }
        // tokio reports a failed background write (ENOSPC) only on the
        // next write or flush, not on sync_data: flush first, or a short
        // file whose in-memory hash matched would be renamed into place.
        f.flush()
            .await
            .map_err(|e| Error::io("write blob", &tmp, e))?;
        f.sync_data()
            .await
            .map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(f);
        // From here on no await: a pull cancelled because a sibling
        // download failed must not finish a rename after its rollback ran
        // (a blocking-pool rename outlives the dropped future). A
        // synchronous rename completes in this poll, and the caller records
        // the blob as added in the same poll.
        if dest.exists() {
            // Another pull stored it meanwhile.
            let _ = std::fs::remove_file(&tmp);
            return Ok(false);
        }
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename into place", &dest, e))?;
        Ok(true)
    }
    .await;
    if let Some(b) = bar {
        b.finish();
    }
    if res.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(os: &str, arch: &str, variant: Option<&str>, digest: &str) -> Descriptor {
        Descriptor {
            digest: digest.into(),
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(String::from),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn platform_selection() {
        let ms = vec![
            d("linux", "arm", Some("v6"), "a"),
            d("linux", "arm", Some("v7"), "b"),
            d("linux", "amd64", None, "c"),
            d("linux", "arm64", Some("v8"), "e"),
        ];
        let p = |s| parse_platform(s).unwrap();
        assert_eq!(select_platform(&ms, &p("linux/amd64")).unwrap().digest, "c");
        assert_eq!(
            select_platform(&ms, &p("linux/arm/v7")).unwrap().digest,
            "b"
        );
        assert_eq!(select_platform(&ms, &p("linux/arm64")).unwrap().digest, "e");
        assert!(select_platform(&ms, &p("linux/s390x")).is_none());
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux//x").is_err());
    }

    #[test]
    fn docker_manifest_converts_and_bad_types_fail() {
        let layer = |mt: &str| Descriptor {
            media_type: mt.into(),
            digest: "sha256:x".into(),
            size: 1,
            ..Default::default()
        };
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MT_DOCKER_MANIFEST.into()),
            config: layer(MT_DOCKER_CONFIG),
            layers: vec![layer(MT_DOCKER_LAYER_GZIP)],
            annotations: Default::default(),
        };
        let o = check_and_convert(&m, MT_DOCKER_MANIFEST).unwrap().unwrap();
        assert_eq!(o.media_type.as_deref(), Some(MT_OCI_MANIFEST));
        assert_eq!(o.config.media_type, MT_OCI_CONFIG);
        assert_eq!(o.layers[0].media_type, MT_OCI_LAYER_GZIP);
        let mut bad = m.clone();
        bad.layers[0].media_type = "application/x-foo".into();
        let e = check_and_convert(&bad, MT_DOCKER_MANIFEST).unwrap_err();
        assert!(e.to_string().contains("unsupported media type"));
        let mut art = m;
        art.config.media_type = "application/vnd.cncf.helm.config.v1+json".into();
        assert!(check_and_convert(&art, MT_OCI_MANIFEST).is_err());
    }
}

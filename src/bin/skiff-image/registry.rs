//! Pulling from a registry: auth (anonymous, basic, the bearer-token
//! challenge flow), manifest/index resolution with platform selection,
//! verified parallel blob downloads.
//!
//! The HTTP is done here, over reqwest, rather than through oci-client's
//! calls (which read manifests, token and error responses whole, with no
//! limit, and have no idle timeout): nothing a registry sends is trusted.
//! - Sizes: a manifest or index is refused over [`MAX_MANIFEST`] (by its
//!   Content-Length or its descriptor before reading, and counted while
//!   reading), a config over [`MAX_CONFIG`] before it is fetched; a blob
//!   must have its descriptor's size (Content-Length checked first, then
//!   the bytes counted) and digest; token and error answers are bounded too.
//! - Time: connecting, and every answer, must come within the timeout
//!   (`--timeout`, `SKIFF_IMAGE_TIMEOUT`, default 30 s); so must each piece
//!   of a body; and a body must average 1 KiB/s over each such period
//!   (a registry dripping a byte every few seconds fails).
//! - Credentials go to the registry (never across a redirect to another
//!   host: reqwest drops them) and to its token realm, which must be HTTPS
//!   unless the registry itself may be plain HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use oci_client::Reference;
use reqwest::header::{
    HeaderValue, ACCEPT as H_ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use sha2::{Digest, Sha256};
use skiff::error::{Error, Result};
use tokio::io::AsyncWriteExt;

use crate::refs;
use crate::store::{self, *};

pub struct PullOpts<'a> {
    pub platform: Option<&'a str>,
    pub creds: Option<&'a str>,
    pub insecure: bool,
    pub quiet: bool,
    /// Connect, answer and idle timeout; also the low-speed window.
    pub timeout: Duration,
}

pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// A body must average at least this many bytes a second over each
/// timeout-long window.
const MIN_RATE: u64 = 1024;
/// The largest token-endpoint answer read.
const MAX_TOKEN: u64 = 1 << 20;
/// The most of an error answer read (for its message).
const MAX_ERROR_BODY: u64 = 64 << 10;
/// How many platforms an error lists from an index.
const SHOW_PLATFORMS: usize = 10;

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
                "unsupported media type {:?} for the image config (not a container image)",
                clip(other, 100)
            )))
        }
    }
    for l in &m.layers {
        if !is_supported_layer(&l.media_type) {
            return Err(Error::msg(format!(
                "unsupported media type {:?} for layer {}",
                clip(&l.media_type, 100),
                clip(&l.digest, 80)
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

fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `os/arch[/variant]`.
fn platform_str(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os, p.architecture);
    if let Some(v) = &p.variant {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// An index's platforms for an error message: how many entries, and the
/// first few distinct platforms (an index may have 100,000 entries).
fn platforms_summary(ms: &[Descriptor]) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    for p in ms.iter().filter_map(|d| d.platform.as_ref()) {
        let s = clip(&platform_str(p), 40);
        if shown.contains(&s) {
            continue;
        }
        if shown.len() == SHOW_PLATFORMS {
            more = true;
            break;
        }
        shown.push(s);
    }
    let n = ms.len();
    let entries = if n == 1 { "entry" } else { "entries" };
    match (shown.is_empty(), more) {
        (true, _) => format!("{n} {entries}, none with a platform"),
        (false, false) => format!("{n} {entries}: {}", shown.join(", ")),
        (false, true) => format!(
            "{n} {entries}; the first {SHOW_PLATFORMS} platforms: {}, …",
            shown.join(", ")
        ),
    }
}

/// `Bearer realm="…",service="…"` → ("bearer", {realm, service}).
fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let h = h.trim();
    let (scheme, mut rest) = match h.find(' ') {
        Some(i) => (&h[..i], &h[i + 1..]),
        None => (h, ""),
    };
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let mut val = String::new();
        if let Some(q) = rest.strip_prefix('"') {
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, c2)) = chars.next() {
                            val.push(c2);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            rest = &q[end.min(q.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            val = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        params.insert(key, val);
    }
    (scheme.to_ascii_lowercase(), params)
}

/// One registry repository, with its auth state.
struct Session {
    http: reqwest::Client,
    /// `scheme://host[:port]`
    base: String,
    /// As the user gave it, for messages.
    registry: String,
    repo: String,
    whole: String,
    creds: Option<(String, String)>,
    plain_ok: bool,
    timeout: Duration,
    auth: tokio::sync::RwLock<Option<HeaderValue>>,
}

/// Reading a response body within the timeouts.
struct Body<'a> {
    s: &'a Session,
    resp: Response,
    what: &'a str,
    window_start: Instant,
    window_bytes: u64,
}

impl Body<'_> {
    /// The next piece of the body (None at its end): fails when nothing
    /// comes for the timeout, or the body is slower than MIN_RATE over a
    /// timeout-long window.
    async fn next(&mut self) -> Result<Option<impl std::ops::Deref<Target = [u8]>>> {
        store::check_interrupted()?;
        let c = match tokio::time::timeout(self.s.timeout, self.resp.chunk()).await {
            Err(_) => return Err(self.s.timed_out(self.what, "stopped sending")),
            Ok(Err(e)) => return Err(self.s.req_error(self.what, &e)),
            Ok(Ok(c)) => c,
        };
        if let Some(b) = &c {
            self.window_bytes += b.len() as u64;
            let el = self.window_start.elapsed();
            if el >= self.s.timeout {
                if (self.window_bytes as f64) < MIN_RATE as f64 * el.as_secs_f64() {
                    return Err(self.s.timed_out(
                        self.what,
                        &format!(
                            "is too slow ({} bytes in {}, under 1 KiB/s)",
                            self.window_bytes,
                            fmt_secs(el)
                        ),
                    ));
                }
                self.window_start = Instant::now();
                self.window_bytes = 0;
            }
        }
        Ok(c)
    }
}

impl Session {
    fn new(r: &Reference, opts: &PullOpts, creds: Option<(String, String)>) -> Result<Session> {
        let plain_ok = opts.insecure || refs::is_loopback(r.registry());
        let http = reqwest::Client::builder()
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .https_only(!plain_ok)
            .user_agent(concat!("skiff-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::msg(format!("HTTP client: {e}")))?;
        let scheme = if plain_ok { "http" } else { "https" };
        Ok(Session {
            http,
            base: format!("{scheme}://{}", r.resolve_registry()),
            registry: r.registry().to_string(),
            repo: r.repository().to_string(),
            whole: r.whole(),
            creds,
            plain_ok,
            timeout: opts.timeout,
            auth: tokio::sync::RwLock::new(None),
        })
    }

    fn timed_out(&self, what: &str, how: &str) -> Error {
        Error::msg(format!(
            "{what}: registry {} {how}: timed out after {} (--timeout or SKIFF_IMAGE_TIMEOUT sets it)",
            self.registry,
            fmt_secs(self.timeout)
        ))
    }

    fn req_error(&self, what: &str, e: &reqwest::Error) -> Error {
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            src = s.source();
        }
        let chain = clip(&chain, 400);
        if e.is_timeout() {
            Error::msg(format!(
                "{what}: registry {}: {chain}: timed out after {} (--timeout or SKIFF_IMAGE_TIMEOUT sets it)",
                self.registry,
                fmt_secs(self.timeout)
            ))
        } else if e.is_connect() {
            Error::msg(format!(
                "{what}: cannot reach registry {}: {chain}",
                self.registry
            ))
        } else {
            Error::msg(format!("{what}: registry {}: {chain}", self.registry))
        }
    }

    /// Sends a request; the answer (its headers) must come within the timeout.
    async fn send(&self, what: &str, rb: RequestBuilder) -> Result<Response> {
        match tokio::time::timeout(self.timeout, rb.send()).await {
            Err(_) => Err(self.timed_out(what, "did not answer")),
            Ok(Err(e)) => Err(self.req_error(what, &e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    fn body<'a>(&'a self, resp: Response, what: &'a str) -> Body<'a> {
        Body {
            s: self,
            resp,
            what,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// A whole body, refused (`too_big`, with the announced size if any)
    /// when over `max` bytes: by its Content-Length before reading, else
    /// once more than `max` came.
    async fn read_all(
        &self,
        resp: Response,
        what: &str,
        max: u64,
        too_big: impl Fn(Option<u64>) -> Error,
    ) -> Result<Vec<u8>> {
        if let Some(n) = resp.content_length() {
            if n > max {
                return Err(too_big(Some(n)));
            }
        }
        let mut body = self.body(resp, what);
        let mut v = Vec::new();
        while let Some(c) = body.next().await? {
            if (v.len() + c.len()) as u64 > max {
                return Err(too_big(None));
            }
            v.extend_from_slice(&c);
        }
        Ok(v)
    }

    /// What a failed answer means, in terms a user can act on.
    async fn error_for(&self, resp: Response, what: &str) -> Error {
        let status = resp.status();
        let body = self
            .read_all(resp, what, MAX_ERROR_BODY, |_| Error::msg(""))
            .await
            .unwrap_or_default();
        let mut codes = Vec::new();
        let mut detail = Vec::new();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            for e in v
                .get("errors")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
            {
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                codes.push(code.to_string());
                detail.push(format!("{code} {msg}").trim().to_string());
            }
        }
        let detail = if detail.is_empty() {
            clip(String::from_utf8_lossy(&body).trim(), 200)
        } else {
            clip(&detail.join("; "), 200)
        };
        let status_text = format!("HTTP {}", status.as_u16());
        let why = if detail.is_empty() {
            status_text
        } else {
            format!("{status_text}: {detail}")
        };
        let not_found = status == StatusCode::NOT_FOUND
            || codes.iter().any(|c| {
                matches!(
                    c.as_str(),
                    "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN" | "NOT_FOUND"
                )
            });
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            Error::msg(format!(
                "{what}: unauthorized: registry {} rejected the credentials (or needs some): {why}",
                self.registry
            ))
        } else if not_found {
            Error::msg(format!("{what}: image not found: {}: {why}", self.whole))
        } else {
            Error::msg(format!("{what}: registry {} answered {why}", self.registry))
        }
    }

    /// The Authorization this registry wants for pulling, by its /v2/
    /// challenge: None (anonymous), Basic, or a Bearer token from its realm.
    async fn login(&self, what: &str) -> Result<Option<HeaderValue>> {
        let resp = self
            .send(what, self.http.get(format!("{}/v2/", self.base)))
            .await?;
        let Some(h) = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .map(String::from)
        else {
            return Ok(None);
        };
        drop(resp);
        let (scheme, params) = parse_challenge(&h);
        let value = match scheme.as_str() {
            "bearer" => format!("Bearer {}", self.token(what, &params).await?),
            "basic" => match &self.creds {
                Some((u, p)) => {
                    use base64::Engine;
                    let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                    format!("Basic {b}")
                }
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let mut v = HeaderValue::from_str(&value).map_err(|_| {
            Error::msg(format!(
                "{what}: registry {} gave a token that is not a valid header",
                self.registry
            ))
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// A pull token from the challenge's realm.
    async fn token(&self, what: &str, params: &HashMap<String, String>) -> Result<String> {
        let realm = params.get("realm").ok_or_else(|| {
            Error::msg(format!(
                "{what}: registry {} asks for a bearer token without a realm",
                self.registry
            ))
        })?;
        let mut url = Url::parse(realm).map_err(|e| {
            Error::msg(format!(
                "{what}: registry {} gave an invalid token realm {:?}: {e}",
                self.registry,
                clip(realm, 100)
            ))
        })?;
        match url.scheme() {
            "https" => {}
            "http" if self.plain_ok => {}
            _ => {
                return Err(Error::msg(format!(
                    "{what}: registry {} sends for tokens to {:?}, which is not HTTPS (refused; --insecure allows it)",
                    self.registry,
                    clip(realm, 100)
                )))
            }
        }
        url.query_pairs_mut()
            .append_pair("scope", &format!("repository:{}:pull", self.repo));
        if let Some(svc) = params.get("service") {
            url.query_pairs_mut().append_pair("service", svc);
        }
        let mut rb = self.http.get(url);
        if let Some((u, p)) = &self.creds {
            rb = rb.basic_auth(u, Some(p));
        }
        let what_t = format!("{what}: token");
        let resp = self.send(&what_t, rb).await?;
        if !resp.status().is_success() {
            return Err(self.error_for(resp, &what_t).await);
        }
        let body = self
            .read_all(resp, &what_t, MAX_TOKEN, |_| {
                Error::msg(format!(
                    "{what_t}: the answer is more than {MAX_TOKEN} bytes"
                ))
            })
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::msg(format!("{what_t}: invalid JSON: {e}")))?;
        ["token", "access_token"]
            .iter()
            .filter_map(|k| v.get(k).and_then(|t| t.as_str()))
            .find(|t| !t.is_empty())
            .map(String::from)
            .ok_or_else(|| Error::msg(format!("{what_t}: no token in the answer")))
    }

    /// GET with the current credentials; on 401 logs in again (a token may
    /// have expired) and retries once.
    async fn get(&self, what: &str, url: &str, accept: Option<&str>) -> Result<Response> {
        let mut retried = false;
        loop {
            let auth = self.auth.read().await.clone();
            let mut rb = self.http.get(url);
            if let Some(a) = accept {
                rb = rb.header(H_ACCEPT, a);
            }
            if let Some(a) = auth {
                rb = rb.header(AUTHORIZATION, a);
            }
            let resp = self.send(what, rb).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                drop(resp);
                let fresh = self.login(what).await?;
                *self.auth.write().await = fresh;
                continue;
            }
            return Ok(resp);
        }
    }

    /// A manifest or index by tag or digest: (body, its digest, the
    /// Content-Type when it is one we asked for). `want`: the digest and
    /// size it must have, when known.
    async fn manifest(
        &self,
        what: &str,
        reference: &str,
        want: Option<(&str, Option<u64>)>,
    ) -> Result<(Vec<u8>, String, Option<String>)> {
        let named = want.map(|(d, _)| d.to_string());
        if let Some((d, Some(size))) = want {
            if size > MAX_MANIFEST {
                return Err(Error::msg(format!(
                    "{what}: manifest {d} is {size} bytes, more than the {MAX_MANIFEST}-byte limit for manifests and indexes"
                )));
            }
        }
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repo);
        let resp = self.get(what, &url, Some(&ACCEPT.join(", "))).await?;
        if !resp.status().is_success() {
            return Err(self.error_for(resp, what).await);
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| ACCEPT.contains(&c.as_str()));
        let shown = named
            .clone()
            .or_else(|| header_digest.as_ref().map(|d| clip(d, 80)))
            .unwrap_or_else(|| "(the registry gave no digest)".into());
        if let (Some((_, Some(size))), Some(n)) = (want, resp.content_length()) {
            if n != size {
                return Err(Error::msg(format!(
                    "{what}: manifest {shown}: size mismatch: the index gives {size} bytes, the registry announces {n}"
                )));
            }
        }
        let body = self
            .read_all(resp, what, MAX_MANIFEST, |n| {
                Error::msg(match n {
                    Some(n) => format!(
                        "{what}: manifest {shown} is {n} bytes, more than the {MAX_MANIFEST}-byte limit for manifests and indexes"
                    ),
                    None => format!(
                        "{what}: manifest {shown} is more than the {MAX_MANIFEST}-byte limit for manifests and indexes"
                    ),
                })
            })
            .await?;
        let actual = format!("sha256:{}", sha256_hex(&body));
        if let Some((d, size)) = want {
            if actual != d {
                return Err(Error::msg(format!(
                    "{what}: digest mismatch (corrupted or tampered content) for the manifest: expected {d}, got {actual}"
                )));
            }
            if let Some(size) = size.filter(|&s| s != body.len() as u64) {
                return Err(Error::msg(format!(
                    "{what}: manifest {d}: size mismatch: the index gives {size} bytes, the registry sent {}",
                    body.len()
                )));
            }
        }
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
            if h != actual {
                return Err(Error::msg(format!(
                    "{what}: digest mismatch (corrupted or tampered content) for the manifest: the registry says {}, got {actual}",
                    clip(&h, 80)
                )));
            }
        }
        Ok((body, actual, ctype))
    }
}

const ACCEPT: &[&str] = &[
    MT_OCI_MANIFEST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_DOCKER_LIST,
];

/// Resolves once a signal has interrupted the process.
async fn interrupted() {
    while store::interrupted().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pulls `reference` into the store; returns (ref name, manifest digest).
pub fn pull(store: &Store, reference: &str, opts: &PullOpts) -> Result<(String, String)> {
    let r = refs::parse(reference)?;
    let want = match opts.platform {
        Some(p) => parse_platform(p)?,
        None => host_platform(),
    };
    let creds = refs::credentials(r.registry(), opts.creds)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("start async runtime: {e}")))?;
    let shared = store.lock_shared()?;
    let added = Arc::new(Mutex::new(HashSet::new()));
    let res = rt.block_on(async {
        tokio::select! {
            res = pull_async(store, &r, &want, creds, opts, added.clone()) => res,
            _ = interrupted() => Err(store::check_interrupted()
                .err()
                .unwrap_or_else(|| Error::msg("interrupted"))),
        }
    });
    // Dropping the runtime waits for its blocking pool: a download cancelled because a sibling
    // failed may still be writing its temp file there (tokio::fs runs file operations on that
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
    creds: Option<(String, String)>,
    opts: &PullOpts<'_>,
    added: Arc<Mutex<HashSet<String>>>,
) -> Result<(String, String)> {
    let s = Session::new(r, opts, creds)?;
    let what = format!("pull {}", r.whole());
    let first = s.login(&what).await?;
    *s.auth.write().await = first;
    let top = r.digest().or(r.tag()).unwrap_or("latest");
    let (body, digest, ctype) = s
        .manifest(&what, top, r.digest().map(|d| (d, None)))
        .await?;
    let mut mt = media_type_of(&body, ctype.as_deref())?;
    let (mut body, mut digest) = (body, digest);
    let mut platform = None;
    if mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST {
        let index: Index = serde_json::from_slice(&body)
            .map_err(|e| Error::msg(format!("{what}: invalid image index: {e}")))?;
        let chosen = select_platform(&index.manifests, want).ok_or_else(|| {
            Error::msg(format!(
                "{what}: no image for platform {} in the index ({})",
                clip(&platform_str(want), 60),
                platforms_summary(&index.manifests)
            ))
        })?;
        platform = chosen.platform.clone();
        // Checked before it goes into a URL.
        digest_hex(&chosen.digest)?;
        let (b, d, _) = s
            .manifest(
                &what,
                &chosen.digest,
                Some((&chosen.digest, Some(chosen.size))),
            )
            .await?;
        mt = media_type_of(&b, Some(&chosen.media_type))?;
        body = b;
        digest = d;
    }
    if mt != MT_OCI_MANIFEST && mt != MT_DOCKER_MANIFEST {
        return Err(Error::msg(format!(
            "{what}: unsupported media type {:?} for the manifest",
            clip(&mt, 100)
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| Error::msg(format!("{what}: invalid manifest: {e}")))?;
    let converted =
        check_and_convert(&manifest, &mt).map_err(|e| Error::msg(format!("{what}: {e}")))?;
    if manifest.config.size > MAX_CONFIG {
        return Err(Error::msg(format!(
            "{what}: image config {} is {} bytes, more than the {MAX_CONFIG}-byte limit",
            clip(&manifest.config.digest, 80),
            manifest.config.size
        )));
    }

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
        let s = &s;
        let mp = mp.as_ref();
        let added = added.clone();
        let what = &what;
        async move {
            let new = fetch_blob(store, s, &d, mp)
                .await
                .map_err(|e| Error::msg(format!("{what}: blob {}: {e}", clip(&d.digest, 80))))?;
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
    s: &Session,
    d: &Descriptor,
    mp: Option<&MultiProgress>,
) -> Result<bool> {
    // (Also checks the digest before it goes into a URL.)
    let dest = store.blob_path(&d.digest)?;
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
    let (f, tmp) = store.create_tmp("pull")?;
    let res = async {
        let url = format!("{}/v2/{}/blobs/{}", s.base, s.repo, d.digest);
        let resp = s.get("download", &url, None).await?;
        if !resp.status().is_success() {
            return Err(s.error_for(resp, "download").await);
        }
        if let Some(n) = resp.content_length() {
            if n != d.size {
                return Err(Error::msg(format!(
                    "size mismatch: the registry announces {n} bytes, the manifest gives {}",
                    d.size
                )));
            }
        }
        let mut f = tokio::fs::File::from_std(f);
        let mut h = Sha256::new();
        let mut size = 0u64;
        let mut body = s.body(resp, "download");
        while let Some(chunk) = body.next().await? {
            size += chunk.len() as u64;
            if size > d.size {
                return Err(Error::msg(format!(
                    "size mismatch: the registry sent more than the {} bytes the manifest gives",
                    d.size
                )));
            }
            h.update(&chunk[..]);
            f.write_all(&chunk)
                .await
                .map_err(|e| Error::io("write blob", &tmp, e))?;
            if let Some(b) = &bar {
                b.inc(chunk.len() as u64);
            }
        }
        if size != d.size {
            return Err(Error::msg(format!(
                "size mismatch: expected {} bytes, got {size}",
                d.size
            )));
        }
        let actual = format!("sha256:{}", hex(&h.finalize()));
        if actual != d.digest {
            return Err(Error::msg(format!(
                "digest mismatch (corrupted or tampered content): expected {}, got {actual}",
                d.digest
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
    store::tmp_done(&tmp);
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
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        let (s, p) = parse_challenge(r#"Basic realm="a \"b\", c""#);
        assert_eq!((s.as_str(), p["realm"].as_str()), ("basic", r#"a "b", c"#));
        let (s, p) = parse_challenge("Bearer realm=unquoted, service = x");
        assert_eq!((s.as_str(), p["realm"].as_str()), ("bearer", "unquoted"));
        assert_eq!(p["service"], "x");
        // Malformed: no panic, nothing useful.
        for h in [
            "",
            "Bearer",
            "Bearer realm=\"",
            "Bearer ===,,,\"",
            "Bearer realm=\"é\\",
        ] {
            let _ = parse_challenge(h);
        }
    }

    #[test]
    fn platform_lists_are_short() {
        let ms: Vec<Descriptor> = (0..100_000)
            .map(|i| d("linux", &format!("a{i}"), None, "x"))
            .collect();
        let s = platforms_summary(&ms);
        assert!(s.len() < 300, "{s}");
        assert!(
            s.starts_with("100000 entries; the first 10 platforms: linux/a0,"),
            "{s}"
        );
        let two = [
            d("linux", "amd64", None, "a"),
            d("linux", "arm64", None, "b"),
        ];
        assert_eq!(
            platforms_summary(&two),
            "2 entries: linux/amd64, linux/arm64"
        );
        let long = [d(&"x".repeat(10_000), "y", None, "a")];
        assert!(platforms_summary(&long).len() < 100);
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

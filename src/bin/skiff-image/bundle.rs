//! config.json for an unpacked image (decide only: no I/O here).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use skiff::error::{Error, Result};

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Default, Clone)]
pub struct BundleOpts {
    /// (host, container, read-only)
    pub volumes: Vec<(String, String, bool)>,
    pub env: Vec<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    /// Some((uid, gid)) for a rootless config mapping root to that user.
    pub rootless: Option<(u32, u32)>,
    pub args: Vec<String>,
}

/// `HOST:CTR[:ro|rw]`; HOST must already be absolute here.
pub fn parse_volume(s: &str) -> Result<(String, String, bool)> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, ctr, ro) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        _ => {
            return Err(Error::msg(format!(
                "--volume {s:?}: expected HOST:CONTAINER[:ro]"
            )))
        }
    };
    if host.is_empty() || !ctr.starts_with('/') {
        return Err(Error::msg(format!(
            "--volume {s:?}: the container path must be absolute"
        )));
    }
    Ok((host.to_string(), ctr.to_string(), ro))
}

struct PwEntry {
    name: String,
    uid: u32,
    gid: u32,
}

fn parse_passwd(text: &str) -> Vec<PwEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PwEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

/// (name, gid, members)
fn parse_group(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect()
}

/// Resolves the image's `User` (`name`, `uid`, `name:group`, `uid:gid`)
/// through its /etc/passwd and /etc/group: (uid, gid, additional gids).
pub fn resolve_user(user: &str, passwd: &str, group: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let pw = parse_passwd(passwd);
    let gr = parse_group(group);
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = match u.parse::<u32>() {
        Ok(uid) => pw.iter().find(|e| e.uid == uid),
        Err(_) => Some(pw.iter().find(|e| e.name == u).ok_or_else(|| {
            Error::config(
                "config.User",
                format!("user {u:?} not found in the image's /etc/passwd"),
            )
        })?),
    };
    let uid = match u.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry.map(|e| e.uid).unwrap_or(0),
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => gr
                .iter()
                .find(|(n, _, _)| n == g)
                .map(|(_, gid, _)| *gid)
                .ok_or_else(|| {
                    Error::config(
                        "config.User",
                        format!("group {g:?} not found in the image's /etc/group"),
                    )
                })?,
        },
        None => entry.map(|e| e.gid).unwrap_or(0),
    };
    let mut extra = Vec::new();
    if g.is_none() {
        if let Some(e) = entry {
            for (_, g, members) in &gr {
                if members.contains(&e.name) {
                    extra.push(*g);
                }
            }
        }
    }
    extra.retain(|x| *x != gid);
    extra.sort_unstable();
    extra.dedup();
    Ok((uid, gid, extra))
}

fn key(kv: &str) -> &str {
    kv.split_once('=').map(|(k, _)| k).unwrap_or(kv)
}

/// The bundle's config.json: skiff's `spec` defaults with the image's
/// process settings and the user's options on top.
pub fn make_spec(
    base: Value,
    image_config: &Value,
    passwd: &str,
    group: &str,
    opts: &BundleOpts,
) -> Result<Value> {
    let mut spec = base;
    let c = image_config.get("config").cloned().unwrap_or(Value::Null);
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let entrypoint = strs(c.get("Entrypoint"));
    let cmd = if opts.args.is_empty() {
        strs(c.get("Cmd"))
    } else {
        opts.args.clone()
    };
    let mut args = entrypoint;
    args.extend(cmd);
    if args.is_empty() {
        return Err(Error::msg(
            "the image has no Entrypoint or Cmd: give the command after --",
        ));
    }

    let mut env: Vec<String> = strs(c.get("Env"));
    if !env.iter().any(|e| key(e) == "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    if opts.tty && !env.iter().any(|e| key(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }
    for e in &opts.env {
        if !e.contains('=') {
            return Err(Error::msg(format!("--env {e:?}: expected KEY=VALUE")));
        }
        env.retain(|x| key(x) != key(e));
        env.push(e.clone());
    }

    let cwd = c
        .get("WorkingDir")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(Error::config(
            "config.WorkingDir",
            format!("{cwd:?} is not absolute"),
        ));
    }
    let user = c.get("User").and_then(|v| v.as_str()).unwrap_or("");
    let (uid, gid, extra) = resolve_user(user, passwd, group)?;

    let p = &mut spec["process"];
    p["terminal"] = json!(opts.tty);
    p["args"] = json!(args);
    p["env"] = json!(env);
    p["cwd"] = json!(cwd);
    p["user"] = json!({"uid": uid, "gid": gid});
    if !extra.is_empty() {
        p["user"]["additionalGids"] = json!(extra);
    }
    // Images expect a writable root, as docker and podman give them.
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    if let Some(h) = &opts.hostname {
        spec["hostname"] = json!(h);
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for (host, ctr, ro) in &opts.volumes {
            let mut o = vec!["rbind", "rprivate"];
            if *ro {
                o.push("ro");
            }
            mounts.push(json!({"destination": ctr, "type": "bind", "source": host, "options": o}));
        }
    }

    let mut ann: BTreeMap<String, String> = BTreeMap::new();
    if let Some(labels) = c.get("Labels").and_then(|l| l.as_object()) {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                ann.insert(k.clone(), v.to_string());
            }
        }
    }
    if let Some(s) = c.get("StopSignal").and_then(|v| v.as_str()) {
        ann.insert("org.opencontainers.image.stopSignal".into(), s.to_string());
    }
    for (field, name) in [
        ("os", "org.opencontainers.image.os"),
        ("architecture", "org.opencontainers.image.architecture"),
        ("created", "org.opencontainers.image.created"),
        ("author", "org.opencontainers.image.author"),
    ] {
        if let Some(v) = image_config.get(field).and_then(|v| v.as_str()) {
            ann.insert(name.to_string(), v.to_string());
        }
    }
    if !ann.is_empty() {
        spec["annotations"] = json!(ann);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nstaff:x:50:www,bob\naudio:x:29:www\n";

    #[test]
    fn users_resolve_through_the_image_files() {
        assert_eq!(resolve_user("", PASSWD, GROUP).unwrap(), (0, 0, vec![]));
        assert_eq!(
            resolve_user("www", PASSWD, GROUP).unwrap(),
            (33, 33, vec![29, 50])
        );
        assert_eq!(
            resolve_user("33", PASSWD, GROUP).unwrap(),
            (33, 33, vec![29, 50])
        );
        assert_eq!(
            resolve_user("www:staff", PASSWD, GROUP).unwrap(),
            (33, 50, vec![])
        );
        assert_eq!(
            resolve_user("1000:1000", PASSWD, GROUP).unwrap(),
            (1000, 1000, vec![])
        );
        assert_eq!(
            resolve_user("1000", PASSWD, GROUP).unwrap(),
            (1000, 0, vec![])
        );
        let e = resolve_user("nobody", PASSWD, GROUP)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.User") && e.contains("nobody"), "{e}");
        assert!(resolve_user("www:nogroup", PASSWD, GROUP).is_err());
    }

    #[test]
    fn spec_from_image_config() {
        let img = json!({
            "os": "linux", "architecture": "amd64",
            "config": {
                "Entrypoint": ["/bin/echo"], "Cmd": ["hello"],
                "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv", "User": "www",
                "StopSignal": "SIGQUIT", "Labels": {"l": "v"}
            }
        });
        let opts = BundleOpts {
            env: vec!["A=2".into(), "B=3".into()],
            volumes: vec![("/h".into(), "/c".into(), true)],
            hostname: Some("box".into()),
            ..Default::default()
        };
        let s = make_spec(
            skiff::spec_template::default_spec(),
            &img,
            PASSWD,
            GROUP,
            &opts,
        )
        .unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/echo", "hello"]));
        assert_eq!(s["process"]["env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(s["process"]["cwd"], "/srv");
        assert_eq!(s["process"]["terminal"], false);
        assert_eq!(s["process"]["user"]["uid"], 33);
        assert_eq!(s["hostname"], "box");
        assert_eq!(
            s["annotations"]["org.opencontainers.image.stopSignal"],
            "SIGQUIT"
        );
        assert_eq!(s["annotations"]["l"], "v");
        let m = s["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(m["options"], json!(["rbind", "rprivate", "ro"]));

        let opts = BundleOpts {
            args: vec!["bye".into()],
            tty: true,
            ..Default::default()
        };
        let s = make_spec(
            skiff::spec_template::default_spec(),
            &img,
            PASSWD,
            GROUP,
            &opts,
        )
        .unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/echo", "bye"]));
        assert_eq!(s["process"]["terminal"], true);
        assert!(s["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&json!("TERM=xterm")));

        let none = json!({"config": {}});
        assert!(make_spec(
            skiff::spec_template::default_spec(),
            &none,
            "",
            "",
            &BundleOpts::default()
        )
        .is_err());
        assert!(parse_volume("/a:rel").is_err());
        assert_eq!(
            parse_volume("/a:/b:ro").unwrap(),
            ("/a".into(), "/b".into(), true)
        );
    }
}

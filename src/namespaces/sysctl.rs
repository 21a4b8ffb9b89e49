//! `linux.sysctl`: only namespaced keys, and only when the container has
//! the namespace that makes them its own (otherwise the write would change
//! the host). Written through the container's /proc after pivot_root.

use std::collections::HashMap;

use crate::error::{Context, Error, Result};
use crate::namespaces::{Disposition, NamespacePlan};

#[derive(Debug, Clone, Default)]
pub struct SysctlPlan {
    /// (key, /proc/sys path relative to "/", value), sorted by key.
    entries: Vec<(String, String, String)>,
}

impl SysctlPlan {
    pub fn from_spec(sysctl: Option<&HashMap<String, String>>, ns: &NamespacePlan) -> Result<Self> {
        let mut entries = Vec::new();
        for (key, value) in sysctl.into_iter().flatten() {
            let field = format!("linux.sysctl.{key}");
            if key.is_empty()
                || key.contains("..")
                || key.starts_with(['.', '/'])
                || key.split(['.', '/']).any(|c| c.is_empty())
            {
                return Err(Error::config(field, "not a valid sysctl name"));
            }
            let needs = namespace_of(key).ok_or_else(|| {
                Error::config(
                    &field,
                    "not a namespaced sysctl: it would change the host, refused",
                )
            })?;
            let (disp, name) = match needs {
                Needs::Ipc => (&ns.ipc, "ipc"),
                Needs::Net => (&ns.network, "network"),
                Needs::Uts => (&ns.uts, "uts"),
            };
            if *disp == Disposition::Host {
                return Err(Error::config(
                    field,
                    format!("requires the container to have its own {name} namespace"),
                ));
            }
            // Keys may use "." or "/" as separator; a "/" key keeps dots inside names (like interface names).
            let rel = if key.contains('/') {
                key.clone()
            } else {
                key.replace('.', "/")
            };
            entries.push((key.clone(), format!("proc/sys/{rel}"), value.clone()));
        }
        entries.sort();
        Ok(SysctlPlan { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Write every value; runs in the container after pivot_root. Each
    /// file is opened through `rootfs::open_proc_file`: /proc must be a
    /// real procfs and nothing mounted over it may redirect the write.
    pub fn apply(&self) -> Result<()> {
        for (key, rel, value) in &self.entries {
            let path = format!("/{rel}");
            crate::rootfs::write_proc_file(&path, value.as_bytes())
                .with_context(|| format!("linux.sysctl.{key}"))?;
        }
        Ok(())
    }
}

enum Needs {
    Ipc,
    Net,
    Uts,
}

fn namespace_of(key: &str) -> Option<Needs> {
    let dotted = key.replace('/', ".");
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
        return Some(Needs::Ipc);
    }
    if dotted.starts_with("net.") {
        return Some(Needs::Net);
    }
    if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        return Some(Needs::Uts);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(json: &str) -> NamespacePlan {
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.3.0","linux":{{"namespaces":{json}}}}}"#
        ))
        .unwrap();
        NamespacePlan::from_spec(&spec).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn namespaced_keys_with_their_namespace() {
        let plan = SysctlPlan::from_spec(
            Some(&map(&[
                ("net.ipv4.ip_forward", "1"),
                ("kernel.shmmax", "1000"),
            ])),
            &ns(r#"[{"type":"mount"},{"type":"network"},{"type":"ipc"}]"#),
        )
        .unwrap();
        assert_eq!(
            plan.entries,
            vec![
                (
                    "kernel.shmmax".into(),
                    "proc/sys/kernel/shmmax".into(),
                    "1000".into()
                ),
                (
                    "net.ipv4.ip_forward".into(),
                    "proc/sys/net/ipv4/ip_forward".into(),
                    "1".into()
                ),
            ]
        );
    }

    #[test]
    fn refusals_name_the_key() {
        let host_net = ns(r#"[{"type":"mount"}]"#);
        let e = SysctlPlan::from_spec(Some(&map(&[("net.ipv4.ip_forward", "1")])), &host_net)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.sysctl.net.ipv4.ip_forward") && e.contains("network"),
            "{e}"
        );
        let e = SysctlPlan::from_spec(Some(&map(&[("vm.swappiness", "1")])), &host_net)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a namespaced sysctl"), "{e}");
        let e = SysctlPlan::from_spec(Some(&map(&[("net/../../x", "1")])), &host_net)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid sysctl name"), "{e}");
    }
}

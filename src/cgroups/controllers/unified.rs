//! linux.resources.unified: cgroup v2 files written as given, each checked to belong to a
//! controller cgroup2 serves here.

use oci_spec::runtime::LinuxResources;

use crate::cgroups::plan::cfg;
use crate::cgroups::plan::{Op, Write, R};
use crate::cgroups::probe::{Backend, HostCgroups};
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    if let Some(u) = r.unified() {
        let Some(_v2) = &host.v2 else {
            return Err(cfg(
                format!("{R}.unified"),
                "cgroup v2 is not mounted on this host",
            ));
        };
        let mut keys: Vec<_> = u.keys().collect();
        keys.sort();
        for k in keys {
            let field = format!("{R}.unified[{k:?}]");
            let ctrl = k.split('.').next().unwrap_or("");
            if ctrl != "cgroup" && !matches!(host.backend(ctrl), Some(Backend::V2(_))) {
                return Err(cfg(
                    field,
                    format!("the {ctrl} controller is not on cgroup v2 on this host"),
                ));
            }
            ops.push(Op::Write(Write {
                controller: "unified",
                field,
                file: k.clone(),
                value: u[k].clone(),
                alt: None,
                optional: false,
            }));
        }
    }
    Ok(())
}

//! linux.resources.network: net_cls and net_prio, which exist on v1 only.

use oci_spec::runtime::LinuxResources;

use super::{need, write};
use crate::cgroups::plan::cfg;
use crate::cgroups::plan::{Op, R};
use crate::cgroups::probe::{Backend, HostCgroups};
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            match need(host, "net_cls", &format!("{R}.network.classID"))? {
                Backend::V1(_) => ops.push(write(
                    "net_cls",
                    format!("{R}.network.classID"),
                    "net_cls.classid",
                    id.to_string(),
                )),
                Backend::V2(_) => {
                    return Err(cfg(
                        format!("{R}.network.classID"),
                        "net_cls is not supported on cgroup v2",
                    ))
                }
            }
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let field = format!("{R}.network.priorities[{i}]");
            match need(host, "net_prio", &field)? {
                Backend::V1(_) => ops.push(write(
                    "net_prio",
                    field,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                )),
                Backend::V2(_) => return Err(cfg(field, "net_prio is not supported on cgroup v2")),
            }
        }
    }
    Ok(())
}

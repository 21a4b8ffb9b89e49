//! linux.resources.pids: pids.max on either version.

use oci_spec::runtime::LinuxResources;

use super::{need, write};
use crate::cgroups::plan::max_or;
use crate::cgroups::plan::{Op, R};
use crate::cgroups::probe::HostCgroups;
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            need(host, "pids", &format!("{R}.pids.limit"))?;
            ops.push(write(
                "pids",
                format!("{R}.pids.limit"),
                "pids.max",
                max_or(p.limit()),
            ));
        }
    }
    Ok(())
}

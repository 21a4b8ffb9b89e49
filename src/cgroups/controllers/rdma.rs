//! linux.resources.rdma: rdma.max.

use oci_spec::runtime::LinuxResources;

use super::{need, write};
use crate::cgroups::plan::{Op, R};
use crate::cgroups::probe::HostCgroups;
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    if let Some(rd) = r.rdma() {
        let mut keys: Vec<_> = rd.keys().collect();
        keys.sort();
        for k in keys {
            let l = &rd[k];
            let field = format!("{R}.rdma.{k}");
            need(host, "rdma", &field)?;
            let mut v = k.clone();
            if let Some(h) = l.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            if v.len() != k.len() {
                ops.push(write("rdma", field, "rdma.max", v));
            }
        }
    }
    Ok(())
}

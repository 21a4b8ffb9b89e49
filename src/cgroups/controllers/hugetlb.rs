//! linux.resources.hugepageLimits: hugetlb.<size>.limit_in_bytes (v1) or .max (v2), and the
//! reservation limits with them where the kernel has them.

use oci_spec::runtime::LinuxResources;

use super::need;
use crate::cgroups::plan::{Op, Write, R};
use crate::cgroups::probe::{Backend, HostCgroups};
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("{R}.hugepageLimits[{i}]");
        let ps = h.page_size();
        let (file, rsvd) = match need(host, "hugetlb", &field)? {
            Backend::V1(_) => (
                format!("hugetlb.{ps}.limit_in_bytes"),
                format!("hugetlb.{ps}.rsvd.limit_in_bytes"),
            ),
            Backend::V2(_) => (
                format!("hugetlb.{ps}.max"),
                format!("hugetlb.{ps}.rsvd.max"),
            ),
        };
        ops.push(Op::Write(Write {
            controller: "hugetlb",
            field: field.clone(),
            file,
            value: h.limit().to_string(),
            alt: None,
            optional: false,
        }));
        // Reservations are limited the same when the kernel has them.
        ops.push(Op::Write(Write {
            controller: "hugetlb",
            field,
            file: rsvd,
            value: h.limit().to_string(),
            alt: None,
            optional: true,
        }));
    }
    Ok(())
}

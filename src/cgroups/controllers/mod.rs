//! One file per controller: each turns its part of linux.resources into the writes of the
//! backend (v1 or v2) that serves it on this host.

pub mod cpu;
pub mod hugetlb;
pub mod io;
pub mod memory;
pub mod network;
pub mod pids;
pub mod rdma;
pub mod unified;

use super::plan::{Op, Write};
use super::probe::{Backend, HostCgroups};
use crate::error::Result;

/// The backend serving `ctrl`, or the error that this host cannot honour `field`.
pub(crate) fn need<'a>(
    host: &'a HostCgroups,
    ctrl: &'static str,
    field: &str,
) -> Result<Backend<'a>> {
    host.backend(ctrl).ok_or_else(|| {
        super::manager::cannot_honour(
            field,
            format!("the {ctrl} controller is not available on this host"),
        )
    })
}

/// A plain write of `value` to `file` of `controller`'s cgroup, for `field`.
pub(crate) fn write(controller: &'static str, field: String, file: &str, value: String) -> Op {
    Op::Write(Write {
        controller,
        field,
        file: file.into(),
        value,
        alt: None,
        optional: false,
    })
}

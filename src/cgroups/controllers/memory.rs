//! linux.resources.memory: v1 memory.* (limit and memsw ordered together) or v2
//! memory.max/.swap.max/.low; what v2 has no file for is ignored with a warning, as runc does.

use oci_spec::runtime::LinuxResources;

use super::{need, write};
use crate::cgroups::plan::{cfg, max_or, swap_to_v2};
use crate::cgroups::plan::{Op, Write, R};
use crate::cgroups::probe::{Backend, HostCgroups};
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    if let Some(m) = r.memory() {
        let f = |n: &str| format!("{R}.memory.{n}");
        #[allow(deprecated)]
        let kernel = m.kernel();
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || kernel.is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some();
        let limit = m.limit().unwrap_or(0);
        let swap = m.swap().unwrap_or(0);
        if any {
            match need(host, "memory", &f("limit"))? {
                Backend::V1(_) => {
                    if m.check_before_update() == Some(true) && limit > 0 {
                        ops.push(Op::CheckUsage {
                            controller: "memory",
                            usage_file: "memory.usage_in_bytes",
                            limit,
                        });
                    }
                    let lw = (limit != 0).then(|| Write {
                        controller: "memory",
                        field: f("limit"),
                        file: "memory.limit_in_bytes".into(),
                        value: limit.to_string(),
                        alt: None,
                        optional: false,
                    });
                    // memsw follows the memory limit when swap is unset
                    // and memory goes unlimited (runc does the same).
                    let sv = if swap == 0 && limit == -1 { -1 } else { swap };
                    let sw = (sv != 0).then(|| Write {
                        controller: "memory",
                        field: f("swap"),
                        file: "memory.memsw.limit_in_bytes".into(),
                        value: sv.to_string(),
                        alt: None,
                        optional: false,
                    });
                    match (lw, sw) {
                        (Some(limit), Some(swap)) => ops.push(Op::MemoryPair { limit, swap }),
                        (Some(l), None) => ops.push(Op::Write(l)),
                        (None, Some(s)) => ops.push(Op::Write(s)),
                        (None, None) => {}
                    }
                    if let Some(v) = m.reservation().filter(|v| *v != 0) {
                        ops.push(write(
                            "memory",
                            f("reservation"),
                            "memory.soft_limit_in_bytes",
                            v.to_string(),
                        ));
                    }
                    if let Some(v) = kernel.filter(|v| *v != 0) {
                        ops.push(write(
                            "memory",
                            f("kernel"),
                            "memory.kmem.limit_in_bytes",
                            v.to_string(),
                        ));
                    }
                    if let Some(v) = m.kernel_tcp().filter(|v| *v != 0) {
                        ops.push(write(
                            "memory",
                            f("kernelTCP"),
                            "memory.kmem.tcp.limit_in_bytes",
                            v.to_string(),
                        ));
                    }
                    if let Some(v) = m.swappiness() {
                        ops.push(write(
                            "memory",
                            f("swappiness"),
                            "memory.swappiness",
                            v.to_string(),
                        ));
                    }
                    if m.disable_oom_killer() == Some(true) {
                        ops.push(write(
                            "memory",
                            f("disableOOMKiller"),
                            "memory.oom_control",
                            "1".into(),
                        ));
                    }
                }
                Backend::V2(_) => {
                    if m.check_before_update() == Some(true) && limit > 0 {
                        ops.push(Op::CheckUsage {
                            controller: "memory",
                            usage_file: "memory.current",
                            limit,
                        });
                    }
                    // swap first: memory.swap.max does not depend on
                    // memory.max, and runc orders it so too.
                    let s2 = swap_to_v2(swap, limit).map_err(|e| cfg(f("swap"), e))?;
                    if s2 != 0 {
                        ops.push(write("memory", f("swap"), "memory.swap.max", max_or(s2)));
                    }
                    if limit != 0 {
                        ops.push(write("memory", f("limit"), "memory.max", max_or(limit)));
                    }
                    if let Some(v) = m.reservation().filter(|v| *v != 0) {
                        ops.push(write("memory", f("reservation"), "memory.low", max_or(v)));
                    }
                    // kernel, kernelTCP, swappiness and disableOOMKiller
                    // have no cgroup v2 file; runc ignores them there too.
                    if kernel.is_some()
                        || m.kernel_tcp().is_some()
                        || m.swappiness().is_some()
                        || m.disable_oom_killer() == Some(true)
                    {
                        log::warn!("memory kernel/kernelTCP/swappiness/disableOOMKiller are not supported on cgroup v2; ignored");
                    }
                }
            }
        }
    }
    Ok(())
}

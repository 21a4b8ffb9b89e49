//! linux.resources.cpu: v1 cpu.* (shares, CFS, RT) or v2 cpu.weight/.max/.idle/.max.burst;
//! cpus and mems go to the cpuset controller.

use oci_spec::runtime::LinuxResources;

use super::{need, write};
use crate::cgroups::plan::{cfg, shares_to_weight};
use crate::cgroups::plan::{Op, R};
use crate::cgroups::probe::{Backend, HostCgroups};
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    if let Some(c) = r.cpu() {
        let f = |n: &str| format!("{R}.cpu.{n}");
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        let cpu_any = c.shares().unwrap_or(0) != 0
            || quota != 0
            || period != 0
            || c.burst().is_some()
            || c.realtime_runtime().unwrap_or(0) != 0
            || c.realtime_period().unwrap_or(0) != 0
            || c.idle().is_some();
        if cpu_any {
            match need(host, "cpu", &f("shares"))? {
                Backend::V1(_) => {
                    if let Some(s) = c.shares().filter(|s| *s != 0) {
                        ops.push(write("cpu", f("shares"), "cpu.shares", s.to_string()));
                    }
                    if period != 0 {
                        ops.push(write(
                            "cpu",
                            f("period"),
                            "cpu.cfs_period_us",
                            period.to_string(),
                        ));
                    }
                    if quota != 0 {
                        ops.push(write(
                            "cpu",
                            f("quota"),
                            "cpu.cfs_quota_us",
                            quota.to_string(),
                        ));
                    }
                    if let Some(b) = c.burst() {
                        ops.push(write("cpu", f("burst"), "cpu.cfs_burst_us", b.to_string()));
                    }
                    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
                        ops.push(write(
                            "cpu",
                            f("realtimePeriod"),
                            "cpu.rt_period_us",
                            p.to_string(),
                        ));
                    }
                    if let Some(p) = c.realtime_runtime().filter(|p| *p != 0) {
                        ops.push(write(
                            "cpu",
                            f("realtimeRuntime"),
                            "cpu.rt_runtime_us",
                            p.to_string(),
                        ));
                    }
                    if let Some(i) = c.idle() {
                        ops.push(write("cpu", f("idle"), "cpu.idle", i.to_string()));
                    }
                }
                Backend::V2(_) => {
                    if c.realtime_runtime().unwrap_or(0) != 0
                        || c.realtime_period().unwrap_or(0) != 0
                    {
                        return Err(cfg(
                            f("realtimeRuntime"),
                            "realtime scheduling limits are not supported on cgroup v2",
                        ));
                    }
                    if let Some(i) = c.idle() {
                        ops.push(write("cpu", f("idle"), "cpu.idle", i.to_string()));
                    }
                    if let Some(s) = c.shares().filter(|s| *s != 0) {
                        ops.push(write(
                            "cpu",
                            f("shares"),
                            "cpu.weight",
                            shares_to_weight(s).to_string(),
                        ));
                    }
                    if let Some(b) = c.burst() {
                        ops.push(write("cpu", f("burst"), "cpu.max.burst", b.to_string()));
                    }
                    if quota != 0 || period != 0 {
                        let mut v = if quota > 0 {
                            quota.to_string()
                        } else {
                            "max".to_string()
                        };
                        if period != 0 {
                            v.push(' ');
                            v.push_str(&period.to_string());
                        }
                        ops.push(write("cpu", f("quota"), "cpu.max", v));
                    }
                }
            }
        }
        for (name, file, v) in [
            ("cpus", "cpuset.cpus", c.cpus()),
            ("mems", "cpuset.mems", c.mems()),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                need(host, "cpuset", &f(name))?;
                ops.push(write("cpuset", f(name), file, v.to_string()));
            }
        }
    }
    Ok(())
}

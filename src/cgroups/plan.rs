//! `CgroupPlan`: every field of linux.resources validated up front, then
//! converted into the writes of the backend (v1 or v2) that serves each
//! controller on this host, the way runc converts v1-style values for v2.

use std::collections::BTreeSet;

use oci_spec::runtime::{LinuxResources, Spec};
use serde::{Deserialize, Serialize};

use super::devices::{default_rules, DevRule, DeviceState};
use super::probe::{check_cgroups_path, clean, Backend, HostCgroups};
use crate::error::{Error, Result};

const R: &str = "linux.resources";

/// One file write. If `file` does not exist in the cgroup, `alt` is tried;
/// if neither exists the write fails, unless `optional`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    /// The config field it comes from, for error messages.
    pub field: String,
    pub file: String,
    pub value: String,
    pub alt: Option<(String, String)>,
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Write(Write),
    /// v1 memory.limit_in_bytes and memory.memsw.limit_in_bytes: the kernel
    /// needs memsw >= limit at every moment, so the order depends on the
    /// current values; tried limit first, then the other way round.
    MemoryPair {
        limit: Write,
        swap: Write,
    },
    /// Reject a memory limit below current usage (checkBeforeUpdate).
    CheckUsage {
        controller: &'static str,
        usage_file: &'static str,
        limit: i64,
    },
}

/// What `from_spec` decided: the cgroup path and the validated resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupPlan {
    /// Cleaned in-hierarchy path; absolute ("/a/b") or relative ("a/b").
    pub path: String,
    pub resources: LinuxResources,
    /// The devices rules, including the defaults every container gets;
    /// None in an `update` (devices are not changed then).
    pub devices: Option<Vec<DevRule>>,
}

/// Host facts the values are checked against (read by `HostLimits::probe`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLimits {
    pub cpus: BTreeSet<u32>,
    pub mems: BTreeSet<u32>,
    /// e.g. "2MB", "1GB"
    pub hugepage_sizes: Vec<String>,
    /// (major, minor) of every block device.
    pub block_devices: BTreeSet<(u64, u64)>,
}

fn read_trim(p: &str) -> Option<String> {
    crate::sys::fsio::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

impl HostLimits {
    pub fn probe() -> Result<HostLimits> {
        Self::probe_what(true, true, true)
    }

    /// Only what `check_host` will look at for these resources: on the
    /// create path most configs need none of it (four directory and file
    /// reads saved).
    pub fn probe_for(r: &LinuxResources) -> Result<HostLimits> {
        let cpus = r
            .cpu()
            .as_ref()
            .is_some_and(|c| c.cpus().is_some() || c.mems().is_some());
        let huge = r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty());
        let block = r.block_io().as_ref().is_some_and(|b| {
            b.weight_device().as_ref().is_some_and(|d| !d.is_empty())
                || throttle_lists(b).iter().any(|(_, l)| !l.is_empty())
        });
        Self::probe_what(cpus, huge, block)
    }

    fn probe_what(cpus_mems: bool, huge: bool, block: bool) -> Result<HostLimits> {
        let mut limits = HostLimits {
            cpus: BTreeSet::new(),
            mems: BTreeSet::new(),
            hugepage_sizes: Vec::new(),
            block_devices: BTreeSet::new(),
        };
        if cpus_mems {
            let cpus = read_trim("/sys/devices/system/cpu/online").unwrap_or_else(|| "0".into());
            let mems = read_trim("/sys/devices/system/node/online").unwrap_or_else(|| "0".into());
            limits.cpus = parse_list(&cpus)
                .map_err(|e| Error::msg(format!("/sys/devices/system/cpu/online: {e}")))?;
            limits.mems = parse_list(&mems)
                .map_err(|e| Error::msg(format!("/sys/devices/system/node/online: {e}")))?;
        }
        if huge {
            for e in std::fs::read_dir("/sys/kernel/mm/hugepages")
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Some(kb) = e
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("hugepages-"))
                    .and_then(|n| n.strip_suffix("kB"))
                    .and_then(|kb| kb.parse::<u64>().ok())
                {
                    limits.hugepage_sizes.push(hugepage_name(kb));
                }
            }
        }
        if block {
            for e in std::fs::read_dir("/sys/dev/block")
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Some((a, b)) = e.file_name().to_str().and_then(|n| n.split_once(':')) {
                    if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                        limits.block_devices.insert((a, b));
                    }
                }
            }
        }
        Ok(limits)
    }
}

/// The kernel's name for a huge page size given in kB.
pub fn hugepage_name(kb: u64) -> String {
    if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

/// Parse a cpu/node list like "0-3,5".
pub fn parse_list(s: &str) -> std::result::Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a
            .trim()
            .parse()
            .map_err(|_| format!("{part:?} is not a number or range"))?;
        let b: u32 = b
            .trim()
            .parse()
            .map_err(|_| format!("{part:?} is not a number or range"))?;
        if a > b || b - a > 65536 {
            return Err(format!("{part:?} is not a valid range"));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

fn cfg(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::config(field, reason)
}

/// Limits where -1 means unlimited and 0 means unset; anything below -1 is
/// refused (the kernel would).
fn limit_ok(v: Option<i64>, field: &str) -> Result<()> {
    match v {
        Some(x) if x < -1 => Err(cfg(
            field,
            format!("{x} is not a valid limit (use -1 for unlimited)"),
        )),
        _ => Ok(()),
    }
}

/// cgroup v1 shares [2, 262144] to v2 weight [1, 10000], runc's formula.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2)) * 9999 / 262142
}

/// blkio weight [10, 1000] to io.weight [1, 10000], runc's formula.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w as u64 - 10) * 9999 / 990
}

/// OCI memory.swap (memory+swap) to v2 memory.swap.max (swap only).
pub fn swap_to_v2(swap: i64, limit: i64) -> std::result::Result<i64, String> {
    Ok(match (swap, limit) {
        (0, -1) => -1,
        (-1, _) | (0, _) => swap,
        (_, -1) => swap,
        (_, 0) => return Err("a swap limit needs a memory limit".into()),
        (s, l) if s < l => {
            return Err(format!(
                "memory+swap limit {s} is below the memory limit {l}"
            ))
        }
        (s, l) => s - l,
    })
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

impl CgroupPlan {
    /// Validate `linux.cgroupsPath` and `linux.resources` of a spec. The
    /// default path, when none is given, is "/skiff/<id>".
    pub fn from_spec(spec: &Spec, id: &str) -> Result<CgroupPlan> {
        let linux = spec.linux().as_ref();
        let path = match linux.and_then(|l| l.cgroups_path().as_ref()) {
            Some(p) if !p.as_os_str().is_empty() => {
                let s = p
                    .to_str()
                    .ok_or_else(|| cfg("linux.cgroupsPath", "is not valid UTF-8"))?;
                check_cgroups_path(s)?;
                let c = clean(s);
                if c == "/" || c.is_empty() {
                    return Err(cfg(
                        "linux.cgroupsPath",
                        format!("{s:?} names the root cgroup, which cannot be used"),
                    ));
                }
                c
            }
            _ => format!("/skiff/{id}"),
        };
        let resources = linux
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let mut plan = CgroupPlan::from_resources(path, resources)?;
        let mut rules = Vec::new();
        if let Some(devs) = plan.resources.devices() {
            for (i, d) in devs.iter().enumerate() {
                rules.push(DevRule::from_oci(d, &format!("{R}.devices[{i}]"))?);
            }
        }
        rules.extend(default_rules());
        DeviceState::from_rules(&rules).map_err(|e| cfg(format!("{R}.devices"), e.to_string()))?;
        plan.devices = Some(rules);
        Ok(plan)
    }

    /// The first resource limit the config asks for (devices rules aside:
    /// a rootless container without a cgroup has no device cgroup, and its
    /// user namespace already keeps it from creating device nodes).
    pub fn limits_asked(&self) -> Option<&'static str> {
        let r = &self.resources;
        let unified = r.unified().as_ref().is_some_and(|u| !u.is_empty());
        [
            (r.memory().is_some(), "linux.resources.memory"),
            (r.cpu().is_some(), "linux.resources.cpu"),
            (r.pids().is_some(), "linux.resources.pids"),
            (r.block_io().is_some(), "linux.resources.blockIO"),
            (
                r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
                "linux.resources.hugepageLimits",
            ),
            (r.network().is_some(), "linux.resources.network"),
            (
                r.rdma().as_ref().is_some_and(|h| !h.is_empty()),
                "linux.resources.rdma",
            ),
            (unified, "linux.resources.unified"),
        ]
        .into_iter()
        .find(|(asked, _)| *asked)
        .map(|(_, f)| f)
    }

    /// Validate resources alone (for `update`; devices are left as they are).
    pub fn from_resources(path: String, r: LinuxResources) -> Result<CgroupPlan> {
        if let Some(m) = r.memory() {
            limit_ok(m.limit(), &format!("{R}.memory.limit"))?;
            limit_ok(m.reservation(), &format!("{R}.memory.reservation"))?;
            limit_ok(m.swap(), &format!("{R}.memory.swap"))?;
            #[allow(deprecated)]
            limit_ok(m.kernel(), &format!("{R}.memory.kernel"))?;
            limit_ok(m.kernel_tcp(), &format!("{R}.memory.kernelTCP"))?;
            // Kernels since 5.10 (v1) and cgroup v2 always account
            // hierarchically; turning it off is no longer possible.
            if m.use_hierarchy() == Some(false) {
                return Err(cfg(
                    format!("{R}.memory.useHierarchy"),
                    "false is not possible: the kernel always accounts memory hierarchically",
                ));
            }
            if let Some(s) = m.swappiness() {
                if s > 100 {
                    return Err(cfg(
                        format!("{R}.memory.swappiness"),
                        format!("{s} is outside 0-100"),
                    ));
                }
            }
            if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
                if l > 0 && s > 0 && s < l {
                    return Err(cfg(
                        format!("{R}.memory.swap"),
                        format!("memory+swap limit {s} is below the memory limit {l}"),
                    ));
                }
            }
        }
        if let Some(c) = r.cpu() {
            let f = |n: &str| format!("{R}.cpu.{n}");
            if let Some(q) = c.quota() {
                if q != -1 && q != 0 && q < 1000 {
                    return Err(cfg(
                        f("quota"),
                        format!("{q} is not -1 or at least 1000 (microseconds)"),
                    ));
                }
            }
            if let Some(p) = c.period() {
                if p != 0 && !(1000..=1_000_000).contains(&p) {
                    return Err(cfg(
                        f("period"),
                        format!("{p} is outside 1000-1000000 (microseconds)"),
                    ));
                }
            }
            if let Some(s) = c.shares() {
                if s != 0 && !(2..=262144).contains(&s) {
                    return Err(cfg(f("shares"), format!("{s} is outside 2-262144")));
                }
            }
            if let Some(rt) = c.realtime_runtime() {
                if rt < -1 {
                    return Err(cfg(
                        f("realtimeRuntime"),
                        format!("{rt} is not -1 or a duration"),
                    ));
                }
            }
            if let Some(i) = c.idle() {
                if i != 0 && i != 1 {
                    return Err(cfg(f("idle"), format!("{i} is not 0 or 1")));
                }
            }
            if let (Some(b), Some(q)) = (c.burst(), c.quota()) {
                if q > 0 && b > q as u64 {
                    return Err(cfg(f("burst"), format!("{b} exceeds the quota {q}")));
                }
            }
            if let Some(s) = c.cpus() {
                parse_list(s).map_err(|e| cfg(f("cpus"), e))?;
            }
            if let Some(s) = c.mems() {
                parse_list(s).map_err(|e| cfg(f("mems"), e))?;
            }
        }
        if let Some(b) = r.block_io() {
            let w = |v: Option<u16>, field: String| -> Result<()> {
                match v {
                    Some(x) if x != 0 && !(10..=1000).contains(&x) => {
                        Err(cfg(field, format!("{x} is outside 10-1000")))
                    }
                    _ => Ok(()),
                }
            };
            w(b.weight(), format!("{R}.blockIO.weight"))?;
            w(b.leaf_weight(), format!("{R}.blockIO.leafWeight"))?;
            for (i, d) in b.weight_device().iter().flatten().enumerate() {
                w(d.weight(), format!("{R}.blockIO.weightDevice[{i}].weight"))?;
                w(
                    d.leaf_weight(),
                    format!("{R}.blockIO.weightDevice[{i}].leafWeight"),
                )?;
                if d.major() < 0 || d.minor() < 0 {
                    return Err(cfg(
                        format!("{R}.blockIO.weightDevice[{i}]"),
                        "negative device number",
                    ));
                }
            }
            for (name, list) in throttle_lists(b) {
                for (i, d) in list.iter().enumerate() {
                    if d.major() < 0 || d.minor() < 0 {
                        return Err(cfg(
                            format!("{R}.blockIO.{name}[{i}]"),
                            "negative device number",
                        ));
                    }
                }
            }
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let ps = h.page_size();
            let ok = ps.len() > 2
                && (ps.ends_with("KB") || ps.ends_with("MB") || ps.ends_with("GB"))
                && ps[..ps.len() - 2].bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(cfg(
                    format!("{R}.hugepageLimits[{i}].pageSize"),
                    format!("{ps:?} is not a size like \"2MB\""),
                ));
            }
            if h.limit() < 0 {
                return Err(cfg(
                    format!("{R}.hugepageLimits[{i}].limit"),
                    format!("{} is negative", h.limit()),
                ));
            }
        }
        if let Some(n) = r.network() {
            for (i, p) in n.priorities().iter().flatten().enumerate() {
                if p.name().is_empty() || p.name().contains(|c: char| c.is_whitespace() || c == '/')
                {
                    return Err(cfg(
                        format!("{R}.network.priorities[{i}].name"),
                        format!("{:?} is not an interface name", p.name()),
                    ));
                }
            }
        }
        if let Some(rd) = r.rdma() {
            for k in rd.keys() {
                if k.is_empty() || k.contains(|c: char| c.is_whitespace()) {
                    return Err(cfg(
                        format!("{R}.rdma"),
                        format!("{k:?} is not a device name"),
                    ));
                }
            }
        }
        if let Some(u) = r.unified() {
            for k in u.keys() {
                unified_key_ok(k)?;
            }
        }
        Ok(CgroupPlan {
            path,
            resources: r,
            devices: None,
        })
    }

    /// Check the values against this host (before anything is created).
    pub fn check_host(&self, host: &HostLimits) -> Result<()> {
        let r = &self.resources;
        if let Some(c) = r.cpu() {
            for (name, set, v) in [
                ("cpus", &host.cpus, c.cpus()),
                ("mems", &host.mems, c.mems()),
            ] {
                if let Some(v) = v {
                    let want = parse_list(v).map_err(|e| cfg(format!("{R}.cpu.{name}"), e))?;
                    if let Some(bad) = want.iter().find(|x| !set.contains(x)) {
                        return Err(cfg(
                            format!("{R}.cpu.{name}"),
                            format!(
                                "{v:?}: {bad} is not online on this host (online: {})",
                                fmt_list(set)
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(b) = r.block_io() {
            let dev_ok = |ma: i64, mi: i64, field: String| -> Result<()> {
                if host.block_devices.contains(&(ma as u64, mi as u64)) {
                    Ok(())
                } else {
                    Err(cfg(field, format!("block device {ma}:{mi} does not exist")))
                }
            };
            for (i, d) in b.weight_device().iter().flatten().enumerate() {
                dev_ok(
                    d.major(),
                    d.minor(),
                    format!("{R}.blockIO.weightDevice[{i}]"),
                )?;
            }
            for (name, list) in throttle_lists(b) {
                for (i, d) in list.iter().enumerate() {
                    dev_ok(d.major(), d.minor(), format!("{R}.blockIO.{name}[{i}]"))?;
                }
            }
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            if !host.hugepage_sizes.iter().any(|s| s == h.page_size()) {
                return Err(cfg(
                    format!("{R}.hugepageLimits[{i}].pageSize"),
                    format!(
                        "{:?} is not a huge page size of this host ({})",
                        h.page_size(),
                        host.hugepage_sizes.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The writes for this host's layout, in order.
    pub fn ops(&self, host: &HostCgroups) -> Result<Vec<Op>> {
        let r = &self.resources;
        let mut ops = Vec::new();
        let need = |ctrl: &'static str, field: &str| -> Result<Backend<'_>> {
            host.backend(ctrl).ok_or_else(|| {
                super::manager::cannot_honour(
                    field,
                    format!("the {ctrl} controller is not available on this host"),
                )
            })
        };
        let w = |controller: &'static str, field: String, file: &str, value: String| {
            Op::Write(Write {
                controller,
                field,
                file: file.into(),
                value,
                alt: None,
                optional: false,
            })
        };
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
                match need("memory", &f("limit"))? {
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
                            ops.push(w(
                                "memory",
                                f("reservation"),
                                "memory.soft_limit_in_bytes",
                                v.to_string(),
                            ));
                        }
                        if let Some(v) = kernel.filter(|v| *v != 0) {
                            ops.push(w(
                                "memory",
                                f("kernel"),
                                "memory.kmem.limit_in_bytes",
                                v.to_string(),
                            ));
                        }
                        if let Some(v) = m.kernel_tcp().filter(|v| *v != 0) {
                            ops.push(w(
                                "memory",
                                f("kernelTCP"),
                                "memory.kmem.tcp.limit_in_bytes",
                                v.to_string(),
                            ));
                        }
                        if let Some(v) = m.swappiness() {
                            ops.push(w(
                                "memory",
                                f("swappiness"),
                                "memory.swappiness",
                                v.to_string(),
                            ));
                        }
                        if m.disable_oom_killer() == Some(true) {
                            ops.push(w(
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
                            ops.push(w("memory", f("swap"), "memory.swap.max", max_or(s2)));
                        }
                        if limit != 0 {
                            ops.push(w("memory", f("limit"), "memory.max", max_or(limit)));
                        }
                        if let Some(v) = m.reservation().filter(|v| *v != 0) {
                            ops.push(w("memory", f("reservation"), "memory.low", max_or(v)));
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
                match need("cpu", &f("shares"))? {
                    Backend::V1(_) => {
                        if let Some(s) = c.shares().filter(|s| *s != 0) {
                            ops.push(w("cpu", f("shares"), "cpu.shares", s.to_string()));
                        }
                        if period != 0 {
                            ops.push(w(
                                "cpu",
                                f("period"),
                                "cpu.cfs_period_us",
                                period.to_string(),
                            ));
                        }
                        if quota != 0 {
                            ops.push(w("cpu", f("quota"), "cpu.cfs_quota_us", quota.to_string()));
                        }
                        if let Some(b) = c.burst() {
                            ops.push(w("cpu", f("burst"), "cpu.cfs_burst_us", b.to_string()));
                        }
                        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
                            ops.push(w(
                                "cpu",
                                f("realtimePeriod"),
                                "cpu.rt_period_us",
                                p.to_string(),
                            ));
                        }
                        if let Some(p) = c.realtime_runtime().filter(|p| *p != 0) {
                            ops.push(w(
                                "cpu",
                                f("realtimeRuntime"),
                                "cpu.rt_runtime_us",
                                p.to_string(),
                            ));
                        }
                        if let Some(i) = c.idle() {
                            ops.push(w("cpu", f("idle"), "cpu.idle", i.to_string()));
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
                            ops.push(w("cpu", f("idle"), "cpu.idle", i.to_string()));
                        }
                        if let Some(s) = c.shares().filter(|s| *s != 0) {
                            ops.push(w(
                                "cpu",
                                f("shares"),
                                "cpu.weight",
                                shares_to_weight(s).to_string(),
                            ));
                        }
                        if let Some(b) = c.burst() {
                            ops.push(w("cpu", f("burst"), "cpu.max.burst", b.to_string()));
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
                            ops.push(w("cpu", f("quota"), "cpu.max", v));
                        }
                    }
                }
            }
            for (name, file, v) in [
                ("cpus", "cpuset.cpus", c.cpus()),
                ("mems", "cpuset.mems", c.mems()),
            ] {
                if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                    need("cpuset", &f(name))?;
                    ops.push(w("cpuset", f(name), file, v.to_string()));
                }
            }
        }
        if let Some(p) = r.pids() {
            if p.limit() != 0 {
                need("pids", &format!("{R}.pids.limit"))?;
                ops.push(w(
                    "pids",
                    format!("{R}.pids.limit"),
                    "pids.max",
                    max_or(p.limit()),
                ));
            }
        }
        if let Some(b) = r.block_io() {
            let f = |n: &str| format!("{R}.blockIO.{n}");
            let v1 = match host.backend("blkio") {
                Some(Backend::V1(_)) => Some(true),
                _ => match host.backend("io") {
                    Some(Backend::V2(_)) => Some(false),
                    _ => None,
                },
            };
            let any = b.weight().unwrap_or(0) != 0
                || b.leaf_weight().unwrap_or(0) != 0
                || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
                || throttle_lists(b).iter().any(|(_, l)| !l.is_empty());
            if any {
                let v1 = v1.ok_or_else(|| cfg(f("weight"), "neither the blkio (v1) nor the io (v2) controller is available on this host"))?;
                let mk =
                    |field: String, file: &str, value: String, alt: Option<(String, String)>| {
                        Op::Write(Write {
                            controller: if v1 { "blkio" } else { "io" },
                            field,
                            file: file.into(),
                            value,
                            alt,
                            optional: false,
                        })
                    };
                if let Some(x) = b.weight().filter(|x| *x != 0) {
                    if v1 {
                        ops.push(mk(
                            f("weight"),
                            "blkio.weight",
                            x.to_string(),
                            Some(("blkio.bfq.weight".into(), x.to_string())),
                        ));
                    } else {
                        ops.push(mk(
                            f("weight"),
                            "io.bfq.weight",
                            x.to_string(),
                            Some(("io.weight".into(), blkio_to_io_weight(x).to_string())),
                        ));
                    }
                }
                if let Some(x) = b.leaf_weight().filter(|x| *x != 0) {
                    if !v1 {
                        return Err(cfg(f("leafWeight"), "not supported on cgroup v2"));
                    }
                    ops.push(mk(
                        f("leafWeight"),
                        "blkio.leaf_weight",
                        x.to_string(),
                        None,
                    ));
                }
                for (i, d) in b.weight_device().iter().flatten().enumerate() {
                    let dev = format!("{}:{}", d.major(), d.minor());
                    if let Some(x) = d.weight().filter(|x| *x != 0) {
                        let field = f(&format!("weightDevice[{i}].weight"));
                        if v1 {
                            ops.push(mk(
                                field,
                                "blkio.weight_device",
                                format!("{dev} {x}"),
                                Some(("blkio.bfq.weight_device".into(), format!("{dev} {x}"))),
                            ));
                        } else {
                            ops.push(mk(
                                field,
                                "io.bfq.weight",
                                format!("{dev} {x}"),
                                Some((
                                    "io.weight".into(),
                                    format!("{dev} {}", blkio_to_io_weight(x)),
                                )),
                            ));
                        }
                    }
                    if let Some(x) = d.leaf_weight().filter(|x| *x != 0) {
                        if !v1 {
                            return Err(cfg(
                                f(&format!("weightDevice[{i}].leafWeight")),
                                "not supported on cgroup v2",
                            ));
                        }
                        ops.push(mk(
                            f(&format!("weightDevice[{i}].leafWeight")),
                            "blkio.leaf_weight_device",
                            format!("{dev} {x}"),
                            None,
                        ));
                    }
                }
                for (name, list) in throttle_lists(b) {
                    let (v1file, v2key) = match name {
                        "throttleReadBpsDevice" => ("blkio.throttle.read_bps_device", "rbps"),
                        "throttleWriteBpsDevice" => ("blkio.throttle.write_bps_device", "wbps"),
                        "throttleReadIOPSDevice" => ("blkio.throttle.read_iops_device", "riops"),
                        _ => ("blkio.throttle.write_iops_device", "wiops"),
                    };
                    for (i, d) in list.iter().enumerate() {
                        let dev = format!("{}:{}", d.major(), d.minor());
                        let field = f(&format!("{name}[{i}]"));
                        if v1 {
                            ops.push(mk(field, v1file, format!("{dev} {}", d.rate()), None));
                        } else {
                            let rate = if d.rate() == 0 {
                                "max".to_string()
                            } else {
                                d.rate().to_string()
                            };
                            ops.push(mk(field, "io.max", format!("{dev} {v2key}={rate}"), None));
                        }
                    }
                }
            }
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let field = format!("{R}.hugepageLimits[{i}]");
            let ps = h.page_size();
            let (file, rsvd) = match need("hugetlb", &field)? {
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
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                match need("net_cls", &format!("{R}.network.classID"))? {
                    Backend::V1(_) => ops.push(w(
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
                match need("net_prio", &field)? {
                    Backend::V1(_) => ops.push(w(
                        "net_prio",
                        field,
                        "net_prio.ifpriomap",
                        format!("{} {}", p.name(), p.priority()),
                    )),
                    Backend::V2(_) => {
                        return Err(cfg(field, "net_prio is not supported on cgroup v2"))
                    }
                }
            }
        }
        if let Some(rd) = r.rdma() {
            let mut keys: Vec<_> = rd.keys().collect();
            keys.sort();
            for k in keys {
                let l = &rd[k];
                let field = format!("{R}.rdma.{k}");
                need("rdma", &field)?;
                let mut v = k.clone();
                if let Some(h) = l.hca_handles() {
                    v.push_str(&format!(" hca_handle={h}"));
                }
                if let Some(o) = l.hca_objects() {
                    v.push_str(&format!(" hca_object={o}"));
                }
                if v.len() != k.len() {
                    ops.push(w("rdma", field, "rdma.max", v));
                }
            }
        }
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
        Ok(ops)
    }

    /// The emulated device state (None when devices are not to be set).
    pub fn device_state(&self) -> Result<Option<DeviceState>> {
        self.devices
            .as_ref()
            .map(|r| {
                DeviceState::from_rules(r).map_err(|e| cfg(format!("{R}.devices"), e.to_string()))
            })
            .transpose()
    }
}

fn fmt_list(s: &BTreeSet<u32>) -> String {
    s.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn throttle_lists(
    b: &oci_spec::runtime::LinuxBlockIo,
) -> [(&'static str, &[oci_spec::runtime::LinuxThrottleDevice]); 4] {
    fn g(
        v: &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>,
    ) -> &[oci_spec::runtime::LinuxThrottleDevice] {
        v.as_deref().unwrap_or(&[])
    }
    [
        ("throttleReadBpsDevice", g(b.throttle_read_bps_device())),
        ("throttleWriteBpsDevice", g(b.throttle_write_bps_device())),
        ("throttleReadIOPSDevice", g(b.throttle_read_iops_device())),
        ("throttleWriteIOPSDevice", g(b.throttle_write_iops_device())),
    ]
}

/// A unified key names one file of the container's own cgroup: no path
/// separators, no dot-files, "<controller>.<name>".
pub fn unified_key_ok(k: &str) -> Result<()> {
    let field = format!("{R}.unified[{k:?}]");
    if k.is_empty() || k.contains('/') || k.contains('\0') || k.starts_with('.') || k.contains("..")
    {
        return Err(cfg(field, "is not a cgroup file name"));
    }
    match k.split_once('.') {
        Some((c, n)) if !c.is_empty() && !n.is_empty() => Ok(()),
        _ => Err(cfg(field, "is not of the form <controller>.<file>")),
    }
}

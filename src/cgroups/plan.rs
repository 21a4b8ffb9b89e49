//! `CgroupPlan`: every field of linux.resources validated up front, then
//! converted into the writes of the backend (v1 or v2) that serves each
//! controller on this host, the way runc converts v1-style values for v2.

use std::collections::BTreeSet;

use oci_spec::runtime::{LinuxResources, Spec};
use serde::{Deserialize, Serialize};

use super::controllers;
use super::devices::{default_rules, DevRule, DeviceState};
use super::probe::{check_cgroups_path, clean, HostCgroups};
use crate::error::{Error, Result};

pub(super) const R: &str = "linux.resources";

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

pub(super) fn cfg(field: impl Into<String>, reason: impl Into<String>) -> Error {
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

pub(super) fn max_or(v: i64) -> String {
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

    /// The writes for this host's layout, in order: each controller's, from its own file
    /// under `controllers/`.
    pub fn ops(&self, host: &HostCgroups) -> Result<Vec<Op>> {
        let r = &self.resources;
        let mut ops = Vec::new();
        controllers::memory::ops(r, host, &mut ops)?;
        controllers::cpu::ops(r, host, &mut ops)?;
        controllers::pids::ops(r, host, &mut ops)?;
        controllers::io::ops(r, host, &mut ops)?;
        controllers::hugetlb::ops(r, host, &mut ops)?;
        controllers::network::ops(r, host, &mut ops)?;
        controllers::rdma::ops(r, host, &mut ops)?;
        controllers::unified::ops(r, host, &mut ops)?;
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

pub(super) fn throttle_lists(
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

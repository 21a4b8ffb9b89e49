//! cgroups for skiff on v1, v2 and hybrid hosts.
//!
//! - `probe`: which hierarchy serves which controller (parsed from
//!   /proc/self/mountinfo and /proc/self/cgroup, never a flag).
//! - `plan`: `CgroupPlan::from_spec` validates linux.cgroupsPath and every
//!   field of linux.resources (pure), `ops()` converts it for this host.
//! - `devices`: the v1 rule emulation, v1 writes and the v2 BPF program.
//! - `manager`: create/apply/add_pid/freeze/kill_all/update/destroy on a
//!   serializable `CgroupHandle` (what the state file keeps).
//! - `stats`, `oom`: `events` data.
//!
//! cgroupsPath: absolute paths are taken from the root of each hierarchy;
//! relative ones are joined under the caller's own cgroup (v1: its cgroup in
//! each hierarchy; v2: the parent of its cgroup), as runc's cgroupfs driver
//! does. Without cgroupsPath skiff uses "/skiff/<id>" (runc would use the
//! relative "<id>"; an absolute default keeps containers out of whatever
//! cgroup the caller happens to run in). "slice:prefix:name" paths are
//! refused: there is no systemd driver.

pub mod controllers;
pub mod devices;
pub mod manager;
pub mod oom;
pub mod plan;
pub mod probe;
pub mod stats;

#[cfg(test)]
mod tests;

pub use manager::{create, create_for, create_part, CgroupDir, CgroupHandle, Part};
pub use oom::OomWatcher;
pub use plan::{CgroupPlan, HostLimits};
pub use probe::{HostCgroups, Mode};
pub use stats::Stats;

//! The kernel interfaces the rest of skiff is built on, each wrapped once: process creation
//! (clone3 and pidfds), whole-file reads of procfs and cgroupfs, the mount table, the fd-based
//! mount API, signals, and the runtime's own binary as the container can reach it.

pub mod fsio;
pub mod mount_api;
pub mod mountinfo;
pub mod selfexe;
pub mod signal;
pub mod spawn;

//! skiff: an OCI runtime-spec container runtime.
//!
//! The library is split in two halves:
//! - *deciding* (pure, unit-tested without root): `config` loads and validates
//!   config.json into plans (`rootfs::RootfsPlan`, `namespaces::NamespacePlan`, ...);
//! - *doing* (syscalls): the modules named after kernel concepts apply a plan.
//!
//! `container` ties them together into the create/start/kill/delete lifecycle.

pub mod error;

pub use error::{Context, Error, Result};
pub mod rootfs;

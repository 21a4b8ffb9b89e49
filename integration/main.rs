//! End-to-end tests for skiff: each test builds a bundle from the busybox fixture
//! (hack/mkrootfs.sh), drives the runtime binary and checks the result from outside
//! (state JSON, host /proc) and from inside the container.
//!
//! Runtime under test: `$SKIFF_TEST_RUNTIME` (e.g. `/usr/sbin/runc` to validate the suite),
//! else the skiff binary cargo just built. Needs root.

#[macro_use]
mod common;

mod cgroups;
mod devices;
mod errors;
mod exec;
mod hooks;
mod lifecycle;
mod list;
mod mounts;
mod namespaces;
mod process;
mod reliability;
mod rootless;
mod security;
mod spec;
mod state;
mod stdio;
mod terminal;

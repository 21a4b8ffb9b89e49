//! `state`: the runtime-spec state object, derived from reality.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn state_fields() {
    let mut c = Ctx::new("state_fields");
    c.spec["annotations"] = json!({"org.skiff.test": "yes"});
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    let st = c.state_json(&c.id);
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."), "{st}");
    assert_eq!(st["id"], c.id.as_str());
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    let bundle = std::fs::canonicalize(&c.bundle).unwrap();
    assert_eq!(st["bundle"].as_str(), bundle.to_str(), "{st}");
    assert_eq!(st["annotations"]["org.skiff.test"], "yes", "{st}");
    // runc adds rootfs/created/owner beyond the spec; engines read them.
    assert_eq!(
        st["rootfs"].as_str(),
        bundle.join("rootfs").to_str(),
        "{st}"
    );
    let created = st["created"].as_str().unwrap_or("");
    assert!(
        created.len() >= 20 && &created[4..5] == "-" && &created[10..11] == "T",
        "{st}"
    );
    assert!(st.get("owner").is_some(), "{st}");
    // Pretty-printed like runc (engines don't care, humans do).
    assert!(c.state_id(&c.id).stdout.contains("\n  \"id\""));
}

#[test]
fn state_stopped_after_exit() {
    let mut c = Ctx::new("state_stopped");
    c.set_args(&["true"]);
    c.create_ok();
    c.start().ok();
    c.wait_status(&c.id, "stopped");
    assert_eq!(c.state_json(&c.id)["pid"].as_i64(), Some(0));
}

#[test]
fn state_derived_from_reality() {
    let mut c = Ctx::new("state_reality");
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    c.start().ok();
    assert_eq!(c.status(&c.id), "running");
    // The init dies behind the runtime's back.
    // SAFETY: pid is this test's container init, alive (checked by state above).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for(Duration::from_secs(10), "stopped status", || {
        (c.status(&c.id) == "stopped").then_some(())
    });
    // kill must not signal anything now, and delete works without --force.
    c.kill_id(&c.id, "KILL").fails();
    c.delete_id(&c.id, false).ok();
}

//! End-to-end tests: see integration/README or hack/test.sh.

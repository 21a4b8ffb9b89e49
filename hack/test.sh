#!/usr/bin/env bash
# Run every test: unit tests and the end-to-end integration suite. Needs root.
#
#   hack/test.sh [extra cargo test args...]
#
# SKIFF_TEST_RUNTIME=/usr/sbin/runc hack/test.sh runs the integration suite against runc.
# Without arguments, the integration suite then runs again against the release build
# (build_release_skiff in hack/lib.sh).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/lib.sh
source hack/lib.sh

need_root
need_cargo
# busybox-static for the rootfs fixture.
apt_install busybox-static uidmap gcc libc6-dev
# skiff-image tests: a real registry on loopback, and the tools that make and read images.
apt_install docker-registry skopeo umoci apache2-utils zstd curl python3

./hack/mkrootfs.sh "${SKIFF_TEST_ROOTFS:-$repo/fixtures/busybox-rootfs}"

start=$(date +%s)
cargo build --all-targets
# --no-fail-fast: report every failing test binary, still exit non-zero if any failed.
cargo test --no-fail-fast "$@"
if (($# == 0)) && [[ -z ${SKIFF_TEST_RUNTIME:-} ]]; then
	# The binary that is shipped and benchmarked (static, release profile) passes the
	# integration suite too.
	build_release_skiff
	echo "hack/test.sh: integration suite against $skiff_release"
	SKIFF_TEST_RUNTIME=$skiff_release cargo test --test integration
fi
echo "hack/test.sh: all tests passed in $(($(date +%s) - start))s"

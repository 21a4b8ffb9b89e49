#!/bin/bash
# customize.sh ROOT: make the freshly bootstrapped tree ROOT a bootable test guest (run on the
# host by mmdebstrap's customize hook, from hack/vm/build-image.sh). Part of the image's cache key.
set -euo pipefail

root=$1
guest="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
in_root() { chroot "$root" "$@"; }

echo skiff-vm >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	skiff-vm
::1		localhost ip6-localhost ip6-loopback
HOSTS
# The disk is /dev/vda (virtio, raw ext4, no partition table), never checked: every boot starts
# from the image as built (QEMU's snapshot=on).
cat >"$root/etc/fstab" <<'FSTAB'
/dev/vda	/	ext4	rw,errors=remount-ro	0	0
FSTAB
# A fixed machine id: no "first boot" (preset-all) on every boot of the throw-away snapshot.
echo 5c1ff0000000000000000000000000aa >"$root/etc/machine-id"
# Logs in memory only, the console gets them through the units' output.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/skiff-vm.conf"

# The 9p modules are on the root filesystem; load them early anyway.
printf '9pnet_virtio\n9p\n' >"$root/etc/modules-load.d/skiff-vm.conf"

# The command runner.
install -m 755 "$guest/skiff-vm-run" "$root/usr/local/sbin/skiff-vm-run"
install -m 644 "$guest/skiff-vm.service" "$root/etc/systemd/system/skiff-vm.service"
in_root systemctl enable skiff-vm.service
in_root systemctl set-default multi-user.target

# Nothing starts that the tests do not ask for: the engines are started by the tests themselves
# (hack/engines/*.sh run private daemons), and periodic jobs would only steal the 2 vCPUs.
for unit in docker.service docker.socket containerd.service podman.service podman.socket \
	podman-restart.service podman-auto-update.service podman-auto-update.timer \
	docker-registry.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
	e2scrub_reap.service fstrim.timer dpkg-db-backup.timer systemd-timesyncd.service \
	getty@tty1.service; do
	if [[ -e $root/lib/systemd/system/$unit || -e $root/etc/systemd/system/$unit ]]; then
		in_root systemctl disable "$unit" >/dev/null 2>&1 || true
	fi
done
# No login prompt on the serial console (root login is not needed); keeps the console log clean.
in_root systemctl mask serial-getty@ttyS0.service >/dev/null

# A normal user for rootless tests: uid 1000, sub-id ranges, may linger (loginctl enable-linger).
in_root useradd --create-home --uid 1000 --user-group --shell /bin/bash tester
for f in subuid subgid; do
	grep -q '^tester:' "$root/etc/$f" 2>/dev/null || echo "tester:100000:65536" >>"$root/etc/$f"
done

# Not needed in a throw-away guest.
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log

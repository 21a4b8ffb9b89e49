#!/bin/bash
# Runs Debian's docker-registry on 127.0.0.1:PORT with its storage in DIR,
# in the foreground (exec: the caller's pid is the registry's, stop it by pid).
# Usage: hack/image-registry.sh PORT DIR [USER:PASSWORD]   (basic auth when given)
set -euo pipefail
port=${1:?usage: $0 PORT DIR [USER:PASSWORD]} dir=${2:?usage: $0 PORT DIR [USER:PASSWORD]}
mkdir -p "$dir/storage"
auth=
if [ -n "${3:-}" ]; then
  # bcrypt with the lowest cost keeps each request cheap.
  htpasswd -bnBC 4 "${3%%:*}" "${3#*:}" > "$dir/htpasswd"
  auth="auth:
  htpasswd:
    realm: skiff-test
    path: $dir/htpasswd"
fi
cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
YML
# The registry reads every REGISTRY_* variable as a config override.
for v in $(env | grep -o '^REGISTRY_[A-Za-z0-9_]*' || true); do unset "$v"; done
exec docker-registry serve "$dir/config.yml"

#!/usr/bin/env bash
# The whole example cluster on this machine: moto for EC2 and Route 53, three SSH test hosts
# on 127.0.30.1-3, and converged creating the security group, instances and DNS records,
# starting ZooKeeper, the Mesos masters and agents and Marathon on the hosts over SSH, and
# deploying the example apps. Needs root (each test host gets its own namespaces) on Debian.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || { echo "run as root: the test hosts need their own namespaces" >&2; exit 1; }

missing=()
for package in zookeeper openssh-server; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ ! -x .venv/bin/python ]] || ! cmp -s scripts/requirements-test.txt .venv/requirements.installed; then
  log "installing moto into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt .venv/requirements.installed
fi

log "building release binaries (the first build takes several minutes)"
cargo build --release -p converged -p converged-sim -p converged-testkit --bins
# cargo puts the build in $CARGO_TARGET_DIR when it is set, a relative one taken from the
# directory cargo ran in: the repository root, as here.
exec "${CARGO_TARGET_DIR:-target}/release/converged-sandbox"

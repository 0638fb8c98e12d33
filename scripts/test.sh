#!/usr/bin/env bash
# The test command. On a fresh Debian machine (as root, or with sudo) it installs what the tests
# need, then runs the format check, clippy and every test, including the ones against real
# peers. A missing peer fails its test; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

apt_packages=(
  prometheus      # promtool check metrics on a real scrape
  zookeeper       # real ZooKeeper ensembles for the simulator and ensemble tests
  openssh-server  # one sshd per test host
  systemd         # systemd-analyze verify/security on the unit
)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python tools (moto, the marathon client) live in a venv in the checkout, rebuilt when the
# requirements change.
if [[ ! -x .venv/bin/python ]] || ! cmp -s scripts/requirements-test.txt .venv/requirements.installed; then
  log "installing Python test tools into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt .venv/requirements.installed
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    log "adding the ${component} component"
    rustup component add "${component}"
  fi
done

# No test may reach the instance metadata service or real AWS credentials.
export AWS_EC2_METADATA_DISABLED=true

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# Tests in other crates start the simulator as separate processes: build it first.
log "cargo build -p converged-sim"
cargo build -p converged-sim --bins
log "cargo test"
cargo test --workspace --no-fail-fast
# The fuzz targets (fuzz/, nightly) on top of their seed corpus, bounded: about 4 minutes of
# build when cold, then 60 s per target. A crash or an input over 1 s fails the run.
log "fuzzing"
scripts/fuzz.sh 60

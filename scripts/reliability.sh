#!/usr/bin/env bash
# Runs the hostile-input and fault suites with counts and regenerates docs/reliability.md.
#   scripts/reliability.sh [--runs N] [--fuzz-seconds S]
# Every figure in the report comes from the summary lines the suites print (`corpus:`,
# `secret scan:`, `iam:`, `fuzz:`, `fault:`), never from a timed assertion in a test.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
fuzz_seconds=300
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --fuzz-seconds) fuzz_seconds=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--fuzz-seconds S]" >&2; exit 64 ;;
  esac
done

log() { printf '==> %s\n' "$*" >&2; }
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
export AWS_EC2_METADATA_DISABLED=true

log "building the binaries the suites start"
cargo build -p converged-sim --bins
cargo build -p converged --bins

# suite NAME CARGO-ARGS...: runs one test target with its output captured into NAME.log.
suite() {
  local name=$1
  shift
  log "$name"
  cargo test "$@" -- --nocapture --test-threads=1 >"$results/$name.log" 2>&1 || {
    echo "suite $name failed; its output:" >&2
    tail -50 "$results/$name.log" >&2
    exit 1
  }
}

suite corpus -p converged --test corpus
suite secrets -p converged --test secrets
suite iam -p converged-aws --test iam
for run in $(seq 1 "$runs"); do
  suite "peer-faults-$run" -p converged --test peer_faults
  suite "faults-$run" -p converged --test faults
done
log "fuzzing, $fuzz_seconds s per target"
scripts/fuzz.sh "$fuzz_seconds" >"$results/fuzz.log" 2>&1 || {
  tail -50 "$results/fuzz.log" >&2
  exit 1
}

python3 scripts/reliability_report.py --runs "$runs" --fuzz-seconds "$fuzz_seconds" \
  --commit "$(git rev-parse --short HEAD)" "$results"/*.log >docs/reliability.md
log "wrote docs/reliability.md"

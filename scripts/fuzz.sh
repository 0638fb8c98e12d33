#!/usr/bin/env bash
# Fuzzes the desired-state loader and the Marathon app normalizer (the cargo-fuzz targets in
# fuzz/), each for a bounded time on top of the committed seed corpus in fuzz/corpus/.
#
#   scripts/fuzz.sh [seconds per target, default 60]
#
# Installs cargo-fuzz into target/tools when it is missing (kept there for the next run) and
# uses the nightly toolchain. An input that panics, takes over 1 s or needs over 1 GiB fails
# the run: it is copied into fuzz/corpus/<target>/ (commit it, it stays a regression case) and
# its panic is printed. The last lines read `fuzz: <target> <N> executions in <S> s, <C> crashes`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || {
  echo "usage: scripts/fuzz.sh [seconds per target]" >&2
  exit 2
}
targets=(load marathon_normalize)
cargo_fuzz_version=0.13.2
tools=$PWD/target/tools

log() { printf '==> %s\n' "$*" >&2; }

if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if [[ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  log "installing cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --root "$tools"
fi
export PATH="$tools/bin:$PATH"

# The workspace forbids unsafe code, so an address sanitizer has little to find; without it
# the targets build faster and run more inputs. cargo fuzz keeps debug assertions and overflow
# checks on, so an arithmetic overflow is a crash like a panic.
fuzz=(cargo +nightly fuzz)
build_flags=(--fuzz-dir fuzz --sanitizer none)
log "building the fuzz targets"
build_started=$(date +%s)
"${fuzz[@]}" build "${build_flags[@]}"
log "built in $(($(date +%s) - build_started)) s"

summary=()
failed=0
for target in "${targets[@]}"; do
  # libFuzzer adds what it finds to the first corpus folder: a scratch one, so the committed
  # seeds stay as reviewed.
  scratch=fuzz/target/corpus/$target
  artifacts=fuzz/artifacts/$target
  output=fuzz/target/$target.log
  mkdir -p "$scratch"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  log "fuzzing $target for $seconds s"
  started=$(date +%s)
  status=0
  "${fuzz[@]}" run "${build_flags[@]}" "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=1 -rss_limit_mb=1024 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$output" 2>&1 || status=$?
  elapsed=$(($(date +%s) - started))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$output" | tail -n 1)
  crashes=0
  for artifact in "$artifacts"/*; do
    [[ -f $artifact ]] || continue
    crashes=$((crashes + 1))
    case=fuzz/corpus/$target/$(basename "$artifact")
    cp "$artifact" "$case"
    log "$target: $(basename "$artifact") is now $case (commit it); what it did:"
    grep -E "panicked at|^thread '|ERROR: libFuzzer|^SUMMARY" "$output" | head -n 20 >&2 || true
  done
  if ((status != 0 && crashes == 0)); then
    log "$target: cargo fuzz failed (status $status) without an artifact:"
    tail -n 30 "$output" >&2
    crashes=1
  fi
  ((crashes == 0)) || failed=1
  summary+=("fuzz: $target ${executions:-0} executions in $elapsed s, $crashes crashes")
done
printf '%s\n' "${summary[@]}"
exit "$failed"

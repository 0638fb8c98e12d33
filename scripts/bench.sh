#!/usr/bin/env bash
# Runs the benchmarks against real peers and regenerates docs/benchmarks.md and its plot.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
# step NAME: logs NAME and times it until the next step (or `step ""`) into steps.tsv.
current_step=""
step() {
  if [[ -n $current_step ]]; then
    printf '%s\t%s\n' "$current_step" $((SECONDS - step_started)) >> "$results/steps.tsv"
  fi
  current_step=$1
  step_started=$SECONDS
  if [[ -n $1 ]]; then log "$1"; fi
}

# The tools install while cargo builds: the installs wait on the network, the build on the CPU.
install_tools() {
  if [[ ! -x .venv/bin/python ]] || ! cmp -s scripts/requirements-test.txt .venv/requirements.installed; then
    log "installing moto into .venv"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
    cp scripts/requirements-test.txt .venv/requirements.installed
  fi

  if [[ ! -x .venv-bench/bin/ansible-playbook ]] || ! cmp -s scripts/requirements-bench.txt .venv-bench/requirements.installed; then
    log "installing Ansible (amazon.aws bundled) and boto3 into .venv-bench"
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -q --disable-pip-version-check -r scripts/requirements-bench.txt
    cp scripts/requirements-bench.txt .venv-bench/requirements.installed
  fi

  if ! command -v gnuplot >/dev/null; then
    log "installing gnuplot"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends gnuplot-nox
  fi
}

step "building release binaries and installing the tools"
install_tools &
tools=$!
cargo build --release -p converged -p converged-bench -p converged-sim
release="${CARGO_TARGET_DIR:-target}/release"
export CONVERGED_SIM_BIN="$(realpath "$release")/converged-sim"
wait "$tools"

for apps in 10 100 1000; do
  step "no-op cycles over $apps Marathon apps on 100 agents"
  "$release/converged-bench" marathon-noop --apps "$apps" --agents 100 --cycles 20 >> "$results/noop.jsonl"
done
for instances in 10 100; do
  step "no-op cycles over $instances instances and 100 records in moto"
  "$release/converged-bench" aws-noop --instances "$instances" --records 100 --cycles 10 >> "$results/aws.jsonl"
done
# converged launching 300 instances keeps moto busy for over 5 minutes (each launch looks the
# AMI up, and moto scans its image catalogue for that): they are launched straight into moto.
step "no-op cycles over 300 instances (launched into moto directly) and 300 records in moto"
"$release/converged-bench" aws-noop --instances 300 --records 300 --cycles 10 --seed-instances >> "$results/aws.jsonl"
for records in 1000 2000; do
  step "no-op cycles over 10 instances and $records records in moto"
  "$release/converged-bench" aws-noop --instances 10 --records "$records" --cycles 10 >> "$results/aws.jsonl"
done
step "the example's AWS resources: converged against the Ansible playbook, alternately"
.venv-bench/bin/python - > "$results/ansible-version.txt" <<'PYTHON'
import importlib.metadata as metadata, json, ansible_collections.amazon.aws as collection, pathlib
manifest = json.loads((pathlib.Path(collection.__path__[0]) / "MANIFEST.json").read_text())
print(", ".join([f"{name} {metadata.version(name)}" for name in ("ansible", "ansible-core", "boto3")]
                + [f"amazon.aws {manifest['collection_info']['version']}"]))
PYTHON
"$release/converged-bench" versus-ansible --ansible-bin .venv-bench/bin --playbook bench/clickcount-aws.yml \
  --rounds 5 --noop-cycles 10 >> "$results/ansible.jsonl"
step "the example cluster from nothing in the sandbox set-up, by layer (3 runs)"
"$release/converged-bench" cold-layers --runs 3 >> "$results/layers.jsonl"
step "reaction times"
"$release/converged-bench" reaction --edits 20 --drifts 10 --resync-seconds 5 >> "$results/reaction.jsonl"

step ""
export BENCH_SECONDS=$SECONDS
python3 scripts/bench_report.py "$results" "$results/scaling.dat" > docs/benchmarks.md
gnuplot <<GNUPLOT
set terminal pngcairo size 900,500
set output "docs/benchmarks.png"
set logscale x
set xlabel "Marathon apps"
set ylabel "per no-op cycle"
set y2label "peak RSS (MiB)"
set y2tics
set key left top
plot "$results/scaling.dat" using 1:3 with linespoints title "wall (ms)", \
     "$results/scaling.dat" using 1:4 with linespoints title "converged CPU (ms)", \
     "$results/scaling.dat" using 1:2 with linespoints title "requests", \
     "$results/scaling.dat" using 1:5 axes x1y2 with linespoints title "peak RSS (MiB)"
GNUPLOT
log "wrote docs/benchmarks.md and docs/benchmarks.png in ${SECONDS}s"

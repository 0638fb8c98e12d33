#!/usr/bin/env python3
"""Turns the JSON lines of converged-bench into docs/benchmarks.md (and a gnuplot data file)."""
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path


def load(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.startswith("{")]


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values):
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))] if ordered else float("nan")


def command_output(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unavailable"


def seconds_cell(values, scale=1.0, digits=2):
    low, high = spread(values)
    return f"{median(values) * scale:.{digits}f} ({low * scale:.{digits}f}–{high * scale:.{digits}f})"


def ansible_section(versus, results):
    def of(bench, field="seconds"):
        return [r[field] for r in versus if r["bench"] == bench]

    first, rerun, cold = of("ansible_first"), of("ansible_rerun"), of("converged_cold")
    noop = of("converged_noop", "wall_seconds")
    noop_cpu = of("converged_noop", "cpu_seconds")
    requests = [r for r in versus if r["bench"] == "converged_noop"][-1]["requests"]
    per_cycle = ", ".join(f"{op} {int(n)}" for op, n in sorted(requests.items()))
    cycles = of("converged_cold", "cycles")
    resources = of("converged_cold", "resources")[-1]
    rounds = len({r["round"] for r in versus})
    versions = (results / "ansible-version.txt").read_text().strip() if (results / "ansible-version.txt").exists() else "unknown"
    return ["## Side by side with Ansible (the example's AWS resources, moto)", "",
            "The same resources both ways: the cluster's security group (the least-privilege rules of",
            "`desired-state/`), three instances by exact count with tags, the zone, and eight A records",
            "(three nodes, five services). Ansible runs `bench/clickcount-aws.yml`, an idiomatic",
            "amazon.aws playbook (one module call per resource, `exact_count` per node, pipelining on);",
            "converged runs its engine with the three AWS kinds and AWS's default rate limits. Both use",
            "one moto, reset and given the VPC, subnet, key pair and zone before every cold run; the",
            f"order alternates over {rounds} rounds. {versions}.", "",
            "| | median s (min–max) | runs |", "|---|---:|---:|",
            f"| Ansible, first run | {seconds_cell(first)} | {len(first)} |",
            f"| Ansible, idempotent re-run (changed=0) | {seconds_cell(rerun)} | {len(rerun)} |",
            f"| converged, cold convergence ({resources} resources, {median(cycles):.0f} cycles back to back) | {seconds_cell(cold)} | {len(cold)} |",
            f"| converged, no-op cycle ({per_cycle}) | {seconds_cell(noop, digits=4)} | {len(noop)} |", "",
            f"- **No-op cycle vs idempotent re-run: converged {median(rerun) / median(noop):.0f}× faster** "
            f"(target ≥ 30×); converged's own CPU in that cycle: median {median(noop_cpu) * 1000:.0f} ms.",
            f"- Cold convergence vs first run: converged {median(first) / median(cold):.1f}× faster.",
            "- converged's cold figure is its cycles run back to back, each waiting for the previous one's",
            "  effect (group before instances, instances running before their records). The daemon",
            "  follows a cycle that acted with another 1 s later, the delay doubling with each follow-up,",
            f"  so there the same convergence takes up to {2 ** (median(cycles) - 1) - 1:.0f} s longer; the playbook waits inside",
            "  each module instead.",
            "- converged also writes an ownership TXT record per A record (16 record sets to Ansible's",
            "  8) and reads every kind's full state each cycle; the playbook's cost is mostly Ansible's",
            "  fixed overhead per module call (a Python process, boto3 import, client setup).", ""]


KIND_ORDER = ["security_group", "instance", "dns_record", "host_service", "zookeeper_ensemble",
              "mesos_agent", "marathon_app"]


def layers_section(layers):
    lines = ["## Cold convergence of the example cluster, by layer", "",
             "The sandbox set-up (`scripts/sandbox.sh`): moto, three SSH test hosts on loopback addresses,",
             "ZooKeeper from Debian, the simulator for Mesos and Marathon, the exec runtime, the release",
             "`converged run` on the example `desired-state/` (3 nodes, 6 apps). Seconds from the daemon",
             "starting to the first `/status` in which every resource of the kind is `in_sync` (polled",
             f"every 100 ms), over {len(layers)} runs. The kinds overlap: each starts as soon as what it",
             "depends on is ready. `/status` is published at the end of each cycle, so these are cycle",
             "boundaries: kinds that finish in the same cycle show the same time.", "",
             "| kind | all in sync after, s: median (min–max) |", "|---|---:|"]
    for kind in KIND_ORDER:
        values = [r["kinds"][kind] for r in layers if kind in r["kinds"]]
        if values:
            lines.append(f"| {kind} | {seconds_cell(values, digits=1)} |")
    lines += [f"| **everything** | {seconds_cell([r['total_seconds'] for r in layers], digits=1)} |", ""]
    return lines


def steps_section(steps_file, total_seconds):
    if not steps_file.exists() or not total_seconds:
        return []
    steps = [line.split("\t") for line in steps_file.read_text().splitlines()]
    lines = [f"This run took {int(total_seconds) / 60:.1f} min up to this report. Its steps "
             "(the tools install during the build, and only when this run had to; a fresh clone does both):", "",
             "| step | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds} |" for name, seconds in steps]
    return lines + [""]


def main(results_dir, plot_data):
    results = Path(results_dir)
    noop = load(results / "noop.jsonl")
    reaction = load(results / "reaction.jsonl")
    cpu_model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                      if l.startswith("model name")), "unknown")
    lines = ["# Benchmarks", "",
             "Generated by `scripts/bench.sh` (do not edit by hand). Every figure is a median over repeated",
             "runs with its spread (min–max); nothing here comes from a timed test.", "",
             "## Machine and versions", "",
             f"- CPU: {cpu_model}, {command_output(['nproc'])} cores; memory: "
             f"{int(int(Path('/proc/meminfo').read_text().split()[1]) / 1024 / 1024)} GiB",
             f"- OS: {platform.platform()}",
             f"- rustc: {command_output(['rustc', '--version'])}; converged {command_output(['git', 'rev-parse', '--short=12', 'HEAD'])}",
             "- Peers: `converged-sim` (Mesos master, 100 agents, Marathon 1.10 profile), release builds.", ""]

    lines += ["## No-op cycle at scale: Marathon apps", "",
              "A converged cluster of N apps (one task each, spread over 100 simulated agents); then",
              "20 cycles with nothing to do, once the desired-state folder is over 2 s old (until then",
              "every cycle reads all its files again, because file timestamps are coarse; an operator's",
              "folder is older than that between edits). *wall* is the whole cycle; *in requests* is the summed time",
              "of the HTTP requests (they overlap: the three GETs run concurrently); *CPU* is converged's",
              "own user+system time (the simulator runs in other processes).", "",
              "| apps | requests per cycle (by operation) | writes | wall ms | in requests ms | converged CPU ms | peak RSS MiB |",
              "|---:|---|---:|---:|---:|---:|---:|"]
    table = []
    for apps in sorted({r["apps"] for r in noop if r["bench"] == "marathon_noop"}):
        runs = [r for r in noop if r["bench"] == "marathon_noop" and r["apps"] == apps]
        requests = runs[-1]["requests"]
        per_cycle = ", ".join(f"{op} {int(n)}" for op, n in sorted(requests.items()))
        total = sum(requests.values())
        wall = [r["wall_seconds"] * 1000 for r in runs]
        waited = [r["request_seconds"] * 1000 for r in runs]
        cpu = [r["cpu_seconds"] * 1000 for r in runs]
        rss = next(r["peak_rss_mib"] for r in noop if r["bench"] == "marathon_noop_rss" and r["apps"] == apps)
        writes = max(r["writes"] for r in runs)
        lines.append(
            f"| {apps} | {int(total)}: {per_cycle} | {writes} | {median(wall):.1f} ({spread(wall)[0]:.1f}–{spread(wall)[1]:.1f}) "
            f"| {median(waited):.1f} | {median(cpu):.1f} ({spread(cpu)[0]:.1f}–{spread(cpu)[1]:.1f}) | {rss:.1f} |")
        table.append((apps, total, median(wall), median(cpu), rss))
    lines += ["", "CPU time is the process's `CLOCK_PROCESS_CPUTIME_ID` (all threads, user and system, to the",
              "nanosecond) around each cycle; the simulator's CPU is not in it.", ""]
    phases = [r for r in noop if r["bench"] == "marathon_phases"]
    if phases:
        apps = max(r["apps"] for r in phases)
        at = [r for r in phases if r["apps"] == apps]
        observe = median([r["observe_cpu_seconds"] * 1000 for r in at])
        plan = median([r["plan_cpu_seconds"] * 1000 for r in at])
        drop = median([r["drop_cpu_seconds"] * 1000 for r in at])
        whole = median([r["cpu_seconds"] * 1000 for r in noop if r["bench"] == "marathon_noop" and r["apps"] == apps])
        lines += [f"Where converged's CPU goes at {apps} apps (the reconciler's phases timed one by one, medians",
                  f"over {len(at)} runs): observing (three GETs, reading and parsing the ~{apps}-app `/v2/apps` JSON)",
                  f"{observe:.1f} ms; planning (per app: the request body from the file, the canonical forms of",
                  f"both sides, their comparison) {plan:.1f} ms; freeing the observation and the plan {drop:.1f} ms;",
                  f"the engine (records, conditions, metrics, the `/status` document) about the remaining",
                  f"{whole - observe - plan - drop:.1f} ms of the {whole:.1f} ms cycle. Most of it is allocation: JSON objects are",
                  "maps of owned strings, and both sides of every app are rebuilt in canonical form each cycle.", ""]
    lines += ["![scaling](benchmarks.png)", ""]
    with open(plot_data, "w") as data:
        for row in table:
            data.write(" ".join(str(v) for v in row) + "\n")

    aws = load(results / "aws.jsonl") if (results / "aws.jsonl").exists() else []
    if aws:
        lines += ["## No-op cycle at scale: instances and DNS records (moto)", "",
                  "N instances (edge-only nodes, no host services) and M A records, each with its ownership",
                  "TXT record, converged in moto; then 10 cycles with nothing to do. moto answers slowly and",
                  "scans linearly (DescribeInstances of 300 instances, ListResourceRecordSets of 4000 record",
                  "sets), so *in requests* (summed request time; the kinds observe concurrently) dominates",
                  "*wall*; converged's own share is its CPU time.", "",
                  "| instances | records | requests per cycle (by operation) | writes | wall ms | in requests ms | converged CPU ms | peak RSS MiB | cold convergence s |",
                  "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
        keys = sorted({(r["instances"], r["records"]) for r in aws if r["bench"] == "aws_noop"})
        for instances, records in keys:
            runs = [r for r in aws if r["bench"] == "aws_noop" and (r["instances"], r["records"]) == (instances, records)]
            requests = runs[-1]["requests"]
            per_cycle = ", ".join(f"{op} {int(n)}" for op, n in sorted(requests.items()))
            wall = [r["wall_seconds"] * 1000 for r in runs]
            waited = [r["request_seconds"] * 1000 for r in runs]
            cpu = [r["cpu_seconds"] * 1000 for r in runs]
            cold = "seeded" if runs[0].get("seeded") else f"{runs[0]['cold_convergence_seconds']:.1f}"
            rss = next(r["peak_rss_mib"] for r in aws if r["bench"] == "aws_noop_rss"
                       and (r["instances"], r["records"]) == (instances, records))
            lines.append(
                f"| {instances} | {records} | {int(sum(requests.values()))}: {per_cycle} | {max(r['writes'] for r in runs)} "
                f"| {median(wall):.0f} ({spread(wall)[0]:.0f}–{spread(wall)[1]:.0f}) | {median(waited):.0f} "
                f"| {median(cpu):.1f} ({spread(cpu)[0]:.1f}–{spread(cpu)[1]:.1f}) | {rss:.1f} | {cold} |")
        lines += ["", "The cold convergence above runs with the rate limits lifted (moto has none); with AWS's",
                  "published limits converged creates at most 2 instances per second. *seeded*: the instances",
                  "were launched straight into moto, one RunInstances each with converged's tags, group and",
                  "subnet, because converged launching 300 of them keeps moto busy for over 5 minutes (each",
                  "launch looks the AMI up with DescribeImages, which moto answers by scanning its whole image",
                  "catalogue, about 1 s of its CPU). The instances sit in a /20 subnet: moto refuses a launch",
                  "past a /24's 251 addresses with a bare 500, which is what stalled earlier 300-instance runs.",
                  "A node's A record counts among the records, so 300 instances mean at least 300 records.", ""]

    versus = load(results / "ansible.jsonl") if (results / "ansible.jsonl").exists() else []
    if versus:
        lines += ansible_section(versus, results)

    layers = load(results / "layers.jsonl") if (results / "layers.jsonl").exists() else []
    if layers:
        lines += layers_section(layers)

    edits = [r["seconds"] * 1000 for r in reaction if r["bench"] == "edit_to_request"]
    drifts = [r for r in reaction if r["bench"] == "drift_to_correction"]
    lines += ["## Reaction time", "",
              f"- Edit saved in `desired-state/apps/` → first corrective request leaving converged, over {len(edits)} edits: "
              f"median {median(edits):.0f} ms, p99 {p99(edits):.0f} ms (min {min(edits):.0f}, max {max(edits):.0f}). "
              "This includes the file watch's 200 ms debounce and the engine's 100 ms trigger coalescing."]
    if drifts:
        resync = drifts[0]["resync_seconds"]
        detection = [r["detection_seconds"] for r in drifts]
        correction = [r["seconds"] for r in drifts]
        fix = [c - d for c, d in zip(correction, detection)]
        lines += [f"- A change behind converged's back (an app scaled through Marathon's API), resync every {resync} s "
                  f"(±10%), over {len(drifts)} changes: detected after median {median(detection):.1f} s "
                  f"(max {max(detection):.1f} s, bounded by the resync interval; the changes follow each other closely, so the "
                  "follow-up cycles after the previous correction find many sooner), corrected median "
                  f"{median(fix) * 1000:.0f} ms after the observation that detected it. With the default 30 s resync,"
                  " detection takes up to 33 s."]
    lines += ["", "## How to re-run", "", "```sh", "scripts/bench.sh", "```", "",
              "It installs moto (`.venv`, `scripts/requirements-test.txt`), Ansible and boto3 (`.venv-bench`,",
              "`scripts/requirements-bench.txt`) and gnuplot when missing, builds the release binaries, runs",
              "every measurement above and rewrites this file and its plot. The commands it runs:", "",
              "```sh"] + [line.strip() for line in Path("scripts/bench.sh").read_text().splitlines()
                         if "converged-bench\" " in line or line.strip().startswith("--")] + ["```", ""]
    lines += steps_section(results / "steps.tsv", os.environ.get("BENCH_SECONDS"))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Several runs submitted at once: do they still learn? Steps and kNN gain against one run trained alone.

Every run goes through the queue (``sslcore submit``): on a machine with one slot they train one after
another, each with the whole machine, and since a time budget counts training only, each should
reach the steps of a solo run. ``--unqueued`` adds what happened before the queue: the same runs
started at once in processes of their own, each with a torch thread per core.

    python benchmarks/queue_load.py [--runs 4] [--seconds 30] [--method simclr] [--unqueued]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from sslcore.runs import DONE, RunConfig, RunStore
from sslcore.runs.scheduler import SlotPolicy


def submit(root: Path, method: str, seconds: float, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sslcore", "submit", "--method", method, "--dataset", "shapes",
                             "--max-seconds", str(seconds), "--seed", str(seed), "--out", str(root), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_all(store: RunStore, run_ids: list[str], timeout: float) -> list:
    deadline = time.time() + timeout
    while True:
        records = [store.get(i) for i in run_ids]
        if all(r.status in DONE for r in records):
            return records
        if time.time() > deadline:
            raise SystemExit(f"runs still going after {timeout:.0f} s: {[(r.id, r.status) for r in records]}")
        time.sleep(1.0)


def queued(root: Path, method: str, seconds: float, seeds: list[int]) -> list:
    """Submit one run per seed at once (concurrent ``sslcore submit`` processes); their records when done."""
    procs = [submit(root, method, seconds, s) for s in seeds]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        if p.returncode:
            raise SystemExit(f"sslcore submit failed: {err[-2000:]}")
        ids.append(json.loads(out.strip().splitlines()[-1])["run_id"])
    return wait_all(RunStore(root), ids, timeout=len(seeds) * (seconds * 3 + 120))


def unqueued(root: Path, method: str, seconds: float, seeds: list[int]) -> list:
    """The same runs without the queue: one process each, started together, torch threads = cores."""
    store = RunStore(root)
    code = ("import sys, torch; from sslcore.runs import RunConfig, RunStore; from sslcore.runs.execute import execute; "
            "s = RunStore(sys.argv[1]); r = s.get(sys.argv[2]); torch.set_num_threads(int(sys.argv[3])); "
            "execute(RunConfig.from_dict(r.config), s, r.id, log=lambda m: None)")
    ids = [store.create(asdict(RunConfig(method=method, max_seconds=seconds, seed=s).with_dataset_defaults()))
           for s in seeds]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root), i, str(os.cpu_count() or 1)]) for i in ids]
    for p in procs:
        p.wait()
    return wait_all(store, ids, timeout=60)


def row(label: str, r, solo_steps: int) -> str:
    s = r.summary
    gain = s.get("knn_top1", float("nan")) - s.get("knn_top1_random_init", float("nan"))
    waited = (r.started or r.created) - r.created
    return (f"| {label} | {r.status} | {s.get('steps')} | {s.get('steps', 0) / solo_steps:.2f} | "
            f"{s.get('knn_top1_random_init', float('nan')):.1f} -> {s.get('knn_top1', float('nan')):.1f} "
            f"({gain:+.1f}) | {waited:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--unqueued", action="store_true", help="also start them at once without the queue")
    args = parser.parse_args()
    seeds = list(range(1, args.runs + 1))
    policy = SlotPolicy.for_machine()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SSLCORE_HOME"] = tmp
        solo = queued(Path(tmp) / "solo", args.method, args.seconds, [0])[0]
        solo_steps = solo.summary["steps"]
        together = queued(Path(tmp) / "queued", args.method, args.seconds, seeds)
        before = unqueued(Path(tmp) / "unqueued", args.method, args.seconds, seeds) if args.unqueued else []
    print(f"{args.method} on shapes, {args.seconds:g} s training budget each, defaults (batch 128, seed per run); "
          f"{cpu}, {os.cpu_count()} cores; queue: {policy.describe()}. kNN: weighted, k=20, T=0.1, bank 5000, "
          "test 1000; 'waited' is seconds from submit to start.\n")
    print("| run | status | steps | steps / solo | kNN % random init -> trained (gain) | waited (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("alone", solo, solo_steps))
    for i, r in enumerate(together, 1):
        print(row(f"{i} of {args.runs} submitted at once", r, solo_steps))
    for i, r in enumerate(before, 1):
        print(row(f"{i} of {args.runs} at once, no queue", r, solo_steps))
    ratios = [r.summary.get("steps", 0) / solo_steps for r in together]
    gains = [r.summary.get("knn_top1", 0) - r.summary.get("knn_top1_random_init", 0) for r in together]
    print(f"\nqueued runs: min steps / solo {min(ratios):.2f} (target >= 0.80), min kNN gain {min(gains):+.1f} "
          f"(target > 0), all finished: {all(r.status == 'finished' for r in together)}")


if __name__ == "__main__":
    main()

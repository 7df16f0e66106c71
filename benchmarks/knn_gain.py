"""Online kNN gain over random init within a time budget, per method and dataset.

Runs ``sslcore train`` headless (the app's engine) once per method and dataset with the longest
budget, and reads the online kNN at each shorter budget from the same run's monitor: "after 60 s"
is the first kNN check at or past 60 s of training (the learning-rate schedule of that run spans
the longest budget, so it is a lower bound on a run planned for 60 s). Prints one markdown row
per (method, dataset, budget) with its protocol; the longest budget's row also gives the gain at
every stage of the backbone (the monitor's stage readout, first to last) and, for the patch tasks,
the gain at their training scale (``Method.train_magnification``). Keeps the runs in ``--out`` for later
evaluation (``benchmarks/probe_table.py``). CIFAR-10 rows need ../shared/data extracted into
.cache/data (``make testdata``).

Usage: python benchmarks/knn_gain.py [--methods simclr moco ...] [--datasets shapes cifar10]
       [--seconds 60 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from sslcore.runs.config import VIT_ONLY_METHODS
from sslcore.methods import METHODS
from sslcore.runs import RunStore

CIFAR = Path(__file__).parents[1] / ".cache" / "data" / "cifar10"


def train(method: str, dataset: str, seconds: float, out: Path, knn_every: float) -> dict:
    args = [sys.executable, "-m", "sslcore", "train", "--method", method, "--max-seconds", str(seconds),
            "--knn-every", str(knn_every), "--out", str(out), "--json"]
    if dataset == "cifar10":
        args += ["--dataset", "folder", "--data-dir", str(CIFAR / "train"), "--eval-dir", str(CIFAR / "test")]
    else:
        args += ["--dataset", dataset]
    if method in VIT_ONLY_METHODS:
        args += ["--backbone", "vit_tiny"]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def knn_at(store: RunStore, run_id: str, seconds: float) -> tuple[float, int] | None:
    """(kNN top-1, step) of the first online check at or past ``seconds`` of training."""
    steps, values = store.metrics(run_id).get("knn_top1", ([], []))
    at = store.step_seconds(run_id)
    for step, value in zip(steps, values):
        if step > 0 and at.get(step, 0.0) >= seconds - 1e-6:
            return value, step
    return None


def gains_at_end(r: dict) -> tuple[str, str]:
    """(gain per stage first to last, gain at the training scale) of a finished run's summary."""
    stages = " / ".join(f"{a - b:+.1f}" for a, b in zip(r.get("knn_stages", []), r.get("knn_stages_random_init", [])))
    scaled = r.get("knn_train_scale")
    at_scale = "-" if not scaled else f"{scaled['top1'] - scaled['random_init']:+.1f} ({scaled['describe']})"
    return stages or "-", at_scale


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=sorted(METHODS))
    p.add_argument("--datasets", nargs="+", default=["shapes", "cifar10"])
    p.add_argument("--seconds", nargs="+", type=float, default=[60, 300])
    p.add_argument("--knn-every", type=float, default=30.0, help="seconds of training between online kNN checks")
    p.add_argument("--out", type=Path, default=Path(".cache/bench_runs"), help="run store kept for later evaluation")
    p.add_argument("--results", type=Path, help="also write the rows as JSON lines here")
    args = p.parse_args()
    budgets = sorted(args.seconds)
    store = RunStore(args.out)
    print("| method | dataset | backbone | budget (train s) | steps | random init kNN % | kNN % | gain (points) |"
          " gain per stage | gain at training scale | protocol |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        for dataset in args.datasets:
            if dataset == "cifar10" and not (CIFAR / "train").is_dir():
                print(f"| {method} | cifar10 | - | - | - | - | - | - | - | - | skipped: {CIFAR} missing |")
                continue
            r = train(method, dataset, budgets[-1], args.out, args.knn_every)
            run_id = Path(r["run_dir"]).name
            p_ = r["knn_protocol"]
            protocol = (f"weighted kNN k={p_['k']} T={p_['t']}, bank {p_['bank_size']}, test {p_['test_size']}; "
                        f"batch {r['batch_size']}, {r['precision']}, run {run_id}")
            for budget in budgets:
                stages, at_scale = "-", "-"
                if budget == budgets[-1]:
                    knn, steps = r["knn_top1"], r["steps"]
                    stages, at_scale = gains_at_end(r)
                else:
                    found = knn_at(store, run_id, budget)
                    if found is None:
                        continue
                    knn, steps = found
                gain = knn - r["knn_top1_random_init"]
                print(f"| {method} | {dataset} | {r['backbone']} | {budget:.0f} | {steps} | "
                      f"{r['knn_top1_random_init']:.1f} | {knn:.1f} | {gain:+.1f} | {stages} | {at_scale} | {protocol} |",
                      flush=True)
                if args.results:
                    with args.results.open("a") as f:
                        f.write(json.dumps({"method": method, "dataset": dataset, "backbone": r["backbone"],
                                            "seconds": budget, "steps": steps, "random_init": r["knn_top1_random_init"],
                                            "knn": knn, "gain": gain, "stage_gains": stages, "train_scale_gain": at_scale,
                                            "run_dir": r["run_dir"],
                                            "protocol": p_}) + "\n")


if __name__ == "__main__":
    main()

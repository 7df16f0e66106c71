"""Online kNN gain over random init within a time budget, per method and dataset.

Runs ``sslcore train`` headless (the app's engine) and prints one table row per run with the
protocol. CIFAR-10 rows need ../shared/data extracted into .cache/data (``make testdata``).

Usage: python benchmarks/knn_gain.py [--methods simclr] [--datasets shapes cifar10] [--seconds 60 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CIFAR = Path(__file__).parents[1] / ".cache" / "data" / "cifar10"


def train(method: str, dataset: str, seconds: float, out: str, extra: list[str]) -> dict:
    args = [sys.executable, "-m", "sslcore", "train", "--method", method, "--max-seconds", str(seconds),
            "--out", out, "--json", *extra]
    if dataset == "cifar10":
        args += ["--dataset", "folder", "--data-dir", str(CIFAR / "train"), "--eval-dir", str(CIFAR / "test")]
    else:
        args += ["--dataset", dataset]
    if method == "mae":
        args += ["--backbone", "vit_tiny"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["simclr"])
    p.add_argument("--datasets", nargs="+", default=["shapes", "cifar10"])
    p.add_argument("--seconds", nargs="+", type=float, default=[60, 300])
    p.add_argument("--extra", nargs="*", default=[], help="more arguments for sslcore train")
    args = p.parse_args()
    print("| method | dataset | budget (train s) | steps | images/s | random init kNN % | kNN % | gain (points) | protocol |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        for method in args.methods:
            for dataset in args.datasets:
                if dataset == "cifar10" and not (CIFAR / "train").is_dir():
                    print(f"| {method} | cifar10 | - | - | - | - | - | - | skipped: {CIFAR} missing |")
                    continue
                for seconds in args.seconds:
                    r = train(method, dataset, seconds, out, args.extra)
                    p_ = r["knn_protocol"]
                    print(f"| {method} | {dataset} | {seconds:.0f} | {r['steps']} | {r['images_per_second']:.0f} | "
                          f"{r['knn_top1_random_init']:.1f} | {r['knn_top1']:.1f} | "
                          f"{r['knn_top1'] - r['knn_top1_random_init']:+.1f} | weighted kNN k={p_['k']} T={p_['t']}, "
                          f"bank {p_['bank_size']}, test {p_['test_size']}; {r['backbone']}, batch {r['batch_size']}, "
                          f"{r['precision']} |", flush=True)


if __name__ == "__main__":
    main()

"""Where each method's features are: kNN gain over random init at every stage of the backbone.

Trains each method on ``shapes`` in the short-run test's protocol (4,000 training images, kNN
bank 2,000 and test 500, batch 128, seeded; tests/test_methods.py), then scores every stage's
pooled output of the trained network and of the same network at random init with the same
weighted kNN (``sslcore.stages``, read by the run's online monitor). The last column is the standard protocol's number (the last
stage, as the online monitor reads it); patch tasks (relpos, jigsaw) add the standard kNN on images
resized to the scale their patches trained at (``Method.train_magnification``). Prints one markdown
row per method.

Usage: python benchmarks/stage_knn.py [--methods relpos:800 jigsaw:400 ...] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import asdict
from pathlib import Path

from sslcore.runs.config import VIT_ONLY_METHODS
from sslcore.runs import RunConfig
from sslcore.runs.execute import execute
from sslcore.runs import RunStore

DEFAULT = ["simclr:300", "moco:300", "rotation:300", "relpos:800", "jigsaw:400", "colorization:400",
           "inpainting:300", "mae:400"]


def stage_gains(method: str, steps: int, seed: int, store: RunStore) -> tuple[list[float], list[float], dict]:
    """(trained kNN per stage, random-init kNN per stage, run summary), as the run's own monitor scored them."""
    cfg = RunConfig(method=method, dataset="shapes", steps=steps, max_seconds=None, train_size=4000, knn_bank=2000,
                    knn_test=500, knn_every_seconds=1e9, batch_size=128, seed=seed,
                    backbone="vit_tiny" if method in VIT_ONLY_METHODS else "convnet").with_dataset_defaults()
    summary = execute(cfg, store, store.create(asdict(cfg)), log=lambda s: None)
    return summary["knn_stages"], summary["knn_stages_random_init"], summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=DEFAULT, metavar="METHOD:STEPS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="run store to keep the runs in (default: a temporary folder)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(args.out or Path(tmp))
        print("| method | backbone | steps | kNN gain per stage, first to last (points; trained %) | "
              "standard kNN gain (last stage pooled as the backbone pools) | at the training scale |")
        print("|---|---|---|---|---|---|")
        for entry in args.methods:
            method, _, steps = entry.partition(":")
            trained, init, s = stage_gains(method, int(steps or 300), args.seed, store)
            cells = " / ".join(f"{t - i:+.1f} ({t:.1f})" for t, i in zip(trained, init))
            scaled = s.get("knn_train_scale")
            at_scale = "-" if scaled is None else (f"{scaled['top1'] - scaled['random_init']:+.1f} "
                                                   f"({scaled['protocol']['input_size']} px)")
            print(f"| {method} | {s['backbone']} | {s['steps']} | {cells} | "
                  f"{s['knn_top1'] - s['knn_top1_random_init']:+.1f} | {at_scale} |", flush=True)
        print(f"\nProtocol: weighted kNN k=20, T=0.1, bank 2000, test 500 (shapes, seed {args.seed}); each stage's "
              "output averaged over space (a ViT's stages are its blocks, patch tokens averaged); random init is "
              "the same network before training. Precision: bf16 autocast where the CPU has it.")


if __name__ == "__main__":
    main()

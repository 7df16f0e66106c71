"""PCA and UMAP latency for the Embeddings page: 1k/5k/10k points, first call and warm.

Features are a backbone's (random-init ``convnet`` by default, or ``--run DIR``) on ``shapes``.
Each (method, size) runs in a fresh process, so "first call" includes imports and numba's
compilation (loaded from its on-disk cache when an earlier process filled it); "cold" empties
that cache (NUMBA_CACHE_DIR) to show what the very first use on a machine costs (measured at the
smallest size only: compilation does not depend on the number of points). "warm" is the
median of three more calls in the same process. The umap-learn defaults row is the peer the
issue measured (NN-descent graph, spectral init, 500 epochs).

Usage: python benchmarks/embedding_latency.py [--sizes 1000 5000 10000] [--run DIR] [--no-cold] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]


def features(n: int, run: str | None) -> torch.Tensor:
    from sslcore.data import make_shapes
    from sslcore.eval import extract_features
    from sslcore.models import create_backbone
    from sslcore.runs.saved import load_run

    if run:
        method, cfg = load_run(run)
        backbone, size = method.backbone, cfg.image_size
    else:
        torch.manual_seed(0)
        backbone, size = create_backbone("convnet", 32), 32
    return extract_features(backbone, make_shapes(n, size, seed=0).images)


def cell(method: str, path: str, n: int) -> dict[str, float]:
    """Runs in a child process: one first call, then three warm calls."""
    x = torch.load(path, weights_only=True)[:n]
    if method == "umap-learn defaults":
        def fn():
            import umap

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return umap.UMAP(random_state=0).fit_transform(x.numpy())
    else:
        from sslcore.viz.projection import project

        def fn():
            return project(x, method)
    times = []
    for _ in range(4):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return {"first": times[0], "warm": statistics.median(times[1:])}


def measure(method: str, path: str, n: int, cold: bool) -> dict[str, float]:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as numba_cache:
        if cold:
            env["NUMBA_CACHE_DIR"] = numba_cache
        out = subprocess.run([sys.executable, __file__, "--cell", method, path, str(n)], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[1000, 5000, 10000])
    p.add_argument("--run", help="a run folder whose backbone gives the features")
    p.add_argument("--no-cold", action="store_true", help="skip the empty-numba-cache column")
    p.add_argument("--no-peer", action="store_true", help="skip umap-learn's defaults (2k points)")
    p.add_argument("--cell", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cell:
        print(json.dumps(cell(args.cell[0], args.cell[1], int(args.cell[2]))))
        return
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "features.pt")
        torch.save(features(max(args.sizes), args.run), path)
        dim = torch.load(path, weights_only=True).shape[1]
        print(f"features: {'run ' + args.run if args.run else 'random-init convnet'} on shapes, D={dim}; "
              f"{os.cpu_count()} CPU cores, torch {torch.__version__}")
        print("| projection | points | first call (s) | first call, cold numba cache (s) | warm (s) |")
        print("|---|---|---|---|---|")
        rows = [(m, n) for m in ("PCA", "UMAP") for n in args.sizes]
        if not args.no_peer:
            rows.append(("umap-learn defaults", min(2000, max(args.sizes))))
        for method, n in rows:
            r = measure(method, path, n, cold=False)
            # Compilation does not depend on the number of points: measure it once per method.
            first_size = n == min(args.sizes) or method == "umap-learn defaults"
            cold = ("-" if args.no_cold or method == "PCA" or not first_size
                    else f"{measure(method, path, n, cold=True)['first']:.2f}")
            print(f"| {method} | {n} | {r['first']:.2f} | {cold} | {r['warm']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

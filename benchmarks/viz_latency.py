"""Per-image latency of the viewers against a bare forward of the same model (CPU, 224 px).

The attention page needs one forward with one block's attention materialised, an upsample and a
PCA of the patch features; the MAE page needs one encoder-decoder pass plus the panels. Target:
at most 1.3x the bare forward. Models are random-init copies of the shipped architectures
(``vit_tiny``, 8 px patches, ``dynamic_img_size``), so the script runs before any checkpoint exists.

    flock /tmp/sslcore-cpu.lock .venv/bin/python benchmarks/viz_latency.py [--repeats 20] [--size 224]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from sslcore.augment import normalize
from sslcore.models.load import random_init
from sslcore.models.vit import make_mask
from sslcore.viz.attention import attention_panels, cls_attention, overlay
from sslcore.viz.mae import mae_reconstruct


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    image = torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))  # (3, H, W) in [0, 1]
    x = normalize(image[None])  # (1, 3, H, W)

    vit = random_init("vit").model
    mae = random_init("mae").model
    grid = (args.size // mae.patch, args.size // mae.patch)
    mask = make_mask("random", 1, grid, 0.75, torch.Generator().manual_seed(0))

    rows = []
    bare = median_ms(lambda: vit.forward_features(x), args.repeats)
    rows.append(("DINO attention maps (CLS attention, one block)", bare,
                 median_ms(lambda: cls_attention(vit, x[0], -1), args.repeats)))
    rows.append(("DINO attention panels (+ threshold, upsample, PCA)", bare,
                 median_ms(lambda: attention_panels(vit, image, -1, 0.6, "nearest"), args.repeats)))
    def attention_page() -> None:  # everything the page computes: panels, the overlay and every head's
        p = attention_panels(vit, image, -1, 0.6, "nearest")
        for head in (None, *range(len(p.heads))):
            overlay(p, 0.6, head, contour=True)

    rows.append(("DINO attention page (+ overlays with contours)", bare, median_ms(attention_page, args.repeats)))
    bare_mae = median_ms(lambda: mae(x, mask), args.repeats)
    rows.append(("MAE reconstruction panels (+ masked, pasted, error)", bare_mae,
                 median_ms(lambda: mae_reconstruct(mae, image, 0.75, "random", 0, short_side=args.size), args.repeats)))

    print(f"CPU, {torch.get_num_threads()} torch threads, {args.size}x{args.size} image, vit_tiny (patch 8, "
          f"{grid[0] * grid[1]} patches), median of {args.repeats}")
    print(f"| {'what':52s} | bare forward ms | viewer ms | ratio |")
    print(f"|{'-' * 54}|-----------------|-----------|-------|")
    for name, b, v in rows:
        print(f"| {name:52s} | {b:15.1f} | {v:9.1f} | {v / b:5.2f} |")


if __name__ == "__main__":
    main()

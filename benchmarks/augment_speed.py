"""Batched SimCLR view generation: sslcore.augment against kornia and torchvision, same recipe.

Prints ms per batch of views (crop 0.08-1, flip, colour jitter 0.4/0.4/0.4/0.1 at p=0.8,
grayscale p=0.2) on this machine. This measurement is why sslcore writes its own ops.

Usage: python benchmarks/augment_speed.py [--batch-size 256] [--image-size 32]
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def timed(fn, reps: int) -> float:
    fn()
    fn()
    tic = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - tic) / reps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    s, n = args.image_size, args.batch_size
    x = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    xf = x.float() / 255
    rows = []

    from sslcore.augment import BatchViews, recipe
    ours = BatchViews(recipe("simclr", s, normalize=False))
    g = torch.Generator().manual_seed(0)
    rows.append(("sslcore.augment.BatchViews (batched, per-sample)", timed(lambda: ours(x, g), args.reps)))

    import kornia.augmentation as K
    kornia_aug = K.AugmentationSequential(
        K.RandomResizedCrop((s, s), scale=(0.08, 1.0)), K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2))
    rows.append((f"kornia {__import__('kornia').__version__} AugmentationSequential", timed(lambda: kornia_aug(xf), args.reps)))

    import torchvision.transforms.v2 as T
    tv = T.Compose([T.RandomResizedCrop(s, scale=(0.08, 1.0), antialias=True), T.RandomHorizontalFlip(),
                    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)])
    rows.append(("torchvision v2, one image at a time", timed(lambda: [tv(im) for im in xf], max(2, args.reps // 5))))

    print(f"\nSimCLR views, batch {n}, {s}px, {torch.get_num_threads()} threads")
    print(f"| {'pipeline':52s} | ms / batch | views/s |")
    print(f"|{'-' * 54}|------------|---------|")
    for name, ms in rows:
        print(f"| {name:52s} | {ms:10.1f} | {n / ms * 1000:7.0f} |")


if __name__ == "__main__":
    main()

"""SimCLR training throughput: SSL Lab against lightly, same backbone, batch and image size.

Prints one table: pairs/s (one pair = one source image seen as two views, augmentation included),
the step's FLOPs and the share of this machine's measured matmul FLOP rate the step achieves.

lightly is measured the way its documentation trains SimCLR: ``SimCLRTransform`` (torchvision
PIL ops per image) in DataLoader workers, ``SimCLRProjectionHead`` and ``NTXentLoss``.

Usage: python benchmarks/train_throughput.py [--batch-size 128] [--image-size 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sslcore.data import make_shapes
from sslcore.methods import create_method
from sslcore.models import create_backbone
from sslcore.train import autocast, bf16_supported, make_optimizer, OptimConfig


def matmul_flops_per_second(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    tic = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - tic)


def ours(images: torch.Tensor, args, precision: str) -> tuple[float, float]:
    torch.manual_seed(0)
    method = create_method("simclr", create_backbone(args.backbone, args.image_size), args.image_size)
    method = method.to(memory_format=torch.channels_last).train()
    opt = make_optimizer(list(method.parameters()), OptimConfig())
    g = torch.Generator().manual_seed(0)
    device = torch.device("cpu")

    def step(x):
        with autocast(device, precision):
            loss = method.training_step(x, g).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    batches = images.split(args.batch_size)
    with FlopCounterMode(display=False) as counter:
        step(batches[0])
    for x in batches[1:3]:
        step(x)
    tic = time.perf_counter()
    for i in range(args.steps):
        step(batches[i % len(batches)])
    return args.batch_size * args.steps / (time.perf_counter() - tic), counter.get_total_flops()


def lightly_simclr(images: torch.Tensor, args) -> float:
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from PIL import Image

    class Views(torch.utils.data.Dataset):
        def __init__(self):
            self.transform = SimCLRTransform(input_size=args.image_size, gaussian_blur=0.0)
            self.pil = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]

        def __len__(self):
            return len(self.pil)

        def __getitem__(self, i):
            return self.transform(self.pil[i])

    torch.manual_seed(0)
    backbone = create_backbone(args.backbone, args.image_size)
    head = SimCLRProjectionHead(backbone.num_features, 512, 128)
    model = torch.nn.Sequential(backbone, head).train()
    criterion = NTXentLoss(temperature=0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    loader = torch.utils.data.DataLoader(Views(), batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.lightly_workers, persistent_workers=args.lightly_workers > 0)
    it = iter(loader)
    done, tic = -3, None
    while done < args.steps:
        try:
            x0, x1 = next(it)
        except StopIteration:
            it = iter(loader)
            x0, x1 = next(it)
        loss = criterion(model(x0), model(x1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += 1
        if done == 0:
            tic = time.perf_counter()
    return args.batch_size * args.steps / (time.perf_counter() - tic)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--backbone", default="convnet")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lightly-workers", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    images = make_shapes(max(args.batch_size * (args.steps + 3), 2048), args.image_size).images

    peak32 = matmul_flops_per_second(torch.float32)
    peak16 = matmul_flops_per_second(torch.bfloat16) if bf16_supported(torch.device("cpu")) else float("nan")
    rows = []
    for label, precision, peak in (("sslcore (bf16 autocast)", "bf16", peak16), ("sslcore (fp32)", "fp32", peak32)):
        if precision == "bf16" and peak != peak:
            continue
        pps, flops = ours(images, args, precision)
        rows.append((label, pps, flops, pps / args.batch_size * flops / peak))
    base = lightly_simclr(images, args)
    rows.append((f"lightly 1.x SimCLR (fp32, {args.lightly_workers} loader workers)", base, float("nan"), float("nan")))

    print(f"\nSimCLR train step, backbone={args.backbone}, batch={args.batch_size}, image={args.image_size}px, "
          f"{torch.get_num_threads()} threads, {args.steps} timed steps")
    print(f"machine matmul rate: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s")
    print(f"| {'implementation':48s} | pairs/s | vs lightly | GFLOP/step | % of matmul peak |")
    print(f"|{'-' * 50}|---------|------------|------------|------------------|")
    for label, pps, flops, frac in rows:
        print(f"| {label:48s} | {pps:7.0f} | {pps / base:9.2f}x | {flops / 1e9:10.2f} | "
              f"{'' if frac != frac else f'{100 * frac:15.1f}%'} |")


if __name__ == "__main__":
    main()

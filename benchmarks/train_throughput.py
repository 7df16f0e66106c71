"""Training throughput of SimCLR, MoCo v2, BYOL and DINO: SSL Lab against lightly, one run.

For each method, one table row per implementation: pairs/s (one pair = one source image turned
into the method's views, augmentation included), the step's FLOPs (forward + backward, counted
once) and the share of this machine's measured matmul FLOP rate the step achieves.

lightly is measured the way its documentation examples train each method: its transforms
(``SimCLRTransform``, ``MoCoV2Transform``, ``BYOLTransform``, ``DINOTransform``; torchvision PIL ops
per image) in DataLoader workers, its heads (``lightly.models.modules``), its losses
(``lightly.loss``, the MoCo queue being ``NTXentLoss``'s memory bank), ``update_momentum`` and
``cosine_schedule`` for the EMA targets, and one forward pass per view. Both sides get the same
backbone, batch, crop sizes (ours: the method's ``view_scale``; DINO's global and local crops),
crop scales, colour jitter, blur (off) and solarisation, queue size, head widths and temperatures.

Usage: python benchmarks/train_throughput.py [--methods simclr moco byol dino] [--batch-size 128]
       [--image-size 32] [--steps 20] [--lightly-workers 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sslcore.augment import view_size
from sslcore.data import make_shapes
from sslcore.methods import create_method
from sslcore.methods.dino import crop_sizes
from sslcore.models import create_backbone, is_vit
from sslcore.train import OptimConfig, autocast, bf16_supported, make_optimizer

CPU = torch.device("cpu")


def matmul_flops_per_second(dtype: torch.dtype, n: int = 2048, reps: int = 5, trials: int = 3) -> float:
    """The best of ``trials`` timings of ``reps`` n x n matmuls (a noisy shared machine only ever slows one down)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(trials):
        tic = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - tic)
    return 2 * n**3 * reps / best


def timed(step: Callable[[object], None], batches: Callable[[], object], steps: int) -> tuple[float, float]:
    """(seconds per step over ``steps`` timed steps after 2 warm-up steps, FLOPs of one step)."""
    with FlopCounterMode(display=False) as counter:
        step(batches())
    for _ in range(2):
        step(batches())
    tic = time.perf_counter()
    for _ in range(steps):
        step(batches())
    return (time.perf_counter() - tic) / steps, counter.get_total_flops()


def build_ours(name: str, args) -> nn.Module:
    torch.manual_seed(0)
    backbone = create_backbone(args.backbone, args.image_size)
    # DINO with multi-crop (2 global + 4 local, the paper's recipe; not the 32 px default): the heavier step.
    options = {"local_crops": 4} if name == "dino" else {}
    method = create_method(name, backbone, args.image_size, **options).train()
    return method if is_vit(backbone) else method.to(memory_format=torch.channels_last)


def ours(name: str, images: torch.Tensor, args, precision: str) -> tuple[float, float]:
    method = build_ours(name, args)
    opt = make_optimizer(method, OptimConfig())
    g = torch.Generator().manual_seed(0)

    def forever():
        while True:
            yield from images.split(args.batch_size)

    batches, done = forever(), [0]

    def step(x: torch.Tensor) -> None:
        with autocast(CPU, precision):
            loss = method.training_step(x, g).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done[0] += 1
        method.on_step_end(min(1.0, done[0] / 1000))

    return timed(step, lambda: next(batches), args.steps)


# ---------------------------------------------------------------------------------------------
# lightly, as its documentation examples write each method
# ---------------------------------------------------------------------------------------------
def lightly_setup(name: str, cfg, backbone: nn.Module, args):
    """(model, transform, step(views, model, step_index)) for lightly's version of method ``name``."""
    from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import (BYOLPredictionHead, BYOLProjectionHead, DINOProjectionHead,
                                        MoCoProjectionHead, SimCLRProjectionHead)
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import (BYOLTransform, BYOLView1Transform, BYOLView2Transform, DINOTransform,
                                    MoCoV2Transform, SimCLRTransform)
    from lightly.utils.scheduler import cosine_schedule

    d = backbone.num_features
    total = 1000  # the momentum schedule's horizon, as ours uses in this benchmark

    def frozen_copy(module: nn.Module) -> nn.Module:
        target = copy.deepcopy(module)
        deactivate_requires_grad(target)
        return target

    if name == "simclr":
        size = view_size(args.image_size, cfg.view_scale)
        c = cfg.color_strength  # SimCLRTransform multiplies each jitter by cj_strength
        transform = SimCLRTransform(input_size=size, min_scale=cfg.crop_scale[0], gaussian_blur=0.0,
                                    cj_strength=c, cj_bright=0.8, cj_contrast=0.8, cj_sat=0.8, cj_hue=0.2)
        model = nn.ModuleDict({"backbone": backbone, "head": SimCLRProjectionHead(d, cfg.hidden_dim, cfg.out_dim)})
        criterion = NTXentLoss(temperature=cfg.temperature)

        def step(views, model, i):
            x0, x1 = views
            return criterion(model["head"](model["backbone"](x0)), model["head"](model["backbone"](x1)))

    elif name == "moco":
        size = view_size(args.image_size, cfg.view_scale)
        c = cfg.color_strength
        transform = MoCoV2Transform(input_size=size, min_scale=cfg.crop_scale[0], gaussian_blur=0.0,
                                    cj_strength=c, cj_bright=0.8, cj_contrast=0.8, cj_sat=0.8, cj_hue=0.2)
        head = MoCoProjectionHead(d, cfg.hidden_dim, cfg.out_dim, batch_norm=cfg.head_batch_norm)
        model = nn.ModuleDict({"backbone": backbone, "head": head, "backbone_momentum": frozen_copy(backbone),
                               "head_momentum": frozen_copy(head)})
        criterion = NTXentLoss(temperature=cfg.temperature, memory_bank_size=(cfg.queue_size, cfg.out_dim))

        def step(views, model, i):
            update_momentum(model["backbone"], model["backbone_momentum"], m=cfg.momentum)
            update_momentum(model["head"], model["head_momentum"], m=cfg.momentum)
            x_query, x_key = views
            query = model["head"](model["backbone"](x_query))
            key = model["head_momentum"](model["backbone_momentum"](x_key)).detach()
            return criterion(query, key)

    elif name == "byol":
        size = view_size(args.image_size, cfg.view_scale)
        c = cfg.color_strength
        jitter = dict(input_size=size, min_scale=cfg.crop_scale[0], cj_strength=1.0, cj_bright=0.8 * c,
                      cj_contrast=0.8 * c, cj_sat=0.8 * c, cj_hue=0.2 * c)
        transform = BYOLTransform(
            view_1_transform=BYOLView1Transform(**jitter, gaussian_blur=cfg.blur_p[0], solarization_prob=cfg.solarize_p[0]),
            view_2_transform=BYOLView2Transform(**jitter, gaussian_blur=cfg.blur_p[1], solarization_prob=cfg.solarize_p[1]))
        projector = BYOLProjectionHead(d, cfg.hidden_dim, cfg.out_dim)
        model = nn.ModuleDict({"backbone": backbone, "projection_head": projector,
                               "prediction_head": BYOLPredictionHead(cfg.out_dim, cfg.hidden_dim, cfg.out_dim),
                               "backbone_momentum": frozen_copy(backbone), "projection_head_momentum": frozen_copy(projector)})
        criterion = NegativeCosineSimilarity()

        def step(views, model, i):
            m = cosine_schedule(i, total, cfg.base_momentum, 1)
            update_momentum(model["backbone"], model["backbone_momentum"], m=m)
            update_momentum(model["projection_head"], model["projection_head_momentum"], m=m)
            x0, x1 = views
            p0 = model["prediction_head"](model["projection_head"](model["backbone"](x0)))
            z0 = model["projection_head_momentum"](model["backbone_momentum"](x0)).detach()
            p1 = model["prediction_head"](model["projection_head"](model["backbone"](x1)))
            z1 = model["projection_head_momentum"](model["backbone_momentum"](x1)).detach()
            return 0.5 * (criterion(p0, z1) + criterion(p1, z0))

    elif name == "dino":
        global_size, local_size = crop_sizes(backbone, args.image_size, cfg.view_scale)
        c = cfg.color_strength
        transform = DINOTransform(global_crop_size=global_size, global_crop_scale=tuple(cfg.global_scale),
                                  local_crop_size=local_size, local_crop_scale=tuple(cfg.local_scale),
                                  n_local_views=cfg.local_crops, cj_strength=1.0, cj_bright=0.8 * c,
                                  cj_contrast=0.8 * c, cj_sat=0.8 * c, cj_hue=0.2 * c,
                                  gaussian_blur=tuple(cfg.blur_p), solarization_prob=cfg.solarize_p[1])
        head = DINOProjectionHead(d, cfg.hidden_dim, cfg.bottleneck_dim, cfg.out_dim,
                                  batch_norm=cfg.head_batch_norm, freeze_last_layer=1)
        teacher_head = DINOProjectionHead(d, cfg.hidden_dim, cfg.bottleneck_dim, cfg.out_dim,
                                          batch_norm=cfg.head_batch_norm)
        deactivate_requires_grad(teacher_head)
        model = nn.ModuleDict({"student_backbone": backbone, "student_head": head,
                               "teacher_backbone": frozen_copy(backbone), "teacher_head": teacher_head})
        criterion = DINOLoss(output_dim=cfg.out_dim, warmup_teacher_temp=cfg.warmup_teacher_temp,
                             teacher_temp=cfg.teacher_temp, student_temp=cfg.student_temp,
                             center_momentum=cfg.center_momentum)

        def step(views, model, i):
            m = cosine_schedule(i, total, cfg.base_momentum, 1)
            update_momentum(model["student_backbone"], model["teacher_backbone"], m=m)
            update_momentum(model["student_head"], model["teacher_head"], m=m)
            teacher_out = [model["teacher_head"](model["teacher_backbone"](v)) for v in views[:2]]
            student_out = [model["student_head"](model["student_backbone"](v)) for v in views]
            return criterion(teacher_out, student_out, teacher_temp=cfg.teacher_temp)

    else:
        raise ValueError(f"no lightly counterpart for {name!r}")
    return model, transform, step


def lightly_run(name: str, images: torch.Tensor, args) -> tuple[float, float]:
    from PIL import Image

    cfg = build_ours(name, args).cfg
    torch.manual_seed(0)
    backbone = create_backbone(args.backbone, args.image_size)
    model, transform, loss_of = lightly_setup(name, cfg, backbone, args)
    model.train()

    class Views(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.pil = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]

        def __len__(self) -> int:
            return len(self.pil)

        def __getitem__(self, i: int):
            return transform(self.pil[i])

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    loader = torch.utils.data.DataLoader(Views(), batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.lightly_workers,
                                         persistent_workers=args.lightly_workers > 0)

    def forever():
        while True:
            yield from loader

    it, done = forever(), [0]

    def step(views) -> None:
        loss = loss_of(views, model, done[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if name == "dino":
            model["student_head"].cancel_last_layer_gradients(current_epoch=1)
        opt.step()
        done[0] += 1

    return timed(step, lambda: next(it), args.steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["simclr", "moco", "byol", "dino"],
                   choices=["simclr", "moco", "byol", "dino"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--backbone", default="convnet")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lightly-workers", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    images = make_shapes(max(args.batch_size * (args.steps + 3), 2048), args.image_size).images

    peak32 = matmul_flops_per_second(torch.float32)
    bf16 = bf16_supported(CPU)
    peak16 = matmul_flops_per_second(torch.bfloat16) if bf16 else float("nan")
    print(f"\nTraining step throughput, backbone={args.backbone}, batch={args.batch_size}, image={args.image_size}px, "
          f"{torch.get_num_threads()} threads, {args.steps} timed steps, lightly with {args.lightly_workers} "
          f"loader workers")
    print(f"machine matmul rate: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s")
    print(f"| {'method':6s} | {'implementation':26s} | pairs/s | vs lightly | GFLOP/step | % of matmul peak |")
    print(f"|--------|{'-' * 28}|---------|------------|------------|------------------|")
    for name in args.methods:
        rows = []
        for label, precision, peak in (("sslcore (bf16 autocast)", "bf16", peak16), ("sslcore (fp32)", "fp32", peak32)):
            if precision == "bf16" and not bf16:
                continue
            seconds, flops = ours(name, images, args, precision)
            rows.append((label, args.batch_size / seconds, flops, flops / seconds / peak))
        seconds, flops = lightly_run(name, images, args)
        base = args.batch_size / seconds
        rows.append(("lightly 1.x (fp32)", base, flops, flops / seconds / peak32))
        for label, pps, flops, frac in rows:
            print(f"| {name:6s} | {label:26s} | {pps:7.0f} | {pps / base:9.2f}x | {flops / 1e9:10.2f} | "
                  f"{100 * frac:15.1f}% |", flush=True)


if __name__ == "__main__":
    main()

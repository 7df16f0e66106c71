"""DINO: self-distillation with no labels (Caron et al. 2021, arXiv:2104.14294)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, color_jitter, recipe, view_size
from sslcore.losses import centred_teacher, dino_cross_entropy, sinkhorn_knopp
from sslcore.methods.base import Method, StepOutput
from sslcore.models.backbones import is_vit
from sslcore.models.ema import copy_frozen, ema_update, momentum_schedule
from sslcore.models.heads import float32_forward

CENTERINGS = ("mean", "sinkhorn", "none")


@dataclass(frozen=True)
class DINOConfig:
    image_size: int = 32
    out_dim: int = 1024  # K prototypes; paper: 65536
    hidden_dim: int = 512  # paper: 2048
    bottleneck_dim: int = 256  # paper: 256
    # BatchNorm in the head's MLP; paper: none (ViT). See DINO for why the CPU default has it.
    head_batch_norm: bool = True
    # Paper: 8 (96 px crops of 224 px images). At 32 px a local crop is 12 px and slows the start
    # (see DINO); 4 restores multi-crop, as the shipped 64 px checkpoint trained.
    local_crops: int = 0
    global_scale: tuple[float, float] = (0.4, 1.0)  # paper code default (0.4, 1); its README suggests (0.14, 1)
    local_scale: tuple[float, float] = (0.05, 0.4)  # paper: (0.05, 0.4)
    view_scale: float = 0.75  # global crop side / image side; paper: 1.0 (224 px); locals are half of it
    rotation: float = 0.0  # paper: none (max degrees; for data with no upright pose)
    color_strength: float = 0.5  # as BYOLConfig's; paper: BYOL's jitter (0.4, 0.4, 0.2, 0.1) with p 0.8
    # Per crop kind (global 1, global 2, locals). Paper: blur (1.0, 0.1, 0.5), solarize (0, 0.2, 0)
    # at 224/96 px; blur is off at 32 px, as SimCLR does on CIFAR-10.
    blur_p: tuple[float, float, float] = (0.0, 0.0, 0.0)
    solarize_p: tuple[float, float, float] = (0.0, 0.2, 0.0)
    student_temp: float = 0.1  # paper: 0.1
    teacher_temp: float = 0.04  # paper: 0.04 (its code default; 0.07 with warm-up for longer runs)
    warmup_teacher_temp: float = 0.04  # paper: 0.04
    warmup_teacher_temp_frac: float = 0.3  # paper: 30 epochs
    # "mean": subtract an EMA of the batch mean (paper, momentum 0.9); "sinkhorn": DINOv2's
    # Sinkhorn-Knopp equipartition of each batch (Oquab et al. 2023), no running centre; "none": the
    # collapse lab's switch (sharpening alone lets one dimension win: Caron et al. 2021, sec. 5.3).
    centering: str = field(default="mean", metadata={"choices": CENTERINGS})
    center_momentum: float = 0.9  # paper: 0.9
    base_momentum: float = 0.99  # paper: 0.996 (cosine to 1); lower so the teacher keeps up in short runs
    freeze_last_layer_frac: float = 0.03  # paper: the first epoch (of 100-800)

    def __post_init__(self) -> None:
        if self.local_crops < 0 or self.out_dim < 2:
            raise ValueError(f"need local_crops >= 0 and out_dim >= 2, got {self.local_crops}, {self.out_dim}")
        if min(self.student_temp, self.teacher_temp, self.warmup_teacher_temp) <= 0:
            raise ValueError("temperatures must be positive")
        if not 0 <= self.center_momentum <= 1 or not 0 <= self.base_momentum <= 1:
            raise ValueError("momenta must be in [0, 1]")
        if len(self.blur_p) != 3 or len(self.solarize_p) != 3:
            raise ValueError("blur_p and solarize_p need one probability per crop kind (global 1, global 2, locals)")
        if self.centering not in CENTERINGS:
            raise ValueError(f"centering must be one of {CENTERINGS}, got {self.centering!r}")


class DINOHead(nn.Module):
    """3-layer MLP -> bottleneck -> L2 norm -> weight-normalised linear layer to K prototypes.

    The last layer's weight norm is fixed to 1 (DINO's ``norm_last_layer``), so a logit is the
    cosine between the bottleneck feature and a prototype. BatchNorm in the MLP is optional (off
    in the paper's ViT runs).
    """

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int,
                 batch_norm: bool = False) -> None:
        super().__init__()
        norm = (lambda: nn.BatchNorm1d(hidden_dim)) if batch_norm else nn.Identity
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), norm(), nn.GELU(),
                                 nn.Linear(hidden_dim, hidden_dim), norm(), nn.GELU(),
                                 nn.Linear(hidden_dim, bottleneck_dim))
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))  # (K, bottleneck)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def project(self, x: Tensor) -> Tensor:
        """(N, in_dim) -> (N, bottleneck_dim) L2-normalised float32."""
        return F.normalize(float32_forward(self.mlp, x), dim=-1)  # in float32, as MoCo's head

    def logits(self, h: Tensor, frozen: bool = False) -> Tensor:
        """(N, bottleneck_dim) -> (N, K) float32 cosines; ``frozen`` blocks the gradient to the prototypes."""
        w = self.prototypes.detach() if frozen else self.prototypes
        # In float32: the teacher divides these cosines by 0.04, and bf16 keeps ~3 digits.
        with torch.autocast(h.device.type, enabled=False):
            return F.linear(h, F.normalize(w.float(), dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(self.project(x))


class DINO(Method):
    """Student (backbone + DINO head) matches an EMA teacher across multi-crop views.

    The teacher sees the two global crops, the student all crops; centring (a running mean
    subtracted from the teacher's logits) and sharpening (a low teacher temperature) balance each
    other to avoid collapse (sec. 3.1). Live signals: the teacher's entropy (ln K when uniform),
    KL(teacher || student) = loss - entropy, and ``collapse_alarm`` when the loss sits at ln K.

    Head BatchNorm: at AdamW's 2e-3 the first few updates of the head (std-0.02 init, fed by the
    CNN's all-positive pooled features) add one shared vector to every output, the student
    collapses to a constant within 10 steps and the centred teacher turns uniform (the alarm
    fires; lightly's DINO does the same on this setup). BatchNorm removes that shared component:
    no alarm, and the loss leaves ln K, slowly (measured on ``shapes``: kNN -2.8 points without
    at 200 steps, +1.0 with at 600 steps). DINO needs many more steps than the contrastive methods:
    its kNN first dips (the teacher turns near-uniform for ~300 steps, the alarm fires) and then
    climbs, +6.6 points at 900 steps of batch 128. None of these shortened the dip at 300 steps:
    BatchNorm on the bottleneck, K = 256, base momentum 0.996, lr 5e-4, teacher temperature 0.02,
    no local crops (all measured on ``shapes``: -0.6 to -9.2 points).

    Short CIFAR-10 runs, 300 s on a 2-core fp32 CPU (kNN gain over random init, steps): the
    default (4 local crops of 12 px) +1.3 at 461; no local crops +6.5 at 500, about what the
    default reached in twice the steps on the November bf16 CPU (+6.8 at 990); no local crops at
    momentum 0.996 +4.8 at 468; 4 local crops at momentum 0.95 +1.3 at 455; no local crops with
    Sinkhorn-Knopp centring +6.6 at 448 (ahead of mean centring at each of the first four checks).
    On a bf16 CPU, no local crops with Sinkhorn-Knopp at batch 64: +8.0 at 2327 steps (+7.3 with
    the paper's AdamW weight decay 0.04 instead of 1e-4); with K = 256 +8.8; with gentler global
    crops, scale (0.6, 1) instead of (0.4, 1), +10.0 at 3048 steps (seed 1: +8.2 at 2094; sweeps in
    benchmarks/HISTORY.md). On a slower bf16 CPU (Intel Xeon), batch 128, seed 0: 4 local crops +1.0 at 375 steps,
    none +7.3 at 857; none with Sinkhorn-Knopp and global scale (0.6, 1) +7.2 at 848. Local crops
    are the lever, hence none by default at CPU sizes (on ``shapes``, 900 steps of batch 64: +7.8
    without, +5.4 with 4, both with a bf16 head; +12.2 without and a float32 head); the shipped
    64 px checkpoint trained with 4.
    """

    name = "dino"
    Config = DINOConfig

    def __init__(self, backbone: nn.Module, cfg: DINOConfig = DINOConfig()) -> None:
        super().__init__(backbone, cfg)
        self.head = DINOHead(backbone.num_features, cfg.hidden_dim, cfg.bottleneck_dim, cfg.out_dim,
                             cfg.head_batch_norm)
        self.teacher_backbone = copy_frozen(backbone)
        self.teacher_head = copy_frozen(self.head)
        self.register_buffer("center", torch.zeros(1, cfg.out_dim))  # (1, K)
        self.progress = 0.0  # training progress seen at the latest on_step_end
        self.momentum = cfg.base_momentum  # of the latest teacher update
        self.global_size, self.local_size = crop_sizes(backbone, cfg.image_size, cfg.view_scale)
        jitter = color_jitter(cfg.color_strength)
        self.global_views = nn.ModuleList(
            BatchViews(recipe("byol", self.global_size, crop_scale=tuple(cfg.global_scale), rotation=cfg.rotation,
                              blur_p=blur, solarize_p=sol, **jitter))
            for blur, sol in zip(cfg.blur_p[:2], cfg.solarize_p[:2]))
        self.local_views = BatchViews(recipe("byol", self.local_size, crop_scale=tuple(cfg.local_scale),
                                             rotation=cfg.rotation, blur_p=cfg.blur_p[2],
                                             solarize_p=cfg.solarize_p[2], **jitter))

    def teacher_temp(self) -> float:
        """Linear warm-up from ``warmup_teacher_temp`` to ``teacher_temp`` over the first part of training."""
        c = self.cfg
        t = min(1.0, self.progress / c.warmup_teacher_temp_frac) if c.warmup_teacher_temp_frac > 0 else 1.0
        return c.warmup_teacher_temp + t * (c.teacher_temp - c.warmup_teacher_temp)

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        b, c = len(images), self.cfg
        globals_ = torch.cat([view(images, generator) for view in self.global_views])  # (2B, 3, G, G)
        frozen = self.progress < c.freeze_last_layer_frac
        # One student pass per resolution: global crops, then all local crops together.
        h = self.head.project(self.backbone(globals_))  # (2B, bottleneck)
        student = list(self.head.logits(h, frozen).chunk(2))
        if c.local_crops:
            locals_ = torch.cat([self.local_views(images, generator) for _ in range(c.local_crops)])  # (LB, 3, l, l)
            student += list(self.head.logits(self.head.project(self.backbone(locals_)), frozen).chunk(c.local_crops))
        with torch.no_grad():
            teacher_logits = self.teacher_head(self.teacher_backbone(globals_))  # (2B, K)
        teacher_temp = self.teacher_temp()
        if c.centering == "sinkhorn":
            p_teacher = sinkhorn_knopp(teacher_logits, teacher_temp)  # (2B, K)
        elif c.centering == "none":
            p_teacher = F.softmax(teacher_logits.float() / teacher_temp, dim=-1)  # (2B, K)
        else:
            p_teacher = centred_teacher(teacher_logits, self.center, teacher_temp)  # (2B, K)
            self.center.copy_(update_center(self.center, teacher_logits, c.center_momentum))
        loss = dino_cross_entropy(student, list(p_teacher.chunk(2)), c.student_temp)
        entropy = -(p_teacher * p_teacher.clamp_min(1e-12).log()).sum(-1).mean().item()
        ln_k = math.log(c.out_dim)
        ratio = loss.item() / ln_k
        # Each teacher crop enters the loss equally often, so loss - mean entropy is the mean KL.
        logs = {"teacher_entropy": entropy, "kl_teacher_student": loss.item() - entropy, "loss_over_lnK": ratio,
                # A uniform teacher (centring winning over sharpening) pins the loss at ln K.
                "collapse_alarm": float(abs(ratio - 1) < 0.02), "teacher_temp": teacher_temp,
                "momentum": self.momentum}
        return StepOutput(loss=loss, embedding=h[:b].detach(), logs=logs)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) pairs that :meth:`on_step_end` moves by ``self.momentum``."""
        return [(self.teacher_backbone, self.backbone), (self.teacher_head, self.head)]

    def restore_progress(self, progress: float) -> None:
        self.progress = progress
        self.momentum = momentum_schedule(progress, self.cfg.base_momentum)

    def on_step_end(self, progress: float) -> None:
        self.progress = progress
        self.momentum = momentum_schedule(progress, self.cfg.base_momentum)
        for target, online in self.ema_pairs():
            ema_update(target, online, self.momentum)

    def view_pipelines(self) -> list[BatchViews]:
        return [*self.global_views, *[self.local_views] * self.cfg.local_crops]


@torch.no_grad()
def update_center(center: Tensor, teacher_logits: Tensor, momentum: float) -> Tensor:
    """DINO's centre: ``m * c + (1 - m) * mean`` of the teacher logits (N, K) over all global crops.

    Returns the new (1, K) centre.
    """
    return momentum * center + (1 - momentum) * teacher_logits.float().mean(0, keepdim=True)


def crop_sizes(backbone: nn.Module, image_size: int, view_scale: float) -> tuple[int, int]:
    """(global, local) crop sides: locals half the globals (DINO: 224 and 96 px).

    For a ViT both are multiples of its patch size, so every crop tiles into whole patches.
    """
    size = view_size(image_size, view_scale)
    if is_vit(backbone):
        patch = backbone.patch_embed.patch_size[0]
        size = max(patch, round(size / patch) * patch)
        return size, max(patch, size // 2 // patch * patch)
    return size, max(4, size // 2)  # augment.ViewConfig's minimum

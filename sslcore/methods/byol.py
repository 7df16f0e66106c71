"""BYOL: bootstrap your own latent (Grill et al. 2020, arXiv:2006.07733)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, color_jitter, recipe, view_size
from sslcore.losses import byol_loss
from sslcore.methods.base import Method, StepOutput
from sslcore.models.ema import copy_frozen, ema_update, momentum_schedule
from sslcore.models.heads import float32_forward, mlp


@dataclass(frozen=True)
class BYOLConfig:
    image_size: int = 32
    base_momentum: float = 0.996  # paper: 0.996 (cosine to 1); see BYOL for the short-run measurements
    hidden_dim: int = 512  # paper: 4096
    out_dim: int = 128  # paper: 256
    # Batch-normalise the projection (online and target, no affine); paper: none. See BYOL.
    projector_bn: bool = True
    predictor_lr_scale: float = 1.0  # paper: 1 (LARS); the predictor's lr over the rest's
    # Paper: (0.08, 1.0). Gentler crops learn faster in short runs (CIFAR-10, 300 s: see BYOL).
    crop_scale: tuple[float, float] = (0.4, 1.0)
    view_scale: float = 0.75  # paper: 1.0; smaller views buy more steps (see SimCLRConfig)
    rotation: float = 0.0  # paper: none (max degrees; for data with no upright pose)
    # SimCLR's jitter (0.8s, 0.8s, 0.8s, 0.2s) with p 0.8; paper: (0.4, 0.4, 0.2, 0.1), i.e. s = 0.5 with
    # half the saturation. One knob shared by the joint-embedding methods, so dataset presets apply alike.
    color_strength: float = 0.5
    # Per view (view 1, view 2). Paper: blur (1.0, 0.1), solarize (0.0, 0.2) at 224 px; blur is off
    # at 32 px, where SimCLR also turns it off on CIFAR-10: a 32 px image has little detail to lose.
    blur_p: tuple[float, float] = (0.0, 0.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)
    # The collapse lab's switches: without the predictor the online projection regresses the target
    # directly; with target 'online' the target is the online network itself (momentum 0, stop-gradient kept).
    predictor: bool = True
    target: str = field(default="ema", metadata={"choices": ("ema", "online")})

    def __post_init__(self) -> None:
        if self.target not in ("ema", "online"):
            raise ValueError(f"target must be 'ema' or 'online', got {self.target!r}")
        if not 0 <= self.base_momentum <= 1:
            raise ValueError(f"base_momentum must be in [0, 1], got {self.base_momentum}")
        if self.predictor_lr_scale <= 0:
            raise ValueError(f"predictor_lr_scale must be positive, got {self.predictor_lr_scale}")
        if len(self.blur_p) != 2 or len(self.solarize_p) != 2:
            raise ValueError(f"blur_p and solarize_p need one probability per view, got {self.blur_p}, "
                             f"{self.solarize_p}")


class BYOL(Method):
    """Online network (backbone, projector, predictor) regresses an EMA target (backbone, projector).

    No negatives: the predictor and the slowly moving target keep the representation from
    collapsing (sec. 3.1). The loss is symmetrised over the two asymmetric views, and the target's
    momentum follows the paper's cosine schedule from ``base_momentum`` to 1 over the run.

    Projection BatchNorm: at random init the projections of all images share one large component
    (pooled ReLU features are all positive), and the predictor first learns to output it: the loss
    drops from 2 to 0.7 in 50 steps while the online features nearly collapse (their std fell to
    1/6 of healthy) and kNN sank 8 points below random init, recovering only after ~600 steps.
    Normalising the projection over the batch (as MoCo's head here) removes the shared component,
    so the only way to lower the loss is to predict what tells images apart. Measured on
    ``shapes``, 400 steps: kNN -6.4 points without, +1.6 with (+4.9 after 446 steps in a 60 s run).

    Target momentum: a slower target helps short runs too. CIFAR-10, 300 s on a 2-core fp32 CPU
    (kNN gain over random init, steps): base 0.9 -1.0 at 488; 0.99 with the predictor's learning
    rate x10 +2.4 at 829; 0.996 (the paper's) +4.7 at 579; 0.999 +2.3 at 468 (below 0.996 at every check).
    Twice the learning rate (4e-3) at 0.996: +1.7 at 688 steps. On a bf16 CPU (same 300 s) more
    steps did not close the gap: the default +4.4 at 1380 steps, batch 64 +4.1 at 2410, AdamW
    weight decay 0.05 (instead of 1e-4) +3.4 at 1453.
    Half the learning rate (+3.8) or a 4x wider projector and predictor (+4.1) changed nothing;
    gentler crops did: crop scale (0.2, 1) +6.5 at 1641 steps, (0.4, 1) +8.4 at 1559, (0.6, 1) +8.1
    at 1676. On a second, slower bf16 CPU (Intel Xeon, about 770 steps in 300 s), seed 0: (0.08, 1)
    +2.5, (0.4, 1) +7.1. Hence the default (0.4, 1); two crops sharing more of the image give the
    predictor an easier early target while the EMA network is still close to random (sweeps in benchmarks/HISTORY.md).
    """

    name = "byol"
    Config = BYOLConfig

    def __init__(self, backbone: nn.Module, cfg: BYOLConfig = BYOLConfig()) -> None:
        super().__init__(backbone, cfg)
        self.projector = mlp((backbone.num_features, cfg.hidden_dim, cfg.out_dim), last_bn=cfg.projector_bn)
        self.predictor = mlp((cfg.out_dim, cfg.hidden_dim, cfg.out_dim)) if cfg.predictor else nn.Identity()
        self.target_backbone = copy_frozen(backbone)
        self.target_projector = copy_frozen(self.projector)
        self.momentum = cfg.base_momentum  # tau of the latest target update
        size, jitter = view_size(cfg.image_size, cfg.view_scale), color_jitter(cfg.color_strength)
        self.views = nn.ModuleList(
            BatchViews(recipe("byol", size, crop_scale=tuple(cfg.crop_scale), rotation=cfg.rotation, blur_p=blur,
                              solarize_p=sol, **jitter))
            for blur, sol in zip(cfg.blur_p, cfg.solarize_p))

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        b = len(images)
        # One pass over both views: half the kernel launches and a BatchNorm over 2B samples.
        x = torch.cat([view(images, generator) for view in self.views])  # (2B, 3, S, S)
        # Heads in float32, as MoCo's (see models.heads.float32_forward).
        z = float32_forward(self.projector, self.backbone(x))
        p = float32_forward(self.predictor, z)  # (2B, out_dim)
        with torch.no_grad():
            z_target = float32_forward(self.target_projector, self.target_backbone(x))  # (2B, out_dim)
        # Each view's prediction regresses the target's projection of the other view; the paper sums
        # the two terms, the mean keeps the loss in [0, 4] (AdamW does not see the scale).
        loss = (byol_loss(p[:b], z_target[b:]) + byol_loss(p[b:], z_target[:b])) / 2
        with torch.no_grad():
            logs = {"tau": self.momentum, "online_std": F.normalize(p, dim=1).std(0).mean().item(),
                    "target_std": F.normalize(z_target, dim=1).std(0).mean().item()}
        return StepOutput(loss=loss, embedding=z[:b].detach().float(), logs=logs)

    def lr_scales(self) -> dict[str, float]:
        return {"predictor": self.cfg.predictor_lr_scale}

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) pairs that :meth:`on_step_end` moves by ``self.momentum``."""
        return [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]

    def on_step_end(self, progress: float) -> None:
        self.momentum = momentum_schedule(progress, self.cfg.base_momentum) if self.cfg.target == "ema" else 0.0
        for target, online in self.ema_pairs():
            ema_update(target, online, self.momentum)

    def view_pipelines(self) -> list[BatchViews]:
        return list(self.views)


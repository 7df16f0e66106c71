"""SimCLR: a simple framework for contrastive learning (Chen et al. 2020, arXiv:2002.05709)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslcore.augment import BatchViews, color_jitter, recipe, view_size
from sslcore.losses import alignment_loss, nt_xent
from sslcore.methods.base import Method, StepOutput
from sslcore.models.heads import mlp


@dataclass(frozen=True)
class SimCLRConfig:
    image_size: int = 32
    temperature: float = 0.1  # paper: 0.5 on CIFAR-10 at 1000 epochs; lower learns faster in short runs
    hidden_dim: int = 512  # paper: 2048
    out_dim: int = 128  # paper: 128
    crop_scale: tuple[float, float] = (0.08, 1.0)  # paper: (0.08, 1.0)
    # Views smaller than the images make each step cheaper: more steps in a time budget, and features
    # read at full size afterwards do not suffer (train low, test high: Touvron et al. 2019, FixRes).
    view_scale: float = 0.75  # paper: 1.0
    rotation: float = 0.0  # paper: none (max degrees of random rotation; for data with no upright pose)
    color_strength: float = 0.5  # paper: 0.5 on CIFAR-10, 1.0 on ImageNet (jitter 0.8s/0.8s/0.8s/0.2s)
    # The collapse lab's switch: off, only the positive pairs' term remains (losses.alignment_loss).
    negatives: bool = True


class SimCLR(Method):
    """Two random views per image, projection MLP, NT-Xent with in-batch negatives."""

    name = "simclr"
    Config = SimCLRConfig

    def __init__(self, backbone: nn.Module, cfg: SimCLRConfig = SimCLRConfig()) -> None:
        super().__init__(backbone, cfg)
        self.projector = mlp((backbone.num_features, cfg.hidden_dim, cfg.out_dim))
        self.views = BatchViews(recipe("simclr", view_size(cfg.image_size, cfg.view_scale), crop_scale=tuple(cfg.crop_scale),
                                       rotation=cfg.rotation, **color_jitter(cfg.color_strength)))

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        b = len(images)
        # One pass over both views: half the kernel launches and a BatchNorm over 2B samples.
        x = torch.cat([self.views(images, generator), self.views(images, generator)])
        z = self.projector(self.backbone(x)).float()  # (2B, out_dim)
        loss = nt_xent(z[:b], z[b:], self.cfg.temperature) if self.cfg.negatives else alignment_loss(z[:b], z[b:])
        return StepOutput(loss=loss, embedding=z[:b].detach())

    def view_pipelines(self) -> list[BatchViews]:
        return [self.views, self.views]

"""Rotation prediction (Gidaris, Singh & Komodakis 2018, "Unsupervised representation learning by
predicting image rotations", arXiv:1803.07728)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, normalize, recipe
from sslcore.methods.base import Method, StepOutput
from sslcore.methods.pretext import PretextBatch, accuracy, check_fraction, classifier

ANGLES = (0, 90, 180, 270)  # label k: the image turned k * 90 degrees counter-clockwise


@dataclass(frozen=True)
class RotationConfig:
    image_size: int = 32
    hidden_dim: int = 256  # 0: linear head. Paper: the classifier is the network's last conv block + linear
    crop_scale: tuple[float, float] = (0.6, 1.0)  # paper (CIFAR): random crop with 4 px padding + flip
    hflip_p: float = 0.5  # paper: 0.5

    def __post_init__(self) -> None:
        check_fraction("hflip_p", self.hflip_p)
        if self.hidden_dim < 0:
            raise ValueError(f"hidden_dim must be >= 0, got {self.hidden_dim}")


def views(cfg: RotationConfig) -> BatchViews:
    """Random crop and flip only: colour carries no rotation cue, so it needs no distortion."""
    return BatchViews(recipe("none", cfg.image_size, crop_scale=tuple(cfg.crop_scale), crop_ratio=(3 / 4, 4 / 3),
                             hflip_p=cfg.hflip_p, normalize=False))


def make_task(images: Tensor, generator: torch.Generator, cfg: RotationConfig = RotationConfig()) -> PretextBatch:
    """All four rotations of every image, as in the paper: the 4 rotated copies of an image sit in
    the same batch, which the authors found better than one random rotation per image.

    Args:
        images: (B, 3, H, W) uint8 or [0, 1] float.

    Returns:
        inputs (4B, 3, S, S): the B crops turned 0, 90, 180 and 270 degrees, in that order of blocks;
        targets (4B,): the rotation index k of each input (angle ``ANGLES[k]``); source (B, 3, S, S).
    """
    x = views(cfg)(images, generator)  # (B, 3, S, S) in [0, 1]
    rotated = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
    targets = torch.arange(4, device=x.device).repeat_interleave(len(x))
    return PretextBatch(inputs=normalize(rotated), targets=targets, source=x)


class Rotation(Method):
    """Predict which of four rotations was applied: a 4-way classifier on pooled backbone features.

    To tell upright from upside down the network has to find the objects and know their
    canonical orientation. It fails on what has none: round, symmetric shapes
    and top-down textures have no answer, and low-level cues (a horizon, light from above,
    JPEG artefacts aligned with the pixel grid) can solve it without knowing objects.
    """

    name = "rotation"
    Config = RotationConfig

    def __init__(self, backbone: nn.Module, cfg: RotationConfig = RotationConfig()) -> None:
        super().__init__(backbone, cfg)
        self.head = classifier(backbone.num_features, cfg.hidden_dim, len(ANGLES))

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        task = make_task(images, generator, self.cfg)
        feats = self.backbone(task.inputs)  # (4B, D)
        logits = self.head(feats).float()  # (4B, 4)
        loss = F.cross_entropy(logits, task.targets)
        return StepOutput(loss=loss, embedding=feats[:len(images)].detach().float(),
                          logs={"task_acc": accuracy(logits, task.targets)})

    def view_pipelines(self) -> list[BatchViews]:
        return [views(self.cfg)]

"""Relative patch position (Doersch, Gupta & Efros 2015, "Unsupervised visual representation learning
by context prediction", arXiv:1505.05192)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslcore.augment import BatchViews, normalize, recipe
from sslcore.methods.base import Method, StepOutput
from sslcore.methods.pretext import (PretextBatch, accuracy, check_fraction, check_layout, classifier, color_drop,
                                     crop_boxes, encode_patches, grid_boxes)

# Label k (shown as k + 1, as in the paper's fig. 2): the neighbour's cell of the 3x3 grid, row-major
# without the centre (4), its offset from the centre in cells, and an arrow pointing at it.
NEIGHBOUR_CELLS = (0, 1, 2, 3, 5, 6, 7, 8)
OFFSETS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))  # (dx, dy), y down
ARROWS = ("↖", "↑", "↗", "←", "→", "↙", "↓", "↘")


@dataclass(frozen=True)
class RelPosConfig:
    image_size: int = 32
    # Layout as fractions of the image side. Paper: 96 px patches, 48 px gaps, jitter up to 7 px
    # (gap 0.5 and jitter 0.07 of a patch); at 32 px the image fits a 3x3 grid only with a
    # narrower gap, 3 px here, and 1 px of jitter.
    patch: float = 0.24
    gap: float = 0.1
    jitter: float = 0.03
    # Patches go through the backbone at this fraction of image_size (16 px at 32); 1.0 (32 px) cost
    # 2.3x the step and learned no better in 60 s on CIFAR-10 (task accuracy 17% vs 38%, kNN 27.1% both).
    patch_resize: float = 0.5
    # Paper: colour dropping on every patch (or projection), see color_drop. Downsampling to 32 px
    # averages most aberration away; 0.5 here cut 60 s CIFAR-10 task accuracy 38% -> 17%, kNN 27.1 -> 25.9%.
    color_drop_p: float = 0.0
    hidden_dim: int = 512  # paper: fc7 of 4096 after the two concatenated fc6 (2 x 4096)
    crop_scale: tuple[float, float] = (0.6, 1.0)  # paper: none beyond the random patch positions

    def __post_init__(self) -> None:
        check_layout(self.patch, self.gap, self.jitter)
        check_fraction("patch_resize", self.patch_resize, 0.05, 1.0)
        check_fraction("color_drop_p", self.color_drop_p)
        if self.hidden_dim < 0:
            raise ValueError(f"hidden_dim must be >= 0, got {self.hidden_dim}")

    @property
    def patch_size(self) -> int:
        return max(4, round(self.patch_resize * self.image_size))


def views(cfg: RelPosConfig) -> BatchViews:
    return BatchViews(recipe("none", cfg.image_size, crop_scale=tuple(cfg.crop_scale), crop_ratio=(3 / 4, 4 / 3),
                             hflip_p=0.5, normalize=False))


def make_task(images: Tensor, generator: torch.Generator, cfg: RelPosConfig = RelPosConfig()) -> PretextBatch:
    """The centre patch of a 3x3 grid (gaps, jitter) and one of its 8 neighbours, drawn uniformly.

    Args:
        images: (B, 3, H, W) uint8 or [0, 1] float.

    Returns:
        inputs (B, 2, 3, p, p): centre patch, then the neighbour; targets (B,): the neighbour's
        position k, at offset ``OFFSETS[k]`` from the centre; source (B, 3, S, S); boxes
        (B, 2, 4) of the two patches in ``source``.
    """
    x = views(cfg)(images, generator)  # (B, 3, S, S) in [0, 1]
    b, dev = len(x), x.device
    boxes = grid_boxes(b, cfg.image_size, cfg.patch, cfg.gap, cfg.jitter, generator)  # (B, 9, 4)
    targets = torch.randint(len(NEIGHBOUR_CELLS), (b,), generator=generator, device=dev)
    neighbour = torch.tensor(NEIGHBOUR_CELLS, device=dev)[targets]
    rows = torch.arange(b, device=dev)
    pair = torch.stack([boxes[:, 4], boxes[rows, neighbour]], 1)  # (B, 2, 4)
    patches = color_drop(crop_boxes(x, pair, cfg.patch_size), cfg.color_drop_p, generator)
    return PretextBatch(inputs=normalize(patches), targets=targets, source=x, boxes=pair)


class RelPos(Method):
    """Where does the second patch sit relative to the first? 8-way classification of the pair.

    Both patches go through the same backbone and the head sees their features side by side
    (the paper's late-fusion pair network). Telling "above" from "below" needs object parts
    and scene layout; shortcuts are edge continuation and texture lines across patches (the
    gap and jitter), and chromatic aberration, which tells where a patch lies in the lens
    (colour dropping).
    """

    name = "relpos"
    Config = RelPosConfig

    def __init__(self, backbone: nn.Module, cfg: RelPosConfig = RelPosConfig()) -> None:
        super().__init__(backbone, cfg)
        self.head = classifier(2 * backbone.num_features, cfg.hidden_dim, len(NEIGHBOUR_CELLS))

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        task = make_task(images, generator, self.cfg)
        feats = encode_patches(self.backbone, task.inputs)  # (B, 2 * D)
        logits = self.head(feats).float()  # (B, 8)
        loss = F.cross_entropy(logits, task.targets)
        embedding = feats[:, :self.backbone.num_features].detach().float()  # the centre patch
        return StepOutput(loss=loss, embedding=embedding, logs={"task_acc": accuracy(logits, task.targets)})

    @property
    def train_magnification(self) -> float:
        return self.cfg.patch_size / (self.cfg.patch * self.cfg.image_size)  # the patch side as fed / as cut

    def view_pipelines(self) -> list[BatchViews]:
        return [views(self.cfg)]

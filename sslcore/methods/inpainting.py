"""Inpainting with a context encoder (Pathak, Krähenbühl, Donahue, Darrell & Efros 2016, "Context
encoders: feature learning by inpainting", arXiv:1604.07379)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslcore.augment import BatchViews, normalize, recipe
from sslcore.methods.base import Method, StepOutput
from sslcore.methods.pretext import PretextBatch, check_fraction, encode_decode, feature_grid
from sslcore.models.decoders import ConvDecoder

REGIONS = ("random", "center")


@dataclass(frozen=True)
class InpaintingConfig:
    image_size: int = 32
    region: str = "random"  # paper: "center" (its main setting), random blocks and random regions
    hole: float = 0.5  # side of the square hole / image side; paper: 0.5 (64 px of 128, a quarter of the area)
    decoder_width: int = 128
    crop_scale: tuple[float, float] = (0.6, 1.0)  # paper: none

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        check_fraction("hole", self.hole, 1 / self.image_size, 0.9)


def hole_mask(n: int, size: int, hole: float, region: str, generator: torch.Generator) -> Tensor:
    """Square holes of side ``round(hole * size)`` px: centred, or at a uniformly random position.

    Returns:
        (n, 1, size, size) float, 1 inside the hole, 0 elsewhere.
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    side, dev = max(1, round(hole * size)), generator.device
    if region == "center":
        corner = torch.full((n, 2), (size - side) // 2, device=dev)
    else:
        corner = torch.randint(0, size - side + 1, (n, 2), generator=generator, device=dev)
    pix = torch.arange(size, device=dev)
    inside = (pix[None] >= corner[:, :, None]) & (pix[None] < corner[:, :, None] + side)  # (n, 2, size): y, x
    return (inside[:, 0, :, None] & inside[:, 1, None, :]).float()[:, None]


def hole_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the hole's pixels only (Context Encoders' masked L2, eq. 1).

    Args:
        prediction, target: (B, C, H, W).
        mask: (B, 1, H, W), 1 inside the hole.

    Returns:
        scalar: the squared error summed over hole pixels and channels, divided by their count.
    """
    return ((prediction - target) ** 2 * mask).sum() / (mask.sum() * prediction.shape[1]).clamp_min(1)


def views(cfg: InpaintingConfig) -> BatchViews:
    return BatchViews(recipe("none", cfg.image_size, crop_scale=tuple(cfg.crop_scale), crop_ratio=(3 / 4, 4 / 3),
                             hflip_p=0.5, normalize=False))


def make_task(images: Tensor, generator: torch.Generator, cfg: InpaintingConfig = InpaintingConfig()) -> PretextBatch:
    """Blank a square of each image with the mean colour; the whole image is the target.

    Args:
        images: (B, 3, H, W) uint8 or [0, 1] float.

    Returns:
        inputs (B, 3, S, S): the normalised image with the hole set to 0, i.e. the ImageNet mean
        colour (the paper fills with the dataset's mean pixel); targets (B, 3, S, S): the
        normalised image; source (B, 3, S, S); mask (B, 1, S, S).
    """
    x = views(cfg)(images, generator)  # (B, 3, S, S) in [0, 1]
    mask = hole_mask(len(x), cfg.image_size, cfg.hole, cfg.region, generator)
    target = normalize(x)
    return PretextBatch(inputs=target * (1 - mask), targets=target, source=x, mask=mask)


class Inpainting(Method):
    """Fill in a missing square from its context: an encoder-decoder trained with L2 on the hole.

    To paint the hole plausibly the network must understand the context (what object
    continues behind it). The paper adds an adversarial loss (weight 0.001) for sharp fills and
    weights a 7 px band overlapping the hole's border 10x; both are left out here: the L2 term
    alone trains the encoder, and its fills are blurry means. Shortcuts: a fixed central hole
    lets the network specialise to one location, and low-level interpolation from the border
    fills small holes with no understanding at all.
    """

    name = "inpainting"
    Config = InpaintingConfig

    def __init__(self, backbone: nn.Module, cfg: InpaintingConfig = InpaintingConfig()) -> None:
        super().__init__(backbone, cfg)
        self.decoder = ConvDecoder(backbone.num_features, 3, feature_grid(backbone, cfg.image_size), cfg.image_size,
                                   cfg.decoder_width)

    def training_step(self, images: Tensor, generator: torch.Generator) -> StepOutput:
        task = make_task(images, generator, self.cfg)
        prediction, pooled = encode_decode(self.backbone, self.decoder, task.inputs)  # (B, 3, S, S)
        loss = hole_loss(prediction, task.targets, task.mask)
        with torch.no_grad():
            mean_fill = hole_loss(torch.zeros_like(task.targets), task.targets, task.mask).item()
        return StepOutput(loss=loss, embedding=pooled.detach().float(),
                          logs={"hole_loss": loss.item(), "hole_loss_mean_fill": mean_fill})

    def view_pipelines(self) -> list[BatchViews]:
        return [views(self.cfg)]

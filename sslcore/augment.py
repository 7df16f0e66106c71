"""Batched view pipelines: per-sample random augmentations that run on the training device.

Every op draws its parameters per sample from an explicit ``torch.Generator`` and works on a
whole batch at once, so that a batch of 512 views costs a handful of tensor ops instead of 512
PIL calls. The crop and the flip are one ``affine_grid``/``grid_sample``; colour ops are blends
and 3x3 colour matrices. The Augmentations page previews the very same objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, the weights torchvision's rgb_to_grayscale uses


@dataclass(frozen=True)
class ViewConfig:
    """One random view recipe. Defaults: SimCLR at CIFAR size (Chen et al. 2020, appendix B.9)."""

    size: int = 32
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    rotation: float = 0.0  # max degrees of a uniform random rotation; 0 in SimCLR (its data is upright)
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 0.0  # SimCLR turns blur off for 32 px images; 0.5 at 224 px
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0  # BYOL's second view uses 0.2
    normalize: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if self.size < 4:
            raise ValueError(f"size must be at least 4 px, got {self.size}")
        for name in ("hflip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"rotation must be in [0, 180] degrees, got {self.rotation}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")


RECIPES: dict[str, ViewConfig] = {
    "simclr": ViewConfig(),
    "byol": ViewConfig(blur_p=0.5, solarize_p=0.1, jitter_p=0.8, brightness=0.4, contrast=0.4,
                       saturation=0.2, hue=0.1),
    "mild": ViewConfig(crop_scale=(0.6, 1.0), jitter_p=0.0, gray_p=0.0),
    "none": ViewConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_p=0.0, jitter_p=0.0, gray_p=0.0),
}


def recipe(name: str, size: int, **overrides: object) -> ViewConfig:
    """A named recipe at ``size`` px with field overrides, e.g. ``recipe("simclr", 64, blur_p=0.5)``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    return replace(RECIPES[name], size=size, **overrides)


def view_size(image_size: int, scale: float) -> int:
    """The side of views that are ``scale`` times the image side (at least 4 px)."""
    if not 0 < scale <= 1:
        raise ValueError(f"view scale must be in (0, 1], got {scale}")
    return max(4, round(image_size * scale))


def color_jitter(strength: float) -> dict[str, float]:
    """SimCLR's colour jitter of strength s (appendix A): brightness, contrast, saturation 0.8s, hue 0.2s."""
    return {"brightness": 0.8 * strength, "contrast": 0.8 * strength, "saturation": 0.8 * strength,
            "hue": min(0.5, 0.2 * strength)}


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _coin(n: int, p: float, g: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=g, device=device) < p


def _gray(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    return (factor.view(-1, 1, 1, 1) * x + (1 - factor.view(-1, 1, 1, 1)) * other).clamp_(0, 1)


def _hue_rotate(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` turns, as a rotation of the chroma plane in YIQ space.

    A linear stand-in for the HSV round trip of torchvision's ``adjust_hue``: the same hue
    circle for saturated colours, one batched 3x3 matrix per sample instead of branchy
    per-pixel HSV conversion.
    """
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    angle = shift * 2 * math.pi
    cos, sin = angle.cos(), angle.sin()
    rot = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", m, x).clamp_(0, 1)


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable blur with a per-sample sigma; kernel covers +-3 sigma of the largest sigma."""
    b, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(3 * float(sigma.max()))), h // 2 - 1))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


class BatchViews(torch.nn.Module):
    """Random views of a batch: crop+resize, flip, colour jitter, grayscale, blur, solarize.

    Args:
        cfg: the recipe.

    Input ``(B, 3, H, W)`` float in [0, 1] (or uint8); output ``(B, 3, cfg.size, cfg.size)``,
    normalised with ImageNet statistics when ``cfg.normalize``.
    """

    def __init__(self, cfg: ViewConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        g = generator if generator is not None else torch.default_generator
        if g.device != x.device:
            raise ValueError(f"generator on {g.device} but images on {x.device}")
        x = self.crop_flip(x, g)
        c, n, dev = self.cfg, len(x), x.device
        if c.jitter_p > 0:
            x = torch.where(_coin(n, c.jitter_p, g, dev).view(-1, 1, 1, 1), self.jitter(x, g), x)
        if c.gray_p > 0:
            x = torch.where(_coin(n, c.gray_p, g, dev).view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
        if c.blur_p > 0:
            blurred = _gaussian_blur(x, _uniform(n, *c.blur_sigma, g, dev))
            x = torch.where(_coin(n, c.blur_p, g, dev).view(-1, 1, 1, 1), blurred, x)
        if c.solarize_p > 0:
            x = torch.where(_coin(n, c.solarize_p, g, dev).view(-1, 1, 1, 1) & (x >= 0.5), 1 - x, x)
        return normalize(x) if c.normalize else x

    def crop_flip(self, x: Tensor, g: torch.Generator) -> Tensor:
        """RandomResizedCrop + horizontal flip (+ rotation) as one per-sample affine resampling."""
        c, n, dev = self.cfg, len(x), x.device
        area = _uniform(n, *c.crop_scale, g, dev)
        log_ratio = _uniform(n, math.log(c.crop_ratio[0]), math.log(c.crop_ratio[1]), g, dev)
        ratio = log_ratio.exp()
        # Crop width and height as fractions of the side; clamping replaces torchvision's retries.
        w = (area * ratio).sqrt().clamp(max=1.0)
        h = (area / ratio).sqrt().clamp(max=1.0)
        cx = (torch.rand(n, generator=g, device=dev) * (1 - w) + w / 2) * 2 - 1
        cy = (torch.rand(n, generator=g, device=dev) * (1 - h) + h / 2) * 2 - 1
        sx = w * torch.where(_coin(n, c.hflip_p, g, dev), -1.0, 1.0)
        theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
        if c.rotation > 0:
            # Rotate the sampling window about its centre: input = R(angle) @ diag(sx, h) @ output + centre.
            angle = _uniform(n, -c.rotation, c.rotation, g, dev) * (math.pi / 180)
            cos, sin = angle.cos(), angle.sin()
            theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos * sx, -sin * h, sin * sx, cos * h
        else:
            theta[:, 0, 0], theta[:, 1, 1] = sx, h
        theta[:, 0, 2], theta[:, 1, 2] = cx, cy
        grid = F.affine_grid(theta, [n, 3, c.size, c.size], align_corners=False)
        # Antialias big downscales so that a full-image crop of a 64 px image to 32 px does not alias.
        if x.shape[-1] >= 2 * c.size:
            x = F.interpolate(x, scale_factor=0.5, mode="area")
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def jitter(self, x: Tensor, g: torch.Generator) -> Tensor:
        """Brightness, contrast, saturation and hue with factors drawn per sample, in a random order."""
        c, n, dev = self.cfg, len(x), x.device
        ops = []
        if c.brightness > 0:
            f = _uniform(n, max(0, 1 - c.brightness), 1 + c.brightness, g, dev)
            ops.append(lambda y, f=f: (y * f.view(-1, 1, 1, 1)).clamp_(0, 1))
        if c.contrast > 0:
            f = _uniform(n, max(0, 1 - c.contrast), 1 + c.contrast, g, dev)
            ops.append(lambda y, f=f: _blend(y, _gray(y).mean((2, 3), keepdim=True), f))
        if c.saturation > 0:
            f = _uniform(n, max(0, 1 - c.saturation), 1 + c.saturation, g, dev)
            ops.append(lambda y, f=f: _blend(y, _gray(y), f))
        if c.hue > 0:
            f = _uniform(n, -c.hue, c.hue, g, dev)
            ops.append(lambda y, f=f: _hue_rotate(y, f))
        for i in torch.rand(len(ops), generator=g, device=dev).argsort().tolist():
            x = ops[i](x)
        return x


def normalize(x: Tensor) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> ImageNet-normalised."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def denormalize(x: Tensor) -> Tensor:
    """Inverse of :func:`normalize`, clamped to [0, 1] for display."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def pair_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of pixels between paired views. a, b: (N, 3, H, W) -> (N,)."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-8)

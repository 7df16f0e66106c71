"""Backbones, all created through timm's registry with pretrained weights off.

A backbone maps ``(B, 3, S, S)`` normalised images to ``(B, num_features)`` pooled features.
"""

from __future__ import annotations

from typing import Callable

import timm
import torch
from timm.models import register_model
from torch import Tensor, nn


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """A VGG-style stack of 3x3 conv-BN-ReLU layers, sized for fast CPU training at 32-64 px.

    Each stage halves the resolution and doubles the width; global average pooling at the end.
    The default ``convnet`` uses a stride-2 stem: on two CPU cores the full-resolution first layer
    costs 40% of the step (its BatchNorm and ReLU backward are memory-bound), and in 60 s of
    SimCLR on CIFAR-10 the strided stem learned more (+12.8 vs +10.1 kNN points).
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), num_classes: int = 0,
                 stem_stride: int = 1) -> None:
        super().__init__()
        layers = [_conv_bn(3, widths[0], stride=stem_stride)]
        for i, (cin, cout) in enumerate(zip(widths, widths[1:])):
            # A strided stem already halved the resolution: its first stage keeps it.
            layers += [_conv_bn(cin, cout, stride=1 if (i == 0 and stem_stride > 1) else 2), _conv_bn(cout, cout)]
        self.features = nn.Sequential(*layers)
        self.num_features = widths[-1]
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        # timm's feature_info: one entry per stage output (the stem, then each width), in order.
        self._stage_ends = [0] + [2 * i for i in range(1, len(widths))]  # index of each stage's last layer
        reductions = [stem_stride]
        for i in range(1, len(widths)):
            reductions.append(reductions[-1] * (1 if i == 1 and stem_stride > 1 else 2))
        self.feature_info = [dict(num_chs=w, reduction=r, module=f"features.{e}")
                             for w, r, e in zip(widths, reductions, self._stage_ends)]

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)  # (B, C, H/8, W/8)

    def forward_intermediates(self, x: Tensor, indices: int | list[int] | None = None,
                              intermediates_only: bool = False) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Stage outputs (B, C_i, H_i, W_i), as timm's ``forward_intermediates`` (its subset we use).

        ``indices``: stage indices into :attr:`feature_info` (negative from the end), or an int n
        for the last n stages; None for all. Unless ``intermediates_only``, returns
        ``(forward_features(x), intermediates)`` as timm does.
        """
        n = len(self._stage_ends)
        wanted = range(n) if indices is None else range(n - indices, n) if isinstance(indices, int) else indices
        ends = {self._stage_ends[i % n] for i in wanted}  # feature layers whose outputs are returned
        last = max(ends) if intermediates_only else len(self.features) - 1
        out = []
        for i, layer in enumerate(self.features[:last + 1]):
            x = layer(x)
            if i in ends:
                out.append(x)
        return out if intermediates_only else (x, out)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


@register_model
def sslcore_convnet(pretrained: bool = False, widths: tuple[int, ...] = (32, 64, 128, 256),
                    num_classes: int = 0, stem_stride: int = 1, **timm_kwargs) -> ConvNet:
    # timm also passes its pretrained-config arguments; a model without weights has no use for them.
    if pretrained:
        raise ValueError("sslcore_convnet has no pretrained weights")
    return ConvNet(widths, num_classes, stem_stride)


def _resnet18_cifar(image_size: int) -> nn.Module:
    """ResNet-18 with the CIFAR stem of SimCLR's appendix: 3x3 stride-1 conv, no max-pool."""
    m = timm.create_model("resnet18", pretrained=False, num_classes=0)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def _vit_tiny(image_size: int) -> nn.Module:
    """ViT-Tiny (192 wide, 3 heads) shortened to 6 blocks, on an 8x8 grid of patches."""
    if image_size % 8:
        raise ValueError(f"vit_tiny needs an image size divisible by 8, got {image_size}")
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=image_size,
                             patch_size=image_size // 8, depth=6, dynamic_img_size=True)


def _vit_small(image_size: int) -> nn.Module:
    """ViT-Small width (384, 6 heads), 8 blocks, on an 8x8 grid of patches."""
    if image_size % 8:
        raise ValueError(f"vit_small needs an image size divisible by 8, got {image_size}")
    return timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, img_size=image_size,
                             patch_size=image_size // 8, depth=8, dynamic_img_size=True)


BACKBONES: dict[str, Callable[[int], nn.Module]] = {
    "convnet": lambda image_size: timm.create_model("sslcore_convnet", stem_stride=2),
    "convnet_fullres": lambda image_size: timm.create_model("sslcore_convnet"),
    "convnet_wide": lambda image_size: timm.create_model("sslcore_convnet", widths=(64, 128, 256, 512)),
    "resnet18_cifar": _resnet18_cifar,
    "vit_tiny": _vit_tiny,
    "vit_small": _vit_small,
}
DEFAULT_BACKBONE = "convnet"


def create_backbone(name: str, image_size: int = 32) -> nn.Module:
    """A fresh backbone with ``num_features``; ``name`` is a key of :data:`BACKBONES`."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    return BACKBONES[name](image_size)


def is_vit(model: nn.Module) -> bool:
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


@torch.no_grad()
def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

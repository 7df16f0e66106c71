"""A small convolutional decoder from a backbone's feature map to a dense prediction."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvDecoder(nn.Module):
    """Upsample a (B, C, h, w) feature map to a (B, out_channels, out_size, out_size) prediction.

    A 1x1 projection to ``width`` channels, then ``ceil(log2(out_size / h))`` stages of nearest
    2x upsampling + 3x3 conv-BN-ReLU that halve the width (down to 32), and a 1x1 output conv;
    a last bilinear resize covers sizes that are not a power-of-two multiple of ``h``. It plays the
    role of Context Encoders' up-convolutional decoder (Pathak et al. 2016) and of the
    colorization network's upsampling top (Zhang et al. 2016), both far larger.

    Args:
        in_channels: C of the feature map.
        out_channels: channels predicted per pixel (3 for RGB, 2 for ab, Q for ab bins).
        in_size: side h of the feature map.
        out_size: side of the prediction.
        width: channels after the projection.
    """

    def __init__(self, in_channels: int, out_channels: int, in_size: int, out_size: int, width: int = 128) -> None:
        super().__init__()
        if min(in_channels, out_channels, in_size, out_size, width) < 1:
            raise ValueError(f"decoder sizes must be positive, got in_channels={in_channels}, "
                             f"out_channels={out_channels}, in_size={in_size}, out_size={out_size}, width={width}")
        self.out_size = out_size
        stages = max(0, math.ceil(math.log2(out_size / in_size)))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True)]
        cin = width
        for _ in range(stages):
            cout = max(32, cin // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv_bn(cin, cout)]
            cin = cout
        layers.append(nn.Conv2d(cin, out_channels, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, feats: Tensor) -> Tensor:
        y = self.layers(feats)
        if y.shape[-1] != self.out_size:
            y = F.interpolate(y, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        return y

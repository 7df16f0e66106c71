"""Projection and prediction heads (MLPs on top of the backbone)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(dims: tuple[int, ...], batch_norm: bool = True, last_bn: bool = False) -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]`` with BN+ReLU between them.

    SimCLR's projection head is ``mlp((d, 2048, 128))`` (we default to 512 hidden on CPU);
    BYOL's projector and predictor are ``mlp((d, 4096, 256))``.
    """
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(dims, dims[1:])):
        last = i == len(dims) - 2
        # A bias right before a BatchNorm is cancelled by its mean subtraction.
        followed_by_bn = (batch_norm and not last) or (last and last_bn)
        layers.append(nn.Linear(cin, cout, bias=not followed_by_bn))
        if not last:
            layers += [nn.BatchNorm1d(cout) if batch_norm else nn.Identity(), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(cout, affine=False))
    return nn.Sequential(*layers)


def float32_forward(head: nn.Module, x: Tensor) -> Tensor:
    """``head(x)`` in float32 under any autocast: ``x`` (N, D) is cast up and the head's ops run in fp32.

    A head is a small share of a step, and it is where bf16 hurts: a linear layer's output is a large
    component shared by the batch plus a small spread, bf16 (8-bit mantissa) rounds part of that
    spread away, and the BatchNorm after it scales the rounding error up with what is left.
    """
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())

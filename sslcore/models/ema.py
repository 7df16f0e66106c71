"""Exponential-moving-average targets: MoCo's key encoder, BYOL's target, DINO's teacher."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, m: float) -> None:
    """``target = m * target + (1 - m) * online`` for every parameter; buffers are copied.

    MoCo (He et al. 2020, eq. 2), BYOL (Grill et al. 2020, sec. 3.1) and DINO (Caron et al. 2021,
    sec. 3.1) all update their targets this way. Buffers (BatchNorm running statistics) are not
    averaged: the target only uses them in eval mode, where the online network's are the best guess.

    Args:
        target: the EMA copy, same architecture as ``online``.
        online: the network trained by gradient descent.
        m: momentum in [0, 1]; 1 freezes the target, 0 copies the online network.
    """
    if not 0 <= m <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {m}")
    t_params, o_params = list(target.parameters()), list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError(f"target has {len(t_params)} parameters, online has {len(o_params)}")
    # Two fused foreach kernels instead of a Python loop over a few hundred tensors.
    torch._foreach_mul_(t_params, m)
    torch._foreach_add_(t_params, o_params, alpha=1 - m)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def momentum_schedule(progress: float, base: float, final: float = 1.0) -> float:
    """Cosine increase of the EMA momentum from ``base`` to ``final`` over training.

    BYOL (Grill et al. 2020, sec. 3.2): ``tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2``;
    DINO uses the same schedule from 0.996 to 1.

    Args:
        progress: k / K in [0, 1] (clamped).
    """
    progress = min(max(progress, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


def copy_frozen(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters take no gradient (the optimiser skips them)."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target

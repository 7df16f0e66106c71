"""What a method's pipelines make of one image: positive pairs and their pixel correlation."""

from __future__ import annotations

import torch
from torch import Tensor

from sslcore.augment import BatchViews, denormalize, pair_correlation


def positive_pairs(first: BatchViews, second: BatchViews, image: Tensor, n: int = 6,
                   seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` pairs of views of one uint8 image (3, H, W) through the given pipelines.

    Returns views in [0, 1] for display, (n, 3, S, S) each, and the Pearson correlation of each
    pair's pixels (n,): a crude measure of how much the two views still share.
    """
    g = torch.Generator().manual_seed(seed)
    batch = image[None].expand(n, -1, -1, -1)
    a, b = first(batch, g), second(batch, g)
    if first.cfg.normalize:
        a = denormalize(a)
    if second.cfg.normalize:
        b = denormalize(b)
    if a.shape != b.shape:  # e.g. DINO's global and local crops: compare at the smaller size
        size = min(a.shape[-1], b.shape[-1])
        a_cmp, b_cmp = (torch.nn.functional.interpolate(v, size=(size, size), mode="area") for v in (a, b))
    else:
        a_cmp, b_cmp = a, b
    return a, b, pair_correlation(a_cmp, b_cmp)

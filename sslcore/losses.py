"""Self-supervised losses as pure functions, with shapes and paper references.

Reductions are explicit in each docstring so that values compare across implementations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z0: Tensor, z1: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent of SimCLR (Chen et al. 2020, eq. 1) with in-batch negatives.

    Args:
        z0, z1: (B, D) projections of two views; row i of each is a positive pair.
        temperature: softmax temperature tau (SimCLR used 0.5 on CIFAR-10, 0.1 on ImageNet).

    Returns:
        Scalar: the cross-entropy of each of the 2B views against its positive among the other
        2B - 1 views, averaged over the 2B views (the reduction of lightly's ``NTXentLoss``).
        Identical embeddings with orthogonal pairs give ``log(2B - 1)``-like values; a perfect
        solution tends to 0.
    """
    if z0.shape != z1.shape or z0.dim() != 2:
        raise ValueError(f"expected two (B, D) tensors of one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    b = len(z0)
    z = F.normalize(torch.cat([z0, z1]).float(), dim=1)  # (2B, D)
    logits = z @ z.T / temperature  # (2B, 2B)
    logits.fill_diagonal_(float("-inf"))  # a view is not its own negative
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, targets)

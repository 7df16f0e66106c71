"""Multinomial logistic regression by full-batch L-BFGS in torch: the linear probe's solver.

It minimises scikit-learn's objective (``LogisticRegression(C=c)`` on standardised features: L2 on
the weights, free intercept), so a probe means what it means in the papers that report one, but
in float32 and from a warm start: a grid of C values fitted in ascending order, each from the last
one's optimum, takes a fraction of the iterations of cold starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LogisticModel:
    """A fitted probe: the training features' standardisation, then a linear layer.

    Attributes:
        mean, scale: (D,) per-feature mean and standard deviation of the training features (scale
            1 where a feature is constant), as scikit-learn's StandardScaler.
        weight: (K, D) and bias: (K,), acting on standardised features.
        iterations: L-BFGS iterations of the fit.
    """

    mean: Tensor
    scale: Tensor
    weight: Tensor
    bias: Tensor
    iterations: int

    def standardize(self, x: Tensor) -> Tensor:
        return standardize(x, self.mean, self.scale)

    def logits(self, x: Tensor) -> Tensor:
        """(N, D) raw features -> (N, K) class logits."""
        return torch.addmm(self.bias, self.standardize(x), self.weight.T)

    def predict(self, x: Tensor) -> Tensor:
        """(N, D) raw features -> (N,) classes."""
        return self.logits(x).argmax(1)

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        """Top-1 in [0, 1] on features ``x`` (N, D) with labels ``y`` (N,)."""
        return (self.predict(x) == y).float().mean().item()


def standardize(x: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
    """(N, D) features -> (N, D) in the units of the training features' per-feature mean and scale."""
    return (x.float() - mean) / scale


def objective(weight: Tensor, bias: Tensor, z: Tensor, y: Tensor, c: float) -> Tensor:
    """scikit-learn's L2 logistic loss divided by N: ``mean cross-entropy + ||W||^2 / (2 C N)``.

    Args:
        weight: (K, D), bias: (K,), z: (N, D) standardised features, y: (N,) classes in [0, K).
    """
    return F.cross_entropy(torch.addmm(bias, z, weight.T), y) + weight.square().sum() / (2 * c * len(z))


def fit_logistic(x: Tensor, y: Tensor, c: float, num_classes: int | None = None, max_iter: int = 1000,
                 tol: float = 1e-5, init: LogisticModel | None = None) -> LogisticModel:
    """Minimise :func:`objective` over features ``x`` (N, D), standardised, with labels ``y`` (N,).

    The objective is strictly convex in the weights, so ``init`` (a fit on similar data, as a warm
    start) changes the iterations, not the optimum; it also fixes the number of classes, which is
    otherwise ``num_classes``, or the largest label + 1. The fit stops when no gradient entry exceeds
    ``tol`` or after ``max_iter`` iterations.
    """
    if c <= 0:
        raise ValueError(f"C must be positive, got {c}")
    x = x.float()
    mean, scale = x.mean(0), x.std(0, correction=0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    z = standardize(x, mean, scale)
    if init is None:
        k = num_classes or int(y.max()) + 1
        weight, bias = x.new_zeros(k, x.shape[1]), x.new_zeros(k)
    else:
        weight, bias = init.weight.clone(), init.bias.clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = objective(weight, bias, z, y, c)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    iterations = opt.state[weight].get("n_iter", 0)
    return LogisticModel(mean, scale, weight.detach(), bias.detach(), int(iterations))

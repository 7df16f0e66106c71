"""Small, exact computations behind the Concepts page (the seeds' exercises, made interactive)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def cosine_similarity(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """cos(a, b) = a.b / (|a| |b|); raises on a zero vector, where the angle is undefined."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        raise ValueError("cosine similarity is undefined for a zero vector")
    return float(a @ b / norm)


# The seeds' worked examples: (anchor, positive, negative) -> (cos(anchor, positive), cos(anchor, negative)).
COSINE_PRESETS: dict[str, tuple[list[float], list[float], list[float]]] = {
    "a=[2,1], a+=[3,2], b=[-2,1]": ([2, 1], [3, 2], [-2, 1]),
    "[1,0], [0.9,0.4], [-0.5,0.8]": ([1, 0], [0.9, 0.4], [-0.5, 0.8]),
}


def info_nce_terms(pos_sim: float, neg_sims: np.ndarray, temperature: float) -> tuple[float, np.ndarray]:
    """InfoNCE loss of one anchor and the weight each negative gets in its gradient.

    The gradient of the loss with respect to negative j's similarity is ``softmax(s/T)_j / T``:
    a low temperature concentrates the weight on the hardest (most similar) negatives.

    Args:
        pos_sim: cosine similarity with the positive.
        neg_sims: (N,) cosine similarities with the negatives.
    Returns:
        (loss, weights (N,) summing to 1 - p(positive)).
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    logits = np.concatenate([[pos_sim], np.asarray(neg_sims, dtype=float)]) / temperature
    logits -= logits.max()
    p = np.exp(logits) / np.exp(logits).sum()
    return float(-math.log(p[0])), p[1:]


def nt_xent_landscape(temperatures: np.ndarray, batch_sizes: list[int], pos_sim: float = 0.8,
                      dim: int = 128, seed: int = 0) -> np.ndarray:
    """NT-Xent of one anchor against 2B - 2 random negatives in ``dim`` dims, for each (T, B).

    Random unit vectors in high dimension have cosine near 0 (std 1/sqrt(dim)), the situation of
    a freshly initialised network. Returns (len(batch_sizes), len(temperatures)) losses.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((len(batch_sizes), len(temperatures)))
    for i, b in enumerate(batch_sizes):
        neg = rng.standard_normal((2 * b - 2, dim))
        anchor = rng.standard_normal(dim)
        neg_sims = neg @ anchor / (np.linalg.norm(neg, axis=1) * np.linalg.norm(anchor))
        for j, t in enumerate(temperatures):
            out[i, j] = info_nce_terms(pos_sim, neg_sims, float(t))[0]
    return out


@dataclass(frozen=True)
class EMASimulation:
    online: np.ndarray  # (steps,) the online parameter, a random walk
    targets: dict[float, np.ndarray]  # momentum -> (steps,) the EMA target
    lag: dict[float, float]  # mean |online - target|: how stale the target is
    jitter: dict[float, float]  # std of the target's per-step change: how stable it is


def simulate_ema(momenta: tuple[float, ...] = (0.9, 0.99, 0.999, 0.9999), steps: int = 5000,
                 noise: float = 0.05, drift: float = 0.002, seed: int = 0) -> EMASimulation:
    """An online parameter that drifts and jitters, and EMA targets ``t = m*t + (1-m)*online``.

    Higher momentum averages out the jitter (stability) but trails the drift by about
    ``drift * m / (1 - m)`` (staleness): the trade-off behind MoCo's 0.999 and BYOL's schedule.
    """
    rng = np.random.default_rng(seed)
    online = np.cumsum(drift + noise * rng.standard_normal(steps))
    targets, lag, jitter = {}, {}, {}
    for m in momenta:
        t = np.empty(steps)
        t[0] = online[0]
        for i in range(1, steps):
            t[i] = m * t[i - 1] + (1 - m) * online[i]
        targets[m], lag[m], jitter[m] = t, float(np.abs(online - t).mean()), float(np.diff(t).std())
    return EMASimulation(online, targets, lag, jitter)

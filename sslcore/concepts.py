"""Small, exact computations behind the Concepts page (the seeds' exercises, made interactive)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from sslcore.augment import BatchViews, ViewConfig, pair_correlation, recipe
from sslcore.models.vit import make_mask


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


def negative_weight_stats(neg_sims: np.ndarray, temperature: float,
                          hard_fraction: float = 0.1) -> tuple[float, float]:
    """How the gradient weight over negatives is spread: (hard share, effective negatives).

    Negative j's weight is ``softmax(s/T)_j`` restricted to the negatives (Wang & Liu 2021,
    "Understanding the Behaviour of Contrastive Loss": T sets how hard the loss presses on hard
    negatives).

    Args:
        neg_sims: (N,) similarities of the negatives.
        temperature: T > 0.
        hard_fraction: the hardest ``ceil(hard_fraction * N)`` negatives count as hard.
    Returns:
        hard share: the share of the weight on the hard negatives (``ceil(qN)/N`` when uniform, 1
        when the hardest take it all); effective negatives: ``exp(entropy)`` of the normalised
        weights, N when every negative counts equally and 1 when one takes everything.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    if not 0 < hard_fraction <= 1:
        raise ValueError(f"hard_fraction must be in (0, 1], got {hard_fraction}")
    s = np.sort(np.asarray(neg_sims, dtype=float))[::-1] / temperature
    w = np.exp(s - s.max())
    w /= w.sum()
    k = math.ceil(hard_fraction * len(w))
    entropy = -(w[w > 0] * np.log(w[w > 0])).sum()
    return float(w[:k].sum()), float(math.exp(entropy))


@dataclass(frozen=True)
class NTXentExplorer:
    """NT-Xent of one anchor over a grid of temperatures (columns) and batch sizes (rows)."""

    temperatures: np.ndarray  # (T,)
    batch_sizes: list[int]  # (B,)
    loss: np.ndarray  # (B, T)
    hard_share: np.ndarray  # (B, T) share of the negatives' gradient weight on the hardest 10%
    effective_negatives: np.ndarray  # (B, T) exp(entropy) of the negatives' weights


def nt_xent_explorer(temperatures: np.ndarray, batch_sizes: list[int], pos_sim: float = 0.8,
                     dim: int = 128, seed: int = 0, hard_fraction: float = 0.1) -> NTXentExplorer:
    """One anchor against the 2B - 2 negatives of a batch of B images, for each (T, B).

    Negatives are random unit vectors in ``dim`` dims: cosines near 0 with std 1/sqrt(dim), as at
    a fresh initialisation, so the hardest of them are hard only by chance; more negatives give
    both a higher loss and harder extremes.
    """
    rng = np.random.default_rng(seed)
    shape = (len(batch_sizes), len(temperatures))
    loss, share, effective = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for i, b in enumerate(batch_sizes):
        if b < 2:
            raise ValueError(f"a batch needs at least 2 images, got {b}")
        neg = rng.standard_normal((2 * b - 2, dim))
        anchor = rng.standard_normal(dim)
        neg_sims = neg @ anchor / (np.linalg.norm(neg, axis=1) * np.linalg.norm(anchor))
        for j, t in enumerate(temperatures):
            loss[i, j] = info_nce_terms(pos_sim, neg_sims, float(t))[0]
            share[i, j], effective[i, j] = negative_weight_stats(neg_sims, float(t), hard_fraction)
    return NTXentExplorer(np.asarray(temperatures), list(batch_sizes), loss, share, effective)


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


def steady_state_lag(momentum: float, drift: float) -> float:
    """Lag of an EMA target behind a parameter that moves ``drift`` per step: ``drift * m / (1 - m)``.

    From ``lag_t = m * (lag_{t-1} + drift)``; it is reached after a few ``1 / (1 - m)`` steps,
    the target's averaging window.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    return drift * momentum / (1 - momentum)


# --------------------------------------------------------------------------- MAE masking


def _grid_coords(grid: tuple[int, int]) -> np.ndarray:
    h, w = grid
    rows, cols = np.divmod(np.arange(h * w), w)
    return np.stack([rows, cols], axis=1).astype(float)  # (L, 2)


def _as_masks(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    m = np.atleast_2d(np.asarray(mask, dtype=float))
    if m.shape[1] != grid[0] * grid[1]:
        raise ValueError(f"masks of {m.shape[1]} patches do not fit a {grid[0]}x{grid[1]} grid")
    if (m == 0).sum(1).min() == 0:
        raise ValueError("every mask needs at least one visible patch")
    return m


def nearest_visible_distance(mask: np.ndarray, grid: tuple[int, int]) -> float:
    """Reconstruction difficulty: mean distance from a hidden patch to its nearest visible patch.

    Args:
        mask: (L,) or (N, L), 0 keep, 1 remove, patches in raster order over ``grid = (h, w)``.
    Returns:
        the mean, over every hidden patch of every mask, of the Euclidean distance in patch units
        (1 when a visible patch touches it side by side); 0 when nothing is hidden.
    """
    m = _as_masks(mask, grid)
    xy = _grid_coords(grid)
    dist = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))  # (L, L)
    total, count = 0.0, 0
    for row in m:
        hidden, visible = row == 1, row == 0
        if hidden.any():
            total += dist[np.ix_(hidden, visible)].min(1).sum()
            count += int(hidden.sum())
    return total / count if count else 0.0


def coverage_uniformity(mask: np.ndarray, grid: tuple[int, int], regions: int = 4) -> float:
    """How evenly the visible patches spread over the image, in [0, 1].

    The grid is cut into ``regions x regions`` areas; the score is the entropy of the visible
    patches' distribution over the areas divided by its largest possible value
    ``log(min(areas, visible))``: 1 when they spread as evenly as their number allows, 0 when
    they all sit in one area. Averaged over masks (a single visible patch scores 1).
    """
    m = _as_masks(mask, grid)
    h, w = grid
    r = min(regions, h, w)
    xy = _grid_coords(grid)
    area = (xy[:, 0] * r // h) * r + xy[:, 1] * r // w  # (L,) area index of each patch
    scores = []
    for row in m:
        counts = np.bincount(area[row == 0].astype(int), minlength=r * r)
        p = counts[counts > 0] / counts.sum()
        best = math.log(min(r * r, int(counts.sum())))
        scores.append(1.0 if best == 0 else float(-(p * np.log(p)).sum() / best))
    return float(np.mean(scores))


def draw_masks(strategy: str, ratio: float, grid: tuple[int, int] = (8, 8), n: int = 1, seed: int = 0) -> np.ndarray:
    """(n, L) masks of MAE's :func:`~sslcore.models.vit.make_mask`, 0 keep, 1 remove, seeded."""
    return make_mask(strategy, n, grid, ratio, torch.Generator().manual_seed(seed)).numpy()


@dataclass(frozen=True)
class MaskStats:
    strategy: str
    ratio: float  # the asked ratio
    actual_ratio: float  # hidden fraction of the drawn masks (grid masks keep their pattern's count)
    uniformity: float
    difficulty: float


def mask_study(strategies: tuple[str, ...] = ("random", "block", "grid"),
               ratios: tuple[float, ...] = (0.25, 0.5, 0.6, 0.75, 0.9), grid: tuple[int, int] = (8, 8),
               n: int = 64, seed: int = 0) -> list[MaskStats]:
    """Uniformity and difficulty of ``n`` masks per (strategy, ratio), drawn with MAE's helpers.

    MAE (He et al. 2021, sec. 4.1, Fig. 6) found random masking at 75% best: block masking leaves
    large holes that are hard to fill, grid masking leaves every hole a neighbour and is too easy.
    """
    out = []
    for strategy in strategies:
        for ratio in ratios:
            masks = draw_masks(strategy, ratio, grid, n, seed)
            out.append(MaskStats(strategy, ratio, float(masks.mean()), coverage_uniformity(masks, grid),
                                 nearest_visible_distance(masks, grid)))
    return out


# --------------------------------------------------------------------------- augmentation overlap

OVERLAP_OPS = ("identity", "crop", "flip", "jitter", "blur", "grayscale")


def single_op_recipe(op: str, size: int, p: float = 1.0) -> ViewConfig:
    """A view recipe that applies only ``op`` (with probability ``p``; crops always happen).

    Strengths are SimCLR's (crop scale 0.08-1, jitter 0.4/0.4/0.4/0.1) and BYOL's blur sigma 0.1-2;
    views are left in [0, 1] (no normalisation), as pixel correlation wants.
    """
    base = recipe("none", size, normalize=False)
    simclr = ViewConfig()
    ops = {
        "identity": {},
        "crop": {"crop_scale": simclr.crop_scale, "crop_ratio": simclr.crop_ratio},
        "flip": {"hflip_p": p},
        "jitter": {"jitter_p": p},
        "blur": {"blur_p": p},
        "grayscale": {"gray_p": p},
    }
    if op not in ops:
        raise ValueError(f"unknown op {op!r}; choose from {OVERLAP_OPS}")
    return replace(base, **ops[op])


def augmentation_overlap(images: torch.Tensor, ops: tuple[str, ...] = OVERLAP_OPS, p: float = 1.0,
                         seed: int = 0) -> np.ndarray:
    """Mean pixel correlation between views of the same images made by two single-op recipes.

    Each op draws two independent views of every image; cell (i, j) is the mean Pearson
    correlation (:func:`sslcore.augment.pair_correlation`) between op i's first view and op j's
    second view. The diagonal is how much two views under one op still share (1 for a
    deterministic op); the identity row is how far each op moves a view from the original.

    Args:
        images: (N, 3, S, S) uint8.
    Returns:
        (len(ops), len(ops)) matrix, symmetric up to sampling noise.
    """
    g = torch.Generator().manual_seed(seed)
    size = images.shape[-1]
    first, second = [], []
    for op in ops:
        views = BatchViews(single_op_recipe(op, size, p))
        first.append(views(images, g))
        second.append(views(images, g))
    return np.array([[float(pair_correlation(a, b).mean()) for b in second] for a in first])
